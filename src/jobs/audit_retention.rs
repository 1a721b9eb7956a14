//! Audit retention: entries older than `audit_retention_days` are deleted (hourly, on the one
//! instance holding the job's lease, and by `vitrine retention run`). Nothing else deletes them.

use crate::app::AppState;

/// Deletes the entries past retention by the app's clock; returns how many.
pub async fn run_once(state: &AppState) -> anyhow::Result<u64> {
    let cutoff = state.clock.now_ms() - i64::from(state.config.audit_retention_days) * 86_400_000;
    let removed = state.store.delete_audit_before(cutoff).await?;
    if removed > 0 {
        tracing::info!(removed, "audit retention removed old entries");
    }
    Ok(removed)
}
