//! HTML pages (askama templates, one folder per feature); errors render the error page.

pub mod analytics;
pub mod audit;
pub mod auth;
pub mod chat;
pub mod collaboration;
pub mod collections;
pub mod file_requests;
pub mod gallery;
pub mod home;
pub mod library;
pub mod oidc;
pub mod policies;
pub mod shares;
pub mod shell;
pub mod static_files;
pub mod tokens;
pub mod webhooks;

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

pub use shell::Shell;

#[derive(Template)]
#[template(path = "errors/error.html")]
struct ErrorPage<'a> {
    shell: Shell,
    title: &'a str,
    message: &'a str,
    status: u16,
}

/// The error page's HTML in `shell`'s frame.
fn error_html(shell: Shell, status: StatusCode, title: &str, message: &str) -> Option<String> {
    ErrorPage { shell, title, message, status: status.as_u16() }.render().ok()
}

/// A complete error page with `status`. The frame (who is signed in) is filled in by
/// `shell::frame` from the request; the page rendered here is what shows if it is not.
pub fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let mut r = match error_html(Shell::signed_out(), status, title, message) {
        Some(html) => (status, Html(html)).into_response(),
        None => (status, title.to_string()).into_response(),
    };
    r.extensions_mut().insert(shell::PendingErrorPage { title: title.to_string(), message: message.to_string() });
    r
}

/// The body of a page form whose only field is its CSRF token (sign out, revoke, delete, close,
/// send a test…).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct CsrfForm {
    pub csrf_token: Option<String>,
}

/// The CSRF check of a page's form (`auth::check_csrf`): None when it passes, else the "Form
/// expired" page to answer with. Every form handler of the pages uses it.
pub fn form_refusal(csrf: &crate::http::extract::CsrfCookie, token: Option<&str>) -> Option<Response> {
    auth::check_csrf(csrf, token).err().map(|e| error_page(e.status(), "Form expired", &e.public_message()))
}

/// Renders a template into a 200 page (or the error page if rendering fails).
pub fn render<T: Template>(t: &T) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            error_page(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong", "The page could not be shown.")
        }
    }
}

/// A byte count for people: "1.5 MiB".
pub fn human_size(n: i64) -> String {
    let n = n as f64;
    match n {
        n if n >= 1024.0 * 1024.0 * 1024.0 => format!("{:.1} GiB", n / (1024.0 * 1024.0 * 1024.0)),
        n if n >= 1024.0 * 1024.0 => format!("{:.1} MiB", n / (1024.0 * 1024.0)),
        n if n >= 1024.0 => format!("{:.1} KiB", n / 1024.0),
        n => format!("{n} B"),
    }
}

/// `s` made safe inside a URL path segment or a `Location` header (an id taken from the request
/// may hold any character; a valid one is unchanged).
pub fn url_segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
