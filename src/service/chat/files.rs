//! Chat files as both sides see them: signed links made when they are shown (the upload answer,
//! the list, a `file_shared` event).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::blob::{Disposition, Grant};
use crate::domain::chat::{ChatFile, ChatSession};
use crate::domain::time::rfc3339;
use crate::error::AppResult;

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
    /// A stored chat file with links signed now.
    pub fn of(state: &AppState, f: &ChatFile) -> FileOut {
        let ttl = Duration::from_secs(state.config.chat_url_ttl_secs);
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
        let url = state
            .blobs
            .signed_url_for(grant(&f.blob_key, &f.mime_type, &f.original_name, disposition, f.sha256.clone()), ttl);
        let thumbnail = f.thumb_key.as_deref().map(|k| {
            let mime = if k.ends_with(".png") { "image/png" } else { "image/jpeg" };
            state
                .blobs
                .signed_url_for(grant(k, mime, "thumbnail", Disposition::Inline, format!("{}-thumb", f.sha256)), ttl)
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

    /// The fields of a `file_shared` event.
    pub fn event(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FileList {
    pub files: Vec<FileOut>,
    pub count: usize,
}

pub async fn file_list(state: &AppState, session: &ChatSession) -> AppResult<FileList> {
    let files: Vec<FileOut> = state.store.chat_files(session.id).await?.iter().map(|f| FileOut::of(state, f)).collect();
    Ok(FileList { count: files.len(), files })
}
