//! TLS to the shared services (SPEC §9, production connections): PostgreSQL with libpq's `sslmode` and
//! `sslrootcert` in `database_url`, Redis over `rediss://` with a password or an ACL user and a
//! private CA in `bus_tls_ca`. Each test starts its own server with certificates made here, so
//! nothing depends on how the host's PostgreSQL or Redis is set up; they run when CI provides
//! PostgreSQL (`TEST_DATABASE_URL`) or Redis (`TEST_REDIS_URL`), and then fail loudly if the
//! server programs are missing.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::redis::{HMAC, JWT, wait_connected};
use crate::helpers::{Spawn, TestApp, Ws, fixtures, free_port};

/// A CA, and a server certificate and key it signed, as PEM files.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn write(path: &Path, text: &str) {
    // Private keys must not be readable by others: PostgreSQL refuses to start otherwise.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    f.write_all(text.as_bytes()).expect("write PEM");
}

fn ca(name: &str) -> (rcgen::CertificateParams, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().expect("CA key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    (params, key)
}

/// A fresh CA in `dir` and a certificate it signed for `localhost` only (not 127.0.0.1, so that a
/// connection by IP address tells `verify-ca` from `verify-full`).
fn pki(dir: &Path) -> Pki {
    let (params, key) = ca("Vitrine test CA");
    let ca_cert = params.self_signed(&key).expect("self-sign CA");
    let issuer = rcgen::Issuer::new(params, key);
    let server_key = rcgen::KeyPair::generate().expect("server key");
    let mut server = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("server params");
    server.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
    let server_cert = server.signed_by(&server_key, &issuer).expect("sign server certificate");
    let pki = Pki { ca: dir.join("ca.pem"), cert: dir.join("server.crt"), key: dir.join("server.key") };
    write(&pki.ca, &ca_cert.pem());
    write(&pki.cert, &server_cert.pem());
    write(&pki.key, &server_key.serialize_pem());
    pki
}

/// Another self-signed CA, which signed nothing the servers present.
fn wrong_ca(dir: &Path) -> PathBuf {
    let (params, key) = ca("Some other CA");
    let path = dir.join("wrong-ca.pem");
    write(&path, &params.self_signed(&key).expect("self-sign").pem());
    path
}

/// A throwaway PostgreSQL cluster with `ssl = on` that accepts TLS connections only
/// (`hostssl … trust`, `hostnossl … reject`); stopped when dropped.
struct TlsPostgres {
    port: u16,
    bin: PathBuf,
    pki: Pki,
    /// PostgreSQL refuses to run as root: the tests then run it as the `postgres` user.
    as_postgres: bool,
    dir: tempfile::TempDir,
}

impl TlsPostgres {
    fn start() -> TlsPostgres {
        let bin = TlsPostgres::bin_dir().unwrap_or_else(|| {
            panic!(
                "TEST_DATABASE_URL is set, so the PostgreSQL server programs must be installed (initdb and \
                 pg_ctl under /usr/lib/postgresql/*/bin or on PATH: apt-get install postgresql)"
            )
        });
        let dir = tempfile::tempdir().expect("tempdir");
        let as_postgres = std::fs::metadata(dir.path()).expect("tempdir metadata").uid() == 0;
        let pki = pki(dir.path());
        if as_postgres {
            // The cluster, its certificates and key belong to the user the server runs as.
            let out = Command::new("chown").arg("-R").arg("postgres:").arg(dir.path()).output().expect("run chown");
            assert!(
                out.status.success(),
                "the tests run as root, where PostgreSQL must run as the `postgres` user, but chown to it \
                 failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut pg = TlsPostgres { port: 0, bin, pki, as_postgres, dir };
        let data = pg.data();
        pg.run("initdb", &["-D", &data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-locale", "--no-sync"]);
        // Only TLS connections are let in, so every connection that works below was encrypted.
        std::fs::write(
            pg.dir.path().join("data/pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n\
             hostnossl all all all reject\n",
        )
        .expect("write pg_hba.conf");
        // The port is free when chosen but could be taken before the server binds it: try a few.
        for _ in 0..3 {
            pg.port = free_port();
            let d = pg.dir.path().display();
            let conf = format!(
                "\nport = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{d}'\nssl = on\n\
                 ssl_cert_file = '{}'\nssl_key_file = '{}'\nfsync = off\n",
                pg.port,
                pg.pki.cert.display(),
                pg.pki.key.display()
            );
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(pg.dir.path().join("data/postgresql.conf"))
                .expect("open postgresql.conf");
            f.write_all(conf.as_bytes()).expect("append to postgresql.conf");
            let log = format!("{d}/postgres.log");
            if pg.try_run("pg_ctl", &["-D", &data, "-l", &log, "-w", "-t", "60", "start"]).status.success() {
                return pg;
            }
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            if !log.contains("could not bind") && !log.contains("already in use") {
                panic!("the TLS PostgreSQL cluster did not start:\n{log}");
            }
        }
        panic!("the TLS PostgreSQL cluster could not bind a free port three times");
    }

    /// The newest `/usr/lib/postgresql/<version>/bin` (Debian), else the directory of `initdb` on PATH.
    fn bin_dir() -> Option<PathBuf> {
        let has_tools = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
            .filter(|(_, d)| has_tools(d))
            .collect();
        versions.sort();
        if let Some((_, d)) = versions.pop() {
            return Some(d);
        }
        std::env::split_paths(&std::env::var_os("PATH")?).find(|d| has_tools(d))
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Runs a server program, as the `postgres` user when the tests run as root (`runuser`, else `su`).
    fn try_run(&self, tool: &str, args: &[&str]) -> std::process::Output {
        let program = self.bin.join(tool);
        let mut cmd = if !self.as_postgres {
            let mut c = Command::new(&program);
            c.args(args);
            c
        } else if Path::new("/usr/sbin/runuser").is_file() || Path::new("/sbin/runuser").is_file() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program).args(args);
            c
        } else {
            let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
            let line: Vec<String> =
                std::iter::once(program.display().to_string()).chain(args.iter().map(|a| a.to_string())).collect();
            let mut c = Command::new("su");
            c.args(["-s", "/bin/sh", "postgres", "-c", &line.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")]);
            c
        };
        // pg_ctl leaves the server running with our stdout: give it none, so that `output()` returns.
        cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("run {tool}: {e}"))
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let out = self.try_run(tool, args);
        assert!(
            out.status.success(),
            "{tool} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `postgres://postgres@{host}:{port}/postgres?{params}`.
    fn url(&self, host: &str, params: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres?{params}", self.port)
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self.try_run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
    }
}

/// `Store::connect` on `url`: `Ok` after a query went through, or the error with its causes.
async fn connect(url: &str) -> Result<(), String> {
    let store = vitrine::store::Store::connect(url, 2).await.map_err(|e| format!("{e:#}"))?;
    store.ping().await.map_err(|e| format!("{e:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls_checks_the_server_certificate_as_sslmode_asks() {
    if std::env::var("TEST_DATABASE_URL").map_or(true, |u| u.trim().is_empty()) {
        eprintln!(
            "skipped: TEST_DATABASE_URL is not set (CI sets it; this test then starts its own PostgreSQL with TLS)"
        );
        return;
    }
    crate::helpers::init();
    let pg = tokio::task::spawn_blocking(TlsPostgres::start).await.expect("start PostgreSQL");
    let ca = pg.pki.ca.display().to_string();
    let wrong = wrong_ca(pg.dir.path()).display().to_string();

    // verify-full with the server's CA: the whole app runs on it.
    let url = pg.url("localhost", &format!("sslmode=verify-full&sslrootcert={ca}"));
    let app =
        TestApp::spawn_with(Spawn { tweak: Box::new(move |c| c.database_url = Some(url)), ..Default::default() }).await;
    app.register("tess@example.com", "Tess TLS").await;
    assert_eq!(app.get("/readyz", None).await.status(), StatusCode::OK);

    // The server takes TLS connections only, so each one that works here was encrypted.
    let refused = connect(&pg.url("localhost", "sslmode=disable")).await.expect_err("plain text is refused");
    assert!(refused.contains("pg_hba.conf"), "{refused}");
    // require: encrypted, certificate unchecked (as in libpq).
    connect(&pg.url("localhost", "sslmode=require")).await.expect("sslmode=require");
    // verify-ca checks the chain but not the name: by IP address, with a certificate for localhost.
    connect(&pg.url("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={ca}"))).await.expect("verify-ca by IP");
    let e = connect(&pg.url("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={ca}")))
        .await
        .expect_err("verify-full checks the name");
    assert!(e.contains("certificate not valid for name \"127.0.0.1\""), "{e}");

    // Another CA, or none (the built-in public CAs), is refused with a message that names the fix.
    for params in [format!("sslmode=verify-full&sslrootcert={wrong}"), "sslmode=verify-full".to_string()] {
        let e = connect(&pg.url("localhost", &params)).await.expect_err("an unknown CA is refused");
        assert!(e.contains("TLS: check sslmode and sslrootcert in database_url"), "{params}: {e}");
        assert!(e.contains("invalid peer certificate") && e.contains("UnknownIssuer"), "{params}: {e}");
    }
    // require with a root certificate checks the chain, as libpq does.
    connect(&pg.url("localhost", &format!("sslmode=require&sslrootcert={ca}"))).await.expect("require + right CA");
    let e = connect(&pg.url("localhost", &format!("sslmode=require&sslrootcert={wrong}")))
        .await
        .expect_err("require + wrong CA is refused");
    assert!(e.contains("UnknownIssuer"), "{e}");

    // The app refuses to start on a wrong CA, saying why.
    let url = pg.url("localhost", &format!("sslmode=verify-full&sslrootcert={wrong}"));
    let config = vitrine::config::Config {
        data_dir: app.dir.path().join("other"),
        database_url: Some(url),
        ..vitrine::config::Config::default()
    };
    let e = format!("{:#}", vitrine::app::AppState::build(config).await.err().expect("the app does not start"));
    assert!(e.contains("cannot open the database") && e.contains("UnknownIssuer"), "{e}");
}

const REDIS_PASSWORD: &str = "default-user-password";
const ACL_USER: &str = "vitrine";
const ACL_PASSWORD: &str = "acl-user-password";

/// A redis-server of our own that speaks TLS only (`--port 0 --tls-port`), with a password for the
/// default user and an ACL user.
struct TlsRedis {
    port: u16,
    pki: Pki,
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TlsRedis {
    async fn start() -> TlsRedis {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = pki(dir.path());
        let log_path = dir.path().join("redis.log");
        let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
        // The port is free when chosen but could be taken before the server binds it: try a few.
        for _ in 0..3 {
            let port = free_port();
            let log = std::fs::File::create(&log_path).expect("redis.log");
            let mut child = Command::new("redis-server")
                .args(["--port", "0", "--tls-port", &port.to_string(), "--bind", "127.0.0.1"])
                .arg("--tls-cert-file")
                .arg(&pki.cert)
                .arg("--tls-key-file")
                .arg(&pki.key)
                .arg("--tls-ca-cert-file")
                .arg(&pki.ca)
                .args(["--tls-auth-clients", "no", "--requirepass", REDIS_PASSWORD, "--save", "", "--appendonly", "no"])
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(log)
                .spawn()
                .unwrap_or_else(|e| panic!("TEST_REDIS_URL is set, so redis-server must be installed: {e}"));
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(mut conn) = admin(&pki.ca, port).await {
                    // The ACL user the second instance logs in as.
                    let _: () = redis::cmd("ACL")
                        .arg(&["SETUSER", ACL_USER, "on", &format!(">{ACL_PASSWORD}"), "~*", "&*", "+@all"])
                        .query_async(&mut conn)
                        .await
                        .expect("ACL SETUSER");
                    return TlsRedis { port, pki, child, dir };
                }
                if child.try_wait().expect("redis-server status").is_some() {
                    let log = read_log();
                    if log.contains("Address already in use") {
                        break; // the port was taken meanwhile: next port
                    }
                    panic!("redis-server exited (is it built with TLS?):\n{log}");
                }
                if tokio::time::Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("redis-server did not answer over TLS within 10 s:\n{}", read_log());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        panic!("redis-server could not bind a free port three times:\n{}", read_log());
    }
}

/// A connection as the default user over TLS, trusting `ca`; `None` while it cannot be made.
async fn admin(ca: &Path, port: u16) -> Option<redis::aio::MultiplexedConnection> {
    let pem = std::fs::read(ca).expect("read CA");
    let certs = redis::TlsCertificates { client_tls: None, root_cert: Some(pem) };
    let client = redis::Client::build_with_tls(format!("rediss://:{REDIS_PASSWORD}@localhost:{port}"), certs)
        .expect("TLS client");
    let mut conn =
        tokio::time::timeout(Duration::from_secs(2), client.get_multiplexed_async_connection()).await.ok()?.ok()?;
    let _: String = redis::cmd("PING").query_async(&mut conn).await.ok()?;
    Some(conn)
}

/// An instance on `database_url` (None: a fresh SQLite file) with this bus and CA.
async fn instance(database_url: Option<String>, bus_url: String, bus_tls_ca: Option<PathBuf>) -> TestApp {
    TestApp::spawn_with(Spawn {
        tweak: Box::new(move |c| {
            c.bus_url = Some(bus_url);
            c.bus_tls_ca = bus_tls_ca.map(|p| p.display().to_string());
            c.jwt_secret = Some(JWT.into());
            c.hmac_secret = Some(HMAC.into());
            if database_url.is_some() {
                c.database_url = database_url;
            }
        }),
        ..Default::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_events_and_limits_over_rediss_with_a_password_or_an_acl_user() {
    if crate::helpers::redis::redis_url().await.is_none() {
        return;
    }
    crate::helpers::init();
    let redis = TlsRedis::start().await;
    let ca = Some(redis.pki.ca.clone());
    // One instance logs in with the default user's password, the other as the ACL user.
    let a = instance(None, format!("rediss://:{REDIS_PASSWORD}@localhost:{}", redis.port), ca.clone()).await;
    let db = a.state.config.database_url.clone();
    let b = instance(db, format!("rediss://{ACL_USER}:{ACL_PASSWORD}@localhost:{}/0", redis.port), ca).await;
    wait_connected(&a, Duration::from_secs(10)).await;
    wait_connected(&b, Duration::from_secs(10)).await;

    // A budget spent on A is spent for B (the GCRA script runs on the TLS connection).
    let key = format!("tls-test:{}", uuid::Uuid::new_v4().simple());
    assert_eq!(a.state.rooms.bus().spend(&key, 60_000, 2).await, Some(0));
    assert_eq!(a.state.rooms.bus().spend(&key, 60_000, 2).await, Some(0));
    let wait = b.state.rooms.bus().spend(&key, 60_000, 2).await;
    assert!(wait.is_some_and(|ms| ms > 0), "B is refused what A spent: {wait:?}");

    // An event published on B reaches a socket on A: the owner hears about a view served by B.
    let (owner, _) = a.register("owner@example.com", "Olive Owner").await;
    let asset = a.upload(&owner, "deck.pdf", fixtures::pdf(800)).await;
    let share: Value = a
        .post_json(&format!("/api/v3/assets/{}/share/", asset["id"]), Some(&owner), &json!({"notify_on_access": true}))
        .await
        .json()
        .await
        .expect("json");
    let mut notes = Ws::connect(&a, &format!("/ws/notifications/?token={owner}")).await;
    assert_eq!(notes.next().await["type"], "connection_established");
    let view =
        b.client.get(b.url(&format!("/share/{}/", share["uuid"].as_str().expect("uuid")))).send().await.expect("view");
    assert_eq!(view.status(), StatusCode::OK);
    let n = notes.next_of("notification").await;
    assert_eq!((n["kind"].as_str(), n["share_uuid"].as_str()), (Some("share_accessed"), share["uuid"].as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_or_password_keeps_the_rediss_bus_down_while_the_instance_serves() {
    if crate::helpers::redis::redis_url().await.is_none() {
        return;
    }
    crate::helpers::init();
    let redis = TlsRedis::start().await;
    let port = redis.port;
    let wrong = wrong_ca(redis.dir.path());
    let good = format!("rediss://:{REDIS_PASSWORD}@localhost:{port}");
    // A correctly configured instance connects: the others had the same time to.
    let control = instance(None, good.clone(), Some(redis.pki.ca.clone())).await;
    let bad = [
        instance(None, good.clone(), Some(wrong)).await,
        // No bus_tls_ca: only the built-in public CAs are trusted, and they did not sign this server.
        instance(None, good, None).await,
        instance(None, format!("rediss://:not-the-password@localhost:{port}"), Some(redis.pki.ca.clone())).await,
    ];
    wait_connected(&control, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for (i, app) in bad.iter().enumerate() {
        assert!(!app.state.rooms.bus().connected(), "misconfigured instance {i} must not be connected");
        // Limits fall back to this instance alone, and it keeps serving.
        assert_eq!(app.state.rooms.bus().spend("tls-test:down", 60_000, 2).await, None);
        assert_eq!(app.get("/healthz", None).await.status(), StatusCode::OK);
        app.register(&format!("user{i}@example.com"), "Uma User").await;
    }
}
