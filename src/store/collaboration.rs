//! Collaboration sessions and their participants.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::rooms::{RoomEvent, append};
use super::{Store, flag, next_id};
use crate::domain::collaboration::{Features, Participant, Session};

const SESSION_COLUMNS: &str = "id, uuid, asset_id, share_id, owner_id, allow_download, cursor_tracking, voice_chat,
    screen_sharing, invitation_message, expires_at, ended_at, created_at";
const PARTICIPANT_COLUMNS: &str = "id, session_id, email, user_id, removed_at";

fn session_from_row(r: &AnyRow) -> Result<Session, sqlx::Error> {
    let b = |name: &str| r.try_get::<i64, _>(name).map(|v| v != 0);
    Ok(Session {
        id: r.try_get("id")?,
        uuid: r.try_get("uuid")?,
        asset_id: r.try_get("asset_id")?,
        share_id: r.try_get("share_id")?,
        owner_id: r.try_get("owner_id")?,
        features: Features {
            allow_download: b("allow_download")?,
            cursor_tracking: b("cursor_tracking")?,
            voice_chat: b("voice_chat")?,
            screen_sharing: b("screen_sharing")?,
        },
        invitation_message: r.try_get("invitation_message")?,
        expires_at: r.try_get("expires_at")?,
        ended_at: r.try_get("ended_at")?,
        created_at: r.try_get("created_at")?,
    })
}

fn participant_from_row(r: &AnyRow) -> Result<Participant, sqlx::Error> {
    Ok(Participant {
        id: r.try_get("id")?,
        session_id: r.try_get("session_id")?,
        email: r.try_get("email")?,
        user_id: r.try_get("user_id")?,
        removed_at: r.try_get("removed_at")?,
    })
}

/// A participant to add: the address, and the account when there is one.
#[derive(Debug, Clone)]
pub struct NewParticipant {
    pub email: String,
    pub user_id: Option<i64>,
}

impl Store {
    #[allow(clippy::too_many_arguments, reason = "one row of a table with this many columns")]
    pub async fn insert_session(
        &self,
        uuid: &str,
        asset_id: i64,
        share_id: i64,
        owner_id: i64,
        features: Features,
        invitation_message: &str,
        expires_at: i64,
        participants: &[NewParticipant],
        now: i64,
    ) -> anyhow::Result<Session> {
        let (_writing, mut tx) = self.begin_write().await?;
        let id = next_id(&mut tx, "collab_sessions").await?;
        sqlx::query(
            "INSERT INTO collab_sessions (id, uuid, asset_id, share_id, owner_id, allow_download, cursor_tracking,
                voice_chat, screen_sharing, invitation_message, expires_at, ended_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, $12)",
        )
        .bind(id)
        .bind(uuid)
        .bind(asset_id)
        .bind(share_id)
        .bind(owner_id)
        .bind(flag(features.allow_download))
        .bind(flag(features.cursor_tracking))
        .bind(flag(features.voice_chat))
        .bind(flag(features.screen_sharing))
        .bind(invitation_message)
        .bind(expires_at)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        for p in participants {
            insert_participant(&mut tx, id, p, now).await?;
        }
        tx.commit().await?;
        self.session_by_uuid(uuid).await?.ok_or_else(|| anyhow::anyhow!("session vanished after insert"))
    }

    pub async fn session_by_uuid(&self, uuid: &str) -> anyhow::Result<Option<Session>> {
        let row =
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {SESSION_COLUMNS} FROM collab_sessions WHERE uuid = $1")))
                .bind(uuid)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.as_ref().map(session_from_row).transpose()?)
    }

    pub async fn session_by_id(&self, id: i64) -> anyhow::Result<Option<Session>> {
        let row =
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {SESSION_COLUMNS} FROM collab_sessions WHERE id = $1")))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.as_ref().map(session_from_row).transpose()?)
    }

    /// The uuid of the link a session reviews through (its collaboration page's address).
    pub async fn session_share_uuid(&self, session_id: i64) -> anyhow::Result<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT sh.uuid FROM collab_sessions s JOIN shares sh ON sh.id = s.share_id WHERE s.id = $1",
        )
        .bind(session_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.0))
    }

    /// The newest live session reviewing through the link `share_id`.
    pub async fn live_session_of_share(&self, share_id: i64, now: i64) -> anyhow::Result<Option<Session>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM collab_sessions WHERE share_id = $1 AND ended_at IS NULL AND expires_at > $2
             ORDER BY id DESC LIMIT 1"
        )))
        .bind(share_id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(session_from_row).transpose()?)
    }

    /// The newest session (live or not) reviewing through the link `share_id`.
    pub async fn latest_session_of_share(&self, share_id: i64) -> anyhow::Result<Option<Session>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM collab_sessions WHERE share_id = $1 ORDER BY id DESC LIMIT 1"
        )))
        .bind(share_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(session_from_row).transpose()?)
    }

    /// Sessions `user_id` owns or takes part in, newest first.
    /// The sessions on `asset_id` that have not been ended (expired ones included).
    pub async fn open_sessions_of_asset(&self, asset_id: i64) -> anyhow::Result<Vec<Session>> {
        self.open_sessions_where("asset_id", asset_id).await
    }

    /// The sessions reached through the link `share_id` that have not been ended.
    pub async fn open_sessions_of_share(&self, share_id: i64) -> anyhow::Result<Vec<Session>> {
        self.open_sessions_where("share_id", share_id).await
    }

    async fn open_sessions_where(&self, column: &'static str, id: i64) -> anyhow::Result<Vec<Session>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM collab_sessions WHERE {column} = $1 AND ended_at IS NULL"
        )))
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(session_from_row).collect::<Result<_, _>>()?)
    }

    pub async fn sessions_of_user(&self, user_id: i64, limit: i64) -> anyhow::Result<Vec<Session>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM collab_sessions WHERE owner_id = $1 OR id IN
                (SELECT session_id FROM collab_participants WHERE user_id = $1 AND removed_at IS NULL)
             ORDER BY id DESC LIMIT $2"
        )))
        .bind(user_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(session_from_row).collect::<Result<_, _>>()?)
    }

    /// Every participant of a session (removed ones included), in invitation order.
    pub async fn participants(&self, session_id: i64) -> anyhow::Result<Vec<Participant>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PARTICIPANT_COLUMNS} FROM collab_participants WHERE session_id = $1 ORDER BY id"
        )))
        .bind(session_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(participant_from_row).collect::<Result<_, _>>()?)
    }

    /// Whether `user_id` is a current (not removed) participant of the session.
    pub async fn is_participant(&self, session_id: i64, user_id: i64) -> anyhow::Result<bool> {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT id FROM collab_participants WHERE session_id = $1 AND user_id = $2 AND removed_at IS NULL LIMIT 1",
        )
        .bind(session_id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Adds (or re-adds a removed) participant; false when the address is already a participant.
    pub async fn add_participant(&self, session_id: i64, p: &NewParticipant, now: i64) -> anyhow::Result<bool> {
        let (_writing, mut tx) = self.begin_write().await?;
        let existing: Option<(i64, Option<i64>)> =
            sqlx::query_as("SELECT id, removed_at FROM collab_participants WHERE session_id = $1 AND email = $2")
                .bind(session_id)
                .bind(&p.email)
                .fetch_optional(&mut *tx)
                .await?;
        let added = match existing {
            Some((_, None)) => false,
            Some((id, Some(_))) => {
                sqlx::query(
                    "UPDATE collab_participants SET removed_at = NULL, user_id = COALESCE(user_id, $2) WHERE id = $1",
                )
                .bind(id)
                .bind(p.user_id)
                .execute(&mut *tx)
                .await?;
                true
            }
            None => {
                insert_participant(&mut tx, session_id, p, now).await?;
                true
            }
        };
        tx.commit().await?;
        Ok(added)
    }

    /// Marks a participant removed and records `participant_removed` in the session's room.
    pub async fn remove_participant(
        &self,
        s: &Session,
        p: &Participant,
        user: serde_json::Value,
        now: i64,
    ) -> anyhow::Result<Vec<RoomEvent>> {
        let (_writing, mut tx) = self.begin_write().await?;
        sqlx::query("UPDATE collab_participants SET removed_at = $2 WHERE id = $1 AND removed_at IS NULL")
            .bind(p.id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let mut events = Vec::new();
        if p.user_id.is_some() {
            events
                .push(append(&mut tx, &s.room(), "participant_removed", serde_json::json!({"user": user}), now).await?);
        }
        tx.commit().await?;
        Ok(events)
    }

    /// Ends a live session; None when it was already over.
    /// `event` (`collaboration.session_ended`) is stored with the change.
    pub async fn end_session(
        &self,
        s: &Session,
        now: i64,
        event: Option<&crate::domain::webhooks::Event>,
    ) -> anyhow::Result<Option<RoomEvent>> {
        let end = sqlx::query("UPDATE collab_sessions SET ended_at = $2 WHERE id = $1 AND ended_at IS NULL")
            .bind(s.id)
            .bind(now);
        self.close_session(s, end, "ended", now, event).await
    }

    /// Records the end of a session that has expired (`ended_at` = its `expires_at`), once: of
    /// every instance, socket and sweep that sees it expire, only the one whose UPDATE changes
    /// the row appends `session_ended` (reason `expired`) and queues `event`; the others get
    /// None. On PostgreSQL a second UPDATE waits for the first and then finds `ended_at` set; on
    /// SQLite the write gate and the database's single writer serialise them.
    pub async fn expire_session(
        &self,
        s: &Session,
        now: i64,
        event: &crate::domain::webhooks::Event,
    ) -> anyhow::Result<Option<RoomEvent>> {
        let end = sqlx::query(
            "UPDATE collab_sessions SET ended_at = expires_at WHERE id = $1 AND ended_at IS NULL AND expires_at <= $2",
        )
        .bind(s.id)
        .bind(now);
        self.close_session(s, end, "expired", now, Some(event)).await
    }

    /// Runs `end` (an UPDATE that claims the session's end); when it changed the row, appends
    /// `session_ended` with `reason` and queues `event` in the same transaction.
    async fn close_session(
        &self,
        s: &Session,
        end: sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments>,
        reason: &str,
        now: i64,
        event: Option<&crate::domain::webhooks::Event>,
    ) -> anyhow::Result<Option<RoomEvent>> {
        let (_writing, mut tx) = self.begin_write().await?;
        let done = end.execute(&mut *tx).await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        let e = append(&mut tx, &s.room(), "session_ended", serde_json::json!({"reason": reason}), now).await?;
        let queued = match event {
            Some(ev) => self.enqueue_webhooks(&mut tx, ev, now).await?,
            None => 0,
        };
        tx.commit().await?;
        if queued > 0 {
            self.outbox_filled();
        }
        Ok(Some(e))
    }

    /// Sessions past their expiry whose end is not recorded yet, the oldest first.
    pub async fn expired_sessions(&self, now: i64, limit: i64) -> anyhow::Result<Vec<Session>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM collab_sessions WHERE ended_at IS NULL AND expires_at <= $1
             ORDER BY expires_at, id LIMIT $2"
        )))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(session_from_row).collect::<Result<_, _>>()?)
    }

    pub async fn participant_by_id(&self, id: i64) -> anyhow::Result<Option<Participant>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PARTICIPANT_COLUMNS} FROM collab_participants WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(participant_from_row).transpose()?)
    }

    /// Whether `user_id` takes part in a live session on `asset_id`.
    pub async fn reviews_asset(&self, user_id: i64, asset_id: i64, now: i64) -> anyhow::Result<bool> {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT s.id FROM collab_sessions s JOIN collab_participants p ON p.session_id = s.id
             WHERE s.asset_id = $1 AND p.user_id = $2 AND p.removed_at IS NULL AND s.ended_at IS NULL
                AND s.expires_at > $3
             LIMIT 1",
        )
        .bind(asset_id)
        .bind(user_id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Links every pending invitation of `email` to the account `user_id` (the invitation proved
    /// that its holder reads that mailbox).
    pub async fn link_invitations(&self, email: &str, user_id: i64) -> anyhow::Result<u64> {
        let done = self
            .write(
                sqlx::query("UPDATE collab_participants SET user_id = $2 WHERE email = $1 AND user_id IS NULL")
                    .bind(email)
                    .bind(user_id),
            )
            .await?;
        Ok(done.rows_affected())
    }
}

async fn insert_participant(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    session_id: i64,
    p: &NewParticipant,
    now: i64,
) -> Result<(), sqlx::Error> {
    let id = next_id(tx, "collab_participants").await?;
    sqlx::query(
        "INSERT INTO collab_participants (id, session_id, email, user_id, removed_at, created_at)
         VALUES ($1, $2, $3, $4, NULL, $5)",
    )
    .bind(id)
    .bind(session_id)
    .bind(&p.email)
    .bind(p.user_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
