//! Share links (SPEC §2): their public URLs, creating one from validated settings, and which links
//! a user may manage.

use serde_json::json;

use crate::app::AppState;
use crate::domain::audit::{AuditAction, Who};
use crate::domain::collections::Collection;
use crate::domain::shares::{Share, ShareSettings, ShareSettingsIn, ShareTarget};
use crate::domain::time::rfc3339;
use crate::domain::users::User;
use crate::domain::webhooks::EventType;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::service::assets::visible_asset;

/// The public page of a link.
pub fn share_url(state: &AppState, uuid: &str) -> String {
    format!("{}/share/{uuid}/", state.config.base_url())
}

/// The `<iframe>` that embeds a link's player.
pub fn embed_code(state: &AppState, uuid: &str) -> String {
    format!(
        "<iframe src='{}/embed/{uuid}/' width='600' height='400' frameborder='0' allowfullscreen></iframe>",
        state.config.base_url()
    )
}

/// Creates a link on an asset from validated settings (the API and the owner's page form).
pub async fn create_share(
    state: &AppState,
    user: &User,
    asset_id: i64,
    input: ShareSettingsIn,
    who: &Who,
) -> AppResult<Share> {
    let asset = visible_asset(state, user, asset_id).await?;
    insert(state, user, ShareTarget::Asset(asset.id), asset.owner_id, &asset.title, input, who).await
}

/// A collection the caller may share: their own, or any for an administrator; others get 404.
pub async fn shareable_collection(state: &AppState, user: &User, collection_id: i64) -> AppResult<Collection> {
    match state.store.collection(collection_id).await? {
        Some(c) if c.owner_id == user.id || user.is_admin() => Ok(c),
        _ => Err(AppError::NotFound("collection")),
    }
}

/// Creates a link on a collection (SPEC §10): the same settings and rules as an asset link; the
/// title defaults to the collection's. The link belongs to the collection's owner.
pub async fn create_collection_share(
    state: &AppState,
    user: &User,
    collection_id: i64,
    input: ShareSettingsIn,
    who: &Who,
) -> AppResult<Share> {
    let c = shareable_collection(state, user, collection_id).await?;
    insert(state, user, ShareTarget::Collection(c.id), c.owner_id, &c.title, input, who).await
}

/// What the audit log says about a link's settings (never its password).
pub fn audit_details(uuid: &str, target: ShareTarget, s: &ShareSettings) -> serde_json::Value {
    let mut d = json!({
        "uuid": uuid,
        "share_type": s.share_type.as_str(),
        "expires_at": s.expires_at.map(rfc3339),
        "max_downloads": s.max_downloads,
        "allow_download": s.allow_download,
    });
    match target {
        ShareTarget::Asset(a) => d["asset_id"] = json!(a),
        ShareTarget::Collection(c) => d["collection_id"] = json!(c),
    }
    d
}

async fn insert(
    state: &AppState,
    user: &User,
    target: ShareTarget,
    owner_id: i64,
    title: &str,
    input: ShareSettingsIn,
    who: &Who,
) -> AppResult<Share> {
    state.limits.share_create_per_user.check(user.id).await?;
    // One instant for created_at and for the expiry computed from expires_in_hours.
    let now = state.clock.now_ms();
    let policy = crate::service::policies::current(state).await?;
    let settings = ShareSettings::parse(input, &ShareSettings::defaults(title), false, now, &policy, true)?;
    let hash = match &settings.new_password {
        Some(p) => Some(state.auth.hash_password(p).await?),
        None => None,
    };
    let uuid = uuid::Uuid::new_v4().to_string();
    let details = audit_details(&uuid, target, &settings);
    let audit = |id: i64| who.entry(AuditAction::ShareCreated, id, details);
    let share = state
        .store
        .insert_share(&uuid, target, owner_id, &settings, hash.as_deref(), now, audit, |s| {
            Some(crate::service::webhooks::share_event(state, EventType::ShareCreated, s))
        })
        .await?;
    tracing::info!(
        share_id = share.id,
        asset_id = share.asset_id(),
        collection_id = share.collection_id(),
        share_type = share.share_type.as_str(),
        "share link created"
    );
    Ok(share)
}

/// A link the caller owns (or any link, for admins); others get 404.
pub async fn owned_share(state: &AppState, user: &User, uuid: &str) -> AppResult<Share> {
    if uuid::Uuid::parse_str(uuid).is_err() {
        return Err(AppError::NotFound("share"));
    }
    match state.store.share_by_uuid(uuid).await? {
        Some(s) if s.owner_id == user.id || user.is_admin() => Ok(s),
        _ => Err(AppError::NotFound("share")),
    }
}

/// Changes a link's settings (the rules of create and the policy, on what the change sets; `null`
/// clears expiry or limit): the caller's own link (admins: any); a revoked one is 410.
pub async fn update(state: &AppState, user: &User, uuid: &str, input: ShareSettingsIn, who: &Who) -> AppResult<Share> {
    let s = owned_share(state, user, uuid).await?;
    if s.revoked_at.is_some() {
        return Err(AppError::Gone {
            code: ErrorCode::ShareRevoked,
            message: "a revoked link cannot be changed".into(),
        });
    }
    let now = state.clock.now_ms();
    let policy = crate::service::policies::current(state).await?;
    let settings = ShareSettings::parse(input, &ShareSettings::of(&s), s.password_hash.is_some(), now, &policy, false)?;
    let hash = match &settings.new_password {
        Some(p) => Some(state.auth.hash_password(p).await?),
        None => None,
    };
    let mut details = audit_details(&s.uuid, s.target, &settings);
    details["password_changed"] = json!(hash.is_some());
    let entry = who.entry(AuditAction::ShareUpdated, s.id, details);
    state.store.update_share(s.id, &settings, hash.as_deref(), now, &entry).await?;
    state.store.share_by_uuid(uuid).await?.ok_or(AppError::NotFound("share"))
}

/// Revokes a link: it answers 410 from now on (`share.revoked` goes out with it when it was live),
/// and a review session reached through it ends with it (its members are told and their sockets
/// close, on every instance).
pub async fn revoke(state: &AppState, share: &Share, who: &Who) -> AppResult<()> {
    let now = state.clock.now_ms();
    let entry = who.entry(AuditAction::ShareRevoked, share.id, json!({"uuid": share.uuid}));
    let mut revoked = share.clone();
    revoked.revoked_at = Some(now);
    let event = crate::service::webhooks::share_event(state, EventType::ShareRevoked, &revoked);
    state.store.revoke_share(share.id, now, &entry, Some(&event)).await?;
    crate::service::collaboration::end_sessions(state, state.store.open_sessions_of_share(share.id).await?).await?;
    tracing::info!(share_id = share.id, "share link revoked");
    Ok(())
}

/// Why [`check_link_password`] refused.
#[derive(Debug)]
pub enum PasswordRefused {
    /// Locked out after too many wrong passwords: retry after this many seconds (429).
    LockedOut(u64),
    /// The password is wrong (the failure is counted); `locked_out`: this failure started the
    /// lockout (the next attempts get 429).
    Wrong { locked_out: bool },
    /// Anything else (hashing, the limiter's store).
    Failed(AppError),
}

/// The one password check of protected share links and protected file requests: 429 while
/// `lock_key` is locked out; a wrong password counts a failure (the `share_password_max_failures`-th
/// starts the lockout), a right one forgets them.
pub async fn check_link_password(
    state: &AppState,
    lock_key: &str,
    hash: Option<&str>,
    password: &str,
) -> Result<(), PasswordRefused> {
    match state.limits.share_password.check(lock_key).await {
        Ok(()) => {}
        Err(AppError::RateLimited { retry_after_secs }) => return Err(PasswordRefused::LockedOut(retry_after_secs)),
        Err(e) => return Err(PasswordRefused::Failed(e)),
    }
    if !state.auth.verify_password(password, hash).await.map_err(PasswordRefused::Failed)? {
        state.limits.share_password.failure(lock_key).await;
        metrics::counter!("vitrine_share_password_failures_total").increment(1);
        // Whether this failure was the one that locked the key (for the audit log).
        let locked_out = state.limits.share_password.check(lock_key).await.is_err();
        return Err(PasswordRefused::Wrong { locked_out });
    }
    state.limits.share_password.success(lock_key).await;
    Ok(())
}
