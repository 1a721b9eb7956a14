//! The connections `app::run` serves: its own accept loop on hyper (axum's `serve` has no
//! timeouts and no connection caps), with the rules that keep slow or idle clients from holding
//! the server (issue 18, item 1):
//!
//! - **Caps**: at most `max_connections` live connections (WebSockets included), at most
//!   `max_connections_per_ip` from one client address (a trusted proxy's connections count only
//!   against the global cap). Over a cap the connection gets a `503` JSON and is closed at once;
//!   the others are served on.
//! - **Header timeout**: a request's line and headers must arrive within `header_timeout_secs` of
//!   its first byte (of the accept for a connection's first request).
//! - **Idle timeout**: a keep-alive connection with no request under way is closed after
//!   `idle_timeout_secs`.
//! - **Body rule**: while a handler waits for the request body, no wait may last
//!   `body_timeout_secs`, and each `body_timeout_secs` of waiting must bring at least
//!   `body_min_rate_bytes` per second: a slow upload that keeps moving finishes, a trickle or a
//!   body that never ends gets a `408` and the connection is closed.
//! - An upgraded connection (WebSocket) has none of these: the realtime layer pings its sockets.
//! - Accept errors (out of file descriptors…) back off and retry; the server never stops on them.
//! - Shutdown: accepting stops at the signal, connections finish their request in flight, and
//!   every connection fails its next read or write once `cut` is cancelled (end of the grace).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::task::AtomicWaker;
use http::StatusCode;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::config::Config;
use crate::error::{AppError, ErrorCode};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The connection rules in force (from the configuration and the file-descriptor limit).
#[derive(Debug, Clone)]
pub struct Settings {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    /// Bytes per second of waiting; 0: only the stall rule.
    pub body_min_rate: u64,
    pub max_connections: usize,
    /// 0: no per-address cap.
    pub max_connections_per_ip: usize,
    /// Peers counted only against the global cap (their clients are behind them).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Settings {
    /// The rules of `config`; the global cap is lowered to what `fd_limit` leaves room for.
    pub fn from_config(config: &Config, fd_limit: Option<u64>) -> Settings {
        let configured = usize::try_from(config.max_connections).unwrap_or(usize::MAX);
        let max_connections = match fd_limit.map(connection_budget) {
            Some(budget) if budget < configured => {
                tracing::warn!(
                    max_connections = configured,
                    fd_limit,
                    lowered_to = budget,
                    "max_connections is above what the file-descriptor limit leaves room for; lowered"
                );
                budget
            }
            _ => configured,
        };
        Settings {
            header_timeout: Duration::from_secs(config.header_timeout_secs),
            idle_timeout: Duration::from_secs(config.idle_timeout_secs),
            body_timeout: Duration::from_secs(config.body_timeout_secs),
            body_min_rate: config.body_min_rate_bytes,
            max_connections,
            max_connections_per_ip: usize::try_from(config.max_connections_per_ip).unwrap_or(usize::MAX),
            trusted_proxies: config.trusted_proxy_nets(),
        }
    }
}

/// Connections that fit under a file-descriptor limit, keeping a quarter (at least 64) for the
/// database, blobs, Redis, clamd and the listener itself.
pub fn connection_budget(fd_limit: u64) -> usize {
    let reserve = (fd_limit / 4).max(64);
    usize::try_from(fd_limit.saturating_sub(reserve).max(1)).unwrap_or(usize::MAX)
}

/// Raises the soft limit of open files to the hard limit (once per process) and returns the
/// soft limit in force; None where it cannot be read.
pub fn raise_fd_limit() -> Option<u64> {
    static LIMIT: OnceLock<Option<u64>> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the open-files limit (RLIMIT_NOFILE)");
                return None;
            }
        };
        if soft >= hard {
            tracing::info!(open_files_limit = soft, "open-files limit");
            return Some(soft);
        }
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => {
                tracing::info!(from = soft, to = hard, "raised the open-files limit to its hard limit");
                Some(hard)
            }
            Err(e) => {
                tracing::warn!(error = %e, soft, hard, "could not raise the open-files limit; keeping the soft limit");
                Some(soft)
            }
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Caps
// ---------------------------------------------------------------------------------------------

/// Live connections, in all and per client address.
struct Caps {
    max: usize,
    max_per_ip: usize,
    trusted: Vec<ipnet::IpNet>,
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// Why a connection was refused (a bounded metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Global,
    PerIp,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::Global => "max_connections",
            Refusal::PerIp => "max_connections_per_ip",
        }
    }
}

impl Caps {
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        if self.total.fetch_add(1, Ordering::AcqRel) >= self.max {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::Global);
        }
        let counted = self.max_per_ip > 0 && !self.trusted.iter().any(|n| n.contains(&ip));
        if counted {
            let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
            let n = per_ip.entry(ip).or_insert(0);
            if *n >= self.max_per_ip {
                drop(per_ip);
                self.total.fetch_sub(1, Ordering::AcqRel);
                return Err(Refusal::PerIp);
            }
            *n += 1;
        }
        metrics::gauge!("vitrine_connections").increment(1.0);
        Ok(Slot { caps: self.clone(), ip: counted.then_some(ip) })
    }
}

/// One admitted connection; gives its place back when dropped.
struct Slot {
    caps: Arc<Caps>,
    ip: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            let mut per_ip = self.caps.per_ip.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = per_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    per_ip.remove(&ip);
                }
            }
        }
        self.caps.total.fetch_sub(1, Ordering::AcqRel);
        metrics::gauge!("vitrine_connections").decrement(1.0);
    }
}

/// The answer of a refused connection: written if the socket takes it at once, never waited for.
fn refusal_response() -> Vec<u8> {
    let body = serde_json::json!({
        "error": "the server has too many connections; try again later",
        "code": ErrorCode::TooManyConnections,
    })
    .to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 5\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

// ---------------------------------------------------------------------------------------------
// Serving
// ---------------------------------------------------------------------------------------------

/// HTTP connections still being served (upgraded ones are not HTTP any more).
#[derive(Default)]
struct Live {
    count: AtomicUsize,
    zero: Notify,
}

struct LiveGuard(Arc<Live>);

impl Live {
    fn enter(self: &Arc<Self>) -> LiveGuard {
        self.count.fetch_add(1, Ordering::AcqRel);
        LiveGuard(self.clone())
    }

    async fn all_done(&self) {
        loop {
            let notified = self.zero.notified();
            if self.count.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.zero.notify_waiters();
        }
    }
}

/// Whether an accept error concerns only the connection being accepted (retry at once).
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// Serves `app` on `tcp` until `stop` is cancelled; then stops accepting (the listener is
/// closed: new connections are refused), lets every HTTP connection finish its request in flight
/// and returns when they are all done. Connections fail their next read or write once `cut` is
/// cancelled.
pub async fn serve<S>(tcp: TcpListener, app: S, settings: Settings, stop: CancellationToken, cut: CancellationToken)
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let caps = Arc::new(Caps {
        max: settings.max_connections,
        max_per_ip: settings.max_connections_per_ip,
        trusted: settings.trusted_proxies.clone(),
        total: AtomicUsize::new(0),
        per_ip: Mutex::new(HashMap::new()),
    });
    let rules = Rules {
        header: settings.header_timeout,
        idle: settings.idle_timeout,
        body: BodyRule { timeout: settings.body_timeout, min_rate: settings.body_min_rate },
    };
    let live = Arc::new(Live::default());
    let mut http = hyper::server::conn::http1::Builder::new();
    // Header and idle timeouts are the connection's (`Conn`), which knows the idle time apart.
    http.header_read_timeout(None::<Duration>);
    let refusal = refusal_response();
    let mut backoff = Duration::ZERO;
    loop {
        let accepted = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            r = tcp.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(a) => {
                backoff = Duration::ZERO;
                a
            }
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of file descriptors (EMFILE/ENFILE) or memory: wait for some to be freed.
                backoff = (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "accept failed; retrying");
                metrics::counter!("vitrine_accept_errors_total").increment(1);
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(backoff) => continue,
                }
            }
        };
        let slot = match caps.admit(peer.ip()) {
            Ok(s) => s,
            Err(why) => {
                metrics::counter!("vitrine_connections_refused_total", "reason" => why.label()).increment(1);
                tracing::debug!(%peer, reason = why.label(), "connection refused");
                // Whatever fits in the socket buffer now; the connection is closed either way.
                let _ = stream.try_write(&refusal);
                drop(stream);
                continue;
            }
        };
        // Small frames (WebSocket broadcasts, short JSON) go out at once instead of waiting for
        // Nagle's algorithm and the peer's delayed ACK (up to 40 ms).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let track = Arc::new(Track::default());
        let conn = Conn::new(stream, cut.child_token(), track.clone(), rules.clone(), slot);
        let service = PerConn { app: app.clone(), peer, track, body: rules.body };
        let connection = http.serve_connection(TokioIo::new(conn), service).with_upgrades();
        let (stopping, guard) = (stop.clone(), live.enter());
        tokio::spawn(async move {
            let _guard = guard;
            tokio::pin!(connection);
            let ended = tokio::select! {
                r = connection.as_mut() => r,
                () = stopping.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(tcp);
    live.all_done().await;
}

/// What the request side tells the connection: whether a request is under way, when the last
/// one ended, whether the connection was upgraded.
#[derive(Default)]
struct Track {
    in_flight: AtomicUsize,
    /// Bumped each time the connection becomes idle (its last response is written).
    idle_epoch: AtomicU64,
    upgraded: AtomicBool,
    /// The connection's reader, woken when the connection becomes idle: a read that began while
    /// a request was under way has no deadline yet.
    reader: AtomicWaker,
}

/// A request under way: from the call of the service to the end of its response body.
struct Busy(Arc<Track>);

impl Busy {
    fn start(track: Arc<Track>) -> Busy {
        track.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(track)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle_epoch.fetch_add(1, Ordering::AcqRel);
            self.0.reader.wake();
        }
    }
}

/// The app as hyper calls it on one connection: the peer's address for `ConnectInfo`, the body
/// rule on the request body, the request's lifetime for the connection's timeouts.
#[derive(Clone)]
struct PerConn<S> {
    app: S,
    peer: SocketAddr,
    track: Arc<Track>,
    body: BodyRule,
}

impl<S> hyper::service::Service<http::Request<Incoming>> for PerConn<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Tracked>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: http::Request<Incoming>) -> Self::Future {
        let busy = Busy::start(self.track.clone());
        let timed_out = Arc::new(AtomicBool::new(false));
        let mut req = req.map(|b| Body::new(TimedBody::new(b, self.body, timed_out.clone())));
        req.extensions_mut().insert(ConnectInfo(self.peer));
        let app = self.app.clone();
        let track = self.track.clone();
        Box::pin(async move {
            let resp = match tower::ServiceExt::oneshot(app, req).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            let resp = if timed_out.load(Ordering::Acquire) {
                // Whatever the handler made of the failed read, the client hears why.
                metrics::counter!("vitrine_connections_timed_out_total", "rule" => "body").increment(1);
                AppError::RequestTimeout.into_response()
            } else {
                resp
            };
            if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                track.upgraded.store(true, Ordering::Release);
            }
            Ok(resp.map(|body| Tracked { body, _busy: busy }))
        })
    }
}

/// A response body that marks its request as over when it is dropped (written or abandoned).
pub struct Tracked {
    body: Body,
    _busy: Busy,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

// ---------------------------------------------------------------------------------------------
// The body rule
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct BodyRule {
    /// Longest single wait, and the length of the window the rate is averaged over.
    timeout: Duration,
    /// Bytes per second of waiting; 0: no rate rule.
    min_rate: u64,
}

/// The request body failed the body rule.
#[derive(Debug)]
pub struct BodyTooSlow;

impl std::fmt::Display for BodyTooSlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body arrived too slowly")
    }
}

impl std::error::Error for BodyTooSlow {}

/// The request body under the body rule. Only time spent waiting for the client counts: a
/// handler that reads slowly (storage backpressure) is not the client's fault.
struct TimedBody {
    inner: Incoming,
    rule: BodyRule,
    /// Start of the current wait for data.
    wait_start: Option<Instant>,
    /// Up to when the current wait is counted in `window_waited`.
    accounted: Instant,
    window_waited: Duration,
    window_bytes: u64,
    timer: Option<Pin<Box<Sleep>>>,
    timed_out: Arc<AtomicBool>,
}

impl TimedBody {
    fn new(inner: Incoming, rule: BodyRule, timed_out: Arc<AtomicBool>) -> TimedBody {
        TimedBody {
            inner,
            rule,
            wait_start: None,
            accounted: Instant::now(),
            window_waited: Duration::ZERO,
            window_bytes: 0,
            timer: None,
            timed_out,
        }
    }

    /// Closes the window once it holds `timeout` of waiting: too few bytes in it fail the body.
    fn close_window(&mut self) -> Result<(), BodyTooSlow> {
        if self.window_waited < self.rule.timeout {
            return Ok(());
        }
        let needed = self.rule.min_rate.saturating_mul(self.rule.timeout.as_secs().max(1));
        if self.window_bytes < needed {
            return Err(BodyTooSlow);
        }
        self.window_waited = Duration::ZERO;
        self.window_bytes = 0;
        Ok(())
    }

    fn fail(&mut self) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.timed_out.store(true, Ordering::Release);
        Poll::Ready(Some(Err(Box::new(BodyTooSlow))))
    }
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.timed_out.load(Ordering::Acquire) {
            return Poll::Ready(Some(Err(Box::new(BodyTooSlow))));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if this.wait_start.take().is_some() {
                    this.window_waited += this.accounted.elapsed();
                }
                if let Some(d) = frame.data_ref() {
                    this.window_bytes += d.len() as u64;
                }
                if this.close_window().is_err() {
                    return this.fail();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => {
                this.wait_start = None;
                Poll::Ready(other.map(|r| r.map_err(Into::into)))
            }
            Poll::Pending => {
                if this.wait_start.is_none() {
                    let now = Instant::now();
                    this.wait_start = Some(now);
                    this.accounted = now;
                }
                loop {
                    let start = this.wait_start.unwrap_or(this.accounted);
                    let stall_at = start + this.rule.timeout;
                    let at = if this.rule.min_rate > 0 {
                        stall_at.min(this.accounted + this.rule.timeout.saturating_sub(this.window_waited))
                    } else {
                        stall_at
                    };
                    let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
                    if timer.deadline() != at {
                        timer.as_mut().reset(at);
                    }
                    if timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    let now = Instant::now();
                    if now >= stall_at {
                        return this.fail();
                    }
                    this.window_waited += now - this.accounted;
                    this.accounted = now;
                    if this.close_window().is_err() {
                        return this.fail();
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

// ---------------------------------------------------------------------------------------------
// The connection
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Rules {
    header: Duration,
    idle: Duration,
    body: BodyRule,
}

/// Where the connection stands between requests.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Nothing of the next request yet, since then.
    Idle(Instant),
    /// The next request started arriving then (or the connection was accepted then).
    Head(Instant),
}

/// One accepted connection. An operation that waits on the socket also waits on `cut`, so that a
/// transfer stalled on a client that stopped reading fails as soon as the grace period ends; a
/// read between requests also waits on the header or idle deadline.
pub struct Conn {
    tcp: TcpStream,
    cut: CancellationToken,
    waiting: Pin<Box<WaitForCancellationFutureOwned>>,
    track: Arc<Track>,
    rules: Rules,
    phase: Phase,
    seen_epoch: u64,
    timer: Option<Pin<Box<Sleep>>>,
    _slot: Slot,
}

fn cut_error() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "cut: the shutdown grace period is over")
}

impl Conn {
    fn new(tcp: TcpStream, cut: CancellationToken, track: Arc<Track>, rules: Rules, slot: Slot) -> Conn {
        Conn {
            tcp,
            waiting: Box::pin(cut.clone().cancelled_owned()),
            cut,
            track,
            rules,
            phase: Phase::Head(Instant::now()),
            seen_epoch: 0,
            timer: None,
            _slot: slot,
        }
    }

    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// The deadline of a read now, with the rule's name: none while a request is under way (the
    /// body rule watches the body) or once upgraded.
    fn read_deadline(&mut self) -> Option<(Instant, &'static str)> {
        if self.track.upgraded.load(Ordering::Acquire) || self.track.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let epoch = self.track.idle_epoch.load(Ordering::Acquire);
        if epoch != self.seen_epoch {
            self.seen_epoch = epoch;
            self.phase = Phase::Idle(Instant::now());
        }
        Some(match self.phase {
            Phase::Idle(t) => (t + self.rules.idle, "idle"),
            Phase::Head(t) => (t + self.rules.header, "header"),
        })
    }

    /// Runs one socket operation unless the connection is cut; registers for the cut only when
    /// the operation has to wait (a cheap check otherwise).
    fn poll_io<T>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if self.cut.is_cancelled() {
            return Poll::Ready(Err(cut_error()));
        }
        match op(Pin::new(&mut self.tcp), cx) {
            Poll::Pending if self.waiting.as_mut().poll(cx).is_ready() => Poll::Ready(Err(cut_error())),
            other => other,
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let deadline = this.read_deadline();
        match this.poll_io(cx, |tcp, cx| tcp.poll_read(cx, buf)) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before
                    && let Phase::Idle(_) = this.phase
                {
                    this.phase = Phase::Head(Instant::now());
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                let Some((at, rule)) = deadline else {
                    if !this.track.upgraded.load(Ordering::Acquire) {
                        // Polled again when the request ends, to start the idle deadline (and at
                        // once if it ended meanwhile).
                        this.track.reader.register(cx.waker());
                        if this.track.in_flight.load(Ordering::Acquire) == 0 {
                            cx.waker().wake_by_ref();
                        }
                    }
                    return Poll::Pending;
                };
                let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
                if timer.deadline() != at {
                    timer.as_mut().reset(at);
                }
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                metrics::counter!("vitrine_connections_timed_out_total", "rule" => rule).increment(1);
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, format!("{rule} timeout"))))
            }
            other => other,
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_io(cx, |tcp, cx| tcp.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_io(cx, |tcp, cx| tcp.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_io(cx, |tcp, cx| tcp.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_budget_leaves_room_for_other_files() {
        assert_eq!(connection_budget(1024), 768);
        assert_eq!(connection_budget(100), 36);
        assert_eq!(connection_budget(1_048_576), 786_432);
        assert_eq!(connection_budget(10), 1);
    }

    #[tokio::test]
    async fn caps_count_per_address_and_give_places_back() {
        let caps = Arc::new(Caps {
            max: 3,
            max_per_ip: 2,
            trusted: vec!["10.0.0.1/32".parse().unwrap_or_else(|_| panic!())],
            total: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
        });
        let a: IpAddr = [192, 0, 2, 1].into();
        let b: IpAddr = [192, 0, 2, 2].into();
        let proxy: IpAddr = [10, 0, 0, 1].into();
        let s1 = caps.admit(a).ok();
        let s2 = caps.admit(a).ok();
        assert!(s1.is_some() && s2.is_some());
        assert_eq!(caps.admit(a).err(), Some(Refusal::PerIp));
        let s3 = caps.admit(b).ok();
        assert!(s3.is_some());
        assert_eq!(caps.admit(proxy).err(), Some(Refusal::Global));
        drop(s1);
        drop(s3);
        let p1 = caps.admit(proxy).ok();
        let p2 = caps.admit(proxy).ok();
        assert!(p1.is_some() && p2.is_some(), "a trusted proxy is not capped per address");
        drop((s2, p1, p2));
        assert_eq!(caps.total.load(Ordering::Acquire), 0);
        assert!(caps.per_ip.lock().unwrap_or_else(|e| e.into_inner()).is_empty());
    }
}
