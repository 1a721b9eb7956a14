//! Queries on accounts.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, flag, next_id};
use crate::domain::audit::AuditEntry;
use crate::domain::pagination::PageRequest;
use crate::domain::users::{Email, PersonName, Role, User};

const USER_COLUMNS: &str = "id, email, name, password_hash, role, is_active, created_at";

pub(crate) fn user_from_row(r: &AnyRow) -> Result<User, sqlx::Error> {
    let role: String = r.try_get("role")?;
    Ok(User {
        id: r.try_get("id")?,
        email: r.try_get("email")?,
        name: r.try_get("name")?,
        password_hash: r.try_get("password_hash")?,
        role: Role::parse(&role).unwrap_or(Role::User),
        is_active: r.try_get::<i64, _>("is_active")? != 0,
        created_at: r.try_get("created_at")?,
    })
}

/// Result of an insert that may collide with an existing e-mail address.
pub enum Created<T> {
    Ok(T),
    EmailTaken,
}

impl Store {
    /// Holds the account `user_id` for the rest of `tx`, so that a count of what it owns and an
    /// insert under a per-account limit are one step: on PostgreSQL a row lock that a second
    /// transaction of the same account waits for (then counting what the first committed); on
    /// SQLite the write gate and the database's single writer serialise writers already.
    pub(crate) async fn hold_user(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        user_id: i64,
    ) -> Result<(), sqlx::Error> {
        if self.dialect == super::Dialect::Postgres {
            sqlx::query("SELECT id FROM users WHERE id = $1 FOR UPDATE").bind(user_id).execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Creates an account. With `role = None` the very first account becomes `admin`, every
    /// other one `user`; the decision is made inside the insert transaction. `audit` makes the
    /// entry from the new account (id, role), committed with it.
    pub async fn create_user(
        &self,
        email: &Email,
        name: &PersonName,
        password_hash: &str,
        role: Option<Role>,
        now: i64,
        audit: impl FnOnce(i64, Role) -> AuditEntry + Send,
    ) -> anyhow::Result<Created<User>> {
        let (_writing, mut tx) = self.begin_write().await?;
        let id = next_id(&mut tx, "users").await?;
        let (existing,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users").fetch_one(&mut *tx).await?;
        let role = role.unwrap_or(if existing == 0 { Role::Admin } else { Role::User });
        let taken: Option<(i64,)> = sqlx::query_as("SELECT id FROM users WHERE email = $1")
            .bind(email.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Ok(Created::EmailTaken);
        }
        let res = sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, role, is_active, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 1, $6, $6)",
        )
        .bind(id)
        .bind(email.as_str())
        .bind(name.as_str())
        .bind(password_hash)
        .bind(role.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await;
        match res {
            Ok(_) => {}
            // A concurrent registration with the same address won the unique index.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Ok(Created::EmailTaken);
            }
            Err(e) => return Err(e.into()),
        }
        super::audit::insert(&mut tx, &audit(id, role), now).await?;
        tx.commit().await?;
        Ok(Created::Ok(User {
            id,
            email: email.as_str().to_string(),
            name: name.as_str().to_string(),
            password_hash: password_hash.to_string(),
            role,
            is_active: true,
            created_at: now,
        }))
    }

    pub async fn user_by_id(&self, id: i64) -> anyhow::Result<Option<User>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(user_from_row).transpose()?)
    }

    pub async fn user_by_email(&self, email: &str) -> anyhow::Result<Option<User>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1")))
            .bind(email.trim().to_lowercase())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(user_from_row).transpose()?)
    }

    /// Changes role and/or active flag; returns the updated account. The audit entries (what the
    /// caller says changed) commit with the change. The cached access tokens of the account carry
    /// both: every instance has forgotten them when this returns.
    pub async fn update_user(
        &self,
        id: i64,
        role: Option<Role>,
        is_active: Option<bool>,
        now: i64,
        audit: &[AuditEntry],
    ) -> anyhow::Result<Option<User>> {
        let (writing, mut tx) = self.begin_write().await?;
        let res = sqlx::query(
            "UPDATE users SET role = COALESCE($1, role), is_active = COALESCE($2, is_active), updated_at = $3
             WHERE id = $4",
        )
        .bind(role.map(|r| r.as_str().to_string()))
        .bind(is_active.map(flag))
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() == 1 {
            for entry in audit {
                super::audit::insert(&mut tx, entry, now).await?;
            }
        }
        tx.commit().await?;
        drop(writing);
        if res.rows_affected() == 1 {
            self.caches.changed(true).await;
        }
        self.user_by_id(id).await
    }

    pub async fn list_users(&self, page: PageRequest) -> anyhow::Result<(Vec<User>, i64)> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY id LIMIT $1 OFFSET $2"
        )))
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&self.pool)
        .await?;
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users").fetch_one(&self.pool).await?;
        let users = rows.iter().map(user_from_row).collect::<Result<Vec<_>, _>>()?;
        Ok((users, count))
    }

    pub async fn count_admins(&self) -> anyhow::Result<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users WHERE role = 'admin' AND is_active = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(n)
    }
}
