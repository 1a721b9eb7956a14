//! Queries on the administrators' policy (SPEC §13): one row, read whole and written whole.

use sqlx::Row;

use super::{Float, Store, flag};
use crate::domain::audit::AuditEntry;
use crate::domain::policies::Policy;
use crate::domain::shares::ShareType;

/// The id of the one row.
const ROW: i64 = 1;

impl Store {
    /// The policy in force: the stored row, or the defaults before the first change.
    pub async fn policy(&self) -> anyhow::Result<Policy> {
        let row = sqlx::query(
            "SELECT allowed_share_types, require_password, default_expires_in_hours, max_expires_in_hours,
                    max_downloads_limit, file_requests_enabled
             FROM policies WHERE id = $1",
        )
        .bind(ROW)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(Policy::default()) };
        let types: String = r.try_get("allowed_share_types")?;
        let mut allowed: Vec<ShareType> = types.split(',').filter_map(|t| ShareType::parse(t.trim())).collect();
        if allowed.is_empty() {
            // Never written so; a row emptied by hand must not forbid every link.
            allowed = Policy::default().allowed_share_types;
        }
        Ok(Policy {
            allowed_share_types: allowed,
            require_password: r.try_get::<i64, _>("require_password")? != 0,
            default_expires_in_hours: r.try_get("default_expires_in_hours")?,
            max_expires_in_hours: r.try_get("max_expires_in_hours")?,
            max_downloads_limit: r.try_get("max_downloads_limit")?,
            file_requests_enabled: r.try_get::<i64, _>("file_requests_enabled")? != 0,
        })
    }

    /// Stores `p` as the policy in force, changed by `by` at `now`.
    /// The audit entry commits with it.
    pub async fn save_policy(&self, p: &Policy, by: i64, now: i64, audit: &AuditEntry) -> anyhow::Result<()> {
        let types = p.allowed_share_types.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(",");
        let (_writing, mut tx) = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO policies (id, allowed_share_types, require_password, default_expires_in_hours,
                     max_expires_in_hours, max_downloads_limit, file_requests_enabled, updated_at, updated_by)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (id) DO UPDATE SET allowed_share_types = excluded.allowed_share_types,
                     require_password = excluded.require_password,
                     default_expires_in_hours = excluded.default_expires_in_hours,
                     max_expires_in_hours = excluded.max_expires_in_hours,
                     max_downloads_limit = excluded.max_downloads_limit,
                     file_requests_enabled = excluded.file_requests_enabled,
                     updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        )
        .bind(ROW)
        .bind(types)
        .bind(flag(p.require_password))
        .bind(Float(p.default_expires_in_hours))
        .bind(Float(p.max_expires_in_hours))
        .bind(p.max_downloads_limit)
        .bind(flag(p.file_requests_enabled))
        .bind(now)
        .bind(by)
        .execute(&mut *tx)
        .await?;
        super::audit::insert(&mut tx, audit, now).await?;
        tx.commit().await?;
        Ok(())
    }
}
