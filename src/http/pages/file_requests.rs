//! The uploader's side of a file request (SPEC §11): `/upload/{uuid}/` (HTML with a drop zone and
//! a plain form that works without JavaScript, or JSON on `Accept: application/json`), the
//! upload itself, and the password form. Nothing here lists or serves files: an uploader learns
//! the name, size, type and time of what they sent, nothing else.

use std::net::IpAddr;

use askama::Template;
use axum::body::Body;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use cookie::{Cookie, SameSite};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::CsrfForm;
use super::auth::{check_csrf, csrf_token};
use crate::app::AppState;
use crate::domain::file_requests::{FileRequest, FileRequestIn, FileRequestStatus, Uploader};
use crate::domain::time::rfc3339;
use crate::error::{AppError, ErrorCode, ErrorResponse};
use crate::http::extract::{ApiForm, ApiPath, ClientIp, CsrfCookie, PageUser, cookie};
use crate::http::upload;
use crate::service::audit::who;
use crate::service::file_requests::{self as requests};

/// Cookie carrying an unlocked request's token; its Path is the request, so it never leaves it.
pub const UPLOAD_COOKIE: &str = "vitrine_upload";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(page))
        .routes(routes!(files))
        .routes(routes!(unlock))
        .routes(routes!(owner_list, owner_create))
        .routes(routes!(owner_detail, owner_change))
        .routes(routes!(owner_close))
}

/// What an uploader's request carries, before anything is decided.
pub struct UploadRequest {
    pub uuid: String,
    pub ip: IpAddr,
    pub headers: HeaderMap,
    /// A token from unlock: `?token=`, `Authorization: Bearer` or the request's cookie.
    pub token: Option<String>,
    /// The token came from the cookie: state-changing requests must pass the CSRF check.
    pub cookie_auth: bool,
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

impl FromRequestParts<AppState> for UploadRequest {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|_| AppError::NotFound("file request"))?;
        let uuid = params
            .iter()
            .find(|(k, _)| k == "uuid")
            .map(|(_, v)| v.clone())
            .ok_or(AppError::NotFound("file request"))?;
        let ClientIp(ip) = ClientIp::from_request_parts(parts, state).await?;
        let query = Query::<TokenQuery>::try_from_uri(&parts.uri).ok().and_then(|q| q.0.token);
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(s, _)| s.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim().to_string());
        let from_cookie = cookie(parts, UPLOAD_COOKIE);
        let (token, cookie_auth) = match (query.or(bearer), from_cookie) {
            (Some(t), _) => (Some(t), false),
            (None, Some(c)) => (Some(c), true),
            (None, None) => (None, false),
        };
        Ok(UploadRequest { uuid, ip, headers: parts.headers.clone(), token, cookie_auth })
    }
}

fn accepts(headers: &HeaderMap, what: &str) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("").contains(what)
}

/// The page answers JSON when asked for it and not for HTML.
fn wants_json(headers: &HeaderMap) -> bool {
    accepts(headers, "application/json") && !accepts(headers, "text/html")
}

#[derive(Template)]
#[template(path = "file_requests/upload.html")]
struct UploadPage {
    shell: super::Shell,
    title: String,
    instructions: String,
    action: String,
    /// Where the page's script creates resumable uploads (files over 8 MiB).
    tus_endpoint: String,
    /// The unlock token the page was opened with (sent as `Authorization: Bearer`), if any.
    token: String,
    max_file_bytes: u64,
    max_file_size: String,
    files_remaining: Option<i64>,
    bytes_remaining: Option<String>,
    allowed_types: String,
    accept: String,
    expires_at: Option<String>,
    require_name: bool,
    require_email: bool,
    js_multi: bool,
    csrf: String,
}

#[derive(Template)]
#[template(path = "file_requests/thanks.html")]
struct ThanksPage {
    shell: super::Shell,
    name: String,
    size: String,
    back: String,
}

#[derive(Template)]
#[template(path = "file_requests/refused.html")]
struct RefusedPage {
    shell: super::Shell,
    status: u16,
    title: String,
    message: String,
    back: Option<String>,
}

#[derive(Template)]
#[template(path = "file_requests/password.html")]
struct PasswordPage {
    shell: super::Shell,
    uuid: String,
    csrf: String,
    error: Option<String>,
}

/// An error as the uploader's browser sees it: a page that says what happened in plain words.
fn refused_page(shell: super::Shell, e: &AppError, back: Option<String>) -> Response {
    let status = e.status();
    let title = match status {
        StatusCode::NOT_FOUND => "File request not found",
        StatusCode::GONE => "This file request is closed",
        StatusCode::PAYLOAD_TOO_LARGE => "The file is too large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "This type of file is not accepted",
        StatusCode::UNPROCESSABLE_ENTITY => "The file was refused",
        StatusCode::TOO_MANY_REQUESTS => "Too many uploads",
        StatusCode::BAD_REQUEST => "Something is missing",
        _ => "The file was not received",
    };
    let message = match e {
        AppError::Validation { fields, .. } => {
            fields.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join("; ")
        }
        AppError::NotFound(_) => "There is no file request at this address. Check the link you were sent.".into(),
        other => other.public_message(),
    };
    let back = if status == StatusCode::GONE || status == StatusCode::NOT_FOUND { None } else { back };
    let mut r = super::render(&RefusedPage { shell, status: status.as_u16(), title: title.into(), message, back });
    *r.status_mut() = status;
    if let AppError::RateLimited { retry_after_secs } = e {
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
    }
    r
}

fn password_page(
    state: &AppState,
    shell: super::Shell,
    uuid: &str,
    csrf: &CsrfCookie,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let (token, set) = csrf_token(csrf, state.config.secure_cookies());
    let mut r = super::render(&PasswordPage { shell, uuid: uuid.to_string(), csrf: token, error });
    *r.status_mut() = status;
    if let Some(c) = set {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// What the uploader may know of a request.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadInfo {
    pub title: String,
    pub instructions: String,
    pub status: FileRequestStatus,
    /// The largest file accepted, in bytes.
    pub max_file_bytes: u64,
    /// The MIME types accepted.
    pub allowed_types: Vec<String>,
    pub files_remaining: Option<i64>,
    pub bytes_remaining: Option<i64>,
    pub requires: Requires,
    pub expires_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Requires {
    /// Unlock with the password first (`POST /api/v3/file-requests/{uuid}/unlock/`).
    pub password: bool,
    pub uploader_name: bool,
    pub uploader_email: bool,
}

pub(crate) fn max_file_bytes(state: &AppState, r: &FileRequest) -> u64 {
    r.max_file_bytes.map_or(state.config.asset_max_bytes, |m| (m.max(0) as u64).min(state.config.asset_max_bytes))
}

/// The request if it is open; else the refusal (404 unknown, 410 expired, full or closed).
pub(crate) async fn open_request(state: &AppState, uuid: &str) -> Result<FileRequest, AppError> {
    let r = requests::find(state, uuid).await?;
    match r.status(state.clock.now_ms()) {
        FileRequestStatus::Open => Ok(r),
        s => Err(requests::gone(s)),
    }
}

fn no_store(mut r: Response) -> Response {
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    r.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept, Cookie, Authorization"));
    r
}

/// The uploader's page (HTML; JSON with `Accept: application/json`).
#[utoipa::path(get, path = "/upload/{uuid}", tag = "file requests",
    params(("uuid" = String, Path, description = "file request uuid"), ("token" = Option<String>, Query, description = "token from unlock")),
    responses((status = 200, body = UploadInfo, description = "the request (HTML or JSON)"),
        (status = 401, description = "password form", content_type = "text/html"),
        (status = 404, body = ErrorResponse), (status = 410, description = "expired, full or closed", body = ErrorResponse)))]
pub async fn page(
    State(state): State<AppState>,
    req: UploadRequest,
    shell: super::Shell,
    csrf: CsrfCookie,
) -> Response {
    let json = wants_json(&req.headers);
    let r = match open_request(&state, &req.uuid).await {
        Ok(r) => r,
        Err(e) if json => return e.into_response(),
        Err(e) => return refused_page(shell, &e, None),
    };
    let allowed = requests::accepted_types(&state, &r);
    if json {
        return no_store(
            axum::Json(UploadInfo {
                title: r.title.clone(),
                instructions: r.instructions.clone(),
                status: r.status(state.clock.now_ms()),
                max_file_bytes: max_file_bytes(&state, &r),
                allowed_types: allowed,
                files_remaining: r.files_remaining(),
                bytes_remaining: r.bytes_remaining(),
                requires: Requires {
                    password: r.is_protected(),
                    uploader_name: r.require_uploader_name,
                    uploader_email: r.require_uploader_email,
                },
                expires_at: r.expires_at.map(rfc3339),
            })
            .into_response(),
        );
    }
    if !requests::unlocked(&state, &r, req.token.as_deref()) {
        return password_page(&state, shell, &r.uuid, &csrf, None, StatusCode::UNAUTHORIZED);
    }
    let (csrf_value, set_csrf) = csrf_token(&csrf, state.config.secure_cookies());
    let token_query = match (&req.token, req.cookie_auth) {
        (Some(t), false) if r.is_protected() => format!("?token={t}"),
        _ => String::new(),
    };
    let max = max_file_bytes(&state, &r);
    let mut resp = super::render(&UploadPage {
        shell,
        title: r.title.clone(),
        instructions: r.instructions.clone(),
        action: format!("/upload/{}/files{token_query}", r.uuid),
        tus_endpoint: format!("/upload/{}/tus/", r.uuid),
        token: if token_query.is_empty() { String::new() } else { req.token.clone().unwrap_or_default() },
        max_file_bytes: max,
        max_file_size: super::human_size(max as i64),
        files_remaining: r.files_remaining(),
        bytes_remaining: r.bytes_remaining().map(super::human_size),
        allowed_types: r.allowed_types.join(", "),
        accept: r.allowed_types.join(","),
        expires_at: r.expires_at.map(rfc3339),
        require_name: r.require_uploader_name,
        require_email: r.require_uploader_email,
        js_multi: r.files_remaining().is_none_or(|n| n > 1),
        csrf: csrf_value,
    });
    if let Some(c) = set_csrf {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    no_store(resp)
}

/// What an uploader learns of an accepted file, and nothing else.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReceivedFile {
    pub name: String,
    pub size: i64,
    pub mime_type: String,
    pub received_at: String,
}

/// The multipart fields of an upload, for the documentation.
#[derive(ToSchema)]
#[allow(dead_code, reason = "documents the multipart form read by upload::receive")]
pub struct RequestUploadForm {
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// Required when the request says so.
    uploader_name: Option<String>,
    /// Required when the request says so.
    uploader_email: Option<String>,
    message: Option<String>,
    /// The page's CSRF token, when unlocked by the cookie (or `X-CSRF-Token`).
    csrf_token: Option<String>,
}

/// Sends one file to a request. A slot (one file, and at most the bytes left) is reserved before
/// the body is read, so `max_files` and `max_total_bytes` hold exactly; the file goes through
/// every check of SPEC §2 under the request's own limits. A browser form post gets a page.
#[utoipa::path(post, path = "/upload/{uuid}/files", tag = "file requests",
    params(("uuid" = String, Path, description = "file request uuid"), ("token" = Option<String>, Query, description = "token from unlock")),
    request_body(content = RequestUploadForm, content_type = "multipart/form-data"),
    responses((status = 201, body = ReceivedFile), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, description = "CSRF check failed", body = ErrorResponse), (status = 404, body = ErrorResponse),
        (status = 410, description = "expired, full or closed", body = ErrorResponse), (status = 413, body = ErrorResponse),
        (status = 415, body = ErrorResponse), (status = 422, body = ErrorResponse), (status = 429, body = ErrorResponse),
        (status = 503, body = ErrorResponse)))]
pub async fn files(
    State(state): State<AppState>,
    req: UploadRequest,
    shell: super::Shell,
    csrf: CsrfCookie,
    body: Body,
) -> Response {
    let html = accepts(&req.headers, "text/html");
    let back = format!("/upload/{}/", req.uuid);
    match receive(&state, &req, &csrf, body).await {
        Ok(receipt) if html => {
            let mut r =
                super::render(&ThanksPage { shell, name: receipt.name, size: super::human_size(receipt.size), back });
            *r.status_mut() = StatusCode::CREATED;
            no_store(r)
        }
        Ok(receipt) => no_store(
            (
                StatusCode::CREATED,
                axum::Json(ReceivedFile {
                    name: receipt.name,
                    size: receipt.size,
                    mime_type: receipt.mime_type,
                    received_at: rfc3339(receipt.received_at),
                }),
            )
                .into_response(),
        ),
        Err(e) if html => refused_page(shell, &e, Some(back)),
        Err(e) => e.into_response(),
    }
}

async fn receive(
    state: &AppState,
    req: &UploadRequest,
    csrf: &CsrfCookie,
    body: Body,
) -> Result<requests::Receipt, AppError> {
    let r = open_request(state, &req.uuid).await?;
    requests::require_unlocked(state, &r, req.token.as_deref())?;
    let declared = req
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let mut slot = requests::reserve(state, &r, req.ip, declared).await?;
    let result = receive_into(state, req, csrf, body, &r, &mut slot).await;
    if result.is_err() {
        slot.release().await;
    }
    result
}

async fn receive_into(
    state: &AppState,
    req: &UploadRequest,
    csrf: &CsrfCookie,
    body: Body,
    r: &FileRequest,
    slot: &mut requests::Slot,
) -> Result<requests::Receipt, AppError> {
    let allowed = requests::accepted_types(state, r);
    let mut form = upload::receive(state, &req.headers, body, "file", &requests::rules(slot, &allowed)).await?;
    let Some(rec) = form.file.take() else {
        return Err(AppError::validation("file", "is required"));
    };
    if req.cookie_auth {
        let header_token = req.headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
        if let Err(e) = check_csrf(csrf, form.text("csrf_token").or(header_token)) {
            rec.discard(state).await;
            return Err(e);
        }
    }
    let uploader = Uploader::parse(
        form.text("uploader_name"),
        form.text("uploader_email"),
        form.text("message"),
        r.require_uploader_name,
        r.require_uploader_email,
    );
    requests::accept(state, r, slot, rec, uploader, None).await
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UnlockForm {
    pub password: Option<String>,
    pub csrf_token: Option<String>,
}

/// The password form: a right password sets a cookie scoped to this request; a wrong one shows
/// the form again; after repeated failures the IP is locked out (429), as for links.
#[utoipa::path(post, path = "/upload/{uuid}/unlock", tag = "file requests", request_body(content = UnlockForm, content_type = "application/x-www-form-urlencoded"),
    params(("uuid" = String, Path, description = "file request uuid")),
    responses((status = 303, description = "unlocked: back to the page"), (status = 400, description = "no password is needed", content_type = "text/html"),
        (status = 401, description = "wrong password: the form again", content_type = "text/html"),
        (status = 403, description = "CSRF check failed: the form again", content_type = "text/html"), (status = 404, description = "unknown", content_type = "text/html"),
        (status = 410, description = "expired, full or closed", content_type = "text/html"), (status = 429, description = "locked out", content_type = "text/html")))]
pub async fn unlock(
    State(state): State<AppState>,
    req: UploadRequest,
    shell: super::Shell,
    csrf: CsrfCookie,
    ApiForm(form): ApiForm<UnlockForm>,
) -> Response {
    if let Err(e) = check_csrf(&csrf, form.csrf_token.as_deref()) {
        return password_page(&state, shell, &req.uuid, &csrf, Some(e.public_message()), StatusCode::FORBIDDEN);
    }
    let password = form.password.unwrap_or_default();
    match requests::unlock(&state, req.ip, &req.uuid, &password).await {
        Ok((token, ttl)) => {
            let c = Cookie::build((UPLOAD_COOKIE, token))
                .path(format!("/upload/{}", req.uuid))
                .http_only(true)
                .secure(state.config.secure_cookies())
                .same_site(SameSite::Lax)
                .max_age(cookie::time::Duration::seconds(ttl as i64))
                .build();
            let mut r = Redirect::to(&format!("/upload/{}/", req.uuid)).into_response();
            *r.status_mut() = StatusCode::SEE_OTHER;
            if let Ok(v) = HeaderValue::from_str(&c.to_string()) {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
            r
        }
        Err(AppError::RateLimited { retry_after_secs }) => {
            let mins = retry_after_secs.div_ceil(60);
            let mut r = password_page(
                &state,
                shell,
                &req.uuid,
                &csrf,
                Some(format!("Too many attempts. Try again in {mins} minute{}.", if mins == 1 { "" } else { "s" })),
                StatusCode::TOO_MANY_REQUESTS,
            );
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            r
        }
        Err(AppError::Forbidden { code: ErrorCode::WrongPassword, .. }) => password_page(
            &state,
            shell,
            &req.uuid,
            &csrf,
            Some("Wrong password. Try again.".into()),
            StatusCode::UNAUTHORIZED,
        ),
        Err(e) => refused_page(shell, &e, None),
    }
}

// The owner's pages: the list with counts and the create form, one request's page (link, QR,
// counts, change, close). Cookie-authenticated, CSRF-protected forms.

struct RequestRow {
    uuid: String,
    title: String,
    status: &'static str,
    uploads: i64,
    max_files: Option<i64>,
    received: String,
    expires_at: Option<String>,
}

#[derive(Template)]
#[template(path = "file_requests/list.html")]
struct ListPage {
    shell: super::Shell,
    csrf: String,
    rows: Vec<RequestRow>,
    total: i64,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "file_requests/detail.html")]
struct DetailPage {
    shell: super::Shell,
    csrf: String,
    uuid: String,
    title: String,
    instructions: String,
    status: &'static str,
    open: bool,
    upload_url: String,
    qr: String,
    uploads: i64,
    received: String,
    files_remaining: Option<i64>,
    max_files: Option<i64>,
    collection_id: Option<i64>,
    error: Option<String>,
}

fn sign_in(next: &str) -> Response {
    Redirect::to(&format!("/login?next={next}")).into_response()
}

fn see_other(to: &str) -> Response {
    let mut r = Redirect::to(to).into_response();
    *r.status_mut() = StatusCode::SEE_OTHER;
    r
}

fn with_csrf(mut r: Response, set: Option<HeaderValue>, status: StatusCode) -> Response {
    *r.status_mut() = status;
    if let Some(c) = set {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn render_list(
    state: &AppState,
    shell: super::Shell,
    user: &crate::domain::users::User,
    csrf: &CsrfCookie,
    error: Option<String>,
) -> Response {
    let page = crate::domain::pagination::PageRequest { page: 1, page_size: 100 };
    let (items, total) = match state.store.list_file_requests(user.id, page).await {
        Ok(x) => x,
        Err(e) => return AppError::Internal(e).into_response(),
    };
    let now = state.clock.now_ms();
    let rows = items
        .iter()
        .map(|r| RequestRow {
            uuid: r.uuid.clone(),
            title: r.title.clone(),
            status: r.status(now).as_str(),
            uploads: r.uploads_count,
            max_files: r.max_files,
            received: super::human_size(r.bytes_received),
            expires_at: r.expires_at.map(rfc3339),
        })
        .collect();
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let (token, set) = csrf_token(csrf, state.config.secure_cookies());
    with_csrf(super::render(&ListPage { shell, csrf: token, rows, total, error }), set, status)
}

/// Your file requests with their counts, and the form that creates one.
#[utoipa::path(get, path = "/file-requests", tag = "pages",
    responses((status = 200, description = "HTML page", content_type = "text/html"), (status = 303, description = "sign in first")))]
pub async fn owner_list(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    shell: super::Shell,
    csrf: CsrfCookie,
) -> Response {
    let Some(user) = user else { return sign_in("/file-requests") };
    render_list(&state, shell, &user, &csrf, None).await
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RequestForm {
    pub csrf_token: Option<String>,
    pub title: Option<String>,
    pub instructions: Option<String>,
    pub max_files: Option<String>,
    /// Largest file in MB.
    pub max_file_mb: Option<String>,
    pub expires_in_hours: Option<String>,
    /// Comma separated MIME types.
    pub allowed_types: Option<String>,
    pub password: Option<String>,
    pub require_uploader_name: Option<String>,
    pub require_uploader_email: Option<String>,
    pub notify_on_upload: Option<String>,
}

fn form_input(f: RequestForm, creating: bool) -> Result<FileRequestIn, AppError> {
    let blank = |o: Option<String>| o.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let whole = |o: Option<String>, name: &str| -> Result<Option<i64>, AppError> {
        blank(o).map(|s| s.parse::<i64>().map_err(|_| AppError::validation(name, "must be a whole number"))).transpose()
    };
    let number = |o: Option<String>, name: &str| -> Result<Option<f64>, AppError> {
        blank(o).map(|s| s.parse::<f64>().map_err(|_| AppError::validation(name, "must be a number"))).transpose()
    };
    let max_files = whole(f.max_files, "max_files")?;
    let mb = number(f.max_file_mb, "max_file_mb")?;
    let hours = number(f.expires_in_hours, "expires_in_hours")?;
    let types = blank(f.allowed_types)
        .map(|s| s.split([',', ' ', '\n']).map(str::trim).filter(|t| !t.is_empty()).map(str::to_string).collect());
    Ok(FileRequestIn {
        title: f.title,
        instructions: f.instructions,
        collection_id: None,
        expires_in_hours: if creating { hours.map(Some) } else { None },
        // On the change form an empty field removes the limit.
        max_files: if creating { max_files.map(Some) } else { Some(max_files) },
        max_file_bytes: mb.map(|m| Some((m * 1024.0 * 1024.0).round() as i64)),
        max_total_bytes: None,
        allowed_types: types,
        password: blank(f.password).map(Some),
        require_uploader_name: creating.then_some(f.require_uploader_name.is_some()),
        require_uploader_email: creating.then_some(f.require_uploader_email.is_some()),
        notify_on_upload: creating.then_some(f.notify_on_upload.is_some()),
    })
}

/// Creates a file request from the form, then shows its page.
#[utoipa::path(post, path = "/file-requests", tag = "pages",
    request_body(content = RequestForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "created: its page"), (status = 400, description = "the list with the error", content_type = "text/html"),
        (status = 403, description = "CSRF check failed", content_type = "text/html")))]
pub async fn owner_create(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    shell: super::Shell,
    csrf: CsrfCookie,
    ip: crate::http::extract::ClientIp,
    ApiForm(form): ApiForm<RequestForm>,
) -> Response {
    let Some(user) = user else { return sign_in("/file-requests") };
    if let Some(page) = super::form_refusal(&csrf, form.csrf_token.as_deref()) {
        return page;
    }
    let result = match form_input(form, true) {
        Ok(input) => requests::create(&state, &user, input, &who(&state, Some(user.id), Some(ip.0))).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(r) => see_other(&format!("/file-requests/{}", r.uuid)),
        Err(e) if e.status().is_client_error() => {
            render_list(&state, shell, &user, &csrf, Some(e.public_message())).await
        }
        Err(e) => e.into_response(),
    }
}

async fn render_detail(
    state: &AppState,
    shell: super::Shell,
    r: &FileRequest,
    csrf: &CsrfCookie,
    error: Option<String>,
) -> Response {
    let url = requests::upload_url(state, &r.uuid);
    let qr = match crate::qr::data_url(&url) {
        Ok(q) => q,
        Err(e) => return AppError::Internal(e).into_response(),
    };
    let status = r.status(state.clock.now_ms());
    let code = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let (token, set) = csrf_token(csrf, state.config.secure_cookies());
    let page = DetailPage {
        shell,
        csrf: token,
        uuid: r.uuid.clone(),
        title: r.title.clone(),
        instructions: r.instructions.clone(),
        status: status.as_str(),
        open: status != FileRequestStatus::Closed,
        upload_url: url,
        qr,
        uploads: r.uploads_count,
        received: super::human_size(r.bytes_received),
        files_remaining: r.files_remaining(),
        max_files: r.max_files,
        collection_id: r.collection_id,
        error,
    };
    with_csrf(super::render(&page), set, code)
}

fn not_yours() -> Response {
    super::error_page(StatusCode::NOT_FOUND, "Not found", "You have no such file request.")
}

/// One of your file requests: its link and QR code, counts, the change form and close.
#[utoipa::path(get, path = "/file-requests/{uuid}", tag = "pages", params(("uuid" = String, Path, description = "file request uuid")),
    responses((status = 200, description = "HTML page", content_type = "text/html"), (status = 303, description = "sign in first"),
        (status = 404, description = "not yours", content_type = "text/html")))]
pub async fn owner_detail(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    shell: super::Shell,
    csrf: CsrfCookie,
    ApiPath(uuid): ApiPath<String>,
) -> Response {
    let Some(user) = user else { return sign_in(&format!("/file-requests/{uuid}")) };
    match requests::owned(&state, &user, &uuid).await {
        Ok(r) => render_detail(&state, shell, &r, &csrf, None).await,
        Err(_) => not_yours(),
    }
}

/// Changes a request from its page (title, instructions, most files).
#[utoipa::path(post, path = "/file-requests/{uuid}", tag = "pages", params(("uuid" = String, Path, description = "file request uuid")),
    request_body(content = RequestForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "saved: its page"), (status = 400, description = "the page with the error", content_type = "text/html"),
        (status = 403, description = "CSRF check failed", content_type = "text/html"), (status = 404, description = "not yours", content_type = "text/html"),
        (status = 410, description = "closed", content_type = "text/html")))]
pub async fn owner_change(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    shell: super::Shell,
    csrf: CsrfCookie,
    ip: crate::http::extract::ClientIp,
    ApiPath(uuid): ApiPath<String>,
    ApiForm(form): ApiForm<RequestForm>,
) -> Response {
    let Some(user) = user else { return sign_in(&format!("/file-requests/{uuid}")) };
    if let Some(page) = super::form_refusal(&csrf, form.csrf_token.as_deref()) {
        return page;
    }
    let Ok(current) = requests::owned(&state, &user, &uuid).await else { return not_yours() };
    let result = match form_input(form, false) {
        Ok(input) => requests::update(&state, &user, &uuid, input, &who(&state, Some(user.id), Some(ip.0))).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(r) => see_other(&format!("/file-requests/{}", r.uuid)),
        Err(e) if e.status() == StatusCode::GONE => refused_page(shell, &e, None),
        Err(e) if e.status().is_client_error() => {
            render_detail(&state, shell, &current, &csrf, Some(e.public_message())).await
        }
        Err(e) => e.into_response(),
    }
}

/// Closes a request from its page.
#[utoipa::path(post, path = "/file-requests/{uuid}/close", tag = "pages", params(("uuid" = String, Path, description = "file request uuid")),
    request_body(content = CsrfForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "closed: its page"), (status = 403, description = "CSRF check failed", content_type = "text/html"),
        (status = 404, description = "not yours", content_type = "text/html")))]
pub async fn owner_close(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    csrf: CsrfCookie,
    ip: crate::http::extract::ClientIp,
    ApiPath(uuid): ApiPath<String>,
    ApiForm(form): ApiForm<CsrfForm>,
) -> Response {
    let Some(user) = user else { return sign_in(&format!("/file-requests/{uuid}")) };
    if let Some(page) = super::form_refusal(&csrf, form.csrf_token.as_deref()) {
        return page;
    }
    match requests::close(&state, &user, &uuid, &who(&state, Some(user.id), Some(ip.0))).await {
        Ok(()) => see_other(&format!("/file-requests/{uuid}")),
        Err(AppError::NotFound(_)) => not_yours(),
        Err(e) => e.into_response(),
    }
}
