//! Queries on file requests (SPEC §11). An upload reserves one file and an upper bound of its
//! bytes with one conditional UPDATE before its body is read, and later settles to the real size
//! or refunds: `max_files` and `max_total_bytes` hold exactly on both engines, however many
//! uploads arrive at once, on every instance.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, flag, next_id};
use crate::domain::audit::AuditEntry;
use crate::domain::file_requests::{FileRequest, FileRequestSettings};
use crate::domain::pagination::PageRequest;
use crate::store::shares::Reservation;

const COLUMNS: &str = "id, uuid, owner_id, collection_id, title, instructions, expires_at, max_files, max_file_bytes,
    max_total_bytes, allowed_types, password_hash, require_uploader_name, require_uploader_email, notify_on_upload,
    uploads_count, bytes_received, files_reserved, bytes_reserved, closed_at, created_at, updated_at";

fn from_row(r: &AnyRow) -> Result<FileRequest, sqlx::Error> {
    let types: String = r.try_get("allowed_types")?;
    let b = |name: &str| r.try_get::<i64, _>(name).map(|v| v != 0);
    Ok(FileRequest {
        id: r.try_get("id")?,
        uuid: r.try_get("uuid")?,
        owner_id: r.try_get("owner_id")?,
        collection_id: r.try_get("collection_id")?,
        title: r.try_get("title")?,
        instructions: r.try_get("instructions")?,
        expires_at: r.try_get("expires_at")?,
        max_files: r.try_get("max_files")?,
        max_file_bytes: r.try_get("max_file_bytes")?,
        max_total_bytes: r.try_get("max_total_bytes")?,
        allowed_types: types.split(',').filter(|t| !t.is_empty()).map(str::to_string).collect(),
        password_hash: r.try_get("password_hash")?,
        require_uploader_name: b("require_uploader_name")?,
        require_uploader_email: b("require_uploader_email")?,
        notify_on_upload: b("notify_on_upload")?,
        uploads_count: r.try_get("uploads_count")?,
        bytes_received: r.try_get("bytes_received")?,
        files_reserved: r.try_get("files_reserved")?,
        bytes_reserved: r.try_get("bytes_reserved")?,
        closed_at: r.try_get("closed_at")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// Binds the settings in the order insert and update list them: title, instructions,
/// expires_at, max_files, max_file_bytes, max_total_bytes, allowed_types, the three flags.
fn bind_settings<'q>(q: Query<'q>, s: &'q FileRequestSettings) -> Query<'q> {
    q.bind(&s.title)
        .bind(&s.instructions)
        .bind(s.expires_at)
        .bind(s.max_files)
        .bind(s.max_file_bytes)
        .bind(s.max_total_bytes)
        .bind(s.allowed_types.join(","))
        .bind(flag(s.require_uploader_name))
        .bind(flag(s.require_uploader_email))
        .bind(flag(s.notify_on_upload))
}

impl Store {
    /// Creates a request; `audit` makes its audit entry from the new id, committed with it.
    #[allow(clippy::too_many_arguments)] // reason: a request's parts, each of its own type
    pub async fn insert_file_request(
        &self,
        uuid: &str,
        owner_id: i64,
        collection_id: i64,
        s: &FileRequestSettings,
        password_hash: Option<&str>,
        now: i64,
        audit: impl FnOnce(i64) -> AuditEntry + Send,
    ) -> anyhow::Result<FileRequest> {
        let (_writing, mut tx) = self.begin_write().await?;
        let id = next_id(&mut tx, "file_requests").await?;
        let q = sqlx::query(
            "INSERT INTO file_requests (id, uuid, owner_id, collection_id, password_hash, title, instructions,
                expires_at, max_files, max_file_bytes, max_total_bytes, allowed_types, require_uploader_name,
                require_uploader_email, notify_on_upload, uploads_count, bytes_received, files_reserved,
                bytes_reserved, closed_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 0, 0, 0, 0, NULL, $16, $16)",
        )
        .bind(id)
        .bind(uuid)
        .bind(owner_id)
        .bind(collection_id)
        .bind(password_hash.map(str::to_string));
        bind_settings(q, s).bind(now).execute(&mut *tx).await?;
        super::audit::insert(&mut tx, &audit(id), now).await?;
        tx.commit().await?;
        self.file_request_by_uuid(uuid).await?.ok_or_else(|| anyhow::anyhow!("file request vanished after insert"))
    }

    /// Rewrites the settings: a `password_hash` replaces the stored one; `s.remove_password`
    /// clears it; otherwise it stays. The audit entry commits with the change.
    pub async fn update_file_request(
        &self,
        id: i64,
        s: &FileRequestSettings,
        password_hash: Option<&str>,
        now: i64,
        audit: &AuditEntry,
    ) -> anyhow::Result<()> {
        let q = sqlx::query(
            "UPDATE file_requests SET password_hash = CASE WHEN $1 = 1 THEN $2 ELSE password_hash END,
                title = $3, instructions = $4, expires_at = $5, max_files = $6, max_file_bytes = $7,
                max_total_bytes = $8, allowed_types = $9, require_uploader_name = $10,
                require_uploader_email = $11, notify_on_upload = $12, updated_at = $13
             WHERE id = $14",
        )
        .bind(flag(password_hash.is_some() || s.remove_password))
        .bind(password_hash.map(str::to_string));
        let (_writing, mut tx) = self.begin_write().await?;
        let res = bind_settings(q, s).bind(now).bind(id).execute(&mut *tx).await?;
        if res.rows_affected() == 1 {
            super::audit::insert(&mut tx, audit, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn file_request_by_uuid(&self, uuid: &str) -> anyhow::Result<Option<FileRequest>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM file_requests WHERE uuid = $1")))
            .bind(uuid)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    /// The owner's requests, newest first.
    pub async fn list_file_requests(&self, owner: i64, page: PageRequest) -> anyhow::Result<(Vec<FileRequest>, i64)> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM file_requests WHERE owner_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
        )))
        .bind(owner)
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&self.pool)
        .await?;
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM file_requests WHERE owner_id = $1")
            .bind(owner)
            .fetch_one(&self.pool)
            .await?;
        Ok((rows.iter().map(from_row).collect::<Result<_, _>>()?, count))
    }

    /// Closes a request (received files stay).
    /// Closes an open request, with its audit entry; one closed already is left (and not logged again).
    pub async fn close_file_request(&self, id: i64, now: i64, audit: &AuditEntry) -> anyhow::Result<()> {
        let (_writing, mut tx) = self.begin_write().await?;
        let res =
            sqlx::query("UPDATE file_requests SET closed_at = $1, updated_at = $1 WHERE id = $2 AND closed_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        if res.rows_affected() == 1 {
            super::audit::insert(&mut tx, audit, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Reserves one file and `bytes` for an upload about to be read: one conditional UPDATE,
    /// refused when the request is closed, expired, or would pass `max_files` or
    /// `max_total_bytes` counting the uploads in flight.
    pub async fn reserve_upload(&self, id: i64, bytes: i64, now: i64) -> anyhow::Result<Reservation> {
        let res = self
            .write(
                sqlx::query(
                    "UPDATE file_requests SET files_reserved = files_reserved + 1, bytes_reserved = bytes_reserved + $1
             WHERE id = $2 AND closed_at IS NULL AND (expires_at IS NULL OR expires_at > $3)
               AND (max_files IS NULL OR uploads_count + files_reserved < max_files)
               AND (max_total_bytes IS NULL OR bytes_received + bytes_reserved + $1 <= max_total_bytes)",
                )
                .bind(bytes)
                .bind(id)
                .bind(now),
            )
            .await?;
        Ok(if res.rows_affected() == 0 { Reservation::Refused } else { Reservation::Counted })
    }

    /// Gives back the reservation of a resumable upload to request `uuid` (ended, refused or
    /// expired before it became a file).
    pub async fn refund_upload_by_uuid(&self, uuid: &str, reserved: i64) -> anyhow::Result<()> {
        self.write(
            sqlx::query(
                "UPDATE file_requests SET files_reserved = files_reserved - 1, bytes_reserved = bytes_reserved - $1
                 WHERE uuid = $2 AND files_reserved > 0",
            )
            .bind(reserved)
            .bind(uuid),
        )
        .await?;
        Ok(())
    }

    /// Gives back a reservation whose upload failed.
    pub async fn refund_upload(&self, id: i64, reserved: i64) -> anyhow::Result<()> {
        self.write(
            sqlx::query(
                "UPDATE file_requests SET files_reserved = files_reserved - 1, bytes_reserved = bytes_reserved - $1
                 WHERE id = $2 AND files_reserved > 0",
            )
            .bind(reserved)
            .bind(id),
        )
        .await?;
        Ok(())
    }
}

/// Settles request `id`'s reservation of `reserved` bytes with a received file of `size` bytes, in
/// the transaction that stores the file's asset.
pub(super) async fn settle_upload_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    id: i64,
    reserved: i64,
    size: i64,
    now: i64,
) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE file_requests SET files_reserved = files_reserved - 1, bytes_reserved = bytes_reserved - $1,
            uploads_count = uploads_count + 1, bytes_received = bytes_received + $2, updated_at = $3
         WHERE id = $4",
    )
    .bind(reserved)
    .bind(size)
    .bind(now)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
