//! Timestamps: stored as unix milliseconds, printed as RFC 3339 UTC (`2024-01-15T10:30:00Z`).

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
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
