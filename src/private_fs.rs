//! What Vitrine keeps on disk under `data_dir` (the SQLite database and its `-wal`/`-shm`, local
//! blobs, half-written uploads and their scratch copies, generated secrets) is readable by its own
//! user only: directories 0700, files 0600.
//!
//! Two layers: the binary sets its umask to 0o077 at start-up (`restrict_umask`), so every file a
//! library creates on our behalf (object_store's blob files and their directories, SQLite's
//! journal files) comes out owner-only; and the directories and the database file are also made
//! owner-only explicitly (`create_dir`, `prepare_sqlite_file`), so an operator's laxer umask, or an
//! existing `data_dir` from an older version, is tightened on the next start.

use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of the directories Vitrine creates or uses under `data_dir`.
pub const DIR_MODE: u32 = 0o700;
/// Mode of the files Vitrine creates under `data_dir`.
pub const FILE_MODE: u32 = 0o600;

/// Sets the process umask so that new files are 0600 and new directories 0700 (process-wide: the
/// binary calls it once before anything else runs).
pub fn restrict_umask() {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
}

/// Creates `path` (and its missing parents) as 0700 and makes `path` itself 0700 if it existed
/// with a wider mode. A directory that belongs to another user cannot be changed: that is only
/// logged, since the operator chose it.
pub fn create_dir(path: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(DIR_MODE).create(path)?;
    tighten(path, DIR_MODE);
    Ok(())
}

/// SQLite: creates the database file as 0600 before SQLite opens it (SQLite would create it 0644
/// less the umask) and tightens an existing one. SQLite gives the `-wal` and `-shm` files the
/// database file's mode; existing ones are tightened too. `url` is a `sqlite:` URL; an in-memory
/// database has no file.
pub fn prepare_sqlite_file(url: &str) -> io::Result<()> {
    let Some(path) = sqlite_path(url) else { return Ok(()) };
    let path = Path::new(path);
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
        create_dir(parent)?;
    }
    if !path.exists() {
        // `append`: never truncates a database another process created meanwhile.
        std::fs::OpenOptions::new().append(true).create(true).mode(FILE_MODE).open(path)?;
    }
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{}{suffix}", path.display());
        if Path::new(&file).exists() {
            tighten(Path::new(&file), FILE_MODE);
        }
    }
    Ok(())
}

/// A scratch file in `dir` (created 0700 if missing), open for reading and writing, mode 0600, and
/// already unlinked: no other process can open it, and it is gone as soon as its last handle
/// closes, whatever ends its use (done, an error, a panic, the process killed).
pub fn scratch_file(dir: &Path) -> io::Result<std::fs::File> {
    create_dir(dir)?;
    let path = dir.join(format!("scratch-{}", uuid::Uuid::new_v4().simple()));
    let file = std::fs::OpenOptions::new().read(true).write(true).create_new(true).mode(FILE_MODE).open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

/// The file of a `sqlite:` URL, or None for an in-memory database.
pub(crate) fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" || query.split('&').any(|kv| kv == "mode=memory") {
        return None;
    }
    Some(path)
}

/// Takes group and other bits off `path` (never adds any), logging when that is refused.
fn tighten(path: &Path, mode: u32) {
    let Ok(meta) = std::fs::metadata(path) else { return };
    if meta.permissions().mode() & 0o777 & !mode == 0 {
        return;
    }
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
        tracing::warn!(path = %path.display(), error = %e, "cannot make this path readable by its owner only");
    }
}

#[cfg(test)]
mod tests {
    use super::sqlite_path;

    #[test]
    fn the_file_of_a_sqlite_url() {
        assert_eq!(sqlite_path("sqlite:///var/lib/vitrine/vitrine.db?mode=rwc"), Some("/var/lib/vitrine/vitrine.db"));
        assert_eq!(sqlite_path("sqlite:data/v.db"), Some("data/v.db"));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("sqlite://x.db?mode=memory&cache=shared"), None);
        assert_eq!(sqlite_path("postgres://db/vitrine"), None);
    }
}
