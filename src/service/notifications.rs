//! An account's notifications: durable events of the room `user:{id}`, delivered live on
//! `/ws/notifications/` (and across instances through the bus) with the same recovery as every room.

use crate::app::AppState;

/// The room of `user_id`'s notifications.
pub fn room(user_id: i64) -> String {
    format!("user:{user_id}")
}

/// Records a notification for `user_id` and delivers it live; never waits for it.
/// `fields` are the notification's fields (`kind`, …) next to `type`, `seq` and `at`.
pub fn notify(state: &AppState, user_id: i64, fields: serde_json::Value) {
    let state = state.clone();
    tokio::spawn(async move {
        if let Err(e) = state.rooms.emit(&room(user_id), "notification", fields).await {
            tracing::warn!(error = %e, "could not record a notification");
        }
    });
}
