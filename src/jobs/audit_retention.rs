//! Audit retention: entries older than `audit_retention_days` are deleted (hourly, on the one
//! instance holding the job's lease, and by `vitrine retention run`). Nothing else deletes them.

use std::time::Duration;

use crate::app::AppState;

/// How often the job runs, and how long its lease lasts.
pub const PERIOD: Duration = Duration::from_secs(3600);

/// One scheduled round: `run_once` when this instance holds (or takes) the job's lease, so that
/// of N instances one deletes; `None` when another instance holds it.
pub async fn round(state: &AppState) -> anyhow::Result<Option<u64>> {
    if super::claimed(state, "audit_retention", PERIOD).await? { Ok(Some(run_once(state).await?)) } else { Ok(None) }
}

/// Deletes the entries past retention by the app's clock; returns how many.
pub async fn run_once(state: &AppState) -> anyhow::Result<u64> {
    let cutoff = state.clock.now_ms() - i64::from(state.config.audit_retention_days) * 86_400_000;
    let removed = state.store.delete_audit_before(cutoff).await?;
    if removed > 0 {
        tracing::info!(removed, "audit retention removed old entries");
    }
    Ok(removed)
}
