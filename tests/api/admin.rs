//! Admin user management and disabled accounts (SPEC §1).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_create_accounts_with_a_role() {
    let app = TestApp::spawn().await;
    let (admin, user) = app.admin_and_user().await;
    let r = app
        .post_json(
            "/api/admin/users/",
            Some(&admin),
            &json!({"email": "dash@example.com", "password": "correct horse", "name": "Dee", "role": "dashboard"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["role"], "dashboard");
    let r = app
        .post_json(
            "/api/admin/users/",
            Some(&admin),
            &json!({"email": "x@example.com", "password": "correct horse", "name": "X", "role": "root"}),
        )
        .await;
    let e = assert_error(r, StatusCode::BAD_REQUEST, "validation_error").await;
    assert!(e["fields"]["role"].is_string());
    let r = app
        .post_json(
            "/api/admin/users/",
            Some(&user),
            &json!({"email": "y@example.com", "password": "correct horse", "name": "Y"}),
        )
        .await;
    assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = app
        .post_json(
            "/api/admin/users/",
            None,
            &json!({"email": "y@example.com", "password": "correct horse", "name": "Y"}),
        )
        .await;
    assert_error(r, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    let list: Value = app.get("/api/admin/users/?page_size=2", Some(&admin)).await.json().await.expect("json");
    assert_eq!(list["count"], 3);
    assert!(list["next"].as_str().is_some_and(|n| n.starts_with("http://") && n.contains("page=2")));
    assert_error(app.get("/api/admin/users/", Some(&user)).await, StatusCode::FORBIDDEN, "forbidden").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_account_is_refused_everywhere_at_once_its_tokens_included() {
    let app = TestApp::spawn().await;
    let (admin, user) = app.admin_and_user().await;
    let me: Value = app.get("/api/auth/me/", Some(&user)).await.json().await.expect("json");
    let id = me["id"].as_i64().expect("id");
    let r = app.patch_json(&format!("/api/admin/users/{id}/"), Some(&admin), &json!({"is_active": false})).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_error(app.get("/api/auth/me/", Some(&user)).await, StatusCode::FORBIDDEN, "account_disabled").await;
    assert_error(app.get("/api/v3/assets/", Some(&user)).await, StatusCode::FORBIDDEN, "account_disabled").await;
    let r = app
        .post_json("/api/auth/login/", None, &json!({"email": "user@example.com", "password": "correct horse"}))
        .await;
    assert_error(r, StatusCode::FORBIDDEN, "account_disabled").await;
    // Enabled again, the same token works.
    app.patch_json(&format!("/api/admin/users/{id}/"), Some(&admin), &json!({"is_active": true})).await;
    assert_eq!(app.get("/api/auth/me/", Some(&user)).await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_changes_apply_immediately_and_bad_updates_are_refused() {
    let app = TestApp::spawn().await;
    let (admin, user) = app.admin_and_user().await;
    let me: Value = app.get("/api/auth/me/", Some(&user)).await.json().await.expect("json");
    let id = me["id"].as_i64().expect("id");
    let r = app.patch_json(&format!("/api/admin/users/{id}"), Some(&admin), &json!({"role": "admin"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.get("/api/admin/users/", Some(&user)).await.status(), StatusCode::OK);
    assert_error(
        app.patch_json("/api/admin/users/999/", Some(&admin), &json!({"role": "user"})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(
        app.patch_json(&format!("/api/admin/users/{id}/"), Some(&admin), &json!({})).await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    )
    .await;
    assert_error(
        app.patch_json("/api/admin/users/abc/", Some(&admin), &json!({"role": "user"})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_admin_cannot_be_demoted_or_disabled() {
    let app = TestApp::spawn().await;
    let (admin, _) = app.register("admin@example.com", "Ada").await;
    let r = app.patch_json("/api/admin/users/1/", Some(&admin), &json!({"role": "user"})).await;
    assert_error(r, StatusCode::CONFLICT, "last_admin").await;
    let r = app.patch_json("/api/admin/users/1/", Some(&admin), &json!({"is_active": false})).await;
    assert_error(r, StatusCode::CONFLICT, "last_admin").await;
}
