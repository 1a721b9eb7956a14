//! The leftover sweeper: removes temporary blobs of interrupted or refused uploads and blobs no
//! row references any more, once they are older than the grace period (an upload may be
//! between its blob commit and its row commit).

use std::time::UNIX_EPOCH;

use crate::app::AppState;
use crate::blob::TMP_PREFIX;
use crate::service::blobs::older_than_grace;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    pub temporary_removed: usize,
    pub orphans_removed: usize,
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
