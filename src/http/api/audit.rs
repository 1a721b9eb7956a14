//! The audit log for admins (SPEC §13): `GET /api/admin/audit/` with filters, a page at a time as
//! JSON, or every matching entry as one CSV file streamed in batches. No route changes or deletes
//! an entry.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::domain::audit::{AuditFilter, AuditRecord, TimeSyntax};
use crate::domain::pagination::{Page, PageQuery, PageRequest};
use crate::domain::time::rfc3339;
use crate::error::{AppError, AppResult, ErrorResponse};
use crate::http::extract::{AdminUser, ApiQuery};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

/// Entries per batch of the CSV export: its memory does not grow with the log.
const CSV_BATCH: i64 = 500;

/// The filters, the page and the format; all text, so that a malformed value is our 400.
#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct AuditQuery {
    /// Only the actions of this account (its id).
    pub actor_id: Option<String>,
    /// Only this action (e.g. `login.failed`, `share.created`).
    pub action: Option<String>,
    /// Only entries at or after this instant (RFC 3339, e.g. `2024-01-15T10:30:00Z`).
    pub since: Option<String>,
    /// Only entries at or before this instant (RFC 3339).
    pub until: Option<String>,
    /// 1-based page number (default 1; JSON only).
    pub page: Option<String>,
    /// Items per page (default 20, max 100; JSON only).
    pub page_size: Option<String>,
    /// `json` (default) or `csv` (every matching entry, as a file).
    pub format: Option<String>,
}

impl AuditQuery {
    /// The filters in `syntax` (the API: RFC 3339).
    pub fn filter(&self, syntax: TimeSyntax) -> AppResult<AuditFilter> {
        AuditFilter::parse(
            self.actor_id.as_deref(),
            self.action.as_deref(),
            self.since.as_deref(),
            self.until.as_deref(),
            syntax,
        )
    }

    /// The filters as query pairs (the page's links keep them).
    pub fn filter_pairs(&self) -> Vec<(&'static str, String)> {
        [("actor_id", &self.actor_id), ("action", &self.action), ("since", &self.since), ("until", &self.until)]
            .into_iter()
            .filter_map(|(k, v)| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(|v| (k, v.to_string())))
            .collect()
    }
}

/// Who acted: the account's id and, while it exists, its e-mail address.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActorOut {
    pub id: i64,
    pub email: Option<String>,
}

/// One entry of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditOut {
    pub id: i64,
    /// When it happened (RFC 3339 UTC).
    pub at: String,
    /// The account that acted; null for the operator's CLI or nobody signed in (a failed sign-in).
    pub actor: Option<ActorOut>,
    /// e.g. `login.succeeded`, `share.created`, `user.role_changed`.
    pub action: String,
    /// `user`, `share`, `file_request`, `token`, `webhook`, `policy`, …
    pub target_type: String,
    /// The target's id as text (empty when there is none, e.g. a sign-in to an unknown address).
    pub target_id: String,
    /// A keyed hash of the client's address (never the address itself); null without a client.
    pub ip: Option<String>,
    /// What else is worth knowing about the action (never a password or a token).
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

impl From<&AuditRecord> for AuditOut {
    fn from(r: &AuditRecord) -> Self {
        AuditOut {
            id: r.id,
            at: rfc3339(r.at),
            actor: r.actor_id.map(|id| ActorOut { id, email: r.actor_email.clone() }),
            action: r.action.clone(),
            target_type: r.target_type.clone(),
            target_id: r.target_id.clone(),
            ip: r.ip.clone(),
            details: serde_json::from_str(&r.details).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// The audit log, newest first (admins). `?format=csv`: every matching entry as a CSV file.
#[utoipa::path(get, path = "/api/admin/audit", tag = "admin", security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, description = "a page of entries, or with format=csv every matching entry as a CSV file",
            content((Page<AuditOut> = "application/json"), (String = "text/csv"))),
        (status = 400, description = "a malformed filter, page or format (named in fields)", body = ErrorResponse),
        (status = 401, body = ErrorResponse), (status = 403, description = "not an admin", body = ErrorResponse)))]
pub async fn list(
    State(state): State<AppState>,
    _admin: AdminUser,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> AppResult<Response> {
    let csv = match q.format.as_deref().map(str::trim) {
        None | Some("") | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(AppError::validation("format", "must be json or csv")),
    };
    let filter = q.filter(TimeSyntax::Rfc3339);
    let page = PageRequest::try_from(&PageQuery { page: q.page.clone(), page_size: q.page_size.clone() });
    let (filter, page) = match (filter, page) {
        (Ok(f), Ok(p)) => (f, p),
        // Every malformed parameter in one answer.
        (Err(AppError::Validation { fields: mut a, .. }), Err(AppError::Validation { fields: b, .. })) => {
            a.extend(b);
            return Err(AppError::from_fields(a));
        }
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };
    if csv {
        return Ok(csv_response(&state, filter));
    }
    let (records, count) = crate::service::audit::page(&state, &filter, page).await?;
    let base = format!("{}/api/admin/audit/", state.config.base_url());
    let results = records.iter().map(AuditOut::from).collect();
    Ok(axum::Json(Page::new(results, count, page, &base, &q.filter_pairs())).into_response())
}

/// The columns of the CSV export, in order.
pub const CSV_COLUMNS: [&str; 9] =
    ["id", "at", "actor_id", "actor_email", "action", "target_type", "target_id", "ip", "details"];

/// Rows as CSV bytes (with the header row first when `header`).
fn csv_chunk(records: &[AuditRecord], header: bool) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    if header {
        w.write_record(CSV_COLUMNS)?;
    }
    for r in records {
        w.write_record([
            r.id.to_string(),
            rfc3339(r.at),
            r.actor_id.map(|a| a.to_string()).unwrap_or_default(),
            r.actor_email.clone().unwrap_or_default(),
            r.action.clone(),
            r.target_type.clone(),
            r.target_id.clone(),
            r.ip.clone().unwrap_or_default(),
            r.details.clone(),
        ])?;
    }
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

/// Where the export is: the header still to write, or the id to continue below, or the end.
enum Cursor {
    Start,
    Below(i64),
    Done,
}

/// Every matching entry, newest first, as a CSV attachment streamed in batches of `CSV_BATCH`
/// read by id (keyset), so a log of any size is exported in constant memory. A database error
/// midway ends the body early (the client sees a truncated transfer); it is logged.
fn csv_response(state: &AppState, filter: AuditFilter) -> Response {
    let name = format!("audit-log-{}.csv", crate::domain::time::day_of(state.clock.now_ms()));
    let state = state.clone();
    let chunks = futures::stream::unfold(Cursor::Start, move |cursor| {
        let state = state.clone();
        async move {
            let (before, header) = match cursor {
                Cursor::Start => (None, true),
                Cursor::Below(id) => (Some(id), false),
                Cursor::Done => return None,
            };
            let batch = match crate::service::audit::batch(&state, &filter, before, CSV_BATCH).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "audit export failed midway");
                    return Some((Err(std::io::Error::other("audit export failed")), Cursor::Done));
                }
            };
            if batch.is_empty() && !header {
                return None;
            }
            let next = match batch.last() {
                Some(last) if batch.len() as i64 == CSV_BATCH => Cursor::Below(last.id),
                _ => Cursor::Done,
            };
            match csv_chunk(&batch, header) {
                Ok(bytes) => Some((Ok(bytes::Bytes::from(bytes)), next)),
                Err(e) => Some((Err(std::io::Error::other(e)), Cursor::Done)),
            }
        }
    });
    let mut r = Body::from_stream(chunks).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
