//! Assets on SQLite and PostgreSQL: upload validation, ownership, list/get/patch/delete/content.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Db, Spawn, TestApp, assert_error, fixtures};

crate::on_both_databases!(
    uploading_a_pdf_records_its_metadata_and_hash,
    images_get_dimensions_and_a_thumbnail,
    owners_see_only_their_own_assets_and_admins_see_all,
    metadata_can_be_changed_by_the_owner_only,
    deleting_an_asset_removes_it_and_its_file,
    lists_are_paginated_newest_first,
);

async fn uploading_a_pdf_records_its_metadata_and_hash(db: Db) {
    let app = TestApp::on(db).await;
    let (token, id) = app.register("ada@example.com", "Ada Lovelace").await;
    let bytes = fixtures::pdf(5000);
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    let r = app
        .upload_with(
            Some(&token),
            "Q1 plan.pdf",
            bytes.clone(),
            &[("title", "Q1 plan"), ("description", "For review"), ("tags", "plan, q1,Plan")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.expect("json");
    for k in [
        "id",
        "title",
        "description",
        "name",
        "mime_type",
        "media_type",
        "size",
        "sha256",
        "width",
        "height",
        "duration_seconds",
        "thumbnail_url",
        "content_type",
        "owner",
        "created_at",
    ] {
        assert!(v.get(k).is_some(), "response has {k}");
    }
    assert_eq!(v["mime_type"], "application/pdf");
    assert_eq!(v["media_type"], "document");
    assert_eq!(v["size"], bytes.len());
    assert_eq!(v["sha256"], sha);
    assert_eq!(v["name"], "Q1 plan.pdf");
    assert_eq!(v["title"], "Q1 plan");
    assert_eq!(v["tags"], json!(["plan", "q1"]));
    assert_eq!(v["content_type"], "talent_media");
    assert_eq!(v["owner"], json!({"id": id, "name": "Ada Lovelace"}));
    let got = app.get(&format!("/api/v3/assets/{}/content", v["id"]), Some(&token)).await;
    assert_eq!(got.status(), StatusCode::OK);
    assert!(got.headers()["content-security-policy"].to_str().unwrap_or("").starts_with("sandbox"));
    assert_eq!(got.headers()["x-content-type-options"], "nosniff");
    assert!(got.headers()["content-disposition"].to_str().unwrap_or("").starts_with("attachment"));
    assert_eq!(got.bytes().await.expect("bytes").to_vec(), bytes);
}

async fn images_get_dimensions_and_a_thumbnail(db: Db) {
    let app = TestApp::on(db).await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    let v = app.upload(&token, "photo.png", fixtures::png(640, 480)).await;
    assert_eq!(v["media_type"], "image");
    assert_eq!((v["width"].as_i64(), v["height"].as_i64()), (Some(640), Some(480)));
    let thumb_url = v["thumbnail_url"].as_str().expect("thumbnail url");
    let r = app.client.get(thumb_url).send().await.expect("thumb");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    let img = image::load_from_memory(&r.bytes().await.expect("bytes")).expect("decodes");
    assert_eq!((img.width(), img.height()), (320, 240));
}

async fn owners_see_only_their_own_assets_and_admins_see_all(db: Db) {
    let app = TestApp::on(db).await;
    let (admin, user) = app.admin_and_user().await;
    let (other, _) = app.register("other@example.com", "Otto").await;
    let a = app.upload(&user, "mine.pdf", fixtures::pdf(300)).await;
    let id = a["id"].as_i64().expect("id");
    for path in [format!("/api/v3/assets/{id}/"), format!("/api/v3/assets/{id}/content")] {
        assert_error(app.get(&path, Some(&other)).await, StatusCode::NOT_FOUND, "not_found").await;
        assert_error(app.get(&path, None).await, StatusCode::UNAUTHORIZED, "not_authenticated").await;
        assert_eq!(app.get(&path, Some(&admin)).await.status(), StatusCode::OK);
    }
    let theirs: Value = app.get("/api/v3/assets/", Some(&other)).await.json().await.expect("json");
    assert_eq!(theirs["count"], 0);
    let all: Value = app.get("/api/v3/assets/?all=true", Some(&admin)).await.json().await.expect("json");
    assert_eq!(all["count"], 1);
    let own: Value = app.get("/api/v3/assets/", Some(&admin)).await.json().await.expect("json");
    assert_eq!(own["count"], 0, "an admin's own list is their own");
    assert_error(app.get("/api/v3/assets/?all=true", Some(&other)).await, StatusCode::FORBIDDEN, "forbidden").await;
    assert_error(app.get("/api/v3/assets/?owner_id=2", Some(&other)).await, StatusCode::FORBIDDEN, "forbidden").await;
    assert_error(app.delete(&format!("/api/v3/assets/{id}/"), Some(&other)).await, StatusCode::NOT_FOUND, "not_found")
        .await;
    assert_error(
        app.patch_json(&format!("/api/v3/assets/{id}/"), Some(&other), &json!({"title": "x"})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

async fn metadata_can_be_changed_by_the_owner_only(db: Db) {
    let app = TestApp::on(db).await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    let a = app.upload(&token, "a.pdf", fixtures::pdf(300)).await;
    let path = format!("/api/v3/assets/{}/", a["id"]);
    let r = app
        .patch_json(
            &path,
            Some(&token),
            &json!({"title": "New", "tags": ["x", "y"], "content_type": "prop", "name": "../../evil.pdf"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.expect("json");
    assert_eq!(
        (v["title"].as_str(), v["content_type"].as_str(), v["name"].as_str()),
        (Some("New"), Some("prop"), Some("evil.pdf"))
    );
    assert_eq!(v["tags"], json!(["x", "y"]));
    let e = assert_error(
        app.patch_json(&path, Some(&token), &json!({"content_type": "spaceship"})).await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    )
    .await;
    assert!(e["fields"]["content_type"].is_string());
    assert_error(
        app.patch_json(&path, Some(&token), &json!({"owner_id": 5})).await,
        StatusCode::BAD_REQUEST,
        "invalid_body",
    )
    .await;
    assert_error(
        app.patch_json(&path, Some(&token), &json!({"title": "x".repeat(300)})).await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    )
    .await;
}

async fn deleting_an_asset_removes_it_and_its_file(db: Db) {
    let app =
        TestApp::spawn_with(Spawn { db, tweak: Box::new(|c| c.blob_gc_grace_secs = 0), ..Default::default() }).await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    let a = app.upload(&token, "a.png", fixtures::png(50, 50)).await;
    let url = a["download_url"].as_str().expect("url").to_string();
    assert_eq!(app.client.get(&url).send().await.expect("get").status(), StatusCode::OK);
    let r = app.delete(&format!("/api/v3/assets/{}/", a["id"]), Some(&token)).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_error(
        app.get(&format!("/api/v3/assets/{}/", a["id"]), Some(&token)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(
        app.delete(&format!("/api/v3/assets/{}/", a["id"]), Some(&token)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // The blob and thumbnail are gone, and a still-valid signed URL says so (410).
    assert_error(app.client.get(&url).send().await.expect("get"), StatusCode::GONE, "file_deleted").await;
    assert!(app.state.blobs.list("assets").await.expect("list").is_empty());
    assert!(app.state.blobs.list("thumbs").await.expect("list").is_empty());
}

async fn lists_are_paginated_newest_first(db: Db) {
    let app = TestApp::on(db).await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    for i in 0..3 {
        app.upload_with(Some(&token), &format!("f{i}.txt"), format!("file number {i}\n").into_bytes(), &[]).await;
    }
    let p1: Value = app.get("/api/v3/assets/?page_size=2", Some(&token)).await.json().await.expect("json");
    assert_eq!(p1["count"], 3);
    assert_eq!(p1["results"][0]["name"], "f2.txt");
    assert_eq!(p1["previous"], Value::Null);
    let next = p1["next"].as_str().expect("next").to_string();
    assert!(next.starts_with(&app.base));
    let p2: Value = app.client.get(&next).bearer_auth(&token).send().await.expect("next").json().await.expect("json");
    assert_eq!(p2["results"].as_array().map(Vec::len), Some(1));
    assert_eq!(p2["results"][0]["name"], "f0.txt");
    assert!(p2["previous"].as_str().is_some());
    assert_eq!(p2["next"], Value::Null);
    for bad in ["page=0", "page_size=101", "page=abc", "page_size=-1"] {
        assert_error(
            app.get(&format!("/api/v3/assets/?{bad}"), Some(&token)).await,
            StatusCode::BAD_REQUEST,
            "validation_error",
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executables_are_refused_even_when_renamed() {
    let app = TestApp::spawn().await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("holiday.jpg", fixtures::elf()),
        ("report.pdf", fixtures::pe()),
        ("notes.txt", b"#!/bin/sh\necho pwned\n".to_vec()),
        ("notes.txt", b"@echo off\r\nformat c:\r\n".to_vec()),
        ("setup.txt", b"\0asm\x01\0\0\0".to_vec()),
        ("run.bat", b"echo hello\r\n".to_vec()),
        ("app.exe", b"plain words\n".to_vec()),
    ];
    for (name, bytes) in cases {
        let r = app.upload_with(Some(&token), name, bytes, &[]).await;
        assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "executable_refused").await;
    }
    let listed: Value = app.get("/api/v3/assets/", Some(&token)).await.json().await.expect("json");
    assert_eq!(listed["count"], 0, "nothing was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_binary_and_html_are_unsupported_types() {
    let app = TestApp::spawn().await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    let r = app.upload_with(Some(&token), "blob.pdf", vec![0x13, 0x37, 0, 0xff, 0, 1, 2, 3, 0, 0, 9], &[]).await;
    assert_error(r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_type").await;
    let r = app.upload_with(Some(&token), "page.txt", b"<!doctype html><script>alert(1)</script>".to_vec(), &[]).await;
    assert_error(r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_type").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_over_the_limit_are_refused_while_streaming_and_leave_nothing() {
    let app =
        TestApp::spawn_with(Spawn { tweak: Box::new(|c| c.asset_max_bytes = 64 * 1024), ..Default::default() }).await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    let r = app.upload_with(Some(&token), "big.pdf", fixtures::pdf(64 * 1024 + 10), &[]).await;
    assert_error(r, StatusCode::PAYLOAD_TOO_LARGE, "too_large").await;
    assert_eq!(
        app.upload_with(Some(&token), "ok.pdf", fixtures::pdf(60 * 1024), &[]).await.status(),
        StatusCode::CREATED
    );
    assert!(app.state.blobs.list("tmp").await.expect("list").is_empty(), "no temporary leftovers");
    // A declared length far over the limit is refused before reading.
    let r = app
        .req(reqwest::Method::POST, "/api/v3/assets/", Some(&token))
        .header("content-type", "multipart/form-data; boundary=x")
        .header("content-length", "100000000")
        .body(vec![b'a'; 10])
        .send()
        .await;
    if let Ok(r) = r {
        assert_error(r, StatusCode::PAYLOAD_TOO_LARGE, "too_large").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_names_are_sanitised() {
    let app = TestApp::spawn().await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    let v = app.upload(&token, "../../etc/passwd.txt", b"hello\n".to_vec()).await;
    assert_eq!(v["name"], "passwd.txt");
    let v = app.upload(&token, "..\\..\\windows.txt", b"hello\n".to_vec()).await;
    assert_eq!(v["name"], "windows.txt");
    let long = format!("{}.txt", "n".repeat(400));
    let v = app.upload(&token, &long, b"hello\n".to_vec()).await;
    assert!(v["name"].as_str().is_some_and(|n| n.len() <= 255 && n.ends_with(".txt")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decompression_bombs_are_refused_with_a_clear_error() {
    let app =
        TestApp::spawn_with(Spawn { tweak: Box::new(|c| c.image_max_pixels = 1_000_000), ..Default::default() }).await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    let r = app.upload_with(Some(&token), "bomb.png", fixtures::png_claiming(100_000, 100_000), &[]).await;
    let e = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "image_too_large").await;
    assert!(e["error"].as_str().is_some_and(|s| s.contains("100000x100000")));
    let r = app.upload_with(Some(&token), "big.png", fixtures::png(1200, 1000), &[]).await;
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "image_too_large").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_uploads_get_clear_errors() {
    let app = TestApp::spawn().await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    // Not multipart.
    let r = app.post_json("/api/v3/assets/", Some(&token), &json!({"file": "x"})).await;
    assert_error(r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_type").await;
    // No file part.
    let form = reqwest::multipart::Form::new().text("title", "t");
    let r = app.req(reqwest::Method::POST, "/api/v3/assets/", Some(&token)).multipart(form).send().await.expect("send");
    assert_error(r, StatusCode::BAD_REQUEST, "validation_error").await;
    // A truncated multipart body.
    let r = app
        .req(reqwest::Method::POST, "/api/v3/assets/", Some(&token))
        .header("content-type", "multipart/form-data; boundary=XYZ")
        .body("--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nhello")
        .send()
        .await
        .expect("send");
    assert_error(r, StatusCode::BAD_REQUEST, "malformed_multipart").await;
    // Bad metadata next to a good file.
    let r = app.upload_with(Some(&token), "a.txt", b"hi\n".to_vec(), &[("content_type", "spaceship")]).await;
    assert_error(r, StatusCode::BAD_REQUEST, "validation_error").await;
    let r = app.upload_with(Some(&token), "empty.txt", vec![], &[]).await;
    assert_error(r, StatusCode::BAD_REQUEST, "validation_error").await;
    // Unauthenticated.
    assert_error(
        app.upload_with(None, "a.txt", b"hi\n".to_vec(), &[]).await,
        StatusCode::UNAUTHORIZED,
        "not_authenticated",
    )
    .await;
    assert!(app.state.blobs.list("tmp").await.expect("list").is_empty(), "refused uploads leave no temporary blob");
    assert!(app.state.blobs.list("assets").await.expect("list").is_empty());
}
