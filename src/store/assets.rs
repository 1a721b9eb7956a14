//! Queries on assets. Owners see their own rows; the caller decides who may pass another owner.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, next_id};
use crate::domain::assets::{
    Asset, AssetCommit, AssetMade, AssetMeta, AssetPatch, AssetSource, MediaType, asset_location,
};
use crate::domain::audit::AuditEntry;
use crate::domain::pagination::PageRequest;

pub(super) const ASSET_COLUMNS: &str = "a.id, a.owner_id, u.name AS owner_name, a.title, a.description, a.tags, a.name,
    a.mime_type, a.media_type, a.size, a.sha256, a.blob_key, a.thumb_key, a.width, a.height,
    a.duration_seconds, a.content_type, a.created_at, a.updated_at, a.source_file_request, a.uploader_name,
    a.uploader_email, a.uploader_message";

pub(super) fn asset_from_row(r: &AnyRow) -> Result<Asset, sqlx::Error> {
    let tags: String = r.try_get("tags")?;
    let media: String = r.try_get("media_type")?;
    Ok(Asset {
        id: r.try_get("id")?,
        owner_id: r.try_get("owner_id")?,
        owner_name: r.try_get("owner_name")?,
        title: r.try_get("title")?,
        description: r.try_get("description")?,
        tags: tags.split(',').filter(|t| !t.is_empty()).map(str::to_string).collect(),
        name: r.try_get("name")?,
        mime_type: r.try_get("mime_type")?,
        media_type: MediaType::parse(&media),
        size: r.try_get("size")?,
        sha256: r.try_get("sha256")?,
        blob_key: r.try_get("blob_key")?,
        thumb_key: r.try_get("thumb_key")?,
        width: r.try_get("width")?,
        height: r.try_get("height")?,
        duration_seconds: r.try_get("duration_seconds")?,
        content_type: r.try_get("content_type")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        source: match r.try_get::<Option<String>, _>("source_file_request")? {
            Some(file_request) => Some(AssetSource {
                file_request,
                uploader_name: r.try_get("uploader_name")?,
                uploader_email: r.try_get("uploader_email")?,
                message: r.try_get("uploader_message")?,
            }),
            None => None,
        },
    })
}

/// What the upload pipeline learned about the stored bytes.
#[derive(Debug, Clone)]
pub struct StoredFile {
    pub name: String,
    pub mime_type: String,
    pub media_type: MediaType,
    pub size: i64,
    pub sha256: String,
    pub blob_key: String,
    pub thumb_key: Option<String>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub duration_seconds: Option<f64>,
}

/// Which assets a list shows.
#[derive(Debug, Clone, Copy)]
pub enum AssetFilter {
    Owner(i64),
    All,
}

impl Store {
    /// Commits the row of an uploaded file whose blob is already in its final place.
    pub async fn insert_asset(
        &self,
        owner_id: i64,
        meta: &AssetMeta,
        file: &StoredFile,
        now: i64,
    ) -> anyhow::Result<i64> {
        let id = self.insert_asset_from(owner_id, meta, file, None, &AssetCommit::default(), now).await?;
        id.ok_or_else(|| anyhow::anyhow!("an asset without a completed upload was refused"))
    }

    /// [`Store::insert_asset`] with where the file came from (a file request's upload) and what
    /// commits with it (`commit`). None, with nothing written, when the upload it completes is no
    /// longer open (another request completed or removed it).
    pub async fn insert_asset_from(
        &self,
        owner_id: i64,
        meta: &AssetMeta,
        file: &StoredFile,
        source: Option<&AssetSource>,
        commit: &AssetCommit,
        now: i64,
    ) -> anyhow::Result<Option<i64>> {
        let (_writing, mut tx) = self.begin_write().await?;
        let id = next_id(&mut tx, "assets").await?;
        sqlx::query(
            "INSERT INTO assets (id, owner_id, title, description, tags, name, mime_type, media_type, size,
                sha256, blob_key, thumb_key, width, height, duration_seconds, content_type, created_at, updated_at,
                source_file_request, uploader_name, uploader_email, uploader_message)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17, $18, $19, $20, $21)",
        )
        .bind(id)
        .bind(owner_id)
        .bind(&meta.title)
        .bind(&meta.description)
        .bind(meta.tags.join(","))
        .bind(&file.name)
        .bind(&file.mime_type)
        .bind(file.media_type.as_str())
        .bind(file.size)
        .bind(&file.sha256)
        .bind(&file.blob_key)
        .bind(file.thumb_key.clone())
        .bind(file.width)
        .bind(file.height)
        .bind(super::Float(file.duration_seconds))
        .bind(&meta.content_type)
        .bind(now)
        .bind(source.map(|s| s.file_request.clone()))
        .bind(source.and_then(|s| s.uploader_name.clone()))
        .bind(source.and_then(|s| s.uploader_email.clone()))
        .bind(source.and_then(|s| s.message.clone()))
        .execute(&mut *tx)
        .await?;
        if let Some(up) = &commit.completes {
            let done = sqlx::query(
                "UPDATE uploads SET state = 'done', result = $1, tail_key = NULL, tail_len = 0, multipart_id = NULL,
                    updated_at = $2, expires_at = $3 WHERE id = $4 AND state <> 'done'",
            )
            .bind(up.names_asset.then(|| asset_location(id)))
            .bind(now)
            .bind(up.expires_at)
            .bind(&up.id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                return Ok(None);
            }
        }
        if let Some((request, reserved)) = commit.settles {
            super::file_requests::settle_upload_in(&mut tx, request, reserved, file.size, now).await?;
        }
        let queued = match &commit.event {
            Some(make) => {
                let made =
                    AssetMade { id, name: &file.name, size: file.size, mime_type: &file.mime_type, created_at: now };
                self.enqueue_webhooks(&mut tx, &make(&made), now).await?
            }
            None => 0,
        };
        tx.commit().await?;
        if queued > 0 {
            self.outbox_filled();
        }
        Ok(Some(id))
    }

    pub async fn asset(&self, id: i64) -> anyhow::Result<Option<Asset>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ASSET_COLUMNS} FROM assets a JOIN users u ON u.id = a.owner_id WHERE a.id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(asset_from_row).transpose()?)
    }

    /// Newest first.
    pub async fn list_assets(&self, filter: AssetFilter, page: PageRequest) -> anyhow::Result<(Vec<Asset>, i64)> {
        let (owner_clause, owner) = match filter {
            AssetFilter::Owner(id) => ("a.owner_id = $1", id),
            AssetFilter::All => ("$1 = $1", 0),
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ASSET_COLUMNS} FROM assets a JOIN users u ON u.id = a.owner_id
             WHERE {owner_clause} ORDER BY a.created_at DESC, a.id DESC LIMIT $2 OFFSET $3"
        )))
        .bind(owner)
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&self.pool)
        .await?;
        let (count,): (i64,) =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM assets a WHERE {owner_clause}")))
                .bind(owner)
                .fetch_one(&self.pool)
                .await?;
        Ok((rows.iter().map(asset_from_row).collect::<Result<Vec<_>, _>>()?, count))
    }

    pub async fn update_asset(&self, id: i64, patch: &AssetPatch, now: i64) -> anyhow::Result<Option<Asset>> {
        self.write(
            sqlx::query(
                "UPDATE assets SET title = COALESCE($1, title), description = COALESCE($2, description),
                tags = COALESCE($3, tags), content_type = COALESCE($4, content_type), name = COALESCE($5, name),
                updated_at = $6
             WHERE id = $7",
            )
            .bind(patch.title.clone())
            .bind(patch.description.clone())
            .bind(patch.tags.as_ref().map(|t| t.join(",")))
            .bind(patch.content_type.clone())
            .bind(patch.name.clone())
            .bind(now)
            .bind(id),
        )
        .await?;
        self.content_changed().await;
        self.asset(id).await
    }

    /// Deletes the row with its comments and ends its live sessions; the caller removes blobs
    /// that no other row references.
    pub async fn delete_asset(&self, id: i64, now: i64, audit: &AuditEntry) -> anyhow::Result<bool> {
        let (_writing, mut tx) = self.begin_write().await?;
        let res = sqlx::query("DELETE FROM assets WHERE id = $1").bind(id).execute(&mut *tx).await?;
        if res.rows_affected() > 0 {
            super::audit::insert(&mut tx, audit, now).await?;
        }
        sqlx::query("DELETE FROM comments WHERE asset_id = $1").bind(id).execute(&mut *tx).await?;
        // Its gallery posts go with it (soft, like a deleted post).
        sqlx::query("UPDATE gallery_posts SET is_active = 0 WHERE object_id = $1").bind(id).execute(&mut *tx).await?;
        sqlx::query("UPDATE collab_sessions SET ended_at = $2 WHERE asset_id = $1 AND ended_at IS NULL")
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.content_changed().await;
        Ok(res.rows_affected() > 0)
    }

    /// Whether any asset still points at this blob (as file or as thumbnail).
    pub async fn blob_referenced(&self, key: &str) -> anyhow::Result<bool> {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT id FROM assets WHERE blob_key = $1 OR thumb_key = $1
             UNION ALL SELECT id FROM chat_files WHERE blob_key = $1 OR thumb_key = $1 LIMIT 1",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Whether asset `id` exists and `key` is its file or its thumbnail (signed links check this).
    pub async fn asset_serves(&self, id: i64, key: &str) -> anyhow::Result<bool> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT id FROM assets WHERE id = $1 AND (blob_key = $2 OR thumb_key = $2)")
                .bind(id)
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.is_some())
    }

    /// Whether chat file `id` exists and `key` is its file or its thumbnail.
    pub async fn chat_file_serves(&self, id: i64, key: &str) -> anyhow::Result<bool> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT id FROM chat_files WHERE id = $1 AND (blob_key = $2 OR thumb_key = $2)")
                .bind(id)
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.is_some())
    }

    pub async fn stored_bytes(&self) -> anyhow::Result<i64> {
        let (n,): (Option<i64>,) =
            sqlx::query_as("SELECT CAST(SUM(size) AS BIGINT) FROM assets").fetch_one(&self.pool).await?;
        Ok(n.unwrap_or(0))
    }
}
