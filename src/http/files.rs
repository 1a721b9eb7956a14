//! Sending stored files: one function serves every file response (full, 206 ranges, 416, HEAD,
//! If-Range) with the safety headers of DESIGN §6; `/files/{token}` serves signed download URLs.

use std::time::{Duration, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::blob::{Disposition, Download, Grant, Owner, TokenError, content_disposition};
use crate::error::{AppError, AppResult, ErrorCode, ErrorResponse};
use crate::http::extract::ApiPath;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(download))
}

/// How one file is to be sent.
#[derive(Debug, Clone)]
pub struct FileInfo {
    pub key: String,
    pub mime: String,
    pub name: String,
    /// Content hash: the strong ETag.
    pub etag: String,
    pub last_modified_ms: i64,
    pub disposition: Disposition,
}

impl From<Grant> for FileInfo {
    fn from(g: Grant) -> Self {
        FileInfo {
            key: g.key,
            mime: g.mime,
            name: g.name,
            etag: g.etag,
            last_modified_ms: 0,
            disposition: g.disposition,
        }
    }
}

/// Types a browser may render on our origin; everything else is always an attachment.
pub fn safe_inline(mime: &str) -> bool {
    matches!(mime, "image/jpeg" | "image/png" | "image/gif" | "image/webp" | "application/pdf")
        || mime.starts_with("video/")
        || mime.starts_with("audio/")
}

/// What the Range headers ask for, decided against the file's size and validators.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeAsk {
    Full,
    Part(u64, u64),
    Unsatisfiable,
}

pub fn range_ask(headers: &HeaderMap, size: u64, etag: &str, last_modified: Option<&str>) -> RangeAsk {
    let Some(range) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return RangeAsk::Full;
    };
    if let Some(if_range) = headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        let matches = if_range == format!("\"{etag}\"") || last_modified.is_some_and(|lm| lm == if_range);
        if !matches {
            return RangeAsk::Full;
        }
    }
    // A Range header we cannot parse is ignored (RFC 9110 §14.2).
    let Ok(parsed) = http_range_header::parse_range_header(range) else {
        return RangeAsk::Full;
    };
    match parsed.validate(size) {
        Ok(ranges) if ranges.len() == 1 => RangeAsk::Part(*ranges[0].start(), *ranges[0].end()),
        // Several ranges: the whole file is a valid answer and avoids multipart bodies.
        Ok(_) => RangeAsk::Full,
        Err(_) => RangeAsk::Unsatisfiable,
    }
}

fn http_date(ms: i64) -> Option<String> {
    (ms > 0).then(|| httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(ms as u64)))
}

/// Sends a stored file (or its requested range) with every header a file response needs.
pub async fn serve(state: &AppState, info: &FileInfo, method: &Method, headers: &HeaderMap) -> AppResult<Response> {
    let meta = state.blobs.head(&info.key).await?;
    let size = meta.size;
    let last_modified = http_date(info.last_modified_ms);
    let ask = range_ask(headers, size, &info.etag, last_modified.as_deref());
    let (status, range) = match ask {
        RangeAsk::Full => (StatusCode::OK, None),
        RangeAsk::Part(s, e) => (StatusCode::PARTIAL_CONTENT, Some(s..e + 1)),
        RangeAsk::Unsatisfiable => return Err(AppError::RangeNotSatisfiable { size }),
    };
    let disposition = if safe_inline(&info.mime) { info.disposition } else { Disposition::Attachment };
    let mut b = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, &info.mime)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, format!("\"{}\"", info.etag))
        .header(header::CONTENT_DISPOSITION, content_disposition(disposition, &info.name))
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::CONTENT_SECURITY_POLICY, "sandbox; frame-ancestors 'self'")
        .header("x-frame-options", "SAMEORIGIN")
        .header(header::CACHE_CONTROL, "private, max-age=0, must-revalidate");
    if let Some(lm) = &last_modified {
        b = b.header(header::LAST_MODIFIED, lm);
    }
    let len = match &range {
        Some(r) => {
            b = b.header(header::CONTENT_RANGE, format!("bytes {}-{}/{}", r.start, r.end - 1, size));
            r.end - r.start
        }
        None => size,
    };
    b = b.header(header::CONTENT_LENGTH, len);
    if method == Method::HEAD {
        return b.body(Body::empty()).map_err(AppError::internal);
    }
    let body = state.blobs.open(&info.key, range).await?;
    b.body(Body::from_stream(body.stream)).map_err(AppError::internal)
}

/// Streams the file a signed URL names (local storage) or redirects to a presigned URL (S3).
/// Expired or altered tokens get 403; a link whose file was deleted since it was signed gets 410
/// (checked against the database, so on every instance at once).
#[utoipa::path(get, path = "/files/{token}", tag = "files",
    params(("token" = String, Path, description = "signed download token")),
    responses((status = 200, description = "the file"), (status = 206, description = "a range of the file"),
        (status = 302, description = "redirect to a presigned S3 URL"), (status = 403, body = ErrorResponse),
        (status = 410, body = ErrorResponse), (status = 416, body = ErrorResponse)))]
pub async fn download(
    State(state): State<AppState>,
    ApiPath(token): ApiPath<String>,
    method: Method,
    headers: HeaderMap,
) -> AppResult<Response> {
    let grant = match state.blobs.verify(&token) {
        Ok(g) => g,
        Err(TokenError::Expired) => {
            return Err(AppError::Forbidden {
                code: ErrorCode::LinkExpired,
                message: "this download link has expired".into(),
            });
        }
        Err(_) => {
            return Err(AppError::Forbidden {
                code: ErrorCode::InvalidLink,
                message: "this download link is not valid".into(),
            });
        }
    };
    if !still_served(&state, &grant).await? {
        return Err(AppError::Gone { code: ErrorCode::FileDeleted, message: "this file has been deleted".into() });
    }
    match state.blobs.deliver(grant).await? {
        Download::Stream(grant) => serve(&state, &FileInfo::from(grant), &method, &headers).await,
        Download::Redirect(url) => {
            let mut r = Redirect::temporary(&url).into_response();
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(r)
        }
    }
}

/// Whether the row a link was signed for still exists and still points at the blob; links
/// signed without an owner need some row to point at it.
async fn still_served(state: &AppState, grant: &Grant) -> AppResult<bool> {
    Ok(match grant.owner {
        Some(Owner::Asset(id)) => state.store.asset_serves(id, &grant.key).await?,
        Some(Owner::ChatFile(id)) => state.store.chat_file_serves(id, &grant.key).await?,
        None => state.store.blob_referenced(&grant.key).await?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(*k, HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("")));
        }
        m
    }

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(range_ask(&h(&[]), 100, "e", None), RangeAsk::Full);
        assert_eq!(range_ask(&h(&[("range", "bytes=0-9")]), 100, "e", None), RangeAsk::Part(0, 9));
        assert_eq!(range_ask(&h(&[("range", "bytes=90-")]), 100, "e", None), RangeAsk::Part(90, 99));
        assert_eq!(range_ask(&h(&[("range", "bytes=-10")]), 100, "e", None), RangeAsk::Part(90, 99));
        assert_eq!(range_ask(&h(&[("range", "bytes=200-300")]), 100, "e", None), RangeAsk::Unsatisfiable);
        assert_eq!(range_ask(&h(&[("range", "pages=1-2")]), 100, "e", None), RangeAsk::Full);
        assert_eq!(
            range_ask(&h(&[("range", "bytes=0-1"), ("if-range", "\"e\"")]), 100, "e", None),
            RangeAsk::Part(0, 1)
        );
        assert_eq!(range_ask(&h(&[("range", "bytes=0-1"), ("if-range", "\"old\"")]), 100, "e", None), RangeAsk::Full);
    }
}
