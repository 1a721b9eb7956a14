//! The audit log's values (SPEC §13): the actions, their targets, an entry as written, an entry as
//! read, and the filters of the admin's list. No I/O here.

use std::fmt::Display;

use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{AppError, FieldErrors};

/// Everything the audit log records. The wire names (`as_str`) are part of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
pub enum AuditAction {
    #[serde(rename = "login.succeeded")]
    LoginSucceeded,
    #[serde(rename = "login.failed")]
    LoginFailed,
    #[serde(rename = "token.created")]
    TokenCreated,
    #[serde(rename = "token.revoked")]
    TokenRevoked,
    #[serde(rename = "share.created")]
    ShareCreated,
    #[serde(rename = "share.updated")]
    ShareUpdated,
    #[serde(rename = "share.revoked")]
    ShareRevoked,
    #[serde(rename = "share.unlock_failed")]
    ShareUnlockFailed,
    #[serde(rename = "share.locked_out")]
    ShareLockedOut,
    #[serde(rename = "file_request.created")]
    FileRequestCreated,
    #[serde(rename = "file_request.updated")]
    FileRequestUpdated,
    #[serde(rename = "file_request.closed")]
    FileRequestClosed,
    #[serde(rename = "file_request.unlock_failed")]
    FileRequestUnlockFailed,
    #[serde(rename = "file_request.locked_out")]
    FileRequestLockedOut,
    #[serde(rename = "user.created")]
    UserCreated,
    #[serde(rename = "user.role_changed")]
    UserRoleChanged,
    #[serde(rename = "user.deactivated")]
    UserDeactivated,
    #[serde(rename = "user.activated")]
    UserActivated,
    #[serde(rename = "policy.updated")]
    PolicyUpdated,
    #[serde(rename = "webhook.created")]
    WebhookCreated,
    #[serde(rename = "webhook.deleted")]
    WebhookDeleted,
    #[serde(rename = "asset.deleted")]
    AssetDeleted,
    #[serde(rename = "collection.deleted")]
    CollectionDeleted,
}

impl AuditAction {
    /// Every action, in the order the admin page lists them.
    pub const ALL: [AuditAction; 23] = [
        AuditAction::LoginSucceeded,
        AuditAction::LoginFailed,
        AuditAction::TokenCreated,
        AuditAction::TokenRevoked,
        AuditAction::ShareCreated,
        AuditAction::ShareUpdated,
        AuditAction::ShareRevoked,
        AuditAction::ShareUnlockFailed,
        AuditAction::ShareLockedOut,
        AuditAction::FileRequestCreated,
        AuditAction::FileRequestUpdated,
        AuditAction::FileRequestClosed,
        AuditAction::FileRequestUnlockFailed,
        AuditAction::FileRequestLockedOut,
        AuditAction::UserCreated,
        AuditAction::UserRoleChanged,
        AuditAction::UserDeactivated,
        AuditAction::UserActivated,
        AuditAction::PolicyUpdated,
        AuditAction::WebhookCreated,
        AuditAction::WebhookDeleted,
        AuditAction::AssetDeleted,
        AuditAction::CollectionDeleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::LoginSucceeded => "login.succeeded",
            AuditAction::LoginFailed => "login.failed",
            AuditAction::TokenCreated => "token.created",
            AuditAction::TokenRevoked => "token.revoked",
            AuditAction::ShareCreated => "share.created",
            AuditAction::ShareUpdated => "share.updated",
            AuditAction::ShareRevoked => "share.revoked",
            AuditAction::ShareUnlockFailed => "share.unlock_failed",
            AuditAction::ShareLockedOut => "share.locked_out",
            AuditAction::FileRequestCreated => "file_request.created",
            AuditAction::FileRequestUpdated => "file_request.updated",
            AuditAction::FileRequestClosed => "file_request.closed",
            AuditAction::FileRequestUnlockFailed => "file_request.unlock_failed",
            AuditAction::FileRequestLockedOut => "file_request.locked_out",
            AuditAction::UserCreated => "user.created",
            AuditAction::UserRoleChanged => "user.role_changed",
            AuditAction::UserDeactivated => "user.deactivated",
            AuditAction::UserActivated => "user.activated",
            AuditAction::PolicyUpdated => "policy.updated",
            AuditAction::WebhookCreated => "webhook.created",
            AuditAction::WebhookDeleted => "webhook.deleted",
            AuditAction::AssetDeleted => "asset.deleted",
            AuditAction::CollectionDeleted => "collection.deleted",
        }
    }

    pub fn parse(s: &str) -> Option<AuditAction> {
        AuditAction::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// What an action is about (`target_type` of its rows).
    pub fn target_type(self) -> TargetType {
        match self {
            AuditAction::LoginSucceeded
            | AuditAction::LoginFailed
            | AuditAction::UserCreated
            | AuditAction::UserRoleChanged
            | AuditAction::UserDeactivated
            | AuditAction::UserActivated => TargetType::User,
            AuditAction::TokenCreated | AuditAction::TokenRevoked => TargetType::Token,
            AuditAction::ShareCreated
            | AuditAction::ShareUpdated
            | AuditAction::ShareRevoked
            | AuditAction::ShareUnlockFailed
            | AuditAction::ShareLockedOut => TargetType::Share,
            AuditAction::FileRequestCreated
            | AuditAction::FileRequestUpdated
            | AuditAction::FileRequestClosed
            | AuditAction::FileRequestUnlockFailed
            | AuditAction::FileRequestLockedOut => TargetType::FileRequest,
            AuditAction::PolicyUpdated => TargetType::Policy,
            AuditAction::WebhookCreated | AuditAction::WebhookDeleted => TargetType::Webhook,
            AuditAction::AssetDeleted => TargetType::Asset,
            AuditAction::CollectionDeleted => TargetType::Collection,
        }
    }
}

/// The kinds of things an entry is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetType {
    User,
    Token,
    Share,
    FileRequest,
    Policy,
    Webhook,
    Asset,
    Collection,
}

impl TargetType {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetType::User => "user",
            TargetType::Token => "token",
            TargetType::Share => "share",
            TargetType::FileRequest => "file_request",
            TargetType::Policy => "policy",
            TargetType::Webhook => "webhook",
            TargetType::Asset => "asset",
            TargetType::Collection => "collection",
        }
    }
}

/// Who acted and from where: the account (None: the operator's CLI, or nobody signed in, as in a
/// failed sign-in or a link's password form) and the keyed hash of the client's address
/// (`visitors::ip_key`; None when there is no client, as in the CLI).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Who {
    pub actor_id: Option<i64>,
    pub ip: Option<String>,
}

impl Who {
    /// The operator (CLI) or the server itself: no account, no address.
    pub fn system() -> Who {
        Who::default()
    }

    /// An entry about `target_id` (its type follows from the action).
    pub fn entry(&self, action: AuditAction, target_id: impl Display, details: serde_json::Value) -> AuditEntry {
        AuditEntry {
            actor_id: self.actor_id,
            ip: self.ip.clone(),
            action,
            target_type: action.target_type(),
            target_id: target_id.to_string(),
            details,
        }
    }

    /// The same address, another actor (a sign-up acts as the account it creates).
    pub fn as_actor(&self, actor_id: i64) -> Who {
        Who { actor_id: Some(actor_id), ip: self.ip.clone() }
    }
}

/// One row to append. `details` is a JSON object (never a secret: no password, no token value).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub actor_id: Option<i64>,
    pub ip: Option<String>,
    pub action: AuditAction,
    pub target_type: TargetType,
    pub target_id: String,
    pub details: serde_json::Value,
}

/// One row as stored, with its actor's e-mail address when the account still exists.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub id: i64,
    pub at: i64,
    pub actor_id: Option<i64>,
    pub actor_email: Option<String>,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub ip: Option<String>,
    /// The stored JSON text.
    pub details: String,
}

/// Which entries the admin asks for; every bound is optional and they combine (AND).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub actor_id: Option<i64>,
    pub action: Option<AuditAction>,
    /// Entries at or after this instant (ms).
    pub since: Option<i64>,
    /// Entries at or before this instant (ms).
    pub until: Option<i64>,
}

/// How `since`/`until` may be written: the API takes RFC 3339 only; the page's form also takes
/// what a `datetime-local` input sends (`2024-01-15T10:30`, read as UTC) and a plain date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSyntax {
    Rfc3339,
    Form,
}

impl AuditFilter {
    /// The filters of a query string (each given as text); every malformed one is named in the 400.
    pub fn parse(
        actor_id: Option<&str>,
        action: Option<&str>,
        since: Option<&str>,
        until: Option<&str>,
        syntax: TimeSyntax,
    ) -> Result<AuditFilter, AppError> {
        let mut fields = FieldErrors::new();
        fn given(v: Option<&str>) -> Option<&str> {
            v.map(str::trim).filter(|v| !v.is_empty())
        }
        let actor_id = given(actor_id).and_then(|v| match v.parse::<i64>() {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                fields.insert("actor_id".into(), "must be an account id (a whole number from 1)".into());
                None
            }
        });
        let action = given(action).and_then(|v| {
            AuditAction::parse(v).or_else(|| {
                fields
                    .insert("action".into(), "is not a known action (for example login.failed, share.created)".into());
                None
            })
        });
        let mut instant = |name: &str, v: Option<&str>| {
            given(v).and_then(|v| {
                parse_instant(v, syntax).or_else(|| {
                    let why = match syntax {
                        TimeSyntax::Rfc3339 => "must be an RFC 3339 date-time, such as 2024-01-15T10:30:00Z",
                        TimeSyntax::Form => "must be a date and time, such as 2024-01-15T10:30",
                    };
                    fields.insert(name.into(), why.into());
                    None
                })
            })
        };
        let since = instant("since", since);
        let until = instant("until", until);
        if let (Some(s), Some(u)) = (since, until)
            && u < s
        {
            fields.insert("until".into(), "must not be before since".into());
        }
        if fields.is_empty() {
            Ok(AuditFilter { actor_id, action, since, until })
        } else {
            Err(AppError::from_fields(fields))
        }
    }
}

/// `s` as unix milliseconds, in `syntax`; None when it is not a valid instant.
pub fn parse_instant(s: &str, syntax: TimeSyntax) -> Option<i64> {
    use ::time::format_description::well_known::Rfc3339;
    let ms = |t: ::time::OffsetDateTime| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok();
    if let Ok(t) = ::time::OffsetDateTime::parse(s, &Rfc3339) {
        return ms(t);
    }
    if syntax == TimeSyntax::Rfc3339 {
        return None;
    }
    let minute = ::time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let second = ::time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let day = ::time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(t) =
        ::time::PrimitiveDateTime::parse(s, &second).or_else(|_| ::time::PrimitiveDateTime::parse(s, &minute))
    {
        return ms(t.assume_utc());
    }
    ::time::Date::parse(s, &day).ok().and_then(|d| ms(d.midnight().assume_utc()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_round_trips_by_its_wire_name() {
        for a in AuditAction::ALL {
            assert_eq!(AuditAction::parse(a.as_str()), Some(a));
            assert_eq!(serde_json::to_value(a).ok(), Some(serde_json::Value::String(a.as_str().into())));
        }
        assert_eq!(AuditAction::parse("share.deleted"), None);
    }

    #[test]
    fn filters_name_each_malformed_field() {
        let ok = AuditFilter::parse(
            Some("3"),
            Some("login.failed"),
            Some("2024-01-15T10:30:00Z"),
            None,
            TimeSyntax::Rfc3339,
        );
        assert_eq!(
            ok.ok(),
            Some(AuditFilter {
                actor_id: Some(3),
                action: Some(AuditAction::LoginFailed),
                since: Some(1_705_314_600_000),
                until: None
            })
        );
        let Err(AppError::Validation { fields, .. }) =
            AuditFilter::parse(Some("x"), Some("nope"), Some("yesterday"), Some("2024-01-15"), TimeSyntax::Rfc3339)
        else {
            panic!("refused")
        };
        for f in ["actor_id", "action", "since", "until"] {
            assert!(fields.contains_key(f), "{f}");
        }
        assert!(
            AuditFilter::parse(
                None,
                None,
                Some("2024-01-16T00:00:00Z"),
                Some("2024-01-15T00:00:00Z"),
                TimeSyntax::Rfc3339
            )
            .is_err()
        );
    }

    #[test]
    fn the_form_also_takes_local_date_times_as_utc() {
        assert_eq!(parse_instant("2024-01-15T10:30", TimeSyntax::Form), Some(1_705_314_600_000));
        assert_eq!(parse_instant("2024-01-15", TimeSyntax::Form), Some(1_705_276_800_000));
        assert_eq!(parse_instant("2024-01-15T10:30", TimeSyntax::Rfc3339), None);
    }
}
