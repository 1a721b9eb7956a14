//! The leftover sweeper, run with `run_once` (never with sleeps).

use bytes::Bytes;
use reqwest::StatusCode;

use crate::helpers::{Spawn, TestApp, fixtures};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_removes_interrupted_uploads_and_orphans_but_keeps_referenced_blobs() {
    let app = TestApp::spawn_with(Spawn { tweak: Box::new(|c| c.blob_gc_grace_secs = 0), ..Default::default() }).await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    let kept = app.upload(&token, "keep.pdf", fixtures::pdf(1000)).await;
    // What a crash leaves: a temporary blob, a committed blob whose row never was, a staging file.
    app.state
        .blobs
        .put_bytes("tmp/crashed-upload", Bytes::from_static(b"partial"), "application/octet-stream")
        .await
        .expect("put");
    app.state
        .blobs
        .put_bytes("assets/1/deadbeef", Bytes::from_static(b"orphan"), "application/pdf")
        .await
        .expect("put");
    let staging = app.dir.path().join("blobs/tmp/upload#1");
    std::fs::write(&staging, b"half").expect("staging");
    let report = vitrine::jobs::blob_gc::run_once(&app.state).await.expect("sweep");
    assert_eq!(report.temporary_removed, 2);
    assert_eq!(report.orphans_removed, 1);
    assert!(!staging.exists());
    let r = app.client.get(kept["download_url"].as_str().expect("url")).send().await.expect("get");
    assert_eq!(r.status(), StatusCode::OK, "referenced blobs stay");
    let again = vitrine::jobs::blob_gc::run_once(&app.state).await.expect("sweep");
    assert_eq!(again, vitrine::jobs::blob_gc::GcReport::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_leaves_young_blobs_alone() {
    let app = TestApp::spawn().await;
    app.state
        .blobs
        .put_bytes("tmp/in-flight", Bytes::from_static(b"partial"), "application/octet-stream")
        .await
        .expect("put");
    app.state.blobs.put_bytes("assets/1/committing", Bytes::from_static(b"x"), "application/pdf").await.expect("put");
    let report = vitrine::jobs::blob_gc::run_once(&app.state).await.expect("sweep");
    assert_eq!(report, vitrine::jobs::blob_gc::GcReport::default());
    // Once the grace period has passed on the app's clock, they are leftovers.
    app.advance(std::time::Duration::from_secs(app.state.config.blob_gc_grace_secs));
    let report = vitrine::jobs::blob_gc::run_once(&app.state).await.expect("sweep");
    assert_eq!(report, vitrine::jobs::blob_gc::GcReport { temporary_removed: 1, orphans_removed: 1 });
}

/// Jobs over the whole deployment run on one instance at a time (SPEC §9): the instance holding
/// the job's lease runs it, the other skips it, and takes over once the holder stops renewing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_wide_job_runs_on_one_instance_and_another_takes_over_when_it_stops() {
    let clock = std::sync::Arc::new(vitrine::domain::time::ManualClock::new(1_800_000_000_000));
    let a = TestApp::spawn_with(Spawn { clock: Some(clock.clone()), ..Default::default() }).await;
    let db = a.state.config.database_url.clone();
    let b = TestApp::spawn_with(Spawn {
        clock: Some(clock.clone()),
        tweak: Box::new(move |c| c.database_url = db),
        ..Default::default()
    })
    .await;
    let period = std::time::Duration::from_secs(3600);
    let claim = |app: &TestApp| {
        let state = app.state.clone();
        async move { vitrine::jobs::claimed(&state, "blob_gc", period).await.expect("claim") }
    };
    assert!(claim(&a).await, "the first instance takes the lease");
    assert!(!claim(&b).await, "the other skips the job while the lease runs");
    clock.set(1_800_000_000_000 + 3_600_000);
    assert!(claim(&a).await, "the holder renews at its next round");
    assert!(!claim(&b).await);
    // A stops renewing (it died): once its lease has run out, B does the work.
    clock.set(1_800_000_000_000 + 2 * 3_600_000 + 1);
    assert!(claim(&b).await, "another instance takes over an expired lease");
    assert!(!claim(&a).await, "and the old holder now skips");
}
