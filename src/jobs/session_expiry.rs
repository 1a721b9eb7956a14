//! Records the end of collaboration sessions that expired with no socket open to see it (an open
//! socket records it at the moment itself): `session_ended` in the room and the
//! `collaboration.session_ended` webhook event, once per session whatever the number of
//! instances (the store's conditional UPDATE claims each session's end). Runs every minute on
//! the instance holding the job's lease.

use crate::app::AppState;

/// One round; returns how many sessions' ends this round recorded.
pub async fn run_once(state: &AppState) -> anyhow::Result<usize> {
    let n = crate::service::collaboration::expire_due(state).await?;
    if n > 0 {
        tracing::info!(expired = n, "collaboration sessions expired");
    }
    Ok(n)
}
