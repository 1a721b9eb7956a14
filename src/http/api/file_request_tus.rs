//! Resumable uploads to a file request (SPEC §11, §12), tus 1.0.0 at `/upload/{uuid}/tus/`:
//! anonymous like `POST /upload/{uuid}/files` and held to everything it enforces (the request's
//! status, its password, the per-IP rate limit, the uploader's fields, the request's limits).
//! Creation reserves one file and `Upload-Length` bytes of the request (exact `max_files` and
//! `max_total_bytes`); the reservation is refunded when the upload is terminated, refused at the
//! end or expires (`service::resumable::discard`). The last byte runs the one upload pipeline
//! under the request's rules and makes the owner's asset (`service::file_requests`). Uploads are
//! scoped to the request (`Scope::FileRequest`) under an unguessable id; nothing about the asset
//! is revealed.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::domain::file_requests::{FileRequest, Uploader};
use crate::domain::uploads::{OFFSET_OCTET_STREAM, Scope, Upload, UploadState, parse_metadata};
use crate::error::{AppError, AppResult, ErrorResponse};
use crate::http::api::uploads::{
    UPLOAD_DEFER_LENGTH, UPLOAD_EXPIRES, UPLOAD_LENGTH, UPLOAD_METADATA, UPLOAD_OFFSET, answer, content_length,
    http_date, is_offset_stream, number_header, options_response, require_tus, set, where_it_stands,
};
use crate::http::extract::{ApiPath, CsrfCookie};
use crate::http::pages::auth::check_csrf;
use crate::http::pages::file_requests::{UploadRequest, max_file_bytes, open_request};
use crate::service::file_requests as requests;
use crate::service::resumable::{self, Creation, Progress};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(options, create)).routes(routes!(options_one, head, patch, delete))
}

/// Unfinished uploads a request may have at once (each also holds a file slot).
const MAX_OPEN: u32 = 100;

fn location(uuid: &str, id: &str) -> String {
    format!("/upload/{uuid}/tus/{id}")
}

/// The request behind the URL, unlocked (401 otherwise), whatever its status.
async fn unlocked_request(state: &AppState, req: &UploadRequest) -> AppResult<FileRequest> {
    let r = requests::find(state, &req.uuid).await?;
    requests::require_unlocked(state, &r, req.token.as_deref())?;
    Ok(r)
}

/// A request authenticated by the page's cookie must carry the page's CSRF token as
/// `X-CSRF-Token` when it changes something (403 otherwise).
fn check_cookie_csrf(req: &UploadRequest, csrf: &CsrfCookie) -> AppResult<()> {
    if !req.cookie_auth {
        return Ok(());
    }
    check_csrf(csrf, req.headers.get("x-csrf-token").and_then(|v| v.to_str().ok()))
}

/// The server's tus capabilities for this request (no password needed).
#[utoipa::path(options, path = "/upload/{uuid}/tus", tag = "file requests",
    params(("uuid" = String, Path, description = "file request uuid")),
    responses((status = 204, description = "Tus-Version, Tus-Extension and Tus-Max-Size")))]
pub async fn options(State(state): State<AppState>) -> Response {
    answer(Ok(options_response(&state)))
}

/// The server's tus capabilities, asked at an upload's URL.
#[utoipa::path(options, path = "/upload/{uuid}/tus/{id}", tag = "file requests",
    params(("uuid" = String, Path, description = "file request uuid"), ("id" = String, Path, description = "upload id (UUID)")),
    responses((status = 204, description = "Tus-Version, Tus-Extension and Tus-Max-Size")))]
pub async fn options_one(State(state): State<AppState>) -> Response {
    answer(Ok(options_response(&state)))
}

/// Creates a resumable upload to a file request (tus `creation`; a body of
/// `application/offset+octet-stream` carries its first bytes). Reserves one file and
/// `Upload-Length` bytes of the request. Unlock a protected request first: its token as
/// `Authorization: Bearer` or `?token=`, or the page's cookie with `X-CSRF-Token`.
#[utoipa::path(post, path = "/upload/{uuid}/tus", tag = "file requests",
    params(("uuid" = String, Path, description = "file request uuid"),
        ("token" = Option<String>, Query, description = "token from unlock"),
        ("Tus-Resumable" = String, Header, description = "must be 1.0.0"),
        ("Upload-Length" = u64, Header, description = "the file's size in bytes"),
        ("Upload-Metadata" = Option<String>, Header, description = "tus metadata: filename, uploader_name, uploader_email, message (values base64)"),
        ("X-CSRF-Token" = Option<String>, Header, description = "the page's CSRF token, when unlocked by the page's cookie")),
    request_body(content = Vec<u8>, content_type = "application/offset+octet-stream", description = "optional first bytes"),
    responses((status = 201, description = "created: Location, Upload-Expires (and Upload-Offset with a body)"),
        (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, description = "CSRF check failed", body = ErrorResponse), (status = 404, body = ErrorResponse),
        (status = 409, body = ErrorResponse), (status = 410, description = "expired, full or closed", body = ErrorResponse),
        (status = 412, body = ErrorResponse), (status = 413, body = ErrorResponse), (status = 415, body = ErrorResponse),
        (status = 422, body = ErrorResponse), (status = 429, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn create(
    State(state): State<AppState>,
    req: Result<UploadRequest, AppError>,
    csrf: CsrfCookie,
    headers: HeaderMap,
    body: Body,
) -> Response {
    answer(create_inner(state, req, csrf, headers, body).await)
}

async fn create_inner(
    state: AppState,
    req: Result<UploadRequest, AppError>,
    csrf: CsrfCookie,
    headers: HeaderMap,
    body: Body,
) -> AppResult<Response> {
    require_tus(&headers)?;
    let req = req?;
    let r = open_request(&state, &req.uuid).await?;
    requests::require_unlocked(&state, &r, req.token.as_deref())?;
    check_cookie_csrf(&req, &csrf)?;
    let Some(length) = number_header(&headers, &UPLOAD_LENGTH, "Upload-Length")? else {
        if headers.contains_key(&UPLOAD_DEFER_LENGTH) {
            return Err(AppError::validation("Upload-Defer-Length", "is not supported: send Upload-Length"));
        }
        return Err(AppError::validation("Upload-Length", "is required"));
    };
    if length == 0 {
        return Err(AppError::validation("Upload-Length", "an empty file cannot be uploaded"));
    }
    let metadata = match headers.get(&UPLOAD_METADATA) {
        None => Default::default(),
        Some(v) => v
            .to_str()
            .map_err(|_| "must be ASCII".to_string())
            .and_then(parse_metadata)
            .map_err(|why| AppError::validation("Upload-Metadata", why))?,
    };
    Uploader::parse(
        metadata.get("uploader_name").map(String::as_str),
        metadata.get("uploader_email").map(String::as_str),
        metadata.get("message").map(String::as_str),
        r.require_uploader_name,
        r.require_uploader_email,
    )?;
    let with_body = is_offset_stream(&headers);
    let declared = content_length(&headers);
    if !with_body && declared.is_some_and(|n| n > 0) {
        return Err(AppError::UnsupportedType(format!("send the first bytes as {OFFSET_OCTET_STREAM}")));
    }
    if with_body && declared.is_some_and(|n| n > length) {
        return Err(AppError::TooLarge { limit: length });
    }
    requests::reserve_exact(&state, &r, req.ip, length).await?;
    let created = resumable::create(
        &state,
        Creation {
            scope: Scope::FileRequest(r.uuid.clone()),
            owner_id: r.owner_id,
            length,
            metadata,
            max_bytes: max_file_bytes(&state, &r),
            max_open: MAX_OPEN,
        },
    )
    .await;
    let up = match created {
        Ok(up) => up,
        Err(e) => {
            requests::Slot::held(&state, r.id, length).release().await;
            return Err(e);
        }
    };
    let mut resp = StatusCode::CREATED.into_response();
    set(resp.headers_mut(), header::LOCATION, location(&r.uuid, &up.id));
    set(resp.headers_mut(), UPLOAD_EXPIRES, http_date(up.expires_at));
    if with_body {
        let progress = write(&state, &r, &up, 0, body).await?;
        progress_headers(resp.headers_mut(), &progress);
    }
    Ok(resp)
}

fn progress_headers(h: &mut HeaderMap, p: &Progress) {
    set(h, UPLOAD_OFFSET, p.offset);
    if !p.complete {
        set(h, UPLOAD_EXPIRES, http_date(p.expires_at));
    }
}

/// Appends the body, and completes the upload into the owner's asset when its last byte arrived.
async fn write(state: &AppState, r: &FileRequest, up: &Upload, offset: u64, body: Body) -> AppResult<Progress> {
    let progress = resumable::append(state, up, offset, body.into_data_stream()).await?;
    if !progress.complete {
        return Ok(progress);
    }
    let fresh = state.store.upload(&up.id).await?.ok_or(AppError::NotFound("upload"))?;
    if fresh.state != UploadState::Done {
        requests::receive_resumable(state, r, &fresh).await?;
    }
    Ok(progress)
}

/// Appends bytes at `Upload-Offset` (tus core). The PATCH that delivers the last byte runs every
/// check of the request's uploads (types, content, size, scan) and answers 204 with
/// `Upload-Offset`, or the refusal (the upload is removed and its reservation refunded).
#[utoipa::path(patch, path = "/upload/{uuid}/tus/{id}", tag = "file requests",
    params(("uuid" = String, Path, description = "file request uuid"), ("id" = String, Path, description = "upload id (UUID)"),
        ("token" = Option<String>, Query, description = "token from unlock"),
        ("Tus-Resumable" = String, Header, description = "must be 1.0.0"),
        ("Upload-Offset" = u64, Header, description = "the upload's current offset"),
        ("X-CSRF-Token" = Option<String>, Header, description = "the page's CSRF token, when unlocked by the page's cookie")),
    request_body(content = Vec<u8>, content_type = "application/offset+octet-stream"),
    responses((status = 204, description = "appended: Upload-Offset (Upload-Expires until complete)"),
        (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, description = "CSRF check failed", body = ErrorResponse), (status = 404, body = ErrorResponse),
        (status = 409, body = ErrorResponse), (status = 410, description = "expired or closed", body = ErrorResponse),
        (status = 412, body = ErrorResponse), (status = 413, body = ErrorResponse), (status = 415, body = ErrorResponse),
        (status = 422, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn patch(
    State(state): State<AppState>,
    req: Result<UploadRequest, AppError>,
    csrf: CsrfCookie,
    ApiPath((_uuid, id)): ApiPath<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    answer(patch_inner(state, req, csrf, id, headers, body).await)
}

async fn patch_inner(
    state: AppState,
    req: Result<UploadRequest, AppError>,
    csrf: CsrfCookie,
    id: String,
    headers: HeaderMap,
    body: Body,
) -> AppResult<Response> {
    require_tus(&headers)?;
    let req = req?;
    let r = unlocked_request(&state, &req).await?;
    check_cookie_csrf(&req, &csrf)?;
    if !is_offset_stream(&headers) {
        return Err(AppError::UnsupportedType(format!("send the bytes as {OFFSET_OCTET_STREAM}")));
    }
    let Some(offset) = number_header(&headers, &UPLOAD_OFFSET, "Upload-Offset")? else {
        return Err(AppError::validation("Upload-Offset", "is required"));
    };
    let up = resumable::find(&state, &Scope::FileRequest(r.uuid.clone()), &id).await?;
    // Closed or expired while the upload ran: it takes no more files, this one neither.
    let now = state.clock.now_ms();
    if up.state == UploadState::Open && (r.closed_at.is_some() || r.expires_at.is_some_and(|e| e <= now)) {
        resumable::discard(&state, &up).await?;
        return Err(requests::gone(r.status(now)));
    }
    if content_length(&headers).is_some_and(|n| offset.saturating_add(n) > up.length as u64) {
        return Err(AppError::TooLarge { limit: up.length as u64 });
    }
    let progress = write(&state, &r, &up, offset, body).await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    progress_headers(resp.headers_mut(), &progress);
    Ok(resp)
}

/// Where an upload stands (tus core): `Upload-Offset`, `Upload-Length`, `Upload-Metadata`, and
/// `Upload-Expires` until it is complete.
#[utoipa::path(head, path = "/upload/{uuid}/tus/{id}", tag = "file requests",
    params(("uuid" = String, Path, description = "file request uuid"), ("id" = String, Path, description = "upload id (UUID)"),
        ("token" = Option<String>, Query, description = "token from unlock"),
        ("Tus-Resumable" = String, Header, description = "must be 1.0.0")),
    responses((status = 200, description = "Upload-Offset, Upload-Length; Cache-Control: no-store"),
        (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 412, body = ErrorResponse)))]
pub async fn head(
    State(state): State<AppState>,
    req: Result<UploadRequest, AppError>,
    ApiPath((_uuid, id)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut resp = answer(head_inner(state, req, id, headers).await);
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

async fn head_inner(
    state: AppState,
    req: Result<UploadRequest, AppError>,
    id: String,
    headers: HeaderMap,
) -> AppResult<Response> {
    require_tus(&headers)?;
    let req = req?;
    let r = unlocked_request(&state, &req).await?;
    let up = resumable::find(&state, &Scope::FileRequest(r.uuid.clone()), &id).await?;
    Ok(where_it_stands(&up))
}

/// Ends an upload, removes its bytes and gives its reservation back (tus `termination`).
#[utoipa::path(delete, path = "/upload/{uuid}/tus/{id}", tag = "file requests",
    params(("uuid" = String, Path, description = "file request uuid"), ("id" = String, Path, description = "upload id (UUID)"),
        ("token" = Option<String>, Query, description = "token from unlock"),
        ("Tus-Resumable" = String, Header, description = "must be 1.0.0"),
        ("X-CSRF-Token" = Option<String>, Header, description = "the page's CSRF token, when unlocked by the page's cookie")),
    responses((status = 204, description = "removed"), (status = 401, body = ErrorResponse),
        (status = 403, description = "CSRF check failed", body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 412, body = ErrorResponse)))]
pub async fn delete(
    State(state): State<AppState>,
    req: Result<UploadRequest, AppError>,
    csrf: CsrfCookie,
    ApiPath((_uuid, id)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> Response {
    answer(delete_inner(state, req, csrf, id, headers).await)
}

async fn delete_inner(
    state: AppState,
    req: Result<UploadRequest, AppError>,
    csrf: CsrfCookie,
    id: String,
    headers: HeaderMap,
) -> AppResult<Response> {
    require_tus(&headers)?;
    let req = req?;
    let r = unlocked_request(&state, &req).await?;
    check_cookie_csrf(&req, &csrf)?;
    let up = resumable::find(&state, &Scope::FileRequest(r.uuid.clone()), &id).await?;
    resumable::discard(&state, &up).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
