//! Chat tenants, sessions, files and messages (docs/chat.md). A file or message is committed with
//! its room event in one transaction, so what a client replays is exactly what was stored.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::rooms::{RoomEvent, append};
use super::{Store, next_id};
use crate::domain::chat::{ChatFile, ChatMessage, ChatSession, Company, Side};

const COMPANY_COLUMNS: &str = "id, uuid, name, widget_key, created_at";
const SESSION_SELECT: &str =
    "SELECT s.id, s.uuid, s.company_id, c.uuid AS company_uuid, s.created_at, s.last_activity_at, s.page_url
    FROM chat_sessions s JOIN companies c ON c.id = s.company_id";
const FILE_SELECT: &str = "SELECT f.id, c.uuid AS company_uuid, s.uuid AS session_uuid, f.uploader, f.original_name,
    f.mime_type, f.size, f.sha256, f.blob_key, f.thumb_key, f.created_at
    FROM chat_files f JOIN chat_sessions s ON s.id = f.session_id JOIN companies c ON c.id = f.company_id";
const MESSAGE_SELECT: &str =
    "SELECT m.id, c.uuid AS company_uuid, s.uuid AS session_uuid, m.sender, m.text, m.created_at
    FROM chat_messages m JOIN chat_sessions s ON s.id = m.session_id JOIN companies c ON c.id = s.company_id";

fn company_from_row(r: &AnyRow) -> Result<Company, sqlx::Error> {
    Ok(Company {
        id: r.try_get("id")?,
        uuid: r.try_get("uuid")?,
        name: r.try_get("name")?,
        widget_key: r.try_get("widget_key")?,
        created_at: r.try_get("created_at")?,
    })
}

fn session_from_row(r: &AnyRow) -> Result<ChatSession, sqlx::Error> {
    Ok(ChatSession {
        id: r.try_get("id")?,
        uuid: r.try_get("uuid")?,
        company_id: r.try_get("company_id")?,
        company_uuid: r.try_get("company_uuid")?,
        created_at: r.try_get("created_at")?,
        last_activity_at: r.try_get("last_activity_at")?,
        page_url: r.try_get("page_url")?,
    })
}

fn side(r: &AnyRow, col: &str) -> Result<Side, sqlx::Error> {
    let s: String = r.try_get(col)?;
    Side::parse(&s).ok_or_else(|| sqlx::Error::Decode(format!("unknown chat side {s:?}").into()))
}

fn file_from_row(r: &AnyRow) -> Result<ChatFile, sqlx::Error> {
    Ok(ChatFile {
        id: r.try_get("id")?,
        company_uuid: r.try_get("company_uuid")?,
        session_uuid: r.try_get("session_uuid")?,
        uploader: side(r, "uploader")?,
        original_name: r.try_get("original_name")?,
        mime_type: r.try_get("mime_type")?,
        size: r.try_get("size")?,
        sha256: r.try_get("sha256")?,
        blob_key: r.try_get("blob_key")?,
        thumb_key: r.try_get("thumb_key")?,
        created_at: r.try_get("created_at")?,
    })
}

fn message_from_row(r: &AnyRow) -> Result<ChatMessage, sqlx::Error> {
    Ok(ChatMessage {
        id: r.try_get("id")?,
        company_uuid: r.try_get("company_uuid")?,
        session_uuid: r.try_get("session_uuid")?,
        sender: side(r, "sender")?,
        text: r.try_get("text")?,
        created_at: r.try_get("created_at")?,
    })
}

/// A file to store (its blob is already committed).
#[derive(Debug, Clone)]
pub struct NewChatFile {
    pub uploader: Side,
    pub user_id: Option<i64>,
    pub original_name: String,
    pub mime_type: String,
    pub size: i64,
    pub sha256: String,
    pub blob_key: String,
    pub thumb_key: Option<String>,
}

/// A session as the agents' list shows it.
#[derive(Debug, Clone)]
pub struct SessionSummary {
    pub session: ChatSession,
    pub file_count: i64,
    pub message_count: i64,
    /// The visitor's messages and files the viewing agent has not seen (`mark_chat_read`).
    pub unread_count: i64,
}

impl Store {
    pub async fn insert_company(&self, uuid: &str, name: &str, widget_key: &str, now: i64) -> anyhow::Result<Company> {
        let (_writing, mut tx) = self.begin_write().await?;
        let id = next_id(&mut tx, "companies").await?;
        sqlx::query("INSERT INTO companies (id, uuid, name, widget_key, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(id)
            .bind(uuid)
            .bind(name)
            .bind(widget_key)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Company { id, uuid: uuid.into(), name: name.into(), widget_key: widget_key.into(), created_at: now })
    }

    pub async fn company_by_uuid(&self, uuid: &str) -> anyhow::Result<Option<Company>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COMPANY_COLUMNS} FROM companies WHERE uuid = $1")))
            .bind(uuid)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(company_from_row).transpose()?)
    }

    pub async fn company_by_widget_key(&self, key: &str) -> anyhow::Result<Option<Company>> {
        let row =
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COMPANY_COLUMNS} FROM companies WHERE widget_key = $1")))
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.as_ref().map(company_from_row).transpose()?)
    }

    /// Every company (`agent` None), or those `agent` works for; by name.
    pub async fn companies(&self, agent: Option<i64>) -> anyhow::Result<Vec<Company>> {
        let rows = match agent {
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COMPANY_COLUMNS} FROM companies ORDER BY name, id")))
                    .fetch_all(&self.pool)
                    .await?
            }
            Some(user_id) => {
                sqlx::query(
                    "SELECT c.id, c.uuid, c.name, c.widget_key, c.created_at FROM companies c
                     JOIN company_agents a ON a.company_id = c.id WHERE a.user_id = $1 ORDER BY c.name, c.id",
                )
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?
            }
        };
        Ok(rows.iter().map(company_from_row).collect::<Result<_, _>>()?)
    }

    /// Makes `user_id` an agent of the company; false when they already were.
    pub async fn add_agent(&self, company_id: i64, user_id: i64, now: i64) -> anyhow::Result<bool> {
        let r = self
            .write(
                sqlx::query(
                    "INSERT INTO company_agents (company_id, user_id, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (company_id, user_id) DO NOTHING",
                )
                .bind(company_id)
                .bind(user_id)
                .bind(now),
            )
            .await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn remove_agent(&self, company_id: i64, user_id: i64) -> anyhow::Result<bool> {
        let r = self
            .write(
                sqlx::query("DELETE FROM company_agents WHERE company_id = $1 AND user_id = $2")
                    .bind(company_id)
                    .bind(user_id),
            )
            .await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn is_agent(&self, company_id: i64, user_id: i64) -> anyhow::Result<bool> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT user_id FROM company_agents WHERE company_id = $1 AND user_id = $2")
                .bind(company_id)
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.is_some())
    }

    /// Whether `user_id` is an agent of any company (the page shell's "Agent" link).
    pub async fn is_agent_anywhere(&self, user_id: i64) -> anyhow::Result<bool> {
        let row: Option<(i64,)> = sqlx::query_as("SELECT user_id FROM company_agents WHERE user_id = $1 LIMIT 1")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    pub async fn insert_chat_session(
        &self,
        uuid: &str,
        company: &Company,
        page_url: Option<&str>,
        now: i64,
    ) -> anyhow::Result<ChatSession> {
        let (_writing, mut tx) = self.begin_write().await?;
        let id = next_id(&mut tx, "chat_sessions").await?;
        sqlx::query(
            "INSERT INTO chat_sessions (id, uuid, company_id, created_at, last_activity_at, page_url)
             VALUES ($1, $2, $3, $4, $4, $5)",
        )
        .bind(id)
        .bind(uuid)
        .bind(company.id)
        .bind(now)
        .bind(page_url.map(str::to_string))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ChatSession {
            id,
            uuid: uuid.into(),
            company_id: company.id,
            company_uuid: company.uuid.clone(),
            created_at: now,
            last_activity_at: now,
            page_url: page_url.map(str::to_string),
        })
    }

    pub async fn chat_session(&self, uuid: &str) -> anyhow::Result<Option<ChatSession>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SESSION_SELECT} WHERE s.uuid = $1")))
            .bind(uuid)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(session_from_row).transpose()?)
    }

    /// A page of a company's sessions, most recently active first, and their total; unread counts
    /// are those of the agent `viewer`.
    pub async fn chat_sessions_of(
        &self,
        company_id: i64,
        viewer: i64,
        limit: i64,
        offset: i64,
    ) -> anyhow::Result<(Vec<SessionSummary>, i64)> {
        let (total,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM chat_sessions WHERE company_id = $1")
            .bind(company_id)
            .fetch_one(&self.pool)
            .await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT s.id, s.uuid, s.company_id, c.uuid AS company_uuid, s.created_at, s.last_activity_at, s.page_url,
                (SELECT COUNT(*) FROM chat_files f WHERE f.session_id = s.id) AS file_count,
                (SELECT COUNT(*) FROM chat_messages m WHERE m.session_id = s.id) AS message_count,
                (SELECT COUNT(*) FROM chat_messages m WHERE m.session_id = s.id AND m.sender = 'user'
                    AND m.id > COALESCE(r.message_id, 0)) AS unread_messages,
                (SELECT COUNT(*) FROM chat_files f WHERE f.session_id = s.id AND f.uploader = 'user'
                    AND f.id > COALESCE(r.file_id, 0)) AS unread_files
             FROM chat_sessions s JOIN companies c ON c.id = s.company_id
             LEFT JOIN chat_reads r ON r.session_id = s.id AND r.user_id = $2
             WHERE s.company_id = $1 ORDER BY s.last_activity_at DESC, s.id DESC LIMIT {limit} OFFSET {offset}"
        )))
        .bind(company_id)
        .bind(viewer)
        .fetch_all(&self.pool)
        .await?;
        let list = rows
            .iter()
            .map(|r| {
                let unread_messages: i64 = r.try_get("unread_messages")?;
                let unread_files: i64 = r.try_get("unread_files")?;
                Ok(SessionSummary {
                    session: session_from_row(r)?,
                    file_count: r.try_get("file_count")?,
                    message_count: r.try_get("message_count")?,
                    unread_count: unread_messages + unread_files,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok((list, total))
    }

    /// Records that the agent `user_id` has seen everything of the session up to now: its unread
    /// count drops to zero until the visitor writes or sends a file again.
    pub async fn mark_chat_read(&self, session_id: i64, user_id: i64, now: i64) -> anyhow::Result<()> {
        self.write(
            sqlx::query(
                "INSERT INTO chat_reads (session_id, user_id, message_id, file_id, read_at)
                 VALUES ($1, $2,
                    COALESCE((SELECT MAX(m.id) FROM chat_messages m WHERE m.session_id = $1), 0),
                    COALESCE((SELECT MAX(f.id) FROM chat_files f WHERE f.session_id = $1), 0), $3)
                 ON CONFLICT (session_id, user_id) DO UPDATE SET message_id = excluded.message_id,
                    file_id = excluded.file_id, read_at = excluded.read_at",
            )
            .bind(session_id)
            .bind(user_id)
            .bind(now),
        )
        .await?;
        Ok(())
    }

    /// Stores a file and its `file_shared` event (built by `event` from the stored file).
    pub async fn insert_chat_file(
        &self,
        session: &ChatSession,
        f: &NewChatFile,
        now: i64,
        event: impl FnOnce(&ChatFile) -> serde_json::Value,
    ) -> anyhow::Result<(ChatFile, RoomEvent)> {
        let (_writing, mut tx) = self.begin_write().await?;
        let id = next_id(&mut tx, "chat_files").await?;
        sqlx::query(
            "INSERT INTO chat_files (id, company_id, session_id, uploader, user_id, original_name, mime_type, size,
                sha256, blob_key, thumb_key, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(id)
        .bind(session.company_id)
        .bind(session.id)
        .bind(f.uploader.as_str())
        .bind(f.user_id)
        .bind(&f.original_name)
        .bind(&f.mime_type)
        .bind(f.size)
        .bind(&f.sha256)
        .bind(&f.blob_key)
        .bind(f.thumb_key.clone())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        touch(&mut tx, session.id, now).await?;
        let file = ChatFile {
            id,
            company_uuid: session.company_uuid.clone(),
            session_uuid: session.uuid.clone(),
            uploader: f.uploader,
            original_name: f.original_name.clone(),
            mime_type: f.mime_type.clone(),
            size: f.size,
            sha256: f.sha256.clone(),
            blob_key: f.blob_key.clone(),
            thumb_key: f.thumb_key.clone(),
            created_at: now,
        };
        let e = append(&mut tx, &session.room(), "file_shared", event(&file), now).await?;
        // `chat.file_shared` for the webhooks of the company's agents (the company's chat is their content).
        let agents: Vec<(i64,)> = sqlx::query_as("SELECT user_id FROM company_agents WHERE company_id = $1")
            .bind(session.company_id)
            .fetch_all(&mut *tx)
            .await?;
        let agents: Vec<i64> = agents.into_iter().map(|(a,)| a).collect();
        let queued = if agents.is_empty() && !self.webhook_owners_in(&mut tx).await?.any_all {
            0
        } else {
            let hook = crate::domain::webhooks::Event {
                owner_id: agents.first().copied().unwrap_or(0),
                kind: crate::domain::webhooks::EventType::ChatFileShared,
                data: serde_json::json!({
                    "company_id": session.company_uuid,
                    "session_id": session.uuid,
                    "file": {
                        "id": file.id,
                        "name": file.original_name,
                        "mime_type": file.mime_type,
                        "size": file.size,
                        "sha256": file.sha256,
                        "uploader": file.uploader.as_str(),
                        "user_id": f.user_id,
                    },
                    "shared_at": crate::domain::time::rfc3339(now),
                }),
            };
            let owners = if agents.is_empty() { vec![0] } else { agents };
            self.enqueue_webhooks_to(&mut tx, &owners, &hook, now).await?
        };
        tx.commit().await?;
        if queued > 0 {
            self.outbox_filled();
        }
        Ok((file, e))
    }

    /// A session's files, oldest first.
    pub async fn chat_files(&self, session_id: i64) -> anyhow::Result<Vec<ChatFile>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{FILE_SELECT} WHERE f.session_id = $1 ORDER BY f.id")))
            .bind(session_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(file_from_row).collect::<Result<_, _>>()?)
    }

    /// Files of one session (its uuid) by id (to sign fresh links for events read back).
    pub async fn chat_files_by_ids(&self, session_uuid: &str, ids: &[i64]) -> anyhow::Result<Vec<ChatFile>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{FILE_SELECT} WHERE s.uuid = $1 AND f.id IN ({list})")))
            .bind(session_uuid)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(file_from_row).collect::<Result<_, _>>()?)
    }

    /// Stores a message and its `message` event (built by `event`).
    pub async fn insert_chat_message(
        &self,
        session: &ChatSession,
        sender: Side,
        user_id: Option<i64>,
        text: &str,
        now: i64,
        event: impl FnOnce(&ChatMessage) -> serde_json::Value,
    ) -> anyhow::Result<(ChatMessage, RoomEvent)> {
        let (_writing, mut tx) = self.begin_write().await?;
        let id = next_id(&mut tx, "chat_messages").await?;
        sqlx::query(
            "INSERT INTO chat_messages (id, session_id, sender, user_id, text, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(session.id)
        .bind(sender.as_str())
        .bind(user_id)
        .bind(text)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        touch(&mut tx, session.id, now).await?;
        let m = ChatMessage {
            id,
            company_uuid: session.company_uuid.clone(),
            session_uuid: session.uuid.clone(),
            sender,
            text: text.to_string(),
            created_at: now,
        };
        let e = append(&mut tx, &session.room(), "message", event(&m), now).await?;
        tx.commit().await?;
        Ok((m, e))
    }

    /// A session's messages, oldest first.
    pub async fn chat_messages(&self, session_id: i64) -> anyhow::Result<Vec<ChatMessage>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{MESSAGE_SELECT} WHERE m.session_id = $1 ORDER BY m.id")))
            .bind(session_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(message_from_row).collect::<Result<_, _>>()?)
    }

    /// Bytes of chat files per company (company uuid, bytes).
    pub async fn chat_stored_bytes(&self) -> anyhow::Result<Vec<(String, i64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT c.uuid, CAST(SUM(f.size) AS BIGINT) FROM chat_files f JOIN companies c ON c.id = f.company_id
             GROUP BY c.uuid",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }
}

async fn touch(tx: &mut sqlx::Transaction<'_, sqlx::Any>, session_id: i64, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE chat_sessions SET last_activity_at = $1 WHERE id = $2")
        .bind(now)
        .bind(session_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
