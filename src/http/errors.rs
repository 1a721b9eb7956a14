//! One shape for every error (SPEC §0; issue 18, item 12): whatever answered — a handler, one of
//! axum's own extractors (Path, Query, WebSocketUpgrade, body limits…), a fallback — an error
//! leaves as the §0 JSON on the API and as the HTML error page to a browser on a page route.
//! Paths that no resource can have (control characters or invalid UTF-8 once percent-decoded)
//! are a 404 before any handler sees them, so nothing can echo them into a header.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{AppError, ErrorCode};

/// Whether the client is a browser on a page route: it gets the HTML error page.
pub fn wants_html(req_path: &str, accept: Option<&HeaderValue>) -> bool {
    !req_path.starts_with("/api/") && accept.and_then(|a| a.to_str().ok()).is_some_and(|a| a.contains("text/html"))
}

/// Whether a percent-encoded path decodes to UTF-8 text without control characters.
pub fn path_is_decodable(path: &str) -> bool {
    percent_encoding::percent_decode_str(path).decode_utf8().is_ok_and(|p| !p.chars().any(char::is_control))
}

/// 404 for a path no resource can have.
pub async fn refuse_undecodable_paths(req: Request, next: Next) -> Response {
    if path_is_decodable(req.uri().path()) {
        return next.run(req).await;
    }
    if wants_html(req.uri().path(), req.headers().get(header::ACCEPT)) {
        return super::pages::error_page(StatusCode::NOT_FOUND, "Not found", "There is nothing at this address.");
    }
    AppError::NotFound("page").into_response()
}

/// The machine code of an error status that no handler chose.
fn code_for(status: StatusCode) -> ErrorCode {
    match status {
        StatusCode::BAD_REQUEST => ErrorCode::BadRequest,
        StatusCode::UNAUTHORIZED => ErrorCode::NotAuthenticated,
        StatusCode::FORBIDDEN => ErrorCode::Forbidden,
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::NOT_ACCEPTABLE => ErrorCode::NotAcceptable,
        StatusCode::REQUEST_TIMEOUT => ErrorCode::RequestTimeout,
        StatusCode::CONFLICT => ErrorCode::Conflict,
        StatusCode::GONE => ErrorCode::Gone,
        StatusCode::LENGTH_REQUIRED => ErrorCode::LengthRequired,
        StatusCode::PRECONDITION_FAILED => ErrorCode::PreconditionFailed,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::TooLarge,
        StatusCode::URI_TOO_LONG => ErrorCode::UriTooLong,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedType,
        StatusCode::RANGE_NOT_SATISFIABLE => ErrorCode::RangeNotSatisfiable,
        StatusCode::EXPECTATION_FAILED => ErrorCode::ExpectationFailed,
        StatusCode::UNPROCESSABLE_ENTITY => ErrorCode::Rejected,
        StatusCode::UPGRADE_REQUIRED => ErrorCode::UpgradeRequired,
        StatusCode::TOO_MANY_REQUESTS => ErrorCode::RateLimited,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => ErrorCode::HeadersTooLarge,
        StatusCode::NOT_IMPLEMENTED => ErrorCode::FormatNotSupported,
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::BAD_GATEWAY | StatusCode::GATEWAY_TIMEOUT => {
            ErrorCode::Unavailable
        }
        s if s.is_server_error() => ErrorCode::Internal,
        _ => ErrorCode::BadRequest,
    }
}

fn essence(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .unwrap_or_default()
}

fn is_json(ct: &str) -> bool {
    ct == "application/json" || ct.ends_with("+json")
}

/// Longest error body read to reuse its sentence.
const MAX_ERROR_BODY: usize = 16 * 1024;

/// A sentence fit to show from an error body: one line of printable text, not too long.
fn sentence(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?.trim();
    (!text.is_empty() && text.len() <= 500 && !text.chars().any(char::is_control)).then(|| text.to_string())
}

/// Uniform errors: an error response that is not in the client's shape is rewritten: text (or
/// nothing) to the §0 JSON, or to the HTML error page for a browser on a page route, as is the
/// §0 JSON there. Headers (Retry-After, Allow, security headers…) are kept. The shape is noted
/// before the request is handled and applied to its answer by the outermost middleware
/// (`pages::shell::frame`, which also frames the error pages: one middleware for both).
#[derive(Clone, Copy)]
pub struct ErrorShape {
    html: bool,
    head: bool,
}

impl ErrorShape {
    pub fn of(req: &Request) -> ErrorShape {
        ErrorShape {
            html: wants_html(req.uri().path(), req.headers().get(header::ACCEPT)),
            head: req.method() == axum::http::Method::HEAD,
        }
    }

    /// Rewrites `resp` if it is an error not in the client's shape.
    pub async fn apply(self, resp: Response) -> Response {
        reshape(resp, self.html, self.head).await
    }
}

async fn reshape(resp: Response, html: bool, head: bool) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let ct = essence(resp.headers());
    // A handler's own HTML (a form shown again with its error) stands; so does the §0 JSON
    // except to a browser on a page route. Text, or nothing, is what axum's layers write.
    let plain = ct.is_empty() || ct == "text/plain";
    if head || ct == "text/html" || !(plain || (html && is_json(&ct))) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_ERROR_BODY).await.unwrap_or_default();
    let said = if is_json(&ct) {
        serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
    } else {
        sentence(&bytes)
    };
    let reason = status.canonical_reason().unwrap_or("Error");
    let mut fresh = if html {
        let message = match &said {
            Some(s) if !status.is_server_error() => s.clone(),
            _ if status.is_server_error() => "The page could not be shown.".to_string(),
            _ => format!("{reason}."),
        };
        super::pages::error_page(status, reason, &message)
    } else if status == StatusCode::INTERNAL_SERVER_ERROR {
        // Our own fault: the details go to the log, never to the client.
        AppError::internal(anyhow::anyhow!("a 500 without the JSON error body: {}", said.unwrap_or_default()))
            .into_response()
    } else {
        let message = match said {
            Some(s) if status.is_client_error() => s,
            _ => reason.to_lowercase(),
        };
        AppError::Status { status, code: code_for(status), message }.into_response()
    };
    parts.headers.remove(header::CONTENT_TYPE);
    parts.headers.remove(header::CONTENT_LENGTH);
    for (name, value) in fresh.headers() {
        parts.headers.insert(name.clone(), value.clone());
    }
    *fresh.headers_mut() = parts.headers;
    *fresh.status_mut() = status;
    fresh
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_with_control_characters_or_bad_utf8_are_not_decodable() {
        assert!(path_is_decodable("/share/abc/"));
        assert!(path_is_decodable("/files/caf%C3%A9.pdf"));
        assert!(!path_is_decodable("/collaborate/%0A/"));
        assert!(!path_is_decodable("/share/%FF/"));
        assert!(!path_is_decodable("/x/%00"));
        assert!(!path_is_decodable("/x/%7F"));
    }

    #[test]
    fn only_short_printable_text_is_reused() {
        assert_eq!(sentence(b" Invalid URL: bad \n").as_deref(), Some("Invalid URL: bad"));
        assert_eq!(sentence(b"a\x01b"), None);
        assert_eq!(sentence(&[0xff, 0xfe]), None);
        assert_eq!(sentence(b""), None);
    }
}
