//! Timestamps: stored as unix milliseconds, printed as RFC 3339 UTC (`2024-01-15T10:30:00Z`).
//! The time of day comes from the app's injected `Clock` only; this file is the one place that
//! reads the system time.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch by the system, never by the app's clock: a log stamp that
/// another process of the same machine (the real-time benchmark) compares with its own.
pub fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// RFC 3339 UTC with second precision, as the seeds print it.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    match ::time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => {
            let fmt = ::time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
            t.format(&fmt).unwrap_or_default()
        }
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_the_seed() {
        assert_eq!(rfc3339(1_705_314_600_000), "2024-01-15T10:30:00Z");
    }
}

/// The time as the app sees it; tests substitute a clock they move by hand.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch, now.
    fn now_ms(&self) -> i64;
}

/// The real clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
    }
}

/// A clock that only moves when told (tests).
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    pub fn new(ms: i64) -> ManualClock {
        ManualClock(std::sync::atomic::AtomicI64::new(ms))
    }
    pub fn set(&self, ms: i64) {
        self.0.store(ms, std::sync::atomic::Ordering::SeqCst);
    }
    pub fn advance_ms(&self, ms: i64) {
        self.0.fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The UTC calendar day of `ms`, as `YYYY-MM-DD`.
pub fn day_of(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    match ::time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => {
            let fmt = ::time::macros::format_description!("[year]-[month]-[day]");
            t.format(&fmt).unwrap_or_default()
        }
        Err(_) => String::new(),
    }
}

/// The `n` days ending with the day of `ms` (oldest first).
pub fn last_days(ms: i64, n: u32) -> Vec<String> {
    (0..n as i64).rev().map(|back| day_of(ms - back * 86_400_000)).collect()
}

#[cfg(test)]
mod day_tests {
    use super::*;

    #[test]
    fn days_are_utc_calendar_days() {
        assert_eq!(day_of(1_705_314_600_000), "2024-01-15");
        assert_eq!(last_days(1_705_314_600_000, 3), vec!["2024-01-13", "2024-01-14", "2024-01-15"]);
    }
}

/// `ms` parsed from RFC 3339 (the form the pages print), if it is one.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let t = ::time::OffsetDateTime::parse(s.trim(), &::time::format_description::well_known::Rfc3339).ok()?;
    Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// A date for people, in UTC: `4 Dec 2026, 13:09 UTC`.
pub fn human_date(ms: i64) -> String {
    match ::time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)) {
        Ok(t) => {
            let fmt = ::time::macros::format_description!(
                "[day padding:none] [month repr:short] [year], [hour]:[minute] UTC"
            );
            t.format(&fmt).unwrap_or_default()
        }
        Err(_) => String::new(),
    }
}

/// How far `ms` is from `now_ms`, in words: `just now`, `3 minutes ago`, `in 2 days`. The
/// pages' script (static/js/shell.js) computes the same words in the browser.
pub fn relative(ms: i64, now_ms: i64) -> String {
    let diff = (ms - now_ms) / 1000;
    let secs = diff.abs();
    if secs < 45 {
        return "just now".into();
    }
    let (n, unit) = match secs {
        s if s < 45 * 60 => ((s + 30) / 60, "minute"),
        s if s < 22 * 3600 => ((s + 1800) / 3600, "hour"),
        s if s < 26 * 86_400 => ((s + 43_200) / 86_400, "day"),
        s if s < 320 * 86_400 => ((s + 15 * 86_400) / (30 * 86_400), "month"),
        s => ((s + 182 * 86_400) / (365 * 86_400), "year"),
    };
    let n = n.max(1);
    let words = format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    if diff < 0 { format!("{words} ago") } else { format!("in {words}") }
}

#[cfg(test)]
mod human_tests {
    use super::*;

    #[test]
    fn dates_read_as_words_and_relative_labels() {
        let t = parse_rfc3339("2026-12-04T13:09:23Z").unwrap_or_default();
        assert_eq!(human_date(t), "4 Dec 2026, 13:09 UTC");
        assert_eq!(relative(t, t + 10_000), "just now");
        assert_eq!(relative(t, t + 3 * 60_000), "3 minutes ago");
        assert_eq!(relative(t, t + 60_000), "1 minute ago");
        assert_eq!(relative(t + 2 * 86_400_000, t), "in 2 days");
        assert_eq!(relative(t, t + 5 * 3_600_000), "5 hours ago");
        assert_eq!(relative(t, t + 400 * 86_400_000), "1 year ago");
        assert_eq!(parse_rfc3339("not a date"), None);
    }
}
