//! Real headless Chromium through chromedriver (fantoccini). Skipped with a message when Chromium
//! is not installed, unless CI=true, where a missing browser fails the test.

use std::time::{Duration, Instant};

use fantoccini::Locator;

use serde_json::{Value, json};

use crate::helpers::browser::{Browser, sign_in, wait_for};
use crate::helpers::{Spawn, TestApp, fixtures};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_through_the_form_and_sees_their_page() {
    let app = TestApp::spawn().await;
    let (token, _) = app.register("ada@example.com", "Ada Lovelace").await;
    app.upload(&token, "notes.txt", b"hello\n".to_vec()).await;
    let Some(browser) = Browser::start().await else { return };
    let c = &browser.client;
    c.goto(&app.url("/")).await.expect("goto");
    assert!(c.current_url().await.expect("url").path().starts_with("/login"), "sent to the login form");
    c.find(Locator::Id("email")).await.expect("email").send_keys("ada@example.com").await.expect("type");
    c.find(Locator::Id("password")).await.expect("password").send_keys("wrong password").await.expect("type");
    c.find(Locator::Id("login-submit")).await.expect("submit").click().await.expect("click");
    let err = c.wait().for_element(Locator::Id("login-error")).await.expect("error shown").text().await.expect("text");
    assert!(err.contains("wrong"), "{err}");
    c.find(Locator::Id("password")).await.expect("password").send_keys("correct horse").await.expect("type");
    c.find(Locator::Id("login-submit")).await.expect("submit").click().await.expect("click");
    let who = c.wait().for_element(Locator::Id("signed-in-as")).await.expect("signed in").text().await.expect("text");
    assert!(who.contains("Ada Lovelace"), "{who}");
    let files = c.find(Locator::Id("files")).await.expect("file list").text().await.expect("text");
    assert!(files.contains("notes.txt"), "{files}");
    c.find(Locator::Id("logout")).await.expect("logout").click().await.expect("click");
    c.wait().for_element(Locator::Id("login-submit")).await.expect("back on the login form");
    assert!(c.current_url().await.expect("url").path().starts_with("/login"));
    browser.client.clone().close().await.expect("close");
}

fn share_app() -> Spawn {
    Spawn { tweak: Box::new(|c| c.share_access_rate_per_ip_per_minute = 10_000), ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recipient_unlocks_a_protected_link_sees_the_preview_and_downloads() {
    let app = TestApp::spawn_with(share_app()).await;
    let (token, _) = app.register("owner@example.com", "Olive").await;
    let img = app.upload(&token, "sunset.png", fixtures::png(640, 360)).await;
    let r = app
        .post_json(
            &format!("/api/v3/assets/{}/share/", img["id"]),
            Some(&token),
            &json!({"share_type": "protected", "password": "secure123", "max_downloads": 3}),
        )
        .await;
    let share: Value = r.json().await.expect("json");
    let downloads = tempfile::tempdir().expect("dir");
    let Some(browser) = Browser::start_with_downloads(Some(downloads.path())).await else { return };
    let c = &browser.client;
    c.goto(share["share_url"].as_str().expect("url")).await.expect("goto");
    c.find(Locator::Id("share-password")).await.expect("form").send_keys("not it at all").await.expect("type");
    c.find(Locator::Id("unlock-submit")).await.expect("submit").click().await.expect("click");
    let err = c.wait().for_element(Locator::Id("unlock-error")).await.expect("error").text().await.expect("text");
    assert!(err.contains("Wrong password"), "{err}");
    c.find(Locator::Id("share-password")).await.expect("form").send_keys("secure123").await.expect("type");
    c.find(Locator::Id("unlock-submit")).await.expect("submit").click().await.expect("click");
    c.wait().for_element(Locator::Id("preview-image")).await.expect("preview shown");
    let width = c.execute("return document.getElementById('preview-image').naturalWidth;", vec![]).await.expect("js");
    assert_eq!(width.as_u64(), Some(640), "the preview image loaded");
    c.find(Locator::Id("download")).await.expect("download button").click().await.expect("click");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let done = std::fs::read_dir(downloads.path())
            .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy() == "sunset.png"))
            .unwrap_or(false);
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "the download did not arrive");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let saved = std::fs::read(downloads.path().join("sunset.png")).expect("saved");
    assert_eq!(saved.len() as i64, img["size"].as_i64().expect("size"));
    let s: Value = app
        .get(&format!("/api/v3/shares/{}/", share["uuid"].as_str().expect("u")), Some(&token))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(s["download_count"], 1);
    browser.client.clone().close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_link_shows_a_page_that_says_so() {
    let app = TestApp::spawn_with(share_app()).await;
    let (token, _) = app.register("owner@example.com", "Olive").await;
    let a = app.upload(&token, "a.pdf", fixtures::pdf(500)).await;
    let r = app
        .post_json(
            &format!("/api/v3/assets/{}/share/", a["id"]),
            Some(&token),
            &json!({"share_type": "time_limited", "expires_in_hours": 1}),
        )
        .await;
    let share: Value = r.json().await.expect("json");
    app.advance(Duration::from_secs(3600));
    let Some(browser) = Browser::start().await else { return };
    let c = &browser.client;
    c.goto(share["share_url"].as_str().expect("url")).await.expect("goto");
    let text = c.find(Locator::Id("gone-reason")).await.expect("reason").text().await.expect("text");
    assert!(text.contains("expired"), "{text}");
    browser.client.clone().close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_creates_copies_and_revokes_a_link_from_the_pages() {
    let app = TestApp::spawn_with(share_app()).await;
    let (token, _) = app.register("owner@example.com", "Olive").await;
    let a = app.upload(&token, "notes.txt", b"hello there\n".to_vec()).await;
    let Some(browser) = Browser::start().await else { return };
    let c = &browser.client;
    sign_in(c, &app, "owner@example.com").await;
    c.find(Locator::Id(&format!("share-{}", a["id"]))).await.expect("share link").click().await.expect("click");
    c.wait().for_element(Locator::Id("share-form")).await.expect("form");
    c.find(Locator::Id("max_downloads")).await.expect("max").send_keys("2").await.expect("type");
    c.find(Locator::Id("create-link")).await.expect("create").click().await.expect("click");
    c.wait().for_element(Locator::Id("created-notice")).await.expect("created");
    let shares: Value = app.get("/api/v3/shares/", Some(&token)).await.json().await.expect("json");
    assert_eq!(shares["count"], 1);
    let uuid = shares["results"][0]["uuid"].as_str().expect("uuid").to_string();
    assert_eq!(shares["results"][0]["max_downloads"], 2);
    let url = c.find(Locator::Id(&format!("url-{uuid}"))).await.expect("url field").prop("value").await.expect("value");
    assert_eq!(url.as_deref(), shares["results"][0]["share_url"].as_str());
    c.find(Locator::Css(&format!("[data-copy='url-{uuid}']"))).await.expect("copy").click().await.expect("click");
    c.find(Locator::Id(&format!("revoke-{uuid}"))).await.expect("revoke").click().await.expect("click");
    c.wait().for_element(Locator::Css(&format!("#link-{uuid}.status-revoked"))).await.expect("revoked row");
    let s: Value = app.get(&format!("/api/v3/shares/{uuid}/"), Some(&token)).await.json().await.expect("json");
    assert_eq!(s["status"], "revoked");
    browser.client.clone().close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_share_widget_works_from_another_site() {
    let app = TestApp::spawn_with(share_app()).await;
    let (token, _) = app.register("owner@example.com", "Olive").await;
    let a = app.upload(&token, "clip.pdf", fixtures::pdf(800)).await;
    // Another origin: a page that loads the widget from Vitrine and calls its API.
    let page = format!(
        r#"<!doctype html><html><body><div id="share-buttons"></div>
        <script src="{base}/static/sdk/share-widget.js"></script>
        <script>window.w = new ShareWidget({id}, {{share_type: 'public', allow_download: true, expires_in_hours: 168,
          token: '{token}', apiBase: '{base}', silent: true}});</script></body></html>"#,
        base = app.base,
        id = a["id"],
    );
    let site = axum::Router::new().route("/", axum::routing::get(move || async move { axum::response::Html(page) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let site_addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, site).await });
    let Some(browser) = Browser::start().await else { return };
    let c = &browser.client;
    c.goto(&format!("http://{site_addr}/")).await.expect("goto");
    c.wait().for_element(Locator::Css("#share-buttons .share-copy")).await.expect("widget rendered");
    let platforms = c.find_all(Locator::Css("#share-buttons a.share-btn")).await.expect("buttons");
    assert_eq!(platforms.len(), 6);
    let qr_width = c
        .execute("return document.querySelector('#share-buttons img.share-qr').naturalWidth;", vec![])
        .await
        .expect("js");
    assert_eq!(qr_width.as_u64(), Some(300), "the QR image loaded");
    c.find(Locator::Css("#share-buttons .share-copy")).await.expect("copy").click().await.expect("click");
    let shares: Value = app.get("/api/v3/shares/", Some(&token)).await.json().await.expect("json");
    assert_eq!(shares["count"], 1);
    assert!(shares["results"][0]["expires_at"].is_string());
    browser.client.clone().close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_analytics_dashboard_renders_its_charts() {
    let app = TestApp::spawn_with(share_app()).await;
    let (token, _) = app.register("owner@example.com", "Olive").await;
    let a = app.upload(&token, "deck.pdf", fixtures::pdf(900)).await;
    let r = app.post_json(&format!("/api/v3/assets/{}/share/", a["id"]), Some(&token), &json!({"title": "Deck"})).await;
    let share: Value = r.json().await.expect("json");
    for ua in [
        "Mozilla/5.0 (X11; Linux x86_64) Firefox/121.0",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) Mobile/15E148 Safari/604.1",
    ] {
        app.client.get(share["share_url"].as_str().expect("u")).header("user-agent", ua).send().await.expect("view");
    }
    app.state.analytics.flush().await.expect("flush");
    let Some(browser) = Browser::start().await else { return };
    let c = &browser.client;
    sign_in(c, &app, "owner@example.com").await;
    c.goto(&app.url(&format!("/dashboard/analytics/{}/", share["uuid"].as_str().expect("u")))).await.expect("goto");
    let views = c.find(Locator::Id("total-views")).await.expect("card").text().await.expect("text");
    assert_eq!(views, "2");
    // The script has taken over: every chart container holds a drawn SVG with shapes.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ready = c
            .execute(
                "return ['geographic-chart','device-chart','timeline-chart'].every(function (id) {
                   var el = document.getElementById(id); var svg = el && el.querySelector('svg');
                   return !!svg && svg.querySelectorAll('path,circle,rect,polyline').length > 0; }) && !!window.dashboard && !!window.dashboard.data;",
                vec![],
            )
            .await
            .expect("js");
        if ready.as_bool() == Some(true) {
            break;
        }
        assert!(Instant::now() < deadline, "charts did not render");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let devices = c.execute("return document.getElementById('device-chart').textContent;", vec![]).await.expect("js");
    assert!(devices.as_str().unwrap_or("").contains("mobile"), "{devices}");
    // The days of the daily chart are named by the pages' date helper (static/js/shell.js), in
    // the words of the server's dates: "5 Dec" for 2026-12-05.
    let today = app.state.clock.now_ms();
    let words = vitrine::domain::time::human_date(today);
    let day: Vec<&str> = words.split(' ').take(2).collect();
    let day = day.join(" ");
    let named = c
        .execute(
            "return [window.vitrineDates.day(arguments[0]), document.getElementById('timeline-chart').textContent];",
            vec![json!(vitrine::domain::time::day_of(today))],
        )
        .await
        .expect("js");
    assert_eq!(named[0], day.as_str());
    assert!(named[1].as_str().is_some_and(|t| t.contains(&format!("{day}: 2 views"))), "{named}");
    browser.client.clone().close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_comment_added_in_one_browser_appears_as_a_pin_in_the_other() {
    let app = TestApp::spawn().await;
    let (owner, _) = app.register("owner@example.com", "Olive Owner").await;
    app.register("rita@example.com", "Rita Reviewer").await;
    let a = app.upload(&owner, "poster.png", fixtures::png(400, 300)).await;
    let s: Value = app
        .post_json(
            "/api/v3/collaboration/sessions/",
            Some(&owner),
            &json!({"asset_id": a["id"], "participants": [{"email": "rita@example.com"}]}),
        )
        .await
        .json()
        .await
        .expect("json");
    let page = app.url(s["collaboration_url"].as_str().expect("url"));
    let Some(olive) = Browser::start().await else { return };
    let Some(rita) = Browser::start().await else { return };
    for (b, email) in [(&olive, "owner@example.com"), (&rita, "rita@example.com")] {
        sign_in(&b.client, &app, email).await;
        b.client.goto(&page).await.expect("goto");
    }
    // Both pages are live: the socket delivered their session state.
    for b in [&olive, &rita] {
        wait_for(&b.client, "return !!(window.collab && window.collab.userId && window.collab.features);").await;
    }
    olive
        .client
        .execute(
            "window.collab.sendMessage({type: 'comment', comment: {content: 'Crop <here>', position_x: 0.3, position_y: 0.4}}); return true;",
            vec![],
        )
        .await
        .expect("js");
    wait_for(
        &rita.client,
        "return document.querySelectorAll('.collab-pin').length === 1 &&
                document.getElementById('collab-comments').textContent.indexOf('Crop <here>') >= 0;",
    )
    .await;
    let left =
        rita.client.execute("return document.querySelector('.collab-pin').style.left;", vec![]).await.expect("js");
    assert_eq!(left.as_str(), Some("30%"));
    // The text stayed text.
    let injected =
        rita.client.execute("return document.querySelectorAll('#collab-comments here').length;", vec![]).await;
    assert_eq!(injected.expect("js").as_i64(), Some(0));
    olive.client.clone().close().await.expect("close");
    rita.client.clone().close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_dropped_in_the_chat_widget_appears_live_on_the_agent_page() {
    let app = TestApp::spawn().await;
    let (admin, admin_id) = app.register("agent@example.com", "Ada Agent").await;
    let company: Value =
        app.post_json("/api/companies/", Some(&admin), &json!({"name": "Acme"})).await.json().await.expect("json");
    let company_id = company["company_id"].as_str().expect("id").to_string();
    let r = app
        .post_json(&format!("/api/companies/{company_id}/agents/"), Some(&admin), &json!({"user_id": admin_id}))
        .await;
    assert_eq!(r.status().as_u16(), 201);
    let widget = app.url(&format!("/chat/widget/?widget_key={}", company["widget_key"].as_str().expect("key")));
    let Some(visitor) = Browser::start().await else { return };
    let Some(agent) = Browser::start().await else { return };
    // The visitor opens the widget: a session starts and the socket connects.
    visitor.client.goto(&widget).await.expect("goto");
    wait_for(&visitor.client, "return (document.getElementById('chat-status') || {}).textContent === 'connected';")
        .await;
    // The agent signs in and picks the session.
    sign_in(&agent.client, &app, "agent@example.com").await;
    agent.client.goto(&app.url("/agent/")).await.expect("goto");
    wait_for(&agent.client, "return document.querySelectorAll('.chat-session').length === 1;").await;
    agent.client.find(Locator::Css(".chat-session")).await.expect("session").click().await.expect("click");
    wait_for(&agent.client, "return (document.getElementById('chat-status') || {}).textContent === 'connected';").await;
    // The visitor picks a file; the agent sees it arrive (name sanitised), with its thumbnail.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("holiday <photo>.png");
    std::fs::write(&path, fixtures::png(120, 80)).expect("write");
    let input = visitor.client.find(Locator::Id("chat-file-input")).await.expect("file input");
    input.send_keys(&path.display().to_string()).await.expect("choose file");
    wait_for(
        &agent.client,
        "var f = document.querySelector('#conversation .chat-file');
         return !!f && f.textContent.indexOf('holiday _photo_.png') >= 0 && !!f.querySelector('img');",
    )
    .await;
    wait_for(&visitor.client, "return document.querySelectorAll('#conversation .chat-file').length === 1;").await;
    // The agent answers; the visitor reads it. Text stays text.
    let text = agent.client.find(Locator::Id("chat-text")).await.expect("text");
    text.send_keys("Thanks, <b>got it</b>").await.expect("type");
    agent.client.find(Locator::Id("chat-send")).await.expect("send").click().await.expect("click");
    wait_for(
        &visitor.client,
        "var m = document.querySelectorAll('#conversation .chat-message');
         return m.length === 1 && m[0].textContent.indexOf('Thanks, <b>got it</b>') >= 0 && !m[0].querySelector('b');",
    )
    .await;
    visitor.client.clone().close().await.expect("close");
    agent.client.clone().close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dashboard_user_shares_a_search_result_and_it_appears_in_the_public_gallery() {
    let app = TestApp::spawn().await;
    let (admin, _) = app.register("admin@example.com", "Ada Admin").await;
    let (_, dana_id) = app.register("dana@example.com", "Dana Dash").await;
    let (owner, _) = app.register("john@example.com", "John Doe").await;
    let r = app.patch_json(&format!("/api/admin/users/{dana_id}/"), Some(&admin), &json!({"role": "dashboard"})).await;
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let r = app
        .upload_with(
            Some(&owner),
            "sunset.png",
            fixtures::png(64, 48),
            &[("title", "Sunset over the bay"), ("content_type", "location"), ("tags", "sea,evening")],
        )
        .await;
    let asset: Value = r.json().await.expect("json");
    let asset_id = asset["id"].as_i64().expect("id");
    let Some(browser) = Browser::start().await else { return };
    let c = &browser.client;
    sign_in(c, &app, "dana@example.com").await;
    c.find(Locator::Id("curate")).await.expect("curate link").click().await.expect("click");
    c.wait().for_element(Locator::Id("q")).await.expect("search form").send_keys("sunse").await.expect("type");
    c.find(Locator::Id("search")).await.expect("search").click().await.expect("click");
    let hit = c.wait().for_element(Locator::Id(&format!("hit-{asset_id}"))).await.expect("the hit");
    assert!(hit.text().await.expect("text").contains("Sunset over the bay"));
    hit.find(Locator::Css("input[name=caption]")).await.expect("caption").send_keys("Golden hour").await.expect("type");
    hit.find(Locator::Css("select[name=category] option[value=featured]"))
        .await
        .expect("option")
        .click()
        .await
        .expect("pick");
    hit.find(Locator::Css(".share-button")).await.expect("share").click().await.expect("click");
    let notice = c.wait().for_element(Locator::Id("notice")).await.expect("notice").text().await.expect("text");
    assert!(notice.contains("Shared"), "{notice}");
    let again = c.find(Locator::Id(&format!("hit-{asset_id}"))).await.expect("hit").text().await.expect("text");
    assert!(again.contains("In the gallery"), "the hit can no longer be shared: {again}");
    let mine = c.find(Locator::Id("mine")).await.expect("mine").text().await.expect("text");
    assert!(mine.contains("Sunset over the bay") && mine.contains("Golden hour"), "{mine}");

    // The public gallery, signed out.
    c.goto(&app.url("/gallery/")).await.expect("goto");
    c.delete_all_cookies().await.expect("sign out");
    c.refresh().await.expect("reload");
    let card = c.wait().for_element(Locator::Css(".gallery-card")).await.expect("card");
    let text = card.text().await.expect("text");
    assert!(text.contains("Sunset over the bay") && text.contains("Golden hour"), "{text}");
    assert!(text.contains("Featured Work") && text.contains("Originally by John Doe"), "{text}");
    let page = c.find(Locator::Css("body")).await.expect("body").text().await.expect("text");
    assert!(!page.contains('@'), "no address on the public page: {page}");
    wait_for(
        c,
        "const i = document.querySelector('.gallery-card img'); return !!i && i.complete && i.naturalWidth > 0;",
    )
    .await;
    c.find(Locator::Css("a[data-category=trending]")).await.expect("filter").click().await.expect("click");
    c.wait().for_element(Locator::Id("gallery-empty")).await.expect("nothing trending");
    c.find(Locator::Css("a[data-category=featured]")).await.expect("filter").click().await.expect("click");
    c.wait().for_element(Locator::Css(".gallery-card")).await.expect("featured card");
    browser.client.clone().close().await.expect("close");
}

/// Waits until a finished file whose name satisfies `pick` is in `dir`; its path.
async fn downloaded(dir: &std::path::Path, pick: impl Fn(&str) -> bool) -> std::path::PathBuf {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = std::fs::read_dir(dir).ok().and_then(|d| {
            d.flatten().map(|e| e.path()).find(|p| {
                let n = p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
                !n.ends_with(".crdownload") && pick(&n)
            })
        });
        if let Some(p) = found {
            return p;
        }
        assert!(Instant::now() < deadline, "the download did not arrive");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recipient_downloads_a_whole_collection_as_a_zip_and_one_file_from_its_grid() {
    let app = TestApp::spawn_with(share_app()).await;
    let (token, _) = app.register("owner@example.com", "Olive").await;
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("sunset.png", fixtures::png(64, 48)),
        ("notes.txt", b"first notes\n".to_vec()),
        ("more.txt", b"second file, other bytes\n".repeat(50)),
    ];
    let mut ids = Vec::new();
    for (name, bytes) in &files {
        ids.push(app.upload(&token, name, bytes.clone()).await["id"].as_i64().expect("id"));
    }
    let c: Value = app
        .post_json("/api/v3/collections/", Some(&token), &json!({"title": "Trip"}))
        .await
        .json()
        .await
        .expect("json");
    let cid = c["id"].as_i64().expect("id");
    let r = app.post_json(&format!("/api/v3/collections/{cid}/items/"), Some(&token), &json!({"asset_ids": ids})).await;
    assert!(r.status().is_success());
    let share: Value = app
        .post_json(&format!("/api/v3/collections/{cid}/share/"), Some(&token), &json!({}))
        .await
        .json()
        .await
        .expect("json");
    let downloads = tempfile::tempdir().expect("dir");
    let Some(browser) = Browser::start_with_downloads(Some(downloads.path())).await else { return };
    let b = &browser.client;
    b.goto(share["share_url"].as_str().expect("url")).await.expect("goto");
    let grid = b.find(Locator::Id("file-grid")).await.expect("grid").text().await.expect("text");
    for (name, _) in &files {
        assert!(grid.contains(name), "{name} in {grid}");
    }
    for id in &ids {
        b.find(Locator::Id(&format!("file-{id}"))).await.expect("card");
    }
    b.find(Locator::Id("download-all")).await.expect("download all").click().await.expect("click");
    let zip_path = downloaded(downloads.path(), |n| n.ends_with(".zip")).await;
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&zip_path).expect("open")).expect("a zip");
    assert_eq!(zip.len(), files.len());
    for (name, bytes) in &files {
        let mut entry = zip.by_name(name).unwrap_or_else(|_| panic!("{name} in the zip"));
        let mut got = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut got).expect("read");
        assert_eq!(&got, bytes, "{name} byte-identical");
    }
    b.find(Locator::Id(&format!("download-{}", ids[1]))).await.expect("per-file").click().await.expect("click");
    let one = downloaded(downloads.path(), |n| n == "notes.txt").await;
    assert_eq!(std::fs::read(one).expect("saved"), files[1].1);
    browser.client.clone().close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploader_drops_a_file_on_a_file_request_page_and_it_reaches_the_owner() {
    let app = TestApp::spawn_with(share_app()).await;
    let (token, _) = app.register("owner@example.com", "Olive").await;
    let r = app
        .post_json("/api/v3/file-requests/", Some(&token), &json!({"title": "Send me", "require_uploader_name": true}))
        .await;
    assert!(r.status().is_success(), "{:?}", r.status());
    let req: Value = r.json().await.expect("json");
    let Some(browser) = Browser::start().await else { return };
    let b = &browser.client;
    b.goto(req["upload_url"].as_str().expect("url")).await.expect("goto");
    b.find(Locator::Id("uploader-name")).await.expect("name").send_keys("Bo Dropper").await.expect("type");
    let drop = "var dt = new DataTransfer();
        dt.items.add(new File(['dropped bytes\\n'], 'dropped.txt', {type: 'text/plain'}));
        var z = document.getElementById('drop-zone');
        ['dragenter', 'dragover', 'drop'].forEach(function (t) {
            z.dispatchEvent(new DragEvent(t, {bubbles: true, cancelable: true, dataTransfer: dt}));
        });
        return document.getElementById('upload-list').children.length;";
    assert_eq!(b.execute(drop, vec![]).await.expect("js").as_u64(), Some(1), "one row for the dropped file");
    b.find(Locator::Id("upload-submit")).await.expect("send").click().await.expect("click");
    b.wait().for_element(Locator::Css("#upload-list li.done")).await.expect("the file is received");
    let row = b.find(Locator::Css("#upload-list li.done")).await.expect("row").text().await.expect("text");
    assert!(row.contains("dropped.txt") && row.contains("received"), "{row}");
    let value = b.execute("return document.querySelector('#upload-list li.done progress').value;", vec![]).await;
    assert_eq!(value.expect("js").as_u64(), Some(100));
    let assets: Value = app.get("/api/v3/assets/", Some(&token)).await.json().await.expect("json");
    let got = assets["results"].as_array().expect("results").iter().find(|a| a["name"] == "dropped.txt").cloned();
    let got = got.unwrap_or_else(|| panic!("the dropped file is the owner's asset: {assets}"));
    assert_eq!(got["source"]["uploader_name"], "Bo Dropper");
    browser.client.clone().close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_request_page_sends_a_file_as_a_plain_form_without_its_script() {
    let app = TestApp::spawn_with(share_app()).await;
    let (token, _) = app.register("owner@example.com", "Olive").await;
    let r = app
        .post_json("/api/v3/file-requests/", Some(&token), &json!({"title": "Send me", "require_uploader_name": true}))
        .await;
    let req: Value = r.json().await.expect("json");
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("plain.txt");
    std::fs::write(&path, b"sent by a plain form\n").expect("write");
    let Some(browser) = Browser::start().await else { return };
    let b = &browser.client;
    b.goto(req["upload_url"].as_str().expect("url")).await.expect("goto");
    // A copy of the form has none of the script's listeners: the browser posts it as it is.
    b.execute("var f = document.getElementById('upload-form'); f.replaceWith(f.cloneNode(true));", vec![])
        .await
        .expect("js");
    b.find(Locator::Id("uploader-name")).await.expect("name").send_keys("Pat Plain").await.expect("type");
    let input = b.find(Locator::Id("file-input")).await.expect("input");
    input.send_keys(path.to_str().expect("path")).await.expect("choose");
    b.find(Locator::Id("upload-submit")).await.expect("send").click().await.expect("click");
    let text = b.wait().for_element(Locator::Id("upload-result")).await.expect("thanks").text().await.expect("text");
    assert!(text.contains("plain.txt"), "{text}");
    let assets: Value = app.get("/api/v3/assets/", Some(&token)).await.json().await.expect("json");
    let got = assets["results"].as_array().expect("results").iter().find(|a| a["name"] == "plain.txt").cloned();
    let got = got.unwrap_or_else(|| panic!("the file is the owner's asset: {assets}"));
    assert_eq!(got["source"]["uploader_name"], "Pat Plain");
    browser.client.clone().close().await.expect("close");
}
