//! The webhook delivery worker (SPEC §13). Every instance runs it: it claims due deliveries from
//! the outbox for a lease (see `store::webhooks`), so each event reaches each webhook once however
//! many instances run, and a crashed instance's claims run out and are taken over. It is woken as
//! soon as this instance queues deliveries and polls every second otherwise (another instance's
//! events, retries coming due).
//!
//! Each attempt is an HTTP POST signed as Standard Webhooks define. The connection goes only to
//! addresses vetted at that moment (`VettingResolver`: DNS cannot swap a public address for an
//! internal one between the check and the connection), no proxy, no redirects (a 3xx is a
//! failure), `webhook_timeout_secs` for the whole exchange, at most 1 KiB of the answer kept.
//! A 2xx is a delivery; anything else is retried after `webhook_retry_delays_secs`, then `failed`.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::app::AppState;
use crate::domain::webhooks::{
    DeliveryStatus, MAX_RESPONSE_BODY, forbidden_address, host_allowed, host_key, retry_delay_ms, secret_key, signature,
};
use crate::service::webhooks::{filter_addresses, resolve};
use crate::store::webhooks::{Attempt, Claimed, Finished};

/// Deliveries attempted at once by one instance.
const CONCURRENCY: usize = 16;
/// Deliveries claimed at most by one claim: they wait here for a free slot. A claim costs about the
/// same for one row as for sixty (a write transaction), so the worker claims ahead.
const CLAIM_MAX: usize = 4 * CONCURRENCY;
/// How often the outbox is looked at without being woken.
const POLL: Duration = Duration::from_secs(1);
/// A claim outlives the time its deliveries may take before another instance may take them: each
/// may wait behind `CLAIM_MAX / CONCURRENCY` rounds of attempts, then take its own timeout; plus
/// this margin.
const LEASE_MARGIN: Duration = Duration::from_secs(30);
/// Finished attempts wait this long at most to be recorded together.
const RECORD_DELAY: Duration = Duration::from_millis(5);
/// Recorded at once at most (one statement).
const RECORD_MAX: usize = 64;

/// How long a claim of up to `CLAIM_MAX` deliveries lasts with attempts of at most `timeout`.
pub fn lease(timeout: Duration) -> Duration {
    timeout * (CLAIM_MAX / CONCURRENCY + 1) as u32 + LEASE_MARGIN
}

/// Sends deliveries: one HTTP client (connection reuse), the deliveries claimed and not yet
/// recorded here, the attempt slots and the recorder.
pub struct Deliverer {
    client: reqwest::Client,
    inflight: Mutex<HashSet<i64>>,
    slots: Arc<Semaphore>,
    recorder: Recorder,
}

/// Records finished attempts in batches: an attempt queues its outcome and frees its slot at once;
/// the recorder writes what is queued in one statement, `RECORD_DELAY` after the first arrived
/// (or as soon as `RECORD_MAX` are waiting). A delivery stays claimed (and in `inflight`) until its
/// attempt is written; if this instance dies first, its lease runs out and it is sent again (at
/// least once, as with a crash between the answer and any record).
#[derive(Default)]
struct Recorder {
    queue: Mutex<Vec<Finished>>,
    queued: Notify,
}

impl Recorder {
    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<Finished>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, done: Finished) {
        self.queue().push(done);
        self.queued.notify_one();
    }

    /// Writes everything queued (in statements of at most `RECORD_MAX`).
    async fn flush(&self, state: &AppState, deliverer: &Deliverer) {
        loop {
            let batch: Vec<Finished> = {
                let mut q = self.queue();
                let n = q.len().min(RECORD_MAX);
                q.drain(..n).collect()
            };
            if batch.is_empty() {
                return;
            }
            match state.store.finish_deliveries(&batch).await {
                Ok(kept) => {
                    for (f, kept) in batch.iter().zip(kept) {
                        if !kept {
                            tracing::debug!(
                                delivery = f.id,
                                "a webhook delivery's claim was lost before its attempt was recorded"
                            );
                        }
                    }
                }
                Err(e) => tracing::warn!(
                    error = %e,
                    deliveries = batch.len(),
                    "recording webhook attempts failed; they will be sent again when their claims run out"
                ),
            }
            let mut inflight = deliverer.inflight();
            for f in &batch {
                inflight.remove(&f.id);
            }
        }
    }

    /// Records until `stop`, then what is left.
    async fn run(&self, state: &AppState, deliverer: &Deliverer, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = self.queued.notified() => {}
            }
            if self.queue().len() < RECORD_MAX {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = tokio::time::sleep(RECORD_DELAY) => {}
                }
            }
            self.flush(state, deliverer).await;
        }
        self.flush(state, deliverer).await;
    }
}

/// Resolves host names and keeps only the addresses a webhook may reach (all of them for a host
/// in `webhook_allowed_hosts`); the client connects to nothing else.
struct VettingResolver {
    allowed: Arc<Vec<String>>,
}

impl reqwest::dns::Resolve for VettingResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allowed = self.allowed.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let key = host.trim_end_matches('.').to_ascii_lowercase();
            let vetted = match resolve(&host, 0).await {
                Ok(addrs) if host_allowed(&key, &allowed) => Ok(addrs),
                Ok(addrs) => filter_addresses(addrs, false),
                Err(e) => Err(e),
            };
            match vetted {
                Ok(addrs) => Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs),
                Err(why) => Err(why.into()),
            }
        })
    }
}

impl Deliverer {
    pub fn new(state: &AppState) -> anyhow::Result<Deliverer> {
        let allowed = Arc::new(state.config.webhook_allowed_hosts.clone());
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(state.config.webhook_timeout_secs))
            .connect_timeout(Duration::from_secs(state.config.webhook_timeout_secs))
            .user_agent(concat!("Vitrine-Webhooks/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(VettingResolver { allowed }))
            .build()?;
        Ok(Deliverer {
            client,
            inflight: Mutex::new(HashSet::new()),
            slots: Arc::new(Semaphore::new(CONCURRENCY)),
            recorder: Recorder::default(),
        })
    }

    fn inflight(&self) -> std::sync::MutexGuard<'_, HashSet<i64>> {
        self.inflight.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Deliveries claimed by this instance and not started yet, with the token of their claim.
type Ready = VecDeque<(String, Claimed)>;

/// Runs until `shutdown`; attempts still running then get their timeout to finish, their outcomes
/// are recorded, and the claims not started are given back.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let deliverer = match Deliverer::new(&state) {
        Ok(d) => Arc::new(d),
        Err(e) => {
            tracing::error!(error = %e, "the webhook delivery worker cannot start");
            return;
        }
    };
    let stop_recording = CancellationToken::new();
    let recorder = {
        let (state, deliverer, stop) = (state.clone(), deliverer.clone(), stop_recording.clone());
        tokio::spawn(async move { deliverer.recorder.run(&state, &deliverer, stop).await })
    };
    let mut running = JoinSet::new();
    let mut ready = Ready::new();
    // Whether the outbox may hold more than the last claim took: claims again without waiting.
    let mut more = true;
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Claims ahead, once fewer are waiting than there are slots; after a claim that took
        // less than it asked for, only when woken or on the next poll.
        if more && ready.len() < CONCURRENCY {
            match claim(&state, &deliverer, CLAIM_MAX - ready.len()).await {
                Ok((token, claimed, full)) => {
                    more = full;
                    ready.extend(claimed.into_iter().map(|c| (token.clone(), c)));
                }
                Err(e) => {
                    more = false;
                    tracing::warn!(error = %e, "claiming webhook deliveries failed; retrying");
                }
            }
        }
        start_ready(&state, &deliverer, &mut ready, &mut running);
        while running.try_join_next().is_some() {}
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = state.store.outbox().notified() => more = true,
            _ = poll.tick() => more = true,
            Some(_) = running.join_next(), if !running.is_empty() => {}
        }
    }
    let grace = Duration::from_secs(state.config.webhook_timeout_secs) + Duration::from_secs(1);
    let _ = tokio::time::timeout(grace, running.join_all()).await;
    stop_recording.cancel();
    let _ = recorder.await;
    release(&state, &deliverer, ready).await;
}

/// Claims what is due and delivers it, waiting for every attempt and its record (tests). Returns
/// how many deliveries were attempted.
pub async fn run_once(state: &AppState) -> anyhow::Result<usize> {
    let deliverer = Arc::new(Deliverer::new(state)?);
    let mut running = JoinSet::new();
    let (token, claimed, _) = claim(state, &deliverer, CONCURRENCY).await?;
    let n = claimed.len();
    let mut ready: Ready = claimed.into_iter().map(|c| (token.clone(), c)).collect();
    start_ready(state, &deliverer, &mut ready, &mut running);
    running.join_all().await;
    deliverer.recorder.flush(state, &deliverer).await;
    Ok(n)
}

/// Claims up to `limit` due deliveries for this instance, except those it holds already (a clock
/// moved past their lease: the attempt under way records them). Returns the claim's token, the
/// deliveries, and whether the claim took all it asked for.
async fn claim(state: &AppState, deliverer: &Deliverer, limit: usize) -> anyhow::Result<(String, Vec<Claimed>, bool)> {
    let now = state.clock.now_ms();
    let until = now + lease(Duration::from_secs(state.config.webhook_timeout_secs)).as_millis() as i64;
    let token = format!("{}:{}", state.rooms.instance, uuid::Uuid::new_v4().simple());
    let claimed = state.store.claim_deliveries(&token, now, until, limit as i64).await?;
    let full = claimed.len() >= limit;
    let mut inflight = deliverer.inflight();
    let claimed = claimed.into_iter().filter(|c| inflight.insert(c.delivery.id)).collect();
    Ok((token, claimed, full))
}

/// Starts waiting deliveries while slots are free.
fn start_ready(state: &AppState, deliverer: &Arc<Deliverer>, ready: &mut Ready, running: &mut JoinSet<()>) {
    while !ready.is_empty() {
        let Ok(permit) = deliverer.slots.clone().try_acquire_owned() else { return };
        let Some((token, c)) = ready.pop_front() else { return };
        let (state, deliverer) = (state.clone(), deliverer.clone());
        running.spawn(async move {
            attempt(&state, &deliverer, token, c).await;
            drop(permit);
        });
    }
}

/// Gives back the claims of deliveries never started (shutdown), so that another instance (or
/// this one, restarted) sends them without waiting for the lease to run out.
async fn release(state: &AppState, deliverer: &Deliverer, ready: Ready) {
    if ready.is_empty() {
        return;
    }
    let held: Vec<(i64, String)> = ready.iter().map(|(token, c)| (c.delivery.id, token.clone())).collect();
    if let Err(e) = state.store.release_deliveries(&held).await {
        tracing::warn!(error = %e, deliveries = held.len(), "giving back webhook claims failed; they run out by themselves");
    }
    let mut inflight = deliverer.inflight();
    for (id, _) in &held {
        inflight.remove(id);
    }
}

/// One attempt of one delivery, queued to be recorded.
async fn attempt(state: &AppState, deliverer: &Deliverer, token: String, c: Claimed) {
    let sent = send(state, deliverer, &c).await;
    let now = state.clock.now_ms();
    let attempts = c.delivery.attempts + 1;
    let (ok, response_status, response_body, error) = match sent {
        Ok((status, body)) => ((200..300).contains(&status), Some(i64::from(status)), Some(body), None),
        Err(e) => (false, None, None, Some(e)),
    };
    let a = if ok {
        Attempt { status: DeliveryStatus::Delivered, next_attempt_at: now, response_status, response_body, error }
    } else {
        match retry_delay_ms(attempts, &state.config.webhook_retry_delays_secs) {
            Some(delay) => Attempt {
                status: DeliveryStatus::Pending,
                next_attempt_at: now + delay,
                response_status,
                response_body,
                error,
            },
            None => {
                Attempt { status: DeliveryStatus::Failed, next_attempt_at: now, response_status, response_body, error }
            }
        }
    };
    metrics::counter!("vitrine_webhook_attempts_total", "outcome" => a.status.as_str()).increment(1);
    tracing::debug!(delivery = c.delivery.id, attempts, status = a.status.as_str(), "webhook delivery attempted");
    deliverer.recorder.push(Finished { id: c.delivery.id, token, attempt: a, at: now });
}

/// POSTs the delivery: the receiver's status and the start of its answer, or why nothing came.
async fn send(state: &AppState, deliverer: &Deliverer, c: &Claimed) -> Result<(u16, String), String> {
    let url = url::Url::parse(&c.url).map_err(|_| "the webhook URL is not valid".to_string())?;
    let key = secret_key(&c.secret).ok_or_else(|| "the webhook secret is not valid".to_string())?;
    // IP literals never reach the resolver: checked here.
    if let Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) = url.host()
        && !host_allowed(&host_key(&url), &state.config.webhook_allowed_hosts)
    {
        let ip = match url.host() {
            Some(url::Host::Ipv4(a)) => std::net::IpAddr::V4(a),
            Some(url::Host::Ipv6(a)) => std::net::IpAddr::V6(a),
            _ => return Err("no host".into()),
        };
        if let Some(why) = forbidden_address(ip) {
            return Err(format!("refused: {ip} is a {why} address"));
        }
    }
    let timestamp = state.clock.now_ms().div_euclid(1000);
    let body = c.delivery.payload.clone().into_bytes();
    let sig = signature(&key, &c.delivery.event_id, timestamp, &body);
    let response = deliverer
        .client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &c.delivery.event_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", sig)
        .body(body)
        .send()
        .await
        .map_err(describe)?;
    let status = response.status().as_u16();
    Ok((status, read_start(response).await))
}

/// At most `MAX_RESPONSE_BODY` bytes of the answer, as text.
async fn read_start(mut response: reqwest::Response) -> String {
    let mut kept = Vec::new();
    while kept.len() < MAX_RESPONSE_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => kept.extend_from_slice(&chunk[..chunk.len().min(MAX_RESPONSE_BODY - kept.len())]),
            _ => break,
        }
    }
    let mut text = String::from_utf8_lossy(&kept).into_owned();
    while text.len() > MAX_RESPONSE_BODY {
        text.pop();
    }
    text
}

fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "no answer in time".into()
    } else if e.is_connect() {
        let mut why = String::from("could not connect");
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            why = format!("could not connect: {s}");
            source = s.source();
        }
        why
    } else {
        format!("the request failed: {e}")
    }
}
