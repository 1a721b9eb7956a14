//! Health, readiness, metrics, OpenAPI and docs, URL conventions, the command line.

use std::process::Command;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{TestApp, assert_error};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness_answer() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/healthz", None).await.status(), StatusCode::OK);
    let r: Value = app.get("/readyz/", None).await.json().await.expect("json");
    assert_eq!(
        (r["status"].as_str(), r["database"].as_str(), r["storage"].as_str()),
        (Some("ok"), Some("ok"), Some("ok"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_reports_a_closed_database_as_503() {
    let app = TestApp::spawn().await;
    app.state.store.close().await;
    let r = app.get("/readyz", None).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["database"], "unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_prometheus_text() {
    let app = TestApp::spawn().await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    app.upload(&token, "a.txt", b"hello\n".to_vec()).await;
    let body = app.get("/metrics", None).await.text().await.expect("text");
    assert!(body.contains("vitrine_http_requests_total"), "{body}");
    assert!(body.contains("vitrine_uploads_total"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_every_endpoint_and_docs_are_served_offline() {
    let app = TestApp::spawn().await;
    let doc: Value = app.get("/api/openapi.json", None).await.json().await.expect("json");
    let paths = doc["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/api/auth/register", "post"),
        ("/api/auth/login", "post"),
        ("/api/auth/me", "get"),
        ("/api/admin/users", "post"),
        ("/api/admin/users", "get"),
        ("/api/admin/users/{id}", "patch"),
        ("/api/v3/assets", "post"),
        ("/api/v3/assets", "get"),
        ("/api/v3/assets/{id}", "get"),
        ("/api/v3/assets/{id}", "patch"),
        ("/api/v3/assets/{id}", "delete"),
        ("/api/v3/assets/{id}/content", "get"),
        ("/files/{token}", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/login", "get"),
        ("/login", "post"),
        ("/logout", "post"),
        ("/", "get"),
        ("/api/v3/assets/{id}/share", "post"),
        ("/api/v3/shares", "get"),
        ("/api/v3/shares/{uuid}", "get"),
        ("/api/v3/shares/{uuid}", "patch"),
        ("/api/v3/shares/{uuid}", "delete"),
        ("/api/v3/shares/{uuid}/unlock", "post"),
        ("/share/{uuid}", "get"),
        ("/share/{uuid}/unlock", "post"),
        ("/share/{uuid}/download", "get"),
        ("/share/{uuid}/preview", "get"),
        ("/share/{uuid}/thumb", "get"),
        ("/share/{uuid}/qr.png", "get"),
        ("/share/{uuid}/qr.svg", "get"),
        ("/embed/{uuid}", "get"),
        ("/oembed", "get"),
        ("/assets/{id}", "get"),
        ("/assets/{id}/shares", "post"),
        ("/shares", "get"),
        ("/shares/{uuid}/revoke", "post"),
    ] {
        assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path} documented");
    }
    let r = app.get("/api/docs/", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.expect("html").contains("swagger"));
    let r = app.get("/api/docs/swagger-ui.css", None).await;
    assert_eq!(r.status(), StatusCode::OK, "assets are embedded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_path_answers_with_and_without_its_trailing_slash_and_unknowns_are_json_404() {
    let app = TestApp::spawn().await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    assert_eq!(app.get("/api/auth/me", Some(&token)).await.status(), StatusCode::OK);
    assert_eq!(app.get("/api/auth/me/", Some(&token)).await.status(), StatusCode::OK);
    assert_error(app.get("/api/nothing/here/", None).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_error(app.delete("/api/auth/me/", Some(&token)).await, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
        .await;
    let r = app.client.get(app.url("/nowhere")).header("accept", "text/html").send().await.expect("get");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.text().await.expect("html").contains("<html"));
}

fn vitrine() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vitrine"))
}

#[test]
fn config_check_prints_the_effective_config_with_secrets_masked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = vitrine()
        .args(["config", "check"])
        .current_dir(dir.path())
        .env("VITRINE_JWT_SECRET", "a-very-secret-value-that-is-long-enough")
        .env("VITRINE_DATABASE_URL", "postgres://vitrine:hunter2@db/vitrine")
        .env("VITRINE_LISTEN", "0.0.0.0:9000")
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("listen = \"0.0.0.0:9000\""), "{text}");
    assert!(!text.contains("a-very-secret") && !text.contains("hunter2"), "{text}");
    assert!(text.contains("***"));
}

#[test]
fn a_bad_setting_is_reported_with_what_to_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = vitrine()
        .args(["config", "check"])
        .current_dir(dir.path())
        .env("VITRINE_LISTEN", "here")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`listen`"), "{err}");
    let out = vitrine().args(["serve"]).current_dir(dir.path()).env("VITRINE_STORAGE", "floppy").output().expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("storage"));
}

#[test]
fn config_example_is_valid_toml_with_every_setting() {
    let out = vitrine().args(["config", "example"]).output().expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for key in [
        "listen",
        "data_dir",
        "public_url",
        "storage",
        "s3_bucket",
        "bus_url",
        "smtp_url",
        "clamd_address",
        "geoip_db",
        "registration",
        "trusted_proxies",
        "realtime_recovery_window",
        "guest_comment_rate_per_ip_per_minute",
    ] {
        assert!(text.contains(key), "example mentions {key}");
    }
}

#[test]
fn user_create_and_migrate_work_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let run = |args: &[&str]| {
        vitrine().args(args).current_dir(dir.path()).env("VITRINE_DATA_DIR", &data).output().expect("run")
    };
    assert!(run(&["migrate"]).status.success());
    let out = run(&[
        "user",
        "create",
        "--email",
        "ops@example.com",
        "--password",
        "correct horse",
        "--name",
        "Ops",
        "--role",
        "admin",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("admin"));
    let out = run(&["user", "create", "--email", "ops@example.com", "--password", "correct horse", "--name", "Ops"]);
    assert!(!out.status.success());
    let out = run(&["user", "create", "--email", "x@example.com", "--password", "short", "--name", "X"]);
    assert!(!out.status.success());
    // The password may come from VITRINE_NEW_USER_PASSWORD (not read as a setting).
    let out = vitrine()
        .args(["user", "create", "--email", "env@example.com", "--name", "Env"])
        .current_dir(dir.path())
        .env("VITRINE_DATA_DIR", &data)
        .env("VITRINE_NEW_USER_PASSWORD", "correct horse")
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Secrets were generated with mode 0600.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join("secrets/jwt.key")).expect("jwt key").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn serve_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mut child = vitrine()
        .arg("serve")
        .current_dir(dir.path())
        .env("VITRINE_LISTEN", format!("127.0.0.1:{port}"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "server did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(dir.path().join("data/vitrine.db").exists(), "embedded defaults: SQLite in ./data");
    assert!(dir.path().join("data/blobs").is_dir(), "embedded defaults: blobs in ./data/blobs");
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let code = child.wait().expect("wait");
    assert!(code.success(), "exit status {code:?}");
}

/// Instances started together on an empty PostgreSQL database take turns for the migrations and
/// start-up data moves (an advisory lock): every one of them starts (issue 18, item 9).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_starting_together_on_an_empty_postgres_database_all_start() {
    let Some(db) = crate::helpers::Db::postgres() else { return };
    crate::helpers::init();
    for _ in 0..3 {
        let dir = tempfile::tempdir().expect("dir");
        let url = db.fresh_url(dir.path()).await;
        let config = |n: usize| vitrine::config::Config {
            data_dir: dir.path().join(format!("instance-{n}")),
            database_url: Some(url.clone()),
            jwt_secret: Some("0123456789abcdef0123456789abcdef-jwt".into()),
            hmac_secret: Some("0123456789abcdef0123456789abcdef-hmac".into()),
            log_level: "warn".into(),
            ..vitrine::config::Config::default()
        };
        let built = futures::future::join_all((0..3).map(|n| vitrine::app::AppState::build(config(n)))).await;
        let mut ids = std::collections::BTreeSet::new();
        for b in built {
            let state = b.expect("every instance starts");
            ids.insert(state.store.deployment_id().await.expect("deployment id"));
            state.store.close().await;
        }
        assert_eq!(ids.len(), 1, "one deployment, whoever made it");
    }
}

/// Methods a client makes up never become metric labels (issue 18, item 8): `/metrics` does not
/// grow with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_methods_do_not_grow_the_metrics() {
    let app = TestApp::spawn().await;
    for i in 0..50 {
        let method = reqwest::Method::from_bytes(format!("MADEUP{i}").as_bytes()).expect("method");
        let r = app.req(method, "/healthz", None).send().await.expect("request");
        assert!(r.status().is_client_error(), "{}", r.status());
    }
    let metrics = app.get("/metrics", None).await.text().await.expect("metrics");
    assert!(!metrics.contains("MADEUP"), "no made-up method is a label");
    assert!(metrics.contains(r#"method="other""#));
}

/// Issue 18, item 14: a JSON body is an object. serde reads a struct from an array too, so
/// `[null]` passed for `{}` (resolve) and `["e", "p", "n"]` for a registration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_bodies_that_are_not_objects_are_refused() {
    let app = TestApp::spawn().await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    let asset = app.upload(&token, "a.txt", b"hello\n".to_vec()).await;
    let comment: Value = app
        .post_json(
            &format!("/api/v3/assets/{}/comments", asset["id"]),
            Some(&token),
            &serde_json::json!({"content": "hi"}),
        )
        .await
        .json()
        .await
        .expect("json");
    let resolve = format!("/api/v3/comments/{}/resolve", comment["id"]);
    for body in
        [serde_json::json!([null]), serde_json::json!([false]), serde_json::json!(null), serde_json::json!(true)]
    {
        assert_error(app.post_json(&resolve, Some(&token), &body).await, StatusCode::BAD_REQUEST, "invalid_body").await;
    }
    let r = app
        .post_json(
            "/api/auth/register",
            None,
            &serde_json::json!(["bob@example.com", "correct-horse-battery-staple", "Bob"]),
        )
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_body").await;
    // An object still works, and so does the empty body resolve allows.
    let r = app.post_json(&resolve, Some(&token), &serde_json::json!({"resolved": true})).await;
    assert_eq!(r.json::<Value>().await.expect("json")["resolved"], true);
    let r = app.req(reqwest::Method::POST, &resolve, Some(&token)).send().await.expect("post");
    assert_eq!(r.status(), StatusCode::OK);
}

/// Issue 18, item 14: the served document names each schema once (the chat session is not the
/// collaboration session, the gallery's confirmation is not a chat message), and every error
/// answer refers to the one error schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_document_has_the_real_schemas_and_statuses() {
    let app = TestApp::spawn().await;
    let doc: Value = app.get("/api/openapi.json", None).await.json().await.expect("json");
    let schema = |path: &str, method: &str, status: &str| {
        doc["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(schema("/api/chat/sessions", "post", "201"), "#/components/schemas/ChatSessionOut");
    assert_eq!(schema("/api/v3/collaboration/sessions", "post", "201"), "#/components/schemas/CollaborationSessionOut");
    assert_eq!(
        schema("/api/dashboard/shared-media/{id}/delete", "delete", "200"),
        "#/components/schemas/GalleryMessage"
    );
    assert_eq!(
        doc["components"]["schemas"]["MessageList"]["properties"]["messages"]["items"]["$ref"],
        "#/components/schemas/ChatMessageOut"
    );
    for status in ["400", "401", "403", "404", "413", "415"] {
        assert_eq!(
            schema("/api/v3/comments/{id}/resolve", "post", status),
            "#/components/schemas/ErrorResponse",
            "resolve documents {status}"
        );
    }
}

/// Issue 18, item 14 (found by schemathesis): a page's sign-in redirect carries an id from the
/// URL; one with a control character was a 500 (an invalid `Location`). Such a path is now a 404
/// before any handler (item 12); an id with other characters that need encoding still reaches
/// the page, whose redirect encodes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_redirects_survive_any_id() {
    let app = TestApp::spawn().await;
    for path in ["/collaborate/%01%C2%A0x", "/collaborate/%01x/replay", "/dashboard/analytics/%11%0F"] {
        let r = app.get(path, None).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    for path in ["/collaborate/%C2%A0x%22%3C", "/collaborate/%25x/replay", "/dashboard/analytics/%C3%A9x"] {
        let r = app.get(path, None).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
        let location = r.headers()["location"].to_str().expect("ascii").to_string();
        assert!(location.starts_with("/login?next=/") && location.contains('%'), "{location}");
    }
}
