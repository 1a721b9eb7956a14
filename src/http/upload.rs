//! Streaming multipart uploads, shared by every feature that accepts files: the text fields are
//! read here, and the `file` part goes chunk by chunk into the upload pipeline
//! (`service::uploads::Intake`: stored, hashed, counted, scanned as it arrives). What the bytes
//! are is then decided by `service::uploads::check`.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{HeaderMap, header};

use crate::app::AppState;
use crate::domain::assets::sanitize_file_name;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::service::uploads::{Intake, Received, Rules, count};

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

/// Reads a multipart body; the part named `file_field` is streamed into the pipeline under
/// `rules`, never buffered.
pub async fn receive(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    file_field: &str,
    rules: &Rules<'_>,
) -> AppResult<Form> {
    let max_bytes = rules.max_bytes;
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
    let result = read_parts(state, &mut multipart, &mut form, file_field, rules).await;
    if let Err(e) = result {
        if let Some(f) = form.file.take() {
            f.discard(state).await;
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
    rules: &Rules<'_>,
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
            let mut intake = Intake::begin(state, rules).await?;
            match stream_file(&mut field, &mut intake).await {
                Ok(()) => form.file = Some(intake.finish(state, file_name).await?),
                Err(e) => {
                    intake.abort(state).await;
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

/// Streams one file part into the pipeline.
async fn stream_file(field: &mut multer::Field<'static>, intake: &mut Intake) -> AppResult<()> {
    loop {
        match field.chunk().await {
            Ok(Some(chunk)) => intake.write(chunk).await?,
            Ok(None) => return Ok(()),
            Err(e) => {
                count("interrupted");
                return Err(AppError::bad_request(
                    ErrorCode::MalformedMultipart,
                    format!("the upload was interrupted: {e}"),
                ));
            }
        }
    }
}
