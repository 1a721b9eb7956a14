//! The WebSocket edge: what every live socket shares (buffer sizes, limits, the inbound rate
//! limiter, heartbeats, small frame helpers, the upgrade that counts a socket in
//! `realtime::sockets::Sockets`), and one module per feature's protocol.

pub mod chat;
pub mod collaboration;
pub mod notifications;

use std::future::Future;
use std::num::NonZeroU32;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures::SinkExt;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::app::AppState;
use crate::bus::Frame;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::service::auth::SignedIn;

/// Largest inbound message we act on; larger ones get an `error` and are dropped.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Largest frame the protocol layer accepts at all (beyond it the connection is closed).
const MAX_FRAME: usize = 1024 * 1024;
/// Ping period, and how long a silent peer is believed alive.
pub const PING_EVERY: Duration = Duration::from_secs(15);
pub const DEAD_AFTER: Duration = Duration::from_secs(45);

/// Bytes read from a socket at once. Client messages are small (a cursor is under 100 bytes); a
/// larger one is read in several steps. Every socket holds this much while idle.
pub const READ_BUFFER: usize = 1024;
/// Frames queued for a socket at one moment are written together up to this size (one system
/// call instead of one per frame); a frame on its own is written at once.
pub const WRITE_BATCH: usize = 16 * 1024;

/// Small buffers: idle sockets must stay cheap (axum's defaults cost over 100 KB each).
fn configure(ws: WebSocketUpgrade) -> WebSocketUpgrade {
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BATCH)
        // A cap, not an allocation: one large frame (a session state) must fit.
        .max_write_buffer_size(8 * 1024 * 1024)
        .max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
}

/// Inbound messages per second per socket (burst twice that).
pub fn inbound_limiter(per_second: u32) -> DefaultDirectRateLimiter {
    let n = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(per_second.max(1) * 2).unwrap_or(NonZeroU32::MIN);
    RateLimiter::direct(Quota::per_second(n).allow_burst(burst))
}

/// Pings a socket every `PING_EVERY` and gives up on a peer silent for `DEAD_AFTER`.
pub struct Heartbeat {
    next: tokio::time::Instant,
    last_heard: std::time::Instant,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat { next: tokio::time::Instant::now() + PING_EVERY, last_heard: std::time::Instant::now() }
    }
}

impl Heartbeat {
    /// Anything from the peer shows it is alive.
    pub fn heard(&mut self) {
        self.last_heard = std::time::Instant::now();
    }

    /// When the next ping is due.
    pub fn next(&self) -> tokio::time::Instant {
        self.next
    }

    /// Resolves when the next ping is due.
    pub async fn due(&self) {
        tokio::time::sleep_until(self.next).await;
    }

    /// When a ping is due: sends it, or closes a peer that stopped answering (1001). False when
    /// the socket is done.
    pub async fn beat(&mut self, socket: &mut WebSocket) -> bool {
        self.next = tokio::time::Instant::now() + PING_EVERY;
        if self.last_heard.elapsed() > DEAD_AFTER {
            close(socket, CLOSE_AWAY, "no answer to pings").await;
            return false;
        }
        socket.send(Message::Ping(Vec::new().into())).await.is_ok()
    }
}

/// An `error` frame (docs/realtime.md).
pub fn error_frame(code: ErrorCode, message: &str) -> String {
    serde_json::json!({"type": "error", "code": code, "error": message}).to_string()
}

pub async fn send_text(socket: &mut WebSocket, text: &str) -> bool {
    socket.send(Message::Text(text.into())).await.is_ok()
}

/// Sends a room's frame (shared, not copied).
pub async fn send_frame(socket: &mut WebSocket, frame: &Frame) -> bool {
    socket.send(Message::Text(frame.clone())).await.is_ok()
}

/// Queues a room's frame without flushing: frames queued together go out in one write (up to
/// `WRITE_BATCH`) at the next `flush` or `send_*`.
pub async fn queue_frame(socket: &mut WebSocket, frame: &Frame) -> bool {
    socket.feed(Message::Text(frame.clone())).await.is_ok()
}

pub async fn flush(socket: &mut WebSocket) -> bool {
    socket.flush().await.is_ok()
}

/// Closes with a code and reason (errors ignored: the peer may be gone).
pub async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let _ = socket.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
}

/// 1008 "policy violation": the socket's access was revoked (account disabled, agent removed).
pub const CLOSE_REVOKED: u16 = 1008;
pub const REVOKED: &str = "access revoked";

/// Resolves when a revocation that `covers` this socket arrives, or when revocations were missed
/// (the socket then closes to be safe: its client reconnects and its access is checked again).
pub async fn revoked(
    rx: &mut tokio::sync::broadcast::Receiver<crate::bus::Revocation>,
    covers: impl Fn(&crate::bus::Revocation) -> bool,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match rx.recv().await {
            Ok(r) if covers(&r) => return,
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => return,
            Err(RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
}

/// Whether `r` ends the access of an account's socket: the account (`me`) was disabled, or the
/// sign-in session it was opened with (`login`) ended.
pub fn ends_login(r: &crate::bus::Revocation, me: i64, login: &str) -> bool {
    match r {
        crate::bus::Revocation::Account { user_id } => *user_id == me,
        crate::bus::Revocation::Session { user_id, session_id } => *user_id == me && session_id == login,
        crate::bus::Revocation::Agent { .. } => false,
    }
}

/// 1013 "try again later": the socket fell behind; it reconnects with `last_seq`.
pub const CLOSE_TOO_SLOW: u16 = 1013;
/// 1000: the session is over.
pub const CLOSE_NORMAL: u16 = 1000;
/// 1001: the server is going away, or the peer stopped answering.
pub const CLOSE_AWAY: u16 = 1001;

/// The reason sent with 1001 when the instance shuts down (at most 123 bytes).
pub const GOING_AWAY: &str = "server shutting down; reconnect with last_seq";
/// How long a socket told to go away waits for the client's close frame before dropping the TCP
/// connection (dropping it with unread bytes would reset it, and the client could lose our close).
const CLOSE_REPLY_WAIT: Duration = Duration::from_secs(1);

/// Upgrades to a socket with small buffers (`configure`) that runs `serve` as one of the
/// instance's `Sockets`: counted from the upgrade on, and ended by `Sockets::cut`.
pub fn upgrade<F, Fut>(state: AppState, ws: WebSocketUpgrade, serve: F) -> Response
where
    F: FnOnce(AppState, WebSocket) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let held = state.sockets.hold();
    let cut = state.sockets.cut_token();
    configure(ws).on_upgrade(move |socket| async move {
        tokio::select! {
            () = serve(state, socket) => {}
            () = cut.cancelled() => {}
        }
        drop(held);
    })
}

/// Closes with 1001 because the instance shuts down, then waits briefly for the client's close.
pub async fn going_away(socket: &mut WebSocket) {
    close(socket, CLOSE_AWAY, GOING_AWAY).await;
    let _ = tokio::time::timeout(CLOSE_REPLY_WAIT, async {
        while let Some(Ok(m)) = socket.recv().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// The account behind a WebSocket upgrade: `?token=`, or the session cookie of a same-origin page
/// (a cross-site page cannot ride the cookie: its Origin is refused).
pub async fn socket_user(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    token: Option<&str>,
) -> AppResult<SignedIn> {
    if let Some(t) = token.filter(|t| !t.is_empty()) {
        return crate::service::auth::access_session(state, t).await;
    }
    let cookie = crate::http::extract::cookie_in(headers, crate::http::extract::SESSION_COOKIE)
        .ok_or_else(|| AppError::Unauthenticated("add ?token=<access token>".into()))?;
    let origin = headers.get(axum::http::header::ORIGIN).and_then(|o| o.to_str().ok()).unwrap_or("");
    if !crate::http::extract::same_origin(origin, state.config.base_url()) {
        return Err(AppError::Forbidden {
            code: ErrorCode::CsrfFailed,
            message: "cross-site WebSocket refused".into(),
        });
    }
    crate::service::auth::page_session(state, &cookie).await
}
