//! Durable room events (docs/realtime.md): each gets the room's next sequence number inside the
//! transaction that commits the change it describes. The `room_seqs` row is locked by the upsert
//! until commit (PostgreSQL) or the database is (SQLite), so events commit in seq order.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::Store;

/// One durable event of a room.
#[derive(Debug, Clone)]
pub struct RoomEvent {
    pub room: String,
    pub seq: i64,
    pub kind: String,
    pub at: i64,
    /// The event's fields (an object), without `type`, `seq` and `at`.
    pub data: serde_json::Value,
}

/// A sampled cursor position, kept for session recordings.
#[derive(Debug, Clone, PartialEq)]
pub struct CursorSample {
    pub room: String,
    pub at: i64,
    pub user_id: i64,
    pub x: f64,
    pub y: f64,
}

fn event_from_row(r: &AnyRow) -> Result<RoomEvent, sqlx::Error> {
    let data: String = r.try_get("data")?;
    Ok(RoomEvent {
        room: r.try_get("room")?,
        seq: r.try_get("seq")?,
        kind: r.try_get("type")?,
        at: r.try_get("at")?,
        data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
    })
}

/// A room event in one statement: `$1` room, `$2` type, `$3` at, `$4` data; returns its seq.
const APPEND_POSTGRES: &str = "WITH s AS (INSERT INTO room_seqs (room, seq) VALUES ($1, 1)
        ON CONFLICT (room) DO UPDATE SET seq = room_seqs.seq + 1 RETURNING seq)
    INSERT INTO room_events (room, seq, type, at, data) SELECT $1, seq, $2, $3, $4 FROM s RETURNING seq";
/// The same as one script (SQLite has no INSERT inside WITH); only its last statement returns a row.
const APPEND_SQLITE: &str =
    "INSERT INTO room_seqs (room, seq) VALUES ($1, 1) ON CONFLICT (room) DO UPDATE SET seq = room_seqs.seq + 1;
     INSERT INTO room_events (room, seq, type, at, data)
         SELECT $1, seq, $2, $3, $4 FROM room_seqs WHERE room = $1 RETURNING seq";

/// Appends one event to `room` inside `tx` and returns it with its sequence number.
pub(crate) async fn append(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    room: &str,
    kind: &str,
    data: serde_json::Value,
    at: i64,
) -> Result<RoomEvent, sqlx::Error> {
    // One round trip on both engines: the next seq and the event in one statement (PostgreSQL)
    // or one script (SQLite, which has no INSERT inside WITH).
    let sql = if tx.backend_name().eq_ignore_ascii_case("postgresql") { APPEND_POSTGRES } else { APPEND_SQLITE };
    // All rows of the script (fetch_one stops after its first statement).
    let rows: Vec<(i64,)> =
        sqlx::query_as(sql).bind(room).bind(kind).bind(at).bind(data.to_string()).fetch_all(&mut **tx).await?;
    let (seq,) = rows.last().copied().ok_or(sqlx::Error::RowNotFound)?;
    Ok(RoomEvent { room: room.to_string(), seq, kind: kind.to_string(), at, data })
}

impl Store {
    /// Appends one event in its own transaction.
    pub async fn append_event(
        &self,
        room: &str,
        kind: &str,
        data: serde_json::Value,
        at: i64,
    ) -> anyhow::Result<RoomEvent> {
        let (_writing, mut tx) = self.begin_write().await?;
        let e = append(&mut tx, room, kind, data, at).await?;
        tx.commit().await?;
        Ok(e)
    }

    /// The last sequence number of `room` (0 when it has none).
    pub async fn room_seq(&self, room: &str) -> anyhow::Result<i64> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT seq FROM room_seqs WHERE room = $1").bind(room).fetch_optional(&self.pool).await?;
        Ok(row.map(|r| r.0).unwrap_or(0))
    }

    /// Events of `room` with `after < seq <= upto`, in order, at most `limit`.
    pub async fn room_events(&self, room: &str, after: i64, upto: i64, limit: i64) -> anyhow::Result<Vec<RoomEvent>> {
        let rows = sqlx::query(
            "SELECT room, seq, type, at, data FROM room_events WHERE room = $1 AND seq > $2 AND seq <= $3
             ORDER BY seq LIMIT $4",
        )
        .bind(room)
        .bind(after)
        .bind(upto)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(event_from_row).collect::<Result<_, _>>()?)
    }

    /// Writes a batch of cursor samples in one statement.
    pub async fn insert_cursor_samples(&self, samples: &[CursorSample]) -> anyhow::Result<()> {
        if samples.is_empty() {
            return Ok(());
        }
        const COLUMNS: &str = "room, at, user_id, x, y";
        let rows = self.dialect.encode_rows(
            COLUMNS,
            samples.iter().map(|s| vec![s.room.as_str().into(), s.at.into(), s.user_id.into(), s.x.into(), s.y.into()]),
        );
        let select = self
            .dialect
            .json_rows(COLUMNS, "room TEXT, at BIGINT, user_id BIGINT, x DOUBLE PRECISION, y DOUBLE PRECISION");
        let _writing = self.writing().await;
        sqlx::query(sqlx::AssertSqlSafe(format!("INSERT INTO room_cursor_samples (room, at, user_id, x, y) {select}")))
            .bind(rows)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Every cursor sample of `room`, oldest first.
    pub async fn cursor_samples(&self, room: &str, limit: i64) -> anyhow::Result<Vec<CursorSample>> {
        let rows = sqlx::query(
            "SELECT room, at, user_id, x, y FROM room_cursor_samples WHERE room = $1 ORDER BY at, user_id LIMIT $2",
        )
        .bind(room)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CursorSample {
                    room: r.try_get("room")?,
                    at: r.try_get("at")?,
                    user_id: r.try_get("user_id")?,
                    x: r.try_get("x")?,
                    y: r.try_get("y")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }
}
