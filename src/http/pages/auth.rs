//! Login and logout pages: cookie session (HttpOnly, SameSite=Lax, Secure on https) and
//! double-submit CSRF tokens on every cookie-authenticated form.

use std::net::IpAddr;

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use cookie::{Cookie, SameSite};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::CsrfForm;
use crate::app::AppState;
use crate::auth::{random_token, same};
use crate::error::{AppError, ErrorCode};
use crate::http::extract::{ApiForm, ApiQuery, CSRF_COOKIE, ClientIp, CsrfCookie, PageUser, SESSION_COOKIE, cookie_in};
use crate::service::auth::check_credentials;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(login_form, login)).routes(routes!(logout))
}

#[derive(Template)]
#[template(path = "auth/login.html")]
struct LoginPage {
    shell: super::Shell,
    csrf: String,
    next: String,
    email: String,
    error: Option<String>,
    /// The "Sign in with …" button, when single sign-on is configured.
    sso: Option<SsoButton>,
    /// `oidc_only`: the password form is folded away (local administrators only).
    password_form_hidden: bool,
}

struct SsoButton {
    name: String,
    href: String,
}

impl LoginPage {
    fn new(state: &AppState, csrf: String, next: String, email: String, error: Option<String>) -> LoginPage {
        let sso = state.oidc.as_ref().map(|o| SsoButton {
            name: o.name.clone(),
            href: format!("/auth/oidc/login?next={}", super::url_segment(&next)),
        });
        // Whoever sees the sign-in form is signed out.
        let shell = super::Shell::signed_out();
        LoginPage { shell, csrf, next, email, error, sso, password_form_hidden: state.config.oidc_only }
    }
}

/// The login form showing `error` with `status` (single sign-on refusals land here too).
pub fn login_page_with_error(
    state: &AppState,
    csrf: &CsrfCookie,
    next: Option<&str>,
    status: StatusCode,
    error: String,
) -> Response {
    let (token, set) = csrf_token(csrf, state.config.secure_cookies());
    let page = LoginPage::new(state, token, safe_next(next), String::new(), Some(error));
    let mut r = super::render(&page);
    *r.status_mut() = status;
    with_cookie(r, set)
}

/// The CSRF token of this browser, creating the cookie when missing.
pub fn csrf_token(cookie: &CsrfCookie, secure: bool) -> (String, Option<HeaderValue>) {
    match &cookie.0 {
        Some(t) if t.len() == 64 => (t.clone(), None),
        _ => {
            let t = random_token();
            let c = Cookie::build((CSRF_COOKIE, t.clone()))
                .path("/")
                .http_only(true)
                .secure(secure)
                .same_site(SameSite::Strict)
                .build();
            (t, HeaderValue::from_str(&c.to_string()).ok())
        }
    }
}

/// Checks the form's token against the cookie (constant time).
pub fn check_csrf(csrf: &CsrfCookie, form_token: Option<&str>) -> Result<(), AppError> {
    match (&csrf.0, form_token) {
        (Some(c), Some(f)) if same(c, f) => Ok(()),
        _ => Err(AppError::Forbidden {
            code: ErrorCode::CsrfFailed,
            message: "the form has expired; reload the page and try again".into(),
        }),
    }
}

/// Opens a page (login cookie) session of `user_id`; returns the cookie's value. `sign_in`: the
/// client's address when it signed in with its password (audited), None for a new account.
pub async fn start_page_session(state: &AppState, user_id: i64, sign_in: Option<IpAddr>) -> Result<String, AppError> {
    crate::service::auth::start_session(state, user_id, crate::store::sessions::SessionKind::Page, sign_in).await
}

/// The session cookie carrying `jwt` (HttpOnly, SameSite=Lax, Secure on https).
pub fn session_cookie(state: &AppState, jwt: String) -> Option<HeaderValue> {
    let session = Cookie::build((SESSION_COOKIE, jwt))
        .path("/")
        .http_only(true)
        .secure(state.config.secure_cookies())
        .same_site(SameSite::Lax)
        .max_age(cookie::time::Duration::seconds(state.auth.ttl_secs() as i64))
        .build();
    HeaderValue::from_str(&session.to_string()).ok()
}

/// Only same-origin paths are followed after login: one leading `/`, no `//`, no `\`, no control
/// character or white space, neither as given nor once more percent-decoded (browsers ignore a
/// tab in `/\t/evil.example` and read `//evil.example`); anything else goes to `/`.
pub fn safe_next(next: Option<&str>) -> String {
    let path_only = |s: &str| {
        s.starts_with('/')
            && !s.contains("//")
            && !s.contains('\\')
            && !s.chars().any(|c| c.is_control() || c.is_whitespace())
    };
    match next {
        Some(n)
            if path_only(n) && percent_encoding::percent_decode_str(n).decode_utf8().is_ok_and(|d| path_only(&d)) =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

pub fn with_cookie(mut resp: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(c) = cookie {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct NextQuery {
    /// Where to go after signing in (a path on this site).
    pub next: Option<String>,
}

/// The sign-in form.
#[utoipa::path(get, path = "/login", tag = "pages", params(NextQuery), responses((status = 200, description = "HTML form", content_type = "text/html")))]
pub async fn login_form(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    PageUser(user): PageUser,
    ApiQuery(q): ApiQuery<NextQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    if user.is_some() {
        return Redirect::to(&next).into_response();
    }
    let (token, set) = csrf_token(&csrf, state.config.secure_cookies());
    with_cookie(super::render(&LoginPage::new(&state, token, next, String::new(), None)), set)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginForm {
    pub email: Option<String>,
    pub password: Option<String>,
    pub csrf_token: Option<String>,
    pub next: Option<String>,
}

/// Signs in and sets the session cookie; a failure shows the form again with the reason.
#[utoipa::path(post, path = "/login", tag = "pages", request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "signed in"), (status = 401, description = "form with an error", content_type = "text/html"),
        (status = 403, description = "CSRF check failed"), (status = 429, description = "too many attempts")))]
pub async fn login(
    State(state): State<AppState>,
    ip: ClientIp,
    csrf: CsrfCookie,
    ApiForm(form): ApiForm<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    let secure = state.config.secure_cookies();
    let (token, set) = csrf_token(&csrf, secure);
    let email = form.email.clone().unwrap_or_default();
    let fail = |status: StatusCode, msg: String| {
        let page = LoginPage::new(&state, token.clone(), next.clone(), email.clone(), Some(msg));
        let mut r = super::render(&page);
        *r.status_mut() = status;
        with_cookie(r, set.clone())
    };
    if let Err(e) = check_csrf(&csrf, form.csrf_token.as_deref()) {
        return fail(e.status(), e.public_message());
    }
    let creds = crate::service::auth::require_credentials(form.email.clone(), form.password.clone());
    let (email_v, password) = match creds {
        Ok(c) => c,
        Err(_) => {
            return fail(StatusCode::BAD_REQUEST, "Enter your e-mail address and password.".into());
        }
    };
    match check_credentials(&state, ip.0, &email_v, &password).await {
        Ok(user) => {
            let jwt = match start_page_session(&state, user.id, Some(ip.0)).await {
                Ok(t) => t,
                Err(e) => return e.into_response(),
            };
            let mut r = Redirect::to(&next).into_response();
            *r.status_mut() = StatusCode::SEE_OTHER;
            let r = with_cookie(r, session_cookie(&state, jwt));
            with_cookie(r, set)
        }
        Err(e @ AppError::RateLimited { .. }) => {
            let retry = match &e {
                AppError::RateLimited { retry_after_secs } => *retry_after_secs,
                _ => 60,
            };
            let mut r =
                fail(StatusCode::TOO_MANY_REQUESTS, format!("Too many attempts. Try again in {retry} seconds."));
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry));
            r
        }
        Err(e) => fail(e.status(), e.public_message()),
    }
}

/// Signs out: ends the page session on the server (its cookie value is refused from now on, on
/// every instance) and clears the cookie.
#[utoipa::path(post, path = "/logout", tag = "pages", request_body(content = CsrfForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "signed out"), (status = 403, description = "CSRF check failed")))]
pub async fn logout(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    headers: axum::http::HeaderMap,
    ApiForm(form): ApiForm<CsrfForm>,
) -> Response {
    if let Err(e) = check_csrf(&csrf, form.csrf_token.as_deref()) {
        return super::error_page(e.status(), "Sign-out refused", &e.public_message());
    }
    if let Some(value) = cookie_in(&headers, SESSION_COOKIE)
        && let Ok(claims) = state.auth.verify(&value, crate::auth::PAGE_SESSION)
        && let Some(sid) = claims.sid
        && let Ok(user_id) = claims.sub.parse::<i64>()
        && let Err(e) = crate::service::auth::sign_out(&state, user_id, &sid).await
    {
        return e.into_response();
    }
    let gone = Cookie::build((SESSION_COOKIE, ""))
        .path("/")
        .http_only(true)
        .secure(state.config.secure_cookies())
        .same_site(SameSite::Lax)
        .max_age(cookie::time::Duration::ZERO)
        .build();
    let mut r = Redirect::to("/login").into_response();
    *r.status_mut() = StatusCode::SEE_OTHER;
    with_cookie(r, HeaderValue::from_str(&gone.to_string()).ok())
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_same_origin_paths_are_followed_after_login() {
        for good in ["/", "/shares", "/share/0b6a/?token=abc", "/collaborate/x/replay/", "/a/b?c=d#e"] {
            assert_eq!(safe_next(Some(good)), good, "{good:?} is kept");
        }
        for bad in [
            "//evil.example",
            "/\t/evil.example",
            "/\t\t/evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/%2F/evil.example",
            "/%2f%2fevil.example",
            "/%5Cevil.example",
            "/%09/evil.example",
            "/ /evil.example",
            "/\n/evil.example",
            "/\r\n//evil.example",
            "https://evil.example",
            "evil.example",
            "javascript:alert(1)",
            "/\u{85}/evil.example",
            "/\u{3000}/evil.example",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?} is refused");
        }
        assert_eq!(safe_next(None), "/");
    }
}
