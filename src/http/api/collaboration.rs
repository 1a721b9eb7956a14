//! Collaboration sessions API (SPEC §4): create with participants by e-mail (accounts linked,
//! others invited), read, list, end, add and remove participants, the recording, and the
//! session WebSocket `/ws/collaboration/{session_id}/`.

use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::shares::ShareOut;
use crate::app::AppState;
use crate::domain::collaboration::{CreateSessionIn, Features, NewSession, Participant, Session};
use crate::domain::time::rfc3339;
use crate::domain::users::User;
use crate::error::{AppResult, ErrorResponse};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, ClientIp, CurrentUser};
use crate::service::auth::SignedIn;
use crate::service::collaboration::{self, RecordingOut};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, end))
        .routes(routes!(end_action))
        .routes(routes!(add_participant))
        .routes(routes!(remove_participant))
        .routes(routes!(recording))
        .routes(routes!(connect))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ParticipantOut {
    pub email: String,
    /// Null for someone without an account yet.
    pub user_id: Option<i64>,
    /// Where this person joins: the collaboration page, or an invitation to create an account.
    pub invite_url: String,
    pub removed: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SessionOwner)]
pub struct OwnerOut {
    pub id: i64,
    pub name: String,
}

/// A session as the seed returns it, plus its state.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CollaborationSessionOut)]
pub struct SessionOut {
    pub session_id: String,
    /// The session's link; null once its asset was deleted (the session ended with it).
    pub share_link: Option<ShareOut>,
    pub participants: Vec<ParticipantOut>,
    pub features: Features,
    pub websocket_url: String,
    /// Null once the asset was deleted, like `share_link`.
    pub collaboration_url: Option<String>,
    pub replay_url: Option<String>,
    pub expires_at: String,
    pub invitation_message: String,
    pub asset_id: i64,
    pub owner: OwnerOut,
    /// `live`, `ended` or `expired`.
    pub status: String,
    pub created_at: String,
}

fn participant_out(state: &AppState, p: &Participant, share_uuid: &str) -> ParticipantOut {
    let invite_url = collaboration::invite_url(state, p, share_uuid);
    ParticipantOut { email: p.email.clone(), user_id: p.user_id, invite_url, removed: p.removed_at.is_some() }
}

/// A session as the API shows it. Its link is gone when its asset was deleted (the session ended
/// then): the session is still listed, without link and page URLs, never an error.
async fn session_out(state: &AppState, s: &Session) -> AppResult<SessionOut> {
    let share = state.store.share_by_id(s.share_id).await?;
    let owner = state.store.user_by_id(s.owner_id).await?;
    let participants = state.store.participants(s.id).await?;
    let now = state.clock.now_ms();
    let share_uuid = share.as_ref().map(|sh| sh.uuid.as_str()).unwrap_or_default();
    Ok(SessionOut {
        session_id: s.uuid.clone(),
        share_link: share.as_ref().map(|sh| ShareOut::new(state, sh, false)).transpose()?,
        participants: participants.iter().map(|p| participant_out(state, p, share_uuid)).collect(),
        features: s.features,
        websocket_url: format!("/ws/collaboration/{}/", s.uuid),
        collaboration_url: share.as_ref().map(|sh| format!("/collaborate/{}/", sh.uuid)),
        replay_url: share.as_ref().map(|sh| format!("/collaborate/{}/replay/", sh.uuid)),
        expires_at: rfc3339(s.expires_at),
        invitation_message: s.invitation_message.clone(),
        asset_id: s.asset_id,
        owner: OwnerOut { id: s.owner_id, name: owner.map(|u| u.name).unwrap_or_default() },
        status: s.over(now).map(|r| if r == "ended" { "ended" } else { "expired" }).unwrap_or("live").to_string(),
        created_at: rfc3339(s.created_at),
    })
}

/// Starts a collaboration session on one of the caller's assets.
#[utoipa::path(post, path = "/api/v3/collaboration/sessions", tag = "collaboration", security(("bearer" = [])),
    request_body = CreateSessionIn,
    responses((status = 201, body = SessionOut), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 429, body = ErrorResponse)))]
pub async fn create(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiJson(body): ApiJson<CreateSessionIn>,
) -> AppResult<Response> {
    let new = NewSession::parse(&body)?;
    let asset = crate::service::assets::visible_asset(&state, &user, new.asset_id).await?;
    let session = collaboration::start(&state, &user, &asset, &new).await?;
    let out = session_out(&state, &session).await?;
    Ok((StatusCode::CREATED, axum::Json(out)).into_response())
}

/// The sessions the caller owns or takes part in, newest first (at most 100).
#[utoipa::path(get, path = "/api/v3/collaboration/sessions", tag = "collaboration", security(("bearer" = [])),
    responses((status = 200, body = Vec<SessionOut>), (status = 401, body = ErrorResponse)))]
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> AppResult<axum::Json<Vec<SessionOut>>> {
    let mut out = Vec::new();
    for s in state.store.sessions_of_user(user.id, 100).await? {
        let mut o = session_out(&state, &s).await?;
        if s.owner_id != user.id {
            // Invitation links are the owner's to hand out.
            o.participants.retain(|p| p.user_id.is_some());
        }
        out.push(o);
    }
    Ok(axum::Json(out))
}

/// One session (owner or participant).
#[utoipa::path(get, path = "/api/v3/collaboration/sessions/{id}", tag = "collaboration", security(("bearer" = [])),
    params(("id" = String, Path, description = "session id")),
    responses((status = 200, body = SessionOut), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn get(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> AppResult<axum::Json<SessionOut>> {
    let s = collaboration::member_session(&state, &user, &id).await?;
    let mut o = session_out(&state, &s).await?;
    if s.owner_id != user.id {
        o.participants.retain(|p| p.user_id.is_some());
    }
    Ok(axum::Json(o))
}

async fn end_session(state: &AppState, user: &User, id: &str) -> AppResult<axum::Json<SessionOut>> {
    let s = collaboration::end(state, user, id).await?;
    Ok(axum::Json(session_out(state, &s).await?))
}

/// Ends a live session: every socket receives `session_ended` and is closed; its link is revoked.
#[utoipa::path(delete, path = "/api/v3/collaboration/sessions/{id}", tag = "collaboration", security(("bearer" = [])),
    params(("id" = String, Path, description = "session id")),
    responses((status = 200, body = SessionOut), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
        (status = 410, body = ErrorResponse)))]
pub async fn end(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> AppResult<axum::Json<SessionOut>> {
    end_session(&state, &user, &id).await
}

/// Same as `DELETE /api/v3/collaboration/sessions/{id}/`.
#[utoipa::path(post, path = "/api/v3/collaboration/sessions/{id}/end", tag = "collaboration", security(("bearer" = [])),
    params(("id" = String, Path, description = "session id")),
    responses((status = 200, body = SessionOut), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
        (status = 410, body = ErrorResponse)))]
pub async fn end_action(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> AppResult<axum::Json<SessionOut>> {
    end_session(&state, &user, &id).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = AddParticipantIn)]
pub struct ParticipantIn {
    pub email: Option<String>,
}

/// Invites one more person (owner only).
#[utoipa::path(post, path = "/api/v3/collaboration/sessions/{id}/participants", tag = "collaboration",
    security(("bearer" = [])), params(("id" = String, Path, description = "session id")), request_body = ParticipantIn,
    responses((status = 201, body = ParticipantOut), (status = 400, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse), (status = 410, body = ErrorResponse)))]
pub async fn add_participant(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ParticipantIn>,
) -> AppResult<Response> {
    let (p, share_uuid) =
        collaboration::add_participant(&state, &user, &id, body.email.as_deref().unwrap_or("")).await?;
    let out = participant_out(&state, &p, &share_uuid);
    Ok((StatusCode::CREATED, axum::Json(out)).into_response())
}

/// Removes a participant (owner only), by account id or e-mail; their open sockets are closed.
#[utoipa::path(delete, path = "/api/v3/collaboration/sessions/{id}/participants/{who}", tag = "collaboration",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "session id"), ("who" = String, Path, description = "user id or e-mail")),
    responses((status = 204), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn remove_participant(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath((id, who)): ApiPath<(String, String)>,
) -> AppResult<StatusCode> {
    collaboration::remove_participant(&state, &user, &id, &who).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Everything that happened in a session, in time order: durable events with their seq, and the
/// sampled cursor tracks (owner or participant).
#[utoipa::path(get, path = "/api/v3/collaboration/sessions/{id}/recording", tag = "collaboration",
    security(("bearer" = [])), params(("id" = String, Path, description = "session id")),
    responses((status = 200, body = RecordingOut), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn recording(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> AppResult<axum::Json<RecordingOut>> {
    let s = collaboration::member_session(&state, &user, &id).await?;
    Ok(axum::Json(collaboration::recording_of(&state, &s).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct WsQuery {
    /// An access token (or the page session cookie, same-origin pages only).
    pub token: Option<String>,
    /// The last `seq` the client saw: what came after it is replayed.
    pub last_seq: Option<i64>,
}

/// Joins a session live (owner and participants only).
#[utoipa::path(get, path = "/ws/collaboration/{session_id}", tag = "collaboration", params(("session_id" = String, Path, description = "session id"), WsQuery),
    responses((status = 101, description = "WebSocket"), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 410, body = ErrorResponse)))]
pub async fn connect(
    State(state): State<AppState>,
    ApiPath(session_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<WsQuery>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> AppResult<Response> {
    let SignedIn { user, session_id: login, .. } =
        crate::http::ws::socket_user(&state, &headers, q.token.as_deref()).await?;
    let (session, asset) = collaboration::joinable(&state, &user, &session_id).await?;
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let member = Box::new(crate::http::ws::collaboration::Member { session, asset, user, login, ip, user_agent });
    Ok(crate::http::ws::upgrade(state, ws, move |state, socket| {
        crate::http::ws::collaboration::serve(state, member, q.last_seq, socket)
    }))
}
