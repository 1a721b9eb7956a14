//! Webhooks API (SPEC §13): a user's endpoints (create, list, read, change, delete), a test
//! event, and each webhook's deliveries. Another user's webhook is 404.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::domain::pagination::{Page, PageQuery, PageRequest};
use crate::domain::time::rfc3339;
use crate::domain::webhooks::{Delivery, DeliveryStatus, Scope, Webhook, WebhookIn};
use crate::error::{AppResult, ErrorResponse};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, ClientIp, CurrentUser};
use crate::service::webhooks;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, patch, delete))
        .routes(routes!(test))
        .routes(routes!(deliveries))
}

/// A webhook as its owner sees it; `secret` only in the answer to its creation.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookOut {
    pub id: i64,
    pub url: String,
    pub events: Vec<String>,
    pub description: String,
    /// `own`, or `all` (an admin's webhook that hears every user's events).
    pub scope: Scope,
    pub active: bool,
    /// `whsec_` + base64 of the signing key: shown once, at creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl WebhookOut {
    pub fn new(h: &Webhook, with_secret: bool) -> WebhookOut {
        WebhookOut {
            id: h.id,
            url: h.url.clone(),
            events: h.events.clone(),
            description: h.description.clone(),
            scope: h.scope,
            active: h.active,
            secret: with_secret.then(|| h.secret.clone()),
            created_at: rfc3339(h.created_at),
            updated_at: rfc3339(h.updated_at),
        }
    }
}

/// One delivery of one event to one webhook.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryOut {
    pub id: i64,
    /// The `webhook-id` header: the same on every attempt.
    pub event_id: String,
    /// The event type (`share.created`, `webhook.test`, ...).
    pub event: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    /// The receiver's last HTTP status (null when it never answered).
    pub response_status: Option<i64>,
    /// The first KiB of the receiver's last answer.
    pub response_body: Option<String>,
    /// Why the last attempt got no answer (refused address, timeout, connection error).
    pub error: Option<String>,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
}

impl DeliveryOut {
    pub fn new(d: &Delivery) -> DeliveryOut {
        DeliveryOut {
            id: d.id,
            event_id: d.event_id.clone(),
            event: d.event_type.clone(),
            status: d.status,
            attempts: d.attempts,
            response_status: d.response_status,
            response_body: d.response_body.clone(),
            error: d.last_error.clone(),
            next_attempt_at: (d.status == DeliveryStatus::Pending).then(|| rfc3339(d.next_attempt_at)),
            created_at: rfc3339(d.created_at),
            delivered_at: d.delivered_at.map(rfc3339),
        }
    }
}

/// Creates a webhook. The answer is the only one that shows its `secret`.
#[utoipa::path(post, path = "/api/webhooks", tag = "webhooks", security(("bearer" = [])), request_body = WebhookIn,
    responses((status = 201, body = WebhookOut), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, description = "scope \"all\" by a non-admin", body = ErrorResponse),
        (status = 409, description = "too many webhooks", body = ErrorResponse)))]
pub async fn create(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ip: ClientIp,
    ApiJson(body): ApiJson<WebhookIn>,
) -> AppResult<Response> {
    let h =
        webhooks::create(&state, &user, body, &crate::service::audit::who(&state, Some(user.id), Some(ip.0))).await?;
    Ok((StatusCode::CREATED, axum::Json(WebhookOut::new(&h, true))).into_response())
}

/// The caller's webhooks, newest first (without their secrets).
#[utoipa::path(get, path = "/api/webhooks", tag = "webhooks", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = Page<WebhookOut>), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse)))]
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> AppResult<axum::Json<Page<WebhookOut>>> {
    let page = PageRequest::try_from(&q)?;
    let (items, count) = state.store.list_webhooks(user.id, page).await?;
    let results = items.iter().map(|h| WebhookOut::new(h, false)).collect();
    let base = format!("{}/api/webhooks/", state.config.base_url());
    Ok(axum::Json(Page::new(results, count, page, &base, &[])))
}

/// One of the caller's webhooks.
#[utoipa::path(get, path = "/api/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = i64, Path, description = "webhook id")),
    responses((status = 200, body = WebhookOut), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn get(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<i64>,
) -> AppResult<axum::Json<WebhookOut>> {
    Ok(axum::Json(WebhookOut::new(&webhooks::owned(&state, &user, id).await?, false)))
}

/// Changes `url`, `events`, `description`, `scope` or `active` (the rules of create).
#[utoipa::path(patch, path = "/api/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = i64, Path, description = "webhook id")), request_body = WebhookIn,
    responses((status = 200, body = WebhookOut), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn patch(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<WebhookIn>,
) -> AppResult<axum::Json<WebhookOut>> {
    Ok(axum::Json(WebhookOut::new(&webhooks::update(&state, &user, id, body).await?, false)))
}

/// Deletes a webhook and its deliveries.
#[utoipa::path(delete, path = "/api/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = i64, Path, description = "webhook id")),
    responses((status = 204, description = "deleted"), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn delete(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ip: ClientIp,
    ApiPath(id): ApiPath<i64>,
) -> AppResult<Response> {
    webhooks::delete(&state, &user, id, &crate::service::audit::who(&state, Some(user.id), Some(ip.0))).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Queues a `webhook.test` event for this webhook; answers its delivery (202).
#[utoipa::path(post, path = "/api/webhooks/{id}/test", tag = "webhooks", security(("bearer" = [])),
    params(("id" = i64, Path, description = "webhook id")),
    responses((status = 202, body = DeliveryOut), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn test(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<i64>,
) -> AppResult<Response> {
    let d = webhooks::send_test(&state, &user, id).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(DeliveryOut::new(&d))).into_response())
}

/// The webhook's deliveries, newest first.
#[utoipa::path(get, path = "/api/webhooks/{id}/deliveries", tag = "webhooks", security(("bearer" = [])),
    params(("id" = i64, Path, description = "webhook id"), PageQuery),
    responses((status = 200, body = Page<DeliveryOut>), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 404, body = ErrorResponse)))]
pub async fn deliveries(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> AppResult<axum::Json<Page<DeliveryOut>>> {
    let page = PageRequest::try_from(&q)?;
    let h = webhooks::owned(&state, &user, id).await?;
    let (items, count) = state.store.list_deliveries(h.id, page).await?;
    let base = format!("{}/api/webhooks/{}/deliveries/", state.config.base_url(), h.id);
    Ok(axum::Json(Page::new(items.iter().map(DeliveryOut::new).collect(), count, page, &base, &[])))
}
