//! The owner's area: an asset's page with the form that creates share links, the list of every
//! link with its status and counts, copy and revoke. Forms are cookie-authenticated and
//! CSRF-protected.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::csrf_token;
use crate::app::AppState;
use crate::domain::pagination::PageRequest;
use crate::domain::shares::{Share, ShareSettingsIn, ShareTarget};
use crate::domain::time::rfc3339;
use crate::domain::users::User;
use crate::error::AppError;
use crate::http::api::assets::AssetOut;
use crate::http::extract::{ApiForm, ApiPath, ApiQuery, ClientIp, CsrfCookie, PageUser};
use crate::service::assets::visible_asset;
use crate::service::shares::{create_share, owned_share, share_url};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(asset_page))
        .routes(routes!(create_link))
        .routes(routes!(links))
        .routes(routes!(revoke_link))
}

/// One link in a list of links (`templates/shares/link_rows.html`), shared with the collection page.
pub(super) struct LinkRow {
    pub(super) uuid: String,
    pub(super) url: String,
    pub(super) title: String,
    pub(super) share_type: &'static str,
    pub(super) status: &'static str,
    pub(super) views: i64,
    pub(super) downloads: i64,
    pub(super) remaining: Option<i64>,
    pub(super) expires_at: Option<String>,
    pub(super) created_at: String,
    pub(super) revocable: bool,
    /// The shared file's or collection's page, and which of the two it is.
    pub(super) target_href: String,
    pub(super) target_label: &'static str,
}

pub(super) fn row(state: &AppState, s: &Share) -> LinkRow {
    let status = s.status(state.clock.now_ms());
    LinkRow {
        uuid: s.uuid.clone(),
        url: share_url(state, &s.uuid),
        title: s.title.clone(),
        share_type: s.share_type.as_str(),
        status: status.as_str(),
        views: s.view_count,
        downloads: s.download_count,
        remaining: s.downloads_remaining(),
        expires_at: s.expires_at.map(rfc3339),
        created_at: rfc3339(s.created_at),
        revocable: s.revoked_at.is_none(),
        target_href: match s.target {
            ShareTarget::Asset(id) => format!("/assets/{id}"),
            ShareTarget::Collection(id) => format!("/collections/{id}"),
        },
        target_label: match s.target {
            ShareTarget::Asset(_) => "file",
            ShareTarget::Collection(_) => "collection",
        },
    }
}

#[derive(Template)]
#[template(path = "shares/asset.html")]
struct AssetPage {
    shell: super::Shell,
    csrf: String,
    share_action: String,
    back: String,
    title: String,
    name: String,
    mime: String,
    thumbnail_url: Option<String>,
    download_url: String,
    links: Vec<LinkRow>,
    created: Option<String>,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "shares/links.html")]
struct LinksPage {
    shell: super::Shell,
    csrf: String,
    back: String,
    links: Vec<LinkRow>,
    total: i64,
}

fn with_csrf(mut r: Response, set: Option<HeaderValue>) -> Response {
    if let Some(c) = set {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn sign_in(next: &str) -> Response {
    Redirect::to(&format!("/login?next={next}")).into_response()
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct AssetPageQuery {
    /// The link just created (highlighted on the page).
    pub created: Option<String>,
}

async fn render_asset_page(
    state: &AppState,
    shell: super::Shell,
    user: &User,
    id: i64,
    csrf: &CsrfCookie,
    created: Option<String>,
    error: Option<String>,
) -> Response {
    let asset = match visible_asset(state, user, id).await {
        Ok(a) => a,
        Err(_) => {
            return super::error_page(StatusCode::NOT_FOUND, "Not found", "There is no such file in your library.");
        }
    };
    let links = match state.store.shares_of_asset(id).await {
        Ok(l) => l.iter().map(|s| row(state, s)).collect(),
        Err(e) => return AppError::Internal(e).into_response(),
    };
    let out = AssetOut::new(state, &asset);
    let (token, set) = csrf_token(csrf, state.config.secure_cookies());
    let mut r = super::render(&AssetPage {
        shell,
        csrf: token,
        share_action: format!("/assets/{id}/shares"),
        back: format!("/assets/{id}"),
        title: asset.title.clone(),
        name: asset.name.clone(),
        mime: asset.mime_type.clone(),
        thumbnail_url: out.thumbnail_url,
        download_url: out.download_url,
        links,
        created,
        error: error.clone(),
    });
    if error.is_some() {
        *r.status_mut() = StatusCode::BAD_REQUEST;
    }
    with_csrf(r, set)
}

/// One of your files, with its share links and a form to create one.
#[utoipa::path(get, path = "/assets/{id}", tag = "pages", params(("id" = i64, Path, description = "asset id"), AssetPageQuery),
    responses((status = 200, description = "HTML page", content_type = "text/html"), (status = 303, description = "sign in first"), (status = 404)))]
pub async fn asset_page(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    shell: super::Shell,
    csrf: CsrfCookie,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<AssetPageQuery>,
) -> Response {
    let Some(user) = user else { return sign_in(&format!("/assets/{id}")) };
    render_asset_page(&state, shell, &user, id, &csrf, q.created, None).await
}

/// The share form's fields (checkboxes are present when ticked).
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateLinkForm {
    pub csrf_token: Option<String>,
    pub share_type: Option<String>,
    pub password: Option<String>,
    pub expires_in_hours: Option<String>,
    pub max_downloads: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    /// One address per line or comma separated.
    pub allowed_emails: Option<String>,
    pub allow_preview: Option<String>,
    pub allow_download: Option<String>,
    pub allow_comments: Option<String>,
    pub notify_on_access: Option<String>,
    pub watermark: Option<String>,
}

/// The share form (`templates/shares/share_form.html`) as the settings of a new link; used by the
/// asset page and the collection page.
pub(super) fn form_to_settings(f: CreateLinkForm) -> Result<ShareSettingsIn, AppError> {
    let blank = |o: Option<String>| o.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let number = |o: Option<String>, name: &str| -> Result<Option<String>, AppError> {
        Ok(blank(o)).and_then(|v| match v {
            Some(s) if s.parse::<f64>().is_err() => Err(AppError::validation(name, "must be a number")),
            other => Ok(other),
        })
    };
    let hours = number(f.expires_in_hours, "expires_in_hours")?.and_then(|s| s.parse::<f64>().ok());
    let max = match number(f.max_downloads, "max_downloads")? {
        Some(s) => Some(s.parse::<i64>().map_err(|_| AppError::validation("max_downloads", "must be a whole number"))?),
        None => None,
    };
    let emails: Vec<String> = blank(f.allowed_emails)
        .map(|s| s.split([',', '\n', ';', ' ']).map(str::trim).filter(|e| !e.is_empty()).map(str::to_string).collect())
        .unwrap_or_default();
    Ok(ShareSettingsIn {
        share_type: blank(f.share_type),
        password: blank(f.password),
        allow_preview: Some(f.allow_preview.is_some()),
        allow_download: Some(f.allow_download.is_some()),
        allow_comments: Some(f.allow_comments.is_some()),
        allow_collaboration: None,
        expires_in_hours: hours.map(Some),
        max_downloads: max.map(Some),
        title: blank(f.title),
        description: f.description,
        notify_on_access: Some(f.notify_on_access.is_some()),
        allowed_emails: (!emails.is_empty()).then_some(emails),
        watermark: Some(f.watermark.is_some()),
    })
}

/// Creates a share link from the form; errors show the page again with the reason.
#[utoipa::path(post, path = "/assets/{id}/shares", tag = "pages", params(("id" = i64, Path, description = "asset id")),
    request_body(content = CreateLinkForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "created: back to the asset page"), (status = 400, description = "the page with the error", content_type = "text/html"),
        (status = 403, description = "CSRF check failed")))]
pub async fn create_link(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    shell: super::Shell,
    csrf: CsrfCookie,
    ip: ClientIp,
    ApiPath(id): ApiPath<i64>,
    ApiForm(form): ApiForm<CreateLinkForm>,
) -> Response {
    let Some(user) = user else { return sign_in(&format!("/assets/{id}")) };
    if let Some(page) = super::form_refusal(&csrf, form.csrf_token.as_deref()) {
        return page;
    }
    let result = match form_to_settings(form) {
        Ok(input) => {
            create_share(&state, &user, id, input, &crate::service::audit::who(&state, Some(user.id), Some(ip.0))).await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(share) => {
            let mut r = Redirect::to(&format!("/assets/{id}?created={}", share.uuid)).into_response();
            *r.status_mut() = StatusCode::SEE_OTHER;
            r
        }
        Err(AppError::NotFound(_)) => {
            super::error_page(StatusCode::NOT_FOUND, "Not found", "There is no such file in your library.")
        }
        Err(e) if e.status().is_client_error() => {
            render_asset_page(&state, shell, &user, id, &csrf, None, Some(e.public_message())).await
        }
        Err(e) => e.into_response(),
    }
}

/// Every link you created, with status and counts.
#[utoipa::path(get, path = "/shares", tag = "pages", responses((status = 200, description = "HTML page", content_type = "text/html"), (status = 303, description = "sign in first")))]
pub async fn links(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    shell: super::Shell,
    csrf: CsrfCookie,
) -> Response {
    let Some(user) = user else { return sign_in("/shares") };
    let (shares, total) = match state.store.list_shares(Some(user.id), PageRequest { page: 1, page_size: 100 }).await {
        Ok(x) => x,
        Err(e) => return AppError::Internal(e).into_response(),
    };
    let (token, set) = csrf_token(&csrf, state.config.secure_cookies());
    with_csrf(
        super::render(&LinksPage {
            shell,
            csrf: token,
            back: "/shares".into(),
            links: shares.iter().map(|s| row(&state, s)).collect(),
            total,
        }),
        set,
    )
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RevokeForm {
    pub csrf_token: Option<String>,
    /// Where to return (a path on this site).
    pub back: Option<String>,
}

/// Revokes one of your links.
#[utoipa::path(post, path = "/shares/{uuid}/revoke", tag = "pages", params(("uuid" = String, Path, description = "share uuid")),
    request_body(content = RevokeForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "revoked"), (status = 403, description = "CSRF check failed"), (status = 404)))]
pub async fn revoke_link(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    csrf: CsrfCookie,
    ip: ClientIp,
    ApiPath(uuid): ApiPath<String>,
    ApiForm(form): ApiForm<RevokeForm>,
) -> Response {
    let Some(user) = user else { return sign_in("/shares") };
    if let Some(page) = super::form_refusal(&csrf, form.csrf_token.as_deref()) {
        return page;
    }
    let share = match owned_share(&state, &user, &uuid).await {
        Ok(s) => s,
        Err(_) => return super::error_page(StatusCode::NOT_FOUND, "Not found", "You have no such link."),
    };
    let who = crate::service::audit::who(&state, Some(user.id), Some(ip.0));
    if let Err(e) = crate::service::shares::revoke(&state, &share, &who).await {
        return e.into_response();
    }
    // A control character could not go into the Location header (issue 18, item 12).
    let back = form
        .back
        .filter(|b| b.starts_with('/') && !b.starts_with("//") && !b.chars().any(char::is_control))
        .unwrap_or_else(|| "/shares".into());
    let mut r = Redirect::to(&back).into_response();
    *r.status_mut() = StatusCode::SEE_OTHER;
    r
}
