//! Resumable uploads (tus 1.0.0, SPEC §12) at `/api/v3/uploads/`: the protocol matrix, uploads in
//! several PATCHes that become assets byte for byte, refused content, a restart mid-upload, two
//! instances, S3 multipart parts, and the expiry job.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use reqwest::{Method, StatusCode};

use crate::helpers::{Db, S3Server, Spawn, TestApp, assert_error, fixtures};

crate::on_both_databases!(
    a_png_in_three_patches_becomes_the_same_asset_as_a_plain_upload,
    two_instances_serve_one_upload,
    an_unfinished_upload_expires_and_its_part_file_goes,
    s3_parts_of_5_mib_assemble_a_12_mib_file,
    concurrent_creations_stop_exactly_at_the_open_uploads_limit,
);

const TUS: (&str, &str) = ("tus-resumable", "1.0.0");

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn metadata(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k} {}", b64(v))).collect::<Vec<_>>().join(",")
}

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// Thirty creations at once for an account allowed four open uploads, one of which is open
/// already: exactly three succeed, the rest are 429, and another account is not held to it.
async fn concurrent_creations_stop_exactly_at_the_open_uploads_limit(db: Db) {
    let app =
        TestApp::spawn_with(Spawn { db, tweak: Box::new(|c| c.upload_max_open_per_user = 4), ..Default::default() })
            .await;
    let (token, ada) = app.register("ada@example.com", "Ada").await;
    let (other, bob) = app.register("bob@example.com", "Bob").await;
    created_upload(&app, &token, 100, "first.bin").await;
    let mine = futures::future::join_all((0..30).map(|_| create(&app, &token, 100, "mine.bin")));
    let theirs = futures::future::join_all((0..4).map(|_| create(&app, &other, 100, "theirs.bin")));
    let (mine, theirs) = tokio::join!(mine, theirs);
    let mut statuses: Vec<u16> = mine.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 3, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 27, "{statuses:?}");
    assert!(theirs.iter().all(|r| r.status() == StatusCode::CREATED), "another account has its own four");
    let now = app.state.clock.now_ms();
    assert_eq!(app.state.store.count_open_uploads(&format!("user:{ada}"), now).await.expect("count"), 4);
    assert_eq!(app.state.store.count_open_uploads(&format!("user:{bob}"), now).await.expect("count"), 4);
    // One more is refused on its own too.
    assert_error(create(&app, &token, 100, "late.bin").await, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

/// `POST /api/v3/uploads/` with `Upload-Length` and metadata.
async fn create(app: &TestApp, token: &str, length: usize, name: &str) -> reqwest::Response {
    app.req(Method::POST, "/api/v3/uploads/", Some(token))
        .header(TUS.0, TUS.1)
        .header("upload-length", length.to_string())
        .header("upload-metadata", metadata(&[("filename", name), ("title", "Holiday"), ("tags", "sea, sun")]))
        .send()
        .await
        .expect("create")
}

/// Creates an upload and returns its path.
async fn created_upload(app: &TestApp, token: &str, length: usize, name: &str) -> String {
    let r = create(app, token, length, name).await;
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
    let loc = header(&r, "location").expect("Location");
    assert!(loc.starts_with("/api/v3/uploads/"), "{loc}");
    assert!(header(&r, "upload-expires").is_some());
    assert_eq!(header(&r, "tus-resumable").as_deref(), Some("1.0.0"));
    loc
}

async fn patch(app: &TestApp, token: &str, loc: &str, offset: usize, bytes: &[u8]) -> reqwest::Response {
    app.req(Method::PATCH, loc, Some(token))
        .header(TUS.0, TUS.1)
        .header("upload-offset", offset.to_string())
        .header("content-type", "application/offset+octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .expect("patch")
}

async fn head(app: &TestApp, token: &str, loc: &str) -> reqwest::Response {
    let send = || app.req(Method::HEAD, loc, Some(token)).header(TUS.0, TUS.1).send();
    match send().await {
        Ok(r) => r,
        // A pooled connection the server closed after refusing a body (409 before reading it):
        // HEAD is idempotent, so ask again on a fresh connection.
        Err(e) if e.is_request() => send().await.expect("head"),
        Err(e) => panic!("head: {e}"),
    }
}

fn offset_of(r: &reqwest::Response) -> usize {
    header(r, "upload-offset").expect("Upload-Offset").parse().expect("number")
}

/// Sends `bytes` in PATCHes cut at `cuts`; returns the last response.
async fn send_in_parts(app: &TestApp, token: &str, loc: &str, bytes: &[u8], cuts: &[usize]) -> reqwest::Response {
    let mut at = 0;
    let mut last = None;
    for &end in cuts.iter().chain(std::iter::once(&bytes.len())) {
        let r = patch(app, token, loc, at, &bytes[at..end]).await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "PATCH at {at}");
        assert_eq!(offset_of(&r), end);
        at = end;
        last = Some(r);
    }
    last.expect("a PATCH")
}

/// The asset's bytes through the asset API.
async fn asset_bytes(app: &TestApp, token: &str, asset_path: &str) -> Vec<u8> {
    let r = app.get(&format!("{asset_path}content"), Some(token)).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.bytes().await.expect("bytes").to_vec()
}

#[tokio::test]
async fn options_tells_the_capabilities_without_a_token() {
    let app = TestApp::spawn().await;
    for path in ["/api/v3/uploads/", "/api/v3/uploads/0b9d3c1e-0000-4000-8000-000000000000"] {
        let r = app.req(Method::OPTIONS, path, None).send().await.expect("options");
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert_eq!(header(&r, "tus-version").as_deref(), Some("1.0.0"));
        assert_eq!(
            header(&r, "tus-extension").as_deref(),
            Some("creation,creation-with-upload,termination,expiration")
        );
        assert_eq!(header(&r, "tus-max-size"), Some(app.state.config.asset_max_bytes.to_string()));
    }
    // A browser's preflight is answered by CORS, which lets the tus headers through both ways.
    let r = app
        .req(Method::OPTIONS, "/api/v3/uploads/", None)
        .header("origin", "https://example.org")
        .header("access-control-request-method", "PATCH")
        .header("access-control-request-headers", "tus-resumable,upload-offset,content-type")
        .send()
        .await
        .expect("preflight");
    assert!(r.status().is_success());
    let allowed = header(&r, "access-control-allow-headers").unwrap_or_default().to_lowercase();
    assert!(allowed.contains("upload-offset") && allowed.contains("tus-resumable"), "{allowed}");
    let r = app
        .req(Method::HEAD, "/api/v3/uploads/x", None)
        .header("origin", "https://example.org")
        .send()
        .await
        .expect("h");
    let exposed = header(&r, "access-control-expose-headers").unwrap_or_default().to_lowercase();
    for h in ["location", "upload-offset", "upload-length", "upload-expires", "vitrine-asset"] {
        assert!(exposed.contains(h), "{h} exposed: {exposed}");
    }
}

#[tokio::test]
async fn the_protocol_refuses_what_it_must() {
    let app =
        TestApp::spawn_with(Spawn { tweak: Box::new(|c| c.upload_max_open_per_user = 3), ..Default::default() }).await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    let (other, _) = app.register("bob@example.com", "Bob").await;
    // No Tus-Resumable: 412 with Tus-Version, before anything else.
    let r =
        app.req(Method::POST, "/api/v3/uploads/", Some(&token)).header("upload-length", "10").send().await.expect("p");
    assert_eq!(header(&r, "tus-version").as_deref(), Some("1.0.0"));
    assert_error(r, StatusCode::PRECONDITION_FAILED, "precondition_failed").await;
    let r = app
        .req(Method::POST, "/api/v3/uploads/", Some(&token))
        .header(TUS.0, "0.2.2")
        .header("upload-length", "10")
        .send()
        .await
        .expect("p");
    assert_error(r, StatusCode::PRECONDITION_FAILED, "precondition_failed").await;
    // No token: 401.
    let r = app
        .req(Method::POST, "/api/v3/uploads/", None)
        .header(TUS.0, TUS.1)
        .header("upload-length", "10")
        .send()
        .await
        .expect("p");
    assert_error(r, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    // Upload-Length missing, malformed, deferred, over the limit.
    let post = |h: Vec<(&'static str, String)>| {
        let mut r = app.req(Method::POST, "/api/v3/uploads/", Some(&token)).header(TUS.0, TUS.1);
        for (k, v) in h {
            r = r.header(k, v);
        }
        r.send()
    };
    let v = assert_error(post(vec![]).await.expect("p"), StatusCode::BAD_REQUEST, "validation_error").await;
    assert!(v["fields"]["Upload-Length"].is_string(), "{v}");
    for bad in ["-1", "ten", "1.5", ""] {
        let r = post(vec![("upload-length", bad.into())]).await.expect("p");
        assert_error(r, StatusCode::BAD_REQUEST, "validation_error").await;
    }
    let r = post(vec![("upload-defer-length", "1".into())]).await.expect("p");
    assert_error(r, StatusCode::BAD_REQUEST, "validation_error").await;
    let over = (app.state.config.asset_max_bytes + 1).to_string();
    assert_error(post(vec![("upload-length", over)]).await.expect("p"), StatusCode::PAYLOAD_TOO_LARGE, "too_large")
        .await;
    // Malformed metadata: not base64, duplicate keys, a bad content_type: 400.
    for bad in ["filename !!!notbase64", "filename YQ==,filename YQ==", &metadata(&[("content_type", "nope")])] {
        let r = post(vec![("upload-length", "10".into()), ("upload-metadata", bad.to_string())]).await.expect("p");
        assert_error(r, StatusCode::BAD_REQUEST, "validation_error").await;
    }
    // A good one.
    let png = fixtures::png(40, 30);
    let loc = created_upload(&app, &token, png.len(), "a.png").await;
    // HEAD: offset 0, the length, no-store, the metadata echoed.
    let r = head(&app, &token, &loc).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(offset_of(&r), 0);
    assert_eq!(header(&r, "upload-length"), Some(png.len().to_string()));
    assert_eq!(header(&r, "cache-control").as_deref(), Some("no-store"));
    assert!(header(&r, "upload-metadata").expect("metadata").contains(&format!("filename {}", b64("a.png"))));
    // PATCH without the offset content type: 415; without Upload-Offset: 400; wrong offset: 409.
    let r = app
        .req(Method::PATCH, &loc, Some(&token))
        .header(TUS.0, TUS.1)
        .header("upload-offset", "0")
        .header("content-type", "application/octet-stream")
        .body(png.clone())
        .send()
        .await
        .expect("patch");
    assert_error(r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_type").await;
    let r = app
        .req(Method::PATCH, &loc, Some(&token))
        .header(TUS.0, TUS.1)
        .header("content-type", "application/offset+octet-stream")
        .body(png.clone())
        .send()
        .await
        .expect("patch");
    assert_error(r, StatusCode::BAD_REQUEST, "validation_error").await;
    assert_error(patch(&app, &token, &loc, 5, &png[5..10]).await, StatusCode::CONFLICT, "offset_mismatch").await;
    let r = patch(&app, &token, &loc, 0, &png[..10]).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_error(patch(&app, &token, &loc, 0, &png[..10]).await, StatusCode::CONFLICT, "offset_mismatch").await;
    // More bytes than Upload-Length: 413, nothing acknowledged beyond.
    let mut long = png[10..].to_vec();
    long.extend_from_slice(b"extra");
    assert_error(patch(&app, &token, &loc, 10, &long).await, StatusCode::PAYLOAD_TOO_LARGE, "too_large").await;
    assert_eq!(offset_of(&head(&app, &token, &loc).await), 10);
    // 412 on PATCH, HEAD and DELETE too.
    let r = app.req(Method::HEAD, &loc, Some(&token)).send().await.expect("head");
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(header(&r, "tus-version").as_deref(), Some("1.0.0"));
    // Another user's upload, or an unknown one: 404 whatever the method.
    assert_eq!(head(&app, &other, &loc).await.status(), StatusCode::NOT_FOUND);
    assert_error(patch(&app, &other, &loc, 10, &png[10..]).await, StatusCode::NOT_FOUND, "not_found").await;
    let r = app.req(Method::DELETE, &loc, Some(&other)).header(TUS.0, TUS.1).send().await.expect("delete");
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(head(&app, &token, "/api/v3/uploads/not-a-uuid").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(head(&app, &token, &loc).await.status(), StatusCode::OK);
    // Too many open uploads: 429 with Retry-After (3 allowed here; one is open).
    created_upload(&app, &token, 100, "b.pdf").await;
    created_upload(&app, &token, 100, "c.pdf").await;
    let r = create(&app, &token, 100, "d.pdf").await;
    assert!(header(&r, "retry-after").is_some());
    assert_error(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // DELETE removes it (and its part file); then HEAD and PATCH are 404, and a slot is free.
    let id = loc.rsplit('/').next().expect("id").to_string();
    let dir = app.dir.path().join("blobs/uploads").join(&id);
    assert!(dir.join("data").exists());
    let r = app.req(Method::DELETE, &loc, Some(&token)).header(TUS.0, TUS.1).send().await.expect("delete");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(!dir.exists(), "part file removed");
    assert_eq!(head(&app, &token, &loc).await.status(), StatusCode::NOT_FOUND);
    assert_error(patch(&app, &token, &loc, 10, &png[10..]).await, StatusCode::NOT_FOUND, "not_found").await;
    created_upload(&app, &token, 100, "d.pdf").await;
}

/// Tokens outlive the expiry tests' 25 hours.
fn long_tokens(c: &mut vitrine::config::Config) {
    c.token_ttl_secs = 30 * 24 * 3600;
}

async fn a_png_in_three_patches_becomes_the_same_asset_as_a_plain_upload(db: Db) {
    let app = TestApp::spawn_with(Spawn { db, tweak: Box::new(long_tokens), ..Default::default() }).await;
    let (token, user_id) = app.register("ada@example.com", "Ada").await;
    let png = fixtures::png(640, 480);
    let loc = created_upload(&app, &token, png.len(), "holiday.png").await;
    let third = png.len() / 3;
    let last = send_in_parts(&app, &token, &loc, &png, &[third, 2 * third + 7]).await;
    let asset_path = header(&last, "vitrine-asset").expect("Vitrine-Asset on the last PATCH");
    assert!(asset_path.starts_with("/api/v3/assets/") && asset_path.ends_with('/'), "{asset_path}");
    // The asset is what POST /api/v3/assets/ would have made.
    let r = app.get(&asset_path, Some(&token)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let a: serde_json::Value = r.json().await.expect("json");
    assert_eq!(a["name"], "holiday.png");
    assert_eq!(a["title"], "Holiday");
    assert_eq!(a["tags"], serde_json::json!(["sea", "sun"]));
    assert_eq!(a["mime_type"], "image/png");
    assert_eq!(a["media_type"], "image");
    assert_eq!(a["width"], 640);
    assert_eq!(a["size"], png.len());
    assert_eq!(a["owner"]["id"], user_id);
    assert!(a["thumbnail_url"].is_string());
    assert_eq!(asset_bytes(&app, &token, &asset_path).await, png);
    // A later HEAD tells the asset; a repeated last PATCH too (nothing is made twice).
    let r = head(&app, &token, &loc).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(offset_of(&r), png.len());
    assert_eq!(header(&r, "vitrine-asset").as_deref(), Some(asset_path.as_str()));
    let r = patch(&app, &token, &loc, png.len(), &[]).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&r, "vitrine-asset").as_deref(), Some(asset_path.as_str()));
    let list: serde_json::Value = app.get("/api/v3/assets/", Some(&token)).await.json().await.expect("json");
    assert_eq!(list["count"], 1);
    // Nothing is left of the upload's bytes; the row goes when it expires.
    let id = loc.rsplit('/').next().expect("id");
    assert!(!app.dir.path().join("blobs/uploads").join(id).exists());
    app.advance(Duration::from_secs(25 * 3600));
    assert_eq!(vitrine::jobs::upload_expiry::run_once(&app.state).await.expect("job"), 1);
    assert_eq!(head(&app, &token, &loc).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.get(&asset_path, Some(&token)).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn creation_with_upload_carries_the_first_bytes_or_all_of_them() {
    let app = TestApp::spawn().await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    let pdf = fixtures::pdf(50_000);
    let post = |bytes: Vec<u8>| {
        app.req(Method::POST, "/api/v3/uploads/", Some(&token))
            .header(TUS.0, TUS.1)
            .header("upload-length", pdf.len().to_string())
            .header("upload-metadata", metadata(&[("filename", "deck.pdf")]))
            .header("content-type", "application/offset+octet-stream")
            .body(bytes)
            .send()
    };
    // The first 20 000 bytes in the POST, the rest in a PATCH.
    let r = post(pdf[..20_000].to_vec()).await.expect("post");
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(offset_of(&r), 20_000);
    let loc = header(&r, "location").expect("location");
    let r = patch(&app, &token, &loc, 20_000, &pdf[20_000..]).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let asset = header(&r, "vitrine-asset").expect("asset");
    assert_eq!(asset_bytes(&app, &token, &asset).await, pdf);
    // All of it in the POST: created and complete at once.
    let r = post(pdf.clone()).await.expect("post");
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(offset_of(&r), pdf.len());
    let asset = header(&r, "vitrine-asset").expect("asset");
    assert_eq!(asset_bytes(&app, &token, &asset).await, pdf);
    // A body of another type: 415, nothing created.
    let r = app
        .req(Method::POST, "/api/v3/uploads/", Some(&token))
        .header(TUS.0, TUS.1)
        .header("upload-length", "5")
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .expect("post");
    assert_error(r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_type").await;
}

#[tokio::test]
async fn refused_content_answers_the_last_patch_and_the_upload_is_gone() {
    let app = TestApp::spawn().await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    // An executable disguised as a PNG: 422 on the final PATCH.
    let elf = fixtures::elf();
    let loc = created_upload(&app, &token, elf.len(), "cat.png").await;
    assert_eq!(patch(&app, &token, &loc, 0, &elf[..100]).await.status(), StatusCode::NO_CONTENT);
    let r = patch(&app, &token, &loc, 100, &elf[100..]).await;
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "executable_refused").await;
    assert_eq!(head(&app, &token, &loc).await.status(), StatusCode::NOT_FOUND);
    let id = loc.rsplit('/').next().expect("id");
    assert!(!app.dir.path().join("blobs/uploads").join(id).exists(), "parts removed");
    // A type not on the allow-list (a ZIP archive here): 415.
    let zip = b"PK\x03\x04\x14\0\0\0\0\0".iter().copied().chain(std::iter::repeat_n(0u8, 200)).collect::<Vec<u8>>();
    let loc = created_upload(&app, &token, zip.len(), "a.zip").await;
    let r = patch(&app, &token, &loc, 0, &zip).await;
    assert_error(r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_type").await;
    assert_eq!(head(&app, &token, &loc).await.status(), StatusCode::NOT_FOUND);
    let list: serde_json::Value = app.get("/api/v3/assets/", Some(&token)).await.json().await.expect("json");
    assert_eq!(list["count"], 0);
    assert!(app.state.blobs.list("tmp").await.expect("list").is_empty());
}

/// The settings that let a second app open the first one's database and blobs.
fn same_storage(first: &TestApp) -> impl FnOnce(&mut vitrine::config::Config) + Send + 'static {
    let db = first.state.config.database_url.clone();
    let dir = first.dir.path().to_path_buf();
    let jwt = first.state.config.jwt_secret.clone();
    let hmac = first.state.config.hmac_secret.clone();
    move |c| {
        c.database_url = db;
        c.data_dir = dir;
        c.jwt_secret = jwt;
        c.hmac_secret = hmac;
    }
}

fn shared_secrets(c: &mut vitrine::config::Config) {
    c.jwt_secret = Some("resumable-uploads-jwt-secret-0123456789abcdef".into());
    c.hmac_secret = Some("resumable-uploads-hmac-secret-0123456789abcdef".into());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_offset_survives_killing_the_server() {
    let first = TestApp::spawn_with(Spawn { tweak: Box::new(shared_secrets), ..Default::default() }).await;
    let (token, _) = first.register("ada@example.com", "Ada").await;
    let pdf = fixtures::pdf(3_000_000);
    let loc = created_upload(&first, &token, pdf.len(), "deck.pdf").await;
    let r = patch(&first, &token, &loc, 0, &pdf[..1_234_567]).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // Killed: its task is aborted, nothing shuts down in order.
    first.shutdown().abort();
    let second = TestApp::spawn_with(Spawn { tweak: Box::new(same_storage(&first)), ..Default::default() }).await;
    let r = head(&second, &token, &loc).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(offset_of(&r), 1_234_567);
    let r = patch(&second, &token, &loc, 1_234_567, &pdf[1_234_567..]).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let asset = header(&r, "vitrine-asset").expect("asset");
    assert_eq!(asset_bytes(&second, &token, &asset).await, pdf);
}

async fn two_instances_serve_one_upload(db: Db) {
    let a = TestApp::spawn_with(Spawn { db, tweak: Box::new(shared_secrets), ..Default::default() }).await;
    let b = TestApp::spawn_with(Spawn { tweak: Box::new(same_storage(&a)), ..Default::default() }).await;
    let (token, _) = a.register("ada@example.com", "Ada").await;
    let png = fixtures::png(300, 200);
    let loc = created_upload(&a, &token, png.len(), "p.png").await;
    assert_eq!(patch(&b, &token, &loc, 0, &png[..1000]).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(offset_of(&head(&a, &token, &loc).await), 1000);
    // The same offset sent again to either instance: the second writer gets 409.
    assert_error(patch(&a, &token, &loc, 0, &png[..1000]).await, StatusCode::CONFLICT, "offset_mismatch").await;
    let r = patch(&a, &token, &loc, 1000, &png[1000..]).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let asset = header(&r, "vitrine-asset").expect("asset");
    assert_eq!(header(&head(&b, &token, &loc).await, "vitrine-asset"), Some(asset.clone()));
    assert_eq!(asset_bytes(&b, &token, &asset).await, png);
}

/// The stored SHA-256 (the content-hash key) of the asset at `asset_path`.
async fn stored_sha256(app: &TestApp, asset_path: &str) -> String {
    let id: i64 = asset_path.trim_end_matches('/').rsplit('/').next().and_then(|s| s.parse().ok()).expect("id");
    let (sha,): (String,) = sqlx::query_as("SELECT sha256 FROM assets WHERE id = $1")
        .bind(id)
        .fetch_one(app.state.store.pool())
        .await
        .expect("asset row");
    sha
}

/// The instance that writes every byte hashes them as they come (completion reads only the head);
/// an upload whose bytes two instances wrote is hashed by reading it once. Both give the hash of
/// the bytes, as a plain upload does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_content_hash_is_right_whoever_wrote_the_bytes() {
    use sha2::Digest;
    let a = TestApp::spawn_with(Spawn { tweak: Box::new(shared_secrets), ..Default::default() }).await;
    let b = TestApp::spawn_with(Spawn { tweak: Box::new(same_storage(&a)), ..Default::default() }).await;
    let (token, _) = a.register("ada@example.com", "Ada").await;
    // Larger than one flush, so the running hash spans several writes.
    let pdf = fixtures::pdf(9 * 1024 * 1024 + 123);
    let expected = hex::encode(sha2::Sha256::digest(&pdf));
    let loc = created_upload(&a, &token, pdf.len(), "one.pdf").await;
    let cuts = [1_000_000, 5_000_000];
    let last = send_in_parts(&a, &token, &loc, &pdf, &cuts).await;
    let asset = header(&last, "vitrine-asset").expect("asset");
    assert_eq!(stored_sha256(&a, &asset).await, expected, "hashed while written");
    assert_eq!(asset_bytes(&a, &token, &asset).await, pdf);
    // Two writers, in turns: the last one did not see every byte.
    let other = fixtures::pdf(6 * 1024 * 1024 + 5);
    let expected = hex::encode(sha2::Sha256::digest(&other));
    let loc = created_upload(&a, &token, other.len(), "two.pdf").await;
    assert_eq!(patch(&a, &token, &loc, 0, &other[..2_000_000]).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(patch(&b, &token, &loc, 2_000_000, &other[2_000_000..4_000_000]).await.status(), StatusCode::NO_CONTENT);
    let r = patch(&a, &token, &loc, 4_000_000, &other[4_000_000..]).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let asset = header(&r, "vitrine-asset").expect("asset");
    assert_eq!(stored_sha256(&a, &asset).await, expected, "read again at completion");
    assert_eq!(asset_bytes(&b, &token, &asset).await, other);
    // A plain upload of the same bytes is the same content.
    let plain = a.upload(&token, "again.pdf", other.clone()).await;
    assert_eq!(stored_sha256(&a, &format!("/api/v3/assets/{}/", plain["id"])).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_patches_at_one_offset_append_once() {
    let app = TestApp::spawn().await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    let pdf = fixtures::pdf(2_000_000);
    let loc = created_upload(&app, &token, pdf.len(), "deck.pdf").await;
    let half = 1_000_000;
    let sends = (0..4).map(|_| patch(&app, &token, &loc, 0, &pdf[..half]));
    let statuses: Vec<StatusCode> = futures::future::join_all(sends).await.iter().map(|r| r.status()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::NO_CONTENT).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == StatusCode::NO_CONTENT || *s == StatusCode::CONFLICT), "{statuses:?}");
    assert_eq!(offset_of(&head(&app, &token, &loc).await), half);
    let r = patch(&app, &token, &loc, half, &pdf[half..]).await;
    let asset = header(&r, "vitrine-asset").expect("asset");
    assert_eq!(asset_bytes(&app, &token, &asset).await, pdf);
}

async fn an_unfinished_upload_expires_and_its_part_file_goes(db: Db) {
    let app = TestApp::spawn_with(Spawn { db, tweak: Box::new(long_tokens), ..Default::default() }).await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    let pdf = fixtures::pdf(100_000);
    let loc = created_upload(&app, &token, pdf.len(), "deck.pdf").await;
    let r = patch(&app, &token, &loc, 0, &pdf[..40_000]).await;
    let expires = httpdate::parse_http_date(&header(&r, "upload-expires").expect("Upload-Expires")).expect("date");
    let in_hours = expires.duration_since(std::time::SystemTime::now()).expect("future").as_secs() / 3600;
    assert!((23..=24).contains(&in_hours), "{in_hours}");
    let id = loc.rsplit('/').next().expect("id");
    let part = app.dir.path().join("blobs/uploads").join(id).join("data");
    assert_eq!(std::fs::metadata(&part).expect("part file").len(), 40_000);
    // Not yet: the job leaves it.
    app.advance(Duration::from_secs(23 * 3600));
    assert_eq!(vitrine::jobs::upload_expiry::run_once(&app.state).await.expect("job"), 0);
    assert_eq!(offset_of(&head(&app, &token, &loc).await), 40_000);
    app.advance(Duration::from_secs(2 * 3600));
    // Expired: 404 at once, and the job removes row and part file.
    assert_eq!(head(&app, &token, &loc).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(vitrine::jobs::upload_expiry::run_once(&app.state).await.expect("job"), 1);
    assert!(!part.exists());
    assert!(app.state.store.upload(id).await.expect("query").is_none());
    assert_error(patch(&app, &token, &loc, 40_000, &pdf[40_000..]).await, StatusCode::NOT_FOUND, "not_found").await;
}

async fn s3_app(db: Db) -> TestApp {
    let s3 = Arc::new(S3Server::start().await);
    TestApp::spawn_with(Spawn { db, s3: Some(s3), tweak: Box::new(long_tokens), ..Default::default() }).await
}

async fn s3_parts_of_5_mib_assemble_a_12_mib_file(db: Db) {
    let app = s3_app(db).await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    let pdf = fixtures::pdf(12 * 1024 * 1024 + 321);
    let loc = created_upload(&app, &token, pdf.len(), "big.pdf").await;
    let id = loc.rsplit('/').next().expect("id").to_string();
    // Odd cuts: the first PATCH leaves a tail (no whole part yet), the second makes parts of it.
    let cuts = [3 * 1024 * 1024 + 17, 9 * 1024 * 1024 + 5];
    let r = patch(&app, &token, &loc, 0, &pdf[..cuts[0]]).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(offset_of(&r), cuts[0]);
    let row = app.state.store.upload(&id).await.expect("q").expect("row");
    assert_eq!((row.parts_bytes, row.tail_len), (0, cuts[0] as i64));
    let r = patch(&app, &token, &loc, cuts[0], &pdf[cuts[0]..cuts[1]]).await;
    assert_eq!(offset_of(&r), cuts[1]);
    let row = app.state.store.upload(&id).await.expect("q").expect("row");
    assert_eq!(row.parts_bytes, 5 * 1024 * 1024);
    assert_eq!(row.tail_len as usize, cuts[1] - 5 * 1024 * 1024);
    // Every instance would read the offset from the row: HEAD agrees.
    assert_eq!(offset_of(&head(&app, &token, &loc).await), cuts[1]);
    let r = patch(&app, &token, &loc, cuts[1], &pdf[cuts[1]..]).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let asset = header(&r, "vitrine-asset").expect("asset");
    assert_eq!(asset_bytes(&app, &token, &asset).await, pdf);
    let parts = app.state.store.upload_parts(&id).await.expect("parts");
    assert_eq!(parts.iter().map(|p| p.size).collect::<Vec<_>>(), vec![5 << 20, 5 << 20, pdf.len() as i64 - (10 << 20)]);
    // Nothing is left under the upload's prefix (tails, the assembled object moved into place).
    assert!(app.state.blobs.list(&format!("uploads/{id}")).await.expect("list").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_s3_upload_has_its_multipart_upload_aborted() {
    let app = s3_app(Db::Sqlite).await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    let pdf = fixtures::pdf(7 * 1024 * 1024);
    let loc = created_upload(&app, &token, pdf.len(), "big.pdf").await;
    let id = loc.rsplit('/').next().expect("id").to_string();
    let r = patch(&app, &token, &loc, 0, &pdf[..6 * 1024 * 1024]).await;
    assert_eq!(offset_of(&r), 6 * 1024 * 1024);
    let row = app.state.store.upload(&id).await.expect("q").expect("row");
    assert_eq!((row.parts_bytes, row.tail_len), (5 << 20, 1 << 20));
    assert_eq!(app.state.blobs.list(&format!("uploads/{id}")).await.expect("list").len(), 1, "the tail object");
    app.advance(Duration::from_secs(25 * 3600));
    assert_eq!(vitrine::jobs::upload_expiry::run_once(&app.state).await.expect("job"), 1);
    let s3 = app.s3.as_ref().expect("s3");
    let aborted = s3
        .requests
        .lock()
        .expect("log")
        .iter()
        .any(|(m, p)| m == "DELETE" && p.ends_with(&format!("uploads/{id}/data")));
    assert!(aborted, "the multipart upload was aborted");
    assert!(app.state.blobs.list(&format!("uploads/{id}")).await.expect("list").is_empty());
    assert_eq!(head(&app, &token, &loc).await.status(), StatusCode::NOT_FOUND);
}
