//! The gallery (SPEC §6, seed shared-media-gallery-api): dashboard users and admins share assets
//! to a public gallery, list and delete their posts, admins see statistics; the dashboard search
//! finds assets to share. Public answers never carry e-mail addresses.

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::blob::{Disposition, Grant};
use crate::domain::assets::CONTENT_TYPES;
use crate::domain::gallery::{
    Audience, CATEGORIES, NewPost, Post, ShareMediaBody, attribution_text, parse_category, parse_search, split_name,
};
use crate::domain::pagination::{Page, PageQuery, PageRequest};
use crate::domain::time::rfc3339;
use crate::error::{AppError, AppResult, ErrorResponse, FieldErrors};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, CurrentUser};
use crate::http::files::{FileInfo, safe_inline, serve};
use crate::service::gallery::{audience, post_links, share, staff, unshare};
use crate::store::gallery::{PostFilter, SearchItem};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(share_media))
        .routes(routes!(list))
        .routes(routes!(stats))
        .routes(routes!(detail))
        .routes(routes!(delete))
        .routes(routes!(mine))
        .routes(routes!(search))
        .routes(routes!(post_file))
        .routes(routes!(post_thumbnail))
}

/// Where `share_info.share_url` points, as in the seed.
pub const SHARE_URL: &str = "/api/dashboard/share-media/";
const TOP_SHARERS: i64 = 10;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ContentInfo {
    /// Always `media`.
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub media_type: String,
    pub file_url: String,
    pub thumbnail_url: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OriginalOwner {
    pub id: i64,
    pub name: String,
    /// Dashboard users and admins only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// A post as the seed shows it; e-mail addresses only for dashboard users and admins.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PostOut {
    pub id: i64,
    pub caption: String,
    pub category: String,
    pub shared_at: String,
    /// In the detail answer only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_active: Option<bool>,
    pub shared_by_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_by_email: Option<String>,
    pub content_info: ContentInfo,
    pub attribution_text: String,
    pub original_owner: OriginalOwner,
}

pub fn post_out(state: &AppState, p: &Post, audience: Audience, detail: bool) -> PostOut {
    let staff = audience == Audience::Staff;
    let (file_url, thumbnail_url) = post_links(state, p);
    PostOut {
        id: p.id,
        caption: p.caption.clone(),
        category: p.category.clone(),
        shared_at: rfc3339(p.shared_at),
        is_active: detail.then_some(p.is_active),
        shared_by_name: p.shared_by_name.clone(),
        shared_by_email: staff.then(|| p.shared_by_email.clone()),
        content_info: ContentInfo {
            kind: "media".into(),
            name: p.asset_title.clone(),
            media_type: p.asset_media_type.clone(),
            file_url,
            thumbnail_url,
        },
        attribution_text: attribution_text(&p.owner_name, staff.then_some(p.owner_email.as_str())),
        original_owner: OriginalOwner {
            id: p.owner_id,
            name: p.owner_name.clone(),
            email: staff.then(|| p.owner_email.clone()),
        },
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SharedOut {
    pub message: String,
    pub shared_post: PostOut,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = GalleryMessage)]
pub struct MessageOut {
    pub message: String,
}

/// Shares an asset to the gallery (dashboard users and admins).
#[utoipa::path(post, path = "/api/dashboard/share-media", tag = "gallery", security(("bearer" = [])),
    request_body = inline(serde_json::Value),
    responses((status = 201, body = SharedOut), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 429, body = ErrorResponse)))]
pub async fn share_media(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiJson(body): ApiJson<ShareMediaBody>,
) -> AppResult<Response> {
    staff(&state, &user).await?;
    let post = share(&state, &user, NewPost::try_from(body)?).await?;
    let out = SharedOut {
        message: "Media shared successfully!".into(),
        shared_post: post_out(&state, &post, Audience::Staff, false),
    };
    Ok((StatusCode::CREATED, axum::Json(out)).into_response())
}

#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct ListQuery {
    /// One of the five categories.
    pub category: Option<String>,
    /// Only posts shared by this user id.
    pub shared_by: Option<String>,
    pub page: Option<String>,
    pub page_size: Option<String>,
}

impl ListQuery {
    fn parse(&self) -> AppResult<(PostFilter, PageRequest)> {
        let mut fields = FieldErrors::new();
        let page = PageRequest::try_from(&PageQuery { page: self.page.clone(), page_size: self.page_size.clone() })
            .map_err(|e| {
                if let AppError::Validation { fields: f, .. } = e {
                    fields.extend(f)
                }
            })
            .ok();
        let category = match self.category.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(c) => parse_category(c).map_err(|e| fields.insert("category".into(), e)).ok(),
        };
        let shared_by = match self.shared_by.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => match s.parse::<i64>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    fields.insert("shared_by".into(), "must be a user id".into());
                    None
                }
            },
        };
        match page {
            Some(page) if fields.is_empty() => Ok((PostFilter { category, shared_by }, page)),
            _ => Err(AppError::from_fields(fields)),
        }
    }
}

fn list_url(state: &AppState, path: &str) -> String {
    format!("{}{path}", state.config.public_url)
}

/// A page of posts as JSON bytes.
async fn posts_page(
    state: &AppState,
    filter: &PostFilter,
    page: PageRequest,
    audience: Audience,
    path: &str,
) -> AppResult<bytes::Bytes> {
    let (posts, count) = state.store.gallery_posts(filter, page).await?;
    let results: Vec<PostOut> = posts.iter().map(|p| post_out(state, p, audience, false)).collect();
    let mut extra = vec![];
    if let Some(c) = &filter.category {
        extra.push(("category", c.clone()));
    }
    if let Some(s) = filter.shared_by {
        extra.push(("shared_by", s.to_string()));
    }
    let out = Page::new(results, count, page, &list_url(state, path), &extra);
    Ok(serde_json::to_vec(&out).map_err(AppError::internal)?.into())
}

fn json_bytes(b: bytes::Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], b).into_response()
}

/// The public gallery: active posts, newest first (anyone, anonymous included).
#[utoipa::path(get, path = "/api/dashboard/shared-media", tag = "gallery", params(ListQuery),
    responses((status = 200, body = Page<PostOut>), (status = 400, body = ErrorResponse), (status = 429, body = ErrorResponse)))]
pub async fn list(
    State(state): State<AppState>,
    user: Option<CurrentUser>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> AppResult<Response> {
    let audience = audience(&state, user.as_ref().map(|u| &u.0)).await?;
    let (filter, page) = q.parse()?;
    // Answers are cached briefly per query and audience; every write clears the cache.
    let key = format!("{audience:?}|{:?}|{:?}|{}|{}", filter.category, filter.shared_by, page.page, page.page_size);
    let caches = state.store.caches();
    if let Some(b) = caches.gallery(&key) {
        return Ok(json_bytes(b));
    }
    let since = caches.epoch();
    let b = posts_page(&state, &filter, page, audience, "/api/dashboard/shared-media/").await?;
    caches.put_gallery(since, &key, b.clone());
    Ok(json_bytes(b))
}

/// One active post (anyone).
#[utoipa::path(get, path = "/api/dashboard/shared-media/{id}", tag = "gallery",
    params(("id" = i64, Path, description = "post id")),
    responses((status = 200, body = PostOut), (status = 404, body = ErrorResponse), (status = 429, body = ErrorResponse)))]
pub async fn detail(
    State(state): State<AppState>,
    user: Option<CurrentUser>,
    ApiPath(id): ApiPath<i64>,
) -> AppResult<axum::Json<PostOut>> {
    let audience = audience(&state, user.as_ref().map(|u| &u.0)).await?;
    let post = state.store.gallery_post(id).await?.ok_or(AppError::NotFound("shared media"))?;
    Ok(axum::Json(post_out(&state, &post, audience, true)))
}

/// Soft-deletes a post: its sharer, or an admin.
#[utoipa::path(delete, path = "/api/dashboard/shared-media/{id}/delete", tag = "gallery", security(("bearer" = [])),
    params(("id" = i64, Path, description = "post id")),
    responses((status = 200, body = MessageOut), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 429, body = ErrorResponse)))]
pub async fn delete(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<i64>,
) -> AppResult<axum::Json<MessageOut>> {
    staff(&state, &user).await?;
    unshare(&state, &user, id).await?;
    Ok(axum::Json(MessageOut { message: "Shared media deleted successfully".into() }))
}

/// The caller's active posts, newest first (dashboard users and admins).
#[utoipa::path(get, path = "/api/dashboard/my-shared-media", tag = "gallery", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = Page<PostOut>), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 429, body = ErrorResponse)))]
pub async fn mine(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> AppResult<Response> {
    staff(&state, &user).await?;
    let page = PageRequest::try_from(&q)?;
    let filter = PostFilter { category: None, shared_by: Some(user.id) };
    Ok(json_bytes(posts_page(&state, &filter, page, Audience::Staff, "/api/dashboard/my-shared-media/").await?))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TopSharer {
    #[serde(rename = "shared_by__first_name")]
    pub first_name: String,
    #[serde(rename = "shared_by__last_name")]
    pub last_name: String,
    #[serde(rename = "shared_by__email")]
    pub email: String,
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatsOut {
    pub total_shared: i64,
    /// Every category, zeros included.
    pub by_category: std::collections::BTreeMap<String, i64>,
    /// Every content type, zeros included.
    pub by_content_type: std::collections::BTreeMap<String, i64>,
    pub top_sharers: Vec<TopSharer>,
}

/// Counts of active posts (admins).
#[utoipa::path(get, path = "/api/dashboard/shared-media/stats", tag = "gallery", security(("bearer" = [])),
    responses((status = 200, body = StatsOut), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 429, body = ErrorResponse)))]
pub async fn stats(State(state): State<AppState>, CurrentUser(user): CurrentUser) -> AppResult<axum::Json<StatsOut>> {
    if !user.is_admin() {
        return Err(AppError::forbidden("only admins may see gallery statistics"));
    }
    audience(&state, Some(&user)).await?;
    let s = state.store.gallery_stats(TOP_SHARERS).await?;
    let zeros = |keys: &[&str], counts: &std::collections::BTreeMap<String, i64>| {
        keys.iter().map(|k| (k.to_string(), counts.get(*k).copied().unwrap_or(0))).collect()
    };
    Ok(axum::Json(StatsOut {
        total_shared: s.total,
        by_category: zeros(&CATEGORIES, &s.by_category),
        by_content_type: zeros(&CONTENT_TYPES, &s.by_content_type),
        top_sharers: s
            .top_sharers
            .into_iter()
            .map(|(name, email, count)| {
                let (first, last) = split_name(&name);
                TopSharer { first_name: first, last_name: last, email, count }
            })
            .collect(),
    }))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct SearchParams {
    /// Words to find in titles, descriptions, tags and owner names (all must match, as prefixes).
    pub q: Option<String>,
    /// Only assets of this content type.
    pub content_type: Option<String>,
    pub page: Option<String>,
    pub page_size: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ShareInfo {
    /// False when the caller already has an active post of this media.
    pub can_share: bool,
    pub content_type: String,
    pub object_id: i64,
    pub share_url: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MediaItem {
    pub id: i64,
    pub name: String,
    pub media_type: String,
    /// A signed link to the file.
    pub media_file: String,
    pub thumbnail_url: Option<String>,
    pub content_type: String,
    pub share_info: ShareInfo,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OwnerGroup {
    /// The owner's user id.
    pub id: i64,
    pub name: String,
    /// This owner's best matches (at most 20).
    pub media_items: Vec<MediaItem>,
    /// All matches of this owner.
    pub media_count: i64,
}

/// A search hit as the API (and the dashboard page) shows it, with signed links.
pub fn media_item(state: &AppState, i: SearchItem) -> MediaItem {
    let grant = |key: &str, mime: &str, name: &str, etag: String| Grant {
        key: key.to_string(),
        expires: 0,
        disposition: if safe_inline(mime) { Disposition::Inline } else { Disposition::Attachment },
        name: name.to_string(),
        mime: mime.to_string(),
        etag,
        owner: Some(crate::blob::Owner::Asset(i.id)),
    };
    let thumbnail_url = i.thumb_key.as_deref().map(|k| {
        let mime = if k.ends_with(".png") { "image/png" } else { "image/jpeg" };
        state.blobs.signed_url(grant(k, mime, "thumbnail", format!("{}-thumb", i.sha256)))
    });
    MediaItem {
        id: i.id,
        name: i.title,
        media_type: i.media_type,
        media_file: state.blobs.signed_url(grant(&i.blob_key, &i.mime_type, &i.name, i.sha256.clone())),
        thumbnail_url,
        share_info: ShareInfo {
            can_share: !i.shared_by_caller,
            content_type: i.content_type.clone(),
            object_id: i.id,
            share_url: SHARE_URL.into(),
        },
        content_type: i.content_type,
    }
}

/// Full-text search over every asset, grouped by owner (dashboard users and admins).
#[utoipa::path(get, path = "/api/dashboard/search", tag = "gallery", security(("bearer" = [])), params(SearchParams),
    responses((status = 200, body = Page<OwnerGroup>), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 429, body = ErrorResponse)))]
pub async fn search(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiQuery(p): ApiQuery<SearchParams>,
) -> AppResult<axum::Json<Page<OwnerGroup>>> {
    staff(&state, &user).await?;
    let page = PageRequest::try_from(&PageQuery { page: p.page.clone(), page_size: p.page_size.clone() })?;
    let q = parse_search(p.q.as_deref(), p.content_type.as_deref())?;
    let (groups, count) = state.store.search_assets(&q, user.id, page).await?;
    let results = groups
        .into_iter()
        .map(|g| OwnerGroup {
            id: g.owner_id,
            name: g.owner_name,
            media_count: g.total,
            media_items: g.items.into_iter().map(|i| media_item(&state, i)).collect(),
        })
        .collect();
    let mut extra = vec![("q", p.q.clone().unwrap_or_default())];
    if let Some(ct) = &q.content_type {
        extra.push(("content_type", ct.clone()));
    }
    Ok(axum::Json(Page::new(results, count, page, &list_url(&state, "/api/dashboard/search/"), &extra)))
}

/// The file of an active post (anyone; inline for types a browser renders safely).
#[utoipa::path(get, path = "/gallery/media/{id}/file", tag = "gallery",
    params(("id" = i64, Path, description = "post id")),
    responses((status = 200, description = "the file"), (status = 206, description = "a range"), (status = 404, body = ErrorResponse)))]
pub async fn post_file(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    method: Method,
    headers: HeaderMap,
) -> AppResult<Response> {
    serve_post(&state, id, false, &method, &headers).await
}

/// The thumbnail of an active post's image.
#[utoipa::path(get, path = "/gallery/media/{id}/thumbnail", tag = "gallery",
    params(("id" = i64, Path, description = "post id")),
    responses((status = 200, description = "the thumbnail"), (status = 404, body = ErrorResponse)))]
pub async fn post_thumbnail(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    method: Method,
    headers: HeaderMap,
) -> AppResult<Response> {
    serve_post(&state, id, true, &method, &headers).await
}

async fn serve_post(
    state: &AppState,
    id: i64,
    thumb: bool,
    method: &Method,
    headers: &HeaderMap,
) -> AppResult<Response> {
    let post = state.store.gallery_post(id).await?.ok_or(AppError::NotFound("shared media"))?;
    let asset = state.store.asset(post.object_id).await?.ok_or(AppError::NotFound("shared media"))?;
    let info = if thumb {
        let key = asset.thumb_key.clone().ok_or(AppError::NotFound("thumbnail"))?;
        FileInfo {
            mime: if key.ends_with(".png") { "image/png" } else { "image/jpeg" }.into(),
            key,
            name: "thumbnail".into(),
            etag: format!("{}-thumb", asset.sha256),
            last_modified_ms: asset.created_at,
            disposition: Disposition::Inline,
        }
    } else {
        FileInfo {
            key: asset.blob_key.clone(),
            mime: asset.mime_type.clone(),
            name: asset.name.clone(),
            etag: asset.sha256.clone(),
            last_modified_ms: asset.created_at,
            disposition: Disposition::Inline,
        }
    };
    serve(state, &info, method, headers).await
}
