//! The S3 backend against a real S3 server (s3s-fs) run in-process: upload, content with ranges,
//! presigned redirects, deletion and the sweeper.

use std::sync::Arc;

use reqwest::StatusCode;

use crate::helpers::{Db, S3Server, Spawn, TestApp, assert_error, fixtures};

async fn s3_app(db: Db) -> TestApp {
    let s3 = Arc::new(S3Server::start().await);
    TestApp::spawn_with(Spawn { db, s3: Some(s3), tweak: Box::new(|c| c.blob_gc_grace_secs = 0), ..Default::default() })
        .await
}

crate::on_both_databases!(assets_round_trip_through_s3);

async fn assets_round_trip_through_s3(db: Db) {
    let app = s3_app(db).await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    let bytes = fixtures::pdf(200_000);
    let v = app.upload(&token, "report.pdf", bytes.clone()).await;
    let sha = v["sha256"].as_str().expect("sha");
    // The blob sits in the bucket under its content hash.
    let s3 = app.s3.as_ref().expect("s3");
    let on_disk = s3.root.path().join(&s3.bucket).join("assets/1").join(sha);
    assert_eq!(std::fs::read(&on_disk).expect("object in bucket"), bytes);
    // Streamed with ranges through the API.
    let path = format!("/api/v3/assets/{}/content", v["id"]);
    let r = app
        .req(reqwest::Method::GET, &path, Some(&token))
        .header("range", "bytes=1000-1999")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.bytes().await.expect("bytes").to_vec(), bytes[1000..2000].to_vec());
    let r =
        app.req(reqwest::Method::GET, &path, Some(&token)).header("range", "bytes=300000-").send().await.expect("get");
    assert_error(r, StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable").await;
    // The signed URL redirects to a presigned S3 URL that the S3 server accepts.
    let r = app.client.get(v["download_url"].as_str().expect("url")).send().await.expect("get");
    assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
    let presigned = r.headers()["location"].to_str().expect("location").to_string();
    assert!(presigned.starts_with(&s3.endpoint) && presigned.contains("X-Amz-Signature"));
    let r = app.client.get(&presigned).send().await.expect("get");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.expect("bytes").to_vec(), bytes);
    let r = app.client.get(&presigned).header("range", "bytes=0-99").send().await.expect("get");
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.bytes().await.expect("bytes").to_vec(), bytes[..100].to_vec());
    // A tampered presigned URL is refused by S3 itself.
    let r = app.client.get(presigned.replace("X-Amz-Signature=", "X-Amz-Signature=0")).send().await.expect("get");
    assert!(r.status().is_client_error(), "tampered presigned URL: {}", r.status());
    // Images get thumbnails in the bucket too.
    let img = app.upload(&token, "p.png", fixtures::png(400, 200)).await;
    assert_eq!(img["width"], 400);
    assert!(img["thumbnail_url"].is_string());
    // Refused uploads leave no temporary object.
    let r = app.upload_with(Some(&token), "x.jpg", fixtures::elf(), &[]).await;
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "executable_refused").await;
    assert!(app.state.blobs.list("tmp").await.expect("list").is_empty());
    // Deleting removes the object.
    assert_eq!(
        app.delete(&format!("/api/v3/assets/{}/", v["id"]), Some(&token)).await.status(),
        StatusCode::NO_CONTENT
    );
    assert!(!on_disk.exists());
    assert_eq!(app.get("/readyz", None).await.status(), StatusCode::OK);
}
