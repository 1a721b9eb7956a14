//! Background jobs: small named loops that stop on the shared shutdown signal; each has a
//! `run_once(&AppState)` that tests call directly. Jobs over the whole deployment (retention of
//! analytics and of the audit log, the blob sweeper, expired uploads and collaboration sessions) run on the one instance holding the job's lease in the database (`claimed`);
//! jobs over an instance's own state (its view counts, its local limiters) run everywhere.

pub mod audit_retention;
pub mod blob_gc;
pub mod retention;
pub mod session_expiry;
pub mod upload_expiry;
pub mod view_counts;
pub mod webhooks;

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::AppState;

/// Starts every periodic job.
pub fn spawn_all(state: AppState, shutdown: CancellationToken) -> Vec<JoinHandle<()>> {
    let gc_every = Duration::from_secs(state.config.blob_gc_interval_secs.max(1));
    let writer = tokio::spawn(state.analytics.clone().run_writer(shutdown.clone()));
    let webhooks = tokio::spawn(webhooks::run(state.clone(), shutdown.clone()));
    vec![
        writer,
        webhooks,
        every("analytics_retention", Duration::from_secs(3600), state.clone(), shutdown.clone(), |s| async move {
            if claimed(&s, "analytics_retention", Duration::from_secs(3600)).await? {
                retention::run_once(&s).await?;
            }
            Ok(())
        }),
        every("audit_retention", audit_retention::PERIOD, state.clone(), shutdown.clone(), |s| async move {
            audit_retention::round(&s).await.map(|_| ())
        }),
        every("blob_gc", gc_every, state.clone(), shutdown.clone(), move |s| async move {
            if claimed(&s, "blob_gc", gc_every).await? {
                blob_gc::run_once(&s).await?;
            }
            Ok(())
        }),
        every("upload_expiry", Duration::from_secs(300), state.clone(), shutdown.clone(), |s| async move {
            if claimed(&s, "upload_expiry", Duration::from_secs(300)).await? {
                upload_expiry::run_once(&s).await?;
            }
            Ok(())
        }),
        every("session_expiry", Duration::from_secs(60), state.clone(), shutdown.clone(), |s| async move {
            if claimed(&s, "session_expiry", Duration::from_secs(60)).await? {
                session_expiry::run_once(&s).await?;
            }
            Ok(())
        }),
        every("view_counts", Duration::from_secs(1), state.clone(), shutdown.clone(), |s| async move {
            view_counts::run_once(&s).await.map(|_| ())
        }),
        every("rate_limit_cleanup", Duration::from_secs(60), state, shutdown, |s| async move {
            s.limits.retain_recent();
            s.store.purge_download_grants(s.clock.now_ms()).await.map(|_| ())
        }),
    ]
}

/// Whether this instance runs the deployment-wide job `name` this round: it holds (or takes over)
/// the job's lease for one `period`, so that of N instances one does the work once.
pub async fn claimed(state: &AppState, name: &str, period: Duration) -> anyhow::Result<bool> {
    let now = state.clock.now_ms();
    state.store.claim_job(name, &state.rooms.instance, now, now + period.as_millis() as i64).await
}

/// Runs `job` every `period` until `shutdown`; failures are logged and retried next round.
fn every<F, Fut>(
    name: &'static str,
    period: Duration,
    state: AppState,
    shutdown: CancellationToken,
    job: F,
) -> JoinHandle<()>
where
    F: Fn(AppState) -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {
                    if let Err(e) = job(state.clone()).await {
                        tracing::warn!(job = name, error = %e, "background job failed; retrying next round");
                    }
                }
            }
        }
    })
}
