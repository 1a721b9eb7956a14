//! The event bus between instances (DESIGN §3). Rooms (`crate::realtime`) always deliver to their
//! own sockets directly; the bus carries the same envelopes to the other instances. In-process (one
//! instance) it carries nothing; with `bus_url` it is Redis pub/sub. Pub/sub is lossy across
//! reconnects: durable events are recovered from the store by sequence number, never from the bus.
//! The bus also carries what instances must share besides rooms (SPEC §9): cache invalidations,
//! and the counters of every rate limit and lockout (`crate::limits`).

pub mod redis;

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

/// One message for a room, as it travels between instances.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    /// The instance that published it (an instance ignores its own).
    pub origin: String,
    pub room: String,
    /// Durable events: the room's sequence number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    /// The message `type` (the sockets act on some: `session_ended`, `participant_removed`).
    pub kind: String,
    /// The user who caused it (cursor and signal senders, the removed participant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<i64>,
    /// Only this user's sockets receive it (signals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<i64>,
    /// The frame sent to clients, serialised once and shared by every socket that sends it.
    #[serde(with = "frame_text")]
    pub frame: Frame,
}

/// A text frame as sockets send it: cloning shares the bytes, it does not copy them.
pub type Frame = axum::extract::ws::Utf8Bytes;

/// `Envelope::frame` travels between instances as a JSON string.
mod frame_text {
    use serde::Deserialize;

    pub fn serialize<S: serde::Serializer>(frame: &super::Frame, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(frame.as_str())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<super::Frame, D::Error> {
        String::deserialize(d).map(super::Frame::from)
    }
}

/// Who one instance has online in a room.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PresenceSnapshot {
    pub instance: String,
    /// Unix ms after which the snapshot is stale (the instance stopped refreshing it).
    pub until: i64,
    /// `(user_id, name)`.
    pub users: Vec<(i64, String)>,
}

/// What a bus hands to this instance.
pub trait Sink: Send + Sync {
    /// An envelope from another instance.
    fn deliver(&self, env: Envelope);
    /// The bus (re)connected: messages may have been lost meanwhile, rooms catch up from the store
    /// and caches are forgotten.
    fn resync(&self);
    /// Another instance committed a write that cached values may predate.
    fn forget_caches(&self);
    /// Another instance revoked access: close the sockets it covers.
    fn revoked(&self, r: Revocation);
}

/// Access that ended: every socket it covers closes at once, on every instance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Revocation {
    /// A sign-in session ended (logout): the sockets opened with its tokens or cookie.
    Session { user_id: i64, session_id: String },
    /// The account was disabled: all of its sockets.
    Account { user_id: i64 },
    /// The account is no longer an agent of the company: its chat sockets of that company.
    Agent { user_id: i64, company_id: i64 },
}

/// What a lockout round trip does (`EventBus::failures`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOp {
    /// How long the key is locked out (0: it is not).
    Check,
    /// Counts a failure; the one that reaches the maximum starts the lockout.
    Fail,
    /// Forgets the failures.
    Succeed,
}

pub trait EventBus: Send + Sync {
    /// Starts delivering other instances' envelopes to `sink`.
    fn start(&self, sink: Arc<dyn Sink>, shutdown: tokio_util::sync::CancellationToken);
    /// Sends to the other instances; never waits and never fails (losses are counted).
    fn publish(&self, env: &Envelope);
    /// Stores this instance's presence in a room for the others.
    fn put_presence(&self, room: &str, snapshot: PresenceSnapshot) -> BoxFuture<'static, ()>;
    /// The other instances' presence in a room that is still valid at `now` (unix ms; empty when
    /// unknown or unreachable).
    fn presence(&self, room: &str, now: i64) -> BoxFuture<'static, Vec<PresenceSnapshot>>;
    /// Whether the bus is connected (always true in-process).
    fn connected(&self) -> bool;
    /// Whether there are other instances to share with (false in-process).
    fn shared(&self) -> bool;
    /// Tells the other instances to forget their caches (`store::cache::Peers::invalidate`).
    fn invalidate(&self, wait: bool) -> BoxFuture<'static, ()>;
    /// Tells the other instances that access was revoked (never waits; losses are counted).
    fn revoke(&self, r: Revocation);
    /// Spends one request of a budget shared by every instance: `burst` requests, one more every
    /// `interval_ms`. `Some(0)` allowed, `Some(ms)` refused for that long, `None` when there is no
    /// shared store or it cannot be reached (the caller then counts on this instance alone).
    fn spend(&self, key: &str, interval_ms: u64, burst: u32) -> BoxFuture<'static, Option<u64>>;
    /// A lockout shared by every instance: `max` failures within `period_ms` lock `key` out for
    /// `period_ms`. `Some(ms)` locked out for that long (0: not locked), `None` unreachable.
    fn failures(&self, key: &str, op: FailureOp, max: u32, period_ms: u64) -> BoxFuture<'static, Option<u64>>;
}

/// One instance: nothing to carry.
pub struct InProcess;

impl EventBus for InProcess {
    fn start(&self, _sink: Arc<dyn Sink>, _shutdown: tokio_util::sync::CancellationToken) {}
    fn publish(&self, _env: &Envelope) {}
    fn put_presence(&self, _room: &str, _snapshot: PresenceSnapshot) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
    fn presence(&self, _room: &str, _now: i64) -> BoxFuture<'static, Vec<PresenceSnapshot>> {
        Box::pin(async { Vec::new() })
    }
    fn connected(&self) -> bool {
        true
    }
    fn shared(&self) -> bool {
        false
    }
    fn invalidate(&self, _wait: bool) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
    fn revoke(&self, _r: Revocation) {}
    fn spend(&self, _key: &str, _interval_ms: u64, _burst: u32) -> BoxFuture<'static, Option<u64>> {
        Box::pin(async { None })
    }
    fn failures(&self, _key: &str, _op: FailureOp, _max: u32, _period_ms: u64) -> BoxFuture<'static, Option<u64>> {
        Box::pin(async { None })
    }
}

/// The bus the configuration asks for (`bus_url`, and `bus_tls_ca` for a `rediss://` one).
/// `deployment` names this deployment's keys and channels on a shared bus
/// (`Store::deployment_id`), so deployments sharing one Redis stay apart.
pub fn from_config(
    bus_url: Option<&str>,
    bus_tls_ca: Option<&str>,
    instance: &str,
    deployment: &str,
) -> anyhow::Result<Arc<dyn EventBus>> {
    match bus_url {
        None => Ok(Arc::new(InProcess)),
        Some(url) => {
            Ok(Arc::new(redis::RedisBus::new(url, bus_tls_ca.map(std::path::Path::new), instance, deployment)?))
        }
    }
}

/// The caches' view of the bus (`store::cache::Peers`).
pub struct CachePeers(pub Arc<dyn EventBus>);

impl crate::store::cache::Peers for CachePeers {
    fn invalidate(&self, wait: bool) -> BoxFuture<'static, ()> {
        self.0.invalidate(wait)
    }
    fn listening(&self) -> bool {
        !self.0.shared() || self.0.connected()
    }
}
