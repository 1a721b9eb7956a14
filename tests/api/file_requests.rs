//! File requests (SPEC §11): the owner's API, the uploader's page and upload with every refusal,
//! exact limits under concurrency, password and lockout, rate limit, `source` on the received
//! assets, the owner's notification and e-mail, and that nothing under `/upload/` is readable.

use std::time::Duration;

use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::pages::{cookie_pair, csrf_of, set_cookie};
use crate::helpers::{Db, SmtpSink, Spawn, TestApp, assert_error, created, fixtures};
use crate::on_both_databases;

async fn create(app: &TestApp, token: &str, body: Value) -> Value {
    created(app.post_json("/api/v3/file-requests/", Some(token), &body).await).await
}

fn uuid_of(r: &Value) -> String {
    r["uuid"].as_str().expect("uuid").to_string()
}

/// A multipart upload to a request, as a script (Accept: application/json).
async fn send(
    app: &TestApp,
    uuid: &str,
    name: &str,
    bytes: Vec<u8>,
    fields: &[(&str, &str)],
    token: Option<&str>,
) -> reqwest::Response {
    send_as(&app.client, &app.url(&format!("/upload/{uuid}/files")), name, bytes, fields, token, "application/json")
        .await
}

async fn send_as(
    client: &reqwest::Client,
    url: &str,
    name: &str,
    bytes: Vec<u8>,
    fields: &[(&str, &str)],
    token: Option<&str>,
    accept: &str,
) -> reqwest::Response {
    let mut form = reqwest::multipart::Form::new();
    for (k, v) in fields {
        form = form.text(k.to_string(), v.to_string());
    }
    let part = reqwest::multipart::Part::bytes(bytes)
        .file_name(name.to_string())
        .mime_str("application/octet-stream")
        .expect("mime");
    form = form.part("file", part);
    let mut r = client.post(url).header("accept", accept).multipart(form);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    r.send().await.expect("upload")
}

/// A distinct small PDF (`i` makes the content unique).
fn pdf(i: usize, n: usize) -> Vec<u8> {
    let mut v = fixtures::pdf(n);
    v.splice(9..9, format!("%{i}\n").into_bytes());
    v
}

async fn next_json(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("ok");
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).expect("json");
        }
    }
}

async fn request_state(app: &TestApp, token: &str, uuid: &str) -> Value {
    let r = app.get(&format!("/api/v3/file-requests/{uuid}/"), Some(token)).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.expect("json")
}

async fn crud(db: Db) {
    let app = TestApp::on(db).await;
    let (owner, _) = app.register("owner@example.com", "Olive Owner").await;
    let (other, _) = app.register("other@example.com", "Otto Other").await;
    let r = create(
        &app,
        &owner,
        json!({"title": "Photos from the event", "instructions": "JPEG or PNG please", "max_files": 10,
               "password": "secret words", "require_uploader_name": true, "expires_in_hours": 48}),
    )
    .await;
    let uuid = uuid_of(&r);
    assert_eq!(r["upload_url"], format!("{}/upload/{uuid}/", app.base));
    assert!(r["qr_code_data"].as_str().is_some_and(|q| q.starts_with("data:image/png;base64,")));
    assert_eq!(r["status"], "open");
    assert_eq!(r["uploads_count"], 0);
    assert_eq!(r["files_remaining"], 10);
    assert_eq!(r["bytes_remaining"], Value::Null);
    assert_eq!(r["is_password_protected"], true);
    assert!(r.get("password").is_none() && r.get("password_hash").is_none());
    assert!(r["expires_at"].is_string());
    // A new collection named after the title receives the files.
    let cid = r["collection_id"].as_i64().expect("collection id");
    let c = app.state.store.collection(cid).await.expect("db").expect("collection");
    assert_eq!(c.title, "Photos from the event");
    // Into an existing collection of the caller's.
    let r2 = create(&app, &owner, json!({"title": "More", "collection_id": cid})).await;
    assert_eq!(r2["collection_id"], cid);
    // List, read, change.
    let list: Value = app.get("/api/v3/file-requests/?page_size=1", Some(&owner)).await.json().await.expect("json");
    assert_eq!(list["count"], 2);
    assert_eq!(list["results"].as_array().map(Vec::len), Some(1));
    assert!(list["next"].as_str().is_some_and(|n| n.starts_with(&app.base)));
    let empty: Value = app.get("/api/v3/file-requests/", Some(&other)).await.json().await.expect("json");
    assert_eq!(empty["count"], 0);
    let got = request_state(&app, &owner, &uuid).await;
    assert_eq!(got["title"], "Photos from the event");
    let p = app
        .patch_json(
            &format!("/api/v3/file-requests/{uuid}/"),
            Some(&owner),
            &json!({"title": "Event photos", "max_files": null, "password": null}),
        )
        .await;
    assert_eq!(p.status(), StatusCode::OK);
    let p: Value = p.json().await.expect("json");
    assert_eq!(
        (p["title"].as_str(), p["max_files"].is_null(), p["is_password_protected"].as_bool()),
        (Some("Event photos"), true, Some(false))
    );
    // Another user's request is 404 on every owner route.
    for (m, path) in [
        (Method::GET, format!("/api/v3/file-requests/{uuid}/")),
        (Method::PATCH, format!("/api/v3/file-requests/{uuid}/")),
        (Method::DELETE, format!("/api/v3/file-requests/{uuid}/")),
        (Method::GET, format!("/api/v3/file-requests/{uuid}/qr.png")),
        (Method::GET, format!("/api/v3/file-requests/{uuid}/qr.svg")),
    ] {
        let r = app.req(m.clone(), &path, Some(&other)).json(&json!({})).send().await.expect("req");
        assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    }
    let qr = app.get(&format!("/api/v3/file-requests/{uuid}/qr.png?size=200"), Some(&owner)).await;
    assert_eq!(qr.status(), StatusCode::OK);
    assert_eq!(qr.headers()["content-type"], "image/png");
    // Close: 204, status closed, uploads refused with 410 request_closed; the files stay.
    let ok = send(&app, &uuid, "a.pdf", pdf(1, 500), &[("uploader_name", "Ann")], None).await;
    assert_eq!(ok.status(), StatusCode::CREATED);
    assert_eq!(
        app.delete(&format!("/api/v3/file-requests/{uuid}/"), Some(&owner)).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(request_state(&app, &owner, &uuid).await["status"], "closed");
    let r = send(&app, &uuid, "b.pdf", pdf(2, 500), &[("uploader_name", "Ann")], None).await;
    assert_error(r, StatusCode::GONE, "request_closed").await;
    assert_eq!(app.state.store.collection_items(cid).await.expect("items").len(), 1);
    let r = app.patch_json(&format!("/api/v3/file-requests/{uuid}/"), Some(&owner), &json!({"title": "x"})).await;
    assert_error(r, StatusCode::GONE, "request_closed").await;
}

async fn validation(db: Db) {
    let app = TestApp::on(db).await;
    let (owner, _) = app.register("owner@example.com", "Olive Owner").await;
    let (other, _) = app.register("other@example.com", "Otto Other").await;
    let bad = |body: Value| {
        let app = &app;
        let owner = owner.clone();
        async move {
            let r = app.post_json("/api/v3/file-requests/", Some(&owner), &body).await;
            assert_error(r, StatusCode::BAD_REQUEST, "validation_error").await["fields"].clone()
        }
    };
    let f =
        bad(json!({"title": "T", "allowed_types": ["image/png", "application/x-msdownload", "text/x-shellscript"]}))
            .await;
    let why = f["allowed_types"].as_str().expect("allowed_types named");
    assert!(
        why.contains("application/x-msdownload") && why.contains("text/x-shellscript") && !why.contains("image/png"),
        "{why}"
    );
    let f = bad(json!({"instructions": "x"})).await;
    assert!(f["title"].is_string());
    let f = bad(json!({"title": "T", "max_files": 0, "max_total_bytes": -1, "expires_in_hours": 0.5,
                       "max_file_bytes": app.state.config.asset_max_bytes + 1, "password": "short"}))
    .await;
    for k in ["max_files", "max_total_bytes", "expires_in_hours", "max_file_bytes", "password"] {
        assert!(f[k].is_string(), "{k}: {f}");
    }
    let f = bad(json!({"title": "T", "expires_in_hours": 8761})).await;
    assert!(f["expires_in_hours"].is_string());
    let f = bad(json!({"title": "T", "instructions": "x".repeat(5001)})).await;
    assert!(f["instructions"].is_string());
    // Someone else's collection.
    let theirs = create(&app, &other, json!({"title": "Theirs"})).await;
    let f = bad(json!({"title": "T", "collection_id": theirs["collection_id"]})).await;
    assert!(f["collection_id"].is_string());
    // Unknown fields and no auth.
    let r = app.post_json("/api/v3/file-requests/", Some(&owner), &json!({"title": "T", "nope": 1})).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = app.post_json("/api/v3/file-requests/", None, &json!({"title": "T"})).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

async fn exact_max_files_under_concurrency(db: Db) {
    let app = TestApp::spawn_with(Spawn {
        db,
        tweak: Box::new(|c| c.file_request_rate_per_ip_per_minute = 1000),
        ..Default::default()
    })
    .await;
    let (owner, _) = app.register("owner@example.com", "Olive Owner").await;
    let r = create(&app, &owner, json!({"title": "Five only", "max_files": 5})).await;
    let uuid = uuid_of(&r);
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let client = app.client.clone();
            let url = app.url(&format!("/upload/{uuid}/files"));
            tokio::spawn(async move {
                send_as(&client, &url, &format!("f{i}.pdf"), pdf(i, 2000), &[], None, "application/json").await.status()
            })
        })
        .collect();
    let mut statuses = vec![];
    for t in tasks {
        statuses.push(t.await.expect("task"));
    }
    let ok = statuses.iter().filter(|s| **s == StatusCode::CREATED).count();
    let gone = statuses.iter().filter(|s| **s == StatusCode::GONE).count();
    assert_eq!((ok, gone), (5, 45), "{statuses:?}");
    let state = request_state(&app, &owner, &uuid).await;
    assert_eq!((state["uploads_count"].as_i64(), state["files_remaining"].as_i64()), (Some(5), Some(0)));
    assert_eq!(state["status"], "full");
    let cid = r["collection_id"].as_i64().expect("cid");
    assert_eq!(app.state.store.collection_items(cid).await.expect("items").len(), 5);
    let r = send(&app, &uuid, "late.pdf", pdf(99, 500), &[], None).await;
    assert_error(r, StatusCode::GONE, "request_full").await;
    let page = app.client.get(app.url(&format!("/upload/{uuid}/"))).header("accept", "application/json").send().await;
    assert_error(page.expect("page"), StatusCode::GONE, "request_full").await;
}

async fn exact_max_total_bytes(db: Db) {
    let app = TestApp::spawn_with(Spawn {
        db,
        tweak: Box::new(|c| c.file_request_rate_per_ip_per_minute = 1000),
        ..Default::default()
    })
    .await;
    let (owner, _) = app.register("owner@example.com", "Olive Owner").await;
    let size = pdf(0, 1000).len() as i64;
    let r = create(&app, &owner, json!({"title": "Bytes", "max_total_bytes": size * 3 + size / 2})).await;
    let uuid = uuid_of(&r);
    // Concurrent: never more than the limit.
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let client = app.client.clone();
            let url = app.url(&format!("/upload/{uuid}/files"));
            tokio::spawn(async move {
                send_as(&client, &url, &format!("f{i}.pdf"), pdf(i, 1000), &[], None, "application/json").await.status()
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        let s = t.await.expect("task");
        assert!([StatusCode::CREATED, StatusCode::GONE, StatusCode::PAYLOAD_TOO_LARGE].contains(&s), "{s}");
        ok += usize::from(s == StatusCode::CREATED);
    }
    assert!((1..=3).contains(&ok), "{ok} accepted");
    // Then one by one: files that fit are taken until exactly the limit; one that does not fit is 413.
    loop {
        let st = request_state(&app, &owner, &uuid).await;
        let left = st["bytes_remaining"].as_i64().expect("bytes_remaining");
        if left >= size {
            assert_eq!(
                send(&app, &uuid, "more.pdf", pdf(100 + left as usize, 1000), &[], None).await.status(),
                StatusCode::CREATED
            );
            continue;
        }
        let r = send(&app, &uuid, "big.pdf", pdf(200, 1000), &[], None).await;
        assert_error(r, StatusCode::PAYLOAD_TOO_LARGE, "too_large").await;
        let filler = vec![b'a'; left as usize];
        assert_eq!(send(&app, &uuid, "fill.txt", filler, &[], None).await.status(), StatusCode::CREATED);
        break;
    }
    let st = request_state(&app, &owner, &uuid).await;
    assert_eq!(st["bytes_received"].as_i64(), st["max_total_bytes"].as_i64());
    assert_eq!(st["status"], "full");
    let r = send(&app, &uuid, "x.txt", b"x".to_vec(), &[], None).await;
    assert_error(r, StatusCode::GONE, "request_full").await;
}

async fn every_refusal(db: Db) {
    let app = TestApp::spawn_with(Spawn {
        db,
        tweak: Box::new(|c| c.file_request_rate_per_ip_per_minute = 1000),
        ..Default::default()
    })
    .await;
    let (owner, _) = app.register("owner@example.com", "Olive Owner").await;
    let r = create(
        &app,
        &owner,
        json!({"title": "Strict", "max_files": 1, "max_file_bytes": 800, "allowed_types": ["application/pdf"],
               "require_uploader_name": true, "require_uploader_email": true}),
    )
    .await;
    let uuid = uuid_of(&r);
    let who = [("uploader_name", "Ann"), ("uploader_email", "ann@example.com")];
    // 413: over max_file_bytes.
    let e = send(&app, &uuid, "big.pdf", pdf(1, 2000), &who, None).await;
    assert_error(e, StatusCode::PAYLOAD_TOO_LARGE, "too_large").await;
    // 415: a type the request does not take, and a file that claims one but is another.
    let e = send(&app, &uuid, "a.png", fixtures::png(4, 4), &who, None).await;
    assert_error(e, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_type").await;
    let e = send(&app, &uuid, "a.pdf", b"just some text, not a pdf".to_vec(), &who, None).await;
    assert_error(e, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_type").await;
    // 422: executables, even named as a PDF.
    let e = send(&app, &uuid, "a.pdf", fixtures::elf(), &who, None).await;
    assert_error(e, StatusCode::UNPROCESSABLE_ENTITY, "executable_refused").await;
    // 400: required name and e-mail, named in fields.
    let e = send(&app, &uuid, "a.pdf", pdf(2, 500), &[], None).await;
    let v = assert_error(e, StatusCode::BAD_REQUEST, "validation_error").await;
    assert!(v["fields"]["uploader_name"].is_string() && v["fields"]["uploader_email"].is_string(), "{v}");
    let e =
        send(&app, &uuid, "a.pdf", pdf(2, 500), &[("uploader_name", "Ann"), ("uploader_email", "nope")], None).await;
    assert_error(e, StatusCode::BAD_REQUEST, "validation_error").await;
    // 400: no file.
    let form = reqwest::multipart::Form::new().text("uploader_name", "Ann");
    let e = app.client.post(app.url(&format!("/upload/{uuid}/files"))).multipart(form).send().await.expect("req");
    assert_error(e, StatusCode::BAD_REQUEST, "validation_error").await;
    // Every refusal gave its reservation back: the one slot is still free.
    let st = request_state(&app, &owner, &uuid).await;
    assert_eq!((st["uploads_count"].as_i64(), st["files_remaining"].as_i64()), (Some(0), Some(1)));
    assert_eq!(send(&app, &uuid, "ok.pdf", pdf(3, 500), &who, None).await.status(), StatusCode::CREATED);
    // 410 full.
    assert_error(send(&app, &uuid, "b.pdf", pdf(4, 500), &who, None).await, StatusCode::GONE, "request_full").await;
    // 410 expired.
    let r = create(&app, &owner, json!({"title": "Soon over", "expires_in_hours": 1})).await;
    let soon = uuid_of(&r);
    app.advance(Duration::from_secs(2 * 3600));
    assert_error(send(&app, &soon, "a.pdf", pdf(5, 500), &[], None).await, StatusCode::GONE, "request_expired").await;
    assert_eq!(request_state(&app, &owner, &soon).await["status"], "expired");
    // 404: unknown and malformed uuids.
    let unknown = uuid::Uuid::new_v4().to_string();
    assert_error(send(&app, &unknown, "a.pdf", pdf(6, 500), &[], None).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_error(send(&app, "not-a-uuid", "a.pdf", pdf(6, 500), &[], None).await, StatusCode::NOT_FOUND, "not_found")
        .await;
}

async fn password_unlock_and_lockout(db: Db) {
    let app = TestApp::on(db).await;
    let (owner, _) = app.register("owner@example.com", "Olive Owner").await;
    let r = create(&app, &owner, json!({"title": "Private drop", "password": "open sesame"})).await;
    let uuid = uuid_of(&r);
    // The JSON page says a password is needed; an upload without unlocking is 401.
    let info: Value = app
        .client
        .get(app.url(&format!("/upload/{uuid}/")))
        .header("accept", "application/json")
        .send()
        .await
        .expect("page")
        .json()
        .await
        .expect("json");
    assert_eq!(info["requires"]["password"], true);
    let e = send(&app, &uuid, "a.pdf", pdf(1, 500), &[], None).await;
    assert_error(e, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    let unlock = format!("/api/v3/file-requests/{uuid}/unlock/");
    let ok = app.post_json(&unlock, None, &json!({"password": "open sesame"})).await;
    assert_eq!(ok.status(), StatusCode::OK);
    let ok: Value = ok.json().await.expect("json");
    let token = ok["access_token"].as_str().expect("token").to_string();
    assert!(ok["expires_in"].as_u64().is_some_and(|s| s > 0));
    assert_eq!(send(&app, &uuid, "a.pdf", pdf(1, 500), &[], Some(&token)).await.status(), StatusCode::CREATED);
    // Another request's token does not open this one.
    let other = create(&app, &owner, json!({"title": "Other", "password": "open sesame"})).await;
    let e = send(&app, &uuid_of(&other), "a.pdf", pdf(2, 500), &[], Some(&token)).await;
    assert_eq!(e.status(), StatusCode::UNAUTHORIZED);
    // An unprotected request has nothing to unlock.
    let open = create(&app, &owner, json!({"title": "Open"})).await;
    let e = app
        .post_json(
            &format!("/api/v3/file-requests/{}/unlock/", uuid_of(&open)),
            None,
            &json!({"password": "whatever1"}),
        )
        .await;
    assert_error(e, StatusCode::BAD_REQUEST, "not_protected").await;
    // Five wrong passwords are refused one by one; then the address is locked out (429).
    for _ in 0..5 {
        let e = app.post_json(&unlock, None, &json!({"password": "wrong guess"})).await;
        assert_error(e, StatusCode::FORBIDDEN, "wrong_password").await;
    }
    let e = app.post_json(&unlock, None, &json!({"password": "open sesame"})).await;
    assert!(e.headers().get("retry-after").is_some());
    assert_error(e, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_rate_limited_per_ip() {
    let app = TestApp::spawn_with(Spawn {
        tweak: Box::new(|c| c.file_request_rate_per_ip_per_minute = 3),
        ..Default::default()
    })
    .await;
    let (owner, _) = app.register("owner@example.com", "Olive Owner").await;
    let uuid = uuid_of(&create(&app, &owner, json!({"title": "Busy"})).await);
    for i in 0..3 {
        assert_eq!(send(&app, &uuid, "a.pdf", pdf(i, 500), &[], None).await.status(), StatusCode::CREATED);
    }
    let e = send(&app, &uuid, "a.pdf", pdf(9, 500), &[], None).await;
    assert!(e.headers().get("retry-after").is_some());
    assert_error(e, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    let st = request_state(&app, &owner, &uuid).await;
    assert_eq!(st["uploads_count"], 3);
}

async fn files_land_with_their_source(db: Db) {
    let app = TestApp::on(db).await;
    let (owner, _) = app.register("owner@example.com", "Olive Owner").await;
    let own = app.upload(&owner, "mine.pdf", pdf(0, 500)).await;
    assert_eq!(own["source"], Value::Null);
    let r = create(&app, &owner, json!({"title": "Contracts"})).await;
    let uuid = uuid_of(&r);
    let resp = send(
        &app,
        &uuid,
        "signed.pdf",
        pdf(1, 700),
        &[("uploader_name", "Sam Sender"), ("uploader_email", "Sam@Example.com"), ("message", "Signed copy")],
        None,
    )
    .await;
    let body = created(resp).await;
    // The uploader learns the name, size, type and time; nothing else.
    let keys: Vec<&str> = body.as_object().expect("object").keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 4, "{body}");
    for k in ["name", "size", "mime_type", "received_at"] {
        assert!(body.get(k).is_some(), "{k}");
    }
    assert_eq!((body["name"].as_str(), body["mime_type"].as_str()), (Some("signed.pdf"), Some("application/pdf")));
    // The owner has it, with its source, in the request's collection.
    let list: Value = app.get("/api/v3/assets/", Some(&owner)).await.json().await.expect("json");
    let got =
        list["results"].as_array().expect("results").iter().find(|a| a["name"] == "signed.pdf").expect("asset").clone();
    assert_eq!(got["owner"]["name"], "Olive Owner");
    assert_eq!(
        got["source"],
        json!({"file_request": uuid, "uploader_name": "Sam Sender", "uploader_email": "sam@example.com", "message": "Signed copy"})
    );
    let one: Value = app.get(&format!("/api/v3/assets/{}/", got["id"]), Some(&owner)).await.json().await.expect("json");
    assert_eq!(one["source"]["file_request"], uuid.as_str());
    let items = app.state.store.collection_items(r["collection_id"].as_i64().expect("cid")).await.expect("items");
    assert_eq!(items.iter().map(|i| i.asset.id).collect::<Vec<_>>(), vec![got["id"].as_i64().expect("id")]);
    assert_eq!(request_state(&app, &owner, &uuid).await["bytes_received"], got["size"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_under_upload_is_readable() {
    let app = TestApp::spawn().await;
    let (owner, _) = app.register("owner@example.com", "Olive Owner").await;
    let uuid = uuid_of(&create(&app, &owner, json!({"title": "Drop"})).await);
    let body = created(send(&app, &uuid, "a.pdf", pdf(1, 500), &[], None).await).await;
    let asset_id =
        app.get("/api/v3/assets/", Some(&owner)).await.json::<Value>().await.expect("json")["results"][0]["id"]
            .as_i64()
            .expect("id");
    assert!(body.get("id").is_none() && !body.to_string().contains("http"), "no id or URL leaks: {body}");
    let get_files = app.get(&format!("/upload/{uuid}/files"), None).await;
    assert_eq!(get_files.status(), StatusCode::METHOD_NOT_ALLOWED);
    for path in [
        format!("/upload/{uuid}/files/{asset_id}"),
        format!("/upload/{uuid}/files/a.pdf"),
        format!("/upload/{uuid}/{asset_id}"),
        format!("/upload/{uuid}/download"),
        format!("/upload/{uuid}/a.pdf"),
        format!("/upload/{uuid}/list"),
        format!("/upload/{uuid}/qr.png"),
        "/upload".to_string(),
    ] {
        let r = app.get(&path, None).await;
        assert!(
            [StatusCode::NOT_FOUND, StatusCode::METHOD_NOT_ALLOWED].contains(&r.status()),
            "{path}: {}",
            r.status()
        );
    }
    // The JSON page tells the limits, never the files.
    let info: Value = app
        .client
        .get(app.url(&format!("/upload/{uuid}/")))
        .header("accept", "application/json")
        .send()
        .await
        .expect("page")
        .json()
        .await
        .expect("json");
    assert!(!info.to_string().contains("a.pdf"), "{info}");
    for k in [
        "title",
        "instructions",
        "status",
        "max_file_bytes",
        "allowed_types",
        "files_remaining",
        "bytes_remaining",
        "requires",
        "expires_at",
    ] {
        assert!(info.get(k).is_some(), "{k} in {info}");
    }
    assert_eq!(info["requires"], json!({"password": false, "uploader_name": false, "uploader_email": false}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_is_told_live_and_by_mail() {
    let smtp = SmtpSink::start().await;
    let smtp_url = smtp.url.clone();
    let app =
        TestApp::spawn_with(Spawn { tweak: Box::new(move |c| c.smtp_url = Some(smtp_url)), ..Default::default() })
            .await;
    let (owner, _) = app.register("owner@example.com", "Olive Owner").await;
    let uuid = uuid_of(&create(&app, &owner, json!({"title": "Receipts", "notify_on_upload": true})).await);
    let ws_url = format!("ws://{}/ws/notifications/?token={owner}", app.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url).await.expect("connect");
    assert_eq!(next_json(&mut ws).await["type"], "connection_established");
    let r = send(&app, &uuid, "receipt.pdf", pdf(1, 600), &[("uploader_name", "Rita")], None).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let n = next_json(&mut ws).await;
    assert_eq!((n["type"].as_str(), n["kind"].as_str()), (Some("notification"), Some("file_request_upload")), "{n}");
    assert_eq!(n["file_request_uuid"], uuid.as_str());
    assert_eq!(n["file_request_title"], "Receipts");
    assert_eq!(n["file_name"], "receipt.pdf");
    assert_eq!(n["uploader_name"], "Rita");
    assert!(n["size"].as_i64().is_some_and(|s| s > 0));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while smtp.mails().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no mail arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mail = smtp.mails().join("\n");
    assert!(mail.contains("owner@example.com") && mail.contains("Receipts") && mail.contains("receipt.pdf"), "{mail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_uploader_page_works_without_javascript() {
    let app = TestApp::spawn().await;
    let (owner, _) = app.register("owner@example.com", "Olive Owner").await;
    let r = create(
        &app,
        &owner,
        json!({"title": "Send us your CV", "instructions": "PDF only, please.", "allowed_types": ["application/pdf"],
               "require_uploader_email": true, "max_files": 3}),
    )
    .await;
    let uuid = uuid_of(&r);
    let page =
        app.client.get(app.url(&format!("/upload/{uuid}/"))).header("accept", "text/html").send().await.expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    let csrf_cookie = set_cookie(&page, "vitrine_csrf").map(|c| cookie_pair(&c));
    let html = page.text().await.expect("html");
    for needle in [
        "Send us your CV",
        "PDF only, please.",
        "enctype=\"multipart/form-data\"",
        &format!("action=\"/upload/{uuid}/files\""),
        "name=\"uploader_email\"",
        "name=\"file\"",
        "drop-zone",
        "/static/js/file-request.js",
        "3 files still accepted",
    ] {
        assert!(html.contains(needle), "{needle} missing");
    }
    let _ = (csrf_of(&html), csrf_cookie);
    // The plain form post gets a thank-you page.
    let url = app.url(&format!("/upload/{uuid}/files"));
    let done = send_as(
        &app.client,
        &url,
        "cv.pdf",
        pdf(1, 500),
        &[("uploader_email", "c@example.com")],
        None,
        "text/html,*/*",
    )
    .await;
    assert_eq!(done.status(), StatusCode::CREATED);
    let html = done.text().await.expect("html");
    assert!(html.contains("Thank you") && html.contains("cv.pdf"), "{html}");
    // A refusal is a page too, in plain words.
    let refused = send_as(&app.client, &url, "cv.pdf", pdf(2, 500), &[], None, "text/html").await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(refused.text().await.expect("html").contains("uploader_email"));
    // Unknown: 404 page; closed: 410 page that says so.
    let unknown = app
        .client
        .get(app.url(&format!("/upload/{}/", uuid::Uuid::new_v4())))
        .header("accept", "text/html")
        .send()
        .await
        .expect("page");
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    app.delete(&format!("/api/v3/file-requests/{uuid}/"), Some(&owner)).await;
    let closed =
        app.client.get(app.url(&format!("/upload/{uuid}/"))).header("accept", "text/html").send().await.expect("page");
    assert_eq!(closed.status(), StatusCode::GONE);
    assert!(closed.text().await.expect("html").contains("closed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protected_request_unlocks_with_the_form_and_a_cookie() {
    let app = TestApp::spawn().await;
    let (owner, _) = app.register("owner@example.com", "Olive Owner").await;
    let uuid = uuid_of(&create(&app, &owner, json!({"title": "Locked", "password": "open sesame"})).await);
    let (browser, status, html) = app.visit(&format!("/upload/{uuid}/")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(html.contains(&format!("action=\"/upload/{uuid}/unlock\"")));
    let wrong = browser.post_form(&format!("/upload/{uuid}/unlock"), &[("password", "nope nope")]).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let ok = browser.post_form(&format!("/upload/{uuid}/unlock"), &[("password", "open sesame")]).await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    let c = set_cookie(&ok, "vitrine_upload").expect("cookie");
    assert!(c.contains(&format!("Path=/upload/{uuid}")) && c.contains("HttpOnly"), "{c}");
    let browser = browser.with_cookie(&cookie_pair(&c));
    let page = browser.get(&format!("/upload/{uuid}/")).await;
    assert_eq!(page.status(), StatusCode::OK);
    // With the cookie, an upload must carry the page's CSRF token.
    let path = format!("/upload/{uuid}/files");
    let upload = |fields: Vec<(&'static str, String)>| {
        let mut form = reqwest::multipart::Form::new();
        for (k, v) in fields {
            form = form.text(k, v);
        }
        let part = reqwest::multipart::Part::bytes(pdf(1, 500)).file_name("a.pdf");
        browser.req(Method::POST, &path).header("accept", "application/json").multipart(form.part("file", part))
    };
    let e = upload(vec![]).send().await.expect("req");
    assert_error(e, StatusCode::FORBIDDEN, "csrf_failed").await;
    let ok = upload(vec![("csrf_token", browser.csrf.clone())]).send().await.expect("req");
    assert_eq!(ok.status(), StatusCode::CREATED);
}

on_both_databases!(
    crud,
    validation,
    exact_max_files_under_concurrency,
    exact_max_total_bytes,
    every_refusal,
    password_unlock_and_lockout,
    files_land_with_their_source,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_pages_create_show_change_and_close() {
    let app = TestApp::spawn().await;
    app.register("owner@example.com", "Olive Owner").await;
    app.register("other@example.com", "Otto Other").await;
    let owner = app.page_session("owner@example.com").await;
    let list = owner.get("/file-requests").await;
    assert_eq!(list.status(), StatusCode::OK);
    assert!(list.text().await.expect("html").contains("id=\"create-request\""));
    // A bad form shows the list again with the reason; a good one goes to the new request's page.
    let bad = owner.post_form("/file-requests", &[("title", "Bad"), ("allowed_types", "application/x-nope")]).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(bad.text().await.expect("html").contains("application/x-nope"));
    let made = owner
        .post_form("/file-requests", &[("title", "Scans"), ("max_files", "4"), ("require_uploader_name", "on")])
        .await;
    assert_eq!(made.status(), StatusCode::SEE_OTHER);
    let at = made.headers()["location"].to_str().expect("location").to_string();
    let uuid = at.trim_start_matches("/file-requests/").to_string();
    let html = owner.get(&at).await.text().await.expect("html");
    assert!(html.contains(&format!("{}/upload/{uuid}/", app.base)) && html.contains("data:image/png;base64,"));
    // Without the CSRF token nothing changes.
    let r = owner.post_form_as_is(&format!("/file-requests/{uuid}/close"), &[]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = owner.post_form(&at, &[("title", "Scans, please"), ("instructions", "PDF"), ("max_files", "")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let other = app.page_session("other@example.com").await;
    assert_eq!(other.get(&at).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(other.post_form(&format!("/file-requests/{uuid}/close"), &[]).await.status(), StatusCode::NOT_FOUND);
    let r = owner.post_form(&format!("/file-requests/{uuid}/close"), &[]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let html = owner.get(&at).await.text().await.expect("html");
    assert!(html.contains("Scans, please") && html.contains(">closed<"), "{html}");
    let list = owner.get("/file-requests").await.text().await.expect("html");
    assert!(list.contains(&format!("id=\"request-{uuid}\"")));
    // Signed out: to the login form.
    assert_eq!(app.get("/file-requests", None).await.status(), StatusCode::SEE_OTHER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_files_is_exact_across_two_instances() {
    let Some(bus) = crate::helpers::redis::redis_url().await else { return };
    let (a, b) = crate::helpers::redis::pair_with(&bus, |c| c.file_request_rate_per_ip_per_minute = 100_000).await;
    let (owner, _) = a.register("owner@example.com", "Olive Owner").await;
    let r = create(&a, &owner, json!({"title": "Six only", "max_files": 6})).await;
    let uuid = uuid_of(&r);
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let app = if i % 2 == 0 { &a } else { &b };
            let client = app.client.clone();
            let url = app.url(&format!("/upload/{uuid}/files"));
            tokio::spawn(async move {
                send_as(&client, &url, &format!("f{i}.pdf"), pdf(i, 1500), &[], None, "application/json").await.status()
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        let s = t.await.expect("task");
        assert!([StatusCode::CREATED, StatusCode::GONE].contains(&s), "{s}");
        ok += usize::from(s == StatusCode::CREATED);
    }
    assert_eq!(ok, 6);
    let st = request_state(&b, &owner, &uuid).await;
    assert_eq!((st["uploads_count"].as_i64(), st["status"].as_str()), (Some(6), Some("full")));
    let items = a.state.store.collection_items(r["collection_id"].as_i64().expect("cid")).await.expect("items");
    assert_eq!(items.len(), 6);
}
