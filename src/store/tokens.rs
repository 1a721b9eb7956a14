//! Queries on personal access tokens (SPEC §13). Only hashes are stored; a request's token is
//! found by its hash with its account in one indexed lookup, then kept in the short-lived cache
//! (`store::cache`, keyed by the hash) like a share row: revoking it and changing its account's
//! role or active flag forget it on every instance before the write returns, so they take effect
//! at the next request everywhere; expiry is checked against the clock at every request.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, next_id};
use crate::domain::audit::AuditEntry;
use crate::domain::pagination::PageRequest;
use crate::domain::tokens::{AccessToken, Scopes};
use crate::domain::users::User;

const COLUMNS: &str = "t.id, t.user_id, t.name, t.scopes, t.created_at, t.expires_at, t.last_used_at";

fn from_row(r: &AnyRow) -> Result<AccessToken, sqlx::Error> {
    let scopes: String = r.try_get("scopes")?;
    Ok(AccessToken {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        name: r.try_get("name")?,
        scopes: Scopes::from_db(&scopes),
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        last_used_at: r.try_get("last_used_at")?,
    })
}

/// A token and its account as authentication reads them (cached by the token's hash).
pub struct TokenAccount {
    pub token: AccessToken,
    pub user: User,
    /// When this instance last recorded a use, from the stored `last_used_at` on: a cached
    /// `token.last_used_at` is not updated, and without this every request would write again
    /// while the entry lives.
    used: AtomicI64,
}

impl TokenAccount {
    pub fn new(token: AccessToken, user: User) -> TokenAccount {
        let used = AtomicI64::new(token.last_used_at.unwrap_or(i64::MIN));
        TokenAccount { token, user, used }
    }

    /// Whether a use at `now` is to be recorded: none was for `interval` ms. One caller per
    /// interval gets `true` on this instance; `Store::touch_token`'s conditional update settles
    /// several instances.
    pub fn claim_use(&self, now: i64, interval: i64) -> bool {
        let last = self.used.load(Ordering::SeqCst);
        last <= now.saturating_sub(interval)
            && self.used.compare_exchange(last, now, Ordering::SeqCst, Ordering::SeqCst).is_ok()
    }
}

/// A token about to be stored.
pub struct TokenRow<'a> {
    pub user_id: i64,
    pub name: &'a str,
    pub hash: &'a str,
    pub scopes: Scopes,
    pub expires_at: Option<i64>,
}

impl Store {
    /// Stores a token unless its account already holds `max` tokens (`None` then); `audit` makes
    /// its audit entry from the new id, committed with it.
    pub async fn insert_token(
        &self,
        t: &TokenRow<'_>,
        max: i64,
        now: i64,
        audit: impl FnOnce(i64) -> AuditEntry + Send,
    ) -> anyhow::Result<Option<AccessToken>> {
        let (_writing, mut tx) = self.begin_write().await?;
        let id = next_id(&mut tx, "access_tokens").await?;
        // Concurrent creations of one account count one after the other (the limit is exact).
        self.hold_user(&mut tx, t.user_id).await?;
        let (held,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM access_tokens WHERE user_id = $1")
            .bind(t.user_id)
            .fetch_one(&mut *tx)
            .await?;
        if held >= max {
            return Ok(None);
        }
        sqlx::query(
            "INSERT INTO access_tokens (id, user_id, name, token_hash, scopes, created_at, expires_at, last_used_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
        )
        .bind(id)
        .bind(t.user_id)
        .bind(t.name)
        .bind(t.hash)
        .bind(t.scopes.to_db())
        .bind(now)
        .bind(t.expires_at)
        .execute(&mut *tx)
        .await?;
        super::audit::insert(&mut tx, &audit(id), now).await?;
        tx.commit().await?;
        Ok(Some(AccessToken {
            id,
            user_id: t.user_id,
            name: t.name.to_string(),
            scopes: t.scopes,
            created_at: now,
            expires_at: t.expires_at,
            last_used_at: None,
        }))
    }

    /// The token whose hash is `hash`, with its account: from the cache when it can be believed,
    /// else in one round trip and then cached. An unknown hash is not cached (a new token works
    /// at once).
    pub async fn token_by_hash(&self, hash: &str) -> anyhow::Result<Option<Arc<TokenAccount>>> {
        if let Some(t) = self.caches.token(hash) {
            return Ok(Some(t));
        }
        let since = self.caches.epoch();
        let Some((token, user)) = self.read_token_by_hash(hash).await? else { return Ok(None) };
        let found = Arc::new(TokenAccount::new(token, user));
        self.caches.put_token(since, hash, found.clone());
        Ok(Some(found))
    }

    async fn read_token_by_hash(&self, hash: &str) -> anyhow::Result<Option<(AccessToken, User)>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS}, u.email, u.name AS user_name, u.password_hash, u.role, u.is_active,
                    u.created_at AS user_created_at
             FROM access_tokens t JOIN users u ON u.id = t.user_id
             WHERE t.token_hash = $1"
        )))
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let token = from_row(&r)?;
        let role: String = r.try_get("role")?;
        let user = User {
            id: token.user_id,
            email: r.try_get("email")?,
            name: r.try_get("user_name")?,
            password_hash: r.try_get("password_hash")?,
            role: crate::domain::users::Role::parse(&role).unwrap_or(crate::domain::users::Role::User),
            is_active: r.try_get::<i64, _>("is_active")? != 0,
            created_at: r.try_get("user_created_at")?,
        };
        Ok(Some((token, user)))
    }

    /// The tokens of `user_id`, newest first, and how many there are.
    pub async fn list_tokens(&self, user_id: i64, page: PageRequest) -> anyhow::Result<(Vec<AccessToken>, i64)> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM access_tokens t WHERE t.user_id = $1 ORDER BY t.id DESC LIMIT $2 OFFSET $3"
        )))
        .bind(user_id)
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&self.pool)
        .await?;
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM access_tokens WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(&self.pool)
            .await?;
        Ok((rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?, count))
    }

    /// Deletes token `id` of `user_id`; true when there was one. Every instance has forgotten it
    /// when this returns.
    pub async fn delete_token(&self, id: i64, user_id: i64, now: i64, audit: &AuditEntry) -> anyhow::Result<bool> {
        let (writing, mut tx) = self.begin_write().await?;
        let res = sqlx::query("DELETE FROM access_tokens WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        if res.rows_affected() != 1 {
            return Ok(false);
        }
        super::audit::insert(&mut tx, audit, now).await?;
        tx.commit().await?;
        drop(writing);
        self.caches.changed(true).await;
        Ok(true)
    }

    /// Records a use of token `id` at `now` unless one at or after `since` is recorded already
    /// (several instances may try at once: one of them writes). Cached tokens are not forgotten:
    /// `last_used_at` is bookkeeping that authentication does not depend on.
    pub async fn touch_token(&self, id: i64, now: i64, since: i64) -> anyhow::Result<()> {
        self.write(
            sqlx::query(
                "UPDATE access_tokens SET last_used_at = $1
                 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)",
            )
            .bind(now)
            .bind(id)
            .bind(since),
        )
        .await?;
        Ok(())
    }
}
