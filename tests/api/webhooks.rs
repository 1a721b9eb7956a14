//! Webhooks (SPEC §13): the API and its refusals (SSRF, schemes, events, scope, other users),
//! deliveries signed as Standard Webhooks define (checked here with an independent HMAC), retries
//! on errors and timeouts with the configured delays, `failed` at the end, the outbox surviving a
//! restart, each event once across two instances, and every event type reaching its owner's
//! webhook only. The receiver is a local server on 127.0.0.1: no test sends traffic elsewhere.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::redis::{HMAC, JWT, redis_url};
use crate::helpers::{Db, Spawn, TestApp, Ws, assert_error, created, fixtures};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Receipt {
    path: String,
    id: String,
    timestamp: String,
    signature: String,
    body: String,
}

/// A webhook receiver on 127.0.0.1: records every request, answers `status` after `delay_ms`.
struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Receipt>>>,
    status: Arc<AtomicU16>,
    delay_ms: Arc<AtomicU64>,
    stop: tokio_util::sync::CancellationToken,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Receiver::on(listener).await
    }

    async fn on(listener: tokio::net::TcpListener) -> Receiver {
        let addr = listener.local_addr().expect("addr");
        let got: Arc<Mutex<Vec<Receipt>>> = Default::default();
        let status = Arc::new(AtomicU16::new(200));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let stop = tokio_util::sync::CancellationToken::new();
        let (g, s, d) = (got.clone(), status.clone(), delay_ms.clone());
        let handler = move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: String| {
            let (g, s, d) = (g.clone(), s.clone(), d.clone());
            async move {
                let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                // The answer is decided when the request arrives: a test that changes the status
                // once it has seen this receipt must not change this answer.
                let code = axum::http::StatusCode::from_u16(s.load(Ordering::SeqCst)).expect("status");
                g.lock().expect("lock").push(Receipt {
                    path: uri.path().to_string(),
                    id: h("webhook-id"),
                    timestamp: h("webhook-timestamp"),
                    signature: h("webhook-signature"),
                    body,
                });
                tokio::time::sleep(Duration::from_millis(d.load(Ordering::SeqCst))).await;
                (code, "x".repeat(3000))
            }
        };
        let app = axum::Router::new().fallback(axum::routing::post(handler));
        let token = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(token.cancelled_owned()).await;
        });
        Receiver { addr, got, status, delay_ms, stop }
    }

    fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/hook/{name}", self.addr.port())
    }

    fn receipts(&self, name: &str) -> Vec<Receipt> {
        let path = format!("/hook/{name}");
        self.got.lock().expect("lock").iter().filter(|r| r.path == path).cloned().collect()
    }
}

/// Checks a delivery's signature the way a receiver would, with HMAC-SHA256 directly (not the
/// server's code), and returns its body as JSON.
fn verified(r: &Receipt, secret: &str) -> Value {
    let key = B64.decode(secret.strip_prefix("whsec_").expect("whsec_ prefix")).expect("base64 secret");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("key");
    mac.update(format!("{}.{}.{}", r.id, r.timestamp, r.body).as_bytes());
    let expected = format!("v1,{}", B64.encode(mac.finalize().into_bytes()));
    assert_eq!(r.signature, expected, "signature of {}", r.id);
    assert!(r.timestamp.parse::<i64>().is_ok(), "webhook-timestamp is unix seconds: {}", r.timestamp);
    assert!(uuid::Uuid::parse_str(&r.id).is_ok(), "webhook-id is a UUID: {}", r.id);
    serde_json::from_str(&r.body).expect("JSON body")
}

/// Settings every webhook test uses: the receiver's host allowed, short retries.
fn local(c: &mut vitrine::config::Config) {
    c.webhook_allowed_hosts = vec!["127.0.0.1".into()];
    c.webhook_retry_delays_secs = vec![1, 1];
}

async fn spawn_local(db: Db) -> TestApp {
    TestApp::spawn_with(Spawn { db, tweak: Box::new(local), ..Default::default() }).await
}

async fn add_hook(app: &TestApp, token: &str, url: &str, events: &[&str]) -> Value {
    created(app.post_json("/api/webhooks/", Some(token), &json!({"url": url, "events": events})).await).await
}

/// Waits until `n` receipts reached `name` (or panics after 20 s).
async fn wait_receipts(rx: &Receiver, name: &str, n: usize) -> Vec<Receipt> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let got = rx.receipts(name);
        if got.len() >= n {
            return got;
        }
        assert!(tokio::time::Instant::now() < deadline, "{name}: {} of {n} deliveries arrived", got.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the webhook's newest delivery is no longer pending; returns it.
async fn wait_settled(app: &TestApp, token: &str, hook: i64) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let page: Value =
            app.get(&format!("/api/webhooks/{hook}/deliveries/"), Some(token)).await.json().await.expect("json");
        if let Some(d) = page["results"].get(0)
            && d["status"] != "pending"
        {
            return d.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "delivery still pending: {page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn share_of(app: &TestApp, token: &str) -> Value {
    let asset = app.upload(token, "photo.png", fixtures::png(8, 8)).await;
    let id = asset["id"].as_i64().expect("asset id");
    created(app.post_json(&format!("/api/v3/assets/{id}/share/"), Some(token), &json!({"share_type": "public"})).await)
        .await
}

/// The worker's store calls on their own: claims in order with a lease, a lease run out lets
/// another worker claim, and a batch of finished attempts (one statement) records each row under
/// its own claim only, with its own values. The deliveries are due in 2100, so the app's own worker
/// (on the real clock) never takes them.
async fn attempts_are_recorded_only_under_the_claim_that_made_them(db: Db) {
    use vitrine::domain::audit::{AuditAction, Who};
    use vitrine::domain::webhooks::{DeliveryStatus, EventType, Scope, WebhookSettings};
    use vitrine::store::webhooks::{Attempt, Finished, Inserted};
    const T: i64 = 4_102_444_800_000;
    let app = spawn_local(db).await;
    let (_, user) = app.admin_and_user().await;
    let me: Value = app.get("/api/auth/me/", Some(&user)).await.json().await.expect("json");
    let store = &app.state.store;
    let settings = WebhookSettings {
        url: url::Url::parse("http://127.0.0.1:9/never").expect("url"),
        events: vec![EventType::ShareCreated],
        description: String::new(),
        scope: Scope::Own,
        active: true,
    };
    let audit = |id| Who::system().entry(AuditAction::WebhookCreated, id, json!({}));
    let Inserted::Created(hook) = store
        .insert_webhook(me["id"].as_i64().expect("id"), &settings, "whsec_c2VjcmV0", T, audit)
        .await
        .expect("insert")
    else {
        panic!("created")
    };
    let mut ids = vec![];
    for _ in 0..3 {
        ids.push(store.enqueue_test(hook.id, &json!({}), T).await.expect("enqueue").id);
    }
    let claimed = |c: Vec<vitrine::store::webhooks::Claimed>| c.iter().map(|c| c.delivery.id).collect::<Vec<_>>();
    assert_eq!(
        claimed(store.claim_deliveries("a", T - 1, T + 1_000, 16).await.expect("claim")),
        Vec::<i64>::new(),
        "not due yet"
    );
    let a = store.claim_deliveries("a", T, T + 1_000, 2).await.expect("claim");
    assert_eq!(claimed(a.clone()), ids[..2].to_vec(), "oldest first, at most the limit");
    assert_eq!(a[0].url, "http://127.0.0.1:9/never");
    assert_eq!(a[0].secret, "whsec_c2VjcmV0");
    assert_eq!(claimed(store.claim_deliveries("b", T + 500, T + 5_000, 16).await.expect("claim")), vec![ids[2]]);
    // a's lease runs out at T + 1000: b takes its two.
    assert_eq!(claimed(store.claim_deliveries("b", T + 2_000, T + 5_000, 16).await.expect("claim")), ids[..2].to_vec());
    let attempt = |status, next, code: Option<i64>, error: Option<&str>| Attempt {
        status,
        next_attempt_at: next,
        response_status: code,
        response_body: code.map(|c| format!("answer {c}")),
        error: error.map(str::to_string),
    };
    let done = |id: i64, token: &str, at: i64, a: Attempt| Finished { id, token: token.into(), attempt: a, at };
    assert!(store.finish_deliveries(&[]).await.expect("nothing").is_empty());
    let kept = store
        .finish_deliveries(&[
            done(ids[0], "a", T + 2_100, attempt(DeliveryStatus::Delivered, T + 2_100, Some(200), None)),
            done(ids[2], "b", T + 2_200, attempt(DeliveryStatus::Pending, T + 9_000, Some(500), None)),
        ])
        .await
        .expect("finish");
    assert_eq!(kept, vec![false, true], "a lost its claim of the first");
    let kept = store
        .finish_deliveries(&[
            done(ids[1], "b", T + 2_400, attempt(DeliveryStatus::Failed, T + 2_400, None, Some("no answer in time"))),
            done(ids[0], "b", T + 2_500, attempt(DeliveryStatus::Delivered, T + 2_500, Some(204), None)),
        ])
        .await
        .expect("finish");
    assert_eq!(kept, vec![true, true]);
    let mut read = vec![];
    for id in &ids {
        read.push(store.delivery(*id).await.expect("read").expect("delivery"));
    }
    let [d0, d1, d2] = <[_; 3]>::try_from(read).expect("three");
    assert_eq!(
        (d0.status, d0.attempts, d0.delivered_at, d0.response_status),
        (DeliveryStatus::Delivered, 1, Some(T + 2_500), Some(204))
    );
    assert_eq!(d0.response_body.as_deref(), Some("answer 204"));
    assert_eq!((d1.status, d1.attempts, d1.delivered_at), (DeliveryStatus::Failed, 1, None));
    assert_eq!(d1.last_error.as_deref(), Some("no answer in time"));
    assert_eq!(
        (d2.status, d2.attempts, d2.next_attempt_at, d2.response_status),
        (DeliveryStatus::Pending, 1, T + 9_000, Some(500))
    );
    // The retry is claimable again when due, by anyone; the others are settled.
    assert_eq!(
        claimed(store.claim_deliveries("c", T + 8_999, T + 20_000, 16).await.expect("claim")),
        Vec::<i64>::new()
    );
    assert_eq!(claimed(store.claim_deliveries("c", T + 9_000, T + 20_000, 16).await.expect("claim")), vec![ids[2]]);
    // Recording twice under the same claim does nothing the second time.
    let again = done(ids[2], "c", T + 9_100, attempt(DeliveryStatus::Delivered, T + 9_100, Some(200), None));
    assert_eq!(store.finish_deliveries(std::slice::from_ref(&again)).await.expect("finish"), vec![true]);
    assert_eq!(store.finish_deliveries(&[again]).await.expect("finish"), vec![false]);
    assert_eq!(store.delivery(ids[2]).await.expect("read").expect("delivery").attempts, 2);
    // A stopping worker gives back what it never started: only under its own claim.
    let mut more = vec![];
    for _ in 0..3 {
        more.push(store.enqueue_test(hook.id, &json!({}), T + 10_000).await.expect("enqueue").id);
    }
    assert_eq!(claimed(store.claim_deliveries("d", T + 10_000, T + 90_000, 16).await.expect("claim")), more);
    let given = store.release_deliveries(&[(more[0], "d".into()), (more[1], "e".into())]).await.expect("release");
    assert_eq!(given, 1, "the second is d's, not e's");
    assert_eq!(claimed(store.claim_deliveries("e", T + 10_001, T + 90_000, 16).await.expect("claim")), vec![more[0]]);
    // Three rows in one statement (padded to four), each with its own values.
    let kept = store
        .finish_deliveries(&[
            done(more[1], "d", T + 10_100, attempt(DeliveryStatus::Delivered, T + 10_100, Some(201), None)),
            done(more[2], "d", T + 10_200, attempt(DeliveryStatus::Failed, T + 10_200, Some(410), None)),
            done(more[0], "e", T + 10_300, attempt(DeliveryStatus::Delivered, T + 10_300, Some(202), None)),
        ])
        .await
        .expect("finish");
    assert_eq!(kept, vec![true, true, true]);
    let mut got = vec![];
    for id in &more {
        let d = store.delivery(*id).await.expect("read").expect("delivery");
        got.push((d.status, d.response_status, d.delivered_at));
    }
    assert_eq!(
        got,
        vec![
            (DeliveryStatus::Delivered, Some(202), Some(T + 10_300)),
            (DeliveryStatus::Delivered, Some(201), Some(T + 10_100)),
            (DeliveryStatus::Failed, Some(410), None),
        ]
    );
}

async fn creates_reads_changes_and_deletes_a_webhook(db: Db) {
    let app = spawn_local(db).await;
    let (admin, user) = app.admin_and_user().await;
    let rx = Receiver::start().await;
    let r = app
        .post_json(
            "/api/webhooks/",
            Some(&user),
            &json!({"url": rx.url("a"), "events": ["share.created", "share.viewed"], "description": "mine"}),
        )
        .await;
    let hook = created(r).await;
    let secret = hook["secret"].as_str().expect("secret shown once");
    assert!(secret.starts_with("whsec_"), "{secret}");
    let key = B64.decode(&secret[6..]).expect("base64");
    assert!((24..=32).contains(&key.len()), "{} key bytes", key.len());
    assert_eq!(hook["events"], json!(["share.created", "share.viewed"]));
    assert_eq!(hook["active"], true);
    assert_eq!(hook["description"], "mine");
    assert!(hook["created_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    let id = hook["id"].as_i64().expect("id");

    let one: Value = app.get(&format!("/api/webhooks/{id}/"), Some(&user)).await.json().await.expect("json");
    assert_eq!(one["url"], rx.url("a"));
    assert!(one.get("secret").is_none(), "the secret is shown once: {one}");
    let list: Value = app.get("/api/webhooks/", Some(&user)).await.json().await.expect("json");
    assert_eq!(list["count"], 1);
    assert!(list["results"][0].get("secret").is_none());

    // Another user's webhook is unknown to them, whatever they try.
    for (m, path) in [
        (reqwest::Method::GET, format!("/api/webhooks/{id}/")),
        (reqwest::Method::DELETE, format!("/api/webhooks/{id}/")),
        (reqwest::Method::POST, format!("/api/webhooks/{id}/test/")),
        (reqwest::Method::GET, format!("/api/webhooks/{id}/deliveries/")),
    ] {
        let r = app.req(m, &path, Some(&admin)).send().await.expect("request");
        assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    }
    let r = app.patch_json(&format!("/api/webhooks/{id}/"), Some(&admin), &json!({"active": false})).await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    let empty: Value = app.get("/api/webhooks/", Some(&admin)).await.json().await.expect("json");
    assert_eq!(empty["count"], 0);

    let patched: Value = app
        .patch_json(
            &format!("/api/webhooks/{id}/"),
            Some(&user),
            &json!({"events": ["share.revoked"], "active": false, "description": "paused"}),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(patched["events"], json!(["share.revoked"]));
    assert_eq!(patched["active"], false);
    assert_eq!(patched["description"], "paused");
    assert_eq!(patched["url"], rx.url("a"));
    let r = app.patch_json(&format!("/api/webhooks/{id}/"), Some(&user), &json!({"events": ["nope"]})).await;
    let body = assert_error(r, StatusCode::BAD_REQUEST, "validation_error").await;
    assert!(body["fields"]["events"].is_string(), "{body}");

    assert_eq!(app.delete(&format!("/api/webhooks/{id}/"), Some(&user)).await.status(), StatusCode::NO_CONTENT);
    let r = app.get(&format!("/api/webhooks/{id}/"), Some(&user)).await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(app.get("/api/webhooks/", None).await.status(), StatusCode::UNAUTHORIZED);
}

async fn refuses_bad_urls_events_and_scopes(db: Db) {
    // No allowed hosts here: every loopback form is refused.
    let app = TestApp::on(db).await;
    let (_admin, user) = app.admin_and_user().await;
    let refused_urls = [
        "http://localhost/hook",
        "http://localhost./hook",
        "http://LOCALHOST:8080/hook",
        "http://127.0.0.1/hook",
        "http://127.0.0.2/hook",
        "http://2130706433/hook",
        "http://0x7f.1/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[::ffff:169.254.169.254]/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/hook",
        "http://172.16.0.1/hook",
        "http://192.168.0.1/hook",
        "http://100.64.0.1/hook",
        "http://0.0.0.0/hook",
        "http://[fc00::1]/hook",
        "http://[fe80::1]/hook",
        "ftp://127.0.0.1/hook",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "gopher://localhost/",
        "not a url",
        "",
    ];
    for url in refused_urls {
        let r = app.post_json("/api/webhooks/", Some(&user), &json!({"url": url, "events": ["share.created"]})).await;
        let body = assert_error(r, StatusCode::BAD_REQUEST, "validation_error").await;
        assert!(body["fields"]["url"].is_string(), "{url}: {body}");
    }
    for events in [json!([]), json!(["share.exploded"]), json!(["webhook.test"]), json!("share.created")] {
        let r =
            app.post_json("/api/webhooks/", Some(&user), &json!({"url": "http://127.0.0.1/", "events": events})).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{events}");
    }
    let r = app
        .post_json(
            "/api/webhooks/",
            Some(&user),
            &json!({"url": "https://127.0.0.1/", "events": ["share.created"], "description": "d".repeat(501)}),
        )
        .await;
    let body = assert_error(r, StatusCode::BAD_REQUEST, "validation_error").await;
    assert!(body["fields"]["description"].is_string(), "{body}");
    let r = app.post_json("/api/webhooks/", Some(&user), &json!([1, 2])).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

async fn scope_all_is_for_admins_and_hears_everyone(db: Db) {
    let app = spawn_local(db).await;
    let (admin, user) = app.admin_and_user().await;
    let rx = Receiver::start().await;
    let r = app
        .post_json(
            "/api/webhooks/",
            Some(&user),
            &json!({"url": rx.url("u"), "events": ["share.created"], "scope": "all"}),
        )
        .await;
    assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = app
        .post_json(
            "/api/webhooks/",
            Some(&user),
            &json!({"url": rx.url("u"), "events": ["share.created"], "scope": "x"}),
        )
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "validation_error").await;
    let all = created(
        app.post_json(
            "/api/webhooks/",
            Some(&admin),
            &json!({"url": rx.url("all"), "events": ["share.created"], "scope": "all"}),
        )
        .await,
    )
    .await;
    assert_eq!(all["scope"], "all");
    let mine = add_hook(&app, &user, &rx.url("mine"), &["share.created"]).await;
    // The user's link reaches both; the admin's own link reaches only the admin's.
    let share = share_of(&app, &user).await;
    let got = wait_receipts(&rx, "all", 1).await;
    let body = verified(&got[0], all["secret"].as_str().expect("secret"));
    assert_eq!(body["type"], "share.created");
    assert_eq!(body["data"]["share"]["uuid"], share["uuid"]);
    let got = wait_receipts(&rx, "mine", 1).await;
    verified(&got[0], mine["secret"].as_str().expect("secret"));
    share_of(&app, &admin).await;
    wait_receipts(&rx, "all", 2).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.receipts("mine").len(), 1, "another user's link never reaches my webhook");
}

async fn every_event_reaches_its_owner_signed(db: Db) {
    let app = spawn_local(db).await;
    let (admin, user) = app.admin_and_user().await;
    let rx = Receiver::start().await;
    let all_events = [
        "share.created",
        "share.revoked",
        "share.viewed",
        "share.downloaded",
        "file_request.uploaded",
        "comment.created",
        "collaboration.session_ended",
        "chat.file_shared",
    ];
    let hook = add_hook(&app, &user, &rx.url("user"), &all_events).await;
    let secret = hook["secret"].as_str().expect("secret").to_string();
    let admin_hook = add_hook(&app, &admin, &rx.url("admin"), &all_events).await;
    // Someone else's activity first: none of it may reach the user's webhook.
    share_of(&app, &admin).await;

    let share = share_of(&app, &user).await;
    let uuid = share["uuid"].as_str().expect("uuid").to_string();
    let asset_id = share["asset_id"].as_i64().expect("asset id");
    let visitor = reqwest::Client::new();
    let page = visitor
        .get(app.url(&format!("/share/{uuid}/")))
        .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0")
        .send()
        .await
        .expect("view");
    assert_eq!(page.status(), StatusCode::OK);
    let download = visitor
        .get(app.url(&format!("/share/{uuid}/download")))
        .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0")
        .send()
        .await
        .expect("download");
    assert_eq!(download.status(), StatusCode::OK);
    download.bytes().await.expect("bytes");
    app.state.analytics.flush().await.expect("flush");
    let r = app
        .post_json(&format!("/api/v3/assets/{asset_id}/comments/"), Some(&user), &json!({"content": "looks good"}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let fr = created(app.post_json("/api/v3/file-requests/", Some(&user), &json!({"title": "Send it"})).await).await;
    let form = reqwest::multipart::Form::new()
        .text("uploader_name", "Sam")
        .part("file", reqwest::multipart::Part::bytes(fixtures::png(4, 4)).file_name("in.png"));
    let r = visitor
        .post(app.url(&format!("/upload/{}/files", fr["uuid"].as_str().expect("uuid"))))
        .header("accept", "application/json")
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
    let session = created(
        app.post_json(
            "/api/v3/collaboration/sessions/",
            Some(&user),
            &json!({"asset_id": asset_id, "participants": []}),
        )
        .await,
    )
    .await;
    let sid = session["session_id"].as_str().expect("session id");
    let r = app.post_json(&format!("/api/v3/collaboration/sessions/{sid}/end/"), Some(&user), &json!({})).await;
    assert!(r.status().is_success(), "end: {}", r.status());
    assert_eq!(app.delete(&format!("/api/v3/shares/{uuid}/"), Some(&user)).await.status(), StatusCode::NO_CONTENT);

    let expected = [
        "share.created",
        "share.viewed",
        "share.downloaded",
        "comment.created",
        "file_request.uploaded",
        "collaboration.session_ended",
        "share.revoked",
    ];
    let got = wait_receipts(&rx, "user", expected.len()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got_after = rx.receipts("user");
    assert_eq!(got_after.len(), got.len(), "no more than one delivery per event");
    let mut by_type: HashMap<String, Value> = HashMap::new();
    for r in &got_after {
        let body = verified(r, &secret);
        assert!(body["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')), "{body}");
        by_type.insert(body["type"].as_str().expect("type").to_string(), body);
    }
    for t in expected {
        assert!(by_type.contains_key(t), "{t} missing: {:?}", by_type.keys().collect::<Vec<_>>());
    }
    assert_eq!(by_type["share.viewed"]["data"]["share"]["uuid"], uuid);
    assert_eq!(by_type["share.downloaded"]["data"]["share"]["uuid"], uuid);
    assert_eq!(by_type["share.revoked"]["data"]["share"]["uuid"], uuid);
    assert_eq!(by_type["comment.created"]["data"]["comment"]["content"], "looks good");
    assert_eq!(by_type["file_request.uploaded"]["data"]["uploader"]["name"], "Sam");
    assert_eq!(by_type["collaboration.session_ended"]["data"]["session"]["session_id"], sid);
    assert_eq!(by_type["collaboration.session_ended"]["data"]["session"]["reason"], "ended");
    assert!(by_type.values().all(|b| b["data"]["share"]["uuid"] != json!(null) || b["type"] != "share.created"));

    // Chat: the company's agents hear its files.
    let me: Value = app.get("/api/auth/me/", Some(&admin)).await.json().await.expect("json");
    let c = created(app.post_json("/api/companies/", Some(&admin), &json!({"name": "Acme"})).await).await;
    let company = c["company_id"].as_str().expect("company id");
    let r =
        app.post_json(&format!("/api/companies/{company}/agents/"), Some(&admin), &json!({"user_id": me["id"]})).await;
    assert!(r.status().is_success(), "agent: {}", r.status());
    let s = created(app.post_json("/api/chat/sessions/", None, &json!({"widget_key": c["widget_key"]})).await).await;
    let r = crate::helpers::chat_upload(
        &app,
        s["token"].as_str().expect("token"),
        (company, s["session_id"].as_str().expect("session")),
        "doc.pdf",
        fixtures::pdf(1),
    )
    .await;
    assert!(r.status().is_success(), "chat upload: {}", r.status());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let chat = loop {
        let found = rx.receipts("admin").into_iter().find(|r| r.body.contains("chat.file_shared"));
        if let Some(f) = found {
            break f;
        }
        assert!(tokio::time::Instant::now() < deadline, "chat.file_shared did not arrive");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let body = verified(&chat, admin_hook["secret"].as_str().expect("secret"));
    assert_eq!(body["data"]["file"]["name"], "doc.pdf");
    assert!(rx.receipts("user").iter().all(|r| !r.body.contains("chat.file_shared")), "not an agent of it");
}

async fn test_events_and_paginated_deliveries(db: Db) {
    let app = spawn_local(db).await;
    let (_, user) = app.admin_and_user().await;
    let rx = Receiver::start().await;
    let hook = add_hook(&app, &user, &rx.url("t"), &["share.created"]).await;
    let id = hook["id"].as_i64().expect("id");
    for _ in 0..3 {
        let r = app.post_json(&format!("/api/webhooks/{id}/test/"), Some(&user), &json!({})).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let d: Value = r.json().await.expect("json");
        assert_eq!(d["event"], "webhook.test");
        assert!(d["event_id"].as_str().is_some_and(|e| uuid::Uuid::parse_str(e).is_ok()));
    }
    let got = wait_receipts(&rx, "t", 3).await;
    for r in &got {
        let body = verified(r, hook["secret"].as_str().expect("secret"));
        assert_eq!(body["type"], "webhook.test");
        assert_eq!(body["data"]["webhook_id"], id);
    }
    wait_settled(&app, &user, id).await;
    let page: Value =
        app.get(&format!("/api/webhooks/{id}/deliveries/?page_size=2"), Some(&user)).await.json().await.expect("json");
    assert_eq!(page["count"], 3);
    assert_eq!(page["results"].as_array().expect("results").len(), 2);
    assert!(page["next"].as_str().is_some_and(|n| n.starts_with("http") && n.contains("page=2")), "{page}");
    let d = &page["results"][0];
    for k in ["id", "event_id", "event", "status", "attempts", "response_status", "created_at", "delivered_at"] {
        assert!(d.get(k).is_some(), "{k} missing in {d}");
    }
    assert_eq!(d["response_status"], 200);
    assert_eq!(d["response_body"].as_str().map(str::len), Some(1024), "at most 1 KiB of the answer is kept");
    let page2: Value = app
        .get(&format!("/api/webhooks/{id}/deliveries/?page_size=2&page=2"), Some(&user))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(page2["results"].as_array().expect("results").len(), 1);
    let r = app.get(&format!("/api/webhooks/{id}/deliveries/?page_size=500"), Some(&user)).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

async fn retries_errors_with_the_delays_then_fails(db: Db) {
    let app = spawn_local(db).await;
    let (_, user) = app.admin_and_user().await;
    let rx = Receiver::start().await;
    rx.status.store(500, Ordering::SeqCst);
    let hook = add_hook(&app, &user, &rx.url("r"), &["share.created"]).await;
    let id = hook["id"].as_i64().expect("id");
    app.post_json(&format!("/api/webhooks/{id}/test/"), Some(&user), &json!({})).await;
    // Delays [1, 1]: three attempts, then failed.
    let d = wait_settled(&app, &user, id).await;
    assert_eq!(d["status"], "failed", "{d}");
    assert_eq!(d["attempts"], 3);
    assert_eq!(d["response_status"], 500);
    let got = rx.receipts("r");
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|r| r.id == got[0].id), "one webhook-id for every attempt");
    for r in &got {
        verified(r, hook["secret"].as_str().expect("secret"));
    }
    // A 3xx is not followed and not a delivery.
    rx.status.store(302, Ordering::SeqCst);
    app.post_json(&format!("/api/webhooks/{id}/test/"), Some(&user), &json!({})).await;
    wait_receipts(&rx, "r", 4).await;
    rx.status.store(200, Ordering::SeqCst);
    let d = wait_settled(&app, &user, id).await;
    assert_eq!(d["status"], "delivered", "{d}");
    assert_eq!(d["attempts"], 2, "the 302 was retried: {d}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_waits_for_its_delay_on_the_apps_clock() {
    let app = TestApp::spawn_with(Spawn {
        tweak: Box::new(|c| {
            c.webhook_allowed_hosts = vec!["127.0.0.1".into()];
            c.webhook_retry_delays_secs = vec![3600];
        }),
        ..Default::default()
    })
    .await;
    let (_, user) = app.admin_and_user().await;
    let rx = Receiver::start().await;
    rx.status.store(503, Ordering::SeqCst);
    let hook = add_hook(&app, &user, &rx.url("c"), &["share.created"]).await;
    let id = hook["id"].as_i64().expect("id");
    app.post_json(&format!("/api/webhooks/{id}/test/"), Some(&user), &json!({})).await;
    wait_receipts(&rx, "c", 1).await;
    rx.status.store(204, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(rx.receipts("c").len(), 1, "not retried before its delay");
    let page: Value =
        app.get(&format!("/api/webhooks/{id}/deliveries/"), Some(&user)).await.json().await.expect("json");
    assert_eq!(page["results"][0]["status"], "pending");
    assert_eq!(page["results"][0]["attempts"], 1);
    app.advance(Duration::from_secs(3601));
    let d = wait_settled(&app, &user, id).await;
    assert_eq!(d["status"], "delivered");
    assert_eq!(d["attempts"], 2);
    assert_eq!(d["response_status"], 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_does_not_answer_in_time_is_retried() {
    let app = TestApp::spawn_with(Spawn {
        tweak: Box::new(|c| {
            local(c);
            c.webhook_timeout_secs = 1;
            c.webhook_retry_delays_secs = vec![1];
        }),
        ..Default::default()
    })
    .await;
    let (_, user) = app.admin_and_user().await;
    let rx = Receiver::start().await;
    rx.delay_ms.store(3000, Ordering::SeqCst);
    let hook = add_hook(&app, &user, &rx.url("slow"), &["share.created"]).await;
    let id = hook["id"].as_i64().expect("id");
    app.post_json(&format!("/api/webhooks/{id}/test/"), Some(&user), &json!({})).await;
    wait_receipts(&rx, "slow", 1).await;
    rx.delay_ms.store(0, Ordering::SeqCst);
    let d = wait_settled(&app, &user, id).await;
    assert_eq!(d["status"], "delivered", "{d}");
    assert_eq!(d["attempts"], 2);
    let got = rx.receipts("slow");
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].id, got[1].id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_is_checked_again_at_delivery() {
    let rx = Receiver::start().await;
    let url = format!("http://localhost:{}/hook/x", rx.addr.port());
    let shared = |allowed: Vec<String>, db: Option<String>| {
        move |c: &mut vitrine::config::Config| {
            c.webhook_allowed_hosts = allowed;
            c.webhook_retry_delays_secs = vec![];
            c.jwt_secret = Some(JWT.into());
            c.hmac_secret = Some(HMAC.into());
            if db.is_some() {
                c.database_url = db;
            }
        }
    };
    // Listed in webhook_allowed_hosts: accepted and delivered to.
    let allowed =
        TestApp::spawn_with(Spawn { tweak: Box::new(shared(vec!["localhost".into()], None)), ..Default::default() })
            .await;
    let (_, user) = allowed.admin_and_user().await;
    let hook = add_hook(&allowed, &user, &url, &["share.created"]).await;
    let id = hook["id"].as_i64().expect("id");
    allowed.post_json(&format!("/api/webhooks/{id}/test/"), Some(&user), &json!({})).await;
    let d = wait_settled(&allowed, &user, id).await;
    assert_eq!(d["status"], "delivered", "an allowed host is reached: {d}");
    assert_eq!(rx.receipts("x").len(), 1);
    allowed.shutdown().await.expect("join").expect("run");
    // The same rows on an instance without the allowance: refused when created, and the stored
    // webhook is refused at delivery (it resolves to loopback), nothing is sent.
    let db = allowed.state.config.database_url.clone();
    let strict = TestApp::spawn_with(Spawn { tweak: Box::new(shared(vec![], db)), ..Default::default() }).await;
    let r = strict.post_json("/api/webhooks/", Some(&user), &json!({"url": url, "events": ["share.created"]})).await;
    assert_error(r, StatusCode::BAD_REQUEST, "validation_error").await;
    strict.post_json(&format!("/api/webhooks/{id}/test/"), Some(&user), &json!({})).await;
    let d = wait_settled(&strict, &user, id).await;
    assert_eq!(d["status"], "failed", "{d}");
    assert!(d["error"].as_str().is_some_and(|e| e.contains("loopback")), "{d}");
    assert_eq!(d["response_status"], Value::Null);
    assert_eq!(rx.receipts("x").len(), 1, "nothing sent to a loopback address");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_survives_a_restart_between_event_and_delivery() {
    // The receiver is not listening yet: the first attempt fails, the next is an hour away.
    let hold = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = hold.local_addr().expect("addr").port();
    drop(hold);
    let tweak = |c: &mut vitrine::config::Config| {
        c.webhook_allowed_hosts = vec!["127.0.0.1".into()];
        c.webhook_retry_delays_secs = vec![3600];
        c.jwt_secret = Some(JWT.into());
        c.hmac_secret = Some(HMAC.into());
    };
    let first = TestApp::spawn_with(Spawn { tweak: Box::new(tweak), ..Default::default() }).await;
    let (_, user) = first.admin_and_user().await;
    let hook = add_hook(&first, &user, &format!("http://127.0.0.1:{port}/hook/later"), &["share.created"]).await;
    let id = hook["id"].as_i64().expect("id");
    let share = share_of(&first, &user).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let page: Value =
            first.get(&format!("/api/webhooks/{id}/deliveries/"), Some(&user)).await.json().await.expect("json");
        if page["results"][0]["attempts"] == 1 {
            assert_eq!(page["results"][0]["status"], "pending");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no first attempt: {page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    first.shutdown().await.expect("join").expect("run");

    let rx = Receiver::on(tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("rebind")).await;
    let db = first.state.config.database_url.clone();
    let second = TestApp::spawn_with(Spawn {
        tweak: Box::new(move |c| {
            tweak(c);
            c.database_url = db;
        }),
        ..Default::default()
    })
    .await;
    second.advance(Duration::from_secs(3601));
    let got = wait_receipts(&rx, "later", 1).await;
    let body = verified(&got[0], hook["secret"].as_str().expect("secret"));
    assert_eq!(body["type"], "share.created");
    assert_eq!(body["data"]["share"]["uuid"], share["uuid"]);
    let d = wait_settled(&second, &user, id).await;
    assert_eq!(d["status"], "delivered");
    assert_eq!(d["attempts"], 2);
    assert_eq!(d["event_id"], got[0].id);
}

/// A worker claims ahead of its 16 slots; when its instance stops, what it claimed and never
/// started goes back to the outbox at once (not after the 80 s lease), and what it sent is
/// recorded: the next instance sends only the rest, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopping_instance_gives_back_the_deliveries_it_never_started() {
    let rx = Receiver::start().await;
    rx.delay_ms.store(3_000, Ordering::SeqCst);
    // The same secrets on both: the account's token works on the second too.
    let tweak = |c: &mut vitrine::config::Config| {
        local(c);
        c.jwt_secret = Some(JWT.into());
        c.hmac_secret = Some(HMAC.into());
    };
    let first = TestApp::spawn_with(Spawn { tweak: Box::new(tweak), ..Default::default() }).await;
    let (_, user) = first.admin_and_user().await;
    let hook = add_hook(&first, &user, &rx.url("stop"), &["share.created"]).await;
    let id = hook["id"].as_i64().expect("id");
    for _ in 0..20 {
        let r = first.post_json(&format!("/api/webhooks/{id}/test/"), Some(&user), &json!({})).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    // 16 attempts under way (the receiver answers after 3 s), 4 claimed and waiting for a slot.
    wait_receipts(&rx, "stop", 16).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.receipts("stop").len(), 16, "16 slots");
    first.shutdown().await.expect("join").expect("run");
    assert_eq!(rx.receipts("stop").len(), 16, "nothing new started while stopping");

    let db = first.state.config.database_url.clone();
    let second = TestApp::spawn_with(Spawn {
        tweak: Box::new(move |c| {
            tweak(c);
            c.database_url = db;
        }),
        ..Default::default()
    })
    .await;
    let started = tokio::time::Instant::now();
    let got = wait_receipts(&rx, "stop", 20).await;
    assert!(started.elapsed() < Duration::from_secs(15), "given back, not left to their lease");
    let ids: std::collections::HashSet<&str> = got.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), 20, "each event once: the 16 sent before the stop were recorded");
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let page: Value =
        second.get(&format!("/api/webhooks/{id}/deliveries/"), Some(&user)).await.json().await.expect("json");
    let results = page["results"].as_array().expect("results");
    assert_eq!(results.len(), 20);
    assert!(results.iter().all(|d| d["status"] == "delivered" && d["attempts"] == 1), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_postgres_deliver_each_event_once() {
    let Some(db @ Db::Postgres(_)) = Db::postgres() else { return };
    let Some((a, b)) = local_pair(db).await else { return };
    let rx = Receiver::start().await;
    let (_, user) = a.admin_and_user().await;
    let hook = add_hook(&a, &user, &rx.url("pair"), &["share.created"]).await;
    let id = hook["id"].as_i64().expect("id");
    let n = 30;
    for i in 0..n {
        let app = if i % 2 == 0 { &a } else { &b };
        let r = app.post_json(&format!("/api/webhooks/{id}/test/"), Some(&user), &json!({})).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        if i % 5 == 0 {
            // Both workers and two extra rounds claim at once.
            let (x, y) =
                tokio::join!(vitrine::jobs::webhooks::run_once(&a.state), vitrine::jobs::webhooks::run_once(&b.state));
            x.expect("round on a");
            y.expect("round on b");
        }
    }
    // An event made on the second instance reaches the webhook made on the first.
    share_of(&b, &user).await;
    let got = wait_receipts(&rx, "pair", n + 1).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let got_after = rx.receipts("pair");
    assert_eq!(got_after.len(), got.len());
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for r in &got_after {
        verified(r, hook["secret"].as_str().expect("secret"));
        *per_id.entry(r.id.clone()).or_default() += 1;
    }
    assert_eq!(per_id.len(), n + 1, "every event arrived");
    assert!(per_id.values().all(|c| *c == 1), "each event exactly once: {per_id:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_webhook_gets_nothing_until_resumed() {
    let app = spawn_local(Db::Sqlite).await;
    let (_, user) = app.admin_and_user().await;
    let rx = Receiver::start().await;
    let hook = add_hook(&app, &user, &rx.url("p"), &["share.created"]).await;
    let id = hook["id"].as_i64().expect("id");
    app.patch_json(&format!("/api/webhooks/{id}/"), Some(&user), &json!({"active": false})).await;
    share_of(&app, &user).await;
    app.post_json(&format!("/api/webhooks/{id}/test/"), Some(&user), &json!({})).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(rx.receipts("p").len(), 0, "paused");
    app.patch_json(&format!("/api/webhooks/{id}/"), Some(&user), &json!({"active": true})).await;
    let got = wait_receipts(&rx, "p", 1).await;
    assert_eq!(verified(&got[0], hook["secret"].as_str().expect("secret"))["type"], "webhook.test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_has_at_most_twenty_webhooks() {
    let app = spawn_local(Db::Sqlite).await;
    let (_, user) = app.admin_and_user().await;
    for i in 0..20 {
        add_hook(&app, &user, &format!("http://127.0.0.1:9/hook/{i}"), &["share.created"]).await;
    }
    let r = app
        .post_json("/api/webhooks/", Some(&user), &json!({"url": "http://127.0.0.1:9/", "events": ["share.created"]}))
        .await;
    assert_error(r, StatusCode::CONFLICT, "conflict").await;
}

/// Two instances of one deployment on `db` (the second opens the first one's database) and one
/// bus, with the webhook settings of `local`; None (the test is skipped) without Redis.
async fn local_pair(db: Db) -> Option<(TestApp, TestApp)> {
    let bus = redis_url().await?;
    let settings = move |bus: String, db: Option<String>| {
        move |c: &mut vitrine::config::Config| {
            local(c);
            c.bus_url = Some(bus);
            c.jwt_secret = Some(JWT.into());
            c.hmac_secret = Some(HMAC.into());
            if db.is_some() {
                c.database_url = db;
            }
        }
    };
    let a = TestApp::spawn_with(Spawn {
        db: db.clone(),
        tweak: Box::new(settings(bus.clone(), None)),
        ..Default::default()
    })
    .await;
    let b = TestApp::spawn_with(Spawn {
        db,
        tweak: Box::new(settings(bus, a.state.config.database_url.clone())),
        ..Default::default()
    })
    .await;
    Some((a, b))
}

async fn an_expired_session_queues_its_event_once_on_two_instances(db: Db) {
    let Some((a, b)) = local_pair(db).await else { return };
    let rx = Receiver::start().await;
    let (_, user) = a.admin_and_user().await;
    let hook = add_hook(&a, &user, &rx.url("expiry"), &["collaboration.session_ended"]).await;
    let hook_id = hook["id"].as_i64().expect("id");
    let asset = a.upload(&user, "photo.png", fixtures::png(8, 8)).await;
    let body = json!({"asset_id": asset["id"], "participants": [], "session_config": {"duration_hours": 1}});
    let session = created(a.post_json("/api/v3/collaboration/sessions/", Some(&user), &body).await).await;
    let sid = session["session_id"].as_str().expect("session id").to_string();
    // A second session that stays live: the sweep must leave it alone.
    let body = json!({"asset_id": asset["id"], "participants": [], "session_config": {"duration_hours": 3}});
    let live = created(a.post_json("/api/v3/collaboration/sessions/", Some(&user), &body).await).await;
    let live_id = live["session_id"].as_str().expect("session id").to_string();
    for app in [&a, &b] {
        assert_eq!(vitrine::jobs::session_expiry::run_once(&app.state).await.expect("sweep"), 0, "nothing expired yet");
    }

    // Two hours on, on both instances: the sweeps of both and a socket's check on each (what
    // every member's socket does when its timer reaches the expiry) all race for the end.
    a.advance(Duration::from_secs(7200));
    b.advance(Duration::from_secs(7200));
    let id = a.state.store.session_by_uuid(&sid).await.expect("read").expect("session").id;
    let (x, y, sx, sy) = tokio::join!(
        vitrine::jobs::session_expiry::run_once(&a.state),
        vitrine::jobs::session_expiry::run_once(&b.state),
        vitrine::service::collaboration::expire_by_id(&a.state, id),
        vitrine::service::collaboration::expire_by_id(&b.state, id),
    );
    let recorded =
        x.expect("sweep a") + y.expect("sweep b") + usize::from(sx.expect("a")) + usize::from(sy.expect("b"));
    assert_eq!(recorded, 1, "exactly one of the four recorded the end");
    for app in [&a, &b] {
        assert_eq!(vitrine::jobs::session_expiry::run_once(&app.state).await.expect("sweep"), 0, "recorded already");
    }

    let got = wait_receipts(&rx, "expiry", 1).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(rx.receipts("expiry").len(), 1, "one delivery, not one per instance");
    let event = verified(&got[0], hook["secret"].as_str().expect("secret"));
    assert_eq!(event["type"], "collaboration.session_ended");
    assert_eq!(event["data"]["session"]["session_id"], sid);
    assert_eq!(event["data"]["session"]["reason"], "expired");
    assert_eq!(event["data"]["session"]["ended_at"], session["expires_at"], "it ended when it expired");
    let page: Value =
        a.get(&format!("/api/webhooks/{hook_id}/deliveries/"), Some(&user)).await.json().await.expect("json");
    assert_eq!(page["results"].as_array().map(Vec::len), Some(1), "{page}");

    // The session reads as expired (not ended by its owner) on both instances; the other is live.
    for app in [&a, &b] {
        let s: Value =
            app.get(&format!("/api/v3/collaboration/sessions/{sid}/"), Some(&user)).await.json().await.expect("json");
        assert_eq!(s["status"], "expired", "{s}");
        let s: Value = app
            .get(&format!("/api/v3/collaboration/sessions/{live_id}/"), Some(&user))
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(s["status"], "live", "{s}");
    }
    // Its room recorded the end once, as an expiry.
    let rec: Value = b
        .get(&format!("/api/v3/collaboration/sessions/{sid}/recording/"), Some(&user))
        .await
        .json()
        .await
        .expect("json");
    let ends: Vec<&Value> =
        rec["events"].as_array().expect("events").iter().filter(|e| e["type"] == "session_ended").collect();
    assert_eq!(ends.len(), 1, "{rec}");
    assert_eq!(ends[0]["data"]["reason"], "expired");
    // Ending it now is refused as before: it is over.
    let r = b.post_json(&format!("/api/v3/collaboration/sessions/{sid}/end/"), Some(&user), &json!({})).await;
    assert_eq!(r.status(), StatusCode::GONE);
}

/// The sockets that are open when a session expires record its end themselves (no sweep runs
/// here): one socket on each instance, both see the expiry, one of them records it.
async fn open_sockets_on_two_instances_record_an_expiry_once(db: Db) {
    let Some((a, b)) = local_pair(db).await else { return };
    let rx = Receiver::start().await;
    let (_, user) = a.admin_and_user().await;
    add_hook(&a, &user, &rx.url("sockets"), &["collaboration.session_ended"]).await;
    let asset = a.upload(&user, "photo.png", fixtures::png(8, 8)).await;
    let body = json!({"asset_id": asset["id"], "participants": [], "session_config": {"duration_hours": 1}});
    let session = created(a.post_json("/api/v3/collaboration/sessions/", Some(&user), &body).await).await;
    let sid = session["session_id"].as_str().expect("session id").to_string();
    // A second and a half before the expiry, a socket on each instance.
    let ahead = Duration::from_millis(3_600_000 - 1_500);
    a.advance(ahead);
    b.advance(ahead);
    let path = format!("/ws/collaboration/{sid}/?token={user}");
    let mut on_a = Ws::connect(&a, &path).await;
    let mut on_b = Ws::connect(&b, &path).await;
    for ws in [&mut on_a, &mut on_b] {
        assert_eq!(ws.next_of("session_ended").await["reason"], "expired");
    }
    let got = wait_receipts(&rx, "sockets", 1).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(rx.receipts("sockets").len(), 1, "one event, not one per socket or instance");
    let event: Value = serde_json::from_str(&got[0].body).expect("json");
    assert_eq!(event["data"]["session"]["reason"], "expired");
    assert_eq!(event["data"]["session"]["ended_at"], session["expires_at"]);
    for app in [&a, &b] {
        assert_eq!(vitrine::jobs::session_expiry::run_once(&app.state).await.expect("sweep"), 0, "recorded already");
    }
    let rec: Value = b
        .get(&format!("/api/v3/collaboration/sessions/{sid}/recording/"), Some(&user))
        .await
        .json()
        .await
        .expect("json");
    let ends = rec["events"].as_array().expect("events").iter().filter(|e| e["type"] == "session_ended").count();
    assert_eq!(ends, 1, "{rec}");
}

crate::on_both_databases!(
    attempts_are_recorded_only_under_the_claim_that_made_them,
    open_sockets_on_two_instances_record_an_expiry_once,
    an_expired_session_queues_its_event_once_on_two_instances,
    creates_reads_changes_and_deletes_a_webhook,
    refuses_bad_urls_events_and_scopes,
    scope_all_is_for_admins_and_hears_everyone,
    every_event_reaches_its_owner_signed,
    test_events_and_paginated_deliveries,
    retries_errors_with_the_delays_then_fails,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_adds_tests_and_deletes_a_webhook_without_javascript() {
    let app = spawn_local(Db::Sqlite).await;
    let (_, _user) = app.admin_and_user().await;
    let rx = Receiver::start().await;
    let page = app.page_session("user@example.com").await;
    let r = page.get("/webhooks").await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.expect("html");
    assert!(html.contains("id=\"no-webhooks\"") && html.contains("share.viewed"), "{html}");
    assert!(!html.contains("scope \"all\""), "only admins see the scope choice");
    let url = rx.url("page");
    let r = page
        .post_form(
            "/webhooks",
            &[
                ("url", &url),
                ("events", "share.created"),
                ("events", "comment.created"),
                ("description", "from the page"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.expect("html");
    let start = html.find("id=\"webhook-secret\">").expect("secret shown") + "id=\"webhook-secret\">".len();
    let secret = html[start..].split('<').next().expect("secret").to_string();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert!(html.contains("share.created, comment.created"), "{html}");
    let again = page.get("/webhooks").await.text().await.expect("html");
    assert!(!again.contains(&secret), "the secret is shown once");
    let id: i64 = again
        .split("href=\"/webhooks/")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|s| s.parse().ok())
        .expect("a link to the webhook");

    // Refused input comes back on the list with the reason.
    let r = page.post_form("/webhooks", &[("url", "http://10.0.0.1/"), ("events", "share.created")]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.expect("html").contains("id=\"form-error\""));
    // Without the CSRF token nothing happens.
    let r = page.post_form_as_is(&format!("/webhooks/{id}/test"), &[]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let r = page.post_form(&format!("/webhooks/{id}/test"), &[]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let got = wait_receipts(&rx, "page", 1).await;
    assert_eq!(verified(&got[0], &secret)["type"], "webhook.test");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let html = page.get(&format!("/webhooks/{id}")).await.text().await.expect("html");
        if html.contains("status-delivered") {
            assert!(html.contains("webhook.test") && html.contains(&got[0].id), "{html}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not shown as delivered: {html}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Someone else's webhook is not found.
    let other = app.page_session("admin@example.com").await;
    assert_eq!(other.get(&format!("/webhooks/{id}")).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(other.post_form(&format!("/webhooks/{id}/delete"), &[]).await.status(), StatusCode::NOT_FOUND);
    let r = page.post_form(&format!("/webhooks/{id}/delete"), &[]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(page.get(&format!("/webhooks/{id}")).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.get("/webhooks", None).await.status(), StatusCode::SEE_OTHER);
}
