//! Redis for tests of several instances: the checked `TEST_REDIS_URL`, two instances on one bus,
//! and a redis-server of the test's own that it may stop and start again.

use std::time::Duration;

use super::{Db, Spawn, TestApp, free_port};

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

/// The signing secrets that the instances of one deployment share.
pub const JWT: &str = "0123456789abcdef0123456789abcdef-jwt-shared-by-instances";
pub const HMAC: &str = "0123456789abcdef0123456789abcdef-hmac-shared-by-instances";

/// Two instances on one database (a SQLite file in WAL mode) and one bus.
pub async fn pair(bus: &str) -> (TestApp, TestApp) {
    pair_with(bus, |_| {}).await
}

/// `pair`, with the same extra settings on both instances.
pub async fn pair_with(bus: &str, tweak: fn(&mut vitrine::config::Config)) -> (TestApp, TestApp) {
    pair_on(Db::Sqlite, bus, tweak).await
}

/// `pair_with` on `db` (SQLite: a shared file; PostgreSQL: one fresh database).
pub async fn pair_on(db: Db, bus: &str, tweak: fn(&mut vitrine::config::Config)) -> (TestApp, TestApp) {
    // The second instance opens the first one's database.
    let spawn = |database_url: Option<String>| {
        let bus = bus.to_string();
        TestApp::spawn_with(Spawn {
            db: db.clone(),
            tweak: Box::new(move |c| {
                c.bus_url = Some(bus);
                c.jwt_secret = Some(JWT.into());
                c.hmac_secret = Some(HMAC.into());
                if database_url.is_some() {
                    c.database_url = database_url;
                }
                tweak(c);
            }),
            ..Default::default()
        })
    };
    let a = spawn(None).await;
    let other = spawn(a.state.config.database_url.clone()).await;
    wait_connected(&a, Duration::from_secs(5)).await;
    wait_connected(&other, Duration::from_secs(5)).await;
    (a, other)
}

/// Waits until `app` is subscribed to the bus; panics after `within`.
pub async fn wait_connected(app: &TestApp, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    while !app.state.rooms.bus().connected() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "instance {} did not connect to the bus within {within:?}",
            app.addr
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A Redis server of our own, on a free port, that the test may kill.
pub struct OwnRedis {
    port: u16,
    child: Option<std::process::Child>,
    dir: tempfile::TempDir,
}

impl OwnRedis {
    /// Starts redis-server on a free port, in a directory of its own, and waits until it accepts
    /// connections.
    pub async fn start() -> OwnRedis {
        let redis = OwnRedis::start_on(free_port(), tempfile::tempdir().expect("dir"));
        redis.wait_ready().await;
        redis
    }

    /// Its URL, for `bus_url`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn start_on(port: u16, dir: tempfile::TempDir) -> OwnRedis {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .current_dir(dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("TEST_REDIS_URL is set, so redis-server must be installed: {e}"));
        OwnRedis { port, child: Some(child), dir }
    }

    async fn wait_ready(&self) {
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

    /// Starts it again on the same port (after `kill`), empty, and waits until it accepts
    /// connections.
    pub async fn restart(&mut self) {
        self.kill();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("dir"));
        *self = OwnRedis::start_on(self.port, dir);
        self.wait_ready().await;
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
