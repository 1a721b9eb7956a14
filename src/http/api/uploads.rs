//! Resumable uploads, tus 1.0.0 (SPEC §12) at `/api/v3/uploads/`: core, creation,
//! creation-with-upload, termination and expiration. This edge reads the protocol's headers and
//! says who may see an upload (its creator: `Scope::User`); offsets and bytes are
//! `service::resumable`'s, and a complete upload becomes an asset through
//! `service::assets::receive_resumable` (the one upload pipeline). The same engine is meant to
//! serve a file request's `/upload/{uuid}/tus/` with its own scope and completion.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::domain::uploads::{
    OFFSET_OCTET_STREAM, TUS_EXTENSIONS, TUS_VERSION, Upload, UploadState, format_metadata, parse_length,
    parse_metadata,
};
use crate::domain::uploads::{Scope, asset_meta};
use crate::error::{AppError, AppResult, ErrorCode, ErrorResponse};
use crate::http::extract::{ApiPath, CurrentUser};
use crate::service::assets::receive_resumable;
use crate::service::resumable::{self, Creation, Progress};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(options, create)).routes(routes!(options_one, head, patch, delete))
}

pub const TUS_RESUMABLE: HeaderName = HeaderName::from_static("tus-resumable");
pub const TUS_VERSION_H: HeaderName = HeaderName::from_static("tus-version");
pub const TUS_EXTENSION: HeaderName = HeaderName::from_static("tus-extension");
pub const TUS_MAX_SIZE: HeaderName = HeaderName::from_static("tus-max-size");
pub const UPLOAD_LENGTH: HeaderName = HeaderName::from_static("upload-length");
pub const UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");
pub const UPLOAD_METADATA: HeaderName = HeaderName::from_static("upload-metadata");
pub const UPLOAD_EXPIRES: HeaderName = HeaderName::from_static("upload-expires");
pub const UPLOAD_DEFER_LENGTH: HeaderName = HeaderName::from_static("upload-defer-length");
pub const VITRINE_ASSET: HeaderName = HeaderName::from_static("vitrine-asset");

/// Headers a browser client sends (CORS `Access-Control-Allow-Headers`).
pub const REQUEST_HEADERS: [HeaderName; 5] =
    [TUS_RESUMABLE, UPLOAD_LENGTH, UPLOAD_OFFSET, UPLOAD_METADATA, UPLOAD_DEFER_LENGTH];
/// Headers a browser client reads (CORS `Access-Control-Expose-Headers`).
pub const RESPONSE_HEADERS: [HeaderName; 10] = [
    header::LOCATION,
    TUS_RESUMABLE,
    TUS_VERSION_H,
    TUS_EXTENSION,
    TUS_MAX_SIZE,
    UPLOAD_LENGTH,
    UPLOAD_OFFSET,
    UPLOAD_METADATA,
    UPLOAD_EXPIRES,
    VITRINE_ASSET,
];

/// Every answer carries `Tus-Resumable`; a 412 also `Tus-Version`.
pub(crate) fn answer(result: AppResult<Response>) -> Response {
    let mut resp = result.unwrap_or_else(IntoResponse::into_response);
    let h = resp.headers_mut();
    h.insert(TUS_RESUMABLE, HeaderValue::from_static(TUS_VERSION));
    if resp.status() == StatusCode::PRECONDITION_FAILED {
        resp.headers_mut().insert(TUS_VERSION_H, HeaderValue::from_static(TUS_VERSION));
    }
    resp
}

/// 412 unless the request speaks tus 1.0.0.
pub(crate) fn require_tus(headers: &HeaderMap) -> AppResult<()> {
    match headers.get(&TUS_RESUMABLE).and_then(|v| v.to_str().ok()).map(str::trim) {
        Some(TUS_VERSION) => Ok(()),
        _ => Err(AppError::Status {
            status: StatusCode::PRECONDITION_FAILED,
            code: ErrorCode::PreconditionFailed,
            message: format!("send Tus-Resumable: {TUS_VERSION} (the only tus version spoken here)"),
        }),
    }
}

pub(crate) fn number_header(headers: &HeaderMap, name: &HeaderName, label: &str) -> AppResult<Option<u64>> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(parse_length)
            .map(Some)
            .ok_or_else(|| AppError::validation(label, "must be a whole number of bytes")),
    }
}

pub(crate) fn is_offset_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(OFFSET_OCTET_STREAM))
}

pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(parse_length)
}

pub(crate) fn set(h: &mut HeaderMap, name: HeaderName, value: impl ToString) {
    if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
        h.insert(name, v);
    }
}

pub(crate) fn http_date(ms: i64) -> String {
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64))
}

fn location(id: &str) -> String {
    format!("/api/v3/uploads/{id}")
}

pub(crate) fn options_response(state: &AppState) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    h.insert(TUS_VERSION_H, HeaderValue::from_static(TUS_VERSION));
    h.insert(TUS_EXTENSION, HeaderValue::from_static(TUS_EXTENSIONS));
    set(h, TUS_MAX_SIZE, state.config.asset_max_bytes);
    resp
}

/// The server's tus capabilities (no authentication needed).
#[utoipa::path(options, path = "/api/v3/uploads", tag = "uploads",
    responses((status = 204, description = "Tus-Version, Tus-Extension and Tus-Max-Size")))]
pub async fn options(State(state): State<AppState>) -> Response {
    answer(Ok(options_response(&state)))
}

/// The server's tus capabilities, asked at an upload's URL (no authentication needed).
#[utoipa::path(options, path = "/api/v3/uploads/{id}", tag = "uploads",
    params(("id" = String, Path, description = "upload id (UUID)")),
    responses((status = 204, description = "Tus-Version, Tus-Extension and Tus-Max-Size")))]
pub async fn options_one(State(state): State<AppState>) -> Response {
    answer(Ok(options_response(&state)))
}

/// Creates an upload (tus `creation`); a body of `application/offset+octet-stream` carries its
/// first bytes (`creation-with-upload`).
#[utoipa::path(post, path = "/api/v3/uploads", tag = "uploads", security(("bearer" = [])),
    params(
        ("Tus-Resumable" = String, Header, description = "must be 1.0.0"),
        ("Upload-Length" = u64, Header, description = "the file's size in bytes (Upload-Defer-Length is not supported)"),
        ("Upload-Metadata" = Option<String>, Header, description = "tus metadata: filename, title, description, tags, content_type (values base64)"),
    ),
    request_body(content = Vec<u8>, content_type = "application/offset+octet-stream", description = "optional first bytes"),
    responses((status = 201, description = "created: Location, Upload-Expires (and Upload-Offset with a body; Vitrine-Asset if that body completed it)"),
        (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse), (status = 409, body = ErrorResponse),
        (status = 412, body = ErrorResponse), (status = 413, body = ErrorResponse), (status = 415, body = ErrorResponse),
        (status = 422, body = ErrorResponse), (status = 429, body = ErrorResponse)))]
pub async fn create(
    State(state): State<AppState>,
    user: Result<CurrentUser, AppError>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    answer(create_inner(state, user, headers, body).await)
}

async fn create_inner(
    state: AppState,
    user: Result<CurrentUser, AppError>,
    headers: HeaderMap,
    body: Body,
) -> AppResult<Response> {
    require_tus(&headers)?;
    let CurrentUser(user) = user?;
    let Some(length) = number_header(&headers, &UPLOAD_LENGTH, "Upload-Length")? else {
        if headers.contains_key(&UPLOAD_DEFER_LENGTH) {
            return Err(AppError::validation("Upload-Defer-Length", "is not supported: send Upload-Length"));
        }
        return Err(AppError::validation("Upload-Length", "is required"));
    };
    let metadata = match headers.get(&UPLOAD_METADATA) {
        None => Default::default(),
        Some(v) => v
            .to_str()
            .map_err(|_| "must be ASCII".to_string())
            .and_then(parse_metadata)
            .map_err(|why| AppError::validation("Upload-Metadata", why))?,
    };
    asset_meta(&metadata)?;
    let with_body = is_offset_stream(&headers);
    let declared = content_length(&headers);
    if !with_body && declared.is_some_and(|n| n > 0) {
        return Err(AppError::UnsupportedType(format!("send the first bytes as {OFFSET_OCTET_STREAM}")));
    }
    if with_body && declared.is_some_and(|n| n > length) {
        return Err(AppError::TooLarge { limit: length });
    }
    let up = resumable::create(
        &state,
        Creation {
            scope: Scope::User(user.id),
            owner_id: user.id,
            length,
            metadata,
            max_bytes: state.config.asset_max_bytes,
            max_open: state.config.upload_max_open_per_user,
        },
    )
    .await?;
    let mut resp = StatusCode::CREATED.into_response();
    set(resp.headers_mut(), header::LOCATION, location(&up.id));
    set(resp.headers_mut(), UPLOAD_EXPIRES, http_date(up.expires_at));
    if with_body {
        let progress = write(&state, &user, &up, 0, body).await?;
        progress_headers(resp.headers_mut(), &progress);
    }
    Ok(resp)
}

/// What a PATCH (or a POST with a body) reports.
struct Written {
    progress: Progress,
    asset: Option<String>,
}

fn progress_headers(h: &mut HeaderMap, w: &Written) {
    set(h, UPLOAD_OFFSET, w.progress.offset);
    match &w.asset {
        Some(a) => set(h, VITRINE_ASSET, a),
        None => set(h, UPLOAD_EXPIRES, http_date(w.progress.expires_at)),
    }
}

/// Appends the body, and completes the upload into an asset when its last byte arrived.
async fn write(
    state: &AppState,
    user: &crate::domain::users::User,
    up: &Upload,
    offset: u64,
    body: Body,
) -> AppResult<Written> {
    let progress = resumable::append(state, up, offset, body.into_data_stream()).await?;
    if !progress.complete {
        return Ok(Written { progress, asset: None });
    }
    // Completed before (a repeated final PATCH): tell what it became.
    let fresh = state.store.upload(&up.id).await?.ok_or(AppError::NotFound("upload"))?;
    if fresh.state == UploadState::Done {
        return Ok(Written { progress, asset: fresh.result });
    }
    let asset = receive_resumable(state, user, &fresh).await?;
    Ok(Written { progress, asset: Some(crate::service::assets::asset_location(asset.id)) })
}

/// Appends bytes at `Upload-Offset` (tus core). The PATCH that delivers the last byte runs every
/// upload check and answers `Vitrine-Asset`, or the refusal (the upload is then removed).
#[utoipa::path(patch, path = "/api/v3/uploads/{id}", tag = "uploads", security(("bearer" = [])),
    params(("id" = String, Path, description = "upload id (UUID)"),
        ("Tus-Resumable" = String, Header, description = "must be 1.0.0"),
        ("Upload-Offset" = u64, Header, description = "the upload's current offset")),
    request_body(content = Vec<u8>, content_type = "application/offset+octet-stream"),
    responses((status = 204, description = "appended: Upload-Offset, Upload-Expires (Vitrine-Asset once complete)"),
        (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse),
        (status = 409, body = ErrorResponse), (status = 412, body = ErrorResponse), (status = 413, body = ErrorResponse),
        (status = 415, body = ErrorResponse), (status = 422, body = ErrorResponse)))]
pub async fn patch(
    State(state): State<AppState>,
    user: Result<CurrentUser, AppError>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    answer(patch_inner(state, user, id, headers, body).await)
}

async fn patch_inner(
    state: AppState,
    user: Result<CurrentUser, AppError>,
    id: String,
    headers: HeaderMap,
    body: Body,
) -> AppResult<Response> {
    require_tus(&headers)?;
    let CurrentUser(user) = user?;
    if !is_offset_stream(&headers) {
        return Err(AppError::UnsupportedType(format!("send the bytes as {OFFSET_OCTET_STREAM}")));
    }
    let Some(offset) = number_header(&headers, &UPLOAD_OFFSET, "Upload-Offset")? else {
        return Err(AppError::validation("Upload-Offset", "is required"));
    };
    let up = resumable::find(&state, &Scope::User(user.id), &id).await?;
    if content_length(&headers).is_some_and(|n| offset.saturating_add(n) > up.length as u64) {
        return Err(AppError::TooLarge { limit: up.length as u64 });
    }
    let written = write(&state, &user, &up, offset, body).await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    progress_headers(resp.headers_mut(), &written);
    Ok(resp)
}

/// Where an upload stands (tus core): `Upload-Offset`, `Upload-Length`, `Upload-Metadata`,
/// `Upload-Expires`, and `Vitrine-Asset` once it became an asset.
#[utoipa::path(head, path = "/api/v3/uploads/{id}", tag = "uploads", security(("bearer" = [])),
    params(("id" = String, Path, description = "upload id (UUID)"),
        ("Tus-Resumable" = String, Header, description = "must be 1.0.0")),
    responses((status = 200, description = "Upload-Offset, Upload-Length; Cache-Control: no-store"),
        (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 412, body = ErrorResponse)))]
pub async fn head(
    State(state): State<AppState>,
    user: Result<CurrentUser, AppError>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> Response {
    let mut resp = answer(head_inner(state, user, id, headers).await);
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

async fn head_inner(
    state: AppState,
    user: Result<CurrentUser, AppError>,
    id: String,
    headers: HeaderMap,
) -> AppResult<Response> {
    require_tus(&headers)?;
    let CurrentUser(user) = user?;
    let up = resumable::find(&state, &Scope::User(user.id), &id).await?;
    Ok(where_it_stands(&up))
}

/// A HEAD's answer (both route families): offset, length, metadata, and `Upload-Expires` until it
/// is done, then `Vitrine-Asset` if its result may be shown.
pub(crate) fn where_it_stands(up: &Upload) -> Response {
    let mut resp = StatusCode::OK.into_response();
    let h = resp.headers_mut();
    set(h, UPLOAD_OFFSET, up.offset);
    set(h, UPLOAD_LENGTH, up.length);
    if !up.metadata.is_empty() {
        set(h, UPLOAD_METADATA, format_metadata(&up.metadata));
    }
    match (&up.state, &up.result) {
        (UploadState::Done, Some(asset)) => set(h, VITRINE_ASSET, asset),
        (UploadState::Done, None) => {}
        _ => set(h, UPLOAD_EXPIRES, http_date(up.expires_at)),
    }
    resp
}

/// Ends an upload and removes its bytes (tus `termination`).
#[utoipa::path(delete, path = "/api/v3/uploads/{id}", tag = "uploads", security(("bearer" = [])),
    params(("id" = String, Path, description = "upload id (UUID)"),
        ("Tus-Resumable" = String, Header, description = "must be 1.0.0")),
    responses((status = 204, description = "removed"), (status = 401, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 412, body = ErrorResponse)))]
pub async fn delete(
    State(state): State<AppState>,
    user: Result<CurrentUser, AppError>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> Response {
    answer(delete_inner(state, user, id, headers).await)
}

async fn delete_inner(
    state: AppState,
    user: Result<CurrentUser, AppError>,
    id: String,
    headers: HeaderMap,
) -> AppResult<Response> {
    require_tus(&headers)?;
    let CurrentUser(user) = user?;
    let up = resumable::find(&state, &Scope::User(user.id), &id).await?;
    resumable::discard(&state, &up).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
