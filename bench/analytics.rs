//! Analytics benchmark (`cargo bench --bench analytics`): writer ingest rate and report latency
//! with 1,000,000 events over 30 days, on SQLite and (when TEST_DATABASE_URL is set) PostgreSQL.
//!
//! Each figure is printed next to a reference measured in the same run: the ingest rate next to
//! a plain multi-row insert of the same events without rollups, and the report latency next to
//! the naive report (aggregating raw events per request) on the same data.

use std::time::{Duration, Instant};

#[path = "common.rs"]
mod common;

use vitrine::domain::analytics::{Event, Kind};
use vitrine::store::Store;
use vitrine::store::analytics::Scope;

const EVENTS: usize = 1_000_000;
const BATCH: usize = 5_000;
const DAY: i64 = 86_400_000;
const NOW: i64 = 1_705_314_600_000;

fn events(n: usize, seed: u64) -> Vec<Event> {
    const COUNTRIES: [&str; 8] = ["US", "GB", "DE", "FR", "JP", "BR", "IN", "unknown"];
    const DEVICES: [&str; 3] = ["desktop", "mobile", "tablet"];
    const BROWSERS: [&str; 4] = ["Chrome", "Safari", "Firefox", "Edge"];
    const OSES: [&str; 4] = ["Windows 10", "Mac OSX", "Android", "iPhone"];
    const REFS: [&str; 4] = ["direct", "news.example.com", "twitter.com", "mail.example.org"];
    let mut x = seed;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut v: Vec<Event> = (0..n)
        .map(|i| {
            let r = next();
            Event {
                kind: if r % 7 == 0 { Kind::Download } else { Kind::View },
                at_ms: NOW - ((r >> 8) % 30) as i64 * DAY - (i as i64 % 1000),
                share_id: 1,
                asset_id: 1,
                visitor: format!("{:032x}", (r >> 16) % 200_000),
                country: COUNTRIES[(r % 8) as usize].into(),
                device: DEVICES[((r >> 3) % 3) as usize],
                browser: BROWSERS[((r >> 5) % 4) as usize].into(),
                os: OSES[((r >> 7) % 4) as usize].into(),
                referrer: REFS[((r >> 9) % 4) as usize].into(),
                is_bot: r % 50 == 0,
                time_on_page_ms: None,
                load_ms: None,
                reading: None,
            }
        })
        .collect();
    // Traffic arrives in time order: each batch covers a short stretch of one day.
    v.sort_by_key(|e| e.at_ms);
    v
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn fresh_store(kind: &str, dir: &std::path::Path) -> anyhow::Result<Store> {
    let store = Store::connect(&fresh_url(kind, dir).await?, 8).await?;
    store.migrate().await?;
    Ok(store)
}

/// A new empty database: a SQLite file in `dir`, or a fresh PostgreSQL database.
async fn fresh_url(kind: &str, dir: &std::path::Path) -> anyhow::Result<String> {
    Ok(match kind {
        "sqlite" => format!("sqlite://{}?mode=rwc", dir.join("bench.db").display()),
        _ => common::fresh_postgres(&bench_db_name()).await?,
    })
}

/// The reference table: one plain row per event, as a naive design would keep them.
async fn create_reference_table(store: &Store) -> anyhow::Result<()> {
    for sql in [
        "CREATE TABLE bench_raw_events (id BIGINT PRIMARY KEY, at BIGINT NOT NULL, kind TEXT NOT NULL,
            share_id BIGINT NOT NULL, asset_id BIGINT NOT NULL, visitor TEXT NOT NULL, country TEXT NOT NULL,
            device TEXT NOT NULL, browser TEXT NOT NULL, os TEXT NOT NULL, referrer TEXT NOT NULL, is_bot BIGINT NOT NULL)",
        "CREATE INDEX bench_raw_events_at ON bench_raw_events (at)",
    ] {
        sqlx::query(sql).execute(store.pool()).await?;
    }
    Ok(())
}

/// The reference for ingest: the same rows, one multi-row INSERT per 64 events, no rollups.
async fn plain_insert(store: &Store, evs: &[Event], id0: i64) -> anyhow::Result<()> {
    let mut tx = store.pool().begin().await?;
    for (c, chunk) in evs.chunks(64).enumerate() {
        let mut sql = String::from(
            "INSERT INTO bench_raw_events (id, at, kind, share_id, asset_id, visitor, country, device, browser, os, referrer, is_bot) VALUES ",
        );
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push(',');
            }
            let b = i * 12;
            sql.push_str(&format!(
                "(${},${},${},${},${},${},${},${},${},${},${},${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7,
                b + 8,
                b + 9,
                b + 10,
                b + 11,
                b + 12
            ));
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (i, e) in chunk.iter().enumerate() {
            q = q
                .bind(id0 + (c * 64 + i) as i64)
                .bind(e.at_ms)
                .bind(e.kind.as_str())
                .bind(e.share_id)
                .bind(e.asset_id)
                .bind(e.visitor.clone())
                .bind(e.country.clone())
                .bind(e.device)
                .bind(e.browser.clone())
                .bind(e.os.clone())
                .bind(e.referrer.clone())
                .bind(i64::from(e.is_bot));
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The naive report: aggregate raw events on every request.
async fn naive_report(store: &Store, from_ms: i64) -> anyhow::Result<()> {
    for col in ["country", "device", "browser", "os", "referrer"] {
        let _: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {col}, COUNT(*) FROM bench_raw_events WHERE share_id = 1 AND kind = 'view' AND is_bot = 0 AND at >= $1 GROUP BY {col}"
        )))
        .bind(from_ms)
        .fetch_all(store.pool())
        .await?;
    }
    let _: (i64,) = sqlx::query_as(
        "SELECT COUNT(DISTINCT visitor) FROM bench_raw_events WHERE share_id = 1 AND is_bot = 0 AND at >= $1",
    )
    .bind(from_ms)
    .fetch_one(store.pool())
    .await?;
    Ok(())
}

async fn run(kind: &str) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = fresh_store(kind, dir.path()).await?;
    let all = events(EVENTS, 0x9e3779b97f4a7c15);
    // Ingest through the real path: events + rollups + visitors, batches of 5,000.
    let start = Instant::now();
    for chunk in all.chunks(BATCH) {
        store.write_events(chunk).await?;
    }
    let ingest = start.elapsed();
    let rate = EVENTS as f64 / ingest.as_secs_f64();
    // Reference: the same events written as plain rows (one per event) into a scratch table,
    // which the naive report below then scans.
    create_reference_table(&store).await?;
    let ref_n = EVENTS;
    let ref_start = Instant::now();
    for (i, chunk) in all.chunks(BATCH).enumerate() {
        plain_insert(&store, chunk, (i * BATCH) as i64).await?;
    }
    let ref_rate = ref_n as f64 / ref_start.elapsed().as_secs_f64();
    // Report latency (30 days, from rollups), median of 21, after one warm-up.
    let from = vitrine::domain::time::day_of(NOW - 29 * DAY);
    let to = vitrine::domain::time::day_of(NOW);
    store.analytics_report(Scope::Share(1), &from, &to).await?;
    let mut times = vec![];
    for _ in 0..21 {
        let t = Instant::now();
        let data = store.analytics_report(Scope::Share(1), &from, &to).await?;
        times.push(t.elapsed());
        assert!(data.total.views > 0);
    }
    let report = median(times);
    let mut naive = vec![];
    for _ in 0..3 {
        let t = Instant::now();
        naive_report(&store, NOW - 30 * DAY).await?;
        naive.push(t.elapsed());
    }
    let naive = median(naive);
    println!(
        "{kind}: ingest {rate:>9.0} events/s through write_events (target >= 50000) | reference plain insert {ref_rate:.0} rows/s (ratio {:.2})",
        rate / ref_rate
    );
    println!(
        "{kind}: report over {EVENTS} events / 30 days: {:.1} ms median (target < 50 ms) | reference naive raw-event report {:.1} ms ({:.0}x slower)",
        report.as_secs_f64() * 1000.0,
        naive.as_secs_f64() * 1000.0,
        naive.as_secs_f64() / report.as_secs_f64()
    );
    if kind == "postgres" {
        store.close().await;
        common::drop_postgres(&bench_db_name()).await?;
    }
    Ok(())
}

/// Rows in the raw-event table (committed ones).
async fn raw_rows(state: &vitrine::app::AppState) -> anyhow::Result<i64> {
    state.store.count_events().await
}

/// Value of an unlabelled counter in the `/metrics` text.
fn counter(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// `wrk -c64` against `url` for `secs`; requests per second.
async fn wrk(url: &str, secs: u64) -> anyhow::Result<f64> {
    let out = tokio::process::Command::new("wrk")
        .args(["-t1", "-c64", &format!("-d{secs}s"), "-H", "Accept: application/json"])
        .args(["-H", "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0", url])
        .output()
        .await?;
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(out.status.success() && !text.contains("Non-2xx"), "wrk failed: {text}");
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:").and_then(|v| v.trim().parse().ok()))
        .ok_or_else(|| anyhow::anyhow!("no Requests/sec in wrk's output: {text}"))
}

/// Ingest while serving: the share page is loaded with wrk (64 connections) on an in-process
/// server with capture on, while synthetic hits are offered to the same capture queue at
/// `INJECT_RATE`/s (on top of the share page's own events). Reports the events written per
/// second during the load, events dropped, and the share page's req/s next to the same wrk run
/// without injection (the reference, same process, same run).
const INJECT_RATE: u64 = 40_000;
const LOAD_SECS: u64 = 10;

async fn under_load(kind: &str) -> anyhow::Result<()> {
    use vitrine::analytics::Hit;
    let dir = tempfile::tempdir()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let database_url = Some(fresh_url(kind, dir.path()).await?);
    let config = vitrine::config::Config {
        data_dir: dir.path().to_path_buf(),
        listen: listener.local_addr()?.to_string(),
        public_url: base.clone(),
        database_url,
        log_level: "warn".into(),
        ..Default::default()
    };
    let state = vitrine::app::AppState::build(config).await?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(vitrine::app::run(listener, state.clone(), shutdown.clone()));
    // Fixture through the API: an account, a PDF, a public link.
    let http = reqwest::Client::new();
    let reg: serde_json::Value = http
        .post(format!("{base}/api/auth/register/"))
        .json(&serde_json::json!({"email": "bench@example.com", "password": "bench-password-123", "name": "Bench"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = reg["access_token"].as_str().unwrap_or_default().to_string();
    let mut pdf = b"%PDF-1.4\n".to_vec();
    pdf.resize(20_000, b' ');
    pdf.extend_from_slice(b"\n%%EOF\n");
    let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(pdf).file_name("b.pdf"));
    let asset: serde_json::Value = http
        .post(format!("{base}/api/v3/assets/"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let share: serde_json::Value = http
        .post(format!("{base}/api/v3/assets/{}/share/", asset["id"]))
        .bearer_auth(&token)
        .json(&serde_json::json!({"share_type": "public"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let share_url = share["share_url"].as_str().unwrap_or_default().to_string();
    let (share_id, asset_id) =
        (share["id"].as_i64().unwrap_or_default(), share["asset_id"].as_i64().unwrap_or_default());
    // Warm-up, then the reference: the share page alone (its own events captured).
    wrk(&share_url, 2).await?;
    state.analytics.flush().await?;
    let reference = wrk(&share_url, LOAD_SECS).await?;
    state.analytics.flush().await?;
    // The measured run: the same load plus INJECT_RATE synthetic hits/s, paced every 10 ms.
    const AGENTS: [&str; 4] = [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
    ];
    let stop = tokio_util::sync::CancellationToken::new();
    let injector = {
        let (state, stop) = (state.clone(), stop.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut n: u64 = 0;
            while !stop.is_cancelled() {
                tick.tick().await;
                for _ in 0..INJECT_RATE / 100 {
                    n += 1;
                    state.analytics.capture(Hit {
                        kind: vitrine::domain::analytics::Kind::View,
                        at_ms: state.analytics.now_ms(),
                        share_id,
                        asset_id,
                        ip: std::net::IpAddr::from([81, (n >> 16) as u8, (n >> 8) as u8, n as u8]),
                        user_agent: AGENTS[(n % 4) as usize].into(),
                        referrer: Some("https://news.example.com/a".into()),
                        time_on_page_ms: None,
                        load_ms: None,
                        reading: None,
                    });
                }
            }
            n
        })
    };
    let metrics0 = state.metrics.render();
    let rows0 = raw_rows(&state).await?;
    let t0 = Instant::now();
    let loaded = wrk(&share_url, LOAD_SECS).await?;
    let rows1 = raw_rows(&state).await?;
    let secs = t0.elapsed().as_secs_f64();
    stop.cancel();
    let offered = injector.await?;
    state.analytics.flush().await?;
    let metrics1 = state.metrics.render();
    let written = (rows1 - rows0) as f64 / secs;
    let dropped = counter(&metrics1, "vitrine_analytics_events_dropped_total")
        - counter(&metrics0, "vitrine_analytics_events_dropped_total");
    println!(
        "{kind}: under share-page load (wrk -c64, {LOAD_SECS}s) + {INJECT_RATE}/s synthetic hits: {written:.0} events/s written (target >= 50000), {dropped} dropped of {offered} offered | share page {loaded:.0} req/s vs {reference:.0} req/s without injection (ratio {:.2})",
        loaded / reference
    );
    shutdown.cancel();
    let _ = server.await;
    if kind == "postgres" {
        common::drop_postgres(&bench_db_name()).await?;
    }
    Ok(())
}

fn bench_db_name() -> String {
    format!("vitrine_bench_{}", std::process::id())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without it, and
    // a million events in a debug build is not a test.
    if !std::env::args().any(|a| a == "--bench") {
        println!("analytics benchmark: skipped (run it with `cargo bench --bench analytics`)");
        return Ok(());
    }
    sqlx::any::install_default_drivers();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let wrk = std::process::Command::new("wrk").arg("--version").output().is_ok();
    let pg = std::env::var("TEST_DATABASE_URL").is_ok();
    run("sqlite").await?;
    if wrk {
        under_load("sqlite").await?;
    }
    if pg {
        run("postgres").await?;
        if wrk {
            under_load("postgres").await?;
        }
    } else {
        println!("postgres: skipped (set TEST_DATABASE_URL to run it)");
    }
    if !wrk {
        println!("ingest under share-page load: skipped (install wrk: apt-get install wrk)");
    }
    Ok(())
}
