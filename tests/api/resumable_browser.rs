//! The pages' resumable uploads in real Chromium: the vendored tus-js-client (through
//! `/static/js/resumable.js`) sends a 50 MB file to `/api/v3/uploads/` through a proxy that cuts
//! every connection once, midway; the upload resumes by itself and the asset is byte-identical.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::helpers::browser::Browser;
use crate::helpers::{Spawn, TestApp};

/// Forwards TCP connections to the app; once `cut_after` bytes went towards the app, it drops
/// every connection open at that moment (a network failure) and forwards new ones normally.
struct CutProxy {
    forwarded: Arc<AtomicU64>,
    cut: Arc<AtomicBool>,
}

impl CutProxy {
    fn start(listener: TcpListener, target: std::net::SocketAddr, cut_after: u64) -> CutProxy {
        let forwarded = Arc::new(AtomicU64::new(0));
        let cut = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(std::sync::Mutex::new(CancellationToken::new()));
        let (fwd, done) = (forwarded.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let token = generation.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let (fwd, done, generation) = (fwd.clone(), done.clone(), generation.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else { return };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up = async {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = match cr.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            if sw.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                            let total = fwd.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
                            if total >= cut_after && !done.swap(true, Ordering::SeqCst) {
                                let mut current = generation.lock().unwrap_or_else(|e| e.into_inner());
                                current.cancel();
                                *current = CancellationToken::new();
                            }
                        }
                        let _ = sw.shutdown().await;
                    };
                    let down = async {
                        let _ = tokio::io::copy(&mut sr, &mut cw).await;
                        let _ = cw.shutdown().await;
                    };
                    tokio::select! {
                        _ = async { tokio::join!(up, down) } => {}
                        _ = token.cancelled() => {}
                    }
                });
            }
        });
        CutProxy { forwarded, cut }
    }
}

/// 50 MB of text: a 1 MiB block of numbered lines, repeated; the page builds the same bytes.
const BLOCKS: usize = 50;
fn block() -> Vec<u8> {
    let mut out = Vec::with_capacity(1 << 20);
    let mut i = 0u32;
    while out.len() < (1 << 20) {
        out.extend_from_slice(format!("Vitrine resumable line {i:08}\n").as_bytes());
        i += 1;
    }
    out.truncate(1 << 20);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_uploader_resumes_a_50_mb_file_after_a_network_cut() {
    let proxy_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let proxy_url = format!("http://{}", proxy_listener.local_addr().expect("addr"));
    let public = proxy_url.clone();
    let app =
        TestApp::spawn_with(Spawn { tweak: Box::new(move |c| c.public_url = public), ..Default::default() }).await;
    let proxy = CutProxy::start(proxy_listener, app.addr, 20 << 20);
    let (token, _) = app.register("ada@example.com", "Ada").await;
    let Some(browser) = Browser::start().await else { return };
    let c = &browser.client;
    c.goto(&format!("{proxy_url}/static/js/vendor/tus-js-client.LICENSE")).await.expect("an origin page");
    let script = r#"
        const [token, blocks, done] = [arguments[0], arguments[1], arguments[arguments.length - 1]];
        const load = (src) => new Promise((ok, fail) => {
            const s = document.createElement('script'); s.src = src; s.onload = ok; s.onerror = fail;
            document.head.appendChild(s);
        });
        (async () => {
            await load('/static/js/vendor/tus.min.js');
            await load('/static/js/resumable.js');
            let text = '';
            for (let i = 0; text.length < 1048576; i++) text += 'Vitrine resumable line ' + String(i).padStart(8, '0') + '\n';
            const block = new TextEncoder().encode(text.slice(0, 1048576));
            const file = new File(Array(blocks).fill(block), 'big.txt', {type: 'text/plain'});
            let progress = 0;
            const out = await VitrineUpload.send(file, {
                tusEndpoint: '/api/v3/uploads/', formEndpoint: '/api/v3/assets/',
                headers: {Authorization: 'Bearer ' + token}, metadata: {title: 'Big text'},
                onProgress: (sent) => { progress = sent; },
            });
            done({ok: true, asset: out.asset, location: out.location, progress});
        })().catch((e) => done({ok: false, error: JSON.stringify(e && (e.body || e.message || e.status || e))}));
    "#;
    let out =
        tokio::time::timeout(Duration::from_secs(240), c.execute_async(script, vec![json!(token), json!(BLOCKS)]))
            .await
            .expect("the upload finished in time")
            .expect("script ran");
    assert_eq!(out["ok"], json!(true), "{out}");
    assert!(proxy.cut.load(Ordering::SeqCst), "the network was cut midway");
    assert!(proxy.forwarded.load(Ordering::SeqCst) >= (BLOCKS as u64) << 20, "every byte went through the proxy");
    let asset_path = out["asset"].as_str().unwrap_or_else(|| panic!("Vitrine-Asset header read by the page: {out}"));
    let asset: Value = app.get(asset_path, Some(&token)).await.json().await.expect("asset json");
    assert_eq!(asset["size"], json!(BLOCKS << 20), "{asset}");
    let url = asset["download_url"].as_str().or(asset["file_url"].as_str()).expect("a download link").to_string();
    let url = if url.starts_with("http") { url.replacen(&proxy_url, &app.url(""), 1) } else { app.url(&url) };
    let mut download = app.client.get(url).bearer_auth(&token).send().await.expect("download");
    let (mut got, mut size) = (Sha256::new(), 0usize);
    while let Some(chunk) = download.chunk().await.expect("chunk") {
        size += chunk.len();
        got.update(&chunk);
    }
    let mut expected = Sha256::new();
    let b = block();
    for _ in 0..BLOCKS {
        expected.update(&b);
    }
    assert_eq!(size, BLOCKS << 20);
    assert_eq!(hex::encode(got.finalize()), hex::encode(expected.finalize()), "byte-identical");
    browser.client.clone().close().await.expect("close");
}
