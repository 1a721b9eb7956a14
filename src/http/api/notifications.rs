//! The owner's live notification channel: `GET /ws/notifications/?token=<access token>`.
//! Messages are JSON: `connection_established` first, then `notification` events.

use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::domain::users::User;
use crate::error::{AppError, AppResult, ErrorResponse};
use crate::http::extract::{ApiQuery, user_from_token};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(connect))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct WsQuery {
    /// The account's access token (browsers cannot set headers on WebSockets).
    pub token: Option<String>,
}

/// Opens the caller's notification socket.
#[utoipa::path(get, path = "/ws/notifications", tag = "notifications", params(WsQuery),
    responses((status = 101, description = "WebSocket"), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse)))]
pub async fn connect(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<WsQuery>,
    ws: WebSocketUpgrade,
) -> AppResult<Response> {
    let token = q.token.ok_or_else(|| AppError::Unauthenticated("add ?token=<access token>".into()))?;
    let user = user_from_token(&state, &token).await?;
    Ok(ws.max_message_size(64 * 1024).on_upgrade(move |socket| serve(state, user, socket)))
}

async fn serve(state: AppState, user: User, mut socket: WebSocket) {
    let mut rx = state.notifier.subscribe(user.id);
    metrics::gauge!("vitrine_websockets_open", "channel" => "notifications").increment(1.0);
    let hello = serde_json::json!({"type": "connection_established", "user_id": user.id});
    let mut ping = tokio::time::interval(Duration::from_secs(30));
    ping.tick().await;
    if socket.send(Message::Text(hello.to_string().into())).await.is_ok() {
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Ok(text) => {
                        if socket.send(Message::Text(text.as_ref().into())).await.is_err() {
                            break;
                        }
                    }
                    // A slow socket skips what it missed rather than growing memory.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        let note = serde_json::json!({"type": "error", "code": "lagged", "error": format!("{n} notifications were skipped")});
                        if socket.send(Message::Text(note.to_string().into())).await.is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                },
                incoming = socket.recv() => match incoming {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                },
                _ = ping.tick() => {
                    if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                        break;
                    }
                }
            }
        }
    }
    metrics::gauge!("vitrine_websockets_open", "channel" => "notifications").decrement(1.0);
}
