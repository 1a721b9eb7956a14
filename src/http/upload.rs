//! Streaming multipart uploads, shared by every feature that accepts files: the `file` part goes
//! chunk by chunk to a temporary blob while it is hashed, counted (limit enforced as it arrives)
//! and its first bytes kept for sniffing. What the bytes are is then decided in
//! `service::uploads`.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::blob::Upload;
use crate::domain::assets::sanitize_file_name;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::service::uploads::{Received, count, discard};

/// Bytes kept from the start of the file for quick checks.
const PREFIX_LEN: usize = 64 * 1024;
const MAX_TEXT_FIELD: usize = 64 * 1024;
const MAX_FIELDS: usize = 32;

/// The multipart form: text fields and the one file.
pub struct Form {
    pub fields: HashMap<String, String>,
    pub file: Option<Received>,
}

impl Form {
    pub fn text(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

/// Reads a multipart body; the part named `file_field` is streamed to storage, never buffered.
pub async fn receive(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    file_field: &str,
    max_bytes: u64,
) -> AppResult<Form> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let boundary = multer::parse_boundary(ct)
        .map_err(|_| AppError::UnsupportedType("send the upload as multipart/form-data".into()))?;
    // A declared length over the limit is refused before a byte is stored.
    if let Some(len) =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
        && len > max_bytes + 1024 * 1024
    {
        count("too_large");
        return Err(AppError::TooLarge { limit: max_bytes });
    }
    let mut multipart = multer::Multipart::new(body.into_data_stream(), boundary);
    let mut form = Form { fields: HashMap::new(), file: None };
    let result = read_parts(state, &mut multipart, &mut form, file_field, max_bytes).await;
    if let Err(e) = result {
        if let Some(f) = form.file.take() {
            discard(state, &f).await;
        }
        return Err(e);
    }
    Ok(form)
}

async fn read_parts(
    state: &AppState,
    multipart: &mut multer::Multipart<'static>,
    form: &mut Form,
    file_field: &str,
    max_bytes: u64,
) -> AppResult<()> {
    let malformed = |e: multer::Error| {
        count("malformed");
        AppError::bad_request(ErrorCode::MalformedMultipart, format!("the multipart body could not be read: {e}"))
    };
    let mut parts = 0;
    while let Some(mut field) = multipart.next_field().await.map_err(malformed)? {
        parts += 1;
        if parts > MAX_FIELDS {
            return Err(AppError::bad_request(ErrorCode::MalformedMultipart, "too many form fields"));
        }
        let name = field.name().unwrap_or("").to_string();
        if name == file_field {
            if form.file.is_some() {
                return Err(AppError::validation(file_field, "send exactly one file"));
            }
            let file_name = sanitize_file_name(field.file_name().unwrap_or("file"));
            let declared = field.content_type().map(|m| m.essence_str().to_string());
            let mut upload = state.blobs.begin_upload(None).await?;
            match stream_file(&mut field, &mut upload, max_bytes).await {
                Ok((size, sha256, prefix)) => {
                    form.file = Some(Received {
                        key: upload.key.clone(),
                        name: file_name,
                        declared_type: declared,
                        size,
                        sha256,
                        prefix,
                    });
                }
                Err(e) => {
                    upload.abort().await;
                    if let Err(d) = state.blobs.delete(upload.key.as_ref()).await {
                        tracing::warn!(error = %d, "could not remove a partial upload; the sweeper will");
                    }
                    return Err(e);
                }
            }
        } else {
            let mut text = Vec::new();
            while let Some(chunk) = field.chunk().await.map_err(malformed)? {
                if text.len() + chunk.len() > MAX_TEXT_FIELD {
                    return Err(AppError::validation(&name, format!("must be at most {MAX_TEXT_FIELD} bytes")));
                }
                text.extend_from_slice(&chunk);
            }
            let text = String::from_utf8(text).map_err(|_| AppError::validation(&name, "must be UTF-8 text"))?;
            form.fields.insert(name, text);
        }
    }
    Ok(())
}

/// Streams one file part into `upload`: counts (limit enforced as bytes arrive), hashes, keeps
/// the first bytes. Returns (size, sha256 hex, prefix).
async fn stream_file(
    field: &mut multer::Field<'static>,
    upload: &mut Upload,
    max_bytes: u64,
) -> AppResult<(u64, String, Vec<u8>)> {
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut prefix = Vec::new();
    loop {
        let chunk: Option<Bytes> = match field.chunk().await {
            Ok(c) => c,
            Err(e) => {
                count("interrupted");
                return Err(AppError::bad_request(
                    ErrorCode::MalformedMultipart,
                    format!("the upload was interrupted: {e}"),
                ));
            }
        };
        let Some(chunk) = chunk else { break };
        size += chunk.len() as u64;
        if size > max_bytes {
            count("too_large");
            return Err(AppError::TooLarge { limit: max_bytes });
        }
        if prefix.len() < PREFIX_LEN {
            let take = (PREFIX_LEN - prefix.len()).min(chunk.len());
            prefix.extend_from_slice(&chunk[..take]);
        }
        hasher.update(&chunk);
        upload.write(chunk).await?;
    }
    upload.finish().await?;
    Ok((size, hex::encode(hasher.finalize()), prefix))
}
