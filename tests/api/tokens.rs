//! Personal access tokens (SPEC §13): made once and stored hashed, listed without their values,
//! revoked at once (on every instance), bound to their scopes on every endpoint, refused on the
//! token endpoints themselves, and stopped by expiry or a disabled account.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::redis::{pair, pair_on, redis_url};
use crate::helpers::{Db, TestApp, Ws, assert_error, created, fixtures};

crate::on_both_databases!(
    a_token_is_shown_once_stored_hashed_listed_without_its_value_and_revoked,
    a_token_is_used_at_most_once_a_minute_in_the_list,
    concurrent_creations_stop_exactly_at_the_limit,
    a_known_token_is_served_from_the_cache_and_its_use_still_written_once_a_minute,
    revoking_a_token_cached_on_the_other_instance_refuses_it_there_at_the_next_request,
    disabling_an_account_refuses_its_token_cached_on_the_other_instance_at_the_next_request,
    a_role_change_applies_to_a_token_cached_on_the_other_instance_at_the_next_request,
);

/// What the store keeps of a token: the hex SHA-256 of its value (the cache's key too).
fn hash_of(value: &str) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(value.as_bytes()))
}

/// The stored `last_used_at` of the only token of the app.
async fn stored_last_use(app: &TestApp) -> Option<i64> {
    let (at,): (Option<i64>,) =
        sqlx::query_as("SELECT last_used_at FROM access_tokens").fetch_one(app.state.store.pool()).await.expect("row");
    at
}

/// The field names of the 400 that creating a token with `body` gets.
async fn field(app: &TestApp, jwt: &str, body: Value) -> Vec<String> {
    let r = app.post_json("/api/auth/tokens/", Some(jwt), &body).await;
    let e = assert_error(r, StatusCode::BAD_REQUEST, "validation_error").await;
    e["fields"].as_object().expect("fields").keys().cloned().collect()
}

/// Creates a token with `body` as the holder of `jwt`; returns its JSON.
async fn make(app: &TestApp, jwt: &str, body: Value) -> Value {
    created(app.post_json("/api/auth/tokens/", Some(jwt), &body).await).await
}

/// A token of `jwt`'s account with `scopes`; returns its value.
async fn token(app: &TestApp, jwt: &str, scopes: &[&str]) -> String {
    let v = make(app, jwt, json!({"name": format!("{scopes:?}"), "scopes": scopes})).await;
    v["token"].as_str().expect("token").to_string()
}

async fn a_token_is_shown_once_stored_hashed_listed_without_its_value_and_revoked(db: Db) {
    let app = TestApp::on(db).await;
    let (_admin, jwt) = app.admin_and_user().await;
    let v = make(&app, &jwt, json!({"name": "ShareX", "scopes": ["read", "write"], "expires_in_days": 30})).await;
    let value = v["token"].as_str().expect("token").to_string();
    assert!(value.starts_with("vtr_") && value.len() == 47, "{value}");
    assert_eq!(v["name"], "ShareX");
    assert_eq!(v["scopes"], json!(["read", "write"]));
    assert!(v["created_at"].as_str().is_some_and(|c| c.ends_with('Z')));
    assert!(v["expires_at"].is_string());
    let id = v["id"].as_i64().expect("id");

    // It works as a bearer token and names its account.
    let me: Value = app.get("/api/auth/me/", Some(&value)).await.json().await.expect("json");
    assert_eq!(me["email"], "user@example.com");

    // The list never shows the value or its hash.
    let r = app.get("/api/auth/tokens/", Some(&jwt)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.expect("body");
    let list: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(list["count"], 1);
    assert_eq!(list["results"][0]["id"], id);
    assert!(list["results"][0]["last_used_at"].is_string(), "{text}");
    assert!(list["results"][0].get("token").is_none());
    let hash = hash_of(&value);
    assert!(!text.contains(&value) && !text.contains(&hash[..16]), "{text}");

    // The database holds the SHA-256 of the token and nothing from which it could be read.
    let rows: Vec<(String, String, String)> = sqlx::query_as("SELECT token_hash, name, scopes FROM access_tokens")
        .fetch_all(app.state.store.pool())
        .await
        .expect("rows");
    assert_eq!(rows, vec![(hash, "ShareX".to_string(), "read,write".to_string())]);

    // Another account cannot see or revoke it.
    let (other, _) = app.register("other@example.com", "Otto Other").await;
    let theirs: Value = app.get("/api/auth/tokens/", Some(&other)).await.json().await.expect("json");
    assert_eq!(theirs["count"], 0);
    assert_error(
        app.delete(&format!("/api/auth/tokens/{id}/"), Some(&other)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(app.get("/api/auth/me/", Some(&value)).await.status(), StatusCode::OK);

    // Revoked: refused at the next request.
    assert_eq!(app.delete(&format!("/api/auth/tokens/{id}/"), Some(&jwt)).await.status(), StatusCode::NO_CONTENT);
    assert_error(app.get("/api/auth/me/", Some(&value)).await, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    assert_error(app.delete(&format!("/api/auth/tokens/{id}/"), Some(&jwt)).await, StatusCode::NOT_FOUND, "not_found")
        .await;
    assert_error(app.delete("/api/auth/tokens/abc/", Some(&jwt)).await, StatusCode::NOT_FOUND, "not_found").await;
    // A token that was never made, or a near miss of a real one.
    let mut near = value.clone();
    near.pop();
    near.push(if value.ends_with('A') { 'B' } else { 'A' });
    for bad in ["vtr_nothing", near.as_str()] {
        assert_error(app.get("/api/auth/me/", Some(bad)).await, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    }
}

async fn a_token_is_used_at_most_once_a_minute_in_the_list(db: Db) {
    let app = TestApp::on(db).await;
    let (jwt, _) = app.register("ada@example.com", "Ada").await;
    let value = token(&app, &jwt, &["read"]).await;
    let last_used = || async {
        let v: Value = app.get("/api/auth/tokens/", Some(&jwt)).await.json().await.expect("json");
        v["results"][0]["last_used_at"].clone()
    };
    assert_eq!(last_used().await, Value::Null, "never used yet");
    assert_eq!(app.get("/api/v3/assets/", Some(&value)).await.status(), StatusCode::OK);
    let first = last_used().await;
    assert!(first.is_string());
    app.advance(Duration::from_secs(30));
    assert_eq!(app.get("/api/v3/assets/", Some(&value)).await.status(), StatusCode::OK);
    assert_eq!(last_used().await, first, "not written again within the minute");
    app.advance(Duration::from_secs(31));
    assert_eq!(app.get("/api/v3/assets/", Some(&value)).await.status(), StatusCode::OK);
    let later = last_used().await;
    assert!(later.is_string() && later != first, "{later} after {first}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_token_requests_are_400_naming_the_field() {
    let app = TestApp::spawn().await;
    let (admin, jwt) = app.admin_and_user().await;
    assert_eq!(field(&app, &jwt, json!({"scopes": ["read"]})).await, vec!["name"]);
    assert_eq!(field(&app, &jwt, json!({"name": "  ", "scopes": ["read"]})).await, vec!["name"]);
    assert_eq!(field(&app, &jwt, json!({"name": "x".repeat(101), "scopes": ["read"]})).await, vec!["name"]);
    assert_eq!(field(&app, &jwt, json!({"name": "a"})).await, vec!["scopes"]);
    assert_eq!(field(&app, &jwt, json!({"name": "a", "scopes": []})).await, vec!["scopes"]);
    assert_eq!(field(&app, &jwt, json!({"name": "a", "scopes": ["read", "sudo"]})).await, vec!["scopes"]);
    // `admin` is for admin accounts only: 400 in fields.scopes.
    assert_eq!(field(&app, &jwt, json!({"name": "a", "scopes": ["admin"]})).await, vec!["scopes"]);
    for days in [0, -5, 3651] {
        assert_eq!(
            field(&app, &jwt, json!({"name": "a", "scopes": ["read"], "expires_in_days": days})).await,
            vec!["expires_in_days"]
        );
    }
    for body in
        [json!({"name": "a", "scopes": "read"}), json!({"name": "a", "scopes": ["read"], "extra": 1}), json!(["read"])]
    {
        assert_error(
            app.post_json("/api/auth/tokens/", Some(&jwt), &body).await,
            StatusCode::BAD_REQUEST,
            "invalid_body",
        )
        .await;
    }
    let r = app
        .req(Method::POST, "/api/auth/tokens/", Some(&jwt))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .expect("post");
    assert_error(r, StatusCode::BAD_REQUEST, "malformed_json").await;
    assert_error(
        app.post_json("/api/auth/tokens/", None, &json!({"name": "a", "scopes": ["read"]})).await,
        StatusCode::UNAUTHORIZED,
        "not_authenticated",
    )
    .await;
    // An admin may hold the admin scope; no expiry means none.
    let v = make(&app, &admin, json!({"name": "ops", "scopes": ["admin"]})).await;
    assert_eq!(v["expires_at"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_holds_at_most_a_hundred_tokens() {
    let app = TestApp::spawn().await;
    let (jwt, _) = app.register("ada@example.com", "Ada").await;
    for i in 0..100 {
        make(&app, &jwt, json!({"name": format!("t{i}"), "scopes": ["read"]})).await;
    }
    let r = app.post_json("/api/auth/tokens/", Some(&jwt), &json!({"name": "one more", "scopes": ["read"]})).await;
    let e = assert_error(r, StatusCode::CONFLICT, "conflict").await;
    assert!(e["error"].as_str().is_some_and(|m| m.contains("100")), "{e}");
    let list: Value = app.get("/api/auth/tokens/?page_size=100", Some(&jwt)).await.json().await.expect("json");
    assert_eq!(list["count"], 100);
}

/// Forty creations at once for an account that holds 90 tokens: exactly ten succeed, the rest
/// are 409, and the account holds 100 (the count and the insert are one step per account).
async fn concurrent_creations_stop_exactly_at_the_limit(db: Db) {
    let app = TestApp::on(db).await;
    let (jwt, _) = app.register("ada@example.com", "Ada").await;
    let (other, _) = app.register("bob@example.com", "Bob").await;
    for i in 0..90 {
        make(&app, &jwt, json!({"name": format!("t{i}"), "scopes": ["read"]})).await;
    }
    let attempts = (0..40).map(|i| {
        let app = &app;
        let jwt = &jwt;
        async move {
            app.post_json("/api/auth/tokens/", Some(jwt), &json!({"name": format!("c{i}"), "scopes": ["read"]})).await
        }
    });
    // Another account's creations at the same time are not held to this one's limit.
    let others = (0..5).map(|i| {
        let app = &app;
        let other = &other;
        async move {
            app.post_json("/api/auth/tokens/", Some(other), &json!({"name": format!("o{i}"), "scopes": ["read"]})).await
        }
    });
    let (answers, theirs) = tokio::join!(futures::future::join_all(attempts), futures::future::join_all(others));
    let mut statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 10, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 30, "{statuses:?}");
    assert!(theirs.iter().all(|r| r.status() == StatusCode::CREATED));
    let list: Value = app.get("/api/auth/tokens/?page_size=100", Some(&jwt)).await.json().await.expect("json");
    assert_eq!(list["count"], 100);
    let list: Value = app.get("/api/auth/tokens/", Some(&other)).await.json().await.expect("json");
    assert_eq!(list["count"], 5);
}

/// Each scope opens its own endpoints and nothing else (SPEC §13).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_scope_opens_its_endpoints_and_nothing_else() {
    let app = TestApp::spawn().await;
    let (admin_jwt, jwt) = app.admin_and_user().await;
    let asset = app.upload(&jwt, "deck.pdf", fixtures::pdf(2)).await["id"].as_i64().expect("id");
    let share_path = format!("/api/v3/assets/{asset}/share/");
    let read = token(&app, &jwt, &["read"]).await;
    let write = token(&app, &jwt, &["write"]).await;
    let share = token(&app, &jwt, &["share"]).await;
    let scope_error =
        |r: reqwest::Response| async move { assert_error(r, StatusCode::FORBIDDEN, "insufficient_scope").await };

    // read: GET and HEAD only.
    assert_eq!(app.get("/api/v3/assets/", Some(&read)).await.status(), StatusCode::OK);
    assert_eq!(
        app.req(Method::HEAD, &format!("/api/v3/assets/{asset}/"), Some(&read)).send().await.expect("head").status(),
        StatusCode::OK
    );
    assert_eq!(app.get("/api/v3/shares/", Some(&read)).await.status(), StatusCode::OK);
    scope_error(app.upload_with(Some(&read), "x.pdf", fixtures::pdf(1), &[]).await).await;
    scope_error(app.post_json(&share_path, Some(&read), &json!({})).await).await;
    scope_error(app.patch_json(&format!("/api/v3/assets/{asset}/"), Some(&read), &json!({"title": "t"})).await).await;
    scope_error(app.delete(&format!("/api/v3/assets/{asset}/"), Some(&read)).await).await;

    // write: assets, collections, comments, uploads; no links, no reading.
    let uploaded = app.upload(&write, "notes.pdf", fixtures::pdf(1)).await;
    assert_eq!(uploaded["owner"]["name"], "Uma User");
    created(app.post_json("/api/v3/collections/", Some(&write), &json!({"title": "Deck"})).await).await;
    created(
        app.post_json(&format!("/api/v3/assets/{asset}/comments/"), Some(&write), &json!({"content": "nice"})).await,
    )
    .await;
    let r = app.patch_json(&format!("/api/v3/assets/{asset}/"), Some(&write), &json!({"title": "Renamed"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    scope_error(app.post_json(&share_path, Some(&write), &json!({})).await).await;
    scope_error(app.post_json("/api/v3/file-requests/", Some(&write), &json!({"title": "Send"})).await).await;
    scope_error(app.get("/api/v3/assets/", Some(&write)).await).await;
    let tus = app
        .req(Method::POST, "/api/v3/uploads/", Some(&read))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "10")
        .send()
        .await
        .expect("tus");
    scope_error(tus).await;

    // share: links and file requests; no uploads.
    let link = created(app.post_json(&share_path, Some(&share), &json!({"share_type": "public"})).await).await;
    let uuid = link["uuid"].as_str().expect("uuid");
    let r = app.patch_json(&format!("/api/v3/shares/{uuid}/"), Some(&share), &json!({"title": "T"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    created(app.post_json("/api/v3/file-requests/", Some(&share), &json!({"title": "Send me"})).await).await;
    scope_error(app.upload_with(Some(&share), "x.pdf", fixtures::pdf(1), &[]).await).await;
    scope_error(
        app.post_json(&format!("/api/v3/assets/{asset}/comments/"), Some(&share), &json!({"content": "x"})).await,
    )
    .await;
    assert_eq!(app.delete(&format!("/api/v3/shares/{uuid}/"), Some(&share)).await.status(), StatusCode::NO_CONTENT);

    // admin: only with the scope, and only for admins.
    let admin_rw = token(&app, &admin_jwt, &["read", "write", "share"]).await;
    let admin_only = token(&app, &admin_jwt, &["admin"]).await;
    scope_error(app.get("/api/admin/users/", Some(&admin_rw)).await).await;
    scope_error(app.post_json("/api/companies/", Some(&admin_rw), &json!({"name": "Acme"})).await).await;
    assert_eq!(app.get("/api/admin/users/", Some(&admin_only)).await.status(), StatusCode::OK);
    created(app.post_json("/api/companies/", Some(&admin_only), &json!({"name": "Acme"})).await).await;
    scope_error(app.get("/api/v3/assets/", Some(&admin_only)).await).await;
    // A user's read token on an admin endpoint: the scope is missing before the role is.
    scope_error(app.get("/api/admin/users/", Some(&read)).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_cannot_manage_tokens_or_sign_out() {
    let app = TestApp::spawn().await;
    let (admin_jwt, _) = app.admin_and_user().await;
    let all = token(&app, &admin_jwt, &["read", "write", "share", "admin"]).await;
    let id = {
        let v: Value = app.get("/api/auth/tokens/", Some(&admin_jwt)).await.json().await.expect("json");
        v["results"][0]["id"].as_i64().expect("id")
    };
    for r in [
        app.get("/api/auth/tokens/", Some(&all)).await,
        app.post_json("/api/auth/tokens/", Some(&all), &json!({"name": "more", "scopes": ["read"]})).await,
        app.delete(&format!("/api/auth/tokens/{id}/"), Some(&all)).await,
        app.post_json("/api/auth/logout/", Some(&all), &json!({})).await,
    ] {
        assert_error(r, StatusCode::FORBIDDEN, "insufficient_scope").await;
    }
    let list: Value = app.get("/api/auth/tokens/", Some(&admin_jwt)).await.json().await.expect("json");
    assert_eq!(list["count"], 1, "nothing was made or revoked");
    assert_eq!(app.get("/api/auth/me/", Some(&all)).await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refused() {
    let app = TestApp::spawn().await;
    let (jwt, _) = app.register("ada@example.com", "Ada").await;
    let v = make(&app, &jwt, json!({"name": "short", "scopes": ["read"], "expires_in_days": 1})).await;
    let value = v["token"].as_str().expect("token");
    app.advance(Duration::from_secs(86_400 - 60));
    assert_eq!(app.get("/api/v3/assets/", Some(value)).await.status(), StatusCode::OK);
    app.advance(Duration::from_secs(61));
    let e = assert_error(app.get("/api/v3/assets/", Some(value)).await, StatusCode::UNAUTHORIZED, "not_authenticated")
        .await;
    assert!(e["error"].as_str().is_some_and(|m| m.contains("expired")), "{e}");
    // Still listed (with its expiry) until it is deleted (a new sign-in: the first JWT expired too).
    let login: Value = app
        .post_json("/api/auth/login/", None, &json!({"email": "ada@example.com", "password": "correct horse"}))
        .await
        .json()
        .await
        .expect("json");
    let jwt = login["access_token"].as_str().expect("token");
    let list: Value = app.get("/api/auth/tokens/", Some(jwt)).await.json().await.expect("json");
    assert_eq!(list["count"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_the_account_stops_its_tokens_and_their_sockets_at_once() {
    let app = TestApp::spawn().await;
    let (admin, jwt) = app.admin_and_user().await;
    let value = token(&app, &jwt, &["read"]).await;
    let me: Value = app.get("/api/auth/me/", Some(&value)).await.json().await.expect("json");
    let mut ws = Ws::connect(&app, &format!("/ws/notifications/?token={value}")).await;
    // The socket is registered once it says so (a revocation before that could not reach it).
    assert_eq!(ws.next().await["type"], "connection_established");
    let id = me["id"].as_i64().expect("id");
    let r = app.patch_json(&format!("/api/admin/users/{id}/"), Some(&admin), &json!({"is_active": false})).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_error(app.get("/api/auth/me/", Some(&value)).await, StatusCode::FORBIDDEN, "account_disabled").await;
    assert!(ws.closed_within(Duration::from_secs(5)).await, "the token's socket closes");
    assert_eq!(Ws::try_connect(&app, &format!("/ws/notifications/?token={value}")).await.err(), Some(403));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_opens_sockets_within_its_scopes_and_revoking_it_closes_them() {
    let app = TestApp::spawn().await;
    let (jwt, _) = app.register("ada@example.com", "Ada").await;
    let read = token(&app, &jwt, &["read"]).await;
    let write = token(&app, &jwt, &["write"]).await;
    // The notifications socket reads; the collaboration socket posts (write).
    let mut ws = Ws::connect(&app, &format!("/ws/notifications/?token={read}")).await;
    assert_eq!(ws.next().await["type"], "connection_established");
    assert_eq!(Ws::try_connect(&app, &format!("/ws/notifications/?token={write}")).await.err(), Some(403));
    let status =
        Ws::try_connect(&app, &format!("/ws/collaboration/{}/?token={read}", uuid::Uuid::new_v4())).await.err();
    assert_eq!(status, Some(403));
    let list: Value = app.get("/api/auth/tokens/", Some(&jwt)).await.json().await.expect("json");
    let id = list["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|t| t["scopes"] == json!(["read"]))
        .expect("read")["id"]
        .as_i64()
        .expect("id");
    assert_eq!(app.delete(&format!("/api/auth/tokens/{id}/"), Some(&jwt)).await.status(), StatusCode::NO_CONTENT);
    assert!(ws.closed_within(Duration::from_secs(5)).await, "the revoked token's socket closes");
    assert_eq!(Ws::try_connect(&app, &format!("/ws/notifications/?token={read}")).await.err(), Some(401));
}

/// Revoking on one instance is seen by the other at its next request (its cached tokens are
/// forgotten through the bus).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_or_disabling_on_one_instance_takes_effect_on_the_other_at_once() {
    let Some(bus) = redis_url().await else { return };
    let (a, b) = pair(&bus).await;
    let (admin, _) = a.register("admin@example.com", "Ada Admin").await;
    let (jwt, id) = a.register("user@example.com", "Uma User").await;
    let v = make(&a, &jwt, json!({"name": "ci", "scopes": ["read", "write"]})).await;
    let value = v["token"].as_str().expect("token");
    let keep = token(&a, &jwt, &["read"]).await;
    assert_eq!(b.get("/api/v3/assets/", Some(value)).await.status(), StatusCode::OK);
    assert_eq!(b.upload_with(Some(value), "a.pdf", fixtures::pdf(1), &[]).await.status(), StatusCode::CREATED);
    let token_id = v["id"].as_i64().expect("id");
    assert_eq!(a.delete(&format!("/api/auth/tokens/{token_id}/"), Some(&jwt)).await.status(), StatusCode::NO_CONTENT);
    assert_error(b.get("/api/v3/assets/", Some(value)).await, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    assert_error(a.get("/api/v3/assets/", Some(value)).await, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    assert_eq!(b.get("/api/v3/assets/", Some(&keep)).await.status(), StatusCode::OK);
    let r = a.patch_json(&format!("/api/admin/users/{id}/"), Some(&admin), &json!({"is_active": false})).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_error(b.get("/api/v3/assets/", Some(&keep)).await, StatusCode::FORBIDDEN, "account_disabled").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_settings_page_creates_shows_once_and_revokes_tokens() {
    let app = TestApp::spawn().await;
    let (_admin, _user) = app.admin_and_user().await;
    let page = app.page_session("user@example.com").await;
    let html = page.get("/settings/tokens").await.text().await.expect("html");
    assert!(html.contains("id=\"no-tokens\"") && html.contains("id=\"create-token\""), "{html}");
    assert!(!html.contains("scope_admin"), "no admin scope offered to a user");
    let home = page.get("/").await.text().await.expect("html");
    assert!(home.contains("href=\"/settings/tokens\""), "linked from the home page");

    // Created: the value is on this answer only.
    let r = page
        .post_form(
            "/settings/tokens",
            &[("name", "ShareX"), ("scope_read", "on"), ("scope_write", "on"), ("expires_in_days", "7")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
    let html = r.text().await.expect("html");
    let start = html.find("id=\"token-value\">").expect("the token is shown") + "id=\"token-value\">".len();
    let value: String = html[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || "_-".contains(*c)).collect();
    assert_eq!(value.len(), 47, "{value}");
    assert_eq!(app.upload_with(Some(&value), "a.pdf", fixtures::pdf(1), &[]).await.status(), StatusCode::CREATED);
    let html = page.get("/settings/tokens").await.text().await.expect("html");
    assert!(html.contains("ShareX") && html.contains("read, write") && !html.contains(&value), "{html}");

    // Refused forms show the reason; no CSRF token, no token.
    let r = page.post_form("/settings/tokens", &[("name", "x")]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.expect("html").contains("scopes"));
    let r = page.post_form("/settings/tokens", &[("name", "x"), ("scope_admin", "on")]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r =
        page.post_form("/settings/tokens", &[("name", "x"), ("scope_read", "on"), ("expires_in_days", "soon")]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = page.post_form_as_is("/settings/tokens", &[("name", "x"), ("scope_read", "on")]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // Revoked from the page; someone else's id is a 404.
    let list: Value = app
        .get("/api/auth/tokens/", Some(&app.register("z@example.com", "Z").await.0))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(list["count"], 0);
    let id = {
        let start = html.find("id=\"revoke-").expect("row") + "id=\"revoke-".len();
        html[start..].chars().take_while(char::is_ascii_digit).collect::<String>()
    };
    let r = page.post_form_as_is(&format!("/settings/tokens/{id}/revoke"), &[]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "no CSRF token");
    let admin_page = app.page_session("admin@example.com").await;
    let r = admin_page.post_form(&format!("/settings/tokens/{id}/revoke"), &[]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "another account's token");
    let r = page.post_form(&format!("/settings/tokens/{id}/revoke"), &[]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_error(app.get("/api/auth/me/", Some(&value)).await, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    // Signed out: to the login form.
    let r = app.client.get(app.url("/settings/tokens")).send().await.expect("get");
    assert!(r.status().is_redirection());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_creates_a_token_that_works() {
    let app = TestApp::spawn().await;
    app.register("admin@example.com", "Ada Admin").await;
    app.register("ops@example.com", "Ops").await;
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_vitrine"))
            .args(args)
            .current_dir(app.dir.path())
            .env("VITRINE_DATA_DIR", app.dir.path())
            .env("VITRINE_DATABASE_URL", app.state.config.database_url.as_deref().expect("database url"))
            .output()
            .expect("run")
    };
    let out = run(&[
        "token",
        "create",
        "--email",
        "ops@example.com",
        "--name",
        "cron",
        "--scopes",
        "read,write",
        "--expires-in-days",
        "30",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let value = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(value.starts_with("vtr_") && value.len() == 47, "{value}");
    let me: Value = app.get("/api/auth/me/", Some(&value)).await.json().await.expect("json");
    assert_eq!(me["email"], "ops@example.com");
    assert_eq!(app.upload_with(Some(&value), "a.pdf", fixtures::pdf(1), &[]).await.status(), StatusCode::CREATED);
    for bad in [
        vec!["token", "create", "--email", "nobody@example.com", "--name", "x", "--scopes", "read"],
        vec!["token", "create", "--email", "ops@example.com", "--name", "x", "--scopes", "read,root"],
        vec!["token", "create", "--email", "ops@example.com", "--name", "x", "--scopes", "admin"],
        vec![
            "token",
            "create",
            "--email",
            "ops@example.com",
            "--name",
            "x",
            "--scopes",
            "read",
            "--expires-in-days",
            "0",
        ],
    ] {
        let out = run(&bad);
        assert!(!out.status.success(), "{bad:?} should fail");
        assert!(out.stdout.is_empty(), "nothing printed as a token");
    }
}

async fn a_known_token_is_served_from_the_cache_and_its_use_still_written_once_a_minute(db: Db) {
    let app = TestApp::on(db).await;
    let (jwt, _) = app.register("ada@example.com", "Ada").await;
    let value = token(&app, &jwt, &["read"]).await;
    let caches = app.state.store.caches();
    // An unknown token is refused and not remembered; a new one works at its first request.
    let unknown = format!("vtr_{}", "A".repeat(43));
    assert_error(app.get("/api/auth/me/", Some(&unknown)).await, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    assert!(caches.token(&hash_of(&unknown)).is_none(), "an unknown token is not cached");
    assert!(caches.token(&hash_of(&value)).is_none());
    assert_eq!(stored_last_use(&app).await, None);

    assert_eq!(app.get("/api/auth/me/", Some(&value)).await.status(), StatusCode::OK);
    let cached = caches.token(&hash_of(&value)).expect("cached by its hash after a use");
    assert!(caches.token(&value).is_none(), "never by its value");
    let first = stored_last_use(&app).await.expect("the first use is written");

    // Thirty seconds on: served from the same cached entry, and nothing written. The cached row
    // still says "never used"; with the stored value cleared too, a request that even tried to
    // record its use would write it.
    app.advance(Duration::from_secs(30));
    sqlx::query("UPDATE access_tokens SET last_used_at = NULL").execute(app.state.store.pool()).await.expect("clear");
    assert_eq!(app.get("/api/auth/me/", Some(&value)).await.status(), StatusCode::OK);
    let again = caches.token(&hash_of(&value)).expect("still cached");
    assert!(std::sync::Arc::ptr_eq(&cached, &again), "the second request used the cached entry");
    assert_eq!(app.get("/api/v3/assets/", Some(&value)).await.status(), StatusCode::OK);
    assert_eq!(stored_last_use(&app).await, None, "no write within the minute after the first");

    // A minute after the first use: written again (whether or not the entry is still cached).
    app.advance(Duration::from_secs(31));
    assert_eq!(app.get("/api/auth/me/", Some(&value)).await.status(), StatusCode::OK);
    let later = stored_last_use(&app).await.expect("written");
    assert!(later >= first + 61_000, "{later} after {first}");
    assert_eq!(app.get("/api/auth/me/", Some(&value)).await.status(), StatusCode::OK);
    assert_eq!(stored_last_use(&app).await, Some(later), "once per minute");
    let list: Value = app.get("/api/auth/tokens/", Some(&jwt)).await.json().await.expect("json");
    assert_eq!(list["results"][0]["last_used_at"], vitrine::domain::time::rfc3339(later));
}

/// Two instances on `db` and the test's Redis, and a token of an ordinary account used on the
/// second one, so that it holds the token in its cache: (a, b, the admin's JWT, the user's JWT and
/// id, the token); None (skipped) without Redis.
async fn cached_on_b(db: Db, scopes: &[&str]) -> Option<(TestApp, TestApp, String, String, i64, String)> {
    let bus = redis_url().await?;
    let (a, b) = pair_on(db, &bus, |_| {}).await;
    let (admin, _) = a.register("admin@example.com", "Ada Admin").await;
    let (jwt, id) = a.register("user@example.com", "Uma User").await;
    let value = token(&a, &jwt, scopes).await;
    assert_eq!(b.get("/api/auth/me/", Some(&value)).await.status(), StatusCode::OK);
    assert!(b.state.store.caches().token(&hash_of(&value)).is_some(), "b caches the token");
    Some((a, b, admin, jwt, id, value))
}

async fn revoking_a_token_cached_on_the_other_instance_refuses_it_there_at_the_next_request(db: Db) {
    let Some((a, b, _, jwt, _, value)) = cached_on_b(db, &["read"]).await else { return };
    let list: Value = a.get("/api/auth/tokens/", Some(&jwt)).await.json().await.expect("json");
    let token_id = list["results"][0]["id"].as_i64().expect("id");
    assert_eq!(a.delete(&format!("/api/auth/tokens/{token_id}/"), Some(&jwt)).await.status(), StatusCode::NO_CONTENT);
    assert!(b.state.store.caches().token(&hash_of(&value)).is_none(), "b forgot it before the revocation answered");
    assert_error(b.get("/api/auth/me/", Some(&value)).await, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    assert_error(a.get("/api/auth/me/", Some(&value)).await, StatusCode::UNAUTHORIZED, "not_authenticated").await;
}

async fn disabling_an_account_refuses_its_token_cached_on_the_other_instance_at_the_next_request(db: Db) {
    let Some((a, b, admin, _, id, value)) = cached_on_b(db, &["read"]).await else { return };
    let r = a.patch_json(&format!("/api/admin/users/{id}/"), Some(&admin), &json!({"is_active": false})).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_error(b.get("/api/auth/me/", Some(&value)).await, StatusCode::FORBIDDEN, "account_disabled").await;
    // Enabled again: the token works again at once (a refusal was not remembered either).
    let r = a.patch_json(&format!("/api/admin/users/{id}/"), Some(&admin), &json!({"is_active": true})).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(b.get("/api/auth/me/", Some(&value)).await.status(), StatusCode::OK);
}

async fn a_role_change_applies_to_a_token_cached_on_the_other_instance_at_the_next_request(db: Db) {
    let Some(bus) = redis_url().await else { return };
    let (a, b) = pair_on(db, &bus, |_| {}).await;
    let (admin, _) = a.register("admin@example.com", "Ada Admin").await;
    let (jwt, id) = a.register("user@example.com", "Uma User").await;
    let set_role = |role: &'static str| {
        let (a, admin) = (&a, &admin);
        async move {
            let r = a.patch_json(&format!("/api/admin/users/{id}/"), Some(admin), &json!({"role": role})).await;
            assert_eq!(r.status(), StatusCode::OK, "make {role}");
        }
    };
    set_role("admin").await;
    let value = token(&a, &jwt, &["read", "admin"]).await;
    assert_eq!(b.get("/api/admin/users/", Some(&value)).await.status(), StatusCode::OK);
    assert!(b.state.store.caches().token(&hash_of(&value)).is_some(), "b caches the token");

    set_role("user").await;
    assert_error(b.get("/api/admin/users/", Some(&value)).await, StatusCode::FORBIDDEN, "forbidden").await;
    let me: Value = b.get("/api/auth/me/", Some(&value)).await.json().await.expect("json");
    assert_eq!(me["role"], "user");

    set_role("admin").await;
    assert_eq!(b.get("/api/admin/users/", Some(&value)).await.status(), StatusCode::OK);
}
