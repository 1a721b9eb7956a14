//! File requests API (SPEC §11): the owner creates, lists, reads, changes and closes requests
//! and gets their QR codes; an uploader unlocks a protected one. Another user's request is 404.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::domain::file_requests::{FileRequest, FileRequestIn, FileRequestStatus};
use crate::domain::pagination::{Page, PageQuery, PageRequest};
use crate::domain::time::rfc3339;
use crate::error::{AppError, AppResult, ErrorResponse};
use crate::http::api::shares::{UnlockRequest, UnlockResponse};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, ClientIp, CurrentUser};
use crate::http::pages::shares::embed::{QrQuery, qr_size};
use crate::service::audit::who;
use crate::service::file_requests::{self as requests, upload_url};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(list))
        .routes(routes!(get, patch, close))
        .routes(routes!(unlock))
        .routes(routes!(qr_png))
        .routes(routes!(qr_svg))
}

/// A request as its owner sees it (never the password).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FileRequestOut {
    pub id: i64,
    pub uuid: String,
    /// `{public_url}/upload/{uuid}/`: the page to send to uploaders.
    pub upload_url: String,
    /// PNG QR code of `upload_url` as a data URL (create and read only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr_code_data: Option<String>,
    pub qr_code_url: String,
    pub title: String,
    pub instructions: String,
    /// The collection that receives the files (null once that collection was deleted).
    pub collection_id: Option<i64>,
    pub status: FileRequestStatus,
    pub uploads_count: i64,
    pub bytes_received: i64,
    pub files_remaining: Option<i64>,
    pub bytes_remaining: Option<i64>,
    pub expires_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub closed_at: Option<String>,
    pub max_files: Option<i64>,
    pub max_file_bytes: Option<i64>,
    pub max_total_bytes: Option<i64>,
    /// Empty: every type the server accepts for assets.
    pub allowed_types: Vec<String>,
    pub is_password_protected: bool,
    pub require_uploader_name: bool,
    pub require_uploader_email: bool,
    pub notify_on_upload: bool,
}

impl FileRequestOut {
    pub fn new(state: &AppState, r: &FileRequest, with_qr: bool) -> AppResult<FileRequestOut> {
        let url = upload_url(state, &r.uuid);
        let qr_code_data = if with_qr { Some(crate::qr::data_url(&url).map_err(AppError::Internal)?) } else { None };
        Ok(FileRequestOut {
            id: r.id,
            uuid: r.uuid.clone(),
            qr_code_data,
            qr_code_url: format!("{}/api/v3/file-requests/{}/qr.png", state.config.base_url(), r.uuid),
            upload_url: url,
            title: r.title.clone(),
            instructions: r.instructions.clone(),
            collection_id: r.collection_id,
            status: r.status(state.clock.now_ms()),
            uploads_count: r.uploads_count,
            bytes_received: r.bytes_received,
            files_remaining: r.files_remaining(),
            bytes_remaining: r.bytes_remaining(),
            expires_at: r.expires_at.map(rfc3339),
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
            closed_at: r.closed_at.map(rfc3339),
            max_files: r.max_files,
            max_file_bytes: r.max_file_bytes,
            max_total_bytes: r.max_total_bytes,
            allowed_types: r.allowed_types.clone(),
            is_password_protected: r.is_protected(),
            require_uploader_name: r.require_uploader_name,
            require_uploader_email: r.require_uploader_email,
            notify_on_upload: r.notify_on_upload,
        })
    }
}

/// Creates a file request (without `collection_id`, a new collection named after the title
/// receives the files; a `collection_id` not of the caller's → 400 in `fields.collection_id`).
#[utoipa::path(post, path = "/api/v3/file-requests", tag = "file requests", security(("bearer" = [])),
    request_body = FileRequestIn,
    responses((status = 201, body = FileRequestOut), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 429, body = ErrorResponse)))]
pub async fn create(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ip: ClientIp,
    ApiJson(body): ApiJson<FileRequestIn>,
) -> AppResult<impl IntoResponse> {
    let r = requests::create(&state, &user, body, &who(&state, Some(user.id), Some(ip.0))).await?;
    Ok((StatusCode::CREATED, axum::Json(FileRequestOut::new(&state, &r, true)?)))
}

/// The caller's file requests, newest first, with their counts.
#[utoipa::path(get, path = "/api/v3/file-requests", tag = "file requests", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = Page<FileRequestOut>), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse)))]
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> AppResult<axum::Json<Page<FileRequestOut>>> {
    let page = PageRequest::try_from(&q)?;
    let (items, count) = state.store.list_file_requests(user.id, page).await?;
    let results = items.iter().map(|r| FileRequestOut::new(&state, r, false)).collect::<AppResult<Vec<_>>>()?;
    let base = format!("{}/api/v3/file-requests/", state.config.base_url());
    Ok(axum::Json(Page::new(results, count, page, &base, &[])))
}

/// One request with its counts and status.
#[utoipa::path(get, path = "/api/v3/file-requests/{uuid}", tag = "file requests", security(("bearer" = [])),
    params(("uuid" = String, Path, description = "file request uuid")),
    responses((status = 200, body = FileRequestOut), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn get(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(uuid): ApiPath<String>,
) -> AppResult<axum::Json<FileRequestOut>> {
    let r = requests::owned(&state, &user, &uuid).await?;
    Ok(axum::Json(FileRequestOut::new(&state, &r, true)?))
}

/// Changes a request's settings (the fields and rules of create; `null` clears expiry, limits or
/// the password).
#[utoipa::path(patch, path = "/api/v3/file-requests/{uuid}", tag = "file requests", security(("bearer" = [])),
    params(("uuid" = String, Path, description = "file request uuid")), request_body = FileRequestIn,
    responses((status = 200, body = FileRequestOut), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 410, description = "the request is closed", body = ErrorResponse)))]
pub async fn patch(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ip: ClientIp,
    ApiPath(uuid): ApiPath<String>,
    ApiJson(body): ApiJson<FileRequestIn>,
) -> AppResult<axum::Json<FileRequestOut>> {
    let r = requests::update(&state, &user, &uuid, body, &who(&state, Some(user.id), Some(ip.0))).await?;
    Ok(axum::Json(FileRequestOut::new(&state, &r, false)?))
}

/// Closes a request: it takes no more files (410 `request_closed`); received files stay.
#[utoipa::path(delete, path = "/api/v3/file-requests/{uuid}", tag = "file requests", security(("bearer" = [])),
    params(("uuid" = String, Path, description = "file request uuid")),
    responses((status = 204, description = "closed"), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse)))]
pub async fn close(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ip: ClientIp,
    ApiPath(uuid): ApiPath<String>,
) -> AppResult<Response> {
    requests::close(&state, &user, &uuid, &who(&state, Some(user.id), Some(ip.0))).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Exchanges a protected request's password for a token scoped to it (`Authorization: Bearer`
/// or `?token=` on `/upload/{uuid}/`), with the lockout of protected links.
#[utoipa::path(post, path = "/api/v3/file-requests/{uuid}/unlock", tag = "file requests", request_body = UnlockRequest,
    params(("uuid" = String, Path, description = "file request uuid")),
    responses((status = 200, body = UnlockResponse), (status = 400, body = ErrorResponse), (status = 403, description = "wrong password", body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 410, body = ErrorResponse), (status = 429, body = ErrorResponse)))]
pub async fn unlock(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiPath(uuid): ApiPath<String>,
    ApiJson(body): ApiJson<UnlockRequest>,
) -> AppResult<axum::Json<UnlockResponse>> {
    let password =
        body.password.filter(|p| !p.is_empty()).ok_or_else(|| AppError::validation("password", "is required"))?;
    let (access_token, expires_in) = requests::unlock(&state, ip, &uuid, &password).await?;
    Ok(axum::Json(UnlockResponse { access_token, expires_in }))
}

fn qr_response(body: Vec<u8>, mime: &'static str) -> Response {
    ([(header::CONTENT_TYPE, mime), (header::CACHE_CONTROL, "private, max-age=3600")], body).into_response()
}

/// QR code (PNG) of the request's `upload_url` (its owner).
#[utoipa::path(get, path = "/api/v3/file-requests/{uuid}/qr.png", tag = "file requests", security(("bearer" = [])),
    params(("uuid" = String, Path, description = "file request uuid"), QrQuery),
    responses((status = 200, description = "PNG", content_type = "image/png"), (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn qr_png(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(uuid): ApiPath<String>,
    ApiQuery(q): ApiQuery<QrQuery>,
) -> AppResult<Response> {
    let size = qr_size(&q)?;
    let r = requests::owned(&state, &user, &uuid).await?;
    let url = upload_url(&state, &r.uuid);
    let png = tokio::task::spawn_blocking(move || crate::qr::png(&url, size)).await.map_err(AppError::internal)??;
    Ok(qr_response(png, "image/png"))
}

/// QR code (SVG) of the request's `upload_url` (its owner).
#[utoipa::path(get, path = "/api/v3/file-requests/{uuid}/qr.svg", tag = "file requests", security(("bearer" = [])),
    params(("uuid" = String, Path, description = "file request uuid"), QrQuery),
    responses((status = 200, description = "SVG", content_type = "image/svg+xml"), (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn qr_svg(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(uuid): ApiPath<String>,
    ApiQuery(q): ApiQuery<QrQuery>,
) -> AppResult<Response> {
    let size = qr_size(&q)?;
    let r = requests::owned(&state, &user, &uuid).await?;
    Ok(qr_response(crate::qr::svg(&upload_url(&state, &r.uuid), size)?.into_bytes(), "image/svg+xml"))
}
