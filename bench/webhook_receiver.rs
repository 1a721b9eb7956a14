//! Webhook receiver for `bench/webhook_delivery.sh` (run by `bench/issue21_client.py views … on`
//! as `webhook_receiver --bench COUNT`): a minimal HTTP/1.1 server on one thread, so that the
//! harness costs the machine little next to the server it measures (the Python receiver it
//! replaces took ~60 µs of CPU per delivery).
//!
//! Binds 127.0.0.1:0 and prints the port on a line of its own. Serves keep-alive connections
//! (pipelined requests too): each request's head ends at `\r\n\r\n`, its body is `Content-Length`
//! bytes, and the answer is `204 No Content`. Each body is a webhook event; a `share.viewed` whose
//! `data.visitor.referrer` is `v<i>.bench.invalid` counts as the delivery of view `i`, received at
//! the CLOCK_MONOTONIC time its body was complete (seconds: the clock of Python's
//! `time.perf_counter()`, which the views' send times use); a second delivery of a view counts as
//! a duplicate. Once COUNT distinct views have been received, or on SIGTERM, prints one line of
//! JSON, `{"received": {"<i>": seconds, …}, "duplicates": n}`, and exits 0: the same behaviour as
//! `issue21_client.py receive COUNT`.
//!
//! Under `cargo test --all-targets` the binary starts without `--bench` and returns at once.

use std::cell::RefCell;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io::Write;
use std::rc::Rc;

use nix::time::{ClockId, clock_gettime};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;

const NO_CONTENT: &[u8] = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n";
const PREFIX: &str = "v";
const SUFFIX: &str = ".bench.invalid";

/// The deliveries so far: view → receive time, and the repeats.
struct Received {
    count: usize,
    at: HashMap<i64, f64>,
    duplicates: u64,
    done: Rc<Notify>,
}

impl Received {
    fn handle(&mut self, body: &[u8], at: f64) {
        let Some(i) = view_of(body) else { return };
        match self.at.entry(i) {
            Entry::Occupied(_) => self.duplicates += 1,
            Entry::Vacant(e) => {
                e.insert(at);
                if self.at.len() >= self.count {
                    self.done.notify_one();
                }
            }
        }
    }
}

// The fields read from an event, borrowed from the body (everything else is skipped unread).
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<&'a str>,
    #[serde(borrow)]
    data: Option<Data<'a>>,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(borrow)]
    visitor: Option<Visitor<'a>>,
}

#[derive(Deserialize)]
struct Visitor<'a> {
    referrer: Option<&'a str>,
}

/// The view a `share.viewed` body names, if any.
fn view_of(body: &[u8]) -> Option<i64> {
    let index = |kind: Option<&str>, host: Option<&str>| -> Option<i64> {
        if kind != Some("share.viewed") {
            return None;
        }
        host?.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?.parse().ok()
    };
    match serde_json::from_slice::<Event>(body) {
        Ok(e) => {
            let host = e.data.and_then(|d| d.visitor).and_then(|v| v.referrer);
            index(e.kind, host)
        }
        // Strings with escapes cannot be borrowed (nor can repeated keys be read): the general
        // parser then, which the server's plain ASCII events never need.
        Err(_) => {
            let v: serde_json::Value = serde_json::from_slice(body).ok()?;
            index(v.get("type")?.as_str(), v.pointer("/data/visitor/referrer").and_then(|r| r.as_str()))
        }
    }
}

/// Seconds on CLOCK_MONOTONIC (Python's `time.perf_counter()` on Linux).
fn now() -> f64 {
    let t = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC");
    t.tv_sec() as f64 + t.tv_nsec() as f64 * 1e-9
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The first `\r\ncontent-length:` (any case) in `head` followed by optional whitespace and
/// digits: its value, else 0.
fn content_length(head: &[u8]) -> usize {
    const NAME: &[u8] = b"\r\ncontent-length:";
    let mut from = 0;
    while let Some(p) = head[from..].windows(NAME.len()).position(|w| w.eq_ignore_ascii_case(NAME)) {
        let mut j = from + p + NAME.len();
        while j < head.len() && head[j].is_ascii_whitespace() {
            j += 1;
        }
        let digits = head[j..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits > 0 {
            let n = std::str::from_utf8(&head[j..j + digits]).unwrap_or("0");
            return n.parse().unwrap_or(usize::MAX);
        }
        from += p + 1;
    }
    0
}

async fn serve(mut stream: TcpStream, received: Rc<RefCell<Received>>) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut out = Vec::with_capacity(NO_CONTENT.len() * 16);
    loop {
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(16 * 1024);
        }
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
        // Every complete request in the buffer; a partial one waits for more bytes.
        let mut start = 0;
        while let Some(end) = find(&buf[start..], b"\r\n\r\n") {
            let head = &buf[start..start + end + 2];
            let body_at = start + end + 4;
            let Some(next) = body_at.checked_add(content_length(head)) else { return Ok(()) };
            if buf.len() < next {
                break;
            }
            let at = now();
            out.extend_from_slice(NO_CONTENT);
            received.borrow_mut().handle(&buf[body_at..next], at);
            start = next;
        }
        buf.drain(..start);
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
    }
}

async fn run(count: usize) -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{}", listener.local_addr()?.port())?;
        stdout.flush()?;
    }
    let done = Rc::new(Notify::new());
    let received = Rc::new(RefCell::new(Received { count, at: HashMap::new(), duplicates: 0, done: done.clone() }));
    let mut term = signal(SignalKind::terminate())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let received = received.clone();
                tokio::task::spawn_local(async move {
                    let _ = serve(stream, received).await;
                });
            }
            _ = done.notified() => break,
            _ = term.recv() => break,
        }
    }
    let r = received.borrow();
    let mut line = String::from("{\"received\": {");
    for (n, (i, at)) in r.at.iter().enumerate() {
        if n > 0 {
            line.push_str(", ");
        }
        line.push_str(&format!("\"{i}\": {at}"));
    }
    line.push_str(&format!("}}, \"duplicates\": {}}}", r.duplicates));
    Ok(line)
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
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let line = tokio::task::LocalSet::new().block_on(&rt, run(count))?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()
}
