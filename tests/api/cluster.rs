//! Several instances behind the reverse proxy we ship (SPEC §9): `Cluster`, two instances on one
//! PostgreSQL database, one S3 store and one Redis, behind nginx started from
//! `deploy/nginx/vitrine.conf`; and the tests that uploads, share pages, Range downloads,
//! WebSockets and `X-Forwarded-For` work through it.
//!
//! Writing a test against a cluster:
//!
//! ```ignore
//! let Some(cluster) = Cluster::start(|c| c.share_access_rate_per_ip_per_minute = 100).await else { return };
//! let (token, _) = cluster.register("ada@example.com", "Ada").await;  // through nginx
//! let r = cluster.get("/api/auth/me/", Some(&token)).await;           // through nginx
//! let who = cluster.answered_by(&r);                                   // Instance::A or ::B
//! cluster.app(who.other()).get("/healthz", None).await;                // straight to one instance
//! ```
//!
//! Which instance answered is told by nginx: the harness adds `X-Vitrine-Upstream:
//! $upstream_addr` to every proxied response (and logs it). Vitrine's own `/metrics` cannot tell:
//! its Prometheus recorder is global to the process (`app::metrics_handle`), so two instances in
//! one test process render the same counters.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use vitrine::config::Config;

use crate::helpers::redis::{redis_url, wait_connected};
use crate::helpers::{Db, S3Server, Spawn, TestApp, Ws, assert_error, contents, created, fixtures, recorded_comments};

const JWT: &str = "0123456789abcdef0123456789abcdef-jwt-shared-by-the-cluster";
const HMAC: &str = "0123456789abcdef0123456789abcdef-hmac-shared-by-the-cluster";

/// The response header, added by the harness's nginx, that names the instance that answered.
pub const UPSTREAM_HEADER: &str = "x-vitrine-upstream";

/// One of the two instances of a [`Cluster`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Instance {
    A,
    B,
}

impl Instance {
    pub fn other(self) -> Instance {
        match self {
            Instance::A => Instance::B,
            Instance::B => Instance::A,
        }
    }
}

/// Two Vitrine instances behind nginx, sharing everything SPEC §9 says they share: one fresh
/// PostgreSQL database, one S3 store (in-process s3s-fs), one Redis bus, the same `jwt_secret`
/// and `hmac_secret`. `public_url` of both is the proxy, and both trust it
/// (`trusted_proxies = ["127.0.0.1/32"]`). Dropping it stops nginx and both instances.
pub struct Cluster {
    /// Base URL of nginx, `http://127.0.0.1:<port>`: every instance's `public_url`.
    pub proxy: String,
    /// A client for requests through the proxy (redirects are not followed, as with `TestApp`).
    pub client: reqwest::Client,
    pub a: TestApp,
    pub b: TestApp,
    #[allow(dead_code, reason = "for tests that look at the shared store or services")]
    pub s3: Arc<S3Server>,
    /// The PostgreSQL database both instances use.
    #[allow(dead_code, reason = "for tests that look at the shared store or services")]
    pub database_url: String,
    /// The Redis both instances use (`TEST_REDIS_URL`).
    #[allow(dead_code, reason = "for tests that look at the shared store or services")]
    pub bus_url: String,
    nginx: Nginx,
}

impl Cluster {
    /// Starts PostgreSQL-backed instances A and B with `tweak` applied to both configurations
    /// (after the cluster's own settings; B's `database_url` is then set to A's), then nginx in
    /// front of them, and waits until both are on the bus and nginx answers.
    ///
    /// `None`, after saying why, when `TEST_DATABASE_URL` or `TEST_REDIS_URL` is not set. When
    /// they are set, a missing nginx, an unreachable PostgreSQL or Redis fail the test.
    pub async fn start(tweak: impl Fn(&mut Config) + Clone + Send + 'static) -> Option<Cluster> {
        let has = |k: &str| std::env::var(k).is_ok_and(|v| !v.trim().is_empty());
        if !has("TEST_DATABASE_URL") || !has("TEST_REDIS_URL") {
            eprintln!(
                "skipped: the scale-out tests need TEST_DATABASE_URL (PostgreSQL) and TEST_REDIS_URL (Redis) \
                 for two instances sharing one database and one bus"
            );
            return None;
        }
        let nginx_bin = Nginx::binary().unwrap_or_else(|| {
            panic!(
                "TEST_DATABASE_URL and TEST_REDIS_URL are set, so the scale-out tests run, and they need nginx \
                 (/usr/sbin/nginx or nginx on PATH): apt-get install nginx-light (.ci/run installs it)"
            )
        });
        let db = Db::postgres()?;
        let bus_url = redis_url().await?;
        let s3 = Arc::new(S3Server::start().await);
        // nginx's port first: it is every instance's public_url. It stays bound here until nginx
        // starts, so that no instance or other test takes it meanwhile (a port another test's
        // instance took would send this test's requests to that test's cluster).
        let reserved = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let listen = reserved.local_addr().expect("addr");
        let proxy = format!("http://{listen}");

        let shared = {
            let (proxy, bus_url, tweak) = (proxy.clone(), bus_url.clone(), tweak.clone());
            move |c: &mut Config| {
                c.public_url = proxy;
                c.bus_url = Some(bus_url);
                c.jwt_secret = Some(JWT.into());
                c.hmac_secret = Some(HMAC.into());
                c.trusted_proxies = vec!["127.0.0.1/32".into()];
                tweak(c);
            }
        };
        let a = TestApp::spawn_with(Spawn {
            db,
            s3: Some(s3.clone()),
            tweak: Box::new(shared.clone()),
            ..Default::default()
        })
        .await;
        // B opens the database A created (as `helpers::redis::pair_with` shares its SQLite file); the
        // SQLite default below only stands in until the tweak replaces it (no database made).
        let database_url = a.state.config.database_url.clone().expect("A has a database_url");
        let url = database_url.clone();
        let b = TestApp::spawn_with(Spawn {
            db: Db::Sqlite,
            s3: Some(s3.clone()),
            tweak: Box::new(move |c| {
                shared(c);
                c.database_url = Some(url);
            }),
            ..Default::default()
        })
        .await;
        wait_connected(&a, Duration::from_secs(5)).await;
        wait_connected(&b, Duration::from_secs(5)).await;

        drop(reserved);
        let nginx = Nginx::start(&nginx_bin, listen, [a.addr, b.addr]).await;
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        // Whoever answers on the port must be this cluster's nginx.
        let r = client.get(format!("{proxy}/healthz")).send().await.expect("healthz through the proxy");
        let upstream = r.headers().get(UPSTREAM_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        assert!(
            upstream == a.addr.to_string() || upstream == b.addr.to_string(),
            "{listen} is not this cluster's nginx (upstream {upstream:?}): another process took the port\n{}",
            nginx.errors()
        );
        let cluster = Cluster { proxy, client, a, b, s3, database_url, bus_url, nginx };
        // That check's line is in nginx's log before a test reads it (nginx writes it just after
        // the response).
        for _ in 0..100 {
            if !cluster.upstreams_logged().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Some(cluster)
    }

    /// The instance `which`, to reach it directly (not through nginx) or to read its state.
    pub fn app(&self, which: Instance) -> &TestApp {
        match which {
            Instance::A => &self.a,
            Instance::B => &self.b,
        }
    }

    /// The instance listening on `addr`, as nginx names it in `$upstream_addr`.
    pub fn instance_at(&self, addr: &str) -> Option<Instance> {
        [Instance::A, Instance::B].into_iter().find(|i| self.app(*i).addr.to_string() == addr.trim())
    }

    /// Which instance produced a response that came through the proxy (from the harness's
    /// `X-Vitrine-Upstream` header); panics when nginx did not say or named another server.
    pub fn answered_by(&self, r: &reqwest::Response) -> Instance {
        self.upstream_in(r.headers())
    }

    /// [`Cluster::answered_by`] for the headers of a WebSocket handshake (same `http` types).
    pub fn upstream_in(&self, headers: &reqwest::header::HeaderMap) -> Instance {
        let v = headers
            .get(UPSTREAM_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("the response has no {UPSTREAM_HEADER} header: {headers:?}"));
        // After a failed attempt nginx lists every server it tried ("a, b"): the last one answered.
        let last = v.rsplit(',').next().unwrap_or(v);
        self.instance_at(last).unwrap_or_else(|| panic!("{UPSTREAM_HEADER}: {v} is neither instance"))
    }

    /// `proxy` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.proxy, path)
    }

    /// The `ws://` URL of `path` through the proxy.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws{}", self.url(path).trim_start_matches("http"))
    }

    /// A request through the proxy with an optional bearer token.
    pub fn req(&self, method: Method, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
        let mut r = self.client.request(method, self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        self.req(Method::GET, path, token).send().await.expect("request through the proxy")
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> reqwest::Response {
        self.req(Method::POST, path, token).json(body).send().await.expect("request through the proxy")
    }

    /// Registers an account through the proxy; returns (token, user id).
    pub async fn register(&self, email: &str, name: &str) -> (String, i64) {
        let r = self
            .post_json("/api/auth/register/", None, &json!({"email": email, "password": "correct horse", "name": name}))
            .await;
        assert_eq!(r.status(), StatusCode::CREATED, "register {email} through the proxy");
        let v: Value = r.json().await.expect("json");
        (v["access_token"].as_str().expect("token").to_string(), v["user"]["id"].as_i64().expect("id"))
    }

    /// Uploads `bytes` as an asset through the proxy, streamed in 64 KiB chunks with no length
    /// announced (chunked transfer encoding), and returns the asset JSON.
    pub async fn upload_streamed(&self, token: &str, name: &str, bytes: Vec<u8>) -> Value {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> = bytes.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
        let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
        let part = reqwest::multipart::Part::stream(body).file_name(name.to_string());
        let form = reqwest::multipart::Form::new().part("file", part);
        let r = self.req(Method::POST, "/api/v3/assets/", Some(token)).multipart(form).send().await.expect("upload");
        let status = r.status();
        let body = r.text().await.expect("body");
        assert_eq!(status, StatusCode::CREATED, "upload {name} through the proxy: {body}");
        serde_json::from_str(&body).expect("json")
    }

    /// Opens a WebSocket on `path` through the proxy; returns it with the instance it reached.
    pub async fn ws(&self, path: &str) -> (Ws, Instance) {
        let (ws, headers) = Ws::connect_url(&self.ws_url(path)).await;
        (ws, self.upstream_in(&headers))
    }

    /// Waits until both instances have written the analytics events they captured.
    pub async fn flush_analytics(&self) {
        self.a.state.analytics.flush().await.expect("flush A");
        self.b.state.analytics.flush().await.expect("flush B");
    }

    /// The upstream (`host:port`) of every request nginx proxied so far, oldest first.
    pub fn upstreams_logged(&self) -> Vec<String> {
        std::fs::read_to_string(self.nginx.dir.path().join("access.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').next().map(str::to_string))
            .collect()
    }

    /// nginx's error log (level `warn`): what it complained about, for assertions and failures.
    pub fn nginx_errors(&self) -> String {
        self.nginx.errors()
    }
}

/// The shipped site file, with the upstream servers and the `listen` line made local, and the
/// name of the answering instance added to every proxied response. Panics when the file no longer
/// has the shape this relies on, so a change to it cannot silently test something else.
pub fn site_config(shipped: &str, listen: SocketAddr, upstreams: &[SocketAddr]) -> String {
    let mut out = String::new();
    let (mut in_upstream, mut servers, mut listens, mut passes) = (false, 0, 0, 0);
    for line in shipped.lines() {
        let t = line.trim_start();
        let indent = &line[..line.len() - t.len()];
        if t.starts_with("upstream vitrine") {
            in_upstream = true;
        } else if in_upstream && t.starts_with('}') {
            in_upstream = false;
        } else if in_upstream && t.starts_with("server ") {
            let addr = upstreams.get(servers).unwrap_or_else(|| {
                panic!("deploy/nginx/vitrine.conf lists more upstream servers than the {} instances", upstreams.len())
            });
            // `server ADDRESS [options];`: the address is replaced, the options are kept.
            let options: Vec<&str> = t.trim_end().trim_end_matches(';').split_whitespace().skip(2).collect();
            let options = options.iter().map(|o| format!(" {o}")).collect::<String>();
            out.push_str(&format!("{indent}server {addr}{options};\n"));
            servers += 1;
            continue;
        } else if t.starts_with("listen ") {
            if listens == 0 {
                out.push_str(&format!("{indent}listen {listen};\n"));
            }
            listens += 1;
            continue;
        } else if t.starts_with("proxy_pass ") {
            out.push_str(line);
            out.push('\n');
            out.push_str(&format!("{indent}add_header X-Vitrine-Upstream $upstream_addr always;\n"));
            passes += 1;
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    assert_eq!(
        servers,
        upstreams.len(),
        "deploy/nginx/vitrine.conf: `upstream vitrine` should list one server per instance"
    );
    assert!(listens > 0 && passes > 0, "deploy/nginx/vitrine.conf has no `listen` or no `proxy_pass` line");
    out
}

/// nginx in the foreground, one process (`master_process off`), in a temporary directory.
struct Nginx {
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    fn binary() -> Option<PathBuf> {
        let sbin = PathBuf::from("/usr/sbin/nginx");
        if sbin.is_file() {
            return Some(sbin);
        }
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path).map(|d| d.join("nginx")).find(|p| p.is_file())
    }

    async fn start(bin: &Path, listen: SocketAddr, upstreams: [SocketAddr; 2]) -> Nginx {
        let shipped_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx/vitrine.conf");
        let shipped =
            std::fs::read_to_string(&shipped_path).unwrap_or_else(|e| panic!("read {}: {e}", shipped_path.display()));
        let site = site_config(&shipped, listen, &upstreams);
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display();
        // The main configuration a distribution's nginx.conf would provide around a site file,
        // with every path in the temporary directory. Temporary-file paths matter: a body that
        // nginx buffered would land there (and nginx would say so in the error log).
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n\
             log_format cluster '$upstream_addr $status \"$request\"';\n\
             access_log {d}/access.log cluster;\n\
             client_body_temp_path {d}/client_body;\nproxy_temp_path {d}/proxy;\nfastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\n\
             # ---- deploy/nginx/vitrine.conf, addresses replaced ----\n{site}}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).expect("write nginx.conf");
        let child = std::process::Command::new(bin)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).expect("stderr.log"))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let mut nginx = Nginx { child, dir };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if tokio::net::TcpStream::connect(listen).await.is_ok() {
                return nginx;
            }
            if let Some(status) = nginx.child.try_wait().expect("nginx status") {
                panic!("nginx exited with {status} before listening on {listen}:\n{}", nginx.errors());
            }
            if tokio::time::Instant::now() > deadline {
                panic!("nginx did not listen on {listen} within 10 s:\n{}", nginx.errors());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn errors(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!("{}{}", read("stderr.log"), read("error.log"))
    }
}

// ------------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------------

const CHROME: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_through_the_proxy_alternate_between_the_two_instances() {
    let Some(cluster) = Cluster::start(|_| {}).await else { return };
    // The harness's own check at start is in the log before these.
    let before = cluster.upstreams_logged().len();
    let mut seen = vec![];
    for _ in 0..10 {
        let r = cluster.get("/healthz", None).await;
        assert_eq!(r.status(), StatusCode::OK);
        seen.push(cluster.answered_by(&r));
    }
    assert!(seen.windows(2).all(|w| w[0] != w[1]), "round robin alternates: {seen:?}");
    assert_eq!(seen.iter().filter(|i| **i == Instance::A).count(), 5, "{seen:?}");
    // nginx's own log agrees, request by request. (nginx writes a line just after the response,
    // so the last one may lag a moment.)
    let mut logged = cluster.upstreams_logged();
    for _ in 0..100 {
        if logged.len() >= before + seen.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        logged = cluster.upstreams_logged();
    }
    let logged: Vec<Instance> =
        logged.iter().skip(before).map(|u| cluster.instance_at(u).unwrap_or_else(|| panic!("logged {u}"))).collect();
    assert_eq!(logged, seen);

    // Either instance accepts what the other issued: an account registered on one is known to
    // both, and its token works on both.
    let (token, id) = cluster.register("ada@example.com", "Ada").await;
    let mut answered = vec![];
    for _ in 0..2 {
        let r = cluster.get("/api/auth/me/", Some(&token)).await;
        answered.push(cluster.answered_by(&r));
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.json::<Value>().await.expect("json")["id"], id);
    }
    assert_ne!(answered[0], answered[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_10_mb_upload_its_share_page_and_ranged_downloads_stream_through_the_proxy() {
    let Some(cluster) = Cluster::start(|_| {}).await else { return };
    let (token, _) = cluster.register("olive@example.com", "Olive").await;
    let bytes = fixtures::pdf(10 * 1024 * 1024);
    let asset = cluster.upload_streamed(&token, "big.pdf", bytes.clone()).await;
    assert_eq!(asset["size"].as_u64(), Some(bytes.len() as u64));

    let r = cluster
        .post_json(
            &format!("/api/v3/assets/{}/share/", asset["id"]),
            Some(&token),
            &json!({"share_type": "public", "title": "Big file", "allow_download": true}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let share: Value = r.json().await.expect("json");
    let share_url = share["share_url"].as_str().expect("share_url");
    assert!(share_url.starts_with(&format!("{}/share/", cluster.proxy)), "public_url is the proxy: {share_url}");
    let page = share_url.strip_prefix(&cluster.proxy).expect("path").to_string();

    // The page, on both instances (consecutive requests go to each in turn).
    let mut pages = vec![];
    for _ in 0..2 {
        let r = cluster.req(Method::GET, &page, None).header("user-agent", CHROME).send().await.expect("page");
        pages.push(cluster.answered_by(&r));
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.text().await.expect("html").contains("Big file"));
    }
    assert_ne!(pages[0], pages[1]);

    // The whole file, then a range, then the last bytes: from whichever instance, off the one S3.
    let download = format!("{page}download");
    let mut r = cluster.req(Method::GET, &download, None).header("user-agent", CHROME).send().await.expect("download");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.content_length(), Some(bytes.len() as u64));
    // A slow reader: a buffering proxy would now read the rest from the instance into a
    // temporary file (and say so in its log); an unbuffered one waits for the client.
    let mut got = r.chunk().await.expect("first chunk").expect("a body").to_vec();
    tokio::time::sleep(Duration::from_millis(500)).await;
    while let Some(chunk) = r.chunk().await.expect("chunk") {
        got.extend_from_slice(&chunk);
    }
    assert!(got[..] == bytes[..], "the downloaded file is the uploaded one");
    for (range, start, end) in
        [("bytes=1000000-1999999", 1_000_000, 1_999_999), ("bytes=-100", bytes.len() - 100, bytes.len() - 1)]
    {
        let r = cluster
            .req(Method::GET, &download, None)
            .header("user-agent", CHROME)
            .header("range", range)
            .send()
            .await
            .expect("range");
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        let content_range = r.headers()["content-range"].to_str().expect("ascii").to_string();
        assert_eq!(content_range, format!("bytes {start}-{end}/{}", bytes.len()));
        assert!(r.bytes().await.expect("body")[..] == bytes[start..=end], "{range}");
    }

    // nginx passed the bodies through: nothing was spooled to its temporary files.
    let errors = cluster.nginx_errors();
    assert!(!errors.contains("buffered to a temporary file"), "nginx buffered a body:\n{errors}");
}

/// A collaboration session owned by Olive with Rita as participant; returns (olive, rita,
/// rita's id, session JSON).
async fn collaboration(cluster: &Cluster) -> (String, String, i64, Value) {
    let (olive, _) = cluster.register("olive@example.com", "Olive Owner").await;
    let (rita, rita_id) = cluster.register("rita@example.com", "Rita Reviewer").await;
    let r = cluster.req(Method::POST, "/api/v3/assets/", Some(&olive)).multipart(
        reqwest::multipart::Form::new()
            .part("file", reqwest::multipart::Part::bytes(fixtures::pdf(800)).file_name("deck.pdf")),
    );
    let asset: Value = r.send().await.expect("upload").json().await.expect("json");
    let r = cluster
        .post_json(
            "/api/v3/collaboration/sessions/",
            Some(&olive),
            &json!({"asset_id": asset["id"], "participants": [{"email": "rita@example.com"}]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    (olive, rita, rita_id, r.json().await.expect("json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_through_the_proxy_gets_the_events_made_on_the_other_instance() {
    let Some(cluster) = Cluster::start(|_| {}).await else { return };
    let (olive, rita, rita_id, session) = collaboration(&cluster).await;
    let path = |token: &str| format!("{}?token={token}", session["websocket_url"].as_str().expect("websocket_url"));

    let (mut olive_ws, olive_on) = cluster.ws(&path(&olive)).await;
    olive_ws.next_of("session_state").await;
    // A comment made over HTTP straight on the other instance reaches Olive's socket.
    let other = cluster.app(olive_on.other());
    let r = other
        .post_json(
            &format!("/api/v3/assets/{}/comments/", session["asset_id"]),
            Some(&olive),
            &json!({"content": "made on the other instance"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(olive_ws.next_of("comment").await["comment"]["content"], "made on the other instance");

    // Rita's socket, through the proxy too, on the other instance (nginx alternates; retry
    // until it lands there): what each sends on its socket reaches the other across instances.
    let mut rita_ws = None;
    for _ in 0..4 {
        let (mut ws, on) = cluster.ws(&path(&rita)).await;
        ws.next_of("session_state").await;
        if on != olive_on {
            rita_ws = Some(ws);
            break;
        }
    }
    let mut rita_ws = rita_ws.expect("a socket through the proxy reaches the other instance");
    loop {
        if olive_ws.next_of("participant_joined").await["user"]["user_id"] == rita_id {
            break;
        }
    }
    rita_ws.send(&json!({"type": "comment", "comment": {"content": "from Rita's socket"}})).await;
    assert_eq!(olive_ws.next_of("comment").await["comment"]["content"], "from Rita's socket");
    olive_ws.send(&json!({"type": "cursor_position", "x": 0.25, "y": 0.75})).await;
    assert_eq!(rita_ws.next_of("cursor_position").await["x"], 0.25);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn share_analytics_see_the_client_address_that_nginx_forwards() {
    let Some(cluster) = Cluster::start(|c| c.share_access_rate_per_ip_per_minute = 1000).await else { return };
    let (token, _) = cluster.register("olive@example.com", "Olive").await;
    let asset = cluster.upload_streamed(&token, "deck.pdf", fixtures::pdf(3000)).await;
    let r = cluster.post_json(&format!("/api/v3/assets/{}/share/", asset["id"]), Some(&token), &json!({})).await;
    let share: Value = r.json().await.expect("json");
    let uuid = share["uuid"].as_str().expect("uuid");

    // The test client sends X-Forwarded-For as a proxy in front of nginx would; nginx appends
    // 127.0.0.1, which the instances trust, so they take the address before it. Without the
    // header the visitor is nginx's own peer, the loopback test client (country unknown).
    let mut answered = vec![];
    for xff in [Some("8.8.8.8"), Some("81.2.69.142"), None] {
        let mut r = cluster.req(Method::GET, &format!("/share/{uuid}/"), None).header("user-agent", CHROME);
        if let Some(ip) = xff {
            r = r.header("x-forwarded-for", ip);
        }
        let r = r.send().await.expect("view");
        assert_eq!(r.status(), StatusCode::OK);
        answered.push(cluster.answered_by(&r));
    }
    assert!(answered.contains(&Instance::A) && answered.contains(&Instance::B), "{answered:?}");
    cluster.flush_analytics().await;
    let r = cluster.get(&format!("/api/v3/shares/{uuid}/analytics/?days=1"), Some(&token)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let report: Value = r.json().await.expect("json");
    assert_eq!(report["summary"]["total_views"], 3, "{report}");
    assert_eq!(report["summary"]["unique_visitors"], 3, "{report}");
    let mut countries: Vec<(String, i64)> = report["geographic_breakdown"]
        .as_array()
        .expect("geographic_breakdown")
        .iter()
        .map(|c| (c["country"].as_str().expect("country").to_string(), c["views"].as_i64().expect("views")))
        .collect();
    countries.sort();
    assert_eq!(countries, [("GB".to_string(), 1), ("US".to_string(), 1), ("unknown".to_string(), 1)]);
}

/// Opens a visitor's chat session through the proxy, as `xff` when given; returns the status and
/// the instance that answered.
async fn open_chat_session(cluster: &Cluster, widget_key: &str, xff: Option<&str>) -> (StatusCode, Instance) {
    let mut r = cluster.req(Method::POST, "/api/chat/sessions/", None).json(&json!({"widget_key": widget_key}));
    if let Some(ip) = xff {
        r = r.header("x-forwarded-for", ip);
    }
    let r = r.send().await.expect("open a chat session");
    (r.status(), cluster.answered_by(&r))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_ip_limit_through_the_proxy_counts_each_forwarded_address_apart() {
    let Some(cluster) = Cluster::start(|c| c.chat_session_rate_per_ip_per_minute = 1).await else { return };
    let (admin, _) = cluster.register("admin@example.com", "Ada Admin").await;
    let r = cluster.post_json("/api/companies/", Some(&admin), &json!({"name": "Acme"})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let widget_key = r.json::<Value>().await.expect("json")["widget_key"].as_str().expect("key").to_string();
    let open = |xff: Option<&'static str>| open_chat_session(&cluster, &widget_key, xff);

    // One session a minute per address, for the deployment: the second request, which the
    // other instance takes, is refused.
    let (first, on) = open(Some("203.0.113.9")).await;
    assert_eq!(first, StatusCode::CREATED);
    let (second, then) = open(Some("203.0.113.9")).await;
    assert_eq!(second, StatusCode::TOO_MANY_REQUESTS, "203.0.113.9 is refused once it has spent its budget");
    assert_ne!(on, then, "by the other instance");
    // Another forwarded address, and the proxy's own client without the header, have budgets of
    // their own: the instances do not see everybody as nginx.
    assert_eq!(open(Some("203.0.113.10")).await.0, StatusCode::CREATED);
    assert_eq!(open(None).await.0, StatusCode::CREATED);
    // And 203.0.113.9 stays refused on both instances.
    let (s1, on1) = open(Some("203.0.113.9")).await;
    let (s2, on2) = open(Some("203.0.113.9")).await;
    assert_eq!((s1, s2), (StatusCode::TOO_MANY_REQUESTS, StatusCode::TOO_MANY_REQUESTS));
    assert_ne!(on1, on2);
}

// ---------------------------------------------------------------------------
// SPEC §9 through the proxy: what holds on one instance holds for the deployment.
// ---------------------------------------------------------------------------

/// An owner with a small PDF, through the proxy.
async fn owner_with_pdf(cluster: &Cluster) -> (String, i64) {
    let (token, _) = cluster.register("owner@example.com", "Olive Owner").await;
    let asset = cluster.upload_streamed(&token, "deck.pdf", fixtures::pdf(3)).await;
    (token, asset["id"].as_i64().expect("id"))
}

async fn create_link(cluster: &Cluster, token: &str, asset: i64, body: Value) -> Value {
    created(cluster.post_json(&format!("/api/v3/assets/{asset}/share/"), Some(token), &body).await).await
}

/// The share page's JSON twin from one client address.
async fn view_from(cluster: &Cluster, uuid: &str, ip: &str) -> (StatusCode, Instance) {
    let r = cluster
        .req(Method::GET, &format!("/share/{uuid}/"), None)
        .header("accept", "application/json")
        .header("x-forwarded-for", ip)
        .send()
        .await
        .expect("share page");
    (r.status(), cluster.answered_by(&r))
}

/// Two views, which nginx sends to the two instances: both have the link cached afterwards.
async fn warm_both(cluster: &Cluster, uuid: &str) {
    let (s1, on1) = view_from(cluster, uuid, "198.51.100.1").await;
    let (s2, on2) = view_from(cluster, uuid, "198.51.100.1").await;
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK));
    assert_ne!(on1, on2, "both instances served (and cached) the link");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_proxy_five_wrong_passwords_lock_the_link_out_for_the_deployment() {
    let Some(cluster) = Cluster::start(|_| {}).await else { return };
    let (owner, asset) = owner_with_pdf(&cluster).await;
    let s = create_link(&cluster, &owner, asset, json!({"share_type": "protected", "password": "secure123"})).await;
    let unlock = format!("/api/v3/shares/{}/unlock/", s["uuid"].as_str().expect("uuid"));
    let attempt = |password: &'static str| {
        let r = cluster.req(Method::POST, &unlock, None).header("x-forwarded-for", "203.0.113.50");
        async move { r.json(&json!({"password": password})).send().await.expect("unlock") }
    };
    let mut served = std::collections::BTreeSet::new();
    for _ in 0..5 {
        let r = attempt("guess").await;
        served.insert(format!("{:?}", cluster.answered_by(&r)));
        assert_error(r, StatusCode::FORBIDDEN, "wrong_password").await;
    }
    assert_eq!(served.len(), 2, "both instances took some of the five");
    for _ in 0..2 {
        let r = attempt("secure123").await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "locked out on either instance");
    }
    // Another address is not locked out.
    let r = cluster
        .req(Method::POST, &unlock, None)
        .header("x-forwarded-for", "203.0.113.51")
        .json(&json!({"password": "secure123"}))
        .send()
        .await
        .expect("unlock");
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_proxy_download_and_link_creation_limits_hold_for_the_deployment() {
    let Some(cluster) = Cluster::start(|c| {
        c.share_access_rate_per_ip_per_minute = 4;
        c.share_create_rate_per_user_per_hour = 3;
    })
    .await
    else {
        return;
    };
    let (owner, asset) = owner_with_pdf(&cluster).await;
    let mut links = Vec::new();
    for _ in 0..3 {
        links.push(create_link(&cluster, &owner, asset, json!({"share_type": "public"})).await);
    }
    for _ in 0..2 {
        let r = cluster.post_json(&format!("/api/v3/assets/{asset}/share/"), Some(&owner), &json!({})).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "a fourth link in the hour, on either instance");
    }
    // Four downloads a minute from one address (served from the shared S3 by both instances).
    let dl = format!("/share/{}/download", links[0]["uuid"].as_str().expect("uuid"));
    let download = || cluster.req(Method::GET, &dl, None).header("x-forwarded-for", "203.0.113.60").send();
    for i in 0..4 {
        let r = download().await.expect("download");
        assert_eq!(r.status(), StatusCode::OK, "download {i}");
        assert_eq!(r.bytes().await.expect("bytes").as_ref(), fixtures::pdf(3).as_slice());
    }
    for _ in 0..2 {
        let r = download().await.expect("download");
        assert_error(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_proxy_chat_uploads_are_limited_per_uploader_for_the_deployment() {
    let Some(cluster) = Cluster::start(|c| c.chat_upload_rate_per_minute = 2).await else { return };
    let (admin, _) = cluster.register("admin@example.com", "Ada Admin").await;
    let r = cluster.post_json("/api/companies/", Some(&admin), &json!({"name": "Acme"})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let widget_key = r.json::<Value>().await.expect("json")["widget_key"].as_str().expect("key").to_string();
    let r = cluster.post_json("/api/chat/sessions/", None, &json!({"widget_key": widget_key})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let visitor = r.json::<Value>().await.expect("json")["token"].as_str().expect("token").to_string();
    let upload = |i: usize| {
        let part = reqwest::multipart::Part::bytes(format!("note {i}\n").into_bytes()).file_name("note.txt");
        cluster
            .req(Method::POST, "/api/chat/upload/", Some(&visitor))
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
    };
    let mut on = std::collections::BTreeSet::new();
    for i in 0..2 {
        let r = upload(i).await.expect("upload");
        on.insert(format!("{:?}", cluster.answered_by(&r)));
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    assert_eq!(on.len(), 2, "each instance took one");
    for i in 2..4 {
        let r = upload(i).await.expect("upload");
        assert_error(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_proxy_revoke_delete_password_and_deactivation_take_effect_at_the_next_request() {
    let Some(cluster) = Cluster::start(|c| c.share_access_rate_per_ip_per_minute = 1000).await else { return };
    let (owner, asset) = owner_with_pdf(&cluster).await;
    let patch =
        |path: String, body: Value, token: String| cluster.req(Method::PATCH, &path, Some(&token)).json(&body).send();
    let delete = |path: String, token: String| cluster.req(Method::DELETE, &path, Some(&token)).send();
    // Revoke: warm both caches, revoke, then both instances refuse.
    let s = create_link(&cluster, &owner, asset, json!({"share_type": "public"})).await;
    let u = s["uuid"].as_str().expect("uuid").to_string();
    warm_both(&cluster, &u).await;
    assert_eq!(
        delete(format!("/api/v3/shares/{u}/"), owner.clone()).await.expect("revoke").status(),
        StatusCode::NO_CONTENT
    );
    for _ in 0..2 {
        assert_eq!(view_from(&cluster, &u, "198.51.100.1").await.0, StatusCode::GONE);
    }
    // A password set: both instances ask for it.
    let s = create_link(&cluster, &owner, asset, json!({"share_type": "public"})).await;
    let u = s["uuid"].as_str().expect("uuid").to_string();
    warm_both(&cluster, &u).await;
    let r = patch(
        format!("/api/v3/shares/{u}/"),
        json!({"share_type": "protected", "password": "new-secret-1"}),
        owner.clone(),
    )
    .await
    .expect("patch");
    assert_eq!(r.status(), StatusCode::OK);
    for _ in 0..2 {
        assert_eq!(view_from(&cluster, &u, "198.51.100.1").await.0, StatusCode::UNAUTHORIZED);
    }
    // A limit reached: with max_downloads lowered to what was downloaded, both say exhausted.
    let s = create_link(&cluster, &owner, asset, json!({"share_type": "public"})).await;
    let u = s["uuid"].as_str().expect("uuid").to_string();
    let dl = cluster.req(Method::GET, &format!("/share/{u}/download"), None).send().await.expect("download");
    assert_eq!(dl.status(), StatusCode::OK);
    warm_both(&cluster, &u).await;
    let r = patch(format!("/api/v3/shares/{u}/"), json!({"max_downloads": 1}), owner.clone()).await.expect("patch");
    assert_eq!(r.status(), StatusCode::OK);
    for _ in 0..2 {
        let r = cluster
            .req(Method::GET, &format!("/share/{u}/download"), None)
            .header("x-forwarded-for", "198.51.100.2")
            .send()
            .await
            .expect("download");
        assert_error(r, StatusCode::GONE, "share_exhausted").await;
    }
    // The asset deleted: its links are gone on both instances.
    let s = create_link(&cluster, &owner, asset, json!({"share_type": "public"})).await;
    let u = s["uuid"].as_str().expect("uuid").to_string();
    warm_both(&cluster, &u).await;
    assert_eq!(
        delete(format!("/api/v3/assets/{asset}/"), owner.clone()).await.expect("delete").status(),
        StatusCode::NO_CONTENT
    );
    for _ in 0..2 {
        assert_eq!(view_from(&cluster, &u, "198.51.100.1").await.0, StatusCode::NOT_FOUND);
    }
    // An account disabled: refused by both instances at once.
    let (admin, _) = (owner.clone(), ());
    let (user, user_id) = cluster.register("uma@example.com", "Uma User").await;
    for _ in 0..2 {
        assert_eq!(cluster.get("/api/auth/me/", Some(&user)).await.status(), StatusCode::OK);
    }
    let r = patch(format!("/api/admin/users/{user_id}/"), json!({"is_active": false}), admin).await.expect("disable");
    assert_eq!(r.status(), StatusCode::OK, "the first account is the admin");
    for _ in 0..2 {
        assert_error(cluster.get("/api/auth/me/", Some(&user)).await, StatusCode::FORBIDDEN, "account_disabled").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_proxy_a_burst_of_fifty_comments_is_stored_delivered_and_recorded_in_send_order() {
    let Some(cluster) = Cluster::start(|_| {}).await else { return };
    let (owner, asset) = owner_with_pdf(&cluster).await;
    let (reviewer, _) = cluster.register("rita@example.com", "Rita Reviewer").await;
    let r = cluster
        .post_json(
            "/api/v3/collaboration/sessions/",
            Some(&owner),
            &json!({"asset_id": asset, "participants": [{"email": "rita@example.com"}]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let session: Value = r.json().await.expect("json");
    let ws_path = |token: &str| format!("{}?token={token}", session["websocket_url"].as_str().expect("url"));
    // The two members on different instances.
    let (mut olive, olive_on) = cluster.ws(&ws_path(&owner)).await;
    olive.next_of("session_state").await;
    let (mut rita, mut rita_on) = cluster.ws(&ws_path(&reviewer)).await;
    while rita_on == olive_on {
        (rita, rita_on) = cluster.ws(&ws_path(&reviewer)).await;
    }
    let start = rita.next_of("session_state").await["seq"].as_i64().expect("seq");
    let sent: Vec<String> = (0..50).map(|i| format!("c{i}")).collect();
    for c in &sent {
        olive.send(&json!({"type": "comment", "comment": {"content": c}})).await;
    }
    let mut live = Vec::new();
    let mut last = start;
    while live.len() < sent.len() {
        let v = rita.next_within(std::time::Duration::from_secs(10)).await.expect("every comment crosses");
        assert_ne!(v["type"], "error", "{v}");
        if v["type"] == "comment" {
            let seq = v["seq"].as_i64().expect("seq");
            assert!(seq > last, "rising seqs");
            last = seq;
            live.push(v["comment"]["content"].as_str().expect("content").to_string());
        }
    }
    assert_eq!(live, sent, "delivered on the other instance in send order");
    let sid = session["session_id"].as_str().expect("sid");
    let rec: Value = cluster
        .get(&format!("/api/v3/collaboration/sessions/{sid}/recording/"), Some(&owner))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(contents(&recorded_comments(&rec)), sent, "recorded in send order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_proxy_a_client_of_a_stopping_instance_resumes_on_the_other_and_loses_nothing() {
    let Some(cluster) = Cluster::start(|_| {}).await else { return };
    let (owner, asset) = owner_with_pdf(&cluster).await;
    let (reviewer, _) = cluster.register("rita@example.com", "Rita Reviewer").await;
    let session = created(
        cluster
            .post_json(
                "/api/v3/collaboration/sessions/",
                Some(&owner),
                &json!({"asset_id": asset, "participants": [{"email": "rita@example.com"}]}),
            )
            .await,
    )
    .await;
    let ws_path = |token: &str| format!("{}?token={token}", session["websocket_url"].as_str().expect("url"));
    let (mut rita, on) = cluster.ws(&ws_path(&reviewer)).await;
    let mut last = rita.next_of("session_state").await["seq"].as_i64().expect("seq");
    let survivor = cluster.app(on.other());
    let comments = format!("/api/v3/assets/{asset}/comments/");
    let post = |i: usize| {
        let body = json!({"content": format!("c{i}")});
        let (comments, owner) = (&comments, &owner);
        async move { survivor.post_json(comments, Some(owner), &body).await }
    };
    let mut seen = Vec::new();
    for i in 0..5 {
        assert_eq!(post(i).await.status(), StatusCode::CREATED);
    }
    while seen.len() < 5 {
        let v = rita.next().await;
        if let Some(seq) = v["seq"].as_i64() {
            last = seq;
        }
        if v["type"] == "comment" {
            seen.push(v["comment"]["content"].as_str().expect("content").to_string());
        }
    }
    // Rita's instance stops: she is told to go away, while comments keep coming on the other.
    let stopping = cluster.app(on).shutdown();
    assert_eq!(rita.close_code(std::time::Duration::from_secs(5)).await, Some(1001));
    for i in 5..10 {
        assert_eq!(post(i).await.status(), StatusCode::CREATED);
    }
    let _ = stopping.await;
    // She reconnects through the proxy (nginx now reaches only the other instance) from last_seq.
    let (mut again, now_on) = cluster.ws(&format!("{}&last_seq={last}", ws_path(&reviewer))).await;
    assert_eq!(now_on, on.other());
    assert_eq!(again.next_of("session_state").await["recovered"], true);
    while seen.len() < 10 {
        let v = again.next().await;
        if let Some(seq) = v["seq"].as_i64() {
            assert_eq!(seq, last + 1, "each missed event once, in order: {v}");
            last = seq;
        }
        if v["type"] == "comment" {
            seen.push(v["comment"]["content"].as_str().expect("content").to_string());
        }
    }
    let expected: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
    assert_eq!(seen, expected, "nothing lost, nothing twice");
    // What follows (her own arrival) continues the sequence; no comment comes twice.
    while let Some(v) = again.next_within(std::time::Duration::from_millis(300)).await {
        assert_ne!(v["type"], "comment", "no comment twice: {v}");
        if let Some(seq) = v["seq"].as_i64() {
            assert_eq!(seq, last + 1, "{v}");
            last = seq;
        }
    }
}
