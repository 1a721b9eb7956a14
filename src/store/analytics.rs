//! Analytics queries: batched event writes with their rollups, the daily salts, the reports
//! (which read only rollups, never raw events), and retention.

use std::collections::HashMap;

use rand::RngCore;

use super::Store;
use crate::analytics::hll::Hll;
use crate::analytics::{Counts, Event, rollup};

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
}

/// (day, views, downloads, previews, comments, time sum, time count, load sum, load count)
type DayTotals = (String, i64, i64, i64, i64, i64, i64, i64, i64);

impl Store {
    /// The salt of `day` (created on first use; shared by every instance). Salts older than
    /// yesterday are deleted so that old visitor keys cannot be recomputed.
    pub async fn daily_salt(&self, day: &str) -> anyhow::Result<Vec<u8>> {
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        sqlx::query("INSERT INTO analytics_salts (day, salt) VALUES ($1, $2) ON CONFLICT (day) DO NOTHING")
            .bind(day)
            .bind(hex::encode(raw))
            .execute(&self.pool)
            .await?;
        let (salt,): (String,) =
            sqlx::query_as("SELECT salt FROM analytics_salts WHERE day = $1").bind(day).fetch_one(&self.pool).await?;
        sqlx::query("DELETE FROM analytics_salts WHERE day < $1")
            .bind(crate::domain::time::day_of(day_start_ms(day) - 86_400_000))
            .execute(&self.pool)
            .await?;
        Ok(hex::decode(salt)?)
    }

    /// Writes a batch of events and folds it into the daily rollups, in one transaction.
    pub async fn write_events(&self, events: &[Event]) -> anyhow::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let (rows, visitors) = rollup(events);
        let mut tx = self.pool.begin().await?;
        // Reserve a block of ids in one statement.
        let n = events.len() as i64;
        let (last,): (i64,) = sqlx::query_as(
            "INSERT INTO id_counters (name, value) VALUES ('analytics_events', $1)
             ON CONFLICT (name) DO UPDATE SET value = id_counters.value + $1
             RETURNING value",
        )
        .bind(n)
        .fetch_one(&mut *tx)
        .await?;
        let first = last - n + 1;
        // The whole batch travels as one JSON parameter of objects and the engine unpacks it: one
        // statement and one bind per batch instead of thousands. PostgreSQL parses the document
        // once with json_to_recordset (per-field `->>` on `json` would re-parse every element).
        const EVENT_COLUMNS: &str = "id, at, kind, share_id, asset_id, visitor, country, device, browser, os, \
            referrer, is_bot, time_on_page_ms, load_ms";
        const EVENT_TYPES: &str = "id BIGINT, at BIGINT, kind TEXT, share_id BIGINT, asset_id BIGINT, visitor TEXT, \
            country TEXT, device TEXT, browser TEXT, os TEXT, referrer TEXT, is_bot BIGINT, time_on_page_ms BIGINT, \
            load_ms BIGINT";
        if self.dialect == super::Dialect::Postgres {
            // PostgreSQL ingests fastest from prepared multi-row VALUES (the same statement for
            // every full chunk, so it is prepared once per connection).
            for (c, chunk) in events.chunks(EVENT_CHUNK).enumerate() {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(values_insert(chunk.len())));
                for (i, e) in chunk.iter().enumerate() {
                    q = q
                        .bind(first + (c * EVENT_CHUNK + i) as i64)
                        .bind(e.at_ms)
                        .bind(e.kind.as_str())
                        .bind(e.share_id)
                        .bind(e.asset_id)
                        .bind(e.visitor.as_str())
                        .bind(e.country.as_str())
                        .bind(e.device)
                        .bind(e.browser.as_str())
                        .bind(e.os.as_str())
                        .bind(e.referrer.as_str())
                        .bind(i64::from(e.is_bot))
                        .bind(e.time_on_page_ms)
                        .bind(e.load_ms);
                }
                q.execute(&mut *tx).await?;
            }
        } else {
            // SQLite unpacks one JSON parameter per batch fastest.
            let rows_json = self.dialect.encode_rows(
                EVENT_COLUMNS,
                events.iter().enumerate().map(|(i, e)| {
                    vec![
                        (first + i as i64).into(),
                        e.at_ms.into(),
                        e.kind.as_str().into(),
                        e.share_id.into(),
                        e.asset_id.into(),
                        e.visitor.as_str().into(),
                        e.country.as_str().into(),
                        e.device.into(),
                        e.browser.as_str().into(),
                        e.os.as_str().into(),
                        e.referrer.as_str().into(),
                        i64::from(e.is_bot).into(),
                        e.time_on_page_ms.into(),
                        e.load_ms.into(),
                    ]
                }),
            );
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO analytics_events ({EVENT_COLUMNS}) {}",
                self.dialect.json_rows(EVENT_COLUMNS, EVENT_TYPES)
            )))
            .bind(rows_json)
            .execute(&mut *tx)
            .await?;
        }
        const DAILY_COLUMNS: &str = "asset_id, share_id, day, dim, value, views, downloads, previews, comments, \
            time_sum_ms, time_count, load_sum_ms, load_count";
        const DAILY_TYPES: &str = "asset_id BIGINT, share_id BIGINT, day TEXT, dim TEXT, value TEXT, views BIGINT, \
            downloads BIGINT, previews BIGINT, comments BIGINT, time_sum_ms BIGINT, time_count BIGINT, \
            load_sum_ms BIGINT, load_count BIGINT";
        // All rollup rows of the batch in one upsert, again as one JSON parameter.
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
        let unique = all.estimate();
        data.unique_visitors = unique;
        Ok(data)
    }

    /// Deletes raw events older than `before_ms`; daily rollups and sketches stay.
    pub async fn delete_old_events(&self, before_ms: i64) -> anyhow::Result<u64> {
        let res = sqlx::query("DELETE FROM analytics_events WHERE at < $1").bind(before_ms).execute(&self.pool).await?;
        Ok(res.rows_affected())
    }

    /// The number of raw events (tests, benchmarks).
    pub async fn count_events(&self) -> anyhow::Result<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM analytics_events").fetch_one(&self.pool).await?;
        Ok(n)
    }
}

/// Milliseconds at 00:00 UTC of `YYYY-MM-DD` (0 when malformed).
/// Events per multi-row INSERT on PostgreSQL (14 parameters each: 7,168, below the 65,535 limit).
const EVENT_CHUNK: usize = 512;

/// `INSERT INTO analytics_events (...) VALUES ($1, ..., $14), ...` for `rows` rows.
fn values_insert(rows: usize) -> String {
    let mut sql = String::with_capacity(64 + rows * 80);
    sql.push_str("INSERT INTO analytics_events (id, at, kind, share_id, asset_id, visitor, country, device, browser, os, referrer, is_bot, time_on_page_ms, load_ms) VALUES ");
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..14 {
            if c > 0 {
                sql.push(',');
            }
            sql.push('$');
            sql.push_str(&(r * 14 + c + 1).to_string());
        }
        sql.push(')');
    }
    sql
}

pub fn day_start_ms(day: &str) -> i64 {
    let fmt = ::time::macros::format_description!("[year]-[month]-[day]");
    ::time::Date::parse(day, &fmt).map(|d| d.midnight().assume_utc().unix_timestamp() * 1000).unwrap_or(0)
}
