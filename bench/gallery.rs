//! Search benchmark (`cargo bench --bench gallery`): the dashboard search over 100,000 assets.
//!
//! An in-process Vitrine on SQLite (and on PostgreSQL when `TEST_DATABASE_URL` is set) holds
//! 100,000 assets of 1,000 owners. Titles (3–6 words), descriptions (8–16 words) and tags (2–4)
//! are drawn from a 2,000-word vocabulary with a Zipf law (a few words are very common, most are
//! rare), so some queries match tens of thousands of assets. 300 queries of one or two words,
//! drawn uniformly from the vocabulary (a third of them as 4-letter prefixes), go one at a time
//! through `GET /api/dashboard/search/` as an admin, after 30 warm-up queries.
//! Target: p99 < 20 ms.
//!
//! Reference, same run and same rows: the naive search a first version would write (a `LIKE
//! '%word%'` scan over titles, descriptions, tags and owner names), for the first 10 queries.
//! Under `cargo test --all-targets` the binary starts without `--bench` and returns at once.

use std::time::Instant;

use serde_json::json;
use vitrine::domain::assets::CONTENT_TYPES;

#[path = "common.rs"]
mod common;
use common::{json_of, percentile};

const ASSETS: usize = 100_000;
const OWNERS: usize = 1_000;
const VOCABULARY: usize = 2_000;
const QUERIES: usize = 300;
const WARMUP: usize = 30;
const NAIVE: usize = 10;

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Pronounceable distinct words: consonant-vowel syllables.
fn vocabulary() -> Vec<String> {
    const C: &[u8] = b"bcdfghjklmnprstvz";
    const V: &[u8] = b"aeiou";
    let mut words = Vec::with_capacity(VOCABULARY);
    let mut i = 0usize;
    while words.len() < VOCABULARY {
        let mut w = String::new();
        let mut n = i;
        for _ in 0..3 {
            w.push(C[n % C.len()] as char);
            n /= C.len();
            w.push(V[n % V.len()] as char);
            n /= V.len();
        }
        words.push(w);
        i += 7919;
    }
    words.sort();
    words.dedup();
    words
}

/// Zipf(s = 1) sampler over `n` ranks by inverse CDF.
struct Zipf(Vec<f64>);

impl Zipf {
    fn new(n: usize) -> Zipf {
        let mut acc = 0.0;
        let mut cdf = Vec::with_capacity(n);
        for k in 1..=n {
            acc += 1.0 / k as f64;
            cdf.push(acc);
        }
        let total = acc;
        Zipf(cdf.into_iter().map(|c| c / total).collect())
    }
    fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.0.partition_point(|c| *c < u).min(self.0.len() - 1)
    }
}

fn phrase(words: &[String], zipf: &Zipf, rng: &mut Rng, min: usize, max: usize, sep: &str) -> String {
    let n = min + rng.below(max - min + 1);
    (0..n).map(|_| words[zipf.sample(rng)].as_str()).collect::<Vec<_>>().join(sep)
}

/// Fills users and assets in multi-row INSERTs (the search index follows through its triggers).
async fn seed(store: &vitrine::store::Store, words: &[String]) -> anyhow::Result<()> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let zipf = Zipf::new(words.len());
    let pool = store.pool();
    let mut tx = pool.begin().await?;
    for chunk in (0..OWNERS).collect::<Vec<_>>().chunks(200) {
        let mut sql = String::from(
            "INSERT INTO users (id, email, name, password_hash, role, is_active, created_at, updated_at) VALUES ",
        );
        let mut q = vec![];
        for (i, o) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            let b = i * 3;
            sql.push_str(&format!("(${}, ${}, ${}, 'x', 'user', 1, 0, 0)", b + 1, b + 2, b + 3));
            let name =
                format!("{} {}", capital(&words[rng.below(words.len())]), capital(&words[rng.below(words.len())]));
            q.push((1000 + *o as i64, format!("owner{o}@example.com"), name));
        }
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (id, email, name) in q {
            query = query.bind(id).bind(email).bind(name);
        }
        query.execute(&mut *tx).await?;
    }
    for start in (0..ASSETS).step_by(500) {
        let mut sql = String::from(
            "INSERT INTO assets (id, owner_id, title, description, tags, name, mime_type, media_type, size, sha256, \
             blob_key, thumb_key, width, height, duration_seconds, content_type, created_at, updated_at) VALUES ",
        );
        let end = (start + 500).min(ASSETS);
        for (i, _) in (start..end).enumerate() {
            if i > 0 {
                sql.push(',');
            }
            let b = i * 6;
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, ${}, 'f.pdf', 'application/pdf', 'document', 1000, 'h', 'k', NULL, NULL, NULL, NULL, ${}, 0, 0)",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6
            ));
        }
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for a in start..end {
            query = query
                .bind(100_000 + a as i64)
                .bind(1000 + rng.below(OWNERS) as i64)
                .bind(capital(&phrase(words, &zipf, &mut rng, 3, 6, " ")))
                .bind(phrase(words, &zipf, &mut rng, 8, 16, " "))
                .bind(phrase(words, &zipf, &mut rng, 2, 4, ","))
                .bind(CONTENT_TYPES[rng.below(CONTENT_TYPES.len())]);
        }
        query.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

fn capital(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

async fn run(kind: &str) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let base = format!("http://{addr}");
    let database_url = match kind {
        "sqlite" => None,
        _ => Some(common::fresh_postgres(&bench_db_name()).await?),
    };
    let config = vitrine::config::Config {
        data_dir: dir.path().to_path_buf(),
        listen: addr.to_string(),
        public_url: base.clone(),
        log_level: "warn".into(),
        database_url: database_url.clone(),
        gallery_rate_admin_per_hour: 1_000_000,
        ..Default::default()
    };
    let state = vitrine::app::AppState::build(config).await?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(vitrine::app::run(listener, state.clone(), shutdown.clone()));
    let http = reqwest::Client::new();
    let reg = json_of(
        http.post(format!("{base}/api/auth/register/"))
            .json(&json!({"email": "admin@example.com", "password": "bench-password-123", "name": "Admin"}))
            .send()
            .await?,
    )
    .await?;
    let token = reg["access_token"].as_str().unwrap_or_default().to_string();
    let words = vocabulary();
    let t = Instant::now();
    seed(&state.store, &words).await?;
    let seeded = t.elapsed();
    if kind == "postgres" {
        sqlx::query("ANALYZE").execute(state.store.pool()).await?;
    }

    // Queries: one or two words drawn uniformly; a third of them as 4-letter prefixes.
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let queries: Vec<String> = (0..WARMUP + QUERIES)
        .map(|i| {
            let mut w: Vec<String> = (0..1 + rng.below(2)).map(|_| words[rng.below(words.len())].clone()).collect();
            if i % 3 == 0 {
                w[0].truncate(4);
            }
            w.join(" ")
        })
        .collect();
    let mut times = vec![];
    let mut hits = 0i64;
    for (i, q) in queries.iter().enumerate() {
        let t = Instant::now();
        let v = json_of(
            http.get(format!("{base}/api/dashboard/search/"))
                .query(&[("q", q.as_str())])
                .bearer_auth(&token)
                .send()
                .await?,
        )
        .await?;
        if i >= WARMUP {
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            hits +=
                v["results"].as_array().map_or(0, |g| g.iter().map(|g| g["media_count"].as_i64().unwrap_or(0)).sum());
        }
    }
    times.sort_by(f64::total_cmp);
    let mut naive = vec![];
    for q in queries.iter().skip(WARMUP).take(NAIVE) {
        let t = Instant::now();
        let mut sql =
            String::from("SELECT a.owner_id, COUNT(*) FROM assets a JOIN users u ON u.id = a.owner_id WHERE true");
        let words: Vec<String> = q.split(' ').map(|w| format!("%{w}%")).collect();
        for i in 0..words.len() {
            let p = i + 1;
            sql.push_str(&format!(
                " AND (lower(a.title) LIKE ${p} OR lower(a.description) LIKE ${p} OR lower(a.tags) LIKE ${p} OR lower(u.name) LIKE ${p})"
            ));
        }
        sql.push_str(" GROUP BY a.owner_id ORDER BY COUNT(*) DESC LIMIT 20");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for w in &words {
            query = query.bind(w.clone());
        }
        query.fetch_all(state.store.pool()).await?;
        naive.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    naive.sort_by(f64::total_cmp);
    let naive_median = percentile(&naive, 50.0);
    let p99 = percentile(&times, 99.0);
    println!(
        "{kind}: search over {ASSETS} assets ({:.1} s to seed): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (target p99 < 20 ms) over {QUERIES} queries, {:.0} matches per query on average | reference naive LIKE scan median {:.1} ms ({:.0}x the search p50)",
        seeded.as_secs_f64(),
        percentile(&times, 50.0),
        p99,
        times.last().copied().unwrap_or(0.0),
        hits as f64 / QUERIES as f64,
        naive_median,
        naive_median / percentile(&times, 50.0)
    );
    shutdown.cancel();
    let _ = server.await;
    state.store.close().await;
    if kind == "postgres" {
        common::drop_postgres(&bench_db_name()).await?;
    }
    Ok(())
}

fn bench_db_name() -> String {
    format!("vitrine_bench_search_{}", std::process::id())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("gallery benchmark: skipped (run it with `cargo bench --bench gallery`)");
        return Ok(());
    }
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    sqlx::any::install_default_drivers();
    run("sqlite").await?;
    if std::env::var("TEST_DATABASE_URL").is_ok() {
        run("postgres").await?;
    } else {
        println!("postgres: skipped (set TEST_DATABASE_URL to run the search on PostgreSQL too)");
    }
    Ok(())
}
