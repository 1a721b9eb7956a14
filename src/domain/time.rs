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
