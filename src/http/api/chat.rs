//! Chat file sharing (SPEC §7, docs/chat.md): companies and agents, visitor sessions, uploads,
//! the file and message lists, and the session WebSocket `/ws/chat/{company_id}/{session_id}/`.
//! Who may touch which session is decided in one place: `Caller::reach`.

use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::domain::chat::{Company, MessageOut};
use crate::domain::pagination::{Page, PageQuery, PageRequest};
use crate::domain::time::rfc3339;
use crate::error::{AppError, AppResult, ErrorResponse};
use crate::http::extract::{AdminUser, ApiJson, ApiPath, ApiQuery, ClientIp, CurrentSession, CurrentUser, bearer_in};
use crate::http::upload;
use crate::service::chat::access::Caller;
use crate::service::chat::files::{FileList, FileOut, file_list};
use crate::service::chat::{admin, sessions, uploads};
use crate::service::uploads::Rules;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_company, list_companies))
        .routes(routes!(add_agent))
        .routes(routes!(remove_agent))
        .routes(routes!(open_session, list_sessions))
        .routes(routes!(mark_read))
        .routes(routes!(upload_file))
        .routes(routes!(list_files))
        .routes(routes!(list_messages))
        .routes(routes!(connect))
}

// ---------------------------------------------------------------------------------------------
// Who is calling, and what they may reach.
// ---------------------------------------------------------------------------------------------

/// The chat caller of a REST request: a visitor's chat token (`Authorization: Bearer`), else an
/// account by the one API rule (`CurrentSession`: a bearer JWT or `vtr_` token, or the page's
/// session cookie from this origin, with `X-CSRF-Token` on writes).
pub struct ChatCaller(pub Caller);

impl FromRequestParts<AppState> for ChatCaller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> AppResult<Self> {
        if let Some(t) = bearer_in(&parts.headers)
            && let Some(visitor) = Caller::visitor(state, t).await?
        {
            return Ok(ChatCaller(visitor));
        }
        let CurrentSession(s) = CurrentSession::from_request_parts(parts, state).await?;
        Ok(ChatCaller(Caller::Agent(s.user, s.session_id)))
    }
}

/// The caller of the session socket (its documented auth, docs/chat.md): `Authorization:
/// Bearer`, then `?token=`, then the session cookie of a same-origin page.
async fn socket_caller(state: &AppState, headers: &HeaderMap, query_token: Option<&str>) -> AppResult<Caller> {
    if let Some(t) = bearer_in(headers).or(query_token.filter(|t| !t.is_empty())) {
        return Caller::from_token(state, t).await;
    }
    let signed = crate::http::ws::socket_user(state, headers, None).await?;
    Ok(Caller::Agent(signed.user, signed.session_id))
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

/// Creates a company (a chat tenant) with its widget key.
#[utoipa::path(post, path = "/api/companies", tag = "chat", security(("bearer" = [])), request_body = CompanyIn,
    responses((status = 201, body = CompanyOut), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse)))]
pub async fn create_company(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    ApiJson(body): ApiJson<CompanyIn>,
) -> AppResult<impl IntoResponse> {
    let company = admin::create_company(&state, body.name.as_deref().unwrap_or("")).await?;
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
    let companies = admin::companies_of(&state, &user).await?;
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
    let (company, user, added) = admin::add_agent(&state, &company_id, user_id).await?;
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
    admin::remove_agent(&state, &company_id, user_id).await?;
    Ok(crate::http::empty(StatusCode::NO_CONTENT))
}

// ---------------------------------------------------------------------------------------------
// Sessions.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
pub struct SessionIn {
    pub widget_key: Option<String>,
    /// Optional: the page the visitor is on (the embedding page, or `document.referrer`), an
    /// absolute http(s) URL shown to the agents.
    pub page_url: Option<String>,
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
    let o = sessions::open(&state, ip, body.widget_key.as_deref(), body.page_url.as_deref()).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(SessionOut {
            company_id: o.company.uuid,
            session_id: o.session.uuid,
            token: o.token,
            expires_in: o.expires_in,
        }),
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
    /// A friendly name of the visitor, derived from the session id: the same everywhere, always.
    /// Unique within one list: when two listed sessions draw the same name, each gets a short
    /// suffix from its session id ("Visitor Amber Fox · 3f2b").
    pub visitor_label: String,
    /// The page the visitor opened the chat from, when the widget knew it.
    pub page_url: Option<String>,
    /// The visitor's messages and files the calling agent has not seen yet
    /// (`POST /api/chat/sessions/{session_id}/read/` resets it).
    pub unread_count: i64,
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
    let (company, list, count) = sessions::of_company(&state, &user, company_id, page).await?;
    // Labels unique within the list: two sessions drawing the same name get a suffix each.
    let labels = crate::domain::chat::visitor_labels(&list.iter().map(|s| s.session.uuid.as_str()).collect::<Vec<_>>());
    let results = list
        .iter()
        .zip(labels)
        .map(|(s, visitor_label)| SessionSummaryOut {
            company_id: s.session.company_uuid.clone(),
            session_id: s.session.uuid.clone(),
            created_at: rfc3339(s.session.created_at),
            last_activity_at: rfc3339(s.session.last_activity_at),
            file_count: s.file_count,
            message_count: s.message_count,
            visitor_label,
            page_url: s.session.page_url.clone(),
            unread_count: s.unread_count,
        })
        .collect();
    let base = format!("{}/api/chat/sessions/", state.config.base_url());
    Ok(axum::Json(Page::new(results, count, page, &base, &[("company_id", company.uuid)])))
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ChatReadOut)]
pub struct ReadOut {
    pub session_id: String,
    pub unread_count: i64,
}

/// The calling agent has seen the session: its `unread_count` (for this agent) is 0 until the
/// visitor writes or sends a file again. The dashboard calls it when a session is open.
#[utoipa::path(post, path = "/api/chat/sessions/{session_id}/read", tag = "chat", security(("bearer" = [])),
    params(("session_id" = String, Path, description = "session id")),
    responses((status = 200, body = ReadOut), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse)))]
pub async fn mark_read(
    State(state): State<AppState>,
    ChatCaller(caller): ChatCaller,
    ApiPath(session_id): ApiPath<String>,
) -> AppResult<axum::Json<ReadOut>> {
    let reach = caller.reach(&state, None, Some(&session_id)).await?;
    sessions::mark_read(&state, &reach).await?;
    Ok(axum::Json(ReadOut { session_id: reach.session.uuid, unread_count: 0 }))
}

// ---------------------------------------------------------------------------------------------
// Files.
// ---------------------------------------------------------------------------------------------

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

/// Uploads a file into a chat session; both sides get `file_shared` once it is stored.
#[utoipa::path(post, path = "/api/chat/upload", tag = "chat", security(("bearer" = [])),
    request_body(content = ChatUploadForm, content_type = "multipart/form-data"),
    responses((status = 201, body = FileOut), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 413, body = ErrorResponse), (status = 415, body = ErrorResponse),
        (status = 422, body = ErrorResponse), (status = 429, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn upload_file(
    State(state): State<AppState>,
    caller: Result<ChatCaller, AppError>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match receive_upload(&state, caller, &headers, body).await {
        Ok(file) => (StatusCode::CREATED, axum::Json(file)).into_response(),
        Err(e) => {
            uploads::count_refusal(&e);
            e.into_response()
        }
    }
}

async fn receive_upload(
    state: &AppState,
    caller: Result<ChatCaller, AppError>,
    headers: &HeaderMap,
    body: Body,
) -> AppResult<FileOut> {
    // Who and how often, before a byte is read.
    let ChatCaller(caller) = caller?;
    state.limits.chat_upload.check(caller.limit_key()).await?;
    let mut form = upload::receive(state, headers, body, "file", &Rules::chat(&state.config)).await?;
    let Some(rec) = form.file.take() else {
        return Err(AppError::validation("file", "is required"));
    };
    let declared = uploads::Declared {
        company_id: form.text("company_id"),
        session_id: form.text("session_id"),
        uploader: form.text("uploader"),
        original_name: form.text("original_name"),
        mime_type: form.text("mime_type"),
        size: form.text("size"),
    };
    uploads::receive(state, &caller, &declared, rec).await
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ChatQuery {
    pub session_id: Option<String>,
    pub company_id: Option<String>,
}

/// A session's files, oldest first (the seed's `{files, count}`).
#[utoipa::path(get, path = "/api/chat/files", tag = "chat", security(("bearer" = [])), params(ChatQuery),
    responses((status = 200, body = FileList), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse)))]
pub async fn list_files(
    State(state): State<AppState>,
    ChatCaller(caller): ChatCaller,
    ApiQuery(q): ApiQuery<ChatQuery>,
) -> AppResult<axum::Json<FileList>> {
    let reach = caller.reach(&state, q.company_id.as_deref(), q.session_id.as_deref()).await?;
    Ok(axum::Json(file_list(&state, &reach.session).await?))
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
    ChatCaller(caller): ChatCaller,
    ApiQuery(q): ApiQuery<ChatQuery>,
) -> AppResult<axum::Json<MessageList>> {
    let reach = caller.reach(&state, q.company_id.as_deref(), q.session_id.as_deref()).await?;
    let messages = sessions::messages(&state, &reach).await?;
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
    let caller = socket_caller(&state, &headers, q.token.as_deref()).await?;
    let reach = caller.reach(&state, Some(&company_id), Some(&session_id)).await?;
    Ok(crate::http::ws::upgrade(state, ws, move |state, socket| {
        crate::http::ws::chat::serve(state, reach, q.last_seq, socket)
    }))
}
