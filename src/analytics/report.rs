//! The report shape of the seed (`summary`, `geographic_breakdown`, `device_breakdown`,
//! `daily_breakdown`) plus the extra breakdowns of SPEC §5, built from rollups.

use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::time::last_days;
use crate::store::analytics::ReportData;

#[derive(Debug, Serialize, ToSchema, PartialEq)]
pub struct Summary {
    pub total_views: i64,
    pub total_downloads: i64,
    pub unique_visitors: i64,
    /// downloads / views x 100, one decimal; 0 without views.
    pub conversion_rate: f64,
}

#[derive(Debug, Serialize, ToSchema, PartialEq)]
pub struct CountryViews {
    pub country: String,
    pub views: i64,
}

#[derive(Debug, Serialize, ToSchema, PartialEq)]
pub struct DeviceViews {
    pub device_type: String,
    pub views: i64,
}

#[derive(Debug, Serialize, ToSchema, PartialEq)]
pub struct BrowserViews {
    pub browser: String,
    pub views: i64,
}

#[derive(Debug, Serialize, ToSchema, PartialEq)]
pub struct OsViews {
    pub os: String,
    pub views: i64,
}

#[derive(Debug, Serialize, ToSchema, PartialEq)]
pub struct ReferrerViews {
    pub referrer: String,
    pub views: i64,
}

#[derive(Debug, Serialize, ToSchema, PartialEq)]
pub struct Day {
    pub date: String,
    pub views: i64,
    pub downloads: i64,
    pub unique_visitors: i64,
}

#[derive(Debug, Serialize, ToSchema, PartialEq)]
pub struct Engagement {
    pub avg_time_on_page_seconds: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema, PartialEq)]
pub struct Performance {
    pub avg_load_ms: Option<f64>,
}

/// `GET .../analytics/?days=N`.
#[derive(Debug, Serialize, ToSchema, PartialEq)]
pub struct Report {
    pub summary: Summary,
    pub geographic_breakdown: Vec<CountryViews>,
    pub device_breakdown: Vec<DeviceViews>,
    pub daily_breakdown: Vec<Day>,
    pub browser_breakdown: Vec<BrowserViews>,
    pub os_breakdown: Vec<OsViews>,
    pub referrer_breakdown: Vec<ReferrerViews>,
    pub engagement: Engagement,
    pub performance: Performance,
    pub days: u32,
    /// The document viewer's time per page (PDFs read on the share page), by file then page.
    pub page_breakdown: Vec<PageStats>,
    /// Readings of a document that reached its last page, per 100 readings (one decimal; 0 without
    /// readings). A reading is one opening of the viewer.
    pub completion_rate: f64,
    /// Collection links only (SPEC §10): downloads per file, a ZIP counting one for each of its
    /// files; absent on asset links and asset reports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_breakdown: Option<Vec<FileDownloads>>,
}

/// One page of a document as the viewer saw it.
#[derive(Debug, Serialize, ToSchema, PartialEq)]
pub struct PageStats {
    /// The file (the link's, or on a collection link one of its PDFs).
    pub asset_id: i64,
    pub page: i64,
    /// Times the page was shown.
    pub views: i64,
    /// Seconds on the page per view, one decimal.
    pub avg_time_seconds: f64,
}

/// Downloads of one file of a collection link.
#[derive(Debug, Serialize, ToSchema, PartialEq)]
pub struct FileDownloads {
    pub asset_id: i64,
    pub name: String,
    pub downloads: i64,
}

pub fn conversion_rate(views: i64, downloads: i64) -> f64 {
    if views <= 0 { 0.0 } else { ((downloads as f64 / views as f64) * 1000.0).round() / 10.0 }
}

fn avg(sum: i64, count: i64, scale: f64) -> Option<f64> {
    (count > 0).then(|| ((sum as f64 / count as f64) / scale * 10.0).round() / 10.0)
}

/// Shapes rollup data for the `days` days ending `now_ms` (one entry per day, zeros included).
pub fn build(data: ReportData, now_ms: i64, days: u32) -> Report {
    let dim = |name: &str| data.breakdowns.get(name).cloned().unwrap_or_default();
    let daily_breakdown = last_days(now_ms, days)
        .into_iter()
        .map(|d| {
            let (views, downloads) = data.daily.get(&d).copied().unwrap_or((0, 0));
            let unique_visitors = data.daily_unique.get(&d).copied().unwrap_or(0);
            Day { date: d, views, downloads, unique_visitors }
        })
        .collect();
    Report {
        summary: Summary {
            total_views: data.total.views,
            total_downloads: data.total.downloads,
            unique_visitors: data.unique_visitors,
            conversion_rate: conversion_rate(data.total.views, data.total.downloads),
        },
        geographic_breakdown: dim("country")
            .into_iter()
            .map(|(country, views)| CountryViews { country, views })
            .collect(),
        device_breakdown: dim("device")
            .into_iter()
            .map(|(device_type, views)| DeviceViews { device_type, views })
            .collect(),
        daily_breakdown,
        browser_breakdown: dim("browser").into_iter().map(|(browser, views)| BrowserViews { browser, views }).collect(),
        os_breakdown: dim("os").into_iter().map(|(os, views)| OsViews { os, views }).collect(),
        referrer_breakdown: dim("referrer")
            .into_iter()
            .map(|(referrer, views)| ReferrerViews { referrer, views })
            .collect(),
        engagement: Engagement { avg_time_on_page_seconds: avg(data.total.time_sum_ms, data.total.time_count, 1000.0) },
        performance: Performance { avg_load_ms: avg(data.total.load_sum_ms, data.total.load_count, 1.0) },
        days,
        page_breakdown: data
            .pages
            .iter()
            .map(|&(asset_id, page, views, ms)| PageStats {
                asset_id,
                page,
                views,
                avg_time_seconds: avg(ms, views, 1000.0).unwrap_or(0.0),
            })
            .collect(),
        completion_rate: conversion_rate(data.readers, data.completions),
        file_breakdown: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_rate_has_one_decimal_and_is_zero_without_views() {
        assert_eq!(conversion_rate(156, 23), 14.7);
        assert_eq!(conversion_rate(3, 1), 33.3);
        assert_eq!(conversion_rate(3, 2), 66.7);
        assert_eq!(conversion_rate(0, 5), 0.0);
    }

    #[test]
    fn every_day_of_the_range_is_present() {
        let r = build(ReportData::default(), 1_705_314_600_000, 7);
        assert_eq!(r.daily_breakdown.len(), 7);
        assert_eq!(r.daily_breakdown[6].date, "2024-01-15");
        assert!(r.daily_breakdown.iter().all(|d| d.views == 0 && d.unique_visitors == 0));
        assert_eq!(r.summary.conversion_rate, 0.0);
        assert_eq!(r.engagement.avg_time_on_page_seconds, None);
        assert_eq!((r.page_breakdown.len(), r.completion_rate), (0, 0.0));
    }

    #[test]
    fn pages_average_their_time_per_view_and_completion_is_a_percentage() {
        let data = ReportData {
            pages: vec![(7, 1, 2, 3000), (7, 2, 4, 1000)],
            readers: 3,
            completions: 1,
            ..Default::default()
        };
        let r = build(data, 1_705_314_600_000, 1);
        assert_eq!(
            r.page_breakdown,
            vec![
                PageStats { asset_id: 7, page: 1, views: 2, avg_time_seconds: 1.5 },
                PageStats { asset_id: 7, page: 2, views: 4, avg_time_seconds: 0.3 },
            ]
        );
        assert_eq!(r.completion_rate, 33.3);
    }
}
