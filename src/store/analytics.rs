//! Analytics queries: batched event writes with their rollups, the daily salts, the reports
//! (which read only rollups, never raw events), and retention.

use std::collections::HashMap;

use rand::RngCore;

use super::Store;
use crate::domain::analytics::hll::Hll;
use crate::domain::analytics::{Counts, Event, Kind, ReadingRollup, device_name, rollup, rollup_readings};

/// Which events a report covers.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    Asset(i64),
    Share(i64),
}

impl Scope {
    fn clause(self) -> (&'static str, i64) {
        match self {
            Scope::Asset(id) => ("asset_id = $1", id),
            Scope::Share(id) => ("share_id = $1", id),
        }
    }
}

/// Rollup numbers of one report, before zero-filling and shaping.
#[derive(Debug, Default)]
pub struct ReportData {
    pub total: Counts,
    pub unique_visitors: i64,
    /// dimension -> [(value, views)], most viewed first.
    pub breakdowns: HashMap<&'static str, Vec<(String, i64)>>,
    /// day -> (views, downloads)
    pub daily: HashMap<String, (i64, i64)>,
    /// day -> unique visitors
    pub daily_unique: HashMap<String, i64>,
    /// (asset, page, views, time ms) from the document viewer, by asset then page.
    pub pages: Vec<(i64, i64, i64, i64)>,
    /// Readings begun and readings that reached the last page.
    pub readers: i64,
    pub completions: i64,
}

/// (day, views, downloads, previews, comments, time sum, time count, load sum, load count)
type DayTotals = (String, i64, i64, i64, i64, i64, i64, i64, i64);

impl Store {
    /// The salt of `day` (created on first use; shared by every instance). Salts older than
    /// yesterday are deleted so that old visitor keys cannot be recomputed.
    pub async fn daily_salt(&self, day: &str) -> anyhow::Result<Vec<u8>> {
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        self.write(
            sqlx::query("INSERT INTO analytics_salts (day, salt) VALUES ($1, $2) ON CONFLICT (day) DO NOTHING")
                .bind(day)
                .bind(hex::encode(raw)),
        )
        .await?;
        let (salt,): (String,) =
            sqlx::query_as("SELECT salt FROM analytics_salts WHERE day = $1").bind(day).fetch_one(&self.pool).await?;
        self.write(
            sqlx::query("DELETE FROM analytics_salts WHERE day < $1")
                .bind(crate::domain::time::day_of(day_start_ms(day) - 86_400_000)),
        )
        .await?;
        Ok(hex::decode(salt)?)
    }

    /// Writes a batch of events and folds it into the daily rollups, in one transaction.
    pub async fn write_events(&self, events: &[Event]) -> anyhow::Result<()> {
        self.write_events_with(events, &[], 0).await
    }

    /// `write_events`, with the webhook events the batch gives rise to (`share.viewed`,
    /// `share.downloaded`) queued in the same transaction at `now`.
    pub async fn write_events_with(
        &self,
        events: &[Event],
        outbox: &[crate::domain::webhooks::Event],
        now: i64,
    ) -> anyhow::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let (rows, visitors) = rollup(events);
        let (_writing, mut tx) = self.begin_write().await?;
        insert_event_batch(&mut tx, events).await?;
        let queued = self.enqueue_webhooks_batch(&mut tx, outbox, now).await?;
        const DAILY_COLUMNS: &str = "asset_id, share_id, day, dim, value, views, downloads, previews, comments, \
            time_sum_ms, time_count, load_sum_ms, load_count";
        const DAILY_TYPES: &str = "asset_id BIGINT, share_id BIGINT, day TEXT, dim TEXT, value TEXT, views BIGINT, \
            downloads BIGINT, previews BIGINT, comments BIGINT, time_sum_ms BIGINT, time_count BIGINT, \
            load_sum_ms BIGINT, load_count BIGINT";
        // All rollup rows of the batch in one upsert: the engine unpacks one JSON parameter.
        let rollup_json = self.dialect.encode_rows(
            DAILY_COLUMNS,
            rows.iter().map(|((asset, share, day, dim, value), c)| {
                vec![
                    (*asset).into(),
                    (*share).into(),
                    day.as_str().into(),
                    (*dim).into(),
                    value.as_str().into(),
                    c.views.into(),
                    c.downloads.into(),
                    c.previews.into(),
                    c.comments.into(),
                    c.time_sum_ms.into(),
                    c.time_count.into(),
                    c.load_sum_ms.into(),
                    c.load_count.into(),
                ]
            }),
        );
        // `WHERE true` keeps SQLite from reading ON CONFLICT as part of the SELECT.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO analytics_daily ({DAILY_COLUMNS})
             {} WHERE true
             ON CONFLICT (asset_id, share_id, day, dim, value) DO UPDATE SET
                views = analytics_daily.views + excluded.views,
                downloads = analytics_daily.downloads + excluded.downloads,
                previews = analytics_daily.previews + excluded.previews,
                comments = analytics_daily.comments + excluded.comments,
                time_sum_ms = analytics_daily.time_sum_ms + excluded.time_sum_ms,
                time_count = analytics_daily.time_count + excluded.time_count,
                load_sum_ms = analytics_daily.load_sum_ms + excluded.load_sum_ms,
                load_count = analytics_daily.load_count + excluded.load_count",
            self.dialect.json_rows(DAILY_COLUMNS, DAILY_TYPES)
        )))
        .bind(rollup_json)
        .execute(&mut *tx)
        .await?;
        write_readings(&mut tx, self.dialect, &rollup_readings(events)).await?;
        // Read-modify-write of each (asset, link, day) sketch; PostgreSQL locks the row so
        // that several instances merge rather than overwrite.
        let lock = if self.dialect == super::Dialect::Postgres { " FOR UPDATE" } else { "" };
        for ((asset, share, day), sketch) in &visitors {
            let existing: Option<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT sketch FROM analytics_daily_uniques WHERE asset_id = $1 AND share_id = $2 AND day = $3{lock}"
            )))
            .bind(*asset)
            .bind(*share)
            .bind(day.clone())
            .fetch_optional(&mut *tx)
            .await?;
            let mut merged = existing.map(|(s,)| Hll::decode(&s)).unwrap_or_default();
            merged.merge(sketch);
            sqlx::query(
                "INSERT INTO analytics_daily_uniques (asset_id, share_id, day, sketch) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (asset_id, share_id, day) DO UPDATE SET sketch = excluded.sketch",
            )
            .bind(*asset)
            .bind(*share)
            .bind(day.clone())
            .bind(merged.encode())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        if queued > 0 {
            self.outbox_filled();
        }
        Ok(())
    }

    /// Everything a report needs for days `from..=to` (`YYYY-MM-DD`), from the rollups only.
    pub async fn analytics_report(&self, scope: Scope, from: &str, to: &str) -> anyhow::Result<ReportData> {
        let (clause, id) = scope.clause();
        let mut data = ReportData::default();
        let rows: Vec<DayTotals> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT day, CAST(SUM(views) AS BIGINT), CAST(SUM(downloads) AS BIGINT), CAST(SUM(previews) AS BIGINT),
                    CAST(SUM(comments) AS BIGINT), CAST(SUM(time_sum_ms) AS BIGINT), CAST(SUM(time_count) AS BIGINT),
                    CAST(SUM(load_sum_ms) AS BIGINT), CAST(SUM(load_count) AS BIGINT)
             FROM analytics_daily WHERE {clause} AND dim = 'total' AND day >= $2 AND day <= $3 GROUP BY day"
        )))
        .bind(id)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        for (day, views, downloads, previews, comments, ts, tc, ls, lc) in rows {
            let t = &mut data.total;
            t.views += views;
            t.downloads += downloads;
            t.previews += previews;
            t.comments += comments;
            t.time_sum_ms += ts;
            t.time_count += tc;
            t.load_sum_ms += ls;
            t.load_count += lc;
            data.daily.insert(day, (views, downloads));
        }
        for dim in ["country", "device", "browser", "os", "referrer"] {
            let rows: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT value, CAST(SUM(views) AS BIGINT) AS v FROM analytics_daily
                 WHERE {clause} AND dim = $2 AND day >= $3 AND day <= $4
                 GROUP BY value HAVING SUM(views) > 0 ORDER BY v DESC, value LIMIT 50"
            )))
            .bind(id)
            .bind(dim)
            .bind(from)
            .bind(to)
            .fetch_all(&self.pool)
            .await?;
            data.breakdowns.insert(dim, rows);
        }
        let sketches: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT day, sketch FROM analytics_daily_uniques WHERE {clause} AND day >= $2 AND day <= $3"
        )))
        .bind(id)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        let mut per_day: HashMap<String, Hll> = HashMap::new();
        let mut all = Hll::default();
        for (day, sketch) in sketches {
            let h = Hll::decode(&sketch);
            all.merge(&h);
            per_day.entry(day).or_default().merge(&h);
        }
        data.daily_unique = per_day.into_iter().map(|(d, h)| (d, h.estimate())).collect();
        data.pages = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT asset_id, page, CAST(SUM(views) AS BIGINT), CAST(SUM(time_sum_ms) AS BIGINT)
             FROM analytics_daily_pages WHERE {clause} AND day >= $2 AND day <= $3
             GROUP BY asset_id, page ORDER BY asset_id, page LIMIT 10000"
        )))
        .bind(id)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        let (readers, completions): (Option<i64>, Option<i64>) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT CAST(SUM(readers) AS BIGINT), CAST(SUM(completions) AS BIGINT)
             FROM analytics_daily_readers WHERE {clause} AND day >= $2 AND day <= $3"
        )))
        .bind(id)
        .bind(from)
        .bind(to)
        .fetch_one(&self.pool)
        .await?;
        data.readers = readers.unwrap_or(0);
        data.completions = completions.unwrap_or(0);
        let unique = all.estimate();
        data.unique_visitors = unique;
        Ok(data)
    }

    /// Deletes raw events older than `before_ms` (whole batches whose newest event is older);
    /// daily rollups and sketches stay. Returns the number of events deleted.
    pub async fn delete_old_events(&self, before_ms: i64) -> anyhow::Result<u64> {
        let (_writing, mut tx) = self.begin_write().await?;
        let (n,): (Option<i64>,) =
            sqlx::query_as("SELECT CAST(SUM(events) AS BIGINT) FROM analytics_event_batches WHERE last_at < $1")
                .bind(before_ms)
                .fetch_one(&mut *tx)
                .await?;
        sqlx::query("DELETE FROM analytics_event_batches WHERE last_at < $1").bind(before_ms).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(n.unwrap_or(0) as u64)
    }

    /// The number of raw events kept.
    pub async fn count_events(&self) -> anyhow::Result<i64> {
        let (n,): (Option<i64>,) = sqlx::query_as("SELECT CAST(SUM(events) AS BIGINT) FROM analytics_event_batches")
            .fetch_one(&self.pool)
            .await?;
        Ok(n.unwrap_or(0))
    }

    /// The raw events with a time in `from_ms..to_ms`, oldest batch first (exports, audits, tests).
    pub async fn raw_events(&self, from_ms: i64, to_ms: i64) -> anyhow::Result<Vec<RawEvent>> {
        let rows: Vec<(Vec<u8>,)> = sqlx::query_as(
            "SELECT body FROM analytics_event_batches WHERE last_at >= $1 AND first_at < $2 ORDER BY id",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?;
        let mut out = vec![];
        for (body,) in rows {
            out.extend(decode_events(&body)?.into_iter().filter(|e| e.at_ms >= from_ms && e.at_ms < to_ms));
        }
        Ok(out)
    }

    /// Moves rows of the former one-row-per-event table into batches, then drops it (once, at
    /// startup, for databases created before migration 0006).
    pub(super) async fn convert_legacy_events(&self) -> anyhow::Result<()> {
        let exists = match self.dialect {
            super::Dialect::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'analytics_events'"
            }
            super::Dialect::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'analytics_events'"
            }
        };
        let (n,): (i64,) = sqlx::query_as(exists).fetch_one(&self.pool).await?;
        if n == 0 {
            return Ok(());
        }
        type LegacyRow =
            (i64, i64, String, i64, i64, String, String, String, String, String, String, i64, Option<i64>, Option<i64>);
        let mut after = i64::MIN;
        loop {
            let rows: Vec<LegacyRow> = sqlx::query_as(
                "SELECT id, at, kind, share_id, asset_id, visitor, country, device, browser, os, referrer, is_bot,
                        time_on_page_ms, load_ms
                 FROM analytics_events WHERE id > $1 ORDER BY id LIMIT 5000",
            )
            .bind(after)
            .fetch_all(&self.pool)
            .await?;
            let Some(last) = rows.last() else { break };
            after = last.0;
            let events: Vec<Event> = rows
                .into_iter()
                .map(|r| Event {
                    kind: Kind::parse(&r.2).unwrap_or(Kind::View),
                    at_ms: r.1,
                    share_id: r.3,
                    asset_id: r.4,
                    visitor: r.5,
                    country: r.6,
                    device: device_name(&r.7),
                    browser: r.8,
                    os: r.9,
                    referrer: r.10,
                    is_bot: r.11 != 0,
                    time_on_page_ms: r.12,
                    load_ms: r.13,
                    reading: None,
                })
                .collect();
            let (_writing, mut tx) = self.begin_write().await?;
            insert_event_batch(&mut tx, &events).await?;
            sqlx::query("DELETE FROM analytics_events WHERE id <= $1").bind(after).execute(&mut *tx).await?;
            tx.commit().await?;
        }
        sqlx::query("DROP TABLE analytics_events").execute(&self.pool).await?;
        tracing::info!("moved raw analytics events into batches");
        Ok(())
    }
}

/// Adds a batch's page and reader rollups (the document viewer's reports), inside the caller's
/// transaction; sorted keys, like the other rollups, so concurrent writers never deadlock.
async fn write_readings(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    dialect: super::Dialect,
    r: &ReadingRollup,
) -> anyhow::Result<()> {
    if !r.pages.is_empty() {
        const COLUMNS: &str = "asset_id, share_id, day, page, views, time_sum_ms";
        const TYPES: &str = "asset_id BIGINT, share_id BIGINT, day TEXT, page BIGINT, views BIGINT, time_sum_ms BIGINT";
        let rows = dialect.encode_rows(
            COLUMNS,
            r.pages.iter().map(|((asset, share, day, page), (views, ms))| {
                vec![
                    (*asset).into(),
                    (*share).into(),
                    day.as_str().into(),
                    (*page).into(),
                    (*views).into(),
                    (*ms).into(),
                ]
            }),
        );
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO analytics_daily_pages ({COLUMNS})
             {} WHERE true
             ON CONFLICT (asset_id, share_id, day, page) DO UPDATE SET
                views = analytics_daily_pages.views + excluded.views,
                time_sum_ms = analytics_daily_pages.time_sum_ms + excluded.time_sum_ms",
            dialect.json_rows(COLUMNS, TYPES)
        )))
        .bind(rows)
        .execute(&mut **tx)
        .await?;
    }
    if !r.readers.is_empty() {
        const COLUMNS: &str = "asset_id, share_id, day, readers, completions";
        const TYPES: &str = "asset_id BIGINT, share_id BIGINT, day TEXT, readers BIGINT, completions BIGINT";
        let rows = dialect.encode_rows(
            COLUMNS,
            r.readers.iter().map(|((asset, share, day), (readers, completions))| {
                vec![(*asset).into(), (*share).into(), day.as_str().into(), (*readers).into(), (*completions).into()]
            }),
        );
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO analytics_daily_readers ({COLUMNS})
             {} WHERE true
             ON CONFLICT (asset_id, share_id, day) DO UPDATE SET
                readers = analytics_daily_readers.readers + excluded.readers,
                completions = analytics_daily_readers.completions + excluded.completions",
            dialect.json_rows(COLUMNS, TYPES)
        )))
        .bind(rows)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Writes `events` as one raw-event batch row, inside the caller's transaction.
async fn insert_event_batch(tx: &mut sqlx::Transaction<'_, sqlx::Any>, events: &[Event]) -> anyhow::Result<()> {
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO id_counters (name, value) VALUES ('analytics_event_batches', 1)
         ON CONFLICT (name) DO UPDATE SET value = id_counters.value + 1
         RETURNING value",
    )
    .fetch_one(&mut **tx)
    .await?;
    let (first_at, last_at) =
        events.iter().fold((i64::MAX, i64::MIN), |(lo, hi), e| (lo.min(e.at_ms), hi.max(e.at_ms)));
    sqlx::query(
        "INSERT INTO analytics_event_batches (id, first_at, last_at, events, body) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(first_at)
    .bind(last_at)
    .bind(events.len() as i64)
    .bind(encode_events(events)?)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A raw event as read back from its batch.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct RawEvent {
    pub at_ms: i64,
    pub kind: String,
    pub share_id: i64,
    pub asset_id: i64,
    pub visitor: String,
    pub country: String,
    pub device: String,
    pub browser: String,
    pub os: String,
    pub referrer: String,
    pub is_bot: bool,
    pub time_on_page_ms: Option<i64>,
    pub load_ms: Option<i64>,
    /// The document viewer's page report (absent from batches written before it existed).
    #[serde(default)]
    pub reading: Option<crate::domain::analytics::Reading>,
}

/// The body of a batch row: the events as JSON arrays (fields in `RawEvent` order), deflated.
/// Fast compression: the visitor keys do not compress, the rest (kinds, ids, countries, agents)
/// repeats and shrinks the batch to about a third.
fn encode_events(events: &[Event]) -> anyhow::Result<Vec<u8>> {
    let rows: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e.at_ms,
                e.kind.as_str(),
                e.share_id,
                e.asset_id,
                &e.visitor,
                &e.country,
                e.device,
                &e.browser,
                &e.os,
                &e.referrer,
                e.is_bot,
                e.time_on_page_ms,
                e.load_ms,
                &e.reading,
            )
        })
        .collect();
    // Serialize first, then compress in one call: the encoder is slow fed token by token.
    let json = serde_json::to_vec(&rows)?;
    let mut z = flate2::write::DeflateEncoder::new(Vec::with_capacity(json.len() / 3), flate2::Compression::fast());
    std::io::Write::write_all(&mut z, &json)?;
    Ok(z.finish()?)
}

fn decode_events(body: &[u8]) -> anyhow::Result<Vec<RawEvent>> {
    Ok(serde_json::from_reader(flate2::read::DeflateDecoder::new(body))?)
}

pub fn day_start_ms(day: &str) -> i64 {
    let fmt = ::time::macros::format_description!("[year]-[month]-[day]");
    ::time::Date::parse(day, &fmt).map(|d| d.midnight().assume_utc().unix_timestamp() * 1000).unwrap_or(0)
}
