//! Resumable uploads (tus 1.0.0, SPEC §12): the row of an upload and the protocol's header values,
//! parsed and printed here without I/O.

use std::collections::BTreeMap;

use base64::Engine;

use crate::domain::assets::{
    AssetMeta, DEFAULT_CONTENT_TYPE, parse_content_type, parse_description, parse_tags, parse_title,
};
use crate::error::{AppError, FieldErrors};

/// The protocol version spoken (`Tus-Resumable`, `Tus-Version`).
pub const TUS_VERSION: &str = "1.0.0";
/// The extensions offered (`Tus-Extension`).
pub const TUS_EXTENSIONS: &str = "creation,creation-with-upload,termination,expiration";
/// The body type of a PATCH (and of a POST carrying the first bytes).
pub const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";
/// Longest `Upload-Metadata` header accepted.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;

/// Who may see and continue an upload, and so which route family it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// `/api/v3/uploads/`: the signed-in user who created it.
    User(i64),
    /// `/upload/{uuid}/tus/`: the uploaders of a file request.
    FileRequest(String),
}

impl Scope {
    /// The value stored in `uploads.scope`.
    pub fn key(&self) -> String {
        match self {
            Scope::User(id) => format!("user:{id}"),
            Scope::FileRequest(uuid) => format!("file_request:{uuid}"),
        }
    }
}

/// Where an upload is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadState {
    /// Receiving bytes.
    Open,
    /// The last byte arrived; its checks are running (or were cut by a crash).
    Finishing,
    /// It became an asset (`Upload::result`).
    Done,
}

impl UploadState {
    pub fn as_str(self) -> &'static str {
        match self {
            UploadState::Open => "open",
            UploadState::Finishing => "finishing",
            UploadState::Done => "done",
        }
    }

    pub fn parse(s: &str) -> UploadState {
        match s {
            "finishing" => UploadState::Finishing,
            "done" => UploadState::Done,
            _ => UploadState::Open,
        }
    }
}

/// One upload's row.
#[derive(Debug, Clone)]
pub struct Upload {
    /// UUIDv4, the last segment of its URL.
    pub id: String,
    /// `Scope::key` of who may see it.
    pub scope: String,
    /// The user whose asset it becomes.
    pub owner_id: i64,
    pub length: i64,
    pub offset: i64,
    /// The decoded `Upload-Metadata`.
    pub metadata: BTreeMap<String, String>,
    /// Where the bytes are assembled (`uploads/{id}/data`).
    pub data_key: String,
    /// S3: the multipart upload behind `data_key`.
    pub multipart_id: Option<String>,
    /// S3: the size of every part but the last.
    pub part_size: i64,
    /// S3: bytes held by the recorded parts.
    pub parts_bytes: i64,
    /// S3: the object holding the bytes after the parts.
    pub tail_key: Option<String>,
    pub tail_len: i64,
    pub state: UploadState,
    /// Once done: the `Vitrine-Asset` value (none for uploads whose result is not shown).
    pub result: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub expires_at: i64,
}

/// `uploads/{id}/data`: where an upload's bytes are assembled.
pub fn data_key(id: &str) -> String {
    format!("{}/data", prefix(id))
}

/// `uploads/{id}`: everything stored for an upload is under it.
pub fn prefix(id: &str) -> String {
    format!("uploads/{id}")
}

/// Parses `Upload-Metadata`: comma-separated `key value` pairs, the value base64 (standard
/// alphabet, padded or not) and here UTF-8; a key may come without a value. Keys are unique,
/// non-empty, without spaces or commas.
pub fn parse_metadata(header: &str) -> Result<BTreeMap<String, String>, String> {
    if header.len() > MAX_METADATA_BYTES {
        return Err(format!("must be at most {MAX_METADATA_BYTES} bytes"));
    }
    let mut out = BTreeMap::new();
    if header.trim().is_empty() {
        return Ok(out);
    }
    for pair in header.split(',') {
        let mut it = pair.trim().split(' ').filter(|s| !s.is_empty());
        let Some(key) = it.next() else { return Err("has an empty pair".into()) };
        if !key.chars().all(|c| c.is_ascii_graphic() && c != ',') {
            return Err(format!("key {key:?} is not a valid metadata key"));
        }
        let value = match it.next() {
            None => String::new(),
            Some(v) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(v)
                    .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(v))
                    .map_err(|_| format!("the value of {key:?} is not base64"))?;
                String::from_utf8(bytes).map_err(|_| format!("the value of {key:?} is not UTF-8 text"))?
            }
        };
        if it.next().is_some() {
            return Err(format!("the pair of {key:?} has more than a key and a value"));
        }
        if out.insert(key.to_string(), value).is_some() {
            return Err(format!("key {key:?} appears twice"));
        }
    }
    Ok(out)
}

/// Prints metadata back as `Upload-Metadata` (HEAD echoes it).
pub fn format_metadata(metadata: &BTreeMap<String, String>) -> String {
    metadata
        .iter()
        .map(|(k, v)| {
            if v.is_empty() {
                k.clone()
            } else {
                format!("{k} {}", base64::engine::general_purpose::STANDARD.encode(v))
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The asset's metadata from an upload's (`title`, `description`, `tags`, `content_type`), each
/// checked as the multipart upload checks its form fields; other keys are ignored.
pub fn asset_meta(metadata: &BTreeMap<String, String>) -> Result<AssetMeta, AppError> {
    let mut fields = FieldErrors::new();
    let mut meta = AssetMeta { content_type: DEFAULT_CONTENT_TYPE.to_string(), ..Default::default() };
    let mut take = |name: &str, r: Result<String, String>| match r {
        Ok(v) => Some(v),
        Err(w) => {
            fields.insert(format!("Upload-Metadata.{name}"), w);
            None
        }
    };
    if let Some(t) = metadata.get("title").and_then(|t| take("title", parse_title(t))) {
        meta.title = t;
    }
    if let Some(d) = metadata.get("description").and_then(|d| take("description", parse_description(d))) {
        meta.description = d;
    }
    if let Some(c) = metadata
        .get("content_type")
        .filter(|c| !c.trim().is_empty())
        .and_then(|c| take("content_type", parse_content_type(c)))
    {
        meta.content_type = c;
    }
    if let Some(t) = metadata.get("tags") {
        match parse_tags(t) {
            Ok(t) => meta.tags = t,
            Err(w) => drop(fields.insert("Upload-Metadata.tags".into(), w)),
        }
    }
    if fields.is_empty() { Ok(meta) } else { Err(AppError::from_fields(fields)) }
}

/// Parses `Upload-Length` / `Upload-Offset`: a non-negative decimal integer.
pub fn parse_length(raw: &str) -> Option<u64> {
    let s = raw.trim();
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_decoded_as_tus_defines_it() {
        let m = parse_metadata("filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential").expect("valid");
        assert_eq!(m["filename"], "world_domination_plan.pdf");
        assert_eq!(m["is_confidential"], "");
        assert_eq!(parse_metadata("").expect("empty").len(), 0);
        assert!(parse_metadata("filename !!!").is_err());
        assert!(parse_metadata("a YQ==,a YQ==").is_err());
        assert!(parse_metadata("a YQ== b").is_err());
        assert!(parse_metadata(",").is_err());
        let back = parse_metadata(&format_metadata(&m)).expect("round trip");
        assert_eq!(back, m);
    }

    #[test]
    fn lengths_are_plain_decimal_numbers() {
        assert_eq!(parse_length("42"), Some(42));
        assert_eq!(parse_length(" 0 "), Some(0));
        assert_eq!(parse_length("-1"), None);
        assert_eq!(parse_length("+1"), None);
        assert_eq!(parse_length("1e3"), None);
        assert_eq!(parse_length("99999999999999999999"), None);
    }
}
