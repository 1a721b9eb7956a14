//! Shared-limiter benchmark (`cargo bench --bench limiter`): what the Redis limiter adds to a
//! share link's password endpoint, against the local limiter, in the same run (issue 17).
//!
//! Two release `vitrine serve` child processes of the same binary, on loopback, each with its own
//! temp data dir (SQLite, local storage):
//!
//! - **local**: no `bus_url`; every limit and lockout counts in the process;
//! - **shared**: `VITRINE_BUS_URL` = `TEST_REDIS_URL` (default `redis://127.0.0.1:6379`); every
//!   limit check and every lockout check is one Lua script round trip to Redis (src/limits.rs,
//!   src/bus/redis.rs). The server's own deployment id names its keys, so nothing is shared with
//!   other users of that Redis.
//!
//! Both get `share_access_rate_per_ip_per_minute` and the login limits at 1,000,000,000, so the
//! per-IP budget is spent on every request but never refuses one. On each server the benchmark
//! registers an account, uploads a tiny PDF and makes two protected links (share_type
//! `protected` + a password). It measures `POST /api/v3/shares/{uuid}/unlock/`, from the moment
//! the request is handed to the client to the end of the answer's body, one keep-alive
//! connection per client:
//!
//! - **(a) a locked-out link**: 5 wrong passwords first (each a 403), so every request after that
//!   is a 429 from the lockout: the per-IP budget is spent, the link is read from the database,
//!   the lockout is checked, and no Argon2 runs. This is the limiter's own cost (two Redis round
//!   trips on the shared server: the budget and the lockout check), and the comparison the target
//!   is judged on: the p50 of the shared server minus the p50 of the local one, one client
//!   sending requests one after the other. Target: at most 0.3 ms.
//! - **(b) the right password** on the other link (200 and a link token): Argon2 verify
//!   dominates; the shared server makes three round trips (budget, lockout check, success).
//!
//! Each is measured with one client (sequential) and with `LIMITER_CLIENTS` concurrent clients
//! (4; each its own connection). The two servers are measured in turns, round by round, the
//! order reversed every other round (local, shared, shared, local, …), so that drift of the
//! machine falls on both alike. Also printed: the p50 of the per-round differences, the round
//! trip of a PING and of a minimal Lua script from this process to the same Redis (the floor of
//! one check), the load average before and after, and from the shared server's `/metrics` that
//! it counted on Redis all along (`vitrine_limiter_shared` 1, no `vitrine_limiter_local_checks_total`).
//!
//! Sizes: `LIMITER_ROUNDS` (10), `LIMITER_LOCKED` (500 requests per server and round, (a)),
//! `LIMITER_RIGHT` (30, (b)), `LIMITER_CLIENTS` (4; the concurrent runs split the same count
//! between the clients). About 30 s on 2 cores. The server binary is `VITRINE_BIN`, else
//! `target/release/vitrine` (which `cargo bench` builds with the bench).
//!
//! `LIMITER_AA=1` is a calibration run: the second server gets no `bus_url` either, so both count
//! locally and every difference printed is what the method itself sees between two identical
//! servers (it should be about 0; the verdict is then meaningless).
//!
//! Exit status: 0 target met, 1 missed, 2 the benchmark itself failed (a server did not start,
//! an answer was not the expected status, the shared server fell back to counting alone).
//! Under `cargo test --all-targets` the binary starts without `--bench` and returns at once.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

#[path = "common.rs"]
mod common;
use common::percentile;

const ACCOUNT_PASSWORD: &str = "limiter bench password";
const RIGHT_BODY: &str = r#"{"password":"the link password 1234"}"#;
const WRONG_BODY: &str = r#"{"password":"not the link password"}"#;
/// Wrong passwords before a lockout (`share_password_max_failures`, set explicitly).
const MAX_FAILURES: usize = 5;
/// Per-minute budgets high enough never to refuse the load.
const HIGH: &str = "1000000000";
const TARGET_MS: f64 = 0.3;
const WARMUP: usize = 300;
/// The whole benchmark is abandoned after this.
const OVERALL: Duration = Duration::from_secs(600);

struct Shape {
    rounds: usize,
    locked: usize,
    right: usize,
    clients: usize,
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or(default)
}

impl Shape {
    fn from_env() -> Shape {
        Shape {
            rounds: env_or("LIMITER_ROUNDS", 10),
            locked: env_or("LIMITER_LOCKED", 500),
            right: env_or("LIMITER_RIGHT", 30),
            clients: env_or("LIMITER_CLIENTS", 4),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------------------------

/// A server child process, killed when dropped.
struct Server {
    name: &'static str,
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn http(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited ({status}); its log ends with:\n{}", self.name, self.log_tail());
        }
        Ok(())
    }

    async fn start(bin: &Path, name: &'static str, dir: &Path, bus_url: Option<&str>) -> anyhow::Result<Server> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let data = dir.join("data");
        std::fs::create_dir_all(&data)?;
        let log = dir.join("server.log");
        let out = std::fs::File::create(&log)?;
        let mut cmd = Command::new(bin);
        cmd.arg("serve").current_dir(&data).stdin(Stdio::null()).stdout(out.try_clone()?).stderr(out);
        // Only what this benchmark says: no VITRINE_* or RUST_LOG from the caller's environment.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("VITRINE_") {
                cmd.env_remove(k);
            }
        }
        cmd.env_remove("RUST_LOG")
            .env("VITRINE_LISTEN", format!("127.0.0.1:{port}"))
            .env("VITRINE_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
            .env("VITRINE_DATA_DIR", &data)
            .env("VITRINE_LOG_LEVEL", "warn")
            .env("VITRINE_SHARE_ACCESS_RATE_PER_IP_PER_MINUTE", HIGH)
            .env("VITRINE_LOGIN_RATE_PER_IP_PER_MINUTE", HIGH)
            .env("VITRINE_LOGIN_RATE_PER_ACCOUNT_PER_MINUTE", HIGH)
            .env("VITRINE_SHARE_PASSWORD_MAX_FAILURES", MAX_FAILURES.to_string())
            .env("VITRINE_SHARE_LOCKOUT_SECS", "900");
        if let Some(url) = bus_url {
            cmd.env("VITRINE_BUS_URL", url);
        }
        let child = cmd.spawn().with_context(|| format!("could not start {}", bin.display()))?;
        let mut server = Server { name, child, port, log };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            server.check_alive()?;
            if let Ok(r) = http.get(format!("{}/readyz", server.http())).send().await
                && r.status() == 200
            {
                return Ok(server);
            }
            if Instant::now() > deadline {
                bail!("{name} did not answer 200 on /readyz within 30 s; its log ends with:\n{}", server.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The value of an unlabelled metric in `/metrics`, if present.
    async fn metric(&self, name: &str) -> anyhow::Result<Option<f64>> {
        let text = reqwest::get(format!("{}/metrics", self.http())).await?.text().await?;
        Ok(text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok()))
    }

    /// WARN and ERROR lines in the log.
    fn problems(&self) -> usize {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).count()
    }
}

/// The server binary: VITRINE_BIN, target/release/vitrine, or a fresh `cargo build --release`.
fn vitrine_bin() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("VITRINE_BIN") {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("VITRINE_BIN={} is not a file", p.display());
        }
        // Servers run in their data dirs: a relative path would not resolve there.
        return Ok(p.canonicalize()?);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => root.join(t),
        None => root.join("target"),
    };
    let bin = target.join("release").join("vitrine");
    if !bin.is_file() {
        println!("server binary {} is missing: running `cargo build --release` in {}", bin.display(), root.display());
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo).args(["build", "--release"]).current_dir(&root).status()?;
        if !status.success() || !bin.is_file() {
            bail!("`cargo build --release` failed ({status})");
        }
    }
    Ok(bin)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------------------------
// Setup and requests
// ---------------------------------------------------------------------------------------------

async fn expect(resp: reqwest::Response, what: &str, status: u16) -> anyhow::Result<Value> {
    let got = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    if got != status {
        bail!("{what}: HTTP {got} (expected {status}): {body}");
    }
    serde_json::from_str(&body).with_context(|| format!("{what}: not JSON: {body}"))
}

/// One server with its two protected links and its clients.
struct Target {
    server: Server,
    /// Locked out for this client's IP: every unlock is a 429.
    locked_url: String,
    /// Never given a wrong password: the right one gives 200.
    right_url: String,
    /// The sequential client, and the concurrent ones (each its own connection).
    seq: reqwest::Client,
    conc: Vec<reqwest::Client>,
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().pool_max_idle_per_host(1).tcp_nodelay(true).build()?)
}

impl Target {
    async fn new(server: Server, clients: usize) -> anyhow::Result<Target> {
        let http = client()?;
        let base = server.http();
        let r = http
            .post(format!("{base}/api/auth/register/"))
            .json(&json!({"email": "owner@limiter.bench", "password": ACCOUNT_PASSWORD, "name": "Limiter Bench"}))
            .send()
            .await?;
        let token = expect(r, "register", 201).await?["access_token"].as_str().context("access_token")?.to_string();
        let pdf = "%PDF-1.4\n% vitrine limiter bench\n1 0 obj\n<< >>\nendobj\ntrailer\n<< >>\n%%EOF\n";
        let part = reqwest::multipart::Part::bytes(pdf.as_bytes().to_vec())
            .file_name("limiter.pdf")
            .mime_str("application/pdf")?;
        let r = http
            .post(format!("{base}/api/v3/assets/"))
            .bearer_auth(&token)
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
            .await?;
        let asset = expect(r, "upload", 201).await?["id"].as_i64().context("asset id")?;
        let password: Value = serde_json::from_str(RIGHT_BODY)?;
        let mut urls = Vec::new();
        for _ in 0..2 {
            let r = http
                .post(format!("{base}/api/v3/assets/{asset}/share/"))
                .bearer_auth(&token)
                .json(&json!({"share_type": "protected", "password": password["password"]}))
                .send()
                .await?;
            let uuid = expect(r, "create protected link", 201).await?["uuid"].as_str().context("uuid")?.to_string();
            urls.push(format!("{base}/api/v3/shares/{uuid}/unlock/"));
        }
        let right_url = urls.pop().context("two links")?;
        let locked_url = urls.pop().context("two links")?;
        // Lock the first link out: MAX_FAILURES wrong passwords (ordinary refusals), then 429s.
        for i in 0..MAX_FAILURES {
            let r = http.post(&locked_url).header("content-type", "application/json").body(WRONG_BODY).send().await?;
            expect(r, &format!("wrong password {}", i + 1), 403).await?;
        }
        let r = http.post(&locked_url).header("content-type", "application/json").body(RIGHT_BODY).send().await?;
        let retry: u64 =
            r.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0);
        expect(r, "the locked-out link", 429).await?;
        if retry < 300 {
            bail!("the 429 says Retry-After {retry} s: a rate limit, not the 15-minute lockout");
        }
        let r = http.post(&right_url).header("content-type", "application/json").body(RIGHT_BODY).send().await?;
        expect(r, "the right password", 200).await?;
        let conc = (0..clients).map(|_| client()).collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Target { server, locked_url, right_url, seq: http, conc })
    }
}

/// One unlock: its latency in ms, after checking the status.
async fn unlock(http: &reqwest::Client, url: &str, body: &'static str, status: u16) -> anyhow::Result<f64> {
    let t0 = Instant::now();
    let r = http.post(url).header("content-type", "application/json").body(body).send().await?;
    let got = r.status().as_u16();
    let _ = r.bytes().await?;
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    if got != status {
        bail!("{url}: HTTP {got}, expected {status}");
    }
    Ok(ms)
}

#[derive(Clone, Copy, PartialEq)]
enum Link {
    Locked,
    Right,
}

/// What one measurement does: which link, and how many clients.
#[derive(Clone, Copy)]
struct Phase {
    path: Link,
    concurrent: bool,
}

impl Phase {
    fn label(&self, clients: usize) -> String {
        let what = match self.path {
            Link::Locked => "(a) locked-out link (429: budget + lockout check, no Argon2)",
            Link::Right => "(b) right password (200: Argon2 verify)",
        };
        if self.concurrent { format!("{what}, {clients} concurrent clients") } else { format!("{what}, one client") }
    }
}

/// `n` unlocks on `t` (split between the concurrent clients if `phase.concurrent`); latencies.
async fn measure(t: &Target, phase: Phase, n: usize) -> anyhow::Result<Vec<f64>> {
    let (url, body, status) = match phase.path {
        Link::Locked => (&t.locked_url, RIGHT_BODY, 429),
        Link::Right => (&t.right_url, RIGHT_BODY, 200),
    };
    if !phase.concurrent {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(unlock(&t.seq, url, body, status).await?);
        }
        return Ok(out);
    }
    let per = n.div_ceil(t.conc.len());
    let mut tasks = Vec::new();
    for http in &t.conc {
        let (http, url) = (http.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::with_capacity(per);
            for _ in 0..per {
                out.push(unlock(&http, &url, body, status).await?);
            }
            anyhow::Ok(out)
        }));
    }
    let mut out = Vec::with_capacity(per * t.conc.len());
    for task in tasks {
        out.extend(task.await??);
    }
    Ok(out)
}

struct Stats {
    local: Vec<f64>,
    shared: Vec<f64>,
    /// Per round: p50 shared − p50 local.
    round_diffs: Vec<f64>,
    /// Wall time of each server's runs, for requests per second.
    local_secs: f64,
    shared_secs: f64,
}

fn p(v: &[f64], q: f64) -> f64 {
    percentile(v, q)
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// The two servers in turns, the order reversed every other round.
async fn compare(local: &Target, shared: &Target, phase: Phase, n: usize, rounds: usize) -> anyhow::Result<Stats> {
    let mut s = Stats { local: vec![], shared: vec![], round_diffs: vec![], local_secs: 0.0, shared_secs: 0.0 };
    for round in 0..rounds {
        let order: [bool; 2] = if round % 2 == 0 { [false, true] } else { [true, false] };
        let mut medians = [0.0f64; 2];
        for is_shared in order {
            let t = if is_shared { shared } else { local };
            let t0 = Instant::now();
            let got = sorted(measure(t, phase, n).await?);
            let secs = t0.elapsed().as_secs_f64();
            medians[usize::from(is_shared)] = p(&got, 50.0);
            if is_shared {
                s.shared.extend(got);
                s.shared_secs += secs;
            } else {
                s.local.extend(got);
                s.local_secs += secs;
            }
        }
        s.round_diffs.push(medians[1] - medians[0]);
    }
    s.local = sorted(s.local);
    s.shared = sorted(s.shared);
    s.round_diffs = sorted(s.round_diffs);
    Ok(s)
}

fn report(label: &str, s: &Stats, judged: bool) -> f64 {
    let diff = p(&s.shared, 50.0) - p(&s.local, 50.0);
    let verdict = if judged {
        format!(" target <= {TARGET_MS} ms: {}", if diff <= TARGET_MS { "met" } else { "MISSED" })
    } else {
        String::new()
    };
    println!(
        "{label}: local p50 {:.3} ms p99 {:.3} ms ({:.0} req/s), shared p50 {:.3} ms p99 {:.3} ms ({:.0} req/s), {} requests each; shared - local p50 {:+.3} ms (per round: median {:+.3}, {:+.3} to {:+.3}), p99 {:+.3} ms{verdict}",
        p(&s.local, 50.0),
        p(&s.local, 99.0),
        s.local.len() as f64 / s.local_secs.max(1e-9),
        p(&s.shared, 50.0),
        p(&s.shared, 99.0),
        s.shared.len() as f64 / s.shared_secs.max(1e-9),
        s.local.len(),
        diff,
        p(&s.round_diffs, 50.0),
        s.round_diffs.first().copied().unwrap_or(f64::NAN),
        s.round_diffs.last().copied().unwrap_or(f64::NAN),
        p(&s.shared, 99.0) - p(&s.local, 99.0),
    );
    diff
}

/// Round trips from this process to Redis: PING, and a minimal Lua script (EVALSHA) reading the
/// clock as the server's limiter scripts do; p50 and p99 in ms of 2,000 each.
async fn redis_floor(url: &str) -> anyhow::Result<String> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let script = redis::Script::new("redis.call('TIME') return 0");
    let mut ping = Vec::new();
    let mut lua = Vec::new();
    for i in 0..2_200 {
        let t0 = Instant::now();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        let a = t0.elapsed().as_secs_f64() * 1000.0;
        let t0 = Instant::now();
        let _: u64 = script.invoke_async(&mut conn).await?;
        let b = t0.elapsed().as_secs_f64() * 1000.0;
        if i >= 200 {
            ping.push(a);
            lua.push(b);
        }
    }
    let (ping, lua) = (sorted(ping), sorted(lua));
    Ok(format!(
        "PING p50 {:.3} ms p99 {:.3} ms; a minimal Lua script p50 {:.3} ms p99 {:.3} ms",
        p(&ping, 50.0),
        p(&ping, 99.0),
        p(&lua, 50.0),
        p(&lua, 99.0)
    ))
}

async fn run(shape: &Shape) -> anyhow::Result<bool> {
    let started = Instant::now();
    println!("machine: {}; load average {}", common::machine(), loadavg());
    let commit = Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let bin = vitrine_bin()?;
    println!("commit: {commit}; server binary: {}", bin.display());
    let redis = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let floor = redis_floor(&redis).await.with_context(|| format!("Redis at {redis} (set TEST_REDIS_URL)"))?;
    let tmp = tempfile::Builder::new().prefix("vitrine-limiter-").tempdir()?;
    let (ldir, sdir) = (tmp.path().join("local"), tmp.path().join("shared"));
    // A calibration run: both servers local (LIMITER_AA=1).
    let aa = std::env::var_os("LIMITER_AA").is_some_and(|v| v == "1");
    let local = Server::start(&bin, "local limiter", &ldir, None).await?;
    let shared = Server::start(&bin, "shared limiter (Redis)", &sdir, if aa { None } else { Some(&redis) }).await?;
    println!(
        "servers: local limiter on :{}, shared limiter on :{} with bus_url {redis} (logs in {})",
        local.port,
        shared.port,
        tmp.path().display()
    );
    if aa {
        println!(
            "LIMITER_AA=1: calibration run, the \"shared\" server has no bus_url either: both count locally, so every difference below is the method's own (about 0 expected; the verdict means nothing)"
        );
    }
    let local = Target::new(local, shape.clients).await?;
    let shared = Target::new(shared, shape.clients).await?;
    if !aa && shared.server.metric("vitrine_limiter_shared").await? != Some(1.0) {
        bail!("the shared server does not report vitrine_limiter_shared 1: it is not counting on Redis");
    }
    println!("redis from this process: {floor}");
    // Warm-up, unmeasured: connections, caches, the allocator, the script cache in Redis.
    for t in [&local, &shared] {
        for concurrent in [false, true] {
            measure(t, Phase { path: Link::Locked, concurrent }, WARMUP).await?;
            measure(t, Phase { path: Link::Right, concurrent }, shape.clients).await?;
        }
    }
    let mut met = true;
    for (phase, n) in [
        (Phase { path: Link::Locked, concurrent: false }, shape.locked),
        (Phase { path: Link::Locked, concurrent: true }, shape.locked),
        (Phase { path: Link::Right, concurrent: false }, shape.right),
        (Phase { path: Link::Right, concurrent: true }, shape.right),
    ] {
        let s = compare(&local, &shared, phase, n, shape.rounds).await?;
        let judged = phase.path == Link::Locked && !phase.concurrent;
        let diff = report(&phase.label(shape.clients), &s, judged);
        if judged && diff > TARGET_MS {
            met = false;
        }
    }
    let fallbacks = shared.server.metric("vitrine_limiter_local_checks_total").await?.unwrap_or(0.0);
    let still = shared.server.metric("vitrine_limiter_shared").await?;
    if !aa && (fallbacks > 0.0 || still != Some(1.0)) {
        bail!(
            "the shared server counted {fallbacks} checks on its own (vitrine_limiter_shared {still:?}): Redis did not answer in time; the run is void"
        );
    }
    println!(
        "shared server: vitrine_limiter_shared {}, {fallbacks} checks counted on its own; server logs: {} and {} warning/error lines; load average {}",
        still.map_or("absent".to_string(), |v| v.to_string()),
        local.server.problems(),
        shared.server.problems(),
        loadavg()
    );
    println!("done in {:.0} s", started.elapsed().as_secs_f64());
    Ok(met)
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without it.
    if !std::env::args().any(|a| a == "--bench") {
        println!("limiter benchmark: skipped (run it with `cargo bench --bench limiter`)");
        return Ok(());
    }
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let shape = Shape::from_env();
    common::run_bench("limiter", OVERALL, async {
        Ok(if run(&shape).await? { Vec::new() } else { vec!["shared limiter p50 within 0.3 ms".to_string()] })
    })
}
