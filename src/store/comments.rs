//! Comments. Every change is committed together with a durable event in the room of each live
//! collaboration session of the asset, so connected reviewers see it and can recover it.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::rooms::{RoomEvent, append};
use super::{Store, flag, next_id};
use crate::domain::comments::{Comment, CommentOut, NewComment};

const SELECT: &str = "SELECT c.id, c.asset_id, c.author_id, c.guest_name, c.content, c.position_x, c.position_y,
    c.timestamp_ms, c.parent_id, c.resolved, c.created_at, c.updated_at, u.name AS author_name
    FROM comments c LEFT JOIN users u ON u.id = c.author_id";

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
        let mut tx = self.pool.begin().await?;
        let id = next_id(&mut tx, "comments").await?;
        let (author_id, guest_name, share_id) = match author {
            Author::User(u) => (Some(*u), None, None),
            Author::Guest { name, share_id } => (None, Some(name.clone()), Some(*share_id)),
        };
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
        let events =
            announce(&mut tx, asset_id, "comment", serde_json::json!({"comment": CommentOut::of(&comment)}), now)
                .await?;
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
        let mut tx = self.pool.begin().await?;
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
        let mut tx = self.pool.begin().await?;
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
