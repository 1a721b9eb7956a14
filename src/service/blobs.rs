//! Blob lifetimes: a blob no row references any more is removed once it is past the grace
//! period (the sweeper in `jobs::blob_gc` takes what is left).

use crate::app::AppState;

/// Whether a blob modified at `modified_ms` (unix ms) is past the grace period by the app's clock.
pub fn older_than_grace(state: &AppState, modified_ms: i64) -> bool {
    let grace_ms = state.config.blob_gc_grace_secs as i64 * 1000;
    state.clock.now_ms() - modified_ms >= grace_ms
}

/// Called when a row stops referencing `key`: removes the blob now if nothing else uses it and
/// it is past the grace period; otherwise the sweeper will.
pub async fn release(state: &AppState, key: &str) {
    let result = async {
        if state.store.blob_referenced(key).await? {
            return Ok::<_, anyhow::Error>(());
        }
        match state.blobs.head(key).await {
            Ok(m) if older_than_grace(state, m.last_modified.timestamp_millis()) => state.blobs.delete(key).await,
            _ => Ok(()),
        }
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, key, "could not release a blob; the sweeper will retry");
    }
}
