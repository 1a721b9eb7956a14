//! Analytics benchmark (`cargo bench --bench analytics`): writer ingest rate and report latency
//! with 1,000,000 events over 30 days, on SQLite and (when TEST_DATABASE_URL is set) PostgreSQL.
//!
//! Each figure is printed next to a reference measured in the same run: the ingest rate next to
//! a plain multi-row insert of the same events without rollups, and the report latency next to
//! the naive report (aggregating raw events per request) on the same data.

use std::time::{Duration, Instant};

use vitrine::analytics::{Event, Kind};
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
    let url = match kind {
        "sqlite" => format!("sqlite://{}?mode=rwc", dir.join("bench.db").display()),
        _ => {
            let base = std::env::var("TEST_DATABASE_URL")?;
            let name = format!("vitrine_bench_{}", std::process::id());
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&base).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}"))).execute(&mut conn).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await?;
            let mut u = url::Url::parse(&base)?;
            u.set_path(&format!("/{name}"));
            u.to_string()
        }
    };
    let store = Store::connect(&url, 8).await?;
    store.migrate().await?;
    Ok(store)
}

/// The reference for ingest: the same rows, one multi-row INSERT per 64 events, no rollups.
async fn plain_insert(store: &Store, evs: &[Event], id0: i64) -> anyhow::Result<()> {
    let mut tx = store.pool().begin().await?;
    for (c, chunk) in evs.chunks(64).enumerate() {
        let mut sql = String::from(
            "INSERT INTO analytics_events (id, at, kind, share_id, asset_id, visitor, country, device, browser, os, referrer, is_bot) VALUES ",
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
            "SELECT {col}, COUNT(*) FROM analytics_events WHERE share_id = 1 AND kind = 'view' AND is_bot = 0 AND at >= $1 GROUP BY {col}"
        )))
        .bind(from_ms)
        .fetch_all(store.pool())
        .await?;
    }
    let _: (i64,) = sqlx::query_as(
        "SELECT COUNT(DISTINCT visitor) FROM analytics_events WHERE share_id = 1 AND is_bot = 0 AND at >= $1",
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
    // Reference: the same number of rows written plainly into a scratch copy of the table.
    let ref_n = 200_000;
    let ref_start = Instant::now();
    for (i, chunk) in all[..ref_n].chunks(BATCH).enumerate() {
        plain_insert(&store, chunk, 10_000_000 + (i * BATCH) as i64).await?;
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
        let base = std::env::var("TEST_DATABASE_URL")?;
        store.close().await;
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&base).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS vitrine_bench_{}", std::process::id())))
            .execute(&mut conn)
            .await?;
    }
    Ok(())
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
    run("sqlite").await?;
    if std::env::var("TEST_DATABASE_URL").is_ok() {
        run("postgres").await?;
    } else {
        println!("postgres: skipped (set TEST_DATABASE_URL to run it)");
    }
    Ok(())
}
