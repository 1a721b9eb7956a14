//! The signed-in user's access tokens page (`/settings/tokens`, SPEC §13): list, create (the value
//! is shown once, on the answer to the form), revoke. Plain forms with the CSRF token; no script.

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
use crate::domain::tokens::{MAX_TOKENS_PER_USER, NewTokenIn};
use crate::domain::users::User;
use crate::error::AppError;
use crate::http::extract::{ApiForm, ApiPath, ClientIp, CsrfCookie, PageUser};
use crate::service::tokens;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(revoke))
}

struct TokenRow {
    id: i64,
    name: String,
    scopes: String,
    created_at: String,
    expires_at: Option<String>,
    expired: bool,
    last_used_at: Option<String>,
}

struct Created {
    name: String,
    value: String,
}

#[derive(Template)]
#[template(path = "tokens/list.html")]
struct ListPage {
    shell: super::Shell,
    csrf: String,
    rows: Vec<TokenRow>,
    total: i64,
    admin: bool,
    created: Option<Created>,
    error: Option<String>,
}

fn sign_in() -> Response {
    Redirect::to("/login?next=/settings/tokens").into_response()
}

async fn render(
    state: &AppState,
    shell: super::Shell,
    user: &User,
    csrf: &CsrfCookie,
    created: Option<Created>,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let page = PageRequest { page: 1, page_size: MAX_TOKENS_PER_USER as u32 };
    let (items, total) = match tokens::list(state, user, page).await {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    let now = state.clock.now_ms();
    let rows = items
        .iter()
        .map(|t| TokenRow {
            id: t.id,
            name: t.name.clone(),
            scopes: t.scopes.names().join(", "),
            created_at: rfc3339(t.created_at),
            expires_at: t.expires_at.map(rfc3339),
            expired: t.expired(now),
            last_used_at: t.last_used_at.map(rfc3339),
        })
        .collect();
    let (token, set) = csrf_token(csrf, state.config.secure_cookies());
    let mut r = super::render(&ListPage { shell, csrf: token, rows, total, admin: user.is_admin(), created, error });
    *r.status_mut() = status;
    if let Some(c) = set {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    // The answer to a create holds the token's only copy: never kept by a cache.
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Your access tokens and the form that creates one.
#[utoipa::path(get, path = "/settings/tokens", tag = "pages",
    responses((status = 200, description = "HTML page", content_type = "text/html"), (status = 303, description = "sign in first")))]
pub async fn list(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    shell: super::Shell,
    csrf: CsrfCookie,
) -> Response {
    let Some(user) = user else { return sign_in() };
    render(&state, shell, &user, &csrf, None, None, StatusCode::OK).await
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AccessTokenForm {
    pub csrf_token: Option<String>,
    pub name: Option<String>,
    pub scope_read: Option<String>,
    pub scope_write: Option<String>,
    pub scope_share: Option<String>,
    pub scope_admin: Option<String>,
    /// Whole days; empty: the token does not expire.
    pub expires_in_days: Option<String>,
}

fn form_input(f: AccessTokenForm) -> Result<NewTokenIn, AppError> {
    let days = match f.expires_in_days.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
        None => None,
        Some(d) => Some(
            d.parse::<i64>().map_err(|_| AppError::validation("expires_in_days", "must be a whole number of days"))?,
        ),
    };
    let scopes = [("read", f.scope_read), ("write", f.scope_write), ("share", f.scope_share), ("admin", f.scope_admin)]
        .into_iter()
        .filter(|(_, on)| on.is_some())
        .map(|(s, _)| s.to_string())
        .collect();
    Ok(NewTokenIn { name: f.name, scopes: Some(scopes), expires_in_days: days })
}

/// Creates a token and shows its value once; a refused form shows the page again with the reason.
#[utoipa::path(post, path = "/settings/tokens", tag = "pages",
    request_body(content = AccessTokenForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "the page with the new token", content_type = "text/html"),
        (status = 303, description = "sign in first"), (status = 400, description = "the page with the error", content_type = "text/html"),
        (status = 403, description = "CSRF check failed"), (status = 409, description = "too many tokens", content_type = "text/html")))]
pub async fn create(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    shell: super::Shell,
    csrf: CsrfCookie,
    ip: ClientIp,
    ApiForm(form): ApiForm<AccessTokenForm>,
) -> Response {
    let Some(user) = user else { return sign_in() };
    if let Some(page) = super::form_refusal(&csrf, form.csrf_token.as_deref()) {
        return page;
    }
    let result = match form_input(form) {
        Ok(input) => {
            tokens::create(&state, &user, input, &crate::service::audit::who(&state, Some(user.id), Some(ip.0))).await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(m) => {
            let created = Created { name: m.token.name, value: m.value };
            render(&state, shell, &user, &csrf, Some(created), None, StatusCode::OK).await
        }
        Err(e) if e.status().is_client_error() => {
            render(&state, shell, &user, &csrf, None, Some(e.public_message()), e.status()).await
        }
        Err(e) => e.into_response(),
    }
}

/// Revokes one of your tokens at once; back to the list.
#[utoipa::path(post, path = "/settings/tokens/{id}/revoke", tag = "pages", params(("id" = i64, Path, description = "token id")),
    request_body(content = CsrfForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "revoked: back to the list"), (status = 403, description = "CSRF check failed"),
        (status = 404, description = "no such token of yours", content_type = "text/html")))]
pub async fn revoke(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    csrf: CsrfCookie,
    ip: ClientIp,
    ApiPath(id): ApiPath<i64>,
    ApiForm(form): ApiForm<CsrfForm>,
) -> Response {
    let Some(user) = user else { return sign_in() };
    if let Some(page) = super::form_refusal(&csrf, form.csrf_token.as_deref()) {
        return page;
    }
    match tokens::revoke(&state, &user, id, &crate::service::audit::who(&state, Some(user.id), Some(ip.0))).await {
        Ok(()) => {
            let mut r = Redirect::to("/settings/tokens").into_response();
            *r.status_mut() = StatusCode::SEE_OTHER;
            r
        }
        Err(AppError::NotFound(_)) => {
            super::error_page(StatusCode::NOT_FOUND, "Not found", "You have no such access token.")
        }
        Err(e) => e.into_response(),
    }
}
