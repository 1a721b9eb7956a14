//! The collaboration socket protocol (SPEC §4, docs/realtime.md): state on join, cursors
//! (coalesced, rate-limited, sampled for the recording), comments, WebRTC signalling, resume.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::{self as socket, CLOSE_NORMAL, CLOSE_TOO_SLOW, error_frame, queue_frame, send_text};
use crate::app::AppState;
use crate::bus::Envelope;
use crate::domain::assets::Asset;
use crate::domain::collaboration::{Features, Session};
use crate::domain::comments::{CommentIn, build_trees};
use crate::domain::users::User;
use crate::error::{AppError, ErrorCode};
use crate::realtime::{Next, Subscription};
use crate::service::comments::Target;
use crate::store::comments::Author;
use crate::store::rooms::CursorSample;

/// Cursor frames per second a socket may cause (latest position wins in between).
const CURSOR_PERIOD: Duration = Duration::from_millis(50);
/// Cursor samples per second kept for the recording, per socket.
const SAMPLE_PERIOD: Duration = Duration::from_millis(500);
/// Comments sent in a `session_state` (the most recent).
const STATE_COMMENTS: usize = 500;
/// Comments of one socket waiting to be stored; when they are this many the socket is not read
/// until one is stored (backpressure).
const COMMENTS_IN_FLIGHT: usize = 8;
/// Inbound messages per second per socket.
const INBOUND_PER_SECOND: u32 = 60;

/// An authenticated member joining a session (what the upgrade read from the store).
pub struct Member {
    pub session: Session,
    pub asset: Asset,
    pub user: User,
    /// The sign-in session the socket was opened with: its logout closes the socket.
    pub login: String,
    pub ip: std::net::IpAddr,
    pub user_agent: String,
}

/// What a socket keeps once it has joined: the few fields its loop reads (an idle socket's memory
/// is mostly this and its buffers).
struct Seat {
    user_id: i64,
    /// The sign-in session the socket was opened with.
    login: String,
    user_name: String,
    /// The member's e-mail (the watermark of a watermarked link's previews).
    user_email: String,
    session_id: i64,
    session_uuid: String,
    share_id: i64,
    owner_id: i64,
    features: Features,
    expires_at: i64,
    target: Target,
    ip: std::net::IpAddr,
    user_agent: String,
}

impl Seat {
    fn of(m: &Member) -> Seat {
        Seat {
            user_id: m.user.id,
            login: m.login.clone(),
            user_name: m.user.name.clone(),
            user_email: m.user.email.clone(),
            session_id: m.session.id,
            session_uuid: m.session.uuid.clone(),
            share_id: m.session.share_id,
            owner_id: m.session.owner_id,
            features: m.session.features,
            expires_at: m.session.expires_at,
            target: Target::of(&m.asset),
            ip: m.ip,
            user_agent: m.user_agent.clone(),
        }
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Inbound {
    CursorPosition { x: f64, y: f64 },
    Comment { comment: CommentIn },
    Signal { to: i64, data: serde_json::Value },
    Resume { last_seq: i64 },
    Ping,
}

/// The user as other members see them.
fn who(user_id: i64, name: &str) -> serde_json::Value {
    serde_json::json!({"user_id": user_id, "name": name})
}

/// The `session_state` frame: as of the subscription's `last_seq`.
async fn state_frame(
    state: &AppState,
    seat: &Seat,
    asset: &Asset,
    sub: &Subscription,
    recovered: Option<bool>,
) -> String {
    let online: Vec<serde_json::Value> =
        state.rooms.online(&sub.room).await.into_iter().map(|(id, name)| who(id, &name)).collect();
    let comments = match state.store.latest_comments(asset.id, STATE_COMMENTS as i64).await {
        // The most recent ones; the rest is one REST call away.
        Ok(c) => build_trees(&c),
        Err(e) => {
            tracing::warn!(error = %e, "could not read comments for a session state");
            Vec::new()
        }
    };
    // The asset by the rule of the session's link (renditions and watermark of preview-only links).
    let asset_out = match state.store.share_by_id(seat.share_id).await {
        Ok(Some(share)) => crate::service::collaboration::asset_summary(
            state,
            asset,
            &share,
            seat.features.allow_download,
            Some(&seat.user_email),
        ),
        other => {
            if let Err(e) = other {
                tracing::warn!(error = %e, "could not read the link of a session for its state");
            }
            serde_json::json!({"id": asset.id, "title": asset.title, "content_url": null, "download_url": null})
        }
    };
    let mut frame = serde_json::json!({
        "type": "session_state",
        "session_id": seat.session_uuid,
        "user_id": seat.user_id,
        "seq": sub.last_seq,
        "online": online,
        "comments": comments,
        "features": seat.features,
        "asset": asset_out,
        "expires_at": crate::domain::time::rfc3339(seat.expires_at),
    });
    if let Some(r) = recovered {
        frame["recovered"] = r.into();
    }
    frame.to_string()
}

/// A state frame later in the socket's life (a resume that cannot be served): the asset as it is now.
async fn fresh_state_frame(state: &AppState, seat: &Seat, sub: &Subscription) -> String {
    match state.store.asset(seat.target.asset_id).await {
        Ok(Some(asset)) => state_frame(state, seat, &asset, sub, Some(false)).await,
        Ok(None) => error_frame(ErrorCode::NotFound, "the asset of this session is gone"),
        Err(e) => {
            tracing::warn!(error = %e, "could not read the asset for a session state");
            error_frame(ErrorCode::Unavailable, "the session state is unavailable; reconnect")
        }
    }
}

/// Runs one member's socket until it closes, the session ends, or the member is removed.
pub async fn serve(state: AppState, m: Box<Member>, last_seq: Option<i64>, mut ws: WebSocket) {
    // One-off steps run boxed: an idle socket's task then keeps only the small loop's state, not
    // the largest future it ever awaited (the idle-memory budget is a few KB per socket).
    let Some((seat, mut sub, greeted)) = Box::pin(enter(&state, m, last_seq, &mut ws)).await else { return };
    if greeted {
        run(&state, &seat, &mut sub, &mut ws).await;
    }
    if state.rooms.leave(&sub.room, seat.user_id) {
        Box::pin(presence_event(&state, &sub, seat.user_id, &seat.user_name, "participant_left")).await;
    }
    metrics::gauge!("vitrine_websockets_open", "channel" => "collaboration").decrement(1.0);
}

/// Joins the room, announces the member, sends the state (and what a resuming client missed).
/// `None` when the room cannot be joined; the bool says whether the greeting was delivered.
async fn enter(
    state: &AppState,
    m: Box<Member>,
    last_seq: Option<i64>,
    ws: &mut WebSocket,
) -> Option<(Seat, Subscription, bool)> {
    let sub = match state.rooms.subscribe(&m.session.room()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "could not join a collaboration room");
            let _ = send_text(ws, &error_frame(ErrorCode::Unavailable, "the session is unavailable; try again")).await;
            socket::close(ws, CLOSE_TOO_SLOW, "unavailable").await;
            return None;
        }
    };
    metrics::gauge!("vitrine_websockets_open", "channel" => "collaboration").increment(1.0);
    if state.rooms.join(&sub.room, m.user.id, &m.user.name) {
        presence_event(state, &sub, m.user.id, &m.user.name, "participant_joined").await;
    }
    let seat = Seat::of(&m);
    let greeted = hello(state, &seat, &m.asset, &sub, last_seq, ws).await;
    Some((seat, sub, greeted))
}

/// Records a user's first arrival or last departure, unless they are online on another instance.
async fn presence_event(state: &AppState, sub: &Subscription, user_id: i64, name: &str, kind: &str) {
    if state.rooms.online_elsewhere(&sub.room, user_id).await {
        return;
    }
    if let Err(e) = state.rooms.emit(&sub.room.name, kind, serde_json::json!({"user": who(user_id, name)})).await {
        tracing::warn!(error = %e, kind, "could not record a presence change");
    }
}

/// Sends the state, then what the client missed (when it says where it stopped).
async fn hello(
    state: &AppState,
    seat: &Seat,
    asset: &Asset,
    sub: &Subscription,
    last_seq: Option<i64>,
    ws: &mut WebSocket,
) -> bool {
    match last_seq {
        None => send_text(ws, &state_frame(state, seat, asset, sub, None).await).await,
        Some(after) => match sub.replay(after).await {
            Ok(missed) => {
                if !send_text(ws, &state_frame(state, seat, asset, sub, Some(true)).await).await {
                    return false;
                }
                for env in &missed {
                    if !queue_frame(ws, &env.frame).await {
                        return false;
                    }
                }
                socket::flush(ws).await
            }
            Err(_) => send_text(ws, &state_frame(state, seat, asset, sub, Some(false)).await).await,
        },
    }
}

/// What one socket's loop keeps between messages.
struct Local {
    limiter: governor::DefaultDirectRateLimiter,
    /// The latest cursor position not yet broadcast (coalescing).
    pending_cursor: Option<(f64, f64)>,
    /// When the next cursor frame may go out.
    cursor_free_at: tokio::time::Instant,
    /// When the last cursor sample was kept for the recording.
    last_sample: Instant,
    /// This socket's comments, stored one after the other off the loop; made on the first comment.
    lane: Option<CommentLane>,
}

/// One socket's comments in send order: a queue and the one task that stores them, so that they
/// are committed, numbered, delivered and recorded in the order they were sent (SPEC §9).
struct CommentLane {
    queue: mpsc::Sender<CommentIn>,
    /// Refusals of stored-off-the-loop comments (`error` frames), one per refused comment.
    replies: mpsc::UnboundedReceiver<String>,
}

impl CommentLane {
    fn start(state: &AppState, seat: &Seat) -> CommentLane {
        let (queue, mut comments) = mpsc::channel::<CommentIn>(COMMENTS_IN_FLIGHT);
        let (answer, replies) = mpsc::unbounded_channel();
        let origin = crate::service::comments::Origin {
            share_id: seat.share_id,
            ip: seat.ip,
            user_agent: seat.user_agent.clone(),
        };
        let (state, target, user_id) = (state.clone(), seat.target, seat.user_id);
        // Shutdown waits (within its grace) for the comments this socket has queued.
        let held = state.sockets.hold();
        tokio::spawn(async move {
            let _held = held;
            // Comments already queued when the socket closes are still stored: they were sent.
            while let Some(comment) = comments.recv().await {
                let created = crate::service::comments::create(
                    &state,
                    target,
                    Author::User(user_id),
                    &comment,
                    Some(origin.clone()),
                )
                .await;
                let refusal = match created {
                    Ok(_) => continue,
                    Err(AppError::Validation { message, fields }) => {
                        serde_json::json!({"type": "error", "code": ErrorCode::Invalid, "error": message, "fields": fields})
                            .to_string()
                    }
                    Err(e) => error_frame(e.code(), &e.public_message()),
                };
                let _ = answer.send(refusal);
            }
        });
        CommentLane { queue, replies }
    }
}

impl Local {
    /// When the loop must wake up for a coalesced cursor.
    fn cursor_due(&self) -> Option<tokio::time::Instant> {
        self.pending_cursor.map(|_| self.cursor_free_at)
    }

    /// Broadcasts the pending cursor position if the rate allows it now.
    fn send_cursor(&mut self, state: &AppState, seat: &Seat, room: &str) {
        let now = tokio::time::Instant::now();
        if now < self.cursor_free_at {
            return;
        }
        let Some((x, y)) = self.pending_cursor.take() else { return };
        self.cursor_free_at = now + CURSOR_PERIOD;
        let frame = serde_json::json!({"type": "cursor_position", "user_id": seat.user_id, "name": seat.user_name, "x": x, "y": y});
        state.rooms.publish_ephemeral(room, "cursor_position", frame.to_string(), Some(seat.user_id), None);
        if self.last_sample.elapsed() >= SAMPLE_PERIOD {
            self.last_sample = Instant::now();
            let at = state.clock.now_ms();
            state.rooms.record_cursor(CursorSample { room: room.to_string(), at, user_id: seat.user_id, x, y });
        }
    }
}

async fn next_reply(lane: &mut Option<CommentLane>) -> Option<String> {
    match lane {
        Some(lane) => lane.replies.recv().await,
        None => std::future::pending().await,
    }
}

enum Flow {
    Continue,
    Close(u16, &'static str),
    /// The peer is gone.
    Gone,
}

/// Frames queued at once for one socket and written together.
const BATCH: usize = 64;

async fn run(state: &AppState, seat: &Seat, sub: &mut Subscription, ws: &mut WebSocket) {
    let mut local = Local {
        limiter: socket::inbound_limiter(INBOUND_PER_SECOND),
        pending_cursor: None,
        cursor_free_at: tokio::time::Instant::now(),
        last_sample: Instant::now() - SAMPLE_PERIOD,
        lane: None,
    };
    let mut heartbeat = socket::Heartbeat::default();
    let ends_in = Duration::from_millis(seat.expires_at.saturating_sub(state.clock.now_ms()).max(0) as u64);
    let expires = tokio::time::Instant::now() + ends_in;
    // One timer per socket: the next ping, the next coalesced cursor or the session's end.
    let mut timer = std::pin::pin!(tokio::time::sleep_until(heartbeat.next().min(expires)));
    let mut away = std::pin::pin!(state.sockets.going_away());
    let mut revocations = state.rooms.revocations();
    let (me, login) = (seat.user_id, seat.login.as_str());
    loop {
        let due = local.cursor_due().map_or(heartbeat.next(), |c| c.min(heartbeat.next())).min(expires);
        if timer.deadline() != due {
            timer.as_mut().reset(due);
        }
        let flow = tokio::select! {
            next = sub.next() => deliver(seat, sub, ws, next).await,
            incoming = ws.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    heartbeat.heard();
                    Box::pin(inbound(state, seat, sub, ws, &mut local, text.as_str())).await
                }
                Some(Ok(Message::Binary(_))) => {
                    heartbeat.heard();
                    if send_text(ws, &error_frame(ErrorCode::Malformed, "send JSON text frames")).await { Flow::Continue } else { Flow::Gone }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => Flow::Gone,
                Some(Ok(_)) => { heartbeat.heard(); Flow::Continue }
            },
            Some(reply) = next_reply(&mut local.lane) => {
                if send_text(ws, &reply).await { Flow::Continue } else { Flow::Gone }
            }
            () = &mut away => {
                socket::going_away(ws).await;
                Flow::Gone
            }
            () = socket::revoked(&mut revocations, |r| socket::ends_login(r, me, login)) => {
                Flow::Close(socket::CLOSE_REVOKED, socket::REVOKED)
            }
            () = &mut timer => {
                let now = tokio::time::Instant::now();
                if now >= expires {
                    // Every member's socket gets here at about the same time, on every instance:
                    // the store lets one of them record the end and queue its webhook event.
                    if let Err(e) = crate::service::collaboration::expire_by_id(state, seat.session_id).await {
                        tracing::warn!(session = %seat.session_uuid, error = %e, "could not record the session's expiry; the sweep will");
                    }
                    let frame = serde_json::json!({"type": "session_ended", "reason": "expired"}).to_string();
                    let _ = send_text(ws, &frame).await;
                    Flow::Close(CLOSE_NORMAL, "session expired")
                } else {
                    local.send_cursor(state, seat, &sub.room.name);
                    if now >= heartbeat.next() && !heartbeat.beat(ws).await { Flow::Gone } else { Flow::Continue }
                }
            }
        };
        match flow {
            Flow::Continue => {}
            Flow::Gone => return,
            Flow::Close(code, reason) => {
                socket::close(ws, code, reason).await;
                return;
            }
        }
    }
}

/// Sends what the room has for this socket: this event and whatever else is already queued,
/// in one write.
async fn deliver(seat: &Seat, sub: &mut Subscription, ws: &mut WebSocket, first: Next) -> Flow {
    let mut next = Some(first);
    let mut queued = 0;
    let mut flow = Flow::Continue;
    'batch: while let Some(n) = next.take() {
        let frames = match n {
            Next::Frames(frames) => frames,
            Next::Lagged => {
                flow = Flow::Close(CLOSE_TOO_SLOW, "too slow; reconnect with last_seq");
                break;
            }
        };
        for env in frames {
            match outbound(seat, &env) {
                Outbound::Skip => continue,
                Outbound::Send => {}
                Outbound::SendAndClose(reason) => flow = Flow::Close(CLOSE_NORMAL, reason),
            }
            if !queue_frame(ws, &env.frame).await {
                return Flow::Gone;
            }
            queued += 1;
            if !matches!(flow, Flow::Continue) {
                break 'batch;
            }
        }
        if queued < BATCH {
            next = sub.try_next();
        }
    }
    if queued > 0 && !socket::flush(ws).await {
        return Flow::Gone;
    }
    flow
}

enum Outbound {
    Skip,
    Send,
    SendAndClose(&'static str),
}

fn outbound(seat: &Seat, env: &Arc<Envelope>) -> Outbound {
    if env.to.is_some_and(|to| to != seat.user_id) {
        return Outbound::Skip;
    }
    match env.kind.as_str() {
        // Your own cursor is where your mouse is.
        "cursor_position" if env.from == Some(seat.user_id) => Outbound::Skip,
        "session_ended" => Outbound::SendAndClose("session ended"),
        "participant_removed" if env.from == Some(seat.user_id) => Outbound::SendAndClose("removed from the session"),
        _ => Outbound::Send,
    }
}

async fn inbound(
    state: &AppState,
    seat: &Seat,
    sub: &Subscription,
    ws: &mut WebSocket,
    local: &mut Local,
    text: &str,
) -> Flow {
    let answer = if text.len() > socket::MAX_MESSAGE {
        Some(error_frame(ErrorCode::TooLarge, &format!("messages are limited to {} bytes", socket::MAX_MESSAGE)))
    } else if local.limiter.check().is_err() {
        Some(error_frame(ErrorCode::RateLimited, "too many messages; slow down"))
    } else {
        match serde_json::from_str::<Inbound>(text) {
            Ok(msg) => handle(state, seat, sub, ws, local, msg).await,
            // Only a message that does not parse is looked at twice, to say what is wrong with it.
            Err(e) => Some(refusal(text, e)),
        }
    };
    match answer {
        Some(frame) if !send_text(ws, &frame).await => Flow::Gone,
        _ => Flow::Continue,
    }
}

/// The error frame for a message that is not a valid `Inbound`.
fn refusal(text: &str, e: serde_json::Error) -> String {
    match serde_json::from_str::<serde_json::Value>(text) {
        Err(_) => error_frame(ErrorCode::Malformed, "messages are JSON objects with a type"),
        Ok(v) => match v.get("type").and_then(|t| t.as_str()) {
            None => error_frame(ErrorCode::Malformed, "messages are JSON objects with a type"),
            Some(t) if !matches!(t, "cursor_position" | "comment" | "signal" | "resume" | "ping") => {
                error_frame(ErrorCode::UnknownType, &format!("unknown message type {t:?}"))
            }
            Some(_) => error_frame(ErrorCode::Invalid, &format!("invalid message: {e}")),
        },
    }
}

/// Acts on one valid message; returns a frame for this socket only, if any.
async fn handle(
    state: &AppState,
    seat: &Seat,
    sub: &Subscription,
    ws: &mut WebSocket,
    local: &mut Local,
    msg: Inbound,
) -> Option<String> {
    let f = &seat.features;
    match msg {
        Inbound::Ping => Some(serde_json::json!({"type": "pong"}).to_string()),
        Inbound::CursorPosition { x, y } => {
            if !f.cursor_tracking {
                return Some(error_frame(ErrorCode::FeatureDisabled, "cursor tracking is off in this session"));
            }
            if !(x.is_finite() && y.is_finite() && (0.0..=1.0).contains(&x) && (0.0..=1.0).contains(&y)) {
                return Some(error_frame(ErrorCode::Invalid, "x and y are fractions between 0 and 1"));
            }
            local.pending_cursor = Some((x, y));
            local.send_cursor(state, seat, &sub.room.name);
            None
        }
        Inbound::Comment { comment } => {
            // Stored off the loop in send order; the comment comes back through the room, a
            // refusal through the lane's replies. A full lane stops this socket's reading until
            // a comment is stored (backpressure): nothing is dropped or reordered.
            let lane = local.lane.get_or_insert_with(|| CommentLane::start(state, seat));
            if lane.queue.send(comment).await.is_err() {
                return Some(error_frame(ErrorCode::Unavailable, "the comment could not be stored; send it again"));
            }
            None
        }
        Inbound::Signal { to, data } => {
            if !(f.voice_chat || f.screen_sharing) {
                return Some(error_frame(
                    ErrorCode::FeatureDisabled,
                    "voice chat and screen sharing are off in this session",
                ));
            }
            let allowed = to != seat.user_id
                && (to == seat.owner_id || state.store.is_participant(seat.session_id, to).await.unwrap_or(false));
            if !allowed {
                return Some(error_frame(ErrorCode::Invalid, "signals go to another participant of this session"));
            }
            let frame = serde_json::json!({"type": "signal", "from": seat.user_id, "data": data}).to_string();
            state.rooms.publish_ephemeral(&sub.room.name, "signal", frame, Some(seat.user_id), Some(to));
            None
        }
        Inbound::Resume { last_seq } => match sub.replay(last_seq).await {
            Ok(missed) => {
                for env in &missed {
                    if !queue_frame(ws, &env.frame).await {
                        return None;
                    }
                }
                let _ = socket::flush(ws).await;
                None
            }
            Err(_) => Some(fresh_state_frame(state, seat, sub).await),
        },
    }
}
