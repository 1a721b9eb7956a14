//! Analytics reports of an asset or a share link, for its owner or an admin (SPEC §5).

use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::analytics::report::Report;
use crate::app::AppState;
use crate::error::{AppError, AppResult, ErrorResponse};
use crate::http::extract::{ApiPath, ApiQuery, CurrentUser};
use crate::service::analytics::{link_report, report};
use crate::service::assets::visible_asset;
use crate::service::shares::owned_share;
use crate::store::analytics::Scope;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(asset_report)).routes(routes!(share_report))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DaysQuery {
    /// Days up to today, 1..365 (default 30).
    pub days: Option<String>,
}

pub fn parse_days(q: &DaysQuery) -> AppResult<u32> {
    match q.days.as_deref().map(str::trim) {
        None | Some("") => Ok(30),
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|d| (1..=365).contains(d))
            .ok_or_else(|| AppError::validation("days", "must be a whole number from 1 to 365")),
    }
}

/// Views, downloads, visitors and breakdowns of an asset over all its links.
#[utoipa::path(get, path = "/api/v3/assets/{id}/analytics", tag = "analytics", security(("bearer" = [])),
    params(("id" = i64, Path, description = "asset id"), DaysQuery),
    responses((status = 200, body = Report), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 404, body = ErrorResponse)))]
pub async fn asset_report(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<DaysQuery>,
) -> AppResult<axum::Json<Report>> {
    let days = parse_days(&q)?;
    let asset = visible_asset(&state, &user, id).await?;
    Ok(axum::Json(report(&state, Scope::Asset(asset.id), days).await?))
}

/// The same report for one share link; a collection link's adds `file_breakdown`.
#[utoipa::path(get, path = "/api/v3/shares/{uuid}/analytics", tag = "analytics", security(("bearer" = [])),
    params(("uuid" = String, Path, description = "share uuid"), DaysQuery),
    responses((status = 200, body = Report), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 404, body = ErrorResponse)))]
pub async fn share_report(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(uuid): ApiPath<String>,
    ApiQuery(q): ApiQuery<DaysQuery>,
) -> AppResult<axum::Json<Report>> {
    let days = parse_days(&q)?;
    let share = owned_share(&state, &user, &uuid).await?;
    Ok(axum::Json(link_report(&state, &share, days).await?))
}
