//! Analytics values: what happened (`Kind`), an event as stored (`Event`), the daily rollups a
//! batch folds into (`rollup`, `Counts`) and the unique-visitor sketch (`hll`). No I/O here.

pub mod hll;

use std::collections::BTreeMap;

use self::hll::Hll;
use super::time::day_of;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    View,
    Preview,
    Download,
    Comment,
    /// Time on page and load time reported by the page's beacon.
    Engagement,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::View => "view",
            Kind::Preview => "preview",
            Kind::Download => "download",
            Kind::Comment => "comment",
            Kind::Engagement => "engagement",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        [Kind::View, Kind::Preview, Kind::Download, Kind::Comment, Kind::Engagement]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: Kind,
    pub at_ms: i64,
    pub share_id: i64,
    pub asset_id: i64,
    pub visitor: String,
    pub country: String,
    pub device: &'static str,
    pub browser: String,
    pub os: String,
    pub referrer: String,
    pub is_bot: bool,
    pub time_on_page_ms: Option<i64>,
    pub load_ms: Option<i64>,
    /// What the document viewer reported about one document (engagement events only).
    pub reading: Option<Box<Reading>>,
}

/// The most pages a document may report (page numbers and page counts above are refused).
pub const MAX_PAGE_COUNT: i64 = 10_000;
/// The most pages one beacon may report (the viewer sends the rest in another).
pub const MAX_PAGES_PER_BEACON: usize = 150;
/// Time on one page in one beacon is clamped to a day; views of one page to this many.
pub const MAX_PAGE_MS: i64 = 86_400_000;
pub const MAX_PAGE_VIEWS: i64 = 1_000;

/// One page as the viewer reports it: `[page, views, milliseconds]` since its last beacon.
pub type PageIn = (f64, f64, f64);

/// What the share page's document viewer reports about one document in one beacon.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadingIn {
    /// The file (required on collection links; on asset links it must be the link's file or absent).
    pub asset_id: Option<i64>,
    /// Pages of the document, 1..10000.
    pub page_count: f64,
    /// `[page, views, ms]` per page shown since the last beacon; at most 150 entries, each page once.
    #[serde(default)]
    #[schema(value_type = Vec<Vec<f64>>)]
    pub pages: Vec<PageIn>,
    /// This beacon is the first of a reading (one opening of the viewer): counts one reader.
    #[serde(default)]
    pub opened: bool,
    /// The reader reached the last page (sent once per reading): counts one completion.
    #[serde(default)]
    pub completed: bool,
}

/// A reading, bounded: pages within the page count, each once, views and times clamped.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Reading {
    pub page_count: i64,
    /// (page, views, ms)
    pub pages: Vec<(i64, i64, i64)>,
    pub opened: bool,
    pub completed: bool,
}

impl Reading {
    /// Parses what the viewer sent; the error says which part is wrong.
    pub fn parse(r: &ReadingIn) -> Result<Reading, String> {
        let whole = |x: f64| x.is_finite() && x.fract() == 0.0;
        if !whole(r.page_count) || r.page_count < 1.0 || r.page_count > MAX_PAGE_COUNT as f64 {
            return Err(format!("page_count must be a whole number from 1 to {MAX_PAGE_COUNT}"));
        }
        let page_count = r.page_count as i64;
        if r.pages.len() > MAX_PAGES_PER_BEACON {
            return Err(format!("at most {MAX_PAGES_PER_BEACON} pages per beacon"));
        }
        let mut pages: Vec<(i64, i64, i64)> = Vec::with_capacity(r.pages.len());
        for &(page, views, ms) in &r.pages {
            if !whole(page) || page < 1.0 || page > page_count as f64 {
                return Err("each page must be a whole number from 1 to page_count".into());
            }
            if !views.is_finite() || !ms.is_finite() || views < 0.0 || ms < 0.0 {
                return Err("page views and times must be non-negative numbers".into());
            }
            let page = page as i64;
            if pages.iter().any(|p| p.0 == page) {
                return Err("each page may be reported once per beacon".into());
            }
            let views = (views.round() as i64).min(MAX_PAGE_VIEWS);
            let ms = (ms.round() as i64).min(MAX_PAGE_MS);
            pages.push((page, views, ms));
        }
        Ok(Reading { page_count, pages, opened: r.opened, completed: r.completed })
    }
}

/// Per-batch page rollup key: (asset, share, day, page) -> (views, time ms).
pub type PageKey = (i64, i64, String, i64);

/// The rollups of the document viewer's readings in one batch.
#[derive(Debug, Default, PartialEq)]
pub struct ReadingRollup {
    pub pages: BTreeMap<PageKey, (i64, i64)>,
    /// (asset, share, day) -> (readers, completions)
    pub readers: BTreeMap<DayKey, (i64, i64)>,
}

/// Folds the readings of a batch (bots left out) into page and reader rows.
pub fn rollup_readings(events: &[Event]) -> ReadingRollup {
    let mut out = ReadingRollup::default();
    for e in events.iter().filter(|e| !e.is_bot) {
        let Some(r) = &e.reading else { continue };
        let day = day_of(e.at_ms);
        for &(page, views, ms) in &r.pages {
            let row = out.pages.entry((e.asset_id, e.share_id, day.clone(), page)).or_default();
            row.0 += views;
            row.1 += ms;
        }
        if r.opened || r.completed {
            let row = out.readers.entry((e.asset_id, e.share_id, day)).or_default();
            row.0 += i64::from(r.opened);
            row.1 += i64::from(r.completed);
        }
    }
    out
}

/// The device types, as stored.
pub const DEVICES: [&str; 4] = ["desktop", "mobile", "tablet", "bot"];

/// The stored name of a device type read back from storage (`desktop` when unknown).
pub fn device_name(s: &str) -> &'static str {
    DEVICES.into_iter().find(|d| *d == s).unwrap_or("desktop")
}

/// Per-batch rollup key: (asset, share, day, dimension, value).
pub type RollupKey = (i64, i64, String, &'static str, String);

/// (asset, share, day): the unit of a unique-visitor sketch.
pub type DayKey = (i64, i64, String);

/// Counters of one rollup row.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    pub views: i64,
    pub downloads: i64,
    pub previews: i64,
    pub comments: i64,
    pub time_sum_ms: i64,
    pub time_count: i64,
    pub load_sum_ms: i64,
    pub load_count: i64,
}

/// Aggregates a batch into rollup rows and unique-visitor sketches; bots are left out of both.
/// Sorted maps: writers of several instances upsert the same rows in the same order, so their
/// transactions wait for each other instead of deadlocking.
pub fn rollup(events: &[Event]) -> (BTreeMap<RollupKey, Counts>, BTreeMap<DayKey, Hll>) {
    let mut rows: BTreeMap<RollupKey, Counts> = BTreeMap::new();
    let mut visitors: BTreeMap<DayKey, Hll> = BTreeMap::new();
    for e in events.iter().filter(|e| !e.is_bot) {
        // A viewer's page report alone adds nothing to these rollups (see `rollup_readings`).
        if e.reading.is_some() && e.time_on_page_ms.is_none() && e.load_ms.is_none() {
            continue;
        }
        let day = day_of(e.at_ms);
        let mut add = |dim: &'static str, value: &str, total: bool| {
            let c = rows.entry((e.asset_id, e.share_id, day.clone(), dim, value.to_string())).or_default();
            match e.kind {
                Kind::View => c.views += 1,
                Kind::Download => c.downloads += 1,
                Kind::Preview => c.previews += 1,
                Kind::Comment => c.comments += 1,
                Kind::Engagement => {}
            }
            if total {
                if let Some(t) = e.time_on_page_ms {
                    c.time_sum_ms += t;
                    c.time_count += 1;
                }
                if let Some(l) = e.load_ms {
                    c.load_sum_ms += l;
                    c.load_count += 1;
                }
            }
        };
        add("total", "", true);
        if e.kind == Kind::View {
            add("country", &e.country, false);
            add("device", e.device, false);
            add("browser", &e.browser, false);
            add("os", &e.os, false);
            add("referrer", &e.referrer, false);
        }
        if matches!(e.kind, Kind::View | Kind::Download) {
            visitors.entry((e.asset_id, e.share_id, day)).or_default().add_key(&e.visitor);
        }
    }
    (rows, visitors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(v: serde_json::Value) -> ReadingIn {
        serde_json::from_value(v).expect("shape")
    }

    #[test]
    fn readings_are_bounded_and_clamped() {
        let r = Reading::parse(&input(
            serde_json::json!({"page_count": 3, "pages": [[1, 2, 1e12], [3, 5000, 10.4]], "opened": true}),
        ))
        .expect("valid");
        assert_eq!(r.pages, vec![(1, 2, MAX_PAGE_MS), (3, MAX_PAGE_VIEWS, 10)]);
        assert!(r.opened && !r.completed);
        for bad in [
            serde_json::json!({"page_count": 0}),
            serde_json::json!({"page_count": 10_001}),
            serde_json::json!({"page_count": 2.5}),
            serde_json::json!({"page_count": 2, "pages": [[3, 1, 1]]}),
            serde_json::json!({"page_count": 2, "pages": [[0, 1, 1]]}),
            serde_json::json!({"page_count": 2, "pages": [[1, 1, -1]]}),
            serde_json::json!({"page_count": 2, "pages": [[1, 1, 1], [1, 1, 1]]}),
        ] {
            assert!(Reading::parse(&input(bad.clone())).is_err(), "{bad}");
        }
        let many: Vec<_> = (1..=151).map(|p| serde_json::json!([p, 1, 1])).collect();
        assert!(Reading::parse(&input(serde_json::json!({"page_count": 500, "pages": many}))).is_err());
    }

    #[test]
    fn readings_roll_up_per_page_and_leave_bots_and_other_rollups_alone() {
        let event = |bot: bool, reading: Reading| Event {
            kind: Kind::Engagement,
            at_ms: 0,
            share_id: 2,
            asset_id: 1,
            visitor: "v".into(),
            country: "US".into(),
            device: "desktop",
            browser: "Chrome".into(),
            os: "Linux".into(),
            referrer: "direct".into(),
            is_bot: bot,
            time_on_page_ms: None,
            load_ms: None,
            reading: Some(Box::new(reading)),
        };
        let a = Reading { page_count: 2, pages: vec![(1, 1, 500), (2, 1, 100)], opened: true, completed: true };
        let b = Reading { page_count: 2, pages: vec![(1, 1, 300)], opened: true, completed: false };
        let events = [event(false, a.clone()), event(false, b), event(true, a)];
        let r = rollup_readings(&events);
        let day = day_of(0);
        assert_eq!(r.pages.get(&(1, 2, day.clone(), 1)), Some(&(2, 800)));
        assert_eq!(r.pages.get(&(1, 2, day.clone(), 2)), Some(&(1, 100)));
        assert_eq!(r.readers.get(&(1, 2, day)), Some(&(2, 1)));
        assert!(rollup(&events).0.is_empty(), "page reports alone add no view or time-on-page rows");
    }
}
