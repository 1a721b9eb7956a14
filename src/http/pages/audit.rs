//! The audit log page for admins (`/admin/audit`): the filters as a GET form, the entries with
//! dates for people, pagination links and the CSV download (the API's export with the same
//! filters). Works without JavaScript; read-only.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::domain::audit::{AuditAction, AuditFilter, AuditRecord, TimeSyntax};
use crate::domain::pagination::PageRequest;
use crate::domain::time::rfc3339;
use crate::http::api::audit::AuditQuery;
use crate::http::extract::{ApiQuery, PageUser};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(page))
}

/// Entries per page.
const PAGE_SIZE: u32 = 50;

/// One entry as the page shows it.
struct Row {
    id: i64,
    at_iso: String,
    actor: String,
    action: String,
    target: String,
    ip: String,
    details: String,
}

#[derive(Template)]
#[template(path = "admin/audit.html")]
struct AuditPage {
    shell: super::Shell,
    actions: Vec<&'static str>,
    actor_id: String,
    action: String,
    since: String,
    until: String,
    error: Option<String>,
    rows: Vec<Row>,
    count: i64,
    page: u32,
    pages: i64,
    previous: Option<String>,
    next: Option<String>,
    csv_href: String,
    retention_days: u32,
}

fn row(r: &AuditRecord) -> Row {
    let actor = match (r.actor_id, &r.actor_email) {
        (Some(_), Some(email)) => email.clone(),
        (Some(id), None) => format!("account {id}"),
        (None, _) => "—".into(),
    };
    let target =
        if r.target_id.is_empty() { r.target_type.clone() } else { format!("{} {}", r.target_type, r.target_id) };
    Row {
        id: r.id,
        at_iso: rfc3339(r.at),
        actor,
        action: r.action.clone(),
        target,
        ip: r.ip.clone().unwrap_or_else(|| "—".into()),
        details: r.details.clone(),
    }
}

/// `path?pairs` with the pairs percent-encoded.
fn href(path: &str, pairs: &[(&str, String)]) -> String {
    if pairs.is_empty() {
        return path.to_string();
    }
    let q: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
    format!("{path}?{q}")
}

/// The API's CSV export of the same entries (its filters in RFC 3339).
fn csv_href(f: &AuditFilter) -> String {
    let mut pairs = vec![("format", "csv".to_string())];
    if let Some(a) = f.actor_id {
        pairs.push(("actor_id", a.to_string()));
    }
    if let Some(a) = f.action {
        pairs.push(("action", a.as_str().to_string()));
    }
    if let Some(s) = f.since {
        pairs.push(("since", rfc3339(s)));
    }
    if let Some(u) = f.until {
        pairs.push(("until", rfc3339(u)));
    }
    href("/api/admin/audit/", &pairs)
}

/// The audit log (admins; others: 403 page; signed out: the sign-in page first).
#[utoipa::path(get, path = "/admin/audit", tag = "pages", params(AuditQuery),
    responses((status = 200, description = "HTML page", content_type = "text/html"), (status = 303, description = "sign in first"),
        (status = 400, description = "the page with the filter's error", content_type = "text/html"),
        (status = 403, description = "not an admin", content_type = "text/html")))]
pub async fn page(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    shell: super::Shell,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Response {
    let Some(user) = user else { return Redirect::to("/login?next=/admin/audit").into_response() };
    if !user.is_admin() {
        return super::error_page(StatusCode::FORBIDDEN, "Admins only", "The audit log is for administrators.");
    }
    let page_no = match q.page.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        None => Ok(1),
        Some(p) => p.parse::<u32>().ok().filter(|n| (1..=1_000_000).contains(n)).ok_or(()),
    };
    let (filter, error) = match (q.filter(TimeSyntax::Form), page_no) {
        (Ok(f), Ok(_)) => (f, None),
        (Err(e), _) => (AuditFilter::default(), Some(e.public_message())),
        (Ok(f), Err(())) => (f, Some("page: must be a whole number from 1".to_string())),
    };
    let page_no = page_no.unwrap_or(1);
    let request = PageRequest { page: page_no, page_size: PAGE_SIZE };
    // A bad filter shows nothing rather than everything.
    let (records, count) = if error.is_some() {
        (Vec::new(), 0)
    } else {
        match crate::service::audit::page(&state, &filter, request).await {
            Ok(x) => x,
            Err(e) => return e.into_response(),
        }
    };
    let pages = ((count + PAGE_SIZE as i64 - 1) / PAGE_SIZE as i64).max(1);
    let link = |n: u32| {
        let mut pairs = q.filter_pairs();
        pairs.push(("page", n.to_string()));
        href("/admin/audit", &pairs)
    };
    let shown = request.offset() + records.len() as i64;
    let view = AuditPage {
        shell,
        actions: AuditAction::ALL.iter().map(|a| a.as_str()).collect(),
        actor_id: q.actor_id.clone().unwrap_or_default(),
        action: q.action.clone().unwrap_or_default(),
        since: q.since.clone().unwrap_or_default(),
        until: q.until.clone().unwrap_or_default(),
        rows: records.iter().map(row).collect(),
        count,
        page: page_no,
        pages,
        previous: (page_no > 1 && error.is_none()).then(|| link(page_no - 1)),
        next: (shown < count).then(|| link(page_no + 1)),
        csv_href: csv_href(&filter),
        retention_days: state.config.audit_retention_days,
        error,
    };
    let mut r = super::render(&view);
    if view.error.is_some() {
        *r.status_mut() = StatusCode::BAD_REQUEST;
    }
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csv_link_carries_the_filters_in_rfc_3339() {
        let f = AuditFilter {
            actor_id: Some(2),
            action: Some(AuditAction::LoginFailed),
            since: Some(1_705_314_600_000),
            until: None,
        };
        assert_eq!(
            csv_href(&f),
            "/api/admin/audit/?format=csv&actor_id=2&action=login.failed&since=2024-01-15T10%3A30%3A00Z"
        );
    }
}
