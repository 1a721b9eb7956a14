//! The chat socket protocol (docs/chat.md): `connection_established`, durable `file_shared` and
//! `message` events of the room `chat:{session}` with recovery, `request_file_list`, `message`.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket};
use serde::Deserialize;

use super::{self as socket, CLOSE_TOO_SLOW, error_frame, send_frame, send_text};
use crate::app::AppState;
use crate::bus::Envelope;
use crate::domain::chat::{MessageOut, parse_message};
use crate::error::ErrorCode;
use crate::realtime::{Next, Subscription};
use crate::service::chat::access::Reach;
use crate::service::chat::files::file_list;

/// Inbound messages per second per socket.
const INBOUND_PER_SECOND: u32 = 20;

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Inbound {
    RequestFileList { session_id: Option<String>, company_id: Option<String> },
    Message { text: String },
    Resume { last_seq: i64 },
    Ping,
}

/// Runs one chat socket until it closes.
pub async fn serve(state: AppState, reach: Reach, last_seq: Option<i64>, mut ws: WebSocket) {
    let room = reach.session.room();
    let mut sub = match Box::pin(state.rooms.subscribe(&room)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "could not join a chat room");
            let _ =
                send_text(&mut ws, &error_frame(ErrorCode::Unavailable, "the chat is unavailable; try again")).await;
            socket::close(&mut ws, CLOSE_TOO_SLOW, "unavailable").await;
            return;
        }
    };
    metrics::gauge!("vitrine_websockets_open", "channel" => "chat").increment(1.0);
    if Box::pin(hello(&reach, &sub, last_seq, &mut ws)).await {
        run(&state, &reach, &mut sub, &mut ws).await;
    }
    metrics::gauge!("vitrine_websockets_open", "channel" => "chat").decrement(1.0);
}

fn established(reach: &Reach, sub: &Subscription, recovered: Option<bool>) -> String {
    let mut v = serde_json::json!({
        "type": "connection_established",
        "message": "WebSocket connected successfully",
        "session_id": reach.session.uuid,
        "company_id": reach.session.company_uuid,
        "role": reach.side.as_str(),
        "seq": sub.last_seq,
    });
    if let Some(r) = recovered {
        v["recovered"] = r.into();
    }
    v.to_string()
}

/// `connection_established`, then what the client missed when it says where it stopped.
async fn hello(reach: &Reach, sub: &Subscription, last_seq: Option<i64>, ws: &mut WebSocket) -> bool {
    let Some(after) = last_seq else { return send_text(ws, &established(reach, sub, None)).await };
    match sub.replay(after).await {
        Ok(missed) => {
            if !send_text(ws, &established(reach, sub, Some(true))).await {
                return false;
            }
            send_replayed(&missed, ws).await
        }
        Err(_) => send_text(ws, &established(reach, sub, Some(false))).await,
    }
}

/// Sends replayed events (complete: their file links were signed as they were read back).
async fn send_replayed(missed: &[Arc<Envelope>], ws: &mut WebSocket) -> bool {
    for env in missed {
        if !send_frame(ws, &env.frame).await {
            return false;
        }
    }
    true
}

async fn run(state: &AppState, reach: &Reach, sub: &mut Subscription, ws: &mut WebSocket) {
    let limiter = socket::inbound_limiter(INBOUND_PER_SECOND);
    let mut heartbeat = socket::Heartbeat::default();
    let mut away = std::pin::pin!(state.sockets.going_away());
    let mut revocations = state.rooms.revocations();
    // A visitor's socket rests on its session token alone; an account's on the account and, for
    // an agent, on being the company's agent.
    let covers = |r: &crate::bus::Revocation| match (r, reach.user_id) {
        (crate::bus::Revocation::Agent { user_id, company_id }, Some(me)) => {
            *user_id == me && *company_id == reach.session.company_id
        }
        (r, Some(me)) => socket::ends_login(r, me, reach.login.as_deref().unwrap_or("")),
        _ => false,
    };
    loop {
        tokio::select! {
            next = sub.next() => match next {
                Next::Frames(frames) => {
                    for env in frames {
                        if !send_frame(ws, &env.frame).await {
                            return;
                        }
                    }
                }
                Next::Lagged => {
                    socket::close(ws, CLOSE_TOO_SLOW, "too slow; reconnect with last_seq").await;
                    return;
                }
            },
            incoming = ws.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    heartbeat.heard();
                    let answer = if text.len() > socket::MAX_MESSAGE {
                        Some(error_frame(ErrorCode::TooLarge, &format!("messages are limited to {} bytes", socket::MAX_MESSAGE)))
                    } else if limiter.check().is_err() {
                        Some(error_frame(ErrorCode::RateLimited, "too many messages; slow down"))
                    } else {
                        Box::pin(inbound(state, reach, sub, ws, text.as_str())).await
                    };
                    if let Some(frame) = answer && !send_text(ws, &frame).await {
                        return;
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    heartbeat.heard();
                    if !send_text(ws, &error_frame(ErrorCode::Malformed, "send JSON text frames")).await {
                        return;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => heartbeat.heard(),
            },
            _ = heartbeat.due() => if !heartbeat.beat(ws).await { return },
            () = &mut away => {
                socket::going_away(ws).await;
                return;
            }
            () = socket::revoked(&mut revocations, covers) => {
                socket::close(ws, socket::CLOSE_REVOKED, socket::REVOKED).await;
                return;
            }
        }
    }
}

/// Acts on one client message; returns a frame for this socket only, if any.
async fn inbound(
    state: &AppState,
    reach: &Reach,
    sub: &Subscription,
    ws: &mut WebSocket,
    text: &str,
) -> Option<String> {
    let v: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(_) => return Some(error_frame(ErrorCode::Malformed, "messages are JSON objects with a type")),
    };
    match v.get("type").and_then(|t| t.as_str()) {
        None => return Some(error_frame(ErrorCode::Malformed, "messages are JSON objects with a type")),
        Some(t) if !matches!(t, "request_file_list" | "message" | "resume" | "ping") => {
            return Some(error_frame(ErrorCode::UnknownType, &format!("unknown message type {t:?}")));
        }
        Some(_) => {}
    }
    let msg = match serde_json::from_value::<Inbound>(v) {
        Ok(m) => m,
        Err(e) => return Some(error_frame(ErrorCode::Invalid, &format!("invalid message: {e}"))),
    };
    let s = &reach.session;
    match msg {
        Inbound::Ping => Some(r#"{"type":"pong"}"#.to_string()),
        Inbound::RequestFileList { session_id, company_id } => {
            if session_id.is_some_and(|id| id != s.uuid) || company_id.is_some_and(|c| c != s.company_uuid) {
                return Some(error_frame(ErrorCode::Forbidden, "this socket belongs to another session"));
            }
            match file_list(state, s).await {
                Ok(list) => Some(
                    serde_json::json!({"type": "file_list", "files": list.files, "count": list.count,
                        "session_id": s.uuid, "company_id": s.company_uuid})
                    .to_string(),
                ),
                Err(e) => Some(error_frame(e.code(), &e.public_message())),
            }
        }
        Inbound::Message { text } => {
            let text = match parse_message(&text) {
                Ok(t) => t,
                Err(why) => return Some(error_frame(ErrorCode::Invalid, &why)),
            };
            let stored = state
                .store
                .insert_chat_message(s, reach.side, reach.user_id, &text, state.clock.now_ms(), |m| {
                    serde_json::to_value(MessageOut::of(m)).unwrap_or_default()
                })
                .await;
            match stored {
                Ok((_, event)) => {
                    state.rooms.publish(&event);
                    metrics::counter!("vitrine_chat_messages_total", "sender" => reach.side.as_str()).increment(1);
                    None
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not store a chat message");
                    Some(error_frame(ErrorCode::Unavailable, "the message could not be stored; send it again"))
                }
            }
        }
        Inbound::Resume { last_seq } => match sub.replay(last_seq).await {
            Ok(missed) => {
                if send_replayed(&missed, ws).await {
                    None
                } else {
                    Some(error_frame(ErrorCode::Gone, "the socket closed"))
                }
            }
            Err(_) => Some(established(reach, sub, Some(false))),
        },
    }
}
