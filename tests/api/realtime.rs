//! Several instances on one Redis bus (DESIGN §3): rooms, presence and notifications span
//! instances; losing Redis degrades to local delivery and recovers by itself.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::redis::{OwnRedis, pair, redis_url, wait_connected};
use crate::helpers::{TestApp, Ws, fixtures};

struct Setup {
    owner: String,
    owner_id: i64,
    reviewer: String,
    reviewer_id: i64,
    session: Value,
}

async fn setup(a: &TestApp) -> Setup {
    let (owner, owner_id) = a.register("owner@example.com", "Olive Owner").await;
    let (reviewer, reviewer_id) = a.register("rita@example.com", "Rita Reviewer").await;
    let asset = a.upload(&owner, "deck.pdf", fixtures::pdf(800)).await;
    let session: Value = a
        .post_json(
            "/api/v3/collaboration/sessions/",
            Some(&owner),
            &json!({"asset_id": asset["id"], "participants": [{"email": "rita@example.com"}]}),
        )
        .await
        .json()
        .await
        .expect("json");
    Setup { owner, owner_id, reviewer, reviewer_id, session }
}

fn ws_path(s: &Setup, token: &str) -> String {
    format!("{}?token={token}", s.session["websocket_url"].as_str().expect("url"))
}

fn online_ids(state: &Value) -> Vec<i64> {
    state["online"].as_array().map(|a| a.iter().filter_map(|u| u["user_id"].as_i64()).collect()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_two_instances_share_rooms_presence_and_notifications() {
    let Some(bus) = redis_url().await else { return };
    let (a, b) = pair(&bus).await;
    let s = setup(&a).await;
    let mut olive = Ws::connect(&a, &ws_path(&s, &s.owner)).await;
    olive.next_of("session_state").await;
    // Presence spans instances: Rita, on B, sees Olive, connected to A.
    let mut rita = None;
    for _ in 0..40 {
        let mut ws = Ws::connect(&b, &ws_path(&s, &s.reviewer)).await;
        let state = ws.next_of("session_state").await;
        if online_ids(&state).contains(&s.owner_id) {
            rita = Some(ws);
            break;
        }
        drop(ws);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut rita = rita.expect("Rita on instance B sees Olive on instance A online");
    // Events made on B reach A, and the other way round.
    loop {
        let v = olive.next_of("participant_joined").await;
        if v["user"]["user_id"] == s.reviewer_id {
            break;
        }
    }
    rita.send(&json!({"type": "comment", "comment": {"content": "from B"}})).await;
    let c = olive.next_of("comment").await;
    assert_eq!(c["comment"]["content"], "from B");
    olive.send(&json!({"type": "cursor_position", "x": 0.3, "y": 0.3})).await;
    assert_eq!(rita.next_of("cursor_position").await["user_id"], s.owner_id);
    a.post_json(
        &format!("/api/v3/assets/{}/comments/", s.session["asset_id"]),
        Some(&s.owner),
        &json!({"content": "from A"}),
    )
    .await;
    let seen = rita.next_of("comment").await;
    assert_eq!(seen["comment"]["content"], "from A");
    assert_eq!(seen["seq"].as_i64(), c["seq"].as_i64().map(|n| n + 1), "one sequence per room across instances");

    // notify_on_access: the owner's socket on A hears about a view served by B.
    let share: Value = a
        .post_json(
            &format!("/api/v3/assets/{}/share/", s.session["asset_id"]),
            Some(&s.owner),
            &json!({"notify_on_access": true}),
        )
        .await
        .json()
        .await
        .expect("json");
    let mut notes = Ws::connect(&a, &format!("/ws/notifications/?token={}", s.owner)).await;
    assert_eq!(notes.next().await["type"], "connection_established");
    let view =
        b.client.get(b.url(&format!("/share/{}/", share["uuid"].as_str().expect("uuid")))).send().await.expect("view");
    assert_eq!(view.status(), StatusCode::OK);
    let n = notes.next_of("notification").await;
    assert_eq!(n["kind"], "share_accessed");
    assert!(n["seq"].as_i64().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_redis_keeps_local_clients_served_and_the_bus_recovers_what_was_missed() {
    if redis_url().await.is_none() {
        return;
    }
    let mut redis = OwnRedis::start().await;
    let (a, b) = pair(&redis.url()).await;
    let s = setup(&a).await;
    let mut olive = Ws::connect(&a, &ws_path(&s, &s.owner)).await;
    olive.next_of("session_state").await;
    let mut rita = Ws::connect(&b, &ws_path(&s, &s.reviewer)).await;
    rita.next_of("session_state").await;

    redis.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Each instance still serves its own clients, live.
    olive.send(&json!({"type": "comment", "comment": {"content": "while Redis is down"}})).await;
    assert_eq!(olive.next_of("comment").await["comment"]["content"], "while Redis is down");
    assert_eq!(a.get("/healthz", None).await.status(), StatusCode::OK);
    assert_eq!(b.get("/healthz", None).await.status(), StatusCode::OK);

    // Redis comes back on the same port: the instances reconnect, and what B's client missed
    // while the bus was away is read from the store, in order.
    redis.restart().await;
    let missed = rita.next_of("comment").await;
    assert_eq!(missed["comment"]["content"], "while Redis is down");
    wait_connected(&a, Duration::from_secs(5)).await;
    wait_connected(&b, Duration::from_secs(5)).await;
    rita.send(&json!({"type": "comment", "comment": {"content": "after"}})).await;
    assert_eq!(olive.next_of("comment").await["comment"]["content"], "after");
}

/// A disabled account's collaboration socket on the other instance closes at once (issue 18,
/// item 4), with 1008, and cannot come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_an_account_closes_its_collaboration_socket_on_every_instance() {
    let Some(bus) = redis_url().await else { return };
    let (a, b) = pair(&bus).await;
    let s = setup(&a).await;
    let mut rita = Ws::connect(&b, &ws_path(&s, &s.reviewer)).await;
    rita.next_of("session_state").await;
    let mut olive = Ws::connect(&a, &ws_path(&s, &s.owner)).await;
    olive.next_of("session_state").await;
    // The owner is the first account: the admin.
    let r = a
        .patch_json(&format!("/api/admin/users/{}/", s.reviewer_id), Some(&s.owner), &json!({"is_active": false}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(rita.close_code(Duration::from_secs(1)).await, Some(1008), "closed within 1 s");
    assert!(Ws::try_connect(&b, &ws_path(&s, &s.reviewer)).await.is_err());
    olive.send(&json!({"type": "ping"})).await;
    assert_eq!(olive.next_of("pong").await["type"], "pong", "other members stay");
}

/// Logging out (issue 18 item 4, "token revoke") closes the sockets opened with that session's
/// token at once, on every instance, with 1008; the same account's other sessions keep theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_out_closes_that_sessions_sockets_on_every_instance() {
    let Some(bus) = redis_url().await else { return };
    let (a, b) = pair(&bus).await;
    let s = setup(&a).await;
    // A second sign-in of the same account.
    let login: Value = a
        .post_json("/api/auth/login/", None, &json!({"email": "rita@example.com", "password": "correct horse"}))
        .await
        .json()
        .await
        .expect("json");
    let other = login["access_token"].as_str().expect("token").to_string();
    let mut collab = Ws::connect(&b, &ws_path(&s, &s.reviewer)).await;
    collab.next_of("session_state").await;
    let mut notes = Ws::connect(&b, &format!("/ws/notifications/?token={}", s.reviewer)).await;
    notes.next_of("connection_established").await;
    let mut kept = Ws::connect(&b, &ws_path(&s, &other)).await;
    kept.next_of("session_state").await;

    let r = a.req(reqwest::Method::POST, "/api/auth/logout/", Some(&s.reviewer)).send().await.expect("logout");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(collab.close_code(Duration::from_secs(1)).await, Some(1008), "closed within 1 s");
    assert_eq!(notes.close_code(Duration::from_secs(1)).await, Some(1008), "closed within 1 s");
    assert_eq!(Ws::try_connect(&b, &ws_path(&s, &s.reviewer)).await.err(), Some(401));
    kept.send(&json!({"type": "ping"})).await;
    assert_eq!(kept.next_of("pong").await["type"], "pong", "the other session's socket stays");
}
