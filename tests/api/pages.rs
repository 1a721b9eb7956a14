//! Login/logout pages over plain HTTP: cookies, CSRF, errors re-render the form.

use reqwest::StatusCode;

use crate::helpers::{Spawn, TestApp};

/// Fetches the login form; returns (csrf cookie header value, csrf token from the form).
pub async fn login_form(app: &TestApp) -> (String, String) {
    let r = app.get("/login", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("vitrine_csrf="))
        .expect("csrf cookie")
        .to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let html = r.text().await.expect("html");
    let token =
        html.split("name=\"csrf_token\" value=\"").nth(1).and_then(|s| s.split('"').next()).expect("token").to_string();
    (cookie.split(';').next().unwrap_or("").to_string(), token)
}

/// Signs in through the form (password "correct horse"): returns (cookie header, csrf token).
pub async fn session(app: &TestApp, email: &str) -> (String, String) {
    let (csrf_cookie, token) = login_form(app).await;
    let r = app
        .client
        .post(app.url("/login"))
        .header("cookie", &csrf_cookie)
        .form(&[("email", email), ("password", "correct horse"), ("csrf_token", &token), ("next", "/")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("vitrine_session="))
        .expect("session cookie")
        .split(';')
        .next()
        .unwrap_or("")
        .to_string();
    (format!("{session}; {csrf_cookie}"), token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_sets_an_http_only_lax_session_cookie_and_signing_out_clears_it() {
    let app = TestApp::spawn().await;
    app.register("ada@example.com", "Ada").await;
    let (csrf_cookie, token) = login_form(&app).await;
    let r = app
        .client
        .post(app.url("/login"))
        .header("cookie", &csrf_cookie)
        .form(&[("email", "ada@example.com"), ("password", "correct horse"), ("csrf_token", &token), ("next", "/")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("vitrine_session="))
        .expect("session cookie")
        .to_string();
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Lax") && !session.contains("Secure"),
        "{session}"
    );
    let session_pair = session.split(';').next().unwrap_or("").to_string();
    let home = app
        .client
        .get(app.url("/"))
        .header("cookie", format!("{session_pair}; {csrf_cookie}"))
        .send()
        .await
        .expect("home");
    assert_eq!(home.status(), StatusCode::OK);
    assert!(home.text().await.expect("html").contains("Signed in as <strong>Ada</strong>"));
    // Sign out needs the CSRF token too.
    let r = app
        .client
        .post(app.url("/logout"))
        .header("cookie", format!("{session_pair}; {csrf_cookie}"))
        .form(&[("csrf_token", "wrong")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = app
        .client
        .post(app.url("/logout"))
        .header("cookie", format!("{session_pair}; {csrf_cookie}"))
        .form(&[("csrf_token", &token)])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cleared = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|c| c.starts_with("vitrine_session=;") && c.contains("Max-Age=0"));
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
    let (csrf_cookie, token) = login_form(&app).await;
    let r = app
        .client
        .post(app.url("/login"))
        .header("cookie", &csrf_cookie)
        .form(&[("email", "ada@example.com"), ("password", "correct horse"), ("csrf_token", &token)])
        .send()
        .await
        .expect("post");
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("vitrine_session="))
        .expect("cookie")
        .to_string();
    assert!(session.contains("Secure"), "{session}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_forms_without_a_valid_csrf_token_or_from_another_site_are_refused() {
    let app = TestApp::spawn().await;
    app.register("ada@example.com", "Ada").await;
    let (csrf_cookie, token) = login_form(&app).await;
    let creds = [("email", "ada@example.com"), ("password", "correct horse")];
    let r = app
        .client
        .post(app.url("/login"))
        .form(&[creds[0], creds[1], ("csrf_token", token.as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "no cookie");
    let r = app
        .client
        .post(app.url("/login"))
        .header("cookie", &csrf_cookie)
        .form(&[creds[0], creds[1], ("csrf_token", "x")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "wrong token");
    let r = app
        .client
        .post(app.url("/login"))
        .header("cookie", &csrf_cookie)
        .header("origin", "https://evil.example")
        .form(&[creds[0], creds[1], ("csrf_token", token.as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "foreign origin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_shows_the_form_again_with_an_error_and_next_stays_on_site() {
    let app = TestApp::spawn().await;
    app.register("ada@example.com", "Ada").await;
    let (csrf_cookie, token) = login_form(&app).await;
    let r = app
        .client
        .post(app.url("/login"))
        .header("cookie", &csrf_cookie)
        .form(&[("email", "ada@example.com"), ("password", "nope nope"), ("csrf_token", &token)])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let html = r.text().await.expect("html");
    assert!(html.contains("id=\"login-error\"") && html.contains("value=\"ada@example.com\""));
    let r = app
        .client
        .post(app.url("/login"))
        .header("cookie", &csrf_cookie)
        .form(&[
            ("email", "ada@example.com"),
            ("password", "correct horse"),
            ("csrf_token", &token),
            ("next", "//evil.example/x"),
        ])
        .send()
        .await
        .expect("post");
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

/// Signs in through the form; returns the Cookie header (session + CSRF) and the CSRF token.
pub async fn signed_in(app: &TestApp, email: &str) -> (String, String) {
    let (csrf_cookie, token) = login_form(app).await;
    let r = app
        .client
        .post(app.url("/login"))
        .header("cookie", &csrf_cookie)
        .form(&[("email", email), ("password", "correct horse"), ("csrf_token", &token)])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("vitrine_session="))
        .map(|c| c.split(';').next().unwrap_or("").to_string())
        .expect("session");
    (format!("{session}; {csrf_cookie}"), token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_share_form_creates_links_and_shows_errors_on_the_page() {
    let app = TestApp::spawn().await;
    let (api, _) = app.register("owner@example.com", "Olive").await;
    let a = app.upload(&api, "notes.txt", b"hello\n".to_vec()).await;
    let id = a["id"].as_i64().expect("id");
    let (cookies, csrf) = signed_in(&app, "owner@example.com").await;
    let page = app.client.get(app.url(&format!("/assets/{id}"))).header("cookie", &cookies).send().await.expect("get");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.expect("html").contains("id=\"share-form\""));
    // A protected link without a password: the page again, with the reason.
    let r = app
        .client
        .post(app.url(&format!("/assets/{id}/shares")))
        .header("cookie", &cookies)
        .form(&[("csrf_token", csrf.as_str()), ("share_type", "protected"), ("allow_download", "on")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.expect("html").contains("id=\"share-error\""));
    let r = app
        .client
        .post(app.url(&format!("/assets/{id}/shares")))
        .header("cookie", &cookies)
        .form(&[("csrf_token", csrf.as_str()), ("max_downloads", "abc")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Without the CSRF token nothing is created.
    let r = app
        .client
        .post(app.url(&format!("/assets/{id}/shares")))
        .header("cookie", &cookies)
        .form(&[("share_type", "public")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = app
        .client
        .post(app.url(&format!("/assets/{id}/shares")))
        .header("cookie", &cookies)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("share_type", "public"),
            ("expires_in_hours", "24"),
            ("max_downloads", "3"),
            ("allow_download", "on"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let list: serde_json::Value = app.get("/api/v3/shares/", Some(&api)).await.json().await.expect("json");
    assert_eq!(list["count"], 1);
    assert_eq!(
        (list["results"][0]["max_downloads"].as_i64(), list["results"][0]["allow_preview"].as_bool()),
        (Some(3), Some(false))
    );
    let uuid = list["results"][0]["uuid"].as_str().expect("uuid").to_string();
    let links = app
        .client
        .get(app.url("/shares"))
        .header("cookie", &cookies)
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("html");
    assert!(links.contains(&format!("id=\"link-{uuid}\"")));
    let r = app
        .client
        .post(app.url(&format!("/shares/{uuid}/revoke")))
        .header("cookie", &cookies)
        .form(&[("csrf_token", "nope")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = app
        .client
        .post(app.url(&format!("/shares/{uuid}/revoke")))
        .header("cookie", &cookies)
        .form(&[("csrf_token", csrf.as_str()), ("back", "https://evil.example/")])
        .send()
        .await
        .expect("post");
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
    let (cookies, csrf) = signed_in(&app, "other@example.com").await;
    let r = app.client.get(app.url(&format!("/assets/{id}"))).header("cookie", &cookies).send().await.expect("get");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = app
        .client
        .post(app.url(&format!("/assets/{id}/shares")))
        .header("cookie", &cookies)
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = app
        .client
        .post(app.url(&format!("/shares/{}/revoke", share["uuid"].as_str().expect("u"))))
        .header("cookie", &cookies)
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .expect("post");
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
