//! Resumable uploads (tus 1.0.0, SPEC §12): the engine shared by every route family that speaks
//! the protocol (`/api/v3/uploads/` for signed-in users; a file request's `/upload/{uuid}/tus/`).
//! It keeps the offsets and the bytes; who may create or see an upload is the caller's [`Scope`],
//! and what a complete upload becomes is the caller's too: it takes the assembled file with
//! [`assemble`] (a [`Received`] of the one upload pipeline, checked and stored as any upload is),
//! then calls [`finished`] or [`discard`].
//!
//! Offsets are durable and shared by every instance: one row per upload (`store::uploads`), and
//! the bytes where every instance reads them.
//!
//! - Local storage: a part file `uploads/{id}/data` under the blob root. A PATCH collects up to
//!   [`FLUSH_BYTES`] and hands them to a flush task while the next bytes arrive (one flush in
//!   flight per PATCH). The flush, holding an exclusive lock on the file (`flock`, released by
//!   the kernel if the process dies), checks that the row's offset is still the one it writes
//!   at, writes there and advances the offset with a compare-and-set. The bytes are written before the
//!   offset moves, so a process that crashes or is killed loses nothing it acknowledged (the
//!   kernel holds them); like every blob Vitrine writes, they are not fsynced (an fsync per
//!   flush bound a resumable upload to the disk's synchronous write speed, a third of a plain
//!   upload's: `bench/tus_upload.sh`), so a power cut may lose the latest bytes of an upload, as
//!   it may lose a file that was just uploaded. The instance that receives the bytes also hashes
//!   them as they arrive ([`Digests`]), so that completing the upload need not read the whole file
//!   again; an instance that did not see every byte in order reads it once. A second writer at the same
//!   offset finds the offset moved and gets 409; a writer whose client vanished stops at its
//!   next flush. On completion the file is moved into place (no copy).
//! - S3: a multipart upload to `uploads/{id}/data`, created with the upload. Parts are at least
//!   5 MiB (larger for uploads that would need more than 10 000), put by the PATCH holding the
//!   upload's lease (a row column renewed at each part, so two writers never put the same part
//!   number; a lease of a crashed instance runs out after [`LEASE_MS`]). Bytes after the last
//!   whole part are acknowledged by writing them to a small object `uploads/{id}/tail-{uuid}`
//!   (every instance reads it back and prepends it to the next part), so an offset is never
//!   acknowledged for bytes held in one instance's memory. The last part may be short; on
//!   completion the parts are assembled, and the object is read once into the pipeline.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::domain::assets::{CompletedUpload, sanitize_file_name};
use crate::domain::uploads::{Scope, Upload, UploadState, data_key, prefix};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::service::uploads::{Received, Rules};
use crate::store::uploads::{PartRecord, S3Ack};

/// Local storage: bytes buffered by a PATCH before they are written and acknowledged.
pub const FLUSH_BYTES: usize = 4 * 1024 * 1024;
/// Uploads whose running hash one instance keeps at most ([`Digests`]); beyond that, new uploads
/// are hashed when they complete.
const MAX_DIGESTS: usize = 10_000;

/// Local storage: the SHA-256 of each upload's acknowledged bytes as this instance wrote them, by
/// upload id, with the offset it covers. A flush at offset `at` continues the hash only if it
/// covers exactly `0..at` (this instance wrote every earlier byte, in order); otherwise the upload
/// is dropped from here and hashed when it completes, by reading its file once (the one upload
/// pipeline). Nothing here is shared: it only spares a read, never decides anything, so another
/// instance or a restart just takes the slower path.
#[derive(Default)]
pub struct Digests(Mutex<HashMap<String, (u64, Sha256)>>);

impl Digests {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, Sha256)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The running hash of `id` if it covers exactly `0..at` (a new one at 0), taken out while
    /// the flush writes.
    fn take(&self, id: &str, at: u64) -> Option<Sha256> {
        match self.map().remove(id) {
            Some((covered, h)) if covered == at => Some(h),
            _ if at == 0 => Some(Sha256::new()),
            _ => None,
        }
    }

    /// Puts back the hash of `id`, now covering `0..covered`.
    fn put(&self, id: &str, covered: u64, h: Sha256) {
        let mut map = self.map();
        if map.len() < MAX_DIGESTS {
            map.insert(id.to_string(), (covered, h));
        }
    }

    /// The hex SHA-256 of all `length` bytes of `id`, if this instance hashed them all; forgets it.
    fn finished(&self, id: &str, length: u64) -> Option<String> {
        match self.map().remove(id) {
            Some((covered, h)) if covered == length => Some(hex::encode(h.finalize())),
            _ => None,
        }
    }

    fn forget(&self, id: &str) {
        self.map().remove(id);
    }
}
/// S3: the smallest part (S3's minimum for every part but the last).
pub const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;
/// S3: parts a multipart upload may have.
const MAX_PARTS: u64 = 10_000;
/// S3: how long a writer's lease lasts without a part being put.
pub const LEASE_MS: i64 = 30_000;
/// A completion cut off (crash) this long ago may be taken over.
const STALE_FINISH_MS: i64 = 10 * 60 * 1000;

/// A new upload, as the route family decided it may be created.
pub struct Creation {
    /// Who may see and continue it.
    pub scope: Scope,
    /// Whose asset it becomes.
    pub owner_id: i64,
    /// `Upload-Length`.
    pub length: u64,
    /// The decoded `Upload-Metadata`.
    pub metadata: BTreeMap<String, String>,
    /// The largest length accepted (413 beyond).
    pub max_bytes: u64,
    /// Unfinished uploads the scope may have at once (429 beyond).
    pub max_open: u32,
}

/// Where an upload stands after a PATCH.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// The acknowledged offset.
    pub offset: u64,
    /// Whether the last byte has arrived.
    pub complete: bool,
    /// When the upload expires (`Upload-Expires`), unix ms.
    pub expires_at: i64,
}

fn expiry(state: &AppState, now: i64) -> i64 {
    now + state.config.upload_expiry_hours as i64 * 3_600_000
}

fn offset_mismatch(expected: i64) -> AppError {
    AppError::Conflict {
        code: ErrorCode::OffsetMismatch,
        message: format!(
            "Upload-Offset is not the upload's current offset ({expected}); ask with HEAD and resume there"
        ),
    }
}

fn busy() -> AppError {
    AppError::Conflict {
        code: ErrorCode::UploadBusy,
        message: "another request is writing to this upload; try again when it has ended".into(),
    }
}

fn part_size(length: u64) -> u64 {
    let needed = length.div_ceil(MAX_PARTS - 1);
    needed.max(MIN_PART_BYTES).div_ceil(1024 * 1024) * 1024 * 1024
}

/// Creates an upload: 413 over `max_bytes`, 400 for an empty one, 429 when the scope has
/// `max_open` unfinished uploads already.
pub async fn create(state: &AppState, c: Creation) -> AppResult<Upload> {
    if c.length > c.max_bytes {
        crate::service::uploads::count("too_large");
        return Err(AppError::TooLarge { limit: c.max_bytes });
    }
    if c.length == 0 {
        return Err(AppError::validation("Upload-Length", "an empty file cannot be uploaded"));
    }
    let now = state.clock.now_ms();
    let scope = c.scope.key();
    if state.store.count_open_uploads(&scope, now).await? >= i64::from(c.max_open) {
        return Err(AppError::RateLimited { retry_after_secs: 60 });
    }
    let id = uuid::Uuid::new_v4().to_string();
    let key = data_key(&id);
    let multipart_id = state.blobs.create_multipart(&key).await?;
    let up = Upload {
        id,
        scope,
        owner_id: c.owner_id,
        length: c.length as i64,
        offset: 0,
        metadata: c.metadata,
        data_key: key,
        part_size: part_size(c.length) as i64,
        multipart_id,
        parts_bytes: 0,
        tail_key: None,
        tail_len: 0,
        state: UploadState::Open,
        result: None,
        created_at: now,
        updated_at: now,
        expires_at: expiry(state, now),
    };
    // The count above spares a refused creation its multipart upload; this one is exact (count
    // and insert in one step), so concurrent creations never pass the limit.
    let inserted = state.store.insert_upload(&up, i64::from(c.max_open)).await;
    if !matches!(inserted, Ok(true)) {
        if let Some(m) = &up.multipart_id {
            let _ = state.blobs.abort_multipart(&up.data_key, m).await;
        }
        return Err(match inserted {
            Err(e) => e.into(),
            Ok(_) => AppError::RateLimited { retry_after_secs: 60 },
        });
    }
    tracing::info!(upload = %up.id, scope = %up.scope, length = up.length, "resumable upload created");
    Ok(up)
}

/// The upload `id` if `scope` may see it and it has not expired; 404 otherwise (another scope's
/// uploads are not revealed).
pub async fn find(state: &AppState, scope: &Scope, id: &str) -> AppResult<Upload> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(AppError::NotFound("upload"));
    }
    match state.store.upload(id).await? {
        Some(u) if u.scope == scope.key() && u.expires_at > state.clock.now_ms() => Ok(u),
        _ => Err(AppError::NotFound("upload")),
    }
}

/// Appends `body` at `offset` (which must be the upload's offset: 409 otherwise), acknowledging
/// as it goes; the bytes acknowledged stay even if the body breaks off. 413 for bytes beyond
/// `Upload-Length`.
pub async fn append<S, E>(state: &AppState, up: &Upload, offset: u64, body: S) -> AppResult<Progress>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
    E: Display,
{
    if up.state != UploadState::Open {
        if up.offset as u64 == offset {
            return Ok(Progress { offset, complete: true, expires_at: up.expires_at });
        }
        return Err(offset_mismatch(up.offset));
    }
    if up.offset as u64 != offset {
        return Err(offset_mismatch(up.offset));
    }
    let acked = if up.multipart_id.is_some() {
        append_s3(state, up, offset, body).await?
    } else {
        append_local(state, up, offset, body).await?
    };
    Ok(Progress { offset: acked, complete: acked == up.length as u64, expires_at: expiry(state, state.clock.now_ms()) })
}

/// Why a body stopped: broken off, or longer than the upload.
enum Stop {
    Broken(String),
    TooLong,
}

impl Stop {
    fn error(self, up: &Upload) -> AppError {
        match self {
            Stop::TooLong => AppError::TooLarge { limit: up.length as u64 },
            Stop::Broken(why) => {
                AppError::bad_request(ErrorCode::InvalidBody, format!("the upload was interrupted: {why}"))
            }
        }
    }
}

async fn append_local<S, E>(state: &AppState, up: &Upload, start: u64, mut body: S) -> AppResult<u64>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
    E: Display,
{
    let path =
        state.blobs.local_path(&up.data_key).ok_or_else(|| AppError::internal(anyhow::anyhow!("no local root")))?;
    let file = tokio::task::spawn_blocking(move || open_part_file(&path))
        .await
        .map_err(AppError::internal)?
        .map_err(AppError::internal)?;
    let file = Arc::new(file);
    let length = up.length as u64;
    // Bytes are hashed as they arrive (this instance wrote every earlier byte: see `Digests`)
    // and written by one flush in flight while the next ones arrive.
    let mut hasher = state.digests.take(&up.id, start);
    let mut flushing: Option<tokio::task::JoinHandle<AppResult<u64>>> = None;
    let mut acked = start;
    let mut received = start;
    let mut buf: Vec<Bytes> = Vec::new();
    let mut buffered = 0usize;
    let stop = loop {
        match body.next().await {
            Some(Ok(chunk)) => {
                if received + chunk.len() as u64 > length {
                    break Some(Stop::TooLong);
                }
                received += chunk.len() as u64;
                if let Some(h) = hasher.as_mut() {
                    h.update(&chunk);
                }
                buffered += chunk.len();
                buf.push(chunk);
                if buffered >= FLUSH_BYTES {
                    if let Some(f) = flushing.take() {
                        acked = joined(f).await?;
                    }
                    let bytes = std::mem::take(&mut buf);
                    buffered = 0;
                    flushing =
                        Some(tokio::spawn(flush_local(state.clone(), up.id.clone(), file.clone(), acked, bytes)));
                }
            }
            Some(Err(e)) => break Some(Stop::Broken(e.to_string())),
            None => break None,
        }
    };
    if let Some(f) = flushing.take() {
        match joined(f).await {
            Ok(n) => acked = n,
            Err(e) => return Err(e),
        }
    }
    // What arrived before a break is kept (tus: store as much as possible).
    if !buf.is_empty() {
        match flush_local(state.clone(), up.id.clone(), file.clone(), acked, buf).await {
            Ok(n) => acked = n,
            Err(e) if stop.is_none() => return Err(e),
            Err(_) => {}
        }
    }
    if let Some(h) = hasher
        && acked == received
    {
        state.digests.put(&up.id, acked, h);
    }
    match stop {
        Some(s) => Err(s.error(up)),
        None => Ok(acked),
    }
}

/// The offset a flush task acknowledged.
async fn joined(f: tokio::task::JoinHandle<AppResult<u64>>) -> AppResult<u64> {
    f.await.map_err(AppError::internal)?
}

/// Opens (creating it and its directory) an upload's part file for writing at offsets.
fn open_part_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        std::fs::create_dir_all(dir)?;
        // The new directory entry is durable before any offset is acknowledged.
        if let Some(up) = dir.parent() {
            std::fs::File::open(up)?.sync_all()?;
        }
    }
    std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)
}

/// Writes `chunks` at `at` in the part file of upload `id` and advances the offset from `at`,
/// holding the file's lock (so no other writer, on any instance sharing the storage, writes
/// meanwhile). A task of its own: it finishes (and acknowledges) even if the request that
/// started it is gone.
async fn flush_local(
    state: AppState,
    id: String,
    file: Arc<std::fs::File>,
    at: u64,
    chunks: Vec<Bytes>,
) -> AppResult<u64> {
    let f = file.clone();
    tokio::task::spawn_blocking(move || f.lock()).await.map_err(AppError::internal)?.map_err(AppError::internal)?;
    let done = async {
        match state.store.upload(&id).await? {
            Some(u) if u.state == UploadState::Open && u.offset as u64 == at => {}
            Some(u) => return Err(offset_mismatch(u.offset)),
            None => return Err(AppError::NotFound("upload")),
        }
        let f = file.clone();
        let n = tokio::task::spawn_blocking(move || {
            let mut pos = at;
            for c in &chunks {
                f.write_all_at(c, pos)?;
                pos += c.len() as u64;
            }
            Ok::<_, std::io::Error>(pos - at)
        })
        .await
        .map_err(AppError::internal)?
        .map_err(AppError::internal)?;
        let now = state.clock.now_ms();
        if !state.store.ack_upload(&id, at as i64, (at + n) as i64, now, expiry(&state, now)).await? {
            return Err(busy());
        }
        Ok(at + n)
    };
    let result = done.await;
    let f = file.clone();
    let _ = tokio::task::spawn_blocking(move || f.unlock()).await;
    result
}

/// One S3 writer's view of the upload while it holds the lease.
struct S3Writer<'a> {
    state: &'a AppState,
    up: &'a Upload,
    writer: String,
    multipart: String,
    /// Bytes held by the recorded parts.
    base: u64,
    /// The next part's index.
    idx: usize,
    /// The acknowledged offset.
    acked: u64,
    /// The tail object holding the acknowledged bytes after the parts.
    tail: Option<String>,
}

async fn append_s3<S, E>(state: &AppState, up: &Upload, start: u64, body: S) -> AppResult<u64>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
    E: Display,
{
    let writer = uuid::Uuid::new_v4().to_string();
    let now = state.clock.now_ms();
    if !state.store.lease_upload(&up.id, &writer, start as i64, now, now + LEASE_MS).await? {
        return match state.store.upload(&up.id).await? {
            Some(u) if u.offset as u64 != start => Err(offset_mismatch(u.offset)),
            Some(_) => Err(busy()),
            None => Err(AppError::NotFound("upload")),
        };
    }
    let result = append_s3_leased(state, up, &writer, start, body).await;
    if let Err(e) = state.store.release_upload(&up.id, &writer).await {
        tracing::warn!(error = %e, upload = %up.id, "could not release an upload's lease; it runs out by itself");
    }
    result
}

async fn append_s3_leased<S, E>(state: &AppState, up: &Upload, writer: &str, start: u64, mut body: S) -> AppResult<u64>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
    E: Display,
{
    // The row as the lease found it (the caller's copy may be older than the lease).
    let up = &state.store.upload(&up.id).await?.ok_or(AppError::NotFound("upload"))?;
    let multipart = up.multipart_id.clone().ok_or_else(|| AppError::internal(anyhow::anyhow!("no multipart id")))?;
    let parts = state.store.upload_parts(&up.id).await?;
    let mut w = S3Writer {
        state,
        up,
        writer: writer.to_string(),
        multipart,
        base: up.parts_bytes as u64,
        idx: parts.len(),
        acked: start,
        tail: up.tail_key.clone(),
    };
    let mut buf: Vec<u8> = match &up.tail_key {
        Some(k) => state.blobs.get_bytes(k).await?.to_vec(),
        None => Vec::new(),
    };
    if w.base + buf.len() as u64 != start {
        return Err(AppError::internal(anyhow::anyhow!("upload {}: the tail does not end at the offset", up.id)));
    }
    let part_size = up.part_size as u64;
    let length = up.length as u64;
    let stop = loop {
        match body.next().await {
            Some(Ok(chunk)) => {
                if w.base + (buf.len() + chunk.len()) as u64 > length {
                    break Some(Stop::TooLong);
                }
                buf.extend_from_slice(&chunk);
                while buf.len() as u64 >= part_size {
                    let rest = buf.split_off(part_size as usize);
                    let part = std::mem::replace(&mut buf, rest);
                    w.put_part(part).await?;
                }
            }
            Some(Err(e)) => break Some(Stop::Broken(e.to_string())),
            None => break None,
        }
    };
    let saved = w.save(buf).await;
    match (stop, saved) {
        (Some(s), _) => Err(s.error(up)),
        (None, Err(e)) => Err(e),
        (None, Ok(())) => Ok(w.acked),
    }
}

impl S3Writer<'_> {
    /// Puts `bytes` as the next part and acknowledges them (the tail they started with included).
    async fn put_part(&mut self, bytes: Vec<u8>) -> AppResult<()> {
        let (state, id) = (self.state, &self.up.id);
        let now = state.clock.now_ms();
        // Renewing the lease also checks it is still ours before a part number is written.
        if !state.store.lease_upload(id, &self.writer, self.acked as i64, now, now + LEASE_MS).await? {
            return Err(busy());
        }
        let size = bytes.len() as u64;
        let etag = state.blobs.put_part(&self.up.data_key, &self.multipart, self.idx, Bytes::from(bytes)).await?;
        let to = self.base + size;
        let ack = S3Ack { part: Some(PartRecord { idx: self.idx as i64, size: size as i64, etag }), tail: None };
        let now = state.clock.now_ms();
        if !state
            .store
            .ack_upload_s3(id, &self.writer, self.acked as i64, to as i64, &ack, now, expiry(state, now))
            .await?
        {
            return Err(busy());
        }
        self.drop_tail().await;
        self.base = to;
        self.idx += 1;
        self.acked = to;
        Ok(())
    }

    /// Acknowledges the bytes left after the last whole part: the last part of the upload, or a
    /// new tail object.
    async fn save(&mut self, buf: Vec<u8>) -> AppResult<()> {
        let end = self.base + buf.len() as u64;
        if buf.is_empty() || end == self.acked {
            return Ok(());
        }
        if end == self.up.length as u64 {
            return self.put_part(buf).await;
        }
        let state = self.state;
        let key = format!("{}/tail-{}", prefix(&self.up.id), uuid::Uuid::new_v4());
        let len = buf.len() as i64;
        state.blobs.put_bytes(&key, Bytes::from(buf), "application/octet-stream").await?;
        let ack = S3Ack { part: None, tail: Some((&key, len)) };
        let now = state.clock.now_ms();
        let ok = state
            .store
            .ack_upload_s3(&self.up.id, &self.writer, self.acked as i64, end as i64, &ack, now, expiry(state, now))
            .await;
        if !matches!(ok, Ok(true)) {
            let _ = state.blobs.delete(&key).await;
            return Err(ok.err().map(AppError::from).unwrap_or_else(busy));
        }
        self.drop_tail().await;
        self.tail = Some(key);
        self.acked = end;
        Ok(())
    }

    /// Removes the tail object the last acknowledgement replaced.
    async fn drop_tail(&mut self) {
        if let Some(old) = self.tail.take()
            && let Err(e) = self.state.blobs.delete(&old).await
        {
            tracing::warn!(error = %e, key = %old, "could not remove an upload's old tail; the expiry job will");
        }
    }
}

/// A complete upload's file, taken into the one upload pipeline under `rules` (the S3 parts are
/// assembled first). 409 while another request completes it. Follow with the target's checks and
/// commit (`service::uploads::check`, `Checked::store`), then [`finished`] — or [`discard`].
pub async fn assemble(state: &AppState, up: &Upload, rules: &Rules<'_>) -> AppResult<Received> {
    let now = state.clock.now_ms();
    if !state.store.claim_upload_finish(&up.id, now, now - STALE_FINISH_MS).await? {
        return Err(busy());
    }
    if let Some(multipart) = &up.multipart_id {
        let parts = state.store.upload_parts(&up.id).await?;
        let whole = parts.iter().enumerate().all(|(i, p)| p.idx == i as i64)
            && parts.iter().map(|p| p.size).sum::<i64>() == up.length;
        let done = match state.blobs.head(&up.data_key).await {
            Ok(m) => m.size == up.length as u64,
            Err(_) => false,
        };
        if !done {
            if !whole {
                return Err(AppError::internal(anyhow::anyhow!("upload {}: its parts do not make the file", up.id)));
            }
            state
                .blobs
                .complete_multipart(&up.data_key, multipart, parts.into_iter().map(|p| p.etag).collect())
                .await?;
        }
        if let Some(t) = &up.tail_key {
            let _ = state.blobs.delete(t).await;
        }
    } else if let Some(path) = state.blobs.local_path(&up.data_key) {
        let length = up.length as u64;
        let digest = state.digests.finished(&up.id, length);
        tokio::task::spawn_blocking(move || {
            let f = std::fs::OpenOptions::new().write(true).open(path)?;
            if f.metadata()?.len() != length {
                f.set_len(length)?;
                f.sync_all()?;
            }
            Ok::<_, std::io::Error>(())
        })
        .await
        .map_err(AppError::internal)?
        .map_err(AppError::internal)?;
        if let Some(sha256) = digest {
            let name = sanitize_file_name(up.metadata.get("filename").map(String::as_str).unwrap_or("file"));
            return Received::adopt_hashed(state, &up.data_key, name, rules, length, sha256).await;
        }
    }
    let name = sanitize_file_name(up.metadata.get("filename").map(String::as_str).unwrap_or("file"));
    Received::adopt(state, &up.data_key, name, rules).await
}

/// The upload became a file: its row, marked `done` with the asset ([`completion`]), is kept until
/// it expires so that a later HEAD tells it; its bytes go now.
pub async fn finished(state: &AppState, up: &Upload) {
    remove_bytes(state, up, false).await;
}

/// How `up` is marked done in the transaction that stores its asset (`names_asset`: its result
/// names the asset).
pub fn completion(state: &AppState, up: &Upload, names_asset: bool) -> CompletedUpload {
    CompletedUpload { id: up.id.clone(), expires_at: expiry(state, state.clock.now_ms()), names_asset }
}

/// The answer when the upload became a file (or was removed) through another request meanwhile.
pub fn completed_elsewhere() -> AppError {
    AppError::Conflict {
        code: ErrorCode::UploadBusy,
        message: "this upload was completed or removed by another request meanwhile; ask with HEAD".into(),
    }
}

/// Removes an upload: its row, then its bytes (parts, tail, part file; an S3 multipart upload is
/// aborted). Termination, refused content and expiry all end here.
pub async fn discard(state: &AppState, up: &Upload) -> AppResult<()> {
    let removed = state.store.delete_upload(&up.id).await?;
    // A file request's upload holds a reservation of one file and `Upload-Length` bytes from its
    // creation until it becomes a file: whoever removes the row gives it back, once.
    if removed
        && up.state != UploadState::Done
        && let Some(uuid) = up.scope.strip_prefix(FILE_REQUEST_SCOPE)
        && let Err(e) = state.store.refund_upload_by_uuid(uuid, up.length).await
    {
        tracing::error!(error = %e, upload = %up.id, "could not refund a file request upload's reservation");
    }
    remove_bytes(state, up, up.state != UploadState::Done).await;
    tracing::info!(upload = %up.id, "resumable upload removed");
    Ok(())
}

/// The prefix of a file request's upload scope (`Scope::FileRequest`).
const FILE_REQUEST_SCOPE: &str = "file_request:";

async fn remove_bytes(state: &AppState, up: &Upload, abort: bool) {
    state.digests.forget(&up.id);
    if abort
        && let Some(m) = &up.multipart_id
        && let Err(e) = state.blobs.abort_multipart(&up.data_key, m).await
    {
        tracing::warn!(error = %e, upload = %up.id, "could not abort an upload's multipart upload");
    }
    match state.blobs.local_path(&prefix(&up.id)) {
        Some(dir) => {
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
        }
        None => match state.blobs.list(&prefix(&up.id)).await {
            Ok(objects) => {
                for m in objects {
                    let _ = state.blobs.delete(m.location.as_ref()).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, upload = %up.id, "could not list an upload's objects"),
        },
    }
}

/// The expiry job's round: removes up to `limit` uploads past their expiry (unfinished ones with
/// their bytes; finished ones' rows). Returns how many.
pub async fn remove_expired(state: &AppState, limit: i64) -> anyhow::Result<usize> {
    let expired = state.store.expired_uploads(state.clock.now_ms(), limit).await?;
    let n = expired.len();
    for up in expired {
        discard(state, &up).await?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_at_least_5_mib_and_never_more_than_s3_allows() {
        assert_eq!(part_size(1), MIN_PART_BYTES);
        assert_eq!(part_size(2 << 30), MIN_PART_BYTES);
        let big = 5u64 << 40;
        assert!(big.div_ceil(part_size(big)) <= MAX_PARTS);
    }
}
