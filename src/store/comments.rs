//! Comments. Every change is committed together with a durable event in the room of each live
//! collaboration session of the asset, so connected reviewers see it and can recover it.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::rooms::{RoomEvent, append};
use super::{Store, flag, next_id};
use crate::domain::comments::{Comment, CommentOut, NewComment};

macro_rules! comment_columns {
    () => {
        "c.id, c.asset_id, c.author_id, c.guest_name, c.content, c.position_x, c.position_y,
    c.timestamp_ms, c.parent_id, c.resolved, c.created_at, c.updated_at, u.name AS author_name"
    };
}
const SELECT: &str = concat!("SELECT ", comment_columns!(), " FROM comments c LEFT JOIN users u ON u.id = c.author_id");

/// SQLite: a new comment in one round trip to the database (its id, the row, the comment as
/// read back, and the rooms of the asset's live sessions), instead of one per statement. The
/// statements share the numbered parameters; only the last one returns a row.
const INSERT_SQLITE: &str = concat!(
    "INSERT INTO id_counters (name, value) VALUES ('comments', 1)
         ON CONFLICT (name) DO UPDATE SET value = id_counters.value + 1;
     INSERT INTO comments (id, asset_id, author_id, guest_name, share_id, content, position_x, position_y,
         timestamp_ms, parent_id, resolved, created_at, updated_at)
     VALUES ((SELECT value FROM id_counters WHERE name = 'comments'), $1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $10);
     SELECT ",
    comment_columns!(),
    ", (SELECT group_concat(room, ' ') FROM (SELECT 'collab:' || uuid AS room FROM collab_sessions
            WHERE asset_id = $1 AND ended_at IS NULL AND expires_at > $10 ORDER BY id)) AS live_rooms
     FROM comments c LEFT JOIN users u ON u.id = c.author_id
     WHERE c.id = (SELECT value FROM id_counters WHERE name = 'comments')"
);

/// Most comments listed for one asset.
pub const MAX_LISTED: i64 = 5_000;

/// Who writes a comment.
#[derive(Debug, Clone)]
pub enum Author {
    User(i64),
    Guest { name: String, share_id: i64 },
}

fn comment_from_row(r: &AnyRow) -> Result<Comment, sqlx::Error> {
    let author_id: Option<i64> = r.try_get("author_id")?;
    let guest: Option<String> = r.try_get("guest_name")?;
    let user_name: Option<String> = r.try_get("author_name")?;
    Ok(Comment {
        id: r.try_get("id")?,
        asset_id: r.try_get("asset_id")?,
        author_id,
        author_name: match (&guest, user_name) {
            (Some(g), _) => g.clone(),
            (None, Some(n)) => n,
            (None, None) => "deleted account".into(),
        },
        is_guest: guest.is_some(),
        content: r.try_get("content")?,
        position_x: r.try_get("position_x")?,
        position_y: r.try_get("position_y")?,
        timestamp_ms: r.try_get("timestamp_ms")?,
        parent_id: r.try_get("parent_id")?,
        resolved: r.try_get::<i64, _>("resolved")? != 0,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// Rooms of the live sessions of `asset_id`.
async fn live_rooms(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    asset_id: i64,
    now: i64,
) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT uuid FROM collab_sessions WHERE asset_id = $1 AND ended_at IS NULL AND expires_at > $2 ORDER BY id",
    )
    .bind(asset_id)
    .bind(now)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(|(u,)| format!("collab:{u}")).collect())
}

async fn announce(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    asset_id: i64,
    kind: &str,
    data: serde_json::Value,
    now: i64,
) -> Result<Vec<RoomEvent>, sqlx::Error> {
    let mut events = Vec::new();
    for room in live_rooms(tx, asset_id, now).await? {
        events.push(append(tx, &room, kind, data.clone(), now).await?);
    }
    Ok(events)
}

async fn fetch(tx: &mut sqlx::Transaction<'_, sqlx::Any>, id: i64) -> Result<Option<Comment>, sqlx::Error> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE c.id = $1")))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(comment_from_row).transpose()
}

impl Store {
    pub async fn insert_comment(
        &self,
        asset_id: i64,
        author: &Author,
        c: &NewComment,
        now: i64,
    ) -> anyhow::Result<(Comment, Vec<RoomEvent>)> {
        let (_writing, mut tx) = self.begin_write().await?;
        let (author_id, guest_name, share_id) = match author {
            Author::User(u) => (Some(*u), None, None),
            Author::Guest { name, share_id } => (None, Some(name.clone()), Some(*share_id)),
        };
        let (comment, rooms) = match self.dialect {
            super::Dialect::Sqlite => {
                let row = sqlx::query(INSERT_SQLITE)
                    .bind(asset_id)
                    .bind(author_id)
                    .bind(guest_name)
                    .bind(share_id)
                    .bind(&c.content)
                    .bind(c.position_x)
                    .bind(c.position_y)
                    .bind(c.timestamp_ms)
                    .bind(c.parent_id)
                    .bind(now)
                    // All rows of the script (fetch_one stops after its first statement).
                    .fetch_all(&mut *tx)
                    .await?
                    .pop()
                    .ok_or_else(|| anyhow::anyhow!("the new comment was not read back"))?;
                let rooms: Option<String> = row.try_get("live_rooms")?;
                (comment_from_row(&row)?, rooms.unwrap_or_default().split_whitespace().map(str::to_string).collect())
            }
            super::Dialect::Postgres => {
                let id = next_id(&mut tx, "comments").await?;
                sqlx::query(
                    "INSERT INTO comments (id, asset_id, author_id, guest_name, share_id, content, position_x, position_y,
                        timestamp_ms, parent_id, resolved, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, $11, $11)",
                )
                .bind(id)
                .bind(asset_id)
                .bind(author_id)
                .bind(guest_name)
                .bind(share_id)
                .bind(&c.content)
                .bind(c.position_x)
                .bind(c.position_y)
                .bind(c.timestamp_ms)
                .bind(c.parent_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let comment = fetch(&mut tx, id).await?.ok_or_else(|| anyhow::anyhow!("comment {id} vanished"))?;
                (comment, live_rooms(&mut tx, asset_id, now).await?)
            }
        };
        let data = serde_json::json!({"comment": CommentOut::of(&comment)});
        let mut events = Vec::with_capacity(rooms.len());
        for room in &rooms {
            events.push(append(&mut tx, room, "comment", data.clone(), now).await?);
        }
        tx.commit().await?;
        Ok((comment, events))
    }

    pub async fn comment_by_id(&self, id: i64) -> anyhow::Result<Option<Comment>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE c.id = $1")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(comment_from_row).transpose()?)
    }

    /// The asset's comments, oldest first (at most `MAX_LISTED`).
    pub async fn comments_of_asset(&self, asset_id: i64) -> anyhow::Result<Vec<Comment>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE c.asset_id = $1 ORDER BY c.id LIMIT $2")))
            .bind(asset_id)
            .bind(MAX_LISTED)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(comment_from_row).collect::<Result<_, _>>()?)
    }

    /// Changes the text (`content`) and/or the resolved flag of a comment.
    pub async fn update_comment(
        &self,
        id: i64,
        content: Option<&str>,
        resolved: Option<bool>,
        now: i64,
    ) -> anyhow::Result<Option<(Comment, Vec<RoomEvent>)>> {
        let (_writing, mut tx) = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE comments SET content = COALESCE($2, content), resolved = COALESCE($3, resolved), updated_at = $4
             WHERE id = $1",
        )
        .bind(id)
        .bind(content)
        .bind(resolved.map(flag))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        let comment = fetch(&mut tx, id).await?.ok_or_else(|| anyhow::anyhow!("comment {id} vanished"))?;
        let events = announce(
            &mut tx,
            comment.asset_id,
            "comment_updated",
            serde_json::json!({"comment": CommentOut::of(&comment)}),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(Some((comment, events)))
    }

    /// Deletes a comment and its replies, replies to replies included.
    pub async fn delete_comment(&self, c: &Comment, now: i64) -> anyhow::Result<Vec<RoomEvent>> {
        let (_writing, mut tx) = self.begin_write().await?;
        sqlx::query(
            "WITH RECURSIVE sub(id) AS (
                SELECT id FROM comments WHERE id = $1
                UNION ALL SELECT comments.id FROM comments JOIN sub ON comments.parent_id = sub.id
             )
             DELETE FROM comments WHERE id IN (SELECT id FROM sub)",
        )
        .bind(c.id)
        .execute(&mut *tx)
        .await?;
        let events =
            announce(&mut tx, c.asset_id, "comment_deleted", serde_json::json!({"comment_id": c.id}), now).await?;
        tx.commit().await?;
        Ok(events)
    }
}
