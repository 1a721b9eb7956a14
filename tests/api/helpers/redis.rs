//! Redis for tests of several instances: the checked `TEST_REDIS_URL`, two instances on one bus,
//! and a redis-server of the test's own that it may stop and start again.

use std::time::Duration;

use super::{Spawn, TestApp};

/// `TEST_REDIS_URL`, checked: set but unreachable fails the test; unset skips it.
pub async fn redis_url() -> Option<String> {
    let Ok(url) = std::env::var("TEST_REDIS_URL") else {
        eprintln!("skipped: TEST_REDIS_URL is not set (multi-instance tests need Redis)");
        return None;
    };
    let client = redis::Client::open(url.as_str()).expect("TEST_REDIS_URL is a Redis URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("TEST_REDIS_URL is set but Redis is unreachable: {e}"));
    let _: String = redis::cmd("PING").query_async(&mut conn).await.expect("PING");
    Some(url)
}

pub const JWT: &str = "0123456789abcdef0123456789abcdef-jwt-shared-by-instances";
pub const HMAC: &str = "0123456789abcdef0123456789abcdef-hmac-shared-by-instances";

/// Two instances on one database (a SQLite file in WAL mode) and one bus.
pub async fn pair(bus: &str) -> (TestApp, TestApp) {
    pair_with(bus, |_| {}).await
}

/// `pair`, with the same extra settings on both instances.
pub async fn pair_with(bus: &str, tweak: fn(&mut vitrine::config::Config)) -> (TestApp, TestApp) {
    let b = bus.to_string();
    let a = TestApp::spawn_with(Spawn {
        tweak: Box::new(move |c| {
            c.bus_url = Some(b);
            c.jwt_secret = Some(JWT.into());
            c.hmac_secret = Some(HMAC.into());
            tweak(c);
        }),
        ..Default::default()
    })
    .await;
    let db = a.state.config.database_url.clone();
    let b = bus.to_string();
    let other = TestApp::spawn_with(Spawn {
        tweak: Box::new(move |c| {
            c.bus_url = Some(b);
            c.jwt_secret = Some(JWT.into());
            c.hmac_secret = Some(HMAC.into());
            c.database_url = db;
            tweak(c);
        }),
        ..Default::default()
    })
    .await;
    wait_connected(&a).await;
    wait_connected(&other).await;
    (a, other)
}

/// Waits until `app` is subscribed to the bus; panics after 5 seconds.
pub async fn wait_connected(app: &TestApp) {
    for _ in 0..100 {
        if app.state.rooms.bus().connected() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the instance did not connect to the bus");
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port()
}

/// A Redis server of our own, on a free port, that the test may kill.
pub struct OwnRedis {
    port: u16,
    child: Option<std::process::Child>,
    pub dir: tempfile::TempDir,
}

impl OwnRedis {
    pub fn start_on(port: u16, dir: tempfile::TempDir) -> OwnRedis {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .current_dir(dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("TEST_REDIS_URL is set, so redis-server must be installed: {e}"));
        OwnRedis { port, child: Some(child), dir }
    }

    pub async fn wait_ready(&self) {
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not start");
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port (after `kill`), empty.
    pub fn restart(&mut self) {
        self.kill();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("dir"));
        *self = OwnRedis::start_on(self.port, dir);
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
