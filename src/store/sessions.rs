//! Queries on sign-in sessions: the server-side half of every account token and page cookie
//! (issue 18 item 7). A token is honoured only while its session row exists and is not revoked.

use super::Store;
use crate::domain::audit::AuditEntry;
use crate::domain::users::User;

/// What a session is for: the HTML login cookie, or tokens handed to API clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    Page,
    Api,
}

impl SessionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Page => "page",
            SessionKind::Api => "api",
        }
    }
}

impl Store {
    /// Records a new session `id` of `user_id`, valid until `expires_at` (ms), with the audit
    /// entry of the sign-in when it is one (a sign-up's first session is not).
    pub async fn create_session(
        &self,
        id: &str,
        user_id: i64,
        kind: SessionKind,
        now: i64,
        expires_at: i64,
        audit: Option<&AuditEntry>,
    ) -> anyhow::Result<()> {
        let (_writing, mut tx) = self.begin_write().await?;
        if let Some(entry) = audit {
            // First: its id counter takes SQLite's write lock at once.
            super::audit::insert(&mut tx, entry, now).await?;
        }
        sqlx::query(
            "INSERT INTO sessions (id, user_id, kind, created_at, expires_at, revoked_at)
             VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .bind(id)
        .bind(user_id)
        .bind(kind.as_str())
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The account of a live (unrevoked, unexpired at `now`) session `id` of `user_id`, in one
    /// round trip; `None` when the session ended or never was. Accounts are never cached: a
    /// disabled account is seen at once (the caller checks `is_active`).
    pub async fn session_user(&self, id: &str, user_id: i64, now: i64) -> anyhow::Result<Option<User>> {
        let row = sqlx::query(
            "SELECT u.id, u.email, u.name, u.password_hash, u.role, u.is_active, u.created_at
             FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL AND s.expires_at > $3",
        )
        .bind(id)
        .bind(user_id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(super::users::user_from_row).transpose()?)
    }

    /// Ends session `id`; true when it was live.
    pub async fn revoke_session(&self, id: &str, now: i64) -> anyhow::Result<bool> {
        let res = self
            .write(
                sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                    .bind(now)
                    .bind(id),
            )
            .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Deletes sessions past their expiry and revoked ones (their tokens are refused either way);
    /// returns how many.
    pub async fn delete_dead_sessions(&self, now: i64) -> anyhow::Result<u64> {
        let res = self
            .write(sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR revoked_at IS NOT NULL").bind(now))
            .await?;
        Ok(res.rows_affected())
    }
}
