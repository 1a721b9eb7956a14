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
}

impl ChatSession {
    /// The room of the session's live events.
    pub fn room(&self) -> String {
        format!("chat:{}", self.uuid)
    }
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
}
