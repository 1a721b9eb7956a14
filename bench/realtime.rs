//! Real-time benchmark (`cargo bench --bench realtime`): the collaboration WebSocket of a release
//! `vitrine serve` under load, each figure next to a minimal broadcast server measured in the
//! same run.
//!
//! What it measures (docs/realtime.md is the protocol):
//!
//! 1. **Idle memory**: 10,000 authenticated sockets in one collaboration session. The server's
//!    `VmRSS` (from `/proc/<pid>/status`) once they are connected and the figure has settled,
//!    minus `VmRSS` before the first one, divided by the number of sockets. Target ≤ 8 KiB each.
//!    The sockets are then closed and 10,000 more opened on the warm server: memory that was
//!    freed is reused, so this second round should add next to nothing (a leak check; Vitrine's
//!    own `vitrine_websockets_open` gauge from /metrics is printed after each round).
//! 2. **Broadcast latency, one instance**: rooms of 50 and 1,000 sockets. Comments are sent one at
//!    a time (round-robin over 5 sender sockets, which are members too, because the server allows
//!    60 messages/s per socket); the next one goes 5 ms after every member received the previous
//!    one (or after 2 s). The issue measures "from server commit to client receipt": Vitrine
//!    (run with `RUST_LOG=warn,vitrine::commits=debug`) logs each durable event's seq with the
//!    moment it publishes it after the commit; the reference logs the moment it relays each
//!    frame. Receipt is the kernel's receive stamp of the frame at the member's socket
//!    (`SO_TIMESTAMPNS`, read with `recvmsg`: the same wall clock, one machine), so the bench's
//!    own scheduling on the cores it shares with the server is not counted (`Stamped`).
//!    Latency from commit = receipt − that moment; the targets are judged on it. Also printed:
//!    from commit to the moment this process read the frame, and latency from the sender =
//!    arrival − the moment the comment was handed to the sender's socket (one shared
//!    `Instant`), which adds the way to the server and, for Vitrine, storing the comment. 10
//!    warm-up comments are not counted; a
//!    delivery that never arrives, or whose commit is not in the log, counts as infinitely
//!    late. Targets: p99 < 2 ms (50), < 20 ms (1,000). This is a shared virtual machine: when
//!    the hypervisor takes more than 2 % of the machine's CPU time during a run (`steal` in
//!    /proc/stat), every server stalls for several ms in the middle of some fan-outs, so such a
//!    run is repeated (up to 3 attempts, the same rule for every server) and the first quiet one
//!    is kept, else the least disturbed. Each kept run prints what the hypervisor took, and the
//!    runs set aside are printed with their p99 (`undisturbed`).
//! 3. **Throughput**: a room of 50 members, one account each (the owner and 49 participants, as
//!    in a review with 50 people, so every cursor reaches the 49 others), where every socket
//!    sends a comment every 29 ms and a cursor position every 50 ms (≈ 54.5 messages/s, under the
//!    server's 60/s per socket) for 1 s of warm-up and 10 s of measurement. Counted: frames
//!    received by all members per second. Per core = frames per second of CPU time the server
//!    used (user + system, from `/proc/<pid>/stat`): the clients share the machine, and this
//!    load asks for at most about 135,000 frames/s in all, so frames / machine cores could not
//!    show a server that needs under one core for it. Target ≥ 100,000 per core. Also printed:
//!    frames / machine cores, what share of the frames the sent messages call for arrived, and
//!    the CPU the server and the clients used. A diagnostic run follows at a light load (a
//!    comment every 250 ms per socket, cursors unchanged) that storage can keep up with.
//! 4. **Two instances over Redis**: two `vitrine serve` processes on one SQLite file (WAL) and one
//!    Redis, 25 sockets on each, the senders on the first; the latency of step 2. Target p99
//!    < 10 ms. Skipped, saying why, when Redis does not answer (`TEST_REDIS_URL`, default
//!    `redis://127.0.0.1:6379`).
//!
//! The reference is this same binary started as `realtime --reference-server <port>`: a
//! tokio-tungstenite server that relays every text frame to every socket (the sender too) through
//! a tokio broadcast channel of `Arc<str>` (capacity 1,024, like a Vitrine room), with no
//! authentication and no storage, the same small socket buffers as Vitrine (1 KiB read, no write
//! buffer), and TCP_NODELAY. It gets the same clients and the same load. For latency a second
//! reference without TCP_NODELAY (`--nagle`; Vitrine itself sets TCP_NODELAY) shows how much of the tail is the TCP stack. For throughput the reference
//! is also run with unthrottled senders (a comment every 2 ms per socket), to show what the
//! machine and the clients can carry at all. Two instances have no reference of their own: they
//! are compared with the reference and with one Vitrine instance, both at 50.
//!
//! Clients live in this process (one multi-threaded tokio runtime, 1 KiB read buffers,
//! TCP_NODELAY, at most 500 connections opening at once). Everything is on loopback, in temp
//! dirs, and bounded in time (about 2 min on 2 cores, up to 3 min with repeated runs; the run is
//! abandoned after 290 s).
//! Servers are child processes killed when the benchmark ends, also on failure, panic and Ctrl-C.
//! The server binary is `VITRINE_BIN`, else `target/release/vitrine` (which `cargo bench` builds
//! with the bench); if neither exists it runs `cargo build --release` first. Sizes can be reduced
//! for a quick try: `REALTIME_IDLE_CONNS`, `REALTIME_COMMENTS`, `REALTIME_SMALL_ROOM`,
//! `REALTIME_LARGE_ROOM`, `REALTIME_THROUGHPUT_SECS`; `REALTIME_PARTS=idle,latency` runs only those parts.
//!
//! Exit status: 0 every target met, 1 a target missed, 2 the benchmark itself failed (a server
//! did not start, setup was refused, a socket could not join a latency or throughput room).
//! Under `cargo test --all-targets` the binary starts without `--bench` and returns at once.

#[path = "common.rs"]
mod common;

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, broadcast, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

type Ws = WebSocketStream<Stamped>;
type WsSink = SplitSink<Ws, Message>;
type WsStream = SplitStream<Ws>;

/// Sockets opening at once.
const IN_FLIGHT: usize = 500;
/// Sender sockets in the latency rooms (the server accepts 60 messages/s per socket).
const SENDERS: usize = 5;
const WARMUP_COMMENTS: usize = 10;
const GAP: Duration = Duration::from_millis(5);
/// How long a comment may take to reach every member before the next one is sent anyway.
const DELIVERY_WAIT: Duration = Duration::from_secs(2);
const THROUGHPUT_MEMBERS: usize = 50;
const COMMENT_EVERY: Duration = Duration::from_millis(29);
const CURSOR_EVERY: Duration = Duration::from_millis(50);
/// The diagnostic light load: a comment every 250 ms per socket.
const LIGHT_COMMENT_EVERY: Duration = Duration::from_millis(250);
/// The reference's unthrottled run: a comment every 2 ms from every socket.
const FLOOD_EVERY: Duration = Duration::from_millis(2);
const WARM: Duration = Duration::from_secs(1);
/// The whole benchmark is abandoned after this.
const OVERALL: Duration = Duration::from_secs(290);
const OWNER: &str = "owner@bench.example";
const SECOND: &str = "second@bench.example";
const PASSWORD: &str = "realtime bench password";
/// Shared secrets of the two instances (64 hex characters each).
const JWT_SECRET: &str = "6a9f0c1b2d3e4f5061728394a5b6c7d8e9f00112233445566778899aabbccdd0";
const HMAC_SECRET: &str = "0ddccbbaa9988776655443322110f9e8d7c6b5a4938271605f4e3d2c1b0c9f6a";

/// Sizes, overridable for a quick try (`REALTIME_IDLE_CONNS=500 …`).
struct Shape {
    idle: usize,
    comments: usize,
    small: usize,
    large: usize,
    secs: u64,
    /// Which parts run (`REALTIME_PARTS=idle,latency,throughput,redis`, the default: all).
    parts: String,
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

impl Shape {
    fn from_env() -> Shape {
        Shape {
            idle: env_or("REALTIME_IDLE_CONNS", 10_000),
            comments: env_or("REALTIME_COMMENTS", 200),
            small: env_or("REALTIME_SMALL_ROOM", 50),
            large: env_or("REALTIME_LARGE_ROOM", 1_000),
            secs: env_or("REALTIME_THROUGHPUT_SECS", 10) as u64,
            parts: std::env::var("REALTIME_PARTS").unwrap_or_else(|_| "idle,latency,throughput,redis".into()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The reference server
// ---------------------------------------------------------------------------------------------

/// The buffers Vitrine gives its sockets (src/realtime/socket.rs), for the reference and clients.
fn small_buffers() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(1024).write_buffer_size(0)
}

/// `--reference-server <port> [--nagle]`: relay every text frame to every socket; exits when
/// stdin closes (the benchmark went away). Sockets get TCP_NODELAY (as Vitrine's do) unless
/// `--nagle`.
fn reference_server(port: u16, nagle: bool) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let (tx, _) = broadcast::channel::<Arc<str>>(1024);
        tokio::spawn(async {
            let mut stdin = tokio::io::stdin();
            let mut buf = [0u8; 64];
            while let Ok(n) = stdin.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
            std::process::exit(0);
        });
        loop {
            let (stream, _) = listener.accept().await?;
            if !nagle {
                stream.set_nodelay(true)?;
            }
            let tx = tx.clone();
            tokio::spawn(async move {
                let _ = reference_socket(stream, tx).await;
            });
        }
    })
}

async fn reference_socket(stream: TcpStream, tx: broadcast::Sender<Arc<str>>) -> anyhow::Result<()> {
    let mut ws = tokio_tungstenite::accept_async_with_config(stream, Some(small_buffers())).await?;
    let mut rx = tx.subscribe();
    loop {
        tokio::select! {
            frame = rx.recv() => match frame {
                Ok(f) => ws.send(Message::text(&*f)).await?,
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let at = wall_us();
                    let _ = tx.send(Arc::from(t.as_str()));
                    // The reference's "commit" is the moment it relays a frame.
                    if let Some(n) = marker(&t) {
                        eprintln!("relayed bench#{n}# at_us={at}");
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Ok(()),
                Some(Ok(_)) => {}
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------------

/// A server child process, killed when dropped.
struct Server {
    name: String,
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
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn http(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn ws(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.port)
    }

    /// The last lines of the log, for error messages.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Fails (with the log) if the process has exited.
    fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited ({status}); its log ends with:\n{}", self.name, self.log_tail());
        }
        Ok(())
    }

    async fn vitrine(bin: &Path, name: &str, dir: &Path, extra: &[(&str, String)]) -> anyhow::Result<Server> {
        let port = free_port()?;
        let data = dir.join("data");
        std::fs::create_dir_all(&data)?;
        let log = dir.join("server.log");
        let out = std::fs::File::create(&log)?;
        let mut cmd = Command::new(bin);
        cmd.arg("serve").current_dir(&data).stdin(Stdio::null()).stdout(out.try_clone()?).stderr(out);
        // Only what this benchmark says: no VITRINE_* from the caller's environment.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("VITRINE_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("VITRINE_LISTEN", format!("127.0.0.1:{port}"))
            .env("VITRINE_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
            .env("VITRINE_DATA_DIR", &data)
            .env("VITRINE_LOG_LEVEL", "warn")
            // Every client is on 127.0.0.1, and there are 10,000 of them: no per-address cap.
            .env("VITRINE_MAX_CONNECTIONS", "100000")
            .env("VITRINE_MAX_CONNECTIONS_PER_IP", "0")
            // Each durable event's publication time, for latency from commit (debug, not trace:
            // a trace directive would send every library's per-frame trace call through the filter).
            .env("RUST_LOG", "warn,vitrine::commits=debug");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let child = cmd.spawn().with_context(|| format!("could not start {}", bin.display()))?;
        let mut server = Server { name: name.to_string(), child, port, log };
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

    async fn reference(dir: &Path, nagle: bool) -> anyhow::Result<Server> {
        let port = free_port()?;
        let name = if nagle { "reference-nagle" } else { "reference" };
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log)?;
        let child = Command::new(std::env::current_exe()?)
            .arg("--reference-server")
            .arg(port.to_string())
            .args(if nagle { &["--nagle"][..] } else { &[][..] })
            .stdin(Stdio::piped())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("could not start the reference server")?;
        let mut server = Server { name: name.into(), child, port, log };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            server.check_alive()?;
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Ok(server);
            }
            if Instant::now() > deadline {
                bail!("the reference server did not listen within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// WARN and ERROR lines of the log: count, and a few distinct messages.
    fn problems(&self) -> (usize, Vec<String>) {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let bad: Vec<&str> = text.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).collect();
        let mut distinct = std::collections::BTreeSet::new();
        for l in &bad {
            // Without colours and the timestamp, so repeats collapse.
            let plain = strip_ansi(l);
            let key = plain.split_once(' ').map(|(_, rest)| rest).unwrap_or(&plain).trim().chars().take(240).collect();
            distinct.insert(key);
        }
        (bad.len(), distinct.into_iter().take(5).collect())
    }
}

/// Removes terminal colour sequences (`ESC [ … m`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The server binary: VITRINE_BIN, target/release/vitrine, or a fresh `cargo build --release`.
fn vitrine_bin() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("VITRINE_BIN") {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("VITRINE_BIN={} is not a file", p.display());
        }
        // Servers run in their data dirs: a relative path would not resolve there.
        let p = p.canonicalize()?;
        println!("server binary: {} (VITRINE_BIN)", p.display());
        return Ok(p);
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
    let age = std::fs::metadata(&bin)?.modified()?.elapsed().unwrap_or_default().as_secs();
    println!("server binary: {} (built {} min ago)", bin.display(), age / 60);
    Ok(bin)
}

// ---------------------------------------------------------------------------------------------
// /proc
// ---------------------------------------------------------------------------------------------

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("no VmRSS")?;
    Ok(line.split_whitespace().nth(1).context("VmRSS value")?.parse()?)
}

/// VmRSS once it stops moving: after `first`, then every 500 ms until two readings are within
/// 0.5 % (at most 6 s more).
async fn settled_rss(pid: u32, first: Duration) -> anyhow::Result<u64> {
    tokio::time::sleep(first).await;
    let mut last = rss_kib(pid)?;
    let deadline = Instant::now() + Duration::from_secs(6);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = rss_kib(pid)?;
        if now.abs_diff(last) * 200 <= now {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

/// User + system CPU time of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

// ---------------------------------------------------------------------------------------------
// HTTP setup
// ---------------------------------------------------------------------------------------------

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn new(server: &Server) -> Api {
        Api { http: reqwest::Client::new(), base: server.http() }
    }

    async fn expect(resp: reqwest::Response, what: &str, status: u16) -> anyhow::Result<Value> {
        let got = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        if got != status {
            bail!("{what}: HTTP {got} (expected {status}): {body}");
        }
        serde_json::from_str(&body).with_context(|| format!("{what}: not JSON: {body}"))
    }

    /// Registers an account; its access token.
    async fn register(&self, email: &str, name: &str) -> anyhow::Result<String> {
        let r = self
            .http
            .post(format!("{}/api/auth/register/", self.base))
            .json(&json!({"email": email, "password": PASSWORD, "name": name}))
            .send()
            .await?;
        let v = Self::expect(r, "register", 201).await?;
        Ok(v["access_token"].as_str().context("no access_token")?.to_string())
    }

    /// A fresh asset (a tiny PDF, distinct per tag) and a session on it; its WebSocket path.
    async fn session(&self, token: &str, tag: &str, participants: &[&str]) -> anyhow::Result<String> {
        let pdf = format!("%PDF-1.4\n% vitrine realtime bench: {tag}\n1 0 obj\n<< >>\nendobj\ntrailer\n<< >>\n%%EOF\n");
        let part = reqwest::multipart::Part::bytes(pdf.into_bytes())
            .file_name(format!("{tag}.pdf"))
            .mime_str("application/pdf")?;
        let r = self
            .http
            .post(format!("{}/api/v3/assets/", self.base))
            .bearer_auth(token)
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
            .await?;
        let asset = Self::expect(r, "upload", 201).await?;
        let id = asset["id"].as_i64().context("asset id")?;
        let people: Vec<Value> = participants.iter().map(|e| json!({"email": e})).collect();
        let r = self
            .http
            .post(format!("{}/api/v3/collaboration/sessions/", self.base))
            .bearer_auth(token)
            .json(&json!({"asset_id": id, "participants": people, "session_config": {"cursor_tracking": true}}))
            .send()
            .await?;
        let s = Self::expect(r, "create session", 201).await?;
        Ok(s["websocket_url"].as_str().context("websocket_url")?.to_string())
    }
}

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

/// A client's TCP stream that remembers when the kernel received what it last read.
///
/// With `SO_TIMESTAMPNS` on, Linux stamps every incoming segment with the wall clock when it
/// enters the receiving side of the network stack (on loopback: as the server writes it), and
/// `recvmsg` hands over the stamp of the newest segment it read. That is the moment a frame
/// reached the client's machine, before this process was scheduled to read it: the latency
/// figures can then leave out the benchmark's own scheduling on the two cores it shares with
/// the server (a remote client would not take the server's CPU at all).
struct Stamped {
    tcp: TcpStream,
    /// Room for the control message (`cmsg_space!`), kept to avoid an allocation per read.
    control: Vec<u8>,
    /// Nanoseconds since the Unix epoch of the newest segment read so far; 0 before any.
    received_ns: Arc<AtomicI64>,
}

/// One `recvmsg` into `dst`: the bytes read and the kernel's receive stamp, if it gave one.
fn recv_stamped(fd: RawFd, dst: &mut [u8], control: &mut [u8]) -> std::io::Result<(usize, Option<i64>)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut iov = [std::io::IoSliceMut::new(dst)];
    let msg = recvmsg::<()>(fd, &mut iov, Some(control), MsgFlags::empty())?;
    let mut at = None;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmTimestampns(ts) = c {
            at = Some(ts.tv_sec() * 1_000_000_000 + ts.tv_nsec());
        }
    }
    Ok((msg.bytes, at))
}

impl AsyncRead for Stamped {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let me = self.get_mut();
        loop {
            std::task::ready!(me.tcp.poll_read_ready(cx))?;
            let fd = me.tcp.as_raw_fd();
            let dst = buf.initialize_unfilled();
            let control = &mut me.control;
            match me.tcp.try_io(Interest::READABLE, || recv_stamped(fd, dst, control)) {
                Ok((n, at)) => {
                    buf.advance(n);
                    if let Some(at) = at {
                        me.received_ns.store(at, Ordering::Release);
                    }
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for Stamped {
    fn poll_write(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

/// The `host[:port]` of a URL (`scheme://[user[:pass]@]host[:port][/…]`).
fn host_port(url: &str) -> &str {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split('/').next().unwrap_or("");
    authority.rsplit_once('@').map(|(_, h)| h).unwrap_or(authority)
}

/// Opens one socket (TCP_NODELAY; with `stamps`, kernel receive stamps); with `expect_state`,
/// waits for the `session_state` frame.
async fn open(url: &str, expect_state: bool, stamps: bool) -> anyhow::Result<Ws> {
    let connect = async {
        let tcp = TcpStream::connect(host_port(url)).await?;
        tcp.set_nodelay(true)?;
        if stamps {
            nix::sys::socket::setsockopt(&tcp, nix::sys::socket::sockopt::ReceiveTimestampns, &true)?;
        }
        let control = nix::cmsg_space!(nix::sys::time::TimeSpec);
        let stream = Stamped { tcp, control, received_ns: Arc::new(AtomicI64::new(0)) };
        anyhow::Ok(tokio_tungstenite::client_async_with_config(url, stream, Some(small_buffers())).await?)
    };
    let (mut ws, _) = tokio::time::timeout(Duration::from_secs(30), connect).await.context("connect timed out")??;
    if expect_state {
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await.context("no first frame in 30 s")? {
            Some(Ok(Message::Text(t))) if t.contains("\"type\":\"session_state\"") => {}
            Some(Ok(other)) => bail!("first frame is not session_state: {}", other.to_text().unwrap_or("(binary)")),
            Some(Err(e)) => bail!("{e}"),
            None => bail!("closed before the first frame"),
        }
    }
    Ok(ws)
}

/// Opens every url (index order kept), at most IN_FLIGHT at once; errors by message.
async fn open_all(urls: &[String], expect_state: bool, stamps: bool) -> (Vec<Ws>, BTreeMap<String, usize>) {
    let gate = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut tasks = Vec::with_capacity(urls.len());
    for url in urls {
        let gate = gate.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await;
            open(&url, expect_state, stamps).await
        }));
    }
    let mut socks = Vec::with_capacity(urls.len());
    let mut errors = BTreeMap::new();
    for t in tasks {
        match t.await {
            Ok(Ok(ws)) => socks.push(ws),
            Ok(Err(e)) => *errors.entry(format!("{e:#}")).or_insert(0) += 1,
            Err(e) => *errors.entry(format!("task: {e}")).or_insert(0) += 1,
        }
    }
    (socks, errors)
}

fn all_or_fail(opened: (Vec<Ws>, BTreeMap<String, usize>), what: &str) -> anyhow::Result<Vec<Ws>> {
    let (socks, errors) = opened;
    if !errors.is_empty() {
        bail!("{what}: {} sockets could not join: {errors:?}", errors.values().sum::<usize>());
    }
    Ok(socks)
}

struct Counters {
    born: Instant,
    /// ms after `born` of the first close; u64::MAX while none.
    first_close_ms: AtomicU64,
    comment: AtomicU64,
    cursor: AtomicU64,
    error: AtomicU64,
    rate_limited: AtomicU64,
    other: AtomicU64,
    /// Sockets the server closed (or that failed) before the benchmark stopped them.
    closed: AtomicU64,
    close_reasons: std::sync::Mutex<BTreeMap<String, usize>>,
}

impl Counters {
    fn new() -> Arc<Counters> {
        Arc::new(Counters {
            born: Instant::now(),
            first_close_ms: AtomicU64::new(u64::MAX),
            comment: AtomicU64::new(0),
            cursor: AtomicU64::new(0),
            error: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            other: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            close_reasons: std::sync::Mutex::new(BTreeMap::new()),
        })
    }
}

/// Arrival bookkeeping of a latency run.
struct Probe {
    clock: Instant,
    /// Members that received comment n.
    counts: Vec<AtomicU32>,
    members: u32,
    notify: Notify,
}

impl Probe {
    fn now(&self) -> u64 {
        self.clock.elapsed().as_nanos() as u64
    }
}

/// Microseconds since the Unix epoch: one clock for the servers' stamps and the clients' arrivals.
fn wall_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// The value of the numeric field `"key":` in a JSON frame, or `key=` in a log line.
fn number_after(text: &str, key: &str) -> Option<i64> {
    let i = text.find(key)? + key.len();
    let rest = &text[i..];
    let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Where each server's log ends now (what a later `commits_since` reads from).
fn log_ends(servers: &[&Server]) -> Vec<u64> {
    servers.iter().map(|s| std::fs::metadata(&s.log).map(|m| m.len()).unwrap_or(0)).collect()
}

/// When each event was committed, from the servers' logs written since `ends`: Vitrine logs
/// `room event committed … seq=<s> committed_us=<t>` (keyed by seq), the reference
/// `relayed bench#<n># at_us=<t>` (keyed by comment number).
#[derive(Default)]
struct Commits {
    by_seq: std::collections::HashMap<i64, i64>,
    by_marker: std::collections::HashMap<u32, i64>,
}

fn commits_since(servers: &[&Server], ends: &[u64]) -> Commits {
    let mut c = Commits::default();
    for (s, &from) in servers.iter().zip(ends) {
        let bytes = std::fs::read(&s.log).unwrap_or_default();
        let text = String::from_utf8_lossy(bytes.get(from as usize..).unwrap_or_default());
        for line in text.lines() {
            let line = strip_ansi(line);
            if line.contains("room event committed") {
                if let (Some(seq), Some(at)) = (number_after(&line, "seq="), number_after(&line, "committed_us=")) {
                    c.by_seq.insert(seq, at);
                }
            } else if let (Some(n), Some(at)) = (marker(&line), number_after(&line, "at_us=")) {
                c.by_marker.insert(n, at);
            }
        }
    }
    c
}

/// `bench#<n>#` in a frame.
fn marker(text: &str) -> Option<u32> {
    let i = text.find("bench#")? + "bench#".len();
    let rest = &text[i..];
    rest[..rest.find('#')?].parse().ok()
}

/// A latency probe received by one member.
struct Arrival {
    /// The comment's number (its marker).
    n: u32,
    /// On the probe's clock, ns.
    at: u64,
    /// When this process read it, µs since the epoch.
    wall_us: i64,
    /// When the kernel received it (the socket's newest receive stamp), ns since the epoch;
    /// 0 without one.
    kernel_ns: i64,
    /// The event's seq (Vitrine's frames carry one).
    seq: Option<i64>,
}

/// Reads one socket until told to stop: counts frames by type; with a probe, stamps comments.
async fn reader(
    mut stream: WsStream,
    counters: Arc<Counters>,
    probe: Option<(Arc<Probe>, Arc<AtomicI64>)>,
    mut stop: watch::Receiver<bool>,
) -> Vec<Arrival> {
    let mut samples = Vec::new();
    loop {
        tokio::select! {
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    if let Some((p, received_ns)) = &probe {
                        let at = p.now();
                        if let Some(n) = marker(&t)
                            && let Some(c) = p.counts.get(n as usize)
                        {
                            samples.push(Arrival {
                                n,
                                at,
                                wall_us: wall_us(),
                                kernel_ns: received_ns.load(Ordering::Acquire),
                                seq: number_after(&t, "\"seq\":"),
                            });
                            if c.fetch_add(1, Ordering::AcqRel) + 1 == p.members {
                                p.notify.notify_one();
                            }
                        }
                    }
                    let c = &counters;
                    if t.contains("\"type\":\"cursor_position\"") {
                        c.cursor.fetch_add(1, Ordering::Relaxed);
                    } else if t.contains("\"type\":\"comment\"") {
                        c.comment.fetch_add(1, Ordering::Relaxed);
                    } else if t.contains("\"type\":\"error\"") {
                        c.error.fetch_add(1, Ordering::Relaxed);
                        if t.contains("rate_limited") {
                            c.rate_limited.fetch_add(1, Ordering::Relaxed);
                        }
                    } else {
                        c.other.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    let why = frame.map(|f| format!("close {} {}", u16::from(f.code), f.reason)).unwrap_or_else(|| "close".into());
                    closed(&counters, why);
                    break;
                }
                Some(Err(e)) => {
                    closed(&counters, format!("error: {e}"));
                    break;
                }
                None => {
                    closed(&counters, "end of stream".into());
                    break;
                }
                Some(Ok(_)) => {}
            },
            _ = stop.changed() => break,
        }
    }
    samples
}

fn closed(c: &Counters, why: String) {
    c.closed.fetch_add(1, Ordering::Relaxed);
    c.first_close_ms.fetch_min(c.born.elapsed().as_millis() as u64, Ordering::Relaxed);
    *c.close_reasons.lock().unwrap_or_else(|e| e.into_inner()).entry(why).or_insert(0) += 1;
}

fn close_summary(c: &Counters) -> String {
    let n = c.closed.load(Ordering::Relaxed);
    if n == 0 {
        return "none closed by the server".into();
    }
    format!(
        "{n} closed by the server, the first {:.1} s after the sockets joined: {:?}",
        c.first_close_ms.load(Ordering::Relaxed) as f64 / 1000.0,
        c.close_reasons.lock().unwrap_or_else(|e| e.into_inner())
    )
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

struct Idle {
    conns: usize,
    failed: usize,
    errors: BTreeMap<String, usize>,
    before: u64,
    after: u64,
    after_close: u64,
    open_secs: f64,
    closed: String,
    closed_n: u64,
    /// Vitrine's own count of open collaboration sockets once ours are closed.
    gauge_after_close: Option<f64>,
}

impl Idle {
    fn per_conn_kib(&self) -> f64 {
        self.after.saturating_sub(self.before) as f64 / self.conns.max(1) as f64
    }
}

/// `vitrine_websockets_open{channel="collaboration"}` from /metrics.
async fn open_gauge(server: &Server) -> Option<f64> {
    let text = reqwest::get(format!("{}/metrics", server.http())).await.ok()?.text().await.ok()?;
    let line = text.lines().find(|l| l.starts_with("vitrine_websockets_open{") && l.contains("collaboration"))?;
    line.split_whitespace().last()?.parse().ok()
}

/// Opens `n` sockets, reads VmRSS once settled, closes them, reads it again. `before` is the
/// baseline the growth is counted from.
async fn idle(server: &Server, url: &str, expect_state: bool, n: usize, before: u64) -> anyhow::Result<Idle> {
    let pid = server.pid();
    let t = Instant::now();
    let (socks, errors) = open_all(&vec![url.to_string(); n], expect_state, false).await;
    let open_secs = t.elapsed().as_secs_f64();
    let conns = socks.len();
    let counters = Counters::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut sinks = Vec::with_capacity(conns);
    let mut readers = Vec::with_capacity(conns);
    for ws in socks {
        let (sink, stream) = ws.split();
        sinks.push(sink);
        readers.push(tokio::spawn(reader(stream, counters.clone(), None, stop_rx.clone())));
    }
    let after = settled_rss(pid, Duration::from_secs(2)).await?;
    let _ = stop_tx.send(true);
    for r in readers {
        let _ = r.await;
    }
    drop(sinks);
    let after_close = settled_rss(pid, Duration::from_secs(2)).await?;
    let gauge_after_close = if expect_state { open_gauge(server).await } else { None };
    Ok(Idle {
        conns,
        failed: errors.values().sum(),
        errors,
        before,
        after,
        after_close,
        open_secs,
        closed: close_summary(&counters),
        closed_n: counters.closed.load(Ordering::Relaxed),
        gauge_after_close,
    })
}

struct Latency {
    members: usize,
    comments: usize,
    /// Sorted, ns; u64::MAX for a delivery that never came.
    all: Vec<u64>,
    /// From commit, members from `remote_from` on (two instances: the other instance's sockets).
    remote: Vec<u64>,
    /// Per comment, its first arrival at any member (sorted): the server's own time, before
    /// fan-out to the rest.
    first: Vec<u64>,
    /// Sorted, ns: the kernel's receipt at the member's socket − the moment the server committed
    /// (Vitrine: published the stored event; the reference: relayed the frame), from the
    /// servers' logs. The issue's definition, "from server commit to client receipt"; `all`
    /// adds the way from the sender to the server and the storing.
    from_commit: Vec<u64>,
    /// Sorted, ns: the same up to the moment this process read the frame, which adds the
    /// benchmark's own scheduling (it shares the machine's cores with the server).
    to_process: Vec<u64>,
    /// Deliveries whose commit moment is not in the logs.
    unstamped: usize,
    /// Deliveries without a kernel receive stamp (counted at the moment they were read).
    no_rx_stamp: usize,
    lost: usize,
    errors: u64,
    closed: String,
    closed_n: u64,
    secs: f64,
    /// Per comment, its slowest delivery from commit (to see whether a tail is a few comments
    /// delayed for many members, or spread out).
    slowest: Vec<u64>,
    /// Per comment, its first delivery from commit (sorted): how long the fan-out takes to start.
    fastest: Vec<u64>,
    /// CPU time the hypervisor took from this machine's cores during the run (`steal` in
    /// /proc/stat), ms.
    steal_ms: f64,
    /// Earlier attempts set aside because the hypervisor took too much (`undisturbed`):
    /// (steal ms, p99 from commit).
    set_aside: Vec<(f64, u64)>,
}

impl Latency {
    /// The share of the machine's CPU time the hypervisor took during the run.
    fn stolen_share(&self) -> f64 {
        self.steal_ms / (self.secs * 1000.0 * cores() as f64)
    }
}

/// A run during which the hypervisor takes more than this share of the machine's CPU time is
/// disturbed: it measures the neighbours (stalls of several ms in the middle of a fan-out, for
/// every server alike), not the server. Quiet runs here lose 0–1 %, disturbed ones 3–10 %.
const DISTURBED_SHARE: f64 = 0.02;
/// Attempts per latency measurement before the least disturbed one is taken as it is.
const ATTEMPTS: usize = 3;

/// One latency measurement: the room's sockets and the servers whose logs hold the commits.
#[derive(Clone, Copy)]
struct LatencyRun<'a> {
    urls: &'a [String],
    expect_state: bool,
    comments: usize,
    /// Members from this index on are another instance's (`Latency::remote`).
    remote_from: usize,
    servers: &'a [&'a Server],
}

impl<'a> LatencyRun<'a> {
    /// Every member on one server.
    fn one_instance(urls: &'a [String], expect_state: bool, comments: usize, servers: &'a [&'a Server]) -> Self {
        LatencyRun { urls, expect_state, comments, remote_from: usize::MAX, servers }
    }
}

/// `latency`, repeated (up to `ATTEMPTS`) while a run is disturbed; every server gets the same
/// rule, and the runs set aside are printed with the one kept.
async fn undisturbed(run: LatencyRun<'_>) -> anyhow::Result<Latency> {
    let mut runs: Vec<Latency> = Vec::new();
    for _ in 0..ATTEMPTS {
        let l = latency(run).await?;
        let quiet = l.stolen_share() <= DISTURBED_SHARE;
        runs.push(l);
        if quiet {
            break;
        }
    }
    // The loop stops at the first quiet run; without one, the least disturbed is kept.
    let keep = if runs.last().is_some_and(|l| l.stolen_share() <= DISTURBED_SHARE) {
        runs.len() - 1
    } else {
        (0..runs.len()).min_by(|&a, &b| runs[a].steal_ms.total_cmp(&runs[b].steal_ms)).unwrap_or(0)
    };
    let mut kept = runs.remove(keep);
    kept.set_aside = runs.iter().map(|l| (l.steal_ms, pct(&l.from_commit, 0.99))).collect();
    Ok(kept)
}

/// Time stolen from this (virtual) machine's cores by the hypervisor so far, ms (`steal` of the
/// `cpu` line of /proc/stat; 0 where there is none).
fn steal_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let steal = stat.lines().next().and_then(|l| l.split_whitespace().nth(8)).and_then(|v| v.parse::<f64>().ok());
    steal.unwrap_or(0.0) * 1000.0 / clock_ticks_per_second()
}

fn pct(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return u64::MAX;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(ns: u64) -> String {
    if ns == u64::MAX { "never".into() } else { format!("{:.2} ms", ns as f64 / 1e6) }
}

async fn latency(run: LatencyRun<'_>) -> anyhow::Result<Latency> {
    let LatencyRun { urls, expect_state, comments, remote_from, servers } = run;
    let socks = all_or_fail(open_all(urls, expect_state, true).await, "latency room")?;
    let ends = log_ends(servers);
    let members = socks.len();
    let total = WARMUP_COMMENTS + comments;
    let probe = Arc::new(Probe {
        clock: Instant::now(),
        counts: (0..total).map(|_| AtomicU32::new(0)).collect(),
        members: members as u32,
        notify: Notify::new(),
    });
    let counters = Counters::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut sinks = Vec::with_capacity(members);
    let mut readers = Vec::with_capacity(members);
    for ws in socks {
        let received_ns = ws.get_ref().received_ns.clone();
        let (sink, stream) = ws.split();
        sinks.push(sink);
        let probe = Some((probe.clone(), received_ns));
        readers.push(tokio::spawn(reader(stream, counters.clone(), probe, stop_rx.clone())));
    }
    // Let the joins settle (presence, participant_joined).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let steal_before = steal_ms();
    let mut sent_at = vec![0u64; total];
    for (n, at) in sent_at.iter_mut().enumerate() {
        let frame = json!({"type": "comment", "comment": {"content": format!("bench#{n}# latency probe")}}).to_string();
        let sink = &mut sinks[n % SENDERS.min(members)];
        *at = probe.now();
        sink.send(Message::text(frame)).await.context("sending a comment")?;
        let deadline = tokio::time::Instant::now() + DELIVERY_WAIT;
        while probe.counts[n].load(Ordering::Acquire) < probe.members {
            if tokio::time::timeout_at(deadline, probe.notify.notified()).await.is_err() {
                break;
            }
        }
        tokio::time::sleep(GAP).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let steal_ms = steal_ms() - steal_before;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = stop_tx.send(true);
    let mut all = Vec::with_capacity(members * comments);
    let mut remote = Vec::new();
    let mut first = vec![u64::MAX; total];
    let mut slowest = vec![0u64; total];
    let mut fastest = vec![u64::MAX; total];
    let commits = commits_since(servers, &ends);
    let mut from_commit = Vec::with_capacity(members * comments);
    let mut to_process = Vec::with_capacity(members * comments);
    let mut unstamped = 0;
    let mut no_rx_stamp = 0;
    for (i, r) in readers.into_iter().enumerate() {
        let mut got = 0usize;
        for a in r.await.unwrap_or_default() {
            let n = a.n as usize;
            if n < WARMUP_COMMENTS {
                continue;
            }
            got += 1;
            let committed = match a.seq {
                Some(seq) => commits.by_seq.get(&seq),
                None => commits.by_marker.get(&a.n),
            };
            let read_ns = a.wall_us * 1_000;
            let received_ns = if a.kernel_ns > 0 {
                a.kernel_ns
            } else {
                no_rx_stamp += 1;
                read_ns
            };
            let (since_commit, to_read) = match committed {
                Some(&c) => ((received_ns - c * 1_000).max(0) as u64, (read_ns - c * 1_000).max(0) as u64),
                None => {
                    unstamped += 1;
                    (u64::MAX, u64::MAX)
                }
            };
            from_commit.push(since_commit);
            to_process.push(to_read);
            if i >= remote_from {
                remote.push(since_commit);
            }
            let l = a.at.saturating_sub(sent_at[n]);
            first[n] = first[n].min(l);
            slowest[n] = slowest[n].max(since_commit);
            fastest[n] = fastest[n].min(since_commit);
            all.push(l);
        }
        for _ in got..comments {
            all.push(u64::MAX);
            from_commit.push(u64::MAX);
            to_process.push(u64::MAX);
            if i >= remote_from {
                remote.push(u64::MAX);
            }
        }
    }
    drop(sinks);
    all.sort_unstable();
    remote.sort_unstable();
    from_commit.sort_unstable();
    to_process.sort_unstable();
    let mut first = first.split_off(WARMUP_COMMENTS);
    first.sort_unstable();
    let lost = all.iter().filter(|&&l| l == u64::MAX).count();
    Ok(Latency {
        members,
        comments,
        all,
        remote,
        first,
        from_commit,
        to_process,
        unstamped,
        no_rx_stamp,
        lost,
        errors: counters.error.load(Ordering::Relaxed),
        closed: close_summary(&counters),
        closed_n: counters.closed.load(Ordering::Relaxed),
        secs,
        set_aside: Vec::new(),
        slowest: slowest.split_off(WARMUP_COMMENTS),
        fastest: {
            let mut f = fastest.split_off(WARMUP_COMMENTS);
            f.sort_unstable();
            f
        },
        steal_ms,
    })
}

struct Throughput {
    delivered_per_s: f64,
    /// What the messages sent call for: every comment to every member; every cursor to every
    /// other member (Vitrine) or to everyone (the reference).
    offered_per_s: f64,
    comment_frames_per_s: f64,
    cursor_frames_per_s: f64,
    comments_sent_per_s: f64,
    cursors_sent_per_s: f64,
    errors: u64,
    rate_limited: u64,
    closed: String,
    closed_n: u64,
    server_cores: f64,
    client_cores: f64,
}

/// One socket's load: a comment every `comment_every`, a cursor every `cursor_every`.
async fn writer(
    mut sink: WsSink,
    i: usize,
    comment_every: Duration,
    cursor_every: Duration,
    sent: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) -> WsSink {
    // Stagger the sockets so they do not all send on the same millisecond.
    let offset = (i as u64 * 7_919) % comment_every.as_micros().max(1) as u64;
    tokio::time::sleep(Duration::from_micros(offset)).await;
    let mut comments = tokio::time::interval(comment_every);
    comments.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut cursors = tokio::time::interval(cursor_every);
    cursors.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut k = 0u64;
    loop {
        k += 1;
        let text = tokio::select! {
            _ = comments.tick() => {
                sent.comment.fetch_add(1, Ordering::Relaxed);
                format!(r#"{{"type":"comment","comment":{{"content":"load {i}-{k}"}}}}"#)
            }
            _ = cursors.tick() => {
                sent.cursor.fetch_add(1, Ordering::Relaxed);
                let x = (k % 100) as f64 / 100.0;
                format!(r#"{{"type":"cursor_position","x":{x},"y":0.5}}"#)
            }
            _ = stop.changed() => break,
        };
        if sink.send(Message::text(text)).await.is_err() {
            sent.error.fetch_add(1, Ordering::Relaxed);
            break;
        }
    }
    sink
}

async fn throughput(
    server: &Server,
    urls: &[String],
    expect_state: bool,
    comment_every: Duration,
    secs: u64,
    clk: f64,
) -> anyhow::Result<Throughput> {
    let socks = all_or_fail(open_all(urls, expect_state, false).await, "throughput room")?;
    let received = Counters::new();
    let sent = Counters::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    let (stop_w_tx, stop_w_rx) = watch::channel(false);
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for (i, ws) in socks.into_iter().enumerate() {
        let (sink, stream) = ws.split();
        readers.push(tokio::spawn(reader(stream, received.clone(), None, stop_rx.clone())));
        writers.push(tokio::spawn(writer(sink, i, comment_every, CURSOR_EVERY, sent.clone(), stop_w_rx.clone())));
    }
    tokio::time::sleep(WARM).await;
    let snap = |c: &Counters| {
        [
            c.comment.load(Ordering::Relaxed),
            c.cursor.load(Ordering::Relaxed),
            c.error.load(Ordering::Relaxed),
            c.rate_limited.load(Ordering::Relaxed),
        ]
    };
    let (r0, s0) = (snap(&received), snap(&sent));
    let (server0, client0) = (cpu_ticks(server.pid()), cpu_ticks(std::process::id()));
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (r1, s1) = (snap(&received), snap(&sent));
    let (server1, client1) = (cpu_ticks(server.pid()), cpu_ticks(std::process::id()));
    let dt = t0.elapsed().as_secs_f64();
    let _ = stop_w_tx.send(true);
    let mut sinks = Vec::new();
    for w in writers {
        if let Ok(s) = w.await {
            sinks.push(s);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = stop_tx.send(true);
    for r in readers {
        let _ = r.await;
    }
    drop(sinks);
    let rate = |a: u64, b: u64| (b - a) as f64 / dt;
    let members = urls.len() as f64;
    // Vitrine does not send a member's cursor back to that member; the reference relays to all.
    let cursor_receivers = if expect_state { members - 1.0 } else { members };
    Ok(Throughput {
        delivered_per_s: rate(r0[0] + r0[1], r1[0] + r1[1]),
        offered_per_s: rate(s0[0], s1[0]) * members + rate(s0[1], s1[1]) * cursor_receivers,
        comment_frames_per_s: rate(r0[0], r1[0]),
        cursor_frames_per_s: rate(r0[1], r1[1]),
        comments_sent_per_s: rate(s0[0], s1[0]),
        cursors_sent_per_s: rate(s0[1], s1[1]),
        errors: r1[2] - r0[2],
        rate_limited: r1[3] - r0[3],
        closed: close_summary(&received),
        closed_n: received.closed.load(Ordering::Relaxed),
        server_cores: (server1 - server0) as f64 / clk / dt,
        client_cores: (client1 - client0) as f64 / clk / dt,
    })
}

/// Whether Redis answers PING at `url` (redis://[user:pass@]host[:port][/db]).
async fn redis_answers(url: &str) -> Result<(), String> {
    let hostport = host_port(url);
    let addr = if hostport.contains(':') { hostport.to_string() } else { format!("{hostport}:6379") };
    let attempt = async {
        let mut s = TcpStream::connect(&addr).await.map_err(|e| format!("{addr}: {e}"))?;
        s.write_all(b"PING\r\n").await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 { Err(format!("{addr} closed the connection")) } else { Ok(()) }
    };
    tokio::time::timeout(Duration::from_secs(2), attempt).await.map_err(|_| format!("{addr}: no answer in 2 s"))?
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

struct Verdicts {
    missed: Vec<String>,
}

impl Verdicts {
    fn check(&mut self, what: &str, ok: bool) -> &'static str {
        if ok {
            "PASS"
        } else {
            self.missed.push(what.to_string());
            "MISS"
        }
    }
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() { format!("{:.2}x", a / b) } else { "n/a".into() }
}

/// Frames delivered per second of server CPU time.
fn per_cpu(t: &Throughput) -> f64 {
    t.delivered_per_s / t.server_cores.max(1e-9)
}

fn lat_ms(ns: u64) -> f64 {
    if ns == u64::MAX { f64::INFINITY } else { ns as f64 / 1e6 }
}

/// "p50 …, p90 …, p99 …, max …" of sorted latencies.
fn spread(sorted: &[u64]) -> String {
    let at = |q| ms(pct(sorted, q));
    format!("p50 {}, p90 {}, p99 {}, max {}", at(0.50), at(0.90), at(0.99), at(1.0))
}

/// One latency run in detail, on one line.
fn latency_detail(name: &str, l: &Latency) -> String {
    format!(
        "    {name}: from commit {} ({} without a commit stamp, {} without a kernel receive stamp); from commit to this process reading it {}; from the sender {}; first arrival per comment p50 {}, p99 {}, max {} (from commit p50 {}, p99 {}); {} comments x {} members = {} deliveries in {:.1} s, {} lost, {} error frames, {}",
        spread(&l.from_commit),
        l.unstamped,
        l.no_rx_stamp,
        spread(&l.to_process),
        spread(&l.all),
        ms(pct(&l.first, 0.50)),
        ms(pct(&l.first, 0.99)),
        ms(pct(&l.first, 1.0)),
        ms(pct(&l.fastest, 0.50)),
        ms(pct(&l.fastest, 0.99)),
        l.comments,
        l.members,
        l.all.len(),
        l.secs,
        l.lost,
        l.errors,
        l.closed
    ) + &disturbance(l)
}

/// What the hypervisor took during a kept run, and the runs set aside before it.
fn disturbance(l: &Latency) -> String {
    let mut s = format!(
        "; the hypervisor took {:.0} ms = {:.1} % of the machine's CPU time",
        l.steal_ms,
        l.stolen_share() * 100.0
    );
    if l.stolen_share() > DISTURBED_SHARE {
        s += &format!(" (disturbed in all {ATTEMPTS} attempts; this is the least disturbed)");
    }
    if !l.set_aside.is_empty() {
        let runs: Vec<String> =
            l.set_aside.iter().map(|(steal, p99)| format!("{steal:.0} ms taken, p99 {}", ms(*p99))).collect();
        s += &format!("; set aside as disturbed: {}", runs.join(", "));
    }
    s
}

fn print_latency(v: &mut Verdicts, label: &str, vit: &Latency, reference: &Latency, nagle: &Latency, target_ms: f64) {
    let (vp50, vp99) = (pct(&vit.from_commit, 0.50), pct(&vit.from_commit, 0.99));
    let (rp50, rp99) = (pct(&reference.from_commit, 0.50), pct(&reference.from_commit, 0.99));
    let ok = lat_ms(vp99) < target_ms && vit.closed_n == 0;
    println!(
        "latency, {label}: {} members, from commit p50 vitrine {} / reference {} ({}), p99 vitrine {} / reference {} ({}) target p99 < {target_ms} ms: {}; to the client process p99 {} / {} ({}); from the sender p50 {} / {} ({}), p99 {} / {} ({})",
        vit.members,
        ms(vp50),
        ms(rp50),
        ratio(lat_ms(vp50), lat_ms(rp50)),
        ms(vp99),
        ms(rp99),
        ratio(lat_ms(vp99), lat_ms(rp99)),
        v.check(&format!("latency {label}"), ok),
        ms(pct(&vit.to_process, 0.99)),
        ms(pct(&reference.to_process, 0.99)),
        ratio(lat_ms(pct(&vit.to_process, 0.99)), lat_ms(pct(&reference.to_process, 0.99))),
        ms(pct(&vit.all, 0.50)),
        ms(pct(&reference.all, 0.50)),
        ratio(lat_ms(pct(&vit.all, 0.50)), lat_ms(pct(&reference.all, 0.50))),
        ms(pct(&vit.all, 0.99)),
        ms(pct(&reference.all, 0.99)),
        ratio(lat_ms(pct(&vit.all, 0.99)), lat_ms(pct(&reference.all, 0.99))),
    );
    for (name, l) in [("vitrine", vit), ("reference", reference), ("reference without TCP_NODELAY", nagle)] {
        println!("{}", latency_detail(name, l));
    }
    let slow = |l: &Latency| l.slowest.iter().filter(|&&ns| lat_ms(ns) >= target_ms).count();
    println!(
        "    comments that reached some member {target_ms} ms or more after the commit: vitrine {}, reference {}, reference without TCP_NODELAY {} (of {})",
        slow(vit),
        slow(reference),
        slow(nagle),
        vit.comments
    );
}

async fn run(shape: &Shape) -> anyhow::Result<Verdicts> {
    let started = Instant::now();
    let mut v = Verdicts { missed: Vec::new() };
    println!("machine: {}", common::machine());
    let commit = Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!("commit: {commit}");
    let bin = vitrine_bin()?;
    let clk = clock_ticks_per_second();
    let tmp = tempfile::Builder::new().prefix("vitrine-realtime-").tempdir()?;
    let one_dir = tmp.path().join("one");
    std::fs::create_dir_all(&one_dir)?;
    let vit = Server::vitrine(&bin, "vitrine", &one_dir, &[]).await?;
    let reference = Server::reference(tmp.path(), false).await?;
    let nagle = Server::reference(tmp.path(), true).await?;
    println!(
        "servers: vitrine pid {} on :{}, reference pid {} on :{}, reference without TCP_NODELAY pid {} on :{} (logs in {})",
        vit.pid(),
        vit.port,
        reference.pid(),
        reference.port,
        nagle.pid(),
        nagle.port,
        tmp.path().display()
    );
    let api = Api::new(&vit);
    let owner = api.register(OWNER, "Bench Owner").await?;
    api.register(SECOND, "Bench Second").await?;
    let ref_url = reference.ws("/");
    let member_url = |path: &str, token: &str| vit.ws(&format!("{path}?token={token}"));

    let part = |name: &str| shape.parts.split(',').any(|p| p.trim() == name);
    // 1. Idle memory.
    if part("idle") {
        let path = api.session(&owner, "idle", &[SECOND]).await?;
        let vurl = member_url(&path, &owner);
        let vbefore = settled_rss(vit.pid(), Duration::from_millis(500)).await?;
        let vi = idle(&vit, &vurl, true, shape.idle, vbefore).await?;
        let rbefore = settled_rss(reference.pid(), Duration::from_millis(500)).await?;
        let ri = idle(&reference, &ref_url, false, shape.idle, rbefore).await?;
        let ok = vi.per_conn_kib() <= 8.0 && vi.failed == 0 && vi.closed_n == 0;
        println!(
            "idle memory: {} conns, vitrine {:.1} KB/conn, reference {:.1} KB/conn ({}) target <= 8 KB: {}",
            vi.conns,
            vi.per_conn_kib(),
            ri.per_conn_kib(),
            ratio(vi.per_conn_kib(), ri.per_conn_kib()),
            v.check("idle memory", ok)
        );
        // The same again on the warm server: memory that comes back is reused, a leak grows.
        let vi2 = idle(&vit, &vurl, true, shape.idle, vi.after_close).await?;
        for (name, i) in [("vitrine", &vi), ("reference", &ri), ("vitrine, second round", &vi2)] {
            let gauge = match i.gauge_after_close {
                Some(g) => format!("; the server counts {g} open collaboration sockets after they closed"),
                None => String::new(),
            };
            println!(
                "    {name}: VmRSS {:.1} MB before, {:.1} MB with {} sockets ({:.1} KB each), {:.1} MB after closing them{gauge}; opened in {:.1} s ({:.0}/s); {} failed {:?}; {}",
                i.before as f64 / 1024.0,
                i.after as f64 / 1024.0,
                i.conns,
                i.per_conn_kib(),
                i.after_close as f64 / 1024.0,
                i.open_secs,
                i.conns as f64 / i.open_secs.max(1e-9),
                i.failed,
                i.errors,
                i.closed
            );
        }
    }
    // 2. Latency, one instance.
    let mut small_vit = None;
    let mut small_ref = None;
    if part("latency") {
        for (label, members, target) in [("small room", shape.small, 2.0), ("large room", shape.large, 20.0)] {
            let path = api.session(&owner, label, &[SECOND]).await?;
            let urls = vec![member_url(&path, &owner); members];
            let vl = undisturbed(LatencyRun::one_instance(&urls, true, shape.comments, &[&vit])).await?;
            let (ref_urls, nagle_urls) = (vec![ref_url.clone(); members], vec![nagle.ws("/"); members]);
            let rl = undisturbed(LatencyRun::one_instance(&ref_urls, false, shape.comments, &[&reference])).await?;
            let nl = undisturbed(LatencyRun::one_instance(&nagle_urls, false, shape.comments, &[&nagle])).await?;
            print_latency(&mut v, label, &vl, &rl, &nl, target);
            if small_vit.is_none() {
                small_vit = Some(vl);
                small_ref = Some(rl);
            }
        }
    }
    // 3. Throughput: 50 members, one account each (the owner and 49 participants).
    if part("throughput") {
        let mut tokens = vec![owner.clone()];
        let mut emails = Vec::new();
        for i in 1..THROUGHPUT_MEMBERS {
            let email = format!("member{i}@bench.example");
            tokens.push(api.register(&email, &format!("Member {i}")).await?);
            emails.push(email);
        }
        let emails: Vec<&str> = emails.iter().map(String::as_str).collect();
        let members = |path: &str| -> Vec<String> { tokens.iter().map(|t| member_url(path, t)).collect() };
        let path = api.session(&owner, "throughput", &emails).await?;
        let urls = members(&path);
        let ref_urls = vec![ref_url.clone(); THROUGHPUT_MEMBERS];
        let vt = throughput(&vit, &urls, true, COMMENT_EVERY, shape.secs, clk).await?;
        let rt = throughput(&reference, &ref_urls, false, COMMENT_EVERY, shape.secs, clk).await?;
        let rf = throughput(&reference, &ref_urls, false, FLOOD_EVERY, shape.secs, clk).await?;
        let n = cores() as f64;
        let per_core = per_cpu(&vt);
        let ok = per_core >= 100_000.0 && vt.closed_n == 0;
        println!(
            "throughput, {THROUGHPUT_MEMBERS} members: vitrine {:.0} frames/s = {:.0} per server core ({:.0} per machine core), reference same load {:.0} frames/s = {:.0} per server core ({}), reference unthrottled {:.0} frames/s = {:.0} per server core ({}) target >= 100000 per core: {}",
            vt.delivered_per_s,
            per_core,
            vt.delivered_per_s / n,
            rt.delivered_per_s,
            per_cpu(&rt),
            ratio(per_core, per_cpu(&rt)),
            rf.delivered_per_s,
            per_cpu(&rf),
            ratio(per_core, per_cpu(&rf)),
            v.check("throughput", ok)
        );
        // Diagnostic: a comment every 250 ms per socket, so that storage is not the limit.
        let path = api.session(&owner, "light load", &emails).await?;
        let light_urls = members(&path);
        let vlight = throughput(&vit, &light_urls, true, LIGHT_COMMENT_EVERY, shape.secs, clk).await?;
        let rlight = throughput(&reference, &ref_urls, false, LIGHT_COMMENT_EVERY, shape.secs, clk).await?;
        println!(
            "throughput diagnostic, light load (a comment every {} ms + 20 cursors/s per socket): vitrine {:.0} frames/s ({:.0}% of what was sent calls for) = {:.0} per server CPU-second, reference {:.0} frames/s ({:.0}%) = {:.0} per server CPU-second ({})",
            LIGHT_COMMENT_EVERY.as_millis(),
            vlight.delivered_per_s,
            100.0 * vlight.delivered_per_s / vlight.offered_per_s.max(1e-9),
            per_cpu(&vlight),
            rlight.delivered_per_s,
            100.0 * rlight.delivered_per_s / rlight.offered_per_s.max(1e-9),
            per_cpu(&rlight),
            ratio(per_cpu(&vlight), per_cpu(&rlight))
        );
        for (name, t) in [
            ("vitrine", &vt),
            ("reference, same load", &rt),
            ("reference, unthrottled", &rf),
            ("vitrine, light load", &vlight),
            ("reference, light load", &rlight),
        ] {
            println!(
                "    {name}: sent {:.0} comments/s + {:.0} cursors/s; received {:.0} comment + {:.0} cursor frames/s = {:.0}% of the {:.0}/s they call for; {} error frames ({} rate_limited); server used {:.2} cores ({:.0} frames per server CPU-second), clients {:.2} cores; {}",
                t.comments_sent_per_s,
                t.cursors_sent_per_s,
                t.comment_frames_per_s,
                t.cursor_frames_per_s,
                100.0 * t.delivered_per_s / t.offered_per_s.max(1e-9),
                t.offered_per_s,
                t.errors,
                t.rate_limited,
                t.server_cores,
                per_cpu(t),
                t.client_cores,
                t.closed
            );
        }
    }
    // 4. Two instances over Redis.
    if part("redis") {
        let redis = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        match redis_answers(&redis).await {
            Err(why) => println!("two instances: skipped: Redis at {redis} is unreachable ({why}); set TEST_REDIS_URL"),
            Ok(()) => {
                let shared = tmp.path().join("shared");
                std::fs::create_dir_all(&shared)?;
                let env = [
                    ("VITRINE_DATABASE_URL", format!("sqlite://{}?mode=rwc", shared.join("v.db").display())),
                    ("VITRINE_JWT_SECRET", JWT_SECRET.to_string()),
                    ("VITRINE_HMAC_SECRET", HMAC_SECRET.to_string()),
                    ("VITRINE_BUS_URL", redis.clone()),
                ];
                let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
                std::fs::create_dir_all(&a_dir)?;
                std::fs::create_dir_all(&b_dir)?;
                // One after the other: the first one creates the database.
                let a = Server::vitrine(&bin, "vitrine instance A", &a_dir, &env).await?;
                let b = Server::vitrine(&bin, "vitrine instance B", &b_dir, &env).await?;
                let api_a = Api::new(&a);
                let token = api_a.register(OWNER, "Bench Owner").await?;
                let path = api_a.session(&token, "two instances", &[]).await?;
                let half = shape.small / 2;
                let urls: Vec<String> = (0..shape.small)
                    .map(|i| {
                        let server = if i < half { &a } else { &b };
                        server.ws(&format!("{path}?token={token}"))
                    })
                    .collect();
                // Let both subscriptions to Redis settle.
                tokio::time::sleep(Duration::from_millis(500)).await;
                let run = LatencyRun {
                    urls: &urls,
                    expect_state: true,
                    comments: shape.comments,
                    remote_from: half,
                    servers: &[&a, &b],
                };
                let tl = undisturbed(run).await?;
                let p99 = pct(&tl.from_commit, 0.99);
                let ok = lat_ms(p99) < 10.0 && tl.closed_n == 0;
                let (one, refl) = match (&small_vit, &small_ref) {
                    (Some(o), Some(r)) => (pct(&o.from_commit, 0.99), pct(&r.from_commit, 0.99)),
                    _ => (u64::MAX, u64::MAX),
                };
                println!(
                    "two instances (Redis): {} members ({half} + {}), senders on A: from commit p99 vitrine {} (B's members only: {}), reference {} ({}), one vitrine instance {} ({}) target p99 < 10 ms: {}",
                    tl.members,
                    tl.members - half,
                    ms(p99),
                    ms(pct(&tl.remote, 0.99)),
                    ms(refl),
                    ratio(lat_ms(p99), lat_ms(refl)),
                    ms(one),
                    ratio(lat_ms(p99), lat_ms(one)),
                    v.check("two instances", ok)
                );
                println!("{}; B's members: p50 {}", latency_detail("vitrine", &tl), ms(pct(&tl.remote, 0.5)));
                report_logs(&[&a, &b]);
            }
        }
    }
    report_logs(&[&vit, &reference, &nagle]);
    println!("done in {:.0} s", started.elapsed().as_secs_f64());
    Ok(v)
}

fn report_logs(servers: &[&Server]) {
    for s in servers {
        let (n, some) = s.problems();
        if n == 0 {
            println!("{} log: no warnings or errors", s.name);
        } else {
            println!("{} log: {n} warning/error lines, e.g.:", s.name);
            for l in some {
                println!("    {l}");
            }
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--reference-server") {
        let port = args.get(i + 1).context("--reference-server <port>")?.parse()?;
        return reference_server(port, args.iter().any(|a| a == "--nagle"));
    }
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without it, and
    // ten thousand sockets against a release server are not a test.
    if !args.iter().any(|a| a == "--bench") {
        println!("realtime benchmark: skipped (run it with `cargo bench --bench realtime`)");
        return Ok(());
    }
    let shape = Shape::from_env();
    common::run_bench("realtime", OVERALL, async { Ok(run(&shape).await?.missed) })
}
