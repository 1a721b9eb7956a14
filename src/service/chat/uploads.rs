//! Receiving a chat upload: the caller's reach, the declared size and type checked against the
//! bytes, the scan, the thumbnail, then the file is committed and `file_shared` published.

use super::access::{Caller, Reach};
use super::files::FileOut;
use crate::app::AppState;
use crate::domain::chat::{no_claim, same_mime};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::service::uploads::{self, PixelLimit, Received};
use crate::store::chat::NewChatFile;

/// Counts a refused chat upload by its reason (`vitrine_chat_uploads_total{result="refused"}`).
pub fn count_refusal(e: &AppError) {
    metrics::counter!("vitrine_chat_uploads_total", "result" => "refused", "reason" => reason_of(e)).increment(1);
}

/// The metric reason of a refusal.
fn reason_of(e: &AppError) -> &'static str {
    match e.code() {
        ErrorCode::NotAuthenticated => "unauthenticated",
        ErrorCode::Forbidden => "forbidden",
        ErrorCode::TooLarge => "too_large",
        ErrorCode::UnsupportedType => "unsupported_type",
        ErrorCode::ExecutableRefused => "executable",
        ErrorCode::Infected => "infected",
        ErrorCode::RateLimited => "rate_limited",
        ErrorCode::Unavailable => "scanner_unavailable",
        ErrorCode::SizeMismatch | ErrorCode::TypeMismatch => "declared_mismatch",
        _ => "invalid",
    }
}

/// The text fields of a chat upload (the seed's), each optional.
#[derive(Debug, Default)]
pub struct Declared<'a> {
    pub company_id: Option<&'a str>,
    pub session_id: Option<&'a str>,
    /// `user` or `agent`; must match the caller.
    pub uploader: Option<&'a str>,
    pub original_name: Option<&'a str>,
    pub mime_type: Option<&'a str>,
    pub size: Option<&'a str>,
}

/// Stores a received file in the session the caller reaches (`rec` is discarded on any refusal)
/// and publishes `file_shared` to both sides.
pub async fn receive(state: &AppState, caller: &Caller, form: &Declared<'_>, rec: Received) -> AppResult<FileOut> {
    match store_upload(state, caller, form, &rec).await {
        Ok(f) => Ok(f),
        Err(e) => {
            uploads::discard(state, &rec).await;
            Err(e)
        }
    }
}

async fn store_upload(state: &AppState, caller: &Caller, form: &Declared<'_>, rec: &Received) -> AppResult<FileOut> {
    let reach: Reach = caller.reach(state, form.company_id, form.session_id).await?;
    if let Some(u) = form.uploader.map(str::trim).filter(|u| !u.is_empty())
        && u != reach.side.as_str()
    {
        return Err(AppError::forbidden(format!("this token uploads as {}, not {u}", reach.side.as_str())));
    }
    let mime = uploads::inspect(state, rec, &state.config.chat_allowed_types).await?;
    if let Some(size) = form.size.map(str::trim).filter(|s| !s.is_empty()) {
        match size.parse::<u64>() {
            Ok(n) if n == rec.size => {}
            Ok(n) => {
                return Err(AppError::bad_request(
                    ErrorCode::SizeMismatch,
                    format!("the declared size ({n} bytes) is not the size of the file ({} bytes)", rec.size),
                ));
            }
            Err(_) => return Err(AppError::validation("size", "must be a whole number of bytes")),
        }
    }
    if let Some(declared) = form.mime_type.filter(|m| !no_claim(m))
        && !same_mime(declared, &mime)
    {
        return Err(AppError::bad_request(
            ErrorCode::TypeMismatch,
            format!("the file was declared as {} but is {mime}", declared.trim()),
        ));
    }
    scan(state, rec).await?;
    let probed = uploads::probe(state, rec, &mime, PixelLimit::Chat).await?;
    let name = match form.original_name.map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) => crate::domain::assets::sanitize_file_name(n),
        None => rec.name.clone(),
    };
    let s = &reach.session;
    let prefix = format!("chat/{}/{}", s.company_uuid, s.uuid);
    let mut file = NewChatFile {
        uploader: reach.side,
        user_id: reach.user_id,
        original_name: name,
        mime_type: mime,
        size: rec.size as i64,
        sha256: rec.sha256.clone(),
        blob_key: format!("{prefix}/{}", rec.sha256),
        thumb_key: None,
    };
    if let Some((bytes, tmime)) = probed.thumbnail {
        let ext = if tmime == "image/png" { "png" } else { "jpg" };
        let key = format!("{prefix}/thumbs/{}.{ext}", rec.sha256);
        state.blobs.put_bytes(&key, bytes, tmime).await?;
        file.thumb_key = Some(key);
    }
    state.blobs.commit(&rec.key, &file.blob_key).await?;
    let (stored, event) =
        state.store.insert_chat_file(s, &file, state.clock.now_ms(), |f| FileOut::of(state, f).event()).await?;
    state.rooms.publish(&event);
    metrics::counter!("vitrine_chat_uploads_total", "result" => "accepted", "reason" => "").increment(1);
    metrics::histogram!("vitrine_chat_upload_size_bytes").record(rec.size as f64);
    // The sweeper sets the exact figure from the database; between its runs uploads add to it.
    crate::app::tenant_metric(|| {
        metrics::gauge!("vitrine_chat_stored_bytes", "company_id" => s.company_uuid.clone()).increment(rec.size as f64)
    });
    tracing::info!(file_id = stored.id, session_id = %s.uuid, uploader = reach.side.as_str(), size = rec.size, "chat file stored");
    Ok(FileOut::of(state, &stored))
}

/// Scans a received file with clamd when one is configured.
async fn scan(state: &AppState, rec: &Received) -> AppResult<()> {
    let Some(scanner) = &state.scanner else { return Ok(()) };
    let body = state.blobs.open(rec.key.as_ref(), None).await.map_err(AppError::internal)?;
    match scanner.scan(body.stream).await {
        Ok(crate::scan::Verdict::Clean) => Ok(()),
        Ok(crate::scan::Verdict::Infected(name)) => {
            tracing::warn!(signature = %name, "an infected chat upload was refused");
            metrics::counter!("vitrine_scan_infected_total").increment(1);
            Err(AppError::rejected(
                ErrorCode::Infected,
                format!("the file contains a virus ({name}); it was not stored"),
            ))
        }
        Err(e) if state.config.clamd_fail_open => {
            tracing::warn!(error = %e, "clamd is unreachable; storing the upload unscanned (clamd_fail_open)");
            Ok(())
        }
        Err(e) => {
            tracing::error!(error = %e, "clamd is unreachable; refusing the upload");
            Err(AppError::Unavailable("the virus scanner is unavailable; try again later".into()))
        }
    }
}
