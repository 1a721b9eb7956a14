//! Chat file sharing (SPEC §7): companies, visitor sessions, files and messages as the seed names
//! them. No I/O here.

use serde::Serialize;
use utoipa::ToSchema;

use super::time::rfc3339;

/// A tenant of the chat feature.
#[derive(Debug, Clone, PartialEq)]
pub struct Company {
    pub id: i64,
    /// Public id (UUIDv4), the seed's `company_id`.
    pub uuid: String,
    pub name: String,
    pub widget_key: String,
    pub created_at: i64,
}

/// A visitor's conversation with a company.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatSession {
    pub id: i64,
    /// Public id (UUIDv4), the seed's `session_id`.
    pub uuid: String,
    pub company_id: i64,
    pub company_uuid: String,
    pub created_at: i64,
    pub last_activity_at: i64,
    /// The page the visitor opened the chat from, when the widget knew it.
    pub page_url: Option<String>,
}

impl ChatSession {
    /// The room of the session's live events.
    pub fn room(&self) -> String {
        format!("chat:{}", self.uuid)
    }

    /// The name agents know the visitor by (see `visitor_label`).
    pub fn visitor_label(&self) -> String {
        visitor_label(&self.uuid)
    }
}

const LABEL_ADJECTIVES: [&str; 48] = [
    "Amber", "Azure", "Brave", "Bright", "Calm", "Cedar", "Coral", "Crimson", "Dapper", "Eager", "Emerald", "Fern",
    "Gentle", "Golden", "Happy", "Hazel", "Indigo", "Ivory", "Jade", "Jolly", "Kind", "Lively", "Lucky", "Maple",
    "Mellow", "Misty", "Noble", "Olive", "Peach", "Plum", "Quiet", "Rosy", "Ruby", "Sage", "Scarlet", "Silver",
    "Sunny", "Swift", "Teal", "Tidy", "Topaz", "Velvet", "Violet", "Warm", "Witty", "Young", "Zesty", "Cosy",
];

const LABEL_ANIMALS: [&str; 48] = [
    "Badger", "Bear", "Beaver", "Bison", "Crane", "Deer", "Dolphin", "Dove", "Eagle", "Falcon", "Finch", "Fox",
    "Gecko", "Goose", "Hare", "Hedgehog", "Heron", "Ibis", "Koala", "Lark", "Lemur", "Lion", "Lynx", "Marten", "Moose",
    "Newt", "Otter", "Owl", "Panda", "Puffin", "Quail", "Rabbit", "Raven", "Robin", "Seal", "Sparrow", "Stork", "Swan",
    "Tiger", "Toucan", "Turtle", "Walrus", "Whale", "Wolf", "Wombat", "Wren", "Yak", "Zebra",
];

/// A friendly, stable name for the visitor of a session, e.g. "Visitor Amber Fox": derived from
/// the session id alone (SHA-256), so every instance, every reload and every agent shows the same.
pub fn visitor_label(session_uuid: &str) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(session_uuid.as_bytes());
    let adjective = LABEL_ADJECTIVES[usize::from(u16::from_be_bytes([h[0], h[1]])) % LABEL_ADJECTIVES.len()];
    let animal = LABEL_ANIMALS[usize::from(u16::from_be_bytes([h[2], h[3]])) % LABEL_ANIMALS.len()];
    format!("Visitor {adjective} {animal}")
}

/// The labels of sessions listed together (one dashboard list), in the order given: each session's
/// `visitor_label`, except that sessions drawing the same one (2,304 names) are told apart by a
/// short suffix from their session ids ("Visitor Amber Fox · 3f2b"), as long as needed to differ.
/// The one place where labels are made unique: a label without a collision stays the plain one.
pub fn visitor_labels<S: AsRef<str>>(session_uuids: &[S]) -> Vec<String> {
    let mut labels: Vec<String> = session_uuids.iter().map(|u| visitor_label(u.as_ref())).collect();
    let mut groups: std::collections::HashMap<String, Vec<usize>> = std::collections::HashMap::new();
    for (i, l) in labels.iter().enumerate() {
        groups.entry(l.clone()).or_default().push(i);
    }
    let ids: Vec<Vec<char>> = session_uuids
        .iter()
        .map(|u| u.as_ref().chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect())
        .collect();
    for (base, members) in groups.into_iter().filter(|(_, m)| m.len() > 1) {
        let longest = members.iter().map(|&i| ids[i].len()).max().unwrap_or(0);
        let mut n = 4.min(longest);
        loop {
            let suffixes: std::collections::HashSet<String> =
                members.iter().map(|&i| ids[i].iter().take(n).collect()).collect();
            if suffixes.len() == members.len() || n >= longest {
                break;
            }
            n += 1;
        }
        for &i in &members {
            let suffix: String = ids[i].iter().take(n).collect();
            // Ids without a letter or digit (never a real uuid) keep their place in the list.
            labels[i] = if suffix.is_empty() { format!("{base} · {}", i + 1) } else { format!("{base} · {suffix}") };
        }
    }
    labels
}

pub const MAX_PAGE_URL_CHARS: usize = 2048;

/// The page a visitor came from, as the widget reports it: empty means unknown; otherwise an
/// absolute http(s) URL of at most 2048 characters, kept without credentials or fragment.
pub fn parse_page_url(raw: &str) -> Result<Option<String>, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    if raw.chars().count() > MAX_PAGE_URL_CHARS {
        return Err(format!("must be at most {MAX_PAGE_URL_CHARS} characters"));
    }
    let mut url = url::Url::parse(raw).map_err(|_| "must be an absolute http or https URL".to_string())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("must be an absolute http or https URL".into());
    }
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_fragment(None);
    let url = url.to_string();
    if url.chars().count() > MAX_PAGE_URL_CHARS {
        return Err(format!("must be at most {MAX_PAGE_URL_CHARS} characters"));
    }
    Ok(Some(url))
}

/// Which side of the conversation acted (the seed's `uploader`, and a message's `sender`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    User,
    Agent,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::User => "user",
            Side::Agent => "agent",
        }
    }

    pub fn parse(s: &str) -> Option<Side> {
        match s {
            "user" => Some(Side::User),
            "agent" => Some(Side::Agent),
            _ => None,
        }
    }
}

/// A stored chat file.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatFile {
    pub id: i64,
    pub company_uuid: String,
    pub session_uuid: String,
    pub uploader: Side,
    pub original_name: String,
    pub mime_type: String,
    pub size: i64,
    pub sha256: String,
    pub blob_key: String,
    pub thumb_key: Option<String>,
    pub created_at: i64,
}

/// A stored chat message.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    pub id: i64,
    pub company_uuid: String,
    pub session_uuid: String,
    pub sender: Side,
    pub text: String,
    pub created_at: i64,
}

/// A message as clients see it (REST and the socket's `message` event).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = ChatMessageOut)]
pub struct MessageOut {
    pub id: i64,
    pub company_id: String,
    pub session_id: String,
    pub sender: Side,
    pub text: String,
    pub created_at: String,
}

impl MessageOut {
    pub fn of(m: &ChatMessage) -> MessageOut {
        MessageOut {
            id: m.id,
            company_id: m.company_uuid.clone(),
            session_id: m.session_uuid.clone(),
            sender: m.sender,
            text: m.text.clone(),
            created_at: rfc3339(m.created_at),
        }
    }
}

pub const MAX_MESSAGE_CHARS: usize = 4000;
pub const MAX_COMPANY_NAME_CHARS: usize = 200;

/// A message's text: trimmed, 1..4000 characters, no control characters but newlines and tabs.
pub fn parse_message(text: &str) -> Result<String, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("the message is empty".into());
    }
    if t.chars().count() > MAX_MESSAGE_CHARS {
        return Err(format!("messages are limited to {MAX_MESSAGE_CHARS} characters"));
    }
    if t.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r')) {
        return Err("the message contains control characters".into());
    }
    Ok(t.to_string())
}

/// A company name: trimmed, 1..200 characters, one line.
pub fn parse_company_name(name: &str) -> Result<String, String> {
    let n = name.trim();
    if n.is_empty() {
        return Err("is required".into());
    }
    if n.chars().count() > MAX_COMPANY_NAME_CHARS {
        return Err(format!("must be at most {MAX_COMPANY_NAME_CHARS} characters"));
    }
    if n.chars().any(char::is_control) {
        return Err("must be one line of text".into());
    }
    Ok(n.to_string())
}

/// Two MIME types name the same thing (aliases clients commonly send).
pub fn same_mime(declared: &str, actual: &str) -> bool {
    fn canonical(m: &str) -> String {
        let m = m.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match m.as_str() {
            "image/jpg" | "image/pjpeg" => "image/jpeg".into(),
            "image/x-png" => "image/png".into(),
            "application/x-pdf" => "application/pdf".into(),
            "text/comma-separated-values" | "application/csv" => "text/csv".into(),
            "text/rtf" => "application/rtf".into(),
            _ => m,
        }
    }
    let (d, a) = (canonical(declared), canonical(actual));
    // Browsers often label CSV files as plain text or Excel, and text as CSV.
    d == a
        || (a == "text/csv" && matches!(d.as_str(), "text/plain" | "application/vnd.ms-excel"))
        || (a == "text/plain" && d == "text/csv")
}

/// The declared type says nothing (the client did not know).
pub fn no_claim(declared: &str) -> bool {
    let d = declared.trim();
    d.is_empty() || d.eq_ignore_ascii_case("application/octet-stream")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_checked() {
        assert_eq!(parse_message("  hello \n").as_deref(), Ok("hello"));
        assert!(parse_message("   ").is_err());
        assert!(parse_message(&"x".repeat(4001)).is_err());
        assert!(parse_message(&"é".repeat(4000)).is_ok());
        assert!(parse_message("bell\u{7}").is_err());
    }

    #[test]
    fn mime_aliases_match() {
        assert!(same_mime("image/jpg", "image/jpeg"));
        assert!(same_mime("Application/PDF; charset=binary", "application/pdf"));
        assert!(same_mime("text/plain", "text/csv"));
        assert!(!same_mime("application/pdf", "image/png"));
        assert!(no_claim("application/octet-stream") && no_claim(" "));
    }

    #[test]
    fn company_names_are_checked() {
        assert_eq!(parse_company_name(" Acme ").as_deref(), Ok("Acme"));
        assert!(parse_company_name("").is_err());
        assert!(parse_company_name("a\nb").is_err());
    }

    /// Two session ids starting with `prefix` that draw the same label (2,304 labels).
    fn colliding_ids(prefix: &str) -> (String, String) {
        let mut seen = std::collections::HashMap::new();
        for i in 0..100_000u32 {
            let id = format!("{prefix}{:08x}-0000-4000-8000-000000000000", i.wrapping_mul(0x9E37_79B1));
            if let Some(first) = seen.insert(visitor_label(&id), id.clone()) {
                return (first, id);
            }
        }
        unreachable!("2,304 labels collide long before 100,000 ids")
    }

    #[test]
    fn labels_listed_together_are_unique_and_plain_without_a_collision() {
        let (a, b) = colliding_ids("");
        let base = visitor_label(&a);
        assert_eq!(visitor_label(&b), base);
        assert_ne!(a[..4], b[..4], "the search runs through the first characters");
        let other = "3f2b8c1e-0d4a-4b7e-9a51-6c2d8e9f0a1b";
        let labels = visitor_labels(&[a.as_str(), other, b.as_str()]);
        assert_eq!(labels[1], visitor_label(other), "no collision, the plain label");
        assert_eq!(labels[0], format!("{base} · {}", &a[..4]));
        assert_eq!(labels[2], format!("{base} · {}", &b[..4]));
        // The same first characters: the suffix grows until the two differ.
        let (c, d) = colliding_ids("abcdef");
        let labels = visitor_labels(&[c.as_str(), d.as_str()]);
        assert_ne!(labels[0], labels[1], "{labels:?}");
        assert!(labels[0].starts_with(&format!("{} · abcdef", visitor_label(&c))), "{labels:?}");
        // Alone, each keeps its plain label; the same input, the same labels.
        assert_eq!(visitor_labels(&[a.as_str()]), vec![base.clone()]);
        assert_eq!(visitor_labels(&[&a, &b]), visitor_labels(&[&a, &b]));
        assert!(visitor_labels::<&str>(&[]).is_empty());
    }

    #[test]
    fn visitor_labels_are_stable_and_friendly() {
        let id = "3f2b8c1e-0d4a-4b7e-9a51-6c2d8e9f0a1b";
        let label = visitor_label(id);
        assert_eq!(label, visitor_label(id), "the same id, the same label");
        let words: Vec<&str> = label.split(' ').collect();
        assert_eq!(words.len(), 3, "{label}");
        assert_eq!(words[0], "Visitor");
        assert!(LABEL_ADJECTIVES.contains(&words[1]) && LABEL_ANIMALS.contains(&words[2]), "{label}");
        assert!(!label.contains(&id[..8]), "no hex id in the label");
        // Pinned: a label never changes between versions, instances or reloads.
        let pinned = visitor_label("a");
        assert_eq!(pinned, "Visitor Maple Koala", "sha256(\"a\") = ca978112…");
        // Different sessions are told apart (most of the time: 2304 names).
        let distinct: std::collections::HashSet<String> =
            (0..100).map(|i| visitor_label(&format!("session-{i}"))).collect();
        assert!(distinct.len() > 90, "{} distinct labels of 100", distinct.len());
        let session = ChatSession {
            id: 1,
            uuid: id.into(),
            company_id: 1,
            company_uuid: "c".into(),
            created_at: 0,
            last_activity_at: 0,
            page_url: None,
        };
        assert_eq!(session.visitor_label(), label);
    }

    #[test]
    fn page_urls_are_checked_and_cleaned() {
        assert_eq!(parse_page_url("  "), Ok(None));
        assert_eq!(
            parse_page_url("https://shop.example/pricing?plan=pro"),
            Ok(Some("https://shop.example/pricing?plan=pro".into()))
        );
        assert_eq!(parse_page_url("https://me:pw@shop.example/a#top"), Ok(Some("https://shop.example/a".into())));
        assert!(parse_page_url("javascript:alert(1)").is_err());
        assert!(parse_page_url("/relative").is_err());
        assert!(parse_page_url("ftp://files.example/x").is_err());
        assert!(parse_page_url(&format!("https://a.example/{}", "x".repeat(2048))).is_err());
    }
}
