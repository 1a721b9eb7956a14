//! `AppError`: the one place where an HTTP status and an error `code` are chosen (SPEC §0).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::{FormRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Field name -> why it was refused.
pub type FieldErrors = BTreeMap<String, String>;

/// Largest JSON or form body accepted (uploads are streamed and limited separately); the 413
/// for a larger one names it.
pub const JSON_BODY_LIMIT: usize = 1024 * 1024;

/// Every error a client can see. Variants name what the client sees; each has a stable `code`.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 400 with per-field reasons.
    #[error("{message}")]
    Validation { message: String, fields: FieldErrors },
    /// 400 with a specific code (malformed body, bad query...).
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// 401: no or invalid credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// 403: authenticated but not allowed.
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// 404.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 405.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 408: the request (its body) did not arrive in time.
    #[error("the request body arrived too slowly; the connection is closed")]
    RequestTimeout,
    /// 409.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 410.
    #[error("{message}")]
    Gone { code: &'static str, message: String },
    /// 413.
    #[error("the file is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// 415.
    #[error("{0}")]
    UnsupportedType(String),
    /// 416; `size` is the full length of the resource.
    #[error("the requested range cannot be satisfied")]
    RangeNotSatisfiable { size: u64 },
    /// 422: content refused (executables, decompression bombs...).
    #[error("{message}")]
    Rejected { code: &'static str, message: String },
    /// 429.
    #[error("too many requests; try again in {retry_after_secs} seconds")]
    RateLimited { retry_after_secs: u64 },
    /// 501: a response format a standard allows but we do not offer (oEmbed XML).
    #[error("{0}")]
    UnsupportedFormat(String),
    /// 503: a dependency is down.
    #[error("{0}")]
    Unavailable(String),
    /// Any other error status, made by a layer below the handlers (hyper, axum's own rejections)
    /// and given the §0 shape by `http::errors`.
    #[error("{message}")]
    Status { status: StatusCode, code: &'static str, message: String },
    /// 507: the disk (blob store or database) is full; nothing was half-written.
    #[error("{0}")]
    InsufficientStorage(String),
    /// 500: never for bad input; details are logged, never sent.
    #[error(transparent)]
    Internal(anyhow::Error),
}

/// An error that a full disk caused: ENOSPC / EDQUOT from a file write, SQLite's SQLITE_FULL,
/// PostgreSQL's `disk_full` class (53100).
pub fn is_storage_full(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && (io.kind() == std::io::ErrorKind::StorageFull
                || io.kind() == std::io::ErrorKind::QuotaExceeded
                || matches!(io.raw_os_error(), Some(28 /* ENOSPC */ | 122 /* EDQUOT */)))
        {
            return true;
        }
        if let Some(sqlx::Error::Database(db)) = err.downcast_ref::<sqlx::Error>()
            && matches!(db.code().as_deref(), Some("13" | "53100"))
        {
            return true;
        }
        cur = err.source();
    }
    false
}

const STORAGE_FULL: &str = "the server has no room left to store this; nothing was stored — try again later";

impl From<anyhow::Error> for AppError {
    fn from(e: anyhow::Error) -> Self {
        if e.chain().any(is_storage_full) {
            tracing::error!(error = %e, "storage is full");
            return AppError::InsufficientStorage(STORAGE_FULL.into());
        }
        AppError::Internal(e)
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: String,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<&'a FieldErrors>,
}

impl AppError {
    pub fn validation(field: &str, why: impl Into<String>) -> Self {
        let why = why.into();
        let mut fields = FieldErrors::new();
        fields.insert(field.to_string(), why.clone());
        AppError::Validation { message: format!("{field}: {why}"), fields }
    }

    pub fn from_fields(fields: FieldErrors) -> Self {
        let message = fields.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join("; ");
        AppError::Validation { message, fields }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        AppError::BadRequest { code, message: message.into() }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        AppError::Forbidden { code: "forbidden", message: message.into() }
    }

    pub fn rejected(code: &'static str, message: impl Into<String>) -> Self {
        AppError::Rejected { code, message: message.into() }
    }

    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        AppError::from(e.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Validation { .. } | AppError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            AppError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden { .. } => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AppError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            AppError::Conflict { .. } => StatusCode::CONFLICT,
            AppError::Gone { .. } => StatusCode::GONE,
            AppError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            AppError::Rejected { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::UnsupportedFormat(_) => StatusCode::NOT_IMPLEMENTED,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Status { status, .. } => *status,
            AppError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AppError::Validation { .. } => "validation_error",
            AppError::BadRequest { code, .. }
            | AppError::Forbidden { code, .. }
            | AppError::Conflict { code, .. }
            | AppError::Gone { code, .. }
            | AppError::Rejected { code, .. }
            | AppError::Status { code, .. } => code,
            AppError::Unauthenticated(_) => "not_authenticated",
            AppError::NotFound(_) => "not_found",
            AppError::MethodNotAllowed => "method_not_allowed",
            AppError::RequestTimeout => "request_timeout",
            AppError::TooLarge { .. } => "too_large",
            AppError::UnsupportedType(_) => "unsupported_type",
            AppError::RangeNotSatisfiable { .. } => "range_not_satisfiable",
            AppError::RateLimited { .. } => "rate_limited",
            AppError::UnsupportedFormat(_) => "format_not_supported",
            AppError::Unavailable(_) => "unavailable",
            AppError::InsufficientStorage(_) => "insufficient_storage",
            AppError::Internal(_) => "internal_error",
        }
    }

    /// The sentence shown to the client; 5xx never carry internal details.
    pub fn public_message(&self) -> String {
        match self {
            AppError::Internal(_) => "internal server error".to_string(),
            other => other.to_string(),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let AppError::Internal(e) = &self {
            tracing::error!(error = ?e, "internal error");
        }
        let fields = match &self {
            AppError::Validation { fields, .. } => Some(fields),
            _ => None,
        };
        let body = ErrorBody { error: self.public_message(), code: self.code(), fields };
        let mut resp = (status, Json(body)).into_response();
        match &self {
            AppError::RateLimited { retry_after_secs } => {
                resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            AppError::RangeNotSatisfiable { size } => {
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    resp.headers_mut().insert(header::CONTENT_RANGE, v);
                }
            }
            AppError::Unauthenticated(_) => {
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        resp
    }
}

impl From<JsonRejection> for AppError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::MissingJsonContentType(_) => {
                AppError::UnsupportedType("send the body as JSON with Content-Type: application/json".into())
            }
            JsonRejection::JsonDataError(e) => {
                AppError::bad_request("invalid_body", format!("invalid JSON body: {}", e.body_text()))
            }
            JsonRejection::JsonSyntaxError(_) => AppError::bad_request("malformed_json", "the body is not valid JSON"),
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                AppError::TooLarge { limit: JSON_BODY_LIMIT as u64 }
            }
            other => AppError::bad_request("invalid_body", other.body_text()),
        }
    }
}

impl From<QueryRejection> for AppError {
    fn from(r: QueryRejection) -> Self {
        AppError::bad_request("invalid_query", r.body_text())
    }
}

impl From<FormRejection> for AppError {
    fn from(r: FormRejection) -> Self {
        match r.status() {
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                AppError::UnsupportedType("send the form as application/x-www-form-urlencoded".into())
            }
            StatusCode::PAYLOAD_TOO_LARGE => AppError::TooLarge { limit: JSON_BODY_LIMIT as u64 },
            _ => AppError::bad_request("invalid_form", r.body_text()),
        }
    }
}

impl From<PathRejection> for AppError {
    fn from(_: PathRejection) -> Self {
        AppError::NotFound("resource")
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        AppError::from(anyhow::Error::from(e))
    }
}

impl From<object_store::Error> for AppError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { .. } => AppError::NotFound("file"),
            other => AppError::from(anyhow::Error::from(other)),
        }
    }
}

pub type AppResult<T> = Result<T, AppError>;

/// The error body, for the API documentation.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the JSON shape written by IntoResponse")]
pub struct ErrorResponse {
    /// A human sentence.
    error: String,
    /// A stable machine code.
    code: String,
    /// Per-field reasons (validation errors only).
    fields: Option<BTreeMap<String, String>>,
}

#[cfg(test)]
mod storage_full_tests {
    use super::*;

    #[test]
    fn a_full_disk_anywhere_in_the_chain_is_507() {
        let enospc = anyhow::Error::from(std::io::Error::from_raw_os_error(28)).context("writing a blob");
        let e = AppError::from(enospc);
        assert_eq!((e.status(), e.code()), (StatusCode::INSUFFICIENT_STORAGE, "insufficient_storage"));
        let kind = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::StorageFull));
        assert_eq!(AppError::internal(kind).status(), StatusCode::INSUFFICIENT_STORAGE);
        let other = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        assert_eq!(AppError::from(other).status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
