//! The audit log (SPEC §13): every wired action leaves its row with actor and target, in the
//! transaction of the action (none when it fails); no raw address anywhere; the admin's list with
//! filters and pages, its CSV twin, its page; retention deletes old entries only.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Row;
use vitrine::domain::audit::{AuditAction, Who};
use vitrine::domain::time::{Clock, ManualClock};

use crate::helpers::{Db, Spawn, TestApp, assert_error, created, fixtures};
use crate::on_both_databases;

on_both_databases!(
    every_wired_action_leaves_its_row_with_actor_and_target,
    the_list_filters_pages_and_exports_csv,
    two_instances_run_retention_once,
);

/// The client address every request of these tests claims (through a trusted proxy).
const CLIENT_IP: &str = "203.0.113.77";

/// An app that believes `X-Forwarded-For` from the test client, so requests come from `CLIENT_IP`.
async fn app_on(db: Db) -> TestApp {
    TestApp::spawn_with(Spawn {
        db,
        tweak: Box::new(|c| {
            c.trusted_proxies = vec!["127.0.0.1".into()];
            // The webhooks of these tests point at a closed local port; nothing is delivered.
            c.webhook_allowed_hosts = vec!["localhost".into()];
        }),
        ..Default::default()
    })
    .await
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut r = app.req(method, path, token).header("x-forwarded-for", CLIENT_IP);
    if let Some(b) = body {
        r = r.json(b);
    }
    r.send().await.expect("request")
}

/// Every entry, newest first, as the admin's API lists them.
async fn entries(app: &TestApp, admin: &str, query: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut url = Some(app.url(&format!("/api/admin/audit/?page_size=100{query}")));
    while let Some(u) = url {
        let r = app.client.get(&u).bearer_auth(admin).send().await.expect("list");
        assert_eq!(r.status(), StatusCode::OK, "{u}");
        let page: Value = r.json().await.expect("json");
        out.extend(page["results"].as_array().expect("results").iter().cloned());
        url = page["next"].as_str().map(str::to_string);
    }
    out
}

fn of<'a>(log: &'a [Value], action: &str) -> Vec<&'a Value> {
    log.iter().filter(|e| e["action"] == action).collect()
}

/// The one entry of `action`, with its actor's id (None: no actor) and target.
fn one<'a>(log: &'a [Value], action: &str, actor: Option<i64>, target_type: &str, target_id: &str) -> &'a Value {
    let found = of(log, action);
    assert_eq!(found.len(), 1, "one {action} in {log:#?}");
    let e = found[0];
    assert_eq!(e["actor"]["id"].as_i64(), actor, "{action}'s actor");
    assert_eq!(e["target_type"], target_type, "{action}'s target type");
    assert_eq!(e["target_id"], target_id, "{action}'s target");
    e
}

async fn login(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    send(app, Method::POST, "/api/auth/login/", None, Some(&json!({"email": email, "password": password}))).await
}

async fn every_wired_action_leaves_its_row_with_actor_and_target(db: Db) {
    let app = app_on(db).await;
    let (admin, admin_id) = app.register("admin@example.com", "Ada Admin").await;
    let (_, user_id) = app.register("user@example.com", "Uma User").await;
    // Sign-ins: one right, two wrong (a wrong password, an unknown address).
    let r = login(&app, "user@example.com", "correct horse").await;
    assert_eq!(r.status(), StatusCode::OK);
    let user: String = r.json::<Value>().await.expect("json")["access_token"].as_str().expect("token").into();
    assert_eq!(login(&app, "user@example.com", "wrong horse").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(login(&app, "nobody@example.com", "wrong horse").await.status(), StatusCode::UNAUTHORIZED);
    // Accounts: created by the admin, promoted, disabled.
    let body = json!({"email": "dee@example.com", "password": "correct horse", "name": "Dee"});
    let dee = created(send(&app, Method::POST, "/api/admin/users/", Some(&admin), Some(&body)).await).await;
    let dee_id = dee["id"].as_i64().expect("id");
    let path = format!("/api/admin/users/{dee_id}/");
    let r = send(&app, Method::PATCH, &path, Some(&admin), Some(&json!({"role": "dashboard"}))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = send(&app, Method::PATCH, &path, Some(&admin), Some(&json!({"is_active": false}))).await;
    assert_eq!(r.status(), StatusCode::OK);
    // Links: created, changed, five wrong passwords (the fifth locks the address out), revoked.
    let asset = app.upload(&user, "a.pdf", fixtures::pdf(2_000)).await;
    let share_path = format!("/api/v3/assets/{}/share/", asset["id"]);
    let body = json!({"share_type": "protected", "password": "secure123", "title": "Deck"});
    let share = created(send(&app, Method::POST, &share_path, Some(&user), Some(&body)).await).await;
    let (share_id, uuid) = (share["id"].as_i64().expect("id"), share["uuid"].as_str().expect("uuid").to_string());
    let r =
        send(&app, Method::PATCH, &format!("/api/v3/shares/{uuid}/"), Some(&user), Some(&json!({"max_downloads": 3})))
            .await;
    assert_eq!(r.status(), StatusCode::OK);
    let unlock = format!("/api/v3/shares/{uuid}/unlock/");
    for _ in 0..5 {
        let r = send(&app, Method::POST, &unlock, None, Some(&json!({"password": "wrong-guess"}))).await;
        assert_error(r, StatusCode::FORBIDDEN, "wrong_password").await;
    }
    let r = send(&app, Method::POST, &unlock, None, Some(&json!({"password": "wrong-guess"}))).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "locked out");
    let r = send(&app, Method::DELETE, &format!("/api/v3/shares/{uuid}/"), Some(&user), None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // A file request.
    let body = json!({"title": "Send me the photos"});
    let request = created(send(&app, Method::POST, "/api/v3/file-requests/", Some(&user), Some(&body)).await).await;
    // An access token, made and revoked.
    let body = json!({"name": "ShareX", "scopes": ["read", "write"]});
    let token = created(send(&app, Method::POST, "/api/auth/tokens/", Some(&user), Some(&body)).await).await;
    let token_id = token["id"].as_i64().expect("id");
    let r = send(&app, Method::DELETE, &format!("/api/auth/tokens/{token_id}/"), Some(&user), None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // A webhook, made and deleted.
    let body = json!({"url": "http://localhost:9/hook", "events": ["file_request.uploaded"]});
    let hook = created(send(&app, Method::POST, "/api/webhooks/", Some(&user), Some(&body)).await).await;
    let hook_id = hook["id"].as_i64().expect("id");
    let r = send(&app, Method::DELETE, &format!("/api/webhooks/{hook_id}/"), Some(&user), None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // The policy, changed by the admin.
    let r = send(&app, Method::PATCH, "/api/admin/policies/", Some(&admin), Some(&json!({"max_downloads_limit": 50})))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    // An asset and a collection, deleted.
    let doomed = app.upload(&user, "old.pdf", fixtures::pdf(1_000)).await;
    let doomed_id = doomed["id"].as_i64().expect("id");
    let r = send(&app, Method::DELETE, &format!("/api/v3/assets/{doomed_id}/"), Some(&user), None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let body = json!({"title": "Old work"});
    let folder = created(send(&app, Method::POST, "/api/v3/collections/", Some(&user), Some(&body)).await).await;
    let folder_id = folder["id"].as_i64().expect("id");
    let r = send(&app, Method::DELETE, &format!("/api/v3/collections/{folder_id}/"), Some(&user), None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    let log = entries(&app, &admin, "").await;
    let (admin_s, user_s, dee_s, share_s) =
        (admin_id.to_string(), user_id.to_string(), dee_id.to_string(), share_id.to_string());
    // Sign-ups act as the account they create; the admin's creation is the admin's.
    let signups = of(&log, "user.created");
    assert_eq!(signups.len(), 3);
    for (actor, target) in [(admin_id, &admin_s), (user_id, &user_s), (admin_id, &dee_s)] {
        assert!(
            signups.iter().any(|e| e["actor"]["id"] == actor && e["target_id"] == *target),
            "user.created of {target} by {actor}"
        );
    }
    let ok = one(&log, "login.succeeded", Some(user_id), "user", &user_s);
    assert_eq!(ok["actor"]["email"], "user@example.com");
    assert_eq!(ok["details"]["kind"], "api");
    let failed = of(&log, "login.failed");
    assert_eq!(failed.len(), 2);
    assert!(failed.iter().all(|e| e["actor"].is_null()));
    assert!(failed.iter().any(|e| e["target_id"] == user_s && e["details"]["reason"] == "wrong_password"));
    assert!(failed.iter().any(|e| e["target_id"] == "" && e["details"]["email"] == "nobody@example.com"));
    let role = one(&log, "user.role_changed", Some(admin_id), "user", &dee_s);
    assert_eq!((role["details"]["from"].as_str(), role["details"]["to"].as_str()), (Some("user"), Some("dashboard")));
    one(&log, "user.deactivated", Some(admin_id), "user", &dee_s);
    let made = one(&log, "share.created", Some(user_id), "share", &share_s);
    assert_eq!(
        (made["details"]["uuid"].as_str(), made["details"]["share_type"].as_str()),
        (Some(&*uuid), Some("protected"))
    );
    assert!(!made["details"].to_string().contains("secure123"), "never the password");
    let changed = one(&log, "share.updated", Some(user_id), "share", &share_s);
    assert_eq!(changed["details"]["max_downloads"], 3);
    assert_eq!(of(&log, "share.unlock_failed").len(), 5, "each wrong password, not the refused sixth attempt");
    assert!(of(&log, "share.unlock_failed").iter().all(|e| e["actor"].is_null() && e["target_id"] == share_s));
    one(&log, "share.locked_out", None, "share", &share_s);
    one(&log, "share.revoked", Some(user_id), "share", &share_s);
    let fr = one(&log, "file_request.created", Some(user_id), "file_request", &request["id"].to_string());
    assert_eq!(fr["details"]["uuid"], request["uuid"]);
    let minted = one(&log, "token.created", Some(user_id), "token", &token_id.to_string());
    assert_eq!(
        (minted["details"]["name"].as_str(), minted["details"]["scopes"].as_str()),
        (Some("ShareX"), Some("read,write"))
    );
    let value = token["token"].as_str().expect("the value, shown once");
    assert!(!log.iter().any(|e| e.to_string().contains(value)), "never the token's value");
    one(&log, "token.revoked", Some(user_id), "token", &token_id.to_string());
    let added = one(&log, "webhook.created", Some(user_id), "webhook", &hook_id.to_string());
    assert_eq!(added["details"]["url"], "http://localhost:9/hook");
    assert_eq!(added["details"]["events"], json!(["file_request.uploaded"]));
    let secret = hook["secret"].as_str().expect("the secret, shown once");
    assert!(!log.iter().any(|e| e.to_string().contains(secret)), "never the webhook's secret");
    one(&log, "webhook.deleted", Some(user_id), "webhook", &hook_id.to_string());
    let policy = one(&log, "policy.updated", Some(admin_id), "policy", "policy");
    assert_eq!(
        (
            policy["details"]["before"]["max_downloads_limit"].clone(),
            policy["details"]["after"]["max_downloads_limit"].clone()
        ),
        (Value::Null, json!(50))
    );
    let gone = one(&log, "asset.deleted", Some(user_id), "asset", &doomed_id.to_string());
    assert_eq!(gone["details"]["name"], "old.pdf");
    let folder_gone = one(&log, "collection.deleted", Some(user_id), "collection", &folder_id.to_string());
    assert_eq!(folder_gone["details"]["title"], "Old work");
    // Newest first, and every entry made by a client carries the hash of its address.
    let ids: Vec<i64> = log.iter().map(|e| e["id"].as_i64().expect("id")).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first");
    let hash = ok["ip"].as_str().expect("hashed address");
    assert_eq!(hash.len(), 32);
    for e in &log {
        // The sign-ups came from the test's own address (no X-Forwarded-For): another hash.
        let direct = e["action"] == "user.created" && e["details"]["via"] == "sign_up";
        assert_eq!(e["ip"] == hash, !direct, "one address, one hash: {e}");
        assert!(e["ip"].as_str().is_some_and(|h| h.len() == 32), "{e}");
    }

    // No raw address anywhere: every column of every row.
    let rows = sqlx::query(
        "SELECT id, at, actor_id, action, target_type, target_id, client_key, details FROM audit_log ORDER BY id",
    )
    .fetch_all(app.state.store.pool())
    .await
    .expect("rows");
    assert_eq!(rows.len(), log.len());
    for r in &rows {
        let text = format!(
            "{} {} {:?} {} {} {} {:?} {}",
            r.get::<i64, _>("id"),
            r.get::<i64, _>("at"),
            r.get::<Option<i64>, _>("actor_id"),
            r.get::<String, _>("action"),
            r.get::<String, _>("target_type"),
            r.get::<String, _>("target_id"),
            r.get::<Option<String>, _>("client_key"),
            r.get::<String, _>("details"),
        );
        for raw in [CLIENT_IP, "127.0.0.1"] {
            assert!(!text.contains(raw), "{raw} stored in {text}");
        }
    }
}

async fn the_list_filters_pages_and_exports_csv(db: Db) {
    let app = app_on(db).await;
    let (admin, admin_id) = app.register("admin@example.com", "Ada Admin").await;
    let (user, user_id) = app.register("user@example.com", "Uma User").await;
    for _ in 0..3 {
        assert_eq!(login(&app, "user@example.com", "wrong horse").await.status(), StatusCode::UNAUTHORIZED);
    }
    app.advance(Duration::from_secs(3600));
    let later = app.state.clock.now_ms();
    assert_eq!(login(&app, "admin@example.com", "correct horse").await.status(), StatusCode::OK);

    // Filters combine; each page keeps them in its links.
    let failed = entries(&app, &admin, "&action=login.failed").await;
    assert_eq!(failed.len(), 3);
    assert_eq!(entries(&app, &admin, &format!("&actor_id={user_id}")).await.len(), 1, "Uma's sign-up");
    let mine = entries(&app, &admin, &format!("&actor_id={admin_id}")).await;
    assert_eq!(
        mine.iter().map(|e| e["action"].as_str().expect("a")).collect::<Vec<_>>(),
        ["login.succeeded", "user.created"]
    );
    let since = vitrine::domain::time::rfc3339(later);
    let recent = entries(&app, &admin, &format!("&since={since}")).await;
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0]["action"], "login.succeeded");
    let until = vitrine::domain::time::rfc3339(later - 1000);
    assert_eq!(entries(&app, &admin, &format!("&until={until}")).await.len(), 5);
    let page: Value =
        app.get("/api/admin/audit/?action=login.failed&page_size=2", Some(&admin)).await.json().await.expect("json");
    assert_eq!((page["count"].as_i64(), page["results"].as_array().map(Vec::len)), (Some(3), Some(2)));
    let next = page["next"].as_str().expect("next");
    assert!(next.starts_with("http://") && next.contains("action=login.failed") && next.contains("page=2"), "{next}");
    assert!(page["previous"].is_null());

    // Malformed filters: one 400 naming each.
    let r = app
        .get("/api/admin/audit/?actor_id=x&action=share.exploded&since=yesterday&until=2024-13-01&page=0", Some(&admin))
        .await;
    let e = assert_error(r, StatusCode::BAD_REQUEST, "validation_error").await;
    for f in ["actor_id", "action", "since", "until", "page"] {
        assert!(e["fields"][f].is_string(), "{f} in {e}");
    }
    let r = app.get(&format!("/api/admin/audit/?since={since}&until={until}"), Some(&admin)).await;
    let e = assert_error(r, StatusCode::BAD_REQUEST, "validation_error").await;
    assert!(e["fields"]["until"].is_string());
    assert_error(
        app.get("/api/admin/audit/?format=xml", Some(&admin)).await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    )
    .await;
    // Admins only; nothing changes or deletes an entry.
    assert_error(app.get("/api/admin/audit/", Some(&user)).await, StatusCode::FORBIDDEN, "forbidden").await;
    assert_error(app.get("/api/admin/audit/?format=csv", Some(&user)).await, StatusCode::FORBIDDEN, "forbidden").await;
    assert_error(app.get("/api/admin/audit/", None).await, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        let r = app.req(m.clone(), "/api/admin/audit/", Some(&admin)).json(&json!({})).send().await.expect("request");
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{m}");
    }

    // Many more entries than one export batch: the CSV pages through all of them.
    let now = app.state.clock.now_ms();
    for i in 0..1_234 {
        let e =
            Who { actor_id: Some(admin_id), ip: None }.entry(AuditAction::PolicyUpdated, "policies", json!({"n": i}));
        app.state.store.append_audit(&e, now).await.expect("append");
    }
    let json_log = entries(&app, &admin, "").await;
    assert_eq!(json_log.len(), 6 + 1_234);
    let r = app.get("/api/admin/audit/?format=csv", Some(&admin)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert!(ct.starts_with("text/csv"), "{ct}");
    let cd = r.headers().get("content-disposition").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert!(cd.starts_with("attachment") && cd.contains(".csv"), "{cd}");
    let text = r.text().await.expect("csv");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers: Vec<String> = reader.headers().expect("headers").iter().map(str::to_string).collect();
    assert_eq!(headers, ["id", "at", "actor_id", "actor_email", "action", "target_type", "target_id", "ip", "details"]);
    let rows: Vec<HashMap<String, String>> = reader.deserialize().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), json_log.len());
    for (row, e) in rows.iter().zip(&json_log) {
        assert_eq!(row["id"], e["id"].to_string());
        assert_eq!(row["at"], e["at"].as_str().expect("at"));
        assert_eq!(row["actor_id"], e["actor"]["id"].as_i64().map(|i| i.to_string()).unwrap_or_default());
        assert_eq!(row["actor_email"], e["actor"]["email"].as_str().unwrap_or_default());
        assert_eq!(row["action"], e["action"].as_str().expect("action"));
        assert_eq!(
            (&row["target_type"], &row["target_id"]),
            (
                &e["target_type"].as_str().unwrap_or_default().to_string(),
                &e["target_id"].as_str().unwrap_or_default().to_string()
            )
        );
        assert_eq!(row["ip"], e["ip"].as_str().unwrap_or_default());
        assert_eq!(serde_json::from_str::<Value>(&row["details"]).expect("details"), e["details"]);
    }
    // The same filters apply to the file.
    let r = app.get("/api/admin/audit/?format=csv&action=login.failed", Some(&admin)).await;
    let text = r.text().await.expect("csv");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let actions: Vec<String> = reader.records().map(|r| r.expect("row")[4].to_string()).collect();
    assert_eq!(actions, ["login.failed"; 3]);
    let r = app.get("/api/admin/audit/?format=csv&since=nonsense", Some(&admin)).await;
    assert_error(r, StatusCode::BAD_REQUEST, "validation_error").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_that_fail_leave_no_row() {
    let app = app_on(Db::Sqlite).await;
    let (admin, admin_id) = app.register("admin@example.com", "Ada Admin").await;
    let (user, user_id) = app.register("user@example.com", "Uma User").await;
    let before = entries(&app, &admin, "").await.len();
    let asset = app.upload(&user, "a.pdf", fixtures::pdf(2_000)).await;
    let path = format!("/api/v3/assets/{}/share/", asset["id"]);
    let r = send(&app, Method::POST, &path, Some(&user), Some(&json!({"share_type": "protected"}))).await;
    assert_error(r, StatusCode::BAD_REQUEST, "validation_error").await;
    let r = send(&app, Method::POST, &path, Some(&user), Some(&json!({"share_type": "everyone"}))).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = send(&app, Method::POST, "/api/v3/file-requests/", Some(&user), Some(&json!({"title": ""}))).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = send(
        &app,
        Method::PATCH,
        "/api/v3/shares/00000000-0000-4000-8000-000000000000/",
        Some(&user),
        Some(&json!({})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = send(
        &app,
        Method::POST,
        "/api/admin/users/",
        Some(&admin),
        Some(&json!({"email": "user@example.com", "password": "correct horse", "name": "U"})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let r = send(
        &app,
        Method::PATCH,
        &format!("/api/admin/users/{admin_id}/"),
        Some(&admin),
        Some(&json!({"is_active": false})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CONFLICT, "the last admin");
    let r = send(
        &app,
        Method::PATCH,
        &format!("/api/admin/users/{user_id}/"),
        Some(&admin),
        Some(&json!({"role": "user"})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK, "a no-op change");
    assert_eq!(entries(&app, &admin, "").await.len(), before, "refused or unchanged: nothing logged");
    // Revoking twice logs once.
    let share =
        created(send(&app, Method::POST, &path, Some(&user), Some(&json!({"share_type": "public"}))).await).await;
    let uuid = share["uuid"].as_str().expect("uuid");
    for _ in 0..2 {
        let r = send(&app, Method::DELETE, &format!("/api/v3/shares/{uuid}/"), Some(&user), None).await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }
    assert_eq!(entries(&app, &admin, "&action=share.revoked").await.len(), 1);
    // Tokens: revoking twice logs once; someone else's token cannot be revoked and logs nothing.
    let body = json!({"name": "CI", "scopes": ["read"]});
    let token = created(send(&app, Method::POST, "/api/auth/tokens/", Some(&user), Some(&body)).await).await;
    let path = format!("/api/auth/tokens/{}/", token["id"]);
    let r = send(&app, Method::DELETE, &path, Some(&admin), None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "another account's token");
    for expected in [StatusCode::NO_CONTENT, StatusCode::NOT_FOUND] {
        assert_eq!(send(&app, Method::DELETE, &path, Some(&user), None).await.status(), expected);
    }
    assert_eq!(entries(&app, &admin, "&action=token.revoked").await.len(), 1);
    // A refused token, webhook or policy change logs nothing.
    let before = entries(&app, &admin, "").await.len();
    let r = send(&app, Method::POST, "/api/auth/tokens/", Some(&user), Some(&json!({"name": "", "scopes": ["read"]})))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body = json!({"url": "http://127.0.0.2:9/hook", "events": ["share.viewed"]});
    let r = send(&app, Method::POST, "/api/webhooks/", Some(&user), Some(&body)).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "loopback host not allowed");
    let r = send(&app, Method::PATCH, "/api/admin/policies/", Some(&admin), Some(&json!({"allowed_share_types": []})))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r =
        send(&app, Method::PATCH, "/api/admin/policies/", Some(&user), Some(&json!({"require_password": true}))).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = send(&app, Method::DELETE, "/api/v3/assets/999999/", Some(&user), None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(entries(&app, &admin, "").await.len(), before, "refused: nothing logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_entries_only() {
    let day = 86_400_000;
    let start = 1_705_314_600_000;
    let clock = Arc::new(ManualClock::new(start));
    let app = TestApp::spawn_with(Spawn {
        clock: Some(clock.clone()),
        tweak: Box::new(|c| c.audit_retention_days = 30),
        ..Default::default()
    })
    .await;
    let store = &app.state.store;
    let entry = |n: i64| Who::system().entry(AuditAction::PolicyUpdated, "policies", json!({"day": n}));
    for n in [0, 9, 11, 31] {
        store.append_audit(&entry(n), start + n * day).await.expect("append");
    }
    // Day 40: entries older than 30 days (days 0 and 9) go; days 11 and 31 stay.
    clock.set(start + 40 * day);
    assert_eq!(vitrine::jobs::audit_retention::run_once(&app.state).await.expect("run"), 2);
    let all = vitrine::domain::pagination::PageRequest { page: 1, page_size: 10 };
    let (left, count) = store.audit_page(&Default::default(), all).await.expect("list");
    assert_eq!(count, 2);
    let days: Vec<String> = left.iter().map(|r| r.details.clone()).collect();
    assert_eq!(days, [r#"{"day":31}"#, r#"{"day":11}"#]);
    assert_eq!(vitrine::jobs::audit_retention::run_once(&app.state).await.expect("run"), 0, "nothing more");
    // One instance runs it: the lease is the job's.
    let now = clock.now_ms();
    assert!(store.claim_job("audit_retention", "one", now, now + 3_600_000).await.expect("claim"));
    assert!(!store.claim_job("audit_retention", "two", now, now + 3_600_000).await.expect("claim"));
}

/// Two instances of one deployment run the retention round at the same moment: one takes the
/// job's lease and deletes the old entries, the other skips the round; the entries are deleted
/// once and the lease names the instance that did it.
async fn two_instances_run_retention_once(db: Db) {
    let day = 86_400_000;
    let start = 1_705_314_600_000;
    let clock = Arc::new(ManualClock::new(start));
    let a = TestApp::spawn_with(Spawn {
        db: db.clone(),
        clock: Some(clock.clone()),
        tweak: Box::new(|c| c.audit_retention_days = 30),
        ..Default::default()
    })
    .await;
    let url = a.state.config.database_url.clone();
    let b = TestApp::spawn_with(Spawn {
        db,
        clock: Some(clock.clone()),
        tweak: Box::new(move |c| {
            c.audit_retention_days = 30;
            c.database_url = url;
        }),
        ..Default::default()
    })
    .await;
    assert_ne!(a.state.rooms.instance, b.state.rooms.instance);
    let store = &a.state.store;
    let entry = |n: i64| Who::system().entry(AuditAction::PolicyUpdated, "policies", json!({"day": n}));
    for n in [0, 1, 2, 3, 9, 35] {
        store.append_audit(&entry(n), start + n * day).await.expect("append");
    }
    clock.set(start + 40 * day);
    let (x, y) =
        tokio::join!(vitrine::jobs::audit_retention::round(&a.state), vitrine::jobs::audit_retention::round(&b.state));
    let (x, y) = (x.expect("round on a"), y.expect("round on b"));
    let (holder, done) = match (x, y) {
        (Some(n), None) => (&a.state.rooms.instance, n),
        (None, Some(n)) => (&b.state.rooms.instance, n),
        other => panic!("exactly one instance runs the round: {other:?}"),
    };
    assert_eq!(done, 5, "the entries older than 30 days, deleted once");
    let all = vitrine::domain::pagination::PageRequest { page: 1, page_size: 10 };
    let (left, count) = b.state.store.audit_page(&Default::default(), all).await.expect("list");
    assert_eq!(count, 1);
    assert_eq!(left[0].details, r#"{"day":35}"#);
    let lease = sqlx::query("SELECT holder, until_ms FROM job_leases WHERE name = 'audit_retention'")
        .fetch_one(&sqlx::AnyPool::connect(a.state.config.database_url.as_deref().expect("url")).await.expect("pool"))
        .await
        .expect("lease row");
    assert_eq!(&lease.get::<String, _>("holder"), holder, "the lease names the instance that ran it");
    assert_eq!(lease.get::<i64, _>("until_ms"), start + 40 * day + 3_600_000);
    // Within the period the other instance keeps skipping; the holder renews (nothing left).
    let (x, y) =
        tokio::join!(vitrine::jobs::audit_retention::round(&a.state), vitrine::jobs::audit_retention::round(&b.state));
    let mut rounds = [x.expect("a"), y.expect("b")];
    rounds.sort();
    assert_eq!(rounds, [None, Some(0)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_page_lists_filters_and_links_the_csv() {
    let app = app_on(Db::Sqlite).await;
    let (_, _) = app.register("admin@example.com", "Ada Admin").await;
    app.register("user@example.com", "Uma User").await;
    // Anonymous: sign in first; a user: 403.
    let r = app.get("/admin/audit", None).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(r.headers().get("location").and_then(|l| l.to_str().ok()).is_some_and(|l| l.starts_with("/login")));
    let uma = app.page_session("user@example.com").await;
    let r = uma.get("/admin/audit").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.expect("html").contains("Admins only"));
    let ada = app.page_session("admin@example.com").await;
    for _ in 0..60 {
        let e = Who::system().entry(AuditAction::PolicyUpdated, "policies", json!({}));
        app.state.store.append_audit(&e, app.state.clock.now_ms()).await.expect("append");
    }
    let r = ada.get("/admin/audit").await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.expect("html");
    // Two sign-ups, two page sign-ins and 60 more: 64 entries, 50 a page.
    assert!(html.contains("64 entries"), "{html}");
    assert!(html.contains("id=\"audit-filters\"") && html.contains("method=\"get\""));
    assert!(html.contains(" UTC <span class=\"rel\">(just now)</span></time>"), "dates for people");
    assert!(html.contains("href=\"/api/admin/audit/?format=csv\""));
    assert!(html.contains("id=\"page-next\"") && html.contains("href=\"/admin/audit?page=2\""));
    assert!(!html.contains(CLIENT_IP) && !html.contains("127.0.0.1"));
    let r = ada.get("/admin/audit?page=2").await;
    let html = r.text().await.expect("html");
    assert!(html.contains("id=\"page-previous\"") && !html.contains("id=\"page-next\""));
    // The form's filters (a datetime-local value is UTC), kept in the CSV link.
    let r = ada.get("/admin/audit?action=login.succeeded&since=2000-01-01T00%3A00").await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.expect("html");
    assert!(html.contains("2 entries"), "{html}");
    assert!(html.contains("admin@example.com") && html.contains("<code>login.succeeded</code>"));
    assert!(html.contains("format=csv&#38;action=login.succeeded&#38;since=2000-01-01T00%3A00%3A00Z"), "{html}");
    let r = ada.get("/admin/audit?since=last+week").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let html = r.text().await.expect("html");
    assert!(html.contains("id=\"filter-error\"") && html.contains("No entries."));
    // The CSV link works with the page's cookie.
    let r = ada.get("/api/admin/audit/?format=csv&action=login.succeeded").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.expect("csv").lines().count(), 3);
}
