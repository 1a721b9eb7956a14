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
use crate::blob::token::{Disposition, Grant};
use crate::domain::assets::{Asset, preview_kind};
use crate::domain::collaboration::{CreateSessionIn, Features, NewSession, Participant, Session, parse_email};
use crate::domain::shares::{ShareSettings, ShareType};
use crate::domain::time::rfc3339;
use crate::domain::users::User;
use crate::error::{AppError, AppResult, ErrorResponse};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, ClientIp, CurrentUser, SignedIn};
use crate::store::collaboration::NewParticipant;

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

/// The invitation token of a participant: their row id and an HMAC of it, so nothing secret is
/// stored and the owner can always see the link again.
pub fn invite_token(state: &AppState, p: &Participant) -> String {
    let id = p.id.to_string();
    let sid = p.session_id.to_string();
    let mac = crate::domain::digest::keyed_digest(
        &state.secrets.hmac,
        &[b"invite\0", id.as_bytes(), b"\0", sid.as_bytes(), b"\0", p.email.as_bytes()],
    );
    format!("{id}.{}", hex::encode(&mac[..16]))
}

/// The participant an invitation token names, if it is genuine and still valid.
pub async fn participant_of_invite(state: &AppState, token: &str) -> AppResult<Option<Participant>> {
    let Some((id, _)) = token.split_once('.') else { return Ok(None) };
    let Ok(id) = id.parse::<i64>() else { return Ok(None) };
    let Some(p) = state.store.participant_by_id(id).await? else { return Ok(None) };
    if p.removed_at.is_some() || !crate::auth::same(&invite_token(state, &p), token) {
        return Ok(None);
    }
    Ok(Some(p))
}

fn collaboration_url(state: &AppState, share_uuid: &str) -> String {
    format!("{}/collaborate/{share_uuid}/", state.config.base_url())
}

fn participant_out(state: &AppState, p: &Participant, share_uuid: &str) -> ParticipantOut {
    let invite_url = match p.user_id {
        Some(_) => collaboration_url(state, share_uuid),
        None => format!("{}/invite/{}/", state.config.base_url(), invite_token(state, p)),
    };
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

/// What the session's members are looking at: a signed inline URL for media a browser shows
/// safely, a download URL when the session allows it.
pub fn asset_summary(state: &AppState, a: &Asset, allow_download: bool) -> serde_json::Value {
    let grant = |d: Disposition| Grant {
        key: a.blob_key.clone(),
        expires: 0,
        disposition: d,
        name: a.name.clone(),
        mime: a.mime_type.clone(),
        etag: a.sha256.clone(),
        owner: Some(crate::blob::Owner::Asset(a.id)),
    };
    let kind = preview_kind(a);
    let content_url = (kind != "file").then(|| state.blobs.signed_url(grant(Disposition::Inline)));
    let download_url = allow_download.then(|| state.blobs.signed_url(grant(Disposition::Attachment)));
    serde_json::json!({
        "id": a.id, "title": a.title, "media_type": kind, "mime_type": a.mime_type, "width": a.width,
        "height": a.height, "duration_seconds": a.duration_seconds, "content_url": content_url,
        "download_url": download_url,
    })
}

/// Invitations by e-mail (when SMTP is configured).
fn send_invitations(state: &AppState, owner: &User, asset: &Asset, s: &Session, invited: &[ParticipantOut]) {
    if !state.mailer.enabled() {
        return;
    }
    for p in invited {
        let note =
            if s.invitation_message.is_empty() { String::new() } else { format!("\n\n{}\n", s.invitation_message) };
        let action =
            if p.user_id.is_some() { "Join the session" } else { "Create your account to join (the link is personal)" };
        state.mailer.send(
            &p.email,
            &format!("{} invites you to review \"{}\"", owner.name, asset.title),
            format!(
                "Hello,\n\n{} invites you to a live review of \"{}\" on Vitrine, until {}.{note}\n{action}:\n{}\n",
                owner.name,
                asset.title,
                rfc3339(s.expires_at),
                p.invite_url
            ),
        );
    }
}

/// Resolves e-mails to accounts (linked) or invitations.
async fn new_participants(state: &AppState, emails: &[String]) -> AppResult<Vec<NewParticipant>> {
    let mut out = Vec::with_capacity(emails.len());
    for e in emails {
        let user = state.store.user_by_email(e).await?.filter(|u| u.is_active);
        out.push(NewParticipant { email: e.clone(), user_id: user.map(|u| u.id) });
    }
    Ok(out)
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
    let asset = super::assets::visible_asset(&state, &user, new.asset_id).await?;
    state.limits.share_create_per_user.check(user.id).await?;
    let now = state.clock.now_ms();
    let expires_at = now + new.duration_hours * 3_600_000;
    // The session's link: private to the participants, comments and collaboration on.
    let mut settings = ShareSettings::defaults(&asset.title);
    settings.share_type = ShareType::Private;
    settings.allowed_emails = new.emails.clone();
    settings.allow_comments = true;
    settings.allow_collaboration = true;
    settings.allow_download = new.features.allow_download;
    settings.expires_at = Some(expires_at);
    settings.description = new.invitation_message.clone();
    let share_uuid = uuid::Uuid::new_v4().to_string();
    let share = state.store.insert_share(&share_uuid, asset.id, asset.owner_id, &settings, None, now).await?;
    let participants = new_participants(&state, &new.emails).await?;
    let session = state
        .store
        .insert_session(
            &uuid::Uuid::new_v4().to_string(),
            asset.id,
            share.id,
            asset.owner_id,
            new.features,
            &new.invitation_message,
            expires_at,
            &participants,
            now,
        )
        .await?;
    let out = session_out(&state, &session).await?;
    send_invitations(&state, &user, &asset, &session, &out.participants);
    tracing::info!(session = %session.uuid, asset = asset.id, participants = participants.len(), "collaboration session started");
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

/// The session if `user` is its owner or a current participant (404 otherwise).
pub async fn member_session(state: &AppState, user: &User, uuid: &str) -> AppResult<Session> {
    let s = state.store.session_by_uuid(uuid).await?.ok_or(AppError::NotFound("session"))?;
    if s.owner_id == user.id || state.store.is_participant(s.id, user.id).await? {
        Ok(s)
    } else {
        Err(AppError::NotFound("session"))
    }
}

async fn owned_session(state: &AppState, user: &User, uuid: &str) -> AppResult<Session> {
    let s = member_session(state, user, uuid).await?;
    if s.owner_id != user.id {
        return Err(AppError::forbidden("only the session's owner can do this"));
    }
    Ok(s)
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
    let s = member_session(&state, &user, &id).await?;
    let mut o = session_out(&state, &s).await?;
    if s.owner_id != user.id {
        o.participants.retain(|p| p.user_id.is_some());
    }
    Ok(axum::Json(o))
}

/// Ends `sessions` (their asset or link is gone): each member is told (`session_ended`) and
/// their sockets close, on every instance; the recordings stay.
pub async fn end_sessions(state: &AppState, sessions: Vec<Session>) -> AppResult<()> {
    let now = state.clock.now_ms();
    for s in sessions {
        if let Some(e) = state.store.end_session(&s, now).await? {
            state.rooms.publish(&e);
        }
    }
    Ok(())
}

async fn end_session(state: &AppState, user: &User, id: &str) -> AppResult<axum::Json<SessionOut>> {
    let s = owned_session(state, user, id).await?;
    let now = state.clock.now_ms();
    if let Some(reason) = s.over(now) {
        return Err(AppError::Gone { code: "session_over", message: format!("the session has already {reason}") });
    }
    if let Some(e) = state.store.end_session(&s, now).await? {
        state.rooms.publish(&e);
    }
    // The link ends with the session.
    state.store.revoke_share(s.share_id).await?;
    let s = state.store.session_by_uuid(&s.uuid).await?.ok_or(AppError::NotFound("session"))?;
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
    let s = owned_session(&state, &user, &id).await?;
    let now = state.clock.now_ms();
    if let Some(reason) = s.over(now) {
        return Err(AppError::Gone { code: "session_over", message: format!("the session has {reason}") });
    }
    let email = parse_email(body.email.as_deref().unwrap_or("")).map_err(|why| AppError::validation("email", why))?;
    let np = new_participants(&state, std::slice::from_ref(&email)).await?.remove(0);
    if !state.store.add_participant(s.id, &np, now).await? {
        return Err(AppError::Conflict { code: "already_participant", message: format!("{email} already takes part") });
    }
    // The link follows the participants.
    let mut share = state.store.share_by_id(s.share_id).await?.ok_or(AppError::NotFound("session"))?;
    if !share.allowed_emails.contains(&email) {
        share.allowed_emails.push(email.clone());
        state.store.update_share(share.id, &ShareSettings::of(&share), None).await?;
    }
    let p = state
        .store
        .participants(s.id)
        .await?
        .into_iter()
        .find(|p| p.email == email)
        .ok_or_else(|| anyhow::anyhow!("participant vanished"))?;
    let out = participant_out(&state, &p, &share.uuid);
    if let Some(asset) = state.store.asset(s.asset_id).await? {
        send_invitations(&state, &user, &asset, &s, std::slice::from_ref(&out));
    }
    let note = serde_json::json!({"kind": "participant_added", "message": format!("{} was invited", p.email)});
    state.rooms.emit(&s.room(), "notification", note).await?;
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
    let s = owned_session(&state, &user, &id).await?;
    let who = who.trim().to_lowercase();
    let p = state
        .store
        .participants(s.id)
        .await?
        .into_iter()
        .filter(|p| p.removed_at.is_none())
        .find(|p| p.email == who || p.user_id.is_some_and(|u| u.to_string() == who))
        .ok_or(AppError::NotFound("participant"))?;
    let name = match p.user_id {
        Some(u) => state.store.user_by_id(u).await?.map(|u| u.name).unwrap_or_default(),
        None => String::new(),
    };
    let events = state
        .store
        .remove_participant(&s, &p, serde_json::json!({"user_id": p.user_id, "name": name}), state.clock.now_ms())
        .await?;
    state.rooms.publish_all(&events);
    let mut share = state.store.share_by_id(s.share_id).await?.ok_or(AppError::NotFound("session"))?;
    share.allowed_emails.retain(|e| *e != p.email);
    // A private link with an empty list would admit every account: keep the owner's only.
    if share.allowed_emails.is_empty()
        && let Some(owner) = state.store.user_by_id(s.owner_id).await?
    {
        share.allowed_emails.push(owner.email);
    }
    state.store.update_share(share.id, &ShareSettings::of(&share), None).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecordedEvent {
    /// Null for cursor samples.
    pub seq: Option<i64>,
    #[serde(rename = "type")]
    pub kind: String,
    pub at: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecordingOut {
    pub session_id: String,
    pub events: Vec<RecordedEvent>,
}

/// Most events and cursor samples returned by one recording.
const RECORDING_LIMIT: i64 = 200_000;

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
    let s = member_session(&state, &user, &id).await?;
    Ok(axum::Json(recording_of(&state, &s).await?))
}

pub async fn recording_of(state: &AppState, s: &Session) -> AppResult<RecordingOut> {
    let room = s.room();
    let events = state.store.room_events(&room, 0, i64::MAX, RECORDING_LIMIT).await?;
    let samples = state.store.cursor_samples(&room, RECORDING_LIMIT).await?;
    let names: std::collections::HashMap<i64, String> = events
        .iter()
        .filter_map(|e| {
            Some((e.data.pointer("/user/user_id")?.as_i64()?, e.data.pointer("/user/name")?.as_str()?.to_string()))
        })
        .collect();
    // Durable events keep their seq order (their `at` is when each change was made, and
    // concurrent changes may commit in another order); cursor samples, in time order, go
    // before the first durable event that is later than them.
    let mut samples = samples.into_iter().peekable();
    let mut all = Vec::new();
    for e in events {
        while let Some(c) = samples.next_if(|c| c.at < e.at) {
            all.push(sample_event(&names, c));
        }
        all.push(RecordedEvent { seq: Some(e.seq), kind: e.kind, at: rfc3339(e.at), data: e.data });
    }
    all.extend(samples.map(|c| sample_event(&names, c)));
    Ok(RecordingOut { session_id: s.uuid.clone(), events: all })
}

/// A cursor sample as the recording shows it, with the name its user had in the session.
fn sample_event(names: &std::collections::HashMap<i64, String>, c: crate::store::rooms::CursorSample) -> RecordedEvent {
    let data = serde_json::json!({"user_id": c.user_id, "name": names.get(&c.user_id), "x": c.x, "y": c.y});
    RecordedEvent { seq: None, kind: "cursor_position".into(), at: rfc3339(c.at), data }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct WsQuery {
    /// An access token (or the page session cookie, same-origin pages only).
    pub token: Option<String>,
    /// The last `seq` the client saw: what came after it is replayed.
    pub last_seq: Option<i64>,
}

/// The account behind a WebSocket upgrade: `?token=`, or the session cookie of a same-origin page
/// (a cross-site page cannot ride the cookie: its Origin is refused).
pub async fn socket_user(state: &AppState, headers: &HeaderMap, token: Option<&str>) -> AppResult<SignedIn> {
    if let Some(t) = token.filter(|t| !t.is_empty()) {
        return crate::http::extract::access_session(state, t).await;
    }
    let cookie = crate::http::extract::cookie_in(headers, crate::http::extract::SESSION_COOKIE)
        .ok_or_else(|| AppError::Unauthenticated("add ?token=<access token>".into()))?;
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()).unwrap_or("");
    if !crate::http::extract::same_origin(origin, state.config.base_url()) {
        return Err(AppError::Forbidden { code: "csrf_failed", message: "cross-site WebSocket refused".into() });
    }
    crate::http::extract::page_session(state, &cookie).await
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
    let SignedIn { user, session_id: login, .. } = socket_user(&state, &headers, q.token.as_deref()).await?;
    let session = state.store.session_by_uuid(&session_id).await?.ok_or(AppError::NotFound("session"))?;
    if session.owner_id != user.id && !state.store.is_participant(session.id, user.id).await? {
        return Err(AppError::forbidden("you are not a participant of this session"));
    }
    if let Some(reason) = session.over(state.clock.now_ms()) {
        return Err(AppError::Gone { code: "session_over", message: format!("the session has {reason}") });
    }
    let asset = state.store.asset(session.asset_id).await?.ok_or(AppError::NotFound("session"))?;
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let member = Box::new(crate::realtime::collaboration::Member { session, asset, user, login, ip, user_agent });
    Ok(crate::realtime::socket::upgrade(state, ws, move |state, socket| {
        crate::realtime::collaboration::serve(state, member, q.last_seq, socket)
    }))
}
