//! Personal access tokens (SPEC §13): their scopes, the validated body that creates one, and the
//! one rule that says which scope a request needs (`required_scope`).

use serde::Deserialize;
use utoipa::ToSchema;

use crate::error::{AppError, FieldErrors};

/// Every token's value starts with this; the rest is 43 characters of base64url (32 random bytes).
pub const TOKEN_PREFIX: &str = "vtr_";
/// How many tokens one account may hold (expired ones count until they are deleted).
pub const MAX_TOKENS_PER_USER: i64 = 100;
pub const NAME_MAX_CHARS: usize = 100;
pub const MAX_EXPIRY_DAYS: i64 = 3650;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// GET and HEAD requests.
    Read,
    /// State-changing requests on assets, collections, comments, uploads, chat, collaboration.
    Write,
    /// State-changing requests on share links and file requests.
    Share,
    /// `/api/admin/*` and the other admin-only endpoints (the account must be an admin).
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Read, Scope::Write, Scope::Share, Scope::Admin];

    pub fn parse(s: &str) -> Option<Scope> {
        Some(match s {
            "read" => Scope::Read,
            "write" => Scope::Write,
            "share" => Scope::Share,
            "admin" => Scope::Admin,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Share => "share",
            Scope::Admin => "admin",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Scope::Read => 1,
            Scope::Write => 2,
            Scope::Share => 4,
            Scope::Admin => 8,
        }
    }
}

/// A set of scopes. Sign-ins (JWTs, the page cookie) hold `Scopes::ALL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scopes(u8);

impl Scopes {
    pub const ALL: Scopes = Scopes(15);
    pub const NONE: Scopes = Scopes(0);

    pub fn of(list: &[Scope]) -> Scopes {
        Scopes(list.iter().fold(0, |acc, s| acc | s.bit()))
    }

    pub fn contains(self, s: Scope) -> bool {
        self.0 & s.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes in their canonical order.
    pub fn list(self) -> Vec<Scope> {
        Scope::ALL.into_iter().filter(|s| self.contains(*s)).collect()
    }

    pub fn names(self) -> Vec<String> {
        self.list().into_iter().map(|s| s.as_str().to_string()).collect()
    }

    /// As stored: names joined by commas (`read,write`).
    pub fn to_db(self) -> String {
        self.names().join(",")
    }

    /// From the stored form; unknown names (none are written) are dropped.
    pub fn from_db(s: &str) -> Scopes {
        Scopes::of(&s.split(',').filter_map(|n| Scope::parse(n.trim())).collect::<Vec<_>>())
    }
}

/// A stored token, without its value (only its hash is kept, and never leaves the store).
#[derive(Debug, Clone, PartialEq)]
pub struct AccessToken {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub scopes: Scopes,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

impl AccessToken {
    pub fn expired(&self, now_ms: i64) -> bool {
        self.expires_at.is_some_and(|e| e <= now_ms)
    }
}

/// The body of `POST /api/auth/tokens/`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTokenIn {
    /// 1 to 100 characters.
    pub name: Option<String>,
    /// A non-empty subset of `read`, `write`, `share`, `admin` (`admin`: admin accounts only).
    pub scopes: Option<Vec<String>>,
    /// 1 to 3650; omitted: the token does not expire.
    pub expires_in_days: Option<i64>,
}

/// A valid request for a new token.
#[derive(Debug, Clone, PartialEq)]
pub struct NewToken {
    pub name: String,
    pub scopes: Scopes,
    pub expires_in_days: Option<i64>,
}

impl NewToken {
    /// Checks every field; `is_admin` says whether the account may hold the `admin` scope.
    pub fn parse(input: NewTokenIn, is_admin: bool) -> Result<NewToken, AppError> {
        let mut f = FieldErrors::new();
        let name = input.name.map(|n| n.trim().to_string()).unwrap_or_default();
        if name.is_empty() {
            f.insert("name".into(), "is required".into());
        } else if name.chars().count() > NAME_MAX_CHARS {
            f.insert("name".into(), format!("must be at most {NAME_MAX_CHARS} characters"));
        } else if name.chars().any(char::is_control) {
            f.insert("name".into(), "must not contain control characters".into());
        }
        let mut scopes = vec![];
        match input.scopes {
            None => drop(f.insert("scopes".into(), "is required: a list of read, write, share, admin".into())),
            Some(list) if list.is_empty() => {
                f.insert("scopes".into(), "must name at least one of read, write, share, admin".into());
            }
            Some(list) => {
                let unknown: Vec<&String> = list.iter().filter(|s| Scope::parse(s).is_none()).collect();
                if !unknown.is_empty() {
                    let names = unknown.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ");
                    f.insert("scopes".into(), format!("unknown scope {names}: use read, write, share, admin"));
                } else {
                    scopes = list.iter().filter_map(|s| Scope::parse(s)).collect();
                    if scopes.contains(&Scope::Admin) && !is_admin {
                        f.insert("scopes".into(), "the admin scope is for admin accounts only".into());
                    }
                }
            }
        }
        if let Some(d) = input.expires_in_days
            && !(1..=MAX_EXPIRY_DAYS).contains(&d)
        {
            f.insert("expires_in_days".into(), format!("must be a whole number of days from 1 to {MAX_EXPIRY_DAYS}"));
        }
        if !f.is_empty() {
            return Err(AppError::from_fields(f));
        }
        Ok(NewToken { name, scopes: Scopes::of(&scopes), expires_in_days: input.expires_in_days })
    }
}

/// What a request made with an access token needs: a scope, or nothing a token can give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    Scope(Scope),
    /// Token management and the other account endpoints: only a sign-in may call them, so a
    /// leaked token cannot mint more tokens or outlive its revocation.
    SignIn,
}

/// Path prefixes (whole segments) only admins reach, besides `/api/admin/`.
const ADMIN_PATHS: &[&str] = &["/api/admin", "/api/companies", "/api/dashboard/shared-media/stats"];

/// State-changing calls under these need the `share` scope (`*` is one path segment).
const SHARE_PATHS: &[&str] =
    &["/api/v3/shares", "/api/v3/file-requests", "/api/v3/assets/*/share", "/api/v3/collections/*/share"];

/// WebSockets that post (comments, messages) need `write` although the upgrade is a GET.
const WRITE_SOCKETS: &[&str] = &["/ws/collaboration", "/ws/chat"];

/// Whether `path` is `prefix` or below it, segment by segment (`*` matches any one segment).
fn under(path: &str, prefix: &str) -> bool {
    let mut p = path.trim_end_matches('/').split('/');
    for want in prefix.split('/') {
        match p.next() {
            Some(got) if want == "*" || got == want => {}
            _ => return false,
        }
    }
    true
}

/// The one rule of what a request made with an access token needs (SPEC §13), from whether its
/// method is safe (GET, HEAD, OPTIONS) and its path (the matched route or the request's path):
/// `/api/auth/*` (but `GET /api/auth/me`) needs a sign-in; admin endpoints `admin`; other safe
/// requests `read`; state-changing requests on links and file requests `share`; every other
/// state-changing request (and the sockets that post) `write`.
pub fn required_scope(safe: bool, path: &str) -> Needs {
    if under(path, "/api/auth") {
        return if safe && under(path, "/api/auth/me") { Needs::Scope(Scope::Read) } else { Needs::SignIn };
    }
    if ADMIN_PATHS.iter().any(|p| under(path, p)) {
        return Needs::Scope(Scope::Admin);
    }
    if WRITE_SOCKETS.iter().any(|p| under(path, p)) {
        return Needs::Scope(Scope::Write);
    }
    if safe {
        return Needs::Scope(Scope::Read);
    }
    if SHARE_PATHS.iter().any(|p| under(path, p)) {
        return Needs::Scope(Scope::Share);
    }
    Needs::Scope(Scope::Write)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(r: Result<NewToken, AppError>) -> Vec<String> {
        match r {
            Err(AppError::Validation { fields, .. }) => fields.keys().cloned().collect(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    fn input(v: serde_json::Value) -> NewTokenIn {
        serde_json::from_value(v).expect("input")
    }

    #[test]
    fn a_token_request_is_checked_field_by_field() {
        let ok = NewToken::parse(input(serde_json::json!({"name": " CI ", "scopes": ["write", "read"]})), false)
            .expect("valid");
        assert_eq!((ok.name.as_str(), ok.scopes.names()), ("CI", vec!["read".to_string(), "write".to_string()]));
        assert_eq!(fields(NewToken::parse(input(serde_json::json!({"scopes": ["read"]})), false)), vec!["name"]);
        let long = "x".repeat(101);
        assert_eq!(
            fields(NewToken::parse(input(serde_json::json!({"name": long, "scopes": ["read"]})), false)),
            vec!["name"]
        );
        assert_eq!(
            fields(NewToken::parse(input(serde_json::json!({"name": "a", "scopes": []})), false)),
            vec!["scopes"]
        );
        assert_eq!(
            fields(NewToken::parse(input(serde_json::json!({"name": "a", "scopes": ["root"]})), false)),
            vec!["scopes"]
        );
        assert_eq!(
            fields(NewToken::parse(input(serde_json::json!({"name": "a", "scopes": ["admin"]})), false)),
            vec!["scopes"]
        );
        assert!(NewToken::parse(input(serde_json::json!({"name": "a", "scopes": ["admin"]})), true).is_ok());
        for days in [0, -1, 3651] {
            let v = serde_json::json!({"name": "a", "scopes": ["read"], "expires_in_days": days});
            assert_eq!(fields(NewToken::parse(input(v), false)), vec!["expires_in_days"]);
        }
    }

    #[test]
    fn scopes_round_trip_through_the_database_form() {
        let s = Scopes::of(&[Scope::Share, Scope::Read]);
        assert_eq!(s.to_db(), "read,share");
        assert_eq!(Scopes::from_db("read,share"), s);
        assert!(Scopes::ALL.contains(Scope::Admin) && !s.contains(Scope::Write));
    }

    #[test]
    fn each_request_needs_one_scope() {
        use Needs::{Scope as S, SignIn};
        let cases = [
            (true, "/api/v3/assets", S(Scope::Read)),
            (false, "/api/v3/assets", S(Scope::Write)),
            (false, "/api/v3/assets/{id}/share", S(Scope::Share)),
            (false, "/api/v3/assets/7/share/", S(Scope::Share)),
            (false, "/api/v3/assets/7/comments", S(Scope::Write)),
            (false, "/api/v3/collections/{id}/share", S(Scope::Share)),
            (false, "/api/v3/collections/{id}/items", S(Scope::Write)),
            (false, "/api/v3/shares/{uuid}", S(Scope::Share)),
            (true, "/api/v3/shares", S(Scope::Read)),
            (false, "/api/v3/file-requests", S(Scope::Share)),
            (false, "/api/v3/file-requestsx", S(Scope::Write)),
            (false, "/api/v3/uploads/{id}", S(Scope::Write)),
            (true, "/api/admin/users", S(Scope::Admin)),
            (false, "/api/admin/policies", S(Scope::Admin)),
            (false, "/api/companies", S(Scope::Admin)),
            (true, "/api/dashboard/shared-media/stats", S(Scope::Admin)),
            (true, "/api/dashboard/shared-media", S(Scope::Read)),
            (true, "/api/auth/me", S(Scope::Read)),
            (true, "/api/auth/tokens", SignIn),
            (false, "/api/auth/tokens/{id}", SignIn),
            (false, "/api/auth/logout", SignIn),
            (true, "/ws/collaboration/{session_id}", S(Scope::Write)),
            (true, "/ws/chat/{company_id}/{session_id}", S(Scope::Write)),
            (true, "/ws/notifications", S(Scope::Read)),
        ];
        for (safe, path, want) in cases {
            assert_eq!(required_scope(safe, path), want, "{path} (safe: {safe})");
        }
    }
}
