//! Removes resumable uploads past their expiry (`upload_expiry_hours` after their last bytes):
//! an unfinished one's part file, S3 multipart upload (aborted) and tail objects, then its row;
//! a finished one's row (its asset stays). Runs on the instance holding the job's lease.

use crate::app::AppState;

/// Uploads removed per round at most (the next round takes the rest).
const BATCH: i64 = 500;

/// One round; returns how many uploads were removed.
pub async fn run_once(state: &AppState) -> anyhow::Result<usize> {
    let n = crate::service::resumable::remove_expired(state, BATCH).await?;
    if n > 0 {
        tracing::info!(removed = n, "expired resumable uploads removed");
    }
    Ok(n)
}
