//! Personal access tokens (SPEC §13): create (the value is returned once, only its hash is
//! stored), list, revoke, and authenticate a request that carries one. The API, the settings page
//! and the CLI all call these.

use crate::app::AppState;
use crate::domain::audit::{AuditAction, Who};
use crate::domain::pagination::PageRequest;
use crate::domain::tokens::{AccessToken, MAX_TOKENS_PER_USER, NewToken, NewTokenIn, TOKEN_PREFIX};
use crate::domain::users::User;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::service::auth::SignedIn;
use crate::store::tokens::TokenRow;

/// `last_used_at` is written at most this often per token (not once per request).
pub const TOUCH_INTERVAL_MS: i64 = 60_000;

/// The session id a token's requests carry (`SignedIn::session_id`): revoking the token ends the
/// sockets opened with it (`Revocation::Session`).
pub fn session_id_of(token_id: i64) -> String {
    format!("token:{token_id}")
}

/// The 403 of a request a token may not make.
pub fn insufficient_scope(message: impl Into<String>) -> AppError {
    AppError::Forbidden { code: ErrorCode::InsufficientScope, message: message.into() }
}

/// Token management needs a sign-in (a JWT or the page cookie): a leaked token cannot mint
/// more tokens, list them or keep itself alive.
pub fn require_sign_in(caller: &SignedIn) -> AppResult<()> {
    if caller.token_id.is_some() {
        return Err(insufficient_scope("access tokens cannot manage access tokens; sign in to do this"));
    }
    Ok(())
}

/// A new token and its value (shown once; only its hash is stored).
pub struct Minted {
    pub token: AccessToken,
    pub value: String,
}

/// Creates a token of `user` from a request body: 400 with `fields` for a bad name, scopes
/// (`admin` for admins only) or expiry; 409 when the account holds `MAX_TOKENS_PER_USER`.
pub async fn create(state: &AppState, user: &User, input: NewTokenIn, who: &Who) -> AppResult<Minted> {
    let new = NewToken::parse(input, user.is_admin())?;
    let now = state.clock.now_ms();
    let value = crate::auth::new_api_token();
    let hash = crate::auth::api_token_hash(&value);
    let row = TokenRow {
        user_id: user.id,
        name: &new.name,
        hash: &hash,
        scopes: new.scopes,
        expires_at: new.expires_in_days.map(|d| now + d * 86_400_000),
    };
    // The entry names the token, its owner and its scopes; never its value or hash.
    let details = serde_json::json!({
        "name": new.name,
        "user_id": user.id,
        "scopes": new.scopes.to_db(),
        "expires_at": row.expires_at.map(crate::domain::time::rfc3339),
    });
    let audit = |id: i64| who.entry(AuditAction::TokenCreated, id, details);
    let token =
        state.store.insert_token(&row, MAX_TOKENS_PER_USER, now, audit).await?.ok_or_else(|| AppError::Conflict {
            code: ErrorCode::Conflict,
            message: format!("an account holds at most {MAX_TOKENS_PER_USER} access tokens; revoke one first"),
        })?;
    tracing::info!(user_id = user.id, token_id = token.id, scopes = %new.scopes.to_db(), "access token created");
    Ok(Minted { token, value })
}

/// The tokens of `user`, newest first (never their values or hashes).
pub async fn list(state: &AppState, user: &User, page: PageRequest) -> AppResult<(Vec<AccessToken>, i64)> {
    Ok(state.store.list_tokens(user.id, page).await?)
}

/// Revokes token `id` of `user` (another account's token is a 404): the next request with it is
/// a 401 on every instance, and the sockets opened with it close.
pub async fn revoke(state: &AppState, user: &User, id: i64, who: &Who) -> AppResult<()> {
    let entry = who.entry(AuditAction::TokenRevoked, id, serde_json::json!({ "user_id": user.id }));
    if !state.store.delete_token(id, user.id, state.clock.now_ms(), &entry).await? {
        return Err(AppError::NotFound("token"));
    }
    state.rooms.revoke(crate::bus::Revocation::Session { user_id: user.id, session_id: session_id_of(id) });
    tracing::info!(user_id = user.id, token_id = id, "access token revoked");
    Ok(())
}

/// Whether `token` has the shape of an access token (not a JWT).
pub fn is_access_token(token: &str) -> bool {
    token.starts_with(TOKEN_PREFIX)
}

/// The account behind an access token: unknown, revoked or expired tokens are a 401, a disabled
/// account a 403. Known tokens come from the store's short-lived cache (forgotten on every
/// instance when the token is revoked or its account's role or active flag changes), else one
/// indexed lookup; expiry is checked against the clock every time. A use is recorded at most once
/// a minute.
pub async fn authenticate(state: &AppState, value: &str) -> AppResult<SignedIn> {
    let unknown = || AppError::Unauthenticated("the access token is not valid (revoked or never issued)".into());
    // 4 + 43 characters are made; anything far from that is not looked up.
    if !is_access_token(value) || value.len() > 200 {
        return Err(unknown());
    }
    let found = state.store.token_by_hash(&crate::auth::api_token_hash(value)).await?.ok_or_else(unknown)?;
    let (token, user) = (&found.token, &found.user);
    let now = state.clock.now_ms();
    if token.expired(now) {
        return Err(AppError::Unauthenticated("the access token has expired".into()));
    }
    if !user.is_active {
        return Err(AppError::Forbidden {
            code: ErrorCode::AccountDisabled,
            message: "this account is disabled".into(),
        });
    }
    // The cached `last_used_at` goes stale; the token remembers this instance's last record.
    if found.claim_use(now, TOUCH_INTERVAL_MS) {
        // Bookkeeping: a failed write does not refuse the request.
        if let Err(e) = state.store.touch_token(token.id, now, now - TOUCH_INTERVAL_MS).await {
            tracing::warn!(error = %e, token_id = token.id, "could not record the token's use");
        }
    }
    Ok(SignedIn {
        user: user.clone(),
        session_id: session_id_of(token.id),
        expires: token.expires_at.map_or(u64::MAX, |e| (e / 1000).max(0) as u64),
        scopes: token.scopes,
        token_id: Some(token.id),
    })
}
