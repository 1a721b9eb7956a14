//! Accounts and sign-in sessions: create an account, check credentials (rate limits, password),
//! open and end a sign-in session. The API, the pages, the admin endpoints and the CLI all call these.

use std::net::IpAddr;

use serde_json::json;

use crate::app::AppState;
use crate::domain::audit::{AuditAction, Who};
use crate::domain::tokens::Scopes;
use crate::domain::users::{NewUser, User};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::store::sessions::SessionKind;
use crate::store::users::Created;

/// How an account came to be (the audit entry's `via`; a sign-up acts as the account it creates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `POST /api/auth/register/`.
    SignUp,
    /// A collaboration invitation accepted with a new account.
    Invitation,
    /// An admin (`POST /api/admin/users/`): the actor of `who`.
    Admin,
    /// The operator's `vitrine user create`.
    Cli,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Via::SignUp => "sign_up",
            Via::Invitation => "invitation",
            Via::Admin => "admin",
            Via::Cli => "cli",
        }
    }
}

/// Hashes the password and stores the account with its `user.created` audit entry; the one path
/// for API, admin, invitations and CLI.
pub async fn create_account(state: &AppState, new: NewUser, who: &Who, via: Via) -> AppResult<User> {
    let hash = state.auth.hash_password(new.password.expose()).await?;
    let audit = |id: i64, role: crate::domain::users::Role| {
        let by = match via {
            Via::SignUp | Via::Invitation => who.as_actor(id),
            Via::Admin | Via::Cli => who.clone(),
        };
        let details = json!({"email": new.email.as_str(), "role": role.as_str(), "via": via.as_str()});
        by.entry(AuditAction::UserCreated, id, details)
    };
    match state.store.create_user(&new.email, &new.name, &hash, new.role, state.clock.now_ms(), audit).await? {
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
/// of another kind and never verifies as a bearer token. `sign_in`: the client's address when this
/// is a sign-in with a password (audited as `login.succeeded` with the session); None for the first
/// session of a new account.
pub async fn start_session(
    state: &AppState,
    user_id: i64,
    kind: SessionKind,
    sign_in: Option<IpAddr>,
) -> AppResult<String> {
    let sid = crate::auth::random_token();
    let now = (state.clock.now_ms() / 1000) as u64;
    let exp = now + state.auth.ttl_secs();
    let audit = sign_in.map(|ip| {
        let who = crate::service::audit::who(state, Some(user_id), Some(ip));
        who.entry(AuditAction::LoginSucceeded, user_id, json!({"kind": kind.as_str()}))
    });
    state.store.create_session(&sid, user_id, kind, now as i64 * 1000, exp as i64 * 1000, audit.as_ref()).await?;
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
/// A refusal after the password check is audited (`login.failed`, its own write); one by the rate
/// limits is not (a flood would only fill the log).
pub async fn check_credentials(state: &AppState, ip: IpAddr, email: &str, password: &str) -> AppResult<User> {
    state.limits.login_per_ip.check(ip).await?;
    state.limits.login_per_account.check(email).await?;
    let user = state.store.user_by_email(email).await?;
    let ok = state.auth.verify_password(password, user.as_ref().map(|u| u.password_hash.as_str())).await?;
    let failed = |reason: &str| {
        // The address tried, bounded: it is the client's input.
        let tried: String = email.chars().take(254).collect();
        let target = user.as_ref().map(|u| u.id.to_string()).unwrap_or_default();
        let who = crate::service::audit::who(state, None, Some(ip));
        who.entry(AuditAction::LoginFailed, target, json!({"email": tried, "reason": reason}))
    };
    match &user {
        Some(u) if ok => {
            if !u.is_active {
                crate::service::audit::record_quietly(state, failed("account_disabled")).await;
                return Err(AppError::Forbidden {
                    code: ErrorCode::AccountDisabled,
                    message: "this account is disabled".into(),
                });
            }
            if !crate::service::oidc::password_allowed(state, u).await? {
                crate::service::audit::record_quietly(state, failed("password_login_disabled")).await;
                return Err(AppError::Forbidden {
                    code: ErrorCode::PasswordLoginDisabled,
                    message: password_login_disabled(state),
                });
            }
            Ok(u.clone())
        }
        _ => {
            metrics::counter!("vitrine_login_failures_total").increment(1);
            let reason = if user.is_some() { "wrong_password" } else { "unknown_account" };
            crate::service::audit::record_quietly(state, failed(reason)).await;
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
    /// When the token expires (unix seconds; `u64::MAX` for an access token without expiry).
    pub expires: u64,
    /// What the credential may do: every scope for a sign-in (JWT, page cookie), the token's own
    /// for an access token (SPEC §13).
    pub scopes: Scopes,
    /// The access token (`vtr_…`) the request was made with, if it was one.
    pub token_id: Option<i64>,
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
    Ok(SignedIn { user, session_id: sid, expires: claims.exp, scopes: Scopes::ALL, token_id: None })
}

/// The account and session of an API credential (`Authorization: Bearer`, `?token=`): a sign-in's
/// JWT, or a personal access token (`vtr_…`, SPEC §13; what it may do is checked once per
/// request by `http::scopes`).
pub async fn access_session(state: &AppState, token: &str) -> Result<SignedIn, AppError> {
    if crate::service::tokens::is_access_token(token) {
        return crate::service::tokens::authenticate(state, token).await;
    }
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
