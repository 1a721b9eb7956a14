//! Comments. Every change is committed together with a durable event in the room of each live
//! collaboration session of the asset, so connected reviewers see it and can recover it.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::rooms::{RoomEvent, append};
use super::{Float, Store, flag, next_id};
use crate::domain::comments::{Comment, CommentOut, NewComment};
use crate::domain::pagination::PageRequest;
use crate::domain::webhooks::{Event, EventType};

/// The columns of a comment as `comment_from_row` reads them; the author's name is the guest's,
/// else the account's, else (the account was deleted) "deleted account".
macro_rules! comment_columns {
    () => {
        "c.id, c.asset_id, c.author_id, c.guest_name, c.content, c.position_x, c.position_y,
    c.timestamp_ms, c.parent_id, c.resolved, c.created_at, c.updated_at,
    COALESCE(c.guest_name, u.name, 'deleted account') AS author_name"
    };
}
const SELECT: &str = concat!("SELECT ", comment_columns!(), " FROM comments c LEFT JOIN users u ON u.id = c.author_id");

/// The rooms of the live collaboration sessions of asset `$1` at `$10` (SQLite).
macro_rules! live_rooms_sqlite {
    () => {
        "SELECT 'collab:' || uuid AS room FROM collab_sessions WHERE asset_id = $1 AND ended_at IS NULL AND expires_at > $10"
    };
}

/// SQLite: a new comment and its `comment` event in the room of every live session of its
/// asset, as statements of one script (`insert_comments_sqlite` runs several inside one
/// transaction). Parameters: `$1`-`$10` the comment's columns, `$11` the event's data as built
/// from the comment before it has an id (`json_set` puts in its id and author's name). Only the
/// last statement returns a row: the comment as stored and its events as `room seq` pairs
/// separated by commas.
const INSERT_SQLITE: &str = concat!(
    "INSERT INTO id_counters (name, value) VALUES ('comments', 1)
         ON CONFLICT (name) DO UPDATE SET value = id_counters.value + 1;
     INSERT INTO comments (id, asset_id, author_id, guest_name, share_id, content, position_x, position_y,
         timestamp_ms, parent_id, resolved, created_at, updated_at)
     VALUES ((SELECT value FROM id_counters WHERE name = 'comments'), $1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $10);
     INSERT INTO room_seqs (room, seq) SELECT room, 1 FROM (",
    live_rooms_sqlite!(),
    ") WHERE true
         ON CONFLICT (room) DO UPDATE SET seq = room_seqs.seq + 1;
     INSERT INTO room_events (room, seq, type, at, data)
         SELECT s.room, s.seq, 'comment', $10,
             json_set($11, '$.comment.id', c.id, '$.comment.author.name', c.author_name)
         FROM room_seqs s, (SELECT ",
    comment_columns!(),
    " FROM comments c LEFT JOIN users u ON u.id = c.author_id
             WHERE c.id = (SELECT value FROM id_counters WHERE name = 'comments')) AS c
         WHERE s.room IN (",
    live_rooms_sqlite!(),
    ");
     SELECT ",
    comment_columns!(),
    ", (SELECT group_concat(s.room || ' ' || s.seq, ',') FROM room_seqs s WHERE s.room IN (",
    live_rooms_sqlite!(),
    ")) AS events
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
    let guest: Option<String> = r.try_get("guest_name")?;
    Ok(Comment {
        id: r.try_get("id")?,
        asset_id: r.try_get("asset_id")?,
        author_id: r.try_get("author_id")?,
        author_name: r.try_get("author_name")?,
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

/// The data of a room event about `comment` (`comment`, `comment_updated`).
fn comment_event(comment: &Comment) -> serde_json::Value {
    serde_json::json!({"comment": CommentOut::of(comment)})
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

/// Comments stored together (SQLite group commit): at most this many per transaction.
const COMMENT_BATCH: usize = 64;

/// One comment to store.
#[derive(Debug, Clone)]
struct Job {
    asset_id: i64,
    author: Author,
    comment: NewComment,
    now: i64,
}

type Stored = anyhow::Result<(Comment, Vec<RoomEvent>)>;

/// A comment waiting to be stored on SQLite, and where its result goes.
pub(crate) struct Pending {
    id: u64,
    job: Job,
    reply: tokio::sync::oneshot::Sender<Stored>,
}

/// SQLite: comments waiting for the write gate. Whoever holds the gate stores what is waiting,
/// its own comment and the others' (group commit without a writer task of its own).
#[derive(Default)]
pub(crate) struct CommentQueue {
    waiting: std::sync::Mutex<std::collections::VecDeque<Pending>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl CommentQueue {
    fn waiting(&self) -> std::sync::MutexGuard<'_, std::collections::VecDeque<Pending>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Takes a comment back out of the queue if its caller gives up before it was stored (a
/// request cancelled while it waited for the gate leaves nothing behind).
struct Withdraw<'a> {
    queue: &'a CommentQueue,
    id: u64,
}

impl Drop for Withdraw<'_> {
    fn drop(&mut self) {
        self.queue.waiting().retain(|p| p.id != self.id);
    }
}

impl Author {
    /// `(author_id, guest_name, share_id)`.
    fn columns(&self) -> (Option<i64>, Option<String>, Option<i64>) {
        match self {
            Author::User(u) => (Some(*u), None, None),
            Author::Guest { name, share_id } => (None, Some(name.clone()), Some(*share_id)),
        }
    }
}

/// `sql` with every `$n` placeholder renumbered `$(n + by)`, to put several copies of a
/// statement in one script with their own parameters.
fn shift_params(sql: &str, by: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 32);
    let mut rest = sql;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..=i]);
        rest = &rest[i + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if let Ok(n) = rest[..digits].parse::<usize>() {
            out.push_str(&(n + by).to_string());
            rest = &rest[digits..];
        }
    }
    out.push_str(rest);
    out
}

impl Store {
    /// Stores a new comment with a `comment` event in the room of every live session of its
    /// asset, in one transaction.
    pub async fn insert_comment(
        &self,
        asset_id: i64,
        author: &Author,
        c: &NewComment,
        now: i64,
    ) -> anyhow::Result<(Comment, Vec<RoomEvent>)> {
        self.insert_comment_of(asset_id, None, author, c, now).await
    }

    /// [`Store::insert_comment`], with `comment.created` for the webhooks of `owner_id` (the
    /// asset's owner) in the same transaction. On SQLite a comment that some webhook hears is
    /// stored in a transaction of its own instead of the group commit script.
    pub async fn insert_comment_of(
        &self,
        asset_id: i64,
        owner_id: Option<i64>,
        author: &Author,
        c: &NewComment,
        now: i64,
    ) -> anyhow::Result<(Comment, Vec<RoomEvent>)> {
        let job = Job { asset_id, author: author.clone(), comment: c.clone(), now };
        let heard = match owner_id {
            Some(o) => self.webhook_owners().await?.hears(o),
            None => false,
        };
        if self.dialect == super::Dialect::Postgres || heard {
            return self.insert_comment_tx(&job, owner_id.filter(|_| heard)).await;
        }
        let queue = &*self.comment_queue;
        let id = queue.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (reply, mut answer) = tokio::sync::oneshot::channel();
        queue.waiting().push_back(Pending { id, job, reply });
        let _withdraw = Withdraw { queue, id };
        let _writing = self.writing().await;
        // Store batches (in arrival order) until this comment is done: maybe by an earlier holder
        // of the gate, maybe in the first batch taken here.
        loop {
            match answer.try_recv() {
                Ok(stored) => return stored,
                Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                    anyhow::bail!("the comment was dropped before it was stored")
                }
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {}
            }
            let batch: Vec<Pending> = {
                let mut waiting = queue.waiting();
                let n = waiting.len().min(COMMENT_BATCH);
                waiting.drain(..n).collect()
            };
            if batch.is_empty() {
                // Not waiting and not answered: cannot happen, but never spin.
                anyhow::bail!("the comment was lost before it was stored");
            }
            self.store_batch(batch).await;
        }
    }

    /// Stores `batch` (the caller holds the write gate) and answers each comment. If the batch
    /// fails (say the disk is full for a moment), its comments are tried one by one, so that
    /// only a faulty one fails.
    async fn store_batch(&self, mut batch: Vec<Pending>) {
        let jobs: Vec<Job> = batch.iter().map(|p| p.job.clone()).collect();
        match self.insert_comments_sqlite(&jobs).await {
            Ok(stored) => {
                for (p, r) in batch.drain(..).zip(stored) {
                    let _ = p.reply.send(Ok(r));
                }
            }
            Err(e) if batch.len() == 1 => {
                if let Some(p) = batch.pop() {
                    let _ = p.reply.send(Err(e));
                }
            }
            Err(_) => {
                for p in batch.drain(..) {
                    let one = self.insert_comments_sqlite(std::slice::from_ref(&p.job)).await;
                    let _ = p
                        .reply
                        .send(one.and_then(|mut v| v.pop().ok_or_else(|| anyhow::anyhow!("comment not stored"))));
                }
            }
        }
    }

    /// SQLite: several comments and their room events in one transaction of one script
    /// (`INSERT_SQLITE` once per comment, each copy with its own parameters, between BEGIN and
    /// COMMIT): one round trip to the database thread. The caller holds the write gate.
    async fn insert_comments_sqlite(&self, jobs: &[Job]) -> anyhow::Result<Vec<(Comment, Vec<RoomEvent>)>> {
        const PARAMS: usize = 11;
        let mut script = String::from("BEGIN IMMEDIATE;\n");
        for i in 0..jobs.len() {
            script.push_str(&shift_params(INSERT_SQLITE, i * PARAMS));
            script.push_str(";\n");
        }
        script.push_str("COMMIT");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(script));
        for j in jobs {
            let (author_id, guest_name, share_id) = j.author.columns();
            let c = &j.comment;
            // The event's data before the comment has an id and its author a name (the script adds them).
            let unnamed = Comment {
                id: 0,
                asset_id: j.asset_id,
                author_id,
                author_name: String::new(),
                is_guest: guest_name.is_some(),
                content: c.content.clone(),
                position_x: c.position_x,
                position_y: c.position_y,
                timestamp_ms: c.timestamp_ms,
                parent_id: c.parent_id,
                resolved: false,
                created_at: j.now,
                updated_at: j.now,
            };
            q = q
                .bind(j.asset_id)
                .bind(author_id)
                .bind(guest_name)
                .bind(share_id)
                .bind(c.content.clone())
                .bind(Float(c.position_x))
                .bind(Float(c.position_y))
                .bind(c.timestamp_ms)
                .bind(c.parent_id)
                .bind(j.now)
                .bind(comment_event(&unnamed).to_string());
        }
        let rows = self.fetch_in_own_transaction(q).await?;
        if rows.len() != jobs.len() {
            anyhow::bail!("{} comments stored but {} read back", jobs.len(), rows.len());
        }
        let mut out = Vec::with_capacity(jobs.len());
        for (row, j) in rows.iter().zip(jobs) {
            let comment = comment_from_row(row)?;
            let seqs: Option<String> = row.try_get("events")?;
            let data = comment_event(&comment);
            let mut events = Vec::new();
            for pair in seqs.unwrap_or_default().split(',').filter(|p| !p.is_empty()) {
                let (room, seq) = pair
                    .rsplit_once(' ')
                    .and_then(|(room, seq)| Some((room, seq.parse::<i64>().ok()?)))
                    .ok_or_else(|| anyhow::anyhow!("unreadable room event {pair:?}"))?;
                events.push(RoomEvent {
                    room: room.into(),
                    seq,
                    kind: "comment".into(),
                    at: j.now,
                    data: data.clone(),
                });
            }
            out.push((comment, events));
        }
        Ok(out)
    }

    /// One comment in a transaction of its own (PostgreSQL always; SQLite when a webhook hears it).
    async fn insert_comment_tx(&self, j: &Job, owner_id: Option<i64>) -> anyhow::Result<(Comment, Vec<RoomEvent>)> {
        let (_writing, mut tx) = self.begin_write().await?;
        let (author_id, guest_name, share_id) = j.author.columns();
        let (asset_id, c, now) = (j.asset_id, &j.comment, j.now);
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
        .bind(Float(c.position_x))
        .bind(Float(c.position_y))
        .bind(c.timestamp_ms)
        .bind(c.parent_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let comment = fetch(&mut tx, id).await?.ok_or_else(|| anyhow::anyhow!("comment {id} vanished"))?;
        let events = announce(&mut tx, asset_id, "comment", comment_event(&comment), now).await?;
        let queued = match owner_id {
            Some(owner_id) => {
                let mut data = comment_event(&comment);
                data["asset_id"] = asset_id.into();
                let event = Event { owner_id, kind: EventType::CommentCreated, data };
                self.enqueue_webhooks(&mut tx, &event, now).await?
            }
            None => 0,
        };
        tx.commit().await?;
        if queued > 0 {
            self.outbox_filled();
        }
        Ok((comment, events))
    }

    pub async fn comment_by_id(&self, id: i64) -> anyhow::Result<Option<Comment>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE c.id = $1")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(comment_from_row).transpose()?)
    }

    /// One page of the asset's threads, newest thread first: the top-level comments of the page
    /// and every reply under them (at most `MAX_LISTED` rows), oldest first within the page; and
    /// the number of threads. `build_trees` then nests them, newest thread first.
    pub async fn comment_threads(&self, asset_id: i64, page: PageRequest) -> anyhow::Result<(Vec<Comment>, i64)> {
        let (count,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM comments WHERE asset_id = $1 AND parent_id IS NULL")
                .bind(asset_id)
                .fetch_one(&self.pool)
                .await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "WITH RECURSIVE roots(id) AS (
                 SELECT id FROM comments WHERE asset_id = $1 AND parent_id IS NULL ORDER BY id DESC LIMIT $2 OFFSET $3
             ), thread(id) AS (
                 SELECT id FROM roots
                 UNION ALL SELECT r.id FROM comments r JOIN thread t ON r.asset_id = $1 AND r.parent_id = t.id
             )
             {SELECT} WHERE c.id IN (SELECT id FROM thread) ORDER BY c.id LIMIT $4"
        )))
        .bind(asset_id)
        .bind(page.limit())
        .bind(page.offset())
        .bind(MAX_LISTED)
        .fetch_all(&self.pool)
        .await?;
        Ok((rows.iter().map(comment_from_row).collect::<Result<_, _>>()?, count))
    }

    /// One thread of the asset: the comment `root_id` (a top-level comment of `asset_id`) and
    /// every reply under it, oldest first (at most `MAX_LISTED`); empty when there is no such thread.
    pub async fn comment_thread(&self, asset_id: i64, root_id: i64) -> anyhow::Result<Vec<Comment>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "WITH RECURSIVE thread(id) AS (
                 SELECT id FROM comments WHERE id = $2 AND asset_id = $1 AND parent_id IS NULL
                 UNION ALL SELECT r.id FROM comments r JOIN thread t ON r.asset_id = $1 AND r.parent_id = t.id
             )
             {SELECT} WHERE c.id IN (SELECT id FROM thread) ORDER BY c.id LIMIT $3"
        )))
        .bind(asset_id)
        .bind(root_id)
        .bind(MAX_LISTED)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(comment_from_row).collect::<Result<_, _>>()?)
    }

    /// The asset's `n` most recent comments, oldest first.
    pub async fn latest_comments(&self, asset_id: i64, n: i64) -> anyhow::Result<Vec<Comment>> {
        let rows =
            sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE c.asset_id = $1 ORDER BY c.id DESC LIMIT $2")))
                .bind(asset_id)
                .bind(n.clamp(0, MAX_LISTED))
                .fetch_all(&self.pool)
                .await?;
        let mut list = rows.iter().map(comment_from_row).collect::<Result<Vec<_>, _>>()?;
        list.reverse();
        Ok(list)
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
        let events = announce(&mut tx, comment.asset_id, "comment_updated", comment_event(&comment), now).await?;
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

#[cfg(test)]
mod tests {
    use super::shift_params;

    #[test]
    fn placeholders_are_renumbered_and_the_rest_kept() {
        assert_eq!(shift_params("VALUES ($1, $10, '$', $2)", 10), "VALUES ($11, $20, '$', $12)");
        assert_eq!(shift_params("no parameters", 4), "no parameters");
        assert_eq!(shift_params("$1", 0), "$1");
    }
}
