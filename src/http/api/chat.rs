//! Chat file sharing (SPEC §7, docs/chat.md): companies and agents, visitor sessions, uploads,
//! the file and message lists, and the session WebSocket `/ws/chat/{company_id}/{session_id}/`.
//! Who may touch which session is decided in one place: `Caller::reach`.

use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::blob::{Disposition, Grant};
use crate::domain::chat::{ChatFile, ChatSession, Company, MessageOut, Side, no_claim, parse_company_name, same_mime};
use crate::domain::pagination::{Page, PageQuery, PageRequest};
use crate::domain::time::rfc3339;
use crate::domain::users::User;
use crate::error::{AppError, AppResult, ErrorResponse};
use crate::http::extract::{AdminUser, ApiJson, ApiPath, ApiQuery, ClientIp, CurrentUser, bearer_in};
use crate::http::upload::{self, Received};
use crate::store::chat::NewChatFile;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_company, list_companies))
        .routes(routes!(add_agent))
        .routes(routes!(remove_agent))
        .routes(routes!(open_session, list_sessions))
        .routes(routes!(upload_file))
        .routes(routes!(list_files))
        .routes(routes!(list_messages))
        .routes(routes!(connect))
}

/// The token kind of a visitor's chat token.
const CHAT_TOKEN: &str = "chat";

// ---------------------------------------------------------------------------------------------
// Who is calling, and what they may reach.
// ---------------------------------------------------------------------------------------------

/// An authenticated chat caller.
pub enum Caller {
    /// A visitor, bound to one session.
    Visitor(ChatSession),
    /// An account (and the sign-in session of its token); it reaches the sessions of the
    /// companies it is an agent of.
    Agent(User, String),
}

/// A session the caller may act on, and as which side.
pub struct Reach {
    pub session: ChatSession,
    pub side: Side,
    pub user_id: Option<i64>,
    /// An agent's sign-in session: its logout closes the agent's sockets.
    pub login: Option<String>,
}

fn no_access() -> AppError {
    AppError::forbidden("you have no access to this chat session")
}

impl Caller {
    /// From a visitor's chat token or an account's access token.
    pub async fn from_token(state: &AppState, token: &str) -> AppResult<Caller> {
        if let Ok(claims) = state.auth.verify(token, CHAT_TOKEN) {
            let session = state
                .store
                .chat_session(&claims.sub)
                .await?
                .ok_or_else(|| AppError::Unauthenticated("this chat session no longer exists".into()))?;
            return Ok(Caller::Visitor(session));
        }
        let signed = crate::http::extract::access_session(state, token).await?;
        Ok(Caller::Agent(signed.user, signed.session_id))
    }

    /// From `Authorization: Bearer`, then `?token=`, then (same-origin sockets and reads) the page
    /// session cookie.
    async fn from_request(
        state: &AppState,
        headers: &HeaderMap,
        query_token: Option<&str>,
        cookie_ok: bool,
    ) -> AppResult<Caller> {
        if let Some(t) = bearer_in(headers).or(query_token.filter(|t| !t.is_empty())) {
            return Caller::from_token(state, t).await;
        }
        if cookie_ok {
            let signed = crate::http::api::collaboration::socket_user(state, headers, None).await?;
            return Ok(Caller::Agent(signed.user, signed.session_id));
        }
        Err(AppError::Unauthenticated("authentication required: send Authorization: Bearer <token>".into()))
    }

    /// The session named by `company_id` / `session_id` (either may be omitted by a visitor, whose
    /// token names its session; an agent names the session). Anything the caller may not reach,
    /// existing or not, is the same 403.
    pub async fn reach(
        &self,
        state: &AppState,
        company_id: Option<&str>,
        session_id: Option<&str>,
    ) -> AppResult<Reach> {
        let company_id = company_id.map(str::trim).filter(|c| !c.is_empty());
        let session_id = session_id.map(str::trim).filter(|s| !s.is_empty());
        match self {
            Caller::Visitor(s) => {
                if company_id.is_some_and(|c| c != s.company_uuid) || session_id.is_some_and(|id| id != s.uuid) {
                    return Err(no_access());
                }
                Ok(Reach { session: s.clone(), side: Side::User, user_id: None, login: None })
            }
            Caller::Agent(user, login) => {
                let Some(session_id) = session_id else {
                    return Err(AppError::validation("session_id", "is required"));
                };
                let session = state.store.chat_session(session_id).await?.ok_or_else(no_access)?;
                if company_id.is_some_and(|c| c != session.company_uuid)
                    || !state.store.is_agent(session.company_id, user.id).await?
                {
                    return Err(no_access());
                }
                Ok(Reach { session, side: Side::Agent, user_id: Some(user.id), login: Some(login.clone()) })
            }
        }
    }

    /// The rate-limit key of this uploader.
    fn limit_key(&self) -> String {
        match self {
            Caller::Visitor(s) => format!("session:{}", s.uuid),
            Caller::Agent(u, _) => format!("agent:{}", u.id),
        }
    }
}

/// A company the caller may see: admins all, agents their own.
async fn visible_company(state: &AppState, user: &User, company_id: &str) -> AppResult<Company> {
    let company = state.store.company_by_uuid(company_id).await?.ok_or_else(no_access)?;
    if user.is_admin() || state.store.is_agent(company.id, user.id).await? { Ok(company) } else { Err(no_access()) }
}

// ---------------------------------------------------------------------------------------------
// Companies and agents.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
pub struct CompanyIn {
    pub name: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CompanyOut {
    pub company_id: String,
    pub name: String,
    pub widget_key: String,
    pub created_at: String,
}

impl CompanyOut {
    fn of(c: &Company) -> CompanyOut {
        CompanyOut {
            company_id: c.uuid.clone(),
            name: c.name.clone(),
            widget_key: c.widget_key.clone(),
            created_at: rfc3339(c.created_at),
        }
    }
}

/// A widget key: 32 random URL-safe characters.
fn widget_key() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..32).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

/// Creates a company (a chat tenant) with its widget key.
#[utoipa::path(post, path = "/api/companies", tag = "chat", security(("bearer" = [])), request_body = CompanyIn,
    responses((status = 201, body = CompanyOut), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse)))]
pub async fn create_company(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    ApiJson(body): ApiJson<CompanyIn>,
) -> AppResult<impl IntoResponse> {
    let name = parse_company_name(body.name.as_deref().unwrap_or("")).map_err(|w| AppError::validation("name", w))?;
    let uuid = uuid::Uuid::new_v4().to_string();
    let company = state.store.insert_company(&uuid, &name, &widget_key(), state.clock.now_ms()).await?;
    tracing::info!(company_id = %company.uuid, "company created");
    Ok((StatusCode::CREATED, axum::Json(CompanyOut::of(&company))))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CompanyList {
    pub count: usize,
    pub results: Vec<CompanyOut>,
}

/// The companies the caller works for (admins: every company).
#[utoipa::path(get, path = "/api/companies", tag = "chat", security(("bearer" = [])),
    responses((status = 200, body = CompanyList), (status = 401, body = ErrorResponse)))]
pub async fn list_companies(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> AppResult<axum::Json<CompanyList>> {
    let companies = state.store.companies(if user.is_admin() { None } else { Some(user.id) }).await?;
    Ok(axum::Json(CompanyList { count: companies.len(), results: companies.iter().map(CompanyOut::of).collect() }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AgentIn {
    pub user_id: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgentOut {
    pub company_id: String,
    pub user_id: i64,
}

/// Makes an account an agent of the company (201; 200 when it already was).
#[utoipa::path(post, path = "/api/companies/{company_id}/agents", tag = "chat", security(("bearer" = [])),
    params(("company_id" = String, Path, description = "company id")), request_body = AgentIn,
    responses((status = 201, body = AgentOut), (status = 200, body = AgentOut), (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn add_agent(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    ApiPath(company_id): ApiPath<String>,
    ApiJson(body): ApiJson<AgentIn>,
) -> AppResult<impl IntoResponse> {
    let user_id = body.user_id.ok_or_else(|| AppError::validation("user_id", "is required"))?;
    let company = state.store.company_by_uuid(&company_id).await?.ok_or(AppError::NotFound("company"))?;
    let user = state.store.user_by_id(user_id).await?.ok_or(AppError::NotFound("user"))?;
    let added = state.store.add_agent(company.id, user.id, state.clock.now_ms()).await?;
    let status = if added { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, axum::Json(AgentOut { company_id: company.uuid, user_id: user.id })))
}

/// Removes an agent from the company.
#[utoipa::path(delete, path = "/api/companies/{company_id}/agents/{user_id}", tag = "chat", security(("bearer" = [])),
    params(("company_id" = String, Path, description = "company id"), ("user_id" = i64, Path, description = "account id")),
    responses((status = 204), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn remove_agent(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    ApiPath((company_id, user_id)): ApiPath<(String, i64)>,
) -> AppResult<Response> {
    let company = state.store.company_by_uuid(&company_id).await?.ok_or(AppError::NotFound("company"))?;
    if !state.store.remove_agent(company.id, user_id).await? {
        return Err(AppError::NotFound("agent"));
    }
    // Their chat sockets of this company close now, on every instance.
    state.rooms.revoke(crate::bus::Revocation::Agent { user_id, company_id: company.id });
    Ok(crate::http::empty(StatusCode::NO_CONTENT))
}

// ---------------------------------------------------------------------------------------------
// Sessions.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
pub struct SessionIn {
    pub widget_key: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = ChatSessionOut)]
pub struct SessionOut {
    pub company_id: String,
    pub session_id: String,
    /// Scoped to this one session; send it as Bearer or `?token=`.
    pub token: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
}

/// Opens a visitor's chat session with a company (the widget calls this).
#[utoipa::path(post, path = "/api/chat/sessions", tag = "chat", request_body = SessionIn,
    responses((status = 201, body = SessionOut), (status = 400, body = ErrorResponse), (status = 404, body = ErrorResponse),
        (status = 429, body = ErrorResponse)))]
pub async fn open_session(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<SessionIn>,
) -> AppResult<impl IntoResponse> {
    let key = body.widget_key.as_deref().map(str::trim).filter(|k| !k.is_empty());
    let key = key.ok_or_else(|| AppError::validation("widget_key", "is required"))?;
    state.limits.chat_session_per_ip.check(ip).await?;
    let company = state.store.company_by_widget_key(key).await?.ok_or(AppError::NotFound("widget"))?;
    let session =
        state.store.insert_chat_session(&uuid::Uuid::new_v4().to_string(), &company, state.clock.now_ms()).await?;
    let ttl = state.config.chat_token_ttl_secs;
    let token = state.auth.issue(&session.uuid, CHAT_TOKEN, ttl)?;
    metrics::counter!("vitrine_chat_sessions_total").increment(1);
    Ok((
        StatusCode::CREATED,
        axum::Json(SessionOut { company_id: company.uuid, session_id: session.uuid, token, expires_in: ttl }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct SessionsQuery {
    pub company_id: Option<String>,
    pub page: Option<String>,
    pub page_size: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionSummaryOut {
    pub company_id: String,
    pub session_id: String,
    pub created_at: String,
    pub last_activity_at: String,
    pub file_count: i64,
    pub message_count: i64,
}

/// A company's sessions, most recently active first (its agents and admins).
#[utoipa::path(get, path = "/api/chat/sessions", tag = "chat", security(("bearer" = [])), params(SessionsQuery),
    responses((status = 200, body = Page<SessionSummaryOut>), (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse)))]
pub async fn list_sessions(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiQuery(q): ApiQuery<SessionsQuery>,
) -> AppResult<axum::Json<Page<SessionSummaryOut>>> {
    let company_id = q.company_id.as_deref().map(str::trim).filter(|c| !c.is_empty());
    let company_id = company_id.ok_or_else(|| AppError::validation("company_id", "is required"))?;
    let page = PageRequest::try_from(&PageQuery { page: q.page.clone(), page_size: q.page_size.clone() })?;
    let company = visible_company(&state, &user, company_id).await?;
    let (list, count) = state.store.chat_sessions_of(company.id, page.limit(), page.offset()).await?;
    let results = list
        .iter()
        .map(|s| SessionSummaryOut {
            company_id: s.session.company_uuid.clone(),
            session_id: s.session.uuid.clone(),
            created_at: rfc3339(s.session.created_at),
            last_activity_at: rfc3339(s.session.last_activity_at),
            file_count: s.file_count,
            message_count: s.message_count,
        })
        .collect();
    let base = format!("{}/api/chat/sessions/", state.config.base_url());
    Ok(axum::Json(Page::new(results, count, page, &base, &[("company_id", company.uuid)])))
}

// ---------------------------------------------------------------------------------------------
// Files.
// ---------------------------------------------------------------------------------------------

/// A chat file as the seed shows it (upload answer, list item, `file_shared`). `name` and
/// `original_name` are the same: the seed uses one in the upload answer, the other in the list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FileOut {
    pub id: i64,
    pub company_id: String,
    pub session_id: String,
    pub uploader: String,
    /// Signed link, valid for `chat_url_ttl_secs` (one hour).
    pub url: String,
    pub name: String,
    pub original_name: String,
    pub mime_type: String,
    pub size: i64,
    /// Signed link to a preview (images), or null.
    pub thumbnail: Option<String>,
    pub created_at: String,
}

impl FileOut {
    pub fn of(state: &AppState, f: &ChatFile) -> FileOut {
        let ttl = Duration::from_secs(state.config.chat_url_ttl_secs);
        let grant = |key: &str, mime: &str, name: &str, d: Disposition, etag: String| Grant {
            key: key.to_string(),
            expires: 0,
            disposition: d,
            name: name.to_string(),
            mime: mime.to_string(),
            etag,
            owner: Some(crate::blob::Owner::ChatFile(f.id)),
        };
        // Images open in the browser; everything else downloads.
        let disposition = if f.mime_type.starts_with("image/") || f.mime_type == "application/pdf" {
            Disposition::Inline
        } else {
            Disposition::Attachment
        };
        let url = state
            .blobs
            .signed_url_for(grant(&f.blob_key, &f.mime_type, &f.original_name, disposition, f.sha256.clone()), ttl);
        let thumbnail = f.thumb_key.as_deref().map(|k| {
            let mime = if k.ends_with(".png") { "image/png" } else { "image/jpeg" };
            state
                .blobs
                .signed_url_for(grant(k, mime, "thumbnail", Disposition::Inline, format!("{}-thumb", f.sha256)), ttl)
        });
        FileOut {
            id: f.id,
            company_id: f.company_uuid.clone(),
            session_id: f.session_uuid.clone(),
            uploader: f.uploader.as_str().to_string(),
            url,
            name: f.original_name.clone(),
            original_name: f.original_name.clone(),
            mime_type: f.mime_type.clone(),
            size: f.size,
            thumbnail,
            created_at: rfc3339(f.created_at),
        }
    }

    /// The fields of a `file_shared` event.
    pub fn event(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// The multipart fields of a chat upload (the seed's), for the documentation.
#[derive(ToSchema)]
#[allow(dead_code, reason = "documents the multipart form read by upload::receive")]
pub struct ChatUploadForm {
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    company_id: Option<String>,
    session_id: Option<String>,
    /// `user` or `agent`; must match the token.
    uploader: Option<String>,
    original_name: Option<String>,
    mime_type: Option<String>,
    size: Option<i64>,
}

fn refused(reason: &'static str) {
    metrics::counter!("vitrine_chat_uploads_total", "result" => "refused", "reason" => reason).increment(1);
}

/// The metric reason of a refusal.
fn reason_of(e: &AppError) -> &'static str {
    match e.code() {
        "not_authenticated" => "unauthenticated",
        "forbidden" => "forbidden",
        "too_large" => "too_large",
        "unsupported_type" => "unsupported_type",
        "executable_refused" => "executable",
        "infected" => "infected",
        "rate_limited" => "rate_limited",
        "unavailable" => "scanner_unavailable",
        "size_mismatch" | "type_mismatch" => "declared_mismatch",
        _ => "invalid",
    }
}

/// Uploads a file into a chat session; both sides get `file_shared` once it is stored.
#[utoipa::path(post, path = "/api/chat/upload", tag = "chat", security(("bearer" = [])),
    request_body(content = ChatUploadForm, content_type = "multipart/form-data"),
    responses((status = 201, body = FileOut), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 413, body = ErrorResponse), (status = 415, body = ErrorResponse),
        (status = 422, body = ErrorResponse), (status = 429, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn upload_file(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    match receive_upload(&state, &headers, body).await {
        Ok(file) => (StatusCode::CREATED, axum::Json(file)).into_response(),
        Err(e) => {
            refused(reason_of(&e));
            e.into_response()
        }
    }
}

async fn receive_upload(state: &AppState, headers: &HeaderMap, body: Body) -> AppResult<FileOut> {
    // Who and how often, before a byte is read.
    let caller = Caller::from_request(state, headers, None, false).await?;
    state.limits.chat_upload.check(caller.limit_key()).await?;
    let mut form = upload::receive(state, headers, body, "file", state.config.chat_max_bytes).await?;
    let Some(rec) = form.file.take() else {
        return Err(AppError::validation("file", "is required"));
    };
    match store_upload(state, &caller, &form, &rec).await {
        Ok(f) => Ok(f),
        Err(e) => {
            upload::discard(state, &rec).await;
            Err(e)
        }
    }
}

async fn store_upload(state: &AppState, caller: &Caller, form: &upload::Form, rec: &Received) -> AppResult<FileOut> {
    let reach = caller.reach(state, form.text("company_id"), form.text("session_id")).await?;
    if let Some(u) = form.text("uploader").map(str::trim).filter(|u| !u.is_empty())
        && u != reach.side.as_str()
    {
        return Err(AppError::forbidden(format!("this token uploads as {}, not {u}", reach.side.as_str())));
    }
    let mime = upload::inspect(state, rec, &state.config.chat_allowed_types).await?;
    if let Some(size) = form.text("size").map(str::trim).filter(|s| !s.is_empty()) {
        match size.parse::<u64>() {
            Ok(n) if n == rec.size => {}
            Ok(n) => {
                return Err(AppError::bad_request(
                    "size_mismatch",
                    format!("the declared size ({n} bytes) is not the size of the file ({} bytes)", rec.size),
                ));
            }
            Err(_) => return Err(AppError::validation("size", "must be a whole number of bytes")),
        }
    }
    if let Some(declared) = form.text("mime_type").filter(|m| !no_claim(m))
        && !same_mime(declared, &mime)
    {
        return Err(AppError::bad_request(
            "type_mismatch",
            format!("the file was declared as {} but is {mime}", declared.trim()),
        ));
    }
    scan(state, rec).await?;
    let probed = upload::probe(state, rec, &mime, upload::PixelLimit::Chat).await?;
    let name = match form.text("original_name").map(str::trim).filter(|n| !n.is_empty()) {
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
            Err(AppError::rejected("infected", format!("the file contains a virus ({name}); it was not stored")))
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

#[derive(Debug, Deserialize, IntoParams)]
pub struct ChatQuery {
    pub session_id: Option<String>,
    pub company_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FileList {
    pub files: Vec<FileOut>,
    pub count: usize,
}

/// A session's files, oldest first (the seed's `{files, count}`).
#[utoipa::path(get, path = "/api/chat/files", tag = "chat", security(("bearer" = [])), params(ChatQuery),
    responses((status = 200, body = FileList), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse)))]
pub async fn list_files(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<ChatQuery>,
) -> AppResult<axum::Json<FileList>> {
    let caller = Caller::from_request(&state, &headers, None, false).await?;
    let reach = caller.reach(&state, q.company_id.as_deref(), q.session_id.as_deref()).await?;
    Ok(axum::Json(file_list(&state, &reach.session).await?))
}

pub async fn file_list(state: &AppState, session: &ChatSession) -> AppResult<FileList> {
    let files: Vec<FileOut> = state.store.chat_files(session.id).await?.iter().map(|f| FileOut::of(state, f)).collect();
    Ok(FileList { count: files.len(), files })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageList {
    pub messages: Vec<MessageOut>,
    pub count: usize,
}

/// A session's messages, oldest first.
#[utoipa::path(get, path = "/api/chat/messages", tag = "chat", security(("bearer" = [])), params(ChatQuery),
    responses((status = 200, body = MessageList), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse)))]
pub async fn list_messages(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<ChatQuery>,
) -> AppResult<axum::Json<MessageList>> {
    let caller = Caller::from_request(&state, &headers, None, false).await?;
    let reach = caller.reach(&state, q.company_id.as_deref(), q.session_id.as_deref()).await?;
    let messages: Vec<MessageOut> =
        state.store.chat_messages(reach.session.id).await?.iter().map(MessageOut::of).collect();
    Ok(axum::Json(MessageList { count: messages.len(), messages }))
}

// ---------------------------------------------------------------------------------------------
// The socket.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize, IntoParams)]
pub struct ChatWsQuery {
    /// The visitor's chat token or an agent's access token.
    pub token: Option<String>,
    /// The last `seq` the client saw: the events after it are replayed first.
    pub last_seq: Option<i64>,
}

/// Joins a chat session live (docs/chat.md).
#[utoipa::path(get, path = "/ws/chat/{company_id}/{session_id}", tag = "chat",
    params(("company_id" = String, Path, description = "company id"), ("session_id" = String, Path, description = "session id"), ChatWsQuery),
    responses((status = 101, description = "WebSocket"), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse)))]
pub async fn connect(
    State(state): State<AppState>,
    ApiPath((company_id, session_id)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<ChatWsQuery>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> AppResult<Response> {
    let caller = Caller::from_request(&state, &headers, q.token.as_deref(), true).await?;
    let reach = caller.reach(&state, Some(&company_id), Some(&session_id)).await?;
    Ok(crate::realtime::socket::upgrade(state, ws, move |state, socket| {
        crate::realtime::chat::serve(state, reach, q.last_seq, socket)
    }))
}
