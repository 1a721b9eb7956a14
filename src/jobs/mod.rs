//! Background jobs: small named loops that stop on the shared shutdown signal; each has a
//! `run_once(&AppState)` that tests call directly.

pub mod blob_gc;
pub mod retention;
pub mod view_counts;

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::AppState;

/// Starts every periodic job.
pub fn spawn_all(state: AppState, shutdown: CancellationToken) -> Vec<JoinHandle<()>> {
    let gc_every = Duration::from_secs(state.config.blob_gc_interval_secs.max(1));
    let writer = tokio::spawn(state.analytics.clone().run_writer(shutdown.clone()));
    vec![
        writer,
        every("analytics_retention", Duration::from_secs(3600), state.clone(), shutdown.clone(), |s| async move {
            retention::run_once(&s).await.map(|_| ())
        }),
        every("blob_gc", gc_every, state.clone(), shutdown.clone(), |s| async move {
            blob_gc::run_once(&s).await.map(|_| ())
        }),
        every("view_counts", Duration::from_secs(1), state.clone(), shutdown.clone(), |s| async move {
            view_counts::run_once(&s).await.map(|_| ())
        }),
        every("rate_limit_cleanup", Duration::from_secs(60), state, shutdown, |s| async move {
            s.limits.retain_recent();
            s.store.purge_download_grants(crate::domain::time::now_ms()).await.map(|_| ())
        }),
    ]
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
