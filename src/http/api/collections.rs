//! Collections (SPEC §10): create, list, read, change (title, description, order), delete, and add
//! or remove items. Owners see only their own collections; admins see all; anyone else gets 404.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::domain::assets::MediaType;
use crate::domain::collections::{
    AddItemsBody, Collection, CollectionItem, CollectionPatch, CreateCollectionBody, NewCollection, PatchCollectionBody,
};
use crate::domain::pagination::{Page, PageQuery, PageRequest};
use crate::domain::time::rfc3339;
use crate::error::{AppResult, ErrorResponse};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, ClientIp, CurrentUser};
use crate::service::collections::{self as service, Scope, visible_collection};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, patch, delete))
        .routes(routes!(add_items))
        .routes(routes!(remove_item))
}

/// One file of a collection, at its place (0 first).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CollectionItemOut {
    pub asset_id: i64,
    pub name: String,
    pub mime_type: String,
    pub media_type: MediaType,
    pub size: i64,
    pub position: i64,
}

/// A collection as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CollectionOut {
    pub id: i64,
    pub owner_id: i64,
    pub title: String,
    pub description: String,
    /// The files in their order.
    pub items: Vec<CollectionItemOut>,
    pub item_count: i64,
    /// Sum of the files' sizes in bytes.
    pub total_size: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl CollectionOut {
    pub fn new(c: &Collection, items: &[CollectionItem]) -> CollectionOut {
        CollectionOut {
            id: c.id,
            owner_id: c.owner_id,
            title: c.title.clone(),
            description: c.description.clone(),
            items: items
                .iter()
                .map(|i| CollectionItemOut {
                    asset_id: i.asset.id,
                    name: i.asset.name.clone(),
                    mime_type: i.asset.mime_type.clone(),
                    media_type: i.asset.media_type,
                    size: i.asset.size,
                    position: i.position,
                })
                .collect(),
            item_count: c.item_count,
            total_size: c.total_size,
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}

async fn out(state: &AppState, c: &Collection) -> AppResult<CollectionOut> {
    Ok(CollectionOut::new(c, &service::items(state, c).await?))
}

/// Creates an empty collection.
#[utoipa::path(post, path = "/api/v3/collections", tag = "collections", security(("bearer" = [])),
    request_body = CreateCollectionBody,
    responses((status = 201, body = CollectionOut), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse)))]
pub async fn create(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiJson(body): ApiJson<CreateCollectionBody>,
) -> AppResult<impl IntoResponse> {
    let new = NewCollection::try_from(body)?;
    let c = service::create(&state, &user, new).await?;
    Ok((StatusCode::CREATED, axum::Json(out(&state, &c).await?)))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    pub page: Option<String>,
    pub page_size: Option<String>,
    /// Admins: list this owner's collections.
    pub owner_id: Option<i64>,
    /// Admins: `true` lists every collection.
    pub all: Option<bool>,
}

/// The caller's collections, newest first (admins may list another owner's or all).
#[utoipa::path(get, path = "/api/v3/collections", tag = "collections", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, body = Page<CollectionOut>), (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse)))]
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> AppResult<axum::Json<Page<CollectionOut>>> {
    let page = PageRequest::try_from(&PageQuery { page: q.page.clone(), page_size: q.page_size.clone() })?;
    let (scope, extra) = match (q.all, q.owner_id) {
        (Some(true), _) => (Scope::All, vec![("all", "true".to_string())]),
        (_, Some(owner)) => (Scope::Owner(owner), vec![("owner_id", owner.to_string())]),
        _ => (Scope::Own, vec![]),
    };
    let (collections, count) = service::list(&state, &user, scope, page).await?;
    let mut results = Vec::with_capacity(collections.len());
    for c in &collections {
        results.push(out(&state, c).await?);
    }
    let base = format!("{}/api/v3/collections/", state.config.base_url());
    Ok(axum::Json(Page::new(results, count, page, &base, &extra)))
}

/// One collection with its files.
#[utoipa::path(get, path = "/api/v3/collections/{id}", tag = "collections", security(("bearer" = [])),
    params(("id" = i64, Path, description = "collection id")),
    responses((status = 200, body = CollectionOut), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn get(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<i64>,
) -> AppResult<axum::Json<CollectionOut>> {
    let c = visible_collection(&state, &user, id).await?;
    Ok(axum::Json(out(&state, &c).await?))
}

/// Changes the title, the description or the order of the files (`order`: asset ids of the
/// collection; those listed come first in that order, the others follow in their current order).
#[utoipa::path(patch, path = "/api/v3/collections/{id}", tag = "collections", security(("bearer" = [])),
    request_body = PatchCollectionBody, params(("id" = i64, Path, description = "collection id")),
    responses((status = 200, body = CollectionOut), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 404, body = ErrorResponse)))]
pub async fn patch(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<PatchCollectionBody>,
) -> AppResult<axum::Json<CollectionOut>> {
    // Someone else's collection is a 404 even when the body is wrong.
    visible_collection(&state, &user, id).await?;
    let patch = CollectionPatch::try_from(body)?;
    let c = service::update(&state, &user, id, patch).await?;
    Ok(axum::Json(out(&state, &c).await?))
}

/// Deletes the collection and its share links; the files stay in the library.
#[utoipa::path(delete, path = "/api/v3/collections/{id}", tag = "collections", security(("bearer" = [])),
    params(("id" = i64, Path, description = "collection id")),
    responses((status = 204, description = "deleted"), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn delete(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ip: ClientIp,
    ApiPath(id): ApiPath<i64>,
) -> AppResult<Response> {
    service::delete(&state, &user, id, &crate::service::audit::who(&state, Some(user.id), Some(ip.0))).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Adds your files to the collection, after the present ones and in the order given; a file already
/// in it is not added twice. Unknown or someone else's ids are a 400 naming them in
/// `fields.asset_ids` (nothing is added); so is going past 1000 files in one collection.
#[utoipa::path(post, path = "/api/v3/collections/{id}/items", tag = "collections", security(("bearer" = [])),
    request_body = AddItemsBody, params(("id" = i64, Path, description = "collection id")),
    responses((status = 200, body = CollectionOut), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 404, body = ErrorResponse)))]
pub async fn add_items(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<AddItemsBody>,
) -> AppResult<axum::Json<CollectionOut>> {
    visible_collection(&state, &user, id).await?;
    let ids = body.parse()?;
    let c = service::add_items(&state, &user, id, &ids).await?;
    Ok(axum::Json(out(&state, &c).await?))
}

/// Takes one file out of the collection (the file stays in the library); 404 if it is not in it.
#[utoipa::path(delete, path = "/api/v3/collections/{id}/items/{asset_id}", tag = "collections", security(("bearer" = [])),
    params(("id" = i64, Path, description = "collection id"), ("asset_id" = i64, Path, description = "asset id")),
    responses((status = 204, description = "removed"), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn remove_item(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath((id, asset_id)): ApiPath<(i64, i64)>,
) -> AppResult<Response> {
    service::remove_item(&state, &user, id, asset_id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
