//! File requests (SPEC §11): links that receive files. The validated settings of a request
//! (create and update use one parser), its status, and what an uploader sends with a file.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::assets::{parse_description, parse_title};
use crate::domain::policies::{Policy, hours_ms};
use crate::domain::users::{Email, PASSWORD_MAX, PASSWORD_MIN};
use crate::error::{AppError, ErrorCode, FieldErrors};

/// Where a request stands. Closed wins over expired, which wins over full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileRequestStatus {
    Open,
    Expired,
    Full,
    Closed,
}

impl FileRequestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FileRequestStatus::Open => "open",
            FileRequestStatus::Expired => "expired",
            FileRequestStatus::Full => "full",
            FileRequestStatus::Closed => "closed",
        }
    }

    /// Plain words for the 410 page and error.
    pub fn explain(self) -> &'static str {
        match self {
            FileRequestStatus::Open => "open",
            FileRequestStatus::Expired => "it has expired",
            FileRequestStatus::Full => "it has received all the files it accepts",
            FileRequestStatus::Closed => "it was closed by its owner",
        }
    }
}

/// A stored file request.
#[derive(Debug, Clone)]
pub struct FileRequest {
    pub id: i64,
    pub uuid: String,
    pub owner_id: i64,
    pub collection_id: Option<i64>,
    pub title: String,
    pub instructions: String,
    pub expires_at: Option<i64>,
    pub max_files: Option<i64>,
    pub max_file_bytes: Option<i64>,
    pub max_total_bytes: Option<i64>,
    pub allowed_types: Vec<String>,
    pub password_hash: Option<String>,
    pub require_uploader_name: bool,
    pub require_uploader_email: bool,
    pub notify_on_upload: bool,
    pub uploads_count: i64,
    pub bytes_received: i64,
    pub files_reserved: i64,
    pub bytes_reserved: i64,
    pub closed_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl FileRequest {
    pub fn status(&self, now_ms: i64) -> FileRequestStatus {
        if self.closed_at.is_some() {
            FileRequestStatus::Closed
        } else if self.expires_at.is_some_and(|e| e <= now_ms) {
            FileRequestStatus::Expired
        } else if self.files_remaining() == Some(0) || self.bytes_remaining() == Some(0) {
            FileRequestStatus::Full
        } else {
            FileRequestStatus::Open
        }
    }

    /// Files it still accepts (uploads in flight not counted); None without a limit.
    pub fn files_remaining(&self) -> Option<i64> {
        self.max_files.map(|m| (m - self.uploads_count).max(0))
    }

    /// Bytes it still accepts; None without a limit.
    pub fn bytes_remaining(&self) -> Option<i64> {
        self.max_total_bytes.map(|m| (m - self.bytes_received).max(0))
    }

    pub fn is_protected(&self) -> bool {
        self.password_hash.is_some()
    }
}

/// The body of create (and of update, merged over the stored request).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FileRequestIn {
    /// Required on create.
    pub title: Option<String>,
    /// At most 5000 characters.
    pub instructions: Option<String>,
    /// One of the caller's collections (create only); without it a new collection named after
    /// the title receives the files.
    pub collection_id: Option<i64>,
    /// Hours from now, 1 to 8760; `null` on update removes the expiry.
    #[serde(default, deserialize_with = "double_option")]
    pub expires_in_hours: Option<Option<f64>>,
    /// `null` on update removes the limit.
    #[serde(default, deserialize_with = "double_option")]
    pub max_files: Option<Option<i64>>,
    /// At most `asset_max_bytes`; `null` on update removes the limit.
    #[serde(default, deserialize_with = "double_option")]
    pub max_file_bytes: Option<Option<i64>>,
    /// `null` on update removes the limit.
    #[serde(default, deserialize_with = "double_option")]
    pub max_total_bytes: Option<Option<i64>>,
    /// MIME types, a subset of `asset_allowed_types`; empty: every allowed type.
    pub allowed_types: Option<Vec<String>>,
    /// At least 8 characters; never returned. `null` on update removes the password.
    #[serde(default, deserialize_with = "double_option")]
    pub password: Option<Option<String>>,
    pub require_uploader_name: Option<bool>,
    pub require_uploader_email: Option<bool>,
    pub notify_on_upload: Option<bool>,
}

/// Distinguishes "absent" (None) from "null" (Some(None)).
fn double_option<'de, T: Deserialize<'de>, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// What the server allows every upload (`asset_max_bytes`, `asset_allowed_types`).
pub struct UploadBounds<'a> {
    pub max_bytes: u64,
    pub allowed_types: &'a [String],
}

/// Settings of a request, valid by construction.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRequestSettings {
    pub title: String,
    pub instructions: String,
    pub expires_at: Option<i64>,
    pub max_files: Option<i64>,
    pub max_file_bytes: Option<i64>,
    pub max_total_bytes: Option<i64>,
    pub allowed_types: Vec<String>,
    /// A new password to hash.
    pub new_password: Option<String>,
    /// The stored password goes (update with `password: null`).
    pub remove_password: bool,
    pub require_uploader_name: bool,
    pub require_uploader_email: bool,
    pub notify_on_upload: bool,
}

pub const MAX_EXPIRY_HOURS: f64 = 8760.0;
pub const MAX_FILES: i64 = 1_000_000;

impl FileRequestSettings {
    pub fn defaults() -> FileRequestSettings {
        FileRequestSettings {
            title: String::new(),
            instructions: String::new(),
            expires_at: None,
            max_files: None,
            max_file_bytes: None,
            max_total_bytes: None,
            allowed_types: vec![],
            new_password: None,
            remove_password: false,
            require_uploader_name: false,
            require_uploader_email: false,
            notify_on_upload: true,
        }
    }

    pub fn of(r: &FileRequest) -> FileRequestSettings {
        FileRequestSettings {
            title: r.title.clone(),
            instructions: r.instructions.clone(),
            expires_at: r.expires_at,
            max_files: r.max_files,
            max_file_bytes: r.max_file_bytes,
            max_total_bytes: r.max_total_bytes,
            allowed_types: r.allowed_types.clone(),
            new_password: None,
            remove_password: false,
            require_uploader_name: r.require_uploader_name,
            require_uploader_email: r.require_uploader_email,
            notify_on_upload: r.notify_on_upload,
        }
    }

    /// Parses `input` over `base` (the stored request on update, defaults on create), under the
    /// administrators' `policy` (SPEC §13): with file requests turned off a create is a 403
    /// `file_requests_disabled`; `require_password` needs a password on create and keeps an
    /// update from removing one; an omitted expiry of a new request takes the policy's (at most
    /// 8760 hours), a given one is at most `max_expires_in_hours`.
    pub fn parse(
        input: FileRequestIn,
        base: &FileRequestSettings,
        bounds: &UploadBounds<'_>,
        now_ms: i64,
        creating: bool,
        policy: &Policy,
    ) -> Result<FileRequestSettings, AppError> {
        if creating && !policy.file_requests_enabled {
            return Err(AppError::Forbidden {
                code: ErrorCode::FileRequestsDisabled,
                message: "file requests are turned off by the administrators' policy".into(),
            });
        }
        let mut f = FieldErrors::new();
        let (password_given, password_removed) = (input.password.is_some(), input.password == Some(None));
        let expiry_given = input.expires_in_hours;
        let mut out = base.clone();
        out.new_password = None;
        out.remove_password = false;
        match input.title {
            Some(t) => match parse_title(&t) {
                Ok(t) if t.is_empty() => drop(f.insert("title".into(), "is required".into())),
                Ok(t) => out.title = t,
                Err(w) => drop(f.insert("title".into(), w)),
            },
            None if creating => drop(f.insert("title".into(), "is required".into())),
            None => {}
        }
        if let Some(i) = input.instructions {
            match parse_description(&i) {
                Ok(i) => out.instructions = i,
                Err(w) => drop(f.insert("instructions".into(), w)),
            }
        }
        match input.expires_in_hours {
            None => {}
            Some(None) => out.expires_at = None,
            Some(Some(h)) if !h.is_finite() || !(1.0..=MAX_EXPIRY_HOURS).contains(&h) => {
                f.insert("expires_in_hours".into(), format!("must be a number of hours from 1 to {MAX_EXPIRY_HOURS}"));
            }
            Some(Some(h)) => out.expires_at = Some(now_ms + (h * 3_600_000.0).round() as i64),
        }
        let max_bytes = i64::try_from(bounds.max_bytes).unwrap_or(i64::MAX);
        let mut limit = |name: &str, v: Option<Option<i64>>, max: i64, why: String, slot: &mut Option<i64>| match v {
            None => {}
            Some(None) => *slot = None,
            Some(Some(n)) if n < 1 => drop(f.insert(name.into(), "must be a positive whole number".into())),
            Some(Some(n)) if n > max => drop(f.insert(name.into(), why)),
            Some(Some(n)) => *slot = Some(n),
        };
        limit("max_files", input.max_files, MAX_FILES, format!("must be at most {MAX_FILES}"), &mut out.max_files);
        limit(
            "max_file_bytes",
            input.max_file_bytes,
            max_bytes,
            format!("must be at most the server's limit of {max_bytes} bytes (asset_max_bytes)"),
            &mut out.max_file_bytes,
        );
        limit("max_total_bytes", input.max_total_bytes, i64::MAX / 4, "is too large".into(), &mut out.max_total_bytes);
        if let Some(types) = input.allowed_types {
            let mut list: Vec<String> = vec![];
            let mut bad = vec![];
            for t in types {
                let t = t.trim().to_ascii_lowercase();
                if !bounds.allowed_types.iter().any(|a| a.eq_ignore_ascii_case(&t)) {
                    bad.push(t);
                } else if !list.contains(&t) {
                    list.push(t);
                }
            }
            if bad.is_empty() {
                out.allowed_types = list;
            } else {
                f.insert("allowed_types".into(), format!("not accepted by this server: {}", bad.join(", ")));
            }
        }
        match input.password {
            None => {}
            Some(None) => out.remove_password = true,
            Some(Some(p)) if p.chars().count() < PASSWORD_MIN => {
                f.insert("password".into(), format!("must be at least {PASSWORD_MIN} characters"));
            }
            Some(Some(p)) if p.len() > PASSWORD_MAX => {
                f.insert("password".into(), format!("must be at most {PASSWORD_MAX} bytes"));
            }
            Some(Some(p)) => out.new_password = Some(p),
        }
        out.require_uploader_name = input.require_uploader_name.unwrap_or(base.require_uploader_name);
        out.require_uploader_email = input.require_uploader_email.unwrap_or(base.require_uploader_email);
        out.notify_on_upload = input.notify_on_upload.unwrap_or(base.notify_on_upload);
        if policy.require_password && ((creating && !password_given) || password_removed) {
            let why = if creating { "is required by the policy" } else { "cannot be removed: the policy requires one" };
            f.entry("password".into()).or_insert_with(|| why.into());
        }
        match expiry_given {
            None if creating && out.expires_at.is_none() => {
                if let Some(h) = policy.implied_expiry_hours() {
                    out.expires_at = Some(now_ms + hours_ms(h.min(MAX_EXPIRY_HOURS)));
                }
            }
            Some(None) => {
                if let Some(m) = policy.max_expires_in_hours {
                    f.entry("expires_in_hours".into())
                        .or_insert_with(|| format!("is required by the policy: at most {m} hours"));
                }
            }
            Some(Some(h)) => {
                if let Some(m) = policy.max_expires_in_hours.filter(|m| h > *m) {
                    f.entry("expires_in_hours".into()).or_insert_with(|| format!("must be at most {m} hours (policy)"));
                }
            }
            None => {}
        }
        if f.is_empty() { Ok(out) } else { Err(AppError::from_fields(f)) }
    }
}

/// Who sent a file, as the uploader typed it (checked against the request's requirements).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Uploader {
    pub name: Option<String>,
    pub email: Option<String>,
    pub message: Option<String>,
}

impl Uploader {
    /// Trims the fields; 400 with `fields` for a missing required name or e-mail, a bad e-mail
    /// address, or text too long.
    pub fn parse(
        name: Option<&str>,
        email: Option<&str>,
        message: Option<&str>,
        require_name: bool,
        require_email: bool,
    ) -> Result<Uploader, AppError> {
        let mut f = FieldErrors::new();
        let clean = |s: Option<&str>| s.map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
        let name = clean(name);
        let email = clean(email);
        let message = clean(message);
        match &name {
            None if require_name => drop(f.insert("uploader_name".into(), "is required".into())),
            Some(n) => {
                if let Err(w) = parse_title(n) {
                    f.insert("uploader_name".into(), w);
                }
            }
            None => {}
        }
        let email = match email {
            None if require_email => {
                f.insert("uploader_email".into(), "is required".into());
                None
            }
            None => None,
            Some(e) => match Email::parse(&e) {
                Ok(e) => Some(e.as_str().to_string()),
                Err(_) => {
                    f.insert("uploader_email".into(), "is not an e-mail address".into());
                    None
                }
            },
        };
        if let Some(m) = &message
            && let Err(w) = parse_description(m)
        {
            f.insert("message".into(), w);
        }
        if f.is_empty() { Ok(Uploader { name, email, message }) } else { Err(AppError::from_fields(f)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds() -> (u64, Vec<String>) {
        (1000, vec!["image/png".into(), "application/pdf".into()])
    }

    #[test]
    fn types_outside_the_allow_list_are_named() {
        let (max, types) = bounds();
        let b = UploadBounds { max_bytes: max, allowed_types: &types };
        let input = FileRequestIn {
            title: Some("T".into()),
            allowed_types: Some(vec!["image/png".into(), "application/x-msdownload".into()]),
            ..Default::default()
        };
        let Err(AppError::Validation { fields, .. }) =
            FileRequestSettings::parse(input, &FileRequestSettings::defaults(), &b, 0, true, &Policy::default())
        else {
            panic!("expected a validation error")
        };
        assert!(fields["allowed_types"].contains("application/x-msdownload"));
    }

    #[test]
    fn limits_are_positive_and_bounded() {
        let (max, types) = bounds();
        let b = UploadBounds { max_bytes: max, allowed_types: &types };
        let input = FileRequestIn {
            max_files: Some(Some(0)),
            max_file_bytes: Some(Some(1001)),
            expires_in_hours: Some(Some(9000.0)),
            password: Some(Some("short".into())),
            ..Default::default()
        };
        let Err(AppError::Validation { fields, .. }) =
            FileRequestSettings::parse(input, &FileRequestSettings::defaults(), &b, 0, true, &Policy::default())
        else {
            panic!("expected a validation error")
        };
        for k in ["title", "max_files", "max_file_bytes", "expires_in_hours", "password"] {
            assert!(fields.contains_key(k), "{k} missing in {fields:?}");
        }
    }

    #[test]
    fn required_uploader_fields() {
        assert!(Uploader::parse(None, None, None, true, false).is_err());
        assert!(Uploader::parse(Some("A"), Some("nope"), None, true, false).is_err());
        let u = Uploader::parse(Some(" Ann "), Some("a@example.com"), None, true, true).expect("valid");
        assert_eq!(u.name.as_deref(), Some("Ann"));
    }
}
