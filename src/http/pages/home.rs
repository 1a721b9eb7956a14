//! The signed-in user's page: who they are and their files.

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::csrf_token;
use crate::app::AppState;
use crate::domain::pagination::PageRequest;
use crate::domain::time::rfc3339;
use crate::http::api::assets::AssetOut;
use crate::http::extract::{CsrfCookie, PageUser};
use crate::store::AssetFilter;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(index))
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
    name: String,
    email: String,
    role: &'static str,
    csrf: String,
    assets: Vec<AssetRow>,
    total: i64,
}

/// Your files (sign in first).
#[utoipa::path(get, path = "/", tag = "pages", responses((status = 200, description = "HTML page", content_type = "text/html"),
    (status = 303, description = "not signed in: to /login")))]
pub async fn index(State(state): State<AppState>, PageUser(user): PageUser, csrf: CsrfCookie) -> Response {
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
    let (token, set) = csrf_token(&csrf, state.config.secure_cookies());
    let mut r = super::render(&HomePage {
        name: user.name.clone(),
        email: user.email.clone(),
        role: user.role.as_str(),
        csrf: token,
        assets: rows,
        total,
    });
    if let Some(c) = set {
        r.headers_mut().append(axum::http::header::SET_COOKIE, c);
    }
    r
}
