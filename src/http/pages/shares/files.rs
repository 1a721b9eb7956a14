//! The file responses of a share link: the counted download, the inline preview and the
//! thumbnail.

use axum::extract::State;
use axum::http::Method;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::blob::Disposition;
use crate::domain::shares::ShareStatus;
use crate::error::{AppError, ErrorCode, ErrorResponse};
use crate::http::files::{FileInfo, safe_inline, serve};
use crate::http::share_access::{Access, Refusal, ShareRequest, count_download, resolve};

/// The link lets the file play inline: previews allowed and a type that is safe inline.
pub(super) fn previewable(a: &Access) -> bool {
    a.share.allow_preview && safe_inline(&a.asset.mime_type)
}

fn file_info(a: &Access, disposition: Disposition) -> FileInfo {
    FileInfo {
        key: a.asset.blob_key.clone(),
        mime: a.asset.mime_type.clone(),
        name: a.asset.name.clone(),
        etag: a.asset.sha256.clone(),
        last_modified_ms: a.asset.created_at,
        disposition,
    }
}

/// Downloads the file, counting one download (exactly `max_downloads` ever succeed). HEAD,
/// link-preview bots and prefetches never count; a Range request by a visitor whose download was
/// counted within the resume window continues without counting, even once the link is exhausted.
#[utoipa::path(get, path = "/share/{uuid}/download", tag = "share links",
    params(("uuid" = String, Path, description = "share uuid"), ("token" = Option<String>, Query, description = "link token")),
    responses((status = 200, description = "the file"), (status = 206, description = "a range"), (status = 401, body = ErrorResponse),
        (status = 403, description = "downloads not allowed, or a bot/prefetch", body = ErrorResponse), (status = 404, body = ErrorResponse),
        (status = 410, body = ErrorResponse), (status = 429, body = ErrorResponse)))]
pub async fn download(State(state): State<AppState>, req: ShareRequest, method: Method) -> Response {
    match download_inner(&state, &req, &method).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn download_inner(state: &AppState, req: &ShareRequest, method: &Method) -> Result<Response, AppError> {
    state.limits.share_access_per_ip.check(req.ip).await?;
    let access = resolve(state, req).await?;
    if !access.share.allow_download {
        return Err(AppError::Forbidden {
            code: ErrorCode::DownloadNotAllowed,
            message: "this link does not allow downloads".into(),
        });
    }
    let info = file_info(&access, Disposition::Attachment);
    count_download(state, req, &access, method, serve(state, &info, method, &req.headers)).await
}

/// Streams the file inline for the preview player (images, video, audio, PDF); never counts.
#[utoipa::path(get, path = "/share/{uuid}/preview", tag = "share links",
    params(("uuid" = String, Path, description = "share uuid"), ("token" = Option<String>, Query, description = "link token")),
    responses((status = 200, description = "the file, inline"), (status = 206, description = "a range"), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 410, body = ErrorResponse)))]
pub async fn preview(State(state): State<AppState>, req: ShareRequest, method: Method) -> Response {
    let result = async {
        let access = resolve(&state, &req).await?;
        if access.status == ShareStatus::Exhausted {
            return Err(Refusal::Gone(ShareStatus::Exhausted).into());
        }
        if !previewable(&access) {
            return Err(AppError::Forbidden {
                code: ErrorCode::PreviewNotAllowed,
                message: "this link has no preview for this file".into(),
            });
        }
        serve(&state, &file_info(&access, Disposition::Inline), &method, &req.headers).await
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The thumbnail of an image on an open link (for link previews); never counts.
#[utoipa::path(get, path = "/share/{uuid}/thumb", tag = "share links", params(("uuid" = String, Path, description = "share uuid")),
    responses((status = 200, description = "thumbnail image"), (status = 404, body = ErrorResponse)))]
pub async fn thumbnail(State(state): State<AppState>, req: ShareRequest, method: Method) -> Response {
    let result = async {
        let access = resolve(&state, &req).await?;
        let key = access
            .asset
            .thumb_key
            .clone()
            .filter(|_| access.share.allow_preview)
            .ok_or(AppError::NotFound("thumbnail"))?;
        let mime = if key.ends_with(".png") { "image/png" } else { "image/jpeg" };
        let info = FileInfo {
            key,
            mime: mime.into(),
            name: "thumbnail".into(),
            etag: format!("{}-thumb", access.asset.sha256),
            last_modified_ms: access.asset.created_at,
            disposition: Disposition::Inline,
        };
        serve(&state, &info, &method, &req.headers).await
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}
