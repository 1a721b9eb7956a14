//! Issue 18 item 15: owner-only files under data_dir, pages without inline scripts (CSP), the
//! SQLite WAL emptied when idle and bounded.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, fixtures};

/// Every path under `root` (itself included) with its mode.
fn walk(root: &Path) -> Vec<(std::path::PathBuf, u32, bool)> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(p) = todo.pop() {
        let meta = std::fs::symlink_metadata(&p).expect("metadata");
        out.push((p.clone(), meta.permissions().mode() & 0o777, meta.is_dir()));
        if meta.is_dir() {
            for e in std::fs::read_dir(&p).expect("read_dir") {
                todo.push(e.expect("entry").path());
            }
        }
    }
    out
}

/// No file readable or writable by group or others; every directory 0700.
fn assert_private(root: &Path) {
    let all = walk(root);
    assert!(all.len() > 3, "{all:?}");
    for (path, mode, dir) in all {
        if dir {
            assert_eq!(mode, 0o700, "directory {} is {mode:o}", path.display());
        } else {
            assert_eq!(mode & 0o077, 0, "file {} is {mode:o}", path.display());
        }
    }
}

/// The `vitrine serve` child process, killed when dropped.
struct Serve(std::process::Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_keeps_everything_under_data_dir_to_its_own_user() {
    crate::helpers::init();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    // An existing data_dir from an older version, readable by everybody.
    std::fs::create_dir(&data).expect("mkdir");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let base = format!("http://127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_vitrine"))
        .arg("serve")
        .current_dir(dir.path())
        .env("VITRINE_DATA_DIR", &data)
        .env("VITRINE_LISTEN", format!("127.0.0.1:{port}"))
        .env("VITRINE_PUBLIC_URL", &base)
        .env("VITRINE_LOG_LEVEL", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn vitrine serve");
    let _serve = Serve(child);
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await
            && r.status() == StatusCode::OK
        {
            break;
        }
        assert!(Instant::now() < deadline, "vitrine serve did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = http
        .post(format!("{base}/api/auth/register/"))
        .json(&json!({"email": "ada@example.com", "password": "correct horse", "name": "Ada"}))
        .send()
        .await
        .expect("register");
    assert_eq!(r.status(), StatusCode::CREATED);
    let token = r.json::<Value>().await.expect("json")["access_token"].as_str().expect("token").to_string();
    let part = reqwest::multipart::Part::bytes(fixtures::pdf(3000)).file_name("plan.pdf").mime_str("application/pdf");
    let r = http
        .post(format!("{base}/api/v3/assets/"))
        .bearer_auth(&token)
        .multipart(reqwest::multipart::Form::new().part("file", part.expect("part")))
        .send()
        .await
        .expect("upload");
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap_or_default());
    // The database, its WAL and shared memory, the blob and its directories, the secrets.
    for name in ["vitrine.db", "vitrine.db-wal", "vitrine.db-shm", "blobs", "secrets"] {
        assert!(data.join(name).exists(), "{name} exists");
    }
    assert_private(&data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_and_directories_are_owner_only_whatever_the_umask() {
    // In-process: the test binary's umask (usually 022) is not the server's, yet the
    // directories and the database files are made owner-only explicitly.
    let app = TestApp::spawn().await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    app.upload(&token, "plan.pdf", fixtures::pdf(2000)).await;
    let data = app.dir.path();
    for dir in [data.to_path_buf(), data.join("blobs"), data.join("secrets")] {
        let mode = std::fs::metadata(&dir).expect("dir").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", dir.display());
    }
    for file in ["vitrine.db", "vitrine.db-wal", "vitrine.db-shm"] {
        let mode = std::fs::metadata(data.join(file)).expect("file").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_is_emptied_once_the_database_is_idle_and_is_bounded() {
    let app = TestApp::spawn().await;
    let limit: (i64,) =
        sqlx::query_as("PRAGMA journal_size_limit").fetch_one(app.state.store.pool()).await.expect("pragma");
    assert_eq!(limit.0 as u64, vitrine::store::WAL_BOUND);
    assert_eq!(vitrine::store::WAL_BOUND, 64 * 1024 * 1024);
    let (token, _) = app.register("ada@example.com", "Ada").await;
    let wal = app.dir.path().join("vitrine.db-wal");
    let size = || std::fs::metadata(&wal).map_or(0, |m| m.len());
    // Writes: uploads, each a few pages of rows and index entries.
    let mut largest = 0;
    for i in 0..40 {
        app.upload(&token, &format!("doc-{i}.pdf"), fixtures::pdf(1000 + i)).await;
        largest = largest.max(size());
    }
    assert!(largest > 0, "the writes went through the WAL");
    // Idle: the WAL file is truncated to nothing within a few seconds (generous on a busy machine).
    let deadline = Instant::now() + Duration::from_secs(30);
    while size() > 0 {
        assert!(Instant::now() < deadline, "the WAL is still {} bytes after 30 idle seconds", size());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Still a working database.
    app.upload(&token, "after.pdf", fixtures::pdf(500)).await;
    let list: Value = app.get("/api/v3/assets/", Some(&token)).await.json().await.expect("json");
    assert_eq!(list["count"], 41, "{list}");
}

/// The `script-src` of a CSP (or its `default-src` when it has none).
fn script_src(csp: &str) -> String {
    let directive = |name: &str| {
        csp.split(';').map(str::trim).find(|d| d.starts_with(name)).map(|d| d[name.len()..].trim().to_string())
    };
    directive("script-src").or_else(|| directive("default-src")).unwrap_or_default()
}

/// Fails on an executable inline script: a `<script>` without `src`, except a JSON data block;
/// an inline event handler attribute (`onclick=`…); a `javascript:` URL.
fn assert_no_inline_script(what: &str, html: &str) {
    let lower = html.to_ascii_lowercase();
    for tag in lower.split("<script").skip(1) {
        let open = &tag[..tag.find('>').unwrap_or(tag.len())];
        assert!(open.contains(" src=") || open.contains("type=\"application/json\""), "{what}: inline <script{open}>");
    }
    for quote in ["\"javascript:", "'javascript:", "=javascript:"] {
        assert!(!lower.contains(quote), "{what}: javascript: URL");
    }
    // ` on…=` inside a tag: look at every tag's attributes.
    for tag in lower.split('<').skip(1) {
        let inside = &tag[..tag.find('>').unwrap_or(tag.len())];
        for attr in inside.split_whitespace().skip(1) {
            let name = attr.split('=').next().unwrap_or("");
            assert!(
                !(name.starts_with("on")
                    && attr.contains('=')
                    && name.len() > 2
                    && name.chars().all(|c| c.is_ascii_alphabetic())),
                "{what}: inline event handler in <{}>",
                inside.chars().take(120).collect::<String>()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_page_allows_or_contains_inline_scripts() {
    let app = TestApp::spawn().await;
    let (owner, owner_id) = app.register("owner@example.com", "Olive Owner").await;
    app.register("rita@example.com", "Rita Reviewer").await;
    let olive = app.page_session("owner@example.com").await;
    let a = app.upload(&owner, "poster.png", fixtures::png(40, 30)).await;
    let id = a["id"].as_i64().expect("id");
    let share =
        crate::helpers::created(app.post_json(&format!("/api/v3/assets/{id}/share/"), Some(&owner), &json!({})).await)
            .await;
    let uuid = share["uuid"].as_str().expect("uuid").to_string();
    let protected = crate::helpers::created(
        app.post_json(
            &format!("/api/v3/assets/{id}/share/"),
            Some(&owner),
            &json!({"share_type": "protected", "password": "secure123"}),
        )
        .await,
    )
    .await;
    let session = crate::helpers::created(
        app.post_json(
            "/api/v3/collaboration/sessions/",
            Some(&owner),
            &json!({"asset_id": id, "participants": [{"email": "rita@example.com"}, {"email": "new@example.com"}]}),
        )
        .await,
    )
    .await;
    let collab = session["collaboration_url"].as_str().expect("collaboration_url").to_string();
    let invite = session["participants"][1]["invite_url"].as_str().expect("invite_url").to_string();
    let invite = invite[invite.find("/invite/").expect("invite path")..].to_string();
    let company =
        crate::helpers::created(app.post_json("/api/companies/", Some(&owner), &json!({"name": "Acme"})).await).await;
    let company_id = company["company_id"].as_str().expect("company").to_string();
    let r = app
        .post_json(&format!("/api/companies/{company_id}/agents/"), Some(&owner), &json!({"user_id": owner_id}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let widget_key = company["widget_key"].as_str().expect("widget_key").to_string();

    let pages = [
        "/login".to_string(),
        "/".to_string(),
        "/shares".to_string(),
        format!("/assets/{id}"),
        format!("/share/{uuid}/"),
        format!("/share/{}/", protected["uuid"].as_str().expect("uuid")),
        format!("/embed/{uuid}"),
        format!("/dashboard/analytics/{uuid}/"),
        collab.clone(),
        format!("{}/replay", collab.trim_end_matches('/')),
        invite,
        format!("/chat/widget/?widget_key={widget_key}"),
        "/agent/".to_string(),
        "/gallery/".to_string(),
        "/dashboard/gallery/".to_string(),
        "/no/such/page".to_string(),
        "/api/docs/".to_string(),
    ];
    let mut scripts_seen = 0;
    for path in pages {
        // The login page sends a signed-in person on.
        let cookie = if path == "/login" { "" } else { olive.cookies.as_str() };
        let r = app
            .client
            .get(app.url(&path))
            .header("cookie", cookie)
            .header("accept", "text/html")
            .send()
            .await
            .expect("get");
        let status = r.status();
        let csp = r
            .headers()
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{path}: no CSP"))
            .to_string();
        let is_html =
            r.headers().get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|t| t.starts_with("text/html"));
        let html = r.text().await.expect("body");
        assert!(is_html && (status.is_success() || path == "/no/such/page"), "{path}: {status}: {html}");
        let scripts = script_src(&csp);
        assert!(!scripts.contains("'unsafe-inline'") && !scripts.contains("'unsafe-eval'"), "{path}: {csp}");
        assert_no_inline_script(&path, &html);
        scripts_seen += html.matches("<script src=").count();
    }
    assert!(scripts_seen >= 10, "the pages load their scripts from files ({scripts_seen})");
    // The page scripts are served, as JavaScript.
    for js in
        ["chat-styles", "chat-widget", "chat-agent", "collab-page", "collab-replay", "share-beacon", "analytics-page"]
    {
        let r = app.get(&format!("/static/js/{js}.js"), None).await;
        assert_eq!(r.status(), StatusCode::OK, "{js}");
        let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        assert!(ct.starts_with("text/javascript"), "{js}: {ct}");
    }
}
