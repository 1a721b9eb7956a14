//! One authentication rule for the API (SPEC §0, issue 22 part 5): a Bearer token (JWT or `vtr_`)
//! always; the page's session cookie on any method for same-origin requests, with the page's CSRF
//! token in `X-CSRF-Token` on state-changing ones; the cookie never counts for another origin.
//! Checked on a sample of routes of every family, chat upload and chat files included.

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};

use crate::helpers::pages::PageSession;
use crate::helpers::{TestApp, assert_error, created, fixtures};

const EVIL: &str = "https://evil.example";

/// What a request carries besides its credentials.
enum Body {
    Empty,
    Json(Value),
    /// Multipart: text fields, then `file` with a name and bytes.
    File(Vec<(&'static str, String)>, &'static str, Vec<u8>),
    /// A tus creation of `Upload-Length` bytes.
    TusCreate(u64),
}

fn with_body(rb: RequestBuilder, body: Body) -> RequestBuilder {
    match body {
        Body::Empty => rb,
        Body::Json(v) => rb.json(&v),
        Body::File(fields, name, bytes) => {
            let mut form = reqwest::multipart::Form::new();
            for (k, v) in fields {
                form = form.text(k, v);
            }
            rb.multipart(form.part("file", reqwest::multipart::Part::bytes(bytes).file_name(name)))
        }
        Body::TusCreate(len) => rb
            .header("tus-resumable", "1.0.0")
            .header("upload-length", len.to_string())
            .header("upload-metadata", "filename aGVsbG8udHh0"),
    }
}

/// A state-changing call: its path and body for the `n`th attempt (attempts that succeed must
/// not collide: a second gallery post of one asset is refused, for one), and its success status.
struct Write {
    method: Method,
    call: Box<dyn Fn(usize) -> (String, Body)>,
    ok: StatusCode,
}

fn write(method: Method, ok: StatusCode, call: impl Fn(usize) -> (String, Body) + 'static) -> Write {
    Write { method, call: Box::new(call), ok }
}

/// Everything the sample needs: an admin who is also a chat agent, signed in on the pages, with
/// assets, a link, a file request, tokens and a visitor's chat session.
struct World {
    app: TestApp,
    bearer: String,
    page: PageSession,
    assets: Vec<i64>,
    share: String,
    company: String,
    session: String,
    visitor: String,
    tokens: Vec<i64>,
}

async fn world() -> World {
    let app = TestApp::spawn().await;
    let (bearer, ada_id) = app.register("ada@example.com", "Ada Admin").await;
    let page = app.page_session("ada@example.com").await;
    let mut assets = vec![];
    for i in 0..5u32 {
        let a = app.upload(&bearer, &format!("photo-{i}.png"), fixtures::png(8 + i, 8)).await;
        assets.push(a["id"].as_i64().expect("asset id"));
    }
    let share = created(
        app.post_json(&format!("/api/v3/assets/{}/share/", assets[0]), Some(&bearer), &json!({"share_type": "public"}))
            .await,
    )
    .await;
    let company = created(app.post_json("/api/companies/", Some(&bearer), &json!({"name": "Acme"})).await).await;
    let company_id = company["company_id"].as_str().expect("company").to_string();
    let r = app
        .post_json(&format!("/api/companies/{company_id}/agents/"), Some(&bearer), &json!({"user_id": ada_id}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let chat = created(
        app.post_json("/api/chat/sessions/", None, &json!({"widget_key": company["widget_key"].as_str()})).await,
    )
    .await;
    let mut tokens = vec![];
    for i in 0..5 {
        let t = created(
            app.post_json("/api/auth/tokens/", Some(&bearer), &json!({"name": format!("old {i}"), "scopes": ["read"]}))
                .await,
        )
        .await;
        tokens.push(t["id"].as_i64().expect("token id"));
    }
    World {
        bearer,
        page,
        assets,
        share: share["uuid"].as_str().expect("uuid").to_string(),
        company: company_id,
        session: chat["session_id"].as_str().expect("session").to_string(),
        visitor: chat["token"].as_str().expect("visitor token").to_string(),
        tokens,
        app,
    }
}

impl World {
    /// Reads of every family that need an account.
    fn reads(&self) -> Vec<String> {
        let (a, s, co, se) = (self.assets[0], &self.share, &self.company, &self.session);
        vec![
            "/api/auth/me/".into(),
            "/api/auth/tokens/".into(),
            "/api/v3/assets/".into(),
            format!("/api/v3/assets/{a}/"),
            format!("/api/v3/assets/{a}/comments/"),
            format!("/api/v3/assets/{a}/analytics/?days=7"),
            "/api/v3/shares/".into(),
            format!("/api/v3/shares/{s}/analytics/"),
            "/api/v3/collections/".into(),
            "/api/v3/collaboration/sessions/".into(),
            "/api/v3/file-requests/".into(),
            "/api/webhooks/".into(),
            "/api/admin/users/".into(),
            "/api/admin/audit/".into(),
            "/api/admin/policies/".into(),
            "/api/dashboard/my-shared-media/".into(),
            "/api/dashboard/shared-media/stats/".into(),
            "/api/companies/".into(),
            format!("/api/chat/sessions/?company_id={co}"),
            format!("/api/chat/files/?company_id={co}&session_id={se}"),
            format!("/api/chat/messages/?company_id={co}&session_id={se}"),
        ]
    }

    /// Writes of every family (POST, PATCH, DELETE), chat upload included.
    fn writes(&self) -> Vec<Write> {
        let (assets, tokens) = (self.assets.clone(), self.tokens.clone());
        let (a, co, se) = (self.assets[0], self.company.clone(), self.session.clone());
        let read_path = format!("/api/chat/sessions/{se}/read/");
        let s = self.share.clone();
        vec![
            write(Method::POST, StatusCode::CREATED, |i| {
                ("/api/auth/tokens/".into(), Body::Json(json!({"name": format!("t{i}"), "scopes": ["read"]})))
            }),
            write(Method::DELETE, StatusCode::NO_CONTENT, move |i| {
                (format!("/api/auth/tokens/{}/", tokens[i]), Body::Empty)
            }),
            write(Method::POST, StatusCode::CREATED, |i| {
                (
                    "/api/v3/assets/".into(),
                    Body::File(vec![("title", format!("upload {i}"))], "note.txt", b"hello\n".to_vec()),
                )
            }),
            write(Method::PATCH, StatusCode::OK, move |i| {
                (format!("/api/v3/assets/{a}/"), Body::Json(json!({"title": format!("renamed {i}")})))
            }),
            write(Method::POST, StatusCode::CREATED, move |i| {
                (format!("/api/v3/assets/{a}/comments/"), Body::Json(json!({"content": format!("comment {i}")})))
            }),
            write(Method::POST, StatusCode::CREATED, move |_| {
                (format!("/api/v3/assets/{a}/share/"), Body::Json(json!({"share_type": "public"})))
            }),
            write(Method::PATCH, StatusCode::OK, move |i| {
                (format!("/api/v3/shares/{s}/"), Body::Json(json!({"title": format!("link {i}")})))
            }),
            write(Method::POST, StatusCode::CREATED, |i| {
                ("/api/v3/collections/".into(), Body::Json(json!({"title": format!("collection {i}")})))
            }),
            write(Method::POST, StatusCode::CREATED, move |_| {
                (
                    "/api/v3/collaboration/sessions/".into(),
                    Body::Json(json!({"asset_id": a, "participants": [{"email": "rita@example.com"}]})),
                )
            }),
            write(Method::POST, StatusCode::CREATED, |i| {
                ("/api/v3/file-requests/".into(), Body::Json(json!({"title": format!("request {i}")})))
            }),
            write(Method::POST, StatusCode::CREATED, |_| ("/api/v3/uploads/".into(), Body::TusCreate(6))),
            write(Method::POST, StatusCode::CREATED, |i| {
                (
                    "/api/admin/users/".into(),
                    Body::Json(
                        json!({"email": format!("new{i}@example.com"), "password": "correct horse", "name": "New"}),
                    ),
                )
            }),
            write(Method::PATCH, StatusCode::OK, |_| ("/api/admin/policies/".into(), Body::Json(json!({})))),
            write(Method::POST, StatusCode::CREATED, move |i| {
                (
                    "/api/dashboard/share-media/".into(),
                    Body::Json(json!({"content_type": "talent_media", "object_id": assets[i]})),
                )
            }),
            write(Method::POST, StatusCode::CREATED, |i| {
                ("/api/companies/".into(), Body::Json(json!({"name": format!("Company {i}")})))
            }),
            write(Method::POST, StatusCode::CREATED, move |i| {
                (
                    "/api/chat/upload/".into(),
                    Body::File(
                        vec![("company_id", co.clone()), ("session_id", se.clone())],
                        "answer.txt",
                        format!("answer {i}\n").into_bytes(),
                    ),
                )
            }),
            write(Method::POST, StatusCode::OK, move |_| (read_path.clone(), Body::Empty)),
        ]
    }

    fn origin(&self) -> String {
        self.app.url("")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_family_reads_with_the_same_origin_cookie_and_refuses_it_cross_origin() {
    let w = world().await;
    for path in w.reads() {
        // The cookie alone (a same-origin fetch without Origin), and with this origin named.
        let r = w.page.get(&path).await;
        assert_eq!(r.status(), StatusCode::OK, "GET {path} with the cookie: {}", r.text().await.unwrap_or_default());
        let r = w.page.req(Method::GET, &path).header("origin", w.origin()).send().await.expect("get");
        assert_eq!(r.status(), StatusCode::OK, "GET {path} with the cookie from this origin");
        // Another site's page riding the cookie.
        let r = w.page.req(Method::GET, &path).header("origin", EVIL).send().await.expect("get");
        assert_error(r, StatusCode::FORBIDDEN, "csrf_failed").await;
        let r = w
            .page
            .req(Method::GET, &path)
            .header("sec-fetch-site", "cross-site")
            .header("sec-fetch-mode", "cors")
            .send()
            .await
            .expect("get");
        assert_error(r, StatusCode::FORBIDDEN, "csrf_failed").await;
        // Bearer: unchanged, from any origin.
        let r = w.app.req(Method::GET, &path, Some(&w.bearer)).header("origin", EVIL).send().await.expect("get");
        assert_eq!(r.status(), StatusCode::OK, "GET {path} with the bearer token");
        // Nothing: 401.
        assert_error(w.app.get(&path, None).await, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_family_writes_with_the_cookie_and_the_csrf_header_only() {
    let w = world().await;
    for wr in w.writes() {
        let label = |i: usize| format!("{} {}", wr.method, (wr.call)(i).0);
        // 0: the cookie without the header; 1: with a wrong one.
        let (path, body) = (wr.call)(0);
        let r = with_body(w.page.req(wr.method.clone(), &path), body).send().await.expect("send");
        let v = assert_error(r, StatusCode::FORBIDDEN, "csrf_failed").await;
        assert!(v["error"].as_str().is_some_and(|e| e.contains("X-CSRF-Token")), "{}: {v}", label(0));
        let (path, body) = (wr.call)(0);
        let r = with_body(w.page.req(wr.method.clone(), &path).header("x-csrf-token", "0".repeat(64)), body)
            .send()
            .await
            .expect("send");
        assert_error(r, StatusCode::FORBIDDEN, "csrf_failed").await;
        // 1: the right header from another site.
        let (path, body) = (wr.call)(1);
        let r = with_body(w.page.req_with_csrf(wr.method.clone(), &path).header("origin", EVIL), body)
            .send()
            .await
            .expect("send");
        assert_error(r, StatusCode::FORBIDDEN, "csrf_failed").await;
        // 2: the cookie and the header from this origin: accepted.
        let (path, body) = (wr.call)(2);
        let r = with_body(w.page.req_with_csrf(wr.method.clone(), &path).header("origin", w.origin()), body)
            .send()
            .await
            .expect("send");
        let status = r.status();
        assert_eq!(
            status,
            wr.ok,
            "{} with the cookie and X-CSRF-Token: {}",
            label(2),
            r.text().await.unwrap_or_default()
        );
        // 3: Bearer, no cookie, no header, any origin: unchanged.
        let (path, body) = (wr.call)(3);
        let r = with_body(w.app.req(wr.method.clone(), &path, Some(&w.bearer)).header("origin", EVIL), body)
            .send()
            .await
            .expect("send");
        let status = r.status();
        assert_eq!(status, wr.ok, "{} with the bearer token: {}", label(3), r.text().await.unwrap_or_default());
        // 4: nothing.
        let (path, body) = (wr.call)(4);
        let r = with_body(w.app.req(wr.method.clone(), &path, None), body).send().await.expect("send");
        assert_error(r, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    }
}

/// The case: from a signed-in agent's page, the chat upload and the file list answer the
/// cookie (they answered 401), and the refused attempts stored nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_page_cookie_uploads_to_the_chat_and_lists_its_files() {
    let w = world().await;
    let files = format!("/api/chat/files/?company_id={}&session_id={}", w.company, w.session);
    let form = |name: &str| {
        reqwest::multipart::Form::new()
            .text("company_id", w.company.clone())
            .text("session_id", w.session.clone())
            .part("file", reqwest::multipart::Part::bytes(b"from the page\n".to_vec()).file_name(name.to_string()))
    };
    let r = w.page.req(Method::POST, "/api/chat/upload/").multipart(form("no-token.txt")).send().await.expect("up");
    assert_error(r, StatusCode::FORBIDDEN, "csrf_failed").await;
    let r = w
        .page
        .req_with_csrf(Method::POST, "/api/chat/upload/")
        .header("origin", EVIL)
        .multipart(form("evil.txt"))
        .send()
        .await
        .expect("up");
    assert_error(r, StatusCode::FORBIDDEN, "csrf_failed").await;
    let r = w.page.req_with_csrf(Method::POST, "/api/chat/upload/").multipart(form("page.txt")).send().await;
    let file = created(r.expect("up")).await;
    assert_eq!(file["uploader"], "agent", "the cookie's account is the company's agent");
    let list: Value = w.page.get(&files).await.json().await.expect("json");
    let names: Vec<&str> =
        list["files"].as_array().expect("files").iter().filter_map(|f| f["original_name"].as_str()).collect();
    assert_eq!(names, vec!["page.txt"], "only the accepted upload: {list}");
    // The visitor's chat token works as before, and the visitor sees the agent's file.
    let list: Value = w.app.get(&files, Some(&w.visitor)).await.json().await.expect("json");
    assert_eq!(list["count"], 1, "{list}");
    // Without credentials: 401, as on every API route.
    assert_error(w.app.get(&files, None).await, StatusCode::UNAUTHORIZED, "not_authenticated").await;
}

/// tus through the cookie: HEAD reads, PATCH writes with the header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumable_upload_goes_through_with_the_page_cookie() {
    let w = world().await;
    let r = with_body(w.page.req_with_csrf(Method::POST, "/api/v3/uploads/"), Body::TusCreate(6)).send().await;
    let r = r.expect("create");
    assert_eq!(r.status(), StatusCode::CREATED);
    let location = r.headers()["location"].to_str().expect("location").to_string();
    let head = w.page.req(Method::HEAD, &location).header("tus-resumable", "1.0.0").send().await.expect("head");
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["upload-offset"], "0");
    let patch = |rb: RequestBuilder| {
        rb.header("tus-resumable", "1.0.0")
            .header("upload-offset", "0")
            .header("content-type", "application/offset+octet-stream")
            .body(b"hello\n".to_vec())
    };
    let r = patch(w.page.req(Method::PATCH, &location)).send().await.expect("patch");
    assert_error(r, StatusCode::FORBIDDEN, "csrf_failed").await;
    let r = patch(w.page.req_with_csrf(Method::PATCH, &location)).send().await.expect("patch");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(r.headers().get("vitrine-asset").is_some(), "the upload became an asset");
}
