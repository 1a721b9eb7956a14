//! Queries on resumable uploads (tus). Every change of an upload's offset is a compare-and-set on
//! the offset the writer started from, so two writers never both advance it from the same place.

use std::collections::BTreeMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::Store;
use crate::domain::uploads::{Upload, UploadState};

const COLUMNS: &str = "id, scope, owner_id, upload_length, upload_offset, metadata, data_key, multipart_id, part_size,
    parts_bytes, tail_key, tail_len, state, result, created_at, updated_at, expires_at";

fn upload_from_row(r: &AnyRow) -> Result<Upload, sqlx::Error> {
    let metadata: String = r.try_get("metadata")?;
    let state: String = r.try_get("state")?;
    Ok(Upload {
        id: r.try_get("id")?,
        scope: r.try_get("scope")?,
        owner_id: r.try_get("owner_id")?,
        length: r.try_get("upload_length")?,
        offset: r.try_get("upload_offset")?,
        metadata: serde_json::from_str::<BTreeMap<String, String>>(&metadata).unwrap_or_default(),
        data_key: r.try_get("data_key")?,
        multipart_id: r.try_get("multipart_id")?,
        part_size: r.try_get("part_size")?,
        parts_bytes: r.try_get("parts_bytes")?,
        tail_key: r.try_get("tail_key")?,
        tail_len: r.try_get("tail_len")?,
        state: UploadState::parse(&state),
        result: r.try_get("result")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        expires_at: r.try_get("expires_at")?,
    })
}

/// An S3 part just put, recorded with the offset it acknowledges.
#[derive(Debug, Clone)]
pub struct PartRecord {
    pub idx: i64,
    pub size: i64,
    pub etag: String,
}

/// What an S3 writer acknowledges: the new offset, the part it put (if any) and the tail now
/// holding the bytes after the parts (none once they are all in parts).
#[derive(Debug, Clone)]
pub struct S3Ack<'a> {
    pub part: Option<PartRecord>,
    pub tail: Option<(&'a str, i64)>,
}

impl Store {
    /// Records a new upload unless its scope already has `max_open` unfinished, unexpired ones
    /// (false then, nothing written). The count and the insert are one step per account (the
    /// upload's owner is held, `hold_user`), so concurrent creations stop exactly at the limit.
    pub async fn insert_upload(&self, u: &Upload, max_open: i64) -> anyhow::Result<bool> {
        let metadata = serde_json::to_string(&u.metadata)?;
        let (_writing, mut tx) = self.begin_write().await?;
        self.hold_user(&mut tx, u.owner_id).await?;
        let (open,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM uploads WHERE scope = $1 AND state <> 'done' AND expires_at > $2")
                .bind(&u.scope)
                .bind(u.created_at)
                .fetch_one(&mut *tx)
                .await?;
        if open >= max_open {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO uploads (id, scope, owner_id, upload_length, upload_offset, metadata, data_key, multipart_id,
                part_size, parts_bytes, tail_key, tail_len, writer, writer_until, state, result, created_at,
                updated_at, expires_at)
             VALUES ($1, $2, $3, $4, 0, $5, $6, $7, $8, 0, NULL, 0, NULL, 0, 'open', NULL, $9, $9, $10)",
        )
        .bind(&u.id)
        .bind(&u.scope)
        .bind(u.owner_id)
        .bind(u.length)
        .bind(metadata)
        .bind(&u.data_key)
        .bind(u.multipart_id.clone())
        .bind(u.part_size)
        .bind(u.created_at)
        .bind(u.expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// One upload, whoever's.
    pub async fn upload(&self, id: &str) -> anyhow::Result<Option<Upload>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM uploads WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(upload_from_row).transpose()?)
    }

    /// Unfinished, unexpired uploads of a scope.
    pub async fn count_open_uploads(&self, scope: &str, now: i64) -> anyhow::Result<i64> {
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM uploads WHERE scope = $1 AND state <> 'done' AND expires_at > $2")
                .bind(scope)
                .bind(now)
                .fetch_one(&self.pool)
                .await?;
        Ok(n)
    }

    /// Local storage: advances the offset from `from` to `to` (the bytes are durable in the part
    /// file). False if another writer moved it first, or the upload is gone or no longer open.
    pub async fn ack_upload(&self, id: &str, from: i64, to: i64, now: i64, expires_at: i64) -> anyhow::Result<bool> {
        let res = self
            .write(
                sqlx::query(
                    "UPDATE uploads SET upload_offset = $1, updated_at = $2, expires_at = $3
                     WHERE id = $4 AND upload_offset = $5 AND state = 'open' AND upload_offset < upload_length",
                )
                .bind(to)
                .bind(now)
                .bind(expires_at)
                .bind(id)
                .bind(from),
            )
            .await?;
        Ok(res.rows_affected() == 1)
    }

    /// S3: takes the writer's lease of an upload at `offset` (or renews it when `writer` holds it
    /// already). False if the offset is not the current one or another writer's lease runs.
    pub async fn lease_upload(
        &self,
        id: &str,
        writer: &str,
        offset: i64,
        now: i64,
        until: i64,
    ) -> anyhow::Result<bool> {
        let res = self
            .write(
                sqlx::query(
                    "UPDATE uploads SET writer = $1, writer_until = $2
                     WHERE id = $3 AND upload_offset = $4 AND state = 'open'
                       AND (writer IS NULL OR writer = $1 OR writer_until <= $5)",
                )
                .bind(writer)
                .bind(until)
                .bind(id)
                .bind(offset)
                .bind(now),
            )
            .await?;
        Ok(res.rows_affected() == 1)
    }

    /// S3: gives the lease back.
    pub async fn release_upload(&self, id: &str, writer: &str) -> anyhow::Result<()> {
        self.write(sqlx::query("UPDATE uploads SET writer = NULL WHERE id = $1 AND writer = $2").bind(id).bind(writer))
            .await?;
        Ok(())
    }

    /// S3: advances the offset from `from` to `to` for the lease holder `writer`, recording the
    /// part just put and the new tail, in one transaction. False if the lease or the offset moved.
    #[allow(clippy::too_many_arguments, reason = "one compare-and-set with what it records")]
    pub async fn ack_upload_s3(
        &self,
        id: &str,
        writer: &str,
        from: i64,
        to: i64,
        ack: &S3Ack<'_>,
        now: i64,
        expires_at: i64,
    ) -> anyhow::Result<bool> {
        let (_writing, mut tx) = self.begin_write().await?;
        let added = ack.part.as_ref().map(|p| p.size).unwrap_or(0);
        let (tail_key, tail_len) = match ack.tail {
            Some((k, n)) => (Some(k.to_string()), n),
            None => (None, 0),
        };
        let res = sqlx::query(
            "UPDATE uploads SET upload_offset = $1, parts_bytes = parts_bytes + $2, tail_key = $3, tail_len = $4,
                updated_at = $5, expires_at = $6
             WHERE id = $7 AND writer = $8 AND upload_offset = $9 AND state = 'open'",
        )
        .bind(to)
        .bind(added)
        .bind(tail_key)
        .bind(tail_len)
        .bind(now)
        .bind(expires_at)
        .bind(id)
        .bind(writer)
        .bind(from)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        if let Some(p) = &ack.part {
            sqlx::query(
                "INSERT INTO upload_parts (upload_id, part_idx, size, etag) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (upload_id, part_idx) DO UPDATE SET size = excluded.size, etag = excluded.etag",
            )
            .bind(id)
            .bind(p.idx)
            .bind(p.size)
            .bind(&p.etag)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// S3: the recorded parts in order.
    pub async fn upload_parts(&self, id: &str) -> anyhow::Result<Vec<PartRecord>> {
        let rows: Vec<(i64, i64, String)> =
            sqlx::query_as("SELECT part_idx, size, etag FROM upload_parts WHERE upload_id = $1 ORDER BY part_idx")
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(idx, size, etag)| PartRecord { idx, size, etag }).collect())
    }

    /// Claims the checks of a complete upload: `open` → `finishing` (or a `finishing` one whose
    /// checks were cut off before `stale_before`). False if another request has it.
    pub async fn claim_upload_finish(&self, id: &str, now: i64, stale_before: i64) -> anyhow::Result<bool> {
        let res = self
            .write(
                sqlx::query(
                    "UPDATE uploads SET state = 'finishing', updated_at = $1
                     WHERE id = $2 AND upload_offset = upload_length
                       AND (state = 'open' OR (state = 'finishing' AND updated_at < $3))",
                )
                .bind(now)
                .bind(id)
                .bind(stale_before),
            )
            .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Deletes an upload's row (and its parts'); true if it existed.
    pub async fn delete_upload(&self, id: &str) -> anyhow::Result<bool> {
        let (_writing, mut tx) = self.begin_write().await?;
        sqlx::query("DELETE FROM upload_parts WHERE upload_id = $1").bind(id).execute(&mut *tx).await?;
        let res = sqlx::query("DELETE FROM uploads WHERE id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(res.rows_affected() == 1)
    }

    /// Uploads past their expiry, oldest first.
    pub async fn expired_uploads(&self, now: i64, limit: i64) -> anyhow::Result<Vec<Upload>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM uploads WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2"
        )))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(upload_from_row).collect::<Result<_, _>>()?)
    }
}
