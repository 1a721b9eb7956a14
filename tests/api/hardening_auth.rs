//! Issue 18, items 7, 8 and 13: sign-in sessions that end on logout (page cookie and API tokens),
//! the cookie rule of SPEC §0 on the API, CSRF on the share comment form, and a `/metrics` page
//! that is bounded and shows tenants only to the scraper with the metrics token.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::pages::PageSession;
use crate::helpers::{Db, Spawn, TestApp, Ws, assert_error, fixtures};

/// The value of the `vitrine_session` cookie of a page session.
fn session_value(session: &PageSession) -> String {
    session
        .cookies
        .split(';')
        .map(str::trim)
        .find_map(|c| c.strip_prefix("vitrine_session="))
        .expect("session cookie")
        .to_string()
}

/// The origin of the test app (what a same-origin browser sends as `Origin`).
fn origin(app: &TestApp) -> String {
    app.base.clone()
}

/// Opens the notification socket with the page cookie from this origin: the HTTP status of the
/// handshake (101 when it opened).
async fn cookie_socket_status(app: &TestApp, cookies: &str) -> u16 {
    Ws::handshake_status(app, "/ws/notifications/", &[("Origin", origin(app).as_str()), ("Cookie", cookies)]).await
}

async fn logout_page(session: &PageSession) {
    let r = session.post_form("/logout", &[]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

async fn api_login(app: &TestApp, email: &str) -> String {
    let r = app.post_json("/api/auth/login/", None, &json!({"email": email, "password": "correct horse"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.expect("json");
    v["access_token"].as_str().expect("token").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_ends_the_page_session_on_pages_and_on_the_api() {
    let app = TestApp::spawn().await;
    app.register("ada@example.com", "Ada").await;
    let ada = app.page_session("ada@example.com").await;
    let shares = ada.get("/shares").await;
    assert_eq!(shares.status(), StatusCode::OK);
    let me = ada.get("/api/auth/me/").await;
    assert_eq!(me.status(), StatusCode::OK, "the cookie authenticates same-origin API reads");

    assert_eq!(cookie_socket_status(&app, &ada.cookies).await, 101, "a same-origin page's socket rides the cookie");

    logout_page(&ada).await;

    // The same cookie value, replayed: signed out on pages, refused on the API and the sockets.
    assert_eq!(cookie_socket_status(&app, &ada.cookies).await, 401);
    let shares = ada.get("/shares").await;
    assert!(shares.status().is_redirection(), "{}", shares.status());
    let to = shares.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(to.starts_with("/login"), "{to}");
    let home = ada.get("/").await;
    assert!(!home.text().await.expect("html").contains("Signed in as"));
    let me = ada.get("/api/auth/me/").await;
    assert_error(me, StatusCode::UNAUTHORIZED, "not_authenticated").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_cookie_is_not_a_bearer_token() {
    let app = TestApp::spawn().await;
    app.register("ada@example.com", "Ada").await;
    let value = session_value(&app.page_session("ada@example.com").await);
    assert_error(app.get("/api/auth/me/", Some(&value)).await, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    assert_eq!(Ws::try_connect(&app, &format!("/ws/notifications/?token={value}")).await.err(), Some(401));
    // Tokens made before sessions existed (no `sid`) cannot be revoked: they are refused.
    let old = app.state.auth.issue("1", vitrine::auth::ACCESS, 3600).expect("token");
    assert_error(app.get("/api/auth/me/", Some(&old)).await, StatusCode::UNAUTHORIZED, "not_authenticated").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cookie_writes_to_the_api_only_from_this_origin_with_the_csrf_header() {
    let app = TestApp::spawn().await;
    app.register("ada@example.com", "Ada Admin").await;
    let ada = app.page_session("ada@example.com").await;
    let company = |name: &str| json!({"name": name});

    let r = ada.req(Method::POST, "/api/companies/").json(&company("A")).send().await;
    assert_error(r.expect("post"), StatusCode::FORBIDDEN, "csrf_failed").await;
    let r = ada
        .req(Method::POST, "/api/companies/")
        .header("x-csrf-token", "not-the-token")
        .json(&company("B"))
        .send()
        .await;
    assert_error(r.expect("post"), StatusCode::FORBIDDEN, "csrf_failed").await;
    let r = ada
        .req_with_csrf(Method::POST, "/api/companies/")
        .header("origin", "https://evil.example")
        .json(&company("C"))
        .send()
        .await;
    assert_error(r.expect("post"), StatusCode::FORBIDDEN, "csrf_failed").await;
    let r = ada
        .req_with_csrf(Method::POST, "/api/companies/")
        .header("origin", origin(&app))
        .json(&company("D"))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::CREATED);

    // Cross-origin reads are not authenticated by the cookie either.
    let r = ada.req(Method::GET, "/api/auth/me/").header("origin", "https://evil.example").send().await;
    assert_error(r.expect("me"), StatusCode::FORBIDDEN, "csrf_failed").await;
    let r = ada.req(Method::GET, "/api/auth/me/").header("origin", origin(&app)).send().await.expect("me");
    assert_eq!(r.status(), StatusCode::OK);
    // Only the companies created with the token exist.
    let list: Value = ada.get("/api/companies/").await.json().await.expect("json");
    let names: Vec<&str> = list["results"]
        .as_array()
        .or(list.as_array())
        .map(|a| a.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, vec!["D"], "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_logout_ends_that_token_only() {
    let app = TestApp::spawn().await;
    let (registered, _) = app.register("ada@example.com", "Ada").await;
    let phone = api_login(&app, "ada@example.com").await;
    let laptop = api_login(&app, "ada@example.com").await;
    let page = app.page_session("ada@example.com").await;

    let r = app.post_json("/api/auth/logout/", Some(&phone), &json!({})).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_error(app.get("/api/auth/me/", Some(&phone)).await, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    assert_error(
        app.post_json("/api/auth/logout/", Some(&phone), &json!({})).await,
        StatusCode::UNAUTHORIZED,
        "not_authenticated",
    )
    .await;
    assert_eq!(Ws::try_connect(&app, &format!("/ws/notifications/?token={phone}")).await.err(), Some(401));

    // The other sessions of the same account go on.
    for token in [&laptop, &registered] {
        assert_eq!(app.get("/api/auth/me/", Some(token)).await.status(), StatusCode::OK);
    }
    let me = page.get("/api/auth/me/").await;
    assert_eq!(me.status(), StatusCode::OK);
    let _socket = Ws::connect(&app, &format!("/ws/notifications/?token={laptop}")).await;

    // Ended sessions are deleted by the retention job.
    let count = |state: vitrine::app::AppState| async move {
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM sessions").fetch_one(state.store.pool()).await.expect("count");
        n
    };
    let before = count(app.state.clone()).await;
    vitrine::jobs::retention::run_once(&app.state).await.expect("retention");
    assert_eq!(count(app.state.clone()).await, before - 1, "the revoked session is gone, the live ones stay");
    assert_eq!(app.get("/api/auth/me/", Some(&laptop)).await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_accounts_sessions_are_refused() {
    let app = TestApp::spawn().await;
    let (admin, _) = app.register("admin@example.com", "Ada Admin").await;
    let (token, id) = app.register("bob@example.com", "Bob").await;
    let bob = app.page_session("bob@example.com").await;
    let r = app.patch_json(&format!("/api/admin/users/{id}/"), Some(&admin), &json!({"is_active": false})).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_error(app.get("/api/auth/me/", Some(&token)).await, StatusCode::FORBIDDEN, "account_disabled").await;
    let me = bob.get("/api/auth/me/").await;
    assert_error(me, StatusCode::FORBIDDEN, "account_disabled").await;
    let shares = bob.get("/shares").await;
    assert!(shares.status().is_redirection(), "a disabled account is signed out of pages");
}

/// An account with a file shared by a public link that allows comments: (owner token, uuid).
async fn commentable_link(app: &TestApp) -> (String, String) {
    let (owner, _) = app.register("owner@example.com", "Olive Owner").await;
    let asset = app.upload(&owner, "photo.png", fixtures::png(8, 8)).await;
    let r = app
        .post_json(
            &format!("/api/v3/assets/{}/share/", asset["id"]),
            Some(&owner),
            &json!({"share_type": "public", "allow_comments": true}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.expect("json");
    (owner, v["uuid"].as_str().expect("uuid").to_string())
}

async fn link_comments(app: &TestApp, uuid: &str) -> Vec<Value> {
    let v: Value = app.get(&format!("/share/{uuid}/comments/"), None).await.json().await.expect("json");
    v["results"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_share_comment_form_needs_the_csrf_token_of_a_signed_in_viewer() {
    let app = TestApp::spawn().await;
    let (_, uuid) = commentable_link(&app).await;
    let olive = app.page_session("owner@example.com").await;
    let path = format!("/share/{uuid}/comments/");

    // The page carries the form's token.
    let html = olive.get(&format!("/share/{uuid}/")).await.text().await.expect("html");
    assert!(html.contains(&format!("name=\"csrf_token\" value=\"{}\"", olive.csrf)), "the comment form has the token");

    let r = olive.post_form_as_is(&path, &[("content", "no token")]).await;
    assert_error(r, StatusCode::FORBIDDEN, "csrf_failed").await;
    let r = olive.post_form_as_is(&path, &[("content", "bad token"), ("csrf_token", &"x".repeat(64))]).await;
    assert_error(r, StatusCode::FORBIDDEN, "csrf_failed").await;
    let r = olive
        .req(Method::POST, &path)
        .header("origin", "https://evil.example")
        .form(&[("content", "from afar"), ("csrf_token", olive.csrf.as_str())])
        .send()
        .await;
    assert_error(r.expect("post"), StatusCode::FORBIDDEN, "csrf_failed").await;
    // JSON riding the cookie needs the header.
    let r = olive.req(Method::POST, &path).json(&json!({"content": "json"})).send().await;
    assert_error(r.expect("post"), StatusCode::FORBIDDEN, "csrf_failed").await;
    assert!(link_comments(&app, &uuid).await.is_empty(), "nothing was stored");

    let ok = olive.post_form(&path, &[("content", "with the token")]).await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    let r = olive
        .req_with_csrf(Method::POST, &path)
        .json(&json!({"content": "json with the header"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::CREATED);
    let stored = link_comments(&app, &uuid).await;
    let authors: Vec<(&str, bool)> = stored
        .iter()
        .map(|c| (c["author"]["name"].as_str().unwrap_or(""), c["author"]["is_guest"].as_bool().unwrap_or(true)))
        .collect();
    assert_eq!(authors, vec![("Olive Owner", false), ("Olive Owner", false)], "{stored:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_still_comment_through_the_page_form() {
    let app = TestApp::spawn().await;
    let (_, uuid) = commentable_link(&app).await;
    // A browser: the page sets the CSRF cookie and puts its token in the form.
    let (guest, _, _) = app.visit(&format!("/share/{uuid}/")).await;
    let r = guest.post_form(&format!("/share/{uuid}/comments/"), &[("content", "Lovely"), ("guest_name", "Gus")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // A client without cookies has nothing to forge: a guest comment as before.
    let r = app
        .client
        .post(app.url(&format!("/share/{uuid}/comments/")))
        .form(&[("content", "Plain"), ("guest_name", "Fay")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let names: Vec<String> =
        link_comments(&app, &uuid).await.iter().map(|c| c["author"]["name"].as_str().unwrap_or("").into()).collect();
    assert_eq!(names, vec!["Fay", "Gus"], "newest thread first");
}

const METRICS_TOKEN: &str = "a-metrics-token-of-at-least-32-characters";

/// A company with one chat file, so that a per-company series exists: its company id.
async fn company_with_a_chat_file(app: &TestApp) -> String {
    let (admin, _) = app.register("admin@example.com", "Ada Admin").await;
    let r = app.post_json("/api/companies/", Some(&admin), &json!({"name": "Acme"})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let c: Value = r.json().await.expect("json");
    let company_id = c["company_id"].as_str().expect("id").to_string();
    let r = app.post_json("/api/chat/sessions/", None, &json!({"widget_key": c["widget_key"]})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let s: Value = r.json().await.expect("json");
    let pdf = fixtures::pdf(2_000);
    let size = pdf.len().to_string();
    let form = reqwest::multipart::Form::new()
        .text("company_id", company_id.clone())
        .text("session_id", s["session_id"].as_str().expect("session").to_string())
        .text("uploader", "user")
        .text("original_name", "brief.pdf")
        .text("mime_type", "application/pdf")
        .text("size", size)
        .part("file", reqwest::multipart::Part::bytes(pdf).file_name("brief.pdf"));
    let r =
        app.req(Method::POST, "/api/chat/upload/", s["token"].as_str()).multipart(form).send().await.expect("upload");
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
    company_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_series_are_shown_only_with_the_metrics_token() {
    let app = TestApp::spawn_with(Spawn {
        tweak: Box::new(|c| c.metrics_token = Some(METRICS_TOKEN.into())),
        ..Default::default()
    })
    .await;
    let company_id = company_with_a_chat_file(&app).await;
    vitrine::jobs::blob_gc::run_once(&app.state).await.expect("gc");

    let anonymous = app.get("/metrics", None).await;
    assert_eq!(anonymous.status(), StatusCode::OK);
    let text = anonymous.text().await.expect("text");
    // (Route templates such as `/api/companies/{company_id}/agents` may appear as labels, from
    // other tests of this process; a company's id as a label value may not.)
    assert!(!text.contains("company_id=\"") && !text.contains(&company_id), "no tenant data for anonymous scrapers");
    assert!(text.contains("vitrine_http_requests_total"), "the other series stay public");

    let full = app.get("/metrics", Some(METRICS_TOKEN)).await.text().await.expect("text");
    assert!(full.contains(&format!("vitrine_chat_stored_bytes{{company_id=\"{company_id}\"}}")), "{full}");

    assert_error(
        app.get("/metrics", Some("not-the-metrics-token")).await,
        StatusCode::UNAUTHORIZED,
        "not_authenticated",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_labels_stay_bounded_whatever_clients_send() {
    let app = TestApp::spawn().await;
    let before = app.get("/metrics", None).await.text().await.expect("text");
    let methods = ["GET", "POST", "DELETE", "PURGE", "ZZFROB"];
    for chunk in (0..5_000).collect::<Vec<u32>>().chunks(100) {
        let sends = chunk.iter().map(|i| {
            let method = if i % 7 == 0 {
                Method::from_bytes(format!("ZZM{i}").as_bytes()).expect("method")
            } else {
                Method::from_bytes(methods[*i as usize % methods.len()].as_bytes()).expect("method")
            };
            let path = format!("/zz-{}/{i}", uuid::Uuid::new_v4().simple());
            app.client.request(method, app.url(&path)).send()
        });
        for r in futures::future::join_all(sends).await {
            r.expect("request");
        }
    }
    let after = app.get("/metrics", None).await.text().await.expect("text");
    assert!(!after.contains("/zz-") && !after.contains("ZZ"), "no client string became a label");
    let unmatched = after.lines().filter(|l| l.contains("route=\"unmatched\"")).count();
    assert!(unmatched <= 400, "{unmatched} unmatched series");
    // Other tests of this binary share the recorder: allow for their series, not for ours.
    assert!(after.len() < before.len() + 200_000, "{} -> {} bytes", before.len(), after.len());
}

crate::on_both_databases!(logout_holds_across_instances);

/// Two instances on one database with shared secrets: a logout on one is seen by the other.
async fn logout_holds_across_instances(db: Db) {
    const SECRET: &str = "a-shared-signing-secret-of-32-characters-or-more";
    let shared = |c: &mut vitrine::config::Config| {
        c.jwt_secret = Some(SECRET.into());
        c.hmac_secret = Some(SECRET.into());
    };
    let one = TestApp::spawn_with(Spawn { db: db.clone(), tweak: Box::new(shared), ..Default::default() }).await;
    let url = one.state.config.database_url.clone();
    let two = TestApp::spawn_with(Spawn {
        db,
        tweak: Box::new(move |c| {
            shared(c);
            c.database_url = url;
        }),
        ..Default::default()
    })
    .await;
    let (token, _) = one.register("ada@example.com", "Ada").await;
    let on_one = one.page_session("ada@example.com").await;
    let on_two = on_one.on(&two);
    assert_eq!(two.get("/api/auth/me/", Some(&token)).await.status(), StatusCode::OK);
    let me = on_two.get("/api/auth/me/").await;
    assert_eq!(me.status(), StatusCode::OK);

    assert_eq!(one.post_json("/api/auth/logout/", Some(&token), &json!({})).await.status(), StatusCode::NO_CONTENT);
    assert_error(two.get("/api/auth/me/", Some(&token)).await, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    logout_page(&on_two).await;
    let me = on_one.get("/api/auth/me/").await;
    assert_error(me, StatusCode::UNAUTHORIZED, "not_authenticated").await;
}
