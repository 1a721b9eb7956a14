//! The Redis bus: every instance publishes its rooms' envelopes on `vitrine:room:{room}` and
//! pattern-subscribes to all of them; presence snapshots live in the hash
//! `vitrine:presence:{room}` (one field per instance, expiring). Connections are re-established
//! with backoff; while Redis is down each instance keeps serving its own sockets, and the rooms
//! catch up from the store when the subscription comes back. `rediss://` URLs connect over TLS
//! (rustls on aws-lc-rs) and check the server's certificate against the public CAs built in, or
//! against `bus_tls_ca` alone when it is set.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
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

use super::{Envelope, EventBus, PresenceSnapshot, Sink};

const CHANNEL_PREFIX: &str = "vitrine:room:";
const PRESENCE_PREFIX: &str = "vitrine:presence:";
/// Envelopes waiting for the publisher before new ones are dropped (and counted).
const QUEUE: usize = 65_536;
/// Envelopes sent in one pipeline.
const BATCH: usize = 512;
const TIMEOUT: Duration = Duration::from_secs(2);
const PRESENCE_TTL_MS: i64 = 60_000;

pub struct RedisBus {
    client: redis::Client,
    instance: String,
    queue: mpsc::Sender<Envelope>,
    pending: Mutex<Option<mpsc::Receiver<Envelope>>>,
    conn: Arc<Mutex<Option<MultiplexedConnection>>>,
    subscribed: Arc<AtomicBool>,
}

impl RedisBus {
    /// `tls_ca`: a PEM file of the CA that signed the server's certificate (`bus_tls_ca`); only that
    /// CA is then trusted. The URL and the CA file are checked here, so a mistake in either stops the
    /// start instead of leaving the bus retrying in the background.
    pub fn new(url: &str, tls_ca: Option<&Path>, instance: &str) -> anyhow::Result<RedisBus> {
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
            queue,
            pending: Mutex::new(Some(rx)),
            conn: Arc::new(Mutex::new(None)),
            subscribed: Arc::new(AtomicBool::new(false)),
        })
    }

    fn conn(&self) -> Option<MultiplexedConnection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner()).clone()
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
                            pipe.publish(format!("{CHANNEL_PREFIX}{}", e.room), text).ignore();
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
        tokio::spawn(async move {
            let mut attempt = 0;
            while !shutdown.is_cancelled() {
                let pubsub = match tokio::time::timeout(TIMEOUT, client.get_async_pubsub()).await {
                    Ok(Ok(mut p)) => match p.psubscribe(format!("{CHANNEL_PREFIX}*")).await {
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
                    match serde_json::from_slice::<Envelope>(msg.get_payload_bytes()) {
                        Ok(env) if env.origin != me => sink.deliver(env),
                        Ok(_) => {}
                        Err(e) => tracing::debug!(error = %e, "ignoring a malformed bus message"),
                    }
                }
                subscribed.store(false, Ordering::SeqCst);
                tracing::warn!("lost the Redis bus subscription; reconnecting");
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
        let key = format!("{PRESENCE_PREFIX}{room}");
        Box::pin(async move {
            let (Some(mut conn), Ok(value)) = (conn, serde_json::to_string(&snapshot)) else { return };
            let mut pipe = redis::pipe();
            pipe.hset(&key, &snapshot.instance, value).ignore().pexpire(&key, PRESENCE_TTL_MS).ignore();
            if let Err(e) = pipe.query_async::<()>(&mut conn).await {
                tracing::debug!(error = %e, "could not store presence on the Redis bus");
            }
        })
    }

    fn presence(&self, room: &str) -> BoxFuture<'static, Vec<PresenceSnapshot>> {
        let conn = self.conn();
        let key = format!("{PRESENCE_PREFIX}{room}");
        let me = self.instance.clone();
        Box::pin(async move {
            let Some(mut conn) = conn else { return Vec::new() };
            let all: std::collections::HashMap<String, String> = match conn.hgetall(&key).await {
                Ok(m) => m,
                Err(_) => return Vec::new(),
            };
            let now = crate::domain::time::now_ms();
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

    fn spend(&self, key: &str, interval_ms: u64, burst: u32) -> BoxFuture<'static, Option<u64>> {
        let conn = self.conn();
        let key = format!("{LIMIT_PREFIX}{key}");
        Box::pin(async move {
            let mut conn = conn?;
            let script = redis::Script::new(GCRA);
            match script.key(&key).arg(interval_ms).arg(burst).invoke_async::<u64>(&mut conn).await {
                Ok(wait) => Some(wait),
                Err(e) => {
                    tracing::warn!(error = %e, "shared rate limit unavailable; counting on this instance");
                    None
                }
            }
        })
    }
}

const LIMIT_PREFIX: &str = "vitrine:limit:";

/// GCRA on one key, atomically, on Redis's clock: the key holds the theoretical arrival time of
/// the next request (ms). Returns 0 when allowed, otherwise the milliseconds to wait.
const GCRA: &str = r"
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
";
