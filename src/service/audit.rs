//! The audit log (SPEC §13): who acted (`who`), the entry of an action that has no write of its own
//! (`record`), and the admin's reads. Actions that change rows hand their entry to the store
//! function that changes them, which commits both together (`store::audit::insert`).
//!
//! For a feature that records an action: build the entry with `who(state, user, ip).entry(action,
//! target_id, details)`, then either pass it to the store function whose transaction performs the
//! action (which calls `store::audit::insert(&mut tx, &entry, now)` before it commits), or, when
//! nothing else is written (a refusal), call `record`.

use std::net::IpAddr;

use crate::app::AppState;
use crate::domain::audit::{AuditEntry, AuditFilter, AuditRecord, Who};
use crate::domain::pagination::PageRequest;
use crate::error::AppResult;

/// The actor `actor_id` (None: nobody signed in) acting from `ip` (None: no client, the CLI).
/// Only the keyed hash of the address is kept (`visitors::ip_key` under the server's HMAC secret).
pub fn who(state: &AppState, actor_id: Option<i64>, ip: Option<IpAddr>) -> Who {
    Who { actor_id, ip: ip.map(|ip| crate::domain::visitors::ip_key(&state.secrets.hmac, ip)) }
}

/// Appends `entry` in a write of its own, stamped with the app's clock.
pub async fn record(state: &AppState, entry: AuditEntry) -> AppResult<()> {
    state.store.append_audit(&entry, state.clock.now_ms()).await?;
    Ok(())
}

/// Appends `entry` without failing the request it describes (a refusal is answered as a refusal
/// even if the log cannot be written; the failure is logged).
pub async fn record_quietly(state: &AppState, entry: AuditEntry) {
    let action = entry.action.as_str();
    if let Err(e) = record(state, entry).await {
        tracing::warn!(action, error = %e, "audit entry not written");
    }
}

/// One page of matching entries, newest first, and how many match in all.
pub async fn page(state: &AppState, filter: &AuditFilter, page: PageRequest) -> AppResult<(Vec<AuditRecord>, i64)> {
    Ok(state.store.audit_page(filter, page).await?)
}

/// Entries for the export: the next `limit` older than `before_id` (from the newest when None).
pub async fn batch(
    state: &AppState,
    filter: &AuditFilter,
    before_id: Option<i64>,
    limit: i64,
) -> AppResult<Vec<AuditRecord>> {
    Ok(state.store.audit_batch(filter, before_id, limit).await?)
}
