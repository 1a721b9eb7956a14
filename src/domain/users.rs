//! Accounts: roles, e-mail addresses, names and passwords, parsed at the edge.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{AppError, FieldErrors};

/// What an account may do (SPEC §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Dashboard,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Dashboard => "dashboard",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "user" => Some(Role::User),
            "dashboard" => Some(Role::Dashboard),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// A syntactically valid, lower-cased e-mail address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Email, String> {
        let s = raw.trim().to_lowercase();
        if s.len() > 254 {
            return Err("must be at most 254 characters".into());
        }
        let Some((local, domain)) = s.rsplit_once('@') else {
            return Err("must be an e-mail address such as ada@example.com".into());
        };
        let ok_local =
            !local.is_empty() && local.len() <= 64 && !local.chars().any(|c| c.is_whitespace() || c.is_control());
        let ok_domain = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && domain.split('.').all(|l| !l.is_empty() && l.chars().all(|c| c.is_alphanumeric() || c == '-'));
        if ok_local && ok_domain && !local.contains('@') {
            Ok(Email(s))
        } else {
            Err("must be an e-mail address such as ada@example.com".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password that meets the policy; never logged or printed.
#[derive(Clone)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

pub const PASSWORD_MIN: usize = 8;
pub const PASSWORD_MAX: usize = 1024;

impl Password {
    pub fn parse(raw: &str) -> Result<Password, String> {
        let n = raw.chars().count();
        if n < PASSWORD_MIN {
            Err(format!("must be at least {PASSWORD_MIN} characters"))
        } else if raw.len() > PASSWORD_MAX {
            Err(format!("must be at most {PASSWORD_MAX} bytes"))
        } else {
            Ok(Password(raw.to_string()))
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A display name: trimmed, 1..=150 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonName(String);

impl PersonName {
    pub fn parse(raw: &str) -> Result<PersonName, String> {
        let s = raw.trim();
        if s.is_empty() {
            Err("must not be empty".into())
        } else if s.chars().count() > 150 {
            Err("must be at most 150 characters".into())
        } else if s.chars().any(char::is_control) {
            Err("must not contain control characters".into())
        } else {
            Ok(PersonName(s.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new account, valid by construction.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: Email,
    pub name: PersonName,
    pub password: Password,
    /// None: `user`, or `admin` for the very first account.
    pub role: Option<Role>,
}

impl NewUser {
    /// Parses the three common fields, collecting every problem into one 400.
    pub fn parse(
        email: Option<&str>,
        password: Option<&str>,
        name: Option<&str>,
        role: Option<&str>,
    ) -> Result<NewUser, AppError> {
        let mut fields = FieldErrors::new();
        let email = match email {
            Some(e) => Email::parse(e).map_err(|w| fields.insert("email".into(), w)).ok(),
            None => {
                fields.insert("email".into(), "is required".into());
                None
            }
        };
        let password = match password {
            Some(p) => Password::parse(p).map_err(|w| fields.insert("password".into(), w)).ok(),
            None => {
                fields.insert("password".into(), "is required".into());
                None
            }
        };
        let name = match name {
            Some(n) => PersonName::parse(n).map_err(|w| fields.insert("name".into(), w)).ok(),
            None => {
                fields.insert("name".into(), "is required".into());
                None
            }
        };
        let role = match role {
            None => None,
            Some(r) => match Role::parse(r) {
                Some(r) => Some(r),
                None => {
                    fields.insert("role".into(), "must be one of user, dashboard, admin".into());
                    None
                }
            },
        };
        match (email, password, name) {
            (Some(email), Some(password), Some(name)) if fields.is_empty() => {
                Ok(NewUser { email, name, password, role })
            }
            _ => Err(AppError::from_fields(fields)),
        }
    }
}

/// An account as stored.
#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub is_active: bool,
    pub password_hash: String,
    pub created_at: i64,
}

impl User {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_lowercased_and_checked() {
        assert_eq!(Email::parse(" Ada@Example.COM ").map(|e| e.0), Ok("ada@example.com".to_string()));
        for bad in ["", "ada", "ada@", "@x.com", "a b@x.com", "ada@x", "ada@.com", "a@b@c.com"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_have_a_minimum_length() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse("long enough").is_ok());
        assert_eq!(format!("{:?}", Password::parse("long enough").ok()), "Some(Password(***))");
    }

    #[test]
    fn new_user_collects_every_problem() {
        let Err(AppError::Validation { fields, .. }) = NewUser::parse(Some("x"), None, Some(" "), Some("root")) else {
            panic!("expected validation error")
        };
        assert_eq!(fields.len(), 4);
    }
}
