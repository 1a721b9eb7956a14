//! User management for admins (SPEC §1).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::UserOut;
use crate::app::AppState;
use crate::domain::audit::AuditAction;
use crate::domain::pagination::{Page, PageQuery, PageRequest};
use crate::domain::users::{NewUser, Role};
use crate::error::{AppError, AppResult, ErrorCode, ErrorResponse, FieldErrors};
use crate::http::extract::{AdminUser, ApiJson, ApiPath, ApiQuery, ClientIp};
use crate::service::audit::who;
use crate::service::auth::{Via, create_account};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(update))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateUserRequest {
    pub email: Option<String>,
    pub password: Option<String>,
    pub name: Option<String>,
    /// `user` (default), `dashboard` or `admin`.
    pub role: Option<String>,
}

/// Creates an account with any role (works with registration closed).
#[utoipa::path(post, path = "/api/admin/users", tag = "admin", security(("bearer" = [])), request_body = CreateUserRequest,
    responses((status = 201, body = UserOut), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 409, body = ErrorResponse)))]
pub async fn create(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ip: ClientIp,
    ApiJson(body): ApiJson<CreateUserRequest>,
) -> AppResult<impl IntoResponse> {
    let role = body.role.as_deref().unwrap_or("user");
    let new = NewUser::parse(body.email.as_deref(), body.password.as_deref(), body.name.as_deref(), Some(role))?;
    let user = create_account(&state, new, &who(&state, Some(admin.id), Some(ip.0)), Via::Admin).await?;
    Ok((StatusCode::CREATED, axum::Json(UserOut::from(&user))))
}

/// Lists every account.
#[utoipa::path(get, path = "/api/admin/users", tag = "admin", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = Page<UserOut>), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse)))]
pub async fn list(
    State(state): State<AppState>,
    _admin: AdminUser,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> AppResult<axum::Json<Page<UserOut>>> {
    let page = PageRequest::try_from(&q)?;
    let (users, count) = state.store.list_users(page).await?;
    let base = format!("{}/api/admin/users/", state.config.base_url());
    Ok(axum::Json(Page::new(users.iter().map(UserOut::from).collect(), count, page, &base, &[])))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateUserRequest {
    pub role: Option<String>,
    pub is_active: Option<bool>,
}

/// Changes an account's role or disables it (`is_active: false`), effective at once.
#[utoipa::path(patch, path = "/api/admin/users/{id}", tag = "admin", security(("bearer" = [])), request_body = UpdateUserRequest,
    params(("id" = i64, Path, description = "account id")),
    responses((status = 200, body = UserOut), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)))]
pub async fn update(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ip: ClientIp,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<UpdateUserRequest>,
) -> AppResult<axum::Json<UserOut>> {
    let mut fields = FieldErrors::new();
    let role = match body.role.as_deref() {
        None => None,
        Some(r) => Role::parse(r).or_else(|| {
            fields.insert("role".into(), "must be one of user, dashboard, admin".into());
            None
        }),
    };
    if body.role.is_none() && body.is_active.is_none() {
        fields.insert("role".into(), "give role and/or is_active".into());
    }
    if !fields.is_empty() {
        return Err(AppError::from_fields(fields));
    }
    let target = state.store.user_by_id(id).await?.ok_or(AppError::NotFound("user"))?;
    let loses_admin = target.is_admin()
        && target.is_active
        && (role.is_some_and(|r| r != Role::Admin) || body.is_active == Some(false));
    if loses_admin && state.store.count_admins().await? <= 1 {
        return Err(AppError::Conflict {
            code: ErrorCode::LastAdmin,
            message: "this is the last active admin; make another admin first".into(),
        });
    }
    // What actually changes, each its own audit entry (committed with the change).
    let by = who(&state, Some(admin.id), Some(ip.0));
    let mut audit = Vec::new();
    if let Some(r) = role.filter(|r| *r != target.role) {
        let details = serde_json::json!({"email": target.email, "from": target.role.as_str(), "to": r.as_str()});
        audit.push(by.entry(AuditAction::UserRoleChanged, id, details));
    }
    match body.is_active {
        Some(false) if target.is_active => {
            audit.push(by.entry(AuditAction::UserDeactivated, id, serde_json::json!({"email": target.email})));
        }
        Some(true) if !target.is_active => {
            audit.push(by.entry(AuditAction::UserActivated, id, serde_json::json!({"email": target.email})));
        }
        _ => {}
    }
    let user = state
        .store
        .update_user(id, role, body.is_active, state.clock.now_ms(), &audit)
        .await?
        .ok_or(AppError::NotFound("user"))?;
    if !user.is_active {
        // Its open sockets close now, on every instance (its next request is refused anyway).
        state.rooms.revoke(crate::bus::Revocation::Account { user_id: user.id });
    }
    tracing::info!(user_id = id, role = user.role.as_str(), is_active = user.is_active, "account updated");
    Ok(axum::Json(UserOut::from(&user)))
}
