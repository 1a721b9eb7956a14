//! Comments (SPEC §4): who may review an asset, and the operations on its comments. REST, the
//! collaboration socket and the share page all come here; each change is committed with its
//! durable room events and then published.

use std::net::IpAddr;

use crate::app::AppState;
use crate::domain::assets::Asset;
use crate::domain::comments::{Comment, CommentIn, CommentOut, NewComment, build_trees};
use crate::domain::pagination::{Page, PageRequest};
use crate::domain::users::User;
use crate::error::{AppError, AppResult};
use crate::store::comments::Author;

/// Where a comment came from, for analytics (a comment through a link counts on that link).
#[derive(Clone)]
pub struct Origin {
    pub share_id: i64,
    pub ip: IpAddr,
    pub user_agent: String,
}

/// What adding a comment needs to know about its asset (a live socket keeps only this).
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub asset_id: i64,
    pub owner_id: i64,
    /// Timecodes are checked against it when known.
    pub duration_ms: Option<i64>,
}

impl Target {
    /// What a comment on `a` needs.
    pub fn of(a: &Asset) -> Target {
        Target {
            asset_id: a.id,
            owner_id: a.owner_id,
            duration_ms: a.duration_seconds.map(|s| (s * 1000.0).round() as i64),
        }
    }
}

/// May `user` read and write the comments of `asset`? Its owner, admins, and the participants
/// of one of its live collaboration sessions.
pub async fn can_review(state: &AppState, user: &User, asset: &Asset) -> AppResult<bool> {
    if asset.owner_id == user.id || user.is_admin() {
        return Ok(true);
    }
    Ok(state.store.reviews_asset(user.id, asset.id, state.clock.now_ms()).await?)
}

/// The asset if `user` may review it; 404 otherwise (nothing is revealed).
pub async fn reviewable_asset(state: &AppState, user: &User, id: i64) -> AppResult<Asset> {
    match state.store.asset(id).await? {
        Some(a) if can_review(state, user, &a).await? => Ok(a),
        _ => Err(AppError::NotFound("asset")),
    }
}

/// Creates a comment (REST, WebSocket and share page all come here): parses, checks the parent,
/// commits with its room events, publishes them, and counts it in analytics.
pub async fn create(
    state: &AppState,
    asset: Target,
    author: Author,
    input: &CommentIn,
    origin: Option<Origin>,
) -> AppResult<Comment> {
    let new = NewComment::parse(input, asset.duration_ms)?;
    if let Some(parent) = new.parent_id {
        match state.store.comment_by_id(parent).await? {
            Some(p) if p.asset_id == asset.asset_id => {}
            _ => return Err(AppError::validation("parent_comment_id", "not a comment on this asset")),
        }
    }
    let now = state.clock.now_ms();
    let (comment, events) =
        state.store.insert_comment_of(asset.asset_id, Some(asset.owner_id), &author, &new, now).await?;
    state.rooms.publish_all(&events);
    let by_owner = matches!(author, Author::User(id) if id == asset.owner_id);
    if let Some(o) = origin
        && !by_owner
    {
        state.analytics.capture(crate::analytics::Hit {
            kind: crate::domain::analytics::Kind::Comment,
            at_ms: now,
            share_id: o.share_id,
            asset_id: asset.asset_id,
            ip: o.ip,
            user_agent: o.user_agent,
            referrer: None,
            time_on_page_ms: None,
            load_ms: None,
            reading: None,
        });
    }
    metrics::counter!("vitrine_comments_created_total").increment(1);
    Ok(comment)
}

/// One page of an asset's threads, newest first, as the SPEC §0 envelope (`base` and `extra`
/// make the `next`/`previous` links). Shared by the REST list and the share link's JSON twin.
pub async fn threads_page(
    state: &AppState,
    asset_id: i64,
    page: PageRequest,
    base: &str,
    extra: &[(&str, String)],
) -> AppResult<Page<CommentOut>> {
    let (list, count) = state.store.comment_threads(asset_id, page).await?;
    let mut threads = build_trees(&list);
    threads.reverse();
    Ok(Page::new(threads, count, page, base, extra))
}

/// A comment the caller may see, with its asset.
async fn visible_comment(state: &AppState, user: &User, id: i64) -> AppResult<(Comment, Asset)> {
    let c = state.store.comment_by_id(id).await?.ok_or(AppError::NotFound("comment"))?;
    let asset = reviewable_asset(state, user, c.asset_id).await.map_err(|_| AppError::NotFound("comment"))?;
    Ok((c, asset))
}

/// Edits a comment's text (its author only), with the same rules as a new comment.
pub async fn edit(state: &AppState, user: &User, id: i64, content: Option<String>) -> AppResult<Comment> {
    let (c, asset) = visible_comment(state, user, id).await?;
    if c.author_id != Some(user.id) {
        return Err(AppError::forbidden("only its author can edit a comment"));
    }
    let input = CommentIn { content, ..Default::default() };
    let parsed = NewComment::parse(&input, Target::of(&asset).duration_ms)?;
    let (c, events) = state
        .store
        .update_comment(c.id, Some(&parsed.content), None, state.clock.now_ms())
        .await?
        .ok_or(AppError::NotFound("comment"))?;
    state.rooms.publish_all(&events);
    Ok(c)
}

/// Deletes a comment and its replies (its author or the asset's owner; admins too).
pub async fn delete(state: &AppState, user: &User, id: i64) -> AppResult<()> {
    let (c, asset) = visible_comment(state, user, id).await?;
    if c.author_id != Some(user.id) && asset.owner_id != user.id && !user.is_admin() {
        return Err(AppError::forbidden("only its author or the asset's owner can delete a comment"));
    }
    let events = state.store.delete_comment(&c, state.clock.now_ms()).await?;
    state.rooms.publish_all(&events);
    Ok(())
}

/// Resolves or reopens a comment (its author, the asset's owner, or an admin).
pub async fn set_resolved(state: &AppState, user: &User, id: i64, resolved: bool) -> AppResult<Comment> {
    let (c, asset) = visible_comment(state, user, id).await?;
    if c.author_id != Some(user.id) && asset.owner_id != user.id && !user.is_admin() {
        return Err(AppError::forbidden("only its author or the asset's owner can resolve a comment"));
    }
    let (c, events) = state
        .store
        .update_comment(c.id, None, Some(resolved), state.clock.now_ms())
        .await?
        .ok_or(AppError::NotFound("comment"))?;
    state.rooms.publish_all(&events);
    Ok(c)
}
