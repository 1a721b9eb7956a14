//! Share links API: create on an asset, list, read, change, revoke, unlock (SPEC §3).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::domain::pagination::{Page, PageQuery, PageRequest};
use crate::domain::shares::{Share, ShareSettingsIn, ShareStatus, ShareType, social_links};
use crate::domain::time::rfc3339;
use crate::error::{AppError, AppResult, ErrorResponse};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, ClientIp, CurrentUser};
use crate::http::share_access::{ShareRequest, unlock as unlock_link};
use crate::service::audit::who;
use crate::service::shares::{create_collection_share, create_share, embed_code, owned_share, share_url};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(create_for_collection))
        .routes(routes!(list))
        .routes(routes!(get, patch, revoke))
        .routes(routes!(unlock))
}

/// A link as its owner sees it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ShareOut {
    pub id: i64,
    pub uuid: String,
    /// The shared asset (asset links; absent on collection links).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset_id: Option<i64>,
    /// The shared collection (collection links, SPEC §10; absent on asset links).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection_id: Option<i64>,
    pub share_url: String,
    /// PNG QR code of `share_url` as a data URL (create and read only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr_code_data: Option<String>,
    pub qr_code_url: String,
    #[schema(value_type = Object)]
    pub social_links: serde_json::Map<String, serde_json::Value>,
    pub embed_code: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub share_type: ShareType,
    pub is_password_protected: bool,
    pub allow_preview: bool,
    pub allow_download: bool,
    pub allow_comments: bool,
    pub allow_collaboration: bool,
    pub notify_on_access: bool,
    /// Previews carry a tiled text (preview-only links).
    #[serde(default)]
    pub watermark: bool,
    pub max_downloads: Option<i64>,
    pub title: String,
    pub description: String,
    pub allowed_emails: Vec<String>,
    pub status: ShareStatus,
    pub view_count: i64,
    pub download_count: i64,
    pub downloads_remaining: Option<i64>,
    pub revoked_at: Option<String>,
}

impl ShareOut {
    pub fn new(state: &AppState, s: &Share, with_qr: bool) -> AppResult<ShareOut> {
        let url = share_url(state, &s.uuid);
        let qr_code_data = if with_qr { Some(crate::qr::data_url(&url).map_err(AppError::Internal)?) } else { None };
        Ok(ShareOut {
            id: s.id,
            uuid: s.uuid.clone(),
            asset_id: s.asset_id(),
            collection_id: s.collection_id(),
            qr_code_data,
            qr_code_url: format!("{}/share/{}/qr.png", state.config.base_url(), s.uuid),
            social_links: social_links(&state.config.social, &url, &s.title, &s.description),
            embed_code: embed_code(state, &s.uuid),
            share_url: url,
            created_at: rfc3339(s.created_at),
            expires_at: s.expires_at.map(rfc3339),
            share_type: s.share_type,
            is_password_protected: s.share_type == ShareType::Protected,
            allow_preview: s.allow_preview,
            allow_download: s.allow_download,
            allow_comments: s.allow_comments,
            allow_collaboration: s.allow_collaboration,
            notify_on_access: s.notify_on_access,
            watermark: s.watermark,
            max_downloads: s.max_downloads,
            title: s.title.clone(),
            description: s.description.clone(),
            allowed_emails: s.allowed_emails.clone(),
            status: s.status(state.clock.now_ms()),
            view_count: s.view_count,
            download_count: s.download_count,
            downloads_remaining: s.downloads_remaining(),
            revoked_at: s.revoked_at.map(rfc3339),
        })
    }
}

/// Creates a share link for an asset.
#[utoipa::path(post, path = "/api/v3/assets/{id}/share", tag = "shares", security(("bearer" = [])),
    params(("id" = i64, Path, description = "asset id")), request_body = ShareSettingsIn,
    responses((status = 201, body = ShareOut), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 429, body = ErrorResponse)))]
pub async fn create(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ip: ClientIp,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<ShareSettingsIn>,
) -> AppResult<impl IntoResponse> {
    let share = create_share(&state, &user, id, body, &who(&state, Some(user.id), Some(ip.0))).await?;
    Ok((StatusCode::CREATED, axum::Json(ShareOut::new(&state, &share, true)?)))
}

/// Creates a share link for a collection (SPEC §10): the body and rules of an asset link; the
/// answer has `collection_id` instead of `asset_id`, and the title defaults to the collection's.
/// Owner or admin only (anyone else: 404).
#[utoipa::path(post, path = "/api/v3/collections/{id}/share", tag = "shares", security(("bearer" = [])),
    params(("id" = i64, Path, description = "collection id")), request_body = ShareSettingsIn,
    responses((status = 201, body = ShareOut), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 429, body = ErrorResponse)))]
pub async fn create_for_collection(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ip: ClientIp,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<ShareSettingsIn>,
) -> AppResult<impl IntoResponse> {
    let share = create_collection_share(&state, &user, id, body, &who(&state, Some(user.id), Some(ip.0))).await?;
    Ok((StatusCode::CREATED, axum::Json(ShareOut::new(&state, &share, true)?)))
}

/// The caller's links (admins: `?all=true` for every link).
#[utoipa::path(get, path = "/api/v3/shares", tag = "shares", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = Page<ShareOut>), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse)))]
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> AppResult<axum::Json<Page<ShareOut>>> {
    let page = PageRequest::try_from(&q)?;
    let (shares, count) = state.store.list_shares(Some(user.id), page).await?;
    let results = shares.iter().map(|s| ShareOut::new(&state, s, false)).collect::<AppResult<Vec<_>>>()?;
    let base = format!("{}/api/v3/shares/", state.config.base_url());
    Ok(axum::Json(Page::new(results, count, page, &base, &[])))
}

/// One link with its counts and status.
#[utoipa::path(get, path = "/api/v3/shares/{uuid}", tag = "shares", security(("bearer" = [])),
    params(("uuid" = String, Path, description = "share uuid")),
    responses((status = 200, body = ShareOut), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn get(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(uuid): ApiPath<String>,
) -> AppResult<axum::Json<ShareOut>> {
    let s = owned_share(&state, &user, &uuid).await?;
    Ok(axum::Json(ShareOut::new(&state, &s, true)?))
}

/// Changes a link's settings (same fields and rules as create; `null` clears expiry or limit).
#[utoipa::path(patch, path = "/api/v3/shares/{uuid}", tag = "shares", security(("bearer" = [])),
    params(("uuid" = String, Path, description = "share uuid")), request_body = ShareSettingsIn,
    responses((status = 200, body = ShareOut), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 410, body = ErrorResponse)))]
pub async fn patch(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ip: ClientIp,
    ApiPath(uuid): ApiPath<String>,
    ApiJson(body): ApiJson<ShareSettingsIn>,
) -> AppResult<axum::Json<ShareOut>> {
    let s = crate::service::shares::update(&state, &user, &uuid, body, &who(&state, Some(user.id), Some(ip.0))).await?;
    Ok(axum::Json(ShareOut::new(&state, &s, false)?))
}

/// Revokes a link: it answers 410 from now on.
#[utoipa::path(delete, path = "/api/v3/shares/{uuid}", tag = "shares", security(("bearer" = [])),
    params(("uuid" = String, Path, description = "share uuid")),
    responses((status = 204, description = "revoked"), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn revoke(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ip: ClientIp,
    ApiPath(uuid): ApiPath<String>,
) -> AppResult<Response> {
    let s = owned_share(&state, &user, &uuid).await?;
    crate::service::shares::revoke(&state, &s, &who(&state, Some(user.id), Some(ip.0))).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UnlockRequest {
    pub password: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UnlockResponse {
    /// A token for this link alone: `Authorization: Bearer` or `?token=` on its page, preview, download.
    pub access_token: String,
    pub expires_in: u64,
}

/// Exchanges a protected link's password for a token scoped to that link.
#[utoipa::path(post, path = "/api/v3/shares/{uuid}/unlock", tag = "shares", request_body = UnlockRequest,
    params(("uuid" = String, Path, description = "share uuid")),
    responses((status = 200, body = UnlockResponse), (status = 400, body = ErrorResponse), (status = 403, description = "wrong password", body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 410, body = ErrorResponse), (status = 429, body = ErrorResponse)))]
pub async fn unlock(
    State(state): State<AppState>,
    req: ShareRequest,
    ApiJson(body): ApiJson<UnlockRequest>,
) -> AppResult<axum::Json<UnlockResponse>> {
    let password =
        body.password.filter(|p| !p.is_empty()).ok_or_else(|| AppError::validation("password", "is required"))?;
    let (access_token, expires_in) = unlock_link(&state, &req, &password).await?;
    Ok(axum::Json(UnlockResponse { access_token, expires_in }))
}
