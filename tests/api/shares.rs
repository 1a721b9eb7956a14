//! Share links: every type and option, every failure mode, exact download limits under
//! concurrency on both databases, QR codes decoded by a real decoder, embed and oEmbed.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::pages::{cookie_pair, set_cookie};
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

/// Owner token, asset id.
async fn owner_with_pdf(app: &TestApp) -> (String, i64) {
    let (token, _) = app.register("owner@example.com", "Olive Owner").await;
    let a = app.upload(&token, "plan.pdf", fixtures::pdf(4000)).await;
    (token, a["id"].as_i64().expect("id"))
}

async fn create(app: &TestApp, token: &str, asset: i64, body: Value) -> Value {
    created(app.post_json(&format!("/api/v3/assets/{asset}/share/"), Some(token), &body).await).await
}

fn path_of(share: &Value) -> String {
    let url = share["share_url"].as_str().expect("url");
    url[url.find("/share/").expect("path")..].to_string()
}

async fn get_json(app: &TestApp, path: &str, bearer: Option<&str>) -> reqwest::Response {
    app.req(reqwest::Method::GET, path, bearer).header("accept", "application/json").send().await.expect("get")
}

crate::on_both_databases!(
    exactly_n_downloads_succeed_under_200_concurrent_requests,
    the_create_response_matches_the_seed_field_for_field
);

async fn the_create_response_matches_the_seed_field_for_field(db: Db) {
    let app = app_on(db).await;
    let (token, asset) = owner_with_pdf(&app).await;
    let s = create(
        &app,
        &token,
        asset,
        json!({"share_type": "protected", "password": "secure123", "allow_download": true, "allow_preview": true,
               "allow_comments": true, "expires_in_hours": 168, "max_downloads": 50, "title": "Project Proposal",
               "description": "Q1 project proposal for review"}),
    )
    .await;
    for k in
        ["id", "uuid", "share_url", "qr_code_data", "social_links", "embed_code", "created_at", "expires_at", "status"]
    {
        assert!(s.get(k).is_some(), "has {k}");
    }
    assert!(s.get("password").is_none() && s.get("password_hash").is_none());
    let uuid = s["uuid"].as_str().expect("uuid");
    assert_eq!(uuid::Uuid::parse_str(uuid).map(|u| u.get_version_num()).ok(), Some(4));
    assert_eq!(s["share_url"], format!("{}/share/{uuid}/", app.base));
    assert!(s["qr_code_data"].as_str().is_some_and(|q| q.starts_with("data:image/png;base64,")));
    let links = s["social_links"].as_object().expect("links");
    for p in ["facebook", "twitter", "linkedin", "whatsapp", "telegram", "reddit"] {
        assert!(links.get(p).and_then(Value::as_str).is_some_and(|l| l.starts_with("https://")), "{p}");
    }
    assert_eq!(
        s["embed_code"],
        format!(
            "<iframe src='{}/embed/{uuid}/' width='600' height='400' frameborder='0' allowfullscreen></iframe>",
            app.base
        )
    );
    assert_eq!(
        (s["status"].as_str(), s["max_downloads"].as_i64(), s["downloads_remaining"].as_i64()),
        (Some("active"), Some(50), Some(50))
    );
    assert_eq!((s["allow_comments"].as_bool(), s["share_type"].as_str()), (Some(true), Some("protected")));
    // created_at + 168 h = expires_at
    let parse = |v: &Value| {
        time::OffsetDateTime::parse(v.as_str().unwrap_or(""), &time::format_description::well_known::Rfc3339)
            .expect("date")
    };
    assert_eq!((parse(&s["expires_at"]) - parse(&s["created_at"])).whole_hours(), 168);
    // The list shows it with counts.
    let list: Value = app.get("/api/v3/shares/", Some(&token)).await.json().await.expect("json");
    assert_eq!(list["count"], 1);
    assert_eq!(list["results"][0]["view_count"], 0);
}

async fn exactly_n_downloads_succeed_under_200_concurrent_requests(db: Db) {
    let app = app_on(db).await;
    let (token, asset) = owner_with_pdf(&app).await;
    let s = create(&app, &token, asset, json!({"share_type": "download_limited", "max_downloads": 5})).await;
    let url = app.url(&format!("{}download", path_of(&s)));
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("client");
    let mut tasks = vec![];
    for i in 0..200 {
        let c = client.clone();
        let u = url.clone();
        tasks.push(tokio::spawn(async move {
            let r = c.get(&u).header("user-agent", format!("Mozilla/5.0 tester-{i}")).send().await.expect("send");
            let status = r.status();
            let body = r.bytes().await.map(|b| b.len()).unwrap_or(0);
            (status, body)
        }));
    }
    let mut ok = 0;
    let mut gone = 0;
    for t in tasks {
        match t.await.expect("join") {
            (StatusCode::OK, n) => {
                assert_eq!(n, fixtures::pdf(4000).len());
                ok += 1;
            }
            (StatusCode::GONE, _) => gone += 1,
            (other, _) => panic!("unexpected {other}"),
        }
    }
    assert_eq!((ok, gone), (5, 195));
    let share: Value = app
        .get(&format!("/api/v3/shares/{}/", s["uuid"].as_str().expect("uuid")), Some(&token))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        (share["download_count"].as_i64(), share["status"].as_str(), share["downloads_remaining"].as_i64()),
        (Some(5), Some("exhausted"), Some(0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_link_shows_the_file_and_counts_views_and_downloads() {
    let app = app_on(Db::Sqlite).await;
    let (token, asset) = owner_with_pdf(&app).await;
    let s = create(
        &app,
        &token,
        asset,
        json!({"share_type": "public", "title": "Plan <b>v2</b>", "description": "For review"}),
    )
    .await;
    let path = path_of(&s);
    let html = app.get(&path, None).await;
    assert_eq!(html.status(), StatusCode::OK);
    assert!(html.headers()["content-security-policy"].to_str().unwrap_or("").contains("frame-ancestors 'none'"));
    let body = html.text().await.expect("html");
    assert!(
        body.contains("Plan &#60;b&#62;v2&#60;/b&#62;") || body.contains("Plan &lt;b&gt;v2&lt;/b&gt;"),
        "title escaped"
    );
    assert!(body.contains("property=\"og:title\"") && body.contains("name=\"twitter:card\""));
    assert!(body.contains("id=\"download\"") && body.contains("id=\"preview-pdf\""));
    let v: Value = get_json(&app, &path, None).await.json().await.expect("json");
    assert_eq!(
        (v["file"]["name"].as_str(), v["file"]["mime_type"].as_str()),
        (Some("plan.pdf"), Some("application/pdf"))
    );
    let dl = app.client.get(v["download_url"].as_str().expect("dl")).send().await.expect("dl");
    assert_eq!(dl.status(), StatusCode::OK);
    assert!(dl.headers()["content-disposition"].to_str().unwrap_or("").starts_with("attachment"));
    let pv = app.client.get(v["preview_url"].as_str().expect("pv")).send().await.expect("pv");
    assert!(pv.headers()["content-disposition"].to_str().unwrap_or("").starts_with("inline"));
    vitrine::jobs::view_counts::run_once(&app.state).await.expect("flush views");
    let share: Value = app
        .get(&format!("/api/v3/shares/{}/", s["uuid"].as_str().expect("uuid")), Some(&token))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        (share["view_count"].as_i64(), share["download_count"].as_i64()),
        (Some(2), Some(1)),
        "preview never counts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_revoked_and_expired_links_say_which() {
    let app = app_on(Db::Sqlite).await;
    let (token, asset) = owner_with_pdf(&app).await;
    let r = app.get(&format!("/share/{}/", uuid::Uuid::new_v4()), None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_error(get_json(&app, "/share/not-a-uuid/", None).await, StatusCode::NOT_FOUND, "not_found").await;
    let s = create(&app, &token, asset, json!({})).await;
    let uuid = s["uuid"].as_str().expect("uuid").to_string();
    // Seen once (and cached), then revoked: the very next request already says so.
    assert_eq!(app.get(&path_of(&s), None).await.status(), StatusCode::OK);
    assert_eq!(app.delete(&format!("/api/v3/shares/{uuid}/"), Some(&token)).await.status(), StatusCode::NO_CONTENT);
    let r = app.get(&path_of(&s), None).await;
    assert_eq!(r.status(), StatusCode::GONE);
    assert!(r.text().await.expect("html").contains("revoked"));
    assert_error(get_json(&app, &path_of(&s), None).await, StatusCode::GONE, "share_revoked").await;
    let listed: Value = app.get(&format!("/api/v3/shares/{uuid}/"), Some(&token)).await.json().await.expect("json");
    assert_eq!(listed["status"], "revoked");
    // Expired, at the boundary: the app's clock moves on by the link's hour.
    let s2 = create(&app, &token, asset, json!({"share_type": "time_limited", "expires_in_hours": 1})).await;
    app.advance(std::time::Duration::from_secs(3600));
    let r = app.get(&path_of(&s2), None).await;
    assert_eq!(r.status(), StatusCode::GONE);
    assert!(r.text().await.expect("html").contains("expired"));
    let dl = app.get(&format!("{}download", path_of(&s2)), None).await;
    assert_error(dl, StatusCode::GONE, "share_expired").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protected_link_needs_its_password_and_locks_out_after_five_wrong_ones() {
    let app = app_on(Db::Sqlite).await;
    let (token, asset) = owner_with_pdf(&app).await;
    let s = create(
        &app,
        &token,
        asset,
        json!({"share_type": "protected", "password": "secure123", "max_downloads": 3, "expires_in_hours": 2}),
    )
    .await;
    let path = path_of(&s);
    let uuid = s["uuid"].as_str().expect("uuid");
    // Nothing is revealed before unlocking.
    let r = app.get(&path, None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let html = r.text().await.expect("html");
    assert!(html.contains("id=\"share-password\"") && !html.contains("plan.pdf") && !html.contains("og:image"));
    assert_error(get_json(&app, &path, None).await, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    assert_error(app.get(&format!("{path}download"), None).await, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    assert_error(app.get(&format!("{path}preview"), None).await, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    // A token of another link does not open this one.
    let other = create(&app, &token, asset, json!({"share_type": "protected", "password": "another123"})).await;
    let r = app
        .post_json(
            &format!("/api/v3/shares/{}/unlock/", other["uuid"].as_str().expect("u")),
            None,
            &json!({"password": "another123"}),
        )
        .await;
    let other_token: Value = r.json().await.expect("json");
    assert_error(
        get_json(&app, &path, other_token["access_token"].as_str()).await,
        StatusCode::UNAUTHORIZED,
        "not_authenticated",
    )
    .await;
    // Wrong passwords: four ordinary refusals, the fifth too, then 429.
    for _ in 0..5 {
        let r =
            app.post_json(&format!("/api/v3/shares/{uuid}/unlock/"), None, &json!({"password": "wrong-guess"})).await;
        assert_error(r, StatusCode::FORBIDDEN, "wrong_password").await;
    }
    let r = app.post_json(&format!("/api/v3/shares/{uuid}/unlock/"), None, &json!({"password": "secure123"})).await;
    assert!(r.headers().get("retry-after").is_some());
    assert_error(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // Another link is not locked.
    let r = app
        .post_json(
            &format!("/api/v3/shares/{}/unlock/", other["uuid"].as_str().expect("u")),
            None,
            &json!({"password": "another123"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    // Once the lockout is over (cleared here), the right password gives a token for this link.
    let key = vitrine::limits::share_password_key("127.0.0.1".parse().expect("ip"), s["id"].as_i64().expect("id"));
    app.state.limits.share_password.success(&key).await;
    let r = app.post_json(&format!("/api/v3/shares/{uuid}/unlock/"), None, &json!({"password": "secure123"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let t: Value = r.json().await.expect("json");
    let link_token = t["access_token"].as_str().expect("token");
    assert!(t["expires_in"].as_u64().is_some_and(|e| e <= 2 * 3600));
    assert_eq!(get_json(&app, &path, Some(link_token)).await.status(), StatusCode::OK);
    assert_eq!(app.get(&format!("{path}?token={link_token}"), None).await.status(), StatusCode::OK);
    assert_eq!(app.get(&format!("{path}download?token={link_token}"), None).await.status(), StatusCode::OK);
    // A link token is not an account token.
    assert_error(app.get("/api/auth/me/", Some(link_token)).await, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    assert_error(
        app.post_json(&format!("/api/v3/shares/{uuid}/unlock/"), None, &json!({})).await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_form_sets_a_cookie_scoped_to_the_link() {
    let app = app_on(Db::Sqlite).await;
    let (token, asset) = owner_with_pdf(&app).await;
    let s = create(&app, &token, asset, json!({"share_type": "protected", "password": "secure123"})).await;
    let path = path_of(&s);
    let (visitor, _, _) = app.visit(&path).await;
    let unlock = format!("{path}unlock");
    let wrong = visitor.post_form(&unlock, &[("password", "nope nope")]).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let html = wrong.text().await.expect("html");
    assert!(html.contains("id=\"unlock-error\"") && html.contains("id=\"share-password\""));
    let ok = visitor.post_form(&unlock, &[("password", "secure123")]).await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    let cookie = set_cookie(&ok, "vitrine_share").expect("cookie");
    let uuid = s["uuid"].as_str().expect("uuid");
    assert!(cookie.contains(&format!("Path=/share/{uuid}")) && cookie.contains("HttpOnly"), "{cookie}");
    let page = app.client.get(app.url(&path)).header("cookie", cookie_pair(&cookie)).send().await.expect("get");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.expect("html").contains("plan.pdf"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_form_answers_each_refusal_with_its_own_page() {
    let app = app_on(Db::Sqlite).await;
    let (token, asset) = owner_with_pdf(&app).await;
    let s = create(&app, &token, asset, json!({"share_type": "protected", "password": "secure123"})).await;
    let r = app.get(&path_of(&s), None).await;
    let csrf_cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("vitrine_csrf="))
        .map(|c| c.split(';').next().unwrap_or("").to_string())
        .expect("csrf");
    let csrf = csrf_cookie.trim_start_matches("vitrine_csrf=").to_string();
    let post = |path: String, password: &'static str| {
        app.client
            .post(app.url(&format!("{path}unlock")))
            .header("cookie", &csrf_cookie)
            .form(&[("password", password), ("csrf_token", csrf.as_str())])
            .send()
    };
    // Five wrong passwords are each the form again; then the form says how long to wait.
    for _ in 0..5 {
        assert_eq!(post(path_of(&s), "nope nope").await.expect("post").status(), StatusCode::UNAUTHORIZED);
    }
    let r = post(path_of(&s), "secure123").await.expect("post");
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().get("retry-after").is_some());
    let html = r.text().await.expect("html");
    assert!(html.contains("Too many attempts") && html.contains("id=\"share-password\""), "{html}");
    // Unknown: the not-found page; no password to check: the JSON error.
    let r = post(format!("/share/{}/", uuid::Uuid::new_v4()), "secure123").await.expect("post");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.text().await.expect("html").contains("Link not found"));
    let public = create(&app, &token, asset, json!({})).await;
    assert_error(post(path_of(&public), "secure123").await.expect("post"), StatusCode::BAD_REQUEST, "not_protected")
        .await;
    // Revoked and expired: the gone page says which.
    let revoked = create(&app, &token, asset, json!({"share_type": "protected", "password": "secure123"})).await;
    let uuid = revoked["uuid"].as_str().expect("uuid");
    assert_eq!(app.delete(&format!("/api/v3/shares/{uuid}/"), Some(&token)).await.status(), StatusCode::NO_CONTENT);
    let r = post(path_of(&revoked), "secure123").await.expect("post");
    assert_eq!(r.status(), StatusCode::GONE);
    assert!(r.text().await.expect("html").contains("revoked"));
    let expired =
        create(&app, &token, asset, json!({"share_type": "protected", "password": "secure123", "expires_in_hours": 1}))
            .await;
    app.advance(std::time::Duration::from_secs(3601));
    let r = post(path_of(&expired), "secure123").await.expect("post");
    assert_eq!(r.status(), StatusCode::GONE);
    assert!(r.text().await.expect("html").contains("expired"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_link_needs_an_allowed_account() {
    let app = app_on(Db::Sqlite).await;
    let (owner, asset) = owner_with_pdf(&app).await;
    let (friend, _) = app.register("friend@example.com", "Fay").await;
    let (stranger, _) = app.register("stranger@example.com", "Stan").await;
    let s =
        create(&app, &owner, asset, json!({"share_type": "private", "allowed_emails": ["Friend@Example.com"]})).await;
    assert_eq!(s["allowed_emails"], json!(["friend@example.com"]));
    let path = path_of(&s);
    let r = app.get(&path, None).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], format!("/login?next={path}"));
    assert_error(get_json(&app, &path, None).await, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    assert_error(get_json(&app, &path, Some(&stranger)).await, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(get_json(&app, &path, Some(&friend)).await.status(), StatusCode::OK);
    assert_eq!(get_json(&app, &path, Some(&owner)).await.status(), StatusCode::OK);
    // Without allowed_emails any signed-in account may open it.
    let open = create(&app, &owner, asset, json!({"share_type": "private"})).await;
    assert_eq!(get_json(&app, &path_of(&open), Some(&stranger)).await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_settings_get_400_with_fields_and_wrong_owners_get_404() {
    let app = app_on(Db::Sqlite).await;
    let (owner, asset) = owner_with_pdf(&app).await;
    let (other, _) = app.register("other@example.com", "Otto").await;
    for (body, field) in [
        (json!({"share_type": "protected"}), "password"),
        (json!({"share_type": "protected", "password": "short"}), "password"),
        (json!({"share_type": "public", "password": "long enough"}), "password"),
        (json!({"share_type": "time_limited"}), "expires_in_hours"),
        (json!({"share_type": "download_limited"}), "max_downloads"),
        (json!({"expires_in_hours": 0}), "expires_in_hours"),
        (json!({"expires_in_hours": 0.001}), "expires_in_hours"),
        (json!({"max_downloads": -3}), "max_downloads"),
        (json!({"allowed_emails": ["a@b.co"]}), "allowed_emails"),
        (json!({"share_type": "nope"}), "share_type"),
    ] {
        let r = app.post_json(&format!("/api/v3/assets/{asset}/share/"), Some(&owner), &body).await;
        let e = assert_error(r, StatusCode::BAD_REQUEST, "validation_error").await;
        assert!(e["fields"][field].is_string(), "{body} -> {e}");
    }
    assert_error(
        app.post_json(&format!("/api/v3/assets/{asset}/share/"), Some(&owner), &json!({"bogus": 1})).await,
        StatusCode::BAD_REQUEST,
        "invalid_body",
    )
    .await;
    assert_error(
        app.post_json(&format!("/api/v3/assets/{asset}/share/"), Some(&other), &json!({})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(
        app.post_json(&format!("/api/v3/assets/{asset}/share/"), None, &json!({})).await,
        StatusCode::UNAUTHORIZED,
        "not_authenticated",
    )
    .await;
    assert_error(
        app.post_json("/api/v3/assets/999/share/", Some(&owner), &json!({})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let s = create(&app, &owner, asset, json!({})).await;
    let u = s["uuid"].as_str().expect("uuid");
    assert_error(app.get(&format!("/api/v3/shares/{u}/"), Some(&other)).await, StatusCode::NOT_FOUND, "not_found")
        .await;
    assert_error(
        app.patch_json(&format!("/api/v3/shares/{u}/"), Some(&other), &json!({"title": "x"})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(app.delete(&format!("/api/v3/shares/{u}/"), Some(&other)).await, StatusCode::NOT_FOUND, "not_found")
        .await;
    let theirs: Value = app.get("/api/v3/shares/", Some(&other)).await.json().await.expect("json");
    assert_eq!(theirs["count"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_can_be_changed_and_limits_cleared() {
    let app = app_on(Db::Sqlite).await;
    let (owner, asset) = owner_with_pdf(&app).await;
    let s = create(&app, &owner, asset, json!({"max_downloads": 1, "expires_in_hours": 1})).await;
    let u = s["uuid"].as_str().expect("uuid");
    let dl = format!("{}download", path_of(&s));
    // Read to the end: a download dropped before its first byte went out is refunded.
    let first = app.get(&dl, None).await;
    assert_eq!(first.status(), StatusCode::OK);
    first.bytes().await.expect("the file");
    assert_error(app.get(&dl, None).await, StatusCode::GONE, "share_exhausted").await;
    let r = app
        .patch_json(
            &format!("/api/v3/shares/{u}/"),
            Some(&owner),
            &json!({"max_downloads": null, "expires_in_hours": null, "title": "Renamed"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.expect("json");
    assert_eq!(
        (v["max_downloads"].clone(), v["expires_at"].clone(), v["status"].as_str(), v["title"].as_str()),
        (Value::Null, Value::Null, Some("active"), Some("Renamed"))
    );
    assert_eq!(app.get(&dl, None).await.status(), StatusCode::OK);
    // Becoming protected needs a password; then the old open URL asks for it.
    let e = assert_error(
        app.patch_json(&format!("/api/v3/shares/{u}/"), Some(&owner), &json!({"share_type": "protected"})).await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    )
    .await;
    assert!(e["fields"]["password"].is_string());
    let r = app
        .patch_json(
            &format!("/api/v3/shares/{u}/"),
            Some(&owner),
            &json!({"share_type": "protected", "password": "new-secret-1"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.get(&path_of(&s), None).await.status(), StatusCode::UNAUTHORIZED);
    // Downloads off.
    app.patch_json(
        &format!("/api/v3/shares/{u}/"),
        Some(&owner),
        &json!({"share_type": "public", "allow_download": false}),
    )
    .await;
    assert_error(app.get(&dl, None).await, StatusCode::FORBIDDEN, "download_not_allowed").await;
    // A revoked link cannot be changed.
    app.delete(&format!("/api/v3/shares/{u}/"), Some(&owner)).await;
    assert_error(
        app.patch_json(&format!("/api/v3/shares/{u}/"), Some(&owner), &json!({"title": "x"})).await,
        StatusCode::GONE,
        "share_revoked",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_bots_prefetches_and_resumed_ranges_never_count() {
    let app = app_on(Db::Sqlite).await;
    let (owner, asset) = owner_with_pdf(&app).await;
    let s = create(&app, &owner, asset, json!({"max_downloads": 1})).await;
    let dl = app.url(&format!("{}download", path_of(&s)));
    let ua = "Mozilla/5.0 (X11; Linux x86_64) Chrome/120";
    assert_eq!(app.client.head(&dl).header("user-agent", ua).send().await.expect("head").status(), StatusCode::OK);
    let bot = app.client.get(&dl).header("user-agent", "facebookexternalhit/1.1").send().await.expect("bot");
    assert_error(bot, StatusCode::FORBIDDEN, "not_a_download").await;
    let pre =
        app.client.get(&dl).header("user-agent", ua).header("sec-purpose", "prefetch").send().await.expect("prefetch");
    assert_error(pre, StatusCode::FORBIDDEN, "not_a_download").await;
    // The one counted download, then resumed with ranges by the same visitor, after exhaustion.
    let first = app.client.get(&dl).header("user-agent", ua).header("range", "bytes=0-999").send().await.expect("get");
    assert_eq!(first.status(), StatusCode::PARTIAL_CONTENT);
    let rest = app.client.get(&dl).header("user-agent", ua).header("range", "bytes=1000-").send().await.expect("get");
    assert_eq!(rest.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(rest.bytes().await.expect("bytes").len(), fixtures::pdf(4000).len() - 1000);
    // Another visitor, or the same one without Range, is refused.
    let other = app
        .client
        .get(&dl)
        .header("user-agent", "Mozilla/5.0 Firefox/120")
        .header("range", "bytes=1000-")
        .send()
        .await
        .expect("get");
    assert_error(other, StatusCode::GONE, "share_exhausted").await;
    assert_error(
        app.client.get(&dl).header("user-agent", ua).send().await.expect("get"),
        StatusCode::GONE,
        "share_exhausted",
    )
    .await;
    let share: Value = app
        .get(&format!("/api/v3/shares/{}/", s["uuid"].as_str().expect("u")), Some(&owner))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(share["download_count"], 1);
    // Bots see the page but are not counted as views.
    app.client.get(app.url(&path_of(&s))).header("user-agent", "Twitterbot/1.0").send().await.expect("bot view");
    vitrine::jobs::view_counts::run_once(&app.state).await.expect("flush views");
    vitrine::jobs::view_counts::run_once(&app.state).await.expect("flush views");
    let share: Value = app
        .get(&format!("/api/v3/shares/{}/", s["uuid"].as_str().expect("u")), Some(&owner))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(share["view_count"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_transfer_refunds_its_download() {
    let app = app_on(Db::Sqlite).await;
    let (owner, asset) = owner_with_pdf(&app).await;
    let s = create(&app, &owner, asset, json!({"max_downloads": 1})).await;
    let dl = format!("{}download", path_of(&s));
    // An unsatisfiable range fails before a byte is sent.
    let r = app.req(reqwest::Method::GET, &dl, None).header("range", "bytes=99999-").send().await.expect("get");
    assert_error(r, StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable").await;
    assert_eq!(app.get(&dl, None).await.status(), StatusCode::OK, "the download was given back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn share_access_and_creation_are_rate_limited() {
    let app = TestApp::spawn_with(Spawn {
        tweak: Box::new(|c| {
            c.share_access_rate_per_ip_per_minute = 3;
            c.share_create_rate_per_user_per_hour = 2;
        }),
        ..Default::default()
    })
    .await;
    let (owner, asset) = owner_with_pdf(&app).await;
    let s = create(&app, &owner, asset, json!({})).await;
    create(&app, &owner, asset, json!({})).await;
    let r = app.post_json(&format!("/api/v3/assets/{asset}/share/"), Some(&owner), &json!({})).await;
    assert_error(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    let dl = format!("{}download", path_of(&s));
    for _ in 0..3 {
        assert_eq!(app.get(&dl, None).await.status(), StatusCode::OK);
    }
    assert_error(app.get(&dl, None).await, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_codes_decode_to_the_share_url() {
    let app = app_on(Db::Sqlite).await;
    let (owner, asset) = owner_with_pdf(&app).await;
    let s = create(&app, &owner, asset, json!({})).await;
    let decode = |png: &[u8]| -> String {
        let img = image::load_from_memory(png).expect("png").to_luma8();
        let mut prepared = rqrr::PreparedImage::prepare(img);
        let grids = prepared.detect_grids();
        assert_eq!(grids.len(), 1);
        grids[0].decode().expect("decodes").1
    };
    use base64::Engine;
    let data = s["qr_code_data"].as_str().expect("qr").trim_start_matches("data:image/png;base64,");
    let png = base64::engine::general_purpose::STANDARD.decode(data).expect("b64");
    assert_eq!(decode(&png), s["share_url"].as_str().expect("url"));
    let r = app.get(&format!("{}qr.png?size=512", path_of(&s)), None).await;
    assert_eq!(r.headers()["content-type"], "image/png");
    let bytes = r.bytes().await.expect("png");
    let img = image::load_from_memory(&bytes).expect("png");
    assert_eq!((img.width(), img.height()), (512, 512));
    assert_eq!(decode(&bytes), s["share_url"].as_str().expect("url"));
    let svg = app.get(&format!("{}qr.svg", path_of(&s)), None).await.text().await.expect("svg");
    assert!(svg.contains("<svg"));
    for bad in ["63", "2049", "abc", "-5"] {
        assert_error(
            app.get(&format!("{}qr.png?size={bad}", path_of(&s)), None).await,
            StatusCode::BAD_REQUEST,
            "validation_error",
        )
        .await;
    }
    assert_error(
        app.get(&format!("/share/{}/qr.png", uuid::Uuid::new_v4()), None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embed_page_may_be_framed_and_oembed_describes_it() {
    let app = app_on(Db::Sqlite).await;
    let (owner, _) = owner_with_pdf(&app).await;
    let img = app.upload(&owner, "photo.png", fixtures::png(800, 400)).await;
    let s = create(&app, &owner, img["id"].as_i64().expect("id"), json!({"title": "Photo"})).await;
    let uuid = s["uuid"].as_str().expect("uuid");
    let r = app.get(&format!("/embed/{uuid}/"), None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-security-policy"].to_str().unwrap_or("").contains("frame-ancestors *"));
    assert!(r.headers().get("x-frame-options").is_none());
    assert!(r.text().await.expect("html").contains(&format!("/share/{uuid}/preview")));
    let page = app.get(&path_of(&s), None).await.text().await.expect("html");
    assert!(
        page.contains("og:image") && page.contains("summary_large_image") && page.contains("application/json+oembed")
    );
    let o: Value = app
        .get(
            &format!(
                "/oembed?url={}&format=json&maxwidth=300",
                vitrine::domain::shares::encode(s["share_url"].as_str().expect("url"))
            ),
            None,
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        (o["version"].as_str(), o["type"].as_str(), o["width"].as_u64(), o["title"].as_str()),
        (Some("1.0"), Some("rich"), Some(300), Some("Photo"))
    );
    assert!(o["html"].as_str().is_some_and(|h| h.contains(&format!("/embed/{uuid}/")) && h.contains("width='300'")));
    assert_eq!((o["thumbnail_width"].as_i64(), o["thumbnail_height"].as_i64()), (Some(320), Some(160)));
    let thumb = app.client.get(o["thumbnail_url"].as_str().expect("thumb")).send().await.expect("thumb");
    assert_eq!(thumb.status(), StatusCode::OK);
    assert_error(app.get("/oembed?format=json", None).await, StatusCode::BAD_REQUEST, "validation_error").await;
    assert_error(
        app.get(&format!("/oembed?url={}/share/{}/", app.base, uuid::Uuid::new_v4()), None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(
        app.get(&format!("/oembed?url={}&format=xml", s["share_url"].as_str().expect("u")), None).await.status(),
        StatusCode::NOT_IMPLEMENTED
    );
    let p = create(
        &app,
        &owner,
        img["id"].as_i64().expect("id"),
        json!({"share_type": "protected", "password": "secure123"}),
    )
    .await;
    assert_error(
        app.get(&format!("/oembed?url={}", p["share_url"].as_str().expect("u")), None).await,
        StatusCode::UNAUTHORIZED,
        "not_authenticated",
    )
    .await;
    let page = app.get(&path_of(&p), None).await.text().await.expect("html");
    assert!(!page.contains("og:image") && !page.contains("Photo"), "protected links reveal nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_asset_deletes_its_links() {
    let app = app_on(Db::Sqlite).await;
    let (owner, asset) = owner_with_pdf(&app).await;
    let s = create(&app, &owner, asset, json!({})).await;
    app.delete(&format!("/api/v3/assets/{asset}/"), Some(&owner)).await;
    assert_eq!(app.get(&path_of(&s), None).await.status(), StatusCode::NOT_FOUND);
    let list: Value = app.get("/api/v3/shares/", Some(&owner)).await.json().await.expect("json");
    assert_eq!(list["count"], 0);
}
