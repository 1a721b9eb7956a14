//! A ZIP archive written while it is sent (SPEC §10 "Download all"): entries are read one after
//! the other from any source of byte chunks (local files, S3), each only when the consumer has
//! taken everything before it, and the archive goes out as a stream of bounded chunks. Memory is
//! a few hundred KiB per archive whatever its size; dropping the stream drops the reader of the
//! current entry at once (nothing is spawned), so a client that disconnects stops the reads.
//!
//! The container is written by `astral_async_zip` (the maintained fork of `async_zip` that uv
//! uses): every entry is streamed with a data descriptor and always carries ZIP64 fields (sizes in
//! the local header's ZIP64 extra field, 8-byte sizes in the descriptor, sizes and offset in the
//! central directory's ZIP64 extra field), and the archive ends with the ZIP64 end records. That
//! layout does not depend on the data, so [`stored_length`] knows the exact length of an archive
//! whose entries are all stored before a byte is read (`Content-Length`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use async_zip::base::write::ZipFileWriter;
use async_zip::{Compression, ZipDateTimeBuilder, ZipEntryBuilder};
use bytes::{Bytes, BytesMut};
use futures::io::AsyncWriteExt;
use futures::{Stream, StreamExt};
use unicode_normalization::UnicodeNormalization;

/// The largest chunk the archive stream yields (and the most it buffers).
pub const CHUNK: usize = 256 * 1024;
/// Longest entry name, in bytes (the limit of common file systems).
pub const MAX_NAME_BYTES: usize = 255;

/// One file of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The entry's name in the archive: one of [`entry_names`].
    pub name: String,
    /// Exactly the bytes its source yields; a source that yields more or fewer fails the archive.
    pub size: u64,
    /// Last modification, Unix milliseconds (stored as an MS-DOS date, UTC, 1980–2107).
    pub modified_ms: i64,
    /// Deflate (true) or store (false): see [`should_compress`].
    pub compress: bool,
}

/// Sanitised, unique entry names, in order: path separators, control and bidirectional-override
/// characters, leading dots and characters Windows refuses are removed, the name is NFC, at most
/// [`MAX_NAME_BYTES`] bytes keeping its extension, and never empty (`file`). A name already taken
/// (compared case-insensitively) becomes `a (2).pdf`, `a (3).pdf`, …
pub fn entry_names(names: &[&str]) -> Vec<String> {
    let mut taken = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(names.len());
    for raw in names {
        let clean = sanitize(raw);
        let (stem, ext) = split_ext(&clean);
        let mut name = clean.clone();
        let mut n = 1u64;
        while !taken.insert(name.to_lowercase()) {
            n += 1;
            name = fit(stem, &format!(" ({n})"), ext);
        }
        out.push(name);
    }
    out
}

/// One name made safe (not yet unique).
fn sanitize(raw: &str) -> String {
    let nfc: String = raw.nfc().collect();
    // Each path component: `..`, `.` and empty ones disappear, the rest are joined with `_`.
    let joined = nfc
        .split(['/', '\\'])
        .map(str::trim)
        .filter(|part| !part.is_empty() && *part != "." && *part != "..")
        .collect::<Vec<_>>()
        .join("_");
    let cleaned: String = joined
        .chars()
        .filter(|c| !c.is_control() && !is_invisible_override(*c))
        .map(|c| if matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*') { '_' } else { c })
        .collect();
    // No hidden files; Windows drops trailing dots and spaces.
    let mut name = cleaned.trim_start_matches(['.', ' ']).trim_end_matches(['.', ' ']).to_string();
    if name.is_empty() {
        name = "file".to_string();
    }
    if is_windows_device(&name) {
        name.insert(0, '_');
    }
    let (stem, ext) = split_ext(&name);
    fit(stem, "", ext)
}

/// Characters that reorder or hide text (an `exe` made to look like a `pdf`).
fn is_invisible_override(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// `CON`, `nul.txt`, `COM1.tar.gz`…: names Windows will not create.
fn is_windows_device(name: &str) -> bool {
    let base = name.split('.').next().unwrap_or("").trim_end().to_ascii_uppercase();
    matches!(base.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || ((base.starts_with("COM") || base.starts_with("LPT"))
            && base.len() == 4
            && base.as_bytes()[3].is_ascii_digit())
}

/// `report.final.pdf` → (`report.final`, `.pdf`); an extension is short and follows a non-empty stem.
fn split_ext(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(i) if i > 0 && name.len() - i <= 16 && name.len() - i > 1 => (&name[..i], &name[i..]),
        _ => (name, ""),
    }
}

/// `stem + suffix + ext`, the stem cut (on a character boundary) to keep it within the limit.
fn fit(stem: &str, suffix: &str, ext: &str) -> String {
    let room = MAX_NAME_BYTES.saturating_sub(suffix.len() + ext.len());
    let mut cut = stem.len().min(room);
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    let stem = stem[..cut].trim_end();
    let stem = if stem.is_empty() { "file" } else { stem };
    format!("{stem}{suffix}{ext}")
}

/// Whether a file of this MIME type is worth deflating. Formats that are compressed already
/// (images but BMP, TIFF, SVG and icons; audio; video; archives; PDF; office files, which are
/// ZIPs; fonts) and unknown binary (`application/octet-stream`) are stored: deflating them costs
/// CPU and gains nothing, and a stored entry goes out at copy speed. Everything else (text, JSON,
/// XML, legacy office documents, RTF…) is deflated.
pub fn should_compress(mime: &str) -> bool {
    let mime = mime.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let (kind, sub) = mime.split_once('/').unwrap_or((mime.as_str(), ""));
    match kind {
        "image" => matches!(
            sub,
            "bmp" | "x-ms-bmp" | "tiff" | "svg+xml" | "x-icon" | "vnd.microsoft.icon" | "x-portable-pixmap"
        ),
        "audio" | "video" | "font" => false,
        "application" => {
            !(matches!(
                sub,
                "octet-stream"
                    | "pdf"
                    | "ogg"
                    | "zip"
                    | "gzip"
                    | "x-gzip"
                    | "x-7z-compressed"
                    | "x-rar-compressed"
                    | "vnd.rar"
                    | "x-bzip2"
                    | "x-xz"
                    | "zstd"
                    | "x-zstd"
                    | "x-lzip"
                    | "x-lzma"
                    | "x-compress"
                    | "java-archive"
                    | "epub+zip"
                    | "vnd.android.package-archive"
                    | "x-apple-diskimage"
                    | "font-woff"
                    | "wasm"
            ) || sub.starts_with("vnd.openxmlformats-officedocument.")
                || sub.starts_with("vnd.oasis.opendocument.")
                || sub.ends_with("+zip"))
        }
        _ => true,
    }
}

// The fixed layout of a streamed entry (see the module's documentation).
/// Local file header: signature and fixed part, then the name and a ZIP64 extra field of two sizes.
const LOCAL_HEADER: u64 = 30 + 20;
/// Data descriptor: signature, CRC-32, two 8-byte sizes.
const DESCRIPTOR: u64 = 4 + 4 + 8 + 8;
/// Central directory header: fixed part, then the name and a ZIP64 extra field of sizes and offset.
const CENTRAL_HEADER: u64 = 46 + 28;
/// ZIP64 end of central directory record and locator, end of central directory record.
const END_RECORDS: u64 = 56 + 20 + 22;
/// An archive without entries: the end of central directory record only.
const EMPTY_ARCHIVE: u64 = 22;

/// The exact length of the archive when no entry is deflated (`None` otherwise: a deflated size
/// is known only once written).
pub fn stored_length(entries: &[Entry]) -> Option<u64> {
    if entries.iter().any(|e| e.compress) {
        return None;
    }
    if entries.is_empty() {
        return Some(EMPTY_ARCHIVE);
    }
    let per_entry: u64 =
        entries.iter().map(|e| LOCAL_HEADER + DESCRIPTOR + CENTRAL_HEADER + 2 * e.name.len() as u64 + e.size).sum();
    Some(per_entry + END_RECORDS)
}

/// The archive as a stream of chunks of at most [`CHUNK`] bytes, built while it is consumed.
///
/// `open(i)` is called for entry `i` only when the consumer has taken every byte before it, and
/// gives the entry's bytes as a stream of chunks (a blob's body; an `AsyncRead` through
/// `tokio_util::io::ReaderStream`), which must yield exactly `entries[i].size` bytes or the
/// archive fails with an error item. After an error item the stream ends. Dropping the stream
/// drops the current source at once: nothing runs in the background.
pub fn zip_stream<F, Fut, S>(entries: Vec<Entry>, open: F) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static
where
    F: FnMut(usize) -> Fut + Send + 'static,
    Fut: Future<Output = io::Result<S>> + Send + 'static,
    S: Stream<Item = io::Result<Bytes>> + Send + Unpin + 'static,
{
    let out = Arc::new(Mutex::new(BytesMut::new()));
    let sink = Sink { out: out.clone() };
    ZipStream { out, writer: Some(Box::pin(write_archive(entries, open, sink))) }
}

async fn write_archive<F, Fut, S>(entries: Vec<Entry>, mut open: F, sink: Sink) -> io::Result<()>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = io::Result<S>>,
    S: Stream<Item = io::Result<Bytes>> + Unpin,
{
    let mut zip = ZipFileWriter::new(sink);
    for (i, entry) in entries.iter().enumerate() {
        // Everything before this entry reaches the consumer before its source is opened.
        zip.inner_mut().flush().await?;
        let mut source = open(i).await?;
        let compression = if entry.compress { Compression::Deflate } else { Compression::Stored };
        let options = ZipEntryBuilder::new(entry.name.clone().into(), compression)
            .last_modification_date(dos_date(entry.modified_ms))
            .unix_permissions(0o100644);
        let mut writer = zip.write_entry_stream(options).await.map_err(zip_error)?;
        let mut left = entry.size;
        while let Some(chunk) = source.next().await {
            let chunk = chunk?;
            left = left.checked_sub(chunk.len() as u64).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, format!("entry {i} is longer than {} bytes", entry.size))
            })?;
            writer.write_all(&chunk).await?;
        }
        if left > 0 {
            let msg = format!("entry {i} ended {left} bytes short of {} bytes", entry.size);
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, msg));
        }
        drop(source);
        writer.close().await.map_err(zip_error)?;
    }
    zip.close().await.map_err(zip_error)?;
    Ok(())
}

fn zip_error(e: async_zip::error::ZipError) -> io::Error {
    io::Error::other(e)
}

/// Unix milliseconds as an MS-DOS date and time (UTC), clamped to what the format can hold.
fn dos_date(ms: i64) -> async_zip::ZipDateTime {
    let at =
        ::time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).unwrap_or(::time::OffsetDateTime::UNIX_EPOCH);
    let builder = ZipDateTimeBuilder::new();
    let builder = match at.year() {
        ..1980 => builder.year(1980).month(1).day(1),
        2108.. => builder.year(2107).month(12).day(31).hour(23).minute(59).second(58),
        year => builder
            .year(year)
            .month(u8::from(at.month()).into())
            .day(at.day().into())
            .hour(at.hour().into())
            .minute(at.minute().into())
            .second(at.second().into()),
    };
    builder.build()
}

/// Where the archive writer puts its bytes: one buffer of at most [`CHUNK`] bytes, which the
/// stream hands out. A write into a full buffer (and a flush of a non-empty one) waits until the
/// stream has handed it out.
struct Sink {
    out: Arc<Mutex<BytesMut>>,
}

impl futures::io::AsyncWrite for Sink {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        let room = CHUNK - out.len();
        if room == 0 {
            // The stream yields the full buffer and polls the writer again; waking is for safety.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let n = room.min(buf.len());
        let len = out.len();
        if out.capacity() < CHUNK {
            out.reserve(CHUNK - len);
        }
        out.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.out.lock().unwrap_or_else(PoisonError::into_inner).is_empty() {
            Poll::Ready(Ok(()))
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

type Writer = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

/// Drives the archive writer when polled, and yields what it wrote.
struct ZipStream {
    out: Arc<Mutex<BytesMut>>,
    /// `None` once the archive is written (or failed).
    writer: Option<Writer>,
}

impl ZipStream {
    fn take_out(&self) -> Option<Bytes> {
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        (!out.is_empty()).then(|| out.split().freeze())
    }
}

impl Stream for ZipStream {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(writer) = self.writer.as_mut() else {
            return Poll::Ready(self.take_out().map(Ok));
        };
        match writer.as_mut().poll(cx) {
            // The writer waits for the buffer to be handed out, or for its source.
            Poll::Pending => match self.take_out() {
                Some(chunk) => Poll::Ready(Some(Ok(chunk))),
                None => Poll::Pending,
            },
            Poll::Ready(Ok(())) => {
                self.writer = None;
                Poll::Ready(self.take_out().map(Ok))
            }
            Poll::Ready(Err(e)) => {
                self.writer = None;
                self.out.lock().unwrap_or_else(PoisonError::into_inner).clear();
                Poll::Ready(Some(Err(e)))
            }
        }
    }
}

#[cfg(test)]
mod tests;
