//! The administrators' policy for links and file requests (SPEC §13): which share types may be
//! made, whether every new link and file request needs a password, default and longest expiry,
//! the highest download limit, and whether file requests may be made at all. It binds every link
//! and file request created or changed after it is set; the settings parsers of links
//! (`ShareSettings::parse`) and file requests (`FileRequestSettings::parse`) apply it, so the API
//! and the pages obey the same rules.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::shares::{MAX_DOWNLOADS, MAX_EXPIRY_HOURS, ShareType};
use crate::error::{AppError, FieldErrors};

/// Every share type, in the order the API lists them.
pub const SHARE_TYPES: [ShareType; 5] =
    [ShareType::Public, ShareType::Private, ShareType::Protected, ShareType::TimeLimited, ShareType::DownloadLimited];

/// The policy in force. `Default` is the policy of a new installation: it restricts nothing.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Policy {
    /// The share types new or changed links may have (never empty).
    pub allowed_share_types: Vec<ShareType>,
    /// Every new link must be `protected` with a password, and every new file request needs a
    /// password (which a change cannot remove).
    pub require_password: bool,
    /// The expiry of a new link or file request that gives none (hours, at least 1; a file
    /// request's is at most 8760).
    pub default_expires_in_hours: Option<f64>,
    /// The longest expiry a link or file request may be given; with it, "no expiry" is refused.
    pub max_expires_in_hours: Option<f64>,
    /// The highest `max_downloads` of a link that allows downloads; with it, "no limit" is refused
    /// and a new link that gives none gets this one.
    pub max_downloads_limit: Option<i64>,
    /// Whether new file requests may be made (existing ones keep working).
    pub file_requests_enabled: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            allowed_share_types: SHARE_TYPES.to_vec(),
            require_password: false,
            default_expires_in_hours: None,
            max_expires_in_hours: None,
            max_downloads_limit: None,
            file_requests_enabled: true,
        }
    }
}

/// The body of `PATCH /api/admin/policies/`: absent fields stay; `null` clears the optional ones.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyPatch {
    /// A non-empty list of `public`, `private`, `protected`, `time_limited`, `download_limited`.
    pub allowed_share_types: Option<Vec<String>>,
    pub require_password: Option<bool>,
    /// Hours, at least 1, at most `max_expires_in_hours` when both are set; `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<f64>)]
    pub default_expires_in_hours: Option<Option<f64>>,
    /// Hours, at least 1; `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<f64>)]
    pub max_expires_in_hours: Option<Option<f64>>,
    /// At least 1; `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub max_downloads_limit: Option<Option<i64>>,
    pub file_requests_enabled: Option<bool>,
}

/// Distinguishes "absent" (None) from "null" (Some(None)).
fn double_option<'de, T: Deserialize<'de>, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// An expiry from now, in ms.
pub fn hours_ms(h: f64) -> i64 {
    (h * 3_600_000.0).round() as i64
}

impl Policy {
    pub fn allows(&self, t: ShareType) -> bool {
        self.allowed_share_types.contains(&t)
    }

    /// The allowed types as the API names them (`public, protected`).
    pub fn allowed_names(&self) -> String {
        self.allowed_share_types.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
    }

    /// The expiry (hours) a new link or file request gets when it gives none: the default, or
    /// the longest allowed when there is no default (under a maximum, "never" is not allowed).
    pub fn implied_expiry_hours(&self) -> Option<f64> {
        self.default_expires_in_hours.or(self.max_expires_in_hours)
    }

    /// This policy with `patch` applied; 400 with `fields` when the result is not valid.
    pub fn patched(&self, patch: PolicyPatch) -> Result<Policy, AppError> {
        let mut f = FieldErrors::new();
        let mut out = self.clone();
        if let Some(list) = patch.allowed_share_types {
            let mut types = vec![];
            let mut unknown = vec![];
            for name in &list {
                match ShareType::parse(name.trim()) {
                    Some(t) if !types.contains(&t) => types.push(t),
                    Some(_) => {}
                    None => unknown.push(format!("{name:?}")),
                }
            }
            if !unknown.is_empty() {
                f.insert(
                    "allowed_share_types".into(),
                    format!(
                        "unknown share type {}: use public, private, protected, time_limited, download_limited",
                        unknown.join(", ")
                    ),
                );
            } else if types.is_empty() {
                f.insert("allowed_share_types".into(), "must allow at least one share type".into());
            } else {
                // Kept in the API's order, whatever order they were sent in.
                out.allowed_share_types = SHARE_TYPES.into_iter().filter(|t| types.contains(t)).collect();
            }
        }
        if let Some(b) = patch.require_password {
            out.require_password = b;
        }
        if let Some(b) = patch.file_requests_enabled {
            out.file_requests_enabled = b;
        }
        let mut hours = |name: &str, v: Option<Option<f64>>, slot: &mut Option<f64>| match v {
            None => {}
            Some(None) => *slot = None,
            Some(Some(h)) if !h.is_finite() || !(1.0..=MAX_EXPIRY_HOURS).contains(&h) => {
                f.insert(name.into(), format!("must be a number of hours from 1 to {MAX_EXPIRY_HOURS}"));
            }
            Some(Some(h)) => *slot = Some(h),
        };
        hours("default_expires_in_hours", patch.default_expires_in_hours, &mut out.default_expires_in_hours);
        hours("max_expires_in_hours", patch.max_expires_in_hours, &mut out.max_expires_in_hours);
        match patch.max_downloads_limit {
            None => {}
            Some(None) => out.max_downloads_limit = None,
            Some(Some(n)) if !(1..=MAX_DOWNLOADS).contains(&n) => {
                f.insert("max_downloads_limit".into(), format!("must be a whole number from 1 to {MAX_DOWNLOADS}"));
            }
            Some(Some(n)) => out.max_downloads_limit = Some(n),
        }
        if let (Some(d), Some(m)) = (out.default_expires_in_hours, out.max_expires_in_hours)
            && d > m
            && !f.contains_key("default_expires_in_hours")
            && !f.contains_key("max_expires_in_hours")
        {
            f.insert("default_expires_in_hours".into(), format!("must not be more than max_expires_in_hours ({m})"));
        }
        if f.is_empty() { Ok(out) } else { Err(AppError::from_fields(f)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(v: serde_json::Value) -> Result<Policy, AppError> {
        Policy::default().patched(serde_json::from_value(v).expect("patch"))
    }

    fn fields(r: Result<Policy, AppError>) -> Vec<String> {
        match r {
            Err(AppError::Validation { fields, .. }) => fields.keys().cloned().collect(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn a_patch_changes_what_it_names_and_clears_with_null() {
        let p = patch(serde_json::json!({"allowed_share_types": ["protected", "public", "public"], "max_expires_in_hours": 48, "default_expires_in_hours": 24.5}))
            .expect("valid");
        assert_eq!(p.allowed_share_types, vec![ShareType::Public, ShareType::Protected]);
        assert_eq!((p.default_expires_in_hours, p.max_expires_in_hours), (Some(24.5), Some(48.0)));
        assert!(!p.require_password && p.file_requests_enabled);
        let cleared =
            p.patched(serde_json::from_value(serde_json::json!({"max_expires_in_hours": null})).expect("patch"));
        assert_eq!(cleared.expect("valid").max_expires_in_hours, None);
    }

    #[test]
    fn a_bad_patch_names_its_fields() {
        assert_eq!(fields(patch(serde_json::json!({"allowed_share_types": []}))), vec!["allowed_share_types"]);
        assert_eq!(fields(patch(serde_json::json!({"allowed_share_types": ["open"]}))), vec!["allowed_share_types"]);
        assert_eq!(
            fields(patch(serde_json::json!({"default_expires_in_hours": 0.5}))),
            vec!["default_expires_in_hours"]
        );
        assert_eq!(fields(patch(serde_json::json!({"max_expires_in_hours": -1}))), vec!["max_expires_in_hours"]);
        assert_eq!(fields(patch(serde_json::json!({"max_downloads_limit": 0}))), vec!["max_downloads_limit"]);
        assert_eq!(
            fields(patch(serde_json::json!({"default_expires_in_hours": 72, "max_expires_in_hours": 24}))),
            vec!["default_expires_in_hours"]
        );
        assert!(serde_json::from_value::<PolicyPatch>(serde_json::json!({"require_passwords": true})).is_err());
    }

    #[test]
    fn without_a_default_an_omitted_expiry_takes_the_maximum() {
        let p = Policy { max_expires_in_hours: Some(12.0), ..Policy::default() };
        assert_eq!(p.implied_expiry_hours(), Some(12.0));
        assert_eq!(Policy::default().implied_expiry_hours(), None);
    }
}
