//! Helpers shared by the Rust benchmarks (`#[path = "common.rs"] mod common;` in each): scratch
//! PostgreSQL databases, percentiles, JSON answers.
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
