//! Chat files as both sides see them: signed links made when they are shown (the upload answer,
//! the list, a `file_shared` frame as it is sent). A `file_shared` event is stored without links
//! ([`stored_event`]); [`FileLinks`] signs them when the event is read back for a socket.

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::blob::{BlobStore, Disposition, Grant};
use crate::domain::chat::{ChatFile, ChatSession};
use crate::domain::time::rfc3339;
use crate::error::AppResult;
use crate::store::Store;
use crate::store::rooms::RoomEvent;

/// A chat file as the seed shows it (upload answer, list item, `file_shared`). `name` and
/// `original_name` are the same: the seed uses one in the upload answer, the other in the list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FileOut {
    pub id: i64,
    pub company_id: String,
    pub session_id: String,
    pub uploader: String,
    /// Signed link, valid for `chat_url_ttl_secs` (one hour).
    pub url: String,
    pub name: String,
    pub original_name: String,
    pub mime_type: String,
    pub size: i64,
    /// Signed link to a preview (images), or null.
    pub thumbnail: Option<String>,
    pub created_at: String,
}

impl FileOut {
    /// A stored chat file with links signed now, valid for `ttl`.
    pub fn of(blobs: &BlobStore, ttl: Duration, f: &ChatFile) -> FileOut {
        let grant = |key: &str, mime: &str, name: &str, d: Disposition, etag: String| Grant {
            key: key.to_string(),
            expires: 0,
            disposition: d,
            name: name.to_string(),
            mime: mime.to_string(),
            etag,
            owner: Some(crate::blob::Owner::ChatFile(f.id)),
        };
        // Images open in the browser; everything else downloads.
        let disposition = if f.mime_type.starts_with("image/") || f.mime_type == "application/pdf" {
            Disposition::Inline
        } else {
            Disposition::Attachment
        };
        let url = blobs
            .signed_url_for(grant(&f.blob_key, &f.mime_type, &f.original_name, disposition, f.sha256.clone()), ttl);
        let thumbnail = f.thumb_key.as_deref().map(|k| {
            let mime = if k.ends_with(".png") { "image/png" } else { "image/jpeg" };
            blobs.signed_url_for(grant(k, mime, "thumbnail", Disposition::Inline, format!("{}-thumb", f.sha256)), ttl)
        });
        FileOut {
            id: f.id,
            company_id: f.company_uuid.clone(),
            session_id: f.session_uuid.clone(),
            uploader: f.uploader.as_str().to_string(),
            url,
            name: f.original_name.clone(),
            original_name: f.original_name.clone(),
            mime_type: f.mime_type.clone(),
            size: f.size,
            thumbnail,
            created_at: rfc3339(f.created_at),
        }
    }

    /// The fields of a `file_shared` frame.
    pub fn event(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// How long chat file links are valid (`chat_url_ttl_secs`).
pub fn link_ttl(state: &AppState) -> Duration {
    Duration::from_secs(state.config.chat_url_ttl_secs)
}

/// The fields of a `file_shared` event as stored: the file's id and plain fields, no links (they
/// would expire) and no blob keys. [`FileLinks`] completes it as it is read back.
pub fn stored_event(f: &ChatFile) -> serde_json::Value {
    serde_json::json!({
        "id": f.id,
        "company_id": f.company_uuid,
        "session_id": f.session_uuid,
        "uploader": f.uploader.as_str(),
        "name": f.original_name,
        "original_name": f.original_name,
        "mime_type": f.mime_type,
        "size": f.size,
        "created_at": rfc3339(f.created_at),
    })
}

/// Signs the links of `file_shared` events read back from a room (replays, gaps): one read of the
/// files per batch of events, then each becomes the file as the upload answered it, with links
/// valid for `chat_url_ttl_secs` from now. A file whose row is gone keeps its stored fields, with
/// `url` and `thumbnail` null.
pub struct FileLinks {
    store: Store,
    blobs: BlobStore,
    ttl: Duration,
}

impl FileLinks {
    /// Signs with `blobs` for `ttl`, reading files from `store`.
    pub fn new(store: Store, blobs: BlobStore, ttl: Duration) -> FileLinks {
        FileLinks { store, blobs, ttl }
    }

    async fn sign(&self, events: &mut [RoomEvent]) {
        let shared = |e: &RoomEvent| e.kind == "file_shared";
        let Some(session) = events.iter().find(|e| shared(e)).and_then(|e| e.data["session_id"].as_str()) else {
            return;
        };
        let ids: Vec<i64> = events.iter().filter(|e| shared(e)).filter_map(|e| e.data["id"].as_i64()).collect();
        let files = match self.store.chat_files_by_ids(session, &ids).await {
            Ok(files) => files,
            Err(e) => {
                tracing::warn!(error = %e, "could not read chat files to sign their links");
                Vec::new()
            }
        };
        for e in events.iter_mut().filter(|e| shared(e)) {
            let id = e.data["id"].as_i64();
            match files.iter().find(|f| Some(f.id) == id) {
                Some(f) => e.data = FileOut::of(&self.blobs, self.ttl, f).event(),
                None => {
                    if let Some(fields) = e.data.as_object_mut() {
                        fields.insert("url".into(), serde_json::Value::Null);
                        fields.insert("thumbnail".into(), serde_json::Value::Null);
                    }
                }
            }
        }
    }
}

impl crate::realtime::Render for FileLinks {
    fn render<'a>(&'a self, events: &'a mut [RoomEvent]) -> BoxFuture<'a, ()> {
        self.sign(events).boxed()
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FileList {
    pub files: Vec<FileOut>,
    pub count: usize,
}

pub async fn file_list(state: &AppState, session: &ChatSession) -> AppResult<FileList> {
    let ttl = link_ttl(state);
    let files: Vec<FileOut> =
        state.store.chat_files(session.id).await?.iter().map(|f| FileOut::of(&state.blobs, ttl, f)).collect();
    Ok(FileList { count: files.len(), files })
}
