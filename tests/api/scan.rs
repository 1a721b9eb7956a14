//! `vitrine::scan::Scanner` against a real clamd (started per test with a one-signature database
//! that knows the EICAR test file), plus the ways clamd can be unavailable.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use vitrine::scan::{ClamdAddr, ScanError, Scanner, Verdict};

use crate::helpers::{Clamd, fixtures};

async fn clamd() -> Option<(Clamd, Scanner)> {
    let clamd = Clamd::start().await?;
    let scanner = Scanner::new(ClamdAddr::Tcp(clamd.address.clone()), Duration::from_secs(30));
    Some((clamd, scanner))
}

fn one_chunk(bytes: Vec<u8>) -> BoxStream<'static, std::io::Result<Bytes>> {
    futures::stream::iter([Ok(Bytes::from(bytes))]).boxed()
}

fn chunks_of(bytes: Vec<u8>, size: usize) -> BoxStream<'static, std::io::Result<Bytes>> {
    let chunks: Vec<_> = bytes.chunks(size).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    futures::stream::iter(chunks).boxed()
}

fn unavailable(r: Result<Verdict, ScanError>) -> String {
    match r {
        Err(ScanError::Unavailable(why)) => why,
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn clean_text_is_clean() {
    let Some((_clamd, scanner)) = clamd().await else { return };
    let text = b"Minutes of the Tuesday meeting.\nNothing to see here.\n".to_vec();
    assert_eq!(scanner.scan(one_chunk(text)).await.expect("scan"), Verdict::Clean);
    assert_eq!(scanner.scan(one_chunk(Vec::new())).await.expect("empty file"), Verdict::Clean);
}

#[tokio::test]
async fn eicar_is_infected() {
    let Some((clamd, scanner)) = clamd().await else { return };
    match scanner.scan(one_chunk(fixtures::eicar())).await.expect("scan") {
        Verdict::Infected(name) => assert!(name.contains("Vitrine.Test.EICAR"), "signature name: {name}"),
        Verdict::Clean => panic!("EICAR reported clean; clamd log:\n{}", clamd.log()),
    }
}

#[tokio::test]
async fn eicar_split_in_tiny_chunks_is_infected() {
    let Some((_clamd, scanner)) = clamd().await else { return };
    for size in [1, 7, 33] {
        let verdict = scanner.scan(chunks_of(fixtures::eicar(), size)).await.expect("scan");
        assert!(matches!(verdict, Verdict::Infected(_)), "chunks of {size}: {verdict:?}");
    }
}

#[tokio::test]
async fn large_clean_file_goes_in_64k_pieces() {
    let Some((_clamd, scanner)) = clamd().await else { return };
    // One 3 MB chunk is sent as 64 KiB pieces; uneven chunks cross piece boundaries.
    assert_eq!(scanner.scan(one_chunk(fixtures::pdf(3_000_000))).await.expect("one chunk"), Verdict::Clean);
    assert_eq!(scanner.scan(chunks_of(fixtures::pdf(3_000_000), 100_003)).await.expect("chunks"), Verdict::Clean);
}

#[tokio::test]
async fn ping_answers() {
    let Some((_clamd, scanner)) = clamd().await else { return };
    scanner.ping().await.expect("PONG");
}

#[tokio::test]
async fn over_clamd_stream_limit_is_unavailable() {
    let Some((_clamd, scanner)) = clamd().await else { return };
    // The fixture's StreamMaxLength is 40M: clamd answers with an error (and closes) mid-stream.
    let big = vec![b'a'; 41 * 1024 * 1024];
    let why = unavailable(scanner.scan(chunks_of(big, 1024 * 1024)).await);
    assert!(why.contains("size limit"), "{why}");
    // clamd is still fine afterwards.
    assert_eq!(scanner.scan(one_chunk(b"ok".to_vec())).await.expect("scan"), Verdict::Clean);
}

#[tokio::test]
async fn failing_upload_stream_is_unavailable_at_once() {
    let Some((_clamd, scanner)) = clamd().await else { return };
    let chunks = futures::stream::iter([
        Ok(Bytes::from_static(b"first part")),
        Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "client went away")),
    ])
    .boxed();
    let started = Instant::now();
    let why = unavailable(scanner.scan(chunks).await);
    assert!(why.contains("client went away"), "{why}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

/// A session is fed as an upload arrives: the client's pace is not clamd's, so pauses longer than
/// the timeout between chunks still end with a verdict.
#[tokio::test]
async fn a_session_fed_slowly_gets_its_verdict() {
    let Some(clamd) = Clamd::start().await else { return };
    let scanner = Scanner::new(ClamdAddr::Tcp(clamd.address.clone()), Duration::from_millis(400));
    let started = Instant::now();
    let mut session = scanner.session();
    for piece in fixtures::eicar().chunks(20) {
        assert!(session.send(Bytes::copy_from_slice(piece)).await);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(matches!(session.verdict().await, Ok(Verdict::Infected(_))));
    assert!(started.elapsed() > Duration::from_millis(800), "slower than the timeout in all");
    // A clean one, and one dropped half-way (no verdict wanted): clamd is fine afterwards.
    let mut half = scanner.session();
    assert!(half.send(Bytes::from_static(b"the first half")).await);
    drop(half);
    let mut session = scanner.session();
    assert!(session.send(Bytes::from_static(b"plain words\n")).await);
    assert_eq!(session.verdict().await.expect("verdict"), Verdict::Clean);
}

/// Without clamd the session ends early: `send` says so and the verdict tells why.
#[tokio::test]
async fn a_session_without_clamd_is_unavailable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let scanner = Scanner::new(ClamdAddr::Tcp(format!("127.0.0.1:{port}")), Duration::from_secs(5));
    let mut session = scanner.session();
    let mut open = true;
    for _ in 0..50 {
        open = session.send(Bytes::from(vec![b'a'; 64 * 1024])).await;
        if !open {
            break;
        }
    }
    assert!(!open, "the session stops taking chunks once it knows clamd is away");
    assert!(unavailable(session.verdict().await).contains("cannot connect"));
}

#[tokio::test]
async fn nothing_listening_is_unavailable_quickly() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let scanner = Scanner::new(ClamdAddr::Tcp(format!("127.0.0.1:{port}")), Duration::from_secs(10));
    let started = Instant::now();
    unavailable(scanner.scan(one_chunk(fixtures::eicar())).await);
    assert!(matches!(scanner.ping().await, Err(ScanError::Unavailable(_))));
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn silent_server_times_out() {
    // Accepts and reads everything but never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut sock, &mut tokio::io::sink()).await;
            });
        }
    });
    let scanner = Scanner::new(ClamdAddr::Tcp(addr.to_string()), Duration::from_millis(300));
    let started = Instant::now();
    let why = unavailable(scanner.scan(one_chunk(fixtures::eicar())).await);
    assert!(why.contains("did not answer"), "{why}");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
}

#[cfg(unix)]
#[tokio::test]
async fn unix_socket_address_is_used() {
    // A fake clamd on a Unix socket: proves the Unix transport speaks the same protocol.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("clamd.ctl");
    let listener = tokio::net::UnixListener::bind(&path).expect("bind unix");
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut cmd = Vec::new();
                let mut b = [0u8; 1];
                while sock.read_exact(&mut b).await.is_ok() && b[0] != 0 {
                    cmd.push(b[0]);
                }
                let _ = sock.write_all(if cmd == b"zPING" { b"PONG\0" } else { b"UNKNOWN COMMAND\0" }).await;
            });
        }
    });
    let scanner = Scanner::new(
        ClamdAddr::parse(&format!("unix://{}", path.display())).expect("unix address"),
        Duration::from_secs(5),
    );
    scanner.ping().await.expect("PONG over the Unix socket");
}
