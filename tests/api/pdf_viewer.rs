//! The document viewer and its page analytics, and watermarked previews (issue 22 parts 6 and 7):
//! pdf.js in Chromium turning pages, the beacon's page reports (bounded, malformed ones refused)
//! in the link's report, pdf.js only on PDF links, and images of preview-only links served as
//! re-encoded (and watermarked) renditions, never as the stored bytes.

use std::time::{Duration, Instant};

use fantoccini::Locator;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::browser::{Browser, wait_for};
use crate::helpers::{Spawn, TestApp, assert_error, created, fixtures};

const CHROME: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

fn app_opts() -> Spawn {
    Spawn { tweak: Box::new(|c| c.share_access_rate_per_ip_per_minute = 10_000), ..Default::default() }
}

/// A valid PDF of `pages` letter-size pages, each saying its number (with a correct xref table).
pub fn pdf_pages(pages: usize) -> Vec<u8> {
    let mut objects: Vec<String> = vec![];
    // 1: catalog, 2: pages, 3: font, then per page: the page and its content stream.
    objects.push("<< /Type /Catalog /Pages 2 0 R >>".into());
    let kids: Vec<String> = (0..pages).map(|i| format!("{} 0 R", 4 + i * 2)).collect();
    objects.push(format!("<< /Type /Pages /Kids [{}] /Count {pages} >>", kids.join(" ")));
    objects.push("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".into());
    for i in 0..pages {
        objects.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
            5 + i * 2
        ));
        let text = format!("BT /F1 48 Tf 72 700 Td (Page {}) Tj ET", i + 1);
        objects.push(format!("<< /Length {} >>\nstream\n{text}\nendstream", text.len()));
    }
    let mut out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = vec![];
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes(),
    );
    out
}

async fn share(app: &TestApp, token: &str, asset: &Value, body: Value) -> Value {
    created(app.post_json(&format!("/api/v3/assets/{}/share/", asset["id"]), Some(token), &body).await).await
}

fn path_of(share: &Value) -> String {
    let url = share["share_url"].as_str().expect("url");
    url[url.find("/share/").expect("path")..].to_string()
}

async fn report(app: &TestApp, token: &str, share: &Value) -> Value {
    app.state.analytics.flush().await.expect("flush");
    let r = app
        .get(&format!("/api/v3/shares/{}/analytics/?days=1", share["uuid"].as_str().expect("uuid")), Some(token))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.expect("json")
}

async fn beacon(app: &TestApp, share: &Value, body: String) -> reqwest::Response {
    app.client
        .post(app.url(&format!("{}beacon", path_of(share))))
        .header("user-agent", CHROME)
        .header("content-type", "text/plain;charset=UTF-8")
        .body(body)
        .send()
        .await
        .expect("beacon")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_viewer_shows_page_two_after_next_and_the_report_has_both_pages_and_completion() {
    let app = TestApp::spawn_with(app_opts()).await;
    let (token, _) = app.register("owner@example.com", "Olive").await;
    let doc = app.upload(&token, "deck.pdf", pdf_pages(2)).await;
    // Preview-only: the viewer must render from the preview stream alone.
    let link = share(&app, &token, &doc, json!({"allow_download": false})).await;
    let Some(browser) = Browser::start().await else { return };
    let c = &browser.client;
    c.goto(link["share_url"].as_str().expect("url")).await.expect("goto");
    wait_for(c, "return document.getElementById('pdf-viewer').dataset.renderedPage === '1';").await;
    let count = c.find(Locator::Id("pdf-viewer-count")).await.expect("count").text().await.expect("text");
    assert_eq!(count, "of 2");
    let label = c.find(Locator::Id("pdf-viewer-next")).await.expect("next").attr("aria-label").await.expect("attr");
    assert_eq!(label.as_deref(), Some("Next page"));
    // Some time on page 1 (the report shows seconds with one decimal).
    c.execute("return new Promise(r => setTimeout(() => r(true), 200));", vec![]).await.expect("wait");
    c.find(Locator::Id("pdf-viewer-next")).await.expect("next").click().await.expect("click");
    wait_for(c, "return document.getElementById('pdf-viewer').dataset.renderedPage === '2';").await;
    let status = c.find(Locator::Id("pdf-viewer-page")).await.expect("page").prop("value").await.expect("value");
    assert_eq!(status.as_deref(), Some("2"));
    let canvas = c.find(Locator::Id("pdf-viewer-canvas")).await.expect("canvas").attr("aria-label").await.expect("a");
    assert_eq!(canvas.as_deref(), Some("Page 2 of 2"));
    // Keyboard: back to page 1 with the left arrow, forward again with Page Down.
    c.execute("document.getElementById('pdf-viewer-stage').focus(); return true;", vec![]).await.expect("focus");
    c.active_element().await.expect("focused").send_keys("\u{E012}").await.expect("left");
    wait_for(c, "return document.getElementById('pdf-viewer').dataset.renderedPage === '1';").await;
    c.active_element().await.expect("focused").send_keys("\u{E00F}").await.expect("page down");
    wait_for(c, "return document.getElementById('pdf-viewer').dataset.renderedPage === '2';").await;
    let fetched: Value = c
        .execute("return performance.getEntriesByType('resource').map(e => e.name);", vec![])
        .await
        .expect("resources");
    let fetched: Vec<String> =
        fetched.as_array().expect("list").iter().filter_map(|v| v.as_str().map(str::to_string)).collect();
    assert!(fetched.iter().any(|u| u.contains("/preview")), "{fetched:?}");
    assert!(!fetched.iter().any(|u| u.contains("/download")), "the viewer never asks for the download: {fetched:?}");
    c.execute("return new Promise(r => setTimeout(() => r(true), 200));", vec![]).await.expect("wait");
    // Leaving the page sends the beacon.
    c.goto("about:blank").await.expect("leave");
    let deadline = Instant::now() + Duration::from_secs(15);
    let r = loop {
        let r = report(&app, &token, &link).await;
        if r["page_breakdown"].as_array().is_some_and(|p| p.len() == 2) && r["completion_rate"] != 0.0 {
            break r;
        }
        assert!(Instant::now() < deadline, "the page report did not arrive: {r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let pages = r["page_breakdown"].as_array().expect("pages");
    assert_eq!(pages[0]["page"], 1);
    assert_eq!(pages[1]["page"], 2);
    assert_eq!(pages[0]["asset_id"], doc["id"]);
    assert_eq!(pages[0]["views"], 2, "page 1 shown twice");
    assert_eq!(pages[1]["views"], 2, "page 2 shown twice");
    for p in pages {
        assert!(p["avg_time_seconds"].as_f64().expect("seconds") > 0.0, "{p}");
    }
    assert_eq!(r["completion_rate"], 100.0, "{r}");
    browser.client.clone().close().await.expect("close");
    // The dashboard page draws one bar per page.
    let olive = app.page_session("owner@example.com").await;
    let html = olive.get(&format!("/dashboard/analytics/{}/", link["uuid"].as_str().expect("u"))).await;
    let html = html.text().await.expect("html");
    assert_eq!(html.matches(r#"class="page-bar""#).count(), 2, "{html}");
    assert!(html.contains(r#"id="completion-rate">100.0%"#), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_beacons_are_bounded_and_malformed_ones_are_refused() {
    let app = TestApp::spawn_with(app_opts()).await;
    let (token, _) = app.register("owner@example.com", "Olive").await;
    let doc = app.upload(&token, "deck.pdf", pdf_pages(3)).await;
    let other = app.upload(&token, "other.pdf", pdf_pages(1)).await;
    let link = share(&app, &token, &doc, json!({})).await;
    let id = doc["id"].as_i64().expect("id");
    let ok = |d: Value| json!({"documents": [d]}).to_string();
    // Two readings: one reads pages 1 and 2, the other all three pages (3 s, then 1 s more on page 1).
    for body in [
        ok(json!({"page_count": 3, "pages": [[1, 1, 3000], [2, 1, 1000]], "opened": true})),
        ok(
            json!({"asset_id": id, "page_count": 3, "pages": [[1, 1, 1000], [2, 1, 2000], [3, 1, 500]], "opened": true}),
        ),
        ok(json!({"page_count": 3, "pages": [], "completed": true})),
        // A time beyond a day on a page is clamped to a day.
        ok(json!({"page_count": 3, "pages": [[3, 0, 1e12]]})),
    ] {
        let r = beacon(&app, &link, body.clone()).await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "{body}");
    }
    let too_many: Vec<Value> = (1..=151).map(|p| json!([p, 1, 1])).collect();
    let refused = [
        ok(json!({"page_count": 3, "pages": [[0, 1, 10]]})),
        ok(json!({"page_count": 3, "pages": [[4, 1, 10]]})),
        ok(json!({"page_count": 3, "pages": [[1.5, 1, 10]]})),
        ok(json!({"page_count": 3, "pages": [[1, -1, 10]]})),
        ok(json!({"page_count": 3, "pages": [[1, 1, 10], [1, 1, 10]]})),
        ok(json!({"page_count": 0, "pages": []})),
        ok(json!({"page_count": 10_001, "pages": []})),
        ok(json!({"page_count": 200, "pages": too_many})),
        ok(json!({"asset_id": other["id"], "page_count": 1, "pages": [[1, 1, 10]]})),
        json!({"documents": (0..11).map(|_| json!({"page_count": 3})).collect::<Vec<_>>()}).to_string(),
    ];
    for body in refused {
        let r = beacon(&app, &link, body.clone()).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["code"], "validation_error", "{body}: {v}");
    }
    for body in [
        ok(json!({"page_count": 3, "pages": [[1, 1, 10]], "extra": 1})),
        ok(json!({"page_count": "three"})),
        ok(json!({"page_count": 3, "pages": [[1, 1]]})),
    ] {
        assert_error(beacon(&app, &link, body).await, StatusCode::BAD_REQUEST, "malformed_json").await;
    }
    let huge = json!({"documents": [{"page_count": 3, "pages": [], "pad": "x".repeat(5000)}]}).to_string();
    assert_error(beacon(&app, &link, huge).await, StatusCode::PAYLOAD_TOO_LARGE, "too_large").await;
    // An image link has no document to report on.
    let img = app.upload(&token, "photo.png", fixtures::png(32, 32)).await;
    let img_link = share(&app, &token, &img, json!({})).await;
    let r = beacon(&app, &img_link, ok(json!({"page_count": 1, "pages": [[1, 1, 10]]}))).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = report(&app, &token, &link).await;
    assert_eq!(
        r["page_breakdown"],
        json!([
            {"asset_id": id, "page": 1, "views": 2, "avg_time_seconds": 2.0},
            {"asset_id": id, "page": 2, "views": 2, "avg_time_seconds": 1.5},
            {"asset_id": id, "page": 3, "views": 1, "avg_time_seconds": 86400.5},
        ])
    );
    assert_eq!(r["completion_rate"], 50.0, "one reading of two reached the last page");
    assert_eq!(r["summary"]["total_views"], 0, "page reports are not views");
    // The asset's own report counts the same pages.
    app.state.analytics.flush().await.expect("flush");
    let a: Value =
        app.get(&format!("/api/v3/assets/{id}/analytics/?days=1"), Some(&token)).await.json().await.expect("json");
    assert_eq!(a["page_breakdown"], r["page_breakdown"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_link_reports_pages_per_file_and_loads_the_viewer() {
    let app = TestApp::spawn_with(app_opts()).await;
    let (token, owner_id) = app.register("owner@example.com", "Olive").await;
    let doc = app.upload(&token, "a.pdf", pdf_pages(2)).await;
    let img = app.upload(&token, "b.png", fixtures::png(16, 16)).await;
    let now = app.state.clock.now_ms();
    let col = app.state.store.insert_collection(owner_id, "Docs", "", now).await.expect("collection");
    let ids = [doc["id"].as_i64().expect("id"), img["id"].as_i64().expect("id")];
    app.state.store.add_collection_items(col.id, &ids, now).await.expect("items");
    let link =
        created(app.post_json(&format!("/api/v3/collections/{}/share/", col.id), Some(&token), &json!({})).await).await;
    let html = app
        .client
        .get(link["share_url"].as_str().expect("url"))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(html.contains("/static/js/pdf-viewer.js"), "{html}");
    assert!(html.contains(&format!(r#"data-asset-id="{}""#, ids[0])), "{html}");
    let r = beacon(&app, &link, json!({"documents": [{"page_count": 2, "pages": [[1, 1, 10]]}]}).to_string()).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "a collection's reading names its file");
    let r = beacon(&app, &link, json!({"documents": [{"asset_id": ids[1], "page_count": 1}]}).to_string()).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "not a PDF");
    let body = json!({"documents": [{"asset_id": ids[0], "page_count": 2, "pages": [[2, 1, 4000]], "opened": true, "completed": true}]});
    assert_eq!(beacon(&app, &link, body.to_string()).await.status(), StatusCode::NO_CONTENT);
    let r = report(&app, &token, &link).await;
    assert_eq!(r["page_breakdown"], json!([{"asset_id": ids[0], "page": 2, "views": 1, "avg_time_seconds": 4.0}]));
    assert_eq!(r["completion_rate"], 100.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pdf_js_is_loaded_only_on_pdf_links_and_served_with_its_licence() {
    let app = TestApp::spawn_with(app_opts()).await;
    let (token, _) = app.register("owner@example.com", "Olive").await;
    let img = app.upload(&token, "photo.png", fixtures::png(32, 32)).await;
    let doc = app.upload(&token, "deck.pdf", pdf_pages(2)).await;
    let img_link = share(&app, &token, &img, json!({})).await;
    let doc_link = share(&app, &token, &doc, json!({})).await;
    let html =
        app.client.get(img_link["share_url"].as_str().expect("u")).send().await.expect("page").text().await.expect("t");
    assert!(!html.contains("pdf-viewer") && !html.contains("pdfjs") && !html.contains("pdf.min"), "{html}");
    let html =
        app.client.get(doc_link["share_url"].as_str().expect("u")).send().await.expect("page").text().await.expect("t");
    assert!(html.contains(r#"<script type="module" src="/static/js/pdf-viewer.js"></script>"#), "{html}");
    assert!(html.contains("<noscript><object"), "the browser's own viewer without JavaScript: {html}");
    for (path, ct) in [
        ("/static/js/pdf-viewer.js", "text/javascript"),
        ("/static/js/vendor/pdfjs/pdf.min.mjs", "text/javascript"),
        ("/static/js/vendor/pdfjs/pdf.worker.min.mjs", "text/javascript"),
        ("/static/js/vendor/pdfjs/LICENSE", "text/plain"),
    ] {
        let r = app.get(path, None).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let got = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        assert!(got.starts_with(ct), "{path}: {got}");
    }
    let licence = app.get("/static/js/vendor/pdfjs/LICENSE", None).await.text().await.expect("text");
    assert!(licence.contains("Apache License"));
    // A watermarked PDF link gives the viewer its text: the title and the date (open links), the
    // viewer's e-mail (private links); an unmarked link gives none.
    assert!(!html.contains("data-watermark"), "{html}");
    let marked =
        share(&app, &token, &doc, json!({"allow_download": false, "watermark": true, "title": "Board deck"})).await;
    let html =
        app.client.get(marked["share_url"].as_str().expect("u")).send().await.expect("page").text().await.expect("t");
    assert!(html.contains(r#"data-watermark="Board deck · "#), "{html}");
    let private = share(
        &app,
        &token,
        &doc,
        json!({"share_type": "private", "allow_download": false, "watermark": true, "allowed_emails": ["reader@example.com"]}),
    )
    .await;
    let (reader, _) = app.register("reader@example.com", "Rea").await;
    let r = app.get(&path_of(&private), Some(&reader)).await;
    let html = r.text().await.expect("html");
    assert!(html.contains(r#"data-watermark="reader@example.com""#), "{html}");
}

/// The preview of `link` with a Range header asking for the first bytes (a rendition ignores it).
async fn preview(app: &TestApp, link: &Value) -> reqwest::Response {
    app.client
        .get(app.url(&format!("{}preview", path_of(link))))
        .header("range", "bytes=0-")
        .send()
        .await
        .expect("preview")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_link_without_downloads_never_serves_the_original_bytes() {
    let app = TestApp::spawn_with(app_opts()).await;
    let (token, _) = app.register("owner@example.com", "Olive").await;
    let original = fixtures::png(200, 120);
    let img = app.upload(&token, "photo.png", original.clone()).await;
    let link = share(&app, &token, &img, json!({"allow_download": false})).await;
    let r = preview(&app, &link).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/png");
    let bytes = r.bytes().await.expect("bytes").to_vec();
    assert_ne!(bytes, original, "a rendition, not the stored file");
    let pic = image::load_from_memory(&bytes).expect("an image");
    assert_eq!((pic.width(), pic.height()), (200, 120));
    let r = app.client.get(app.url(&format!("{}download", path_of(&link)))).send().await.expect("download");
    assert_error(r, StatusCode::FORBIDDEN, "download_not_allowed").await;
    let thumb = app.client.get(app.url(&format!("{}thumb", path_of(&link)))).send().await.expect("thumb");
    assert_eq!(thumb.status(), StatusCode::OK);
    assert_ne!(thumb.bytes().await.expect("bytes").to_vec(), original);
    // A link that allows downloads previews the stored file as before.
    let open = share(&app, &token, &img, json!({})).await;
    let r = app.client.get(app.url(&format!("{}preview", path_of(&open)))).send().await.expect("preview");
    assert_eq!(r.bytes().await.expect("bytes").to_vec(), original);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watermarked_image_differs_from_the_original_and_the_original_is_not_reachable() {
    let app = TestApp::spawn_with(app_opts()).await;
    let (token, _) = app.register("owner@example.com", "Olive").await;
    let original = fixtures::png(320, 240);
    let img = app.upload(&token, "photo.png", original.clone()).await;
    let plain = share(&app, &token, &img, json!({"allow_download": false})).await;
    let marked =
        share(&app, &token, &img, json!({"allow_download": false, "watermark": true, "title": "Board deck"})).await;
    assert_eq!(marked["watermark"], true);
    let a = preview(&app, &plain).await.bytes().await.expect("bytes").to_vec();
    let r = preview(&app, &marked).await;
    assert_eq!(r.status(), StatusCode::OK);
    let etag = r.headers()["etag"].to_str().expect("etag").to_string();
    let b = r.bytes().await.expect("bytes").to_vec();
    assert_ne!(b, original);
    let (pa, pb) =
        (image::load_from_memory(&a).expect("img").to_rgba8(), image::load_from_memory(&b).expect("img").to_rgba8());
    assert_eq!(pb.dimensions(), (320, 240));
    let changed = pa.pixels().zip(pb.pixels()).filter(|(x, y)| x != y).count();
    assert!(changed > 320 * 240 / 50, "the text covers the picture in tiles ({changed} pixels changed)");
    assert!(changed < 320 * 240 / 2, "semi-transparent tiles, not a cover ({changed} pixels changed)");
    // Revalidation answers 304; the original is not behind any of the link's addresses.
    let r = app
        .client
        .get(app.url(&format!("{}preview", path_of(&marked))))
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("revalidate");
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    for tail in ["download", "thumb", "preview"] {
        let r = app.client.get(app.url(&format!("{}{tail}", path_of(&marked)))).send().await.expect("get");
        assert_ne!(r.bytes().await.expect("bytes").to_vec(), original, "{tail}");
    }
    // The share page shows the watermarked preview in the browser.
    let Some(browser) = Browser::start().await else { return };
    let c = &browser.client;
    c.goto(marked["share_url"].as_str().expect("url")).await.expect("goto");
    wait_for(
        c,
        "const i = document.getElementById('preview-image'); return !!i && i.complete && i.naturalWidth === 320;",
    )
    .await;
    let none: Value = c.execute("return !!document.querySelector('#download');", vec![]).await.expect("js");
    assert_eq!(none, json!(false), "no download button on a preview-only link");
    browser.client.clone().close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watermark_option_is_validated_on_create_and_update() {
    let app = TestApp::spawn_with(app_opts()).await;
    let (token, _) = app.register("owner@example.com", "Olive").await;
    let (stranger, _) = app.register("stranger@example.com", "Sam").await;
    let img = app.upload(&token, "photo.png", fixtures::png(32, 32)).await;
    let path = format!("/api/v3/assets/{}/share/", img["id"]);
    let v = assert_error(
        app.post_json(&path, Some(&token), &json!({"watermark": true})).await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    )
    .await;
    assert!(v["fields"]["watermark"].as_str().is_some_and(|w| w.contains("allow_download")), "{v}");
    let r = app.post_json(&path, Some(&token), &json!({"watermark": "yes", "allow_download": false})).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let plain = share(&app, &token, &img, json!({})).await;
    assert_eq!(plain["watermark"], false, "off by default");
    let link = share(&app, &token, &img, json!({"allow_download": false, "watermark": true})).await;
    assert_eq!(link["watermark"], true);
    let one = format!("/api/v3/shares/{}/", link["uuid"].as_str().expect("uuid"));
    let r = app.patch_json(&one, Some(&token), &json!({"allow_download": true})).await;
    assert_error(r, StatusCode::BAD_REQUEST, "validation_error").await;
    let r = app.patch_json(&one, Some(&stranger), &json!({"watermark": false})).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = app.patch_json(&one, Some(&token), &json!({"watermark": false, "allow_download": true})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.expect("json");
    assert_eq!((v["watermark"].clone(), v["allow_download"].clone()), (json!(false), json!(true)));
    let other = format!("/api/v3/shares/{}/", plain["uuid"].as_str().expect("uuid"));
    let r = app.patch_json(&other, Some(&token), &json!({"watermark": true})).await;
    assert_error(r, StatusCode::BAD_REQUEST, "validation_error").await;
    let r = app.patch_json(&other, Some(&token), &json!({"watermark": true, "allow_download": false})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = app.get(&other, Some(&token)).await.json().await.expect("json");
    assert_eq!(v["watermark"], true);
}

/// Two instances on one database and one bus: page beacons of one link sent to A and to B end
/// up in one report (`page_breakdown`, `completion_rate`), the same whichever instance answers,
/// and on the dashboard page of either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_reports_sent_to_two_instances_make_one_report_read_from_either() {
    let Some(bus) = crate::helpers::redis::redis_url().await else { return };
    let (a, b) = crate::helpers::redis::pair_with(&bus, |c| c.share_access_rate_per_ip_per_minute = 10_000).await;
    let (token, _) = a.register("owner@example.com", "Olive").await;
    let doc = a.upload(&token, "deck.pdf", pdf_pages(3)).await;
    let link = share(&a, &token, &doc, json!({})).await;
    let id = doc["id"].as_i64().expect("id");
    let ok = |d: Value| json!({"documents": [d]}).to_string();
    // Nothing yet, on either instance.
    for app in [&a, &b] {
        let r = report(app, &token, &link).await;
        assert_eq!(r["page_breakdown"], json!([]), "{r}");
    }
    // Reading 1 on A: pages 1 and 2 (it leaves before the end). Reading 2 starts on A and goes on
    // through B (another request of the same visitor may reach the other instance): it reaches
    // the last page there. Reading 3, on B only, reads page 1.
    let sent = [
        (&a, ok(json!({"page_count": 3, "pages": [[1, 1, 4000], [2, 1, 2000]], "opened": true}))),
        (&a, ok(json!({"asset_id": id, "page_count": 3, "pages": [[1, 1, 2000]], "opened": true}))),
        (&b, ok(json!({"asset_id": id, "page_count": 3, "pages": [[2, 1, 1000], [3, 1, 3000]], "completed": true}))),
        (&b, ok(json!({"page_count": 3, "pages": [[1, 1, 6000]], "opened": true}))),
    ];
    for (app, body) in sent {
        let r = beacon(app, &link, body.clone()).await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "{body}");
    }
    // Each instance writes what it received; a report reads everything written by both.
    a.state.analytics.flush().await.expect("flush A");
    b.state.analytics.flush().await.expect("flush B");
    let expected = json!([
        {"asset_id": id, "page": 1, "views": 3, "avg_time_seconds": 4.0},
        {"asset_id": id, "page": 2, "views": 2, "avg_time_seconds": 1.5},
        {"asset_id": id, "page": 3, "views": 1, "avg_time_seconds": 3.0},
    ]);
    let on_a = report(&a, &token, &link).await;
    let on_b = report(&b, &token, &link).await;
    assert_eq!(on_a["page_breakdown"], expected, "{on_a}");
    assert_eq!(on_b["page_breakdown"], expected, "{on_b}");
    let rate = on_a["completion_rate"].as_f64().expect("rate");
    assert!((rate - 100.0 / 3.0).abs() < 0.1, "one reading of three reached the last page: {on_a}");
    assert_eq!(on_a["completion_rate"], on_b["completion_rate"]);
    // A beacon that one instance refuses, the other refuses too, and it changes nothing.
    for app in [&a, &b] {
        let r = beacon(app, &link, ok(json!({"page_count": 3, "pages": [[4, 1, 10]]}))).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }
    assert_eq!(report(&b, &token, &link).await["page_breakdown"], expected);
    // The dashboard page of either instance draws the same three bars and rate.
    let uuid = link["uuid"].as_str().expect("uuid");
    let mut pages = vec![];
    for app in [&a, &b] {
        let olive = app.page_session("owner@example.com").await;
        let html = olive.get(&format!("/dashboard/analytics/{uuid}/")).await.text().await.expect("html");
        assert_eq!(html.matches(r#"class="page-bar""#).count(), 3, "{html}");
        let rate = html.split(r#"id="completion-rate">"#).nth(1).and_then(|s| s.split('<').next()).expect("rate");
        pages.push(rate.to_string());
    }
    assert_eq!(pages[0], pages[1], "the same completion rate on A and B");
    assert!(pages[0].starts_with("33.3"), "{pages:?}");
}

/// Every address a page's HTML points at (`src`, `href`, `data`, `data-pdf-src`), on this server.
fn addresses(app: &TestApp, html: &str) -> Vec<String> {
    let mut out = vec![];
    for attr in [" src=\"", " href=\"", " data=\"", " data-pdf-src=\""] {
        for part in html.split(attr).skip(1) {
            let Some(v) = part.split('"').next() else { continue };
            let v = v.replace("&amp;", "&");
            if (v.starts_with('/') && !v.starts_with("//")) || v.starts_with(&app.base) {
                out.push(v);
            }
        }
    }
    out
}

/// A live review of a watermarked link (issue 22 part 7 on the collaboration pages): the image is
/// the watermarked rendition (the member's e-mail tiled over it), from the review's own route,
/// never the stored bytes, on the page, its socket's state and the replay; a PDF gets the document
/// viewer with the tiled text. Only members get the rendition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watermarked_links_review_page_never_serves_the_original_bytes() {
    let app = TestApp::spawn_with(app_opts()).await;
    let (token, _) = app.register("owner@example.com", "Olive").await;
    let (rita_token, _) = app.register("rita@example.com", "Rita").await;
    app.register("sam@example.com", "Sam").await;
    let original = fixtures::png(320, 240);
    let img = app.upload(&token, "photo.png", original.clone()).await;
    let start = |asset: &Value| {
        let body = json!({"asset_id": asset["id"], "participants": [{"email": "rita@example.com"}],
            "session_config": {"allow_download": false}});
        let app = &app;
        let token = token.clone();
        async move { created(app.post_json("/api/v3/collaboration/sessions/", Some(&token), &body).await).await }
    };
    let s = start(&img).await;
    let page = s["collaboration_url"].as_str().expect("collaboration_url").to_string();
    let uuid = page.trim_matches('/').rsplit('/').next().expect("share uuid").to_string();
    let r = app.patch_json(&format!("/api/v3/shares/{uuid}/"), Some(&token), &json!({"watermark": true})).await;
    assert_eq!(r.status(), StatusCode::OK, "the session's link gets a watermark");

    let rita = app.page_session("rita@example.com").await;
    let olive = app.page_session("owner@example.com").await;
    let sam = app.page_session("sam@example.com").await;
    let html = rita.get(&page).await.text().await.expect("html");
    let rendition = format!("/collaborate/{uuid}/preview/");
    assert!(html.contains("id=\"collab-image\""), "{html}");
    assert!(html.contains(&rendition), "the image comes from the review's rendition route: {html}");
    // Nothing the page points at answers the stored bytes (the image, scripts, links, ...).
    let urls = addresses(&app, &html);
    assert!(urls.iter().any(|u| u.contains(&rendition)), "{urls:?}");
    for u in &urls {
        let body = rita.get(u).await.bytes().await.expect("bytes").to_vec();
        assert_ne!(body, original, "{u} serves the original bytes");
    }
    // The rendition is the picture with the tiled text: same size, different pixels.
    let r = rita.get(&rendition).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().expect("type").starts_with("image/"));
    let etag = r.headers()["etag"].to_str().expect("etag").to_string();
    let marked = r.bytes().await.expect("bytes").to_vec();
    assert_ne!(marked, original);
    let (pa, pb) = (
        image::load_from_memory(&original).expect("img").to_rgba8(),
        image::load_from_memory(&marked).expect("img").to_rgba8(),
    );
    assert_eq!(pb.dimensions(), (320, 240));
    let changed = pa.pixels().zip(pb.pixels()).filter(|(x, y)| x != y).count();
    assert!(changed > 320 * 240 / 50, "tiled text over the picture ({changed} pixels changed)");
    let again = rita.req(reqwest::Method::GET, &rendition).header("if-none-match", &etag).send().await.expect("get");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    // Each member sees their own e-mail: the owner's rendition is another picture.
    let owners = olive.get(&rendition).await;
    assert_eq!(owners.status(), StatusCode::OK);
    assert_ne!(owners.bytes().await.expect("bytes").to_vec(), marked, "the watermark names the viewer");
    // Not for strangers or anonymous visitors.
    assert_eq!(sam.get(&rendition).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.get(&rendition, None).await.status(), StatusCode::UNAUTHORIZED);

    // The socket's state names the same route, no download, and the text.
    let mut ws = crate::helpers::Ws::connect(
        &app,
        &format!("{}?token={rita_token}", s["websocket_url"].as_str().expect("websocket_url")),
    )
    .await;
    let state = ws.next_of("session_state").await;
    let content = state["asset"]["content_url"].as_str().expect("content_url");
    assert!(content.ends_with(&rendition), "{state}");
    assert_eq!(state["asset"]["download_url"], Value::Null);
    assert_eq!(state["asset"]["watermark"], "rita@example.com");
    // The replay shows the rendition too.
    let replay = rita.get(&format!("{page}replay/")).await.text().await.expect("html");
    assert!(replay.contains(&rendition), "{replay}");
    for u in addresses(&app, &replay) {
        assert_ne!(rita.get(&u).await.bytes().await.expect("bytes").to_vec(), original, "{u}");
    }

    // A PDF under review on a watermarked link: the document viewer with the member's e-mail.
    let doc = app.upload(&token, "deck.pdf", pdf_pages(2)).await;
    let s = start(&doc).await;
    let page = s["collaboration_url"].as_str().expect("collaboration_url").to_string();
    let uuid = page.trim_matches('/').rsplit('/').next().expect("share uuid").to_string();
    let before = rita.get(&page).await.text().await.expect("html");
    assert!(!before.contains("data-watermark") && !before.contains("pdf-viewer.js"), "no watermark yet");
    let r = app.patch_json(&format!("/api/v3/shares/{uuid}/"), Some(&token), &json!({"watermark": true})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = rita.get(&page).await.text().await.expect("html");
    assert!(html.contains("class=\"pdf-viewer\"") && html.contains("data-watermark=\"rita@example.com\""), "{html}");
    assert!(html.contains("<script type=\"module\" src=\"/static/js/pdf-viewer.js\"></script>"), "{html}");
    assert_eq!(
        rita.get(&format!("/collaborate/{uuid}/preview/")).await.status(),
        StatusCode::NOT_FOUND,
        "no rendition"
    );
    // In Chromium the viewer tiles the text over the page.
    let Some(browser) = Browser::start().await else { return };
    let c = &browser.client;
    crate::helpers::browser::sign_in(c, &app, "rita@example.com").await;
    c.goto(&app.url(&page)).await.expect("goto");
    wait_for(c, "return document.getElementById('collab-pdf-viewer').dataset.renderedPage === '1';").await;
    // The test PDF's pages are blank below their title: only the tiled text marks the lower half.
    let inked = c
        .execute(
            "var c = document.getElementById('collab-pdf-viewer-canvas');
             var h = Math.floor(c.height / 2);
             var d = c.getContext('2d').getImageData(0, h, c.width, h).data;
             var n = 0;
             for (var i = 0; i < d.length; i += 4) if (d[i] < 240 || d[i + 1] < 240 || d[i + 2] < 240) n++;
             return n;",
            vec![],
        )
        .await
        .expect("js");
    assert!(inked.as_u64().is_some_and(|n| n > 200), "the watermark is drawn over the page: {inked} pixels");
    browser.client.clone().close().await.expect("close");
}
