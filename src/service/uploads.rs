//! The one upload pipeline, for every feature that accepts files (assets, chat, and the uploads to
//! come). While the body streams in ([`Intake`]) each chunk goes to a temporary blob and is hashed,
//! counted against the limit, kept in part for sniffing and, when clamd is configured and the
//! feature scans, passed on to clamd at once; on S3 it is also copied to a local scratch file, so
//! that nothing reads the object back. [`check`] then decides from those bytes what the file is
//! (sniffing, the executable check, the allowed types, the client's claims, the scan verdict) and
//! what it shows (image size and thumbnail, media duration). The feature commits the [`Checked`]
//! file ([`Checked::store`], then its row). Reading the request (multipart) is the edge's
//! (`http::upload`).

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::app::AppState;
use crate::blob::{BlobReader, Upload};
use crate::config::Config;
use crate::domain::assets::MediaType;
use crate::domain::chat::{no_claim, same_mime};
use crate::domain::filetype::{Verdict, classify};
use crate::error::{AppError, AppResult, ErrorCode};

/// Bytes kept from the start of the file for quick checks.
const PREFIX_LEN: usize = 64 * 1024;

/// Counts an upload's outcome (`vitrine_uploads_total{result}`).
pub fn count(result: &'static str) {
    metrics::counter!("vitrine_uploads_total", "result" => result).increment(1);
}

/// Counts an accepted upload and its size.
pub fn accepted(size: u64) {
    count("accepted");
    metrics::histogram!("vitrine_upload_size_bytes").record(size as f64);
}

/// What a feature accepts.
pub struct Rules<'a> {
    /// Largest file in bytes (413 beyond).
    pub max_bytes: u64,
    /// MIME types accepted (415 for others).
    pub allowed: &'a [String],
    /// Which pixel limit images are held to.
    pub pixels: PixelLimit,
    /// Whether the bytes go to clamd (when `clamd_address` is set).
    pub scan: bool,
}

impl Rules<'_> {
    /// Assets: `asset_max_bytes`, `asset_allowed_types`, `image_max_pixels`; not scanned.
    pub fn asset(config: &Config) -> Rules<'_> {
        Rules {
            max_bytes: config.asset_max_bytes,
            allowed: &config.asset_allowed_types,
            pixels: PixelLimit::Asset,
            scan: false,
        }
    }

    /// Chat uploads: `chat_max_bytes`, `chat_allowed_types`, `chat_image_max_pixels`; scanned.
    pub fn chat(config: &Config) -> Rules<'_> {
        Rules {
            max_bytes: config.chat_max_bytes,
            allowed: &config.chat_allowed_types,
            pixels: PixelLimit::Chat,
            scan: true,
        }
    }
}

/// Which pixel limit an image upload is held to.
#[derive(Debug, Clone, Copy)]
pub enum PixelLimit {
    /// Assets: `image_max_pixels`.
    Asset,
    /// Chat uploads (anonymous visitors among them): `chat_image_max_pixels`.
    Chat,
}

/// What the client said about the file (chat's `size` and `mime_type` fields), checked against
/// the bytes. Absent or empty fields claim nothing.
#[derive(Debug, Default)]
pub struct Claims<'a> {
    /// The size in bytes, as sent.
    pub size: Option<&'a str>,
    /// The MIME type; `application/octet-stream` claims nothing.
    pub mime_type: Option<&'a str>,
}

impl Claims<'_> {
    fn verify(&self, size: u64, mime: &str) -> AppResult<()> {
        if let Some(claimed) = self.size.map(str::trim).filter(|s| !s.is_empty()) {
            match claimed.parse::<u64>() {
                Ok(n) if n == size => {}
                Ok(n) => {
                    return Err(AppError::bad_request(
                        ErrorCode::SizeMismatch,
                        format!("the declared size ({n} bytes) is not the size of the file ({size} bytes)"),
                    ));
                }
                Err(_) => return Err(AppError::validation("size", "must be a whole number of bytes")),
            }
        }
        if let Some(declared) = self.mime_type.filter(|m| !no_claim(m))
            && !same_mime(declared, mime)
        {
            return Err(AppError::bad_request(
                ErrorCode::TypeMismatch,
                format!("the file was declared as {} but is {mime}", declared.trim()),
            ));
        }
        Ok(())
    }
}

/// An upload arriving: every chunk is counted, hashed, kept in part, copied to the scratch file
/// (S3), passed to clamd (when scanning) and written to the temporary blob. End it with
/// [`Intake::finish`] or [`Intake::abort`]; if it is dropped instead, the scratch file goes with it
/// and the sweeper removes the temporary blob.
pub struct Intake {
    upload: Upload,
    tally: Tally,
}

/// What every byte of a file goes through as it is read once: the count against the limit, the
/// hash, the prefix kept for sniffing, the scratch copy (S3) and clamd (when scanning).
struct Tally {
    max_bytes: u64,
    size: u64,
    hasher: Sha256,
    prefix: Vec<u8>,
    scratch: Option<(tokio::fs::File, Arc<std::fs::File>)>,
    scan: Option<crate::scan::Session>,
}

impl Tally {
    /// Opens the scratch file (S3) and the clamd session (`rules.scan` with clamd configured).
    async fn begin(state: &AppState, rules: &Rules<'_>) -> AppResult<Tally> {
        let scratch = if state.blobs.is_local() {
            // The checks read the local backend's own file.
            None
        } else {
            let dir = state.config.data_dir.join("tmp");
            let file = tokio::task::spawn_blocking(move || crate::private_fs::scratch_file(&dir))
                .await
                .map_err(AppError::internal)?
                .map_err(AppError::internal)?;
            let writer = tokio::fs::File::from_std(file.try_clone().map_err(AppError::internal)?);
            Some((writer, Arc::new(file)))
        };
        let scan = match &state.scanner {
            Some(scanner) if rules.scan => Some(scanner.session()),
            _ => None,
        };
        Ok(Tally { max_bytes: rules.max_bytes, size: 0, hasher: Sha256::new(), prefix: Vec::new(), scratch, scan })
    }

    /// Takes the next chunk of the file; 413 once it passes the limit.
    async fn take(&mut self, chunk: &Bytes) -> AppResult<()> {
        self.size += chunk.len() as u64;
        if self.size > self.max_bytes {
            count("too_large");
            return Err(AppError::TooLarge { limit: self.max_bytes });
        }
        if self.prefix.len() < PREFIX_LEN {
            let take = (PREFIX_LEN - self.prefix.len()).min(chunk.len());
            self.prefix.extend_from_slice(&chunk[..take]);
        }
        self.hasher.update(chunk);
        if let Some((writer, _)) = &mut self.scratch {
            writer.write_all(chunk).await.map_err(AppError::internal)?;
        }
        // A scan that ended early (clamd away, its error reply) takes no more; its verdict says why.
        if let Some(scan) = &mut self.scan
            && !scan.send(chunk.clone()).await
        {
            tracing::debug!("the virus scan ended before the upload did");
        }
        Ok(())
    }

    /// Flushes the scratch copy.
    async fn flush(&mut self) -> AppResult<()> {
        if let Some((writer, _)) = &mut self.scratch {
            writer.flush().await.map_err(AppError::internal)?;
        }
        Ok(())
    }

    /// The file as received under `key` (the checks read the scratch copy, or the local file).
    fn received(self, state: &AppState, key: Path, name: String) -> Received {
        let source = match self.scratch {
            Some((_, file)) => Source::Scratch { file, size: self.size },
            None => Source::Blob { state: state.clone(), key: key.clone(), size: self.size },
        };
        Received {
            key,
            name,
            size: self.size,
            sha256: hex::encode(self.hasher.finalize()),
            prefix: self.prefix,
            source,
            scan: self.scan,
        }
    }
}

impl Intake {
    /// Opens the temporary blob, the scratch file (S3) and the clamd session (`rules.scan` with
    /// clamd configured).
    pub async fn begin(state: &AppState, rules: &Rules<'_>) -> AppResult<Intake> {
        let tally = Tally::begin(state, rules).await?;
        let upload = state.blobs.begin_upload(None).await?;
        Ok(Intake { upload, tally })
    }

    /// Takes the next chunk of the file; 413 once it passes the limit.
    pub async fn write(&mut self, chunk: Bytes) -> AppResult<()> {
        self.tally.take(&chunk).await?;
        self.upload.write(chunk).await?;
        Ok(())
    }

    /// The whole file has arrived: completes the temporary blob (removed again if that fails).
    pub async fn finish(mut self, state: &AppState, name: String) -> AppResult<Received> {
        let done = async {
            self.upload.finish().await?;
            self.tally.flush().await
        };
        if let Err(e) = done.await {
            self.abort(state).await;
            return Err(e);
        }
        let key = self.upload.key.clone();
        Ok(self.tally.received(state, key, name))
    }

    /// Gives the upload up: the temporary blob is removed (the scratch file and the scan end with it).
    pub async fn abort(mut self, state: &AppState) {
        self.upload.abort().await;
        delete_temporary(state, &self.upload.key).await;
    }
}

async fn delete_temporary(state: &AppState, key: &Path) {
    if let Err(e) = state.blobs.delete(key.as_ref()).await {
        tracing::warn!(error = %e, key = %key, "could not remove a temporary upload; the sweeper will");
    }
}

/// Where the checks read a received file back from, never from S3: the scratch copy, or on the
/// local backend its own file.
#[derive(Clone)]
enum Source {
    Scratch { file: Arc<std::fs::File>, size: u64 },
    Blob { state: AppState, key: Path, size: u64 },
}

impl Source {
    /// A fresh reader at the start of the file (blocking: use it on the blocking pool).
    fn reader(&self) -> FileReader {
        match self {
            Source::Scratch { file, size } => FileReader::Scratch { file: file.clone(), size: *size, pos: 0 },
            Source::Blob { state, key, size } => FileReader::Blob(state.blobs.reader(key, *size)),
        }
    }
}

/// A blocking `Read + Seek` over a received file, each with its own position.
enum FileReader {
    Scratch { file: Arc<std::fs::File>, size: u64, pos: u64 },
    Blob(BlobReader),
}

impl Read for FileReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            FileReader::Scratch { file, size, pos } => {
                let want = buf.len().min(size.saturating_sub(*pos).try_into().unwrap_or(usize::MAX));
                let n = file.read_at(&mut buf[..want], *pos)?;
                *pos += n as u64;
                Ok(n)
            }
            FileReader::Blob(r) => r.read(buf),
        }
    }
}

impl Seek for FileReader {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        match self {
            FileReader::Scratch { size, pos, .. } => {
                let new = match to {
                    SeekFrom::Start(p) => Some(p),
                    SeekFrom::End(d) => size.checked_add_signed(d),
                    SeekFrom::Current(d) => pos.checked_add_signed(d),
                };
                *pos = new.ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start of the file")
                })?;
                Ok(*pos)
            }
            FileReader::Blob(r) => r.seek(to),
        }
    }
}

/// A file that has arrived in a temporary blob and is not checked yet. Dropping it closes the
/// scratch file and ends the scan; [`Received::discard`] also removes the temporary blob.
pub struct Received {
    key: Path,
    name: String,
    size: u64,
    sha256: String,
    prefix: Vec<u8>,
    source: Source,
    scan: Option<crate::scan::Session>,
}

impl Received {
    /// Takes into the pipeline a file already assembled in the blob `key` (a resumable upload):
    /// it is read once, in order, as [`Intake`] reads a streamed one (size limit, hash, prefix,
    /// scratch copy on S3, clamd), and is then checked with [`check`] and committed with
    /// [`Checked::store`] like any other (on local storage the commit moves the file into place).
    /// The blob is removed on a refusal here.
    pub async fn adopt(state: &AppState, key: &str, name: String, rules: &Rules<'_>) -> AppResult<Received> {
        let key = Path::from(key);
        let read = async {
            let mut tally = Tally::begin(state, rules).await?;
            let mut body = state.blobs.open(key.as_ref(), None).await.map_err(AppError::internal)?;
            while let Some(chunk) = body.stream.next().await {
                tally.take(&chunk.map_err(AppError::internal)?).await?;
            }
            tally.flush().await?;
            Ok::<_, AppError>(tally)
        };
        match read.await {
            Ok(tally) => Ok(tally.received(state, key, name)),
            Err(e) => {
                delete_temporary(state, &key).await;
                Err(e)
            }
        }
    }

    /// [`Received::adopt`] for a local file whose SHA-256 is already known (the instance that
    /// wrote a resumable upload hashed it as it went): the bytes are not read again unless clamd
    /// must see them; the size limit and the prefix for sniffing are taken as `adopt` takes them.
    pub async fn adopt_hashed(
        state: &AppState,
        key: &str,
        name: String,
        rules: &Rules<'_>,
        size: u64,
        sha256: String,
    ) -> AppResult<Received> {
        if state.scanner.is_some() && rules.scan {
            return Received::adopt(state, key, name, rules).await;
        }
        let key = Path::from(key);
        let read = async {
            if size > rules.max_bytes {
                count("too_large");
                return Err(AppError::TooLarge { limit: rules.max_bytes });
            }
            let head = 0..size.min(PREFIX_LEN as u64);
            let mut prefix = Vec::with_capacity(head.end as usize);
            if !head.is_empty() {
                let mut body = state.blobs.open(key.as_ref(), Some(head)).await.map_err(AppError::internal)?;
                while let Some(chunk) = body.stream.next().await {
                    prefix.extend_from_slice(&chunk.map_err(AppError::internal)?);
                }
            }
            Ok(prefix)
        };
        match read.await {
            Ok(prefix) => Ok(Received {
                key: key.clone(),
                name,
                size,
                sha256,
                prefix,
                source: Source::Blob { state: state.clone(), key, size },
                scan: None,
            }),
            Err(e) => {
                delete_temporary(state, &key).await;
                Err(e)
            }
        }
    }

    /// Removes the file: it will not be committed.
    pub async fn discard(self, state: &AppState) {
        delete_temporary(state, &self.key).await;
    }
}

/// A file that passed every check, with what its bytes tell, still in its temporary blob.
pub struct Checked {
    key: Path,
    /// The file name the client sent (sanitised).
    pub name: String,
    /// Its length in bytes.
    pub size: u64,
    /// SHA-256 of the bytes, hex: the content-hash key.
    pub sha256: String,
    /// The MIME type decided from the bytes.
    pub mime: String,
    /// An image's width in pixels.
    pub width: Option<i64>,
    /// An image's height in pixels.
    pub height: Option<i64>,
    /// Audio and video: the duration, when the container tells it.
    pub duration_seconds: Option<f64>,
    /// A small preview of an image (bytes, MIME type).
    pub thumbnail: Option<(Bytes, &'static str)>,
}

impl Checked {
    /// Puts the thumbnail (if any) at `thumb_key(ext)` and moves the bytes to `key` (a content-hash
    /// key: identical content is overwritten). Returns the thumbnail's key. Commit the row after.
    pub async fn store(
        &self,
        state: &AppState,
        key: &str,
        thumb_key: impl FnOnce(&str) -> String,
    ) -> AppResult<Option<String>> {
        let mut thumb = None;
        if let Some((bytes, mime)) = &self.thumbnail {
            let k = thumb_key(if *mime == "image/png" { "png" } else { "jpg" });
            state.blobs.put_bytes(&k, bytes.clone(), mime).await?;
            thumb = Some(k);
        }
        state.blobs.commit(&self.key, key).await?;
        Ok(thumb)
    }

    /// Removes the file: it will not be committed.
    pub async fn discard(&self, state: &AppState) {
        delete_temporary(state, &self.key).await;
    }
}

/// Decides what a received file is and what it shows, from the bytes already received (the
/// scratch copy, or the local backend's own file; never read back from S3): empty (400), the type
/// (an executable 422, not allowed 415), the client's `claims` (400), the scan verdict (422
/// infected, 503 clamd unavailable unless `clamd_fail_open`), then the image size and thumbnail
/// (422 too large or corrupt) or the media duration. A refused file is removed.
pub async fn check(state: &AppState, mut rec: Received, rules: &Rules<'_>, claims: &Claims<'_>) -> AppResult<Checked> {
    let examined = examine(state, &mut rec, rules, claims).await;
    let (mime, probed) = match examined {
        Ok(v) => v,
        Err(e) => {
            rec.discard(state).await;
            return Err(e);
        }
    };
    Ok(Checked {
        key: rec.key,
        name: rec.name,
        size: rec.size,
        sha256: rec.sha256,
        mime,
        width: probed.width,
        height: probed.height,
        duration_seconds: probed.duration_seconds,
        thumbnail: probed.thumbnail,
    })
}

async fn examine(
    state: &AppState,
    rec: &mut Received,
    rules: &Rules<'_>,
    claims: &Claims<'_>,
) -> AppResult<(String, Probed)> {
    let mime = inspect(rec, rules.allowed).await?;
    claims.verify(rec.size, &mime)?;
    if let Some(scan) = rec.scan.take() {
        scanned(state, scan).await?;
    }
    let probed = probe(state, &rec.source, &mime, rules.pixels).await?;
    Ok((mime, probed))
}

/// What the bytes are: the MIME type if allowed, else 415/422.
async fn inspect(rec: &Received, allowed: &[String]) -> AppResult<String> {
    if rec.size == 0 {
        count("empty");
        return Err(AppError::validation("file", "the file is empty"));
    }
    let source = rec.source.clone();
    let prefix = rec.prefix.clone();
    let name = rec.name.clone();
    let allowed = allowed.to_vec();
    let verdict = tokio::task::spawn_blocking(move || classify(source.reader(), &prefix, &name, &allowed))
        .await
        .map_err(AppError::internal)?;
    match verdict {
        Verdict::Allowed(mime) => Ok(mime),
        Verdict::Unsupported(mime) => {
            count("unsupported_type");
            Err(AppError::UnsupportedType(format!("files of type {mime} are not accepted")))
        }
        Verdict::Executable(kind) => {
            count("executable");
            Err(AppError::rejected(ErrorCode::ExecutableRefused, format!("executable content is refused ({kind})")))
        }
    }
}

/// clamd's verdict on the bytes it was sent while they arrived.
async fn scanned(state: &AppState, scan: crate::scan::Session) -> AppResult<()> {
    match scan.verdict().await {
        Ok(crate::scan::Verdict::Clean) => Ok(()),
        Ok(crate::scan::Verdict::Infected(name)) => {
            tracing::warn!(signature = %name, "an infected upload was refused");
            metrics::counter!("vitrine_scan_infected_total").increment(1);
            Err(AppError::rejected(
                ErrorCode::Infected,
                format!("the file contains a virus ({name}); it was not stored"),
            ))
        }
        Err(e) if state.config.clamd_fail_open => {
            tracing::warn!(error = %e, "clamd is unreachable; storing the upload unscanned (clamd_fail_open)");
            Ok(())
        }
        Err(e) => {
            tracing::error!(error = %e, "clamd is unreachable; refusing the upload");
            Err(AppError::Unavailable("the virus scanner is unavailable; try again later".into()))
        }
    }
}

/// What the bytes of an accepted file tell.
#[derive(Default)]
struct Probed {
    width: Option<i64>,
    height: Option<i64>,
    duration_seconds: Option<f64>,
    thumbnail: Option<(Bytes, &'static str)>,
}

/// Decodes what is needed of a file of type `mime`: an image too large to decode or that cannot be
/// decoded is refused (422); other kinds never fail. Images are decoded through the shared
/// [`crate::media::Decoder`] (bounded concurrency and memory).
async fn probe(state: &AppState, source: &Source, mime: &str, limit: PixelLimit) -> AppResult<Probed> {
    let mut out = Probed::default();
    match MediaType::from_mime(mime) {
        MediaType::Image => {
            let open = {
                let source = source.clone();
                move || source.reader()
            };
            let (max, setting) = match limit {
                PixelLimit::Asset => (state.config.image_max_pixels, "image_max_pixels"),
                PixelLimit::Chat => {
                    (state.config.chat_image_max_pixels.min(state.config.image_max_pixels), "chat_image_max_pixels")
                }
            };
            match state.decoder.probe(open, max).await {
                Ok(info) => {
                    out.width = Some(info.width as i64);
                    out.height = Some(info.height as i64);
                    out.thumbnail = info.thumbnail.map(|(b, m)| (Bytes::from(b), m));
                }
                Err(crate::media::ImageError::TooLarge { width, height }) => {
                    count("image_too_large");
                    let why = if width as u64 * height as u64 > max {
                        format!("more than the limit of {max} pixels ({setting})")
                    } else {
                        format!(
                            "more than one decode may use (image_decode_max_bytes = {})",
                            state.config.image_decode_max_bytes
                        )
                    };
                    return Err(AppError::rejected(
                        ErrorCode::ImageTooLarge,
                        format!("the image is {width}x{height} pixels, {why}; it was not processed"),
                    ));
                }
                Err(crate::media::ImageError::Corrupt(why)) => {
                    count("corrupt_image");
                    return Err(AppError::rejected(
                        ErrorCode::CorruptImage,
                        format!("the image cannot be decoded: {why}"),
                    ));
                }
            }
        }
        MediaType::Video | MediaType::Audio => {
            let reader = source.clone();
            let m = mime.to_string();
            out.duration_seconds =
                tokio::task::spawn_blocking(move || crate::media::probe_duration(reader.reader(), &m))
                    .await
                    .unwrap_or(None);
        }
        _ => {}
    }
    Ok(out)
}
