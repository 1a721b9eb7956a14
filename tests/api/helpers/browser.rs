//! Real headless Chromium through chromedriver (fantoccini): the browser fixture and the steps
//! tests take in it. Skipped with a message when Chromium is not installed, unless CI=true, where a
//! missing browser fails the test.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

use super::{TestApp, free_port};

/// A chromedriver process and a WebDriver session; both end when dropped/closed.
pub struct Browser {
    pub client: Client,
    driver: Child,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium, or `None` when they are not installed
    /// (and CI is not set).
    pub async fn start() -> Option<Browser> {
        Browser::start_with_downloads(None).await
    }

    /// Like `start`, saving downloads into `dir`.
    pub async fn start_with_downloads(dir: Option<&std::path::Path>) -> Option<Browser> {
        let driver_bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let chrome_bin = std::env::var("CHROME_BIN").unwrap_or_else(|_| "/usr/bin/chromium".into());
        if !std::path::Path::new(&driver_bin).exists() || !std::path::Path::new(&chrome_bin).exists() {
            assert!(std::env::var("CI").is_err(), "CI is set but {driver_bin} or {chrome_bin} is missing");
            eprintln!("skipped: Chromium/chromedriver not installed (apt-get install chromium chromium-driver)");
            return None;
        }
        let port = free_port();
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().expect("profile dir");
        let prefs = match dir {
            Some(d) => {
                serde_json::json!({"download.default_directory": d.display().to_string(), "download.prompt_for_download": false})
            }
            None => serde_json::json!({}),
        };
        let caps = serde_json::json!({
            "goog:chromeOptions": {
                "binary": chrome_bin,
                "prefs": prefs,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--no-first-run", "--disable-quic", "--window-size=1280,900",
                         format!("--user-data-dir={}", profile.keep().display())]
            }
        });
        let caps = caps.as_object().cloned().unwrap_or_default();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let attempt = ClientBuilder::rustls()
                .expect("tls")
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await;
            match attempt {
                Ok(client) => return Some(Browser { client, driver }),
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("cannot start a Chromium session: {e}"),
            }
        }
    }
}

/// Signs in through the form.
pub async fn sign_in(c: &Client, app: &TestApp, email: &str) {
    c.goto(&app.url("/login")).await.expect("goto");
    c.find(Locator::Id("email")).await.expect("email").send_keys(email).await.expect("type");
    c.find(Locator::Id("password")).await.expect("password").send_keys("correct horse").await.expect("type");
    c.find(Locator::Id("login-submit")).await.expect("submit").click().await.expect("click");
    c.wait().for_element(Locator::Id("signed-in-as")).await.expect("signed in");
}

/// Polls a script until it returns true (10 s at most).
pub async fn wait_for(c: &Client, script: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = c.execute(script, vec![]).await.expect("js");
        if v.as_bool() == Some(true) {
            return;
        }
        if Instant::now() >= deadline {
            let why = c
                .execute(
                    "return JSON.stringify({collab: !!window.collab, status: window.collab && window.collab.status,
                        errors: (document.getElementById('collab-errors') || {}).textContent,
                        url: location.href, title: document.title});",
                    vec![],
                )
                .await
                .ok();
            panic!("timed out waiting for: {script}\npage: {why:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
