//! Share links: types, the validated settings of a link (create and update use one parser), its
//! status, and the social-network links built from configurable templates.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::assets::{Asset, parse_description, parse_title};
use crate::domain::collections::Collection;
use crate::domain::policies::{Policy, hours_ms};
use crate::domain::users::{Email, PASSWORD_MIN};
use crate::error::{AppError, FieldErrors};

/// Access model of a link (the aliases are public links with a required limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShareType {
    Public,
    Private,
    Protected,
    TimeLimited,
    DownloadLimited,
}

impl ShareType {
    pub fn parse(s: &str) -> Option<ShareType> {
        Some(match s {
            "public" => ShareType::Public,
            "private" => ShareType::Private,
            "protected" => ShareType::Protected,
            "time_limited" => ShareType::TimeLimited,
            "download_limited" => ShareType::DownloadLimited,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ShareType::Public => "public",
            ShareType::Private => "private",
            ShareType::Protected => "protected",
            ShareType::TimeLimited => "time_limited",
            ShareType::DownloadLimited => "download_limited",
        }
    }

    /// Anyone with the URL may open it (no password, no login).
    pub fn is_open(self) -> bool {
        matches!(self, ShareType::Public | ShareType::TimeLimited | ShareType::DownloadLimited)
    }
}

/// Where a link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ShareStatus {
    Active,
    Expired,
    Exhausted,
    Revoked,
}

impl ShareStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ShareStatus::Active => "active",
            ShareStatus::Expired => "expired",
            ShareStatus::Exhausted => "exhausted",
            ShareStatus::Revoked => "revoked",
        }
    }

    /// Plain words for the 410 page.
    pub fn explain(self) -> &'static str {
        match self {
            ShareStatus::Active => "active",
            ShareStatus::Expired => "expired",
            ShareStatus::Exhausted => "download limit reached",
            ShareStatus::Revoked => "revoked",
        }
    }
}

/// What a link shares: one asset, or a collection of them (SPEC §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareTarget {
    Asset(i64),
    Collection(i64),
}

/// A link's target loaded for the recipient: the asset, or the collection with its files in order.
#[derive(Debug, Clone)]
pub enum Shared {
    Asset(Box<Asset>),
    Collection { collection: Collection, items: Vec<Asset> },
}

impl Shared {
    /// The asset of an asset link.
    pub fn asset(&self) -> Option<&Asset> {
        match self {
            Shared::Asset(a) => Some(a.as_ref()),
            Shared::Collection { .. } => None,
        }
    }

    /// The file `asset_id` of a collection link (None when it is not in the collection).
    pub fn item(&self, asset_id: i64) -> Option<&Asset> {
        match self {
            Shared::Asset(_) => None,
            Shared::Collection { items, .. } => items.iter().find(|a| a.id == asset_id),
        }
    }

    /// The asset id analytics record: the asset, or 0 for a collection (its files' downloads are
    /// kept per file in `share_file_downloads`).
    pub fn analytics_asset_id(&self) -> i64 {
        self.asset().map_or(0, |a| a.id)
    }
}

/// A stored link.
#[derive(Debug, Clone)]
pub struct Share {
    pub id: i64,
    pub uuid: String,
    pub target: ShareTarget,
    pub owner_id: i64,
    pub share_type: ShareType,
    pub password_hash: Option<String>,
    pub allow_preview: bool,
    pub allow_download: bool,
    pub allow_comments: bool,
    pub allow_collaboration: bool,
    pub notify_on_access: bool,
    /// Previews carry a tiled text (preview-only links; see `watermark_text`).
    pub watermark: bool,
    pub expires_at: Option<i64>,
    pub max_downloads: Option<i64>,
    pub download_count: i64,
    pub view_count: i64,
    pub title: String,
    pub description: String,
    pub allowed_emails: Vec<String>,
    pub revoked_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Share {
    pub fn asset_id(&self) -> Option<i64> {
        match self.target {
            ShareTarget::Asset(id) => Some(id),
            ShareTarget::Collection(_) => None,
        }
    }

    pub fn collection_id(&self) -> Option<i64> {
        match self.target {
            ShareTarget::Collection(id) => Some(id),
            ShareTarget::Asset(_) => None,
        }
    }

    /// Revoked wins over expired, which wins over exhausted.
    pub fn status(&self, now_ms: i64) -> ShareStatus {
        if self.revoked_at.is_some() {
            ShareStatus::Revoked
        } else if self.expires_at.is_some_and(|e| e <= now_ms) {
            ShareStatus::Expired
        } else if self.max_downloads.is_some_and(|m| self.download_count >= m) {
            ShareStatus::Exhausted
        } else {
            ShareStatus::Active
        }
    }

    pub fn downloads_remaining(&self) -> Option<i64> {
        self.max_downloads.map(|m| (m - self.download_count).max(0))
    }
}

/// Whether previews of a file of type `mime` through `share` are re-encoded renditions rather than
/// the stored bytes: images of a preview-only link (watermarked when the link has a watermark), so
/// that the original bytes stay unreachable. The one rule of the share page, its collection files,
/// its thumbnails and the live review of the link.
pub fn preview_is_rendition(share: &Share, mime: &str) -> bool {
    !share.allow_download && mime.starts_with("image/")
}

/// The text a watermarked link's previews carry: the viewer's e-mail on a private link (who
/// leaked it), otherwise the link's title and the day (`YYYY-MM-DD`, UTC).
pub fn watermark_text(share: &Share, viewer_email: Option<&str>, now_ms: i64) -> String {
    match (share.share_type, viewer_email) {
        (ShareType::Private, Some(e)) => e.to_string(),
        _ => format!("{} · {}", share.title.chars().take(80).collect::<String>(), super::time::day_of(now_ms)),
    }
}

/// The request body of create (and, merged with the stored link, of update).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareSettingsIn {
    /// `public` (default), `private`, `protected`, `time_limited`, `download_limited`.
    pub share_type: Option<String>,
    /// Required for `protected` (at least 8 characters); never returned.
    pub password: Option<String>,
    pub allow_preview: Option<bool>,
    pub allow_download: Option<bool>,
    pub allow_comments: Option<bool>,
    pub allow_collaboration: Option<bool>,
    /// Hours from now; fractions allowed, at least one minute. `null` on update removes the expiry.
    #[serde(default, deserialize_with = "double_option")]
    pub expires_in_hours: Option<Option<f64>>,
    /// `null` on update removes the limit.
    #[serde(default, deserialize_with = "double_option")]
    pub max_downloads: Option<Option<i64>>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub notify_on_access: Option<bool>,
    /// For `private`: only these accounts may open it.
    pub allowed_emails: Option<Vec<String>>,
    /// Previews of a preview-only link (`allow_download: false`) carry a tiled, semi-transparent
    /// text: the viewer's e-mail on private links, otherwise the link's title and the date. A
    /// deterrent, not DRM. Refused (400) on a link that allows downloads.
    pub watermark: Option<bool>,
}

/// Distinguishes "absent" (None) from "null" (Some(None)).
fn double_option<'de, T: Deserialize<'de>, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Settings of a link, valid by construction.
#[derive(Debug, Clone, PartialEq)]
pub struct ShareSettings {
    pub share_type: ShareType,
    /// A new password to hash (None: keep the stored one, or none for open links).
    pub new_password: Option<String>,
    pub allow_preview: bool,
    pub allow_download: bool,
    pub allow_comments: bool,
    pub allow_collaboration: bool,
    pub expires_at: Option<i64>,
    pub max_downloads: Option<i64>,
    pub title: String,
    pub description: String,
    pub notify_on_access: bool,
    pub allowed_emails: Vec<String>,
    pub watermark: bool,
}

pub const MAX_EXPIRY_HOURS: f64 = 24.0 * 365.0 * 10.0;
pub const MAX_DOWNLOADS: i64 = 1_000_000_000;

impl ShareSettings {
    /// Parses `input` over `base` (the stored link on update, or defaults on create), under the
    /// administrators' `policy` (SPEC §13: it binds what a create sets, and what an update
    /// changes). `has_password` says whether the stored link already has one.
    pub fn parse(
        input: ShareSettingsIn,
        base: &ShareSettings,
        has_password: bool,
        now_ms: i64,
        policy: &Policy,
        creating: bool,
    ) -> Result<ShareSettings, AppError> {
        let mut f = FieldErrors::new();
        let (type_given, password_given) = (input.share_type.is_some(), input.password.is_some());
        let (expiry_given, limit_given) = (input.expires_in_hours, input.max_downloads);
        let download_turned_on = input.allow_download == Some(true);
        let share_type = match input.share_type.as_deref() {
            None => base.share_type,
            Some(s) => ShareType::parse(s).unwrap_or_else(|| {
                f.insert(
                    "share_type".into(),
                    "must be one of public, private, protected, time_limited, download_limited".into(),
                );
                base.share_type
            }),
        };
        let mut out = ShareSettings {
            share_type,
            new_password: None,
            allow_preview: input.allow_preview.unwrap_or(base.allow_preview),
            allow_download: input.allow_download.unwrap_or(base.allow_download),
            allow_comments: input.allow_comments.unwrap_or(base.allow_comments),
            allow_collaboration: input.allow_collaboration.unwrap_or(base.allow_collaboration),
            expires_at: base.expires_at,
            max_downloads: base.max_downloads,
            title: base.title.clone(),
            description: base.description.clone(),
            notify_on_access: input.notify_on_access.unwrap_or(base.notify_on_access),
            allowed_emails: base.allowed_emails.clone(),
            watermark: input.watermark.unwrap_or(base.watermark),
        };
        match input.password {
            Some(p) if share_type != ShareType::Protected => {
                let _ = p;
                f.insert("password".into(), "only protected links have a password".into());
            }
            Some(p) if p.chars().count() < PASSWORD_MIN => {
                f.insert("password".into(), format!("must be at least {PASSWORD_MIN} characters"));
            }
            Some(p) if p.len() > 1024 => {
                f.insert("password".into(), "must be at most 1024 bytes".into());
            }
            Some(p) => out.new_password = Some(p),
            None if share_type == ShareType::Protected && !has_password => {
                f.insert("password".into(), "is required for protected links".into());
            }
            None => {}
        }
        match input.expires_in_hours {
            None => {}
            Some(None) => out.expires_at = None,
            Some(Some(h)) if !h.is_finite() || h < 1.0 / 60.0 => {
                f.insert(
                    "expires_in_hours".into(),
                    "must be a positive number of hours, at least one minute (0.0167)".into(),
                );
            }
            Some(Some(h)) if h > MAX_EXPIRY_HOURS => {
                f.insert("expires_in_hours".into(), format!("must be at most {MAX_EXPIRY_HOURS} hours (10 years)"));
            }
            Some(Some(h)) => out.expires_at = Some(now_ms + (h * 3_600_000.0).round() as i64),
        }
        match input.max_downloads {
            None => {}
            Some(None) => out.max_downloads = None,
            Some(Some(n)) if !(1..=MAX_DOWNLOADS).contains(&n) => {
                f.insert("max_downloads".into(), format!("must be a whole number from 1 to {MAX_DOWNLOADS}"));
            }
            Some(Some(n)) => out.max_downloads = Some(n),
        }
        if let Some(t) = input.title {
            match parse_title(&t) {
                Ok(t) => out.title = t,
                Err(w) => drop(f.insert("title".into(), w)),
            }
        }
        if let Some(d) = input.description {
            match parse_description(&d) {
                Ok(d) => out.description = d,
                Err(w) => drop(f.insert("description".into(), w)),
            }
        }
        if let Some(list) = input.allowed_emails {
            let mut emails = vec![];
            for e in &list {
                match Email::parse(e) {
                    Ok(e) if !emails.contains(&e.as_str().to_string()) => emails.push(e.as_str().to_string()),
                    Ok(_) => {}
                    Err(_) => {
                        f.insert("allowed_emails".into(), format!("{e:?} is not an e-mail address"));
                    }
                }
            }
            if emails.len() > 500 {
                f.insert("allowed_emails".into(), "at most 500 addresses".into());
            }
            out.allowed_emails = emails;
        }
        apply_policy(
            policy,
            &mut out,
            &mut f,
            PolicyInput {
                creating,
                type_given,
                password_given,
                has_password,
                expiry_given,
                limit_given,
                download_turned_on,
            },
            now_ms,
        );
        // Combinations.
        if share_type == ShareType::TimeLimited && out.expires_at.is_none() {
            f.entry("expires_in_hours".into()).or_insert_with(|| "is required for time_limited links".into());
        }
        if share_type == ShareType::DownloadLimited && out.max_downloads.is_none() {
            f.entry("max_downloads".into()).or_insert_with(|| "is required for download_limited links".into());
        }
        if !out.allowed_emails.is_empty() && share_type != ShareType::Private {
            f.entry("allowed_emails".into()).or_insert_with(|| "only private links have allowed_emails".into());
        }
        // A watermark on a file the recipient may download deters nothing: refused rather than
        // silently ignored, so the owner knows the original is reachable.
        if out.watermark && out.allow_download {
            f.entry("watermark".into())
                .or_insert_with(|| "a watermark needs a preview-only link (allow_download: false)".into());
        }
        if out.max_downloads.is_some() && !out.allow_download {
            f.entry("max_downloads".into()).or_insert_with(|| "a download limit needs allow_download: true".into());
        }
        if f.is_empty() { Ok(out) } else { Err(AppError::from_fields(f)) }
    }

    /// Defaults of a new link on an asset or collection titled `asset_title`.
    pub fn defaults(asset_title: &str) -> ShareSettings {
        ShareSettings {
            share_type: ShareType::Public,
            new_password: None,
            allow_preview: true,
            allow_download: true,
            allow_comments: false,
            allow_collaboration: false,
            expires_at: None,
            max_downloads: None,
            title: asset_title.to_string(),
            description: String::new(),
            notify_on_access: false,
            allowed_emails: vec![],
            watermark: false,
        }
    }

    pub fn of(s: &Share) -> ShareSettings {
        ShareSettings {
            share_type: s.share_type,
            new_password: None,
            allow_preview: s.allow_preview,
            allow_download: s.allow_download,
            allow_comments: s.allow_comments,
            allow_collaboration: s.allow_collaboration,
            expires_at: s.expires_at,
            max_downloads: s.max_downloads,
            title: s.title.clone(),
            description: s.description.clone(),
            notify_on_access: s.notify_on_access,
            allowed_emails: s.allowed_emails.clone(),
            watermark: s.watermark,
        }
    }
}

/// What a create or update asked for, as far as the policy cares.
struct PolicyInput {
    creating: bool,
    type_given: bool,
    password_given: bool,
    has_password: bool,
    expiry_given: Option<Option<f64>>,
    limit_given: Option<Option<i64>>,
    download_turned_on: bool,
}

/// The administrators' policy on a link's parsed settings (SPEC §13): a create is checked
/// whole, an update on what it changes (existing links are never changed by a new policy); an
/// omitted expiry or download limit of a new link takes the policy's.
fn apply_policy(policy: &Policy, out: &mut ShareSettings, f: &mut FieldErrors, input: PolicyInput, now_ms: i64) {
    let PolicyInput {
        creating,
        type_given,
        password_given,
        has_password,
        expiry_given,
        limit_given,
        download_turned_on,
    } = input;
    if (creating || type_given) && !policy.allows(out.share_type) {
        f.entry("share_type".into()).or_insert_with(|| {
            format!(
                "{} links are not allowed by the policy; use one of {}",
                out.share_type.as_str(),
                policy.allowed_names()
            )
        });
    }
    if policy.require_password && (creating || type_given || password_given) {
        let protected = out.share_type == ShareType::Protected && (out.new_password.is_some() || has_password);
        if !protected {
            f.entry("password".into()).or_insert_with(|| {
                "is required by the policy: make a protected link (share_type protected) with a password".into()
            });
        }
    }
    match expiry_given {
        None if creating && out.expires_at.is_none() => {
            if let Some(h) = policy.implied_expiry_hours() {
                out.expires_at = Some(now_ms + hours_ms(h));
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
    if let Some(limit) = policy.max_downloads_limit
        && out.allow_download
    {
        match limit_given {
            Some(Some(n)) if n > limit => {
                f.entry("max_downloads".into()).or_insert_with(|| format!("must be at most {limit} (policy)"));
            }
            Some(Some(_)) => {}
            None if creating && out.max_downloads.is_none() => out.max_downloads = Some(limit),
            _ if (creating || limit_given.is_some() || download_turned_on) && out.max_downloads.is_none() => {
                f.entry("max_downloads".into())
                    .or_insert_with(|| format!("is required by the policy: at most {limit} downloads"));
            }
            _ => {}
        }
    }
}

/// Message templates and hashtags for the social links.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SocialConfig {
    pub hashtags: Vec<String>,
    pub facebook: String,
    pub twitter: String,
    pub linkedin: String,
    pub whatsapp: String,
    pub telegram: String,
    pub reddit: String,
}

impl Default for SocialConfig {
    fn default() -> Self {
        SocialConfig {
            hashtags: vec!["content".into(), "sharing".into()],
            facebook: "Check out this amazing content: {title}".into(),
            twitter: "Don't miss this! {title}".into(),
            linkedin: "Professional content worth sharing: {title}".into(),
            whatsapp: "{title} {url}".into(),
            telegram: "{title}".into(),
            reddit: "{title}".into(),
        }
    }
}

/// RFC 3986 unreserved characters stay; everything else is percent-encoded (spaces as %20).
const COMPONENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

pub fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, COMPONENT).to_string()
}

fn fill(template: &str, title: &str, url: &str, description: &str) -> String {
    template.replace("{title}", title).replace("{url}", url).replace("{description}", description).trim().to_string()
}

/// The six platforms' share URLs, every parameter percent-encoded.
pub fn social_links(
    cfg: &SocialConfig,
    url: &str,
    title: &str,
    description: &str,
) -> serde_json::Map<String, serde_json::Value> {
    let u = encode(url);
    let msg = |t: &str| encode(&fill(t, title, url, description));
    let tags = encode(&cfg.hashtags.iter().map(|h| h.trim_start_matches('#')).collect::<Vec<_>>().join(","));
    let mut m = serde_json::Map::new();
    let mut put = |k: &str, v: String| {
        m.insert(k.to_string(), serde_json::Value::String(v));
    };
    put("facebook", format!("https://www.facebook.com/sharer/sharer.php?u={u}&quote={}", msg(&cfg.facebook)));
    put("twitter", format!("https://twitter.com/intent/tweet?url={u}&text={}&hashtags={tags}", msg(&cfg.twitter)));
    put("linkedin", format!("https://www.linkedin.com/sharing/share-offsite/?url={u}"));
    put("whatsapp", format!("https://wa.me/?text={}", msg(&cfg.whatsapp)));
    put("telegram", format!("https://t.me/share/url?url={u}&text={}", msg(&cfg.telegram)));
    put("reddit", format!("https://reddit.com/submit?url={u}&title={}", msg(&cfg.reddit)));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(v: serde_json::Value) -> ShareSettingsIn {
        serde_json::from_value(v).expect("input")
    }

    fn parse(v: serde_json::Value) -> Result<ShareSettings, AppError> {
        ShareSettings::parse(input(v), &ShareSettings::defaults("Asset"), false, 0, &Policy::default(), true)
    }

    fn fields(r: Result<ShareSettings, AppError>) -> Vec<String> {
        match r {
            Err(AppError::Validation { fields, .. }) => fields.keys().cloned().collect(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn a_protected_link_can_also_expire_and_be_limited() {
        let s = parse(serde_json::json!({"share_type": "protected", "password": "secure123", "expires_in_hours": 168, "max_downloads": 50}))
            .expect("valid");
        assert_eq!(s.share_type, ShareType::Protected);
        assert_eq!(s.expires_at, Some(168 * 3_600_000));
        assert_eq!(s.max_downloads, Some(50));
        assert_eq!(s.new_password.as_deref(), Some("secure123"));
    }

    #[test]
    fn invalid_combinations_name_their_fields() {
        assert_eq!(fields(parse(serde_json::json!({"share_type": "protected"}))), vec!["password"]);
        assert_eq!(
            fields(parse(serde_json::json!({"share_type": "protected", "password": "short"}))),
            vec!["password"]
        );
        assert_eq!(fields(parse(serde_json::json!({"password": "long enough"}))), vec!["password"]);
        assert_eq!(fields(parse(serde_json::json!({"share_type": "time_limited"}))), vec!["expires_in_hours"]);
        assert_eq!(fields(parse(serde_json::json!({"share_type": "download_limited"}))), vec!["max_downloads"]);
        assert_eq!(fields(parse(serde_json::json!({"expires_in_hours": 0.001}))), vec!["expires_in_hours"]);
        assert_eq!(fields(parse(serde_json::json!({"expires_in_hours": -1}))), vec!["expires_in_hours"]);
        assert_eq!(fields(parse(serde_json::json!({"max_downloads": 0}))), vec!["max_downloads"]);
        assert_eq!(fields(parse(serde_json::json!({"allowed_emails": ["a@b.co"]}))), vec!["allowed_emails"]);
        assert_eq!(
            fields(parse(serde_json::json!({"max_downloads": 3, "allow_download": false}))),
            vec!["max_downloads"]
        );
        assert_eq!(fields(parse(serde_json::json!({"share_type": "secret"}))), vec!["share_type"]);
        assert!(serde_json::from_value::<ShareSettingsIn>(serde_json::json!({"sharetype": "x"})).is_err());
    }

    #[test]
    fn a_watermark_needs_a_preview_only_link() {
        assert_eq!(fields(parse(serde_json::json!({"watermark": true}))), vec!["watermark"]);
        assert_eq!(fields(parse(serde_json::json!({"watermark": true, "allow_download": true}))), vec!["watermark"]);
        let s = parse(serde_json::json!({"watermark": true, "allow_download": false})).expect("valid");
        assert!(s.watermark && !s.allow_download);
        assert!(!parse(serde_json::json!({})).expect("valid").watermark, "off by default");
        assert!(serde_json::from_value::<ShareSettingsIn>(serde_json::json!({"watermark": "yes"})).is_err());
    }

    #[test]
    fn one_minute_is_the_shortest_expiry() {
        let s =
            parse(serde_json::json!({"share_type": "time_limited", "expires_in_hours": 1.0 / 60.0})).expect("valid");
        assert_eq!(s.expires_at, Some(60_000));
    }

    #[test]
    fn status_precedence() {
        let mut sh = Share {
            id: 1,
            uuid: "u".into(),
            target: ShareTarget::Asset(1),
            owner_id: 1,
            share_type: ShareType::Public,
            password_hash: None,
            allow_preview: true,
            allow_download: true,
            allow_comments: false,
            allow_collaboration: false,
            notify_on_access: false,
            watermark: false,
            expires_at: Some(100),
            max_downloads: Some(1),
            download_count: 1,
            view_count: 0,
            title: String::new(),
            description: String::new(),
            allowed_emails: vec![],
            revoked_at: None,
            created_at: 0,
            updated_at: 0,
        };
        assert_eq!(sh.status(50), ShareStatus::Exhausted);
        assert_eq!(sh.status(100), ShareStatus::Expired, "expiry is exact at the boundary");
        sh.revoked_at = Some(1);
        assert_eq!(sh.status(50), ShareStatus::Revoked);
    }

    #[test]
    fn social_links_are_percent_encoded_from_templates() {
        let links = social_links(&SocialConfig::default(), "http://h/share/u/", "Q1 & plan", "d");
        assert_eq!(links.len(), 6);
        let tw = links["twitter"].as_str().unwrap_or("");
        assert!(tw.starts_with("https://twitter.com/intent/tweet?url=http%3A%2F%2Fh%2Fshare%2Fu%2F&text="), "{tw}");
        assert!(tw.contains("Q1%20%26%20plan") && tw.ends_with("&hashtags=content%2Csharing"), "{tw}");
        assert!(links["whatsapp"].as_str().unwrap_or("").contains("http%3A%2F%2Fh%2Fshare%2Fu%2F"));
        assert!(links["reddit"].as_str().unwrap_or("").starts_with("https://reddit.com/submit?url="));
    }
}
