//! Rate limits: one keyed limiter type used by every endpoint that takes a guess; a refusal is
//! always a 429 with `Retry-After`.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// A per-key budget of `n` requests per hour that every instance spends together when the bus is
/// shared (Redis), and each instance alone otherwise or while Redis cannot be reached.
pub struct SharedLimit {
    name: &'static str,
    n: u32,
    local: KeyedLimit<String>,
}

impl SharedLimit {
    pub fn per_hour(name: &'static str, n: u32) -> Self {
        SharedLimit { name, n: n.max(1), local: KeyedLimit::per_hour(n) }
    }

    /// Spends one unit for `key`, or says how long to wait.
    pub async fn check(&self, bus: &dyn crate::bus::EventBus, key: &str) -> Result<(), AppError> {
        let interval_ms = 3_600_000 / u64::from(self.n);
        match bus.spend(&format!("{}:{key}", self.name), interval_ms.max(1), self.n).await {
            Some(0) => Ok(()),
            Some(wait_ms) => Err(AppError::RateLimited { retry_after_secs: wait_ms.div_ceil(1000).max(1) }),
            None => self.local.check(&key.to_string()),
        }
    }

    pub fn retain_recent(&self) {
        self.local.retain_recent();
    }
}

/// Locks a key out after `max` failures within `period`, for `period`: the `max`-th failure is
/// still an ordinary refusal; every attempt after it is a 429 until the lockout ends.
pub struct Lockouts<K: Hash + Eq> {
    max: u32,
    period: Duration,
    entries: Mutex<HashMap<K, Failures>>,
}

struct Failures {
    count: u32,
    first: Instant,
    locked_until: Option<Instant>,
}

impl<K: Hash + Eq> Lockouts<K> {
    pub fn new(max: u32, period: Duration) -> Self {
        Lockouts { max: max.max(1), period, entries: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Failures>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// 429 while `key` is locked out.
    pub fn check(&self, key: &K) -> Result<(), AppError> {
        let now = Instant::now();
        match self.lock().get(key).and_then(|f| f.locked_until) {
            Some(until) if until > now => {
                Err(AppError::RateLimited { retry_after_secs: (until - now).as_secs().max(1) })
            }
            _ => Ok(()),
        }
    }

    pub fn failure(&self, key: K) {
        let now = Instant::now();
        let mut map = self.lock();
        let f = map.entry(key).or_insert(Failures { count: 0, first: now, locked_until: None });
        if now.duration_since(f.first) > self.period || f.locked_until.is_some_and(|u| u <= now) {
            *f = Failures { count: 0, first: now, locked_until: None };
        }
        f.count += 1;
        if f.count >= self.max {
            f.locked_until = Some(now + self.period);
        }
    }

    pub fn success(&self, key: &K) {
        self.lock().remove(key);
    }

    pub fn retain_recent(&self) {
        let now = Instant::now();
        self.lock().retain(|_, f| f.locked_until.map_or(now.duration_since(f.first) <= self.period, |u| u > now));
    }
}

/// Every limiter of the app.
pub struct Limits {
    pub login_per_ip: KeyedLimit<IpAddr>,
    pub login_per_account: KeyedLimit<String>,
    /// Password and download endpoints of share links, per client IP.
    pub share_access_per_ip: KeyedLimit<IpAddr>,
    /// Link creation, per user id.
    pub share_create_per_user: KeyedLimit<i64>,
    /// Wrong share passwords, per (IP, share id).
    pub share_password: Lockouts<(IpAddr, i64)>,
    /// Comments by share visitors, per client IP.
    pub guest_comment_per_ip: KeyedLimit<IpAddr>,
    /// Chat uploads, per uploader (a visitor's session, or an agent).
    pub chat_upload: KeyedLimit<String>,
    /// Chat sessions opened, per client IP.
    pub chat_session_per_ip: KeyedLimit<IpAddr>,
    /// Gallery and search endpoints, per dashboard user (SPEC §6), shared across instances.
    pub gallery_dashboard: SharedLimit,
    /// Gallery and search endpoints, per admin, shared across instances.
    pub gallery_admin: SharedLimit,
}

impl Limits {
    pub fn new(config: &Config) -> Limits {
        Limits {
            login_per_ip: KeyedLimit::per_minute(config.login_rate_per_ip_per_minute),
            login_per_account: KeyedLimit::per_minute(config.login_rate_per_account_per_minute),
            share_access_per_ip: KeyedLimit::per_minute(config.share_access_rate_per_ip_per_minute),
            share_create_per_user: KeyedLimit::per_hour(config.share_create_rate_per_user_per_hour),
            guest_comment_per_ip: KeyedLimit::per_minute(config.guest_comment_rate_per_ip_per_minute),
            chat_upload: KeyedLimit::per_minute(config.chat_upload_rate_per_minute),
            chat_session_per_ip: KeyedLimit::per_minute(config.chat_session_rate_per_ip_per_minute),
            gallery_dashboard: SharedLimit::per_hour("gallery-dashboard", config.gallery_rate_dashboard_per_hour),
            gallery_admin: SharedLimit::per_hour("gallery-admin", config.gallery_rate_admin_per_hour),
            share_password: Lockouts::new(
                config.share_password_max_failures,
                Duration::from_secs(config.share_lockout_secs),
            ),
        }
    }

    pub fn retain_recent(&self) {
        self.login_per_ip.retain_recent();
        self.login_per_account.retain_recent();
        self.share_access_per_ip.retain_recent();
        self.share_create_per_user.retain_recent();
        self.guest_comment_per_ip.retain_recent();
        self.chat_upload.retain_recent();
        self.chat_session_per_ip.retain_recent();
        self.gallery_dashboard.retain_recent();
        self.gallery_admin.retain_recent();
        self.share_password.retain_recent();
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

    #[test]
    fn the_fifth_failure_is_ordinary_and_the_next_attempt_is_locked_out() {
        let l = Lockouts::new(5, Duration::from_secs(900));
        for _ in 0..4 {
            assert!(l.check(&1).is_ok());
            l.failure(1);
        }
        assert!(l.check(&1).is_ok(), "the fifth attempt is still checked normally");
        l.failure(1);
        assert!(matches!(l.check(&1), Err(AppError::RateLimited { retry_after_secs }) if retry_after_secs > 800));
        assert!(l.check(&2).is_ok());
        l.success(&1);
        assert!(l.check(&1).is_ok());
    }
}
