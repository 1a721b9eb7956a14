//! Real-time delivery. For now: per-account notification channels (in-process), used by
//! `notify_on_access` and by the owner's WebSocket `/ws/notifications/`. Rooms, sequence numbers
//! and the Redis bus arrive with collaboration.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

/// Messages waiting for a slow socket before it starts missing them.
const PER_USER_BUFFER: usize = 64;

/// Live notifications per account; serialised once and shared by every socket of that account.
#[derive(Default)]
pub struct Notifier {
    channels: Mutex<HashMap<i64, broadcast::Sender<Arc<str>>>>,
}

impl Notifier {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, broadcast::Sender<Arc<str>>>> {
        self.channels.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn subscribe(&self, user_id: i64) -> broadcast::Receiver<Arc<str>> {
        self.lock().entry(user_id).or_insert_with(|| broadcast::channel(PER_USER_BUFFER).0).subscribe()
    }

    /// Sends to every open socket of `user_id`; returns how many received it.
    pub fn notify(&self, user_id: i64, message: &serde_json::Value) -> usize {
        let mut map = self.lock();
        let Some(tx) = map.get(&user_id) else { return 0 };
        let text: Arc<str> = Arc::from(message.to_string());
        match tx.send(text) {
            Ok(n) => n,
            Err(_) => {
                // Nobody listens any more.
                map.remove(&user_id);
                0
            }
        }
    }
}
