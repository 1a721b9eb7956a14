//! Comments API (SPEC §4): on an asset (owner, admins and the participants of its live sessions),
//! edit by the author, delete by the author or the asset's owner, resolve and unresolve. Share
//! visitors comment through `/share/{uuid}/comments` (see `pages::shares`). Every change is also
//! a durable event in the rooms of the asset's live sessions.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::domain::comments::{CommentIn, CommentOut};
use crate::domain::pagination::{Page, PageQuery, PageRequest};
use crate::error::{AppError, AppResult, ErrorCode, ErrorResponse};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, CurrentUser};
use crate::service::comments::{self, Target};
use crate::store::comments::Author;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_on_asset, list)).routes(routes!(patch, delete)).routes(routes!(resolve))
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
    let asset = comments::reviewable_asset(&state, &user, id).await?;
    let c = comments::create(&state, Target::of(&asset), Author::User(user.id), &body, None).await?;
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
    let asset = comments::reviewable_asset(&state, &user, id).await?;
    let base = format!("{}/api/v3/assets/{}/comments/", state.config.base_url(), asset.id);
    Ok(axum::Json(comments::threads_page(&state, asset.id, page, &base, &[]).await?))
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
    let c = comments::edit(&state, &user, id, body.content).await?;
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
    comments::delete(&state, &user, id).await?;
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
            .map_err(|_| AppError::bad_request(ErrorCode::MalformedJson, "the body is not valid JSON"))?;
        crate::http::extract::json_object(value)?
    };
    let c = comments::set_resolved(&state, &user, id, input.resolved.unwrap_or(true)).await?;
    Ok(axum::Json(CommentOut::of(&c)))
}
