//! The Redis bus. Every key and channel starts with `vitrine:{deployment}:` (the deployment's id,
//! kept in its database), so deployments sharing one Redis stay apart. Every instance publishes
//! its rooms' envelopes on `…room:{room}` and pattern-subscribes to all of them; presence
//! snapshots live in the hash `…presence:{room}` (one field per instance, expiring); cache
//! invalidations go on `…invalidate`; limits and lockouts are keys under `…limit:` and `…lock:`,
//! each changed by one Lua script (one round trip, atomic, on Redis's clock). Connections are
//! re-established with backoff; while Redis is down each instance keeps serving its own sockets,
//! counts its limits alone and bypasses its caches, and the rooms catch up from the store when the
//! subscription comes back. `rediss://` URLs connect over TLS
//! (rustls on aws-lc-rs) and check the server's certificate against the public CAs built in, or
//! against `bus_tls_ca` alone when it is set.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Envelope, EventBus, FailureOp, PresenceSnapshot, Revocation, Sink};

/// Envelopes waiting for the publisher before new ones are dropped (and counted).
const QUEUE: usize = 65_536;
/// Envelopes sent in one pipeline.
const BATCH: usize = 512;
const TIMEOUT: Duration = Duration::from_secs(2);
/// A limit check waits this long for Redis before counting on this instance.
const LIMIT_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a write waits for the other instances to acknowledge an invalidation.
const ACK_WAIT: Duration = Duration::from_millis(250);
/// How long limit checks skip Redis after one failed.
const LIMITS_RETRY: Duration = Duration::from_secs(1);
const PRESENCE_TTL_MS: i64 = 60_000;

pub struct RedisBus {
    client: redis::Client,
    instance: String,
    /// `vitrine:{deployment}:`, the start of every key and channel.
    prefix: String,
    /// Until when (ms on the monotonic `since` clock) limit checks skip Redis after a failure, so
    /// that an outage costs one timeout, not one per request.
    limits_down: Arc<Breaker>,
    queue: mpsc::Sender<Envelope>,
    pending: Mutex<Option<mpsc::Receiver<Envelope>>>,
    conn: Arc<Mutex<Option<MultiplexedConnection>>>,
    /// A task is replacing a command connection that failed (`heal`).
    healing: Arc<AtomicBool>,
    /// Invalidations of this instance waiting for acknowledgements.
    waiters: Arc<Waiters>,
    subscribed: Arc<AtomicBool>,
}

impl RedisBus {
    /// `tls_ca`: a PEM file of the CA that signed the server's certificate (`bus_tls_ca`); only that
    /// CA is then trusted. The URL and the CA file are checked here, so a mistake in either stops the
    /// start instead of leaving the bus retrying in the background.
    pub fn new(url: &str, tls_ca: Option<&Path>, instance: &str, deployment: &str) -> anyhow::Result<RedisBus> {
        let client = match tls_ca {
            None => redis::Client::open(url).map_err(|e| anyhow::anyhow!("bus_url is not a Redis URL: {e}"))?,
            Some(ca) => {
                let pem =
                    std::fs::read(ca).map_err(|e| anyhow::anyhow!("cannot read bus_tls_ca {}: {e}", ca.display()))?;
                // The redis crate skips what is not a certificate: an empty trust store would only
                // show up later as every connection failing.
                if !CertificateDer::pem_slice_iter(&pem).any(|c| c.is_ok()) {
                    anyhow::bail!("bus_tls_ca {} holds no PEM certificate", ca.display());
                }
                let certs = redis::TlsCertificates { client_tls: None, root_cert: Some(pem) };
                redis::Client::build_with_tls(url, certs)
                    .map_err(|e| anyhow::anyhow!("bus_url with bus_tls_ca cannot be used: {e}"))?
            }
        };
        let (queue, rx) = mpsc::channel(QUEUE);
        Ok(RedisBus {
            client,
            instance: instance.to_string(),
            prefix: format!("vitrine:{deployment}:"),
            limits_down: Arc::new(Breaker { since: std::time::Instant::now(), until_ms: AtomicU64::new(0) }),
            queue,
            pending: Mutex::new(Some(rx)),
            conn: Arc::new(Mutex::new(None)),
            healing: Arc::new(AtomicBool::new(false)),
            waiters: Arc::new(Waiters::default()),
            subscribed: Arc::new(AtomicBool::new(false)),
        })
    }

    fn conn(&self) -> Option<MultiplexedConnection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The command connection failed (Redis restarted, or is down): forget it, so that the bus
    /// reads as disconnected, and make a new one in the background, with backoff. The publisher
    /// heals its own connection the same way when a publish fails.
    fn heal(&self) -> Healer {
        Healer { client: self.client.clone(), slot: self.conn.clone(), healing: self.healing.clone() }
    }

    fn room_channel(&self, room: &str) -> String {
        format!("{}room:{room}", self.prefix)
    }

    fn presence_key(&self, room: &str) -> String {
        format!("{}presence:{room}", self.prefix)
    }

    fn invalidate_channel(&self) -> String {
        format!("{}invalidate", self.prefix)
    }

    fn revoke_channel(&self) -> String {
        format!("{}revoke", self.prefix)
    }

    fn ack_channel(&self, instance: &str) -> String {
        format!("{}ack:{instance}", self.prefix)
    }

    /// A connection for a limit check, unless a check failed less than `LIMITS_RETRY` ago.
    fn limits_conn(&self) -> Option<MultiplexedConnection> {
        if self.limits_down.open() {
            return None;
        }
        self.conn()
    }

    /// Runs one limit script: its answer, or None (and limit checks skip Redis for a moment).
    fn run_script(
        &self,
        script: &'static redis::Script,
        keys: Vec<String>,
        args: Vec<u64>,
    ) -> BoxFuture<'static, Option<u64>> {
        let conn = self.limits_conn();
        let breaker = self.limits_down.clone();
        let healer = self.heal();
        Box::pin(async move {
            let mut conn = conn?;
            let mut call = script.prepare_invoke();
            for k in &keys {
                call.key(k);
            }
            for a in &args {
                call.arg(*a);
            }
            match tokio::time::timeout(LIMIT_TIMEOUT, call.invoke_async::<u64>(&mut conn)).await {
                Ok(Ok(answer)) => Some(answer),
                failed => {
                    let why = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => "timed out".to_string(),
                    };
                    tracing::debug!(error = %why, "a shared limit check failed; counting on this instance");
                    breaker.trip();
                    healer.start();
                    None
                }
            }
        })
    }
}

/// A revocation on the bus, with the instance that made it (which acted on it already).
#[derive(serde::Serialize, serde::Deserialize)]
struct Revoked {
    origin: String,
    revocation: Revocation,
}

/// Invalidations waiting for their acknowledgements, by nonce. Acks may arrive before PUBLISH's
/// answer says how many to expect, so each entry counts both ways.
#[derive(Default)]
struct Waiters {
    next: AtomicU64,
    pending: Mutex<std::collections::HashMap<u64, Waiter>>,
}

struct Waiter {
    /// Acks still missing (negative until the expected number is known).
    missing: i64,
    known: bool,
    done: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Waiters {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, Waiter>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn next(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    fn expect(&self, nonce: u64) -> tokio::sync::oneshot::Receiver<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.lock().insert(nonce, Waiter { missing: 0, known: false, done: Some(tx) });
        rx
    }

    fn settle(w: &mut Waiter) {
        if w.known
            && w.missing <= 0
            && let Some(tx) = w.done.take()
        {
            let _ = tx.send(());
        }
    }

    fn received_by(&self, nonce: u64, receivers: i64) {
        if let Some(w) = self.lock().get_mut(&nonce) {
            w.missing += receivers;
            w.known = true;
            Waiters::settle(w);
        }
    }

    fn acked(&self, nonce: u64) {
        if let Some(w) = self.lock().get_mut(&nonce) {
            w.missing -= 1;
            Waiters::settle(w);
        }
    }

    fn forget(&self, nonce: u64) {
        self.lock().remove(&nonce);
    }
}

/// Replaces a failed command connection (see `RedisBus::heal`).
struct Healer {
    client: redis::Client,
    slot: Arc<Mutex<Option<MultiplexedConnection>>>,
    healing: Arc<AtomicBool>,
}

impl Healer {
    fn renew(&self) {
        Healer { client: self.client.clone(), slot: self.slot.clone(), healing: self.healing.clone() }.start();
    }

    /// Acknowledges an invalidation to the instance that sent it (off the subscriber's loop).
    fn ack(&self, channel: String, nonce: String) {
        let conn = self.slot.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(mut conn) = conn else { return };
        tokio::spawn(async move {
            let _ = tokio::time::timeout(LIMIT_TIMEOUT, conn.publish::<_, _, i64>(channel, nonce)).await;
        });
    }

    fn start(self) {
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = None;
        if self.healing.swap(true, Ordering::SeqCst) {
            return;
        }
        tokio::spawn(async move {
            let mut attempt = 0;
            loop {
                tokio::time::sleep(backoff(attempt)).await;
                if let Ok(conn) = self.client.get_multiplexed_async_connection_with_config(&config()).await {
                    *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(conn);
                    break;
                }
                attempt += 1;
            }
            self.healing.store(false, Ordering::SeqCst);
        });
    }
}

/// After a failed limit check, the next ones skip Redis for `LIMITS_RETRY`: an outage costs one
/// timeout now and then, not one per request.
struct Breaker {
    since: std::time::Instant,
    until_ms: AtomicU64,
}

impl Breaker {
    fn now_ms(&self) -> u64 {
        self.since.elapsed().as_millis() as u64
    }

    fn open(&self) -> bool {
        self.now_ms() < self.until_ms.load(Ordering::Relaxed)
    }

    fn trip(&self) {
        self.until_ms.store(self.now_ms() + LIMITS_RETRY.as_millis() as u64, Ordering::Relaxed);
    }
}

fn config() -> redis::AsyncConnectionConfig {
    redis::AsyncConnectionConfig::new().set_connection_timeout(Some(TIMEOUT)).set_response_timeout(Some(TIMEOUT))
}

/// 100 ms, 200 ms, … up to 5 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((100u64 << attempt.min(6)).min(5_000))
}

impl EventBus for RedisBus {
    fn start(&self, sink: Arc<dyn Sink>, shutdown: CancellationToken) {
        let Some(mut rx) = self.pending.lock().unwrap_or_else(|e| e.into_inner()).take() else { return };
        // Publisher: one connection, envelopes pipelined in batches.
        let client = self.client.clone();
        let slot = self.conn.clone();
        let stop = shutdown.clone();
        let rooms = self.room_channel("");
        tokio::spawn(async move {
            let mut attempt = 0;
            while !stop.is_cancelled() {
                let mut conn = match client.get_multiplexed_async_connection_with_config(&config()).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "the Redis bus is unreachable; retrying");
                        // Nothing waits for stale envelopes: drop them (counted) rather than replay them late.
                        while rx.try_recv().is_ok() {
                            metrics::counter!("vitrine_bus_dropped_total").increment(1);
                        }
                        tokio::select! { _ = tokio::time::sleep(backoff(attempt)) => {}, _ = stop.cancelled() => return }
                        attempt += 1;
                        continue;
                    }
                };
                attempt = 0;
                *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(conn.clone());
                loop {
                    let first = tokio::select! { e = rx.recv() => e, _ = stop.cancelled() => return };
                    let Some(first) = first else { return };
                    let mut batch = vec![first];
                    while batch.len() < BATCH {
                        match rx.try_recv() {
                            Ok(e) => batch.push(e),
                            Err(_) => break,
                        }
                    }
                    let n = batch.len();
                    let mut pipe = redis::pipe();
                    for e in batch {
                        if let Ok(text) = serde_json::to_string(&e) {
                            pipe.publish(format!("{rooms}{}", e.room), text).ignore();
                        }
                    }
                    if let Err(e) = pipe.query_async::<()>(&mut conn).await {
                        // The connection went stale (Redis restarted): one fresh connection and one
                        // retry before the batch counts as lost.
                        tracing::warn!(error = %e, "publishing on the Redis bus failed; reconnecting");
                        *slot.lock().unwrap_or_else(|e| e.into_inner()) = None;
                        let retried = match client.get_multiplexed_async_connection_with_config(&config()).await {
                            Ok(mut fresh) => {
                                let ok = pipe.query_async::<()>(&mut fresh).await.is_ok();
                                conn = fresh;
                                ok
                            }
                            Err(_) => false,
                        };
                        if !retried {
                            metrics::counter!("vitrine_bus_dropped_total").increment(n as u64);
                            break;
                        }
                        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(conn.clone());
                    }
                    metrics::counter!("vitrine_bus_published_total").increment(n as u64);
                }
            }
        });
        // Subscriber: every room, re-subscribed after each reconnect, then a resync.
        let client = self.client.clone();
        let me = self.instance.clone();
        let subscribed = self.subscribed.clone();
        let rooms = self.room_channel("*");
        let invalidate = self.invalidate_channel();
        let acks = self.ack_channel(&self.instance);
        let revocations = self.revoke_channel();
        let ack_prefix = self.ack_channel("");
        let bus = self.heal();
        let waiters = self.waiters.clone();
        tokio::spawn(async move {
            let mut attempt = 0;
            while !shutdown.is_cancelled() {
                let pubsub = match tokio::time::timeout(TIMEOUT, client.get_async_pubsub()).await {
                    Ok(Ok(mut p)) => match async {
                        p.psubscribe(&rooms).await?;
                        p.subscribe(&invalidate).await?;
                        p.subscribe(&revocations).await?;
                        p.subscribe(&acks).await
                    }
                    .await
                    {
                        Ok(()) => Some(p),
                        Err(e) => {
                            tracing::warn!(error = %e, "subscribing to the Redis bus failed");
                            None
                        }
                    },
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "the Redis bus is unreachable; retrying");
                        None
                    }
                    Err(_) => None,
                };
                let Some(pubsub) = pubsub else {
                    tokio::select! { _ = tokio::time::sleep(backoff(attempt)) => {}, _ = shutdown.cancelled() => return }
                    attempt += 1;
                    continue;
                };
                attempt = 0;
                subscribed.store(true, Ordering::SeqCst);
                tracing::info!("subscribed to the Redis bus");
                sink.resync();
                let mut stream = pubsub.into_on_message();
                loop {
                    let msg = tokio::select! { m = stream.next() => m, _ = shutdown.cancelled() => return };
                    let Some(msg) = msg else { break };
                    let channel = msg.get_channel_name();
                    if channel == invalidate {
                        // "{origin} {nonce}": forget, then tell the writer it is done.
                        let text = String::from_utf8_lossy(msg.get_payload_bytes()).into_owned();
                        let (origin, nonce) = text.split_once(' ').unwrap_or((text.as_str(), ""));
                        if origin != me {
                            sink.forget_caches();
                        }
                        if !nonce.is_empty() {
                            bus.ack(format!("{ack_prefix}{origin}"), nonce.to_string());
                        }
                        continue;
                    }
                    if channel == revocations {
                        match serde_json::from_slice::<Revoked>(msg.get_payload_bytes()) {
                            Ok(r) if r.origin != me => sink.revoked(r.revocation),
                            Ok(_) => {}
                            Err(e) => tracing::debug!(error = %e, "ignoring a malformed revocation"),
                        }
                        continue;
                    }
                    if channel == acks {
                        if let Ok(nonce) = std::str::from_utf8(msg.get_payload_bytes()).unwrap_or("").parse::<u64>() {
                            waiters.acked(nonce);
                        }
                        continue;
                    }
                    match serde_json::from_slice::<Envelope>(msg.get_payload_bytes()) {
                        Ok(env) if env.origin != me => sink.deliver(env),
                        Ok(_) => {}
                        Err(e) => tracing::debug!(error = %e, "ignoring a malformed bus message"),
                    }
                }
                subscribed.store(false, Ordering::SeqCst);
                tracing::warn!("lost the Redis bus subscription; reconnecting");
                // Redis went away: the command connection is as dead as this one.
                bus.renew();
            }
        });
    }

    fn publish(&self, env: &Envelope) {
        if self.queue.try_send(env.clone()).is_err() {
            metrics::counter!("vitrine_bus_dropped_total").increment(1);
        }
    }

    fn put_presence(&self, room: &str, snapshot: PresenceSnapshot) -> BoxFuture<'static, ()> {
        let conn = self.conn();
        let key = self.presence_key(room);
        Box::pin(async move {
            let (Some(mut conn), Ok(value)) = (conn, serde_json::to_string(&snapshot)) else { return };
            let mut pipe = redis::pipe();
            pipe.hset(&key, &snapshot.instance, value).ignore().pexpire(&key, PRESENCE_TTL_MS).ignore();
            if let Err(e) = pipe.query_async::<()>(&mut conn).await {
                tracing::debug!(error = %e, "could not store presence on the Redis bus");
            }
        })
    }

    fn presence(&self, room: &str, now: i64) -> BoxFuture<'static, Vec<PresenceSnapshot>> {
        let conn = self.conn();
        let key = self.presence_key(room);
        let me = self.instance.clone();
        Box::pin(async move {
            let Some(mut conn) = conn else { return Vec::new() };
            let all: std::collections::HashMap<String, String> = match conn.hgetall(&key).await {
                Ok(m) => m,
                Err(_) => return Vec::new(),
            };
            all.into_iter()
                .filter(|(instance, _)| *instance != me)
                .filter_map(|(_, v)| serde_json::from_str::<PresenceSnapshot>(&v).ok())
                .filter(|s| s.until > now)
                .collect()
        })
    }

    fn connected(&self) -> bool {
        self.subscribed.load(Ordering::SeqCst) && self.conn().is_some()
    }

    fn shared(&self) -> bool {
        true
    }

    /// Publishes "{me} {nonce}" on the invalidation channel. Every subscribed instance (this one
    /// too) forgets its caches, then publishes the nonce back on this instance's ack channel.
    /// PUBLISH answers how many subscribers got the message: with `wait`, this resolves when that
    /// many acks came back, or after `ACK_WAIT` (then the cache life is the safety net).
    fn invalidate(&self, wait: bool) -> BoxFuture<'static, ()> {
        let conn = self.conn();
        let channel = self.invalidate_channel();
        let nonce = self.waiters.next();
        let payload = if wait { format!("{} {nonce}", self.instance) } else { self.instance.clone() };
        let waiters = self.waiters.clone();
        let healer = self.heal();
        Box::pin(async move {
            let Some(mut conn) = conn else { return };
            let done = wait.then(|| waiters.expect(nonce));
            let sent = tokio::time::timeout(LIMIT_TIMEOUT, conn.publish::<_, _, i64>(&channel, payload)).await;
            let receivers = match sent {
                Ok(Ok(n)) => n,
                _ => {
                    healer.start();
                    waiters.forget(nonce);
                    metrics::counter!("vitrine_bus_dropped_total").increment(1);
                    tracing::debug!("could not send a cache invalidation; other instances rely on the cache life");
                    return;
                }
            };
            let Some(done) = done else { return };
            waiters.received_by(nonce, receivers);
            if tokio::time::timeout(ACK_WAIT, done).await.is_err() {
                metrics::counter!("vitrine_cache_invalidation_unacknowledged_total").increment(1);
                tracing::debug!("an instance did not acknowledge a cache invalidation in time");
            }
            waiters.forget(nonce);
        })
    }

    fn revoke(&self, revocation: Revocation) {
        let conn = self.conn();
        let channel = self.revoke_channel();
        let payload = Revoked { origin: self.instance.clone(), revocation };
        let Some(mut conn) = conn else {
            metrics::counter!("vitrine_bus_dropped_total").increment(1);
            return;
        };
        let healer = self.heal();
        tokio::spawn(async move {
            let Ok(text) = serde_json::to_string(&payload) else { return };
            let sent = tokio::time::timeout(LIMIT_TIMEOUT, conn.publish::<_, _, i64>(&channel, text)).await;
            if !matches!(sent, Ok(Ok(_))) {
                healer.start();
                metrics::counter!("vitrine_bus_dropped_total").increment(1);
                tracing::warn!("could not tell the other instances of a revocation; their sockets close at reconnect");
            }
        });
    }

    fn spend(&self, key: &str, interval_ms: u64, burst: u32) -> BoxFuture<'static, Option<u64>> {
        self.run_script(&GCRA, vec![format!("{}limit:{key}", self.prefix)], vec![interval_ms, u64::from(burst)])
    }

    fn failures(&self, key: &str, op: FailureOp, max: u32, period_ms: u64) -> BoxFuture<'static, Option<u64>> {
        let op = match op {
            FailureOp::Check => 0,
            FailureOp::Fail => 1,
            FailureOp::Succeed => 2,
        };
        let keys = vec![format!("{}lock:{key}:failures", self.prefix), format!("{}lock:{key}:until", self.prefix)];
        self.run_script(&LOCKOUT, keys, vec![op, u64::from(max), period_ms])
    }
}

/// GCRA on one key, atomically, on Redis's clock: the key holds the theoretical arrival time of
/// the next request (ms). Returns 0 when allowed, otherwise the milliseconds to wait.
static GCRA: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local next_tat = tat + interval
local allowance = interval * burst
if next_tat - now > allowance then
  return next_tat - now - allowance
end
redis.call('SET', KEYS[1], next_tat, 'PX', next_tat - now)
return 0
",
    )
});

/// A lockout, atomically: KEYS[1] counts failures (expiring `period` after the first), KEYS[2]
/// exists while the key is locked out. ARGV: op (0 check, 1 failure, 2 success), max, period ms.
/// Returns the milliseconds the key stays locked out (0: it is not).
static LOCKOUT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
local op = tonumber(ARGV[1])
if op == 2 then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 0
end
local locked = redis.call('PTTL', KEYS[2])
if locked > 0 then return locked end
if op == 0 then return 0 end
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
if n >= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
end
return 0
",
    )
});
