//! Accounts: register, log in, log out, who am I (SPEC §1). Every token names a sign-in session
//! kept in the database; logging out revokes it on every instance (issue 18 item 7).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::config::Registration;
use crate::domain::time::rfc3339;
use crate::domain::users::{NewUser, Role, User};
use crate::error::{AppError, AppResult, ErrorCode, ErrorResponse};
use crate::http::extract::{ApiJson, ClientIp, CurrentSession, CurrentUser};
use crate::service::auth::{Via, check_credentials, create_account, require_credentials, sign_out, start_session};
use crate::store::sessions::SessionKind;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(register)).routes(routes!(login)).routes(routes!(logout)).routes(routes!(me))
}

/// An account as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserOut {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub is_active: bool,
    pub created_at: String,
}

impl From<&User> for UserOut {
    fn from(u: &User) -> Self {
        UserOut {
            id: u.id,
            email: u.email.clone(),
            name: u.name.clone(),
            role: u.role,
            is_active: u.is_active,
            created_at: rfc3339(u.created_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterRequest {
    pub email: Option<String>,
    pub password: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RegisterResponse {
    pub user: UserOut,
    pub access_token: String,
}

/// Creates an account; the very first one becomes admin.
#[utoipa::path(post, path = "/api/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = RegisterResponse), (status = 400, body = ErrorResponse),
        (status = 403, description = "registration is closed, or only single sign-on is allowed (`oidc_only`)", body = ErrorResponse),
        (status = 409, description = "e-mail already registered", body = ErrorResponse)))]
pub async fn register(
    State(state): State<AppState>,
    ip: ClientIp,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> AppResult<impl IntoResponse> {
    let new = NewUser::parse(body.email.as_deref(), body.password.as_deref(), body.name.as_deref(), None)?;
    if state.config.oidc_only {
        return Err(AppError::Forbidden {
            code: ErrorCode::PasswordLoginDisabled,
            message: crate::service::auth::password_login_disabled(&state),
        });
    }
    if state.config.registration == Registration::Closed {
        return Err(AppError::Forbidden {
            code: ErrorCode::RegistrationClosed,
            message: "registration is closed; ask an administrator for an account".into(),
        });
    }
    let user = create_account(&state, new, &crate::service::audit::who(&state, None, Some(ip.0)), Via::SignUp).await?;
    let access_token = start_session(&state, user.id, SessionKind::Api, None).await?;
    Ok((StatusCode::CREATED, axum::Json(RegisterResponse { user: UserOut::from(&user), access_token })))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub email: Option<String>,
    pub password: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
}

/// Exchanges e-mail and password for an access token.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 400, body = ErrorResponse),
        (status = 401, description = "wrong e-mail or password", body = ErrorResponse),
        (status = 403, description = "account disabled, or password sign-in turned off (`oidc_only`)", body = ErrorResponse),
        (status = 429, description = "too many attempts", body = ErrorResponse)))]
pub async fn login(
    State(state): State<AppState>,
    ip: ClientIp,
    ApiJson(body): ApiJson<LoginRequest>,
) -> AppResult<axum::Json<LoginResponse>> {
    let (email, password) = require_credentials(body.email, body.password)?;
    let user = check_credentials(&state, ip.0, &email, &password).await?;
    Ok(axum::Json(LoginResponse {
        access_token: start_session(&state, user.id, SessionKind::Api, Some(ip.0)).await?,
        token_type: "Bearer",
        expires_in: state.auth.ttl_secs(),
    }))
}

/// Ends the caller's session: the access token of the request (or, from a same-origin page, its
/// login session) is refused from now on, on every instance. Other sessions of the account
/// (other devices, the browser) are not affected.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "signed out: the token no longer works"), (status = 401, body = ErrorResponse),
        (status = 403, description = "account disabled, or a cookie request without its CSRF token", body = ErrorResponse)))]
pub async fn logout(State(state): State<AppState>, CurrentSession(s): CurrentSession) -> AppResult<StatusCode> {
    sign_out(&state, s.user.id, &s.session_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The current account.
#[utoipa::path(get, path = "/api/auth/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = UserOut), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse)))]
pub async fn me(CurrentUser(user): CurrentUser) -> axum::Json<UserOut> {
    axum::Json(UserOut::from(&user))
}
