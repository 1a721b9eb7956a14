//! Assets: streaming upload, list, read, change, delete, content (SPEC §2). Owners see only their
//! own assets; admins see all.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::blob::{Disposition, Grant};
use crate::domain::assets::{
    Asset, AssetMeta, AssetPatch, DEFAULT_CONTENT_TYPE, MediaType, parse_content_type, parse_description, parse_tags,
    parse_title, sanitize_file_name,
};
use crate::domain::pagination::{Page, PageQuery, PageRequest};
use crate::domain::time::rfc3339;
use crate::domain::users::User;
use crate::error::{AppError, AppResult, ErrorResponse, FieldErrors};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, ClientIp, CurrentUser};
use crate::http::files::{FileInfo, serve};
use crate::http::upload;
use crate::service::assets::{self, visible_asset};
use crate::service::uploads::Rules;
use crate::store::AssetFilter;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(upload, list)).routes(routes!(get, patch, delete)).routes(routes!(content))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = AssetOwner)]
pub struct OwnerOut {
    pub id: i64,
    pub name: String,
}

/// An asset as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AssetOut {
    pub id: i64,
    pub title: String,
    pub description: String,
    pub tags: Vec<String>,
    pub name: String,
    pub mime_type: String,
    pub media_type: MediaType,
    pub size: i64,
    pub sha256: String,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub duration_seconds: Option<f64>,
    /// Signed URL of the thumbnail (images), valid for `download_url_ttl_secs`.
    pub thumbnail_url: Option<String>,
    /// Signed URL of the file, valid for `download_url_ttl_secs`.
    pub download_url: String,
    pub content_type: String,
    pub owner: OwnerOut,
    pub created_at: String,
    pub updated_at: String,
    /// Where the file came from: a file request's upload, or null for the owner's own uploads.
    pub source: Option<AssetSourceOut>,
}

/// The file request an asset was received through, and what its uploader said (SPEC §11).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AssetSourceOut {
    /// The file request's uuid.
    pub file_request: String,
    pub uploader_name: Option<String>,
    pub uploader_email: Option<String>,
    pub message: Option<String>,
}

impl AssetOut {
    pub fn new(state: &AppState, a: &Asset) -> AssetOut {
        let grant = |key: &str, mime: &str, name: &str, d: Disposition| Grant {
            key: key.to_string(),
            expires: 0,
            disposition: d,
            name: name.to_string(),
            mime: mime.to_string(),
            etag: a.sha256.clone(),
            owner: Some(crate::blob::Owner::Asset(a.id)),
        };
        let thumbnail_url = a.thumb_key.as_deref().map(|k| {
            let mime = if k.ends_with(".png") { "image/png" } else { "image/jpeg" };
            state.blobs.signed_url(Grant {
                etag: format!("{}-thumb", a.sha256),
                ..grant(k, mime, "thumbnail", Disposition::Inline)
            })
        });
        AssetOut {
            id: a.id,
            title: a.title.clone(),
            description: a.description.clone(),
            tags: a.tags.clone(),
            name: a.name.clone(),
            mime_type: a.mime_type.clone(),
            media_type: a.media_type,
            size: a.size,
            sha256: a.sha256.clone(),
            width: a.width,
            height: a.height,
            duration_seconds: a.duration_seconds,
            thumbnail_url,
            download_url: state.blobs.signed_url(grant(&a.blob_key, &a.mime_type, &a.name, Disposition::Attachment)),
            content_type: a.content_type.clone(),
            owner: OwnerOut { id: a.owner_id, name: a.owner_name.clone() },
            created_at: rfc3339(a.created_at),
            updated_at: rfc3339(a.updated_at),
            source: a.source.as_ref().map(|s| AssetSourceOut {
                file_request: s.file_request.clone(),
                uploader_name: s.uploader_name.clone(),
                uploader_email: s.uploader_email.clone(),
                message: s.message.clone(),
            }),
        }
    }
}

/// The multipart fields of an upload, for the documentation.
#[derive(ToSchema)]
#[allow(dead_code, reason = "documents the multipart form read by upload::receive")]
pub struct UploadForm {
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    title: Option<String>,
    description: Option<String>,
    /// Comma separated.
    tags: Option<String>,
    /// Gallery content type (default `talent_media`).
    content_type: Option<String>,
}

/// Uploads a file (streamed; the type is decided from the bytes).
#[utoipa::path(post, path = "/api/v3/assets", tag = "assets", security(("bearer" = [])),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 201, body = AssetOut), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 413, body = ErrorResponse), (status = 415, body = ErrorResponse), (status = 422, body = ErrorResponse)))]
pub async fn upload(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    headers: HeaderMap,
    body: Body,
) -> AppResult<impl IntoResponse> {
    let mut form = upload::receive(&state, &headers, body, "file", &Rules::asset(&state.config)).await?;
    let Some(rec) = form.file.take() else {
        return Err(AppError::validation("file", "is required"));
    };
    let meta = match parse_meta(&form) {
        Ok(m) => m,
        Err(e) => {
            rec.discard(&state).await;
            return Err(e);
        }
    };
    let asset = assets::receive(&state, &user, meta, rec).await?;
    Ok((StatusCode::CREATED, axum::Json(AssetOut::new(&state, &asset))))
}

pub(crate) fn parse_meta(form: &upload::Form) -> AppResult<AssetMeta> {
    let mut fields = FieldErrors::new();
    let mut meta = AssetMeta { content_type: DEFAULT_CONTENT_TYPE.to_string(), ..Default::default() };
    if let Some(t) = form.text("title") {
        match parse_title(t) {
            Ok(t) => meta.title = t,
            Err(w) => drop(fields.insert("title".into(), w)),
        }
    }
    if let Some(d) = form.text("description") {
        match parse_description(d) {
            Ok(d) => meta.description = d,
            Err(w) => drop(fields.insert("description".into(), w)),
        }
    }
    if let Some(t) = form.text("tags") {
        match parse_tags(t) {
            Ok(t) => meta.tags = t,
            Err(w) => drop(fields.insert("tags".into(), w)),
        }
    }
    if let Some(c) = form.text("content_type").filter(|c| !c.trim().is_empty()) {
        match parse_content_type(c) {
            Ok(c) => meta.content_type = c,
            Err(w) => drop(fields.insert("content_type".into(), w)),
        }
    }
    if fields.is_empty() { Ok(meta) } else { Err(AppError::from_fields(fields)) }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    pub page: Option<String>,
    pub page_size: Option<String>,
    /// Admins: list this owner's assets.
    pub owner_id: Option<i64>,
    /// Admins: `true` lists every asset.
    pub all: Option<bool>,
}

/// The caller's assets, newest first (admins may list another owner's or all).
#[utoipa::path(get, path = "/api/v3/assets", tag = "assets", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, body = Page<AssetOut>), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse)))]
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> AppResult<axum::Json<Page<AssetOut>>> {
    let page = PageRequest::try_from(&PageQuery { page: q.page.clone(), page_size: q.page_size.clone() })?;
    let mut extra = vec![];
    let filter = match (q.all, q.owner_id) {
        (Some(true), _) if user.is_admin() => {
            extra.push(("all", "true".to_string()));
            AssetFilter::All
        }
        (_, Some(owner)) if user.is_admin() => {
            extra.push(("owner_id", owner.to_string()));
            AssetFilter::Owner(owner)
        }
        (Some(true), _) | (_, Some(_)) if owner_is_other(&q, &user) => {
            return Err(AppError::forbidden("only admins may list other people's assets"));
        }
        _ => AssetFilter::Owner(user.id),
    };
    let (assets, count) = state.store.list_assets(filter, page).await?;
    let base = format!("{}/api/v3/assets/", state.config.base_url());
    Ok(axum::Json(Page::new(assets.iter().map(|a| AssetOut::new(&state, a)).collect(), count, page, &base, &extra)))
}

fn owner_is_other(q: &ListQuery, user: &User) -> bool {
    q.all == Some(true) || q.owner_id.is_some_and(|o| o != user.id)
}

/// One asset.
#[utoipa::path(get, path = "/api/v3/assets/{id}", tag = "assets", security(("bearer" = [])),
    params(("id" = i64, Path, description = "asset id")),
    responses((status = 200, body = AssetOut), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn get(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<i64>,
) -> AppResult<axum::Json<AssetOut>> {
    let a = visible_asset(&state, &user, id).await?;
    Ok(axum::Json(AssetOut::new(&state, &a)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchRequest {
    pub title: Option<String>,
    pub description: Option<String>,
    /// Comma separated, or a list.
    pub tags: Option<TagsIn>,
    pub content_type: Option<String>,
    /// File name shown on download.
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum TagsIn {
    Text(String),
    List(Vec<String>),
}

/// Changes title, description, tags, gallery content type or file name.
#[utoipa::path(patch, path = "/api/v3/assets/{id}", tag = "assets", security(("bearer" = [])), request_body = PatchRequest,
    params(("id" = i64, Path, description = "asset id")),
    responses((status = 200, body = AssetOut), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 404, body = ErrorResponse)))]
pub async fn patch(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<PatchRequest>,
) -> AppResult<axum::Json<AssetOut>> {
    visible_asset(&state, &user, id).await?;
    let mut fields = FieldErrors::new();
    let mut patch = AssetPatch::default();
    let mut take = |name: &str, r: Result<String, String>| match r {
        Ok(v) => Some(v),
        Err(w) => {
            fields.insert(name.to_string(), w);
            None
        }
    };
    patch.title = body.title.as_deref().and_then(|t| take("title", parse_title(t)));
    patch.description = body.description.as_deref().and_then(|d| take("description", parse_description(d)));
    patch.content_type = body.content_type.as_deref().and_then(|c| take("content_type", parse_content_type(c)));
    patch.name = body.name.as_deref().map(sanitize_file_name);
    if let Some(tags) = body.tags {
        let joined = match tags {
            TagsIn::Text(s) => s,
            TagsIn::List(v) => v.join(","),
        };
        match parse_tags(&joined) {
            Ok(t) => patch.tags = Some(t),
            Err(w) => drop(fields.insert("tags".into(), w)),
        }
    }
    if !fields.is_empty() {
        return Err(AppError::from_fields(fields));
    }
    let a = state.store.update_asset(id, &patch, state.clock.now_ms()).await?.ok_or(AppError::NotFound("asset"))?;
    Ok(axum::Json(AssetOut::new(&state, &a)))
}

/// Deletes an asset and its file (and, as features arrive, its shares and comments).
#[utoipa::path(delete, path = "/api/v3/assets/{id}", tag = "assets", security(("bearer" = [])),
    params(("id" = i64, Path, description = "asset id")),
    responses((status = 204, description = "deleted"), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn delete(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ip: ClientIp,
    ApiPath(id): ApiPath<i64>,
) -> AppResult<Response> {
    assets::delete(&state, &user, id, &crate::service::audit::who(&state, Some(user.id), Some(ip.0))).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Streams the file to its owner (or an admin); `Range` and `If-Range` supported.
#[utoipa::path(get, path = "/api/v3/assets/{id}/content", tag = "assets", security(("bearer" = [])),
    params(("id" = i64, Path, description = "asset id")),
    responses((status = 200, description = "the file"), (status = 206, description = "a range"),
        (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 416, body = ErrorResponse)))]
pub async fn content(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<i64>,
    method: Method,
    headers: HeaderMap,
) -> AppResult<Response> {
    let a = visible_asset(&state, &user, id).await?;
    let info = FileInfo {
        key: a.blob_key.clone(),
        mime: a.mime_type.clone(),
        name: a.name.clone(),
        etag: a.sha256.clone(),
        last_modified_ms: a.created_at,
        disposition: Disposition::Attachment,
    };
    serve(&state, &info, &method, &headers).await
}
