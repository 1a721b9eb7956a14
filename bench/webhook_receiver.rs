//! Webhook receiver for `bench/webhook_delivery.sh` (run by `bench/issue21_client.py views … on`
//! as `webhook_receiver --bench COUNT`): a minimal HTTP/1.1 server in Rust with the standard
//! library only, so that the harness costs the machine little next to the server it measures (the
//! Python receiver it replaces took ~60 µs of CPU per delivery) and builds in seconds with plain
//! `rustc` (the script does so; it is also a bench target, for fmt and clippy).
//!
//! Binds 127.0.0.1:0 and prints the port on a line of its own. Serves keep-alive connections
//! (pipelined requests too), one thread each: each request's head ends at `\r\n\r\n`, its body
//! is `Content-Length` bytes, and the answer is `204 No Content`. Each body is a webhook event
//! as the server writes it (compact JSON); a `share.viewed` whose `data.visitor.referrer` is
//! `v<i>.bench.invalid` counts as the delivery of view `i`, received at the CLOCK_MONOTONIC time
//! its body was complete (seconds: the clock of Python's `time.perf_counter()`, which the views'
//! send times use); a second delivery of a view counts as a duplicate. Once COUNT distinct views
//! have been received, or when its stdin is closed (the client's way to end it early), prints one
//! line of JSON,
//! `{"received": {"<i>": seconds, …}, "duplicates": n}`, and exits 0: the same behaviour as
//! `issue21_client.py receive COUNT`.
//!
//! Under `cargo test --all-targets` the binary starts without `--bench` and returns at once.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Instant;

const NO_CONTENT: &[u8] = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n";
const PREFIX: &str = "v";
const SUFFIX: &str = ".bench.invalid";

/// The deliveries so far: view → receive time, and the repeats.
struct Received {
    count: usize,
    at: HashMap<i64, f64>,
    duplicates: u64,
}

impl Received {
    /// Records a body received at `at`; true once `count` views are in.
    fn handle(&mut self, body: &[u8], at: f64) -> bool {
        if let Some(i) = view_of(body) {
            match self.at.entry(i) {
                Entry::Occupied(_) => self.duplicates += 1,
                Entry::Vacant(e) => {
                    e.insert(at);
                }
            }
        }
        self.at.len() >= self.count
    }

    fn line(&self) -> String {
        let views: Vec<String> = self.at.iter().map(|(i, at)| format!("\"{i}\": {at}")).collect();
        format!("{{\"received\": {{{}}}, \"duplicates\": {}}}", views.join(", "), self.duplicates)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The view a `share.viewed` body names, if any (the server's compact JSON: `"key":"value"`).
fn view_of(body: &[u8]) -> Option<i64> {
    find(body, b"\"type\":\"share.viewed\"")?;
    const KEY: &[u8] = b"\"referrer\":\"";
    let from = find(body, KEY)? + KEY.len();
    let len = body[from..].iter().position(|b| *b == b'"')?;
    let host = std::str::from_utf8(&body[from..from + len]).ok()?;
    host.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?.parse().ok()
}

/// Seconds on CLOCK_MONOTONIC (Python's `time.perf_counter()` on Linux).
struct Clock {
    base: Instant,
    base_seconds: f64,
}

impl Clock {
    /// std's `Instant` is CLOCK_MONOTONIC on Linux, and its Debug form shows the timespec
    /// (`Instant { tv_sec: 5056, tv_nsec: 525916456 }`): read once here, since the standard library
    /// offers no other safe way to the raw value (and this crate forbids `unsafe`).
    fn new() -> Option<Clock> {
        let base = Instant::now();
        let shown = format!("{base:?}");
        let field = |name: &str| -> Option<f64> {
            let from = shown.find(name)? + name.len();
            let digits: String =
                shown[from..].chars().skip_while(|c| !c.is_ascii_digit()).take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        };
        Some(Clock { base, base_seconds: field("tv_sec")? + field("tv_nsec")? * 1e-9 })
    }

    fn now(&self) -> f64 {
        self.base_seconds + self.base.elapsed().as_secs_f64()
    }
}

/// The first `\r\ncontent-length:` (any case) in `head` followed by optional blanks and digits:
/// its value, else 0.
fn content_length(head: &[u8]) -> usize {
    const NAME: &[u8] = b"\r\ncontent-length:";
    let mut from = 0;
    while let Some(p) = head[from..].windows(NAME.len()).position(|w| w.eq_ignore_ascii_case(NAME)) {
        let mut j = from + p + NAME.len();
        while j < head.len() && (head[j] == b' ' || head[j] == b'\t') {
            j += 1;
        }
        let digits = head[j..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits > 0 {
            return std::str::from_utf8(&head[j..j + digits]).ok().and_then(|n| n.parse().ok()).unwrap_or(usize::MAX);
        }
        from += p + 1;
    }
    0
}

/// Answers the requests of one connection until it closes.
fn serve(mut stream: TcpStream, clock: Arc<Clock>, received: Arc<Mutex<Received>>, done: Sender<()>) {
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut chunk = [0u8; 16 * 1024];
    let mut out = Vec::with_capacity(NO_CONTENT.len() * 16);
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        // Every complete request in the buffer; a partial one waits for more bytes. The answers
        // go out before the end is announced (the process exits then).
        let (mut start, mut complete) = (0, false);
        while let Some(end) = find(&buf[start..], b"\r\n\r\n") {
            let body_at = start + end + 4;
            let Some(next) = body_at.checked_add(content_length(&buf[start..start + end + 2])) else { return };
            if buf.len() < next {
                break;
            }
            let at = clock.now();
            out.extend_from_slice(NO_CONTENT);
            complete |= received.lock().unwrap_or_else(|e| e.into_inner()).handle(&buf[body_at..next], at);
            start = next;
        }
        buf.drain(..start);
        if !out.is_empty() {
            if stream.write_all(&out).is_err() {
                return;
            }
            out.clear();
        }
        if complete {
            let _ = done.send(());
        }
    }
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without it.
    if !args.iter().any(|a| a == "--bench") {
        println!("webhook receiver: skipped (bench/issue21_client.py runs it with --bench COUNT)");
        return Ok(());
    }
    let Some(count) = args.iter().find_map(|a| a.parse::<usize>().ok()) else {
        eprintln!("usage: webhook_receiver --bench COUNT");
        std::process::exit(2);
    };
    let Some(clock) = Clock::new().map(Arc::new) else {
        eprintln!("webhook receiver: cannot read CLOCK_MONOTONIC from std::time::Instant");
        std::process::exit(2);
    };
    let listener = TcpListener::bind("127.0.0.1:0")?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{}", listener.local_addr()?.port())?;
        stdout.flush()?;
    }
    let received = Arc::new(Mutex::new(Received { count, at: HashMap::new(), duplicates: 0 }));
    let (done, finished) = channel::<()>();
    // The end before COUNT: the client closes our stdin (what `receive`'s SIGTERM does there).
    {
        let done = done.clone();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            let _ = done.send(());
        });
    }
    {
        let received = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = stream.set_nodelay(true);
                let (clock, received, done) = (clock.clone(), received.clone(), done.clone());
                std::thread::spawn(move || serve(stream, clock, received, done));
            }
        });
    }
    let _ = finished.recv();
    let line = received.lock().unwrap_or_else(|e| e.into_inner()).line();
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()?;
    std::process::exit(0)
}
