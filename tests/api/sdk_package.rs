//! The JavaScript SDK as a package (issue 22, part 8): `static/sdk/` is the npm-style package
//! `@vitrine/sdk`. Its package.json points to real files with types, the binary serves its ES
//! modules byte for byte, each module imports in Chromium from another origin and exposes its
//! class, and the React `FileUpload` component, rendered with React 18 from npm, shares a chosen
//! file with an agent's socket and reports refusals through `onError`.
//!
//! React is vendored for these tests only (tests/vendor/react/, with its licence) and served by a
//! small server of the test's own on another port: the binary never serves it.

use std::path::{Path, PathBuf};

use axum::http::header;
use axum::routing::get;
use fantoccini::Locator;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::browser::{Browser, sign_in, wait_for};
use crate::helpers::{Spawn, TestApp, Ws, fixtures};

fn package_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("static/sdk")
}

fn package_json() -> Value {
    let text = std::fs::read_to_string(package_dir().join("package.json")).expect("static/sdk/package.json");
    serde_json::from_str(&text).expect("package.json is JSON")
}

/// The four script-tag files and the classes they define (and the ES module that exports each).
const CLASSES: &[(&str, &str)] = &[
    ("share-widget", "ShareWidget"),
    ("collaboration", "CollaborationClient"),
    ("analytics-dashboard", "AnalyticsDashboard"),
    ("chat-file-upload", "ChatbotFileUpload"),
];

/// Every `.js` file of the package's ES module folders, relative to static/sdk/.
fn module_files() -> Vec<String> {
    let mut out = Vec::new();
    for dir in ["esm", "react"] {
        for entry in std::fs::read_dir(package_dir().join(dir)).expect("module folder") {
            let name = entry.expect("entry").file_name().to_string_lossy().to_string();
            if name.ends_with(".js") {
                out.push(format!("{dir}/{name}"));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn package_json_names_the_version_of_the_binary_and_exports_real_files_with_types() {
    let pkg = package_json();
    assert_eq!(pkg["name"], "@vitrine/sdk");
    assert_eq!(pkg["version"], env!("CARGO_PKG_VERSION"), "the package's version follows Cargo.toml's");
    assert_eq!(pkg["type"], "module");
    assert!(pkg["peerDependencies"]["react"].is_string(), "React is a peer dependency: {pkg}");
    assert!(pkg.get("dependencies").is_none(), "no runtime dependencies, no build step");
    for key in ["main", "module", "types"] {
        let file = pkg[key].as_str().unwrap_or_else(|| panic!("package.json lacks {key}"));
        assert!(package_dir().join(file).is_file(), "{key} points to {file}, which does not exist");
    }
    let exports = pkg["exports"].as_object().expect("exports is an object");
    for (name, target) in exports {
        if name == "./package.json" {
            continue;
        }
        let types = target["types"].as_str().unwrap_or_else(|| panic!("export {name} has no types"));
        let code = target["default"].as_str().unwrap_or_else(|| panic!("export {name} has no default"));
        assert!(package_dir().join(types).is_file(), "export {name}: {types} does not exist");
        assert!(package_dir().join(code).is_file(), "export {name}: {code} does not exist");
        assert_eq!(types.trim_end_matches(".d.ts"), code.trim_end_matches(".js"), "export {name}: types beside code");
    }
    // One entry per class, plus the whole set and the React component.
    for (file, _) in CLASSES {
        let entry = &exports[&format!("./{file}")];
        assert_eq!(entry["default"], format!("./esm/{file}.js"), "export ./{file}");
    }
    assert_eq!(exports["."]["default"], "./esm/index.js");
    assert_eq!(exports["./react"]["default"], "./react/FileUpload.js");
    // Every module of the package has its declarations, and they declare the public class.
    for file in module_files() {
        let dts = package_dir().join(file.replace(".js", ".d.ts"));
        assert!(dts.is_file(), "{file} has no {}", dts.display());
    }
    for (file, class) in CLASSES {
        let dts = std::fs::read_to_string(package_dir().join(format!("esm/{file}.d.ts"))).expect("d.ts");
        assert!(dts.contains(&format!("export declare class {class}")), "esm/{file}.d.ts declares {class}");
        assert!(dts.contains(&format!("export default {class};")), "esm/{file}.d.ts has the default export");
    }
    let react = std::fs::read_to_string(package_dir().join("react/FileUpload.d.ts")).expect("d.ts");
    for prop in ["companyId", "sessionId", "apiBaseUrl", "jwt", "onFileShared", "onError"] {
        assert!(react.contains(&format!("  {prop}")), "FileUploadProps declares {prop}");
    }
    // The files the package publishes exist.
    for f in pkg["files"].as_array().expect("files") {
        let f = f.as_str().expect("name");
        assert!(package_dir().join(f).exists(), "files lists {f}, which does not exist");
    }
}

#[test]
fn the_es_modules_wrap_the_script_tag_files_instead_of_copying_them() {
    // One source: each ES module imports its script-tag file and re-exports the class it defines.
    for (file, class) in CLASSES {
        let module = std::fs::read_to_string(package_dir().join(format!("esm/{file}.js"))).expect("module");
        assert!(module.contains(&format!("import '../{file}.js';")), "esm/{file}.js imports ../{file}.js");
        assert!(module.contains(&format!("export default {class};")), "esm/{file}.js exports {class}");
        assert!(!module.contains(&format!("class {class}")), "esm/{file}.js must not define {class} a second time");
        assert!(module.lines().count() < 20, "esm/{file}.js is a wrapper, not a copy");
        let script = std::fs::read_to_string(package_dir().join(format!("{file}.js"))).expect("script");
        assert!(script.contains(&format!("class {class} ")), "{file}.js defines {class}");
        assert!(!script.contains("\nexport "), "{file}.js stays a classic script");
    }
}

#[tokio::test]
async fn the_binary_serves_every_module_of_the_package_as_it_is_in_the_repository() {
    let app = TestApp::spawn().await;
    let mut files = module_files();
    files.extend(CLASSES.iter().map(|(f, _)| format!("{f}.js")));
    for file in files {
        let r = app
            .client
            .get(app.url(&format!("/static/sdk/{file}")))
            .header("Origin", "https://customer.example")
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), StatusCode::OK, "/static/sdk/{file}");
        let ct = r.headers()[header::CONTENT_TYPE].to_str().expect("type").to_string();
        assert!(ct.starts_with("text/javascript"), "/static/sdk/{file}: {ct}");
        // Another origin may import the modules (module scripts are fetched with CORS).
        assert_eq!(
            r.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN).and_then(|v| v.to_str().ok()),
            Some("*"),
            "/static/sdk/{file} can be imported from another origin"
        );
        let body = r.text().await.expect("body");
        let disk = std::fs::read_to_string(package_dir().join(&file)).expect("file");
        assert_eq!(body, disk, "/static/sdk/{file} is served as it is in static/sdk/");
    }
    let served: Value = app.get("/static/sdk/package.json", None).await.json().await.expect("package.json");
    assert_eq!(served, package_json());
    // Nothing else of the package folder, and none of the test-only vendored React.
    for path in [
        "/static/sdk/esm/missing.js",
        "/static/sdk/esm/index.d.ts",
        "/static/sdk/react/FileUpload.d.ts",
        "/static/vendor/react/react.production.min.js",
        "/static/js/vendor/react.production.min.js",
        "/tests/vendor/react/react.production.min.js",
    ] {
        assert_eq!(app.get(path, None).await.status(), StatusCode::NOT_FOUND, "{path}");
    }
}

/// A server of the test's own, on another port: the pages that load the SDK from the app, and
/// React (vendored for the tests only). Returns its origin.
async fn page_server() -> String {
    const REACT: &str = include_str!("../vendor/react/react.production.min.js");
    const REACT_DOM: &str = include_str!("../vendor/react/react-dom.production.min.js");
    let js = |body: &'static str| ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], body);
    let html = |body: &'static str| ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body);
    let router = axum::Router::new()
        .route("/modules.html", get(move || async move { html(MODULES_PAGE) }))
        .route("/modules.js", get(move || async move { js(MODULES_SCRIPT) }))
        .route("/react.html", get(move || async move { html(REACT_PAGE) }))
        .route("/react-page.js", get(move || async move { js(REACT_SCRIPT) }))
        .route("/react-shim.js", get(move || async move { js("export default globalThis.React;\n") }))
        .route("/vendor/react.production.min.js", get(move || async move { js(REACT) }))
        .route("/vendor/react-dom.production.min.js", get(move || async move { js(REACT_DOM) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the page server");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    origin
}

const MODULES_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>SDK modules</title></head>
<body><script type="module" src="/modules.js"></script></body></html>
"#;

/// Imports every module from the app named in `?api=` and records what each exports.
const MODULES_SCRIPT: &str = r#"
const api = new URLSearchParams(location.search).get('api');
const modules = {
  'esm/share-widget.js': ['ShareWidget'],
  'esm/collaboration.js': ['CollaborationClient', 'CollaborationReplay'],
  'esm/analytics-dashboard.js': ['AnalyticsDashboard'],
  'esm/chat-file-upload.js': ['ChatbotFileUpload'],
  'esm/index.js': ['ShareWidget', 'CollaborationClient', 'CollaborationReplay', 'AnalyticsDashboard', 'ChatbotFileUpload'],
};
const out = {};
try {
  for (const [path, names] of Object.entries(modules)) {
    const m = await import(api + '/static/sdk/' + path);
    out[path] = {
      names: names.filter((n) => typeof m[n] === 'function' && m[n] === globalThis[n]),
      default: m.default === undefined ? null : m.default.name,
    };
  }
  const chat = await import(api + '/static/sdk/esm/chat-file-upload.js');
  out.chatUi = typeof chat.ChatbotFileUpload.ui.safeUrl === 'function';
  const collab = await import(api + '/static/sdk/esm/collaboration.js');
  out.replay = collab.CollaborationClient.Replay === collab.CollaborationReplay;
  // A class from the module works: it builds without touching the network.
  const board = new collab.CollaborationClient.CommentBoard({});
  out.board = board.size;
  out.mediaTime = collab.CollaborationClient.formatMediaTime(62.5);
} catch (e) {
  out.error = String(e && e.stack || e);
}
window.sdkModules = out;
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_es_module_imports_in_chromium_from_another_origin_and_exposes_its_class() {
    let app = TestApp::spawn().await;
    let pages = page_server().await;
    let Some(browser) = Browser::start().await else { return };
    let c = &browser.client;
    c.goto(&format!("{pages}/modules.html?api={}", app.base)).await.expect("goto");
    wait_for(c, "return !!window.sdkModules;").await;
    let got = c.execute("return window.sdkModules;", vec![]).await.expect("js");
    assert!(got.get("error").is_none(), "{got}");
    for (file, class) in CLASSES {
        let m = &got[format!("esm/{file}.js")];
        assert!(
            m["names"].as_array().is_some_and(|n| n.contains(&json!(class))),
            "esm/{file}.js exports {class}: {got}"
        );
        assert_eq!(m["default"], *class, "the default export of esm/{file}.js");
    }
    assert_eq!(got["esm/collaboration.js"]["names"], json!(["CollaborationClient", "CollaborationReplay"]));
    assert_eq!(got["esm/index.js"]["names"].as_array().map(Vec::len), Some(5), "{got}");
    assert_eq!(got["esm/index.js"]["default"], Value::Null, "the index has named exports only");
    assert_eq!(got["chatUi"], true);
    assert_eq!(got["replay"], true);
    assert_eq!(got["board"], 0);
    assert_eq!(got["mediaTime"], "00:01:02.500");
    browser.client.clone().close().await.expect("close");
}

const REACT_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>FileUpload</title>
<script src="/vendor/react.production.min.js"></script>
<script src="/vendor/react-dom.production.min.js"></script>
<script type="importmap">{"imports": {"react": "/react-shim.js"}}</script>
</head><body><main id="root"></main><script type="module" src="/react-page.js"></script></body></html>
"#;

/// Renders <FileUpload> from the app named in `?api=` with the seed's props from the query, and
/// records what its callbacks receive.
const REACT_SCRIPT: &str = r#"
import React from 'react';
const q = new URLSearchParams(location.search);
const api = q.get('api');
window.sharedFiles = [];
window.uploadErrors = [];
const { default: FileUpload } = await import(api + '/static/sdk/react/FileUpload.js');
ReactDOM.createRoot(document.getElementById('root')).render(React.createElement(FileUpload, {
  companyId: q.get('company'),
  sessionId: q.get('session'),
  apiBaseUrl: api,
  jwt: q.get('jwt'),
  onFileShared: (file) => window.sharedFiles.push(file),
  onError: (e) => window.uploadErrors.push({ code: e.code, status: e.status, source: e.source, error: e.error }),
}));
"#;

/// Small, so that the refused file is small too: the whole request reaches the server before it
/// answers 413, and the browser always reads that answer.
const CHAT_MAX_BYTES: u64 = 4096;

/// An admin, a company, its agent (token) and a visitor session (id, token).
async fn chat_session(app: &TestApp) -> (String, String, String, String) {
    let (admin, _) = app.register("admin@example.com", "Ada Admin").await;
    let company: Value =
        app.post_json("/api/companies/", Some(&admin), &json!({"name": "Acme"})).await.json().await.expect("json");
    let company_id = company["company_id"].as_str().expect("id").to_string();
    let (agent, agent_id) = app.register("agent@acme.test", "Agent Smith").await;
    let r = app
        .post_json(&format!("/api/companies/{company_id}/agents/"), Some(&admin), &json!({"user_id": agent_id}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app.post_json("/api/chat/sessions/", None, &json!({"widget_key": company["widget_key"]})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let s: Value = r.json().await.expect("json");
    let session_id = s["session_id"].as_str().expect("session").to_string();
    (company_id, agent, session_id, s["token"].as_str().expect("token").to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_react_file_upload_shares_a_chosen_file_with_the_agent_and_reports_refusals() {
    let app =
        TestApp::spawn_with(Spawn { tweak: Box::new(|c| c.chat_max_bytes = CHAT_MAX_BYTES), ..Default::default() })
            .await;
    let (company_id, agent, session_id, visitor) = chat_session(&app).await;
    let mut agent_ws = Ws::connect(&app, &format!("/ws/chat/{company_id}/{session_id}/?token={agent}")).await;
    agent_ws.next_of("connection_established").await;
    let pages = page_server().await;
    let Some(browser) = Browser::start().await else { return };
    let c = &browser.client;
    let page =
        |jwt: &str| format!("{pages}/react.html?api={}&company={company_id}&session={session_id}&jwt={jwt}", app.base);

    // The visitor's page renders the component; its socket connects.
    c.goto(&page(&visitor)).await.expect("goto");
    wait_for(c, "var u = document.querySelector('.vitrine-file-upload'); return !!u && u.dataset.status === 'open';")
        .await;

    // A file chosen in it reaches the agent's socket as file_shared, and onFileShared fires.
    let dir = tempfile::tempdir().expect("tempdir");
    let photo = dir.path().join("photo.png");
    let png = fixtures::png(24, 16);
    std::fs::write(&photo, &png).expect("write");
    let input = c.find(Locator::Css(".vitrine-file-upload input[type=file]")).await.expect("file input");
    input.send_keys(&photo.display().to_string()).await.expect("choose the file");
    let shared = agent_ws.next_of("file_shared").await;
    assert_eq!(shared["name"], "photo.png");
    assert_eq!(shared["uploader"], "user");
    assert_eq!(shared["size"], png.len());
    assert_eq!(shared["session_id"], session_id.as_str());
    wait_for(c, "return window.sharedFiles.length === 1;").await;
    let seen = c.execute("return window.sharedFiles[0];", vec![]).await.expect("js");
    assert_eq!(seen["id"], shared["id"], "onFileShared got the stored file");
    assert_eq!(seen["name"], "photo.png");
    wait_for(c, "return document.querySelectorAll('.vitrine-file-upload-file a').length === 1;").await;
    let link = c.find(Locator::Css(".vitrine-file-upload-file a")).await.expect("link").text().await.expect("text");
    assert_eq!(link, "photo.png");

    // The agent shares a file back: onFileShared fires for it as well, once.
    let pdf = fixtures::pdf(2_000);
    let form = reqwest::multipart::Form::new()
        .text("company_id", company_id.clone())
        .text("session_id", session_id.clone())
        .text("uploader", "agent")
        .part("file", reqwest::multipart::Part::bytes(pdf).file_name("answer.pdf"));
    let r = app.req(reqwest::Method::POST, "/api/chat/upload/", Some(&agent)).multipart(form).send().await.expect("up");
    assert_eq!(r.status(), StatusCode::CREATED);
    wait_for(c, "return window.sharedFiles.length === 2 && window.sharedFiles[1].uploader === 'agent';").await;
    wait_for(c, "return document.querySelectorAll('.vitrine-file-upload-file').length === 2;").await;

    // A file over the chat limit is refused: onError fires with the server's answer, the page
    // says so, and nothing reaches the session.
    let big = dir.path().join("too big.pdf");
    std::fs::write(&big, fixtures::pdf(CHAT_MAX_BYTES as usize + 2_000)).expect("write");
    let input = c.find(Locator::Css(".vitrine-file-upload input[type=file]")).await.expect("file input");
    input.send_keys(&big.display().to_string()).await.expect("choose the file");
    wait_for(c, "return window.uploadErrors.some(function (e) { return e.source === 'upload'; });").await;
    let err = c
        .execute("return window.uploadErrors.filter(function (e) { return e.source === 'upload'; });", vec![])
        .await
        .expect("js");
    assert_eq!(err.as_array().map(Vec::len), Some(1), "one refusal: {err}");
    let err = &err[0];
    assert_eq!(err["status"], 413, "{err}");
    assert_eq!(err["code"], "too_large", "{err}");
    assert_eq!(err["source"], "upload", "{err}");
    let alert = c.find(Locator::Css(".vitrine-file-upload [role=alert]")).await.expect("alert").text().await;
    assert!(!alert.expect("text").is_empty(), "the refusal is shown");
    let shared_count = c.execute("return window.sharedFiles.length;", vec![]).await.expect("js");
    assert_eq!(shared_count, 2, "a refused file is not shared");
    let files: Value = app
        .get(&format!("/api/chat/files/?session_id={session_id}&company_id={company_id}"), Some(&agent))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(files["count"], 2, "the refused file was not stored: {files}");

    // A token the server refuses: onError fires (the socket is refused, the REST probe says 401).
    c.goto(&page("not-a-valid-token")).await.expect("goto");
    wait_for(c, "return window.uploadErrors.length === 1;").await;
    let err = c.execute("return window.uploadErrors[0];", vec![]).await.expect("js");
    assert_eq!(err["status"], 401, "{err}");
    assert_eq!(err["source"], "connect", "{err}");
    browser.client.clone().close().await.expect("close");
}

/// Loads `src` (an SDK script of the app) into the page, then runs `body` (a function of the
/// script's arguments returning a promise) and answers what it resolves to.
const WITH_SDK: &str = r#"
var args = Array.prototype.slice.call(arguments);
var done = args.pop();
var src = args.shift();
var body = new Function('args', args.shift());
new Promise(function (ok, ko) {
  if (document.querySelector('script[data-sdk="' + src + '"]')) return ok();
  var s = document.createElement('script');
  s.src = src;
  s.setAttribute('data-sdk', src);
  s.onload = ok;
  s.onerror = function () { ko(new Error('cannot load ' + src)); };
  document.head.appendChild(s);
}).then(function () { return body(args); }).then(done, function (e) {
  done({ ok: false, status: e && e.status, code: e && e.code, error: String(e && (e.error || e.message) || e) });
});
"#;

/// One upload by `ChatbotFileUpload` without a jwt: the signed-in page's cookie authenticates.
const COOKIE_UPLOAD: &str = r#"
var client = new ChatbotFileUpload({ companyId: args[0], sessionId: args[1], autoConnect: false });
var file = new File(['sent with the page cookie\n'], args[2], { type: 'text/plain' });
return client.upload(file).then(function (f) { return { ok: true, file: f }; });
"#;

/// The SDK on a signed-in page of the app with no token at all: the session cookie authenticates,
/// and writes carry the page's CSRF token (`<meta name="csrf-token">`, the HttpOnly cookie's copy)
/// in `X-CSRF-Token`. Without that header the server refuses the same upload (403 csrf_failed);
/// `ShareWidget` creates a link the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_on_a_signed_in_page_uploads_with_the_cookie_and_the_csrf_header() {
    let app = TestApp::spawn().await;
    let (company_id, agent, session_id, _) = chat_session(&app).await;
    let asset = app.upload(&agent, "photo.png", fixtures::png(16, 16)).await;
    let Some(browser) = Browser::start().await else { return };
    let c = &browser.client;
    sign_in(c, &app, "agent@acme.test").await;
    c.goto(&app.url("/")).await.expect("goto");
    let meta = c
        .execute("var m = document.querySelector('meta[name=\"csrf-token\"]'); return m && m.content;", vec![])
        .await
        .expect("js");
    assert_eq!(meta.as_str().map(str::len), Some(64), "a signed-in page carries its CSRF token: {meta}");
    let run = |body: &'static str, extra: Vec<Value>| {
        let c = c.clone();
        let mut args = vec![json!("/static/sdk/chat-file-upload.js"), json!(body)];
        args.extend(extra);
        async move { c.execute_async(WITH_SDK, args).await.expect("js") }
    };
    let ids = |name: &str| vec![json!(company_id), json!(session_id), json!(name)];

    // No jwt: the cookie and the header from the page's meta tag.
    let v = run(COOKIE_UPLOAD, ids("cookie.txt")).await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["file"]["uploader"], "agent", "{v}");
    assert_eq!(v["file"]["name"], "cookie.txt", "{v}");

    // The same page without its token: the SDK has no header to send, the server refuses.
    c.execute("document.querySelector('meta[name=\"csrf-token\"]').remove();", vec![]).await.expect("js");
    let v = run(COOKIE_UPLOAD, ids("refused.txt")).await;
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["status"], 403, "{v}");
    assert_eq!(v["code"], "csrf_failed", "{v}");

    // A wrong token given as an option is refused too; the right one as an option is accepted.
    const WITH_OPTION: &str = r#"
var client = new ChatbotFileUpload({ companyId: args[0], sessionId: args[1], autoConnect: false, csrfToken: args[3] });
return client.upload(new File(['x\n'], args[2], { type: 'text/plain' })).then(function (f) { return { ok: true, file: f }; });
"#;
    let mut wrong = ids("wrong.txt");
    wrong.push(json!("0".repeat(64)));
    let v = run(WITH_OPTION, wrong).await;
    assert_eq!((v["status"].clone(), v["code"].clone()), (json!(403), json!("csrf_failed")), "{v}");
    let mut right = ids("option.txt");
    right.push(meta.clone());
    let v = run(WITH_OPTION, right).await;
    assert_eq!(v["ok"], true, "{v}");

    // Exactly the two accepted uploads are stored.
    let files: Value = app
        .get(&format!("/api/chat/files/?session_id={session_id}&company_id={company_id}"), Some(&agent))
        .await
        .json()
        .await
        .expect("json");
    let names: Vec<&str> =
        files["files"].as_array().expect("files").iter().filter_map(|f| f["original_name"].as_str()).collect();
    assert_eq!(names, ["cookie.txt", "option.txt"], "{files}");

    // ShareWidget without a token: the cookie and the CSRF header create the link; without the
    // header the same request is refused.
    c.goto(&app.url("/")).await.expect("goto");
    const SHARE: &str = r#"
var box = document.createElement('div');
document.body.appendChild(box);
return new Promise(function (ok) {
  new ShareWidget(args[0], { container: box, token: '', onCreated: function (s) { ok({ ok: true, share: s }); },
    onError: function (e) { ok({ ok: false, status: e.status, code: e.code }); } });
});
"#;
    let share = |c: fantoccini::Client| {
        let args = vec![json!("/static/sdk/share-widget.js"), json!(SHARE), asset["id"].clone()];
        async move { c.execute_async(WITH_SDK, args).await.expect("js") }
    };
    let v = share(c.clone()).await;
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["share"]["uuid"].is_string(), "{v}");
    c.execute("document.querySelector('meta[name=\"csrf-token\"]').remove();", vec![]).await.expect("js");
    let v = share(c.clone()).await;
    assert_eq!(
        (v["ok"].clone(), v["status"].clone(), v["code"].clone()),
        (json!(false), json!(403), json!("csrf_failed")),
        "{v}"
    );
    browser.client.clone().close().await.expect("close");
}
