//! Collaboration sessions (SPEC §4): start one with its private link and participants, invite and
//! remove people, end sessions, who may join, what members see of the asset, the recording.

use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::blob::token::{Disposition, Grant};
use crate::domain::assets::{Asset, preview_kind};
use crate::domain::audit::{AuditAction, AuditEntry, Who};
use crate::domain::collaboration::{NewSession, Participant, Session};
use crate::domain::shares::{Share, ShareSettings, ShareType, preview_is_rendition, watermark_text};
use crate::domain::time::rfc3339;
use crate::domain::users::User;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::store::collaboration::NewParticipant;

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

/// The collaboration page of a session's link.
pub fn collaboration_url(state: &AppState, share_uuid: &str) -> String {
    format!("{}/collaborate/{share_uuid}/", state.config.base_url())
}

/// Where a participant joins: the collaboration page (an account), or their personal invitation
/// to create an account.
pub fn invite_url(state: &AppState, p: &Participant, share_uuid: &str) -> String {
    match p.user_id {
        Some(_) => collaboration_url(state, share_uuid),
        None => format!("{}/invite/{}/", state.config.base_url(), invite_token(state, p)),
    }
}

/// Where the members of a session reviewed through `share_uuid` see an image of a preview-only
/// link: the rendition route of the review (`pages::collaboration::preview`).
pub fn review_preview_url(state: &AppState, share_uuid: &str) -> String {
    format!("{}/collaborate/{share_uuid}/preview/", state.config.base_url())
}

/// What the session's members are looking at, by the rule of the session's link `share` (the
/// share page's): an image of a preview-only link is never sent as stored, its `content_url` is
/// the review's rendition route (re-encoded, watermarked when the link has a watermark); other
/// media a browser shows safely get a signed inline URL; a download URL when both the session and
/// the link allow it; `watermark`, the text tiled over PDF pages on a watermarked link (the
/// viewer's e-mail on the private link of a session).
pub fn asset_summary(
    state: &AppState,
    a: &Asset,
    share: &Share,
    allow_download: bool,
    viewer_email: Option<&str>,
) -> serde_json::Value {
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
    let content_url = (kind != "file").then(|| {
        if preview_is_rendition(share, &a.mime_type) {
            review_preview_url(state, &share.uuid)
        } else {
            state.blobs.signed_url(grant(Disposition::Inline))
        }
    });
    let download_url =
        (allow_download && share.allow_download).then(|| state.blobs.signed_url(grant(Disposition::Attachment)));
    let watermark = share.watermark.then(|| watermark_text(share, viewer_email, state.clock.now_ms()));
    serde_json::json!({
        "id": a.id, "title": a.title, "media_type": kind, "mime_type": a.mime_type, "width": a.width,
        "height": a.height, "duration_seconds": a.duration_seconds, "content_url": content_url,
        "download_url": download_url, "watermark": watermark,
    })
}

/// Invitations by e-mail (when SMTP is configured).
fn send_invitations(
    state: &AppState,
    owner: &User,
    asset: &Asset,
    s: &Session,
    invited: &[Participant],
    share_uuid: &str,
) {
    if !state.mailer.enabled() {
        return;
    }
    for p in invited {
        let invite_url = invite_url(state, p, share_uuid);
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
                invite_url
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

/// The session if `user` is its owner or a current participant (404 otherwise).
pub async fn member_session(state: &AppState, user: &User, uuid: &str) -> AppResult<Session> {
    let s = state.store.session_by_uuid(uuid).await?.ok_or(AppError::NotFound("session"))?;
    if s.owner_id == user.id || state.store.is_participant(s.id, user.id).await? {
        Ok(s)
    } else {
        Err(AppError::NotFound("session"))
    }
}

/// The session if `user` owns it (403 for a participant, 404 for anyone else).
pub async fn owned_session(state: &AppState, user: &User, uuid: &str) -> AppResult<Session> {
    let s = member_session(state, user, uuid).await?;
    if s.owner_id != user.id {
        return Err(AppError::forbidden("only the session's owner can do this"));
    }
    Ok(s)
}

/// Ends `sessions` (their asset or link is gone): each member is told (`session_ended`) and
/// their sockets close, on every instance; the recordings stay.
pub async fn end_sessions(state: &AppState, sessions: Vec<Session>) -> AppResult<()> {
    let now = state.clock.now_ms();
    for s in sessions {
        if s.ended_at.is_none() && s.expires_at <= now {
            // Expired before its asset or link went: its end is the expiry.
            expire(state, &s).await?;
            continue;
        }
        let event = crate::service::webhooks::session_ended_event(&s, now, "ended");
        if let Some(e) = state.store.end_session(&s, now, Some(&event)).await? {
            state.rooms.publish(&e);
        }
    }
    Ok(())
}

/// Records the end of `s` if it has expired and nobody recorded it yet: its members are told
/// (`session_ended`, reason `expired`) and `collaboration.session_ended` is queued, once however
/// many instances, sockets and sweeps call this (the store's conditional UPDATE is the claim).
/// Returns whether this call recorded it.
pub async fn expire(state: &AppState, s: &Session) -> AppResult<bool> {
    let now = state.clock.now_ms();
    if s.ended_at.is_some() || s.expires_at > now {
        return Ok(false);
    }
    let event = crate::service::webhooks::session_ended_event(s, s.expires_at, "expired");
    match state.store.expire_session(s, now, &event).await? {
        Some(e) => {
            state.rooms.publish(&e);
            tracing::info!(session = %s.uuid, "collaboration session expired");
            Ok(true)
        }
        None => Ok(false),
    }
}

/// `expire` for the session with id `id` (a socket that saw it expire).
pub async fn expire_by_id(state: &AppState, id: i64) -> AppResult<bool> {
    match state.store.session_by_id(id).await? {
        Some(s) => expire(state, &s).await,
        None => Ok(false),
    }
}

/// Sessions whose expiry is recorded per round at most (the next round takes the rest).
const EXPIRY_BATCH: i64 = 500;

/// Records the end of every session that has expired (`expire` for each); returns how many this
/// call recorded.
pub async fn expire_due(state: &AppState) -> AppResult<usize> {
    let due = state.store.expired_sessions(state.clock.now_ms(), EXPIRY_BATCH).await?;
    let mut n = 0;
    for s in &due {
        n += usize::from(expire(state, s).await?);
    }
    Ok(n)
}

#[derive(Debug, Serialize, ToSchema)]
/// One event of a session's recording.
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
/// A session's recording.
pub struct RecordingOut {
    pub session_id: String,
    pub events: Vec<RecordedEvent>,
}

/// Most events and cursor samples returned by one recording.
const RECORDING_LIMIT: i64 = 200_000;

/// Everything that happened in a session, in time order: durable events with their seq, and the
/// sampled cursor tracks.
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

/// The actor of a session's changes to its link (the service has no client address).
fn session_actor(user: &User) -> Who {
    Who { actor_id: Some(user.id), ip: None }
}

/// The audit entry of a session link whose participants changed.
fn participants_changed(user: &User, share: &crate::domain::shares::Share, s: &Session) -> AuditEntry {
    let details = serde_json::json!({"uuid": share.uuid, "via": "collaboration", "session": s.uuid,
        "allowed_emails": share.allowed_emails});
    session_actor(user).entry(AuditAction::ShareUpdated, share.id, details)
}

/// Starts a collaboration session on `asset` (the caller's, checked by the caller): its private
/// link (comments and collaboration on, open to the participants), the participants (accounts
/// linked, others invited), and the invitations by e-mail.
pub async fn start(state: &AppState, user: &User, asset: &Asset, new: &NewSession) -> AppResult<Session> {
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
    let target = crate::domain::shares::ShareTarget::Asset(asset.id);
    let mut details = crate::service::shares::audit_details(&share_uuid, target, &settings);
    details["via"] = serde_json::json!("collaboration");
    let audit = |id: i64| session_actor(user).entry(AuditAction::ShareCreated, id, details);
    // The session's own link: `collaboration.session_ended` reports on the session.
    let share =
        state.store.insert_share(&share_uuid, target, asset.owner_id, &settings, None, now, audit, |_| None).await?;
    let participants = new_participants(state, &new.emails).await?;
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
    let invited = state.store.participants(session.id).await?;
    send_invitations(state, user, asset, &session, &invited, &share.uuid);
    tracing::info!(session = %session.uuid, asset = asset.id, participants = participants.len(), "collaboration session started");
    Ok(session)
}

/// Ends a live session (its owner only): every socket receives `session_ended` and is closed,
/// and its link is revoked. Returns the session as it is now.
pub async fn end(state: &AppState, user: &User, uuid: &str) -> AppResult<Session> {
    let s = owned_session(state, user, uuid).await?;
    let now = state.clock.now_ms();
    if let Some(reason) = s.over(now) {
        return Err(AppError::Gone {
            code: ErrorCode::SessionOver,
            message: format!("the session has already {reason}"),
        });
    }
    let event = crate::service::webhooks::session_ended_event(&s, now, "ended");
    if let Some(e) = state.store.end_session(&s, now, Some(&event)).await? {
        state.rooms.publish(&e);
    }
    // The link ends with the session.
    let details = serde_json::json!({"via": "collaboration", "session": s.uuid});
    let entry = session_actor(user).entry(AuditAction::ShareRevoked, s.share_id, details);
    state.store.revoke_share(s.share_id, now, &entry, None).await?;
    state.store.session_by_uuid(&s.uuid).await?.ok_or(AppError::NotFound("session"))
}

/// Invites one more person to a live session (its owner only): the link admits them, they get
/// the invitation, and the members are told. Returns the participant and the link's uuid.
pub async fn add_participant(
    state: &AppState,
    user: &User,
    uuid: &str,
    email: &str,
) -> AppResult<(Participant, String)> {
    let s = owned_session(state, user, uuid).await?;
    let now = state.clock.now_ms();
    if let Some(reason) = s.over(now) {
        return Err(AppError::Gone { code: ErrorCode::SessionOver, message: format!("the session has {reason}") });
    }
    let email = crate::domain::collaboration::parse_email(email).map_err(|why| AppError::validation("email", why))?;
    let np = new_participants(state, std::slice::from_ref(&email)).await?.remove(0);
    if !state.store.add_participant(s.id, &np, now).await? {
        return Err(AppError::Conflict {
            code: ErrorCode::AlreadyParticipant,
            message: format!("{email} already takes part"),
        });
    }
    // The link follows the participants.
    let mut share = state.store.share_by_id(s.share_id).await?.ok_or(AppError::NotFound("session"))?;
    if !share.allowed_emails.contains(&email) {
        share.allowed_emails.push(email.clone());
        let entry = participants_changed(user, &share, &s);
        state.store.update_share(share.id, &ShareSettings::of(&share), None, state.clock.now_ms(), &entry).await?;
    }
    let p = state
        .store
        .participants(s.id)
        .await?
        .into_iter()
        .find(|p| p.email == email)
        .ok_or_else(|| anyhow::anyhow!("participant vanished"))?;
    if let Some(asset) = state.store.asset(s.asset_id).await? {
        send_invitations(state, user, &asset, &s, std::slice::from_ref(&p), &share.uuid);
    }
    let note = serde_json::json!({"kind": "participant_added", "message": format!("{} was invited", p.email)});
    state.rooms.emit(&s.room(), "notification", note).await?;
    Ok((p, share.uuid))
}

/// Removes a participant (owner only), by account id or e-mail: their open sockets are closed and
/// the link no longer admits them.
pub async fn remove_participant(state: &AppState, user: &User, uuid: &str, who: &str) -> AppResult<()> {
    let s = owned_session(state, user, uuid).await?;
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
    let entry = participants_changed(user, &share, &s);
    state.store.update_share(share.id, &ShareSettings::of(&share), None, state.clock.now_ms(), &entry).await?;
    Ok(())
}

/// The session `user` may join live now, with its asset: 403 for a non-member, 410 once over.
pub async fn joinable(state: &AppState, user: &User, uuid: &str) -> AppResult<(Session, Asset)> {
    let session = state.store.session_by_uuid(uuid).await?.ok_or(AppError::NotFound("session"))?;
    if session.owner_id != user.id && !state.store.is_participant(session.id, user.id).await? {
        return Err(AppError::forbidden("you are not a participant of this session"));
    }
    if let Some(reason) = session.over(state.clock.now_ms()) {
        return Err(AppError::Gone { code: ErrorCode::SessionOver, message: format!("the session has {reason}") });
    }
    let asset = state.store.asset(session.asset_id).await?.ok_or(AppError::NotFound("session"))?;
    Ok((session, asset))
}
