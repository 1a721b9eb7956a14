//! Rate limits, budgets and lockouts (SPEC §9): one mechanism for all of them. With a shared bus
//! (Redis) every instance spends the same budget, one atomic round trip per check; alone, or while
//! the bus cannot be reached, an instance counts on its own (said once in the log, and in
//! `/metrics` as `vitrine_limiter_shared`). A refusal is always a 429 with `Retry-After`.

use std::collections::HashMap;
use std::fmt::Display;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::bus::{EventBus, FailureOp};
use crate::config::Config;
use crate::error::AppError;

/// A per-key budget of `n` requests per period, refilled smoothly, on this instance.
pub struct KeyedLimit<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
}

impl<K: Hash + Eq + Clone> KeyedLimit<K> {
    pub fn new(n: u32, period: Duration) -> Self {
        let n = NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period / n.get()).unwrap_or_else(|| Quota::per_second(n)).allow_burst(n);
        KeyedLimit { limiter: RateLimiter::keyed(quota) }
    }

    pub fn per_minute(n: u32) -> Self {
        KeyedLimit::new(n, Duration::from_secs(60))
    }

    pub fn per_hour(n: u32) -> Self {
        KeyedLimit::new(n, Duration::from_secs(3600))
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

/// Locks a key out after `max` failures within `period`, for `period`, on this instance: the
/// `max`-th failure is still an ordinary refusal; every attempt after it is a 429 until the
/// lockout ends.
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

/// Where the limits of this instance count: on the shared bus, or alone.
pub struct Counting {
    bus: Arc<dyn EventBus>,
    /// 0 unknown, 1 shared, 2 alone (the bus is unreachable): transitions are logged once.
    mode: AtomicU8,
}

impl Counting {
    fn new(bus: Arc<dyn EventBus>) -> Arc<Counting> {
        Arc::new(Counting { bus, mode: AtomicU8::new(0) })
    }

    /// Whether there is a shared store to count in at all (false on one instance).
    fn distributed(&self) -> bool {
        self.bus.shared()
    }

    /// Notes whether the last check reached the shared store; says so when that changes.
    fn reached(&self, shared: bool) {
        let mode = if shared { 1 } else { 2 };
        if self.mode.swap(mode, Ordering::Relaxed) == mode {
            return;
        }
        metrics::gauge!("vitrine_limiter_shared").set(if shared { 1.0 } else { 0.0 });
        if shared {
            tracing::info!("rate limits are shared by every instance through the bus");
        } else {
            tracing::warn!(
                "the bus is unreachable: rate limits and lockouts count on this instance alone until it is back"
            );
        }
    }

    /// Whether the last check counted on this instance alone although the deployment is shared.
    pub fn alone(&self) -> bool {
        self.distributed() && self.mode.load(Ordering::Relaxed) == 2
    }
}

/// A per-key budget of `n` requests per period: spent together by every instance when the bus is
/// shared, on this instance otherwise.
pub struct Limit {
    name: &'static str,
    interval_ms: u64,
    burst: u32,
    local: KeyedLimit<String>,
    counting: Arc<Counting>,
}

impl Limit {
    fn new(counting: &Arc<Counting>, name: &'static str, n: u32, period: Duration) -> Limit {
        let n = n.max(1);
        let interval_ms = (period.as_millis() as u64 / u64::from(n)).max(1);
        Limit { name, interval_ms, burst: n, local: KeyedLimit::new(n, period), counting: counting.clone() }
    }

    /// Spends one unit for `key`, or says how long to wait.
    pub async fn check(&self, key: impl Display) -> Result<(), AppError> {
        let key = key.to_string();
        if self.counting.distributed() {
            let spent = self.counting.bus.spend(&format!("{}:{key}", self.name), self.interval_ms, self.burst).await;
            self.counting.reached(spent.is_some());
            match spent {
                Some(0) => return Ok(()),
                Some(wait_ms) => return Err(AppError::RateLimited { retry_after_secs: wait_ms.div_ceil(1000).max(1) }),
                None => metrics::counter!("vitrine_limiter_local_checks_total").increment(1),
            }
        }
        self.local.check(&key)
    }

    pub fn retain_recent(&self) {
        self.local.retain_recent();
    }
}

/// A lockout after `max` failures within a period (see `Lockouts`), shared like `Limit`.
pub struct Lockout {
    name: &'static str,
    max: u32,
    period_ms: u64,
    local: Lockouts<String>,
    counting: Arc<Counting>,
}

impl Lockout {
    fn new(counting: &Arc<Counting>, name: &'static str, max: u32, period: Duration) -> Lockout {
        Lockout {
            name,
            max: max.max(1),
            period_ms: (period.as_millis() as u64).max(1),
            local: Lockouts::new(max, period),
            counting: counting.clone(),
        }
    }

    /// One round trip to the shared store; None when counting alone.
    async fn shared(&self, op: FailureOp, key: &str) -> Option<u64> {
        if !self.counting.distributed() {
            return None;
        }
        let done = self.counting.bus.failures(&format!("{}:{key}", self.name), op, self.max, self.period_ms).await;
        self.counting.reached(done.is_some());
        if done.is_none() {
            metrics::counter!("vitrine_limiter_local_checks_total").increment(1);
        }
        done
    }

    /// 429 while `key` is locked out.
    pub async fn check(&self, key: impl Display) -> Result<(), AppError> {
        let key = key.to_string();
        match self.shared(FailureOp::Check, &key).await {
            Some(0) => Ok(()),
            Some(wait_ms) => Err(AppError::RateLimited { retry_after_secs: wait_ms.div_ceil(1000).max(1) }),
            None => self.local.check(&key),
        }
    }

    /// Counts a failure (the one that reaches `max` starts the lockout).
    pub async fn failure(&self, key: impl Display) {
        let key = key.to_string();
        if self.shared(FailureOp::Fail, &key).await.is_none() {
            self.local.failure(key);
        }
    }

    /// A success forgets the failures.
    pub async fn success(&self, key: impl Display) {
        let key = key.to_string();
        if self.shared(FailureOp::Succeed, &key).await.is_none() {
            self.local.success(&key);
        }
    }

    pub fn retain_recent(&self) {
        self.local.retain_recent();
    }
}

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// Every limit, budget and lockout of the app (SPEC §3, §4, §6, §7), each with its own name on the
/// shared bus.
pub struct Limits {
    pub counting: Arc<Counting>,
    pub login_per_ip: Limit,
    pub login_per_account: Limit,
    /// Password and download endpoints of share links, per client IP.
    pub share_access_per_ip: Limit,
    /// Link creation, per user id.
    pub share_create_per_user: Limit,
    /// Wrong passwords of protected links and file requests, per IP and link
    /// (`share_password_key`, `file_request_password_key`).
    pub share_password: Lockout,
    /// Uploads to file requests, per client IP (SPEC §11).
    pub file_request_upload_per_ip: Limit,
    /// Comments by share visitors, per client IP.
    pub guest_comment_per_ip: Limit,
    /// Chat uploads, per uploader (a visitor's session, or an agent).
    pub chat_upload: Limit,
    /// Chat sessions opened, per client IP.
    pub chat_session_per_ip: Limit,
    /// Gallery and search endpoints, per dashboard user (SPEC §6).
    pub gallery_dashboard: Limit,
    /// Gallery and search endpoints, per admin.
    pub gallery_admin: Limit,
}

/// The lockout key of wrong passwords for one link from one client.
pub fn share_password_key(ip: std::net::IpAddr, share_id: i64) -> String {
    format!("{ip}|{share_id}")
}

/// The lockout key of wrong passwords for one file request from one client (the same lockout as
/// share links, in its own key space).
pub fn file_request_password_key(ip: std::net::IpAddr, request_id: i64) -> String {
    format!("{ip}|request:{request_id}")
}

impl Limits {
    pub fn new(config: &Config, bus: Arc<dyn EventBus>) -> Limits {
        let c = Counting::new(bus);
        Limits {
            login_per_ip: Limit::new(&c, "login-ip", config.login_rate_per_ip_per_minute, MINUTE),
            login_per_account: Limit::new(&c, "login-account", config.login_rate_per_account_per_minute, MINUTE),
            share_access_per_ip: Limit::new(&c, "share-access-ip", config.share_access_rate_per_ip_per_minute, MINUTE),
            share_create_per_user: Limit::new(&c, "share-create", config.share_create_rate_per_user_per_hour, HOUR),
            guest_comment_per_ip: Limit::new(
                &c,
                "guest-comment-ip",
                config.guest_comment_rate_per_ip_per_minute,
                MINUTE,
            ),
            chat_upload: Limit::new(&c, "chat-upload", config.chat_upload_rate_per_minute, MINUTE),
            chat_session_per_ip: Limit::new(&c, "chat-session-ip", config.chat_session_rate_per_ip_per_minute, MINUTE),
            gallery_dashboard: Limit::new(&c, "gallery-dashboard", config.gallery_rate_dashboard_per_hour, HOUR),
            gallery_admin: Limit::new(&c, "gallery-admin", config.gallery_rate_admin_per_hour, HOUR),
            file_request_upload_per_ip: Limit::new(
                &c,
                "file-request-upload-ip",
                config.file_request_rate_per_ip_per_minute,
                MINUTE,
            ),
            share_password: Lockout::new(
                &c,
                "share-password",
                config.share_password_max_failures,
                Duration::from_secs(config.share_lockout_secs),
            ),
            counting: c,
        }
    }

    pub fn retain_recent(&self) {
        for l in [
            &self.login_per_ip,
            &self.login_per_account,
            &self.share_access_per_ip,
            &self.share_create_per_user,
            &self.guest_comment_per_ip,
            &self.chat_upload,
            &self.chat_session_per_ip,
            &self.gallery_dashboard,
            &self.gallery_admin,
            &self.file_request_upload_per_ip,
        ] {
            l.retain_recent();
        }
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

    #[tokio::test]
    async fn alone_the_limits_count_on_this_instance() {
        let config = Config { login_rate_per_ip_per_minute: 2, share_password_max_failures: 2, ..Config::default() };
        let limits = Limits::new(&config, Arc::new(crate::bus::InProcess));
        assert!(limits.login_per_ip.check("10.0.0.1").await.is_ok());
        assert!(limits.login_per_ip.check("10.0.0.1").await.is_ok());
        assert!(limits.login_per_ip.check("10.0.0.1").await.is_err());
        assert!(limits.login_per_ip.check("10.0.0.2").await.is_ok());
        let key = share_password_key([10, 0, 0, 1].into(), 7);
        limits.share_password.failure(&key).await;
        assert!(limits.share_password.check(&key).await.is_ok());
        limits.share_password.failure(&key).await;
        assert!(limits.share_password.check(&key).await.is_err());
        assert!(!limits.counting.alone(), "one instance is never 'alone' in the degraded sense");
    }
}
