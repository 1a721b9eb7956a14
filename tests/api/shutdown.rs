//! Graceful shutdown (SPEC §9): every WebSocket gets 1001 at once, transfers in flight finish
//! within `shutdown_grace_secs` and are cut after it, no connection is accepted meanwhile,
//! analytics and view counts are written, and a client resumes on another instance losing nothing.

use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::redis::{pair, redis_url};
use crate::helpers::{Db, Spawn, TestApp, Ws, fixtures};

/// Waits for `run` to return; panics after `d`.
async fn stopped_within(run: tokio::task::JoinHandle<anyhow::Result<()>>, d: Duration) {
    tokio::time::timeout(d, run)
        .await
        .unwrap_or_else(|_| panic!("run did not return within {d:?}"))
        .expect("run did not panic")
        .expect("run ends without error");
}

/// A collaboration session of `owner` on an uploaded PDF, with Rita as a participant:
/// (owner token, owner id, Rita's token, the session JSON).
async fn session(app: &TestApp) -> (String, i64, String, Value) {
    let (owner, owner_id) = app.register("owner@example.com", "Olive Owner").await;
    let (rita, _) = app.register("rita@example.com", "Rita Reviewer").await;
    let asset = app.upload(&owner, "deck.pdf", fixtures::pdf(800)).await;
    let r = app
        .post_json(
            "/api/v3/collaboration/sessions/",
            Some(&owner),
            &json!({"asset_id": asset["id"], "participants": [{"email": "rita@example.com"}]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    (owner, owner_id, rita, r.json().await.expect("json"))
}

fn collab_path(session: &Value, token: &str) -> String {
    format!("{}?token={token}", session["websocket_url"].as_str().expect("url"))
}

/// A chat socket path: a company with `admin` as its agent, and one visitor session.
async fn chat_path(app: &TestApp, admin: &str, admin_id: i64) -> String {
    let r = app.post_json("/api/companies/", Some(admin), &json!({"name": "Acme"})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let c: Value = r.json().await.expect("json");
    let (company, key) = (c["company_id"].as_str().expect("id"), c["widget_key"].as_str().expect("key"));
    let r =
        app.post_json(&format!("/api/companies/{company}/agents/"), Some(admin), &json!({"user_id": admin_id})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app.post_json("/api/chat/sessions/", None, &json!({"widget_key": key})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let s: Value = r.json().await.expect("json");
    format!(
        "/ws/chat/{company}/{}/?token={}",
        s["session_id"].as_str().expect("session"),
        s["token"].as_str().expect("t")
    )
}

/// A public link to a PDF of about `size` bytes: (owner token, link path, e.g. `/share/{uuid}/`,
/// the exact size).
async fn shared_pdf(app: &TestApp, size: usize) -> (String, String, usize) {
    let (owner, _) = app.register("owner@example.com", "Olive Owner").await;
    let pdf = fixtures::pdf(size);
    let len = pdf.len();
    let asset = app.upload(&owner, "big.pdf", pdf).await;
    let r = app.post_json(&format!("/api/v3/assets/{}/share/", asset["id"]), Some(&owner), &json!({})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let share: Value = r.json().await.expect("json");
    let url = share["share_url"].as_str().expect("url");
    (owner, url[url.find("/share/").expect("path")..].to_string(), len)
}

/// Whether a TCP connection to the app is refused within 2 seconds.
async fn refuses_connections(app: &TestApp) -> bool {
    for _ in 0..40 {
        if tokio::net::TcpStream::connect(app.addr).await.is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

const BIG: usize = 48 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_socket_is_told_to_go_away_with_1001_and_run_returns_promptly() {
    let app = TestApp::spawn().await;
    let (owner, owner_id, rita, session) = session(&app).await;
    let mut collab = Ws::connect(&app, &collab_path(&session, &rita)).await;
    collab.next_of("session_state").await;
    let path = chat_path(&app, &owner, owner_id).await;
    let mut chat = Ws::connect(&app, &path).await;
    chat.next_of("connection_established").await;
    let mut notes = Ws::connect(&app, &format!("/ws/notifications/?token={owner}")).await;
    notes.next_of("connection_established").await;

    let started = Instant::now();
    let run = app.shutdown();
    // The default grace is 30 s: sockets neither wait for it nor hold `run` up.
    for (name, ws) in [("collaboration", &mut collab), ("chat", &mut chat), ("notifications", &mut notes)] {
        assert_eq!(ws.close_code(Duration::from_secs(3)).await, Some(1001), "{name} socket closed with 1001");
    }
    stopped_within(run, Duration::from_secs(5)).await;
    assert!(started.elapsed() < Duration::from_secs(6), "took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_and_an_upload_in_flight_finish_while_new_connections_are_refused() {
    use futures::SinkExt;
    let app = TestApp::spawn().await;
    let (owner, link, size) = shared_pdf(&app, BIG).await;
    let mut download = app.client.get(app.url(&format!("{link}download"))).send().await.expect("download");
    assert_eq!(download.status(), StatusCode::OK);
    let mut got = download.chunk().await.expect("first bytes").expect("a chunk").len();
    let (upload, mut bytes) = app.streamed_upload(&owner);
    let pdf = fixtures::pdf(4 * 1024 * 1024);
    let mut pieces = pdf.chunks(256 * 1024);
    bytes.send(Ok(pieces.next().expect("piece").to_vec())).await.expect("first piece");
    tokio::time::sleep(Duration::from_millis(200)).await;

    let run = app.shutdown();
    assert!(refuses_connections(&app).await, "no new connection is accepted once shutdown started");
    // Both transfers go on: the upload's remaining bytes, then the download read to its end.
    for p in pieces {
        bytes.send(Ok(p.to_vec())).await.expect("piece");
    }
    drop(bytes);
    let r = upload.await.expect("task").expect("the upload is answered");
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap_or_default());
    while let Some(c) = download.chunk().await.expect("the download is not cut") {
        got += c.len();
    }
    assert_eq!(got, size, "every byte of the download arrived");
    stopped_within(run, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_longer_than_the_grace_period_is_cut_and_run_returns() {
    let app = TestApp::spawn_with(Spawn { tweak: Box::new(|c| c.shutdown_grace_secs = 1), ..Default::default() }).await;
    let (_, link, size) = shared_pdf(&app, BIG).await;
    let mut download = app.client.get(app.url(&format!("{link}download"))).send().await.expect("download");
    assert_eq!(download.status(), StatusCode::OK);
    let mut got = download.chunk().await.expect("first bytes").expect("a chunk").len();

    let started = Instant::now();
    let run = app.shutdown();
    // The reader stalls past the grace period: the server cannot finish in time.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut cut = false;
    loop {
        match download.chunk().await {
            Ok(Some(c)) => got += c.len(),
            Ok(None) => break,
            Err(_) => {
                cut = true;
                break;
            }
        }
    }
    assert!(cut && got < size, "the download was cut ({got} of {size} bytes)");
    stopped_within(run, Duration::from_secs(5)).await;
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900), "the grace period was granted (took {took:?})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_stuck_writing_to_a_client_that_does_not_read_is_cut_at_the_end_of_the_grace() {
    let app = TestApp::spawn_with(Spawn { tweak: Box::new(|c| c.shutdown_grace_secs = 1), ..Default::default() }).await;
    let (owner, _, rita, session) = session(&app).await;
    // Rita's client has a tiny receive window and stops reading after the greeting.
    let tcp = tokio::net::TcpSocket::new_v4().expect("socket");
    tcp.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let tcp = tcp.connect(app.addr).await.expect("connect");
    let url = format!("ws://{}{}", app.addr, collab_path(&session, &rita));
    let (inner, _) =
        tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(tcp)).await.expect("upgrade");
    let mut rita = Ws { inner };
    rita.next_of("session_state").await;
    // About 3.6 MB of comments: the server's writes to her socket block long before that (and
    // stay under the room's 1,024-frame window, so her socket is not dropped as too slow).
    let path = format!("/api/v3/assets/{}/comments/", session["asset_id"]);
    let text = "x".repeat(9_000);
    let mut posted = 0;
    for chunk in 0..100 {
        let bodies: Vec<Value> = (0..4).map(|i| json!({"content": format!("{chunk}-{i} {text}")})).collect();
        for r in futures::future::join_all(bodies.iter().map(|b| app.post_json(&path, Some(&owner), b))).await {
            assert_eq!(r.status(), StatusCode::CREATED);
            posted += 1;
        }
    }

    let started = Instant::now();
    let run = app.shutdown();
    stopped_within(run, Duration::from_secs(6)).await;
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900), "the grace period was granted (took {took:?})");
    // What reached her: part of the comments, then the connection ends without the 1001 that
    // could not be written.
    let mut got = 0;
    let closed_with = loop {
        match tokio::time::timeout(Duration::from_secs(5), rita.inner.next()).await.expect("the socket ends") {
            Some(Ok(Message::Text(t))) if t.contains(r#""type":"comment""#) => got += 1,
            Some(Ok(Message::Close(f))) => break f.map(|f| u16::from(f.code)),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break None,
        }
    };
    assert!(got < posted, "the server was still writing when it was cut ({got} of {posted})");
    assert_eq!(closed_with, None, "cut, not closed");
}

crate::on_both_databases!(analytics_and_view_counts_captured_just_before_shutdown_are_written);

async fn analytics_and_view_counts_captured_just_before_shutdown_are_written(db: Db) {
    let app = TestApp::on(db).await;
    let (owner, link, _) = shared_pdf(&app, 3000).await;
    let uuid = link.trim_start_matches("/share/").trim_end_matches('/').to_string();
    assert_eq!(app.get(&link, None).await.status(), StatusCode::OK);
    let dl = app.get(&format!("{link}download"), None).await;
    assert_eq!(dl.status(), StatusCode::OK);
    dl.bytes().await.expect("bytes");
    drop(owner);

    let url = app.state.config.effective_database_url();
    stopped_within(app.shutdown(), Duration::from_secs(10)).await;
    // The app's pool is closed: read what it left in the database with a new one.
    let store = vitrine::store::Store::connect(&url, 1).await.expect("database");
    let share = store.share_by_uuid(&uuid).await.expect("read").expect("the share");
    assert_eq!(share.view_count, 1, "the page view was counted");
    assert_eq!(store.count_events().await.expect("count"), 2, "the view and the download were recorded");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_an_instance_that_shuts_down_resumes_on_another_and_misses_nothing() {
    let Some(bus) = redis_url().await else { return };
    let (a, b) = pair(&bus).await;
    let (owner, _, rita, session) = session(&a).await;
    let comments = format!("/api/v3/assets/{}/comments/", session["asset_id"]);
    let mut seen: Vec<(i64, String)> = Vec::new();
    let mut rita_a = Ws::connect(&a, &collab_path(&session, &rita)).await;
    let mut last_seq = rita_a.next_of("session_state").await["seq"].as_i64().expect("seq");
    let mut olive = Ws::connect(&b, &collab_path(&session, &owner)).await;
    olive.next_of("session_state").await;
    for i in 0..3 {
        let r = b.post_json(&comments, Some(&owner), &json!({"content": format!("before {i}")})).await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    while seen.len() < 3 {
        let v = rita_a.next_of("comment").await;
        seen.push((v["seq"].as_i64().expect("seq"), v["comment"]["content"].as_str().expect("c").to_string()));
    }

    // A goes away; comments keep coming through B meanwhile.
    let run = a.shutdown();
    let mut posted: Vec<String> = (0..3).map(|i| format!("before {i}")).collect();
    let poster = {
        let (client, url, owner) = (b.client.clone(), b.url(&comments), owner.clone());
        tokio::spawn(async move {
            let mut sent = Vec::new();
            for i in 0..10 {
                let text = format!("meanwhile {i}");
                let r = client.post(&url).bearer_auth(&owner).json(&json!({"content": text})).send().await;
                assert_eq!(r.expect("post").status(), StatusCode::CREATED);
                sent.push(text);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            sent
        })
    };
    // Rita reads what A still delivers, then the close: 1001.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let code = loop {
        match tokio::time::timeout_at(deadline, rita_a.inner.next()).await.expect("a close within 5 s") {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).expect("json");
                if let Some(seq) = v["seq"].as_i64() {
                    last_seq = last_seq.max(seq);
                }
                if v["type"] == "comment" {
                    seen.push((v["seq"].as_i64().expect("seq"), v["comment"]["content"].as_str().expect("c").into()));
                }
            }
            Some(Ok(Message::Close(f))) => {
                let _ = tokio::time::timeout(Duration::from_secs(1), rita_a.inner.next()).await;
                break f.map(|f| u16::from(f.code));
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break None,
        }
    };
    assert_eq!(code, Some(1001), "A says it is going away");
    last_seq = last_seq.max(seen.last().map_or(0, |(s, _)| *s));

    // She reconnects to B at once with what she has.
    let mut rita_b = Ws::connect(&b, &format!("{}&last_seq={last_seq}", collab_path(&session, &rita))).await;
    let state = rita_b.next_of("session_state").await;
    assert_eq!(state["recovered"], true, "{state}");
    posted.extend(poster.await.expect("poster"));
    let r = b.post_json(&comments, Some(&owner), &json!({"content": "after"})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    posted.push("after".into());
    while seen.len() < posted.len() {
        let v = rita_b.next_of("comment").await;
        seen.push((v["seq"].as_i64().expect("seq"), v["comment"]["content"].as_str().expect("c").to_string()));
    }
    while let Some(v) = rita_b.next_within(Duration::from_millis(300)).await {
        assert_ne!(v["type"], "comment", "nothing comes twice: {v}");
    }
    let texts: Vec<&str> = seen.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, posted.iter().map(String::as_str).collect::<Vec<_>>(), "every comment, once, in order");
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "rising seq: {seen:?}");
    stopped_within(run, Duration::from_secs(10)).await;
}
