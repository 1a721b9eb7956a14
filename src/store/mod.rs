//! `Store`: every query the app runs, written once in portable SQL over `sqlx::AnyPool`
//! (SQLite by default, PostgreSQL by `database_url`).

pub mod analytics;
pub mod assets;
pub mod audit;
pub mod cache;
pub mod chat;
pub mod collaboration;
pub mod collections;
pub mod comments;
pub mod file_requests;
pub mod gallery;
pub mod oidc;
pub mod policies;
pub mod rooms;
pub mod sessions;
pub mod shares;
pub mod tokens;
pub mod uploads;
pub mod users;
pub mod webhooks;

use std::time::Duration;

use anyhow::Context;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};

pub use assets::AssetFilter;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The PostgreSQL advisory lock key of Vitrine's start-up work (`Store::migrate`).
const MIGRATION_LOCK: i64 = 0x5649_5452_494e_4531; // "VITRINE1"

/// Which SQL engine is behind the pool; only the few dialect-specific queries look at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// A `SELECT` producing one row per element of the JSON array bound as `$1` (made by
    /// `encode_rows` with the same columns), given the columns (`"a, b"`) and their types
    /// (`"a BIGINT, b TEXT"`): the two dialects side by side. SQLite reads positional arrays;
    /// PostgreSQL parses objects once with json_to_recordset (per-field `->>` on `json` would
    /// re-parse every element).
    pub fn json_rows(self, columns: &str, typed: &str) -> String {
        match self {
            Dialect::Sqlite => {
                let fields: Vec<String> =
                    columns.split(',').enumerate().map(|(i, c)| format!("value ->> {i} AS {}", c.trim())).collect();
                format!("SELECT {} FROM json_each($1)", fields.join(", "))
            }
            Dialect::Postgres => format!("SELECT {columns} FROM json_to_recordset($1::json) AS r({typed})"),
        }
    }

    /// `SELECT column1 AS <first>, … FROM (VALUES (…), …)`: `rows` rows of parameters named by
    /// `columns` (`"a, b"`), bound row after row. Placeholders are anonymous `?` on SQLite, whose
    /// look-up of a numbered parameter by name scans them all (quadratic in their number), and
    /// `$k` on PostgreSQL. Both engines name the columns of a `VALUES` list `column1`, `column2`, ….
    pub fn value_rows(self, columns: &str, rows: usize) -> String {
        let names: Vec<&str> = columns.split(',').map(str::trim).collect();
        let width = names.len();
        let tuples: Vec<String> = (0..rows)
            .map(|r| {
                let marks: Vec<String> = (1..=width)
                    .map(|k| match self {
                        Dialect::Sqlite => "?".to_string(),
                        Dialect::Postgres => format!("${}", r * width + k),
                    })
                    .collect();
                format!("({})", marks.join(", "))
            })
            .collect();
        let fields: Vec<String> = names.iter().enumerate().map(|(i, n)| format!("column{} AS {n}", i + 1)).collect();
        format!("SELECT {} FROM (VALUES {}) AS rows_given", fields.join(", "), tuples.join(", "))
    }

    /// The JSON parameter for `json_rows`: each row's values in the order of `columns`.
    pub fn encode_rows(self, columns: &str, rows: impl Iterator<Item = Vec<serde_json::Value>>) -> String {
        let rows: Vec<serde_json::Value> = match self {
            Dialect::Sqlite => rows.map(serde_json::Value::Array).collect(),
            Dialect::Postgres => {
                let names: Vec<&str> = columns.split(',').map(str::trim).collect();
                rows.map(|r| serde_json::Value::Object(names.iter().map(|n| n.to_string()).zip(r).collect())).collect()
            }
        };
        serde_json::Value::Array(rows).to_string()
    }
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// Write transactions (`begin_write`): SQLite's one writer connection; the pool itself on
    /// PostgreSQL.
    writer: AnyPool,
    dialect: Dialect,
    /// Share views and gallery answers, forgotten on every instance by any instance's write.
    caches: std::sync::Arc<cache::Caches>,
    /// SQLite has one writer at a time: this instance's writers queue here (in order, without
    /// sleeping) instead of in SQLite's busy handler, which polls with sleeps of 1 to 100 ms.
    write_gate: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// SQLite: new comments waiting for the write gate, stored in batches by whoever holds it.
    comment_queue: std::sync::Arc<comments::CommentQueue>,
    /// Told when this instance queued webhook deliveries (`webhooks::outbox_filled`).
    outbox: std::sync::Arc<tokio::sync::Notify>,
}

/// Held while a write transaction is open (SQLite only; PostgreSQL locks rows itself). Declare it
/// before the transaction (`let (_writing, mut tx) = …`) so that it is released after it.
pub(crate) struct Writing(#[allow(dead_code)] Option<tokio::sync::OwnedMutexGuard<()>>);

impl Store {
    /// Connects (creating the SQLite file if needed); SQLite runs in WAL mode with a busy timeout.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Store> {
        sqlx::any::install_default_drivers();
        let shown = crate::config::mask_url_password(url);
        let url = &*libpq_sslmode(url);
        let dialect = if url.starts_with("sqlite:") { Dialect::Sqlite } else { Dialect::Postgres };
        if dialect == Dialect::Sqlite {
            crate::private_fs::prepare_sqlite_file(url)
                .with_context(|| format!("cannot create the database {shown}"))?;
        }
        let options = |max: u32| {
            // No idle timeout and no lifetime: then sqlx runs no maintenance task, whose sweep in
            // 0.9.0 can spin at 100 % CPU for good once the pool's idle count has wrapped below
            // zero (a release racing a try_acquire; sqlx #3645, fixed in 0.9.1, which breaks
            // NULL parameters of cached PostgreSQL statements): seen here as a run that never
            // stopped. PostgreSQL connections are checked before use instead (the default ping).
            let opts = AnyPoolOptions::new()
                .max_connections(max)
                .acquire_timeout(Duration::from_secs(10))
                .idle_timeout(None)
                .max_lifetime(None);
            if dialect == Dialect::Postgres {
                return opts;
            }
            // A local file does not drop connections: no ping round trip before every query.
            opts.test_before_acquire(false).after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    // Checkpoints run in the background (`checkpoints`), not in a commit.
                    conn.execute("PRAGMA wal_autocheckpoint = 0").await?;
                    // A WAL reset after a checkpoint cuts the file down to this size (see `WAL_BOUND`).
                    conn.execute("PRAGMA journal_size_limit = 67108864").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    Ok(())
                })
            })
        };
        let open = |pool: Result<AnyPool, sqlx::Error>| {
            pool.map_err(|e| {
                // A refused certificate comes back from the handshake as an I/O error.
                let tls = match &e {
                    sqlx::Error::Tls(_) => true,
                    sqlx::Error::Io(io) => io.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()),
                    _ => false,
                };
                let hint = if tls { " (TLS: check sslmode and sslrootcert in database_url)" } else { "" };
                anyhow::Error::new(e).context(format!("cannot open the database at {shown}{hint}"))
            })
        };
        let pool = open(options(max_connections).connect(url).await)?;
        let write_gate: std::sync::Arc<tokio::sync::Mutex<()>> = Default::default();
        let writer = match dialect {
            // SQLite writes one at a time anyway: every write of this instance goes through the
            // write gate and this one connection, so none waits in SQLite's busy handler.
            Dialect::Sqlite => {
                let writer = open(options(1).connect(url).await)?;
                let wal = crate::private_fs::sqlite_path(url).map(|db| std::path::PathBuf::from(format!("{db}-wal")));
                tokio::spawn(checkpoints(pool.clone(), write_gate.clone(), wal));
                writer
            }
            Dialect::Postgres => pool.clone(),
        };
        Ok(Store {
            pool,
            writer,
            dialect,
            caches: Default::default(),
            write_gate,
            comment_queue: Default::default(),
            outbox: Default::default(),
        })
    }

    /// Applies the embedded migrations that have not run yet.
    ///
    /// On PostgreSQL the whole start-up work (migrations, data moves, search index) runs under one
    /// session advisory lock, so that instances starting together on an empty database take turns:
    /// the first does the work, the others wait for it and then find nothing to do. (SQLite has
    /// one writer anyway.)
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let mut lock = match self.dialect {
            Dialect::Postgres => {
                let mut conn = self.pool.acquire().await.context("database migration: no connection")?;
                sqlx::query("SELECT pg_advisory_lock($1)")
                    .bind(MIGRATION_LOCK)
                    .execute(&mut *conn)
                    .await
                    .context("database migration: waiting for another instance's start-up")?;
                Some(conn)
            }
            Dialect::Sqlite => None,
        };
        let done = self.migrate_unlocked().await;
        if let Some(conn) = lock.as_mut() {
            let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)").bind(MIGRATION_LOCK).execute(&mut **conn).await;
            if unlocked.is_err()
                && let Some(conn) = lock.take()
            {
                // Closing the session releases the lock.
                let _ = sqlx::Connection::close(conn.detach()).await;
            }
        }
        done
    }

    async fn migrate_unlocked(&self) -> anyhow::Result<()> {
        MIGRATOR.run(&self.pool).await.context("database migration failed")?;
        self.convert_legacy_events().await.context("moving raw analytics events into batches failed")?;
        self.ensure_search_index().await.context("creating the search index failed")?;
        self.relax_share_asset().await.context("letting share links target collections failed")?;
        Ok(())
    }

    /// Waits for this instance's turn to write (SQLite; at once on PostgreSQL).
    pub(crate) async fn writing(&self) -> Writing {
        match self.dialect {
            Dialect::Sqlite => Writing(Some(self.write_gate.clone().lock_owned().await)),
            Dialect::Postgres => Writing(None),
        }
    }

    /// Begins a write transaction in this instance's turn (see `writing`).
    pub(crate) async fn begin_write(&self) -> Result<(Writing, sqlx::Transaction<'static, sqlx::Any>), sqlx::Error> {
        let writing = self.writing().await;
        let tx = self.writer.begin().await?;
        Ok((writing, tx))
    }

    /// Runs one write statement in this instance's turn (see `writing`), on the writer.
    pub(crate) async fn write(
        &self,
        query: sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> Result<sqlx::any::AnyQueryResult, sqlx::Error> {
        let _writing = self.writing().await;
        query.execute(&self.writer).await
    }

    /// SQLite: runs `query`, a script that begins and commits its own transaction (`BEGIN
    /// IMMEDIATE; …; COMMIT`), in one round trip to the connection's thread instead of one per
    /// statement plus two for BEGIN and COMMIT. Returns the rows of all its statements. On an
    /// error the transaction is rolled back; a connection left in an unknown state (the rollback
    /// failed, or the caller gave up midway) is closed instead of going back to the pool, and
    /// closing it rolls back. The caller holds the write gate.
    pub(crate) async fn fetch_in_own_transaction(
        &self,
        query: sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> Result<Vec<sqlx::any::AnyRow>, sqlx::Error> {
        /// Closes the connection on drop unless it is known to be out of any transaction.
        struct Unsettled(Option<sqlx::pool::PoolConnection<sqlx::Any>>);
        impl Drop for Unsettled {
            fn drop(&mut self) {
                if let Some(mut conn) = self.0.take() {
                    conn.close_on_drop();
                }
            }
        }
        let mut guard = Unsettled(Some(self.writer.acquire().await?));
        let Some(conn) = guard.0.as_mut() else { return Err(sqlx::Error::PoolClosed) };
        match query.fetch_all(&mut **conn).await {
            Ok(rows) => {
                guard.0.take();
                Ok(rows)
            }
            Err(e) => {
                if sqlx::query("ROLLBACK").execute(&mut **conn).await.is_ok() {
                    guard.0.take();
                }
                Err(e)
            }
        }
    }

    /// The caches of this instance (the bus wires their peers and forgets them on others' writes).
    pub fn caches(&self) -> &cache::Caches {
        &self.caches
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Readiness: one round trip.
    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}

/// SQLite: how often committed WAL frames are copied into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// SQLite: after this long without a new WAL frame the database is idle, and the WAL file is
/// emptied (`wal_checkpoint(TRUNCATE)`), so an idle server keeps no WAL on disk.
const CHECKPOINT_IDLE: Duration = Duration::from_secs(3);

/// SQLite: the bound on the WAL file, 64 MiB. Under load a WAL past half of it
/// (`WAL_TRUNCATE_AT`) is emptied at once (TRUNCATE) instead of waiting for an idle moment, so
/// that a truncation put off by a reader or two still leaves it under the bound; and
/// `journal_size_limit` (set on every connection, the same number) cuts a reset WAL back to it. Passive checkpoints alone never bound it: while readers keep arriving one of them
/// always holds a snapshot in the WAL, so SQLite never starts it over and it only grows.
pub const WAL_BOUND: u64 = 64 * 1024 * 1024;

/// SQLite: the WAL size past which it is emptied under load (see `WAL_BOUND`).
const WAL_TRUNCATE_AT: u64 = WAL_BOUND / 2;

/// SQLite: copies committed WAL frames into the database file, off the commit path. With
/// SQLite's automatic checkpoints, the commit that takes the WAL past 1,000 pages copies them
/// and fsyncs the file itself before it returns (1 to 7 ms each on a VM disk: the tail of
/// every write, comments included). Here a pooled connection does it every second, PASSIVE:
/// it neither waits for nor blocks readers and writers, and with nothing new it does nothing.
/// The WAL therefore holds about a second of writes. When the database has been idle for
/// `CHECKPOINT_IDLE`, or the WAL file (`wal`) is past `WAL_TRUNCATE_AT`, the WAL is emptied
/// (`empty_wal`). The last connection to close still checkpoints everything. Ends when the pool
/// is closed.
async fn checkpoints(
    pool: AnyPool,
    write_gate: std::sync::Arc<tokio::sync::Mutex<()>>,
    wal: Option<std::path::PathBuf>,
) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The WAL's frame count at the last change, and when it changed.
    let mut frames = -1;
    let mut changed = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        if pool.is_closed() {
            return;
        }
        let checkpoint: Result<(i64, i64, i64), sqlx::Error> =
            sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(&pool).await;
        let (_busy, log, _copied) = match checkpoint {
            Ok(row) => row,
            Err(e) => {
                if pool.is_closed() {
                    return;
                }
                tracing::warn!(error = %e, "SQLite checkpoint failed; retrying in a second");
                continue;
            }
        };
        if log != frames {
            frames = log;
            changed = tokio::time::Instant::now();
        }
        let size = wal.as_deref().and_then(|p| std::fs::metadata(p).ok()).map_or(0, |m| m.len());
        if size == 0 || (changed.elapsed() < CHECKPOINT_IDLE && size <= WAL_TRUNCATE_AT) {
            continue;
        }
        match empty_wal(&pool, &write_gate).await {
            Ok(true) => frames = -1,
            Ok(false) => tracing::debug!(wal_bytes = size, "SQLite WAL still in use by a reader; retrying in a second"),
            Err(e) if pool.is_closed() => {
                let _ = e;
                return;
            }
            Err(e) => tracing::warn!(error = %e, "SQLite WAL truncation failed; retrying in a second"),
        }
    }
}

/// SQLite: copies the whole WAL into the database and truncates the file to zero bytes, in this
/// instance's write turn (its writers wait on the gate, not in SQLite's busy handler), waiting
/// at most a second (its `busy_timeout`) for readers still using the WAL. False when a reader kept it.
async fn empty_wal(pool: &AnyPool, write_gate: &tokio::sync::Mutex<()>) -> Result<bool, sqlx::Error> {
    let _writing = write_gate.lock().await;
    let mut conn = pool.acquire().await?;
    conn.execute("PRAGMA busy_timeout = 1000").await?;
    let done: Result<(i64, i64, i64), sqlx::Error> =
        sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(&mut *conn).await;
    if conn.execute("PRAGMA busy_timeout = 10000").await.is_err() {
        // Not back to the pool with the short timeout.
        conn.close_on_drop();
    }
    Ok(done?.0 == 0)
}

/// Takes the next id of a named sequence inside `tx`; portable (upsert + RETURNING) on both engines.
/// It is the first statement of every insert transaction, so SQLite takes its write lock at once.
pub(crate) async fn next_id(tx: &mut sqlx::Transaction<'_, sqlx::Any>, name: &str) -> Result<i64, sqlx::Error> {
    next_ids(tx, name, 1).await
}

/// `n` (at least 1) consecutive new ids of `name`'s counter, in one statement: returns the first.
pub(crate) async fn next_ids(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    name: &str,
    n: i64,
) -> Result<i64, sqlx::Error> {
    let (last,): (i64,) = sqlx::query_as(
        "INSERT INTO id_counters (name, value) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET value = id_counters.value + $2
         RETURNING value",
    )
    .bind(name)
    .bind(n)
    .fetch_one(&mut **tx)
    .await?;
    Ok(last - n + 1)
}

/// A nullable DOUBLE PRECISION parameter, the same on both engines: bind `Float(x)`, never an
/// `Option<f64>`. sqlx 0.9's Any driver sends a NULL `Option<f64>` to PostgreSQL as a float4 (it
/// swaps Real and Double when it converts NULLs); PostgreSQL then fixes the cached statement's
/// parameter to float4 and refuses the next non-NULL float8 ("incorrect binary data format"):
/// a pinned comment after an unpinned one, a video after a document.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Float(pub Option<f64>);

impl sqlx::Type<sqlx::Any> for Float {
    fn type_info() -> sqlx::any::AnyTypeInfo {
        <f64 as sqlx::Type<sqlx::Any>>::type_info()
    }
}

impl sqlx::Encode<'_, sqlx::Any> for Float {
    fn encode_by_ref(
        &self,
        buf: &mut <sqlx::Any as sqlx::Database>::ArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        match self.0 {
            Some(v) => <f64 as sqlx::Encode<sqlx::Any>>::encode_by_ref(&v, buf),
            // A NULL of the Real kind, which the driver sends to PostgreSQL as a float8.
            None => <Option<f32> as sqlx::Encode<sqlx::Any>>::encode_by_ref(&None, buf),
        }
    }
}

pub(crate) fn flag(b: bool) -> i64 {
    i64::from(b)
}

/// libpq checks the server's certificate under `sslmode=require` when a root certificate is given
/// (as `verify-ca` does); sqlx 0.9 documents the same for `PgSslMode::Require` but then encrypts
/// without any check. Operators write libpq URLs, so such a URL is read the libpq way: never less
/// checking than the URL asks for.
fn libpq_sslmode(url: &str) -> std::borrow::Cow<'_, str> {
    const ROOT_CERT: &[&str] = &["sslrootcert", "ssl-root-cert", "ssl-ca"];
    let Ok(mut parsed) = url::Url::parse(url) else { return url.into() };
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return url.into();
    }
    let pairs: Vec<(String, String)> = parsed.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let is_require =
        |(k, v): &(String, String)| matches!(k.as_str(), "sslmode" | "ssl-mode") && v.eq_ignore_ascii_case("require");
    if !(pairs.iter().any(is_require) && pairs.iter().any(|(k, _)| ROOT_CERT.contains(&k.as_str()))) {
        return url.into();
    }
    let pairs =
        pairs.into_iter().map(|p| if is_require(&p) { ("sslmode".to_string(), "verify-ca".to_string()) } else { p });
    parsed.query_pairs_mut().clear().extend_pairs(pairs);
    parsed.to_string().into()
}

impl Store {
    /// Connects to the database the configuration names.
    pub async fn connect_for(config: &crate::config::Config) -> anyhow::Result<Store> {
        crate::private_fs::create_dir(&config.data_dir)?;
        Store::connect(&config.effective_database_url(), config.database_max_connections).await
    }
}

impl Store {
    /// The deployment's identity, shared by every instance on this database (made once).
    pub async fn deployment_id(&self) -> anyhow::Result<String> {
        let fresh = uuid::Uuid::new_v4().simple().to_string();
        self.write(
            sqlx::query("INSERT INTO deployment (id, uuid) VALUES (1, $1) ON CONFLICT (id) DO NOTHING").bind(fresh),
        )
        .await?;
        let (id,): (String,) = sqlx::query_as("SELECT uuid FROM deployment WHERE id = 1").fetch_one(&self.pool).await?;
        Ok(id)
    }
}

impl Store {
    /// Claims the periodic job `name` for `holder` until `until` (ms): true when no other holder's
    /// lease is current (an expired one is taken over; the holder's own is extended).
    pub async fn claim_job(&self, name: &str, holder: &str, now: i64, until: i64) -> anyhow::Result<bool> {
        let res = self
            .write(
                sqlx::query(
                    "INSERT INTO job_leases (name, holder, until_ms) VALUES ($1, $2, $3)
                     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms
                     WHERE job_leases.until_ms <= $4 OR job_leases.holder = excluded.holder",
                )
                .bind(name)
                .bind(holder)
                .bind(until)
                .bind(now),
            )
            .await?;
        Ok(res.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::libpq_sslmode;

    #[test]
    fn require_with_a_root_certificate_verifies_the_chain_as_libpq_does() {
        let url = libpq_sslmode("postgres://u:p@db.example.com/v?sslmode=require&sslrootcert=/etc/ca.pem");
        assert_eq!(url, "postgres://u:p@db.example.com/v?sslmode=verify-ca&sslrootcert=%2Fetc%2Fca.pem");
    }

    #[test]
    fn other_urls_are_left_as_written() {
        for url in [
            "postgres://u:p@db.example.com/v?sslmode=require",
            "postgres://u:p@db.example.com/v?sslmode=verify-full&sslrootcert=/etc/ca.pem",
            "postgres://u:p@db.example.com/v",
            "sqlite://data/vitrine.db?mode=rwc",
        ] {
            assert_eq!(libpq_sslmode(url), url);
        }
    }
}
