//! File responses: Range (206, 416, If-Range), HEAD, signed download tokens (expired, tampered).

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Spawn, TestApp, assert_error, fixtures};

async fn app_with_pdf() -> (TestApp, String, Value, Vec<u8>) {
    let app = TestApp::spawn().await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    let bytes = fixtures::pdf(10_000);
    let v = app.upload(&token, "doc.pdf", bytes.clone()).await;
    (app, token, v, bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_return_206_with_the_exact_bytes() {
    let (app, token, v, bytes) = app_with_pdf().await;
    let path = format!("/api/v3/assets/{}/content", v["id"]);
    let r =
        app.req(reqwest::Method::GET, &path, Some(&token)).header("range", "bytes=100-199").send().await.expect("get");
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.headers()["content-range"], format!("bytes 100-199/{}", bytes.len()));
    assert_eq!(r.headers()["content-length"], "100");
    assert_eq!(r.bytes().await.expect("bytes").to_vec(), bytes[100..200].to_vec());
    let r = app.req(reqwest::Method::GET, &path, Some(&token)).header("range", "bytes=-10").send().await.expect("get");
    assert_eq!(r.bytes().await.expect("bytes").to_vec(), bytes[bytes.len() - 10..].to_vec());
    // Resume from an offset to the end.
    let r =
        app.req(reqwest::Method::GET, &path, Some(&token)).header("range", "bytes=9000-").send().await.expect("get");
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.bytes().await.expect("bytes").to_vec(), bytes[9000..].to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsatisfiable_range_is_416_and_a_malformed_one_is_ignored() {
    let (app, token, v, bytes) = app_with_pdf().await;
    let path = format!("/api/v3/assets/{}/content", v["id"]);
    let r = app
        .req(reqwest::Method::GET, &path, Some(&token))
        .header("range", "bytes=20000-30000")
        .send()
        .await
        .expect("get");
    assert_eq!(r.headers()["content-range"], format!("bytes */{}", bytes.len()));
    assert_error(r, StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable").await;
    let r = app.req(reqwest::Method::GET, &path, Some(&token)).header("range", "bytes=abc").send().await.expect("get");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.expect("bytes").len(), bytes.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_range_with_a_stale_validator_sends_the_whole_file() {
    let (app, token, v, bytes) = app_with_pdf().await;
    let path = format!("/api/v3/assets/{}/content", v["id"]);
    let etag = format!("\"{}\"", v["sha256"].as_str().expect("sha"));
    let r = app
        .req(reqwest::Method::GET, &path, Some(&token))
        .header("range", "bytes=0-9")
        .header("if-range", &etag)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    let lm = r.headers()["last-modified"].to_str().expect("date").to_string();
    let r = app
        .req(reqwest::Method::GET, &path, Some(&token))
        .header("range", "bytes=0-9")
        .header("if-range", &lm)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    let r = app
        .req(reqwest::Method::GET, &path, Some(&token))
        .header("range", "bytes=0-9")
        .header("if-range", "\"stale\"")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.expect("bytes").len(), bytes.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_answers_headers_without_a_body() {
    let (app, token, v, bytes) = app_with_pdf().await;
    let r = app
        .req(reqwest::Method::HEAD, &format!("/api/v3/assets/{}/content", v["id"]), Some(&token))
        .send()
        .await
        .expect("head");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-length"], bytes.len().to_string());
    assert_eq!(r.headers()["accept-ranges"], "bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_download_urls_work_without_login_and_support_ranges() {
    let (app, _token, v, bytes) = app_with_pdf().await;
    let url = v["download_url"].as_str().expect("url");
    assert!(url.starts_with(&format!("{}/files/", app.base)));
    let r = app.client.get(url).send().await.expect("get");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-disposition"].to_str().unwrap_or("").contains("filename=\"doc.pdf\""));
    assert_eq!(r.bytes().await.expect("bytes").to_vec(), bytes);
    let r = app.client.get(url).header("range", "bytes=5-9").send().await.expect("get");
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.bytes().await.expect("bytes").to_vec(), bytes[5..10].to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_and_expired_download_tokens_get_403() {
    let (app, _token, v, _) = app_with_pdf().await;
    let url = v["download_url"].as_str().expect("url").to_string();
    let (prefix, token) = url.rsplit_once('/').expect("token");
    let (payload, sig) = token.split_once('.').expect("dot");
    // Another blob key, same signature.
    let forged_payload = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut grant: Value = serde_json::from_slice(&b64.decode(payload).expect("b64")).expect("json");
        grant["k"] = Value::String("assets/2/other".into());
        b64.encode(serde_json::to_vec(&grant).expect("json"))
    };
    let r = app.client.get(format!("{prefix}/{forged_payload}.{sig}")).send().await.expect("get");
    assert_error(r, StatusCode::FORBIDDEN, "invalid_link").await;
    let r = app.client.get(format!("{prefix}/garbage")).send().await.expect("get");
    assert_error(r, StatusCode::FORBIDDEN, "invalid_link").await;
    // The genuine token, once its hour (`download_url_ttl_secs`) has passed on the app's clock.
    assert_eq!(app.client.get(&url).send().await.expect("get").status(), StatusCode::OK);
    app.advance(std::time::Duration::from_secs(3600));
    let r = app.client.get(&url).send().await.expect("get");
    assert_error(r, StatusCode::FORBIDDEN, "link_expired").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_safe_types_are_ever_served_inline() {
    let app = TestApp::spawn_with(Spawn::default()).await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    let txt = app.upload(&token, "notes.txt", b"hello\n".to_vec()).await;
    // Even with an inline grant, text goes out as an attachment.
    let url = app.state.blobs.signed_url(vitrine::blob::Grant {
        key: format!("assets/1/{}", txt["sha256"].as_str().expect("sha")),
        expires: 0,
        disposition: vitrine::blob::Disposition::Inline,
        name: "notes.txt".into(),
        mime: "text/plain".into(),
        etag: "e".into(),
        owner: None,
    });
    let r = app.client.get(&url).send().await.expect("get");
    assert!(r.headers()["content-disposition"].to_str().unwrap_or("").starts_with("attachment"));
    let img = app.upload(&token, "p.png", fixtures::png(10, 10)).await;
    let r = app.client.get(img["thumbnail_url"].as_str().expect("thumb")).send().await.expect("get");
    assert!(r.headers()["content-disposition"].to_str().unwrap_or("").starts_with("inline"));
}
