//! The owner's live notification channel: `GET /ws/notifications/?token=<access token>`.
//! Messages are JSON: `connection_established` first, then durable `notification` events of the
//! room `user:{id}` (recoverable with `?last_seq=`).

use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::error::{AppResult, ErrorResponse};
use crate::http::extract::ApiQuery;
use crate::http::ws::socket_user;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(connect))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct WsQuery {
    /// The account's access token (browsers cannot set headers on WebSockets); same-origin pages
    /// may use their session cookie instead.
    pub token: Option<String>,
    /// The last `seq` the client saw: the notifications after it are replayed.
    pub last_seq: Option<i64>,
}

/// Opens the caller's notification socket (docs/realtime.md).
#[utoipa::path(get, path = "/ws/notifications", tag = "notifications", params(WsQuery),
    responses((status = 101, description = "WebSocket"), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse)))]
pub async fn connect(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<WsQuery>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> AppResult<Response> {
    let signed = socket_user(&state, &headers, q.token.as_deref()).await?;
    Ok(crate::http::ws::upgrade(state, ws, move |state, socket| {
        crate::http::ws::notifications::serve(state, signed.user, signed.session_id, q.last_seq, socket)
    }))
}
