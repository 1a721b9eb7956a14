//! Single sign-on pages (SPEC §13): `GET /auth/oidc/login` sends the browser to the provider,
//! `GET /auth/oidc/callback` signs it in with the same session and CSRF cookies as the login form.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use cookie::{Cookie, SameSite};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{
    NextQuery, csrf_token, login_page_with_error, safe_next, session_cookie, start_page_session, with_cookie,
};
use crate::app::AppState;
use crate::error::AppError;
use crate::http::extract::{ApiQuery, ClientIp, CsrfCookie, cookie_in};
use crate::service::oidc::{Callback, begin, finish};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(login)).routes(routes!(callback))
}

/// The cookie that ties a callback to the browser that started the sign-in (login CSRF).
const BROWSER_COOKIE: &str = "vitrine_oidc";
/// Where the browser-binding cookie is sent: the callback only.
const COOKIE_PATH: &str = "/auth/oidc";

fn browser_cookie(state: &AppState, value: &str, max_age_secs: i64) -> Option<HeaderValue> {
    // SameSite=Lax: sent on the provider's top-level redirect back to us, never on cross-site
    // subrequests.
    let c = Cookie::build((BROWSER_COOKIE, value.to_string()))
        .path(COOKIE_PATH)
        .http_only(true)
        .secure(state.config.secure_cookies())
        .same_site(SameSite::Lax)
        .max_age(cookie::time::Duration::seconds(max_age_secs))
        .build();
    HeaderValue::from_str(&c.to_string()).ok()
}

fn see_other(to: &str) -> Response {
    let mut r = Redirect::to(to).into_response();
    *r.status_mut() = StatusCode::SEE_OTHER;
    r
}

/// Starts a single sign-on: redirects to the provider's authorization page (code flow, PKCE S256,
/// `state`, `nonce`). 404 when single sign-on is not configured; the login form with the reason
/// (503) when the provider cannot be reached.
#[utoipa::path(get, path = "/auth/oidc/login", tag = "pages", params(NextQuery),
    responses((status = 303, description = "to the provider's authorization page"),
        (status = 404, description = "single sign-on is not configured", content_type = "text/html"),
        (status = 429, description = "too many sign-ins from this address: the login form says so", content_type = "text/html"),
        (status = 503, description = "the provider cannot be reached: the login form says so", content_type = "text/html")))]
pub async fn login(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    ip: ClientIp,
    ApiQuery(q): ApiQuery<NextQuery>,
) -> Response {
    if state.oidc.is_none() {
        return super::error_page(
            StatusCode::NOT_FOUND,
            "Not found",
            "Single sign-on is not configured on this server.",
        );
    }
    let next = safe_next(q.next.as_deref());
    match begin(&state, &next, ip.0).await {
        Ok(b) => with_cookie(see_other(&b.authorize_url), browser_cookie(&state, &b.browser_secret, 600)),
        Err(e @ AppError::Unavailable(_)) => login_page_with_error(
            &state,
            &csrf,
            Some(&next),
            e.status(),
            format!(
                "The sign-in provider ({}) cannot be reached right now. Try again in a minute, or ask your administrator.",
                state.oidc.as_ref().map_or("SSO", |o| o.name.as_str())
            ),
        ),
        Err(e @ AppError::RateLimited { .. }) => {
            let mut page = login_page_with_error(&state, &csrf, Some(&next), e.status(), e.public_message());
            if let AppError::RateLimited { retry_after_secs } = e {
                page.headers_mut().insert(axum::http::header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            page
        }
        Err(e) => e.into_response(),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct CallbackQuery {
    /// The authorization code.
    pub code: Option<String>,
    /// The `state` the sign-in started with.
    pub state: Option<String>,
    /// The provider's refusal (`access_denied`, …), instead of a code.
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// Where the provider sends the browser back: checks `state` (once, same browser, not expired),
/// exchanges the code, verifies the ID token, signs the account in (page session and CSRF
/// cookies, as the login form does) and goes on to the page the sign-in started from.
#[utoipa::path(get, path = "/auth/oidc/callback", tag = "pages", params(CallbackQuery),
    responses((status = 303, description = "signed in: to the page the sign-in started from"),
        (status = 400, description = "missing, unknown, used or expired state, or another browser's", content_type = "text/html"),
        (status = 401, description = "the code or the ID token was refused", content_type = "text/html"),
        (status = 403, description = "e-mail address not verified, account disabled, or the provider refused", content_type = "text/html"),
        (status = 404, description = "single sign-on is not configured", content_type = "text/html"),
        (status = 503, description = "the provider cannot be reached", content_type = "text/html")))]
pub async fn callback(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    csrf: CsrfCookie,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<CallbackQuery>,
) -> Response {
    let refused = |status: StatusCode, message: &str| {
        // The binding cookie has done its work either way.
        with_cookie(super::error_page(status, "Sign-in refused", message), browser_cookie(&state, "", 0))
    };
    if state.oidc.is_none() {
        return super::error_page(
            StatusCode::NOT_FOUND,
            "Not found",
            "Single sign-on is not configured on this server.",
        );
    }
    if let Some(error) = q.error.as_deref() {
        let why = q.error_description.as_deref().unwrap_or(error);
        // The pending sign-in is spent: the provider's refusal ends it.
        if let Some(s) = q.state.as_deref() {
            let _ = state.store.take_oidc_login(s).await;
        }
        return refused(StatusCode::FORBIDDEN, &format!("The sign-in provider did not sign you in: {why}."));
    }
    let (Some(login_state), Some(code)) = (q.state.filter(|s| !s.is_empty()), q.code.filter(|c| !c.is_empty())) else {
        return refused(
            StatusCode::BAD_REQUEST,
            "This address needs the code and state the sign-in provider adds; start again from the login page.",
        );
    };
    let browser_secret = cookie_in(&headers, BROWSER_COOKIE);
    let signed_in = match finish(&state, Callback { state: login_state, code, browser_secret, ip }).await {
        Ok(s) => s,
        Err(e) => {
            let mut message = e.public_message();
            if let Some(first) = message.get(..1) {
                message = format!("{}{}.", first.to_uppercase(), &message[1..]);
            }
            return refused(e.status(), &message);
        }
    };
    let jwt = match start_page_session(&state, signed_in.user.id, Some(ip)).await {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let (_, csrf_set) = csrf_token(&csrf, state.config.secure_cookies());
    let r = with_cookie(see_other(&safe_next(Some(&signed_in.return_to))), session_cookie(&state, jwt));
    let r = with_cookie(r, browser_cookie(&state, "", 0));
    with_cookie(r, csrf_set)
}
