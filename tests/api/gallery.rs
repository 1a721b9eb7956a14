//! Gallery and search (SPEC §6, seed shared-media-gallery-api): the six endpoints with every
//! permission and error, privacy of addresses for anonymous callers, pagination, soft delete,
//! statistics, search relevance on both databases, rate limits (shared across instances).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Db, Spawn, TestApp, assert_error, fixtures};

/// Accounts of every role, and assets of an owner.
struct World {
    app: TestApp,
    admin: String,
    admin_id: i64,
    dash: String,
    dash_id: i64,
    dash2: String,
    user: String,
    owner: String,
    owner_id: i64,
}

async fn promote(app: &TestApp, admin: &str, id: i64, role: &str) {
    let r = app.patch_json(&format!("/api/admin/users/{id}/"), Some(admin), &json!({"role": role})).await;
    assert_eq!(r.status(), StatusCode::OK, "promote {id}");
}

async fn world_on(app: TestApp) -> World {
    let (admin, admin_id) = app.register("admin@example.com", "Ada Admin").await;
    let (dash, dash_id) = app.register("dash@example.com", "Dana Dash").await;
    let (dash2, dash2_id) = app.register("dash2@example.com", "Dirk").await;
    let (user, _) = app.register("user@example.com", "Uma User").await;
    let (owner, owner_id) = app.register("john@example.com", "John Doe").await;
    promote(&app, &admin, dash_id, "dashboard").await;
    promote(&app, &admin, dash2_id, "dashboard").await;
    World { app, admin, admin_id, dash, dash_id, dash2, user, owner, owner_id }
}

async fn world(db: Db) -> World {
    world_on(TestApp::on(db).await).await
}

impl World {
    /// An asset of the owner with a title, description, tags and content type.
    async fn asset(&self, title: &str, description: &str, tags: &str, content_type: &str, png: bool) -> i64 {
        self.asset_of(&self.owner, title, description, tags, content_type, png).await
    }

    async fn asset_of(&self, token: &str, title: &str, description: &str, tags: &str, ct: &str, png: bool) -> i64 {
        let (name, bytes) = if png { ("a.png", fixtures::png(40, 30)) } else { ("a.pdf", fixtures::pdf(500)) };
        let r = self
            .app
            .upload_with(
                Some(token),
                name,
                bytes,
                &[("title", title), ("description", description), ("tags", tags), ("content_type", ct)],
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json::<Value>().await.expect("json")["id"].as_i64().expect("id")
    }

    async fn share(&self, token: &str, body: Value) -> reqwest::Response {
        self.app.post_json("/api/dashboard/share-media/", Some(token), &body).await
    }

    async fn share_ok(&self, token: &str, ct: &str, id: i64, category: &str) -> Value {
        let r = self
            .share(token, json!({"content_type": ct, "object_id": id, "caption": "Nice", "category": category}))
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json::<Value>().await.expect("json")["shared_post"].clone()
    }

    async fn json(&self, path: &str, token: Option<&str>) -> Value {
        let r = self.app.get(path, token).await;
        let status = r.status();
        let text = r.text().await.expect("body");
        assert_eq!(status, StatusCode::OK, "{path}: {text}");
        serde_json::from_str(&text).expect("json")
    }
}

crate::on_both_databases!(
    sharing_answers_with_the_seed_shape_and_refuses_what_it_should,
    search_finds_and_ranks_a_fixed_corpus,
    the_public_gallery_lists_active_posts_and_hides_addresses_from_anonymous_callers,
    my_shared_media_and_statistics,
);

async fn sharing_answers_with_the_seed_shape_and_refuses_what_it_should(db: Db) {
    let w = world(db).await;
    let id = w.asset("Portrait Photo", "A portrait", "portrait,studio", "talent_media", true).await;
    let r = w
        .share(&w.dash, json!({"content_type": "talent_media", "object_id": id, "caption": "Amazing work by our talent!", "category": "featured"}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["message"], "Media shared successfully!");
    let p = &v["shared_post"];
    let post_id = p["id"].as_i64().expect("id");
    assert_eq!(p["caption"], "Amazing work by our talent!");
    assert_eq!(p["category"], "featured");
    assert!(p["shared_at"].as_str().expect("at").ends_with('Z'));
    assert_eq!(p["shared_by_name"], "Dana Dash");
    assert_eq!(p["shared_by_email"], "dash@example.com");
    assert_eq!(p["attribution_text"], "Originally by John Doe (@john@example.com)");
    assert_eq!(p["original_owner"], json!({"id": w.owner_id, "name": "John Doe", "email": "john@example.com"}));
    let ci = &p["content_info"];
    assert_eq!(
        (ci["type"].as_str(), ci["name"].as_str(), ci["media_type"].as_str()),
        (Some("media"), Some("Portrait Photo"), Some("image"))
    );
    let base = &w.app.base;
    assert_eq!(ci["file_url"], format!("{base}/gallery/media/{post_id}/file"));
    assert_eq!(ci["thumbnail_url"], format!("{base}/gallery/media/{post_id}/thumbnail"));
    assert!(p.get("is_active").is_none(), "the create answer has the seed's fields");

    // The original file is referenced, never copied: the link serves the asset's bytes.
    let f = w.app.get(&format!("/gallery/media/{post_id}/file"), None).await;
    assert_eq!(f.status(), StatusCode::OK);
    assert_eq!(f.headers()["content-type"], "image/png");
    assert_eq!(f.bytes().await.expect("bytes").to_vec(), fixtures::png(40, 30));
    assert_eq!(w.app.get(&format!("/gallery/media/{post_id}/thumbnail"), None).await.status(), StatusCode::OK);

    // A second active share of the same content by the same user.
    let again = w.share(&w.dash, json!({"content_type": "talent_media", "object_id": id})).await;
    let e = assert_error(again, StatusCode::BAD_REQUEST, "already_shared").await;
    assert_eq!(e["error"], "You have already shared this media");
    // Someone else may share it too; the default category is general.
    let other = w.share_ok(&w.dash2, "talent_media", id, "").await;
    assert_eq!(other["category"], "general");
    let by_admin = w.share(&w.admin, json!({"content_type": "talent_media", "object_id": id, "caption": null})).await;
    assert_eq!(by_admin.status(), StatusCode::CREATED);

    // Validation: bad content type, category, id, caption; missing fields.
    for (body, field) in [
        (json!({"content_type": "spaceship", "object_id": id}), "content_type"),
        (json!({"object_id": id}), "content_type"),
        (json!({"content_type": "talent_media", "object_id": id, "category": "best"}), "category"),
        (json!({"content_type": "talent_media"}), "object_id"),
        (json!({"content_type": "talent_media", "object_id": "abc"}), "object_id"),
        (json!({"content_type": "talent_media", "object_id": id, "caption": "x".repeat(2001)}), "caption"),
        (json!({"content_type": "talent_media", "object_id": id, "caption": 5}), "caption"),
    ] {
        let e = assert_error(w.share(&w.dash2, body.clone()).await, StatusCode::BAD_REQUEST, "validation_error").await;
        assert!(e["fields"][field].is_string(), "{body}: {e}");
    }
    let malformed = w
        .app
        .req(reqwest::Method::POST, "/api/dashboard/share-media/", Some(&w.dash2))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .expect("send");
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    // Unknown content, or an asset of another content type.
    assert_error(
        w.share(&w.dash2, json!({"content_type": "prop", "object_id": id})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(
        w.share(&w.dash2, json!({"content_type": "talent_media", "object_id": 999_999})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // Roles: a plain user is refused, an anonymous caller must sign in, a bad token is refused.
    assert_error(
        w.share(&w.user, json!({"content_type": "talent_media", "object_id": id})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_error(
        w.share(&w.owner, json!({"content_type": "talent_media", "object_id": id})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let anon = w
        .app
        .post_json("/api/dashboard/share-media/", None, &json!({"content_type": "talent_media", "object_id": id}))
        .await;
    assert_error(anon, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    let forged = w
        .app
        .post_json(
            "/api/dashboard/share-media/",
            Some("x.y.z"),
            &json!({"content_type": "talent_media", "object_id": id}),
        )
        .await;
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);

    // After deleting, the same user may share again.
    let d = w.app.delete(&format!("/api/dashboard/shared-media/{post_id}/delete/"), Some(&w.dash)).await;
    assert_eq!(d.status(), StatusCode::OK);
    assert_eq!(d.json::<Value>().await.expect("json"), json!({"message": "Shared media deleted successfully"}));
    assert_eq!(w.app.get(&format!("/gallery/media/{post_id}/file"), None).await.status(), StatusCode::NOT_FOUND);
    let again = w.share(&w.dash, json!({"content_type": "talent_media", "object_id": id})).await;
    assert_eq!(again.status(), StatusCode::CREATED);
}

async fn the_public_gallery_lists_active_posts_and_hides_addresses_from_anonymous_callers(db: Db) {
    let w = world(db).await;
    let a1 = w.asset("Sunset", "", "", "location", true).await;
    let a2 = w.asset("Old car", "", "", "vehicle", false).await;
    let a3 = w.asset("Hat", "", "", "costume", true).await;
    let p1 = w.share_ok(&w.dash, "location", a1, "featured").await;
    let p2 = w.share_ok(&w.dash, "vehicle", a2, "trending").await;
    let p3 = w.share_ok(&w.admin, "costume", a3, "featured").await;

    // Anonymous: newest first, no address anywhere.
    let r = w.app.get("/api/dashboard/shared-media/", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.expect("body");
    assert!(!text.contains('@'), "no e-mail address in the public list: {text}");
    let v: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(v["count"], 3);
    assert_eq!((v["next"].clone(), v["previous"].clone()), (Value::Null, Value::Null));
    let ids: Vec<i64> =
        v["results"].as_array().expect("results").iter().map(|p| p["id"].as_i64().expect("id")).collect();
    assert_eq!(ids, [p3["id"].as_i64().expect("id"), p2["id"].as_i64().expect("id"), p1["id"].as_i64().expect("id")]);
    let first = &v["results"][0];
    assert_eq!(first["attribution_text"], "Originally by John Doe");
    assert!(first.get("shared_by_email").is_none());
    assert_eq!(first["original_owner"], json!({"id": w.owner_id, "name": "John Doe"}));
    // A plain user is treated like the public.
    let as_user = w.json("/api/dashboard/shared-media/", Some(&w.user)).await;
    assert!(!as_user.to_string().contains('@'));
    // Dashboard users and admins get the full shape.
    let staff = w.json("/api/dashboard/shared-media/", Some(&w.dash)).await;
    assert_eq!(staff["results"][0]["shared_by_email"], "admin@example.com");
    assert_eq!(staff["results"][0]["attribution_text"], "Originally by John Doe (@john@example.com)");
    assert_eq!(staff["results"][0]["original_owner"]["email"], "john@example.com");

    // Filters and pagination with absolute links that keep the filters.
    let featured = w.json("/api/dashboard/shared-media/?category=featured&page_size=1", None).await;
    assert_eq!(featured["count"], 2);
    assert_eq!(featured["results"][0]["id"], p3["id"]);
    assert_eq!(
        featured["next"],
        format!("{}/api/dashboard/shared-media/?category=featured&page=2&page_size=1", w.app.base)
    );
    let page2 = w.json("/api/dashboard/shared-media/?category=featured&page=2&page_size=1", None).await;
    assert_eq!(page2["results"][0]["id"], p1["id"]);
    assert_eq!(page2["next"], Value::Null);
    assert!(page2["previous"].as_str().expect("previous").contains("page_size=1"));
    let beyond = w.json("/api/dashboard/shared-media/?page=9", None).await;
    assert_eq!((beyond["count"].as_i64(), beyond["results"].as_array().map(Vec::len)), (Some(3), Some(0)));
    let by_admin = w.json(&format!("/api/dashboard/shared-media/?shared_by={}", w.admin_id), None).await;
    assert_eq!(by_admin["count"], 1);
    let by_dash = w.json(&format!("/api/dashboard/shared-media/?shared_by={}", w.dash_id), None).await;
    assert_eq!(by_dash["count"], 2);
    for q in ["category=best", "shared_by=x", "page=0", "page_size=101", "page=abc"] {
        let r = w.app.get(&format!("/api/dashboard/shared-media/?{q}"), None).await;
        assert_error(r, StatusCode::BAD_REQUEST, "validation_error").await;
    }

    // Detail: anyone; with is_active; without addresses for the public.
    let id1 = p1["id"].as_i64().expect("id");
    let d = w.json(&format!("/api/dashboard/shared-media/{id1}/"), None).await;
    assert_eq!(d["is_active"], true);
    assert!(!d.to_string().contains('@'));
    let d = w.json(&format!("/api/dashboard/shared-media/{id1}"), Some(&w.admin)).await;
    assert_eq!(d["shared_by_email"], "dash@example.com");
    assert_error(w.app.get("/api/dashboard/shared-media/424242/", None).await, StatusCode::NOT_FOUND, "not_found")
        .await;

    // Deleted posts and posts of deleted assets disappear (cache included).
    let del = w.app.delete(&format!("/api/dashboard/shared-media/{}/delete/", p2["id"]), Some(&w.dash)).await;
    assert_eq!(del.status(), StatusCode::OK);
    assert_error(
        w.app.get(&format!("/api/dashboard/shared-media/{}/", p2["id"]), None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(w.app.delete(&format!("/api/v3/assets/{a1}/"), Some(&w.owner)).await.status(), StatusCode::NO_CONTENT);
    let v = w.json("/api/dashboard/shared-media/", None).await;
    assert_eq!(v["count"], 1);
    assert_eq!(v["results"][0]["id"], p3["id"]);
    assert_error(
        w.app.get(&format!("/api/dashboard/shared-media/{id1}/"), None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(w.app.get(&format!("/gallery/media/{id1}/file"), None).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_are_deleted_by_their_sharer_or_an_admin_only() {
    let w = world(Db::Sqlite).await;
    let a = w.asset("Prop gun", "", "", "prop", false).await;
    let mine = w.share_ok(&w.dash, "prop", a, "general").await["id"].as_i64().expect("id");
    let theirs = w.share_ok(&w.dash2, "prop", a, "general").await["id"].as_i64().expect("id");
    let path = |id: i64| format!("/api/dashboard/shared-media/{id}/delete/");
    let e = assert_error(w.app.delete(&path(theirs), Some(&w.dash)).await, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(e["error"], "Can only delete your own posts");
    assert_error(w.app.delete(&path(mine), Some(&w.user)).await, StatusCode::FORBIDDEN, "forbidden").await;
    assert_error(w.app.delete(&path(mine), None).await, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    assert_error(w.app.delete(&path(999), Some(&w.dash)).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(w.app.delete(&path(mine), Some(&w.dash)).await.status(), StatusCode::OK);
    assert_error(w.app.delete(&path(mine), Some(&w.dash)).await, StatusCode::NOT_FOUND, "not_found").await;
    // An admin deletes anyone's post; the path without its trailing slash works too.
    let r = w.app.delete(&format!("/api/dashboard/shared-media/{theirs}/delete"), Some(&w.admin)).await;
    assert_eq!(r.status(), StatusCode::OK);
    // Soft delete: the rows stay, inactive.
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM gallery_posts WHERE is_active = 0")
        .fetch_one(w.app.state.store.pool())
        .await
        .expect("count");
    assert_eq!(n, 2);
    // Only DELETE.
    let r = w.app.get(&path(theirs), Some(&w.admin)).await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}

async fn my_shared_media_and_statistics(db: Db) {
    let w = world(db).await;
    let a = w.asset("A", "", "", "prop", false).await;
    let b = w.asset("B", "", "", "vehicle", false).await;
    let c = w.asset("C", "", "", "prop", true).await;
    w.share_ok(&w.dash, "prop", a, "featured").await;
    w.share_ok(&w.dash, "vehicle", b, "featured").await;
    let gone = w.share_ok(&w.dash, "prop", c, "spotlight").await;
    w.share_ok(&w.admin, "prop", a, "trending").await;
    w.app.delete(&format!("/api/dashboard/shared-media/{}/delete/", gone["id"]), Some(&w.dash)).await;

    let mine = w.json("/api/dashboard/my-shared-media/", Some(&w.dash)).await;
    assert_eq!(mine["count"], 2);
    assert!(mine["results"].as_array().expect("r").iter().all(|p| p["shared_by_email"] == "dash@example.com"));
    assert_eq!(mine["results"][0]["original_owner"]["email"], "john@example.com");
    let paged = w.json("/api/dashboard/my-shared-media/?page_size=1", Some(&w.dash)).await;
    assert!(
        paged["next"].as_str().expect("next").starts_with(&format!("{}/api/dashboard/my-shared-media/?", w.app.base))
    );
    assert_eq!(w.json("/api/dashboard/my-shared-media/", Some(&w.dash2)).await["count"], 0);
    assert_error(w.app.get("/api/dashboard/my-shared-media/", Some(&w.user)).await, StatusCode::FORBIDDEN, "forbidden")
        .await;
    assert_error(
        w.app.get("/api/dashboard/my-shared-media/", None).await,
        StatusCode::UNAUTHORIZED,
        "not_authenticated",
    )
    .await;
    assert_error(
        w.app.get("/api/dashboard/my-shared-media/?page=-1", Some(&w.dash)).await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    )
    .await;

    let s = w.json("/api/dashboard/shared-media/stats/", Some(&w.admin)).await;
    assert_eq!(s["total_shared"], 3);
    assert_eq!(s["by_category"], json!({"featured": 2, "general": 0, "inspiration": 0, "spotlight": 0, "trending": 1}));
    let by_type = s["by_content_type"].as_object().expect("types");
    assert_eq!(by_type.len(), 10);
    assert_eq!(
        (by_type["prop"].as_i64(), by_type["vehicle"].as_i64(), by_type["talent_media"].as_i64()),
        (Some(2), Some(1), Some(0))
    );
    assert_eq!(
        s["top_sharers"],
        json!([
            {"shared_by__first_name": "Dana", "shared_by__last_name": "Dash", "shared_by__email": "dash@example.com", "count": 2},
            {"shared_by__first_name": "Ada", "shared_by__last_name": "Admin", "shared_by__email": "admin@example.com", "count": 1}
        ])
    );
    assert_error(
        w.app.get("/api/dashboard/shared-media/stats/", Some(&w.dash)).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_error(
        w.app.get("/api/dashboard/shared-media/stats/", None).await,
        StatusCode::UNAUTHORIZED,
        "not_authenticated",
    )
    .await;
}

async fn search_finds_and_ranks_a_fixed_corpus(db: Db) {
    let w = world(db).await;
    let (other, other_id) = w.app.register("mia@example.com", "Mia Rossi").await;
    let title_hit = w.asset("Portrait of a dancer", "studio session", "dance", "talent_media", true).await;
    let desc_hit = w.asset("Session notes", "a portrait lighting setup", "lighting", "talent_media", false).await;
    let tag_hit = w.asset("Blue car", "", "vintage,portraiture", "vehicle", false).await;
    let mia_hit = w.asset_of(&other, "Portrait in red", "", "", "talent_media", true).await;
    let _noise = w.asset("Landscape", "mountains at dawn", "nature", "location", true).await;

    let search = |q: &str| format!("/api/dashboard/search/?q={q}");
    // Every matching asset, grouped by owner; owners ordered by their best hit.
    let v = w.json(&search("portrait"), Some(&w.dash)).await;
    assert_eq!(v["count"], 2, "{v}");
    let groups = v["results"].as_array().expect("groups");
    let john = groups.iter().find(|g| g["id"] == w.owner_id).expect("john's group");
    assert_eq!(john["name"], "John Doe");
    let ids: Vec<i64> =
        john["media_items"].as_array().expect("items").iter().map(|i| i["id"].as_i64().expect("id")).collect();
    assert_eq!(ids[0], title_hit, "a title match ranks first: {john}");
    assert!(ids.contains(&desc_hit) && ids.contains(&tag_hit), "prefix match on descriptions and tags: {john}");
    assert_eq!(john["media_count"], 3);
    let mia = groups.iter().find(|g| g["id"] == other_id).expect("mia's group");
    assert_eq!(mia["media_items"][0]["id"], mia_hit);
    // The seed's item shape with share_info.
    let item = &john["media_items"][0];
    assert_eq!(item["name"], "Portrait of a dancer");
    assert_eq!(item["media_type"], "image");
    assert!(item["media_file"].as_str().expect("file").contains("/files/"));
    assert_eq!(
        item["share_info"],
        json!({"can_share": true, "content_type": "talent_media", "object_id": title_hit, "share_url": "/api/dashboard/share-media/"})
    );
    let file = w.app.client.get(item["media_file"].as_str().expect("url")).send().await.expect("file");
    assert_eq!(file.status(), StatusCode::OK);

    // Several words must all match; owner names are searched; prefixes work; case and accents do not matter.
    let v = w.json(&search("PORTR%20dancer"), Some(&w.dash)).await;
    assert_eq!(v["results"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["results"][0]["media_items"].as_array().map(Vec::len), Some(1));
    let v = w.json(&search("rossi"), Some(&w.admin)).await;
    assert_eq!(v["results"][0]["id"], other_id);
    let v = w.json(&search("doe"), Some(&w.admin)).await;
    assert_eq!(v["results"][0]["media_count"], 4);
    assert_eq!(w.json(&search("zebra"), Some(&w.dash)).await["count"], 0);
    // Query syntax of either engine is not passed through.
    assert_eq!(w.json(&search("portrait%20OR%20%22x%22%20NEAR(a"), Some(&w.dash)).await["count"], 0);
    assert_eq!(w.json(&search("portrait*%27%3B--"), Some(&w.dash)).await["count"], 2);
    // Content type filter.
    let v = w.json(&format!("{}&content_type=vehicle", search("portrait")), Some(&w.dash)).await;
    assert_eq!(v["results"][0]["media_items"][0]["id"], tag_hit);
    assert_eq!(v["results"].as_array().map(Vec::len), Some(1));
    // can_share turns false once the caller shared it (only for that caller).
    w.share_ok(&w.dash, "talent_media", title_hit, "general").await;
    let v = w.json(&search("dancer"), Some(&w.dash)).await;
    assert_eq!(v["results"][0]["media_items"][0]["share_info"]["can_share"], false);
    let v = w.json(&search("dancer"), Some(&w.dash2)).await;
    assert_eq!(v["results"][0]["media_items"][0]["share_info"]["can_share"], true);
    // Pagination over owner groups.
    let v = w.json(&format!("{}&page_size=1", search("portrait")), Some(&w.dash)).await;
    assert_eq!((v["count"].as_i64(), v["results"].as_array().map(Vec::len)), (Some(2), Some(1)));
    assert!(v["next"].as_str().expect("next").contains("q=portrait"));
    let v2 = w.json(&format!("{}&page_size=1&page=2", search("portrait")), Some(&w.dash)).await;
    assert_ne!(v2["results"][0]["id"], v["results"][0]["id"]);
    let v3 = w.json(&format!("{}&page_size=1&page=3", search("portrait")), Some(&w.dash)).await;
    assert_eq!((v3["count"].as_i64(), v3["results"].as_array().map(Vec::len)), (Some(2), Some(0)));
    // Edits, deletions and renamed owners reach the index.
    let r = w
        .app
        .patch_json(&format!("/api/v3/assets/{desc_hit}/"), Some(&w.owner), &json!({"description": "plain"}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(w.json(&search("lighting%20portrait"), Some(&w.dash)).await["count"], 0);
    assert_eq!(
        w.app.delete(&format!("/api/v3/assets/{mia_hit}/"), Some(&other)).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(w.json(&search("portrait"), Some(&w.dash)).await["count"], 1);
    sqlx::query("UPDATE users SET name = 'Johnny Zed' WHERE id = $1")
        .bind(w.owner_id)
        .execute(w.app.state.store.pool())
        .await
        .expect("rename");
    assert_eq!(w.json(&search("zed"), Some(&w.dash)).await["results"][0]["media_count"], 4);
    // Errors and permissions.
    for q in ["", "q=", "q=%20%2A%20", "q=x&content_type=car", "q=x&page=0"] {
        let r = w.app.get(&format!("/api/dashboard/search/?{q}"), Some(&w.dash)).await;
        assert_error(r, StatusCode::BAD_REQUEST, "validation_error").await;
    }
    let long = "a".repeat(201);
    assert_error(w.app.get(&search(&long), Some(&w.dash)).await, StatusCode::BAD_REQUEST, "validation_error").await;
    assert_error(w.app.get(&search("portrait"), Some(&w.user)).await, StatusCode::FORBIDDEN, "forbidden").await;
    assert_error(w.app.get(&search("portrait"), None).await, StatusCode::UNAUTHORIZED, "not_authenticated").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_from_before_search_gets_its_index_filled() {
    let w = world(Db::Sqlite).await;
    w.asset("Legacy portrait", "", "", "talent_media", false).await;
    sqlx::query("DELETE FROM asset_search").execute(w.app.state.store.pool()).await.expect("empty the index");
    assert_eq!(w.json("/api/dashboard/search/?q=legacy", Some(&w.dash)).await["count"], 0);
    w.app.state.store.migrate().await.expect("migrate");
    assert_eq!(w.json("/api/dashboard/search/?q=legacy", Some(&w.dash)).await["count"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_users_and_admins_have_hourly_budgets() {
    let app = TestApp::spawn_with(Spawn {
        tweak: Box::new(|c| {
            c.gallery_rate_dashboard_per_hour = 3;
            c.gallery_rate_admin_per_hour = 5;
        }),
        ..Default::default()
    })
    .await;
    let w = world_on(app).await;
    for _ in 0..3 {
        assert_eq!(w.app.get("/api/dashboard/shared-media/", Some(&w.dash)).await.status(), StatusCode::OK);
    }
    // Every gallery endpoint spends the same budget.
    let r = w.app.get("/api/dashboard/my-shared-media/", Some(&w.dash)).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = r.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=1200).contains(&wait), "{wait}");
    assert_error(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // Budgets are per user and per role.
    assert_eq!(w.app.get("/api/dashboard/shared-media/", Some(&w.dash2)).await.status(), StatusCode::OK);
    for _ in 0..5 {
        assert_eq!(w.app.get("/api/dashboard/shared-media/", Some(&w.admin)).await.status(), StatusCode::OK);
    }
    assert_eq!(w.app.get("/api/dashboard/shared-media/", Some(&w.admin)).await.status(), StatusCode::TOO_MANY_REQUESTS);
    // Anonymous visitors of the public gallery are not counted against anyone.
    for _ in 0..10 {
        assert_eq!(w.app.get("/api/dashboard/shared-media/", None).await.status(), StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_is_shared_by_instances_on_redis() {
    let Some(bus) = crate::helpers::redis::redis_url().await else { return };
    let (a, b) = crate::helpers::redis::pair_with(&bus, |c| c.gallery_rate_dashboard_per_hour = 4).await;
    let (admin, _) = a.register("admin@example.com", "Ada Admin").await;
    let (dash, dash_id) = a.register("dash@example.com", "Dana Dash").await;
    promote(&a, &admin, dash_id, "dashboard").await;
    // The budget lives in Redis and outlives a test run: start from a full one.
    let client = redis::Client::open(bus.as_str()).expect("url");
    let mut conn = client.get_multiplexed_async_connection().await.expect("redis");
    let _: i64 = redis::cmd("DEL")
        .arg(format!("vitrine:limit:gallery-dashboard:{dash_id}"))
        .query_async(&mut conn)
        .await
        .expect("DEL");
    let mut statuses = vec![];
    for i in 0..6 {
        let app = if i % 2 == 0 { &a } else { &b };
        statuses.push(app.get("/api/dashboard/shared-media/", Some(&dash)).await.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_show_the_gallery_and_let_curators_share_and_remove_without_javascript() {
    let w = world(Db::Sqlite).await;
    let a = w.asset("Harbour lights", "night photo", "", "location", true).await;
    let b = w.asset("Harbour boats", "", "", "vehicle", false).await;
    let theirs = w.share_ok(&w.dash2, "vehicle", b, "trending").await["id"].as_i64().expect("id");

    let dana = w.app.page_session("dash@example.com").await;
    // Signed out: sent to the login form; a plain user is refused.
    let r = w.app.get("/dashboard/gallery/", None).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(r.headers()["location"].to_str().expect("loc").starts_with("/login"));
    let user = w.app.page_session("user@example.com").await;
    assert_eq!(user.get("/dashboard/gallery/").await.status(), StatusCode::FORBIDDEN);

    // Search, then share through the form.
    let html = dana.get("/dashboard/gallery/?q=harbour").await.text().await.expect("html");
    assert!(html.contains(&format!("id=\"hit-{a}\"")) && html.contains("Harbour boats"), "{html}");
    let (a_id, b_id) = (a.to_string(), b.to_string());
    let share_form = [
        ("content_type", "location"),
        ("object_id", a_id.as_str()),
        ("caption", "Blue hour <script>alert(1)</script>"),
        ("category", "spotlight"),
        ("back", "/dashboard/gallery/?q=harbour"),
    ];
    let mut wrong = vec![("csrf_token", "wrong")];
    wrong.extend(share_form);
    let r = dana.post_form_as_is("/dashboard/gallery/share", &wrong).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = dana.post_form("/dashboard/gallery/share", &share_form).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/dashboard/gallery/?q=harbour&done=shared");
    let r = dana.post_form("/dashboard/gallery/share", &share_form).await;
    assert_eq!(r.headers()["location"], "/dashboard/gallery/?q=harbour&done=already_shared");
    let html = dana.get("/dashboard/gallery/?q=harbour&done=already_shared").await.text().await.expect("html");
    assert!(html.contains("You have already shared this media") && html.contains("In the gallery"), "{html}");
    // A back link off the dashboard is not followed.
    let mut evil = share_form;
    evil[0].1 = "vehicle";
    evil[1].1 = &b_id;
    evil[4].1 = "https://evil.example/";
    let r = dana.post_form("/dashboard/gallery/share", &evil).await;
    assert_eq!(r.headers()["location"], "/dashboard/gallery/?done=shared");

    // The public page: cards, escaped caption, categories, no addresses.
    let r = w.app.get("/gallery/", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.expect("html");
    assert!(
        html.contains("Harbour lights") && html.contains("Artist Spotlight") && html.contains("Originally by John Doe")
    );
    assert!(html.contains("Blue hour &") && !html.contains("<script>alert"), "escaped");
    assert!(!html.contains("@example.com"), "no addresses on the public page");
    assert!(html.contains("3 posts"), "{html}");
    let html = w.app.get("/gallery/?category=trending", None).await.text().await.expect("html");
    assert!(html.contains("1 post ") && html.contains("Harbour boats") && !html.contains("Harbour lights"), "{html}");
    assert_eq!(w.app.get("/gallery/?category=best", None).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(w.app.get("/gallery/?page=0", None).await.status(), StatusCode::BAD_REQUEST);

    // Remove: someone else's post is refused, your own goes.
    let r = dana.post_form(&format!("/dashboard/gallery/{theirs}/delete"), &[]).await;
    assert_eq!(r.headers()["location"], "/dashboard/gallery/?done=forbidden");
    let mine: Value = w.json("/api/dashboard/my-shared-media/", Some(&w.dash)).await;
    let first = mine["results"][0]["id"].as_i64().expect("id");
    let r = dana.post_form(&format!("/dashboard/gallery/{first}/delete"), &[]).await;
    assert_eq!(r.headers()["location"], "/dashboard/gallery/?done=deleted");
    assert_eq!(w.json("/api/dashboard/my-shared-media/", Some(&w.dash)).await["count"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_matching_most_assets_is_ranked_over_its_newest_matches() {
    let w = world(Db::Sqlite).await;
    let pool = w.app.state.store.pool();
    let mut tx = pool.begin().await.expect("tx");
    let n = vitrine::store::gallery::SEARCH_CANDIDATES + 100;
    for i in 0..n {
        sqlx::query(
            "INSERT INTO assets (id, owner_id, title, description, tags, name, mime_type, media_type, size, sha256,
                blob_key, thumb_key, width, height, duration_seconds, content_type, created_at, updated_at)
             VALUES ($1, $2, $3, '', '', 'f.pdf', 'application/pdf', 'document', 1, 'h', 'k', NULL, NULL, NULL, NULL, 'prop', 0, 0)",
        )
        .bind(1_000_000 + i)
        .bind(w.owner_id)
        .bind(if i == 0 { "Common oldest".to_string() } else { format!("Common item {i}") })
        .execute(&mut *tx)
        .await
        .expect("insert");
    }
    tx.commit().await.expect("commit");
    let v = w.json("/api/dashboard/search/?q=common", Some(&w.dash)).await;
    assert_eq!(v["results"][0]["media_count"], vitrine::store::gallery::SEARCH_CANDIDATES, "{}", v["count"]);
    assert_eq!(v["results"][0]["media_items"].as_array().map(Vec::len), Some(20));
    // The oldest match is outside the window; a narrower query still finds it.
    let v = w.json("/api/dashboard/search/?q=common%20oldest", Some(&w.dash)).await;
    assert_eq!(v["results"][0]["media_items"][0]["name"], "Common oldest");
}
