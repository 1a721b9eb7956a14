//! Analytics capture: every share view, preview, download and comment becomes an event on a
//! bounded queue; a writer task enriches events (visitor key, country, device, browser, OS) and
//! writes them in batches with their daily rollups. A request never waits for it and never fails
//! because of it; a full queue drops the event and counts the drop.

pub mod agent;
pub mod charts;
pub mod geo;
pub mod report;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::domain::analytics::{Event, Kind};
use crate::domain::time::{Clock, day_of};
use crate::store::Store;

/// A request as captured on the request path: cheap to build, nothing looked up yet. The IP lives
/// only in memory until the writer turns it into a visitor key and a country.
#[derive(Debug, Clone)]
pub struct Hit {
    pub kind: Kind,
    pub at_ms: i64,
    pub share_id: i64,
    pub asset_id: i64,
    pub ip: IpAddr,
    pub user_agent: String,
    pub referrer: Option<String>,
    pub time_on_page_ms: Option<i64>,
    pub load_ms: Option<i64>,
    /// The document viewer's report on one document (engagement hits only).
    pub reading: Option<Box<crate::domain::analytics::Reading>>,
}

const BATCH_MAX: usize = 5_000;
const BATCH_WAIT: Duration = Duration::from_millis(250);
const BATCH_STEP: Duration = Duration::from_millis(5);

/// What travels on the queue: hits, and flush requests that are answered once every hit queued
/// before them is written.
pub enum Msg {
    Hit(Box<Hit>),
    Flush(oneshot::Sender<()>),
}

/// The capture side, held in `AppState`.
pub struct Analytics {
    tx: mpsc::Sender<Msg>,
    rx: Mutex<Option<mpsc::Receiver<Msg>>>,
    enricher: Arc<Enricher>,
    pub clock: Arc<dyn Clock>,
    enabled: bool,
    /// `public_url` without its trailing slash (share URLs in webhook events).
    base_url: String,
}

/// Turns hits into events: keyed visitor hashes under the day's salt, geo, user agent.
pub struct Enricher {
    geo: geo::Geo,
    store: Store,
    salt: std::sync::Mutex<Option<(String, Vec<u8>)>>,
    /// Parsed user agents: traffic repeats a few thousand of them, and parsing is the costly step.
    agents: std::sync::Mutex<HashMap<String, agent::Agent>>,
}

const AGENT_CACHE_MAX: usize = 10_000;

/// Only the host of a referrer (never its path or query).
pub fn referrer_host(referrer: Option<&str>) -> String {
    referrer
        .and_then(|r| url::Url::parse(r).ok())
        .and_then(|u| u.host_str().map(|h| h.trim_start_matches("www.").to_ascii_lowercase()))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "direct".into())
}

impl Enricher {
    pub fn new(geo: geo::Geo, store: Store) -> Enricher {
        Enricher { geo, store, salt: std::sync::Mutex::new(None), agents: Default::default() }
    }

    /// The salt of `day`, shared by all instances through the database; cached per day.
    async fn salt_for(&self, day: &str) -> anyhow::Result<Vec<u8>> {
        if let Some((d, s)) = self.salt.lock().unwrap_or_else(|e| e.into_inner()).as_ref()
            && d == day
        {
            return Ok(s.clone());
        }
        let salt = self.store.daily_salt(day).await?;
        *self.salt.lock().unwrap_or_else(|e| e.into_inner()) = Some((day.to_string(), salt.clone()));
        Ok(salt)
    }

    fn agent(&self, ua: &str) -> agent::Agent {
        let mut cache = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(a) = cache.get(ua) {
            return a.clone();
        }
        let a = agent::parse(ua);
        if cache.len() >= AGENT_CACHE_MAX {
            cache.clear();
        }
        cache.insert(ua.to_string(), a.clone());
        a
    }

    pub async fn enrich(&self, hits: Vec<Hit>) -> anyhow::Result<Vec<Event>> {
        let mut out = Vec::with_capacity(hits.len());
        for h in hits {
            let day = day_of(h.at_ms);
            let salt = self.salt_for(&day).await?;
            let a = self.agent(&h.user_agent);
            out.push(Event {
                kind: h.kind,
                at_ms: h.at_ms,
                share_id: h.share_id,
                asset_id: h.asset_id,
                visitor: visitor_key(&salt, h.ip, &h.user_agent),
                country: self.geo.country(h.ip),
                device: a.device,
                browser: a.browser,
                os: a.os,
                referrer: referrer_host(h.referrer.as_deref()),
                is_bot: a.is_bot,
                time_on_page_ms: h.time_on_page_ms,
                load_ms: h.load_ms,
                reading: h.reading,
            });
        }
        Ok(out)
    }
}

/// HMAC-SHA256(salt, ip | user agent), truncated: the same visitor on the same day gets the
/// same key; the next day's salt gives another.
pub fn visitor_key(salt: &[u8], ip: IpAddr, user_agent: &str) -> String {
    let ip = ip.to_string();
    hex::encode(&crate::domain::digest::keyed_digest(salt, &[ip.as_bytes(), b"\0", user_agent.as_bytes()])[..16])
}

impl Analytics {
    pub fn new(
        store: Store,
        geo: geo::Geo,
        clock: Arc<dyn Clock>,
        enabled: bool,
        capacity: usize,
        base_url: String,
    ) -> Analytics {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let enricher = Arc::new(Enricher::new(geo, store));
        Analytics { tx, rx: Mutex::new(Some(rx)), enricher, clock, enabled, base_url }
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Country of an address (for live notifications; nothing is stored).
    pub fn country(&self, ip: IpAddr) -> String {
        self.enricher.geo.country(ip)
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Queues a hit; never waits. A full queue drops it (counted in `/metrics`).
    pub fn capture(&self, hit: Hit) {
        if !self.enabled {
            return;
        }
        match self.tx.try_send(Msg::Hit(Box::new(hit))) {
            Ok(()) => metrics::counter!("vitrine_analytics_events_queued_total").increment(1),
            Err(_) => metrics::counter!("vitrine_analytics_events_dropped_total").increment(1),
        }
    }

    /// Waits until every hit queued before this call is written (tests, reports that must be
    /// exact). Gives up after 10 seconds.
    pub async fn flush(&self) -> anyhow::Result<()> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Msg::Flush(tx)).await.map_err(|_| anyhow::anyhow!("the analytics writer is not running"))?;
        tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .map_err(|_| anyhow::anyhow!("the analytics writer did not answer"))?
            .map_err(|_| anyhow::anyhow!("the analytics writer stopped"))
    }

    async fn write(&self, hits: Vec<Hit>) -> anyhow::Result<usize> {
        if hits.is_empty() {
            return Ok(0);
        }
        let events = self.enricher.enrich(hits).await?;
        let n = events.len();
        let outbox = self.webhook_events(&events).await?;
        self.enricher.store.write_events_with(&events, &outbox, self.clock.now_ms()).await?;
        metrics::counter!("vitrine_analytics_events_written_total").increment(n as u64);
        Ok(n)
    }

    /// `share.viewed` and `share.downloaded` for the batch's page views and counted downloads by
    /// people (bots are left out, like the owner's own visits, which are never captured): queued
    /// with the batch, so an event reaches webhooks exactly when it is recorded. Costs nothing
    /// while no one who could hear them has a webhook.
    async fn webhook_events(&self, events: &[Event]) -> anyhow::Result<Vec<crate::domain::webhooks::Event>> {
        use crate::domain::webhooks::{Event as Hook, EventType};
        let store = &self.enricher.store;
        let owners = store.webhook_owners().await?;
        if !owners.any_all && owners.users.is_empty() {
            return Ok(vec![]);
        }
        let mut shares: HashMap<i64, Option<crate::domain::shares::Share>> = HashMap::new();
        let mut out = vec![];
        for e in events {
            let kind = match e.kind {
                Kind::View => EventType::ShareViewed,
                Kind::Download => EventType::ShareDownloaded,
                _ => continue,
            };
            if e.is_bot {
                continue;
            }
            if let std::collections::hash_map::Entry::Vacant(v) = shares.entry(e.share_id) {
                v.insert(store.share_by_id(e.share_id).await?);
            }
            let Some(Some(share)) = shares.get(&e.share_id) else { continue };
            if !owners.hears(share.owner_id) {
                continue;
            }
            out.push(Hook {
                owner_id: share.owner_id,
                kind,
                data: serde_json::json!({
                    "share": {
                        "id": share.id,
                        "uuid": share.uuid,
                        "share_url": format!("{}/share/{}/", self.base_url, share.uuid),
                        "title": share.title,
                        "asset_id": share.asset_id(),
                        "collection_id": share.collection_id(),
                    },
                    "asset_id": e.asset_id,
                    "at": crate::domain::time::rfc3339(e.at_ms),
                    "visitor": {
                        "country": e.country,
                        "device": e.device,
                        "browser": e.browser,
                        "os": e.os,
                        "referrer": e.referrer,
                    },
                }),
            });
        }
        Ok(out)
    }

    /// Writes one batch and answers the flush requests that came with it.
    async fn write_batch(&self, msgs: Vec<Msg>) {
        let mut hits = Vec::with_capacity(msgs.len());
        let mut waiters = vec![];
        for m in msgs {
            match m {
                Msg::Hit(h) => hits.push(*h),
                Msg::Flush(w) => waiters.push(w),
            }
        }
        let n = hits.len();
        if let Err(e) = self.write(hits).await {
            metrics::counter!("vitrine_analytics_events_dropped_total").increment(n as u64);
            tracing::warn!(error = %e, events = n, "analytics batch could not be written; dropped");
        }
        for w in waiters {
            let _ = w.send(());
        }
    }

    /// The writer loop (started once by the app): batches of up to 5,000 events or 250 ms,
    /// whichever comes first, or within 5 ms of a flush being asked for. A failed batch is logged and
    /// dropped (counted), so a database hiccup never backs up requests. On shutdown the queue
    /// is drained.
    pub async fn run_writer(self: Arc<Self>, shutdown: CancellationToken) {
        let Some(mut rx) = self.rx.lock().await.take() else { return };
        loop {
            let mut msgs = Vec::new();
            tokio::select! {
                _ = shutdown.cancelled() => {
                    rx.close();
                    while let Ok(m) = rx.try_recv() {
                        msgs.push(m);
                    }
                    self.write_batch(msgs).await;
                    return;
                }
                got = rx.recv_many(&mut msgs, BATCH_MAX) => {
                    if got == 0 {
                        return;
                    }
                    // Fill the batch by draining the queue every BATCH_STEP rather than
                    // waiting on it: under load a waiting receiver is woken for every few
                    // events, which costs the request path more than the writing itself.
                    let deadline = tokio::time::Instant::now() + BATCH_WAIT;
                    while msgs.len() < BATCH_MAX && !msgs.iter().any(|m| matches!(m, Msg::Flush(_))) {
                        let now = tokio::time::Instant::now();
                        if now >= deadline {
                            break;
                        }
                        tokio::time::sleep_until(deadline.min(now + BATCH_STEP)).await;
                        while msgs.len() < BATCH_MAX {
                            match rx.try_recv() {
                                Ok(m) => msgs.push(m),
                                Err(_) => break,
                            }
                        }
                    }
                }
            }
            self.write_batch(msgs).await;
        }
    }
}
