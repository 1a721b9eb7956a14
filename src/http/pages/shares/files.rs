//! The file responses of a share link: the counted download, the inline preview and the
//! thumbnail; for a collection link, the same per file (`/files/{asset_id}/…`) and the ZIP.

use axum::body::Body;
use axum::extract::State;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::blob::{Disposition, content_disposition};
use crate::domain::analytics::Kind;
use crate::domain::assets::Asset;
use crate::domain::shares::{ShareStatus, Shared, preview_is_rendition, watermark_text};
use crate::error::{AppError, ErrorCode, ErrorResponse};
use crate::http::extract::ApiPath;
use crate::http::files::{FileInfo, safe_inline, serve};
use crate::http::share_access::{Access, Counted, Refusal, ShareRequest, capture_of, count_download, resolve};
use crate::media::ImageError;

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
    let resp = if needs_rendition(access, asset) {
        let src = Source {
            key: &asset.blob_key,
            mime: &asset.mime_type,
            size: asset.size,
            tag: &asset.sha256,
            name: &asset.name,
        };
        rendition(state, req, access, src, method).await?
    } else {
        serve(state, &file_info(asset, Disposition::Inline), method, &req.headers).await?
    };
    if *method == Method::GET && resp.status().is_success() && starts_playback(&req.headers) {
        capture_of(state, req, access, Kind::Preview, asset.id);
    }
    Ok(resp)
}

/// Whether a preview request is a player's first (no `Range`, or one from the first byte): the
/// ranges a player asks for while it seeks and buffers are not more previews.
fn starts_playback(headers: &axum::http::HeaderMap) -> bool {
    match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(r) => r.trim().strip_prefix("bytes=").is_some_and(|r| r.trim_start().starts_with("0-")),
    }
}

/// Images of a preview-only link are never sent as stored: the preview is a re-encoded rendition
/// (and carries the watermark when the link has one), so the original bytes stay unreachable.
pub(super) fn needs_rendition(access: &Access, asset: &Asset) -> bool {
    preview_is_rendition(&access.share, &asset.mime_type)
}

/// The largest stored image a rendition is made from (larger ones get no preview).
const RENDITION_SOURCE_MAX: i64 = 64 * 1024 * 1024;

/// The watermark text for this request, when the link has a watermark.
pub(super) fn watermark_for(state: &AppState, req: &ShareRequest, access: &Access) -> Option<String> {
    access
        .share
        .watermark
        .then(|| watermark_text(&access.share, req.viewer.as_ref().map(|u| u.email.as_str()), state.clock.now_ms()))
}

/// The stored image a rendition is made from.
pub struct Source<'a> {
    pub key: &'a str,
    pub mime: &'a str,
    pub size: i64,
    /// Names the stored bytes in the ETag.
    pub tag: &'a str,
    pub name: &'a str,
}

async fn rendition(
    state: &AppState,
    req: &ShareRequest,
    access: &Access,
    src: Source<'_>,
    method: &Method,
) -> Result<Response, AppError> {
    image_rendition(state, &req.headers, watermark_for(state, req, access), src, method).await
}

/// The re-encoded rendition of the stored image `src`, carrying `text` tiled when given (ETag and
/// `If-None-Match` included): what preview-only links show instead of the stored bytes. Used by
/// the share page's routes and by the live review of a link (`pages::collaboration`).
pub async fn image_rendition(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    text: Option<String>,
    src: Source<'_>,
    method: &Method,
) -> Result<Response, AppError> {
    let too_large = || AppError::Forbidden {
        code: ErrorCode::PreviewNotAllowed,
        message: "this image is too large for a preview on a preview-only link".into(),
    };
    if src.size > RENDITION_SOURCE_MAX {
        return Err(too_large());
    }
    // The ETag names the source and the text: a new day or another viewer is another picture.
    let etag = format!(
        "{}-p{}",
        src.tag,
        &hex::encode(crate::domain::digest::keyed_digest(b"preview", &[text.as_deref().unwrap_or("").as_bytes()]))
            [..16]
    );
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == format!("\"{etag}\"")));
    let mut b = Response::builder()
        .header(header::ETAG, format!("\"{etag}\""))
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::CONTENT_SECURITY_POLICY, "sandbox; frame-ancestors 'self'")
        .header("x-frame-options", "SAMEORIGIN")
        .header(header::CACHE_CONTROL, "private, max-age=0, must-revalidate");
    if fresh {
        return b.status(StatusCode::NOT_MODIFIED).body(Body::empty()).map_err(|e| AppError::Internal(e.into()));
    }
    let bytes = state.blobs.get_bytes(src.key).await?;
    let (mime, max_pixels) = (src.mime.to_string(), state.config.image_max_pixels);
    let (out, out_mime) = state
        .decoder
        .run(move |max_alloc| crate::watermark::rendition(&bytes, &mime, text.as_deref(), max_pixels, max_alloc))
        .await
        .map_err(|e| match e {
            ImageError::TooLarge { .. } => too_large(),
            ImageError::Corrupt(why) => AppError::Internal(anyhow::anyhow!("preview rendition failed: {why}")),
        })?;
    b = b
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, out_mime)
        .header(header::CONTENT_LENGTH, out.len())
        .header(header::CONTENT_DISPOSITION, content_disposition(Disposition::Inline, src.name));
    let body = if *method == Method::HEAD { Body::empty() } else { Body::from(out) };
    b.body(body).map_err(|e| AppError::Internal(e.into()))
}

/// The thumbnail of an image on an open link (for link previews); never counts.
#[utoipa::path(get, path = "/share/{uuid}/thumb", tag = "share links", params(("uuid" = String, Path, description = "share uuid")),
    responses((status = 200, description = "thumbnail image"), (status = 304, description = "not modified (watermarked rendition)"),
        (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, description = "unknown link, no thumbnail, or a collection link", body = ErrorResponse),
        (status = 410, description = "revoked, expired or used up", body = ErrorResponse)))]
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
    if access.share.watermark {
        let tag = format!("{}-thumb", asset.sha256);
        let src = Source { key: &key, mime, size: 0, tag: &tag, name: "thumbnail" };
        return rendition(state, req, access, src, method).await;
    }
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
