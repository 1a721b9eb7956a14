//! Retention: raw analytics events older than `analytics_retention_days` are deleted (hourly, and
//! by `vitrine retention run`); the daily rollups the reports read stay. Sign-in sessions that
//! expired or were revoked are deleted in the same round (their tokens are refused either way), and
//! so are single sign-ons that were started but never finished.

use crate::app::AppState;

/// Deletes what is past retention; returns the number of raw events removed.
pub async fn run_once(state: &AppState) -> anyhow::Result<u64> {
    let cutoff = state.clock.now_ms() - state.config.analytics_retention_days as i64 * 86_400_000;
    let removed = state.store.delete_old_events(cutoff).await?;
    if removed > 0 {
        tracing::info!(removed, "analytics retention removed old events");
    }
    metrics::counter!("vitrine_analytics_events_expired_total").increment(removed);
    let sessions = state.store.delete_dead_sessions(state.clock.now_ms()).await?;
    if sessions > 0 {
        tracing::info!(sessions, "retention removed ended sign-in sessions");
    }
    let sso = state.store.delete_expired_oidc_logins(state.clock.now_ms()).await?;
    if sso > 0 {
        tracing::info!(sso, "retention removed single sign-ons that were never finished");
    }
    Ok(removed)
}
