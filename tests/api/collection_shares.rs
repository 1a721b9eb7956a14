//! Collection links (SPEC §10): one share model for an asset or a collection, so every rule of
//! §3 applies to a collection link too; per-file downloads, the ZIP of every file, the recipient's
//! page and JSON, and `file_breakdown`.

use std::io::Read;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Db, Spawn, TestApp, assert_error, created, fixtures};

/// An app with generous share rate limits (tests hammer one IP).
async fn app_on(db: Db) -> TestApp {
    TestApp::spawn_with(Spawn {
        db,
        tweak: Box::new(|c| {
            c.share_access_rate_per_ip_per_minute = 100_000;
            c.share_create_rate_per_user_per_hour = 100_000;
        }),
        ..Default::default()
    })
    .await
}

const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) Chrome/120";

struct Fixture {
    owner: String,
    owner_id: i64,
    collection: i64,
    /// (asset id, name, bytes) in the collection's order.
    files: Vec<(i64, String, Vec<u8>)>,
}

/// An owner with a collection of a PDF, a PNG and a second file named like the first.
async fn fixture(app: &TestApp) -> Fixture {
    let (owner, owner_id) = app.register("owner@example.com", "Olive Owner").await;
    let mut files = vec![];
    for (name, bytes) in
        [("plan.pdf", fixtures::pdf(4000)), ("photo.png", fixtures::png(64, 48)), ("plan.pdf", fixtures::pdf(2500))]
    {
        let a = app.upload(&owner, name, bytes.clone()).await;
        files.push((a["id"].as_i64().expect("id"), a["name"].as_str().expect("name").to_string(), bytes));
    }
    let now = app.state.clock.now_ms();
    let c = app.state.store.insert_collection(owner_id, "Q3 deliverables", "", now).await.expect("collection");
    let ids: Vec<i64> = files.iter().map(|f| f.0).collect();
    app.state.store.add_collection_items(c.id, &ids, now).await.expect("items");
    Fixture { owner, owner_id, collection: c.id, files }
}

async fn share(app: &TestApp, token: &str, collection: i64, body: Value) -> Value {
    created(app.post_json(&format!("/api/v3/collections/{collection}/share/"), Some(token), &body).await).await
}

fn path_of(share: &Value) -> String {
    let url = share["share_url"].as_str().expect("url");
    url[url.find("/share/").expect("path")..].to_string()
}

fn uuid_of(share: &Value) -> String {
    share["uuid"].as_str().expect("uuid").to_string()
}

async fn get_json(app: &TestApp, path: &str, bearer: Option<&str>) -> reqwest::Response {
    app.req(reqwest::Method::GET, path, bearer).header("accept", "application/json").send().await.expect("get")
}

async fn fetch(app: &TestApp, path: &str) -> reqwest::Response {
    app.client.get(app.url(path)).header("user-agent", UA).send().await.expect("get")
}

async fn link(app: &TestApp, owner: &str, s: &Value) -> Value {
    app.get(&format!("/api/v3/shares/{}/", uuid_of(s)), Some(owner)).await.json().await.expect("json")
}

crate::on_both_databases!(
    a_collection_link_has_the_create_shape_with_collection_id,
    a_collection_link_counts_views_and_tells_its_owner,
    exactly_n_zip_and_file_downloads_succeed_under_100_concurrent_requests,
    file_breakdown_counts_a_zip_once_per_file_and_single_downloads,
    deleting_the_collection_kills_its_links,
    a_recipient_comments_on_each_file_and_the_owner_sees_it,
);

async fn a_recipient_comments_on_each_file_and_the_owner_sees_it(db: Db) {
    let app = app_on(db).await;
    let f = fixture(&app).await;
    let outside = app.upload(&f.owner, "other.png", fixtures::png(4, 4)).await["id"].as_i64().expect("id");
    let s = share(&app, &f.owner, f.collection, json!({"allow_comments": true})).await;
    let p = path_of(&s);
    let post = |path: String, body: Value| {
        let c = app.client.clone();
        let url = app.url(&path);
        async move { c.post(url).header("user-agent", UA).json(&body).send().await.expect("post") }
    };
    // The JSON page names each file's comments.
    let page: Value = get_json(&app, &p, None).await.json().await.expect("json");
    for (item, file) in page["collection"]["items"].as_array().expect("items").iter().zip(&f.files) {
        let url = item["comments_url"].as_str().expect("comments_url");
        assert!(url.ends_with(&format!("{p}files/{}/comments", file.0)), "{url}");
    }
    // A guest comments on two files of the collection.
    for (i, file) in f.files.iter().take(2).enumerate() {
        let r =
            post(format!("{p}files/{}/comments", file.0), json!({"content": format!("note {i}"), "guest_name": "Gus"}))
                .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let c: Value = r.json().await.expect("json");
        assert_eq!((c["asset_id"].as_i64(), c["author"]["name"].as_str()), (Some(file.0), Some("Gus")));
    }
    // The page's form (no JavaScript) too: back to the file on the page.
    let r = app
        .client
        .post(app.url(&format!("{p}files/{}/comments", f.files[2].0)))
        .form(&[("content", "from the form"), ("guest_name", "Fay")])
        .send()
        .await
        .expect("form");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let back = r.headers()["location"].to_str().expect("location").to_string();
    assert!(back.starts_with(&format!("{p}?file={}#comment-", f.files[2].0)), "{back}");
    // The page (no JavaScript): each file links to its comments, shown under the grid with a form.
    let html = fetch(&app, &p).await.text().await.expect("html");
    for file in &f.files {
        assert!(html.contains(&format!("id=\"comments-link-{}\"", file.0)), "{html}");
        assert!(html.contains(&format!("href=\"{p}?file={}#comments\"", file.0)), "{html}");
    }
    assert!(!html.contains("id=\"comment-form\""), "no file chosen: no form");
    let html = fetch(&app, &back).await.text().await.expect("html");
    assert!(html.contains(&format!("Comments on {}", f.files[2].1)), "{html}");
    assert!(html.contains("from the form") && !html.contains("note 0"), "that file's comments only");
    assert!(html.contains(&format!("action=\"{p}files/{}/comments\"", f.files[2].0)), "{html}");
    // Each file lists its own comments through the link.
    for (file, text) in f.files.iter().zip(["note 0", "note 1", "from the form"]) {
        let list: Value = app
            .client
            .get(app.url(&format!("{p}files/{}/comments", file.0)))
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        let got: Vec<&str> =
            list["results"].as_array().expect("results").iter().map(|c| c["content"].as_str().expect("c")).collect();
        assert_eq!(got, [text]);
    }
    // The owner sees them on the file, as comments made through a link to the file alone.
    let mine: Value = app
        .get(&format!("/api/v3/assets/{}/comments/", f.files[1].0), Some(&f.owner))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(mine["results"][0]["content"], "note 1");
    assert_eq!(mine["results"][0]["author"]["is_guest"], true);

    // A file outside the collection, or no file at all: 404.
    let r = post(format!("{p}files/{outside}/comments"), json!({"content": "x", "guest_name": "Gus"})).await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = app.client.get(app.url(&format!("{p}files/{outside}/comments"))).send().await.expect("list");
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = post(format!("{p}files/abc/comments"), json!({"content": "x", "guest_name": "Gus"})).await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    let mine: Value =
        app.get(&format!("/api/v3/assets/{outside}/comments/"), Some(&f.owner)).await.json().await.expect("json");
    assert_eq!(mine["count"], 0, "nothing was added to the file outside");
    // The collection as a whole takes no comments: they are per file.
    let r = post(format!("{p}comments"), json!({"content": "x", "guest_name": "Gus"})).await;
    assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    // A link without comments: 403, on every file.
    let closed = share(&app, &f.owner, f.collection, json!({})).await;
    let cp = path_of(&closed);
    let r = post(format!("{cp}files/{}/comments", f.files[0].0), json!({"content": "x", "guest_name": "Gus"})).await;
    assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = app.client.get(app.url(&format!("{cp}files/{}/comments", f.files[0].0))).send().await.expect("list");
    assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    let page: Value = get_json(&app, &cp, None).await.json().await.expect("json");
    assert_eq!(page["collection"]["items"][0]["comments_url"], Value::Null);
    // A revoked link: 410.
    let r = app.delete(&format!("/api/v3/shares/{}/", uuid_of(&s)), Some(&f.owner)).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = post(format!("{p}files/{}/comments", f.files[0].0), json!({"content": "x", "guest_name": "Gus"})).await;
    assert_error(r, StatusCode::GONE, "share_revoked").await;
    let r = app.client.get(app.url(&format!("{p}files/{}/comments", f.files[0].0))).send().await.expect("list");
    assert_error(r, StatusCode::GONE, "share_revoked").await;
    // The comments count on the link, each for its file.
    app.state.analytics.flush().await.expect("flush");
    let share_id = link(&app, &f.owner, &s).await["id"].as_i64().expect("id");
    let mut commented: Vec<i64> = app
        .state
        .store
        .raw_events(0, i64::MAX)
        .await
        .expect("events")
        .into_iter()
        .filter(|e| e.share_id == share_id && e.kind == "comment")
        .map(|e| e.asset_id)
        .collect();
    commented.sort_unstable();
    let mut ids: Vec<i64> = f.files.iter().map(|f| f.0).collect();
    ids.sort_unstable();
    assert_eq!(commented, ids);
}

async fn a_collection_link_has_the_create_shape_with_collection_id(db: Db) {
    let app = app_on(db).await;
    let f = fixture(&app).await;
    let s = share(&app, &f.owner, f.collection, json!({"description": "for the board"})).await;
    assert_eq!(s["collection_id"], f.collection);
    assert!(s.get("asset_id").is_none(), "a collection link has no asset_id: {s}");
    assert_eq!(s["title"], "Q3 deliverables", "the title defaults to the collection's");
    assert_eq!(s["status"], "active");
    assert_eq!(s["social_links"].as_object().map(|m| m.len()), Some(6));
    assert!(s["qr_code_data"].as_str().expect("qr").starts_with("data:image/png;base64,"));
    assert!(s["embed_code"].as_str().expect("embed").contains(&format!("/embed/{}/", uuid_of(&s))));
    // Listed like any other link; an asset link keeps asset_id and has no collection_id.
    let asset_link =
        created(app.post_json(&format!("/api/v3/assets/{}/share/", f.files[0].0), Some(&f.owner), &json!({})).await)
            .await;
    assert_eq!(asset_link["asset_id"], f.files[0].0);
    assert!(asset_link.get("collection_id").is_none());
    let list: Value = app.get("/api/v3/shares/", Some(&f.owner)).await.json().await.expect("json");
    assert_eq!(list["count"], 2);
    assert_eq!(list["results"][1]["collection_id"], f.collection);
    // Read, change, by uuid.
    let r = app
        .patch_json(&format!("/api/v3/shares/{}/", uuid_of(&s)), Some(&f.owner), &json!({"title": "Board pack"}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(link(&app, &f.owner, &s).await["title"], "Board pack");
    // Someone else's collection, or no such collection: 404; bad settings: 400.
    let (other, _) = app.register("other@example.com", "Otto Other").await;
    let r = app.post_json(&format!("/api/v3/collections/{}/share/", f.collection), Some(&other), &json!({})).await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = app.post_json("/api/v3/collections/999999/share/", Some(&f.owner), &json!({})).await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = app
        .post_json(
            &format!("/api/v3/collections/{}/share/", f.collection),
            Some(&f.owner),
            &json!({"share_type": "protected"}),
        )
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "validation_error").await;
    let r = app.post_json(&format!("/api/v3/collections/{}/share/", f.collection), None, &json!({})).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let _ = f.owner_id;
}

async fn exactly_n_zip_and_file_downloads_succeed_under_100_concurrent_requests(db: Db) {
    let app = app_on(db).await;
    let f = fixture(&app).await;
    let s = share(&app, &f.owner, f.collection, json!({"share_type": "download_limited", "max_downloads": 7})).await;
    let base = app.url(&path_of(&s));
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("client");
    let mut tasks = vec![];
    for i in 0..100 {
        let c = client.clone();
        let u =
            if i % 2 == 0 { format!("{base}download") } else { format!("{base}files/{}/download", f.files[i % 3].0) };
        tasks.push(tokio::spawn(async move {
            let r = c.get(&u).header("user-agent", format!("Mozilla/5.0 tester-{i}")).send().await.expect("send");
            let status = r.status();
            let body = r.bytes().await.map(|b| b.len()).unwrap_or(0);
            (status, body)
        }));
    }
    let (mut ok, mut gone) = (0, 0);
    for t in tasks {
        match t.await.expect("join") {
            (StatusCode::OK, n) => {
                assert!(n > 0);
                ok += 1;
            }
            (StatusCode::GONE, _) => gone += 1,
            (other, _) => panic!("unexpected {other}"),
        }
    }
    assert_eq!((ok, gone), (7, 93));
    let l = link(&app, &f.owner, &s).await;
    assert_eq!((l["download_count"].as_i64(), l["status"].as_str()), (Some(7), Some("exhausted")));
}

async fn file_breakdown_counts_a_zip_once_per_file_and_single_downloads(db: Db) {
    let app = app_on(db).await;
    let f = fixture(&app).await;
    let s = share(&app, &f.owner, f.collection, json!({})).await;
    let p = path_of(&s);
    let zip = fetch(&app, &format!("{p}download")).await;
    assert_eq!(zip.status(), StatusCode::OK);
    zip.bytes().await.expect("zip");
    for _ in 0..2 {
        let r = fetch(&app, &format!("{p}files/{}/download", f.files[1].0)).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.bytes().await.expect("file").to_vec(), f.files[1].2);
    }
    assert_eq!(link(&app, &f.owner, &s).await["download_count"], 3);
    // The per-file counts are written once the first byte went out: wait for them.
    let mut breakdown = Value::Null;
    for _ in 0..100 {
        let r: Value = link_report(&app, &f.owner, &s).await;
        breakdown = r["file_breakdown"].clone();
        if breakdown[1]["downloads"] == 3 && breakdown[0]["downloads"] == 1 && breakdown[2]["downloads"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let got: Vec<(i64, String, i64)> = breakdown
        .as_array()
        .expect("file_breakdown")
        .iter()
        .map(|e| {
            (
                e["asset_id"].as_i64().expect("id"),
                e["name"].as_str().expect("name").to_string(),
                e["downloads"].as_i64().expect("n"),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (f.files[0].0, f.files[0].1.clone(), 1),
            (f.files[1].0, f.files[1].1.clone(), 3),
            (f.files[2].0, f.files[2].1.clone(), 1)
        ]
    );
    // The events name the files: each single download its file, the ZIP the collection (0, it
    // has no single file); a player's first preview request its file, its later ranges nothing.
    let r = app
        .client
        .get(app.url(&format!("{p}files/{}/preview", f.files[1].0)))
        .header("user-agent", UA)
        .send()
        .await
        .expect("preview");
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .client
        .get(app.url(&format!("{p}files/{}/preview", f.files[1].0)))
        .header("user-agent", UA)
        .header("range", "bytes=10-")
        .send()
        .await
        .expect("preview");
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    app.state.analytics.flush().await.expect("flush");
    let share_id = link(&app, &f.owner, &s).await["id"].as_i64().expect("id");
    let mut events: Vec<(String, i64)> = app
        .state
        .store
        .raw_events(0, i64::MAX)
        .await
        .expect("events")
        .into_iter()
        .filter(|e| e.share_id == share_id && e.kind != "view")
        .map(|e| (e.kind, e.asset_id))
        .collect();
    events.sort();
    let png = f.files[1].0;
    assert_eq!(
        events,
        vec![("download".to_string(), 0), ("download".into(), png), ("download".into(), png), ("preview".into(), png)]
    );
    // So the file's own report counts its downloads through the link; the link's counts three.
    let r: Value =
        app.get(&format!("/api/v3/assets/{png}/analytics/"), Some(&f.owner)).await.json().await.expect("json");
    assert_eq!(r["summary"]["total_downloads"], 2, "{r}");
    let r: Value = link_report(&app, &f.owner, &s).await;
    assert_eq!(r["summary"]["total_downloads"], 3, "{r}");

    // An asset link's report keeps the seed's shape (no file_breakdown).
    let a =
        created(app.post_json(&format!("/api/v3/assets/{}/share/", f.files[0].0), Some(&f.owner), &json!({})).await)
            .await;
    let r: Value = app
        .get(&format!("/api/v3/shares/{}/analytics/", uuid_of(&a)), Some(&f.owner))
        .await
        .json()
        .await
        .expect("json");
    assert!(r.get("file_breakdown").is_none() && r.get("summary").is_some());
}

async fn deleting_the_collection_kills_its_links(db: Db) {
    let app = app_on(db).await;
    let f = fixture(&app).await;
    let s = share(&app, &f.owner, f.collection, json!({})).await;
    assert_eq!(fetch(&app, &path_of(&s)).await.status(), StatusCode::OK);
    assert!(
        app.state
            .store
            .delete_collection(
                f.collection,
                0,
                &vitrine::domain::audit::Who::system().entry(
                    vitrine::domain::audit::AuditAction::CollectionDeleted,
                    f.collection,
                    serde_json::json!({})
                )
            )
            .await
            .expect("delete")
    );
    assert_eq!(fetch(&app, &path_of(&s)).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(fetch(&app, &format!("{}download", path_of(&s))).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        app.get(&format!("/api/v3/shares/{}/", uuid_of(&s)), Some(&f.owner)).await.status(),
        StatusCode::NOT_FOUND
    );
    // The assets stay.
    assert_eq!(app.get(&format!("/api/v3/assets/{}/", f.files[0].0), Some(&f.owner)).await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_page_lists_every_file_with_share_scoped_urls() {
    let app = app_on(Db::Sqlite).await;
    let f = fixture(&app).await;
    let s = share(&app, &f.owner, f.collection, json!({"allow_download": false})).await;
    let r = get_json(&app, &path_of(&s), None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.expect("json");
    assert_eq!(
        (v["uuid"].as_str(), v["title"].as_str(), v["status"].as_str()),
        (Some(uuid_of(&s).as_str()), Some("Q3 deliverables"), Some("active"))
    );
    assert!(v.get("file").is_none());
    assert_eq!(v["download_url"], Value::Null);
    let c = &v["collection"];
    assert_eq!(c["title"], "Q3 deliverables");
    assert_eq!(c["item_count"], 3);
    let total: usize = f.files.iter().map(|f| f.2.len()).sum();
    assert_eq!(c["total_size"].as_u64(), Some(total as u64));
    let items = c["items"].as_array().expect("items");
    assert_eq!(items.len(), 3);
    for (item, file) in items.iter().zip(&f.files) {
        assert_eq!(item["asset_id"], file.0);
        assert_eq!(item["name"], file.1.as_str());
        assert_eq!(item["size"].as_u64(), Some(file.2.len() as u64));
        assert_eq!(item["download_url"], Value::Null, "downloads are off");
        for k in ["mime_type", "media_type", "width", "height", "thumbnail_url", "preview_url"] {
            assert!(item.get(k).is_some(), "{k} in {item}");
        }
    }
    let png = &items[1];
    assert_eq!((png["width"].as_i64(), png["height"].as_i64()), (Some(64), Some(48)));
    let preview = png["preview_url"].as_str().expect("the PNG previews inline");
    assert!(preview.ends_with(&format!("/share/{}/files/{}/preview", uuid_of(&s), f.files[1].0)), "{preview}");
    let r = app.client.get(preview).send().await.expect("preview");
    assert_eq!(r.status(), StatusCode::OK);
    // A preview-only link previews images as a re-encoded rendition, never the stored bytes
    // (issue 22 part 7; see pdf_viewer.rs).
    let bytes = r.bytes().await.expect("bytes").to_vec();
    assert_ne!(bytes, f.files[1].2);
    let pic = image::load_from_memory(&bytes).expect("an image");
    assert_eq!((pic.width(), pic.height()), (64, 48));
    if let Some(t) = png["thumbnail_url"].as_str() {
        assert_eq!(app.client.get(t).send().await.expect("thumb").status(), StatusCode::OK);
    }
    // Downloads are off: ZIP and files are refused.
    let r = fetch(&app, &format!("{}download", path_of(&s))).await;
    assert_error(r, StatusCode::FORBIDDEN, "download_not_allowed").await;
    let r = fetch(&app, &format!("{}files/{}/download", path_of(&s), f.files[0].0)).await;
    assert_error(r, StatusCode::FORBIDDEN, "download_not_allowed").await;
    // With downloads on, every file has its URL and the link's download_url is the ZIP.
    let s = share(&app, &f.owner, f.collection, json!({})).await;
    let v: Value = get_json(&app, &path_of(&s), None).await.json().await.expect("json");
    assert!(v["download_url"].as_str().expect("zip url").ends_with(&format!("/share/{}/download", uuid_of(&s))));
    let url = v["collection"]["items"][2]["download_url"].as_str().expect("url").to_string();
    let r = app.client.get(&url).header("user-agent", UA).send().await.expect("get");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-disposition"].to_str().expect("cd").starts_with("attachment"));
    assert_eq!(r.bytes().await.expect("bytes").to_vec(), f.files[2].2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_not_in_the_collection_is_404() {
    let app = app_on(Db::Sqlite).await;
    let f = fixture(&app).await;
    let outside = app.upload(&f.owner, "secret.pdf", fixtures::pdf(1000)).await["id"].as_i64().expect("id");
    let s = share(&app, &f.owner, f.collection, json!({})).await;
    let p = path_of(&s);
    for tail in ["download", "preview", "thumbnail"] {
        let r = fetch(&app, &format!("{p}files/{outside}/{tail}")).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{tail}");
        let r = fetch(&app, &format!("{p}files/not-a-number/{tail}")).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{tail}");
    }
    // An asset link has no /files/ routes; a collection link has no single preview.
    let a =
        created(app.post_json(&format!("/api/v3/assets/{}/share/", f.files[0].0), Some(&f.owner), &json!({})).await)
            .await;
    assert_eq!(
        fetch(&app, &format!("{}files/{}/download", path_of(&a), f.files[0].0)).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(fetch(&app, &format!("{p}preview")).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(link(&app, &f.owner, &s).await["download_count"], 0, "refusals never count");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_share_type_applies_to_a_collection_link() {
    let app = app_on(Db::Sqlite).await;
    let f = fixture(&app).await;
    let file = |s: &Value| format!("{}files/{}/download", path_of(s), f.files[0].0);
    // Public.
    let s = share(&app, &f.owner, f.collection, json!({"share_type": "public"})).await;
    assert_eq!(fetch(&app, &file(&s)).await.status(), StatusCode::OK);
    // Private: login, then only the allowed accounts.
    let (guest, _) = app.register("guest@example.com", "Gus Guest").await;
    let (stranger, _) = app.register("stranger@example.com", "Stan Stranger").await;
    let s =
        share(&app, &f.owner, f.collection, json!({"share_type": "private", "allowed_emails": ["guest@example.com"]}))
            .await;
    assert_eq!(get_json(&app, &path_of(&s), None).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(get_json(&app, &path_of(&s), Some(&stranger)).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(get_json(&app, &path_of(&s), Some(&guest)).await.status(), StatusCode::OK);
    assert_eq!(app.get(&file(&s), None).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.get(&file(&s), Some(&guest)).await.status(), StatusCode::OK);
    // Protected: unlock, the token follows the item URLs; lockout after five wrong passwords.
    let s = share(&app, &f.owner, f.collection, json!({"share_type": "protected", "password": "secure123"})).await;
    assert_eq!(get_json(&app, &path_of(&s), None).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(fetch(&app, &file(&s)).await.status(), StatusCode::UNAUTHORIZED);
    let unlock = format!("/api/v3/shares/{}/unlock/", uuid_of(&s));
    let tok: Value = app.post_json(&unlock, None, &json!({"password": "secure123"})).await.json().await.expect("json");
    let tok = tok["access_token"].as_str().expect("token").to_string();
    let v: Value = get_json(&app, &format!("{}?token={tok}", path_of(&s)), None).await.json().await.expect("json");
    let url = v["collection"]["items"][0]["download_url"].as_str().expect("url");
    assert!(url.contains(&format!("?token={tok}")), "{url}");
    assert_eq!(app.client.get(url).header("user-agent", UA).send().await.expect("get").status(), StatusCode::OK);
    assert!(v["download_url"].as_str().expect("zip").contains("?token="));
    for _ in 0..5 {
        let r = app.post_json(&unlock, None, &json!({"password": "wrong-guess"})).await;
        assert_error(r, StatusCode::FORBIDDEN, "wrong_password").await;
    }
    let r = app.post_json(&unlock, None, &json!({"password": "secure123"})).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    // Time-limited: gone once expired, with its reason.
    let s = share(&app, &f.owner, f.collection, json!({"share_type": "time_limited", "expires_in_hours": 1})).await;
    assert_eq!(fetch(&app, &file(&s)).await.status(), StatusCode::OK);
    app.advance(std::time::Duration::from_secs(3601));
    assert_error(get_json(&app, &path_of(&s), None).await, StatusCode::GONE, "share_expired").await;
    assert_error(fetch(&app, &file(&s)).await, StatusCode::GONE, "share_expired").await;
    assert_error(fetch(&app, &format!("{}download", path_of(&s))).await, StatusCode::GONE, "share_expired").await;
    // Revoked.
    let s = share(&app, &f.owner, f.collection, json!({})).await;
    assert_eq!(
        app.delete(&format!("/api/v3/shares/{}/", uuid_of(&s)), Some(&f.owner)).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_error(fetch(&app, &file(&s)).await, StatusCode::GONE, "share_revoked").await;
    // Download-limited: the page says so once the limit is reached.
    let s = share(&app, &f.owner, f.collection, json!({"share_type": "download_limited", "max_downloads": 1})).await;
    // Read to the end: a download dropped before its first byte went out is refunded.
    let first = fetch(&app, &file(&s)).await;
    assert_eq!(first.status(), StatusCode::OK);
    first.bytes().await.expect("the file");
    assert_error(fetch(&app, &file(&s)).await, StatusCode::GONE, "share_exhausted").await;
    let page = fetch(&app, &path_of(&s)).await;
    assert_eq!(page.status(), StatusCode::GONE);
    assert!(page.text().await.expect("html").contains("download limit reached"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_bots_prefetches_and_resumed_ranges_of_a_file_never_count() {
    let app = app_on(Db::Sqlite).await;
    let f = fixture(&app).await;
    let s = share(&app, &f.owner, f.collection, json!({"max_downloads": 2})).await;
    let p = path_of(&s);
    let dl = app.url(&format!("{p}files/{}/download", f.files[0].0));
    let zip = app.url(&format!("{p}download"));
    for u in [&dl, &zip] {
        assert_eq!(app.client.head(u).header("user-agent", UA).send().await.expect("head").status(), StatusCode::OK);
        let bot = app.client.get(u).header("user-agent", "facebookexternalhit/1.1").send().await.expect("bot");
        assert_error(bot, StatusCode::FORBIDDEN, "not_a_download").await;
        let pre =
            app.client.get(u).header("user-agent", UA).header("sec-purpose", "prefetch").send().await.expect("pre");
        assert_error(pre, StatusCode::FORBIDDEN, "not_a_download").await;
        let pre = app.client.get(u).header("user-agent", UA).header("purpose", "prefetch").send().await.expect("pre");
        assert_error(pre, StatusCode::FORBIDDEN, "not_a_download").await;
    }
    assert_eq!(link(&app, &f.owner, &s).await["download_count"], 0);
    // One counted download of the file, resumed with ranges: counts once.
    let first = app.client.get(&dl).header("user-agent", UA).header("range", "bytes=0-999").send().await.expect("get");
    assert_eq!(first.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(first.bytes().await.expect("b").to_vec(), f.files[0].2[..1000].to_vec());
    let rest = app.client.get(&dl).header("user-agent", UA).header("range", "bytes=1000-").send().await.expect("get");
    assert_eq!(rest.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(rest.bytes().await.expect("b").to_vec(), f.files[0].2[1000..].to_vec());
    assert_eq!(link(&app, &f.owner, &s).await["download_count"], 1);
    // The resume window is per file: a range of another file counts.
    let other = app.url(&format!("{p}files/{}/download", f.files[2].0));
    let r = app.client.get(&other).header("user-agent", UA).header("range", "bytes=0-9").send().await.expect("get");
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(link(&app, &f.owner, &s).await["download_count"], 2);
    // Exhausted now; the first file's transfer may still finish.
    let r = app.client.get(&dl).header("user-agent", UA).header("range", "bytes=2000-").send().await.expect("get");
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_error(
        fetch(&app, &format!("{p}files/{}/download", f.files[1].0)).await,
        StatusCode::GONE,
        "share_exhausted",
    )
    .await;
    // A failed transfer is given back (an unsatisfiable range before a byte was sent).
    let s = share(&app, &f.owner, f.collection, json!({"max_downloads": 1})).await;
    let u = format!("{}files/{}/download", path_of(&s), f.files[0].0);
    let r = app.req(reqwest::Method::GET, &u, None).header("range", "bytes=99999-").send().await.expect("get");
    assert_error(r, StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable").await;
    assert_eq!(fetch(&app, &u).await.status(), StatusCode::OK, "the download was given back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_page_shows_the_grid_and_download_all_without_javascript() {
    let app = app_on(Db::Sqlite).await;
    let f = fixture(&app).await;
    let s = share(&app, &f.owner, f.collection, json!({"description": "Everything for Monday"})).await;
    let r = fetch(&app, &path_of(&s)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().expect("ct").starts_with("text/html"));
    let html = r.text().await.expect("html");
    assert!(html.contains("id=\"file-grid\""), "{html}");
    assert!(html.contains("id=\"download-all\"") && html.contains(&format!("/share/{}/download", uuid_of(&s))));
    for (id, _, _) in &f.files {
        assert!(html.contains(&format!("id=\"file-{id}\"")));
        assert!(html.contains(&format!("/share/{}/files/{id}/download", uuid_of(&s))));
    }
    assert!(html.contains("plan (2).pdf") || html.contains("plan.pdf"));
    assert!(html.contains("<details class=\"file-preview\">"), "inline previews without JavaScript");
    assert!(html.contains("property=\"og:title\" content=\"Q3 deliverables\""));
    assert!(html.contains("Everything for Monday"));
    // Without downloads: no button, no links.
    let s = share(&app, &f.owner, f.collection, json!({"allow_download": false, "allow_preview": false})).await;
    let html = fetch(&app, &path_of(&s)).await.text().await.expect("html");
    assert!(!html.contains("id=\"download-all\"") && !html.contains("/download"));
    assert!(!html.contains("file-preview"));
    // Protected: the password form; gone: the 410 page.
    let s = share(&app, &f.owner, f.collection, json!({"share_type": "protected", "password": "secure123"})).await;
    let r = fetch(&app, &path_of(&s)).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.text().await.expect("html").contains("id=\"share-password\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_zip_holds_every_file_byte_for_byte_with_unique_names() {
    let app = app_on(Db::Sqlite).await;
    let f = fixture(&app).await;
    let s = share(&app, &f.owner, f.collection, json!({"title": "Q3: board/pack"})).await;
    let r = fetch(&app, &format!("{}download", path_of(&s))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/zip");
    let cd = r.headers()["content-disposition"].to_str().expect("cd").to_string();
    assert!(cd.starts_with("attachment") && cd.contains(".zip") && !cd.contains('/'), "{cd}");
    let declared = r.headers().get("content-length").map(|v| v.to_str().expect("len").parse::<usize>().expect("n"));
    let body = r.bytes().await.expect("zip").to_vec();
    if let Some(n) = declared {
        assert_eq!(n, body.len());
    }
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(body)).expect("a valid ZIP");
    assert_eq!(archive.len(), 3);
    let mut names = vec![];
    for (i, file) in f.files.iter().enumerate() {
        let mut entry = archive.by_index(i).expect("entry");
        names.push(entry.name().expect("name").to_string());
        let mut bytes = vec![];
        entry.read_to_end(&mut bytes).expect("read");
        assert_eq!(bytes, file.2, "entry {i} byte-identical");
    }
    assert_eq!(names, vec!["plan.pdf", "photo.png", "plan (2).pdf"]);
    // A Range on the ZIP is answered with the whole archive.
    let s = share(&app, &f.owner, f.collection, json!({})).await;
    let r = app
        .client
        .get(app.url(&format!("{}download", path_of(&s))))
        .header("user-agent", UA)
        .header("range", "bytes=10-20")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(zip::ZipArchive::new(std::io::Cursor::new(r.bytes().await.expect("zip").to_vec())).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zip_dropped_after_its_first_bytes_still_counts() {
    let app = app_on(Db::Sqlite).await;
    let (owner, owner_id) = app.register("owner@example.com", "Olive Owner").await;
    let mut ids = vec![];
    for i in 0..4u8 {
        // PDFs are stored, not deflated: 12 MiB out, far more than the socket buffers hold.
        let bytes = fixtures::pdf(3 * 1024 * 1024 + i as usize);
        ids.push(app.upload(&owner, &format!("part-{i}.pdf"), bytes).await["id"].as_i64().expect("id"));
    }
    let now = app.state.clock.now_ms();
    let c = app.state.store.insert_collection(owner_id, "Big", "", now).await.expect("collection");
    app.state.store.add_collection_items(c.id, &ids, now).await.expect("items");
    let s = share(&app, &owner, c.id, json!({"max_downloads": 5})).await;
    let mut r = fetch(&app, &format!("{}download", path_of(&s))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let len: u64 = r.headers()["content-length"].to_str().expect("len").parse().expect("n");
    assert!(len > 12 * 1024 * 1024, "stored entries: the length is known ({len})");
    let first = r.chunk().await.expect("chunk").expect("some bytes");
    assert_eq!(&first[..2], b"PK");
    drop(r);
    // Bytes were sent: the download stays counted, and the files are counted once.
    let mut count = Value::Null;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        count = link(&app, &owner, &s).await["download_count"].clone();
    }
    assert_eq!(count, 1);
    let r: Value = link_report(&app, &owner, &s).await;
    assert!(r["file_breakdown"].as_array().expect("breakdown").iter().all(|f| f["downloads"] == 1), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_zip_streams_from_s3_too() {
    let s3 = std::sync::Arc::new(crate::helpers::S3Server::start().await);
    let app = TestApp::spawn_with(Spawn {
        s3: Some(s3),
        tweak: Box::new(|c| c.share_access_rate_per_ip_per_minute = 100_000),
        ..Default::default()
    })
    .await;
    let f = fixture(&app).await;
    let s = share(&app, &f.owner, f.collection, json!({"max_downloads": 1})).await;
    let r = fetch(&app, &format!("{}download", path_of(&s))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(r.bytes().await.expect("zip").to_vec())).expect("zip");
    assert_eq!(archive.len(), f.files.len());
    for (i, file) in f.files.iter().enumerate() {
        let mut bytes = vec![];
        archive.by_index(i).expect("entry").read_to_end(&mut bytes).expect("read");
        assert_eq!(bytes, file.2);
    }
    assert_error(fetch(&app, &format!("{}download", path_of(&s))).await, StatusCode::GONE, "share_exhausted").await;
}

/// A client that goes away before the first byte: the response's body is dropped unread (driven
/// through the router itself, so nothing polls the body). The download is given back, for the
/// ZIP and for a single file alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_dropped_before_its_first_byte_is_refunded() {
    use tower::ServiceExt;
    let app = app_on(Db::Sqlite).await;
    let f = fixture(&app).await;
    let s = share(&app, &f.owner, f.collection, json!({"max_downloads": 1})).await;
    for tail in ["download".to_string(), format!("files/{}/download", f.files[0].0)] {
        let req = axum::http::Request::get(format!("/share/{}/{tail}", uuid_of(&s)))
            .header("user-agent", UA)
            .body(axum::body::Body::empty())
            .expect("request");
        let resp = vitrine::http::router(app.state.clone()).oneshot(req).await.expect("response");
        assert_eq!(resp.status(), StatusCode::OK, "{tail}");
        drop(resp);
        let mut count = Value::Null;
        for _ in 0..200 {
            count = link(&app, &f.owner, &s).await["download_count"].clone();
            if count == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(count, 0, "{tail}: refunded");
    }
    // The one download is still there to take.
    let r = fetch(&app, &format!("{}download", path_of(&s))).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.bytes().await.expect("zip");
    assert_eq!(link(&app, &f.owner, &s).await["download_count"], 1);
}

/// §5 on a collection link: its page view and ZIP download are in the link's report, and with
/// `notify_on_access` the owner's socket hears of the visit (the owner's own view says nothing).
async fn a_collection_link_counts_views_and_tells_its_owner(db: Db) {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let app = app_on(db).await;
    let f = fixture(&app).await;
    let s = share(&app, &f.owner, f.collection, json!({"notify_on_access": true, "title": "Q3 set"})).await;
    let p = path_of(&s);
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws/notifications/?token={}", app.addr, f.owner))
            .await
            .expect("connect");
    let mut next = async || loop {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(5), ws.next())
            .await
            .expect("a message in time")
            .expect("open")
            .expect("ok");
        if let Message::Text(t) = msg {
            return serde_json::from_str::<Value>(&t).expect("json");
        }
    };
    assert_eq!(next().await["type"], "connection_established");
    app.get(&p, Some(&f.owner)).await;
    assert_eq!(fetch(&app, &p).await.status(), StatusCode::OK);
    let n = next().await;
    assert_eq!(
        (n["kind"].as_str(), n["share_uuid"].as_str(), n["share_title"].as_str()),
        (Some("share_accessed"), s["uuid"].as_str(), Some("Q3 set"))
    );
    let zip = fetch(&app, &format!("{p}download")).await;
    assert_eq!(zip.status(), StatusCode::OK);
    zip.bytes().await.expect("zip");
    app.state.analytics.flush().await.expect("flush");
    let r: Value = link_report(&app, &f.owner, &s).await;
    assert_eq!(r["summary"]["total_views"], 1, "the owner's own view is not counted: {r}");
    assert_eq!(r["summary"]["total_downloads"], 1, "{r}");
    assert_eq!(r["summary"]["unique_visitors"], 1, "{r}");
}

/// The analytics report of link `share` as its owner reads it.
async fn link_report(app: &TestApp, owner: &str, share: &Value) -> Value {
    app.get(&format!("/api/v3/shares/{}/analytics/", uuid_of(share)), Some(owner)).await.json().await.expect("json")
}
