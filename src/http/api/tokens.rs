//! Personal access tokens (SPEC §13): create (the value is shown once), list, revoke. Only a
//! sign-in (a JWT or the page cookie) manages tokens: a request made with an access token is
//! refused with 403 `insufficient_scope`, so a leaked token cannot mint more.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::domain::pagination::{Page, PageQuery, PageRequest};
use crate::domain::time::rfc3339;
use crate::domain::tokens::{AccessToken, NewTokenIn};
use crate::error::{AppResult, ErrorResponse};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, ClientIp, CurrentSession};
use crate::service::tokens;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(revoke))
}

/// A token as its owner sees it: never its value or hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenOut {
    pub id: i64,
    pub name: String,
    /// Subset of `read`, `write`, `share`, `admin`.
    pub scopes: Vec<String>,
    pub created_at: String,
    /// `null`: it does not expire.
    pub expires_at: Option<String>,
    /// Recorded at most once a minute; `null` until first used.
    pub last_used_at: Option<String>,
}

impl From<&AccessToken> for TokenOut {
    fn from(t: &AccessToken) -> Self {
        TokenOut {
            id: t.id,
            name: t.name.clone(),
            scopes: t.scopes.names(),
            created_at: rfc3339(t.created_at),
            expires_at: t.expires_at.map(rfc3339),
            last_used_at: t.last_used_at.map(rfc3339),
        }
    }
}

/// A new token, with its value: shown only in this answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedTokenOut {
    pub id: i64,
    pub name: String,
    pub scopes: Vec<String>,
    /// `vtr_` and 43 characters; send it as `Authorization: Bearer`. It cannot be shown again.
    pub token: String,
    pub created_at: String,
    pub expires_at: Option<String>,
}

/// Creates an access token of the caller. `admin` is for admin accounts only (400 in
/// `fields.scopes`); an account holds at most 100 tokens (409).
#[utoipa::path(post, path = "/api/auth/tokens", tag = "auth", security(("bearer" = [])), request_body = NewTokenIn,
    responses((status = 201, body = CreatedTokenOut), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, description = "made with an access token (`insufficient_scope`), or the account is disabled", body = ErrorResponse),
        (status = 409, description = "too many tokens", body = ErrorResponse)))]
pub async fn create(
    State(state): State<AppState>,
    CurrentSession(s): CurrentSession,
    ip: ClientIp,
    ApiJson(body): ApiJson<NewTokenIn>,
) -> AppResult<impl IntoResponse> {
    tokens::require_sign_in(&s)?;
    let m =
        tokens::create(&state, &s.user, body, &crate::service::audit::who(&state, Some(s.user.id), Some(ip.0))).await?;
    let t = &m.token;
    let out = CreatedTokenOut {
        id: t.id,
        name: t.name.clone(),
        scopes: t.scopes.names(),
        token: m.value,
        created_at: rfc3339(t.created_at),
        expires_at: t.expires_at.map(rfc3339),
    };
    Ok((StatusCode::CREATED, axum::Json(out)))
}

/// The caller's access tokens, newest first, with `last_used_at`; never their values.
#[utoipa::path(get, path = "/api/auth/tokens", tag = "auth", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = Page<TokenOut>), (status = 401, body = ErrorResponse),
        (status = 403, description = "made with an access token (`insufficient_scope`)", body = ErrorResponse)))]
pub async fn list(
    State(state): State<AppState>,
    CurrentSession(s): CurrentSession,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> AppResult<axum::Json<Page<TokenOut>>> {
    tokens::require_sign_in(&s)?;
    let page = PageRequest::try_from(&q)?;
    let (items, count) = tokens::list(&state, &s.user, page).await?;
    let base = format!("{}/api/auth/tokens/", state.config.base_url());
    Ok(axum::Json(Page::new(items.iter().map(TokenOut::from).collect(), count, page, &base, &[])))
}

/// Revokes one of the caller's tokens at once, on every instance (another account's token: 404).
#[utoipa::path(delete, path = "/api/auth/tokens/{id}", tag = "auth", security(("bearer" = [])),
    params(("id" = i64, Path, description = "token id")),
    responses((status = 204, description = "revoked"), (status = 401, body = ErrorResponse),
        (status = 403, description = "made with an access token (`insufficient_scope`)", body = ErrorResponse),
        (status = 404, body = ErrorResponse)))]
pub async fn revoke(
    State(state): State<AppState>,
    CurrentSession(s): CurrentSession,
    ip: ClientIp,
    ApiPath(id): ApiPath<i64>,
) -> AppResult<StatusCode> {
    tokens::require_sign_in(&s)?;
    tokens::revoke(&state, &s.user, id, &crate::service::audit::who(&state, Some(s.user.id), Some(ip.0))).await?;
    Ok(StatusCode::NO_CONTENT)
}
