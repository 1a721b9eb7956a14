//! `AppState` (everything a handler may use) and `App`: build from config, serve until shutdown.

use std::ops::Deref;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::{Auth, Secrets};
use crate::blob::BlobStore;
use crate::config::Config;
use crate::limits::Limits;
use crate::store::Store;

pub struct Inner {
    pub config: Config,
    pub store: Store,
    pub blobs: BlobStore,
    pub auth: Auth,
    pub secrets: Secrets,
    pub limits: Limits,
    pub metrics: PrometheusHandle,
    pub started: Instant,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Share-page views waiting to be written.
    pub views: crate::jobs::view_counts::ViewCounts,
    /// Analytics capture (bounded queue, batched writer).
    pub analytics: Arc<crate::analytics::Analytics>,
    /// Rooms: live delivery on this instance and, through the bus, across instances.
    pub rooms: Arc<crate::realtime::Rooms>,
    /// Every WebSocket of this instance: told to go away (1001) on shutdown, and waited for.
    pub sockets: crate::realtime::sockets::Sockets,
    /// Outgoing mail (off without `smtp_url`).
    pub mailer: crate::mail::Mailer,
    /// Last access e-mail per share (throttle).
    pub mailed: std::sync::Mutex<std::collections::HashMap<i64, i64>>,
    /// Virus scanning of uploads (None without `clamd_address`).
    pub scanner: Option<crate::scan::Scanner>,
    /// The app's notion of now (analytics days, retention); tests move it by hand.
    pub clock: Arc<dyn crate::domain::time::Clock>,
    /// The one gate of image decoding (bounded concurrency and memory), shared by every upload path.
    pub decoder: crate::media::Decoder,
    /// Single sign-on (OpenID Connect); `None` unless `oidc_issuer` and its client are configured.
    pub oidc: Option<crate::service::oidc::Oidc>,
    /// Running hashes of the resumable uploads this instance writes (local storage).
    pub digests: crate::service::resumable::Digests,
}

/// Shared state of one running app; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The process-wide Prometheus recorder (metrics macros write to one global recorder).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Suffix("duration_seconds".into()),
                    &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Suffix("bytes".into()),
                        &[1e3, 1e4, 1e5, 1e6, 1e7, 2.5e7, 1e8, 1e9],
                    )
                });
            let recorder = match builder {
                Ok(b) => b.build_recorder(),
                Err(_) => PrometheusBuilder::new().build_recorder(),
            };
            let handle = recorder.handle();
            // Another recorder may already be installed (tests); the handle still renders ours.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Series that name a tenant (company ids): a registry of their own, never the global one, so
/// `/metrics` shows them only to a scraper with `metrics_token` (issue 18 item 8). Write to it
/// with `tenant_metric(|| metrics::gauge!(…).set(…))`.
fn tenant_recorder() -> &'static metrics_exporter_prometheus::PrometheusRecorder {
    static RECORDER: OnceLock<metrics_exporter_prometheus::PrometheusRecorder> = OnceLock::new();
    RECORDER.get_or_init(|| PrometheusBuilder::new().build_recorder())
}

/// Runs `f` (a `metrics::` macro call naming a tenant) against the tenant registry.
pub fn tenant_metric<T>(f: impl FnOnce() -> T) -> T {
    metrics::with_local_recorder(tenant_recorder(), f)
}

/// The Prometheus text of the tenant registry.
pub fn render_tenant_metrics() -> String {
    tenant_recorder().handle().render()
}

impl AppState {
    /// Opens the database (migrating it), the blob store and the secrets.
    pub async fn build(config: Config) -> anyhow::Result<AppState> {
        AppState::build_with_clock(config, Arc::new(crate::domain::time::SystemClock)).await
    }

    /// Like `build`, with another clock (tests).
    pub async fn build_with_clock(
        config: Config,
        clock: Arc<dyn crate::domain::time::Clock>,
    ) -> anyhow::Result<AppState> {
        config.validate()?;
        crate::private_fs::create_dir(&config.data_dir)
            .map_err(|e| anyhow::anyhow!("cannot create data_dir {}: {e}", config.data_dir.display()))?;
        let secrets = Secrets::load(&config.data_dir, config.jwt_secret.as_deref(), config.hmac_secret.as_deref())?;
        let store = Store::connect(&config.effective_database_url(), config.database_max_connections).await?;
        store.migrate().await?;
        let blobs = BlobStore::from_config(&config, secrets.hmac.clone(), clock.clone())?;
        let auth = Auth::new(&secrets, config.token_ttl_secs, clock.clone())?;
        let trusted_proxies = config.trusted_proxy_nets();
        let mailer = crate::mail::Mailer::new(config.smtp_url.as_deref(), &config.smtp_from)?;
        let geo = crate::analytics::geo::Geo::open(config.geoip_db.as_deref())?;
        let analytics = Arc::new(crate::analytics::Analytics::new(
            store.clone(),
            geo,
            clock.clone(),
            config.analytics_enabled,
            config.analytics_queue_capacity,
            config.base_url().to_string(),
        ));
        let scanner = crate::scan::Scanner::from_config(
            config.clamd_address.as_deref(),
            std::time::Duration::from_secs(config.clamd_timeout_secs),
        )?;
        let instance = uuid::Uuid::new_v4().simple().to_string();
        let deployment = store.deployment_id().await?;
        let bus =
            crate::bus::from_config(config.bus_url.as_deref(), config.bus_tls_ca.as_deref(), &instance, &deployment)?;
        store.caches().set_peers(Arc::new(crate::bus::CachePeers(bus.clone())));
        let limits = Limits::new(&config, bus.clone());
        // Chat signs the file links of the events it reads back (they are stored without them).
        let render = Arc::new(crate::service::chat::files::FileLinks::new(
            store.clone(),
            blobs.clone(),
            Duration::from_secs(config.chat_url_ttl_secs),
        ));
        let rooms = crate::realtime::Rooms::new(
            store.clone(),
            bus,
            render,
            instance,
            config.realtime_recovery_window,
            clock.clone(),
        );
        let decoder = crate::media::Decoder::new(config.image_decode_concurrency, config.image_decode_max_bytes);
        // The provider is discovered at the first sign-in, not here: a provider that is down
        // must not keep the server from starting.
        let oidc = crate::service::oidc::Oidc::from_config(&config)?;
        Ok(AppState(Arc::new(Inner {
            config,
            store,
            blobs,
            auth,
            secrets,
            limits,
            metrics: metrics_handle(),
            started: Instant::now(),
            trusted_proxies,
            views: Default::default(),
            analytics,
            rooms,
            sockets: Default::default(),
            mailer,
            mailed: Default::default(),
            scanner,
            clock,
            decoder,
            oidc,
            digests: Default::default(),
        })))
    }
}

/// How long connections cut at the end of the grace period get to notice it before `run` goes on.
const CUT_WAIT: Duration = Duration::from_secs(2);

/// Serves `state` on `listener` until `shutdown` is cancelled, then shuts down gracefully
/// (SPEC §9): stops accepting connections, closes every WebSocket with 1001, lets requests in
/// flight finish for up to `shutdown_grace_secs` and cuts what is left, then stops the background
/// jobs (the analytics writer writes what is queued) and writes the last view counts.
pub async fn run(listener: TcpListener, state: AppState, shutdown: CancellationToken) -> anyhow::Result<()> {
    // Background work outlives the requests and sockets it serves: a download finishing in the
    // grace period still records its analytics, a socket leaving still publishes its presence.
    let background = CancellationToken::new();
    let mut jobs = crate::jobs::spawn_all(state.clone(), background.clone());
    jobs.extend(state.rooms.start(background.clone()));
    let app = crate::http::service(state.clone());
    let addr = listener.local_addr()?;
    tracing::info!(%addr, public_url = %state.config.public_url, "vitrine is listening");
    let cut = CancellationToken::new();
    // Room for many connections, and the caps below what that room allows (issue 18, item 1).
    let fd_limit = crate::http::conn::raise_fd_limit();
    let settings = crate::http::conn::Settings::from_config(&state.config, fd_limit);
    tracing::info!(
        max_connections = settings.max_connections,
        max_connections_per_ip = settings.max_connections_per_ip,
        fd_limit,
        "connection limits"
    );
    let stop = shutdown.clone();
    // The server stops accepting at the signal and ends once every HTTP connection is done
    // (upgraded ones are not HTTP any more: `state.sockets` follows those).
    let served = CancellationToken::new();
    let http = tokio::spawn({
        let (served, cut) = (served.clone(), cut.clone());
        async move {
            crate::http::conn::serve(listener, app, settings, stop, cut).await;
            served.cancel();
        }
    });
    tokio::select! {
        biased;
        () = shutdown.cancelled() => {}
        () = served.cancelled() => tracing::error!("the server stopped by itself; shutting down"),
    }
    shutdown.cancel();
    let grace = Duration::from_secs(state.config.shutdown_grace_secs);
    tracing::info!(
        grace_secs = grace.as_secs(),
        sockets = state.sockets.count(),
        "shutting down: no new connections, sockets told to reconnect elsewhere (1001), requests in flight may finish"
    );
    state.sockets.go_away();
    let everything_done = || async {
        served.cancelled().await;
        state.sockets.closed().await;
    };
    if tokio::time::timeout(grace, everything_done()).await.is_err() {
        tracing::warn!(
            grace_secs = grace.as_secs(),
            sockets = state.sockets.count(),
            "grace period over: cutting the requests and sockets still open"
        );
        cut.cancel();
        state.sockets.cut();
        if tokio::time::timeout(CUT_WAIT, everything_done()).await.is_err() {
            tracing::warn!("some connections did not end when cut; stopping anyway");
        }
    }
    if served.is_cancelled() {
        let _ = http.await;
    } else {
        http.abort();
    }
    background.cancel();
    for j in jobs {
        let _ = j.await;
    }
    if let Err(e) = crate::jobs::view_counts::run_once(&state).await {
        tracing::warn!(error = %e, "could not write the last view counts");
    }
    state.store.close().await;
    tracing::info!("vitrine stopped");
    Ok(())
}
