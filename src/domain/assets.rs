//! Assets: media kinds, gallery content types, sanitised file names, titles, tags.

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use utoipa::ToSchema;

/// What kind of media an asset is, derived from the sniffed MIME type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MediaType {
    Image,
    Video,
    Audio,
    Document,
    Other,
}

impl MediaType {
    pub fn from_mime(mime: &str) -> MediaType {
        if mime.starts_with("image/") {
            MediaType::Image
        } else if mime.starts_with("video/") || mime == "application/ogg" {
            MediaType::Video
        } else if mime.starts_with("audio/") {
            MediaType::Audio
        } else if mime == "application/pdf"
            || mime.starts_with("text/")
            || mime.starts_with("application/vnd.")
            || mime == "application/msword"
            || mime == "application/rtf"
        {
            MediaType::Document
        } else {
            MediaType::Other
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MediaType::Image => "image",
            MediaType::Video => "video",
            MediaType::Audio => "audio",
            MediaType::Document => "document",
            MediaType::Other => "other",
        }
    }

    pub fn parse(s: &str) -> MediaType {
        match s {
            "image" => MediaType::Image,
            "video" => MediaType::Video,
            "audio" => MediaType::Audio,
            "document" => MediaType::Document,
            _ => MediaType::Other,
        }
    }
}

/// The gallery content types of the seed (SPEC §6); an asset's `content_type`.
pub const CONTENT_TYPES: [&str; 10] = [
    "talent_media",
    "band_media",
    "prop",
    "costume",
    "location",
    "memorabilia",
    "vehicle",
    "artistic_material",
    "music_item",
    "rare_item",
];

pub const DEFAULT_CONTENT_TYPE: &str = "talent_media";

pub fn parse_content_type(raw: &str) -> Result<String, String> {
    let s = raw.trim();
    if CONTENT_TYPES.contains(&s) {
        Ok(s.to_string())
    } else {
        Err(format!("must be one of {}", CONTENT_TYPES.join(", ")))
    }
}

/// Makes a client's file name safe to store and to print in a `Content-Disposition`:
/// Unicode NFC, no path components, no `..`, no control characters, at most 255 bytes.
pub fn sanitize_file_name(raw: &str) -> String {
    let nfc: String = raw.nfc().collect();
    // Keep only the last path component, whichever separator the client used.
    let base = nfc.rsplit(['/', '\\']).next().unwrap_or("");
    let mut cleaned: String = base
        .chars()
        .filter(|c| {
            !c.is_control() && !matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        })
        .map(|c| if matches!(c, ':' | '*' | '?' | '"' | '<' | '>' | '|') { '_' } else { c })
        .collect();
    while cleaned.contains("..") {
        cleaned = cleaned.replace("..", ".");
    }
    let cleaned = cleaned.trim().trim_start_matches('.').trim().to_string();
    let mut out = if cleaned.is_empty() { "file".to_string() } else { cleaned };
    if out.len() > 255 {
        // Keep the extension when it is short, cut the stem on a character boundary.
        let ext = out.rsplit_once('.').map(|(_, e)| e.to_string()).filter(|e| e.len() <= 16);
        let budget = 255 - ext.as_ref().map(|e| e.len() + 1).unwrap_or(0);
        let mut stem = String::new();
        for c in out.chars() {
            if stem.len() + c.len_utf8() > budget {
                break;
            }
            stem.push(c);
        }
        out = match ext {
            Some(e) => format!("{stem}.{e}"),
            None => stem,
        };
    }
    out
}

/// Title: trimmed, at most 200 characters, no control characters.
pub fn parse_title(raw: &str) -> Result<String, String> {
    let s = raw.trim();
    if s.chars().count() > 200 {
        Err("must be at most 200 characters".into())
    } else if s.chars().any(char::is_control) {
        Err("must not contain control characters".into())
    } else {
        Ok(s.to_string())
    }
}

/// Description: at most 5000 characters; newlines and tabs allowed.
pub fn parse_description(raw: &str) -> Result<String, String> {
    let s = raw.trim();
    if s.chars().count() > 5000 {
        Err("must be at most 5000 characters".into())
    } else if s.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        Err("must not contain control characters".into())
    } else {
        Ok(s.to_string())
    }
}

/// Tags: comma separated, trimmed, de-duplicated, each 1..=50 characters, at most 50 tags.
pub fn parse_tags(raw: &str) -> Result<Vec<String>, String> {
    let mut tags: Vec<String> = vec![];
    for t in raw.split(',') {
        let t = t.trim();
        if t.is_empty() {
            continue;
        }
        if t.chars().count() > 50 || t.chars().any(char::is_control) {
            return Err("each tag must be at most 50 characters, without control characters".into());
        }
        if !tags.iter().any(|x| x.eq_ignore_ascii_case(t)) {
            tags.push(t.to_string());
        }
    }
    if tags.len() > 50 {
        return Err("at most 50 tags".into());
    }
    Ok(tags)
}

/// Metadata of a new asset, gathered from the multipart form.
#[derive(Debug, Clone, Default)]
pub struct AssetMeta {
    pub title: String,
    pub description: String,
    pub tags: Vec<String>,
    pub content_type: String,
}

/// A stored asset.
#[derive(Debug, Clone)]
pub struct Asset {
    pub id: i64,
    pub owner_id: i64,
    pub owner_name: String,
    pub title: String,
    pub description: String,
    pub tags: Vec<String>,
    pub name: String,
    pub mime_type: String,
    pub media_type: MediaType,
    pub size: i64,
    pub sha256: String,
    pub blob_key: String,
    pub thumb_key: Option<String>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub duration_seconds: Option<f64>,
    pub content_type: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// Where the file came from: None for the owner's own uploads (SPEC §11).
    pub source: Option<AssetSource>,
}

/// An asset received through a file request: which one, and what the uploader said.
#[derive(Debug, Clone, PartialEq)]
pub struct AssetSource {
    pub file_request: String,
    pub uploader_name: Option<String>,
    pub uploader_email: Option<String>,
    pub message: Option<String>,
}

/// Writes that commit in the one transaction that stores a new asset's row, or not at all, so that a
/// crash can never leave the asset without them (nor them without the asset).
#[derive(Default)]
pub struct AssetCommit {
    /// A file request's reservation the new file settles: the request's id and the bytes reserved.
    pub settles: Option<(i64, i64)>,
    /// The resumable upload the new asset completes.
    pub completes: Option<CompletedUpload>,
    /// The webhook event the new asset makes (`file_request.uploaded`), queued in the outbox with it.
    pub event: Option<AssetEvent>,
}

/// Makes the event of a new asset from what the asset's row holds.
pub type AssetEvent = Box<dyn Fn(&AssetMade<'_>) -> crate::domain::webhooks::Event + Send + Sync>;

/// A new asset, as its row is written.
pub struct AssetMade<'a> {
    pub id: i64,
    pub name: &'a str,
    pub size: i64,
    pub mime_type: &'a str,
    pub created_at: i64,
}

/// A resumable upload marked `done` with the asset it became.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletedUpload {
    pub id: String,
    /// When the finished upload's row is removed.
    pub expires_at: i64,
    /// Whether its result names the asset ([`asset_location`]); an uploader of a file request may
    /// not learn it.
    pub names_asset: bool,
}

/// The API path of an asset, as the `Vitrine-Asset` header names it.
pub fn asset_location(id: i64) -> String {
    format!("/api/v3/assets/{id}/")
}

/// How a page shows an asset: `image`, `video`, `audio` or `pdf` inline, `file` otherwise
/// (only media a browser renders safely is shown on our origin).
pub fn preview_kind(a: &Asset) -> &'static str {
    match a.media_type {
        MediaType::Image => "image",
        MediaType::Video => "video",
        MediaType::Audio => "audio",
        _ if a.mime_type == "application/pdf" => "pdf",
        _ => "file",
    }
}

/// A change to an asset's metadata (PATCH); `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct AssetPatch {
    pub title: Option<String>,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    pub content_type: Option<String>,
    pub name: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_lose_paths_and_dots() {
        assert_eq!(sanitize_file_name("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_file_name("..\\..\\boot.ini"), "boot.ini");
        assert_eq!(sanitize_file_name("a..b.txt"), "a.b.txt");
        assert_eq!(sanitize_file_name(".."), "file");
        assert_eq!(sanitize_file_name("evil\u{0}\n.pdf"), "evil.pdf");
        assert_eq!(sanitize_file_name(".hidden"), "hidden");
        assert_eq!(sanitize_file_name("photo\u{202e}gpj.exe"), "photogpj.exe");
        // NFC: e + combining acute becomes one character.
        assert_eq!(sanitize_file_name("cafe\u{301}.txt"), "caf\u{e9}.txt");
    }

    #[test]
    fn long_names_are_cut_to_255_bytes_keeping_the_extension() {
        let long = format!("{}.pdf", "é".repeat(300));
        let s = sanitize_file_name(&long);
        assert!(s.len() <= 255);
        assert!(s.ends_with(".pdf"));
    }

    #[test]
    fn tags_are_trimmed_and_deduplicated() {
        assert_eq!(parse_tags(" a, b ,A,, c").ok(), Some(vec!["a".to_string(), "b".into(), "c".into()]));
    }

    #[test]
    fn media_type_follows_the_mime_type() {
        assert_eq!(MediaType::from_mime("image/png"), MediaType::Image);
        assert_eq!(MediaType::from_mime("application/pdf"), MediaType::Document);
        assert_eq!(MediaType::from_mime("audio/mpeg"), MediaType::Audio);
    }
}
