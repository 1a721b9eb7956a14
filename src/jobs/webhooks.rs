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

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
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
/// Free slots from which the worker claims more deliveries.
const CLAIM_AT: usize = CONCURRENCY / 2;
/// How often the outbox is looked at without being woken.
const POLL: Duration = Duration::from_secs(1);
/// A claim outlives the attempt's timeout by this much before another instance may take it.
const LEASE_MARGIN: Duration = Duration::from_secs(30);

/// Sends deliveries: one HTTP client (connection reuse) and the deliveries in flight here.
pub struct Deliverer {
    client: reqwest::Client,
    inflight: Mutex<HashSet<i64>>,
    slots: Arc<Semaphore>,
    recorder: Recorder,
}

/// Records finished attempts in batches (group commit): an attempt queues its outcome, then takes
/// the writer's turn; whoever has the turn writes everything queued so far in one transaction.
/// `record` returns once the outcome is written (by this call or by the one that had the turn).
#[derive(Default)]
struct Recorder {
    queue: Mutex<Vec<Finished>>,
    turn: tokio::sync::Mutex<()>,
}

impl Recorder {
    async fn record(&self, state: &AppState, done: Finished) -> anyhow::Result<()> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).push(done);
        let _turn = self.turn.lock().await;
        let batch = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()));
        if batch.is_empty() {
            return Ok(());
        }
        let kept = state.store.finish_deliveries(&batch).await?;
        for (f, kept) in batch.iter().zip(kept) {
            if !kept {
                tracing::debug!(delivery = f.id, "a webhook delivery's claim was lost before its attempt was recorded");
            }
        }
        Ok(())
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

/// Runs until `shutdown`; attempts still running then get their timeout to finish.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let deliverer = match Deliverer::new(&state) {
        Ok(d) => Arc::new(d),
        Err(e) => {
            tracing::error!(error = %e, "the webhook delivery worker cannot start");
            return;
        }
    };
    let mut running = JoinSet::new();
    loop {
        // Claims come in batches: when half the slots are free (or nothing runs), not after
        // every finished attempt.
        if (running.is_empty() || deliverer.slots.available_permits() >= CLAIM_AT)
            && let Err(e) = claim_and_start(&state, &deliverer, &mut running).await
        {
            tracing::warn!(error = %e, "claiming webhook deliveries failed; retrying");
        }
        while running.try_join_next().is_some() {}
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = state.store.outbox().notified() => {}
            _ = tokio::time::sleep(POLL) => {}
            Some(_) = running.join_next(), if !running.is_empty() => {}
        }
    }
    let grace = Duration::from_secs(state.config.webhook_timeout_secs) + Duration::from_secs(1);
    let _ = tokio::time::timeout(grace, running.join_all()).await;
}

/// Claims what is due and delivers it, waiting for every attempt (tests). Returns how many
/// deliveries were attempted.
pub async fn run_once(state: &AppState) -> anyhow::Result<usize> {
    let deliverer = Arc::new(Deliverer::new(state)?);
    let mut running = JoinSet::new();
    let n = claim_and_start(state, &deliverer, &mut running).await?;
    running.join_all().await;
    Ok(n)
}

/// Claims as many due deliveries as there are free slots and starts them.
async fn claim_and_start(
    state: &AppState,
    deliverer: &Arc<Deliverer>,
    running: &mut JoinSet<()>,
) -> anyhow::Result<usize> {
    let free = deliverer.slots.available_permits();
    if free == 0 {
        return Ok(0);
    }
    let now = state.clock.now_ms();
    let lease = Duration::from_secs(state.config.webhook_timeout_secs) + LEASE_MARGIN;
    let token = format!("{}:{}", state.rooms.instance, uuid::Uuid::new_v4().simple());
    let claimed = state.store.claim_deliveries(&token, now, now + lease.as_millis() as i64, free as i64).await?;
    let mut started = 0;
    for c in claimed {
        // Already being sent here (a clock moved past its lease): that attempt records it.
        if !deliverer.inflight().insert(c.delivery.id) {
            continue;
        }
        let Ok(permit) = deliverer.slots.clone().acquire_owned().await else { break };
        let (state, deliverer, token) = (state.clone(), deliverer.clone(), token.clone());
        started += 1;
        running.spawn(async move {
            let id = c.delivery.id;
            if let Err(e) = attempt(&state, &deliverer, token, c).await {
                tracing::warn!(delivery = id, error = %e, "recording a webhook delivery failed");
            }
            deliverer.inflight().remove(&id);
            drop(permit);
        });
    }
    Ok(started)
}

/// One attempt of one delivery, recorded.
async fn attempt(state: &AppState, deliverer: &Deliverer, token: String, c: Claimed) -> anyhow::Result<()> {
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
    deliverer.recorder.record(state, Finished { id: c.delivery.id, token, attempt: a, at: now }).await
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
