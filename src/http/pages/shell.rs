//! The page shell (issue 22): the frame every HTML page shares — product name, who is signed in
//! and with which role, the navigation of that role, Sign out, the footer — and the one helper
//! that prints dates. Built here once per request (`Shell` extractor); the error pages get theirs
//! from `frame`, the middleware that also gives a browser its CSRF cookie on its first page.

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::app::AppState;
use crate::domain::time::{human_date, parse_rfc3339, relative, rfc3339};
use crate::domain::users::Role;
use crate::error::AppError;
use crate::http::errors::ErrorShape;
use crate::http::extract::{CSRF_COOKIE, CsrfCookie, IssuedCsrf, PageSession, cookie_in, csrf_in};

/// What the frame of a page shows. Every page template has one, named `shell`.
pub struct Shell {
    /// The signed-in account; None shows "Sign in".
    pub user: Option<ShellUser>,
    /// The CSRF token of the Sign out form (the browser's CSRF cookie).
    pub csrf: String,
    /// The app clock when the page was made: the relative date labels count from it.
    now_ms: i64,
    /// The page's path, without a trailing slash (the navigation marks where you are).
    path: String,
}

/// The signed-in account as the navigation needs it.
pub struct ShellUser {
    pub name: String,
    pub role: &'static str,
    /// Curates the gallery (`dashboard` or `admin`).
    pub staff: bool,
    pub admin: bool,
    /// An agent of at least one company (the chat dashboard).
    pub agent: bool,
}

impl Shell {
    /// The shell of a request: its page session (looked up once per request) and CSRF cookie.
    pub async fn of(parts: &mut Parts, state: &AppState) -> Shell {
        let session = PageSession::from_request_parts(parts, state).await.map(|s| s.0).unwrap_or(None);
        let user = match session {
            Some(s) => {
                let u = s.user;
                // A failed look-up only hides the link; the page itself still shows.
                let agent = state.store.is_agent_anywhere(u.id).await.unwrap_or(false);
                Some(ShellUser {
                    name: u.name.clone(),
                    role: u.role.as_str(),
                    staff: matches!(u.role, Role::Dashboard | Role::Admin),
                    admin: u.is_admin(),
                    agent,
                })
            }
            None => None,
        };
        let csrf = csrf_in(parts).unwrap_or_default();
        let path = parts.uri.path().trim_end_matches('/').to_string();
        Shell { user, csrf, now_ms: state.clock.now_ms(), path }
    }

    /// The frame of a page that knows nobody (an error page rendered outside a request).
    pub fn signed_out() -> Shell {
        Shell { user: None, csrf: String::new(), now_ms: 0, path: String::new() }
    }

    /// Whether the navigation link `href` leads to this page (or a page under it).
    pub fn current(&self, href: &str) -> bool {
        let href = href.trim_end_matches('/');
        if href.is_empty() {
            return self.path.is_empty();
        }
        self.path == href || self.path.strip_prefix(href).is_some_and(|rest| rest.starts_with('/'))
    }

    /// A date printed for people: `<time datetime="RFC 3339" title="…">4 Dec 2026, 13:09 UTC
    /// (3 minutes ago)</time>`, the label kept current by static/js/shell.js. Takes the RFC 3339
    /// text the pages already hold; anything else is printed as it is (escaped). Use with `|safe`.
    pub fn time<S: AsRef<str>>(&self, iso: S) -> String {
        let iso = iso.as_ref();
        match parse_rfc3339(iso) {
            Some(ms) => self.time_ms(ms),
            None => escape(iso),
        }
    }

    /// Where "Sign in" leads: the login form, back to this page afterwards.
    pub fn sign_in_href(&self) -> String {
        if self.path.is_empty() || self.path == "/login" {
            return "/login".into();
        }
        format!("/login?next={}", super::url_segment(&self.path))
    }

    /// Only the words of a date (`4 Dec 2026, 13:09 UTC`), for a `<time>` a script fills in.
    pub fn date<S: AsRef<str>>(&self, iso: S) -> String {
        let iso = iso.as_ref();
        parse_rfc3339(iso).map(human_date).unwrap_or_else(|| iso.to_string())
    }

    /// Like `time`, from unix milliseconds.
    pub fn time_ms(&self, ms: i64) -> String {
        let absolute = human_date(ms);
        let label = if self.now_ms > 0 { relative(ms, self.now_ms) } else { String::new() };
        let rel = if label.is_empty() { String::new() } else { format!(" <span class=\"rel\">({label})</span>") };
        format!("<time datetime=\"{}\" title=\"{absolute}\">{absolute}{rel}</time>", rfc3339(ms))
    }
}

impl FromRequestParts<AppState> for Shell {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        Ok(Shell::of(parts, state).await)
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An error page still to be framed: `pages::error_page` leaves it on its response and `frame`
/// renders it with the shell of the request (who is signed in is known there, not deep inside a
/// handler that failed).
#[derive(Clone)]
pub struct PendingErrorPage {
    pub title: String,
    pub message: String,
}

/// Paths whose answers are never framed pages: the API, assets, sockets, the iframe pages.
fn framed_path(path: &str) -> bool {
    !["/api/", "/static/", "/ws/", "/embed/", "/chat/widget", "/metrics", "/healthz", "/readyz", "/favicon"]
        .iter()
        .any(|p| path.starts_with(p))
}

fn is_html(resp: &Response) -> bool {
    resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/html"))
}

/// The outermost middleware of every request:
/// - a browser's first page view (GET/HEAD, no valid CSRF cookie yet) gets its CSRF token here,
///   once: the token is left on the request ([`IssuedCsrf`], which the CSRF extractors read
///   before the cookie), so every form of the page and the shell's Sign out form carry the same
///   token, and set on the HTML answer;
/// - an error answer not in the client's shape is rewritten (`errors::ErrorShape`);
/// - an error page left by `pages::error_page` is rendered with the request's shell.
pub async fn frame(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let shape = ErrorShape::of(&req);
    let framed = framed_path(req.uri().path());
    let mut issued = None;
    if framed
        && matches!(*req.method(), Method::GET | Method::HEAD)
        && cookie_in(req.headers(), CSRF_COOKIE).is_none_or(|t| t.len() != 64)
    {
        let (token, set) = super::auth::csrf_token(&CsrfCookie(None), state.config.secure_cookies());
        req.extensions_mut().insert(IssuedCsrf(token));
        issued = set;
    }
    // What the shell of an error page needs once the request is gone (cheap copies: shared bytes).
    let uri = req.uri().clone();
    let cookies: Vec<HeaderValue> = req.headers().get_all(header::COOKIE).iter().cloned().collect();
    let token = req.extensions().get::<IssuedCsrf>().cloned();
    let resp = next.run(req).await;
    let mut resp = shape.apply(resp).await;
    if let Some(pending) = resp.extensions_mut().remove::<PendingErrorPage>() {
        let (mut parts, ()) = axum::http::Request::new(()).into_parts();
        for c in cookies {
            parts.headers.append(header::COOKIE, c);
        }
        if let Some(t) = token {
            parts.extensions.insert(t);
        }
        parts.uri = uri;
        let shell = Shell::of(&mut parts, &state).await;
        if let Some(html) = super::error_html(shell, resp.status(), &pending.title, &pending.message) {
            resp.headers_mut().remove(header::CONTENT_LENGTH);
            resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
            *resp.body_mut() = Body::from(html);
        }
    }
    if let Some(set) = issued
        && is_html(&resp)
    {
        resp.headers_mut().append(header::SET_COOKIE, set);
        // A browser's own token is never kept by a shared cache.
        let public = resp
            .headers()
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("public"));
        if public {
            resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_prints_as_words_with_its_machine_form() {
        let shell = Shell { user: None, csrf: String::new(), now_ms: 1_796_389_763_000 + 180_000, path: String::new() };
        let html = shell.time("2026-12-04T13:09:23Z");
        assert!(html.starts_with("<time datetime=\"2026-12-04T13:09:23Z\""), "{html}");
        assert!(html.contains(">4 Dec 2026, 13:09 UTC <span class=\"rel\">(3 minutes ago)</span></time>"), "{html}");
        assert_eq!(shell.time("<b>"), "&lt;b&gt;");
    }
}
