//! Short-lived caches of hot reads: the rows behind a share page (link + asset), the recipient's
//! page being the hottest read, the public gallery's answers, who has webhooks, and the access
//! tokens that authenticated (with their accounts, keyed by the token's hash; an unknown token is
//! never cached). A committed write through this Store forgets them here and on every other
//! instance through the bus before it returns (`Caches::changed`);
//! while this instance cannot hear the others (the bus is down) they are bypassed, never trusted.
//! `TTL` is only a safety net for an invalidation lost on its way.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use crate::domain::shares::{Share, Shared};

pub const TTL: Duration = Duration::from_secs(2);
const MAX_ENTRIES: usize = 50_000;

/// A link and what it shares.
pub type ShareView = Arc<(Share, Shared)>;

/// An access token and its account, as authentication reads them.
pub type TokenView = Arc<crate::store::tokens::TokenAccount>;

/// The other instances of the deployment, as the caches see them (the bus, wired in `app`).
pub trait Peers: Send + Sync {
    /// Tells every other instance to forget its caches. With `wait`, resolves once every instance
    /// listening has done so (or a short wait ran out); otherwise once the message is sent.
    fn invalidate(&self, wait: bool) -> BoxFuture<'static, ()>;
    /// Whether the other instances' invalidations reach this one now.
    fn listening(&self) -> bool;
}

/// Every cache of security-relevant state, and who must hear of a change.
#[derive(Default)]
pub struct Caches {
    shares: TtlCache<ShareView>,
    gallery: TtlCache<bytes::Bytes>,
    /// Who has active webhooks (`store::webhooks::WebhookOwners`): asked by every event, on the hot
    /// path of share views.
    webhook_owners: TtlCache<Arc<crate::store::webhooks::WebhookOwners>>,
    /// Access tokens and their accounts by the token's hash (`Store::token_by_hash`): asked by
    /// every request that carries one. Revoking a token and changing an account's role or active
    /// flag forget it.
    tokens: TtlCache<TokenView>,
    /// Counts the times everything was forgotten: a value read from the database before the last
    /// one may be stale and is not kept.
    epoch: AtomicU64,
    /// Unset on one instance (nobody else writes).
    peers: OnceLock<Arc<dyn Peers>>,
}

impl Caches {
    pub fn set_peers(&self, peers: Arc<dyn Peers>) {
        let _ = self.peers.set(peers);
    }

    /// Whether cached values can be believed: alone, or hearing every other instance's writes.
    fn trusted(&self) -> bool {
        self.peers.get().is_none_or(|p| p.listening())
    }

    /// Take it before reading what is to be cached, give it to `put_*`.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    pub fn share(&self, uuid: &str) -> Option<ShareView> {
        self.trusted().then(|| self.shares.get(uuid)).flatten()
    }

    pub fn put_share(&self, since: u64, uuid: &str, view: ShareView) {
        if self.trusted() {
            self.shares.put_unless_forgotten(&self.epoch, since, uuid, view);
        }
    }

    pub fn gallery(&self, key: &str) -> Option<bytes::Bytes> {
        self.trusted().then(|| self.gallery.get(key)).flatten()
    }

    pub fn put_gallery(&self, since: u64, key: &str, answer: bytes::Bytes) {
        if self.trusted() {
            self.gallery.put_unless_forgotten(&self.epoch, since, key, answer);
        }
    }

    pub fn webhook_owners(&self) -> Option<Arc<crate::store::webhooks::WebhookOwners>> {
        self.trusted().then(|| self.webhook_owners.get("")).flatten()
    }

    pub fn put_webhook_owners(&self, since: u64, owners: Arc<crate::store::webhooks::WebhookOwners>) {
        if self.trusted() {
            self.webhook_owners.put_unless_forgotten(&self.epoch, since, "", owners);
        }
    }

    /// The token whose hash is `hash` (never its value), with its account.
    pub fn token(&self, hash: &str) -> Option<TokenView> {
        self.trusted().then(|| self.tokens.get(hash)).flatten()
    }

    pub fn put_token(&self, since: u64, hash: &str, view: TokenView) {
        if self.trusted() {
            self.tokens.put_unless_forgotten(&self.epoch, since, hash, view);
        }
    }

    /// Forgets everything on this instance (another instance wrote, or the bus came back).
    pub fn forget(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.shares.clear();
        self.gallery.clear();
        self.webhook_owners.clear();
        self.tokens.clear();
    }

    /// A write was committed here: forget it here and on every other instance (see
    /// `Peers::invalidate` for `wait`).
    pub async fn changed(&self, wait: bool) {
        self.forget();
        if let Some(peers) = self.peers.get() {
            peers.invalidate(wait).await;
        }
    }
}

/// String-keyed values that live for `TTL`.
pub struct TtlCache<V: Clone> {
    entries: Mutex<HashMap<String, (Instant, V)>>,
}

impl<V: Clone> Default for TtlCache<V> {
    fn default() -> Self {
        TtlCache { entries: Mutex::new(HashMap::new()) }
    }
}

impl<V: Clone> TtlCache<V> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, V)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, key: &str) -> Option<V> {
        let map = self.lock();
        map.get(key).filter(|(at, _)| at.elapsed() < TTL).map(|(_, v)| v.clone())
    }

    /// Keeps `value` unless everything was forgotten since `since` (checked under the lock that
    /// `clear` takes after moving the epoch, so a forgotten value is never kept).
    fn put_unless_forgotten(&self, epoch: &AtomicU64, since: u64, key: &str, value: V) {
        let mut map = self.lock();
        if epoch.load(Ordering::SeqCst) != since {
            return;
        }
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (at, _)| at.elapsed() < TTL);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert(key.to_string(), (Instant::now(), value));
    }

    pub fn clear(&self) {
        self.lock().clear();
    }
}
