//! Real headless Chromium through chromedriver (fantoccini). Skipped with a message when Chromium
//! is not installed, unless CI=true, where a missing browser fails the test.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

use crate::helpers::TestApp;

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
        let driver_bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let chrome_bin = std::env::var("CHROME_BIN").unwrap_or_else(|_| "/usr/bin/chromium".into());
        if !std::path::Path::new(&driver_bin).exists() || !std::path::Path::new(&chrome_bin).exists() {
            assert!(std::env::var("CI").is_err(), "CI is set but {driver_bin} or {chrome_bin} is missing");
            eprintln!("skipped: Chromium/chromedriver not installed (apt-get install chromium chromium-driver)");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().expect("profile dir");
        let caps = serde_json::json!({
            "goog:chromeOptions": {
                "binary": chrome_bin,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_through_the_form_and_sees_their_page() {
    let app = TestApp::spawn().await;
    let (token, _) = app.register("ada@example.com", "Ada Lovelace").await;
    app.upload(&token, "notes.txt", b"hello\n".to_vec()).await;
    let Some(browser) = Browser::start().await else { return };
    let c = &browser.client;
    c.goto(&app.url("/")).await.expect("goto");
    assert!(c.current_url().await.expect("url").path().starts_with("/login"), "sent to the login form");
    c.find(Locator::Id("email")).await.expect("email").send_keys("ada@example.com").await.expect("type");
    c.find(Locator::Id("password")).await.expect("password").send_keys("wrong password").await.expect("type");
    c.find(Locator::Id("login-submit")).await.expect("submit").click().await.expect("click");
    let err = c.wait().for_element(Locator::Id("login-error")).await.expect("error shown").text().await.expect("text");
    assert!(err.contains("wrong"), "{err}");
    c.find(Locator::Id("password")).await.expect("password").send_keys("correct horse").await.expect("type");
    c.find(Locator::Id("login-submit")).await.expect("submit").click().await.expect("click");
    let who = c.wait().for_element(Locator::Id("signed-in-as")).await.expect("signed in").text().await.expect("text");
    assert!(who.contains("Ada Lovelace"), "{who}");
    let files = c.find(Locator::Id("files")).await.expect("file list").text().await.expect("text");
    assert!(files.contains("notes.txt"), "{files}");
    c.find(Locator::Id("logout")).await.expect("logout").click().await.expect("click");
    c.wait().for_element(Locator::Id("login-submit")).await.expect("back on the login form");
    assert!(c.current_url().await.expect("url").path().starts_with("/login"));
    browser.client.clone().close().await.expect("close");
}
