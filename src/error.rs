//! `AppError` and `ErrorCode`: the one place where an HTTP status and an error `code` are chosen (SPEC §0).

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

/// Declares `ErrorCode` from one list of `Variant = "wire_string"` lines, so that the enum, its
/// strings and `ErrorCode::ALL` cannot disagree.
macro_rules! error_codes {
    ($($(#[doc = $doc:literal])+ $variant:ident = $wire:literal,)+) => {
        /// Every machine `code` a client can see: in an error body, a WebSocket `error` frame or a
        /// refused connection's answer. Serialized as its wire string (`ErrorCode::as_str`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        pub enum ErrorCode {
            $($(#[doc = $doc])+ #[serde(rename = $wire)] $variant,)+
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),+];

            /// The exact string sent to clients.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $wire,)+
                }
            }
        }
    };
}

error_codes! {
    // 400
    /// 400: per-field reasons in `fields`.
    Validation = "validation_error",
    /// 400 made by a layer below the handlers.
    BadRequest = "bad_request",
    /// 400: the JSON body does not have the expected fields or types.
    InvalidBody = "invalid_body",
    /// 400: the body is not JSON at all.
    MalformedJson = "malformed_json",
    /// 400: the query string cannot be read.
    InvalidQuery = "invalid_query",
    /// 400: the form body cannot be read.
    InvalidForm = "invalid_form",
    /// 400: the multipart upload cannot be read or was cut short.
    MalformedMultipart = "malformed_multipart",
    /// 400: a chat upload's declared size is not the file's.
    SizeMismatch = "size_mismatch",
    /// 400: a chat upload's declared type is not the file's.
    TypeMismatch = "type_mismatch",
    /// 400: a password was sent to a link that has none.
    NotProtected = "not_protected",
    /// 400: the user has already shared this media to the gallery.
    AlreadyShared = "already_shared",
    /// 400 (state unknown, used, expired or from another browser) or 403 (e-mail address not
    /// verified): a single sign-on was refused.
    SsoFailed = "sso_failed",
    // 401
    /// 401: no or invalid credentials.
    NotAuthenticated = "not_authenticated",
    // 403
    /// 403: authenticated but not allowed (also a chat `error` frame for another session).
    Forbidden = "forbidden",
    /// 403: the CSRF token or the request's origin did not check out.
    CsrfFailed = "csrf_failed",
    /// 403: the share link's password is wrong.
    WrongPassword = "wrong_password",
    /// 403: the account is disabled.
    AccountDisabled = "account_disabled",
    /// 403: an access token was used outside its scopes (or on an endpoint only a sign-in may call).
    InsufficientScope = "insufficient_scope",
    /// 403: file requests are turned off by the administrators' policy.
    FileRequestsDisabled = "file_requests_disabled",
    /// 403: self-registration is closed.
    RegistrationClosed = "registration_closed",
    /// 403: `oidc_only`: this account signs in with single sign-on, not with a password.
    PasswordLoginDisabled = "password_login_disabled",
    /// 403: a signed download link has expired.
    LinkExpired = "link_expired",
    /// 403: a signed download link is not valid.
    InvalidLink = "invalid_link",
    /// 403: the share link does not allow downloads.
    DownloadNotAllowed = "download_not_allowed",
    /// 403: a prefetch or link preview asked for a download; nothing is served or counted.
    NotADownload = "not_a_download",
    /// 403: the share link has no preview for this file.
    PreviewNotAllowed = "preview_not_allowed",
    // 404, 405, 406, 408
    /// 404.
    NotFound = "not_found",
    /// 405.
    MethodNotAllowed = "method_not_allowed",
    /// 406 made by a layer below the handlers.
    NotAcceptable = "not_acceptable",
    /// 408: the request body did not arrive in time.
    RequestTimeout = "request_timeout",
    // 409
    /// 409 made by a layer below the handlers.
    Conflict = "conflict",
    /// 409: an account with this e-mail address exists.
    EmailTaken = "email_taken",
    /// 409: the last active admin cannot lose the role.
    LastAdmin = "last_admin",
    /// 409: the person already takes part in the session.
    AlreadyParticipant = "already_participant",
    /// 409: a resumable upload's `Upload-Offset` is not its current offset.
    OffsetMismatch = "offset_mismatch",
    /// 409: another request is writing to (or completing) this resumable upload.
    UploadBusy = "upload_busy",
    // 410
    /// 410 made by a layer below the handlers; in a chat `error` frame, the socket closed during a resume.
    Gone = "gone",
    /// 410: the share link has expired.
    ShareExpired = "share_expired",
    /// 410: the share link was revoked.
    ShareRevoked = "share_revoked",
    /// 410: the share link has reached its download limit.
    ShareExhausted = "share_exhausted",
    /// 410: the file request has expired.
    RequestExpired = "request_expired",
    /// 410: the file request has received every file or byte it accepts.
    RequestFull = "request_full",
    /// 410: the file request was closed by its owner.
    RequestClosed = "request_closed",
    /// 410: the file has been deleted.
    FileDeleted = "file_deleted",
    /// 410: the collaboration session has ended or expired.
    SessionOver = "session_over",
    // 411 to 431
    /// 411 made by a layer below the handlers.
    LengthRequired = "length_required",
    /// 412 made by a layer below the handlers.
    PreconditionFailed = "precondition_failed",
    /// 413: the body or a message is over the limit.
    TooLarge = "too_large",
    /// 414 made by a layer below the handlers.
    UriTooLong = "uri_too_long",
    /// 415.
    UnsupportedType = "unsupported_type",
    /// 416.
    RangeNotSatisfiable = "range_not_satisfiable",
    /// 417 made by a layer below the handlers.
    ExpectationFailed = "expectation_failed",
    /// 422 made by a layer below the handlers.
    Rejected = "rejected",
    /// 422: executable content is refused.
    ExecutableRefused = "executable_refused",
    /// 422: the image has too many pixels or would need too much memory to decode.
    ImageTooLarge = "image_too_large",
    /// 422: the image cannot be decoded.
    CorruptImage = "corrupt_image",
    /// 422: the virus scanner found something.
    Infected = "infected",
    /// 426 made by a layer below the handlers.
    UpgradeRequired = "upgrade_required",
    /// 429; `Retry-After` says when to try again.
    RateLimited = "rate_limited",
    /// 431 made by a layer below the handlers.
    HeadersTooLarge = "headers_too_large",
    // 5xx
    /// 500: details are logged, never sent.
    Internal = "internal_error",
    /// 501: a response format we do not offer.
    FormatNotSupported = "format_not_supported",
    /// 503: a dependency is down.
    Unavailable = "unavailable",
    /// 503 before the app sees the request: the server holds too many connections.
    TooManyConnections = "too_many_connections",
    /// 507: the disk is full; nothing was half-written.
    InsufficientStorage = "insufficient_storage",
    // WebSocket `error` frames only
    /// A WebSocket text frame that is not a JSON object with a `type`.
    Malformed = "malformed",
    /// A WebSocket message of a type the protocol does not have.
    UnknownType = "unknown_type",
    /// A WebSocket message with wrong fields.
    Invalid = "invalid",
    /// A WebSocket message for a feature the session has turned off.
    FeatureDisabled = "feature_disabled",
}

impl ErrorCode {
    /// The code whose wire string is `s`, if any.
    pub fn parse(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| c.as_str() == s)
    }
}

/// Every error a client can see. Variants name what the client sees; each has a stable `code`.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 400 with per-field reasons.
    #[error("{message}")]
    Validation { message: String, fields: FieldErrors },
    /// 400 with a specific code (malformed body, bad query...).
    #[error("{message}")]
    BadRequest { code: ErrorCode, message: String },
    /// 401: no or invalid credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// 403: authenticated but not allowed.
    #[error("{message}")]
    Forbidden { code: ErrorCode, message: String },
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
    Conflict { code: ErrorCode, message: String },
    /// 410.
    #[error("{message}")]
    Gone { code: ErrorCode, message: String },
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
    Rejected { code: ErrorCode, message: String },
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
    Status { status: StatusCode, code: ErrorCode, message: String },
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
    code: ErrorCode,
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

    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        AppError::BadRequest { code, message: message.into() }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        AppError::Forbidden { code: ErrorCode::Forbidden, message: message.into() }
    }

    pub fn rejected(code: ErrorCode, message: impl Into<String>) -> Self {
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

    /// The machine code sent with this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            AppError::Validation { .. } => ErrorCode::Validation,
            AppError::BadRequest { code, .. }
            | AppError::Forbidden { code, .. }
            | AppError::Conflict { code, .. }
            | AppError::Gone { code, .. }
            | AppError::Rejected { code, .. }
            | AppError::Status { code, .. } => *code,
            AppError::Unauthenticated(_) => ErrorCode::NotAuthenticated,
            AppError::NotFound(_) => ErrorCode::NotFound,
            AppError::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            AppError::RequestTimeout => ErrorCode::RequestTimeout,
            AppError::TooLarge { .. } => ErrorCode::TooLarge,
            AppError::UnsupportedType(_) => ErrorCode::UnsupportedType,
            AppError::RangeNotSatisfiable { .. } => ErrorCode::RangeNotSatisfiable,
            AppError::RateLimited { .. } => ErrorCode::RateLimited,
            AppError::UnsupportedFormat(_) => ErrorCode::FormatNotSupported,
            AppError::Unavailable(_) => ErrorCode::Unavailable,
            AppError::InsufficientStorage(_) => ErrorCode::InsufficientStorage,
            AppError::Internal(_) => ErrorCode::Internal,
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
                AppError::bad_request(ErrorCode::InvalidBody, format!("invalid JSON body: {}", e.body_text()))
            }
            JsonRejection::JsonSyntaxError(_) => {
                AppError::bad_request(ErrorCode::MalformedJson, "the body is not valid JSON")
            }
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                AppError::TooLarge { limit: JSON_BODY_LIMIT as u64 }
            }
            other => AppError::bad_request(ErrorCode::InvalidBody, other.body_text()),
        }
    }
}

impl From<QueryRejection> for AppError {
    fn from(r: QueryRejection) -> Self {
        AppError::bad_request(ErrorCode::InvalidQuery, r.body_text())
    }
}

impl From<FormRejection> for AppError {
    fn from(r: FormRejection) -> Self {
        match r.status() {
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                AppError::UnsupportedType("send the form as application/x-www-form-urlencoded".into())
            }
            StatusCode::PAYLOAD_TOO_LARGE => AppError::TooLarge { limit: JSON_BODY_LIMIT as u64 },
            _ => AppError::bad_request(ErrorCode::InvalidForm, r.body_text()),
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
        assert_eq!((e.status(), e.code()), (StatusCode::INSUFFICIENT_STORAGE, ErrorCode::InsufficientStorage));
        let kind = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::StorageFull));
        assert_eq!(AppError::internal(kind).status(), StatusCode::INSUFFICIENT_STORAGE);
        let other = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        assert_eq!(AppError::from(other).status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}

#[cfg(test)]
mod error_code_tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_code_is_unique_snake_case_and_serializes_to_its_string() {
        let mut seen = HashSet::new();
        for &code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "{s} is used twice");
            assert!(
                !s.is_empty() && s.split('_').all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase())),
                "{s} is not snake_case"
            );
            assert_eq!(serde_json::to_string(&code).expect("a code serialises"), format!("\"{s}\""));
            assert_eq!(ErrorCode::parse(s), Some(code));
        }
        assert_eq!(serde_json::to_string(&ErrorCode::WrongPassword).expect("a code serialises"), "\"wrong_password\"");
        assert_eq!(ErrorCode::parse("no_such_code"), None);
    }

    #[test]
    fn the_readme_lists_every_code() {
        let readme = include_str!("../README.md");
        for code in ErrorCode::ALL {
            assert!(readme.contains(&format!("`{}`", code.as_str())), "README.md does not list {}", code.as_str());
        }
    }

    #[tokio::test]
    async fn the_body_carries_the_code_string() {
        let resp = AppError::bad_request(ErrorCode::NotProtected, "this link has no password").into_response();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.expect("the body is in memory");
        assert_eq!(&body[..], br#"{"error":"this link has no password","code":"not_protected"}"#);
        let e = AppError::Gone { code: ErrorCode::SessionOver, message: "the session has ended".into() };
        assert_eq!((e.status(), e.code().as_str()), (StatusCode::GONE, "session_over"));
    }
}
