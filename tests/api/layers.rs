//! The layers point down only (issue 19, docs/architecture.md "Layers"): every `crate::<module>`
//! path in `src/` is checked against a rank per top-level module, so an import upwards or a cycle
//! among the lower modules fails here, naming the file.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each top-level module of `src/` and its rank: a module may use only modules of a lower rank
/// (and the pairs in `ALLOWED`).
const RANKS: &[(&str, u8)] = &[
    ("error", 0),
    ("domain", 1),
    ("config", 2),
    ("private_fs", 2),
    ("scan", 2),
    ("media", 2),
    ("mail", 2),
    ("qr", 2),
    ("zipstream", 2),
    ("auth", 3),
    ("blob", 3),
    ("watermark", 3),
    ("store", 4),
    ("bus", 5),
    ("limits", 5),
    ("analytics", 6),
    ("realtime", 6),
    ("service", 7),
    ("http", 8),
    ("jobs", 8),
    ("app", 9),
    ("cli", 9),
    ("lib", 9),
    ("main", 9),
];

/// Uses that the ranks alone would refuse, each with its reason: (user, used).
const ALLOWED: &[(&str, &str)] = &[
    // Config validates the clamd address with the scanner's own parser.
    ("config", "scan"),
    // Every limit, budget and lockout is counted through the bus (one Redis script when shared).
    ("limits", "bus"),
    // `AppState` (and the tenant metrics registry) is defined in app.rs, which builds it and
    // wires everything; handlers, services and jobs are handed the state.
    ("http", "app"),
    ("service", "app"),
    ("jobs", "app"),
    // The command line builds the app and serves it.
    ("cli", "app"),
];

/// Only the edge and its wiring name `crate::http`.
const HTTP_USERS: &[&str] = &["http", "app", "main"];

fn rank(module: &str) -> Option<u8> {
    RANKS.iter().find(|(m, _)| *m == module).map(|(_, r)| *r)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to: `src/store/x.rs` → `store`, `src/app.rs` → `app`.
fn module_of(relative: &str) -> String {
    let rest = relative.strip_prefix("src/").unwrap_or(relative);
    let first = rest.split('/').next().unwrap_or(rest);
    first.strip_suffix(".rs").unwrap_or(first).to_string()
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The top-level modules named by `crate::…` paths in `source`, `//` comment lines left out.
/// Grouped paths count too: `crate::{a::X, b}` names `a` and `b`.
fn used_modules(source: &str) -> BTreeSet<String> {
    let code: String = source.lines().filter(|l| !l.trim_start().starts_with("//")).map(|l| format!("{l}\n")).collect();
    let mut out = BTreeSet::new();
    let mut from = 0;
    while let Some(found) = code[from..].find("crate::") {
        let start = from + found;
        from = start + "crate::".len();
        if code[..start].chars().next_back().is_some_and(is_ident) {
            continue;
        }
        let rest = &code[from..];
        if let Some(group) = rest.strip_prefix('{') {
            // Split the group at its top-level commas; each entry's first segment is a module.
            let (mut depth, mut entries) = (0usize, vec![String::new()]);
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        entries.push(String::new());
                        continue;
                    }
                    _ => {}
                }
                if let Some(entry) = entries.last_mut() {
                    entry.push(c);
                }
            }
            out.extend(entries.iter().map(|e| e.trim_start().chars().take_while(|c| is_ident(*c)).collect::<String>()));
        } else {
            out.insert(rest.chars().take_while(|c| is_ident(*c)).collect());
        }
    }
    out.into_iter().filter(|m| !m.is_empty() && m != "self").collect()
}

#[test]
fn the_reader_sees_grouped_paths_and_skips_comment_lines() {
    let src = "use crate::{a::X, b, c::{d, e}};\n// use crate::hidden;\n  //! crate::doc\nlet x = crate::f::g(my_crate::h);\n";
    let got: Vec<String> = used_modules(src).into_iter().collect();
    assert_eq!(got, ["a", "b", "c", "f"]);
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![];
    rust_files(&root.join("src"), &mut files);
    files.sort();
    let mut broken = vec![];
    for path in &files {
        let relative = path.strip_prefix(root).expect("under the manifest dir").to_string_lossy().replace('\\', "/");
        let module = module_of(&relative);
        let Some(own) = rank(&module) else {
            broken.push(format!("{relative}: the module `{module}` has no rank in tests/api/layers.rs"));
            continue;
        };
        let source = std::fs::read_to_string(path).expect("source file");
        for used in used_modules(&source) {
            if used == module {
                continue;
            }
            let why = match rank(&used) {
                None => Some(format!("uses `crate::{used}`, which has no rank")),
                Some(r) if r >= own && !ALLOWED.contains(&(module.as_str(), used.as_str())) => {
                    Some(format!("`{module}` (rank {own}) uses `crate::{used}` (rank {r})"))
                }
                _ if used == "http" && !HTTP_USERS.contains(&module.as_str()) => {
                    Some(format!("uses `crate::http` outside the edge ({HTTP_USERS:?})"))
                }
                _ => None,
            };
            if let Some(why) = why {
                broken.push(format!("{relative}: {why}"));
            }
        }
    }
    assert!(broken.is_empty(), "imports that break the layers:\n{}", broken.join("\n"));
}
