//! `TestApp::spawn()`: the real app on port 0 with a fresh database and blob directory, plus typed
//! helpers. PostgreSQL runs when `TEST_DATABASE_URL` is set (and fails loudly if it is set but
//! unreachable); S3 is a real s3s-fs server started in-process. Beside it: `pages` (a page
//! session: cookies and the pages' CSRF token), `redis` (the checked `TEST_REDIS_URL`, instances
//! on one bus, a redis-server of the test's own), `browser` (headless Chromium) and `oidc` (an
//! OpenID provider for the single sign-on tests). Feature files
//! import from these helpers only, never from each other.
#![allow(dead_code, reason = "helpers are shared by many test files; not every file uses each")]

pub mod browser;
pub mod oidc;
pub mod pages;
pub mod redis;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use vitrine::app::AppState;
use vitrine::config::{Config, StorageKind};
use vitrine::domain::time::{Clock, SystemClock};

/// Which database a test runs on.
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite,
    /// Base URL of a PostgreSQL server; each app gets a fresh database on it.
    Postgres(String),
}

impl Db {
    /// PostgreSQL from `TEST_DATABASE_URL`, or `None` (after saying why) when it is not set.
    pub fn postgres() -> Option<Db> {
        match std::env::var("TEST_DATABASE_URL") {
            Ok(url) if !url.trim().is_empty() => Some(Db::Postgres(url)),
            _ => {
                eprintln!("skipped: TEST_DATABASE_URL is not set, so the PostgreSQL variant of this test did not run");
                None
            }
        }
    }

    /// A fresh database URL for one app.
    pub async fn fresh_url(&self, dir: &std::path::Path) -> String {
        match self {
            Db::Sqlite => format!("sqlite://{}?mode=rwc", dir.join("vitrine.db").display()),
            Db::Postgres(base) => {
                sqlx::any::install_default_drivers();
                let name = format!("vitrine_t_{}", uuid::Uuid::new_v4().simple());
                let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(base)
                    .await
                    .unwrap_or_else(|e| panic!("TEST_DATABASE_URL is set but PostgreSQL is unreachable: {e}"));
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let mut url = url::Url::parse(base).expect("TEST_DATABASE_URL is a URL");
                url.set_path(&format!("/{name}"));
                url.to_string()
            }
        }
    }
}

/// A real S3 server (s3s-fs) on a loopback port, with one bucket.
pub struct S3Server {
    pub endpoint: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    pub root: tempfile::TempDir,
    /// Every request the server received: (method, path).
    pub requests: Arc<std::sync::Mutex<Vec<(String, String)>>>,
    stop: CancellationToken,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl S3Server {
    pub async fn start() -> S3Server {
        use hyper_util::rt::{TokioExecutor, TokioIo};
        use hyper_util::server::conn::auto::Builder as ConnBuilder;
        use s3s::auth::SimpleAuth;
        use s3s::service::S3ServiceBuilder;

        let root = tempfile::tempdir().expect("tempdir");
        let bucket = "vitrine-test".to_string();
        std::fs::create_dir_all(root.path().join(&bucket)).expect("bucket dir");
        let fs = s3s_fs::FileSystem::new(root.path()).expect("s3s-fs");
        let (ak, sk) = ("test-access-key".to_string(), "test-secret-key-0123456789".to_string());
        let mut b = S3ServiceBuilder::new(fs);
        b.set_auth(SimpleAuth::from_single(ak.clone(), sk.clone()));
        let s3 = b.build();
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = requests.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            log.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((req.method().to_string(), req.uri().path().to_string()));
            hyper::service::Service::call(&s3, req)
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind s3");
        let addr = listener.local_addr().expect("addr");
        let stop = CancellationToken::new();
        let stop2 = stop.clone();
        tokio::spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            loop {
                let socket = tokio::select! {
                    r = listener.accept() => match r { Ok((s, _)) => s, Err(_) => continue },
                    _ = stop2.cancelled() => break,
                };
                let conn = http.serve_connection(TokioIo::new(socket), service.clone()).into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
        });
        S3Server { endpoint: format!("http://{addr}"), bucket, access_key: ak, secret_key: sk, root, requests, stop }
    }
}

/// How to build one test app.
pub struct Spawn {
    pub db: Db,
    pub s3: Option<Arc<S3Server>>,
    pub tweak: Box<dyn FnOnce(&mut Config) + Send>,
    /// A clock the test sets by hand (a fixed date: analytics days, job leases); without it the
    /// app follows the system's. `TestApp::advance` moves either.
    pub clock: Option<Arc<vitrine::domain::time::ManualClock>>,
}

impl Default for Spawn {
    fn default() -> Self {
        Spawn { db: Db::Sqlite, s3: None, tweak: Box::new(|_| {}), clock: None }
    }
}

/// The clock of a test app: the given clock (the system's by default) moved on by
/// `TestApp::advance`, so a test expires tokens, links and sessions without editing rows.
pub struct TestClock {
    base: Arc<dyn Clock>,
    ahead_ms: AtomicI64,
}

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.base.now_ms() + self.ahead_ms.load(Ordering::SeqCst)
    }
}

pub struct TestApp {
    pub base: String,
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub state: AppState,
    pub dir: tempfile::TempDir,
    pub s3: Option<Arc<S3Server>>,
    /// The app's clock (`advance` moves it).
    pub clock: Arc<TestClock>,
    shutdown: CancellationToken,
    /// `vitrine::app::run`'s task, for `shutdown`.
    run: std::sync::Mutex<Option<tokio::task::JoinHandle<anyhow::Result<()>>>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub fn init() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

impl TestApp {
    /// SQLite, local storage, defaults.
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(Spawn::default()).await
    }

    pub async fn on(db: Db) -> TestApp {
        TestApp::spawn_with(Spawn { db, ..Default::default() }).await
    }

    pub async fn spawn_with(opts: Spawn) -> TestApp {
        init();
        let dir = tempfile::tempdir().expect("tempdir");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let base = format!("http://{addr}");
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            listen: addr.to_string(),
            public_url: base.clone(),
            database_url: Some(opts.db.fresh_url(dir.path()).await),
            database_max_connections: 8,
            log_level: "warn".into(),
            // Every test client is 127.0.0.1, and some open hundreds of connections at once on
            // purpose (concurrent downloads); the per-address cap has its own tests.
            max_connections_per_ip: 1_000,
            ..Config::default()
        };
        if let Some(s3) = &opts.s3 {
            config.storage = StorageKind::S3;
            config.s3_endpoint = Some(s3.endpoint.clone());
            config.s3_bucket = Some(s3.bucket.clone());
            config.s3_access_key = Some(s3.access_key.clone());
            config.s3_secret_key = Some(s3.secret_key.clone());
            config.s3_path_style = true;
        }
        (opts.tweak)(&mut config);
        let from: Arc<dyn Clock> = match opts.clock {
            Some(c) => c,
            None => Arc::new(SystemClock),
        };
        let clock = Arc::new(TestClock { base: from, ahead_ms: AtomicI64::new(0) });
        let state = AppState::build_with_clock(config, clock.clone()).await.expect("app builds");
        let shutdown = CancellationToken::new();
        let run = tokio::spawn(vitrine::app::run(listener, state.clone(), shutdown.clone()));
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        TestApp { base, addr, client, state, dir, s3: opts.s3, clock, shutdown, run: std::sync::Mutex::new(Some(run)) }
    }

    /// Moves the app's clock on by `by` (tokens, links, sessions and grants then expire).
    pub fn advance(&self, by: Duration) {
        self.clock.ahead_ms.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }

    /// Starts a graceful shutdown, as SIGTERM does; await the handle for `run`'s end.
    pub fn shutdown(&self) -> tokio::task::JoinHandle<anyhow::Result<()>> {
        self.shutdown.cancel();
        self.run.lock().unwrap_or_else(|e| e.into_inner()).take().expect("the app is shut down once")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request with an optional bearer token.
    pub fn req(&self, method: Method, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
        let mut r = self.client.request(method, self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        self.req(Method::GET, path, token).send().await.expect("request")
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> reqwest::Response {
        self.req(Method::POST, path, token).json(body).send().await.expect("request")
    }

    pub async fn patch_json(&self, path: &str, token: Option<&str>, body: &Value) -> reqwest::Response {
        self.req(Method::PATCH, path, token).json(body).send().await.expect("request")
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        self.req(Method::DELETE, path, token).send().await.expect("request")
    }

    /// Registers an account and returns (token, user id).
    pub async fn register(&self, email: &str, name: &str) -> (String, i64) {
        let r = self
            .post_json(
                "/api/auth/register/",
                None,
                &serde_json::json!({"email": email, "password": "correct horse", "name": name}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED, "register {email}");
        let v: Value = r.json().await.expect("json");
        (v["access_token"].as_str().expect("token").to_string(), v["user"]["id"].as_i64().expect("id"))
    }

    /// The first account (an admin) and a second ordinary user: (admin token, user token).
    pub async fn admin_and_user(&self) -> (String, String) {
        let (admin, _) = self.register("admin@example.com", "Ada Admin").await;
        let (user, _) = self.register("user@example.com", "Uma User").await;
        (admin, user)
    }

    /// Multipart upload of one file with extra text fields.
    pub async fn upload_with(
        &self,
        token: Option<&str>,
        name: &str,
        bytes: Vec<u8>,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut form = reqwest::multipart::Form::new();
        for (k, v) in fields {
            form = form.text(k.to_string(), v.to_string());
        }
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(name.to_string())
            .mime_str("application/octet-stream")
            .expect("mime");
        form = form.part("file", part);
        self.req(Method::POST, "/api/v3/assets/", token).multipart(form).send().await.expect("upload")
    }

    pub async fn upload(&self, token: &str, name: &str, bytes: Vec<u8>) -> Value {
        let r = self.upload_with(Some(token), name, bytes, &[]).await;
        let status = r.status();
        let body = r.text().await.expect("body");
        assert_eq!(status, StatusCode::CREATED, "upload {name}: {body}");
        serde_json::from_str(&body).expect("json")
    }

    /// A multipart upload of a PDF whose bytes the test sends when it wants: (the task that
    /// sends the request and gets its response, the sender of the bytes).
    pub fn streamed_upload(
        &self,
        token: &str,
    ) -> (
        tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>,
        futures::channel::mpsc::Sender<std::io::Result<Vec<u8>>>,
    ) {
        let (tx, rx) = futures::channel::mpsc::channel::<std::io::Result<Vec<u8>>>(1);
        let part = reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(rx))
            .file_name("streamed.pdf")
            .mime_str("application/pdf")
            .expect("mime");
        let form = reqwest::multipart::Form::new().part("file", part);
        let req = self.req(Method::POST, "/api/v3/assets/", Some(token)).multipart(form);
        (tokio::spawn(req.send()), tx)
    }
}

/// A free loopback port (free when chosen: whoever binds it later may find it taken).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port").local_addr().expect("addr").port()
}

/// Asserts the SPEC §0 error shape and returns the body.
pub async fn assert_error(r: reqwest::Response, status: StatusCode, code: &str) -> Value {
    let got = r.status();
    let text = r.text().await.expect("body");
    assert_eq!(got, status, "status; body: {text}");
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("error body is JSON: {text}"));
    assert_eq!(v["code"], code, "code; body: {text}");
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "error sentence; body: {text}");
    v
}

/// Asserts a 201 and returns the JSON body (the body is shown when it is not a 201).
pub async fn created(r: reqwest::Response) -> Value {
    let status = r.status();
    let text = r.text().await.expect("body");
    assert_eq!(status, StatusCode::CREATED, "{text}");
    serde_json::from_str(&text).expect("json")
}

/// The comment objects of a session recording's `comment` events, in the recording's order.
pub fn recorded_comments(recording: &Value) -> Vec<Value> {
    recording["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["type"] == "comment")
        .map(|e| e["data"]["comment"].clone())
        .collect()
}

/// The `content` of each comment.
pub fn contents(comments: &[Value]) -> Vec<String> {
    comments.iter().map(|c| c["content"].as_str().expect("content").to_string()).collect()
}

/// Test files.
pub mod fixtures {
    /// A silent mono 8 kHz 16-bit WAV of `seconds`.
    pub fn wav(seconds: u32) -> Vec<u8> {
        let data = seconds * 16_000;
        let mut v = b"RIFF".to_vec();
        v.extend_from_slice(&(36 + data).to_le_bytes());
        v.extend_from_slice(b"WAVEfmt \x10\0\0\0\x01\0\x01\0\x40\x1f\0\0\x80\x3e\0\0\x02\0\x10\0data");
        v.extend_from_slice(&data.to_le_bytes());
        v.resize(v.len() + data as usize, 0);
        v
    }

    /// A small but valid-looking PDF of about `n` bytes.
    pub fn pdf(n: usize) -> Vec<u8> {
        let mut v = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
        while v.len() + 7 < n {
            v.extend_from_slice(b"% fill\n");
        }
        v.extend_from_slice(b"%%EOF\n");
        v
    }

    pub fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
        let mut out = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(img).write_to(&mut out, image::ImageFormat::Png).expect("png");
        out.into_inner()
    }

    /// A PNG header that claims `w`x`h` pixels (a decompression bomb's calling card).
    pub fn png_claiming(w: u32, h: u32) -> Vec<u8> {
        let mut v = png(1, 1);
        v[16..20].copy_from_slice(&w.to_be_bytes());
        v[20..24].copy_from_slice(&h.to_be_bytes());
        // IHDR's CRC covers its type and data (bytes 12..29); a real bomb has a valid one.
        let crc = crc32fast::hash(&v[12..29]);
        v[29..33].copy_from_slice(&crc.to_be_bytes());
        v
    }

    pub fn elf() -> Vec<u8> {
        let mut v = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0".to_vec();
        v.resize(512, 0);
        v
    }

    pub fn pe() -> Vec<u8> {
        let mut v = b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff\0\0".to_vec();
        v.resize(512, 0);
        v
    }

    /// The 68-byte EICAR anti-virus test file: harmless, detected by every scanner (by `Clamd`'s
    /// one-signature database here).
    pub fn eicar() -> Vec<u8> {
        br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*".to_vec()
    }
}

/// Declares each listed `async fn name(db: Db)` as a test on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Db::Sqlite).await
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = $crate::helpers::Db::postgres() else { return };
                    super::$name(db).await
                }
            )*
        }
    };
}

/// A local SMTP sink: accepts every mail and keeps it (headers and body as received).
pub struct SmtpSink {
    pub url: String,
    pub mails: Arc<std::sync::Mutex<Vec<String>>>,
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind smtp");
        let url = format!("smtp://{}", listener.local_addr().expect("addr"));
        let mails: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
        let store = mails.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let store = store.clone();
                tokio::spawn(async move {
                    let (r, mut w) = sock.into_split();
                    let mut lines = BufReader::new(r).lines();
                    let _ = w.write_all(b"220 sink ESMTP\r\n").await;
                    let mut in_data = false;
                    let mut data = String::new();
                    while let Ok(Some(line)) = lines.next_line().await {
                        if in_data {
                            if line == "." {
                                in_data = false;
                                store.lock().unwrap_or_else(|e| e.into_inner()).push(std::mem::take(&mut data));
                                let _ = w.write_all(b"250 OK queued\r\n").await;
                            } else {
                                data.push_str(&line);
                                data.push('\n');
                            }
                            continue;
                        }
                        let cmd = line.to_ascii_uppercase();
                        let reply: &[u8] = if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
                            b"250-sink\r\n250 8BITMIME\r\n"
                        } else if cmd.starts_with("DATA") {
                            in_data = true;
                            b"354 go ahead\r\n"
                        } else if cmd.starts_with("QUIT") {
                            let _ = w.write_all(b"221 bye\r\n").await;
                            break;
                        } else {
                            b"250 OK\r\n"
                        };
                        let _ = w.write_all(reply).await;
                    }
                });
            }
        });
        SmtpSink { url, mails }
    }

    pub fn mails(&self) -> Vec<String> {
        self.mails.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A WebSocket client speaking JSON text frames.
pub struct Ws {
    pub inner: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
}

impl Ws {
    /// Connects to `ws://{addr}{path}`; panics when the upgrade is refused.
    pub async fn connect(app: &TestApp, path: &str) -> Ws {
        Ws::try_connect(app, path).await.unwrap_or_else(|status| panic!("upgrade of {path} refused with {status}"))
    }

    /// Connects, or returns the HTTP status that refused the upgrade.
    pub async fn try_connect(app: &TestApp, path: &str) -> Result<Ws, u16> {
        match tokio_tungstenite::connect_async(format!("ws://{}{path}", app.addr)).await {
            Ok((inner, _)) => Ok(Ws { inner }),
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
            Err(e) => panic!("connect {path}: {e}"),
        }
    }

    /// Connects to a full `ws://` URL (through a proxy, say) and returns the socket with the
    /// handshake's response headers; panics when the upgrade is refused.
    pub async fn connect_url(url: &str) -> (Ws, tokio_tungstenite::tungstenite::http::HeaderMap) {
        Ws::try_connect_url(url).await.unwrap_or_else(|status| panic!("upgrade of {url} refused with {status}"))
    }

    /// [`Ws::connect_url`], or the HTTP status that refused the upgrade.
    pub async fn try_connect_url(url: &str) -> Result<(Ws, tokio_tungstenite::tungstenite::http::HeaderMap), u16> {
        match tokio_tungstenite::connect_async(url).await {
            Ok((inner, response)) => Ok((Ws { inner }, response.headers().clone())),
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
            Err(e) => panic!("connect {url}: {e}"),
        }
    }

    /// The HTTP status of a WebSocket handshake for `path` sent with the extra `headers` (an
    /// `Origin`, a `Cookie`): 101 when the socket opened.
    pub async fn handshake_status(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> u16 {
        let mut req = tokio_tungstenite::tungstenite::http::Request::builder()
            .uri(format!("ws://{}{path}", app.addr))
            .header("Host", app.addr.to_string());
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req
            .header("Connection", "Upgrade")
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", "13")
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
            .body(())
            .expect("request");
        match tokio_tungstenite::connect_async(req).await {
            Ok((_socket, resp)) => resp.status().as_u16(),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
            Err(e) => panic!("handshake of {path} failed: {e}"),
        }
    }

    pub async fn send(&mut self, v: &Value) {
        self.send_text(&v.to_string()).await;
    }

    pub async fn send_text(&mut self, t: &str) {
        use futures::SinkExt;
        self.inner.send(tokio_tungstenite::tungstenite::Message::Text(t.into())).await.expect("send");
    }

    /// The next JSON frame (pings skipped); panics after 5 seconds or when closed.
    pub async fn next(&mut self) -> Value {
        self.next_within(Duration::from_secs(5)).await.unwrap_or_else(|| panic!("no message within 5 s"))
    }

    /// The next JSON frame, None on timeout or close.
    pub async fn next_within(&mut self, d: Duration) -> Option<Value> {
        use futures::StreamExt;
        let deadline = tokio::time::Instant::now() + d;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.inner.next()).await.ok()??;
            match msg {
                Ok(tokio_tungstenite::tungstenite::Message::Text(t)) => {
                    return Some(serde_json::from_str(&t).expect("json frame"));
                }
                Ok(tokio_tungstenite::tungstenite::Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// The next frame of type `kind`, skipping others.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let v = self.next().await;
            if v["type"] == kind {
                return v;
            }
        }
    }

    /// Whether the server closes the socket within `d` (frames before the close are skipped).
    pub async fn closed_within(&mut self, d: Duration) -> bool {
        use futures::StreamExt;
        let deadline = tokio::time::Instant::now() + d;
        loop {
            match tokio::time::timeout_at(deadline, self.inner.next()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_)))) => {
                    return true;
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// The close code of the socket's close frame (frames before it are skipped); None when the
    /// socket ends without one (1006) or nothing comes within `d`. Answers the close, as browsers do.
    pub async fn close_code(&mut self, d: Duration) -> Option<u16> {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        let deadline = tokio::time::Instant::now() + d;
        loop {
            match tokio::time::timeout_at(deadline, self.inner.next()).await.ok()?? {
                Ok(Message::Close(frame)) => {
                    // Polling on sends our answer to the close.
                    let _ = tokio::time::timeout(Duration::from_secs(1), self.inner.next()).await;
                    return frame.map(|f| u16::from(f.code));
                }
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }
}

/// A real clamd on a loopback port, with a one-signature database that detects
/// [`fixtures::eicar`] as `Vitrine.Test.EICAR` (clamd reports it as `Vitrine.Test.EICAR.UNOFFICIAL`).
/// freshclam cannot download here, so that signature is the whole database.
pub struct Clamd {
    /// `127.0.0.1:<port>`, for `clamd_address`.
    pub address: String,
    child: tokio::process::Child,
    dir: tempfile::TempDir,
}

impl Drop for Clamd {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

impl Clamd {
    /// Starts clamd and waits until it answers PING. `None` (after saying why) when clamd is not
    /// installed, unless `CI=true` or `TEST_CLAMD` is set: then the test fails instead.
    pub async fn start() -> Option<Clamd> {
        let Some(bin) = Clamd::binary() else {
            if std::env::var("CI").is_ok_and(|v| v == "true") || std::env::var_os("TEST_CLAMD").is_some() {
                panic!("clamd is not installed but CI=true or TEST_CLAMD is set (apt-get install clamav-daemon)");
            }
            eprintln!("skipped: clamd not installed (apt-get install clamav-daemon)");
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        // A SHA-256 hash signature (`.hsb`: sha256:size:name) computed from the fixture, so the
        // two cannot drift apart. (An MD5 `.hdb` line works the same, but no MD5 crate is a dependency.)
        let eicar = fixtures::eicar();
        let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&eicar));
        std::fs::write(dir.path().join("test.hsb"), format!("{sha256}:{}:Vitrine.Test.EICAR\n", eicar.len()))
            .expect("write signature database");
        // The port is free when chosen but could be taken before clamd binds it: try a few.
        for _ in 0..3 {
            let port = free_port();
            let d = dir.path().display();
            // No `User` and no `LocalSocket`: clamd runs as whoever runs the tests (root included).
            let conf = format!(
                "Foreground yes\nTCPSocket {port}\nTCPAddr 127.0.0.1\nDatabaseDirectory {d}\nLogFile {d}/clamd.log\n\
                 PidFile {d}/clamd.pid\nStreamMaxLength 40M\nMaxFileSize 40M\nMaxScanSize 100M\n"
            );
            let conf_path = dir.path().join("clamd.conf");
            std::fs::write(&conf_path, conf).expect("write clamd.conf");
            let stderr = std::fs::File::create(dir.path().join("clamd.stderr")).expect("clamd.stderr");
            let mut child = tokio::process::Command::new(&bin)
                .arg("-c")
                .arg(&conf_path)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(stderr)
                .kill_on_drop(true)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
            let address = format!("127.0.0.1:{port}");
            let scanner =
                vitrine::scan::Scanner::new(vitrine::scan::ClamdAddr::Tcp(address.clone()), Duration::from_secs(2));
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            loop {
                if scanner.ping().await.is_ok() {
                    return Some(Clamd { address, child, dir });
                }
                if let Some(status) = child.try_wait().expect("clamd status") {
                    let log = Clamd::logs(dir.path());
                    if log.contains("Address already in use") {
                        break; // the port was taken meanwhile: next port
                    }
                    panic!("clamd exited with {status} before answering PING:\n{log}");
                }
                if tokio::time::Instant::now() > deadline {
                    panic!("clamd did not answer PING within 60 s:\n{}", Clamd::logs(dir.path()));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        panic!("clamd could not bind a free port three times:\n{}", Clamd::logs(dir.path()));
    }

    /// `/usr/sbin/clamd` (not on a normal user's PATH), else `clamd` on PATH.
    fn binary() -> Option<std::path::PathBuf> {
        let sbin = std::path::PathBuf::from("/usr/sbin/clamd");
        if sbin.is_file() {
            return Some(sbin);
        }
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path).map(|d| d.join("clamd")).find(|p| p.is_file())
    }

    /// clamd's stderr and log file, for failure messages.
    fn logs(dir: &std::path::Path) -> String {
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        format!("--- stderr\n{}--- clamd.log\n{}", read("clamd.stderr"), read("clamd.log"))
    }

    /// The log clamd wrote so far (what it scanned and found).
    pub fn log(&self) -> String {
        Clamd::logs(self.dir.path())
    }
}

/// A company and one visitor session: (company id, session id, visitor token).
pub async fn chat_session(app: &TestApp) -> (String, String, String) {
    let (admin, _) = app.register("admin@example.com", "Ada Admin").await;
    let c = created(app.post_json("/api/companies/", Some(&admin), &serde_json::json!({"name": "Acme"})).await).await;
    let s =
        created(app.post_json("/api/chat/sessions/", None, &serde_json::json!({"widget_key": c["widget_key"]})).await)
            .await;
    let id = |v: &Value, k: &str| v[k].as_str().expect(k).to_string();
    (id(&c, "company_id"), id(&s, "session_id"), id(&s, "token"))
}

/// Uploads `bytes` as `name` into the chat session `ids` (company id, session id) with `token`.
pub async fn chat_upload(
    app: &TestApp,
    token: &str,
    ids: (&str, &str),
    name: &str,
    bytes: Vec<u8>,
) -> reqwest::Response {
    let form = reqwest::multipart::Form::new()
        .text("company_id", ids.0.to_string())
        .text("session_id", ids.1.to_string())
        .part("file", reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()));
    app.req(reqwest::Method::POST, "/api/chat/upload/", Some(token)).multipart(form).send().await.expect("upload")
}
