//! Queries of single sign-on (OpenID Connect): sign-ins under way (`oidc_logins`, taken once by
//! their callback) and the provider identities linked to accounts (`user_identities`).

use sqlx::Row;

use super::Store;
use crate::domain::users::User;

/// A sign-in under way, as stored by `GET /auth/oidc/login`.
#[derive(Debug, Clone)]
pub struct PendingLogin {
    pub state: String,
    /// SHA-256 (hex) of the browser-binding cookie's value.
    pub browser_hash: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub return_to: String,
    pub expires_at: i64,
}

impl Store {
    /// Records a sign-in under way.
    pub async fn insert_oidc_login(&self, login: &PendingLogin, now: i64) -> anyhow::Result<()> {
        self.write(
            sqlx::query(
                "INSERT INTO oidc_logins (state, browser_hash, nonce, pkce_verifier, return_to, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&login.state)
            .bind(&login.browser_hash)
            .bind(&login.nonce)
            .bind(&login.pkce_verifier)
            .bind(&login.return_to)
            .bind(now)
            .bind(login.expires_at),
        )
        .await?;
        Ok(())
    }

    /// Takes the sign-in of `state`: deletes it and returns it, so that a `state` is used once,
    /// whichever instance the callbacks reach. `None` when unknown or already taken (expired rows
    /// are returned too: the caller refuses them with its own message).
    pub async fn take_oidc_login(&self, state: &str) -> anyhow::Result<Option<PendingLogin>> {
        let _writing = self.writing().await;
        let row = sqlx::query(
            "DELETE FROM oidc_logins WHERE state = $1
             RETURNING state, browser_hash, nonce, pkce_verifier, return_to, expires_at",
        )
        .bind(state)
        .fetch_optional(&self.writer)
        .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(PendingLogin {
            state: r.try_get("state")?,
            browser_hash: r.try_get("browser_hash")?,
            nonce: r.try_get("nonce")?,
            pkce_verifier: r.try_get("pkce_verifier")?,
            return_to: r.try_get("return_to")?,
            expires_at: r.try_get("expires_at")?,
        }))
    }

    /// Deletes sign-ins that were never finished (past their expiry); returns how many.
    pub async fn delete_expired_oidc_logins(&self, now: i64) -> anyhow::Result<u64> {
        let res = self.write(sqlx::query("DELETE FROM oidc_logins WHERE expires_at <= $1").bind(now)).await?;
        Ok(res.rows_affected())
    }

    /// The account linked to the provider identity (`issuer`, `subject`), if any.
    pub async fn user_by_identity(&self, issuer: &str, subject: &str) -> anyhow::Result<Option<User>> {
        let row = sqlx::query(
            "SELECT u.id, u.email, u.name, u.password_hash, u.role, u.is_active, u.created_at
             FROM user_identities i JOIN users u ON u.id = i.user_id
             WHERE i.issuer = $1 AND i.subject = $2",
        )
        .bind(issuer)
        .bind(subject)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(super::users::user_from_row).transpose()?)
    }

    /// Links the provider identity to `user_id` (or, when already linked, records this sign-in
    /// and the address the provider gave this time).
    pub async fn link_identity(
        &self,
        issuer: &str,
        subject: &str,
        user_id: i64,
        email: &str,
        now: i64,
    ) -> anyhow::Result<()> {
        self.write(
            sqlx::query(
                "INSERT INTO user_identities (issuer, subject, user_id, email, created_at, last_login_at)
                 VALUES ($1, $2, $3, $4, $5, $5)
                 ON CONFLICT (issuer, subject) DO UPDATE SET email = excluded.email, last_login_at = excluded.last_login_at",
            )
            .bind(issuer)
            .bind(subject)
            .bind(user_id)
            .bind(email)
            .bind(now),
        )
        .await?;
        Ok(())
    }

    /// Whether any provider identity is linked to `user_id`.
    pub async fn has_identity(&self, user_id: i64) -> anyhow::Result<bool> {
        let row: Option<(i64,)> = sqlx::query_as("SELECT user_id FROM user_identities WHERE user_id = $1 LIMIT 1")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }
}
