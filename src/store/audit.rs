//! The audit log (SPEC §13): appended inside the transaction of the action an entry describes
//! (`insert`, called by the store's own write paths), or on its own (`Store::append_audit`: a
//! failed sign-in, a wrong link password); read by the admin with filters, a page at a time or in
//! batches (the CSV export); deleted only by the retention job.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, next_id};
use crate::domain::audit::{AuditEntry, AuditFilter, AuditRecord};
use crate::domain::pagination::PageRequest;

/// Rows deleted per statement by `delete_audit_before`, so that SQLite's one writer is never held
/// for long by a large backlog.
const DELETE_CHUNK: i64 = 5_000;

/// Appends `entry` at `now` inside `tx`: the entry commits or rolls back with the action it
/// describes. Every write path that records an action calls this; features added later do too.
pub(crate) async fn insert(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    entry: &AuditEntry,
    now: i64,
) -> Result<(), sqlx::Error> {
    let id = next_id(tx, "audit_log").await?;
    sqlx::query(
        "INSERT INTO audit_log (id, at, actor_id, action, target_type, target_id, client_key, details)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(now)
    .bind(entry.actor_id)
    .bind(entry.action.as_str())
    .bind(entry.target_type.as_str())
    .bind(entry.target_id.as_str())
    .bind(entry.ip.clone())
    .bind(entry.details.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

const SELECT: &str = "SELECT a.id, a.at, a.actor_id, u.email AS actor_email, a.action, a.target_type, a.target_id,
    a.client_key, a.details FROM audit_log a LEFT JOIN users u ON u.id = a.actor_id";

fn from_row(r: &AnyRow) -> Result<AuditRecord, sqlx::Error> {
    Ok(AuditRecord {
        id: r.try_get("id")?,
        at: r.try_get("at")?,
        actor_id: r.try_get("actor_id")?,
        actor_email: r.try_get("actor_email")?,
        action: r.try_get("action")?,
        target_type: r.try_get("target_type")?,
        target_id: r.try_get("target_id")?,
        ip: r.try_get("client_key")?,
        details: r.try_get("details")?,
    })
}

/// A value bound to one placeholder of a filter.
enum Bound {
    Int(i64),
    Text(&'static str),
}

/// The filter's conditions (`WHERE …`, or nothing) with placeholders from `$1`, and their values.
fn conditions(f: &AuditFilter, before_id: Option<i64>) -> (String, Vec<Bound>) {
    let mut parts = Vec::new();
    let mut binds = Vec::new();
    let mut add = |sql: &str, v: Bound| {
        binds.push(v);
        parts.push(format!("{sql} ${}", binds.len()));
    };
    if let Some(a) = f.actor_id {
        add("a.actor_id =", Bound::Int(a));
    }
    if let Some(a) = f.action {
        add("a.action =", Bound::Text(a.as_str()));
    }
    if let Some(s) = f.since {
        add("a.at >=", Bound::Int(s));
    }
    if let Some(u) = f.until {
        add("a.at <=", Bound::Int(u));
    }
    if let Some(b) = before_id {
        add("a.id <", Bound::Int(b));
    }
    let sql = if parts.is_empty() { String::new() } else { format!(" WHERE {}", parts.join(" AND ")) };
    (sql, binds)
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

fn bind_all<'q>(mut q: Query<'q>, binds: &[Bound]) -> Query<'q> {
    for b in binds {
        q = match b {
            Bound::Int(v) => q.bind(*v),
            Bound::Text(v) => q.bind(*v),
        };
    }
    q
}

impl Store {
    /// Appends one entry in a transaction of its own (an action that changes nothing else: a
    /// refused sign-in or password, or a feature whose write is already committed).
    pub async fn append_audit(&self, entry: &AuditEntry, now: i64) -> anyhow::Result<()> {
        let (_writing, mut tx) = self.begin_write().await?;
        insert(&mut tx, entry, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The entries matching `filter`, newest first, one page, and how many match in all.
    pub async fn audit_page(&self, filter: &AuditFilter, page: PageRequest) -> anyhow::Result<(Vec<AuditRecord>, i64)> {
        let (clause, binds) = conditions(filter, None);
        let n = binds.len();
        let rows = bind_all(
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "{SELECT}{clause} ORDER BY a.id DESC LIMIT ${} OFFSET ${}",
                n + 1,
                n + 2
            ))),
            &binds,
        )
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&self.pool)
        .await?;
        let count: i64 =
            bind_all(sqlx::query(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM audit_log a{clause}"))), &binds)
                .fetch_one(&self.pool)
                .await?
                .try_get(0)?;
        Ok((rows.iter().map(from_row).collect::<Result<_, _>>()?, count))
    }

    /// Up to `limit` entries matching `filter` with an id below `before_id` (all when None), newest
    /// first: the export pages through a log of any size with these, by id, never by offset.
    pub async fn audit_batch(
        &self,
        filter: &AuditFilter,
        before_id: Option<i64>,
        limit: i64,
    ) -> anyhow::Result<Vec<AuditRecord>> {
        let (clause, binds) = conditions(filter, before_id);
        let rows = bind_all(
            sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT}{clause} ORDER BY a.id DESC LIMIT ${}", binds.len() + 1))),
            &binds,
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    /// Deletes the entries older than `cutoff` (ms), a chunk per statement; returns how many.
    pub async fn delete_audit_before(&self, cutoff: i64) -> anyhow::Result<u64> {
        let mut removed = 0;
        loop {
            let res = self
                .write(
                    sqlx::query("DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE at < $1 LIMIT $2)")
                        .bind(cutoff)
                        .bind(DELETE_CHUNK),
                )
                .await?;
            removed += res.rows_affected();
            if res.rows_affected() < DELETE_CHUNK as u64 {
                return Ok(removed);
            }
        }
    }
}
