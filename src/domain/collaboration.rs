//! Collaboration sessions (SPEC §4): the seed's request body parsed into `NewSession`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{AppError, FieldErrors};

/// Longest session, in hours (30 days).
pub const MAX_DURATION_HOURS: i64 = 720;
/// Most participants in one session.
pub const MAX_PARTICIPANTS: usize = 200;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(as = SessionParticipantIn)]
pub struct ParticipantIn {
    pub email: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct SessionConfigIn {
    /// Default 24, at most 720.
    pub duration_hours: Option<serde_json::Value>,
    pub allow_download: Option<bool>,
    /// Default true.
    pub cursor_tracking: Option<bool>,
    pub voice_chat: Option<bool>,
    pub screen_sharing: Option<bool>,
    pub invitation_message: Option<String>,
}

/// The body of `POST /api/v3/collaboration/sessions/`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CreateSessionIn {
    pub asset_id: Option<i64>,
    #[serde(default)]
    pub participants: Vec<ParticipantIn>,
    #[serde(default)]
    pub session_config: SessionConfigIn,
}

/// What a session allows; also the `features` object of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Features {
    pub allow_download: bool,
    pub cursor_tracking: bool,
    pub voice_chat: bool,
    pub screen_sharing: bool,
}

#[derive(Debug, Clone)]
pub struct NewSession {
    pub asset_id: i64,
    pub emails: Vec<String>,
    pub features: Features,
    pub duration_hours: i64,
    pub invitation_message: String,
}

impl NewSession {
    pub fn parse(input: &CreateSessionIn) -> Result<NewSession, AppError> {
        let mut fields = FieldErrors::new();
        let asset_id = input.asset_id.unwrap_or_else(|| {
            fields.insert("asset_id".into(), "which asset is reviewed".into());
            0
        });
        let mut emails = Vec::new();
        for (i, p) in input.participants.iter().enumerate() {
            match p.email.as_deref().map(parse_email) {
                Some(Ok(e)) => {
                    if !emails.contains(&e) {
                        emails.push(e)
                    }
                }
                Some(Err(why)) => {
                    fields.insert(format!("participants[{i}].email"), why);
                }
                None => {
                    fields.insert(format!("participants[{i}].email"), "required".into());
                }
            }
        }
        if emails.len() > MAX_PARTICIPANTS {
            fields.insert("participants".into(), format!("at most {MAX_PARTICIPANTS} people"));
        }
        let c = &input.session_config;
        let duration_hours = match &c.duration_hours {
            None | Some(serde_json::Value::Null) => 24,
            Some(v) => match v.as_i64() {
                Some(h) if (1..=MAX_DURATION_HOURS).contains(&h) => h,
                _ => {
                    fields.insert(
                        "session_config.duration_hours".into(),
                        format!("a whole number of hours from 1 to {MAX_DURATION_HOURS}"),
                    );
                    24
                }
            },
        };
        let invitation_message = c.invitation_message.as_deref().unwrap_or("").trim().to_string();
        if invitation_message.chars().count() > 2000 {
            fields.insert("session_config.invitation_message".into(), "at most 2000 characters".into());
        }
        if !fields.is_empty() {
            return Err(AppError::from_fields(fields));
        }
        Ok(NewSession {
            asset_id,
            emails,
            features: Features {
                allow_download: c.allow_download.unwrap_or(false),
                cursor_tracking: c.cursor_tracking.unwrap_or(true),
                voice_chat: c.voice_chat.unwrap_or(false),
                screen_sharing: c.screen_sharing.unwrap_or(false),
            },
            duration_hours,
            invitation_message,
        })
    }
}

/// A lower-cased e-mail address with one `@`, a dotted domain and no spaces.
pub fn parse_email(raw: &str) -> Result<String, String> {
    let e = raw.trim().to_lowercase();
    let ok = e.len() <= 254
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(e.split_once('@'), Some((l, d)) if !l.is_empty() && d.contains('.') && !d.contains('@') && !d.starts_with('.') && !d.ends_with('.'));
    if ok { Ok(e) } else { Err("not a valid e-mail address".into()) }
}

/// A stored session.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: i64,
    pub uuid: String,
    pub asset_id: i64,
    pub share_id: i64,
    pub owner_id: i64,
    pub features: Features,
    pub invitation_message: String,
    pub expires_at: i64,
    pub ended_at: Option<i64>,
    pub created_at: i64,
}

impl Session {
    pub fn room(&self) -> String {
        format!("collab:{}", self.uuid)
    }

    /// `Some(reason)` once the session is over.
    pub fn over(&self, now: i64) -> Option<&'static str> {
        // An end recorded at or after the expiry is the expiry (`Store::expire_session` records
        // `ended_at = expires_at`).
        match self.ended_at {
            Some(at) if at < self.expires_at => Some("ended"),
            Some(_) => Some("expired"),
            None if self.expires_at <= now => Some("expired"),
            None => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Participant {
    pub id: i64,
    pub session_id: i64,
    pub email: String,
    pub user_id: Option<i64>,
    pub removed_at: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_body_is_parsed_with_defaults_and_refused_with_reasons() {
        let ok: CreateSessionIn = serde_json::from_value(serde_json::json!({
            "asset_id": 3, "participants": [{"email": "A@Example.com"}, {"email": "a@example.com"}],
            "session_config": {"voice_chat": true}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let s = NewSession::parse(&ok).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.emails, vec!["a@example.com"]);
        assert_eq!(s.duration_hours, 24);
        assert!(s.features.cursor_tracking && s.features.voice_chat && !s.features.screen_sharing);

        let bad: CreateSessionIn = serde_json::from_value(serde_json::json!({
            "participants": [{"email": "nope"}], "session_config": {"duration_hours": 0}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let Err(AppError::Validation { fields, .. }) = NewSession::parse(&bad) else { panic!("expected 400") };
        assert!(fields.contains_key("asset_id"));
        assert!(fields.contains_key("participants[0].email"));
        assert!(fields.contains_key("session_config.duration_hours"));
    }
}
