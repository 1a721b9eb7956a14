//! The page shell (issue 22): one frame with the navigation of each role on every page, the
//! favicon, human dates that stay current, accessibility (axe-core in Chromium, no serious or
//! critical violation on any page) and a keyboard-only walk from sign-in to a copied link.

use std::time::Duration;

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::{Client, Locator};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::browser::{Browser, sign_in, wait_for};
use crate::helpers::pages::PageSession;
use crate::helpers::{Spawn, TestApp, created, fixtures};

fn roomy() -> Spawn {
    Spawn {
        tweak: Box::new(|c| {
            c.share_access_rate_per_ip_per_minute = 10_000;
            c.webhook_allowed_hosts = vec!["127.0.0.1".into()];
        }),
        ..Default::default()
    }
}

/// Everything a page can show: an admin, a curator, an agent and a plain user, each with a file,
/// a link, a collection, a file request and a webhook of the admin.
struct World {
    app: TestApp,
    share_uuid: String,
    asset_id: i64,
    collection_id: i64,
    request_uuid: String,
    webhook_id: i64,
    gone_uuid: String,
}

async fn world() -> World {
    let app = TestApp::spawn_with(roomy()).await;
    let (admin, _) = app.register("admin@example.com", "Ada Admin").await;
    let (_, curator_id) = app.register("curator@example.com", "Cora Curator").await;
    let (_, agent_id) = app.register("agent@example.com", "Abe Agent").await;
    app.register("user@example.com", "Uma User").await;
    let r =
        app.patch_json(&format!("/api/admin/users/{curator_id}/"), Some(&admin), &json!({"role": "dashboard"})).await;
    assert_eq!(r.status(), StatusCode::OK, "curator");
    let company = created(app.post_json("/api/companies/", Some(&admin), &json!({"name": "Acme"})).await).await;
    let path = format!("/api/companies/{}/agents/", company["company_id"].as_str().expect("company id"));
    let r = app.post_json(&path, Some(&admin), &json!({"user_id": agent_id})).await;
    assert!(r.status().is_success(), "agent: {}", r.status());
    let asset = app.upload(&admin, "sunset.png", fixtures::png(64, 48)).await;
    let asset_id = asset["id"].as_i64().expect("id");
    let share = created(
        app.post_json(
            &format!("/api/v3/assets/{asset_id}/share/"),
            Some(&admin),
            &json!({"share_type": "public", "allow_comments": true, "expires_in_hours": 48}),
        )
        .await,
    )
    .await;
    let gone =
        created(app.post_json(&format!("/api/v3/assets/{asset_id}/share/"), Some(&admin), &json!({})).await).await;
    let gone_uuid = gone["uuid"].as_str().expect("uuid").to_string();
    assert!(app.delete(&format!("/api/v3/shares/{gone_uuid}/"), Some(&admin)).await.status().is_success());
    let collection = created(app.post_json("/api/v3/collections/", Some(&admin), &json!({"title": "Set"})).await).await;
    let request =
        created(app.post_json("/api/v3/file-requests/", Some(&admin), &json!({"title": "Send files"})).await).await;
    let webhook = created(
        app.post_json(
            "/api/webhooks/",
            Some(&admin),
            &json!({"url": "http://127.0.0.1:9/hook", "events": ["share.created"]}),
        )
        .await,
    )
    .await;
    World {
        share_uuid: share["uuid"].as_str().expect("uuid").to_string(),
        asset_id,
        collection_id: collection["id"].as_i64().expect("id"),
        request_uuid: request["uuid"].as_str().expect("uuid").to_string(),
        webhook_id: webhook["id"].as_i64().expect("id"),
        gone_uuid,
        app,
    }
}

impl World {
    /// The pages anyone may open, with the status each answers.
    fn public_pages(&self) -> Vec<(String, StatusCode)> {
        vec![
            ("/login".into(), StatusCode::OK),
            ("/gallery/".into(), StatusCode::OK),
            (format!("/share/{}/", self.share_uuid), StatusCode::OK),
            (format!("/share/{}/", self.gone_uuid), StatusCode::GONE),
            (format!("/upload/{}/", self.request_uuid), StatusCode::OK),
            ("/no/such/page".into(), StatusCode::NOT_FOUND),
        ]
    }

    /// The pages of a signed-in owner (the admin owns everything here).
    fn owner_pages(&self) -> Vec<(String, StatusCode)> {
        vec![
            ("/".into(), StatusCode::OK),
            ("/shares".into(), StatusCode::OK),
            (format!("/assets/{}", self.asset_id), StatusCode::OK),
            ("/collections".into(), StatusCode::OK),
            (format!("/collections/{}", self.collection_id), StatusCode::OK),
            ("/file-requests".into(), StatusCode::OK),
            (format!("/file-requests/{}", self.request_uuid), StatusCode::OK),
            ("/settings/tokens".into(), StatusCode::OK),
            ("/webhooks".into(), StatusCode::OK),
            (format!("/webhooks/{}", self.webhook_id), StatusCode::OK),
            (format!("/dashboard/analytics/{}/", self.share_uuid), StatusCode::OK),
            ("/dashboard/gallery/".into(), StatusCode::OK),
            ("/admin/policies".into(), StatusCode::OK),
            ("/admin/audit".into(), StatusCode::OK),
            ("/gallery/".into(), StatusCode::OK),
            (format!("/share/{}/", self.share_uuid), StatusCode::OK),
            (format!("/share/{}/", self.gone_uuid), StatusCode::GONE),
            (format!("/upload/{}/", self.request_uuid), StatusCode::OK),
            ("/no/such/page".into(), StatusCode::NOT_FOUND),
        ]
    }
}

/// The frame every page shares, whoever looks.
fn assert_frame(path: &str, html: &str) {
    for part in [
        "<html lang=\"en\">",
        "<a class=\"skip\" href=\"#content\">Skip to content</a>",
        "<header class=\"top\" id=\"shell\">",
        "<nav class=\"shell-nav\" aria-label=\"Main\">",
        "<main id=\"content\"",
        "<footer class=\"foot\" id=\"footer\">",
        "href=\"/favicon.svg\"",
        "href=\"/apple-touch-icon.png\"",
        "/static/js/shell.js",
    ] {
        assert!(html.contains(part), "{path} lacks {part}");
    }
    let skip = html.find("class=\"skip\"").expect("skip link");
    for focusable in ["<a ", "<button", "<input", "<select", "<textarea"] {
        if let Some(first) = html.find(focusable) {
            assert!(first >= skip - 3, "{path}: {focusable} comes before the skip link");
        }
    }
}

/// The navigation a signed-in person with `name` sees: the common links, and those of the role.
fn assert_nav(path: &str, html: &str, name: &str, role: &str, staff: bool, agent: bool, admin: bool) {
    assert_frame(path, html);
    assert!(html.contains(&format!("Signed in as <strong>{name}</strong>")), "{path}: {name}");
    assert!(html.contains(&format!("({role})")), "{path}: role {role}");
    assert!(html.contains("id=\"logout\""), "{path}: Sign out");
    assert!(!html.contains("id=\"nav-sign-in\""), "{path}: no Sign in");
    for (id, href) in [
        ("nav-files", "/"),
        ("nav-links", "/shares"),
        ("collections-link", "/collections"),
        ("nav-file-requests", "/file-requests"),
        ("nav-gallery", "/gallery/"),
    ] {
        assert!(html.contains(&format!("<a href=\"{href}\" id=\"{id}\"")), "{path}: {id}");
    }
    assert_eq!(html.contains("id=\"curate\""), staff, "{path}: Curate for {role}");
    assert_eq!(html.contains("id=\"nav-agent\""), agent, "{path}: Agent for {name}");
    assert_eq!(html.contains("id=\"nav-admin\""), admin, "{path}: Admin for {role}");
    // The Sign out form carries the token of the browser's CSRF cookie.
    let form = &html[html.find("action=\"/logout\"").expect("sign-out form")..];
    assert!(form.contains("name=\"csrf_token\" value=\""), "{path}");
}

async fn page(who: &PageSession, path: &str, status: StatusCode) -> String {
    let r = who.req(reqwest::Method::GET, path).header("accept", "text/html").send().await.expect("get");
    assert_eq!(r.status(), status, "{path}");
    assert!(
        r.headers().get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/html")),
        "{path} is a page"
    );
    r.text().await.expect("html")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_wears_the_shell_with_the_links_of_its_role() {
    let w = world().await;
    let app = &w.app;
    // Signed out: the frame and "Sign in", never a Sign out form.
    for (path, status) in w.public_pages() {
        let r = app.client.get(app.url(&path)).header("accept", "text/html").send().await.expect("get");
        assert_eq!(r.status(), status, "{path}");
        let html = r.text().await.expect("html");
        assert_frame(&path, &html);
        assert!(html.contains("<a href=\"/login") && html.contains("id=\"nav-sign-in\""), "{path}: Sign in");
        assert!(!html.contains("id=\"logout\"") && !html.contains("Signed in as"), "{path}");
    }
    let admin = app.page_session("admin@example.com").await;
    for (path, status) in w.owner_pages() {
        let html = page(&admin, &path, status).await;
        assert_nav(&path, &html, "Ada Admin", "admin", true, false, true);
    }
    // The navigation marks where you are.
    let html = page(&admin, "/shares", StatusCode::OK).await;
    assert!(html.contains("<a href=\"/shares\" id=\"nav-links\" aria-current=\"page\">"), "Links is current");
    assert!(html.contains("<a href=\"/\" id=\"nav-files\">"), "Files is not");
    let curator = app.page_session("curator@example.com").await;
    for path in ["/", "/dashboard/gallery/", "/gallery/", "/shares", "/collections", "/file-requests"] {
        let html = page(&curator, path, StatusCode::OK).await;
        assert_nav(path, &html, "Cora Curator", "dashboard", true, false, false);
    }
    let html = page(&curator, "/admin/audit", StatusCode::FORBIDDEN).await;
    assert_nav("/admin/audit (refused)", &html, "Cora Curator", "dashboard", true, false, false);
    let agent = app.page_session("agent@example.com").await;
    for path in ["/", "/agent/", "/gallery/", "/settings/tokens", "/webhooks"] {
        let html = page(&agent, path, StatusCode::OK).await;
        assert_nav(path, &html, "Abe Agent", "user", false, true, false);
    }
    let user = app.page_session("user@example.com").await;
    for path in ["/", "/shares", "/collections", "/file-requests", "/gallery/", "/settings/tokens", "/webhooks"] {
        let html = page(&user, path, StatusCode::OK).await;
        assert_nav(path, &html, "Uma User", "user", false, false, false);
    }
    // Another's share page, an error page and a refused page still know who is looking.
    for (path, status) in [
        (format!("/share/{}/", w.share_uuid), StatusCode::OK),
        (format!("/share/{}/", w.gone_uuid), StatusCode::GONE),
        (format!("/assets/{}", w.asset_id), StatusCode::NOT_FOUND),
        ("/no/such/page".to_string(), StatusCode::NOT_FOUND),
        ("/admin/policies".to_string(), StatusCode::FORBIDDEN),
    ] {
        let html = page(&user, &path, status).await;
        assert_nav(&path, &html, "Uma User", "user", false, false, false);
    }
    // The embed page (inside other sites' iframes) and the chat widget keep no shell.
    let r = app.get(&format!("/embed/{}/", w.share_uuid), None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.expect("html");
    assert!(!html.contains("id=\"shell\"") && !html.contains("Skip to content"), "embed has no shell");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_gets_its_csrf_cookie_once_and_the_pages_share_it() {
    let app = TestApp::spawn().await;
    app.register("ada@example.com", "Ada").await;
    // The first page sets the cookie and its forms carry the cookie's token.
    let (visitor, status, _) = app.visit("/login").await;
    assert_eq!(status, StatusCode::OK);
    let cookie_token = visitor.cookies.split("vitrine_csrf=").nth(1).expect("cookie").to_string();
    assert_eq!(visitor.csrf, cookie_token);
    // With the cookie, no new one is set.
    for path in ["/login", "/gallery/"] {
        let r = visitor.get(path).await;
        assert!(crate::helpers::pages::set_cookie(&r, "vitrine_csrf").is_none(), "{path} keeps the cookie");
    }
    // A malformed cookie is replaced, and the page's forms carry the new token.
    let broken = PageSession::new(&app, "vitrine_csrf=short", "");
    let r = broken.get("/login").await;
    let set = crate::helpers::pages::set_cookie(&r, "vitrine_csrf").expect("a new cookie");
    let fresh = crate::helpers::pages::cookie_pair(&set).trim_start_matches("vitrine_csrf=").to_string();
    assert_eq!(fresh.len(), 64);
    assert_eq!(crate::helpers::pages::csrf_of(&r.text().await.expect("html")), fresh);
    // Files and the API never get one.
    for path in ["/static/css/vitrine.css", "/favicon.ico", "/api/openapi.json", "/healthz"] {
        let r = app.get(path, None).await;
        assert!(crate::helpers::pages::set_cookie(&r, "vitrine_csrf").is_none(), "{path}");
    }
    // A public page cached by shared caches never carries a browser's cookie.
    let r = app.get("/gallery/", None).await;
    assert!(crate::helpers::pages::set_cookie(&r, "vitrine_csrf").is_some());
    let cache = r.headers().get("cache-control").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert!(!cache.contains("public"), "{cache}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_favicon_is_served_by_the_binary_in_three_forms() {
    let app = TestApp::spawn().await;
    for (path, mime, magic) in [
        ("/favicon.ico", "image/x-icon", &b"\x00\x00\x01\x00"[..]),
        ("/favicon.svg", "image/svg+xml", &b"<svg"[..]),
        ("/apple-touch-icon.png", "image/png", &b"\x89PNG"[..]),
        ("/static/img/favicon-32.png", "image/png", &b"\x89PNG"[..]),
        ("/favicon.ico/", "image/x-icon", &b"\x00\x00\x01\x00"[..]),
    ] {
        let r = app.get(path, None).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(r.headers().get("content-type").and_then(|v| v.to_str().ok()), Some(mime), "{path}");
        let body = r.bytes().await.expect("body");
        assert!(body.starts_with(magic), "{path}");
    }
    let r = app.get("/static/img/nothing.png", None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = app.req(reqwest::Method::POST, "/favicon.ico", None).send().await.expect("post");
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dates_read_as_words_with_a_label_that_the_server_and_the_script_keep_current() {
    let app = TestApp::spawn().await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    app.upload(&token, "notes.txt", b"hello\n".to_vec()).await;
    let ada = app.page_session("ada@example.com").await;
    let html = page(&ada, "/", StatusCode::OK).await;
    assert!(html.contains("<time datetime=\""), "a machine-readable date");
    assert!(html.contains("UTC <span class=\"rel\">(just now)</span></time>"), "{html}");
    assert!(!html.contains("Z</time>"), "no raw RFC 3339 text");
    // Without JavaScript the label is the server's, from its clock.
    app.advance(Duration::from_secs(10 * 60));
    let html = page(&ada, "/", StatusCode::OK).await;
    assert!(html.contains("<span class=\"rel\">(10 minutes ago)</span>"), "recomputed by the server");
    // In the browser the script recomputes it as time passes.
    let Some(browser) = Browser::start().await else { return };
    let c = &browser.client;
    sign_in(c, &app, "ada@example.com").await;
    wait_for(c, "return !!document.querySelector('time[datetime] .rel');").await;
    wait_for(c, "return document.querySelector('time[datetime]').hasAttribute('data-local');").await;
    let label = |c: &Client| {
        let c = c.clone();
        async move {
            c.execute("return document.querySelector('time[datetime] .rel').textContent;", vec![])
                .await
                .expect("js")
                .as_str()
                .unwrap_or_default()
                .to_string()
        }
    };
    assert_eq!(label(c).await, "(just now)", "the browser's own clock");
    // The page scripts' one date helper makes the element the server printed, word for word.
    let same = c
        .execute(
            "var s = document.querySelector('time[datetime]');
             var t = window.vitrineDates.time(s.getAttribute('datetime'));
             var u = window.vitrineDates.time(Date.parse(s.getAttribute('datetime')), document.createElement('time'));
             return [t.tagName, t.getAttribute('datetime') === s.getAttribute('datetime'), t.title === s.title,
                     t.textContent === s.textContent, t.querySelector('.rel').textContent, u.outerHTML === t.outerHTML];",
            vec![],
        )
        .await
        .expect("js");
    assert_eq!(same, json!(["TIME", true, true, true, "(just now)", true]));
    let words = c
        .execute(
            "var t = window.vitrineDates.time('2026-12-04T13:09:23.456Z', null, Date.parse('2026-12-04T13:12:30Z'));
             var bad = window.vitrineDates.time('not a date');
             return [t.getAttribute('datetime'), t.title, t.querySelector('.rel').textContent,
                     bad.textContent, bad.hasAttribute('datetime'), window.vitrineDates.day('2026-01-05')];",
            vec![],
        )
        .await
        .expect("js");
    assert_eq!(
        words,
        json!(["2026-12-04T13:09:23Z", "4 Dec 2026, 13:09 UTC", "(3 minutes ago)", "not a date", false, "5 Jan"])
    );
    c.execute(
        "var t = Date.parse(document.querySelector('time[datetime]').getAttribute('datetime'));
         window.vitrineDates.refresh(t + 2 * 86400000 + 60000);",
        vec![],
    )
    .await
    .expect("js");
    assert_eq!(label(c).await, "(2 days ago)");
    c.execute(
        "var t = Date.parse(document.querySelector('time[datetime]').getAttribute('datetime'));
         window.vitrineDates.refresh(t - 5 * 60000);",
        vec![],
    )
    .await
    .expect("js");
    assert_eq!(label(c).await, "(in 5 minutes)");
    browser.client.clone().close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_in_viewer_signs_out_from_a_share_page() {
    let app = TestApp::spawn_with(roomy()).await;
    let (owner, _) = app.register("owner@example.com", "Olive").await;
    app.register("viewer@example.com", "Vic Viewer").await;
    let asset = app.upload(&owner, "sunset.png", fixtures::png(64, 48)).await;
    let share = created(
        app.post_json(
            &format!("/api/v3/assets/{}/share/", asset["id"]),
            Some(&owner),
            &json!({"share_type": "public"}),
        )
        .await,
    )
    .await;
    let Some(browser) = Browser::start().await else { return };
    let c = &browser.client;
    sign_in(c, &app, "viewer@example.com").await;
    c.goto(share["share_url"].as_str().expect("url")).await.expect("goto");
    let who = c.wait().for_element(Locator::Id("signed-in-as")).await.expect("shell").text().await.expect("text");
    assert!(who.contains("Vic Viewer"), "{who}");
    c.find(Locator::Id("logout")).await.expect("sign out").click().await.expect("click");
    c.wait().for_element(Locator::Id("login-submit")).await.expect("signed out, on the login form");
    c.goto(share["share_url"].as_str().expect("url")).await.expect("goto");
    let sign_in_link = c.wait().for_element(Locator::Id("nav-sign-in")).await.expect("signed out on the share page");
    assert!(c.find(Locator::Id("logout")).await.is_err());
    // "Sign in" comes back to the page it was pressed on.
    sign_in_link.click().await.expect("click");
    c.wait()
        .for_element(Locator::Id("email"))
        .await
        .expect("the form")
        .send_keys("viewer@example.com")
        .await
        .expect("type");
    c.find(Locator::Id("password")).await.expect("password").send_keys("correct horse").await.expect("type");
    c.find(Locator::Id("login-submit")).await.expect("submit").click().await.expect("click");
    c.wait().for_element(Locator::Id("signed-in-as")).await.expect("signed in again");
    c.wait().for_element(Locator::Id("share-title")).await.expect("back on the share page");
    browser.client.clone().close().await.expect("close");
}

const AXE: &str = include_str!("../vendor/axe-core/axe.min.js");

/// Runs axe-core on the page open in `c`: the serious and critical violations, described.
async fn axe_violations(c: &Client) -> Vec<String> {
    let loaded = c.execute("return typeof window.axe === 'object';", vec![]).await.expect("js");
    if loaded.as_bool() != Some(true) {
        c.execute(&format!("{AXE}\n;window.axe = axe; return true;"), vec![]).await.expect("axe loads");
    }
    let result = c
        .execute_async(
            "var done = arguments[arguments.length - 1];
             axe.run(document, {resultTypes: ['violations']}).then(function (r) {
               done(r.violations.filter(function (v) { return v.impact === 'serious' || v.impact === 'critical'; })
                 .map(function (v) {
                   return v.impact + ' ' + v.id + ': ' + v.help + ' @ ' +
                     v.nodes.slice(0, 3).map(function (n) { return n.target.join(' '); }).join(' | ');
                 }));
             }, function (e) { done(['axe failed: ' + e]); });",
            vec![],
        )
        .await
        .expect("axe runs");
    result.as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

async fn check_pages(c: &Client, app: &TestApp, paths: &[String], who: &str, found: &mut Vec<String>) {
    for path in paths {
        c.goto(&app.url(path)).await.expect("goto");
        c.wait().for_element(Locator::Css("main#content")).await.expect("the page's main");
        for v in axe_violations(c).await {
            found.push(format!("{who} {path}: {v}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_page_has_a_serious_or_critical_accessibility_violation() {
    let w = world().await;
    let app = &w.app;
    let Some(browser) = Browser::start().await else { return };
    let c = &browser.client;
    let mut found = Vec::new();
    let public: Vec<String> = w.public_pages().into_iter().map(|(p, _)| p).collect();
    check_pages(c, app, &public, "signed out", &mut found).await;
    sign_in(c, app, "admin@example.com").await;
    let owner: Vec<String> = w.owner_pages().into_iter().map(|(p, _)| p).collect();
    check_pages(c, app, &owner, "admin", &mut found).await;
    c.find(Locator::Id("logout")).await.expect("sign out").click().await.expect("click");
    c.wait().for_element(Locator::Id("login-submit")).await.expect("signed out");
    sign_in(c, app, "agent@example.com").await;
    check_pages(c, app, &["/agent/".to_string()], "agent", &mut found).await;
    assert!(found.is_empty(), "accessibility violations:\n{}", found.join("\n"));
    browser.client.clone().close().await.expect("close");
}

/// Presses one key (down and up) on whatever has the focus.
async fn press(c: &Client, key: Key) {
    let k: char = key.into();
    let actions =
        KeyActions::new("keyboard".to_string()).then(KeyAction::Down { value: k }).then(KeyAction::Up { value: k });
    c.perform_actions(actions).await.expect("key");
}

/// Presses `key` with Shift held.
async fn press_with_shift(c: &Client, key: Key) {
    let k: char = key.into();
    let shift: char = Key::Shift.into();
    let actions = KeyActions::new("keyboard".to_string())
        .then(KeyAction::Down { value: shift })
        .then(KeyAction::Down { value: k })
        .then(KeyAction::Up { value: k })
        .then(KeyAction::Up { value: shift });
    c.perform_actions(actions).await.expect("keys");
}

/// Types `text` key by key into whatever has the focus.
async fn type_keys(c: &Client, text: &str) {
    let mut actions = KeyActions::new("keyboard".to_string());
    for ch in text.chars() {
        actions = actions.then(KeyAction::Down { value: ch }).then(KeyAction::Up { value: ch });
    }
    c.perform_actions(actions).await.expect("keys");
}

/// Presses Tab until the focused element matches the CSS `selector` (at most 60 times).
async fn tab_to(c: &Client, selector: &str) {
    let check = format!("return !!document.activeElement && document.activeElement.matches({selector:?});");
    for _ in 0..60 {
        if c.execute(&check, vec![]).await.expect("js").as_bool() == Some(true) {
            return;
        }
        press(c, Key::Tab).await;
    }
    let at = c.execute("return document.activeElement && document.activeElement.outerHTML;", vec![]).await;
    panic!("Tab never reached {selector}; focus on {at:?}");
}

async fn focused_matches(c: &Client, selector: &str) -> bool {
    let check = format!("return !!document.activeElement && document.activeElement.matches({selector:?});");
    c.execute(&check, vec![]).await.expect("js").as_bool() == Some(true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyboard_alone_signs_in_uploads_shares_and_copies_the_link() {
    let app = TestApp::spawn().await;
    app.register("ada@example.com", "Ada Lovelace").await;
    let Some(browser) = Browser::start().await else { return };
    let c = &browser.client;
    c.goto(&app.url("/login")).await.expect("goto");
    c.wait().for_element(Locator::Id("email")).await.expect("form");
    // The sign-in form puts the focus in its first field; Shift+Tab goes back through the page.
    wait_for(c, "return document.activeElement && document.activeElement.id === 'email';").await;
    press_with_shift(c, Key::Tab).await;
    assert!(!focused_matches(c, "#email").await, "Shift+Tab leaves the field");
    tab_to(c, "#email").await;
    type_keys(c, "ada@example.com").await;
    tab_to(c, "#password").await;
    type_keys(c, "correct horse").await;
    press(c, Key::Enter).await;
    c.wait().for_element(Locator::Id("upload-form")).await.expect("signed in, on Your files");
    // The skip link is the first stop, and it leads to the content.
    press(c, Key::Tab).await;
    assert!(focused_matches(c, "a.skip").await, "the skip link comes first");
    press(c, Key::Enter).await;
    wait_for(c, "return location.hash === '#content';").await;
    press(c, Key::Tab).await;
    assert!(focused_matches(c, "#upload-file").await, "after the skip link: the page's first field");
    // The file itself comes from the browser's file chooser, which WebDriver fills in.
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("keyboard.png");
    std::fs::write(&file, fixtures::png(40, 30)).expect("write");
    tab_to(c, "#upload-file").await;
    c.find(Locator::Id("upload-file"))
        .await
        .expect("input")
        .send_keys(&file.display().to_string())
        .await
        .expect("file");
    tab_to(c, "#upload-title").await;
    type_keys(c, "Typed title").await;
    tab_to(c, "#upload-submit").await;
    press(c, Key::Enter).await;
    c.wait().for_element(Locator::Id("share-form")).await.expect("the file's page");
    let h1 = c.find(Locator::Css("main h1")).await.expect("title").text().await.expect("text");
    assert_eq!(h1, "Typed title");
    tab_to(c, "#create-link").await;
    press(c, Key::Space).await;
    c.wait().for_element(Locator::Id("created-notice")).await.expect("link created");
    wait_for(c, "return !!document.querySelector('[data-copy]') && !document.querySelector('[data-copy]').hidden;")
        .await;
    tab_to(c, "[data-copy]").await;
    press(c, Key::Space).await;
    wait_for(c, "return document.querySelector('[data-copy]').textContent === 'Copied!';").await;
    let url = c.find(Locator::Css("input.url")).await.expect("url").prop("value").await.expect("value");
    assert!(url.unwrap_or_default().contains("/share/"), "the link is shown");
    browser.client.clone().close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upload_form_refuses_a_missing_token_a_foreign_site_and_bad_files() {
    let app = TestApp::spawn().await;
    let (bearer, _) = app.register("ada@example.com", "Ada").await;
    let ada = app.page_session("ada@example.com").await;
    let form = |token: &str, bytes: Vec<u8>, name: &str| {
        reqwest::multipart::Form::new()
            .text("csrf_token", token.to_string())
            .part("file", reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()))
    };
    // Signed out: to the sign-in page.
    let r = app
        .client
        .post(app.url("/assets"))
        .multipart(form("x", b"hello\n".to_vec(), "a.txt"))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // A wrong token, another site, an executable: refused with a page that says why.
    let r = ada
        .req(reqwest::Method::POST, "/assets")
        .header("accept", "text/html")
        .multipart(form("wrong", b"hello\n".to_vec(), "a.txt"))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.expect("html").contains("id=\"shell\""));
    let r = ada
        .req(reqwest::Method::POST, "/assets")
        .header("origin", "https://evil.example")
        .multipart(form(&ada.csrf, b"hello\n".to_vec(), "a.txt"))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = ada
        .req(reqwest::Method::POST, "/assets")
        .header("accept", "text/html")
        .multipart(form(&ada.csrf, fixtures::elf(), "tool"))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = ada
        .req(reqwest::Method::POST, "/assets")
        .header("accept", "text/html")
        .multipart(reqwest::multipart::Form::new().text("csrf_token", ada.csrf.clone()))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Nothing was stored by any of them; a good one is, and leads to its page.
    let list: Value = app.get("/api/v3/assets/", Some(&bearer)).await.json().await.expect("json");
    assert_eq!(list["count"], 0);
    let r = ada
        .req(reqwest::Method::POST, "/assets")
        .multipart(form(&ada.csrf, b"hello\n".to_vec(), "a.txt").text("title", "Hello"))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let to = r.headers().get("location").and_then(|v| v.to_str().ok()).expect("location").to_string();
    let list: Value = app.get("/api/v3/assets/", Some(&bearer)).await.json().await.expect("json");
    assert_eq!(list["count"], 1);
    assert_eq!(to, format!("/assets/{}", list["results"][0]["id"]));
    assert_eq!(list["results"][0]["title"], "Hello");
}
