//! Chat benchmark (`cargo bench --bench chat`): upload-to-notification latency.
//!
//! An in-process Vitrine (SQLite, local storage) with one company, one chat session and 50
//! WebSocket clients of that session (25 with the visitor's token, 25 with the agent's). The
//! visitor uploads a 1 KiB text file 200 times, one at a time (the next 5 ms after every client
//! got the previous one, or after 2 s). Latency per client and upload = the moment its
//! `file_shared` arrived − the moment the upload's 201 arrived (0 when the event came first: the
//! event is published before the answer is written). Target: p99 < 20 ms.
//!
//! Reference, same run and same clients: a text `message` sent on one of the 50 sockets, latency =
//! its arrival at every client − the moment it was handed to the sender's socket (the room's
//! broadcast path without the upload). 20 warm-up uploads and messages are not counted.
//! Under `cargo test --all-targets` the binary starts without `--bench` and returns at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

#[path = "common.rs"]
mod common;
use common::{json_of, percentile};

const CLIENTS: usize = 50;
const ROUNDS: usize = 200;
const WARMUP: usize = 20;

type Arrivals = Arc<Mutex<HashMap<String, Vec<Instant>>>>;

/// Waits until every client recorded `key` (or 2 s).
async fn wait_all(arrivals: &Arrivals, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if arrivals.lock().map(|m| m.get(key).map_or(0, Vec::len)).unwrap_or(0) >= CLIENTS {
            return;
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

/// Latencies in ms of every delivery of `key` after `t0`; a missing delivery counts as 2 s.
fn latencies(arrivals: &Arrivals, key: &str, t0: Instant, out: &mut Vec<f64>) {
    let got = arrivals.lock().map(|m| m.get(key).cloned().unwrap_or_default()).unwrap_or_default();
    for a in &got {
        out.push(a.saturating_duration_since(t0).as_secs_f64() * 1000.0);
    }
    for _ in got.len()..CLIENTS {
        out.push(2000.0);
    }
}

async fn run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let base = format!("http://{addr}");
    let config = vitrine::config::Config {
        data_dir: dir.path().to_path_buf(),
        listen: addr.to_string(),
        public_url: base.clone(),
        log_level: "warn".into(),
        chat_upload_rate_per_minute: 1_000_000,
        ..Default::default()
    };
    let state = vitrine::app::AppState::build(config).await?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(vitrine::app::run(listener, state.clone(), shutdown.clone()));
    let http = reqwest::Client::new();
    let reg = json_of(
        http.post(format!("{base}/api/auth/register/"))
            .json(&json!({"email": "agent@example.com", "password": "bench-password-123", "name": "Agent"}))
            .send()
            .await?,
    )
    .await?;
    let agent = reg["access_token"].as_str().unwrap_or_default().to_string();
    let company = json_of(
        http.post(format!("{base}/api/companies/")).bearer_auth(&agent).json(&json!({"name": "Bench"})).send().await?,
    )
    .await?;
    let company_id = company["company_id"].as_str().unwrap_or_default().to_string();
    json_of(
        http.post(format!("{base}/api/companies/{company_id}/agents/"))
            .bearer_auth(&agent)
            .json(&json!({"user_id": reg["user"]["id"]}))
            .send()
            .await?,
    )
    .await?;
    let session = json_of(
        http.post(format!("{base}/api/chat/sessions/"))
            .json(&json!({"widget_key": company["widget_key"]}))
            .send()
            .await?,
    )
    .await?;
    let session_id = session["session_id"].as_str().unwrap_or_default().to_string();
    let visitor = session["token"].as_str().unwrap_or_default().to_string();

    // 50 clients; each records when every file_shared (by id) and message (by text) arrives.
    let arrivals: Arrivals = Arc::new(Mutex::new(HashMap::new()));
    let mut senders = Vec::new();
    for i in 0..CLIENTS {
        let token = if i % 2 == 0 { &visitor } else { &agent };
        let url = format!("ws://{addr}/ws/chat/{company_id}/{session_id}/?token={token}");
        let (ws, _) = tokio_tungstenite::connect_async(url).await?;
        let (tx, mut rx) = ws.split();
        senders.push(tx);
        let arrivals = arrivals.clone();
        tokio::spawn(async move {
            while let Some(Ok(Message::Text(t))) = rx.next().await {
                let now = Instant::now();
                let Ok(v) = serde_json::from_str::<Value>(&t) else { continue };
                let key = match v["type"].as_str() {
                    Some("file_shared") => format!("f{}", v["id"]),
                    Some("message") => format!("m{}", v["text"].as_str().unwrap_or_default()),
                    _ => continue,
                };
                if let Ok(mut m) = arrivals.lock() {
                    m.entry(key).or_default().push(now);
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut upload_ms = Vec::new();
    let mut before_answer = 0usize;
    let mut round_trip = Vec::new();
    for round in 0..ROUNDS + WARMUP {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(format!("note {round}\n{}", "x".repeat(1000)).into_bytes())
                .file_name("note.txt"),
        );
        let sent = Instant::now();
        let f =
            json_of(http.post(format!("{base}/api/chat/upload/")).bearer_auth(&visitor).multipart(form).send().await?)
                .await?;
        let answered = Instant::now();
        let key = format!("f{}", f["id"]);
        wait_all(&arrivals, &key).await;
        if round >= WARMUP {
            round_trip.push(answered.duration_since(sent).as_secs_f64() * 1000.0);
            let got = arrivals.lock().map(|m| m.get(&key).cloned().unwrap_or_default()).unwrap_or_default();
            before_answer += got.iter().filter(|a| **a < answered).count();
            latencies(&arrivals, &key, answered, &mut upload_ms);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let mut message_ms = Vec::new();
    for round in 0..ROUNDS + WARMUP {
        let text = format!("bench message {round}");
        let sent = Instant::now();
        senders[round % CLIENTS].send(Message::text(json!({"type": "message", "text": text}).to_string())).await?;
        let key = format!("m{text}");
        wait_all(&arrivals, &key).await;
        if round >= WARMUP {
            latencies(&arrivals, &key, sent, &mut message_ms);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    upload_ms.sort_by(f64::total_cmp);
    message_ms.sort_by(f64::total_cmp);
    round_trip.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&upload_ms, 50.0), percentile(&upload_ms, 99.0));
    let (r50, r99) = (percentile(&message_ms, 50.0), percentile(&message_ms, 99.0));
    println!(
        "chat: upload 201 -> file_shared at {CLIENTS} clients, {ROUNDS} uploads: p50 {p50:.2} ms, p99 {p99:.2} ms (target p99 < 20 ms: {}) | reference: a socket message to the same {CLIENTS} clients p50 {r50:.2} ms, p99 {r99:.2} ms (ratio p99 {:.2}) | upload round trip p50 {:.2} ms; {:.1}% of events arrived before the 201",
        if p99 < 20.0 { "met" } else { "MISSED" },
        p99 / r99.max(0.001),
        percentile(&round_trip, 50.0),
        100.0 * before_answer as f64 / (ROUNDS * CLIENTS) as f64
    );
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    if p99 >= 20.0 {
        std::process::exit(1);
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("chat benchmark: skipped (run it with `cargo bench --bench chat`)");
        return Ok(());
    }
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    run().await
}
