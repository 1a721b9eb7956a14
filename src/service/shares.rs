//! Share links (SPEC §2): their public URLs, creating one from validated settings, and which links
//! a user may manage.

use crate::app::AppState;
use crate::domain::collections::Collection;
use crate::domain::shares::{Share, ShareSettings, ShareSettingsIn, ShareTarget};
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
pub async fn create_share(state: &AppState, user: &User, asset_id: i64, input: ShareSettingsIn) -> AppResult<Share> {
    let asset = visible_asset(state, user, asset_id).await?;
    insert(state, user, ShareTarget::Asset(asset.id), asset.owner_id, &asset.title, input).await
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
) -> AppResult<Share> {
    let c = shareable_collection(state, user, collection_id).await?;
    insert(state, user, ShareTarget::Collection(c.id), c.owner_id, &c.title, input).await
}

async fn insert(
    state: &AppState,
    user: &User,
    target: ShareTarget,
    owner_id: i64,
    title: &str,
    input: ShareSettingsIn,
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
    let share = state
        .store
        .insert_share(&uuid, target, owner_id, &settings, hash.as_deref(), now, |s| {
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

/// Changes the settings of a link the caller owns (the rules of create and the policy, on what
/// the change sets; `null` clears expiry or limit). A revoked link cannot change (410).
pub async fn update_share(state: &AppState, user: &User, uuid: &str, input: ShareSettingsIn) -> AppResult<Share> {
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
    state.store.update_share(s.id, &settings, hash.as_deref(), now).await?;
    state.store.share_by_uuid(uuid).await?.ok_or(AppError::NotFound("share"))
}

/// Revokes a link (`share.revoked` goes out with it when it was live).
pub async fn revoke(state: &AppState, share: &Share) -> AppResult<()> {
    let now = state.clock.now_ms();
    let mut revoked = share.clone();
    revoked.revoked_at = Some(now);
    let event = crate::service::webhooks::share_event(state, EventType::ShareRevoked, &revoked);
    state.store.revoke_share(share.id, now, Some(&event)).await?;
    Ok(())
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

/// Why [`check_link_password`] refused.
#[derive(Debug)]
pub enum PasswordRefused {
    /// Locked out after too many wrong passwords: retry after this many seconds (429).
    LockedOut(u64),
    /// The password is wrong (the failure is counted).
    Wrong,
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
        return Err(PasswordRefused::Wrong);
    }
    state.limits.share_password.success(lock_key).await;
    Ok(())
}
