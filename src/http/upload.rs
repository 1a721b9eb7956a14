//! Streaming multipart uploads, shared by every feature that accepts files: the `file` part goes
//! chunk by chunk to a temporary blob while it is hashed, counted (limit enforced as it arrives)
//! and its first bytes kept for sniffing; then the bytes decide what the file is.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::blob::Upload;
use crate::domain::assets::sanitize_file_name;
use crate::domain::filetype::{Verdict, classify};
use crate::error::{AppError, AppResult};

/// Bytes kept from the start of the file for quick checks.
const PREFIX_LEN: usize = 64 * 1024;
const MAX_TEXT_FIELD: usize = 64 * 1024;
const MAX_FIELDS: usize = 32;

/// A file that has been received into a temporary blob and not yet committed.
pub struct Received {
    /// Temporary key of the stored bytes.
    pub key: object_store::path::Path,
    pub name: String,
    pub declared_type: Option<String>,
    pub size: u64,
    pub sha256: String,
    pub prefix: Vec<u8>,
}

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

fn count(result: &'static str) {
    metrics::counter!("vitrine_uploads_total", "result" => result).increment(1);
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
        AppError::bad_request("malformed_multipart", format!("the multipart body could not be read: {e}"))
    };
    let mut parts = 0;
    while let Some(mut field) = multipart.next_field().await.map_err(malformed)? {
        parts += 1;
        if parts > MAX_FIELDS {
            return Err(AppError::bad_request("malformed_multipart", "too many form fields"));
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
                return Err(AppError::bad_request("malformed_multipart", format!("the upload was interrupted: {e}")));
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

/// Removes a received file that will not be committed.
pub async fn discard(state: &AppState, rec: &Received) {
    if let Err(e) = state.blobs.delete(rec.key.as_ref()).await {
        tracing::warn!(error = %e, key = %rec.key, "could not remove a refused upload; the sweeper will");
    }
}

/// Decides from the stored bytes what the file is: the MIME type if allowed, else 415/422.
pub async fn inspect(state: &AppState, rec: &Received, allowed: &[String]) -> AppResult<String> {
    if rec.size == 0 {
        count("empty");
        return Err(AppError::validation("file", "the file is empty"));
    }
    let reader = state.blobs.reader(&rec.key, rec.size);
    let prefix = rec.prefix.clone();
    let name = rec.name.clone();
    let allowed = allowed.to_vec();
    let verdict = tokio::task::spawn_blocking(move || classify(reader, &prefix, &name, &allowed))
        .await
        .map_err(AppError::internal)?;
    match verdict {
        Verdict::Allowed(mime) => Ok(mime),
        Verdict::Unsupported(mime) => {
            count("unsupported_type");
            Err(AppError::UnsupportedType(format!("files of type {mime} are not accepted")))
        }
        Verdict::Executable(kind) => {
            count("executable");
            Err(AppError::rejected("executable_refused", format!("executable content is refused ({kind})")))
        }
    }
}

/// What the bytes of an accepted file tell: image size and thumbnail, media duration.
#[derive(Default)]
pub struct Probed {
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub duration_seconds: Option<f64>,
    /// A small preview of an image (bytes, MIME type).
    pub thumbnail: Option<(Bytes, &'static str)>,
}

/// Which pixel limit an image upload is held to.
#[derive(Debug, Clone, Copy)]
pub enum PixelLimit {
    /// Assets: `image_max_pixels`.
    Asset,
    /// Chat uploads (anonymous visitors among them): `chat_image_max_pixels`.
    Chat,
}

/// Decodes what is needed of a received file of type `mime`: an image too large to decode or that
/// cannot be decoded is refused (422); other kinds never fail. Images are decoded through the
/// shared [`crate::media::Decoder`] (bounded concurrency and memory).
pub async fn probe(state: &AppState, rec: &Received, mime: &str, limit: PixelLimit) -> AppResult<Probed> {
    let mut out = Probed::default();
    match crate::domain::assets::MediaType::from_mime(mime) {
        crate::domain::assets::MediaType::Image => {
            let open = {
                let (key, size, st) = (rec.key.clone(), rec.size, state.clone());
                move || st.blobs.reader(&key, size)
            };
            let (max, setting) = match limit {
                PixelLimit::Asset => (state.config.image_max_pixels, "image_max_pixels"),
                PixelLimit::Chat => {
                    (state.config.chat_image_max_pixels.min(state.config.image_max_pixels), "chat_image_max_pixels")
                }
            };
            match state.decoder.probe(open, max).await {
                Ok(info) => {
                    out.width = Some(info.width as i64);
                    out.height = Some(info.height as i64);
                    out.thumbnail = info.thumbnail.map(|(b, m)| (Bytes::from(b), m));
                }
                Err(crate::media::ImageError::TooLarge { width, height }) => {
                    count("image_too_large");
                    let why = if width as u64 * height as u64 > max {
                        format!("more than the limit of {max} pixels ({setting})")
                    } else {
                        format!(
                            "more than one decode may use (image_decode_max_bytes = {})",
                            state.config.image_decode_max_bytes
                        )
                    };
                    return Err(AppError::rejected(
                        "image_too_large",
                        format!("the image is {width}x{height} pixels, {why}; it was not processed"),
                    ));
                }
                Err(crate::media::ImageError::Corrupt(why)) => {
                    count("corrupt_image");
                    return Err(AppError::rejected("corrupt_image", format!("the image cannot be decoded: {why}")));
                }
            }
        }
        crate::domain::assets::MediaType::Video | crate::domain::assets::MediaType::Audio => {
            let reader = state.blobs.reader(&rec.key, rec.size);
            let m = mime.to_string();
            out.duration_seconds =
                tokio::task::spawn_blocking(move || crate::media::probe_duration(reader, &m)).await.unwrap_or(None);
        }
        _ => {}
    }
    Ok(out)
}

pub fn accepted(size: u64) {
    count("accepted");
    metrics::histogram!("vitrine_upload_size_bytes").record(size as f64);
}
