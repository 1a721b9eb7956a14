//! The webhooks pages (SPEC §13): `/webhooks` lists the signed-in user's webhooks with the form
//! that adds one (the secret is shown once, on the page that answers it), and `/webhooks/{id}`
//! shows one with its recent deliveries. Test and delete are plain forms (CSRF-checked), so
//! everything works without JavaScript.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::CsrfForm;
use super::auth::csrf_token;
use crate::app::AppState;
use crate::domain::pagination::PageRequest;
use crate::domain::time::rfc3339;
use crate::domain::users::User;
use crate::domain::webhooks::{DeliveryStatus, EventType, Scope, Webhook, WebhookIn};
use crate::error::AppError;
use crate::http::extract::{ApiForm, ApiPath, ClientIp, CsrfCookie, PageUser};
use crate::service::webhooks;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(detail))
        .routes(routes!(test))
        .routes(routes!(delete))
}

struct Row {
    id: i64,
    url: String,
    description: String,
    events: String,
    active: bool,
    all: bool,
}

#[derive(Template)]
#[template(path = "webhooks/list.html")]
struct ListPage {
    shell: super::Shell,
    csrf: String,
    rows: Vec<Row>,
    total: i64,
    events: Vec<&'static str>,
    is_admin: bool,
    error: Option<String>,
    /// A webhook just created: its secret, this once.
    secret: Option<String>,
}

struct DeliveryRow {
    event: String,
    event_id: String,
    status: &'static str,
    attempts: i64,
    response_status: Option<i64>,
    error: Option<String>,
    next_attempt_at: Option<String>,
    created_at: String,
    delivered_at: Option<String>,
}

#[derive(Template)]
#[template(path = "webhooks/detail.html")]
struct DetailPage {
    shell: super::Shell,
    csrf: String,
    id: i64,
    url: String,
    description: String,
    events: String,
    active: bool,
    all: bool,
    deliveries: Vec<DeliveryRow>,
}

fn sign_in(next: &str) -> Response {
    Redirect::to(&format!("/login?next={next}")).into_response()
}

fn see_other(to: &str) -> Response {
    let mut r = Redirect::to(to).into_response();
    *r.status_mut() = StatusCode::SEE_OTHER;
    r
}

fn not_yours() -> Response {
    super::error_page(StatusCode::NOT_FOUND, "Not found", "You have no such webhook.")
}

fn with_csrf(mut r: Response, set: Option<HeaderValue>, status: StatusCode) -> Response {
    *r.status_mut() = status;
    if let Some(c) = set {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn row(h: &Webhook) -> Row {
    Row {
        id: h.id,
        url: h.url.clone(),
        description: h.description.clone(),
        events: h.events.join(", "),
        active: h.active,
        all: h.scope == Scope::All,
    }
}

async fn render_list(
    state: &AppState,
    shell: super::Shell,
    user: &User,
    csrf: &CsrfCookie,
    error: Option<String>,
    secret: Option<String>,
) -> Response {
    let page = PageRequest { page: 1, page_size: 100 };
    let (items, total) = match state.store.list_webhooks(user.id, page).await {
        Ok(x) => x,
        Err(e) => return AppError::Internal(e).into_response(),
    };
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let (token, set) = csrf_token(csrf, state.config.secure_cookies());
    let page = ListPage {
        shell,
        csrf: token,
        rows: items.iter().map(row).collect(),
        total,
        events: EventType::SUBSCRIBABLE.iter().map(|e| e.as_str()).collect(),
        is_admin: user.is_admin(),
        error,
        secret,
    };
    with_csrf(super::render(&page), set, status)
}

/// Your webhooks, and the form that adds one.
#[utoipa::path(get, path = "/webhooks", tag = "pages",
    responses((status = 200, description = "HTML page", content_type = "text/html"), (status = 303, description = "sign in first")))]
pub async fn list(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    shell: super::Shell,
    csrf: CsrfCookie,
) -> Response {
    let Some(user) = user else { return sign_in("/webhooks") };
    render_list(&state, shell, &user, &csrf, None, None).await
}

/// The add form: `url`, `events` (repeated), `description`, `scope=all` (admins).
#[derive(Debug, Deserialize, ToSchema)]
pub struct WebhookForm {
    pub csrf_token: Option<String>,
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    pub scope: Option<String>,
}

/// Adds a webhook; the answer is the list with the new webhook's secret, shown this once.
#[utoipa::path(post, path = "/webhooks", tag = "pages",
    request_body(content = WebhookForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "created: the list with the secret", content_type = "text/html"),
        (status = 303, description = "sign in first"), (status = 400, description = "refused: the list with why", content_type = "text/html"),
        (status = 403, description = "CSRF check failed", content_type = "text/html")))]
pub async fn create(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    shell: super::Shell,
    csrf: CsrfCookie,
    ip: ClientIp,
    ApiForm(pairs): ApiForm<Vec<(String, String)>>,
) -> Response {
    let Some(user) = user else { return sign_in("/webhooks") };
    let field = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    if let Some(page) = super::form_refusal(&csrf, field("csrf_token").as_deref()) {
        return page;
    }
    let input = WebhookIn {
        url: field("url"),
        events: Some(pairs.iter().filter(|(k, _)| k == "events").map(|(_, v)| v.clone()).collect()),
        description: field("description"),
        scope: field("scope").filter(|s| !s.is_empty()),
        active: None,
    };
    match webhooks::create(&state, &user, input, &crate::service::audit::who(&state, Some(user.id), Some(ip.0))).await {
        Ok(h) => render_list(&state, shell, &user, &csrf, None, Some(h.secret)).await,
        Err(e) if e.status().is_client_error() => {
            let why = match &e {
                AppError::Validation { fields, .. } => {
                    fields.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join("; ")
                }
                other => other.public_message(),
            };
            render_list(&state, shell, &user, &csrf, Some(why), None).await
        }
        Err(e) => e.into_response(),
    }
}

/// One of your webhooks with its 50 most recent deliveries.
#[utoipa::path(get, path = "/webhooks/{id}", tag = "pages", params(("id" = i64, Path, description = "webhook id")),
    responses((status = 200, description = "HTML page", content_type = "text/html"), (status = 303, description = "sign in first"),
        (status = 404, description = "not yours", content_type = "text/html")))]
pub async fn detail(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    shell: super::Shell,
    csrf: CsrfCookie,
    ApiPath(id): ApiPath<i64>,
) -> Response {
    let Some(user) = user else { return sign_in(&format!("/webhooks/{id}")) };
    let Ok(h) = webhooks::owned(&state, &user, id).await else { return not_yours() };
    let (items, _) = match state.store.list_deliveries(h.id, PageRequest { page: 1, page_size: 50 }).await {
        Ok(x) => x,
        Err(e) => return AppError::Internal(e).into_response(),
    };
    let deliveries = items
        .iter()
        .map(|d| DeliveryRow {
            event: d.event_type.clone(),
            event_id: d.event_id.clone(),
            status: d.status.as_str(),
            attempts: d.attempts,
            response_status: d.response_status,
            error: d.last_error.clone(),
            next_attempt_at: (d.status == DeliveryStatus::Pending).then(|| rfc3339(d.next_attempt_at)),
            created_at: rfc3339(d.created_at),
            delivered_at: d.delivered_at.map(rfc3339),
        })
        .collect();
    let (token, set) = csrf_token(&csrf, state.config.secure_cookies());
    let r = row(&h);
    let page = DetailPage {
        shell,
        csrf: token,
        id: r.id,
        url: r.url,
        description: r.description,
        events: r.events,
        active: r.active,
        all: r.all,
        deliveries,
    };
    with_csrf(super::render(&page), set, StatusCode::OK)
}

/// Sends a test event; back to the webhook's page.
#[utoipa::path(post, path = "/webhooks/{id}/test", tag = "pages", params(("id" = i64, Path, description = "webhook id")),
    request_body(content = CsrfForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "queued: the webhook's page"), (status = 403, description = "CSRF check failed", content_type = "text/html"),
        (status = 404, description = "not yours", content_type = "text/html")))]
pub async fn test(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    csrf: CsrfCookie,
    ApiPath(id): ApiPath<i64>,
    ApiForm(form): ApiForm<CsrfForm>,
) -> Response {
    let Some(user) = user else { return sign_in(&format!("/webhooks/{id}")) };
    if let Some(page) = super::form_refusal(&csrf, form.csrf_token.as_deref()) {
        return page;
    }
    match webhooks::send_test(&state, &user, id).await {
        Ok(_) => see_other(&format!("/webhooks/{id}")),
        Err(AppError::NotFound(_)) => not_yours(),
        Err(e) => e.into_response(),
    }
}

/// Deletes a webhook; back to the list.
#[utoipa::path(post, path = "/webhooks/{id}/delete", tag = "pages", params(("id" = i64, Path, description = "webhook id")),
    request_body(content = CsrfForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "deleted: the list"), (status = 403, description = "CSRF check failed", content_type = "text/html"),
        (status = 404, description = "not yours", content_type = "text/html")))]
pub async fn delete(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    csrf: CsrfCookie,
    ip: ClientIp,
    ApiPath(id): ApiPath<i64>,
    ApiForm(form): ApiForm<CsrfForm>,
) -> Response {
    let Some(user) = user else { return sign_in("/webhooks") };
    if let Some(page) = super::form_refusal(&csrf, form.csrf_token.as_deref()) {
        return page;
    }
    match webhooks::delete(&state, &user, id, &crate::service::audit::who(&state, Some(user.id), Some(ip.0))).await {
        Ok(()) => see_other("/webhooks"),
        Err(AppError::NotFound(_)) => not_yours(),
        Err(e) => e.into_response(),
    }
}
