//! The gallery (SPEC §6): who gets which answers (and their request budget), sharing an asset to
//! the gallery and taking a post down, and a post's stable public links.

use crate::app::AppState;
use crate::domain::gallery::{Audience, NewPost, Post};
use crate::domain::users::{Role, User};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::store::gallery::PostRefused;

/// Which answers `user` gets, after spending one request of their hourly budget (SPEC §6:
/// 200/hour for dashboard users, 300/hour for admins; plain users count as dashboard users).
pub async fn audience(state: &AppState, user: Option<&User>) -> AppResult<Audience> {
    let Some(user) = user else { return Ok(Audience::Public) };
    let limit = if user.role == Role::Admin { &state.limits.gallery_admin } else { &state.limits.gallery_dashboard };
    limit.check(user.id).await?;
    Ok(if matches!(user.role, Role::Dashboard | Role::Admin) { Audience::Staff } else { Audience::Public })
}

/// Dashboard users and admins only (403 for others), budget spent.
pub async fn staff(state: &AppState, user: &User) -> AppResult<()> {
    if !matches!(user.role, Role::Dashboard | Role::Admin) {
        return Err(AppError::forbidden("only dashboard users and admins may do this"));
    }
    audience(state, Some(user)).await.map(|_| ())
}

/// The stable public links of a post's file and thumbnail (they work while the post is active).
pub fn post_links(state: &AppState, p: &Post) -> (String, Option<String>) {
    let base = format!("{}/gallery/media/{}", state.config.public_url, p.id);
    (format!("{base}/file"), p.asset_has_thumbnail.then(|| format!("{base}/thumbnail")))
}

/// Shares an asset to the gallery as `user`, whom `staff` has let through (the API and the
/// dashboard page).
pub async fn share(state: &AppState, user: &User, new: NewPost) -> AppResult<Post> {
    let id = match state.store.create_gallery_post(user.id, &new, state.clock.now_ms()).await? {
        Ok(id) => id,
        Err(PostRefused::NoSuchContent) => return Err(AppError::NotFound("content")),
        Err(PostRefused::AlreadyShared) => {
            return Err(AppError::bad_request(ErrorCode::AlreadyShared, "You have already shared this media"));
        }
    };
    metrics::counter!("vitrine_gallery_posts_total").increment(1);
    state.store.gallery_post(id).await?.ok_or(AppError::NotFound("content"))
}

/// Soft-deletes post `id` as `user` (let through by `staff`): its sharer, or an admin.
pub async fn unshare(state: &AppState, user: &User, id: i64) -> AppResult<()> {
    let Some((shared_by, true)) = state.store.gallery_post_owner(id).await? else {
        return Err(AppError::NotFound("shared media"));
    };
    if shared_by != user.id && !user.is_admin() {
        return Err(AppError::forbidden("Can only delete your own posts"));
    }
    state.store.deactivate_gallery_post(id).await?;
    Ok(())
}
