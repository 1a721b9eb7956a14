//! The administrators' policy for links and file requests (SPEC §13): read it (every link and
//! file request create or change does, from the database: no cache, so a change binds every
//! instance at its next request) and change it. The API, the admin page and the settings parsers
//! of links and file requests use these.

use crate::app::AppState;
use crate::domain::audit::{AuditAction, Who};
use crate::domain::policies::{Policy, PolicyPatch};
use crate::domain::users::User;
use crate::error::AppResult;

/// The policy in force.
pub async fn current(state: &AppState) -> AppResult<Policy> {
    Ok(state.store.policy().await?)
}

/// Applies `patch` (400 with `fields` when the result is not valid) and stores the result; the
/// caller has checked that `admin` is an admin. Links and file requests made before keep their
/// settings.
pub async fn update(state: &AppState, admin: &User, patch: PolicyPatch, who: &Who) -> AppResult<Policy> {
    let before = current(state).await?;
    let policy = before.clone().patched(patch)?;
    // The entry holds the policy before and after the change.
    let details = serde_json::json!({ "before": before, "after": policy });
    let entry = who.entry(AuditAction::PolicyUpdated, "policy", details);
    state.store.save_policy(&policy, admin.id, state.clock.now_ms(), &entry).await?;
    tracing::info!(
        admin_id = admin.id,
        allowed_share_types = %policy.allowed_names(),
        require_password = policy.require_password,
        file_requests_enabled = policy.file_requests_enabled,
        "policy updated"
    );
    Ok(policy)
}
