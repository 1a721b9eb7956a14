//! The admin page of the policy for links and file requests (`/admin/policies`, SPEC §13): one
//! form with the CSRF token that sets every field at once. No script.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::csrf_token;
use crate::app::AppState;
use crate::domain::policies::{Policy, PolicyPatch, SHARE_TYPES};
use crate::domain::users::User;
use crate::error::AppError;
use crate::http::extract::{ApiForm, ClientIp, CsrfCookie, PageUser};
use crate::service::policies;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show, save))
}

struct TypeBox {
    name: &'static str,
    allowed: bool,
}

#[derive(Template)]
#[template(path = "policies/admin.html")]
struct PolicyPage {
    shell: super::Shell,
    csrf: String,
    types: Vec<TypeBox>,
    require_password: bool,
    default_expires_in_hours: String,
    max_expires_in_hours: String,
    max_downloads_limit: String,
    file_requests_enabled: bool,
    saved: bool,
    error: Option<String>,
}

/// The answer to someone who is not a signed-in admin.
fn refusal(user: Option<User>) -> Response {
    match user {
        None => Redirect::to("/login?next=/admin/policies").into_response(),
        Some(_) => {
            super::error_page(StatusCode::FORBIDDEN, "Admins only", "Only administrators can change the policies.")
        }
    }
}

fn render(
    state: &AppState,
    shell: super::Shell,
    p: &Policy,
    csrf: &CsrfCookie,
    saved: bool,
    error: Option<AppError>,
) -> Response {
    let (token, set) = csrf_token(csrf, state.config.secure_cookies());
    let status = error.as_ref().map_or(StatusCode::OK, AppError::status);
    let page = PolicyPage {
        shell,
        csrf: token,
        types: SHARE_TYPES.into_iter().map(|t| TypeBox { name: t.as_str(), allowed: p.allows(t) }).collect(),
        require_password: p.require_password,
        default_expires_in_hours: p.default_expires_in_hours.map(|h| h.to_string()).unwrap_or_default(),
        max_expires_in_hours: p.max_expires_in_hours.map(|h| h.to_string()).unwrap_or_default(),
        max_downloads_limit: p.max_downloads_limit.map(|n| n.to_string()).unwrap_or_default(),
        file_requests_enabled: p.file_requests_enabled,
        saved,
        error: error.map(|e| e.public_message()),
    };
    let mut r = super::render(&page);
    *r.status_mut() = status;
    if let Some(c) = set {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The policy in force and the form that changes it (admins only).
#[utoipa::path(get, path = "/admin/policies", tag = "pages",
    responses((status = 200, description = "HTML page", content_type = "text/html"), (status = 303, description = "sign in first"),
        (status = 403, description = "not an admin", content_type = "text/html")))]
pub async fn show(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    shell: super::Shell,
    csrf: CsrfCookie,
) -> Response {
    if !user.as_ref().is_some_and(User::is_admin) {
        return refusal(user);
    }
    match policies::current(&state).await {
        Ok(p) => render(&state, shell, &p, &csrf, false, None),
        Err(e) => e.into_response(),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PolicyForm {
    pub csrf_token: Option<String>,
    pub type_public: Option<String>,
    pub type_private: Option<String>,
    pub type_protected: Option<String>,
    pub type_time_limited: Option<String>,
    pub type_download_limited: Option<String>,
    pub require_password: Option<String>,
    /// Hours; empty: none.
    pub default_expires_in_hours: Option<String>,
    /// Hours; empty: no limit.
    pub max_expires_in_hours: Option<String>,
    /// Empty: no limit.
    pub max_downloads_limit: Option<String>,
    pub file_requests_enabled: Option<String>,
}

/// The form as a patch of every field (an empty number clears it).
fn form_patch(f: PolicyForm) -> Result<PolicyPatch, AppError> {
    let blank = |o: Option<String>| o.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let hours = |o: Option<String>, name: &str| -> Result<Option<f64>, AppError> {
        blank(o)
            .map(|s| s.parse::<f64>().map_err(|_| AppError::validation(name, "must be a number of hours")))
            .transpose()
    };
    let default_h = hours(f.default_expires_in_hours, "default_expires_in_hours")?;
    let max_h = hours(f.max_expires_in_hours, "max_expires_in_hours")?;
    let limit = blank(f.max_downloads_limit)
        .map(|s| s.parse::<i64>().map_err(|_| AppError::validation("max_downloads_limit", "must be a whole number")))
        .transpose()?;
    let types = [
        ("public", f.type_public),
        ("private", f.type_private),
        ("protected", f.type_protected),
        ("time_limited", f.type_time_limited),
        ("download_limited", f.type_download_limited),
    ]
    .into_iter()
    .filter(|(_, on)| on.is_some())
    .map(|(t, _)| t.to_string())
    .collect();
    Ok(PolicyPatch {
        allowed_share_types: Some(types),
        require_password: Some(f.require_password.is_some()),
        default_expires_in_hours: Some(default_h),
        max_expires_in_hours: Some(max_h),
        max_downloads_limit: Some(limit),
        file_requests_enabled: Some(f.file_requests_enabled.is_some()),
    })
}

/// Saves the policy; a refused form shows the page again with the reason (nothing is changed).
#[utoipa::path(post, path = "/admin/policies", tag = "pages",
    request_body(content = PolicyForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "saved: the page with the new policy", content_type = "text/html"),
        (status = 303, description = "sign in first"), (status = 400, description = "the page with the error", content_type = "text/html"),
        (status = 403, description = "not an admin, or the CSRF check failed", content_type = "text/html")))]
pub async fn save(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    shell: super::Shell,
    csrf: CsrfCookie,
    ip: ClientIp,
    ApiForm(form): ApiForm<PolicyForm>,
) -> Response {
    let admin = match user {
        Some(u) if u.is_admin() => u,
        other => return refusal(other),
    };
    if let Some(page) = super::form_refusal(&csrf, form.csrf_token.as_deref()) {
        return page;
    }
    let result = match form_patch(form) {
        Ok(patch) => {
            policies::update(&state, &admin, patch, &crate::service::audit::who(&state, Some(admin.id), Some(ip.0)))
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(p) => render(&state, shell, &p, &csrf, true, None),
        Err(e) if e.status().is_client_error() => match policies::current(&state).await {
            Ok(p) => render(&state, shell, &p, &csrf, false, Some(e)),
            Err(e) => e.into_response(),
        },
        Err(e) => e.into_response(),
    }
}
