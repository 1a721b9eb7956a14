//! Resumable uploads to a file request (SPEC §11, §12): tus 1.0.0 at `/upload/{uuid}/tus/`,
//! anonymous and held to everything `POST /upload/{uuid}/files` enforces. A PNG in three PATCHes
//! becomes the owner's asset with its `source`, in the collection, told on the owner's socket;
//! every refusal; the file slot and bytes reserved at creation and given back on termination,
//! refusal and expiry.

use std::time::Duration;

use base64::Engine;
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{Db, Spawn, TestApp, assert_error, created, fixtures};

crate::on_both_databases!(
    a_png_in_three_patches_lands_with_its_source,
    every_tus_refusal,
    expiry_refunds_the_reservation,
);

const TUS: (&str, &str) = ("tus-resumable", "1.0.0");

fn metadata(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k} {}", base64::engine::general_purpose::STANDARD.encode(v)))
        .collect::<Vec<_>>()
        .join(",")
}

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

async fn new_request(app: &TestApp, owner: &str, body: Value) -> (String, Value) {
    let r = created(app.post_json("/api/v3/file-requests/", Some(owner), &body).await).await;
    (r["uuid"].as_str().expect("uuid").to_string(), r)
}

async fn tus_create(
    app: &TestApp,
    uuid: &str,
    length: usize,
    meta: &[(&str, &str)],
    token: Option<&str>,
) -> reqwest::Response {
    app.req(Method::POST, &format!("/upload/{uuid}/tus/"), token)
        .header(TUS.0, TUS.1)
        .header("upload-length", length.to_string())
        .header("upload-metadata", metadata(meta))
        .send()
        .await
        .expect("create")
}

async fn created_upload(
    app: &TestApp,
    uuid: &str,
    length: usize,
    meta: &[(&str, &str)],
    token: Option<&str>,
) -> String {
    let r = tus_create(app, uuid, length, meta, token).await;
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
    assert_eq!(header(&r, "tus-resumable").as_deref(), Some("1.0.0"));
    assert!(header(&r, "upload-expires").is_some());
    let loc = header(&r, "location").expect("Location");
    assert!(loc.starts_with(&format!("/upload/{uuid}/tus/")), "{loc}");
    loc
}

async fn patch(app: &TestApp, loc: &str, offset: usize, bytes: &[u8], token: Option<&str>) -> reqwest::Response {
    app.req(Method::PATCH, loc, token)
        .header(TUS.0, TUS.1)
        .header("upload-offset", offset.to_string())
        .header("content-type", "application/offset+octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .expect("patch")
}

async fn send_all(app: &TestApp, loc: &str, bytes: &[u8], cuts: &[usize], token: Option<&str>) -> reqwest::Response {
    let mut at = 0;
    for &end in cuts.iter().chain(std::iter::once(&bytes.len())) {
        let r = patch(app, loc, at, &bytes[at..end], token).await;
        if end < bytes.len() {
            assert_eq!(r.status(), StatusCode::NO_CONTENT, "{:?}", r.text().await);
            assert_eq!(header(&r, "upload-offset"), Some(end.to_string()));
        } else {
            return r;
        }
        at = end;
    }
    unreachable!()
}

async fn reserved(app: &TestApp, uuid: &str) -> (i64, i64) {
    let r = app.state.store.file_request_by_uuid(uuid).await.expect("db").expect("request");
    (r.files_reserved, r.bytes_reserved)
}

const WHO: [(&str, &str); 4] = [
    ("filename", "photo.png"),
    ("uploader_name", "Sam Sender"),
    ("uploader_email", "Sam@Example.com"),
    ("message", "Hi"),
];

async fn a_png_in_three_patches_lands_with_its_source(db: Db) {
    let app = TestApp::on(db).await;
    let (owner, _) = app.register("owner@example.com", "Olive Owner").await;
    let (uuid, r) = new_request(&app, &owner, json!({"title": "Photos", "require_uploader_name": true})).await;
    let ws_url = format!("ws://{}/ws/notifications/?token={owner}", app.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url).await.expect("connect");
    // Subscribed once the socket says hello: only then is a notification sure to reach it.
    loop {
        let msg =
            tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("hello").expect("open").expect("ok");
        if let Message::Text(t) = msg
            && serde_json::from_str::<Value>(&t).expect("json")["type"] == "connection_established"
        {
            break;
        }
    }
    let png = fixtures::png(64, 48);
    let loc = created_upload(&app, &uuid, png.len(), &WHO, None).await;
    // The slot and the whole length are reserved from creation.
    assert_eq!(reserved(&app, &uuid).await, (1, png.len() as i64));
    let third = png.len() / 3;
    let last = send_all(&app, &loc, &png, &[third, 2 * third], None).await;
    assert_eq!(last.status(), StatusCode::NO_CONTENT, "{:?}", last.text().await);
    assert_eq!(header(&last, "upload-offset"), Some(png.len().to_string()));
    // Nothing about the asset is revealed to the uploader.
    assert!(header(&last, "vitrine-asset").is_none() && header(&last, "location").is_none());
    assert!(last.bytes().await.expect("body").is_empty());
    let list: Value = app.get("/api/v3/assets/", Some(&owner)).await.json().await.expect("json");
    assert_eq!(list["count"], 1);
    let got = &list["results"][0];
    assert_eq!(got["name"], "photo.png");
    assert_eq!(
        got["source"],
        json!({"file_request": uuid, "uploader_name": "Sam Sender", "uploader_email": "sam@example.com", "message": "Hi"})
    );
    let items = app.state.store.collection_items(r["collection_id"].as_i64().expect("cid")).await.expect("items");
    assert_eq!(items.iter().map(|i| i.asset.id).collect::<Vec<_>>(), vec![got["id"].as_i64().expect("id")]);
    let st = app.state.store.file_request_by_uuid(&uuid).await.expect("db").expect("request");
    assert_eq!((st.uploads_count, st.files_reserved, st.bytes_reserved), (1, 0, 0));
    assert_eq!(st.bytes_received, got["size"].as_i64().expect("size"));
    // The owner is told on the socket, as for a multipart upload.
    let n = loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("ok");
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).expect("json");
            if v["type"] == "notification" {
                break v;
            }
        }
    };
    assert_eq!(n["kind"], "file_request_upload");
    assert_eq!((n["file_name"].as_str(), n["uploader_name"].as_str()), (Some("photo.png"), Some("Sam Sender")));
    // A later HEAD tells the offset only; a repeated last PATCH makes nothing twice.
    let h = app.req(Method::HEAD, &loc, None).header(TUS.0, TUS.1).send().await.expect("head");
    assert_eq!(h.status(), StatusCode::OK);
    assert_eq!(header(&h, "upload-offset"), Some(png.len().to_string()));
    assert!(header(&h, "vitrine-asset").is_none());
    assert_eq!(patch(&app, &loc, png.len(), &[], None).await.status(), StatusCode::NO_CONTENT);
    let list: Value = app.get("/api/v3/assets/", Some(&owner)).await.json().await.expect("json");
    assert_eq!(list["count"], 1);
    // The upload's id works only under its own request.
    let (other, _) = new_request(&app, &owner, json!({"title": "Other"})).await;
    let id = loc.rsplit('/').next().expect("id");
    let h = app
        .req(Method::HEAD, &format!("/upload/{other}/tus/{id}"), None)
        .header(TUS.0, TUS.1)
        .send()
        .await
        .expect("head");
    assert_eq!(h.status(), StatusCode::NOT_FOUND);
}

async fn every_tus_refusal(db: Db) {
    let app = TestApp::spawn_with(Spawn {
        db,
        tweak: Box::new(|c| c.file_request_rate_per_ip_per_minute = 1000),
        ..Default::default()
    })
    .await;
    let (owner, _) = app.register("owner@example.com", "Olive Owner").await;
    let (uuid, _) = new_request(
        &app,
        &owner,
        json!({"title": "Strict", "max_files": 2, "max_file_bytes": 4000, "allowed_types": ["application/pdf"],
               "require_uploader_name": true}),
    )
    .await;
    let who = [("filename", "a.pdf"), ("uploader_name", "Ann")];
    // 412 without Tus-Resumable (and the answer says which version).
    let e = app
        .req(Method::POST, &format!("/upload/{uuid}/tus/"), None)
        .header("upload-length", "100")
        .send()
        .await
        .expect("post");
    assert_eq!(header(&e, "tus-version").as_deref(), Some("1.0.0"));
    assert_error(e, StatusCode::PRECONDITION_FAILED, "precondition_failed").await;
    // 400 with fields: the required name.
    let v = assert_error(
        tus_create(&app, &uuid, 100, &[("filename", "a.pdf")], None).await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    )
    .await;
    assert!(v["fields"]["uploader_name"].is_string(), "{v}");
    // 413: Upload-Length over max_file_bytes.
    assert_error(tus_create(&app, &uuid, 5000, &who, None).await, StatusCode::PAYLOAD_TOO_LARGE, "too_large").await;
    assert_eq!(reserved(&app, &uuid).await, (0, 0));
    // Full at creation: two uploads take the two slots, the third is 410; a DELETE frees one.
    let one = created_upload(&app, &uuid, 1000, &who, None).await;
    let two = created_upload(&app, &uuid, 1000, &who, None).await;
    assert_eq!(reserved(&app, &uuid).await, (2, 2000));
    assert_error(tus_create(&app, &uuid, 1000, &who, None).await, StatusCode::GONE, "request_full").await;
    let d = app.req(Method::DELETE, &one, None).header(TUS.0, TUS.1).send().await.expect("delete");
    assert_eq!(d.status(), StatusCode::NO_CONTENT);
    assert_eq!(reserved(&app, &uuid).await, (1, 1000));
    let d = app.req(Method::DELETE, &one, None).header(TUS.0, TUS.1).send().await.expect("delete");
    assert_error(d, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(reserved(&app, &uuid).await, (1, 1000));
    // 415 at the end for a type outside allowed_types; the reservation is refunded.
    let png = fixtures::png(8, 8);
    let three = created_upload(&app, &uuid, png.len(), &who, None).await;
    assert_eq!(reserved(&app, &uuid).await, (2, 1000 + png.len() as i64));
    let e = send_all(&app, &three, &png, &[png.len() / 2], None).await;
    assert_error(e, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_type").await;
    assert_eq!(reserved(&app, &uuid).await, (1, 1000));
    let h = app.req(Method::HEAD, &three, None).header(TUS.0, TUS.1).send().await.expect("head");
    assert_eq!(h.status(), StatusCode::NOT_FOUND);
    // 404 for an unknown upload id, and a malformed one.
    let unknown = format!("/upload/{uuid}/tus/{}", uuid::Uuid::new_v4());
    assert_error(patch(&app, &unknown, 0, b"x", None).await, StatusCode::NOT_FOUND, "not_found").await;
    let bad = format!("/upload/{uuid}/tus/not-an-id");
    assert_error(patch(&app, &bad, 0, b"x", None).await, StatusCode::NOT_FOUND, "not_found").await;
    // A PDF fills the last slot.
    let pdf = fixtures::pdf(1500);
    let loc = created_upload(&app, &uuid, pdf.len(), &who, None).await;
    assert_eq!(send_all(&app, &loc, &pdf, &[700], None).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(reserved(&app, &uuid).await, (1, 1000));
    drop(two);

    // 410 closed and expired.
    let (closed, _) = new_request(&app, &owner, json!({"title": "Closed"})).await;
    let c =
        app.req(Method::DELETE, &format!("/api/v3/file-requests/{closed}/"), Some(&owner)).send().await.expect("close");
    assert_eq!(c.status(), StatusCode::NO_CONTENT);
    assert_error(tus_create(&app, &closed, 100, &who, None).await, StatusCode::GONE, "request_closed").await;
    let (soon, _) = new_request(&app, &owner, json!({"title": "Soon", "expires_in_hours": 1})).await;
    app.advance(Duration::from_secs(2 * 3600));
    assert_error(tus_create(&app, &soon, 100, &who, None).await, StatusCode::GONE, "request_expired").await;
    // 404 for an unknown request.
    let unknown = uuid::Uuid::new_v4().to_string();
    assert_error(tus_create(&app, &unknown, 100, &who, None).await, StatusCode::NOT_FOUND, "not_found").await;

    // 401 on a protected request until unlocked; then the unlock token works as Bearer.
    let pdf2 = fixtures::pdf(1600);
    let (locked, _) = new_request(&app, &owner, json!({"title": "Private", "password": "open sesame"})).await;
    let e = tus_create(&app, &locked, pdf2.len(), &[("filename", "p.pdf")], None).await;
    assert_error(e, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    let ok = app
        .post_json(&format!("/api/v3/file-requests/{locked}/unlock/"), None, &json!({"password": "open sesame"}))
        .await;
    let ok: Value = ok.json().await.expect("json");
    let token = ok["access_token"].as_str().expect("token").to_string();
    let loc = created_upload(&app, &locked, pdf2.len(), &[("filename", "p.pdf")], Some(&token)).await;
    assert_error(patch(&app, &loc, 0, &pdf2, None).await, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    assert_eq!(send_all(&app, &loc, &pdf2, &[100], Some(&token)).await.status(), StatusCode::NO_CONTENT);
    let list: Value = app.get("/api/v3/assets/", Some(&owner)).await.json().await.expect("json");
    assert_eq!(list["count"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_creation_is_rate_limited_per_ip() {
    let app = TestApp::spawn_with(Spawn {
        tweak: Box::new(|c| c.file_request_rate_per_ip_per_minute = 2),
        ..Default::default()
    })
    .await;
    let (owner, _) = app.register("owner@example.com", "Olive Owner").await;
    let (uuid, _) = new_request(&app, &owner, json!({"title": "Busy"})).await;
    created_upload(&app, &uuid, 100, &[("filename", "a.pdf")], None).await;
    created_upload(&app, &uuid, 100, &[("filename", "b.pdf")], None).await;
    let e = tus_create(&app, &uuid, 100, &[("filename", "c.pdf")], None).await;
    assert_error(e, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(reserved(&app, &uuid).await, (2, 200));
}

async fn expiry_refunds_the_reservation(db: Db) {
    let app = TestApp::on(db).await;
    let (owner, _) = app.register("owner@example.com", "Olive Owner").await;
    let (uuid, _) = new_request(&app, &owner, json!({"title": "One", "max_files": 1, "max_total_bytes": 3000})).await;
    let who = [("filename", "a.pdf")];
    let loc = created_upload(&app, &uuid, 2000, &who, None).await;
    assert_eq!(patch(&app, &loc, 0, &[b'%'; 500], None).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(reserved(&app, &uuid).await, (1, 2000));
    // No room now: the slot is taken.
    assert_error(tus_create(&app, &uuid, 500, &who, None).await, StatusCode::GONE, "request_full").await;
    app.advance(Duration::from_secs(25 * 3600));
    assert_eq!(vitrine::jobs::upload_expiry::run_once(&app.state).await.expect("job"), 1);
    assert_eq!(reserved(&app, &uuid).await, (0, 0));
    let pdf = fixtures::pdf(2500);
    let loc = created_upload(&app, &uuid, pdf.len(), &who, None).await;
    assert_eq!(send_all(&app, &loc, &pdf, &[1000], None).await.status(), StatusCode::NO_CONTENT);
    let st = app.state.store.file_request_by_uuid(&uuid).await.expect("db").expect("request");
    assert_eq!((st.uploads_count, st.files_reserved, st.bytes_reserved), (1, 0, 0));
    // The finished upload's row expiring later refunds nothing.
    app.advance(Duration::from_secs(25 * 3600));
    vitrine::jobs::upload_expiry::run_once(&app.state).await.expect("job");
    let st = app.state.store.file_request_by_uuid(&uuid).await.expect("db").expect("request");
    assert_eq!((st.uploads_count, st.files_reserved, st.bytes_reserved), (1, 0, 0));
}

/// The uploader page's own script sends a 12 MiB file through tus (over 8 MiB), with the
/// uploader's fields as metadata, in real Chromium; it lands as the owner's asset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_uploader_page_sends_a_large_file_through_tus() {
    let app = TestApp::spawn().await;
    let (owner, _) = app.register("owner@example.com", "Olive Owner").await;
    let (uuid, r) = new_request(&app, &owner, json!({"title": "Big files", "require_uploader_name": true})).await;
    let Some(browser) = crate::helpers::browser::Browser::start().await else { return };
    let c = &browser.client;
    c.goto(&app.url(&format!("/upload/{uuid}/"))).await.expect("the uploader page");
    let script = r#"
        const done = arguments[arguments.length - 1];
        (async () => {
            for (let i = 0; i < 100 && !(window.VitrineUpload && window.tus); i++) await new Promise((ok) => setTimeout(ok, 50));
            let text = '';
            for (let i = 0; text.length < 1048576; i++) text += 'Vitrine request line ' + String(i).padStart(8, '0') + '\n';
            const block = new TextEncoder().encode(text.slice(0, 1048576));
            const file = new File(Array(12).fill(block), 'big.txt', {type: 'text/plain'});
            const dt = new DataTransfer();
            dt.items.add(file);
            const input = document.getElementById('file-input');
            input.files = dt.files;
            document.getElementById('uploader-name').value = 'Tess Tus';
            document.getElementById('upload-form').requestSubmit();
            for (let i = 0; i < 2400; i++) {
                const li = document.querySelector('#upload-list li');
                if (li && /done|failed/.test(li.className)) {
                    return done({cls: li.className, via: li.getAttribute('data-via'), text: li.textContent});
                }
                await new Promise((ok) => setTimeout(ok, 50));
            }
            done({cls: 'timeout'});
        })().catch((e) => done({cls: 'error', text: String(e)}));
    "#;
    let out = tokio::time::timeout(Duration::from_secs(180), c.execute_async(script, vec![]))
        .await
        .expect("the upload finished in time")
        .expect("script ran");
    assert!(out["cls"].as_str().is_some_and(|c| c.contains("done")), "{out}");
    assert_eq!(out["via"], "tus", "{out}");
    let list: Value = app.get("/api/v3/assets/", Some(&owner)).await.json().await.expect("json");
    assert_eq!(list["count"], 1, "{list}");
    let got = &list["results"][0];
    assert_eq!((got["name"].as_str(), got["size"].as_i64()), (Some("big.txt"), Some(12 << 20)));
    assert_eq!(got["source"]["uploader_name"], "Tess Tus");
    let items = app.state.store.collection_items(r["collection_id"].as_i64().expect("cid")).await.expect("items");
    assert_eq!(items.len(), 1);
    browser.client.clone().close().await.expect("close");
}
