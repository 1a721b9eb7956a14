//! The analytics dashboard of a share link: summary cards and SVG charts rendered on the server
//! (works without JavaScript); with JavaScript, `AnalyticsDashboard` refreshes it every 30 s.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::analytics::charts;
use crate::analytics::geo::ATTRIBUTION_HTML;
use crate::app::AppState;
use crate::http::api::analytics::{DaysQuery, parse_days};
use crate::http::extract::{ApiPath, ApiQuery, PageUser};
use crate::service::analytics::report;
use crate::service::shares::{owned_share, share_url};
use crate::store::analytics::Scope;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(dashboard))
}

#[derive(Template)]
#[template(path = "analytics/dashboard.html")]
struct DashboardPage {
    shell: super::Shell,
    uuid: String,
    title: String,
    share_url: String,
    days: u32,
    total_views: i64,
    total_downloads: i64,
    unique_visitors: i64,
    conversion_rate: String,
    avg_time: String,
    avg_load: String,
    geographic_svg: String,
    device_svg: String,
    timeline_svg: String,
    browser_svg: String,
    os_svg: String,
    referrer_svg: String,
    /// The document viewer's time per page (absent when no page was read).
    pages_svg: Option<String>,
    completion_rate: String,
    attribution: &'static str,
}

/// Summary cards and charts of one share link (owner or admin).
#[utoipa::path(get, path = "/dashboard/analytics/{uuid}", tag = "pages", params(("uuid" = String, Path, description = "share uuid"), DaysQuery),
    responses((status = 200, description = "HTML dashboard", content_type = "text/html"), (status = 303, description = "sign in first"),
        (status = 400, description = "bad days"), (status = 404, description = "not your link")))]
pub async fn dashboard(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    shell: super::Shell,
    ApiPath(uuid): ApiPath<String>,
    ApiQuery(q): ApiQuery<DaysQuery>,
) -> Response {
    let Some(user) = user else {
        return Redirect::to(&format!("/login?next=/dashboard/analytics/{}/", super::url_segment(&uuid)))
            .into_response();
    };
    let days = match parse_days(&q) {
        Ok(d) => d,
        Err(e) => return super::error_page(StatusCode::BAD_REQUEST, "Bad period", &e.public_message()),
    };
    let share = match owned_share(&state, &user, &uuid).await {
        Ok(s) => s,
        Err(_) => return super::error_page(StatusCode::NOT_FOUND, "Not found", "You have no such link."),
    };
    let r = match report(&state, Scope::Share(share.id), days).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let pairs = |v: Vec<(String, i64)>| v;
    let geographic = pairs(r.geographic_breakdown.iter().map(|c| (c.country.clone(), c.views)).collect());
    let device = pairs(r.device_breakdown.iter().map(|c| (c.device_type.clone(), c.views)).collect());
    let browser = pairs(r.browser_breakdown.iter().map(|c| (c.browser.clone(), c.views)).collect());
    let os = pairs(r.os_breakdown.iter().map(|c| (c.os.clone(), c.views)).collect());
    let referrer = pairs(r.referrer_breakdown.iter().map(|c| (c.referrer.clone(), c.views)).collect());
    let daily: Vec<(String, i64, i64)> =
        r.daily_breakdown.iter().map(|d| (d.date.clone(), d.views, d.downloads)).collect();
    // One file: "p. N"; several (a collection link): the file's id before the page.
    let files: std::collections::BTreeSet<i64> = r.page_breakdown.iter().map(|p| p.asset_id).collect();
    let page_rows: Vec<(String, f64, i64)> = r
        .page_breakdown
        .iter()
        .map(|p| {
            let label =
                if files.len() > 1 { format!("#{} p. {}", p.asset_id, p.page) } else { format!("p. {}", p.page) };
            (label, p.avg_time_seconds, p.views)
        })
        .collect();
    let page = DashboardPage {
        shell,
        uuid: share.uuid.clone(),
        title: share.title.clone(),
        share_url: share_url(&state, &share.uuid),
        days,
        total_views: r.summary.total_views,
        total_downloads: r.summary.total_downloads,
        unique_visitors: r.summary.unique_visitors,
        conversion_rate: format!("{:.1}%", r.summary.conversion_rate),
        avg_time: r.engagement.avg_time_on_page_seconds.map(|s| format!("{s:.0} s")).unwrap_or_else(|| "–".into()),
        avg_load: r.performance.avg_load_ms.map(|s| format!("{s:.0} ms")).unwrap_or_else(|| "–".into()),
        geographic_svg: charts::pie("Views by country", &geographic),
        device_svg: charts::pie("Views by device", &device),
        timeline_svg: charts::timeline("Views and downloads per day", &daily),
        browser_svg: charts::bars("Views by browser", &browser),
        os_svg: charts::bars("Views by operating system", &os),
        referrer_svg: charts::bars("Views by referrer", &referrer),
        pages_svg: (!page_rows.is_empty()).then(|| charts::pages("Average time per page (seconds)", &page_rows)),
        completion_rate: format!("{:.1}%", r.completion_rate),
        attribution: ATTRIBUTION_HTML,
    };
    let mut resp = super::render(&page);
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    resp
}
