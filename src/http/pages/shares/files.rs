//! The file responses of a share link: the counted download, the inline preview and the
//! thumbnail; for a collection link, the same per file (`/files/{asset_id}/…`) and the ZIP.

use axum::extract::State;
use axum::http::Method;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::blob::Disposition;
use crate::domain::assets::Asset;
use crate::domain::shares::{ShareStatus, Shared};
use crate::error::{AppError, ErrorCode, ErrorResponse};
use crate::http::extract::ApiPath;
use crate::http::files::{FileInfo, safe_inline, serve};
use crate::http::share_access::{Access, Counted, Refusal, ShareRequest, count_download, resolve};

/// The link lets the file play inline: previews allowed and a type that is safe inline.
pub(super) fn previewable(a: &Access) -> bool {
    a.shared().asset().is_some_and(|asset| previewable_file(a, asset))
}

/// The link lets `asset` (its file, or one of its collection's) play inline.
pub(super) fn previewable_file(a: &Access, asset: &Asset) -> bool {
    a.share.allow_preview && safe_inline(&asset.mime_type)
}

fn file_info(asset: &Asset, disposition: Disposition) -> FileInfo {
    FileInfo {
        key: asset.blob_key.clone(),
        mime: asset.mime_type.clone(),
        name: asset.name.clone(),
        etag: asset.sha256.clone(),
        last_modified_ms: asset.created_at,
        disposition,
    }
}

fn downloads_allowed(access: &Access) -> Result<(), AppError> {
    if access.share.allow_download {
        Ok(())
    } else {
        Err(AppError::Forbidden {
            code: ErrorCode::DownloadNotAllowed,
            message: "this link does not allow downloads".into(),
        })
    }
}

/// Downloads the file, counting one download (exactly `max_downloads` ever succeed). HEAD,
/// link-preview bots and prefetches never count; a Range request by a visitor whose download was
/// counted within the resume window continues without counting, even once the link is exhausted.
/// On a collection link: every file as one ZIP, streamed while it is built (SPEC §10); it counts
/// one download, ignores `Range` (always 200 with the whole archive) and a Range request within
/// the resume window of a counted ZIP sends it again without counting.
#[utoipa::path(get, path = "/share/{uuid}/download", tag = "share links",
    params(("uuid" = String, Path, description = "share uuid"), ("token" = Option<String>, Query, description = "link token")),
    responses((status = 200, description = "the file; for a collection link, a ZIP of its files (application/zip)"), (status = 206, description = "a range (asset links only)"), (status = 401, body = ErrorResponse),
        (status = 403, description = "downloads not allowed, or a bot/prefetch", body = ErrorResponse), (status = 404, body = ErrorResponse),
        (status = 410, body = ErrorResponse), (status = 416, description = "range not satisfiable (asset links only)", body = ErrorResponse), (status = 429, body = ErrorResponse)))]
pub async fn download(State(state): State<AppState>, req: ShareRequest, method: Method) -> Response {
    match download_inner(&state, &req, &method).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn download_inner(state: &AppState, req: &ShareRequest, method: &Method) -> Result<Response, AppError> {
    state.limits.share_access_per_ip.check(req.ip).await?;
    let access = resolve(state, req).await?;
    downloads_allowed(&access)?;
    match access.shared() {
        Shared::Asset(asset) => {
            let info = file_info(asset, Disposition::Attachment);
            count_download(state, req, &access, method, Counted::Link, serve(state, &info, method, &req.headers)).await
        }
        Shared::Collection { collection, items } => {
            super::zip::download(state, req, &access, method, collection, items).await
        }
    }
}

/// Streams the file inline for the preview player (images, video, audio, PDF); never counts.
#[utoipa::path(get, path = "/share/{uuid}/preview", tag = "share links",
    params(("uuid" = String, Path, description = "share uuid"), ("token" = Option<String>, Query, description = "link token")),
    responses((status = 200, description = "the file, inline"), (status = 206, description = "a range"), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, description = "unknown link, or a collection link (its files have their own previews)", body = ErrorResponse), (status = 410, body = ErrorResponse)))]
pub async fn preview(State(state): State<AppState>, req: ShareRequest, method: Method) -> Response {
    let result = async {
        let access = resolve(&state, &req).await?;
        let asset = access.asset()?;
        preview_file(&state, &req, &access, asset, &method).await
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn preview_file(
    state: &AppState,
    req: &ShareRequest,
    access: &Access,
    asset: &Asset,
    method: &Method,
) -> Result<Response, AppError> {
    if access.status == ShareStatus::Exhausted {
        return Err(Refusal::Gone(ShareStatus::Exhausted).into());
    }
    if !previewable_file(access, asset) {
        return Err(AppError::Forbidden {
            code: ErrorCode::PreviewNotAllowed,
            message: "this link has no preview for this file".into(),
        });
    }
    serve(state, &file_info(asset, Disposition::Inline), method, &req.headers).await
}

/// The thumbnail of an image on an open link (for link previews); never counts.
#[utoipa::path(get, path = "/share/{uuid}/thumb", tag = "share links", params(("uuid" = String, Path, description = "share uuid")),
    responses((status = 200, description = "thumbnail image"), (status = 404, body = ErrorResponse)))]
pub async fn thumbnail(State(state): State<AppState>, req: ShareRequest, method: Method) -> Response {
    let result = async {
        let access = resolve(&state, &req).await?;
        let asset = access.asset()?;
        thumbnail_of(&state, &req, &access, asset, &method).await
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn thumbnail_of(
    state: &AppState,
    req: &ShareRequest,
    access: &Access,
    asset: &Asset,
    method: &Method,
) -> Result<Response, AppError> {
    let key = asset.thumb_key.clone().filter(|_| access.share.allow_preview).ok_or(AppError::NotFound("thumbnail"))?;
    let mime = if key.ends_with(".png") { "image/png" } else { "image/jpeg" };
    let info = FileInfo {
        key,
        mime: mime.into(),
        name: "thumbnail".into(),
        etag: format!("{}-thumb", asset.sha256),
        last_modified_ms: asset.created_at,
        disposition: Disposition::Inline,
    };
    serve(state, &info, method, &req.headers).await
}

/// The file `asset_id` of a collection link: 404 unless it is in the collection.
async fn collection_file(state: &AppState, req: &ShareRequest, asset_id: &str) -> Result<(Access, i64), AppError> {
    let access = resolve(state, req).await?;
    let id = asset_id.parse::<i64>().map_err(|_| AppError::NotFound("file"))?;
    access.item(id)?;
    Ok((access, id))
}

/// Downloads one file of a collection link (`Range` supported), counting one download of the
/// link (same rules as `/share/{uuid}/download`; the resume window is per file) and one for the
/// file in the link's `file_breakdown`.
#[utoipa::path(get, path = "/share/{uuid}/files/{asset_id}/download", tag = "share links",
    params(("uuid" = String, Path, description = "share uuid"), ("asset_id" = i64, Path, description = "a file of the collection"),
        ("token" = Option<String>, Query, description = "link token")),
    responses((status = 200, description = "the file"), (status = 206, description = "a range"), (status = 401, body = ErrorResponse),
        (status = 403, description = "downloads not allowed, or a bot/prefetch", body = ErrorResponse),
        (status = 404, description = "unknown link, not a collection link, or a file not in the collection", body = ErrorResponse),
        (status = 410, body = ErrorResponse), (status = 416, body = ErrorResponse), (status = 429, body = ErrorResponse)))]
pub async fn file_download(
    State(state): State<AppState>,
    req: ShareRequest,
    method: Method,
    ApiPath(path): ApiPath<(String, String)>,
) -> Response {
    let result = async {
        state.limits.share_access_per_ip.check(req.ip).await?;
        let (access, id) = collection_file(&state, &req, &path.1).await?;
        downloads_allowed(&access)?;
        let asset = access.item(id)?;
        let info = file_info(asset, Disposition::Attachment);
        count_download(&state, &req, &access, &method, Counted::File(id), serve(&state, &info, &method, &req.headers))
            .await
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Streams one file of a collection link inline (when the link allows previews and the type is
/// safe inline); never counts.
#[utoipa::path(get, path = "/share/{uuid}/files/{asset_id}/preview", tag = "share links",
    params(("uuid" = String, Path, description = "share uuid"), ("asset_id" = i64, Path, description = "a file of the collection"),
        ("token" = Option<String>, Query, description = "link token")),
    responses((status = 200, description = "the file, inline"), (status = 206, description = "a range"), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 410, body = ErrorResponse), (status = 416, body = ErrorResponse)))]
pub async fn file_preview(
    State(state): State<AppState>,
    req: ShareRequest,
    method: Method,
    ApiPath(path): ApiPath<(String, String)>,
) -> Response {
    let result = async {
        let (access, id) = collection_file(&state, &req, &path.1).await?;
        preview_file(&state, &req, &access, access.item(id)?, &method).await
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The thumbnail of one file of a collection link (when the link allows previews); never counts.
#[utoipa::path(get, path = "/share/{uuid}/files/{asset_id}/thumbnail", tag = "share links",
    params(("uuid" = String, Path, description = "share uuid"), ("asset_id" = i64, Path, description = "a file of the collection"),
        ("token" = Option<String>, Query, description = "link token")),
    responses((status = 200, description = "thumbnail image"), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 410, body = ErrorResponse)))]
pub async fn file_thumbnail(
    State(state): State<AppState>,
    req: ShareRequest,
    method: Method,
    ApiPath(path): ApiPath<(String, String)>,
) -> Response {
    let result = async {
        let (access, id) = collection_file(&state, &req, &path.1).await?;
        thumbnail_of(&state, &req, &access, access.item(id)?, &method).await
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}
