//! Login/logout pages over plain HTTP: cookies, CSRF, errors re-render the form.

use reqwest::StatusCode;

use crate::helpers::pages::{PageSession, cookie_pair, csrf_of, set_cookie};
use crate::helpers::{Spawn, TestApp};

/// Fetches the login form as a browser without cookies: that browser, with the CSRF cookie
/// (checked: HttpOnly, SameSite=Strict) and the form's token.
async fn login_form(app: &TestApp) -> PageSession {
    let r = app.get("/login", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = set_cookie(&r, "vitrine_csrf").expect("csrf cookie");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let html = r.text().await.expect("html");
    PageSession::new(app, cookie_pair(&cookie), csrf_of(&html))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_sets_an_http_only_lax_session_cookie_and_signing_out_clears_it() {
    let app = TestApp::spawn().await;
    app.register("ada@example.com", "Ada").await;
    let visitor = login_form(&app).await;
    let r = visitor
        .post_form("/login", &[("email", "ada@example.com"), ("password", "correct horse"), ("next", "/")])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let session = set_cookie(&r, "vitrine_session").expect("session cookie");
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Lax") && !session.contains("Secure"),
        "{session}"
    );
    let ada = visitor.with_cookie(&cookie_pair(&session));
    let home = ada.get("/").await;
    assert_eq!(home.status(), StatusCode::OK);
    assert!(home.text().await.expect("html").contains("Signed in as <strong>Ada</strong>"));
    // Sign out needs the CSRF token too.
    let r = ada.post_form_as_is("/logout", &[("csrf_token", "wrong")]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = ada.post_form("/logout", &[]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cleared = set_cookie(&r, "vitrine_session")
        .is_some_and(|c| c.starts_with("vitrine_session=;") && c.contains("Max-Age=0"));
    assert!(cleared);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_is_secure_when_public_url_is_https() {
    let app = TestApp::spawn_with(Spawn {
        tweak: Box::new(|c| c.public_url = "https://files.example.com".into()),
        ..Default::default()
    })
    .await;
    app.register("ada@example.com", "Ada").await;
    let visitor = login_form(&app).await;
    let r = visitor.post_form("/login", &[("email", "ada@example.com"), ("password", "correct horse")]).await;
    let session = set_cookie(&r, "vitrine_session").expect("cookie");
    assert!(session.contains("Secure"), "{session}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_forms_without_a_valid_csrf_token_or_from_another_site_are_refused() {
    let app = TestApp::spawn().await;
    app.register("ada@example.com", "Ada").await;
    let visitor = login_form(&app).await;
    let creds = [("email", "ada@example.com"), ("password", "correct horse")];
    let r = app
        .client
        .post(app.url("/login"))
        .form(&[creds[0], creds[1], ("csrf_token", visitor.csrf.as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "no cookie");
    let r = visitor.post_form_as_is("/login", &[creds[0], creds[1], ("csrf_token", "x")]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "wrong token");
    let r = visitor
        .req(reqwest::Method::POST, "/login")
        .header("origin", "https://evil.example")
        .form(&[creds[0], creds[1], ("csrf_token", visitor.csrf.as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "foreign origin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_shows_the_form_again_with_an_error_and_next_stays_on_site() {
    let app = TestApp::spawn().await;
    app.register("ada@example.com", "Ada").await;
    let visitor = login_form(&app).await;
    let r = visitor.post_form("/login", &[("email", "ada@example.com"), ("password", "nope nope")]).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let html = r.text().await.expect("html");
    assert!(html.contains("id=\"login-error\"") && html.contains("value=\"ada@example.com\""));
    let r = visitor
        .post_form(
            "/login",
            &[("email", "ada@example.com"), ("password", "correct horse"), ("next", "//evil.example/x")],
        )
        .await;
    assert_eq!(r.headers()["location"], "/");
    // Not signed in: the home page sends you to the form.
    assert_eq!(app.get("/", None).await.headers()["location"], "/login");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_may_not_be_framed_and_escape_what_users_typed() {
    let app = TestApp::spawn().await;
    let r = app.get("/login?next=%22%3E%3Cscript%3E", None).await;
    assert!(r.headers()["content-security-policy"].to_str().unwrap_or("").contains("frame-ancestors 'none'"));
    let html = r.text().await.expect("html");
    assert!(!html.contains("<script>"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_share_form_creates_links_and_shows_errors_on_the_page() {
    let app = TestApp::spawn().await;
    let (api, _) = app.register("owner@example.com", "Olive").await;
    let a = app.upload(&api, "notes.txt", b"hello\n".to_vec()).await;
    let id = a["id"].as_i64().expect("id");
    let olive = app.page_session("owner@example.com").await;
    let page = olive.get(&format!("/assets/{id}")).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.expect("html").contains("id=\"share-form\""));
    let shares = format!("/assets/{id}/shares");
    // A protected link without a password: the page again, with the reason.
    let r = olive.post_form(&shares, &[("share_type", "protected"), ("allow_download", "on")]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.expect("html").contains("id=\"share-error\""));
    let r = olive.post_form(&shares, &[("max_downloads", "abc")]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Without the CSRF token nothing is created.
    let r = olive.post_form_as_is(&shares, &[("share_type", "public")]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = olive
        .post_form(
            &shares,
            &[("share_type", "public"), ("expires_in_hours", "24"), ("max_downloads", "3"), ("allow_download", "on")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let list: serde_json::Value = app.get("/api/v3/shares/", Some(&api)).await.json().await.expect("json");
    assert_eq!(list["count"], 1);
    assert_eq!(
        (list["results"][0]["max_downloads"].as_i64(), list["results"][0]["allow_preview"].as_bool()),
        (Some(3), Some(false))
    );
    let uuid = list["results"][0]["uuid"].as_str().expect("uuid").to_string();
    let links = olive.get("/shares").await.text().await.expect("html");
    assert!(links.contains(&format!("id=\"link-{uuid}\"")));
    let revoke = format!("/shares/{uuid}/revoke");
    let r = olive.post_form_as_is(&revoke, &[("csrf_token", "nope")]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = olive.post_form(&revoke, &[("back", "https://evil.example/")]).await;
    assert_eq!(r.headers()["location"], "/shares", "back stays on this site");
    let s: serde_json::Value =
        app.get(&format!("/api/v3/shares/{uuid}/"), Some(&api)).await.json().await.expect("json");
    assert_eq!(s["status"], "revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_pages_refuse_other_people_and_send_strangers_to_sign_in() {
    let app = TestApp::spawn().await;
    let (api, _) = app.register("owner@example.com", "Olive").await;
    app.register("other@example.com", "Otto").await;
    let a = app.upload(&api, "notes.txt", b"hello\n".to_vec()).await;
    let id = a["id"].as_i64().expect("id");
    let r = app.post_json(&format!("/api/v3/assets/{id}/share/"), Some(&api), &serde_json::json!({})).await;
    let share: serde_json::Value = r.json().await.expect("json");
    assert_eq!(
        app.get(&format!("/assets/{id}"), None).await.headers()["location"],
        format!("/login?next=/assets/{id}")
    );
    assert_eq!(app.get("/shares", None).await.status(), StatusCode::SEE_OTHER);
    let otto = app.page_session("other@example.com").await;
    let r = otto.get(&format!("/assets/{id}")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = otto.post_form(&format!("/assets/{id}/shares"), &[]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = otto.post_form(&format!("/shares/{}/revoke", share["uuid"].as_str().expect("u")), &[]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let s: serde_json::Value = app
        .get(&format!("/api/v3/shares/{}/", share["uuid"].as_str().expect("u")), Some(&api))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(s["status"], "active");
}

/// The login form only ever sends a visitor on to a path of this site (issue 18, item 5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_page_never_redirects_off_site() {
    let app = TestApp::spawn().await;
    for next in ["%2F%09%2Fevil.example", "%2F%2Fevil.example", "%2F%5Cevil.example", "https%3A%2F%2Fevil.example"] {
        let html = app.get(&format!("/login?next={next}"), None).await.text().await.expect("html");
        assert!(html.contains(r#"name="next" value="/""#), "{next} becomes /");
    }
    let html = app.get("/login?next=%2Fshares", None).await.text().await.expect("html");
    assert!(html.contains(r#"name="next" value="/shares""#));
}
