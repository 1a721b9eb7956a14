//! Collections (SPEC §10) on SQLite and PostgreSQL: create, list, read, change, delete; items
//! added once and in order, reordered and removed; foreign ids named; other people refused; the
//! owner's pages work as plain forms.

use reqwest::StatusCode;
use serde_json::{Value, json};
use vitrine::domain::assets::{AssetMeta, MediaType};
use vitrine::store::assets::StoredFile;

use crate::helpers::{Db, TestApp, assert_error, created};

crate::on_both_databases!(
    a_collection_is_created_read_changed_and_deleted_keeping_its_files,
    items_are_added_once_in_order_reordered_and_removed,
    unknown_and_foreign_asset_ids_are_named_and_nothing_is_added,
    an_order_may_only_name_files_of_the_collection,
    another_users_collection_is_not_found_on_every_route,
    anonymous_callers_are_refused_on_every_route,
    malformed_bodies_are_refused_with_the_field_named,
    deleting_an_asset_removes_it_from_every_collection,
    collection_lists_are_paginated_newest_first,
    a_collection_holds_at_most_1000_files,
);

/// Uploads a small distinct text file and returns its id.
async fn file(app: &TestApp, token: &str, name: &str) -> i64 {
    let v = app.upload(token, name, format!("the file {name}\n").into_bytes()).await;
    v["id"].as_i64().expect("id")
}

async fn new_collection(app: &TestApp, token: &str, title: &str) -> Value {
    created(app.post_json("/api/v3/collections/", Some(token), &json!({"title": title})).await).await
}

async fn add(app: &TestApp, token: &str, id: i64, ids: &[i64]) -> reqwest::Response {
    app.post_json(&format!("/api/v3/collections/{id}/items/"), Some(token), &json!({"asset_ids": ids})).await
}

async fn ok_json(r: reqwest::Response) -> Value {
    let status = r.status();
    let text = r.text().await.expect("body");
    assert_eq!(status, StatusCode::OK, "{text}");
    serde_json::from_str(&text).expect("json")
}

fn item_ids(c: &Value) -> Vec<i64> {
    c["items"].as_array().expect("items").iter().map(|i| i["asset_id"].as_i64().expect("asset_id")).collect()
}

fn positions(c: &Value) -> Vec<i64> {
    c["items"].as_array().expect("items").iter().map(|i| i["position"].as_i64().expect("position")).collect()
}

async fn a_collection_is_created_read_changed_and_deleted_keeping_its_files(db: Db) {
    let app = TestApp::on(db).await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    let r = app
        .post_json("/api/v3/collections/", Some(&token), &json!({"title": "  Trip  ", "description": "Photos"}))
        .await;
    let c = created(r).await;
    for k in ["id", "title", "description", "items", "item_count", "total_size", "created_at", "updated_at"] {
        assert!(c.get(k).is_some(), "the answer has {k}: {c}");
    }
    assert_eq!((c["title"].as_str(), c["description"].as_str()), (Some("Trip"), Some("Photos")));
    assert_eq!((c["item_count"].as_i64(), c["total_size"].as_i64()), (Some(0), Some(0)));
    assert_eq!(c["items"], json!([]));
    assert!(c["created_at"].as_str().is_some_and(|t| t.ends_with('Z')), "RFC 3339 UTC");
    let id = c["id"].as_i64().expect("id");
    let path = format!("/api/v3/collections/{id}/");
    let got = ok_json(app.get(&path, Some(&token)).await).await;
    assert_eq!(got["title"], "Trip");
    let list = ok_json(app.get("/api/v3/collections/", Some(&token)).await).await;
    assert_eq!(list["count"], 1);
    assert_eq!(list["results"][0]["id"], id);

    let a = file(&app, &token, "a.txt").await;
    add(&app, &token, id, &[a]).await;
    app.advance(std::time::Duration::from_secs(60));
    let changed =
        ok_json(app.patch_json(&path, Some(&token), &json!({"title": "Holiday", "description": null})).await).await;
    assert_eq!((changed["title"].as_str(), changed["description"].as_str()), (Some("Holiday"), Some("")));
    assert_ne!(changed["updated_at"], got["updated_at"], "a change moves updated_at");
    assert_eq!(item_ids(&changed), vec![a], "a title change keeps the items");
    let untouched = ok_json(app.patch_json(&path, Some(&token), &json!({})).await).await;
    assert_eq!(untouched["title"], "Holiday");

    let r = app.delete(&path, Some(&token)).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_error(app.get(&path, Some(&token)).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_error(app.delete(&path, Some(&token)).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(app.get(&format!("/api/v3/assets/{a}/"), Some(&token)).await.status(), StatusCode::OK, "the file stays");
    let list = ok_json(app.get("/api/v3/collections", Some(&token)).await).await;
    assert_eq!(list["count"], 0);
}

async fn items_are_added_once_in_order_reordered_and_removed(db: Db) {
    let app = TestApp::on(db).await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    let (a, b, c) =
        (file(&app, &token, "a.txt").await, file(&app, &token, "b.txt").await, file(&app, &token, "c.txt").await);
    let sizes: i64 = ["a.txt", "b.txt", "c.txt"].iter().map(|n| format!("the file {n}\n").len() as i64).sum();
    let id = new_collection(&app, &token, "Set").await["id"].as_i64().expect("id");

    let col = ok_json(add(&app, &token, id, &[b, a, b]).await).await;
    assert_eq!(item_ids(&col), vec![b, a], "in the order sent, repeats once");
    assert_eq!(positions(&col), vec![0, 1]);
    let first = &col["items"][0];
    assert_eq!(
        (first["name"].as_str(), first["mime_type"].as_str(), first["media_type"].as_str()),
        (Some("b.txt"), Some("text/plain"), Some("document"))
    );
    assert_eq!(first["size"].as_i64(), Some("the file b.txt\n".len() as i64));
    let col = ok_json(add(&app, &token, id, &[a, c]).await).await;
    assert_eq!(item_ids(&col), vec![b, a, c], "an asset already in it is not added twice nor moved");
    assert_eq!(positions(&col), vec![0, 1, 2]);
    assert_eq!((col["item_count"].as_i64(), col["total_size"].as_i64()), (Some(3), Some(sizes)));

    let path = format!("/api/v3/collections/{id}/");
    let col = ok_json(app.patch_json(&path, Some(&token), &json!({"order": [c, b, a]})).await).await;
    assert_eq!(item_ids(&col), vec![c, b, a]);
    let col = ok_json(app.patch_json(&path, Some(&token), &json!({"order": [a]})).await).await;
    assert_eq!(item_ids(&col), vec![a, c, b], "listed first, the rest keep their order");
    assert_eq!(positions(&col), vec![0, 1, 2]);
    let got = ok_json(app.get(&path, Some(&token)).await).await;
    assert_eq!(item_ids(&got), vec![a, c, b], "the order is stored");

    let r = app.delete(&format!("/api/v3/collections/{id}/items/{c}/"), Some(&token)).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let got = ok_json(app.get(&path, Some(&token)).await).await;
    assert_eq!(item_ids(&got), vec![a, b]);
    assert_eq!(positions(&got), vec![0, 1], "positions stay without gaps");
    assert_eq!(got["item_count"], 2);
    assert_error(
        app.delete(&format!("/api/v3/collections/{id}/items/{c}"), Some(&token)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(app.get(&format!("/api/v3/assets/{c}/"), Some(&token)).await.status(), StatusCode::OK, "the file stays");
    let col = ok_json(add(&app, &token, id, &[c]).await).await;
    assert_eq!(item_ids(&col), vec![a, b, c], "added again, it goes last");
}

async fn unknown_and_foreign_asset_ids_are_named_and_nothing_is_added(db: Db) {
    let app = TestApp::on(db).await;
    let (ada, _) = app.register("ada@example.com", "Ada").await;
    let (bob, _) = app.register("bob@example.com", "Bob").await;
    let mine = file(&app, &ada, "mine.txt").await;
    let theirs = file(&app, &bob, "theirs.txt").await;
    let id = new_collection(&app, &ada, "Mine").await["id"].as_i64().expect("id");
    let v =
        assert_error(add(&app, &ada, id, &[mine, theirs, 987_654]).await, StatusCode::BAD_REQUEST, "validation_error")
            .await;
    let why = v["fields"]["asset_ids"].as_str().expect("fields.asset_ids");
    assert!(why.contains(&theirs.to_string()) && why.contains("987654"), "{why}");
    assert!(!why.contains(&format!(" {mine},")) && !why.ends_with(&format!(" {mine}")), "{why}");
    let got = ok_json(app.get(&format!("/api/v3/collections/{id}"), Some(&ada)).await).await;
    assert_eq!(item_ids(&got), Vec::<i64>::new(), "nothing was added");
    // Bob cannot put his file into his own collection through Ada's id either.
    let bobs = new_collection(&app, &bob, "Bob's").await["id"].as_i64().expect("id");
    let v = assert_error(add(&app, &bob, bobs, &[mine]).await, StatusCode::BAD_REQUEST, "validation_error").await;
    assert!(v["fields"]["asset_ids"].as_str().is_some_and(|w| w.contains(&mine.to_string())));
}

async fn an_order_may_only_name_files_of_the_collection(db: Db) {
    let app = TestApp::on(db).await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    let (a, b, outside) =
        (file(&app, &token, "a.txt").await, file(&app, &token, "b.txt").await, file(&app, &token, "c.txt").await);
    let id = new_collection(&app, &token, "Set").await["id"].as_i64().expect("id");
    ok_json(add(&app, &token, id, &[a, b]).await).await;
    let path = format!("/api/v3/collections/{id}/");
    let v = assert_error(
        app.patch_json(&path, Some(&token), &json!({"order": [b, outside, a], "title": "Renamed"})).await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    )
    .await;
    assert!(v["fields"]["order"].as_str().is_some_and(|w| w.contains(&outside.to_string())), "{v}");
    let v = assert_error(
        app.patch_json(&path, Some(&token), &json!({"order": [b, a, b]})).await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    )
    .await;
    assert!(v["fields"]["order"].as_str().is_some_and(|w| w.contains(&b.to_string())), "{v}");
    for bad in [json!({"order": "1,2"}), json!({"order": [0]}), json!({"order": [-1]}), json!({"order": [1.5]})] {
        assert_error(app.patch_json(&path, Some(&token), &bad).await, StatusCode::BAD_REQUEST, "validation_error")
            .await;
    }
    let got = ok_json(app.get(&path, Some(&token)).await).await;
    assert_eq!((item_ids(&got), got["title"].as_str()), (vec![a, b], Some("Set")), "a refused change changes nothing");
}

async fn another_users_collection_is_not_found_on_every_route(db: Db) {
    let app = TestApp::on(db).await;
    let (admin, user) = app.admin_and_user().await;
    let (other, _) = app.register("other@example.com", "Otto").await;
    let a = file(&app, &user, "a.txt").await;
    let id = new_collection(&app, &user, "Uma's").await["id"].as_i64().expect("id");
    ok_json(add(&app, &user, id, &[a]).await).await;
    let theirs = file(&app, &other, "o.txt").await;
    let path = format!("/api/v3/collections/{id}/");
    assert_error(app.get(&path, Some(&other)).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_error(
        app.patch_json(&path, Some(&other), &json!({"title": "Mine"})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // Even a wrong body is a 404: nothing tells that the collection exists.
    assert_error(app.patch_json(&path, Some(&other), &json!({"title": ""})).await, StatusCode::NOT_FOUND, "not_found")
        .await;
    assert_error(add(&app, &other, id, &[theirs]).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_error(
        app.delete(&format!("/api/v3/collections/{id}/items/{a}/"), Some(&other)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(app.delete(&path, Some(&other)).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_error(app.get("/api/v3/collections/999999/", Some(&other)).await, StatusCode::NOT_FOUND, "not_found").await;
    let list = ok_json(app.get("/api/v3/collections/", Some(&other)).await).await;
    assert_eq!(list["count"], 0);
    assert_error(app.get("/api/v3/collections/?all=true", Some(&other)).await, StatusCode::FORBIDDEN, "forbidden")
        .await;
    let got = ok_json(app.get(&path, Some(&user)).await).await;
    assert_eq!((got["title"].as_str(), item_ids(&got)), (Some("Uma's"), vec![a]), "unchanged");

    // Admins see and manage every collection, with the owner's files only.
    let seen = ok_json(app.get(&path, Some(&admin)).await).await;
    assert_eq!(seen["title"], "Uma's");
    let all = ok_json(app.get("/api/v3/collections/?all=true", Some(&admin)).await).await;
    assert_eq!(all["count"], 1);
    let own = ok_json(app.get("/api/v3/collections/", Some(&admin)).await).await;
    assert_eq!(own["count"], 0, "an admin's own list is their own");
    let owner_id = got["owner_id"].as_i64().expect("owner_id");
    let by_owner = ok_json(app.get(&format!("/api/v3/collections/?owner_id={owner_id}"), Some(&admin)).await).await;
    assert_eq!(by_owner["count"], 1);
    assert_error(add(&app, &admin, id, &[theirs]).await, StatusCode::BAD_REQUEST, "validation_error").await;
    let renamed = ok_json(app.patch_json(&path, Some(&admin), &json!({"title": "Checked"})).await).await;
    assert_eq!(renamed["title"], "Checked");
}

async fn anonymous_callers_are_refused_on_every_route(db: Db) {
    let app = TestApp::on(db).await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    let a = file(&app, &token, "a.txt").await;
    let id = new_collection(&app, &token, "Set").await["id"].as_i64().expect("id");
    let path = format!("/api/v3/collections/{id}/");
    assert_error(
        app.post_json("/api/v3/collections/", None, &json!({"title": "x"})).await,
        StatusCode::UNAUTHORIZED,
        "not_authenticated",
    )
    .await;
    assert_error(app.get("/api/v3/collections/", None).await, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    assert_error(app.get(&path, None).await, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    assert_error(
        app.patch_json(&path, None, &json!({"title": "x"})).await,
        StatusCode::UNAUTHORIZED,
        "not_authenticated",
    )
    .await;
    assert_error(app.delete(&path, None).await, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    assert_error(add(&app, "not-a-token", id, &[a]).await, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    assert_error(
        app.delete(&format!("/api/v3/collections/{id}/items/{a}/"), None).await,
        StatusCode::UNAUTHORIZED,
        "not_authenticated",
    )
    .await;
    let got = ok_json(app.get(&path, Some(&token)).await).await;
    assert_eq!(got["title"], "Set");
}

async fn malformed_bodies_are_refused_with_the_field_named(db: Db) {
    let app = TestApp::on(db).await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    let create = |body: Value| {
        let app = &app;
        let token = token.clone();
        async move { app.post_json("/api/v3/collections/", Some(&token), &body).await }
    };
    for (body, field) in [
        (json!({}), "title"),
        (json!({"title": ""}), "title"),
        (json!({"title": "   "}), "title"),
        (json!({"title": "x".repeat(201)}), "title"),
        (json!({"title": 7}), "title"),
        (json!({"title": "ok", "description": "d".repeat(5001)}), "description"),
        (json!({"title": "ok", "description": ["no"]}), "description"),
    ] {
        let v = assert_error(create(body.clone()).await, StatusCode::BAD_REQUEST, "validation_error").await;
        assert!(v["fields"][field].is_string(), "{body} names {field}: {v}");
    }
    assert_error(create(json!({"title": "ok", "colour": "red"})).await, StatusCode::BAD_REQUEST, "invalid_body").await;
    assert_error(create(json!(["title"])).await, StatusCode::BAD_REQUEST, "invalid_body").await;
    let r = app
        .req(reqwest::Method::POST, "/api/v3/collections/", Some(&token))
        .header("content-type", "application/json")
        .body("{\"title\":")
        .send()
        .await
        .expect("send");
    assert_error(r, StatusCode::BAD_REQUEST, "malformed_json").await;
    let list = ok_json(app.get("/api/v3/collections/", Some(&token)).await).await;
    assert_eq!(list["count"], 0, "nothing was created");

    let id = new_collection(&app, &token, "Set").await["id"].as_i64().expect("id");
    let items = format!("/api/v3/collections/{id}/items/");
    for body in [
        json!({}),
        json!({"asset_ids": null}),
        json!({"asset_ids": []}),
        json!({"asset_ids": "1,2"}),
        json!({"asset_ids": 1}),
        json!({"asset_ids": [-1]}),
        json!({"asset_ids": [0]}),
        json!({"asset_ids": ["1"]}),
        json!({"asset_ids": (1..=1001).collect::<Vec<i64>>()}),
    ] {
        let v =
            assert_error(app.post_json(&items, Some(&token), &body).await, StatusCode::BAD_REQUEST, "validation_error")
                .await;
        assert!(v["fields"]["asset_ids"].is_string(), "{body}: {v}");
    }
    let path = format!("/api/v3/collections/{id}/");
    for (body, field) in
        [(json!({"title": ""}), "title"), (json!({"title": null}), "title"), (json!({"description": 3}), "description")]
    {
        let v =
            assert_error(app.patch_json(&path, Some(&token), &body).await, StatusCode::BAD_REQUEST, "validation_error")
                .await;
        assert!(v["fields"][field].is_string(), "{body}: {v}");
    }
    assert_error(app.get("/api/v3/collections/abc/", Some(&token)).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_error(
        app.get("/api/v3/collections/?page=0", Some(&token)).await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    )
    .await;
}

async fn deleting_an_asset_removes_it_from_every_collection(db: Db) {
    let app = TestApp::on(db).await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    let (a, b) = (file(&app, &token, "a.txt").await, file(&app, &token, "b.txt").await);
    let one = new_collection(&app, &token, "One").await["id"].as_i64().expect("id");
    let two = new_collection(&app, &token, "Two").await["id"].as_i64().expect("id");
    ok_json(add(&app, &token, one, &[a, b]).await).await;
    ok_json(add(&app, &token, two, &[b, a]).await).await;
    assert_eq!(app.delete(&format!("/api/v3/assets/{a}/"), Some(&token)).await.status(), StatusCode::NO_CONTENT);
    for id in [one, two] {
        let got = ok_json(app.get(&format!("/api/v3/collections/{id}/"), Some(&token)).await).await;
        assert_eq!(item_ids(&got), vec![b], "collection {id}");
        assert_eq!(positions(&got), vec![0]);
        assert_eq!(
            (got["item_count"].as_i64(), got["total_size"].as_i64()),
            (Some(1), Some("the file b.txt\n".len() as i64))
        );
    }
    // Deleting the collection then leaves the remaining file alone.
    assert_eq!(app.delete(&format!("/api/v3/collections/{one}/"), Some(&token)).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("/api/v3/assets/{b}/"), Some(&token)).await.status(), StatusCode::OK);
    let got = ok_json(app.get(&format!("/api/v3/collections/{two}/"), Some(&token)).await).await;
    assert_eq!(item_ids(&got), vec![b], "the other collection keeps it");
}

async fn collection_lists_are_paginated_newest_first(db: Db) {
    let app = TestApp::on(db).await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    for t in ["first", "second", "third"] {
        new_collection(&app, &token, t).await;
        app.advance(std::time::Duration::from_secs(1));
    }
    let p1 = ok_json(app.get("/api/v3/collections/?page_size=2", Some(&token)).await).await;
    assert_eq!(p1["count"], 3);
    let titles = |p: &Value| -> Vec<String> {
        p["results"].as_array().expect("results").iter().map(|c| c["title"].as_str().expect("t").to_string()).collect()
    };
    assert_eq!(titles(&p1), vec!["third", "second"]);
    assert!(p1["previous"].is_null());
    let next = p1["next"].as_str().expect("next").to_string();
    assert!(next.starts_with("http://") && next.contains("/api/v3/collections/") && next.contains("page=2"), "{next}");
    let path = &next[next.find("/api/").expect("a path")..];
    let p2 = ok_json(app.get(path, Some(&token)).await).await;
    assert_eq!(titles(&p2), vec!["first"]);
    assert!(p2["next"].is_null() && p2["previous"].is_string());
}

async fn a_collection_holds_at_most_1000_files(db: Db) {
    let app = TestApp::on(db).await;
    let (token, owner) = app.register("ada@example.com", "Ada").await;
    let id = new_collection(&app, &token, "Big").await["id"].as_i64().expect("id");
    // 1001 asset rows straight into the store (uploading them would only be slower).
    let store = &app.state.store;
    let mut ids = Vec::new();
    for i in 0..1001 {
        let sha = format!("{i:064x}");
        let stored = StoredFile {
            name: format!("f{i}.txt"),
            mime_type: "text/plain".into(),
            media_type: MediaType::Document,
            size: 1,
            sha256: sha.clone(),
            blob_key: format!("assets/{owner}/{sha}"),
            thumb_key: None,
            width: None,
            height: None,
            duration_seconds: None,
        };
        let meta = AssetMeta { title: format!("f{i}"), content_type: "talent_media".into(), ..Default::default() };
        ids.push(store.insert_asset(owner, &meta, &stored, 1_705_314_600_000 + i).await.expect("insert"));
    }
    assert_eq!(store.add_collection_items(id, &ids[..999], 1_705_314_700_000).await.expect("add"), 999);
    let v = assert_error(add(&app, &token, id, &ids[999..]).await, StatusCode::BAD_REQUEST, "validation_error").await;
    assert!(v["fields"]["asset_ids"].as_str().is_some_and(|w| w.contains("1000")), "{v}");
    // Files already in it do not count twice.
    let col = ok_json(add(&app, &token, id, &[ids[0], ids[999]]).await).await;
    assert_eq!(col["item_count"], 1000);
    assert_eq!(col["items"].as_array().map(Vec::len), Some(1000));
    assert_eq!(col["items"][999]["position"], 999);
    assert_error(add(&app, &token, id, &ids[1000..]).await, StatusCode::BAD_REQUEST, "validation_error").await;
}

/// The id in a `Location: /collections/{id}` header.
fn location_id(r: &reqwest::Response) -> i64 {
    let loc = r.headers()["location"].to_str().expect("location");
    loc.strip_prefix("/collections/").and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{loc}"))
}

async fn api_items(app: &TestApp, token: &str, id: i64) -> Vec<i64> {
    item_ids(&ok_json(app.get(&format!("/api/v3/collections/{id}/"), Some(token)).await).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collection_pages_create_fill_reorder_and_empty_a_collection_without_javascript() {
    let app = TestApp::spawn().await;
    let (api, _) = app.register("owner@example.com", "Olive").await;
    let png = app.upload(&api, "pic.png", crate::helpers::fixtures::png(40, 30)).await;
    let (pic, a, b) =
        (png["id"].as_i64().expect("id"), file(&app, &api, "a.txt").await, file(&app, &api, "b.txt").await);
    let olive = app.page_session("owner@example.com").await;
    let home = olive.get("/").await.text().await.expect("html");
    assert!(home.contains("href=\"/collections\""), "the home page links the collections");
    let list = olive.get("/collections").await;
    assert_eq!(list.status(), StatusCode::OK);
    assert_eq!(list.headers()["cache-control"], "no-store");
    let html = list.text().await.expect("html");
    assert!(html.contains("id=\"create-collection\"") && html.contains("id=\"no-collections\""));

    // An empty title shows the form again with the reason; nothing is created.
    let r = olive.post_form("/collections", &[("title", "  "), ("description", "kept")]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let html = r.text().await.expect("html");
    assert!(html.contains("id=\"collection-error\"") && html.contains(">kept</textarea>"), "{html}");
    let r = olive.post_form("/collections", &[("title", "Portfolio"), ("description", "Best of")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let id = location_id(&r);
    let page = olive.get(&format!("/collections/{id}")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    assert!(html.contains("<h1>Portfolio</h1>") && html.contains("id=\"no-items\""));
    for f in [pic, a, b] {
        assert!(html.contains(&format!("id=\"pick-{f}\"")), "the picker offers {f}");
    }

    // Ticking files adds them in the library's order as sent.
    let add = format!("/collections/{id}/items");
    let r = olive.post_form(&add, &[("asset_ids", &a.to_string()), ("asset_ids", &pic.to_string())]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(api_items(&app, &api, id).await, vec![a, pic]);
    let r = olive.post_form(&add, &[]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "nothing ticked");
    assert!(r.text().await.expect("html").contains("id=\"collection-error\""));
    let r = olive.post_form(&add, &[("asset_ids", &b.to_string())]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let html = olive.get(&format!("/collections/{id}")).await.text().await.expect("html");
    assert!(html.contains(&format!("id=\"item-{pic}\"")) && html.contains("<img src="), "items with thumbnails");
    assert!(
        !html.contains(&format!("id=\"pick-{a}\"")) && html.contains("id=\"library-empty\""),
        "the picker leaves out what is in"
    );
    assert!(
        !html.contains(&format!("id=\"up-{a}\"")) && !html.contains(&format!("id=\"down-{b}\"")),
        "no moves past the ends"
    );

    // Move up and down, remove.
    let moved = |f: i64| format!("/collections/{id}/items/{f}/move");
    assert_eq!(olive.post_form(&moved(b), &[("direction", "up")]).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(api_items(&app, &api, id).await, vec![a, b, pic]);
    assert_eq!(olive.post_form(&moved(a), &[("direction", "down")]).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(api_items(&app, &api, id).await, vec![b, a, pic]);
    assert_eq!(
        olive.post_form(&moved(b), &[("direction", "up")]).await.status(),
        StatusCode::SEE_OTHER,
        "at the top: stays"
    );
    assert_eq!(olive.post_form(&moved(b), &[("direction", "sideways")]).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(api_items(&app, &api, id).await, vec![b, a, pic]);
    let r = olive.post_form(&format!("/collections/{id}/items/{a}/remove"), &[]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(api_items(&app, &api, id).await, vec![b, pic]);
    let r = olive.post_form(&format!("/collections/{id}/items/{a}/remove"), &[]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "not in it any more: the page says so");

    // Rename, with a refused title first.
    let r = olive.post_form(&format!("/collections/{id}"), &[("title", ""), ("description", "x")]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = olive.post_form(&format!("/collections/{id}"), &[("title", "Folio <b>"), ("description", "")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let html = olive.get("/collections").await.text().await.expect("html");
    assert!(html.contains("Folio &#60;b&#62;") || html.contains("Folio &lt;b&gt;"), "escaped: {html}");
    assert!(html.contains(&format!("id=\"collection-{id}\"")) && html.contains("2 files"));

    // Delete: back to the list, the files stay.
    let r = olive.post_form(&format!("/collections/{id}/delete"), &[]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/collections");
    assert_eq!(olive.get(&format!("/collections/{id}")).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.get(&format!("/api/v3/assets/{pic}/"), Some(&api)).await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collection_pages_refuse_strangers_other_people_and_forms_without_a_token() {
    let app = TestApp::spawn().await;
    let (api, _) = app.register("owner@example.com", "Olive").await;
    let (otto_api, _) = app.register("other@example.com", "Otto").await;
    let a = file(&app, &api, "a.txt").await;
    let ottos = file(&app, &otto_api, "o.txt").await;
    let c = new_collection(&app, &api, "Olive's").await;
    let id = c["id"].as_i64().expect("id");
    ok_json(add(&app, &api, id, &[a]).await).await;

    let r = app.get(&format!("/collections/{id}"), None).await;
    assert_eq!(r.headers()["location"], format!("/login?next=/collections/{id}"));
    assert_eq!(app.get("/collections", None).await.headers()["location"], "/login?next=/collections");

    let olive = app.page_session("owner@example.com").await;
    // Without the token (or with a wrong one) nothing changes.
    let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
        ("/collections".into(), vec![("title", "New")]),
        (format!("/collections/{id}"), vec![("title", "Renamed")]),
        (format!("/collections/{id}/items"), vec![]),
        (format!("/collections/{id}/items/{a}/move"), vec![("direction", "down")]),
        (format!("/collections/{id}/items/{a}/remove"), vec![]),
        (format!("/collections/{id}/delete"), vec![]),
    ];
    for (path, fields) in &posts {
        let r = olive.post_form_as_is(path, fields).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path} without a token");
        let mut wrong = fields.clone();
        wrong.push(("csrf_token", "nope"));
        assert_eq!(olive.post_form_as_is(path, &wrong).await.status(), StatusCode::FORBIDDEN, "{path} wrong token");
    }
    let r = olive
        .req(reqwest::Method::POST, "/collections")
        .header("origin", "https://evil.example")
        .form(&[("title", "x"), ("csrf_token", olive.csrf.as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "a cross-site post");
    let got = ok_json(app.get(&format!("/api/v3/collections/{id}/"), Some(&api)).await).await;
    assert_eq!((got["title"].as_str(), item_ids(&got)), (Some("Olive's"), vec![a]));
    assert_eq!(ok_json(app.get("/api/v3/collections/", Some(&api)).await).await["count"], 1);

    // Another user: 404 on every page and form, and their own files cannot be slipped in.
    let otto = app.page_session("other@example.com").await;
    assert_eq!(otto.get(&format!("/collections/{id}")).await.status(), StatusCode::NOT_FOUND);
    let ottos = ottos.to_string();
    for (path, fields) in [
        (format!("/collections/{id}"), vec![("title", "Mine")]),
        (format!("/collections/{id}/items"), vec![("asset_ids", ottos.as_str())]),
        (format!("/collections/{id}/items/{a}/move"), vec![("direction", "down")]),
        (format!("/collections/{id}/items/{a}/remove"), vec![]),
        (format!("/collections/{id}/delete"), vec![]),
    ] {
        assert_eq!(otto.post_form(&path, &fields).await.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let list = otto.get("/collections").await.text().await.expect("html");
    assert!(!list.contains("Olive's"));
    // Olive cannot add Otto's file through her own page either.
    let r = olive.post_form(&format!("/collections/{id}/items"), &[("asset_ids", ottos.as_str())]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.expect("html").contains(&ottos));
    let got = ok_json(app.get(&format!("/api/v3/collections/{id}/"), Some(&api)).await).await;
    assert_eq!((got["title"].as_str(), item_ids(&got)), (Some("Olive's"), vec![a]), "nothing changed");
}

/// The uuid in a `Location: /collections/{id}?created={uuid}` header.
fn created_uuid(r: &reqwest::Response, id: i64) -> String {
    let loc = r.headers()["location"].to_str().expect("location");
    let prefix = format!("/collections/{id}?created=");
    loc.strip_prefix(&prefix).unwrap_or_else(|| panic!("{loc}")).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collection_page_creates_lists_and_revokes_links_without_javascript() {
    let app = TestApp::spawn().await;
    let (api, _) = app.register("owner@example.com", "Olive").await;
    app.register("other@example.com", "Otto").await;
    let a = file(&app, &api, "a.txt").await;
    let c = new_collection(&app, &api, "Trip").await;
    let id = c["id"].as_i64().expect("id");
    ok_json(add(&app, &api, id, &[a]).await).await;
    let olive = app.page_session("owner@example.com").await;
    let page = format!("/collections/{id}");
    let html = olive.get(&page).await.text().await.expect("html");
    assert!(
        html.contains("id=\"share-form\"")
            && html.contains(&format!("action=\"/collections/{id}/shares\""))
            && html.contains("id=\"no-links\""),
        "the share form, no links yet"
    );
    let shares = format!("/collections/{id}/shares");

    // A malformed limit shows the page again with the reason; nothing is created.
    let r = olive.post_form(&shares, &[("share_type", "public"), ("max_downloads", "many")]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.expect("html").contains("id=\"share-error\""));
    // Without the token (or with a wrong one): refused, nothing created.
    let fields = [("share_type", "public"), ("title", "Sneaky")];
    assert_eq!(olive.post_form_as_is(&shares, &fields).await.status(), StatusCode::FORBIDDEN);
    let mut wrong = fields.to_vec();
    wrong.push(("csrf_token", "nope"));
    assert_eq!(olive.post_form_as_is(&shares, &wrong).await.status(), StatusCode::FORBIDDEN);
    // Another user: 404, nothing created.
    let otto = app.page_session("other@example.com").await;
    assert_eq!(otto.post_form(&shares, &fields).await.status(), StatusCode::NOT_FOUND);
    let html = olive.get(&page).await.text().await.expect("html");
    assert!(html.contains("id=\"no-links\""), "no link was made");

    // The form creates a collection link with its settings; the page lists it.
    let r = olive
        .post_form(
            &shares,
            &[
                ("share_type", "public"),
                ("title", "For Bo"),
                ("max_downloads", "3"),
                ("allow_preview", "on"),
                ("allow_download", "on"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let uuid = created_uuid(&r, id);
    let share = ok_json(app.get(&format!("/api/v3/shares/{uuid}/"), Some(&api)).await).await;
    assert_eq!(share["collection_id"], id);
    assert_eq!(share["title"], "For Bo");
    assert_eq!(share["max_downloads"], 3);
    let html = olive.get(&format!("/collections/{id}?created={uuid}")).await.text().await.expect("html");
    assert!(html.contains("id=\"created-notice\"") && html.contains(&format!("id=\"link-{uuid}\"")), "{html}");
    assert!(html.contains(&format!("id=\"revoke-{uuid}\"")) && html.contains("(3 left)"));
    let public = app.get(&format!("/share/{uuid}/"), None).await;
    assert_eq!(public.status(), StatusCode::OK, "the link opens");

    // Revoke from the collection's page: back to it, the link is revoked.
    let r = olive.post_form(&format!("/shares/{uuid}/revoke"), &[("back", &page)]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], page.as_str());
    let html = olive.get(&page).await.text().await.expect("html");
    assert!(html.contains(&format!("id=\"link-{uuid}\"")) && !html.contains(&format!("id=\"revoke-{uuid}\"")));
    // Otto's own collection page is not Olive's: 404 there too.
    assert_eq!(otto.get(&page).await.status(), StatusCode::NOT_FOUND);
}
