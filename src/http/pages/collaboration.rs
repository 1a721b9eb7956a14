//! Collaboration pages: the live review `/collaborate/{share_uuid}/`, its replay, and the
//! invitation page where someone invited by e-mail creates their account.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{check_csrf, csrf_token, session_cookie, with_cookie};
use crate::app::AppState;
use crate::domain::assets::preview_kind;
use crate::domain::collaboration::{Participant, Session};
use crate::domain::shares::{Share, preview_is_rendition, watermark_text};
use crate::domain::time::rfc3339;
use crate::domain::users::{NewUser, User};
use crate::error::{AppError, ErrorResponse};
use crate::http::extract::{ApiForm, ApiPath, CsrfCookie, PageUser};
use crate::http::pages::shares::files::{Source, image_rendition};
use crate::service::collaboration::{asset_summary, participant_of_invite};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(page))
        .routes(routes!(replay))
        .routes(routes!(preview))
        .routes(routes!(invite_form, accept_invite))
}

#[derive(Template)]
#[template(path = "collaboration/page.html")]
struct CollaborationPage {
    shell: super::Shell,
    title: String,
    session_id: String,
    asset_id: i64,
    share_uuid: String,
    media: String,
    preview_url: Option<String>,
    /// The text tiled over PDF pages (a watermarked link).
    watermark: Option<String>,
    user_name: String,
    expires_at: String,
    cursor_tracking: bool,
    voice_chat: bool,
    screen_sharing: bool,
    replay_url: String,
}

#[derive(Template)]
#[template(path = "collaboration/replay.html")]
struct ReplayPage {
    shell: super::Shell,
    title: String,
    session_id: String,
    media: String,
    preview_url: Option<String>,
    /// The text tiled over PDF pages (a watermarked link).
    watermark: Option<String>,
    recording_url: String,
}

#[derive(Template)]
#[template(path = "collaboration/invite.html")]
struct InvitePage {
    shell: super::Shell,
    csrf: String,
    action: String,
    email: String,
    name: String,
    asset_title: String,
    owner_name: String,
    message: String,
    error: Option<String>,
}

/// The session reviewing through `share_uuid` that `user` belongs to (and that link), or the page
/// to show instead.
async fn member_session(state: &AppState, user: &User, share_uuid: &str) -> Result<(Session, Share), Response> {
    let not_found =
        || super::error_page(StatusCode::NOT_FOUND, "Session not found", "There is no review session at this address.");
    let fail = |e: AppError| super::error_page(e.status(), "Something went wrong", &e.public_message());
    let share = match state.store.share_by_uuid(share_uuid).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(not_found()),
        Err(e) => return Err(fail(e.into())),
    };
    let session = match state.store.latest_session_of_share(share.id).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(not_found()),
        Err(e) => return Err(fail(e.into())),
    };
    let member = session.owner_id == user.id || state.store.is_participant(session.id, user.id).await.unwrap_or(false);
    if !member {
        return Err(super::error_page(
            StatusCode::FORBIDDEN,
            "Not invited",
            "This review session was not shared with your account.",
        ));
    }
    Ok((session, share))
}

/// The live review page (participants and the owner; others are asked to sign in).
#[utoipa::path(get, path = "/collaborate/{share_uuid}", tag = "pages", params(("share_uuid" = String, Path, description = "the session's share uuid")),
    responses((status = 200, description = "HTML", content_type = "text/html"), (status = 303, description = "sign in first"),
        (status = 403, description = "not invited"), (status = 404, description = "no such session"), (status = 410, description = "the session is over")))]
pub async fn page(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    shell: super::Shell,
    ApiPath(uuid): ApiPath<String>,
) -> Response {
    let Some(user) = user else {
        return Redirect::to(&format!("/login?next=/collaborate/{}/", super::url_segment(&uuid))).into_response();
    };
    let (session, share) = match member_session(&state, &user, &uuid).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Some(reason) = session.over(state.clock.now_ms()) {
        return super::error_page(
            StatusCode::GONE,
            "This session is over",
            &format!("The review session has {reason}. Its replay stays available at /collaborate/{uuid}/replay/."),
        );
    }
    let Ok(Some(asset)) = state.store.asset(session.asset_id).await else {
        return super::error_page(StatusCode::NOT_FOUND, "Session not found", "The file under review was deleted.");
    };
    let summary = asset_summary(&state, &asset, &share, session.features.allow_download, Some(&user.email));
    super::render(&CollaborationPage {
        shell,
        title: asset.title.clone(),
        session_id: session.uuid.clone(),
        asset_id: asset.id,
        share_uuid: uuid.clone(),
        media: preview_kind(&asset).to_string(),
        preview_url: summary["content_url"].as_str().map(str::to_string),
        watermark: summary["watermark"].as_str().map(str::to_string),
        user_name: user.name.clone(),
        expires_at: rfc3339(session.expires_at),
        cursor_tracking: session.features.cursor_tracking,
        voice_chat: session.features.voice_chat,
        screen_sharing: session.features.screen_sharing,
        replay_url: format!("/collaborate/{uuid}/replay/"),
    })
}

/// Plays a session back on a timeline (participants and the owner, during and after the session).
#[utoipa::path(get, path = "/collaborate/{share_uuid}/replay", tag = "pages", params(("share_uuid" = String, Path, description = "the session's share uuid")),
    responses((status = 200, description = "HTML", content_type = "text/html"), (status = 303, description = "sign in first"),
        (status = 403, description = "not invited"), (status = 404, description = "no such session")))]
pub async fn replay(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    shell: super::Shell,
    ApiPath(uuid): ApiPath<String>,
) -> Response {
    let Some(user) = user else {
        return Redirect::to(&format!("/login?next=/collaborate/{}/replay/", super::url_segment(&uuid)))
            .into_response();
    };
    let (session, share) = match member_session(&state, &user, &uuid).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Ok(Some(asset)) = state.store.asset(session.asset_id).await else {
        return super::error_page(StatusCode::NOT_FOUND, "Session not found", "The reviewed file was deleted.");
    };
    let summary = asset_summary(&state, &asset, &share, false, Some(&user.email));
    super::render(&ReplayPage {
        shell,
        title: asset.title.clone(),
        session_id: session.uuid.clone(),
        media: preview_kind(&asset).to_string(),
        preview_url: summary["content_url"].as_str().map(str::to_string),
        watermark: summary["watermark"].as_str().map(str::to_string),
        recording_url: format!("/api/v3/collaboration/sessions/{}/recording/", session.uuid),
    })
}

/// The image under review, for the session's members, when the session's link is preview-only:
/// a re-encoded rendition (watermarked with the member's e-mail when the link has a watermark),
/// never the stored bytes; the same rule as the link's own share page. Other files and links are
/// shown from signed URLs, and this route answers 404 for them.
#[utoipa::path(get, path = "/collaborate/{share_uuid}/preview", tag = "pages", params(("share_uuid" = String, Path, description = "the session's share uuid")),
    responses((status = 200, description = "the image rendition"), (status = 304, description = "not modified"),
        (status = 401, description = "not signed in", body = ErrorResponse), (status = 403, description = "not invited", body = ErrorResponse),
        (status = 404, description = "no such session, or no rendition for this file", body = ErrorResponse)))]
pub async fn preview(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    ApiPath(uuid): ApiPath<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let Some(user) = user else {
        return AppError::Unauthenticated("sign in to see this review session".into()).into_response();
    };
    let (session, share) = match member_session(&state, &user, &uuid).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let asset = match state.store.asset(session.asset_id).await {
        Ok(Some(a)) => a,
        Ok(None) => return AppError::NotFound("file").into_response(),
        Err(e) => return AppError::from(e).into_response(),
    };
    if !preview_is_rendition(&share, &asset.mime_type) {
        return AppError::NotFound("rendition").into_response();
    }
    let text = share.watermark.then(|| watermark_text(&share, Some(&user.email), state.clock.now_ms()));
    let src = Source {
        key: &asset.blob_key,
        mime: &asset.mime_type,
        size: asset.size,
        tag: &asset.sha256,
        name: &asset.name,
    };
    image_rendition(&state, &headers, text, src, &method).await.unwrap_or_else(IntoResponse::into_response)
}

/// Where an accepted invitation leads.
async fn destination(state: &AppState, p: &Participant) -> String {
    match state.store.session_share_uuid(p.session_id).await {
        Ok(Some(uuid)) => format!("/collaborate/{uuid}/"),
        _ => "/".to_string(),
    }
}

async fn invite_page(
    state: &AppState,
    shell: super::Shell,
    p: &Participant,
    csrf: String,
    token: &str,
    name: String,
    error: Option<String>,
) -> InvitePage {
    let (asset_title, owner_name, message) = match state.store.session_by_id(p.session_id).await {
        Ok(Some(s)) => {
            let asset = state.store.asset(s.asset_id).await.ok().flatten().map(|a| a.title).unwrap_or_default();
            let owner = state.store.user_by_id(s.owner_id).await.ok().flatten().map(|u| u.name).unwrap_or_default();
            (asset, owner, s.invitation_message)
        }
        _ => Default::default(),
    };
    InvitePage {
        shell,
        csrf,
        action: format!("/invite/{token}/"),
        email: p.email.clone(),
        name,
        asset_title,
        owner_name,
        message,
        error,
    }
}

/// The participant of a valid invitation not yet accepted; otherwise the page to show instead
/// (404, or the session for an invitation already accepted).
async fn pending_invitation(state: &AppState, token: &str) -> Result<Participant, Response> {
    let p = match participant_of_invite(state, token).await {
        Ok(Some(p)) => p,
        _ => return Err(invalid_invitation()),
    };
    if p.user_id.is_some() {
        return Err(Redirect::to(&destination(state, &p).await).into_response());
    }
    Ok(p)
}

fn invalid_invitation() -> Response {
    super::error_page(
        StatusCode::NOT_FOUND,
        "Invitation not found",
        "This invitation link is not valid any more. Ask the person who invited you for a new one.",
    )
}

/// The invitation: someone invited by e-mail chooses a name and a password for their account.
#[utoipa::path(get, path = "/invite/{token}", tag = "pages", params(("token" = String, Path, description = "invitation token")),
    responses((status = 200, description = "HTML form", content_type = "text/html"), (status = 303, description = "already accepted"),
        (status = 404, description = "unknown invitation")))]
pub async fn invite_form(
    State(state): State<AppState>,
    shell: super::Shell,
    csrf: CsrfCookie,
    ApiPath(token): ApiPath<String>,
) -> Response {
    let p = match pending_invitation(&state, &token).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let (csrf_value, set) = csrf_token(&csrf, state.config.secure_cookies());
    with_cookie(super::render(&invite_page(&state, shell, &p, csrf_value, &token, String::new(), None).await), set)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct InviteForm {
    pub name: Option<String>,
    pub password: Option<String>,
    pub csrf_token: Option<String>,
}

/// Creates the invited person's account (with the invited e-mail address), signs them in and
/// opens the session. Works even when registration is closed: the invitation is the permission.
#[utoipa::path(post, path = "/invite/{token}", tag = "pages", params(("token" = String, Path, description = "invitation token")),
    request_body(content = InviteForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "account created, signed in"), (status = 400, description = "the form again", content_type = "text/html"),
        (status = 403, description = "CSRF check failed"), (status = 404, description = "unknown invitation")))]
pub async fn accept_invite(
    State(state): State<AppState>,
    shell: super::Shell,
    csrf: CsrfCookie,
    ip: crate::http::extract::ClientIp,
    ApiPath(token): ApiPath<String>,
    ApiForm(form): ApiForm<InviteForm>,
) -> Response {
    let p = match pending_invitation(&state, &token).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let (csrf_value, set) = csrf_token(&csrf, state.config.secure_cookies());
    let name = form.name.clone().unwrap_or_default();
    let again = |status: StatusCode, why: String| {
        let state = state.clone();
        let p = p.clone();
        let csrf_value = csrf_value.clone();
        let token = token.clone();
        let name = name.clone();
        let set = set.clone();
        async move {
            let mut r = super::render(&invite_page(&state, shell, &p, csrf_value, &token, name, Some(why)).await);
            *r.status_mut() = status;
            with_cookie(r, set)
        }
    };
    if let Err(e) = check_csrf(&csrf, form.csrf_token.as_deref()) {
        return again(e.status(), e.public_message()).await;
    }
    let new = match NewUser::parse(Some(&p.email), form.password.as_deref(), form.name.as_deref(), Some("user")) {
        Ok(n) => n,
        Err(e) => return again(StatusCode::BAD_REQUEST, e.public_message()).await,
    };
    let who = crate::service::audit::who(&state, None, Some(ip.0));
    let user =
        match crate::service::auth::create_account(&state, new, &who, crate::service::auth::Via::Invitation).await {
            Ok(u) => u,
            Err(AppError::Conflict { .. }) => {
                return again(
                    StatusCode::CONFLICT,
                    "An account with this e-mail address already exists: sign in instead.".into(),
                )
                .await;
            }
            Err(e) => return again(e.status(), e.public_message()).await,
        };
    // The invitation proved the mailbox: every pending invitation of this address is now theirs.
    if let Err(e) = state.store.link_invitations(&p.email, user.id).await {
        return AppError::from(e).into_response();
    }
    let jwt = match super::auth::start_page_session(&state, user.id, None).await {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let mut r = Redirect::to(&destination(&state, &p).await).into_response();
    *r.status_mut() = StatusCode::SEE_OTHER;
    with_cookie(with_cookie(r, session_cookie(&state, jwt)), set)
}
