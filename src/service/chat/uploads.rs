//! Receiving a chat upload: the caller's reach, then the upload pipeline (the declared size and
//! type checked against the bytes, the scan made while the bytes arrived, the thumbnail), then the
//! file is committed and `file_shared` published.

use super::access::{Caller, Reach};
use super::files::{FileOut, link_ttl, stored_event};
use crate::app::AppState;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::service::uploads::{self, Checked, Claims, Received, Rules};
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

/// Checks a received file and stores it in the session the caller reaches (`rec` is removed on any
/// refusal), then publishes `file_shared` to both sides.
pub async fn receive(state: &AppState, caller: &Caller, form: &Declared<'_>, rec: Received) -> AppResult<FileOut> {
    let reach = match reach_of(state, caller, form).await {
        Ok(r) => r,
        Err(e) => {
            rec.discard(state).await;
            return Err(e);
        }
    };
    let claims = Claims { size: form.size, mime_type: form.mime_type };
    let file = uploads::check(state, rec, &Rules::chat(&state.config), &claims).await?;
    match store_upload(state, &reach, form, &file).await {
        Ok(f) => Ok(f),
        Err(e) => {
            file.discard(state).await;
            Err(e)
        }
    }
}

/// The session the caller reaches, uploading as the side it claims.
async fn reach_of(state: &AppState, caller: &Caller, form: &Declared<'_>) -> AppResult<Reach> {
    let reach: Reach = caller.reach(state, form.company_id, form.session_id).await?;
    if let Some(u) = form.uploader.map(str::trim).filter(|u| !u.is_empty())
        && u != reach.side.as_str()
    {
        return Err(AppError::forbidden(format!("this token uploads as {}, not {u}", reach.side.as_str())));
    }
    Ok(reach)
}

/// Moves the checked bytes under the session's prefix, then commits the row with its event.
async fn store_upload(state: &AppState, reach: &Reach, form: &Declared<'_>, file: &Checked) -> AppResult<FileOut> {
    let name = match form.original_name.map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) => crate::domain::assets::sanitize_file_name(n),
        None => file.name.clone(),
    };
    let s = &reach.session;
    let prefix = format!("chat/{}/{}", s.company_uuid, s.uuid);
    let blob_key = format!("{prefix}/{}", file.sha256);
    let thumb_key = file.store(state, &blob_key, |ext| format!("{prefix}/thumbs/{}.{ext}", file.sha256)).await?;
    let new = NewChatFile {
        uploader: reach.side,
        user_id: reach.user_id,
        original_name: name,
        mime_type: file.mime.clone(),
        size: file.size as i64,
        sha256: file.sha256.clone(),
        blob_key,
        thumb_key,
    };
    let (stored, mut event) = state.store.insert_chat_file(s, &new, state.clock.now_ms(), stored_event).await?;
    // The event is stored without links; the frame sent now carries the answer's, signed once.
    let out = FileOut::of(&state.blobs, link_ttl(state), &stored);
    event.data = out.event();
    state.rooms.publish(&event);
    metrics::counter!("vitrine_chat_uploads_total", "result" => "accepted", "reason" => "").increment(1);
    metrics::histogram!("vitrine_chat_upload_size_bytes").record(file.size as f64);
    // The sweeper sets the exact figure from the database; between its runs uploads add to it.
    crate::app::tenant_metric(|| {
        metrics::gauge!("vitrine_chat_stored_bytes", "company_id" => s.company_uuid.clone()).increment(file.size as f64)
    });
    tracing::info!(file_id = stored.id, session_id = %s.uuid, uploader = reach.side.as_str(), size = file.size, "chat file stored");
    Ok(out)
}
