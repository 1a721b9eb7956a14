//! Comments API (SPEC §4): on an asset (owner, admins and the participants of its live sessions),
//! edit by the author, delete by the author or the asset's owner, resolve and unresolve. Share
//! visitors comment through `/share/{uuid}/comments` (see `pages::shares`). Every change is also
//! a durable event in the rooms of the asset's live sessions.

use std::net::IpAddr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::domain::assets::Asset;
use crate::domain::comments::{Comment, CommentIn, CommentOut, NewComment, build_trees};
use crate::domain::pagination::{Page, PageQuery, PageRequest};
use crate::domain::users::User;
use crate::error::{AppError, AppResult, ErrorResponse};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, CurrentUser};
use crate::store::comments::Author;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_on_asset, list)).routes(routes!(patch, delete)).routes(routes!(resolve))
}

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
async fn reviewable_asset(state: &AppState, user: &User, id: i64) -> AppResult<Asset> {
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
    let (comment, events) = state.store.insert_comment(asset.asset_id, &author, &new, now).await?;
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
        });
    }
    metrics::counter!("vitrine_comments_created_total").increment(1);
    Ok(comment)
}

/// Adds a comment to an asset.
#[utoipa::path(post, path = "/api/v3/assets/{id}/comments", tag = "comments", security(("bearer" = [])),
    params(("id" = i64, Path, description = "asset id")), request_body = CommentIn,
    responses((status = 201, body = CommentOut), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 404, body = ErrorResponse)))]
pub async fn create_on_asset(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<CommentIn>,
) -> AppResult<Response> {
    let asset = reviewable_asset(&state, &user, id).await?;
    let c = create(&state, Target::of(&asset), Author::User(user.id), &body, None).await?;
    Ok((StatusCode::CREATED, axum::Json(CommentOut::of(&c))).into_response())
}

/// The asset's comment threads, newest thread first, paginated (SPEC §0): each top-level comment
/// with its replies nested, oldest first.
#[utoipa::path(get, path = "/api/v3/assets/{id}/comments", tag = "comments", security(("bearer" = [])),
    params(("id" = i64, Path, description = "asset id"), PageQuery),
    responses((status = 200, body = Page<CommentOut>), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 404, body = ErrorResponse)))]
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> AppResult<axum::Json<Page<CommentOut>>> {
    let page = PageRequest::try_from(&q)?;
    let asset = reviewable_asset(&state, &user, id).await?;
    let base = format!("{}/api/v3/assets/{}/comments/", state.config.base_url(), asset.id);
    Ok(axum::Json(threads_page(&state, asset.id, page, &base, &[]).await?))
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

#[derive(Debug, Deserialize, ToSchema)]
pub struct CommentPatch {
    pub content: Option<String>,
}

/// Edits a comment's text (its author only).
#[utoipa::path(patch, path = "/api/v3/comments/{id}", tag = "comments", security(("bearer" = [])),
    params(("id" = i64, Path, description = "comment id")), request_body = CommentPatch,
    responses((status = 200, body = CommentOut), (status = 400, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse)))]
pub async fn patch(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<CommentPatch>,
) -> AppResult<axum::Json<CommentOut>> {
    let (c, asset) = visible_comment(&state, &user, id).await?;
    if c.author_id != Some(user.id) {
        return Err(AppError::forbidden("only its author can edit a comment"));
    }
    // The same rules as a new comment, applied to the text alone.
    let input = CommentIn { content: body.content, ..Default::default() };
    let parsed = NewComment::parse(&input, Target::of(&asset).duration_ms)?;
    let (c, events) = state
        .store
        .update_comment(c.id, Some(&parsed.content), None, state.clock.now_ms())
        .await?
        .ok_or(AppError::NotFound("comment"))?;
    state.rooms.publish_all(&events);
    Ok(axum::Json(CommentOut::of(&c)))
}

/// Deletes a comment and its replies (its author or the asset's owner; admins too).
#[utoipa::path(delete, path = "/api/v3/comments/{id}", tag = "comments", security(("bearer" = [])),
    params(("id" = i64, Path, description = "comment id")),
    responses((status = 204), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn delete(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<i64>,
) -> AppResult<StatusCode> {
    let (c, asset) = visible_comment(&state, &user, id).await?;
    if c.author_id != Some(user.id) && asset.owner_id != user.id && !user.is_admin() {
        return Err(AppError::forbidden("only its author or the asset's owner can delete a comment"));
    }
    let events = state.store.delete_comment(&c, state.clock.now_ms()).await?;
    state.rooms.publish_all(&events);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ResolveIn {
    /// `false` reopens the comment; default `true`.
    pub resolved: Option<bool>,
}

/// Resolves (or, with `{"resolved": false}`, reopens) a comment: its author, the asset's owner,
/// or an admin.
#[utoipa::path(post, path = "/api/v3/comments/{id}/resolve", tag = "comments", security(("bearer" = [])),
    params(("id" = i64, Path, description = "comment id")), request_body(content = ResolveIn, description = "optional"),
    responses((status = 200, body = CommentOut), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn resolve(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<i64>,
    body: axum::body::Bytes,
) -> AppResult<axum::Json<CommentOut>> {
    let input: ResolveIn = if body.iter().all(u8::is_ascii_whitespace) {
        ResolveIn::default()
    } else {
        let value = serde_json::from_slice(&body)
            .map_err(|_| AppError::bad_request("malformed_json", "the body is not valid JSON"))?;
        crate::http::extract::json_object(value)?
    };
    let (c, asset) = visible_comment(&state, &user, id).await?;
    if c.author_id != Some(user.id) && asset.owner_id != user.id && !user.is_admin() {
        return Err(AppError::forbidden("only its author or the asset's owner can resolve a comment"));
    }
    let (c, events) = state
        .store
        .update_comment(c.id, None, Some(input.resolved.unwrap_or(true)), state.clock.now_ms())
        .await?
        .ok_or(AppError::NotFound("comment"))?;
    state.rooms.publish_all(&events);
    Ok(axum::Json(CommentOut::of(&c)))
}
