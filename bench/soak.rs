//! Soak benchmark (`bash bench/soak.sh`, or `cargo bench --bench soak`): a release `vitrine
//! serve` on the embedded defaults (SQLite and local blobs in a temp dir) under 10 minutes of
//! mixed load, to see that it stays up, answers every request, and neither its memory nor its
//! SQLite WAL keeps growing.
//!
//! The load, paced (each stream at a fixed rate; a stream the server cannot keep up with falls
//! behind rather than piling up requests), all from this process on loopback:
//!
//! - **page views**: `GET /share/{uuid}/` as HTML, over 20 public links (each one counted:
//!   analytics events and view counts are written in the background);
//! - **downloads**: `GET /share/{uuid}/download` of those links' files (64 KiB to 1 MiB), read to
//!   the end;
//! - **uploads**: a fresh 128 KiB PDF through `POST /api/v3/assets/`, each followed by deleting
//!   the previous one (disk use stays flat; both write paths are exercised);
//! - **comments**: 10 sockets in one collaboration session each send a comment at a fixed rate
//!   and read every frame the session sends them.
//!
//! Reported: errors (any answer other than the expected status, a transport error, an `error`
//! frame, a socket closed early; target 0), the server's `VmRSS` after 1 minute and at the end
//! of the load (the reference is the same run's 1-minute figure: target growth < 20 % after the
//! first minute), the largest size the WAL file (`vitrine.db-wal`) reached during the load and its
//! size at the end (target < 64 MiB), then RSS and WAL after 10 idle seconds (for information:
//! memory handed back, WAL emptied), and the rates actually achieved. The server's own log is
//! summarized (warnings and errors).
//!
//! Settings (environment): `SOAK_SECS` (600), `SOAK_VIEWS_PER_S` (200), `SOAK_DOWNLOADS_PER_S`
//! (40), `SOAK_UPLOADS_PER_S` (4), `SOAK_COMMENTS_PER_S` (50, over the 10 sockets), and
//! `VITRINE_BIN` (else `target/release/vitrine`, built if missing). The RSS "after 1 minute" is
//! taken at a tenth of `SOAK_SECS` when the run is shorter than 10 minutes.
//!
//! Exit status: 0 every target met, 1 a target missed, 2 the benchmark itself failed (the server
//! did not start or died, setup was refused). Under `cargo test --all-targets` the binary starts
//! without `--bench` and returns at once.

#[path = "common.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const LINKS: usize = 20;
const SOCKETS: usize = 10;
const UPLOAD_BYTES: usize = 128 * 1024;
const TARGET_GROWTH_PCT: f64 = 20.0;
const TARGET_WAL_MIB: f64 = 64.0;
const IDLE: Duration = Duration::from_secs(10);
const PASSWORD: &str = "soak benchmark password";

fn env_or(name: &str, default: f64) -> f64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).filter(|v: &f64| *v >= 0.0).unwrap_or(default)
}

struct Shape {
    secs: u64,
    views: f64,
    downloads: f64,
    uploads: f64,
    comments: f64,
}

impl Shape {
    fn from_env() -> Shape {
        Shape {
            secs: env_or("SOAK_SECS", 600.0).max(10.0) as u64,
            views: env_or("SOAK_VIEWS_PER_S", 200.0),
            downloads: env_or("SOAK_DOWNLOADS_PER_S", 40.0),
            uploads: env_or("SOAK_UPLOADS_PER_S", 4.0),
            comments: env_or("SOAK_COMMENTS_PER_S", 50.0),
        }
    }

    /// When the "after the first minute" RSS is read.
    fn first_reading(&self) -> Duration {
        Duration::from_secs(if self.secs >= 600 { 60 } else { (self.secs / 10).max(1) })
    }
}

/// The server child process, killed when dropped.
struct Server {
    child: Child,
    port: u16,
    data: PathBuf,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    async fn start(bin: &Path, dir: &Path) -> anyhow::Result<Server> {
        let port = common::free_port()?;
        let data = dir.join("data");
        std::fs::create_dir_all(&data)?;
        let log = dir.join("server.log");
        let out = std::fs::File::create(&log)?;
        let mut cmd = Command::new(bin);
        cmd.arg("serve").current_dir(&data).stdin(Stdio::null()).stdout(out.try_clone()?).stderr(out);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("VITRINE_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("VITRINE_LISTEN", format!("127.0.0.1:{port}"))
            .env("VITRINE_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
            .env("VITRINE_DATA_DIR", &data)
            .env("VITRINE_LOG_LEVEL", "warn")
            // Every request comes from 127.0.0.1: the per-IP download limit (10 a minute) would
            // answer most of them 429, which is not what this measures.
            .env("VITRINE_SHARE_ACCESS_RATE_PER_IP_PER_MINUTE", "10000000");
        let child = cmd.spawn().with_context(|| format!("could not start {}", bin.display()))?;
        let mut server = Server { child, port, data, log };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            server.check_alive()?;
            if let Ok(r) = http.get(format!("{}/readyz", server.http())).send().await
                && r.status() == 200
            {
                return Ok(server);
            }
            if Instant::now() > deadline {
                bail!(
                    "the server did not answer 200 on /readyz within 30 s; its log ends with:\n{}",
                    server.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn http(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn wal_bytes(&self) -> u64 {
        std::fs::metadata(self.data.join("vitrine.db-wal")).map_or(0, |m| m.len())
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("the server exited ({status}); its log ends with:\n{}", self.log_tail());
        }
        Ok(())
    }

    /// WARN and ERROR lines of the log: count, and the first few.
    fn problems(&self) -> (usize, Vec<String>) {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let bad: Vec<String> = text
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .map(|l| l.chars().take(240).collect())
            .collect();
        let n = bad.len();
        (n, bad.into_iter().take(5).collect())
    }
}

/// Errors by kind, and requests done by stream.
#[derive(Default)]
struct Tally {
    errors: Mutex<BTreeMap<String, u64>>,
    views: AtomicU64,
    downloads: AtomicU64,
    downloaded_bytes: AtomicU64,
    uploads: AtomicU64,
    comments_sent: AtomicU64,
    frames_received: AtomicU64,
}

impl Tally {
    fn error(&self, kind: impl Into<String>) {
        let mut kind: String = kind.into();
        kind.truncate(200);
        *self.errors.lock().unwrap_or_else(|e| e.into_inner()).entry(kind).or_default() += 1;
    }

    fn error_count(&self) -> u64 {
        self.errors.lock().unwrap_or_else(|e| e.into_inner()).values().sum()
    }
}

/// A small PDF the server's content sniffing accepts, `size` bytes, distinct per `tag`.
fn pdf(tag: &str, size: usize) -> Vec<u8> {
    let mut b = format!("%PDF-1.4\n% vitrine soak {tag}\n1 0 obj\n<< >>\nendobj\n").into_bytes();
    let trailer = b"trailer\n<< >>\n%%EOF\n";
    b.resize(size.saturating_sub(trailer.len()).max(b.len()), b' ');
    b.extend_from_slice(trailer);
    b
}

async fn expect(resp: reqwest::Response, what: &str, status: u16) -> anyhow::Result<Value> {
    let got = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    if got != status {
        bail!("{what}: HTTP {got} (expected {status}): {body}");
    }
    serde_json::from_str(&body).with_context(|| format!("{what}: not JSON: {body}"))
}

async fn upload(http: &reqwest::Client, base: &str, token: &str, tag: &str, size: usize) -> anyhow::Result<i64> {
    let part =
        reqwest::multipart::Part::bytes(pdf(tag, size)).file_name(format!("{tag}.pdf")).mime_str("application/pdf")?;
    let r = http
        .post(format!("{base}/api/v3/assets/"))
        .bearer_auth(token)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await?;
    let asset = expect(r, "upload", 201).await?;
    asset["id"].as_i64().context("asset id")
}

/// The ticks of a stream of `per_s` a second; None when it is 0 (the stream is off).
fn interval(per_s: f64) -> Option<tokio::time::Interval> {
    if per_s <= 0.0 {
        return None;
    }
    let mut i = tokio::time::interval(Duration::from_secs_f64(1.0 / per_s));
    i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    Some(i)
}

/// Runs `n` workers sharing a rate of `per_s` until `end`.
fn spawn_workers<F, Fut>(n: usize, per_s: f64, end: Instant, work: F) -> Vec<tokio::task::JoinHandle<()>>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    (0..n)
        .filter_map(|w| {
            let mut every = interval(per_s / n as f64)?;
            let work = work.clone();
            Some(tokio::spawn(async move {
                let mut k = 0u64;
                while Instant::now() < end {
                    every.tick().await;
                    if Instant::now() >= end {
                        break;
                    }
                    work(w, k).await;
                    k += 1;
                }
            }))
        })
        .collect()
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

async fn run(shape: &Shape) -> anyhow::Result<Vec<String>> {
    println!("soak: {}", common::machine());
    let bin = common::vitrine_bin()?;
    let tmp = tempfile::tempdir()?;
    let mut server = Server::start(&bin, tmp.path()).await?;
    let base = server.http();
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;

    // Setup: the owner (the first account, an admin), 20 public links, one collaboration session.
    let r = http
        .post(format!("{base}/api/auth/register/"))
        .json(&json!({"email": "soak@bench.example", "password": PASSWORD, "name": "Soak Owner"}))
        .send()
        .await?;
    let token = expect(r, "register", 201).await?["access_token"].as_str().context("token")?.to_string();
    let mut links = Vec::with_capacity(LINKS);
    let mut first_asset = 0;
    for i in 0..LINKS {
        let size = 64 * 1024 + i * (960 * 1024) / LINKS;
        let id = upload(&http, &base, &token, &format!("link-{i}"), size).await?;
        if i == 0 {
            first_asset = id;
        }
        let r =
            http.post(format!("{base}/api/v3/assets/{id}/share/")).bearer_auth(&token).json(&json!({})).send().await?;
        let share = expect(r, "create a link", 201).await?;
        let url = share["share_url"].as_str().context("share_url")?;
        let path = &url[url.find("/share/").context("share path")?..];
        links.push(format!("{base}{}", path.trim_end_matches('/')));
    }
    let r = http
        .post(format!("{base}/api/v3/collaboration/sessions/"))
        .bearer_auth(&token)
        .json(&json!({"asset_id": first_asset, "participants": [], "session_config": {"cursor_tracking": true}}))
        .send()
        .await?;
    let session = expect(r, "create a collaboration session", 201).await?;
    let ws_path = session["websocket_url"].as_str().context("websocket_url")?.to_string();
    let ws_url = format!("ws://127.0.0.1:{}{ws_path}?token={token}", server.port);
    let mut sockets = Vec::with_capacity(SOCKETS);
    for _ in 0..SOCKETS {
        let (ws, _) = tokio::time::timeout(Duration::from_secs(30), tokio_tungstenite::connect_async(&ws_url))
            .await
            .context("socket connect timed out")??;
        sockets.push(ws);
    }
    let links = Arc::new(links);
    let tally = Arc::new(Tally::default());
    let load = Duration::from_secs(shape.secs);
    let start = Instant::now();
    let end = start + load;
    println!(
        "load for {} s: {} page views/s, {} downloads/s, {} uploads/s, {} comments/s over {SOCKETS} sockets",
        shape.secs, shape.views, shape.downloads, shape.uploads, shape.comments
    );

    let mut tasks = Vec::new();
    // Page views.
    let (h, l, t) = (http.clone(), links.clone(), tally.clone());
    tasks.extend(spawn_workers(8, shape.views, end, move |w, k| {
        let (h, l, t) = (h.clone(), l.clone(), t.clone());
        async move {
            let url = format!("{}/", l[(w * 7 + k as usize) % l.len()]);
            match h.get(&url).header("accept", "text/html").send().await {
                Ok(r) if r.status() == 200 => match r.bytes().await {
                    Ok(_) => {
                        t.views.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => t.error(format!("page view body: {e}")),
                },
                Ok(r) => t.error(format!("page view: HTTP {}", r.status())),
                Err(e) => t.error(format!("page view: {e}")),
            }
        }
    }));
    // Downloads.
    let (h, l, t) = (http.clone(), links.clone(), tally.clone());
    tasks.extend(spawn_workers(4, shape.downloads, end, move |w, k| {
        let (h, l, t) = (h.clone(), l.clone(), t.clone());
        async move {
            let url = format!("{}/download", l[(w * 11 + k as usize * 3) % l.len()]);
            match h.get(&url).send().await {
                Ok(r) if r.status() == 200 => match r.bytes().await {
                    Ok(b) => {
                        t.downloads.fetch_add(1, Ordering::Relaxed);
                        t.downloaded_bytes.fetch_add(b.len() as u64, Ordering::Relaxed);
                    }
                    Err(e) => t.error(format!("download body: {e}")),
                },
                Ok(r) => t.error(format!("download: HTTP {}", r.status())),
                Err(e) => t.error(format!("download: {e}")),
            }
        }
    }));
    // Uploads, each followed by deleting the previous one.
    let (h, t, b, tok) = (http.clone(), tally.clone(), base.clone(), token.clone());
    let previous: Arc<Mutex<Option<i64>>> = Default::default();
    tasks.extend(spawn_workers(1, shape.uploads, end, move |_, k| {
        let (h, t, b, tok, previous) = (h.clone(), t.clone(), b.clone(), tok.clone(), previous.clone());
        async move {
            match upload(&h, &b, &tok, &format!("upload-{k}"), UPLOAD_BYTES).await {
                Ok(id) => {
                    t.uploads.fetch_add(1, Ordering::Relaxed);
                    let old = previous.lock().unwrap_or_else(|e| e.into_inner()).replace(id);
                    if let Some(old) = old {
                        match h.delete(format!("{b}/api/v3/assets/{old}/")).bearer_auth(&tok).send().await {
                            Ok(r) if r.status().is_success() => {}
                            Ok(r) => t.error(format!("delete: HTTP {}", r.status())),
                            Err(e) => t.error(format!("delete: {e}")),
                        }
                    }
                }
                Err(e) => t.error(format!("{e:#}")),
            }
        }
    }));
    // Comments: each socket sends at its share of the rate and reads everything.
    for (i, ws) in sockets.into_iter().enumerate() {
        let (mut sink, mut stream) = ws.split();
        let t = tally.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(frame) = stream.next().await {
                match frame {
                    Ok(Message::Text(text)) => {
                        t.frames_received.fetch_add(1, Ordering::Relaxed);
                        if text.contains("\"type\":\"error\"") {
                            t.error(format!("socket error frame: {}", text.chars().take(160).collect::<String>()));
                        }
                    }
                    Ok(Message::Close(c)) => {
                        if Instant::now() < end {
                            t.error(format!("socket closed by the server: {c:?}"));
                        }
                        return;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if Instant::now() < end {
                            t.error(format!("socket: {e}"));
                        }
                        return;
                    }
                }
            }
            if Instant::now() < end {
                t.error("socket ended early");
            }
        }));
        let t = tally.clone();
        let Some(mut every) = interval(shape.comments / SOCKETS as f64) else { continue };
        tasks.push(tokio::spawn(async move {
            let mut k = 0u64;
            while Instant::now() < end {
                every.tick().await;
                let frame = json!({"type": "comment", "comment": {"content": format!("soak comment {i}-{k}")}});
                if let Err(e) = sink.send(Message::text(frame.to_string())).await {
                    t.error(format!("socket send: {e}"));
                    return;
                }
                t.comments_sent.fetch_add(1, Ordering::Relaxed);
                k += 1;
            }
            let _ = sink.send(Message::Close(None)).await;
        }));
    }

    // Sampling: RSS and WAL every second; progress every minute.
    let first = shape.first_reading();
    let mut rss_first = None;
    let mut wal_max = 0u64;
    let mut rss_max = 0u64;
    let mut last_progress = Instant::now();
    let rss_start = common::rss_kib(server.pid())?;
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_secs(1).min(end.saturating_duration_since(Instant::now()))).await;
        server.check_alive()?;
        let rss = common::rss_kib(server.pid())?;
        rss_max = rss_max.max(rss);
        wal_max = wal_max.max(server.wal_bytes());
        if rss_first.is_none() && start.elapsed() >= first {
            rss_first = Some(rss);
        }
        if last_progress.elapsed() >= Duration::from_secs(60) {
            last_progress = Instant::now();
            println!(
                "  {:>4} s: RSS {:.1} MiB, WAL {:.1} MiB (max {:.1}), {} views, {} downloads, {} uploads, {} comments, {} errors",
                start.elapsed().as_secs(),
                rss as f64 / 1024.0,
                mib(server.wal_bytes()),
                mib(wal_max),
                tally.views.load(Ordering::Relaxed),
                tally.downloads.load(Ordering::Relaxed),
                tally.uploads.load(Ordering::Relaxed),
                tally.comments_sent.load(Ordering::Relaxed),
                tally.error_count()
            );
        }
    }
    let rss_end = common::rss_kib(server.pid())?;
    let wal_end = server.wal_bytes();
    let elapsed = start.elapsed().as_secs_f64();
    // Let the workers finish the request in hand.
    for task in tasks {
        if tokio::time::timeout(Duration::from_secs(30), task).await.is_err() {
            tally.error("a load task did not finish within 30 s of the end");
        }
    }
    tokio::time::sleep(IDLE).await;
    server.check_alive()?;
    let rss_idle = common::rss_kib(server.pid())?;
    let wal_idle = server.wal_bytes();

    let rss_first = rss_first.unwrap_or(rss_end);
    let growth = 100.0 * (rss_end as f64 - rss_first as f64) / rss_first as f64;
    let errors = tally.error_count();
    let rate = |n: &AtomicU64| n.load(Ordering::Relaxed) as f64 / elapsed;
    println!(
        "achieved: {:.0} page views/s, {:.0} downloads/s ({:.1} MiB/s), {:.1} uploads/s, {:.0} comments/s sent, {:.0} socket frames/s received",
        rate(&tally.views),
        rate(&tally.downloads),
        mib(tally.downloaded_bytes.load(Ordering::Relaxed)) / elapsed,
        rate(&tally.uploads),
        rate(&tally.comments_sent),
        rate(&tally.frames_received)
    );
    let mut missed = Vec::new();
    let mut check = |name: &str, ok: bool| {
        if !ok {
            missed.push(name.to_string());
        }
        if ok { "ok" } else { "MISSED" }
    };
    println!("errors: {errors} (target 0): {}", check("errors", errors == 0));
    for (kind, n) in tally.errors.lock().unwrap_or_else(|e| e.into_inner()).iter().take(10) {
        println!("    {n} × {kind}");
    }
    println!(
        "RSS: {:.1} MiB at the start of the load, {:.1} MiB after {} s, {:.1} MiB at the end ({} s), peak {:.1} MiB: growth after the first reading {growth:+.1} % (target < {TARGET_GROWTH_PCT} %): {}",
        rss_start as f64 / 1024.0,
        rss_first as f64 / 1024.0,
        first.as_secs(),
        rss_end as f64 / 1024.0,
        shape.secs,
        rss_max as f64 / 1024.0,
        check("RSS growth", growth < TARGET_GROWTH_PCT)
    );
    println!(
        "WAL: largest {:.1} MiB during the load, {:.1} MiB at its end (target < {TARGET_WAL_MIB} MiB): {}",
        mib(wal_max),
        mib(wal_end),
        check("WAL size", mib(wal_max) < TARGET_WAL_MIB)
    );
    println!(
        "after {} idle seconds: RSS {:.1} MiB, WAL {:.1} MiB, database {:.1} MiB",
        IDLE.as_secs(),
        rss_idle as f64 / 1024.0,
        mib(wal_idle),
        mib(std::fs::metadata(server.data.join("vitrine.db")).map_or(0, |m| m.len()))
    );
    let (n, some) = server.problems();
    if n == 0 {
        println!("server log: no warnings or errors");
    } else {
        println!("server log: {n} warning/error lines, e.g.:");
        for l in some {
            println!("    {l}");
        }
    }
    Ok(missed)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without it.
    if !args.iter().any(|a| a == "--bench") {
        println!("soak benchmark: skipped (run it with `bash bench/soak.sh` or `cargo bench --bench soak`)");
        return Ok(());
    }
    let shape = Shape::from_env();
    let overall = Duration::from_secs(shape.secs + 240);
    common::run_bench("soak", overall, async { run(&shape).await })
}
