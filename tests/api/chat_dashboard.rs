//! The agents' dashboard (issue 22, part 4; docs/chat.md): sessions named by a stable visitor
//! label, the page the visitor came from, per-agent unread counts kept in the database (so every
//! instance agrees), and the `/agent/` page showing them.

use std::time::{Duration, Instant};

use fantoccini::Locator;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::browser::{Browser, sign_in, wait_for};
use crate::helpers::{Db, TestApp, Ws, assert_error, chat_upload, created};

/// A company with two agents (Ada, also the admin, and Ben) and a visitor session opened from
/// `page_url`.
struct Desk {
    company_id: String,
    widget_key: String,
    ada: String,
    ben: String,
    session_id: String,
    visitor: String,
}

async fn desk(app: &TestApp, page_url: Option<&str>) -> Desk {
    let (ada, ada_id) = app.register("ada@example.com", "Ada Agent").await;
    let (ben, ben_id) = app.register("ben@example.com", "Ben Agent").await;
    let c = created(app.post_json("/api/companies/", Some(&ada), &json!({"name": "Acme"})).await).await;
    let company_id = c["company_id"].as_str().expect("company").to_string();
    for id in [ada_id, ben_id] {
        let r =
            app.post_json(&format!("/api/companies/{company_id}/agents/"), Some(&ada), &json!({"user_id": id})).await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let widget_key = c["widget_key"].as_str().expect("key").to_string();
    let (session_id, visitor) = open(app, &widget_key, page_url).await;
    Desk { company_id, widget_key, ada, ben, session_id, visitor }
}

async fn open(app: &TestApp, widget_key: &str, page_url: Option<&str>) -> (String, String) {
    let mut body = json!({"widget_key": widget_key});
    if let Some(u) = page_url {
        body["page_url"] = json!(u);
    }
    let s = created(app.post_json("/api/chat/sessions/", None, &body).await).await;
    (s["session_id"].as_str().expect("session").to_string(), s["token"].as_str().expect("token").to_string())
}

/// The agent's view of the company's sessions, by session id.
async fn sessions(app: &TestApp, d: &Desk, agent: &str) -> Vec<Value> {
    let r = app.get(&format!("/api/chat/sessions/?company_id={}", d.company_id), Some(agent)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.expect("json");
    v["results"].as_array().expect("results").clone()
}

async fn session(app: &TestApp, d: &Desk, agent: &str) -> Value {
    sessions(app, d, agent)
        .await
        .into_iter()
        .find(|s| s["session_id"] == d.session_id.as_str())
        .expect("the session is listed")
}

async fn unread(app: &TestApp, d: &Desk, agent: &str) -> i64 {
    session(app, d, agent).await["unread_count"].as_i64().expect("unread_count")
}

async fn read(app: &TestApp, d: &Desk, token: Option<&str>) -> reqwest::Response {
    app.req(Method::POST, &format!("/api/chat/sessions/{}/read/", d.session_id), token).send().await.expect("read")
}

/// Sends `text` on the socket and waits until the server has stored it (its own echo).
async fn say(ws: &mut Ws, text: &str) {
    ws.send(&json!({"type": "message", "text": text})).await;
    loop {
        let v = ws.next_of("message").await;
        if v["text"] == text {
            return;
        }
    }
}

async fn socket(app: &TestApp, d: &Desk, token: &str) -> Ws {
    let mut ws = Ws::connect(app, &format!("/ws/chat/{}/{}/?token={token}", d.company_id, d.session_id)).await;
    ws.next_of("connection_established").await;
    ws
}

async fn sessions_have_a_stable_friendly_label_and_the_page_the_visitor_came_from(db: Db) {
    let app = TestApp::on(db).await;
    let d = desk(&app, Some("https://shop.example/pricing?plan=pro#faq")).await;
    let (plain, _) = open(&app, &d.widget_key, None).await;
    let list = sessions(&app, &d, &d.ada).await;
    assert_eq!(list.len(), 2);
    let first = list.iter().find(|s| s["session_id"] == d.session_id.as_str()).expect("listed");
    let label = first["visitor_label"].as_str().expect("visitor_label").to_string();
    let words: Vec<&str> = label.split(' ').collect();
    assert!(words.len() == 3 && words[0] == "Visitor", "{label}");
    assert!(words[1..].iter().all(|w| w.chars().next().is_some_and(char::is_uppercase)), "{label}");
    assert!(!label.contains(&d.session_id[..8]), "no hex id: {label}");
    assert_eq!(label, vitrine::domain::chat::visitor_label(&d.session_id), "derived from the session id alone");
    assert_eq!(first["page_url"], "https://shop.example/pricing?plan=pro", "kept without its fragment");
    let other = list.iter().find(|s| s["session_id"] == plain.as_str()).expect("listed");
    assert_eq!(other["page_url"], Value::Null, "unknown when the widget did not say");
    // Each session its own label (two sessions may draw the same one: 2,304 labels).
    assert_eq!(other["visitor_label"], vitrine::domain::chat::visitor_label(&plain).as_str());
    // The same label for every agent and every later look.
    assert_eq!(session(&app, &d, &d.ben).await["visitor_label"], label.as_str());
    assert_eq!(session(&app, &d, &d.ada).await["visitor_label"], label.as_str());

    // The seed's body alone still opens a session; a bad page_url is a 400 naming the field.
    for bad in [
        json!("javascript:alert(1)"),
        json!("/relative/path"),
        json!(format!("https://a.example/{}", "x".repeat(2100))),
    ] {
        let r = app.post_json("/api/chat/sessions/", None, &json!({"widget_key": d.widget_key, "page_url": bad})).await;
        let v = assert_error(r, StatusCode::BAD_REQUEST, "validation_error").await;
        assert!(v["fields"]["page_url"].is_string(), "{v}");
    }
    let r = app.post_json("/api/chat/sessions/", None, &json!({"widget_key": d.widget_key, "page_url": 42})).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(sessions(&app, &d, &d.ada).await.len(), 2, "refused sessions were not opened");
}

async fn unread_counts_rise_with_the_visitor_and_reset_when_the_agent_reads(db: Db) {
    let app = TestApp::on(db).await;
    let d = desk(&app, None).await;
    assert_eq!(unread(&app, &d, &d.ada).await, 0);
    // A file and two messages from the visitor: three unread, for both agents.
    let r = chat_upload(&app, &d.visitor, (&d.company_id, &d.session_id), "hello.txt", b"hi\n".to_vec()).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(unread(&app, &d, &d.ada).await, 1);
    let mut visitor = socket(&app, &d, &d.visitor).await;
    say(&mut visitor, "Hello?").await;
    say(&mut visitor, "Anyone there?").await;
    assert_eq!(unread(&app, &d, &d.ada).await, 3);
    // The agents' own messages are not unread.
    let mut ben = socket(&app, &d, &d.ben).await;
    say(&mut ben, "Ben here").await;
    assert_eq!(unread(&app, &d, &d.ada).await, 3);
    // Ada reads: zero for her, Ben's count is his own.
    let r = read(&app, &d, Some(&d.ada)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v, json!({"session_id": d.session_id, "unread_count": 0}));
    assert_eq!(unread(&app, &d, &d.ada).await, 0);
    assert_eq!(unread(&app, &d, &d.ben).await, 3);
    // The visitor writes again: one new for Ada.
    say(&mut visitor, "Thanks").await;
    assert_eq!(unread(&app, &d, &d.ada).await, 1);
    assert_eq!(unread(&app, &d, &d.ben).await, 4);
    // Reading twice is harmless.
    for _ in 0..2 {
        assert_eq!(read(&app, &d, Some(&d.ben)).await.status(), StatusCode::OK);
    }
    assert_eq!(unread(&app, &d, &d.ben).await, 0);

    // Who may not mark: the visitor, an agent of another company, nobody.
    assert_error(read(&app, &d, Some(&d.visitor)).await, StatusCode::FORBIDDEN, "forbidden").await;
    let (eve, eve_id) = app.register("eve@example.com", "Eve").await;
    let other = created(app.post_json("/api/companies/", Some(&d.ada), &json!({"name": "Other"})).await).await;
    let r = app
        .post_json(
            &format!("/api/companies/{}/agents/", other["company_id"].as_str().expect("id")),
            Some(&d.ada),
            &json!({"user_id": eve_id}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_error(read(&app, &d, Some(&eve)).await, StatusCode::FORBIDDEN, "forbidden").await;
    assert_error(read(&app, &d, None).await, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    let r = app.req(Method::POST, "/api/chat/sessions/not-a-session/read/", Some(&d.ada)).send().await.expect("read");
    assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(unread(&app, &d, &d.ada).await, 1, "the refused marks changed nothing");
    // The page's cookie reads as well (with the CSRF header, SPEC §0).
    let page = app.page_session("ada@example.com").await;
    let path = format!("/api/chat/sessions/{}/read/", d.session_id);
    assert_error(page.req(Method::POST, &path).send().await.expect("read"), StatusCode::FORBIDDEN, "csrf_failed").await;
    assert_eq!(page.req_with_csrf(Method::POST, &path).send().await.expect("read").status(), StatusCode::OK);
    assert_eq!(unread(&app, &d, &d.ada).await, 0);
}

crate::on_both_databases!(
    sessions_have_a_stable_friendly_label_and_the_page_the_visitor_came_from,
    unread_counts_rise_with_the_visitor_and_reset_when_the_agent_reads,
    two_sessions_drawing_the_same_label_are_listed_under_different_labels,
);

/// Two session ids that draw the same visitor label (2,304 labels: found by a short search).
fn colliding_ids() -> (String, String) {
    let mut seen = std::collections::HashMap::new();
    for i in 0..100_000u32 {
        let id = format!("{:08x}-7c1d-4e2f-9a3b-5d6e7f8091a2", i.wrapping_mul(0x9E37_79B1));
        if let Some(first) = seen.insert(vitrine::domain::chat::visitor_label(&id), id.clone()) {
            return (first, id);
        }
    }
    unreachable!("labels collide long before 100,000 ids")
}

/// Two open sessions of one company whose ids draw the same label are listed with two different
/// labels (a suffix from each id); the other sessions keep their plain label; every agent and
/// every look sees the same labels.
async fn two_sessions_drawing_the_same_label_are_listed_under_different_labels(db: Db) {
    let app = TestApp::on(db).await;
    let d = desk(&app, None).await;
    let (a, b) = colliding_ids();
    let base = vitrine::domain::chat::visitor_label(&a);
    assert_eq!(vitrine::domain::chat::visitor_label(&b), base, "the ids collide on the base label");
    let company = app.state.store.company_by_uuid(&d.company_id).await.expect("store").expect("company");
    let now = app.state.clock.now_ms();
    for id in [&a, &b] {
        app.state.store.insert_chat_session(id, &company, None, now).await.expect("insert");
    }
    let list = sessions(&app, &d, &d.ada).await;
    assert_eq!(list.len(), 3);
    let label = |id: &str| {
        list.iter().find(|s| s["session_id"] == id).expect("listed")["visitor_label"]
            .as_str()
            .expect("label")
            .to_string()
    };
    let (la, lb) = (label(&a), label(&b));
    assert_ne!(la, lb, "one list never shows one label twice");
    // A short suffix from each session id (longer only when their first characters agree).
    assert!(la.starts_with(&format!("{base} · {}", &a[..4])) && la.len() <= base.len() + 3 + 8, "{la}");
    assert!(lb.starts_with(&format!("{base} · {}", &b[..4])) && lb.len() <= base.len() + 3 + 8, "{lb}");
    let plain = label(&d.session_id);
    assert_eq!(plain, vitrine::domain::chat::visitor_label(&d.session_id), "no collision: the plain label");
    let labels: std::collections::HashSet<String> =
        list.iter().map(|s| s["visitor_label"].as_str().expect("label").to_string()).collect();
    assert_eq!(labels.len(), 3, "{labels:?}");
    // Ben sees the same labels; so does a later look.
    for s in sessions(&app, &d, &d.ben).await.into_iter().chain(sessions(&app, &d, &d.ada).await) {
        let id = s["session_id"].as_str().expect("id");
        assert_eq!(s["visitor_label"].as_str().expect("label"), label(id), "{id}");
    }
    // A page of one session shows it under its plain label (nothing to tell apart there).
    let r = app.get(&format!("/api/chat/sessions/?company_id={}&page_size=1", d.company_id), Some(&d.ada)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.expect("json");
    let only = &v["results"][0];
    let id = only["session_id"].as_str().expect("id");
    assert_eq!(only["visitor_label"], vitrine::domain::chat::visitor_label(id).as_str());
}

/// Two instances on one database: what one counts and marks, the other answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_counts_and_labels_agree_across_instances() {
    let Some(bus) = crate::helpers::redis::redis_url().await else { return };
    let (a, b) = crate::helpers::redis::pair(&bus).await;
    let d = desk(&a, Some("https://shop.example/")).await;
    let r = chat_upload(&a, &d.visitor, (&d.company_id, &d.session_id), "one.txt", b"1\n".to_vec()).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let on_a = session(&a, &d, &d.ada).await;
    let on_b = session(&b, &d, &d.ada).await;
    assert_eq!(on_b["unread_count"], 1);
    for k in ["visitor_label", "page_url", "unread_count"] {
        assert_eq!(on_a[k], on_b[k], "{k}");
    }
    assert_eq!(read(&b, &d, Some(&d.ada)).await.status(), StatusCode::OK);
    assert_eq!(unread(&a, &d, &d.ada).await, 0, "read on B, zero on A");
    let r = chat_upload(&b, &d.visitor, (&d.company_id, &d.session_id), "two.txt", b"2\n".to_vec()).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(unread(&a, &d, &d.ada).await, 1);
    assert_eq!(unread(&b, &d, &d.ada).await, 1);
}

/// The `/agent/` page: the visitor's label and where they came from, an unread badge that the
/// agent's look clears (on the server too), and a "last activity" label that moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_page_shows_the_visitor_label_the_page_and_an_unread_badge() {
    let app = TestApp::spawn().await;
    let d = desk(&app, Some("https://shop.example/pricing")).await;
    let label = vitrine::domain::chat::visitor_label(&d.session_id);
    for name in ["a.txt", "b.txt"] {
        let r = chat_upload(&app, &d.visitor, (&d.company_id, &d.session_id), name, b"x\n".to_vec()).await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let Some(browser) = Browser::start().await else { return };
    let c = &browser.client;
    sign_in(c, &app, "ada@example.com").await;
    c.goto(&app.url("/agent/")).await.expect("goto");
    wait_for(c, "return document.querySelectorAll('.chat-session').length === 1;").await;
    wait_for(
        c,
        "var b = document.querySelector('.chat-session-unread'); return !!b && !b.hidden && b.textContent === '2';",
    )
    .await;
    let name = c.find(Locator::Css(".chat-session-name")).await.expect("name").text().await.expect("text");
    assert!(name.starts_with(&label), "{name} names {label}");
    let from = c.find(Locator::Css(".chat-session-from")).await.expect("from").text().await.expect("text");
    assert_eq!(from, "from shop.example/pricing");
    // The last activity is printed by the pages' one date helper (static/js/shell.js): a
    // `<time datetime>` with the server's words (`Shell::time`) and a relative label.
    let when = c.find(Locator::Css(".chat-session-when")).await.expect("when");
    let datetime = when.attr("datetime").await.expect("attr").expect("a machine-readable time");
    let listed = session(&app, &d, &d.ada).await;
    assert_eq!(datetime, listed["last_activity_at"].as_str().expect("last activity"), "the session's last activity");
    let ms = vitrine::domain::time::parse_rfc3339(&datetime).expect("RFC 3339");
    let words = vitrine::domain::time::human_date(ms);
    assert_eq!(when.attr("title").await.expect("title").as_deref(), Some(words.as_str()), "the server's words");
    wait_for(c, "return window.vitrineDates.time('2026-12-04T13:09:23Z').title === '4 Dec 2026, 13:09 UTC';").await;
    let rel = c.find(Locator::Css(".chat-session-when .rel")).await.expect("relative label");
    assert_eq!(rel.text().await.expect("text"), "(just now)");
    let shown = when.text().await.expect("text");
    assert!(shown.ends_with(" (just now)") && shown.len() > "(just now)".len() + 5, "a date, then the label: {shown}");
    let aria = c.find(Locator::Css(".chat-session button")).await.expect("button").attr("aria-label").await.expect("a");
    assert!(aria.is_some_and(|a| a.contains(&label) && a.contains("2 unread")), "the badge is read out too");

    // The last-activity label moves while the page stays open: two minutes later, it says so.
    c.execute("var real = Date.now; Date.now = function () { return real.call(Date) + 125000; };", vec![])
        .await
        .expect("js");
    wait_for(c, "return document.querySelector('.chat-session-when .rel').textContent === '(2 minutes ago)';").await;
    let shown_later = c.find(Locator::Css(".chat-session-when")).await.expect("when").text().await.expect("text");
    assert_eq!(shown_later.replace("(2 minutes ago)", "(just now)"), shown, "the date stays, the label moves");

    // The agent opens the session: the badge goes, the title names the visitor and the page.
    c.find(Locator::Css(".chat-session button")).await.expect("button").click().await.expect("click");
    wait_for(c, "return document.querySelector('.chat-session-unread').hidden;").await;
    let title = c.find(Locator::Id("chat-title")).await.expect("title").text().await.expect("text");
    assert!(title.contains(&label), "{title}");
    let link = c.find(Locator::Css("#chat-from a")).await.expect("link");
    assert_eq!(link.attr("href").await.expect("href").as_deref(), Some("https://shop.example/pricing"));
    // ... and the server knows: the count is zero for Ada (the page marked it read), not for Ben.
    let deadline = Instant::now() + Duration::from_secs(10);
    while unread(&app, &d, &d.ada).await != 0 {
        assert!(Instant::now() < deadline, "the page marks the session read");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(unread(&app, &d, &d.ben).await, 2);
    // A visitor message while the session is open is read at once (no badge, zero on the server).
    wait_for(c, "return (document.getElementById('chat-status') || {}).textContent === 'connected';").await;
    let mut visitor = socket(&app, &d, &d.visitor).await;
    say(&mut visitor, "Are you there?").await;
    wait_for(c, "return Array.prototype.some.call(document.querySelectorAll('#conversation li'), function (li) { return li.textContent.indexOf('Are you there?') !== -1; });").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while unread(&app, &d, &d.ada).await != 0 {
        assert!(Instant::now() < deadline, "a message seen in the open session is read");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.client.clone().close().await.expect("close");
}

/// The widget reports the page it was given (`&page_url=`), and opens the chat all the same when
/// the server refuses that address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_widget_reports_its_page_and_opens_without_a_refused_one() {
    let app = TestApp::spawn().await;
    let d = desk(&app, None).await;
    let Some(browser) = Browser::start().await else { return };
    let c = &browser.client;
    let connected = "return (document.getElementById('chat-status') || {}).textContent === 'connected';";
    let widget = |page: &str| app.url(&format!("/chat/widget/?widget_key={}&page_url={page}", d.widget_key));
    c.goto(&widget("https%3A%2F%2Fshop.example%2Fcart%3Fstep%3D2")).await.expect("goto");
    wait_for(c, connected).await;
    let pages = |list: Vec<Value>| -> Vec<Value> {
        list.into_iter().filter(|s| s["session_id"] != d.session_id.as_str()).map(|s| s["page_url"].clone()).collect()
    };
    assert_eq!(pages(sessions(&app, &d, &d.ada).await), vec![json!("https://shop.example/cart?step=2")]);
    // A new visitor (another tab's storage) on a page address the server refuses.
    c.execute("sessionStorage.clear();", vec![]).await.expect("js");
    c.goto(&widget("https%3A%2F%2F")).await.expect("goto");
    wait_for(c, connected).await;
    let got = pages(sessions(&app, &d, &d.ada).await);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.contains(&Value::Null), "opened without the refused address: {got:?}");
    browser.client.clone().close().await.expect("close");
}
