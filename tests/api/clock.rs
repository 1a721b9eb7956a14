//! One clock (DESIGN §1): the time of day comes from the app's injected clock, so tests can move
//! it. Only `src/domain/time.rs` (`SystemClock`) may read the system time; no free `now_ms()`.

use std::path::{Path, PathBuf};

/// Wall-clock reads that bypass the injected clock.
const FORBIDDEN: &[&str] =
    &["SystemTime::now", "Utc::now", "Local::now", "OffsetDateTime::now_utc", "OffsetDateTime::now_local"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Whether `line` calls a free `now_ms()` (a method call `x.now_ms()` goes through a clock).
fn calls_free_now_ms(line: &str) -> bool {
    line.match_indices("now_ms()").any(|(i, _)| !line[..i].ends_with('.'))
}

#[test]
fn only_the_clock_reads_the_time_of_day() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    rust_files(&src, &mut files);
    let mut found = vec![];
    for file in files {
        let rel = file.strip_prefix(&src).expect("under src").to_string_lossy().replace('\\', "/");
        if rel == "domain/time.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read");
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            if FORBIDDEN.iter().any(|f| line.contains(f)) || calls_free_now_ms(line) {
                found.push(format!("src/{rel}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "read the time through `state.clock` (or take `now`):\n{}", found.join("\n"));
}

#[test]
fn the_guard_sees_free_calls_and_lets_clock_calls_pass() {
    assert!(calls_free_now_ms("let t = crate::domain::time::now_ms();"));
    assert!(calls_free_now_ms("    now_ms() - t"));
    assert!(!calls_free_now_ms("let t = state.clock.now_ms();"));
    assert!(!calls_free_now_ms("fn now_ms(&self) -> i64 {"));
}
