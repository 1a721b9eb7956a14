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
