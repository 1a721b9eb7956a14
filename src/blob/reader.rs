//! A blocking `Read + Seek` view of a stored blob, fetched in ranged reads, so that format
//! detection and image decoding can look inside a file without loading it whole.

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::runtime::Handle;

const WINDOW: u64 = 256 * 1024;

/// Use only from a blocking thread (`spawn_blocking`): it blocks on the runtime for each window.
pub struct BlobReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: u64,
    pos: u64,
    window_start: u64,
    window: Bytes,
    handle: Handle,
}

impl BlobReader {
    pub fn new(store: Arc<dyn ObjectStore>, path: Path, size: u64, handle: Handle) -> Self {
        BlobReader { store, path, size, pos: 0, window_start: 0, window: Bytes::new(), handle }
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let in_window = self.pos >= self.window_start && self.pos < self.window_start + self.window.len() as u64;
        if !in_window {
            let end = (self.pos + WINDOW).min(self.size);
            let store = self.store.clone();
            let path = self.path.clone();
            let start = self.pos;
            self.window = self
                .handle
                .block_on(async move { store.get_range(&path, start..end).await })
                .map_err(io::Error::other)?;
            self.window_start = start;
            if self.window.is_empty() {
                return Ok(0);
            }
        }
        let off = (self.pos - self.window_start) as usize;
        let n = buf.len().min(self.window.len() - off);
        buf[..n].copy_from_slice(&self.window[off..off + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for BlobReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let new = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match new {
            Some(p) => {
                self.pos = p;
                Ok(p)
            }
            None => Err(io::Error::new(io::ErrorKind::InvalidInput, "seek before the start of the blob")),
        }
    }
}
