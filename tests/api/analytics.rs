//! Analytics: capture through the real share endpoints, exact reports from a seeded event set,
//! unique visitors and the daily salt under a test clock, geo behind a trusted proxy, bots,
//! engagement, privacy of the schema, a stalled writer, retention, authorisation.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};
use vitrine::domain::time::ManualClock;

use crate::helpers::{Db, Spawn, TestApp, assert_error, fixtures};

const DAY: i64 = 86_400_000;
/// 2024-01-15T10:30:00Z
const T0: i64 = 1_705_314_600_000;
const CHROME: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1";
const FIREFOX: &str = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";

struct Fixture {
    app: TestApp,
    clock: Arc<ManualClock>,
    owner: String,
    share: Value,
    asset_id: i64,
}

async fn fixture(db: Db) -> Fixture {
    let clock = Arc::new(ManualClock::new(T0));
    let app = TestApp::spawn_with(Spawn {
        db,
        clock: Some(clock.clone()),
        tweak: Box::new(|c| {
            c.trusted_proxies = vec!["127.0.0.1".into()];
            c.share_access_rate_per_ip_per_minute = 10_000;
            // The owner stays signed in over the days (up to a year) the tests move the clock on.
            c.token_ttl_secs = 400 * 86_400;
        }),
        ..Default::default()
    })
    .await;
    let (owner, _) = app.register("owner@example.com", "Olive").await;
    let a = app.upload(&owner, "deck.pdf", fixtures::pdf(3000)).await;
    let asset_id = a["id"].as_i64().expect("id");
    let r = app.post_json(&format!("/api/v3/assets/{asset_id}/share/"), Some(&owner), &json!({})).await;
    let share: Value = r.json().await.expect("json");
    Fixture { app, clock, owner, share, asset_id }
}

impl Fixture {
    fn path(&self) -> String {
        let url = self.share["share_url"].as_str().expect("url");
        url[url.find("/share/").expect("path")..].to_string()
    }

    /// A page view from `ip` with `ua` (through the trusted proxy on loopback).
    async fn view(&self, ip: &str, ua: &str, referer: Option<&str>) {
        let mut r =
            self.app.client.get(self.app.url(&self.path())).header("x-forwarded-for", ip).header("user-agent", ua);
        if let Some(x) = referer {
            r = r.header("referer", x);
        }
        assert_eq!(r.send().await.expect("view").status(), StatusCode::OK);
    }

    async fn download(&self, ip: &str, ua: &str) {
        let r = self
            .app
            .client
            .get(self.app.url(&format!("{}download", self.path())))
            .header("x-forwarded-for", ip)
            .header("user-agent", ua)
            .send()
            .await
            .expect("download");
        assert_eq!(r.status(), StatusCode::OK);
    }

    async fn report(&self, days: u32) -> Value {
        self.app.state.analytics.flush().await.expect("flush");
        let uuid = self.share["uuid"].as_str().expect("uuid");
        let r = self.app.get(&format!("/api/v3/shares/{uuid}/analytics/?days={days}"), Some(&self.owner)).await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.expect("json")
    }
}

crate::on_both_databases!(
    a_seeded_event_set_gives_exact_numbers,
    raw_events_of_the_former_per_row_table_are_moved_into_batches
);

async fn a_seeded_event_set_gives_exact_numbers(db: Db) {
    let f = fixture(db).await;
    // Day 1: US desktop twice (one visitor), GB phone once, both download once; a bot; the owner.
    f.view("8.8.8.8", CHROME, Some("https://news.example.com/item?id=1")).await;
    f.view("8.8.8.8", CHROME, None).await;
    f.view("81.2.69.142", IPHONE, Some("https://www.twitter.com/x")).await;
    f.download("8.8.8.8", CHROME).await;
    f.view("8.8.4.4", "facebookexternalhit/1.1", None).await;
    f.app.get(&f.path(), Some(&f.owner)).await;
    // Day 3: NL Firefox, private address (unknown country).
    f.clock.advance_ms(2 * DAY);
    f.view("193.0.6.139", FIREFOX, None).await;
    f.view("10.0.0.7", FIREFOX, None).await;
    let r = f.report(7).await;
    assert_eq!(
        r["summary"],
        json!({"total_views": 5, "total_downloads": 1, "unique_visitors": 4, "conversion_rate": 20.0})
    );
    assert_eq!(
        r["geographic_breakdown"],
        json!([{"country": "US", "views": 2}, {"country": "GB", "views": 1}, {"country": "NL", "views": 1}, {"country": "unknown", "views": 1}])
    );
    assert_eq!(
        r["device_breakdown"],
        json!([{"device_type": "desktop", "views": 4}, {"device_type": "mobile", "views": 1}])
    );
    assert_eq!(
        r["browser_breakdown"],
        json!([{"browser": "Chrome", "views": 2}, {"browser": "Firefox", "views": 2}, {"browser": "Safari", "views": 1}])
    );
    assert_eq!(r["os_breakdown"][0], json!({"os": "Linux", "views": 2}));
    assert_eq!(
        r["referrer_breakdown"],
        json!([{"referrer": "direct", "views": 3}, {"referrer": "news.example.com", "views": 1}, {"referrer": "twitter.com", "views": 1}])
    );
    let days = r["daily_breakdown"].as_array().expect("days");
    assert_eq!(days.len(), 7);
    assert_eq!(days[4], json!({"date": "2024-01-15", "views": 3, "downloads": 1, "unique_visitors": 2}));
    assert_eq!(days[5], json!({"date": "2024-01-16", "views": 0, "downloads": 0, "unique_visitors": 0}));
    assert_eq!(days[6], json!({"date": "2024-01-17", "views": 2, "downloads": 0, "unique_visitors": 2}));
    // The asset's report covers every link of the asset.
    let a: Value = f
        .app
        .get(&format!("/api/v3/assets/{}/analytics/?days=7", f.asset_id), Some(&f.owner))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(a["summary"], r["summary"]);
    // Raw events keep the bot, flagged.
    assert_eq!(f.app.state.store.count_events().await.expect("count"), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_visitor_counts_once_a_day_and_the_salt_rotates_daily() {
    let f = fixture(Db::Sqlite).await;
    f.view("8.8.8.8", CHROME, None).await;
    f.view("8.8.8.8", CHROME, None).await;
    f.app.state.analytics.flush().await.expect("flush");
    let visitors = || async {
        let mut v: Vec<String> = f
            .app
            .state
            .store
            .raw_events(0, i64::MAX)
            .await
            .expect("raw events")
            .into_iter()
            .map(|e| e.visitor)
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let day1 = visitors().await;
    assert_eq!(day1.len(), 1);
    f.clock.advance_ms(DAY);
    f.view("8.8.8.8", CHROME, None).await;
    let r = f.report(2).await;
    assert_eq!(r["summary"]["total_views"], 3);
    assert_eq!(r["summary"]["unique_visitors"], 2, "a new day, a new salt: yesterday's visitor cannot be linked");
    assert_eq!(r["daily_breakdown"][0]["unique_visitors"], 1);
    assert_eq!(r["daily_breakdown"][1]["unique_visitors"], 1);
    let all = visitors().await;
    assert_eq!(all.len(), 2);
    assert!(all.contains(&day1[0]));
    // Determinism under the clock: the same day gives the same salt.
    let s1 = f.app.state.store.daily_salt("2024-01-16").await.expect("salt");
    let s2 = f.app.state.store.daily_salt("2024-01-16").await.expect("salt");
    assert_eq!(s1, s2);
    assert_ne!(s1, f.app.state.store.daily_salt("2024-01-17").await.expect("salt"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_column_anywhere_holds_a_raw_ip() {
    let f = fixture(Db::Sqlite).await;
    f.view("81.2.69.142", CHROME, None).await;
    f.download("81.2.69.142", CHROME).await;
    f.app.state.analytics.flush().await.expect("flush");
    // Every table of ours (sqlx's own migration ledger holds only checksums).
    let tables: Vec<(String,)> =
        sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table' AND substr(name, 1, 6) <> '_sqlx_'")
            .fetch_all(f.app.state.store.pool())
            .await
            .expect("q");
    for (t,) in tables {
        let cols: Vec<(String,)> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT name FROM pragma_table_info('{t}')")))
                .fetch_all(f.app.state.store.pool())
                .await
                .expect("cols");
        for (c,) in &cols {
            let lc = c.to_ascii_lowercase();
            let ipish = lc == "ip"
                || lc.starts_with("ip_")
                || lc.ends_with("_ip")
                || lc.contains("addr")
                || lc.contains("remote");
            assert!(!ipish, "column {t}.{c} looks like an IP address");
        }
        let dump: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT CAST(({}) AS TEXT) FROM \"{t}\"",
            cols.iter()
                .map(|(c,)| format!(
                    "COALESCE(CASE WHEN typeof(\"{c}\") = 'blob' THEN hex(\"{c}\") ELSE CAST(\"{c}\" AS TEXT) END, '')"
                ))
                .collect::<Vec<_>>()
                .join(" || '|' || ")
        )))
        .fetch_all(f.app.state.store.pool())
        .await
        .expect("rows");
        for (row,) in dump {
            assert!(!row.contains("81.2.69.142"), "table {t} holds the raw IP: {row}");
            assert!(!row.contains(&hex::encode_upper("81.2.69.142")), "table {t} holds the raw IP in a blob: {row}");
        }
    }
    // Raw events are stored compressed: read them back and check every field too.
    let raw = f.app.state.store.raw_events(0, i64::MAX).await.expect("raw events");
    assert_eq!(raw.len(), 2);
    for e in raw {
        let text = format!("{e:?}");
        assert!(!text.contains("81.2.69.142"), "a raw event holds the IP: {text}");
        assert_eq!(e.visitor.len(), 32, "a keyed hash, not an address");
        assert_eq!(e.country, "GB");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_is_ignored_without_a_trusted_proxy() {
    let app = TestApp::spawn().await;
    let (owner, _) = app.register("owner@example.com", "Olive").await;
    let a = app.upload(&owner, "deck.pdf", fixtures::pdf(1000)).await;
    let s: Value = app
        .post_json(&format!("/api/v3/assets/{}/share/", a["id"]), Some(&owner), &json!({}))
        .await
        .json()
        .await
        .expect("json");
    let url = s["share_url"].as_str().expect("url");
    app.client.get(url).header("x-forwarded-for", "8.8.8.8").header("user-agent", CHROME).send().await.expect("view");
    app.state.analytics.flush().await.expect("flush");
    let r: Value = app
        .get(&format!("/api/v3/shares/{}/analytics/", s["uuid"].as_str().expect("u")), Some(&owner))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        r["geographic_breakdown"],
        json!([{"country": "unknown", "views": 1}]),
        "loopback peer, header not believed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_beacon_reports_time_on_page_and_load_time() {
    let f = fixture(Db::Sqlite).await;
    f.view("8.8.8.8", CHROME, None).await;
    let beacon = f.app.url(&format!("{}beacon", f.path()));
    for (t, l) in [(30_000, 200), (60_000, 400)] {
        let r = f
            .app
            .client
            .post(&beacon)
            .header("x-forwarded-for", "8.8.8.8")
            .header("user-agent", CHROME)
            .header("content-type", "text/plain;charset=UTF-8")
            .body(json!({"time_on_page_ms": t, "load_ms": l}).to_string())
            .send()
            .await
            .expect("beacon");
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }
    let bad = f.app.client.post(&beacon).body("not json").send().await.expect("beacon");
    assert_error(bad, StatusCode::BAD_REQUEST, "malformed_json").await;
    let big = f.app.client.post(&beacon).body("x".repeat(5000)).send().await.expect("beacon");
    assert_error(big, StatusCode::PAYLOAD_TOO_LARGE, "too_large").await;
    let r = f.report(1).await;
    assert_eq!(r["engagement"]["avg_time_on_page_seconds"], 45.0);
    assert_eq!(r["performance"]["avg_load_ms"], 300.0);
    assert_eq!(r["summary"]["total_views"], 1, "beacons are not views");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_for_the_owner_or_an_admin_and_days_are_checked() {
    let f = fixture(Db::Sqlite).await;
    let (other, _) = f.app.register("other@example.com", "Otto").await;
    let uuid = f.share["uuid"].as_str().expect("uuid");
    let path = format!("/api/v3/shares/{uuid}/analytics/");
    assert_error(f.app.get(&path, Some(&other)).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_error(f.app.get(&path, None).await, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    assert_error(
        f.app.get(&format!("/api/v3/assets/{}/analytics/", f.asset_id), Some(&other)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    for bad in ["0", "366", "abc", "-1"] {
        let e = assert_error(
            f.app.get(&format!("{path}?days={bad}"), Some(&f.owner)).await,
            StatusCode::BAD_REQUEST,
            "validation_error",
        )
        .await;
        assert!(e["fields"]["days"].is_string());
    }
    let r: Value = f.app.get(&path, Some(&f.owner)).await.json().await.expect("json");
    assert_eq!(r["daily_breakdown"].as_array().map(Vec::len), Some(30), "30 days by default");
    assert_eq!(r["summary"]["conversion_rate"], 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_never_blocks_and_drops_are_counted_when_the_writer_is_stalled() {
    let clock = Arc::new(ManualClock::new(T0));
    let app = TestApp::spawn_with(Spawn {
        clock: Some(clock),
        tweak: Box::new(|c| c.analytics_queue_capacity = 4),
        ..Default::default()
    })
    .await;
    let (owner, _) = app.register("owner@example.com", "Olive").await;
    let a = app.upload(&owner, "deck.pdf", fixtures::pdf(1000)).await;
    let s: Value = app
        .post_json(&format!("/api/v3/assets/{}/share/", a["id"]), Some(&owner), &json!({}))
        .await
        .json()
        .await
        .expect("json");
    let url = s["share_url"].as_str().expect("url").to_string();
    let dropped = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("vitrine_analytics_events_dropped_total"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let before = dropped(&app.get("/metrics", None).await.text().await.expect("metrics"));
    // Stall the writer: another connection holds SQLite's write lock.
    let db = app.dir.path().join("vitrine.db");
    let mut locker = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!("sqlite://{}", db.display()))
        .await
        .expect("connect");
    sqlx::query("BEGIN IMMEDIATE").execute(&mut locker).await.expect("lock");
    // A first batch gets the writer stuck in its write; everything after it waits in the queue.
    for _ in 0..2 {
        app.client.get(&url).header("user-agent", CHROME).send().await.expect("view");
    }
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let started = std::time::Instant::now();
    for _ in 0..40 {
        let r = app.client.get(&url).header("user-agent", CHROME).send().await.expect("view");
        assert_eq!(r.status(), StatusCode::OK);
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "pages answered while the writer was stuck");
    let metrics_text = app.get("/metrics", None).await.text().await.expect("metrics");
    let after = dropped(&metrics_text);
    assert!(after - before >= 30.0, "drops counted: {before} -> {after}");
    sqlx::query("ROLLBACK").execute(&mut locker).await.expect("unlock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_raw_events_but_reports_keep_their_numbers() {
    let f = fixture(Db::Sqlite).await;
    f.view("8.8.8.8", CHROME, None).await;
    f.download("8.8.8.8", CHROME).await;
    f.app.state.analytics.flush().await.expect("flush");
    assert_eq!(f.app.state.store.count_events().await.expect("count"), 2);
    // Nothing is old enough yet.
    assert_eq!(vitrine::jobs::retention::run_once(&f.app.state).await.expect("retention"), 0);
    f.clock.advance_ms(366 * DAY);
    assert_eq!(vitrine::jobs::retention::run_once(&f.app.state).await.expect("retention"), 2);
    assert_eq!(f.app.state.store.count_events().await.expect("count"), 0);
    let r = f.report(365).await;
    assert_eq!(r["summary"]["total_views"], 0, "outside the 365-day window now");
    f.clock.advance_ms(-366 * DAY);
    let r = f.report(7).await;
    assert_eq!(
        (r["summary"]["total_views"].as_i64(), r["summary"]["total_downloads"].as_i64()),
        (Some(1), Some(1)),
        "rollups survive"
    );
}

#[test]
fn retention_runs_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vitrine"))
        .args(["retention", "run"])
        .current_dir(dir.path())
        .env("VITRINE_ANALYTICS_RETENTION_DAYS", "30")
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("older than 30 days"));
}

/// Databases created before raw events were batched keep their events: startup moves the rows
/// of `analytics_events` into batches and drops the table.
async fn raw_events_of_the_former_per_row_table_are_moved_into_batches(db: Db) {
    let app = TestApp::spawn_with(Spawn { db, ..Default::default() }).await;
    let store = &app.state.store;
    sqlx::query(
        "CREATE TABLE analytics_events (id BIGINT PRIMARY KEY, at BIGINT NOT NULL, kind TEXT NOT NULL,
            share_id BIGINT NOT NULL, asset_id BIGINT NOT NULL, visitor TEXT NOT NULL, country TEXT NOT NULL,
            device TEXT NOT NULL, browser TEXT NOT NULL, os TEXT NOT NULL, referrer TEXT NOT NULL,
            is_bot BIGINT NOT NULL, time_on_page_ms BIGINT, load_ms BIGINT)",
    )
    .execute(store.pool())
    .await
    .expect("legacy table");
    let mut tx = store.pool().begin().await.expect("tx");
    for i in 0..12_001_i64 {
        sqlx::query(
            "INSERT INTO analytics_events VALUES ($1, $2, $3, 7, 9, 'abcd', 'NL', 'mobile', 'Safari', 'iOS', 'direct', $4, $5, NULL)",
        )
        .bind(i + 1)
        .bind(T0 + i)
        .bind(if i % 2 == 0 { "view" } else { "engagement" })
        .bind(i64::from(i == 5))
        .bind(if i % 2 == 1 { Some(1500_i64) } else { None })
        .execute(&mut *tx)
        .await
        .expect("legacy row");
    }
    tx.commit().await.expect("commit");
    store.migrate().await.expect("migrate again");
    assert_eq!(store.count_events().await.expect("count"), 12_001);
    let raw = store.raw_events(0, i64::MAX).await.expect("raw");
    assert_eq!(raw.len(), 12_001);
    assert_eq!(raw[0].at_ms, T0);
    assert_eq!(raw[12_000].at_ms, T0 + 12_000);
    assert_eq!((raw[1].kind.as_str(), raw[1].time_on_page_ms), ("engagement", Some(1500)));
    assert!(raw[5].is_bot && !raw[4].is_bot);
    assert_eq!((raw[0].device.as_str(), raw[0].browser.as_str(), raw[0].country.as_str()), ("mobile", "Safari", "NL"));
    // A window selects events by time, not by batch.
    assert_eq!(store.raw_events(T0 + 100, T0 + 200).await.expect("window").len(), 100);
    // The table is gone; a further start has nothing to move.
    assert!(sqlx::query("SELECT COUNT(*) FROM analytics_events").fetch_one(store.pool()).await.is_err());
    store.migrate().await.expect("migrate a third time");
    assert_eq!(store.count_events().await.expect("count"), 12_001);
}
