//! The collaboration socket protocol (SPEC §4, docs/realtime.md): state on join, cursors
//! (coalesced, rate-limited, sampled for the recording), comments, WebRTC signalling, resume.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::socket::{self, CLOSE_AWAY, CLOSE_NORMAL, CLOSE_TOO_SLOW, error_frame, send_text};
use super::{Next, Subscription};
use crate::app::AppState;
use crate::bus::Envelope;
use crate::domain::assets::Asset;
use crate::domain::collaboration::Session;
use crate::domain::comments::{CommentIn, build_trees};
use crate::domain::users::User;
use crate::error::AppError;
use crate::store::comments::Author;
use crate::store::rooms::CursorSample;

/// Cursor frames per second a socket may cause (latest position wins in between).
const CURSOR_PERIOD: Duration = Duration::from_millis(50);
/// Cursor samples per second kept for the recording, per socket.
const SAMPLE_PERIOD: Duration = Duration::from_millis(500);
/// Comments sent in a `session_state` (the most recent).
const STATE_COMMENTS: usize = 500;
/// Comments of one socket being stored at once.
const COMMENTS_IN_FLIGHT: usize = 8;
/// Inbound messages per second per socket.
const INBOUND_PER_SECOND: u32 = 60;

/// An authenticated member joining a session.
pub struct Member {
    pub session: Session,
    pub asset: Asset,
    pub user: User,
    pub ip: std::net::IpAddr,
    pub user_agent: String,
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
fn who(user: &User) -> serde_json::Value {
    serde_json::json!({"user_id": user.id, "name": user.name})
}

/// The `session_state` frame: as of the subscription's `last_seq`.
async fn state_frame(state: &AppState, m: &Member, sub: &Subscription, recovered: Option<bool>) -> String {
    let online: Vec<serde_json::Value> = state
        .rooms
        .online(&sub.room)
        .await
        .into_iter()
        .map(|(id, name)| serde_json::json!({"user_id": id, "name": name}))
        .collect();
    let comments = match state.store.comments_of_asset(m.asset.id).await {
        // The most recent ones; the rest is one REST call away.
        Ok(c) => build_trees(&c[c.len().saturating_sub(STATE_COMMENTS)..]),
        Err(e) => {
            tracing::warn!(error = %e, "could not read comments for a session state");
            Vec::new()
        }
    };
    let mut frame = serde_json::json!({
        "type": "session_state",
        "session_id": m.session.uuid,
        "user_id": m.user.id,
        "seq": sub.last_seq,
        "online": online,
        "comments": comments,
        "features": m.session.features,
        "asset": crate::http::api::collaboration::asset_summary(state, &m.asset, m.session.features.allow_download),
        "expires_at": crate::domain::time::rfc3339(m.session.expires_at),
    });
    if let Some(r) = recovered {
        frame["recovered"] = r.into();
    }
    frame.to_string()
}

/// Runs one member's socket until it closes, the session ends, or the member is removed.
pub async fn serve(state: AppState, m: Member, last_seq: Option<i64>, mut ws: WebSocket) {
    let room_name = m.session.room();
    // One-off steps run boxed: an idle socket's task then keeps only the small loop's state, not
    // the largest future it ever awaited (the idle-memory budget is a few KB per socket).
    let mut sub = match Box::pin(state.rooms.subscribe(&room_name)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "could not join a collaboration room");
            let _ = send_text(&mut ws, &error_frame("unavailable", "the session is unavailable; try again")).await;
            socket::close(&mut ws, CLOSE_TOO_SLOW, "unavailable").await;
            return;
        }
    };
    metrics::gauge!("vitrine_websockets_open", "channel" => "collaboration").increment(1.0);
    if state.rooms.join(&sub.room, m.user.id, &m.user.name) {
        Box::pin(presence_event(&state, &sub, &m.user, "participant_joined")).await;
    }
    run(&state, &m, &mut sub, last_seq, &mut ws).await;
    if state.rooms.leave(&sub.room, m.user.id) {
        Box::pin(presence_event(&state, &sub, &m.user, "participant_left")).await;
    }
    metrics::gauge!("vitrine_websockets_open", "channel" => "collaboration").decrement(1.0);
}

/// Records a user's first arrival or last departure, unless they are online on another instance.
async fn presence_event(state: &AppState, sub: &Subscription, user: &User, kind: &str) {
    if state.rooms.online_elsewhere(&sub.room, user.id).await {
        return;
    }
    if let Err(e) = state.rooms.emit(&sub.room.name, kind, serde_json::json!({"user": who(user)})).await {
        tracing::warn!(error = %e, kind, "could not record a presence change");
    }
}

/// Sends the state, then what the client missed (when it says where it stopped).
async fn hello(state: &AppState, m: &Member, sub: &Subscription, last_seq: Option<i64>, ws: &mut WebSocket) -> bool {
    match last_seq {
        None => send_text(ws, &state_frame(state, m, sub, None).await).await,
        Some(after) => match sub.replay(after).await {
            Ok(missed) => {
                if !send_text(ws, &state_frame(state, m, sub, Some(true)).await).await {
                    return false;
                }
                for env in missed {
                    if !send_text(ws, &env.frame).await {
                        return false;
                    }
                }
                true
            }
            Err(_) => send_text(ws, &state_frame(state, m, sub, Some(false)).await).await,
        },
    }
}

/// What one socket's loop keeps between messages.
struct Local {
    limiter: governor::DefaultDirectRateLimiter,
    /// The latest cursor position not yet broadcast (coalescing).
    pending_cursor: Option<(f64, f64)>,
    replies: mpsc::Sender<String>,
}

enum Flow {
    Continue,
    Close(u16, &'static str),
}

async fn run(state: &AppState, m: &Member, sub: &mut Subscription, last_seq: Option<i64>, ws: &mut WebSocket) {
    if !Box::pin(hello(state, m, sub, last_seq, ws)).await {
        return;
    }
    // Answers of work done off the loop (comment errors); its capacity bounds that work.
    let (replies, mut replies_rx) = mpsc::channel::<String>(COMMENTS_IN_FLIGHT);
    let mut local = Local { limiter: socket::inbound_limiter(INBOUND_PER_SECOND), pending_cursor: None, replies };
    let mut heartbeat = socket::Heartbeat::default();
    let mut cursor_tick = tokio::time::interval(CURSOR_PERIOD);
    cursor_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_sample = Instant::now() - SAMPLE_PERIOD;
    let ends_in =
        Duration::from_millis(m.session.expires_at.saturating_sub(crate::domain::time::now_ms()).max(0) as u64);
    let expiry = tokio::time::sleep(ends_in);
    tokio::pin!(expiry);
    loop {
        let flow = tokio::select! {
            next = sub.next() => match next {
                Next::Frames(frames) => {
                    let mut flow = Flow::Continue;
                    for env in frames {
                        match outbound(m, &env) {
                            Outbound::Skip => {}
                            Outbound::Send => if !send_text(ws, &env.frame).await { return },
                            Outbound::SendAndClose(reason) => {
                                if !send_text(ws, &env.frame).await { return }
                                flow = Flow::Close(CLOSE_NORMAL, reason);
                                break;
                            }
                        }
                    }
                    flow
                }
                Next::Lagged => Flow::Close(CLOSE_TOO_SLOW, "too slow; reconnect with last_seq"),
            },
            incoming = ws.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    heartbeat.heard();
                    Box::pin(inbound(state, m, sub, ws, &mut local, text.as_str())).await
                }
                Some(Ok(Message::Binary(_))) => {
                    heartbeat.heard();
                    if send_text(ws, &error_frame("malformed", "send JSON text frames")).await { Flow::Continue } else { return }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => { heartbeat.heard(); Flow::Continue }
            },
            Some(reply) = replies_rx.recv() => {
                if send_text(ws, &reply).await { Flow::Continue } else { return }
            }
            _ = cursor_tick.tick(), if local.pending_cursor.is_some() => {
                if let Some((x, y)) = local.pending_cursor.take() {
                    let frame = serde_json::json!({"type": "cursor_position", "user_id": m.user.id, "name": m.user.name, "x": x, "y": y}).to_string();
                    state.rooms.publish_ephemeral(&sub.room.name, "cursor_position", frame, Some(m.user.id), None);
                    if last_sample.elapsed() >= SAMPLE_PERIOD {
                        last_sample = Instant::now();
                        state.rooms.record_cursor(CursorSample { room: sub.room.name.clone(), at: crate::domain::time::now_ms(), user_id: m.user.id, x, y });
                    }
                }
                Flow::Continue
            }
            _ = heartbeat.due() => if heartbeat.beat(ws).await { Flow::Continue } else { return },
            _ = &mut expiry => {
                let frame = serde_json::json!({"type": "session_ended", "reason": "expired"}).to_string();
                let _ = send_text(ws, &frame).await;
                Flow::Close(CLOSE_NORMAL, "session expired")
            }
        };
        if let Flow::Close(code, reason) = flow {
            socket::close(ws, code, reason).await;
            return;
        }
    }
}

enum Outbound {
    Skip,
    Send,
    SendAndClose(&'static str),
}

fn outbound(m: &Member, env: &Arc<Envelope>) -> Outbound {
    if env.to.is_some_and(|to| to != m.user.id) {
        return Outbound::Skip;
    }
    match env.kind.as_str() {
        // Your own cursor is where your mouse is.
        "cursor_position" if env.from == Some(m.user.id) => Outbound::Skip,
        "session_ended" => Outbound::SendAndClose("session ended"),
        "participant_removed" if env.from == Some(m.user.id) => Outbound::SendAndClose("removed from the session"),
        _ => Outbound::Send,
    }
}

async fn inbound(
    state: &AppState,
    m: &Member,
    sub: &Subscription,
    ws: &mut WebSocket,
    local: &mut Local,
    text: &str,
) -> Flow {
    let reply = |code: &str, msg: &str| error_frame(code, msg);
    let answer = if text.len() > socket::MAX_MESSAGE {
        Some(reply("too_large", &format!("messages are limited to {} bytes", socket::MAX_MESSAGE)))
    } else if local.limiter.check().is_err() {
        Some(reply("rate_limited", "too many messages; slow down"))
    } else {
        match serde_json::from_str::<serde_json::Value>(text) {
            Err(_) => Some(reply("malformed", "messages are JSON objects with a type")),
            Ok(v) => match v.get("type").and_then(|t| t.as_str()) {
                None => Some(reply("malformed", "messages are JSON objects with a type")),
                Some(t) if !matches!(t, "cursor_position" | "comment" | "signal" | "resume" | "ping") => {
                    Some(reply("unknown_type", &format!("unknown message type {t:?}")))
                }
                Some(_) => match serde_json::from_value::<Inbound>(v) {
                    Err(e) => Some(reply("invalid", &format!("invalid message: {e}"))),
                    Ok(msg) => handle(state, m, sub, ws, local, msg).await,
                },
            },
        }
    };
    match answer {
        Some(frame) if !send_text(ws, &frame).await => Flow::Close(CLOSE_AWAY, "gone"),
        _ => Flow::Continue,
    }
}

/// Acts on one valid message; returns a frame for this socket only, if any.
async fn handle(
    state: &AppState,
    m: &Member,
    sub: &Subscription,
    ws: &mut WebSocket,
    local: &mut Local,
    msg: Inbound,
) -> Option<String> {
    let f = &m.session.features;
    match msg {
        Inbound::Ping => Some(serde_json::json!({"type": "pong"}).to_string()),
        Inbound::CursorPosition { x, y } => {
            if !f.cursor_tracking {
                return Some(error_frame("feature_disabled", "cursor tracking is off in this session"));
            }
            if !(x.is_finite() && y.is_finite() && (0.0..=1.0).contains(&x) && (0.0..=1.0).contains(&y)) {
                return Some(error_frame("invalid", "x and y are fractions between 0 and 1"));
            }
            local.pending_cursor = Some((x, y));
            None
        }
        Inbound::Comment { comment } => {
            // Stored off the socket's loop, so the socket keeps reading its room meanwhile; the
            // comment comes back through the room, an error through `replies`.
            let Ok(permit) = local.replies.clone().try_reserve_owned() else {
                return Some(error_frame("rate_limited", "too many comments in flight; slow down"));
            };
            let origin = crate::http::api::comments::Origin {
                share_id: m.session.share_id,
                ip: m.ip,
                user_agent: m.user_agent.clone(),
            };
            let (state, asset, user_id) = (state.clone(), m.asset.clone(), m.user.id);
            tokio::spawn(async move {
                let answer = match crate::http::api::comments::create(
                    &state,
                    &asset,
                    Author::User(user_id),
                    &comment,
                    Some(origin),
                )
                .await
                {
                    Ok(_) => return,
                    Err(AppError::Validation { message, fields }) => {
                        serde_json::json!({"type": "error", "code": "invalid", "error": message, "fields": fields})
                            .to_string()
                    }
                    Err(e) => error_frame(e.code(), &e.public_message()),
                };
                permit.send(answer);
            });
            None
        }
        Inbound::Signal { to, data } => {
            if !(f.voice_chat || f.screen_sharing) {
                return Some(error_frame("feature_disabled", "voice chat and screen sharing are off in this session"));
            }
            let allowed = to != m.user.id
                && (to == m.session.owner_id || state.store.is_participant(m.session.id, to).await.unwrap_or(false));
            if !allowed {
                return Some(error_frame("invalid", "signals go to another participant of this session"));
            }
            let frame = serde_json::json!({"type": "signal", "from": m.user.id, "data": data}).to_string();
            state.rooms.publish_ephemeral(&sub.room.name, "signal", frame, Some(m.user.id), Some(to));
            None
        }
        Inbound::Resume { last_seq } => match sub.replay(last_seq).await {
            Ok(missed) => {
                for env in missed {
                    if !send_text(ws, &env.frame).await {
                        return None;
                    }
                }
                None
            }
            Err(_) => Some(state_frame(state, m, sub, Some(false)).await),
        },
    }
}
