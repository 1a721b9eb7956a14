//! Rate limits: one keyed limiter type used by every endpoint that takes a guess; a refusal is
//! always a 429 with `Retry-After`.

use std::hash::Hash;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::Config;
use crate::error::AppError;

/// A per-key budget of `n` requests per period, refilled smoothly.
pub struct KeyedLimit<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
}

impl<K: Hash + Eq + Clone> KeyedLimit<K> {
    pub fn per_minute(n: u32) -> Self {
        let n = NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN);
        KeyedLimit { limiter: RateLimiter::keyed(Quota::per_minute(n)) }
    }

    pub fn per_hour(n: u32) -> Self {
        let n = NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN);
        KeyedLimit { limiter: RateLimiter::keyed(Quota::per_hour(n)) }
    }

    /// Spends one unit for `key`, or says how long to wait.
    pub fn check(&self, key: &K) -> Result<(), AppError> {
        self.limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            AppError::RateLimited { retry_after_secs: wait.as_secs().max(1) }
        })
    }

    /// Forgets keys whose budget is full again (called by a periodic job).
    pub fn retain_recent(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// Every limiter of the app.
pub struct Limits {
    pub login_per_ip: KeyedLimit<std::net::IpAddr>,
    pub login_per_account: KeyedLimit<String>,
}

impl Limits {
    pub fn new(config: &Config) -> Limits {
        Limits {
            login_per_ip: KeyedLimit::per_minute(config.login_rate_per_ip_per_minute),
            login_per_account: KeyedLimit::per_minute(config.login_rate_per_account_per_minute),
        }
    }

    pub fn retain_recent(&self) {
        self.login_per_ip.retain_recent();
        self.login_per_account.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_runs_out_then_says_when() {
        let l = KeyedLimit::<u8>::per_minute(2);
        assert!(l.check(&1).is_ok());
        assert!(l.check(&1).is_ok());
        match l.check(&1) {
            Err(AppError::RateLimited { retry_after_secs }) => {
                assert!((1..=60).contains(&retry_after_secs))
            }
            other => panic!("expected 429, got {other:?}"),
        }
        assert!(l.check(&2).is_ok(), "other keys are unaffected");
    }
}
