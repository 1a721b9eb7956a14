//! Helpers shared by the Rust benchmarks (`#[path = "common.rs"] mod common;` in each): scratch
//! PostgreSQL databases, percentiles, JSON answers, the machine line, and the entry point's
//! verdict handling (`run_bench`).
#![allow(dead_code)] // each benchmark uses its own subset

use serde_json::Value;

/// The `p`-th percentile (0..100) of ascending `sorted` (NaN when empty).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The JSON body of a successful answer, or the status and body as the error.
pub async fn json_of(r: reqwest::Response) -> anyhow::Result<Value> {
    let status = r.status();
    let text = r.text().await?;
    anyhow::ensure!(status.is_success(), "HTTP {status}: {text}");
    Ok(serde_json::from_str(&text)?)
}

/// A new empty database `name` next to `TEST_DATABASE_URL`; its URL.
pub async fn fresh_postgres(name: &str) -> anyhow::Result<String> {
    let base = std::env::var("TEST_DATABASE_URL")?;
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&base).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).execute(&mut conn).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await?;
    let mut u = url::Url::parse(&base)?;
    u.set_path(&format!("/{name}"));
    Ok(u.to_string())
}

/// Drops the scratch database `name`.
pub async fn drop_postgres(name: &str) -> anyhow::Result<()> {
    let base = std::env::var("TEST_DATABASE_URL")?;
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&base).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).execute(&mut conn).await?;
    Ok(())
}

/// "CPU model, N cores, Linux version", for the report.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpu}, {cores} cores, Linux {}", kernel.trim())
}

/// Runs a benchmark's `run` on a fresh runtime within `overall`, prints the verdict and exits:
/// 0 when `run` says every target was met, 1 with the targets it names as missed, 2 when it failed,
/// ran out of time or was interrupted.
pub fn run_bench<F>(name: &str, overall: std::time::Duration, run: F) -> anyhow::Result<()>
where
    F: std::future::Future<Output = anyhow::Result<Vec<String>>>,
{
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let code = rt.block_on(async {
        tokio::select! {
            r = tokio::time::timeout(overall, run) => match r {
                Ok(Ok(missed)) if missed.is_empty() => {
                    println!("{name}: every target met");
                    0
                }
                Ok(Ok(missed)) => {
                    println!("{name}: targets missed: {}", missed.join(", "));
                    1
                }
                Ok(Err(e)) => {
                    eprintln!("{name} benchmark failed: {e:#}");
                    2
                }
                Err(_) => {
                    eprintln!("{name} benchmark failed: not finished after {} s", overall.as_secs());
                    2
                }
            },
            _ = tokio::signal::ctrl_c() => {
                eprintln!("{name} benchmark interrupted");
                2
            }
        }
    });
    // Servers and temp dirs are gone by now (dropped inside the future); sockets go with the runtime.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    std::process::exit(code);
}

/// A free loopback port (a small race until the server binds it, acceptable here).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `VmRSS` of a process, in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    use anyhow::Context;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("no VmRSS")?;
    Ok(line.split_whitespace().nth(1).context("VmRSS value")?.parse()?)
}

/// The server binary: VITRINE_BIN, target/release/vitrine, or a fresh `cargo build --release`.
pub fn vitrine_bin() -> anyhow::Result<std::path::PathBuf> {
    use std::path::PathBuf;
    if let Some(p) = std::env::var_os("VITRINE_BIN") {
        let p = PathBuf::from(p);
        anyhow::ensure!(p.is_file(), "VITRINE_BIN={} is not a file", p.display());
        // Servers run in their data dirs: a relative path would not resolve there.
        let p = p.canonicalize()?;
        println!("server binary: {} (VITRINE_BIN)", p.display());
        return Ok(p);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => root.join(t),
        None => root.join("target"),
    };
    let bin = target.join("release").join("vitrine");
    if !bin.is_file() {
        println!("server binary {} is missing: running `cargo build --release` in {}", bin.display(), root.display());
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = std::process::Command::new(cargo).args(["build", "--release"]).current_dir(&root).status()?;
        anyhow::ensure!(status.success() && bin.is_file(), "`cargo build --release` failed ({status})");
    }
    let age = std::fs::metadata(&bin)?.modified()?.elapsed().unwrap_or_default().as_secs();
    println!("server binary: {} (built {} min ago)", bin.display(), age / 60);
    Ok(bin)
}
