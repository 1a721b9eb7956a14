//! Gallery posts (SPEC §6, seed shared-media-gallery-api): the request to share an asset to the
//! public gallery, its categories, the attribution line, and who may see which fields.

use serde::Deserialize;

use super::assets::parse_content_type;
use crate::error::{AppError, FieldErrors};

/// The seed's five categories, in its order.
pub const CATEGORIES: [&str; 5] = ["featured", "inspiration", "trending", "spotlight", "general"];
pub const DEFAULT_CATEGORY: &str = "general";
/// Longest caption accepted, in characters.
pub const CAPTION_MAX: usize = 2_000;
/// Longest search query accepted, in characters.
pub const QUERY_MAX: usize = 200;

/// The seed's label of a category.
pub fn category_label(c: &str) -> &'static str {
    match c {
        "featured" => "Featured Work",
        "inspiration" => "Inspiration",
        "trending" => "Trending",
        "spotlight" => "Artist Spotlight",
        _ => "General",
    }
}

/// A content type for people: `talent_media` → "Talent media".
pub fn content_type_label(ct: &str) -> String {
    let words = ct.replace('_', " ");
    let mut chars = words.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

pub fn parse_category(raw: &str) -> Result<String, String> {
    let s = raw.trim();
    if CATEGORIES.contains(&s) { Ok(s.to_string()) } else { Err(format!("must be one of {}", CATEGORIES.join(", "))) }
}

/// `POST /api/dashboard/share-media/` as sent; every field optional so that a missing one is our
/// 400 with `fields`, not a generic rejection.
#[derive(Debug, Deserialize)]
pub struct ShareMediaBody {
    pub content_type: Option<serde_json::Value>,
    pub object_id: Option<serde_json::Value>,
    pub caption: Option<serde_json::Value>,
    pub category: Option<serde_json::Value>,
}

/// A validated share request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPost {
    pub content_type: String,
    pub object_id: i64,
    pub caption: String,
    pub category: String,
}

impl TryFrom<ShareMediaBody> for NewPost {
    type Error = AppError;
    fn try_from(b: ShareMediaBody) -> Result<NewPost, AppError> {
        let mut fields = FieldErrors::new();
        let content_type = match &b.content_type {
            Some(serde_json::Value::String(s)) => {
                parse_content_type(s).map_err(|e| fields.insert("content_type".into(), e)).ok()
            }
            None | Some(serde_json::Value::Null) => {
                fields.insert("content_type".into(), "this field is required".into());
                None
            }
            Some(_) => {
                fields.insert("content_type".into(), "must be a string".into());
                None
            }
        };
        let object_id = match &b.object_id {
            Some(serde_json::Value::Number(n)) if n.as_i64().is_some_and(|n| n > 0) => n.as_i64(),
            // Form-style clients send ids as strings.
            Some(serde_json::Value::String(s)) if s.trim().parse::<i64>().is_ok_and(|n| n > 0) => s.trim().parse().ok(),
            None | Some(serde_json::Value::Null) => {
                fields.insert("object_id".into(), "this field is required".into());
                None
            }
            Some(_) => {
                fields.insert("object_id".into(), "must be a positive whole number".into());
                None
            }
        };
        let caption = match &b.caption {
            None | Some(serde_json::Value::Null) => String::new(),
            Some(serde_json::Value::String(s)) if s.trim().chars().count() <= CAPTION_MAX => s.trim().to_string(),
            Some(serde_json::Value::String(_)) => {
                fields.insert("caption".into(), format!("must be at most {CAPTION_MAX} characters"));
                String::new()
            }
            Some(_) => {
                fields.insert("caption".into(), "must be a string".into());
                String::new()
            }
        };
        let category = match &b.category {
            None | Some(serde_json::Value::Null) => Some(DEFAULT_CATEGORY.to_string()),
            Some(serde_json::Value::String(s)) if s.trim().is_empty() => Some(DEFAULT_CATEGORY.to_string()),
            Some(serde_json::Value::String(s)) => {
                parse_category(s).map_err(|e| fields.insert("category".into(), e)).ok()
            }
            Some(_) => {
                fields.insert("category".into(), "must be a string".into());
                None
            }
        };
        match (content_type, object_id, category) {
            (Some(content_type), Some(object_id), Some(category)) if fields.is_empty() => {
                Ok(NewPost { content_type, object_id, caption, category })
            }
            _ => Err(AppError::from_fields(fields)),
        }
    }
}

/// A post with what its answers show: the post, the asset it points at, who shared it and who
/// owns the original.
#[derive(Debug, Clone, PartialEq)]
pub struct Post {
    pub id: i64,
    pub content_type: String,
    pub object_id: i64,
    pub caption: String,
    pub category: String,
    pub shared_at: i64,
    pub is_active: bool,
    pub shared_by_id: i64,
    pub shared_by_name: String,
    pub shared_by_email: String,
    pub asset_title: String,
    pub asset_media_type: String,
    pub asset_has_thumbnail: bool,
    pub owner_id: i64,
    pub owner_name: String,
    pub owner_email: String,
}

/// The seed's attribution line; without the address for anonymous callers (SPEC §6).
pub fn attribution_text(owner_name: &str, owner_email: Option<&str>) -> String {
    match owner_email {
        Some(e) => format!("Originally by {owner_name} (@{e})"),
        None => format!("Originally by {owner_name}"),
    }
}

/// An account name split at its first space, as the seed's `first_name`/`last_name` pair.
pub fn split_name(name: &str) -> (String, String) {
    let name = name.trim();
    match name.split_once(' ') {
        Some((first, last)) => (first.to_string(), last.trim().to_string()),
        None => (name.to_string(), String::new()),
    }
}

/// Who is asking decides which fields an answer carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Anonymous callers and plain users: no e-mail addresses anywhere.
    Public,
    /// Dashboard users and admins: the seed's full shape.
    Staff,
}

/// Search filters: the words, and optionally one content type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    /// The words of the query (letters and digits only), at least one.
    pub terms: Vec<String>,
    pub content_type: Option<String>,
}

/// Splits a free-text query into plain words (letters, digits), lower-cased; operators and
/// punctuation of either engine's query syntax are never passed through.
pub fn parse_search(q: Option<&str>, content_type: Option<&str>) -> Result<SearchQuery, AppError> {
    let mut fields = FieldErrors::new();
    let q = q.unwrap_or("").trim();
    if q.chars().count() > QUERY_MAX {
        fields.insert("q".into(), format!("must be at most {QUERY_MAX} characters"));
    }
    let mut terms: Vec<String> =
        q.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(|w| w.to_lowercase()).collect();
    terms.dedup();
    terms.truncate(16);
    if terms.is_empty() && fields.is_empty() {
        fields.insert("q".into(), "enter at least one word to search for".into());
    }
    let content_type = match content_type.map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => parse_content_type(s).map_err(|e| fields.insert("content_type".into(), e)).ok(),
    };
    if fields.is_empty() { Ok(SearchQuery { terms, content_type }) } else { Err(AppError::from_fields(fields)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: serde_json::Value) -> Result<NewPost, AppError> {
        NewPost::try_from(serde_json::from_value::<ShareMediaBody>(v).expect("body"))
    }

    #[test]
    fn a_share_request_is_validated_field_by_field() {
        let ok = body(serde_json::json!({"content_type": "prop", "object_id": 4, "caption": " Nice "})).expect("ok");
        assert_eq!(
            ok,
            NewPost { content_type: "prop".into(), object_id: 4, caption: "Nice".into(), category: "general".into() }
        );
        assert_eq!(
            body(serde_json::json!({"content_type": "prop", "object_id": "4", "category": "featured"}))
                .expect("ok")
                .category,
            "featured"
        );
        for (v, field) in [
            (serde_json::json!({"object_id": 4}), "content_type"),
            (serde_json::json!({"content_type": "nope", "object_id": 4}), "content_type"),
            (serde_json::json!({"content_type": "prop"}), "object_id"),
            (serde_json::json!({"content_type": "prop", "object_id": -1}), "object_id"),
            (serde_json::json!({"content_type": "prop", "object_id": 1.5}), "object_id"),
            (serde_json::json!({"content_type": "prop", "object_id": 1, "category": "best"}), "category"),
            (serde_json::json!({"content_type": "prop", "object_id": 1, "caption": "x".repeat(2001)}), "caption"),
        ] {
            match body(v.clone()) {
                Err(AppError::Validation { fields, .. }) => assert!(fields.contains_key(field), "{v}: {fields:?}"),
                other => panic!("{v}: {other:?}"),
            }
        }
    }

    #[test]
    fn attribution_and_names_follow_the_seed() {
        assert_eq!(
            attribution_text("John Doe", Some("john@example.com")),
            "Originally by John Doe (@john@example.com)"
        );
        assert_eq!(attribution_text("John Doe", None), "Originally by John Doe");
        assert_eq!(split_name("Admin User"), ("Admin".into(), "User".into()));
        assert_eq!(split_name("Cher"), ("Cher".into(), String::new()));
        assert_eq!(split_name("Jean Paul Sartre"), ("Jean".into(), "Paul Sartre".into()));
    }

    #[test]
    fn search_queries_keep_only_words() {
        let q = parse_search(Some("Portrait* OR \"john\" -x NEAR(a b)"), None).expect("ok");
        assert_eq!(q.terms, ["portrait", "or", "john", "x", "near", "a", "b"]);
        assert!(parse_search(Some("  ** "), None).is_err());
        assert!(parse_search(Some("x"), Some("car")).is_err());
        assert_eq!(parse_search(Some("x"), Some("vehicle")).expect("ok").content_type.as_deref(), Some("vehicle"));
    }
}
