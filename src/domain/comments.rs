//! Comments (SPEC §4): positioned, timecoded, threaded. Request bodies become `NewComment` here;
//! the store accepts nothing else.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{AppError, FieldErrors};

/// Longest comment, in characters.
pub const MAX_CONTENT_CHARS: usize = 10_000;
/// Longest guest display name, in characters.
pub const MAX_GUEST_NAME_CHARS: usize = 80;

/// The body of `POST /api/v3/assets/{id}/comments/` (and of the WebSocket `comment` message).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CommentIn {
    pub content: Option<String>,
    pub position_x: Option<f64>,
    pub position_y: Option<f64>,
    /// `"HH:MM:SS"`, `"HH:MM:SS.mmm"`, seconds as a number, or an RFC 3339 date-time (no media position).
    #[schema(value_type = Option<String>)]
    pub timestamp: Option<serde_json::Value>,
    pub parent_comment_id: Option<i64>,
    /// Share visitors only: the name shown with the comment.
    pub guest_name: Option<String>,
}

/// A comment ready to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewComment {
    pub content: String,
    pub position_x: Option<f64>,
    pub position_y: Option<f64>,
    pub timestamp_ms: Option<i64>,
    pub parent_id: Option<i64>,
}

impl NewComment {
    /// Parses a body; `duration_ms` is the media's length when known (a timestamp past it is refused).
    pub fn parse(input: &CommentIn, duration_ms: Option<i64>) -> Result<NewComment, AppError> {
        let mut fields = FieldErrors::new();
        let content = input.content.as_deref().map(str::trim).unwrap_or("");
        if content.is_empty() {
            fields.insert("content".into(), "write something".into());
        } else if content.chars().count() > MAX_CONTENT_CHARS {
            fields.insert("content".into(), format!("at most {MAX_CONTENT_CHARS} characters"));
        } else if content.chars().any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r') {
            fields.insert("content".into(), "control characters are not allowed".into());
        }
        for (name, v) in [("position_x", input.position_x), ("position_y", input.position_y)] {
            if let Some(v) = v
                && !(v.is_finite() && (0.0..=1.0).contains(&v))
            {
                fields.insert(name.into(), "a fraction between 0 and 1".into());
            }
        }
        if input.position_x.is_some() != input.position_y.is_some() {
            fields.insert("position_y".into(), "give both position_x and position_y, or neither".into());
        }
        let timestamp_ms = match input.timestamp.as_ref().map(parse_timestamp) {
            None | Some(Ok(None)) => None,
            Some(Ok(Some(ms))) => {
                if let Some(d) = duration_ms
                    && ms > d
                {
                    fields.insert("timestamp".into(), format!("past the end of the media ({})", format_timestamp(d)));
                }
                Some(ms)
            }
            Some(Err(why)) => {
                fields.insert("timestamp".into(), why);
                None
            }
        };
        if !fields.is_empty() {
            return Err(AppError::from_fields(fields));
        }
        Ok(NewComment {
            content: content.to_string(),
            position_x: input.position_x,
            position_y: input.position_y,
            timestamp_ms,
            parent_id: input.parent_comment_id,
        })
    }
}

/// A guest's display name: trimmed, 1..=80 characters, no control characters.
pub fn parse_guest_name(raw: Option<&str>) -> Result<String, AppError> {
    let name = raw.map(str::trim).unwrap_or("");
    if name.is_empty() {
        return Err(AppError::validation("guest_name", "tell us your name"));
    }
    if name.chars().count() > MAX_GUEST_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(AppError::validation("guest_name", format!("at most {MAX_GUEST_NAME_CHARS} printable characters")));
    }
    Ok(name.to_string())
}

/// A media position in milliseconds: `"HH:MM:SS"`, `"HH:MM:SS.mmm"`, `"MM:SS"` or seconds as a
/// number. An RFC 3339 date-time (what the seed's client sends) means "no media position".
pub fn parse_timestamp(v: &serde_json::Value) -> Result<Option<i64>, String> {
    const WHY: &str = "use HH:MM:SS, HH:MM:SS.mmm or a number of seconds";
    match v {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(s) if (0.0..1e9).contains(&s) => Ok(Some((s * 1000.0).round() as i64)),
            _ => Err(WHY.into()),
        },
        serde_json::Value::String(s) => {
            let s = s.trim();
            if s.is_empty() {
                return Ok(None);
            }
            if time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok() {
                return Ok(None);
            }
            let (clock, frac) = match s.split_once('.') {
                Some((c, f)) => (c, Some(f)),
                None => (s, None),
            };
            let parts: Vec<&str> = clock.split(':').collect();
            let nums: Option<Vec<i64>> = parts
                .iter()
                .map(|p| {
                    if !p.is_empty() && p.len() <= 2 && p.bytes().all(|b| b.is_ascii_digit()) {
                        p.parse().ok()
                    } else {
                        None
                    }
                })
                .collect();
            let (h, m, sec) = match nums.as_deref() {
                Some([h, m, s]) => (*h, *m, *s),
                Some([m, s]) => (0, *m, *s),
                _ => return Err(WHY.into()),
            };
            if m > 59 || sec > 59 {
                return Err(WHY.into());
            }
            let ms = match frac {
                None => 0,
                Some(f) if !f.is_empty() && f.len() <= 3 && f.bytes().all(|b| b.is_ascii_digit()) => {
                    f.parse::<i64>().unwrap_or(0) * 10_i64.pow(3 - f.len() as u32)
                }
                Some(_) => return Err(WHY.into()),
            };
            Ok(Some(((h * 60 + m) * 60 + sec) * 1000 + ms))
        }
        _ => Err(WHY.into()),
    }
}

/// `HH:MM:SS`, with `.mmm` when the milliseconds are not zero.
pub fn format_timestamp(ms: i64) -> String {
    let (s, milli) = (ms / 1000, ms % 1000);
    let base = format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
    if milli == 0 { base } else { format!("{base}.{milli:03}") }
}

/// A stored comment.
#[derive(Debug, Clone)]
pub struct Comment {
    pub id: i64,
    pub asset_id: i64,
    pub author_id: Option<i64>,
    /// The account's name, or the guest's.
    pub author_name: String,
    pub is_guest: bool,
    pub content: String,
    pub position_x: Option<f64>,
    pub position_y: Option<f64>,
    pub timestamp_ms: Option<i64>,
    pub parent_id: Option<i64>,
    pub resolved: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CommentAuthor {
    /// Null for a share visitor.
    pub id: Option<i64>,
    pub name: String,
    pub is_guest: bool,
}

/// The JSON shape of a comment (SPEC §4).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CommentOut {
    pub id: i64,
    pub asset_id: i64,
    pub author: CommentAuthor,
    pub content: String,
    pub position_x: Option<f64>,
    pub position_y: Option<f64>,
    pub timestamp: Option<String>,
    pub parent_comment_id: Option<i64>,
    pub resolved: bool,
    pub created_at: String,
    pub updated_at: String,
    #[schema(no_recursion)]
    pub replies: Vec<CommentOut>,
}

impl CommentOut {
    pub fn of(c: &Comment) -> CommentOut {
        CommentOut {
            id: c.id,
            asset_id: c.asset_id,
            author: CommentAuthor { id: c.author_id, name: c.author_name.clone(), is_guest: c.is_guest },
            content: c.content.clone(),
            position_x: c.position_x,
            position_y: c.position_y,
            timestamp: c.timestamp_ms.map(format_timestamp),
            parent_comment_id: c.parent_id,
            resolved: c.resolved,
            created_at: crate::domain::time::rfc3339(c.created_at),
            updated_at: crate::domain::time::rfc3339(c.updated_at),
            replies: Vec::new(),
        }
    }
}

/// Builds the trees of `comments` (any order): top-level comments oldest first, each with its
/// replies nested, replies to replies included. Replies whose parent is missing become roots.
pub fn build_trees(comments: &[Comment]) -> Vec<CommentOut> {
    use std::collections::HashMap;
    let ids: std::collections::HashSet<i64> = comments.iter().map(|c| c.id).collect();
    let mut children: HashMap<i64, Vec<&Comment>> = HashMap::new();
    let mut roots: Vec<&Comment> = Vec::new();
    for c in comments {
        match c.parent_id {
            Some(p) if ids.contains(&p) => children.entry(p).or_default().push(c),
            _ => roots.push(c),
        }
    }
    fn build(c: &Comment, children: &HashMap<i64, Vec<&Comment>>, depth: usize) -> CommentOut {
        let mut out = CommentOut::of(c);
        if let Some(kids) = children.get(&c.id) {
            let mut kids = kids.clone();
            kids.sort_by_key(|k| k.id);
            // Depth is bounded by the data (a parent is older than its child), so cycles cannot occur;
            // the guard only protects against a corrupted table.
            if depth < 256 {
                out.replies = kids.iter().map(|k| build(k, children, depth + 1)).collect();
            }
        }
        out
    }
    roots.sort_by_key(|c| c.id);
    roots.iter().map(|c| build(c, &children, 0)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timestamps_parse_in_every_accepted_form() {
        assert_eq!(parse_timestamp(&json!("00:01:30")), Ok(Some(90_000)));
        assert_eq!(parse_timestamp(&json!("01:00:00.250")), Ok(Some(3_600_250)));
        assert_eq!(parse_timestamp(&json!("00:00:01.5")), Ok(Some(1_500)));
        assert_eq!(parse_timestamp(&json!("02:03")), Ok(Some(123_000)));
        assert_eq!(parse_timestamp(&json!(12.5)), Ok(Some(12_500)));
        assert_eq!(parse_timestamp(&json!("2024-01-15T10:30:00Z")), Ok(None));
        assert_eq!(parse_timestamp(&json!(null)), Ok(None));
        for bad in [json!("1:2:3:4"), json!("00:61:00"), json!("abc"), json!(-1), json!("00:00:01.1234"), json!(true)] {
            assert!(parse_timestamp(&bad).is_err(), "{bad} should be refused");
        }
        assert_eq!(format_timestamp(90_000), "00:01:30");
        assert_eq!(format_timestamp(3_600_250), "01:00:00.250");
    }

    #[test]
    fn a_comment_is_refused_with_every_reason_named() {
        let input = CommentIn {
            content: Some("  ".into()),
            position_x: Some(1.5),
            position_y: None,
            timestamp: Some(json!("00:10:00")),
            ..Default::default()
        };
        let Err(AppError::Validation { fields, .. }) = NewComment::parse(&input, Some(60_000)) else {
            panic!("expected a validation error")
        };
        assert!(fields.contains_key("content"));
        assert!(fields.contains_key("position_x"));
        assert!(fields.contains_key("position_y"));
        assert!(fields.contains_key("timestamp"));
    }
}
