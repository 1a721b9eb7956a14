//! `BlobStore`: file bytes in object_store (local filesystem or S3), content-hash keys under
//! per-owner prefixes, uploads through temporary keys, signed download URLs.

mod reader;
pub mod token;

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::local::LocalFileSystem;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::signer::{SignedUrlOptions, Signer};
use object_store::{
    Attribute, Attributes, GetOptions, GetRange, GetResultPayload, ObjectMeta, ObjectStore, ObjectStoreExt,
    PutMultipartOptions, PutPayload, WriteMultipart,
};

pub use reader::BlobReader;
pub use token::{Disposition, Grant, Owner, TokenError};

use crate::config::{Config, StorageKind};
use crate::domain::time::Clock;

/// Temporary keys live here until their upload is validated and committed.
pub const TMP_PREFIX: &str = "tmp";

#[derive(Clone)]
enum Backend {
    Local { root: PathBuf },
    S3 { s3: Arc<AmazonS3> },
}

/// Where a signed download leads.
pub enum Download {
    /// Stream it ourselves (local backend).
    Stream(Grant),
    /// Redirect to this presigned URL (S3).
    Redirect(String),
}

/// File bytes and their signed links. Cloning shares the object store client.
#[derive(Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    backend: Backend,
    hmac_key: Vec<u8>,
    ttl: Duration,
    base_url: String,
    /// The app's clock: expiry of signed links.
    clock: Arc<dyn Clock>,
}

/// A body stream of a blob or a part of it.
pub struct BlobBody {
    pub stream: BoxStream<'static, std::io::Result<Bytes>>,
    pub range: Range<u64>,
    pub total: u64,
}

impl BlobStore {
    pub fn from_config(config: &Config, hmac_key: Vec<u8>, clock: Arc<dyn Clock>) -> anyhow::Result<BlobStore> {
        let ttl = Duration::from_secs(config.download_url_ttl_secs);
        let base_url = config.base_url().to_string();
        match config.storage {
            StorageKind::Local => {
                let root = config.data_dir.join("blobs");
                crate::private_fs::create_dir(&root)
                    .with_context(|| format!("cannot create the blob directory {}", root.display()))?;
                let root = root.canonicalize()?;
                let fs = LocalFileSystem::new_with_prefix(&root)?.with_automatic_cleanup(true);
                Ok(BlobStore { store: Arc::new(fs), backend: Backend::Local { root }, hmac_key, ttl, base_url, clock })
            }
            StorageKind::S3 => {
                let bucket = config.s3_bucket.clone().context("`s3_bucket` is required when storage = \"s3\"")?;
                let mut b = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_region(&config.s3_region)
                    .with_virtual_hosted_style_request(!config.s3_path_style);
                if let Some(ep) = &config.s3_endpoint {
                    b = b.with_endpoint(ep).with_allow_http(ep.starts_with("http://"));
                }
                if let (Some(k), Some(s)) = (&config.s3_access_key, &config.s3_secret_key) {
                    b = b.with_access_key_id(k).with_secret_access_key(s);
                }
                let s3 = Arc::new(b.build().context("invalid S3 settings")?);
                Ok(BlobStore { store: s3.clone(), backend: Backend::S3 { s3 }, hmac_key, ttl, base_url, clock })
            }
        }
    }

    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    pub fn is_local(&self) -> bool {
        matches!(self.backend, Backend::Local { .. })
    }

    /// Root directory of the local backend (for the sweeper of half-written files).
    pub fn local_root(&self) -> Option<&std::path::Path> {
        match &self.backend {
            Backend::Local { root } => Some(root),
            Backend::S3 { .. } => None,
        }
    }

    /// Local backend: the file behind `key` (resumable uploads write their part files there).
    pub fn local_path(&self, key: &str) -> Option<PathBuf> {
        self.local_root().map(|root| root.join(key))
    }

    /// S3: starts a multipart upload to `key` whose parts are put one by one, possibly by
    /// different instances (resumable uploads). `None` on the local backend.
    pub async fn create_multipart(&self, key: &str) -> anyhow::Result<Option<String>> {
        match &self.backend {
            Backend::Local { .. } => Ok(None),
            Backend::S3 { s3 } => Ok(Some(s3.create_multipart(&Path::from(key)).await?)),
        }
    }

    /// S3: puts part `idx` (0-based) of a multipart upload; returns its id (etag).
    pub async fn put_part(&self, key: &str, upload: &str, idx: usize, bytes: Bytes) -> anyhow::Result<String> {
        let Backend::S3 { s3 } = &self.backend else { anyhow::bail!("multipart parts are an S3 matter") };
        let part = s3.put_part(&Path::from(key), &upload.to_string(), idx, PutPayload::from_bytes(bytes)).await?;
        Ok(part.content_id)
    }

    /// S3: assembles a multipart upload from its parts (ids in order, part 0 first).
    pub async fn complete_multipart(&self, key: &str, upload: &str, parts: Vec<String>) -> anyhow::Result<()> {
        let Backend::S3 { s3 } = &self.backend else { anyhow::bail!("multipart parts are an S3 matter") };
        let parts = parts.into_iter().map(|content_id| PartId { content_id }).collect();
        s3.complete_multipart(&Path::from(key), &upload.to_string(), parts).await?;
        Ok(())
    }

    /// S3: aborts a multipart upload (its parts are deleted).
    pub async fn abort_multipart(&self, key: &str, upload: &str) -> anyhow::Result<()> {
        let Backend::S3 { s3 } = &self.backend else { return Ok(()) };
        s3.abort_multipart(&Path::from(key), &upload.to_string()).await?;
        Ok(())
    }

    /// Reads a whole (small) blob into memory.
    pub async fn get_bytes(&self, key: &str) -> anyhow::Result<Bytes> {
        Ok(self.store.get(&Path::from(key)).await?.bytes().await?)
    }

    /// Starts writing a new temporary blob. Parts are small on the local backend (memory stays
    /// flat under many concurrent uploads) and 5 MiB on S3 (its minimum part size).
    pub async fn begin_upload(&self, content_type: Option<&str>) -> anyhow::Result<Upload> {
        let tmp = Path::from(format!("{TMP_PREFIX}/{}", uuid::Uuid::new_v4()));
        let mut attrs = Attributes::new();
        if let Some(ct) = content_type.filter(|_| !self.is_local()) {
            attrs.insert(Attribute::ContentType, ct.to_string().into());
        }
        let opts = PutMultipartOptions { attributes: attrs, ..Default::default() };
        let upload = self.store.put_multipart_opts(&tmp, opts).await?;
        let chunk = if self.is_local() { 512 * 1024 } else { 5 * 1024 * 1024 };
        Ok(Upload { writer: Some(WriteMultipart::new_with_chunk_size(upload, chunk)), key: tmp })
    }

    /// Moves a validated temporary blob to its final key (overwriting identical content).
    pub async fn commit(&self, tmp: &Path, final_key: &str) -> anyhow::Result<()> {
        self.store.rename(tmp, &Path::from(final_key)).await?;
        Ok(())
    }

    pub async fn put_bytes(&self, key: &str, bytes: Bytes, content_type: &str) -> anyhow::Result<()> {
        let mut attrs = Attributes::new();
        // The local filesystem keeps no attributes; S3 serves presigned downloads with them.
        if !self.is_local() {
            attrs.insert(Attribute::ContentType, content_type.to_string().into());
        }
        let opts = object_store::PutOptions { attributes: attrs, ..Default::default() };
        self.store.put_opts(&Path::from(key), PutPayload::from_bytes(bytes), opts).await?;
        Ok(())
    }

    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        match self.store.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn head(&self, key: &str) -> Result<ObjectMeta, object_store::Error> {
        self.store.head(&Path::from(key)).await
    }

    pub async fn list(&self, prefix: &str) -> anyhow::Result<Vec<ObjectMeta>> {
        let mut out = vec![];
        let mut s = self.store.list(Some(&Path::from(prefix)));
        while let Some(m) = s.next().await {
            out.push(m?);
        }
        Ok(out)
    }

    /// A blocking reader of a blob, for format detection and image decoding.
    pub fn reader(&self, key: &Path, size: u64) -> BlobReader {
        BlobReader::new(self.store.clone(), key.clone(), size, tokio::runtime::Handle::current())
    }

    /// Streams `range` (or all) of a blob. Local files are read in large blocks directly.
    pub async fn open(&self, key: &str, range: Option<Range<u64>>) -> Result<BlobBody, object_store::Error> {
        let opts = GetOptions { range: range.clone().map(GetRange::Bounded), ..Default::default() };
        let res = self.store.get_opts(&Path::from(key), opts).await?;
        let total = res.meta.size;
        let got = res.range.clone();
        let stream: BoxStream<'static, std::io::Result<Bytes>> = match res.payload {
            GetResultPayload::File(file, _path) => file_stream(file, got.clone()),
            GetResultPayload::Stream(s) => s.map(|r| r.map_err(std::io::Error::other)).boxed(),
        };
        Ok(BlobBody { stream, range: got, total })
    }

    /// `{public_url}/files/{token}`: valid for the configured TTL.
    pub fn signed_url(&self, grant: Grant) -> String {
        self.signed_url_for(grant, self.ttl)
    }

    /// `{public_url}/files/{token}`: valid for `ttl`.
    pub fn signed_url_for(&self, mut grant: Grant, ttl: Duration) -> String {
        grant.expires = self.now_secs() + ttl.as_secs() as i64;
        format!("{}/files/{}", self.base_url, token::sign(&self.hmac_key, &grant))
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Unix seconds by the app's clock.
    fn now_secs(&self) -> i64 {
        self.clock.now_ms() / 1000
    }

    /// Checks a download token's signature and expiry (not whether its file still exists).
    pub fn verify(&self, token: &str) -> Result<Grant, TokenError> {
        token::verify(&self.hmac_key, token, self.now_secs())
    }

    /// How to deliver a verified grant: streamed here (local), or a presigned URL carrying the
    /// same disposition (S3), valid for what is left of the token's life.
    pub async fn deliver(&self, grant: Grant) -> anyhow::Result<Download> {
        match &self.backend {
            Backend::Local { .. } => Ok(Download::Stream(grant)),
            Backend::S3 { s3 } => {
                let remaining = (grant.expires - self.now_secs()).max(1) as u64;
                let opts = SignedUrlOptions::new().with_query([
                    ("response-content-disposition".to_string(), content_disposition(grant.disposition, &grant.name)),
                    ("response-content-type".to_string(), grant.mime.clone()),
                ]);
                let url = s3
                    .signed_url_opts(
                        http::Method::GET,
                        &Path::from(grant.key.as_str()),
                        Duration::from_secs(remaining),
                        &opts,
                    )
                    .await?;
                Ok(Download::Redirect(url.to_string()))
            }
        }
    }

    /// Bytes free to unprivileged writers on the local backend's filesystem (statvfs); `None`
    /// for S3, whose space is not ours to measure.
    pub async fn free_bytes(&self) -> Option<std::io::Result<u64>> {
        let root = self.local_root()?.to_path_buf();
        let stat = tokio::task::spawn_blocking(move || rustix::fs::statvfs(&root))
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r.map_err(std::io::Error::from));
        Some(stat.map(|s| s.f_bavail.saturating_mul(s.f_frsize)))
    }

    /// Readiness: the store answers a listing.
    pub async fn ping(&self) -> anyhow::Result<()> {
        self.store.list_with_delimiter(Some(&Path::from(TMP_PREFIX))).await?;
        Ok(())
    }
}

/// An upload in progress to a temporary key. Dropping it without `finish` leaves only a
/// temporary object, which the sweeper removes.
pub struct Upload {
    writer: Option<WriteMultipart>,
    pub key: Path,
}

impl Upload {
    pub async fn write(&mut self, bytes: Bytes) -> anyhow::Result<()> {
        if let Some(w) = self.writer.as_mut() {
            // Bound the parts in flight so memory stays flat however fast the client sends.
            w.wait_for_capacity(2).await?;
            w.put(bytes);
        }
        Ok(())
    }

    pub async fn finish(&mut self) -> anyhow::Result<()> {
        if let Some(w) = self.writer.take() {
            w.finish().await?;
        }
        Ok(())
    }

    pub async fn abort(&mut self) {
        if let Some(w) = self.writer.take() {
            let _ = w.abort().await;
        }
    }
}

/// Reads a local file in 256 KiB blocks on the blocking pool.
fn file_stream(file: std::fs::File, range: Range<u64>) -> BoxStream<'static, std::io::Result<Bytes>> {
    use std::io::{Read, Seek, SeekFrom};
    const BLOCK: u64 = 256 * 1024;
    let state = (Some(file), range.start, range.end, false);
    futures::stream::unfold(state, |(file, pos, end, sought)| async move {
        let mut file = file?;
        if pos >= end {
            return None;
        }
        let len = (end - pos).min(BLOCK) as usize;
        let res = tokio::task::spawn_blocking(move || {
            if !sought {
                file.seek(SeekFrom::Start(pos))?;
            }
            let mut buf = vec![0u8; len];
            file.read_exact(&mut buf)?;
            Ok::<_, std::io::Error>((file, buf))
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r);
        match res {
            Ok((file, buf)) => Some((Ok(Bytes::from(buf)), (Some(file), pos + len as u64, end, true))),
            // After an error the stream ends.
            Err(e) => Some((Err(e), (None, end, end, true))),
        }
    })
    .boxed()
}

/// RFC 6266 header value with an ASCII fallback and the UTF-8 name.
pub fn content_disposition(d: Disposition, name: &str) -> String {
    let kind = match d {
        Disposition::Inline => "inline",
        Disposition::Attachment => "attachment",
    };
    let ascii: String =
        name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    // RFC 5987 attr-chars stay as they are; everything else is percent-encoded.
    const ATTR: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'!')
        .remove(b'#')
        .remove(b'$')
        .remove(b'&')
        .remove(b'+')
        .remove(b'-')
        .remove(b'.')
        .remove(b'^')
        .remove(b'_')
        .remove(b'`')
        .remove(b'|')
        .remove(b'~');
    let encoded = percent_encoding::utf8_percent_encode(name, ATTR);
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}
