//! Accounts and sign-in sessions: create an account, check credentials (rate limits, password),
//! open and end a sign-in session. The API, the pages, the admin endpoints and the CLI all call these.

use std::net::IpAddr;

use crate::app::AppState;
use crate::domain::users::{NewUser, User};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::store::sessions::SessionKind;
use crate::store::users::Created;

/// Hashes the password and stores the account; the one path for API, admin and CLI.
pub async fn create_account(state: &AppState, new: NewUser) -> AppResult<User> {
    let hash = state.auth.hash_password(new.password.expose()).await?;
    match state.store.create_user(&new.email, &new.name, &hash, new.role, state.clock.now_ms()).await? {
        Created::Ok(u) => {
            tracing::info!(user_id = u.id, role = u.role.as_str(), "account created");
            Ok(u)
        }
        Created::EmailTaken => Err(AppError::Conflict {
            code: ErrorCode::EmailTaken,
            message: "an account with this e-mail address already exists".into(),
        }),
    }
}

/// Opens a sign-in session of `user_id` (random id from the CSRNG, expiring with its token) and
/// returns its token: an API access token (`Api`), or the login cookie's value (`Page`), which is
/// of another kind and never verifies as a bearer token.
pub async fn start_session(state: &AppState, user_id: i64, kind: SessionKind) -> AppResult<String> {
    let sid = crate::auth::random_token();
    let now = (state.clock.now_ms() / 1000) as u64;
    let exp = now + state.auth.ttl_secs();
    state.store.create_session(&sid, user_id, kind, now as i64 * 1000, exp as i64 * 1000).await?;
    let typ = match kind {
        SessionKind::Api => crate::auth::ACCESS,
        SessionKind::Page => crate::auth::PAGE_SESSION,
    };
    state.auth.issue_for_session(user_id, typ, &sid, exp)
}

/// Ends the sign-in session `session_id` of `user_id` (API and page logout): its tokens and cookie
/// are refused from now on, and the sockets opened with them close at once, on every instance.
pub async fn sign_out(state: &AppState, user_id: i64, session_id: &str) -> AppResult<()> {
    state.store.revoke_session(session_id, state.clock.now_ms()).await?;
    state.rooms.revoke(crate::bus::Revocation::Session { user_id, session_id: session_id.to_string() });
    tracing::info!(user_id, "signed out");
    Ok(())
}

/// The e-mail (trimmed, lower case) and password of a sign-in form, or which of them is missing.
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
pub async fn check_credentials(state: &AppState, ip: IpAddr, email: &str, password: &str) -> AppResult<User> {
    state.limits.login_per_ip.check(ip).await?;
    state.limits.login_per_account.check(email).await?;
    let user = state.store.user_by_email(email).await?;
    let ok = state.auth.verify_password(password, user.as_ref().map(|u| u.password_hash.as_str())).await?;
    match user {
        Some(u) if ok => {
            if !u.is_active {
                return Err(AppError::Forbidden {
                    code: ErrorCode::AccountDisabled,
                    message: "this account is disabled".into(),
                });
            }
            if !crate::service::oidc::password_allowed(state, &u).await? {
                return Err(AppError::Forbidden {
                    code: ErrorCode::PasswordLoginDisabled,
                    message: password_login_disabled(state),
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

/// Why a password sign-in or registration is refused with `oidc_only`.
pub fn password_login_disabled(state: &AppState) -> String {
    format!("password sign-in is turned off on this server; sign in with {} instead", state.config.oidc_name.trim())
}

/// A signed-in account and the sign-in session its token belongs to.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub user: User,
    /// The session id (`sid` claim): logging out revokes it.
    pub session_id: String,
    /// When the token expires (unix seconds).
    pub expires: u64,
}

/// Verifies an account token of kind `typ` and loads its account and session in one query:
/// a token whose session ended (logged out, expired, deleted) is a 401; a disabled account a 403.
async fn signed_in(state: &AppState, token: &str, typ: &str) -> Result<SignedIn, AppError> {
    let claims = state.auth.verify(token, typ)?;
    let id: i64 = claims.sub.parse().map_err(|_| AppError::Unauthenticated("the token is not valid".into()))?;
    // Tokens made before sessions existed name none: they cannot be revoked, so they end here.
    let sid =
        claims.sid.ok_or_else(|| AppError::Unauthenticated("the token is no longer valid; log in again".into()))?;
    let user = state
        .store
        .session_user(&sid, id, state.clock.now_ms())
        .await?
        .ok_or_else(|| AppError::Unauthenticated("the session has ended; log in again".into()))?;
    if !user.is_active {
        return Err(AppError::Forbidden {
            code: ErrorCode::AccountDisabled,
            message: "this account is disabled".into(),
        });
    }
    Ok(SignedIn { user, session_id: sid, expires: claims.exp })
}

/// The account and session of an API access token (`Authorization: Bearer`, `?token=`).
pub async fn access_session(state: &AppState, token: &str) -> Result<SignedIn, AppError> {
    signed_in(state, token, crate::auth::ACCESS).await
}

/// Loads the account of an access token; ended sessions, disabled or deleted accounts are refused.
/// The page cookie's value is not an access token and is refused here.
pub async fn user_from_token(state: &AppState, token: &str) -> Result<User, AppError> {
    access_session(state, token).await.map(|s| s.user)
}

/// The account and session of the page session cookie's value.
pub async fn page_session(state: &AppState, cookie_value: &str) -> Result<SignedIn, AppError> {
    signed_in(state, cookie_value, crate::auth::PAGE_SESSION).await
}
