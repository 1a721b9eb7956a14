//! The leftover sweeper: removes temporary blobs of interrupted or refused uploads and blobs no
//! row references any more, once they are older than the grace period (an upload may be
//! between its blob commit and its row commit).

use std::time::UNIX_EPOCH;

use crate::app::AppState;
use crate::blob::TMP_PREFIX;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    pub temporary_removed: usize,
    pub orphans_removed: usize,
}

/// Whether a blob modified at `modified_ms` (unix ms) is past the grace period by the app's clock.
fn older_than_grace(state: &AppState, modified_ms: i64) -> bool {
    let grace_ms = state.config.blob_gc_grace_secs as i64 * 1000;
    state.clock.now_ms() - modified_ms >= grace_ms
}

/// One sweep over temporary and content blobs.
pub async fn run_once(state: &AppState) -> anyhow::Result<GcReport> {
    let mut report = GcReport::default();
    for m in state.blobs.list(TMP_PREFIX).await? {
        if older_than_grace(state, m.last_modified.timestamp_millis()) {
            state.blobs.delete(m.location.as_ref()).await?;
            report.temporary_removed += 1;
        }
    }
    report.temporary_removed += sweep_local_staging(state)?;
    for prefix in ["assets", "thumbs", "chat"] {
        for m in state.blobs.list(prefix).await? {
            let key = m.location.as_ref();
            if older_than_grace(state, m.last_modified.timestamp_millis()) && !state.store.blob_referenced(key).await? {
                state.blobs.delete(key).await?;
                report.orphans_removed += 1;
            }
        }
    }
    if report != GcReport::default() {
        tracing::info!(?report, "blob sweeper removed leftovers");
    }
    metrics::gauge!("vitrine_stored_bytes").set(state.store.stored_bytes().await? as f64);
    for (company, bytes) in state.store.chat_stored_bytes().await? {
        crate::app::tenant_metric(|| {
            metrics::gauge!("vitrine_chat_stored_bytes", "company_id" => company).set(bytes as f64)
        });
    }
    Ok(report)
}

/// The local backend writes multipart uploads to hidden staging files (`name#n`) that listings
/// do not show; a crash mid-upload leaves them behind.
fn sweep_local_staging(state: &AppState) -> anyhow::Result<usize> {
    let Some(root) = state.blobs.local_root() else {
        return Ok(0);
    };
    let dir = root.join(TMP_PREFIX);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(0);
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .is_some_and(|t| older_than_grace(state, t.as_millis() as i64));
        if name.contains('#') && old && std::fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
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
