//! Extractors: who is calling (`CurrentUser`, `AdminUser`, `MaybeUser`, `PageUser`), from where
//! (`ClientIp`), and JSON/query wrappers whose rejections are `AppError`s.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, OptionalFromRequestParts};
use axum::http::header;
use axum::http::request::Parts;

use crate::app::AppState;
use crate::domain::users::User;
use crate::error::AppError;

/// JSON body whose rejections are our 400/413/415. The body must be a JSON object.
#[derive(FromRequest)]
#[from_request(via(JsonObject), rejection(AppError))]
pub struct ApiJson<T>(pub T);

/// A JSON body that is an object (serde would also read a struct from an array: `[null]` must not
/// pass for `{}`), read into `T`.
pub struct JsonObject<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for JsonObject<T> {
    type Rejection = AppError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, AppError> {
        let axum::Json(value) = axum::Json::<serde_json::Value>::from_request(req, state).await?;
        Ok(JsonObject(json_object(value)?))
    }
}

/// `value` read as `T` when it is a JSON object; any other JSON is a 400 `invalid_body`.
pub fn json_object<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, AppError> {
    if !value.is_object() {
        return Err(AppError::bad_request("invalid_body", "the body must be a JSON object"));
    }
    serde_json::from_value(value).map_err(|e| AppError::bad_request("invalid_body", format!("invalid JSON body: {e}")))
}

/// Query string whose rejections are our 400.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(AppError))]
pub struct ApiQuery<T>(pub T);

/// Form body whose rejections are our 400.
#[derive(FromRequest)]
#[from_request(via(axum::Form), rejection(AppError))]
pub struct ApiForm<T>(pub T);

/// Path parameters; a malformed one is a 404 (nothing can live there).
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(AppError))]
pub struct ApiPath<T>(pub T);

/// The client's address: the peer, or — only when the peer is a trusted proxy — the right-most
/// untrusted address of `X-Forwarded-For`.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let peer =
            parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()).unwrap_or(IpAddr::from([0, 0, 0, 0]));
        Ok(ClientIp(client_ip(
            peer,
            parts.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()),
            &state.trusted_proxies,
        )))
    }
}

pub fn client_ip(peer: IpAddr, xff: Option<&str>, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let Some(xff) = xff else { return peer };
    for hop in xff.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) if is_trusted(&ip) => continue,
            Ok(ip) => return ip,
            Err(_) => return peer,
        }
    }
    peer
}

fn bearer(parts: &Parts) -> Option<&str> {
    bearer_in(&parts.headers)
}

/// The token of `Authorization: Bearer <token>`, if the request carries one.
pub fn bearer_in(headers: &axum::http::HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Loads the account of a verified access token; disabled or deleted accounts are refused.
pub async fn user_from_token(state: &AppState, token: &str) -> Result<User, AppError> {
    let claims = state.auth.verify(token, "access")?;
    let id: i64 = claims.sub.parse().map_err(|_| AppError::Unauthenticated("the token is not valid".into()))?;
    let user = state
        .store
        .user_by_id(id)
        .await?
        .ok_or_else(|| AppError::Unauthenticated("the account no longer exists".into()))?;
    if !user.is_active {
        return Err(AppError::Forbidden { code: "account_disabled", message: "this account is disabled".into() });
    }
    Ok(user)
}

/// An authenticated API caller (`Authorization: Bearer <JWT>`).
pub struct CurrentUser(pub User);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        if let Some(token) = bearer(parts) {
            return Ok(CurrentUser(user_from_token(state, token).await?));
        }
        // Reads may also use the page session (the dashboard's scripts); writes never do, so a
        // cookie can never be used for a cross-site state change.
        if matches!(parts.method, axum::http::Method::GET | axum::http::Method::HEAD)
            && let Some(session) = cookie(parts, SESSION_COOKIE)
        {
            return Ok(CurrentUser(user_from_token(state, &session).await?));
        }
        Err(AppError::Unauthenticated("authentication required: send Authorization: Bearer <token>".into()))
    }
}

impl OptionalFromRequestParts<AppState> for CurrentUser {
    type Rejection = AppError;

    /// No credentials: `None`; bad credentials: still an error (never silently anonymous).
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Option<Self>, AppError> {
        match bearer(parts) {
            None => Ok(None),
            Some(token) => Ok(Some(CurrentUser(user_from_token(state, token).await?))),
        }
    }
}

/// An authenticated admin.
pub struct AdminUser(pub User);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let CurrentUser(user) = <CurrentUser as FromRequestParts<AppState>>::from_request_parts(parts, state).await?;
        if !user.is_admin() {
            return Err(AppError::forbidden("this needs the admin role"));
        }
        Ok(AdminUser(user))
    }
}

pub const SESSION_COOKIE: &str = "vitrine_session";
pub const CSRF_COOKIE: &str = "vitrine_csrf";

/// Value of one cookie of the request.
pub fn cookie(parts: &Parts, name: &str) -> Option<String> {
    cookie_in(&parts.headers, name)
}

/// Value of one cookie in `headers`.
pub fn cookie_in(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    for v in headers.get_all(header::COOKIE) {
        let Ok(s) = v.to_str() else { continue };
        for c in cookie::Cookie::split_parse(s).flatten() {
            if c.name() == name {
                return Some(c.value().to_string());
            }
        }
    }
    None
}

/// The signed-in user of an HTML page (session cookie), if any.
pub struct PageUser(pub Option<User>);

impl FromRequestParts<AppState> for PageUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let Some(token) = cookie(parts, SESSION_COOKIE) else {
            return Ok(PageUser(None));
        };
        // An expired or revoked session simply means "not signed in" on a page.
        Ok(PageUser(user_from_token(state, &token).await.ok()))
    }
}

/// The CSRF cookie of the request (double-submit token of cookie-authenticated forms).
pub struct CsrfCookie(pub Option<String>);

impl FromRequestParts<AppState> for CsrfCookie {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        // Cross-site form posts carry a foreign Origin: refuse them before looking at tokens.
        if let Some(origin) = parts.headers.get(header::ORIGIN).and_then(|o| o.to_str().ok())
            && origin != "null"
            && !same_origin(origin, state.config.base_url())
            && parts.method != axum::http::Method::GET
        {
            return Err(AppError::Forbidden { code: "csrf_failed", message: "cross-site request refused".into() });
        }
        Ok(CsrfCookie(cookie(parts, CSRF_COOKIE)))
    }
}

/// Whether `origin` (an Origin header) is the origin of `base`.
pub fn same_origin(origin: &str, base: &str) -> bool {
    match (url::Url::parse(origin), url::Url::parse(base)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap_or_else(|_| panic!())];
        let peer: IpAddr = "10.1.2.3".parse().unwrap_or_else(|_| panic!());
        let outsider: IpAddr = "203.0.113.9".parse().unwrap_or_else(|_| panic!());
        assert_eq!(client_ip(outsider, Some("1.1.1.1"), &trusted), outsider);
        assert_eq!(client_ip(peer, Some("1.1.1.1, 198.51.100.7, 10.0.0.5"), &trusted).to_string(), "198.51.100.7");
        assert_eq!(client_ip(peer, None, &trusted), peer);
        assert_eq!(client_ip(peer, Some("garbage"), &trusted), peer);
    }
}
