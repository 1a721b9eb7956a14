//! Register, log in, me: success and every failure mode (SPEC §1).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Spawn, TestApp, assert_error};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_account_becomes_admin_and_later_ones_are_users() {
    let app = TestApp::spawn().await;
    let r = app
        .post_json(
            "/api/auth/register/",
            None,
            &json!({"email": "Ada@Example.com", "password": "correct horse", "name": "Ada"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["user"]["role"], "admin");
    assert_eq!(v["user"]["email"], "ada@example.com");
    assert!(v["user"]["created_at"].as_str().is_some_and(|s| s.ends_with('Z')));
    assert!(v["user"].get("password").is_none() && v["user"].get("password_hash").is_none());
    let (_, _) = app.register("second@example.com", "Bo").await;
    let r = app
        .post_json("/api/auth/login/", None, &json!({"email": "second@example.com", "password": "correct horse"}))
        .await;
    let v: Value = r.json().await.expect("json");
    let me: Value = app.get("/api/auth/me/", v["access_token"].as_str()).await.json().await.expect("json");
    assert_eq!(me["role"], "user");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_returns_a_bearer_token_that_me_accepts() {
    let app = TestApp::spawn().await;
    app.register("ada@example.com", "Ada Lovelace").await;
    let r =
        app.post_json("/api/auth/login", None, &json!({"email": "ADA@example.com", "password": "correct horse"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 86400);
    let me = app.get("/api/auth/me", v["access_token"].as_str()).await;
    assert_eq!(me.status(), StatusCode::OK);
    let me: Value = me.json().await.expect("json");
    for k in ["id", "email", "name", "role", "created_at"] {
        assert!(me.get(k).is_some(), "me has {k}");
    }
    assert_eq!(me["name"], "Ada Lovelace");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_refuses_bad_input_with_field_reasons() {
    let app = TestApp::spawn().await;
    let v = assert_error(
        app.post_json("/api/auth/register/", None, &json!({"email": "nope", "password": "short"})).await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    )
    .await;
    assert!(v["fields"]["email"].is_string() && v["fields"]["password"].is_string() && v["fields"]["name"].is_string());
    let r = app
        .req(reqwest::Method::POST, "/api/auth/register/", None)
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .expect("send");
    assert_error(r, StatusCode::BAD_REQUEST, "malformed_json").await;
    let r = app.req(reqwest::Method::POST, "/api/auth/register/", None).body("email=a").send().await.expect("send");
    assert_error(r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_type").await;
    let r = app.post_json("/api/auth/register/", None, &json!({"email": 5, "password": "x", "name": "y"})).await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_body").await;
    let huge = "x".repeat(2 * 1024 * 1024);
    let r =
        app.post_json("/api/auth/register/", None, &json!({"email": "a@b.co", "password": huge, "name": "y"})).await;
    assert_error(r, StatusCode::PAYLOAD_TOO_LARGE, "too_large").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_account_with_the_same_email_is_a_conflict() {
    let app = TestApp::spawn().await;
    app.register("ada@example.com", "Ada").await;
    let r = app
        .post_json(
            "/api/auth/register/",
            None,
            &json!({"email": "ADA@example.com ", "password": "correct horse", "name": "Ada 2"}),
        )
        .await;
    assert_error(r, StatusCode::CONFLICT, "email_taken").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_registration_refuses_sign_ups_but_admins_still_create_accounts() {
    let app = TestApp::spawn_with(Spawn {
        tweak: Box::new(|c| c.registration = vitrine::config::Registration::Closed),
        ..Default::default()
    })
    .await;
    let r = app
        .post_json(
            "/api/auth/register/",
            None,
            &json!({"email": "a@example.com", "password": "correct horse", "name": "A"}),
        )
        .await;
    assert_error(r, StatusCode::FORBIDDEN, "registration_closed").await;
    // The operator creates the first admin from the command line's code path.
    let new = vitrine::domain::users::NewUser::parse(
        Some("root@example.com"),
        Some("correct horse"),
        Some("Root"),
        Some("admin"),
    )
    .expect("valid");
    vitrine::service::auth::create_account(
        &app.state,
        new,
        &vitrine::domain::audit::Who::system(),
        vitrine::service::auth::Via::Cli,
    )
    .await
    .expect("created");
    let r = app
        .post_json("/api/auth/login/", None, &json!({"email": "root@example.com", "password": "correct horse"}))
        .await;
    let token: Value = r.json().await.expect("json");
    let r = app
        .post_json(
            "/api/admin/users/",
            token["access_token"].as_str(),
            &json!({"email": "new@example.com", "password": "correct horse", "name": "New"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_and_unknown_accounts_get_the_same_401() {
    let app = TestApp::spawn().await;
    app.register("ada@example.com", "Ada").await;
    let a = assert_error(
        app.post_json("/api/auth/login/", None, &json!({"email": "ada@example.com", "password": "wrong password"}))
            .await,
        StatusCode::UNAUTHORIZED,
        "not_authenticated",
    )
    .await;
    let b = assert_error(
        app.post_json("/api/auth/login/", None, &json!({"email": "nobody@example.com", "password": "wrong password"}))
            .await,
        StatusCode::UNAUTHORIZED,
        "not_authenticated",
    )
    .await;
    assert_eq!(a["error"], b["error"]);
    assert_error(
        app.post_json("/api/auth/login/", None, &json!({"email": "ada@example.com"})).await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_checked_strictly() {
    let app = TestApp::spawn().await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    assert_error(app.get("/api/auth/me/", None).await, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    assert_error(app.get("/api/auth/me/", Some("not.a.jwt")).await, StatusCode::UNAUTHORIZED, "not_authenticated")
        .await;
    // Same claims, another key.
    let forged = {
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        parts[2] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into();
        parts.join(".")
    };
    assert_error(app.get("/api/auth/me/", Some(&forged)).await, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    // "alg": "none" is never accepted.
    let none = format!("{}.{}.", "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0", token.split('.').nth(1).unwrap_or(""));
    assert_error(app.get("/api/auth/me/", Some(&none)).await, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    // An expired token: the app's clock moves on by its lifetime (a day) and the leeway.
    assert_eq!(app.get("/api/auth/me/", Some(&token)).await.status(), StatusCode::OK);
    app.advance(std::time::Duration::from_secs(86_400 + 6));
    assert_error(app.get("/api/auth/me/", Some(&token)).await, StatusCode::UNAUTHORIZED, "not_authenticated").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_is_rate_limited_per_account_and_per_ip() {
    let app = TestApp::spawn_with(Spawn {
        tweak: Box::new(|c| {
            c.login_rate_per_account_per_minute = 3;
            c.login_rate_per_ip_per_minute = 5;
        }),
        ..Default::default()
    })
    .await;
    app.register("ada@example.com", "Ada").await;
    for _ in 0..3 {
        let r = app
            .post_json("/api/auth/login/", None, &json!({"email": "ada@example.com", "password": "wrong password"}))
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = app
        .post_json("/api/auth/login/", None, &json!({"email": "ada@example.com", "password": "correct horse"}))
        .await;
    let retry = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    assert!(retry.is_some_and(|s| s >= 1), "Retry-After present");
    assert_error(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // Other accounts from the same IP still have a budget until the IP's runs out.
    for _ in 0..1 {
        let r = app
            .post_json("/api/auth/login/", None, &json!({"email": "other@example.com", "password": "wrong password"}))
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = app
        .post_json("/api/auth/login/", None, &json!({"email": "third@example.com", "password": "wrong password"}))
        .await;
    assert_error(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}
