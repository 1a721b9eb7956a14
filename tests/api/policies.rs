//! The administrators' policy (SPEC §13): admins read and change it; it binds every link and file
//! request created or changed afterwards, through the API and the pages alike, on every
//! instance at the next request; existing links keep their settings.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::pages::PageSession;
use crate::helpers::redis::{pair, redis_url};
use crate::helpers::{Db, TestApp, assert_error, created, fixtures};

crate::on_both_databases!(
    admins_read_and_change_the_policy_and_bad_changes_name_their_field,
    every_field_binds_links_made_or_changed_through_the_api
);

async fn set(app: &TestApp, admin: &str, body: Value) -> Value {
    let r = app.patch_json("/api/admin/policies/", Some(admin), &body).await;
    let status = r.status();
    let text = r.text().await.expect("body");
    assert_eq!(status, StatusCode::OK, "{text}");
    serde_json::from_str(&text).expect("json")
}

/// A page form refused with 400, its page naming `word`.
async fn refused(page: &PageSession, path: &str, fields: &[(&str, &str)], word: &str) {
    let r = page.post_form(path, fields).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path} {fields:?}");
    let html = r.text().await.expect("html");
    assert!(html.contains(word), "{path} {fields:?}: {word} not in the page");
}

/// A link on `asset` made by `user` on `app`.
async fn link_on(app: &TestApp, user: &str, asset: i64, body: Value) -> reqwest::Response {
    app.post_json(&format!("/api/v3/assets/{asset}/share/"), Some(user), &body).await
}

/// The field names of a 400.
async fn fields(r: reqwest::Response) -> Vec<String> {
    let e = assert_error(r, StatusCode::BAD_REQUEST, "validation_error").await;
    e["fields"].as_object().expect("fields").keys().cloned().collect()
}

fn hours_between(a: &Value, b: &Value) -> f64 {
    let parse = |v: &Value| {
        time::OffsetDateTime::parse(v.as_str().unwrap_or(""), &time::format_description::well_known::Rfc3339)
            .expect("an RFC 3339 time")
    };
    (parse(b) - parse(a)).as_seconds_f64() / 3600.0
}

async fn admins_read_and_change_the_policy_and_bad_changes_name_their_field(db: Db) {
    let app = TestApp::on(db).await;
    let (admin, user) = app.admin_and_user().await;
    let defaults = json!({
        "allowed_share_types": ["public", "private", "protected", "time_limited", "download_limited"],
        "require_password": false,
        "default_expires_in_hours": null,
        "max_expires_in_hours": null,
        "max_downloads_limit": null,
        "file_requests_enabled": true
    });
    let got: Value = app.get("/api/admin/policies/", Some(&admin)).await.json().await.expect("json");
    assert_eq!(got, defaults);
    assert_error(app.get("/api/admin/policies/", Some(&user)).await, StatusCode::FORBIDDEN, "forbidden").await;
    assert_error(app.get("/api/admin/policies/", None).await, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    let r = app.patch_json("/api/admin/policies/", Some(&user), &json!({"require_password": true})).await;
    assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;

    let (a, adm) = (&app, admin.as_str());
    let patch = move |body: Value| async move { a.patch_json("/api/admin/policies/", Some(adm), &body).await };
    assert_eq!(fields(patch(json!({"allowed_share_types": []})).await).await, vec!["allowed_share_types"]);
    assert_eq!(
        fields(patch(json!({"allowed_share_types": ["public", "secret"]})).await).await,
        vec!["allowed_share_types"]
    );
    assert_eq!(fields(patch(json!({"default_expires_in_hours": 0})).await).await, vec!["default_expires_in_hours"]);
    assert_eq!(fields(patch(json!({"max_expires_in_hours": 0.5})).await).await, vec!["max_expires_in_hours"]);
    assert_eq!(fields(patch(json!({"max_downloads_limit": 0})).await).await, vec!["max_downloads_limit"]);
    assert_eq!(
        fields(patch(json!({"default_expires_in_hours": 48, "max_expires_in_hours": 24})).await).await,
        vec!["default_expires_in_hours"]
    );
    for bad in
        [json!({"require_password": "yes"}), json!({"max_downloads": 3}), json!({"allowed_share_types": "public"})]
    {
        assert_error(patch(bad).await, StatusCode::BAD_REQUEST, "invalid_body").await;
    }
    let r = app
        .req(reqwest::Method::PATCH, "/api/admin/policies/", Some(&admin))
        .header("content-type", "application/json")
        .body("[]")
        .send()
        .await
        .expect("patch");
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_body").await;
    let unchanged: Value = app.get("/api/admin/policies/", Some(&admin)).await.json().await.expect("json");
    assert_eq!(unchanged, defaults, "refused changes change nothing");

    let v = set(
        &app,
        &admin,
        json!({"allowed_share_types": ["protected", "public"], "require_password": true, "default_expires_in_hours": 24,
               "max_expires_in_hours": 72.5, "max_downloads_limit": 10, "file_requests_enabled": false}),
    )
    .await;
    assert_eq!(
        v,
        json!({"allowed_share_types": ["public", "protected"], "require_password": true, "default_expires_in_hours": 24.0,
               "max_expires_in_hours": 72.5, "max_downloads_limit": 10, "file_requests_enabled": false})
    );
    assert_eq!(app.get("/api/admin/policies/", Some(&admin)).await.json::<Value>().await.expect("json"), v);
    // Absent fields stay; null clears.
    let v = set(&app, &admin, json!({"max_downloads_limit": null, "require_password": false})).await;
    assert_eq!((v["max_downloads_limit"].clone(), v["require_password"].clone()), (Value::Null, json!(false)));
    assert_eq!(v["max_expires_in_hours"], 72.5);
}

async fn every_field_binds_links_made_or_changed_through_the_api(db: Db) {
    let app = TestApp::on(db).await;
    let (admin, user) = app.admin_and_user().await;
    let asset = app.upload(&user, "deck.pdf", fixtures::pdf(2)).await["id"].as_i64().expect("id");
    let collection = created(app.post_json("/api/v3/collections/", Some(&user), &json!({"title": "Deck"})).await).await;
    let collection = collection["id"].as_i64().expect("id");
    let (a, u) = (&app, user.as_str());
    let link =
        move |body: Value| async move { a.post_json(&format!("/api/v3/assets/{asset}/share/"), Some(u), &body).await };
    let collection_link = move |body: Value| async move {
        a.post_json(&format!("/api/v3/collections/{collection}/share/"), Some(u), &body).await
    };
    // Made before any policy: an open link without expiry or limit.
    let old = created(link(json!({"share_type": "public"})).await).await;
    let old_uuid = old["uuid"].as_str().expect("uuid").to_string();

    // Allowed types.
    set(&app, &admin, json!({"allowed_share_types": ["protected", "private"]})).await;
    assert_eq!(fields(link(json!({"share_type": "public"})).await).await, vec!["share_type"]);
    assert_eq!(fields(link(json!({})).await).await, vec!["share_type"], "the default type is public");
    assert_eq!(
        fields(collection_link(json!({"share_type": "time_limited", "expires_in_hours": 2})).await).await,
        vec!["share_type"]
    );
    created(link(json!({"share_type": "private"})).await).await;
    let r = app
        .patch_json(
            &format!("/api/v3/shares/{old_uuid}/"),
            Some(&user),
            &json!({"share_type": "download_limited", "max_downloads": 3}),
        )
        .await;
    assert_eq!(fields(r).await, vec!["share_type"]);
    // An existing link is not changed, and a change that leaves its type alone is allowed.
    let r = app.patch_json(&format!("/api/v3/shares/{old_uuid}/"), Some(&user), &json!({"title": "Renamed"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.expect("json");
    assert_eq!(
        (v["share_type"].as_str(), v["status"].as_str(), v["expires_at"].clone()),
        (Some("public"), Some("active"), Value::Null)
    );

    // A password on every new link: links must be protected.
    set(&app, &admin, json!({"allowed_share_types": ["public", "protected", "private"], "require_password": true}))
        .await;
    assert_eq!(fields(link(json!({"share_type": "public"})).await).await, vec!["password"]);
    assert_eq!(fields(link(json!({"share_type": "private"})).await).await, vec!["password"]);
    assert_eq!(fields(collection_link(json!({})).await).await, vec!["password"]);
    let protected = created(link(json!({"share_type": "protected", "password": "secure123"})).await).await;
    created(collection_link(json!({"share_type": "protected", "password": "secure123"})).await).await;
    let p_uuid = protected["uuid"].as_str().expect("uuid").to_string();
    let r = app.patch_json(&format!("/api/v3/shares/{p_uuid}/"), Some(&user), &json!({"share_type": "public"})).await;
    assert_eq!(fields(r).await, vec!["password"], "a change cannot drop the password");
    let r =
        app.patch_json(&format!("/api/v3/shares/{p_uuid}/"), Some(&user), &json!({"password": "another-secret"})).await;
    assert_eq!(r.status(), StatusCode::OK);

    // Expiry: the default for an omitted one, the maximum for a given one, no "never".
    set(&app, &admin, json!({"require_password": false, "default_expires_in_hours": 24, "max_expires_in_hours": 48}))
        .await;
    let v = created(link(json!({"share_type": "public"})).await).await;
    assert!((hours_between(&v["created_at"], &v["expires_at"]) - 24.0).abs() < 0.01, "{v}");
    let v = created(collection_link(json!({"share_type": "public", "expires_in_hours": 48})).await).await;
    assert!((hours_between(&v["created_at"], &v["expires_at"]) - 48.0).abs() < 0.01, "{v}");
    assert_eq!(fields(link(json!({"expires_in_hours": 49})).await).await, vec!["expires_in_hours"]);
    assert_eq!(fields(collection_link(json!({"expires_in_hours": 100})).await).await, vec!["expires_in_hours"]);
    let uuid = v["uuid"].as_str().expect("uuid");
    let r = app.patch_json(&format!("/api/v3/shares/{uuid}/"), Some(&user), &json!({"expires_in_hours": null})).await;
    assert_eq!(fields(r).await, vec!["expires_in_hours"]);
    let r = app.patch_json(&format!("/api/v3/shares/{uuid}/"), Some(&user), &json!({"expires_in_hours": 60})).await;
    assert_eq!(fields(r).await, vec!["expires_in_hours"]);
    let r = app.patch_json(&format!("/api/v3/shares/{uuid}/"), Some(&user), &json!({"expires_in_hours": 12})).await;
    assert_eq!(r.status(), StatusCode::OK);
    // Without a default, an omitted expiry takes the maximum.
    set(&app, &admin, json!({"default_expires_in_hours": null})).await;
    let v = created(link(json!({})).await).await;
    assert!((hours_between(&v["created_at"], &v["expires_at"]) - 48.0).abs() < 0.01, "{v}");

    // The highest download limit: taken by a new link that gives none, enforced when given.
    set(&app, &admin, json!({"max_expires_in_hours": null, "max_downloads_limit": 5})).await;
    let v = created(link(json!({})).await).await;
    assert_eq!((v["max_downloads"].clone(), v["expires_at"].clone()), (json!(5), Value::Null));
    assert_eq!(fields(link(json!({"max_downloads": 6})).await).await, vec!["max_downloads"]);
    assert_eq!(
        fields(collection_link(json!({"share_type": "public", "max_downloads": 50})).await).await,
        vec!["max_downloads"]
    );
    created(collection_link(json!({"share_type": "public", "max_downloads": 5})).await).await;
    let no_downloads = created(link(json!({"allow_download": false})).await).await;
    assert_eq!(no_downloads["max_downloads"], Value::Null, "no limit without downloads");
    let uuid = v["uuid"].as_str().expect("uuid");
    let r = app.patch_json(&format!("/api/v3/shares/{uuid}/"), Some(&user), &json!({"max_downloads": null})).await;
    assert_eq!(fields(r).await, vec!["max_downloads"]);
    let r = app.patch_json(&format!("/api/v3/shares/{uuid}/"), Some(&user), &json!({"max_downloads": 9})).await;
    assert_eq!(fields(r).await, vec!["max_downloads"]);
    let nd = no_downloads["uuid"].as_str().expect("uuid");
    let r = app.patch_json(&format!("/api/v3/shares/{nd}/"), Some(&user), &json!({"allow_download": true})).await;
    assert_eq!(fields(r).await, vec!["max_downloads"], "turning downloads on needs a limit");
    let r = app.patch_json(&format!("/api/v3/shares/{uuid}/"), Some(&user), &json!({"max_downloads": 2})).await;
    assert_eq!(r.status(), StatusCode::OK);

    // The old link still has no expiry and no limit, and still opens.
    let v: Value = app.get(&format!("/api/v3/shares/{old_uuid}/"), Some(&user)).await.json().await.expect("json");
    assert_eq!(
        (v["expires_at"].clone(), v["max_downloads"].clone(), v["status"].as_str()),
        (Value::Null, Value::Null, Some("active"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_binds_file_requests() {
    let app = TestApp::spawn().await;
    let (admin, user) = app.admin_and_user().await;
    let (a, u) = (&app, user.as_str());
    let make = move |body: Value| async move { a.post_json("/api/v3/file-requests/", Some(u), &body).await };
    let existing = created(make(json!({"title": "Before"})).await).await;
    let existing_uuid = existing["uuid"].as_str().expect("uuid").to_string();

    set(&app, &admin, json!({"file_requests_enabled": false})).await;
    let e = assert_error(make(json!({"title": "Send"})).await, StatusCode::FORBIDDEN, "file_requests_disabled").await;
    assert!(e["error"].as_str().is_some_and(|m| m.contains("policy")), "{e}");
    // An existing request still takes files and may be changed.
    let r = app
        .patch_json(&format!("/api/v3/file-requests/{existing_uuid}/"), Some(&user), &json!({"title": "Still"}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(fixtures::pdf(1)).file_name("a.pdf").mime_str("application/pdf").expect("mime"),
    );
    let r = app
        .client
        .post(app.url(&format!("/upload/{existing_uuid}/files")))
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(r.status(), StatusCode::CREATED);

    set(&app, &admin, json!({"file_requests_enabled": true, "require_password": true, "default_expires_in_hours": 10, "max_expires_in_hours": 20})).await;
    assert_eq!(fields(make(json!({"title": "Send"})).await).await, vec!["password"]);
    assert_eq!(fields(make(json!({"title": "Send", "password": null})).await).await, vec!["password"]);
    let v = created(make(json!({"title": "Send", "password": "secure123"})).await).await;
    assert!((hours_between(&v["created_at"], &v["expires_at"]) - 10.0).abs() < 0.01, "{v}");
    assert_eq!(
        fields(make(json!({"title": "Send", "password": "secure123", "expires_in_hours": 21})).await).await,
        vec!["expires_in_hours"]
    );
    let v2 = created(make(json!({"title": "Send", "password": "secure123", "expires_in_hours": 20})).await).await;
    assert!((hours_between(&v2["created_at"], &v2["expires_at"]) - 20.0).abs() < 0.01, "{v2}");
    let uuid = v["uuid"].as_str().expect("uuid");
    let patch =
        move |body: Value| async move { a.patch_json(&format!("/api/v3/file-requests/{uuid}/"), Some(u), &body).await };
    assert_eq!(fields(patch(json!({"password": null})).await).await, vec!["password"]);
    assert_eq!(fields(patch(json!({"expires_in_hours": null})).await).await, vec!["expires_in_hours"]);
    assert_eq!(fields(patch(json!({"expires_in_hours": 30})).await).await, vec!["expires_in_hours"]);
    assert_eq!(patch(json!({"expires_in_hours": 5, "title": "Soon"})).await.status(), StatusCode::OK);
    // The request made before keeps having no password and no expiry.
    let v: Value =
        app.get(&format!("/api/v3/file-requests/{existing_uuid}/"), Some(&user)).await.json().await.expect("json");
    assert_eq!(v["expires_at"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_forms_obey_the_policy() {
    let app = TestApp::spawn().await;
    let (admin, user) = app.admin_and_user().await;
    let asset = app.upload(&user, "deck.pdf", fixtures::pdf(2)).await["id"].as_i64().expect("id");
    let collection = created(app.post_json("/api/v3/collections/", Some(&user), &json!({"title": "Deck"})).await).await;
    let collection = collection["id"].as_i64().expect("id");
    let page = app.page_session("user@example.com").await;
    set(&app, &admin, json!({"allowed_share_types": ["protected"], "require_password": true, "max_expires_in_hours": 24, "max_downloads_limit": 3, "file_requests_enabled": false})).await;

    for path in [format!("/assets/{asset}/shares"), format!("/collections/{collection}/shares")] {
        refused(&page, &path, &[("share_type", "public"), ("allow_download", "on")], "share_type").await;
        refused(&page, &path, &[("share_type", "protected"), ("allow_download", "on")], "password").await;
        refused(
            &page,
            &path,
            &[
                ("share_type", "protected"),
                ("password", "secure123"),
                ("expires_in_hours", "25"),
                ("allow_download", "on"),
            ],
            "expires_in_hours",
        )
        .await;
        refused(
            &page,
            &path,
            &[("share_type", "protected"), ("password", "secure123"), ("max_downloads", "4"), ("allow_download", "on")],
            "max_downloads",
        )
        .await;
        let r = page
            .post_form(&path, &[("share_type", "protected"), ("password", "secure123"), ("allow_download", "on")])
            .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
    }
    let links: Value = app.get("/api/v3/shares/", Some(&user)).await.json().await.expect("json");
    for l in links["results"].as_array().expect("results") {
        assert_eq!((l["share_type"].as_str(), l["max_downloads"].as_i64()), (Some("protected"), Some(3)), "{l}");
        assert!((hours_between(&l["created_at"], &l["expires_at"]) - 24.0).abs() < 0.01, "{l}");
    }

    // File requests are off: the owner's form says so.
    let r = page.post_form("/file-requests", &[("title", "Send"), ("password", "secure123")]).await;
    assert!(r.status().is_client_error());
    assert!(r.text().await.expect("html").contains("turned off"));
    set(&app, &admin, json!({"file_requests_enabled": true})).await;
    let r = page.post_form("/file-requests", &[("title", "Send")]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.expect("html").contains("password"));
    let r = page.post_form("/file-requests", &[("title", "Send"), ("password", "secure123")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_page_shows_and_saves_the_policy() {
    let app = TestApp::spawn().await;
    let (admin, _user) = app.admin_and_user().await;
    let page = app.page_session("admin@example.com").await;
    let r = page.get("/admin/policies").await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.expect("html");
    assert!(
        html.contains("name=\"type_time_limited\" value=\"on\" checked") && html.contains("id=\"policy-form\""),
        "{html}"
    );
    assert!(page.get("/").await.text().await.expect("html").contains("href=\"/admin/policies\""));

    let r = page
        .post_form(
            "/admin/policies",
            &[
                ("type_public", "on"),
                ("type_protected", "on"),
                ("require_password", "on"),
                ("default_expires_in_hours", "12"),
                ("max_expires_in_hours", "36"),
                ("max_downloads_limit", ""),
                ("file_requests_enabled", "on"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.expect("html").contains("id=\"saved\""));
    let v: Value = app.get("/api/admin/policies/", Some(&admin)).await.json().await.expect("json");
    assert_eq!(
        v,
        json!({"allowed_share_types": ["public", "protected"], "require_password": true, "default_expires_in_hours": 12.0,
               "max_expires_in_hours": 36.0, "max_downloads_limit": null, "file_requests_enabled": true})
    );

    // Refused forms change nothing and say why.
    for (fields, word) in [
        (vec![("type_public", "on"), ("max_expires_in_hours", "soon")], "max_expires_in_hours"),
        (vec![("max_expires_in_hours", "10")], "allowed_share_types"),
        (
            vec![("type_public", "on"), ("default_expires_in_hours", "20"), ("max_expires_in_hours", "10")],
            "default_expires_in_hours",
        ),
    ] {
        let r = page.post_form("/admin/policies", &fields).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(r.text().await.expect("html").contains(word), "{word}");
    }
    let r = page.post_form_as_is("/admin/policies", &[("type_public", "on")]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let after: Value = app.get("/api/admin/policies/", Some(&admin)).await.json().await.expect("json");
    assert_eq!(after, v);

    // Not an admin: refused; signed out: to the login form.
    let user_page = app.page_session("user@example.com").await;
    assert_eq!(user_page.get("/admin/policies").await.status(), StatusCode::FORBIDDEN);
    let r = user_page.post_form("/admin/policies", &[("type_public", "on")]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(app.client.get(app.url("/admin/policies")).send().await.expect("get").status().is_redirection());
    let unchanged: Value = app.get("/api/admin/policies/", Some(&admin)).await.json().await.expect("json");
    assert_eq!(unchanged, v);
}

/// A change on one instance binds the other at its next request (the policy is not cached).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_binds_both_instances_at_the_next_request() {
    let Some(bus) = redis_url().await else { return };
    let (a, b) = pair(&bus).await;
    let (admin, _) = a.register("admin@example.com", "Ada Admin").await;
    let (user, _) = a.register("user@example.com", "Uma User").await;
    let asset = a.upload(&user, "deck.pdf", fixtures::pdf(1)).await["id"].as_i64().expect("id");

    created(link_on(&b, &user, asset, json!({"share_type": "public"})).await).await;
    set(&a, &admin, json!({"allowed_share_types": ["protected"]})).await;
    assert_eq!(fields(link_on(&b, &user, asset, json!({"share_type": "public"})).await).await, vec!["share_type"]);
    let v: Value = b.get("/api/admin/policies/", Some(&admin)).await.json().await.expect("json");
    assert_eq!(v["allowed_share_types"], json!(["protected"]));
    set(&b, &admin, json!({"allowed_share_types": ["public"], "file_requests_enabled": false})).await;
    created(link_on(&a, &user, asset, json!({"share_type": "public"})).await).await;
    let r = a.post_json("/api/v3/file-requests/", Some(&user), &json!({"title": "Send"})).await;
    assert_error(r, StatusCode::FORBIDDEN, "file_requests_disabled").await;
}
