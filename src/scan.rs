//! Virus scanning through clamd (the ClamAV daemon) with its `zINSTREAM` protocol: the bytes are
//! streamed to clamd in length-prefixed pieces as they arrive ([`Session`]: an upload is scanned
//! while it is stored, not read back afterwards), never written to a temporary file, and clamd answers
//! `stream: OK` or `stream: <Signature> FOUND`. Anything else (unreachable, too slow, an `ERROR`
//! reply such as `INSTREAM size limit exceeded`) is [`ScanError::Unavailable`]; what to do then
//! (fail closed or open) is the caller's decision.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// clamd's default `StreamMaxLength` chunking: each INSTREAM piece is at most this long.
const MAX_PIECE: usize = 64 * 1024;
/// Chunks a [`Session`] holds while clamd is behind (then the sender waits).
const SESSION_QUEUE: usize = 4;
/// Longest reply accepted from clamd (a signature name is short; this bounds a misbehaving peer).
const MAX_REPLY: usize = 4096;

/// Where clamd listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClamdAddr {
    /// `host:port`.
    Tcp(String),
    /// Path of clamd's local socket (`LocalSocket` in clamd.conf).
    Unix(PathBuf),
}

impl ClamdAddr {
    /// "tcp://host:port", "host:port", "unix:///path/clamd.ctl" or "/path/clamd.ctl".
    /// Err(String) with a human sentence.
    pub fn parse(s: &str) -> Result<ClamdAddr, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("the clamd address is empty; use host:port or the path of clamd's socket".into());
        }
        if let Some(path) = s.strip_prefix("unix://") {
            return unix_path(path, s);
        }
        if s.starts_with('/') {
            return unix_path(s, s);
        }
        let hostport = match s.split_once("://") {
            Some(("tcp", rest)) => rest,
            Some((scheme, _)) => {
                return Err(format!("unsupported scheme `{scheme}://` in clamd address {s:?}; use tcp:// or unix://"));
            }
            None => s,
        };
        tcp_hostport(hostport, s)
    }
}

fn unix_path(path: &str, original: &str) -> Result<ClamdAddr, String> {
    if !path.starts_with('/') {
        return Err(format!("clamd socket path in {original:?} must be absolute (unix:///run/clamav/clamd.ctl)"));
    }
    if path.len() == 1 || path.ends_with('/') {
        return Err(format!("clamd address {original:?} names a directory, not a socket file"));
    }
    Ok(ClamdAddr::Unix(PathBuf::from(path)))
}

fn tcp_hostport(hostport: &str, original: &str) -> Result<ClamdAddr, String> {
    let expected = "expected host:port (e.g. 127.0.0.1:3310), tcp://host:port or the path of clamd's socket";
    let Some((host, port)) = hostport.rsplit_once(':') else {
        return Err(format!("clamd address {original:?} has no port; {expected}"));
    };
    if host.is_empty() {
        return Err(format!("clamd address {original:?} has no host; {expected}"));
    }
    if host.contains(|c: char| c.is_whitespace() || c == '/' || c == '@' || c == '?' || c == '#') {
        return Err(format!("clamd address {original:?} has an invalid host {host:?}; {expected}"));
    }
    let bracketed = host.starts_with('[') && host.ends_with(']') && host.len() > 2;
    if host.contains(':') && !bracketed {
        return Err(format!("clamd address {original:?}: write an IPv6 host in brackets, e.g. [::1]:3310"));
    }
    if (host.contains('[') || host.contains(']')) && !bracketed {
        return Err(format!("clamd address {original:?} has an invalid host {host:?}; {expected}"));
    }
    match port.parse::<u16>() {
        Ok(p) if p != 0 && port.bytes().all(|b| b.is_ascii_digit()) => Ok(ClamdAddr::Tcp(hostport.to_string())),
        _ => Err(format!("clamd address {original:?} has an invalid port {port:?} (1 to 65535)")),
    }
}

impl std::fmt::Display for ClamdAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClamdAddr::Tcp(hp) => write!(f, "tcp://{hp}"),
            ClamdAddr::Unix(p) => write!(f, "unix://{}", p.display()),
        }
    }
}

/// What clamd decided about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Clean,
    /// The signature name clamd reported (e.g. `Win.Test.EICAR_HDB-1`).
    Infected(String),
}

/// The scan did not produce a verdict.
#[derive(Debug)]
pub enum ScanError {
    /// clamd unreachable, timed out, protocol error, or its own error reply
    /// (e.g. "INSTREAM size limit exceeded").
    Unavailable(String),
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScanError::Unavailable(why) => write!(f, "virus scanner unavailable: {why}"),
        }
    }
}

impl std::error::Error for ScanError {}

/// A clamd client. Cheap to clone; every call opens its own connection.
#[derive(Clone, Debug)]
pub struct Scanner {
    addr: ClamdAddr,
    timeout: Duration,
}

impl Scanner {
    pub fn new(addr: ClamdAddr, timeout: Duration) -> Scanner {
        Scanner { addr, timeout }
    }

    /// None when `address` is None/empty.
    pub fn from_config(address: Option<&str>, timeout: Duration) -> anyhow::Result<Option<Scanner>> {
        match address.map(str::trim) {
            None | Some("") => Ok(None),
            Some(a) => {
                let addr = ClamdAddr::parse(a).map_err(|e| anyhow::anyhow!("`clamd_address`: {e}"))?;
                Ok(Some(Scanner::new(addr, timeout)))
            }
        }
    }

    /// Scans a whole stream: [`Scanner::session`] fed with every chunk, the whole scan bounded by
    /// `timeout`. "stream: OK" -> Clean; "stream: <Name> FOUND" -> Infected(Name); anything else
    /// (e.g. "... ERROR") -> Unavailable.
    ///
    /// An error from `chunks` itself also ends as `Unavailable` (there is no verdict), with a
    /// message that says the upload, not clamd, failed.
    pub async fn scan(&self, mut chunks: BoxStream<'static, std::io::Result<Bytes>>) -> Result<Verdict, ScanError> {
        self.bounded(async {
            let mut session = self.session();
            while let Some(chunk) = chunks.next().await {
                let chunk =
                    chunk.map_err(|e| unavailable(format!("reading the upload for the virus scan failed: {e}")))?;
                if !session.send(chunk).await {
                    break;
                }
            }
            session.verdict().await
        })
        .await
    }

    /// Starts a scan that is fed as the bytes arrive (an upload streamed to clamd while it is
    /// stored). It connects in the background; `send` each chunk, then `verdict`. Each step that
    /// waits on clamd (connecting, accepting a piece, the reply after the last one) is bounded by
    /// `timeout`; the time between chunks is the sender's.
    pub fn session(&self) -> Session {
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        let scanner = self.clone();
        let task = tokio::spawn(async move {
            let reply = match &scanner.addr {
                ClamdAddr::Tcp(hp) => {
                    let conn = scanner.bounded(scanner.connect_tcp(hp)).await?;
                    instream(conn, rx, scanner.timeout, &scanner.addr).await
                }
                ClamdAddr::Unix(p) => {
                    let conn = scanner.bounded(scanner.connect_unix(p)).await?;
                    instream(conn, rx, scanner.timeout, &scanner.addr).await
                }
            };
            parse_scan_reply(&reply?)
        });
        Session { tx: Some(tx), task: Some(task) }
    }

    /// zPING -> "PONG".
    pub async fn ping(&self) -> Result<(), ScanError> {
        let reply = self
            .bounded(async {
                match &self.addr {
                    ClamdAddr::Tcp(hp) => command(self.connect_tcp(hp).await?, b"zPING\0").await,
                    ClamdAddr::Unix(p) => command(self.connect_unix(p).await?, b"zPING\0").await,
                }
            })
            .await?;
        if reply == "PONG" { Ok(()) } else { Err(unavailable(format!("unexpected reply to PING: {reply:?}"))) }
    }

    async fn bounded<T>(&self, f: impl Future<Output = Result<T, ScanError>>) -> Result<T, ScanError> {
        match tokio::time::timeout(self.timeout, f).await {
            Ok(r) => r,
            Err(_) => Err(unavailable(format!("clamd at {} did not answer within {:?}", self.addr, self.timeout))),
        }
    }

    async fn connect_tcp(&self, hostport: &str) -> Result<tokio::net::TcpStream, ScanError> {
        tokio::net::TcpStream::connect(hostport)
            .await
            .map_err(|e| unavailable(format!("cannot connect to clamd at {}: {e}", self.addr)))
    }

    #[cfg(unix)]
    async fn connect_unix(&self, path: &std::path::Path) -> Result<tokio::net::UnixStream, ScanError> {
        tokio::net::UnixStream::connect(path)
            .await
            .map_err(|e| unavailable(format!("cannot connect to clamd at {}: {e}", self.addr)))
    }

    #[cfg(not(unix))]
    async fn connect_unix(&self, _path: &std::path::Path) -> Result<tokio::net::TcpStream, ScanError> {
        Err(unavailable(format!("cannot connect to clamd at {}: Unix sockets are not supported here", self.addr)))
    }
}

fn unavailable(why: impl Into<String>) -> ScanError {
    ScanError::Unavailable(why.into())
}

/// Sends a one-shot command (`zPING\0`, ...) and returns the reply.
async fn command<S: AsyncRead + AsyncWrite + Unpin>(mut conn: S, cmd: &[u8]) -> Result<String, ScanError> {
    conn.write_all(cmd).await.map_err(|e| unavailable(format!("sending to clamd: {e}")))?;
    read_reply(&mut conn).await
}

/// A scan in progress (see [`Scanner::session`]). Dropping it before [`Session::verdict`] ends
/// the scan without a verdict: the connection to clamd is closed.
pub struct Session {
    tx: Option<mpsc::Sender<Bytes>>,
    task: Option<JoinHandle<Result<Verdict, ScanError>>>,
}

impl Session {
    /// Passes the next chunk of the file on to clamd (waits while clamd is behind). False once the
    /// scan has ended early (clamd unreachable or its error reply): further chunks are not needed,
    /// and [`Session::verdict`] says why.
    pub async fn send(&mut self, chunk: Bytes) -> bool {
        match &self.tx {
            Some(tx) => tx.send(chunk).await.is_ok(),
            None => false,
        }
    }

    /// Ends the stream (the file is complete) and returns clamd's verdict.
    pub async fn verdict(mut self) -> Result<Verdict, ScanError> {
        self.tx = None;
        let Some(task) = self.task.take() else { return Err(unavailable("the scan has already ended")) };
        match task.await {
            Ok(r) => r,
            Err(e) => Err(unavailable(format!("the scan failed: {e}"))),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Runs one zINSTREAM session over the chunks received on `rx` (each sent as <u32 big-endian
/// length><bytes>, in pieces of at most 64 KiB; then a zero-length piece once `rx` ends) and
/// returns clamd's reply, read up to NUL. The reply is read while sending, because clamd answers
/// (and closes) as soon as the stream passes its `StreamMaxLength`. Writing a piece and waiting for
/// the final reply are each bounded by `timeout`.
async fn instream<S: AsyncRead + AsyncWrite + Unpin>(
    conn: S,
    mut rx: mpsc::Receiver<Bytes>,
    timeout: Duration,
    addr: &ClamdAddr,
) -> Result<String, ScanError> {
    let stalled = || unavailable(format!("clamd at {addr} did not answer within {timeout:?}"));
    let (mut rd, mut wr) = tokio::io::split(conn);
    let send = async move {
        let mut put = async |bytes: &[u8]| match tokio::time::timeout(timeout, wr.write_all(bytes)).await {
            Ok(r) => r.map_err(Some),
            Err(_) => Err(None),
        };
        put(b"zINSTREAM\0").await?;
        while let Some(chunk) = rx.recv().await {
            for piece in chunk.chunks(MAX_PIECE) {
                // A piece is at most 64 KiB, so its length always fits in a u32.
                let len = u32::try_from(piece.len()).unwrap_or(u32::MAX);
                put(&len.to_be_bytes()).await?;
                put(piece).await?;
            }
        }
        put(&0u32.to_be_bytes()).await?;
        wr.flush().await.map_err(Some)?;
        Ok::<_, Option<std::io::Error>>(wr)
    };
    let read = read_reply(&mut rd);
    tokio::pin!(send, read);
    tokio::select! {
        // clamd answered before the end of the stream: that is an error reply (size limit, ...).
        reply = &mut read => reply,
        sent = &mut send => match sent {
            // Keep the writing half alive until the reply is read.
            Ok(_wr) => tokio::time::timeout(timeout, read).await.unwrap_or_else(|_| Err(stalled())),
            // clamd took no more for `timeout`.
            Err(None) => Err(stalled()),
            // clamd may have closed the connection after an error reply.
            Err(Some(e)) => match tokio::time::timeout(timeout, read).await {
                Ok(Ok(reply)) if !reply.is_empty() => Ok(reply),
                _ => Err(unavailable(format!("sending to clamd: {e}"))),
            },
        },
    }
}

/// Reads clamd's reply up to its terminating NUL (or the end of the connection).
async fn read_reply<R: AsyncRead + Unpin>(rd: &mut R) -> Result<String, ScanError> {
    let mut reply = Vec::with_capacity(64);
    let mut buf = [0u8; 512];
    loop {
        let n = rd.read(&mut buf).await.map_err(|e| unavailable(format!("reading clamd's reply: {e}")))?;
        if n == 0 {
            break;
        }
        if let Some(end) = buf[..n].iter().position(|&b| b == 0) {
            reply.extend_from_slice(&buf[..end]);
            break;
        }
        reply.extend_from_slice(&buf[..n]);
        if reply.len() > MAX_REPLY {
            return Err(unavailable("clamd's reply is too long"));
        }
    }
    if reply.is_empty() {
        return Err(unavailable("clamd closed the connection without a reply"));
    }
    Ok(String::from_utf8_lossy(&reply).trim().to_string())
}

fn parse_scan_reply(reply: &str) -> Result<Verdict, ScanError> {
    // zINSTREAM replies are "stream: OK", "stream: <Name> FOUND" or "<what> ERROR"; older clamd
    // versions leave out the "stream: " prefix of the last two.
    let body = reply.strip_prefix("stream:").map_or(reply, str::trim_start);
    if body == "OK" {
        return Ok(Verdict::Clean);
    }
    if let Some(name) = body.strip_suffix(" FOUND").map(str::trim)
        && !name.is_empty()
    {
        return Ok(Verdict::Infected(name.to_string()));
    }
    Err(unavailable(format!("clamd answered {reply:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(s: &str) -> ClamdAddr {
        ClamdAddr::Tcp(s.into())
    }

    #[test]
    fn parses_valid_addresses() {
        assert_eq!(ClamdAddr::parse("127.0.0.1:3310"), Ok(tcp("127.0.0.1:3310")));
        assert_eq!(ClamdAddr::parse("tcp://clamav:3310"), Ok(tcp("clamav:3310")));
        assert_eq!(ClamdAddr::parse("  localhost:3310 "), Ok(tcp("localhost:3310")));
        assert_eq!(ClamdAddr::parse("[::1]:3310"), Ok(tcp("[::1]:3310")));
        assert_eq!(ClamdAddr::parse("tcp://[::1]:3310"), Ok(tcp("[::1]:3310")));
        assert_eq!(
            ClamdAddr::parse("unix:///run/clamav/clamd.ctl"),
            Ok(ClamdAddr::Unix("/run/clamav/clamd.ctl".into()))
        );
        assert_eq!(ClamdAddr::parse("/run/clamav/clamd.ctl"), Ok(ClamdAddr::Unix("/run/clamav/clamd.ctl".into())));
    }

    #[test]
    fn rejects_invalid_addresses() {
        for bad in [
            "",
            "   ",
            "clamav",
            "clamav:",
            ":3310",
            "clamav:0",
            "clamav:65536",
            "clamav:33a",
            "clamav:+3310",
            "::1:3310",
            "tcp://",
            "tcp://clamav",
            "tcp://clamav:3310/",
            "http://clamav:3310",
            "unix://",
            "unix://run/clamd.ctl",
            "unix:///",
            "/run/clamav/",
            "cla mav:3310",
            "user@clamav:3310",
            "[::1:3310",
        ] {
            let err = ClamdAddr::parse(bad).expect_err(bad);
            assert!(err.contains("clamd"), "{bad:?}: the error is a sentence about the clamd address: {err}");
        }
    }

    #[test]
    fn from_config_treats_empty_as_off() {
        let t = Duration::from_secs(1);
        assert!(Scanner::from_config(None, t).expect("none").is_none());
        assert!(Scanner::from_config(Some(" "), t).expect("empty").is_none());
        assert!(Scanner::from_config(Some("clamav:3310"), t).expect("valid").is_some());
        assert!(Scanner::from_config(Some("clamav"), t).is_err());
    }

    #[test]
    fn parses_scan_replies() {
        assert_eq!(parse_scan_reply("stream: OK").ok(), Some(Verdict::Clean));
        assert_eq!(
            parse_scan_reply("stream: Win.Test.EICAR_HDB-1 FOUND").ok(),
            Some(Verdict::Infected("Win.Test.EICAR_HDB-1".into()))
        );
        assert_eq!(
            parse_scan_reply("Eicar-Test-Signature FOUND").ok(),
            Some(Verdict::Infected("Eicar-Test-Signature".into()))
        );
        assert!(parse_scan_reply("INSTREAM size limit exceeded. ERROR").is_err());
        assert!(parse_scan_reply("stream: FOUND").is_err());
        assert!(parse_scan_reply("UNKNOWN COMMAND").is_err());
    }
}
