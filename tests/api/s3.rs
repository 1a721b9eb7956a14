//! The S3 backend against a real S3 server (s3s-fs) run in-process: upload, content with ranges,
//! presigned redirects, deletion and the sweeper; the upload pipeline never reads an object back.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Clamd, Db, S3Server, Spawn, TestApp, assert_error, chat_session, chat_upload, created, fixtures};

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

/// The requests the S3 server received after the first `from`.
fn requests_since(s3: &S3Server, from: usize) -> Vec<(String, String)> {
    s3.requests.lock().unwrap_or_else(|e| e.into_inner())[from..].to_vec()
}

fn request_count(s3: &S3Server) -> usize {
    s3.requests.lock().unwrap_or_else(|e| e.into_inner()).len()
}

/// GET and HEAD requests for objects (listings name only the bucket) after the first `from`.
fn object_reads(s3: &S3Server, from: usize) -> Vec<(String, String)> {
    let objects = format!("/{}/", s3.bucket);
    requests_since(s3, from)
        .into_iter()
        .filter(|(m, p)| (m == "GET" || m == "HEAD") && p.starts_with(&objects))
        .collect()
}

/// Scratch copies of uploads under `data_dir/tmp`: files there, or still open in this process
/// (they are unlinked at once, so an open one shows as `(deleted)` in /proc/self/fd).
fn scratch_files(app: &TestApp) -> usize {
    let dir = app.dir.path().join("tmp");
    let on_disk = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
    let dir = dir.canonicalize().unwrap_or(dir);
    let open = std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.starts_with(&dir))
        .count();
    on_disk + open
}

/// Issue 19: on S3 an upload is sniffed, scanned (when clamd is here), thumbnailed and probed from
/// the bytes as they arrive; the object is never read back (no GET or HEAD) once written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_on_s3_never_read_the_object_back() {
    let clamd = Clamd::start().await;
    let address = clamd.as_ref().map(|c| c.address.clone());
    let s3 = Arc::new(S3Server::start().await);
    let app = TestApp::spawn_with(Spawn {
        s3: Some(s3.clone()),
        tweak: Box::new(move |c| c.clamd_address = address),
        ..Default::default()
    })
    .await;
    let (company, session, visitor) = chat_session(&app).await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    let from = request_count(&s3);
    let f = created(chat_upload(&app, &visitor, (&company, &session), "p.png", fixtures::png(640, 480)).await).await;
    assert!(f["thumbnail"].as_str().is_some_and(|t| t.contains("/files/")), "{f}");
    let img = app.upload(&token, "p.png", fixtures::png(400, 200)).await;
    assert_eq!((&img["width"], &img["height"]), (&json!(400), &json!(200)));
    assert!(img["thumbnail_url"].is_string());
    let pdf = app.upload(&token, "report.pdf", fixtures::pdf(300_000)).await;
    assert_eq!(pdf["mime_type"], "application/pdf");
    let wav = app.upload(&token, "tone.wav", fixtures::wav(2)).await;
    assert_eq!(wav["duration_seconds"], 2.0);
    let reads = object_reads(&s3, from);
    assert!(reads.is_empty(), "the uploads read objects back: {reads:?}");
    // The log does see the uploads' own requests (multipart parts, renames, thumbnails).
    let objects = format!("/{}/tmp/", s3.bucket);
    let writes = requests_since(&s3, from)
        .iter()
        .filter(|(m, p)| (m == "PUT" || m == "POST") && p.starts_with(&objects))
        .count();
    assert!(writes >= 4 * 3, "{:?}", requests_since(&s3, from));
    // The checks did read the scratch copies; none is left.
    assert!(app.dir.path().join("tmp").is_dir());
    assert_eq!(scratch_files(&app), 0);
    if clamd.is_some() {
        // The scan really ran, on the bytes as they came in.
        let from = request_count(&s3);
        let r = chat_upload(&app, &visitor, (&company, &session), "eicar.txt", fixtures::eicar()).await;
        assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "infected").await;
        assert!(object_reads(&s3, from).is_empty());
    }
}

/// Refused uploads (executable, too large, a corrupt image, infected) leave neither a temporary
/// object nor a scratch file behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_uploads_on_s3_leave_no_temporary_object_and_no_scratch_file() {
    let clamd = Clamd::start().await;
    let address = clamd.as_ref().map(|c| c.address.clone());
    let s3 = Arc::new(S3Server::start().await);
    let app = TestApp::spawn_with(Spawn {
        s3: Some(s3),
        tweak: Box::new(move |c| {
            c.clamd_address = address;
            c.chat_max_bytes = 100_000;
        }),
        ..Default::default()
    })
    .await;
    let (company, session, visitor) = chat_session(&app).await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    let png = fixtures::png(640, 480);
    let mut cases = vec![
        ("x.jpg", fixtures::elf(), StatusCode::UNPROCESSABLE_ENTITY, "executable_refused"),
        ("big.pdf", fixtures::pdf(200_000), StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        ("cut.png", png[..png.len() / 2].to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "corrupt_image"),
    ];
    if clamd.is_some() {
        cases.push(("eicar.txt", fixtures::eicar(), StatusCode::UNPROCESSABLE_ENTITY, "infected"));
    }
    let nothing_left = async || {
        assert!(app.state.blobs.list("tmp").await.expect("list").is_empty(), "a temporary object is left");
        assert!(app.state.blobs.list("chat").await.expect("list").is_empty(), "a refused chat file was stored");
        assert_eq!(scratch_files(&app), 0, "a scratch file is left");
    };
    for (name, bytes, status, code) in cases {
        let r = chat_upload(&app, &visitor, (&company, &session), name, bytes).await;
        assert_error(r, status, code).await;
        nothing_left().await;
    }
    let r = app.upload_with(Some(&token), "x.jpg", fixtures::elf(), &[]).await;
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "executable_refused").await;
    nothing_left().await;
    // The scratch directory was used (S3 keeps its copies there) and is empty.
    assert!(app.dir.path().join("tmp").is_dir());
}
