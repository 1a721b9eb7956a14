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
use crate::error::{AppError, AppResult, ErrorResponse};
use crate::http::extract::{ApiJson, ClientIp, CurrentSession, CurrentUser};
use crate::store::sessions::SessionKind;
use crate::store::users::Created;

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
        (status = 403, description = "registration is closed", body = ErrorResponse),
        (status = 409, description = "e-mail already registered", body = ErrorResponse)))]
pub async fn register(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> AppResult<impl IntoResponse> {
    let new = NewUser::parse(body.email.as_deref(), body.password.as_deref(), body.name.as_deref(), None)?;
    if state.config.registration == Registration::Closed {
        return Err(AppError::Forbidden {
            code: "registration_closed",
            message: "registration is closed; ask an administrator for an account".into(),
        });
    }
    let user = create_account(&state, new).await?;
    let access_token = start_session(&state, user.id, SessionKind::Api).await?;
    Ok((StatusCode::CREATED, axum::Json(RegisterResponse { user: UserOut::from(&user), access_token })))
}

/// Hashes the password and stores the account; the one path for API, admin and CLI.
pub async fn create_account(state: &AppState, new: NewUser) -> AppResult<User> {
    let hash = state.auth.hash_password(new.password.expose()).await?;
    match state.store.create_user(&new.email, &new.name, &hash, new.role).await? {
        Created::Ok(u) => {
            tracing::info!(user_id = u.id, role = u.role.as_str(), "account created");
            Ok(u)
        }
        Created::EmailTaken => Err(AppError::Conflict {
            code: "email_taken",
            message: "an account with this e-mail address already exists".into(),
        }),
    }
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
        (status = 403, description = "account disabled", body = ErrorResponse),
        (status = 429, description = "too many attempts", body = ErrorResponse)))]
pub async fn login(
    State(state): State<AppState>,
    ip: ClientIp,
    ApiJson(body): ApiJson<LoginRequest>,
) -> AppResult<axum::Json<LoginResponse>> {
    let (email, password) = require_credentials(body.email, body.password)?;
    let user = check_credentials(&state, ip, &email, &password).await?;
    Ok(axum::Json(LoginResponse {
        access_token: start_session(&state, user.id, SessionKind::Api).await?,
        token_type: "Bearer",
        expires_in: state.auth.ttl_secs(),
    }))
}

/// Opens a sign-in session of `user_id` (random id from the CSRNG, expiring with its token) and
/// returns its token: an API access token (`Api`), or the login cookie's value (`Page`), which is
/// of another kind and never verifies as a bearer token.
pub async fn start_session(state: &AppState, user_id: i64, kind: SessionKind) -> AppResult<String> {
    let sid = crate::auth::random_token();
    let now = crate::blob::unix_now() as u64;
    let exp = now + state.auth.ttl_secs();
    state.store.create_session(&sid, user_id, kind, now as i64 * 1000, exp as i64 * 1000).await?;
    let typ = match kind {
        SessionKind::Api => crate::auth::ACCESS,
        SessionKind::Page => crate::auth::PAGE_SESSION,
    };
    state.auth.issue_for_session(user_id, typ, &sid, exp)
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

/// Ends the sign-in session `session_id` of `user_id` (API and page logout): its tokens and cookie
/// are refused from now on, and the sockets opened with them close at once, on every instance.
pub async fn sign_out(state: &AppState, user_id: i64, session_id: &str) -> AppResult<()> {
    state.store.revoke_session(session_id, crate::domain::time::now_ms()).await?;
    state.rooms.revoke(crate::bus::Revocation::Session { user_id, session_id: session_id.to_string() });
    tracing::info!(user_id, "signed out");
    Ok(())
}

pub fn require_credentials(email: Option<String>, password: Option<String>) -> AppResult<(String, String)> {
    let mut fields = crate::error::FieldErrors::new();
    let email = email.map(|e| e.trim().to_lowercase()).filter(|e| !e.is_empty());
    let password = password.filter(|p| !p.is_empty());
    if email.is_none() {
        fields.insert("email".into(), "is required".into());
    }
    if password.is_none() {
        fields.insert("password".into(), "is required".into());
    }
    match (email, password) {
        (Some(e), Some(p)) => Ok((e, p)),
        _ => Err(AppError::from_fields(fields)),
    }
}

/// Rate limits (per IP, per account), then the password; the one check for API and login page.
pub async fn check_credentials(state: &AppState, ip: ClientIp, email: &str, password: &str) -> AppResult<User> {
    state.limits.login_per_ip.check(ip.0).await?;
    state.limits.login_per_account.check(email).await?;
    let user = state.store.user_by_email(email).await?;
    let ok = state.auth.verify_password(password, user.as_ref().map(|u| u.password_hash.as_str())).await?;
    match user {
        Some(u) if ok => {
            if !u.is_active {
                return Err(AppError::Forbidden {
                    code: "account_disabled",
                    message: "this account is disabled".into(),
                });
            }
            Ok(u)
        }
        _ => {
            metrics::counter!("vitrine_login_failures_total").increment(1);
            Err(AppError::Unauthenticated("wrong e-mail address or password".into()))
        }
    }
}

/// The current account.
#[utoipa::path(get, path = "/api/auth/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = UserOut), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse)))]
pub async fn me(CurrentUser(user): CurrentUser) -> axum::Json<UserOut> {
    axum::Json(UserOut::from(&user))
}
