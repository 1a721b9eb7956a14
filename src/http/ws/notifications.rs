//! The notification socket (`/ws/notifications/`): an account's durable events of the room
//! `user:{id}` (`service::notifications`), with the same recovery as every room.

use axum::extract::ws::{Message, WebSocket};

use super::{self as socket, CLOSE_TOO_SLOW, error_frame, send_frame, send_text};
use crate::app::AppState;
use crate::domain::users::User;
use crate::error::ErrorCode;
use crate::realtime::Next;
use crate::service::notifications::room;

/// Runs an account's notification socket until it closes.
/// `login` is the sign-in session the socket was opened with: its logout closes the socket.
pub async fn serve(state: AppState, user: User, login: String, last_seq: Option<i64>, mut ws: WebSocket) {
    let mut sub = match Box::pin(state.rooms.subscribe(&room(user.id))).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "could not open a notification room");
            let _ =
                send_text(&mut ws, &error_frame(ErrorCode::Unavailable, "notifications are unavailable; try again"))
                    .await;
            socket::close(&mut ws, CLOSE_TOO_SLOW, "unavailable").await;
            return;
        }
    };
    metrics::gauge!("vitrine_websockets_open", "channel" => "notifications").increment(1.0);
    let mut hello = serde_json::json!({"type": "connection_established", "user_id": user.id, "seq": sub.last_seq});
    let mut missed = Vec::new();
    if let Some(after) = last_seq {
        match Box::pin(sub.replay(after)).await {
            Ok(m) => {
                hello["recovered"] = true.into();
                missed = m;
            }
            Err(_) => hello["recovered"] = false.into(),
        }
    }
    let mut ok = send_text(&mut ws, &hello.to_string()).await;
    for env in missed {
        ok = ok && send_frame(&mut ws, &env.frame).await;
    }
    let mut heartbeat = socket::Heartbeat::default();
    let mut away = std::pin::pin!(state.sockets.going_away());
    let mut revocations = state.rooms.revocations();
    let me = user.id;
    while ok {
        tokio::select! {
            next = sub.next() => match next {
                Next::Frames(frames) => {
                    for env in frames {
                        if !send_frame(&mut ws, &env.frame).await {
                            ok = false;
                            break;
                        }
                    }
                }
                Next::Lagged => {
                    socket::close(&mut ws, CLOSE_TOO_SLOW, "too slow; reconnect with last_seq").await;
                    break;
                }
            },
            incoming = ws.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(Message::Text(t))) => {
                    heartbeat.heard();
                    // The only request: {"type": "resume", "last_seq": N}.
                    let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                    match (v["type"].as_str(), v["last_seq"].as_i64()) {
                        (Some("resume"), Some(after)) => match sub.replay(after).await {
                            Ok(m) => for env in m { ok = ok && send_frame(&mut ws, &env.frame).await; },
                            Err(_) => {
                                let f = serde_json::json!({"type": "connection_established", "user_id": user.id, "seq": sub.last_seq, "recovered": false});
                                ok = send_text(&mut ws, &f.to_string()).await;
                            }
                        },
                        (Some("ping"), _) => ok = send_text(&mut ws, r#"{"type":"pong"}"#).await,
                        _ => ok = send_text(&mut ws, &error_frame(ErrorCode::UnknownType, "send resume {last_seq} or ping")).await,
                    }
                }
                Some(Ok(_)) => heartbeat.heard(),
            },
            _ = heartbeat.due() => ok = heartbeat.beat(&mut ws).await,
            () = &mut away => {
                socket::going_away(&mut ws).await;
                break;
            }
            () = socket::revoked(&mut revocations, |r| socket::ends_login(r, me, &login)) => {
                socket::close(&mut ws, socket::CLOSE_REVOKED, socket::REVOKED).await;
                break;
            }
        }
    }
    metrics::gauge!("vitrine_websockets_open", "channel" => "notifications").decrement(1.0);
}
