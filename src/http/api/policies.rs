//! The administrators' policy for links and file requests (SPEC §13): read and change it.

use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::domain::policies::{Policy, PolicyPatch};
use crate::error::{AppResult, ErrorResponse};
use crate::http::extract::{AdminUser, ApiJson, ClientIp};
use crate::service::policies;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get, patch))
}

/// The policy in force.
#[utoipa::path(get, path = "/api/admin/policies", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Policy), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse)))]
pub async fn get(State(state): State<AppState>, _admin: AdminUser) -> AppResult<axum::Json<Policy>> {
    Ok(axum::Json(policies::current(&state).await?))
}

/// Changes the policy: absent fields stay, `null` clears the optional ones. It binds every link
/// and file request created or changed from now on, on every instance; existing ones keep their
/// settings.
#[utoipa::path(patch, path = "/api/admin/policies", tag = "admin", security(("bearer" = [])), request_body = PolicyPatch,
    responses((status = 200, body = Policy), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse)))]
pub async fn patch(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ip: ClientIp,
    ApiJson(body): ApiJson<PolicyPatch>,
) -> AppResult<axum::Json<Policy>> {
    Ok(axum::Json(
        policies::update(&state, &admin, body, &crate::service::audit::who(&state, Some(admin.id), Some(ip.0))).await?,
    ))
}
