//! Extractors: who is calling (`CurrentUser`, `AdminUser`, `MaybeUser`, `PageUser`), from where
//! (`ClientIp`), and JSON/query wrappers whose rejections are `AppError`s.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, OptionalFromRequestParts};
use axum::http::header;
use axum::http::request::Parts;

use crate::app::AppState;
use crate::domain::users::User;
use crate::error::{AppError, ErrorCode};
use crate::service::auth::{SignedIn, access_session, page_session};

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
        return Err(AppError::bad_request(ErrorCode::InvalidBody, "the body must be a JSON object"));
    }
    serde_json::from_value(value)
        .map_err(|e| AppError::bad_request(ErrorCode::InvalidBody, format!("invalid JSON body: {e}")))
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

/// Whether the request comes from another origin: a foreign (or opaque `null`) `Origin`, or a
/// browser's `Sec-Fetch-Site` naming another site for anything but a top-level navigation. Such
/// requests are never authenticated by the cookie (SPEC §0).
pub fn cross_origin(headers: &axum::http::HeaderMap, base_url: &str) -> bool {
    if let Some(origin) = headers.get(header::ORIGIN) {
        return !origin.to_str().is_ok_and(|o| same_origin(o, base_url));
    }
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()).unwrap_or("");
    let mode = headers.get("sec-fetch-mode").and_then(|v| v.to_str().ok()).unwrap_or("");
    matches!(site, "cross-site" | "same-site") && mode != "navigate"
}

fn csrf_refused(message: &str) -> AppError {
    AppError::Forbidden { code: ErrorCode::CsrfFailed, message: message.into() }
}

/// The CSRF rule of a request authenticated by a cookie (SPEC §0): from this origin only, and a
/// state-changing one carries the page's CSRF token (`token`: the form's `csrf_token` field or
/// the `X-CSRF-Token` header), equal to the CSRF cookie (double submit, constant-time compare).
pub fn check_cookie_request(
    state: &AppState,
    method: &axum::http::Method,
    headers: &axum::http::HeaderMap,
    token: Option<&str>,
) -> Result<(), AppError> {
    if cross_origin(headers, state.config.base_url()) {
        return Err(csrf_refused("cross-site request refused"));
    }
    if method.is_safe() {
        return Ok(());
    }
    match (cookie_in(headers, CSRF_COOKIE), token) {
        (Some(c), Some(t)) if crate::auth::same(&c, t) => Ok(()),
        _ => Err(csrf_refused("the CSRF token is missing or wrong: send the page's token in X-CSRF-Token")),
    }
}

/// The `X-CSRF-Token` header of a request.
pub fn csrf_header(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok())
}

pub const CSRF_HEADER: &str = "x-csrf-token";

/// An authenticated API caller and its session: `Authorization: Bearer <access token>`, or the
/// page session cookie of a same-origin request (writes with the page's `X-CSRF-Token`).
pub struct CurrentSession(pub SignedIn);

impl FromRequestParts<AppState> for CurrentSession {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        if let Some(token) = bearer(parts) {
            return Ok(CurrentSession(session_of(parts, state, token).await?));
        }
        if let Some(session) = cookie(parts, SESSION_COOKIE) {
            check_cookie_request(state, &parts.method, &parts.headers, csrf_header(&parts.headers))?;
            return Ok(CurrentSession(page_session(state, &session).await?));
        }
        Err(AppError::Unauthenticated("authentication required: send Authorization: Bearer <token>".into()))
    }
}

/// The account and session of a bearer token: an access token already authenticated (and
/// checked against its scopes) by `http::scopes::enforce` is taken from the request as is.
async fn session_of(parts: &Parts, state: &AppState, token: &str) -> Result<SignedIn, AppError> {
    if let Some(c) = parts.extensions.get::<crate::http::scopes::TokenCaller>()
        && c.token == token
    {
        return Ok(c.signed.clone());
    }
    access_session(state, token).await
}

/// An authenticated API caller (see `CurrentSession`).
pub struct CurrentUser(pub User);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let CurrentSession(s) = CurrentSession::from_request_parts(parts, state).await?;
        Ok(CurrentUser(s.user))
    }
}

impl OptionalFromRequestParts<AppState> for CurrentUser {
    type Rejection = AppError;

    /// No credentials: `None`; a bad bearer token: still an error (never silently anonymous). A
    /// cookie that may not be used here (another origin, no CSRF token, ended) is ignored.
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Option<Self>, AppError> {
        if let Some(token) = bearer(parts) {
            return Ok(Some(CurrentUser(session_of(parts, state, token).await?.user)));
        }
        let Some(session) = cookie(parts, SESSION_COOKIE) else { return Ok(None) };
        if check_cookie_request(state, &parts.method, &parts.headers, csrf_header(&parts.headers)).is_err() {
            return Ok(None);
        }
        Ok(page_session(state, &session).await.ok().map(|s| CurrentUser(s.user)))
    }
}

/// An authenticated admin; an access token must also hold the `admin` scope (SPEC §13).
pub struct AdminUser(pub User);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let CurrentSession(s) = CurrentSession::from_request_parts(parts, state).await?;
        if !s.user.is_admin() {
            return Err(AppError::forbidden("this needs the admin role"));
        }
        if !s.scopes.contains(crate::domain::tokens::Scope::Admin) {
            return Err(crate::service::tokens::insufficient_scope(
                "this access token does not have the `admin` scope",
            ));
        }
        Ok(AdminUser(s.user))
    }
}

pub const SESSION_COOKIE: &str = "vitrine_session";
pub const CSRF_COOKIE: &str = "vitrine_csrf";

/// Value of one cookie of the request.
pub fn cookie(parts: &Parts, name: &str) -> Option<String> {
    cookie_in(&parts.headers, name)
}

/// A CSRF token issued for this request by the page shell (`pages::shell::frame`): the browser
/// had no valid CSRF cookie, and the answer sets this one.
#[derive(Clone)]
pub struct IssuedCsrf(pub String);

/// The request's CSRF token: the one issued for it (see [`IssuedCsrf`]), else its cookie.
pub fn csrf_in(parts: &Parts) -> Option<String> {
    match parts.extensions.get::<IssuedCsrf>() {
        Some(IssuedCsrf(t)) => Some(t.clone()),
        None => cookie(parts, CSRF_COOKIE),
    }
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

/// The signed-in session of an HTML page (session cookie), if any.
pub struct PageSession(pub Option<SignedIn>);

impl FromRequestParts<AppState> for PageSession {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        // Looked up once per request: the page's handler and its shell (`pages::shell`) both ask.
        if let Some(PageSessionSeen(s)) = parts.extensions.get::<PageSessionSeen>() {
            return Ok(PageSession(s.clone()));
        }
        let Some(token) = cookie(parts, SESSION_COOKIE) else {
            // Nobody signed in: nothing to look up, nothing worth keeping.
            return Ok(PageSession(None));
        };
        // An expired or revoked session simply means "not signed in" on a page.
        let session = page_session(state, &token).await.ok();
        parts.extensions.insert(PageSessionSeen(session.clone()));
        Ok(PageSession(session))
    }
}

/// The page session already looked up for this request.
#[derive(Clone)]
struct PageSessionSeen(Option<SignedIn>);

/// The signed-in user of an HTML page (session cookie), if any.
pub struct PageUser(pub Option<User>);

impl FromRequestParts<AppState> for PageUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let PageSession(s) = PageSession::from_request_parts(parts, state).await?;
        Ok(PageUser(s.map(|s| s.user)))
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
            return Err(AppError::Forbidden {
                code: ErrorCode::CsrfFailed,
                message: "cross-site request refused".into(),
            });
        }
        Ok(CsrfCookie(csrf_in(parts)))
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
    fn only_requests_from_this_origin_count_as_same_origin() {
        let base = "https://files.example.com";
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = axum::http::HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, axum::http::HeaderValue::from_static(v));
            }
            m
        };
        assert!(!cross_origin(&h(&[]), base), "no Origin, no fetch metadata: a plain client");
        assert!(!cross_origin(&h(&[("origin", "https://files.example.com")]), base));
        assert!(cross_origin(&h(&[("origin", "https://evil.example")]), base));
        assert!(cross_origin(&h(&[("origin", "null")]), base));
        assert!(cross_origin(&h(&[("origin", "http://files.example.com")]), base), "another scheme");
        assert!(cross_origin(&h(&[("sec-fetch-site", "same-site"), ("sec-fetch-mode", "cors")]), base));
        assert!(!cross_origin(&h(&[("sec-fetch-site", "cross-site"), ("sec-fetch-mode", "navigate")]), base));
        assert!(!cross_origin(&h(&[("sec-fetch-site", "same-origin"), ("sec-fetch-mode", "cors")]), base));
    }

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
