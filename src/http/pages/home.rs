//! The signed-in user's page: who they are and their files.

use askama::Template;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use utoipa::ToSchema;

use super::auth::check_csrf;
use axum::response::{IntoResponse, Redirect, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::domain::pagination::PageRequest;
use crate::domain::time::rfc3339;
use crate::domain::users::User;
use crate::error::AppError;
use crate::http::api::assets::AssetOut;
use crate::http::api::assets::parse_meta;
use crate::http::extract::{CsrfCookie, PageUser};
use crate::http::upload;
use crate::service::assets;
use crate::service::uploads::Rules;
use crate::store::AssetFilter;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(index)).routes(routes!(upload))
}

struct AssetRow {
    id: i64,
    title: String,
    name: String,
    media_type: &'static str,
    size: String,
    created_at: String,
    thumbnail_url: Option<String>,
    download_url: String,
}

#[derive(Template)]
#[template(path = "home/index.html")]
struct HomePage {
    shell: super::Shell,
    email: String,
    assets: Vec<AssetRow>,
    total: i64,
}

/// Your files (sign in first).
#[utoipa::path(get, path = "/", tag = "pages", responses((status = 200, description = "HTML page", content_type = "text/html"),
    (status = 303, description = "not signed in: to /login")))]
pub async fn index(State(state): State<AppState>, PageUser(user): PageUser, shell: super::Shell) -> Response {
    let Some(user) = user else {
        return Redirect::to("/login").into_response();
    };
    let page = PageRequest { page: 1, page_size: 100 };
    let (assets, total) = match state.store.list_assets(AssetFilter::Owner(user.id), page).await {
        Ok(x) => x,
        Err(e) => return crate::error::AppError::Internal(e).into_response(),
    };
    let rows = assets
        .iter()
        .map(|a| {
            let out = AssetOut::new(&state, a);
            AssetRow {
                id: a.id,
                title: a.title.clone(),
                name: a.name.clone(),
                media_type: a.media_type.as_str(),
                size: super::human_size(a.size),
                created_at: rfc3339(a.created_at),
                thumbnail_url: out.thumbnail_url,
                download_url: out.download_url,
            }
        })
        .collect();
    super::render(&HomePage { shell, email: user.email.clone(), assets: rows, total })
}

/// The upload form's fields, for the documentation.
#[derive(ToSchema)]
#[allow(dead_code, reason = "documents the multipart form read by upload::receive")]
pub struct PageUploadForm {
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    title: Option<String>,
    csrf_token: String,
}

/// Uploads a file from the form on "Your files" (the checks of `POST /api/v3/assets/`), then
/// shows its page, where it is shared.
#[utoipa::path(post, path = "/assets", tag = "pages", request_body(content = PageUploadForm, content_type = "multipart/form-data"),
    responses((status = 303, description = "uploaded: to its page (not signed in: to /login)"),
        (status = 400, description = "no file", content_type = "text/html"), (status = 403, description = "CSRF check failed", content_type = "text/html"),
        (status = 413, description = "too large", content_type = "text/html"), (status = 415, description = "type not accepted", content_type = "text/html"),
        (status = 422, description = "refused content", content_type = "text/html")))]
pub async fn upload(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    csrf: CsrfCookie,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(user) = user else {
        return Redirect::to("/login").into_response();
    };
    match receive(&state, &user, &csrf, &headers, body).await {
        Ok(id) => {
            let mut r = Redirect::to(&format!("/assets/{id}")).into_response();
            *r.status_mut() = StatusCode::SEE_OTHER;
            r
        }
        Err(e) if e.status().is_server_error() => e.into_response(),
        Err(e) => super::error_page(e.status(), "The file was not uploaded", &sentence(&e)),
    }
}

fn sentence(e: &AppError) -> String {
    match e {
        AppError::Validation { fields, .. } => {
            fields.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join("; ")
        }
        other => other.public_message(),
    }
}

async fn receive(
    state: &AppState,
    user: &User,
    csrf: &CsrfCookie,
    headers: &HeaderMap,
    body: Body,
) -> Result<i64, AppError> {
    let mut form = upload::receive(state, headers, body, "file", &Rules::asset(&state.config)).await?;
    let Some(rec) = form.file.take() else {
        return Err(AppError::validation("file", "is required"));
    };
    let meta = match check_csrf(csrf, form.text("csrf_token")).and_then(|()| parse_meta(&form)) {
        Ok(m) => m,
        Err(e) => {
            rec.discard(state).await;
            return Err(e);
        }
    };
    Ok(assets::receive(state, user, meta, rec).await?.id)
}
