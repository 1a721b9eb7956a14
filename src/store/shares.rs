//! Queries on share links. A download is reserved with one conditional UPDATE, so a limit of N
//! admits exactly N downloads however many arrive at once, on both engines.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, flag, next_id};
use crate::domain::audit::AuditEntry;
use crate::domain::pagination::PageRequest;
use crate::domain::shares::{Share, ShareSettings, ShareTarget, ShareType, Shared};
use crate::domain::webhooks::Event;

const COLUMNS: &str =
    "id, uuid, asset_id, collection_id, owner_id, share_type, password_hash, allow_preview, allow_download,
    allow_comments, allow_collaboration, notify_on_access, expires_at, max_downloads, download_count, view_count,
    title, description, allowed_emails, revoked_at, created_at, updated_at, watermark";

fn share_from_row(r: &AnyRow) -> Result<Share, sqlx::Error> {
    let st: String = r.try_get("share_type")?;
    let emails: String = r.try_get("allowed_emails")?;
    let b = |name: &str| r.try_get::<i64, _>(name).map(|v| v != 0);
    let asset_id: Option<i64> = r.try_get("asset_id")?;
    let collection_id: Option<i64> = r.try_get("collection_id")?;
    let target = match (asset_id, collection_id) {
        (_, Some(c)) => ShareTarget::Collection(c),
        (Some(a), None) => ShareTarget::Asset(a),
        (None, None) => return Err(sqlx::Error::Decode("a share link without an asset or a collection".into())),
    };
    Ok(Share {
        id: r.try_get("id")?,
        uuid: r.try_get("uuid")?,
        target,
        owner_id: r.try_get("owner_id")?,
        share_type: ShareType::parse(&st).unwrap_or(ShareType::Private),
        password_hash: r.try_get("password_hash")?,
        allow_preview: b("allow_preview")?,
        allow_download: b("allow_download")?,
        allow_comments: b("allow_comments")?,
        allow_collaboration: b("allow_collaboration")?,
        notify_on_access: b("notify_on_access")?,
        watermark: b("watermark")?,
        expires_at: r.try_get("expires_at")?,
        max_downloads: r.try_get("max_downloads")?,
        download_count: r.try_get("download_count")?,
        view_count: r.try_get("view_count")?,
        title: r.try_get("title")?,
        description: r.try_get("description")?,
        allowed_emails: emails.split(',').filter(|e| !e.is_empty()).map(str::to_string).collect(),
        revoked_at: r.try_get("revoked_at")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// Outcome of trying to count one download.
#[derive(Debug, PartialEq, Eq)]
pub enum Reservation {
    Counted,
    Refused,
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// Binds a link's settings in the order both the insert and the update list them: the five
/// flags, `expires_at`, `max_downloads`, `title`, `description`, `allowed_emails`, `watermark`.
fn bind_settings<'q>(q: Query<'q>, s: &'q ShareSettings) -> Query<'q> {
    q.bind(flag(s.allow_preview))
        .bind(flag(s.allow_download))
        .bind(flag(s.allow_comments))
        .bind(flag(s.allow_collaboration))
        .bind(flag(s.notify_on_access))
        .bind(s.expires_at)
        .bind(s.max_downloads)
        .bind(&s.title)
        .bind(&s.description)
        .bind(s.allowed_emails.join(","))
        .bind(flag(s.watermark))
}

impl Store {
    /// Stores a link; `audit` makes its audit entry from the new id and `event` its `share.created`
    /// from the stored row, both committed with it.
    #[allow(
        clippy::too_many_arguments,
        reason = "the link's parts, its audit entry and its webhook event, all needed by the one insert"
    )]
    pub async fn insert_share(
        &self,
        uuid: &str,
        target: ShareTarget,
        owner_id: i64,
        s: &ShareSettings,
        password_hash: Option<&str>,
        now: i64,
        audit: impl FnOnce(i64) -> AuditEntry + Send,
        event: impl FnOnce(&Share) -> Option<Event> + Send,
    ) -> anyhow::Result<Share> {
        let (_writing, mut tx) = self.begin_write().await?;
        let id = next_id(&mut tx, "shares").await?;
        let q = sqlx::query(
            "INSERT INTO shares (id, uuid, asset_id, collection_id, owner_id, share_type, password_hash, allow_preview,
                allow_download, allow_comments, allow_collaboration, notify_on_access, expires_at, max_downloads,
                download_count, view_count, title, description, allowed_emails, watermark, revoked_at, created_at,
                updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 0, 0, $15, $16, $17, $18, NULL, $19, $19)",
        )
        .bind(id)
        .bind(uuid)
        .bind(match target {
            ShareTarget::Asset(a) => Some(a),
            ShareTarget::Collection(_) => None,
        })
        .bind(match target {
            ShareTarget::Collection(c) => Some(c),
            ShareTarget::Asset(_) => None,
        })
        .bind(owner_id)
        .bind(s.share_type.as_str())
        .bind(password_hash.map(str::to_string));
        bind_settings(q, s).bind(now).execute(&mut *tx).await?;
        super::audit::insert(&mut tx, &audit(id), now).await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM shares WHERE id = $1")))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let share = share_from_row(&row)?;
        // `share.created` is stored with the link, or neither is.
        let queued = match event(&share) {
            Some(e) => self.enqueue_webhooks(&mut tx, &e, now).await?,
            None => 0,
        };
        tx.commit().await?;
        if queued > 0 {
            self.outbox_filled();
        }
        self.content_changed().await;
        Ok(share)
    }

    /// Rewrites a link's settings (`password_hash` None keeps the stored one), with its audit entry.
    pub async fn update_share(
        &self,
        id: i64,
        s: &ShareSettings,
        password_hash: Option<&str>,
        now: i64,
        audit: &AuditEntry,
    ) -> anyhow::Result<()> {
        let q = sqlx::query(
            "UPDATE shares SET share_type = $1, password_hash = CASE WHEN $2 = 1 THEN $3 ELSE password_hash END,
                allow_preview = $4, allow_download = $5, allow_comments = $6, allow_collaboration = $7,
                notify_on_access = $8, expires_at = $9, max_downloads = $10, title = $11, description = $12,
                allowed_emails = $13, watermark = $14, updated_at = $15
             WHERE id = $16",
        )
        .bind(s.share_type.as_str())
        .bind(flag(password_hash.is_some() || s.share_type != ShareType::Protected))
        .bind(password_hash.map(str::to_string));
        let (_writing, mut tx) = self.begin_write().await?;
        let res = bind_settings(q, s).bind(now).bind(id).execute(&mut *tx).await?;
        if res.rows_affected() == 1 {
            super::audit::insert(&mut tx, audit, now).await?;
        }
        tx.commit().await?;
        self.content_changed().await;
        Ok(())
    }

    /// A link and its asset or collection (with its files in order), served from the short-lived
    /// cache when fresh (the share page path). Collection writes call `content_changed`.
    pub async fn share_view(&self, uuid: &str) -> anyhow::Result<Option<super::cache::ShareView>> {
        if let Some(v) = self.caches.share(uuid) {
            return Ok(Some(v));
        }
        let since = self.caches.epoch();
        let Some(share) = self.share_by_uuid(uuid).await? else { return Ok(None) };
        let shared = match share.target {
            ShareTarget::Asset(id) => {
                let Some(asset) = self.asset(id).await? else { return Ok(None) };
                Shared::Asset(Box::new(asset))
            }
            ShareTarget::Collection(id) => {
                let Some(collection) = self.collection(id).await? else { return Ok(None) };
                let items = self.collection_items(id).await?.into_iter().map(|i| i.asset).collect();
                Shared::Collection { collection, items }
            }
        };
        let view = std::sync::Arc::new((share, shared));
        self.caches.put_share(since, uuid, view.clone());
        Ok(Some(view))
    }

    /// After a committed write that may change a cached share view or gallery answer: forgets
    /// them here and on every other instance before the write's answer leaves (SPEC §9).
    pub async fn content_changed(&self) {
        self.caches.changed(true).await;
    }

    /// After a download was counted or refunded: the database enforces the limit itself, so the
    /// other instances are told without waiting for them (cached counts are for display).
    pub async fn counts_changed(&self) {
        self.caches.changed(false).await;
    }

    pub async fn share_by_id(&self, id: i64) -> anyhow::Result<Option<Share>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM shares WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(share_from_row).transpose()?)
    }

    pub async fn share_by_uuid(&self, uuid: &str) -> anyhow::Result<Option<Share>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM shares WHERE uuid = $1")))
            .bind(uuid)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(share_from_row).transpose()?)
    }

    /// The owner's links, newest first; `None` lists every link (admins).
    pub async fn list_shares(&self, owner: Option<i64>, page: PageRequest) -> anyhow::Result<(Vec<Share>, i64)> {
        let (clause, id) = match owner {
            Some(o) => ("owner_id = $1", o),
            None => ("$1 = $1", 0),
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM shares WHERE {clause} ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
        )))
        .bind(id)
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&self.pool)
        .await?;
        let (count,): (i64,) =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM shares WHERE {clause}")))
                .bind(id)
                .fetch_one(&self.pool)
                .await?;
        Ok((rows.iter().map(share_from_row).collect::<Result<_, _>>()?, count))
    }

    pub async fn shares_of_asset(&self, asset_id: i64) -> anyhow::Result<Vec<Share>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM shares WHERE asset_id = $1 ORDER BY created_at DESC, id DESC"
        )))
        .bind(asset_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(share_from_row).collect::<Result<_, _>>()?)
    }

    /// The links of one collection, newest first.
    pub async fn shares_of_collection(&self, collection_id: i64) -> anyhow::Result<Vec<Share>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM shares WHERE collection_id = $1 ORDER BY created_at DESC, id DESC"
        )))
        .bind(collection_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(share_from_row).collect::<Result<_, _>>()?)
    }

    /// Revokes a live link, with its audit entry and `event` (`share.revoked`); a link revoked
    /// already is left (and neither logged nor announced again).
    pub async fn revoke_share(
        &self,
        id: i64,
        now: i64,
        audit: &AuditEntry,
        event: Option<&Event>,
    ) -> anyhow::Result<()> {
        let (_writing, mut tx) = self.begin_write().await?;
        let res =
            sqlx::query("UPDATE shares SET revoked_at = $1, updated_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        let queued = match event {
            Some(e) if res.rows_affected() == 1 => self.enqueue_webhooks(&mut tx, e, now).await?,
            _ => 0,
        };
        if res.rows_affected() == 1 {
            super::audit::insert(&mut tx, audit, now).await?;
        }
        tx.commit().await?;
        if queued > 0 {
            self.outbox_filled();
        }
        self.content_changed().await;
        Ok(())
    }

    /// Counts one download if the link is live and under its limit: one conditional UPDATE,
    /// decided by the database before any byte is sent.
    pub async fn reserve_download(&self, id: i64, now: i64) -> anyhow::Result<Reservation> {
        let res = self
            .write(
                sqlx::query(
                    "UPDATE shares SET download_count = download_count + 1
             WHERE id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)
               AND (max_downloads IS NULL OR download_count < max_downloads)",
                )
                .bind(id)
                .bind(now),
            )
            .await?;
        if res.rows_affected() == 0 {
            return Ok(Reservation::Refused);
        }
        self.counts_changed().await;
        Ok(Reservation::Counted)
    }

    /// Gives back a reservation whose transfer never started.
    pub async fn refund_download(&self, id: i64) -> anyhow::Result<()> {
        self.write(
            sqlx::query("UPDATE shares SET download_count = download_count - 1 WHERE id = $1 AND download_count > 0")
                .bind(id),
        )
        .await?;
        self.counts_changed().await;
        Ok(())
    }

    /// Adds batched view counts in one transaction.
    pub async fn add_views(&self, counts: &std::collections::HashMap<i64, i64>) -> anyhow::Result<()> {
        let (_writing, mut tx) = self.begin_write().await?;
        for (id, n) in counts {
            sqlx::query("UPDATE shares SET view_count = view_count + $1 WHERE id = $2")
                .bind(*n)
                .bind(*id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Remembers that `visitor` has a counted download of the link until `until`.
    pub async fn grant_download(&self, share_id: i64, visitor: &str, until: i64) -> anyhow::Result<()> {
        self.write(
            sqlx::query(
                "INSERT INTO share_download_grants (share_id, visitor_key, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (share_id, visitor_key) DO UPDATE SET expires_at = excluded.expires_at",
            )
            .bind(share_id)
            .bind(visitor)
            .bind(until),
        )
        .await?;
        Ok(())
    }

    pub async fn has_download_grant(&self, share_id: i64, visitor: &str, now: i64) -> anyhow::Result<bool> {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT share_id FROM share_download_grants WHERE share_id = $1 AND visitor_key = $2 AND expires_at > $3",
        )
        .bind(share_id)
        .bind(visitor)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    pub async fn purge_download_grants(&self, now: i64) -> anyhow::Result<u64> {
        let res = self.write(sqlx::query("DELETE FROM share_download_grants WHERE expires_at <= $1").bind(now)).await?;
        Ok(res.rows_affected())
    }

    /// Adds one download to each of `asset_ids` of a collection link (`file_breakdown`).
    pub async fn count_file_downloads(&self, share_id: i64, asset_ids: &[i64]) -> anyhow::Result<()> {
        if asset_ids.is_empty() {
            return Ok(());
        }
        let (_writing, mut tx) = self.begin_write().await?;
        for asset_id in asset_ids {
            sqlx::query(
                "INSERT INTO share_file_downloads (share_id, asset_id, downloads) VALUES ($1, $2, 1)
                 ON CONFLICT (share_id, asset_id) DO UPDATE SET downloads = share_file_downloads.downloads + 1",
            )
            .bind(share_id)
            .bind(asset_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Downloads per file of a collection link, as recorded: `(asset_id, downloads)`.
    pub async fn file_downloads(&self, share_id: i64) -> anyhow::Result<Vec<(i64, i64)>> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT asset_id, downloads FROM share_file_downloads WHERE share_id = $1 ORDER BY asset_id",
        )
        .bind(share_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// Removes an asset's links (and their grants) before the asset row goes.
    pub async fn delete_shares_of_asset(&self, asset_id: i64) -> anyhow::Result<()> {
        let (_writing, mut tx) = self.begin_write().await?;
        sqlx::query("DELETE FROM share_download_grants WHERE share_id IN (SELECT id FROM shares WHERE asset_id = $1)")
            .bind(asset_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM shares WHERE asset_id = $1").bind(asset_id).execute(&mut *tx).await?;
        tx.commit().await?;
        self.content_changed().await;
        Ok(())
    }
}
