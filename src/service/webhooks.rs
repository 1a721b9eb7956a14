//! Webhooks (SPEC §13): creating, changing and deleting a user's endpoints, the address check
//! that keeps them off internal networks (SSRF; again at every delivery, see
//! `jobs::webhooks`), the test event, and the `data` of each event type.
//!
//! Who hears an event: the owner of the content it is about (a link's owner, a file request's
//! owner, the commented asset's owner, the session's asset owner, and for chat the uploader when
//! the file comes from an agent's account, see `chat_file_data`), plus every admin webhook with
//! `scope: "all"`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rand::RngCore;

use crate::app::AppState;
use crate::domain::audit::{AuditAction, Who};
use crate::domain::shares::{Share, ShareTarget};
use crate::domain::time::rfc3339;
use crate::domain::users::User;
use crate::domain::webhooks::{
    Delivery, Event, EventType, Scope, Webhook, WebhookIn, WebhookSettings, forbidden_address, host_allowed, host_key,
    secret_from,
};
use crate::error::{AppError, AppResult};
use crate::store::webhooks::Inserted;

/// How long a host name may take to resolve when a webhook is created or changed.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Creates a webhook for `user`; the answer carries the secret (the only time it is shown).
pub async fn create(state: &AppState, user: &User, input: WebhookIn, who: &Who) -> AppResult<Webhook> {
    let settings = WebhookSettings::parse(input, None)?;
    check_scope(user, &settings)?;
    vet_url(state, &settings.url).await?;
    let mut raw = [0u8; 24];
    rand::rng().fill_bytes(&mut raw);
    let secret = secret_from(&raw);
    // The entry names the URL, events and scope; never the secret.
    let details = serde_json::json!({
        "user_id": user.id,
        "url": settings.url.as_str(),
        "events": settings.events.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
        "scope": settings.scope.as_str(),
    });
    let audit = |id: i64| who.entry(AuditAction::WebhookCreated, id, details);
    match state.store.insert_webhook(user.id, &settings, &secret, state.clock.now_ms(), audit).await? {
        Inserted::Created(hook) => {
            tracing::info!(webhook_id = hook.id, user_id = user.id, "webhook created");
            Ok(*hook)
        }
        Inserted::TooMany => Err(AppError::Conflict {
            code: crate::error::ErrorCode::Conflict,
            message: format!(
                "you already have {} webhooks; delete one first",
                crate::domain::webhooks::MAX_WEBHOOKS_PER_USER
            ),
        }),
    }
}

/// The caller's webhook; anyone else's is 404.
pub async fn owned(state: &AppState, user: &User, id: i64) -> AppResult<Webhook> {
    match state.store.webhook(id).await? {
        Some(h) if h.user_id == user.id => Ok(h),
        _ => Err(AppError::NotFound("webhook")),
    }
}

/// Changes url, events, description, scope or active (the rules of create).
pub async fn update(state: &AppState, user: &User, id: i64, input: WebhookIn) -> AppResult<Webhook> {
    let hook = owned(state, user, id).await?;
    let url_changed = input.url.is_some();
    let settings = WebhookSettings::parse(input, Some(&hook.settings()?))?;
    check_scope(user, &settings)?;
    if url_changed {
        vet_url(state, &settings.url).await?;
    }
    state.store.update_webhook(hook.id, &settings, state.clock.now_ms()).await?;
    owned(state, user, id).await
}

/// Deletes a webhook and its deliveries.
pub async fn delete(state: &AppState, user: &User, id: i64, who: &Who) -> AppResult<()> {
    let hook = owned(state, user, id).await?;
    let details = serde_json::json!({ "user_id": hook.user_id, "url": hook.url });
    let entry = who.entry(AuditAction::WebhookDeleted, hook.id, details);
    state.store.delete_webhook(hook.id, state.clock.now_ms(), &entry).await?;
    tracing::info!(webhook_id = hook.id, user_id = user.id, "webhook deleted");
    Ok(())
}

/// Queues a `webhook.test` event for one of the caller's webhooks.
pub async fn send_test(state: &AppState, user: &User, id: i64) -> AppResult<Delivery> {
    let hook = owned(state, user, id).await?;
    let data = serde_json::json!({
        "webhook_id": hook.id,
        "message": "This is a test event from Vitrine.",
    });
    Ok(state.store.enqueue_test(hook.id, &data, state.clock.now_ms()).await?)
}

fn check_scope(user: &User, s: &WebhookSettings) -> AppResult<()> {
    if s.scope == Scope::All && !user.is_admin() {
        return Err(AppError::forbidden("only administrators may create webhooks with scope \"all\""));
    }
    Ok(())
}

/// Refuses (400 on `url`) a URL whose host is, or resolves to, a loopback, private, link-local or
/// otherwise internal address, unless the host is in `webhook_allowed_hosts`.
pub async fn vet_url(state: &AppState, url: &url::Url) -> AppResult<()> {
    let allowed = &state.config.webhook_allowed_hosts;
    match vetted_addresses(url, allowed, true).await {
        Ok(_) => Ok(()),
        Err(why) => Err(AppError::validation("url", why)),
    }
}

/// The addresses a delivery to `url` may connect to: every address of an allowed host; otherwise
/// only public ones. With `strict` (creating or changing a webhook) one internal address among
/// them refuses the URL; without it (delivery) the internal ones are left out, and none left
/// refuses it.
pub async fn vetted_addresses(url: &url::Url, allowed: &[String], strict: bool) -> Result<Vec<SocketAddr>, String> {
    let host = host_key(url);
    let port = url.port_or_known_default().unwrap_or(80);
    let is_allowed = host_allowed(&host, allowed);
    let addrs: Vec<SocketAddr> = match url.host() {
        Some(url::Host::Ipv4(a)) => vec![SocketAddr::new(IpAddr::V4(a), port)],
        Some(url::Host::Ipv6(a)) => vec![SocketAddr::new(IpAddr::V6(a), port)],
        Some(url::Host::Domain(d)) => resolve(d, port).await?,
        None => return Err("must name a host".into()),
    };
    if is_allowed {
        return Ok(addrs);
    }
    filter_addresses(addrs, strict)
}

/// Keeps the public addresses (see `vetted_addresses` for `strict`).
pub fn filter_addresses(addrs: Vec<SocketAddr>, strict: bool) -> Result<Vec<SocketAddr>, String> {
    let mut public = Vec::with_capacity(addrs.len());
    let mut refused = None;
    for a in addrs {
        match forbidden_address(a.ip()) {
            Some(why) => {
                refused = Some(format!("resolves to a {why} address ({}), which webhooks may not reach", a.ip()))
            }
            None => public.push(a),
        }
    }
    match refused {
        Some(why) if strict || public.is_empty() => Err(why),
        _ if public.is_empty() => Err("does not resolve to any address".into()),
        _ => Ok(public),
    }
}

/// Resolves a host name through the system resolver, bounded in time.
pub async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let host = host.trim_end_matches('.');
    match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(addrs)) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() { Err("does not resolve to any address".into()) } else { Ok(addrs) }
        }
        Ok(Err(_)) => Err(format!("the host {host} cannot be resolved")),
        Err(_) => Err(format!("the host {host} did not resolve in time")),
    }
}

/// The `share` object of share events.
pub fn share_data(state: &AppState, share: &Share) -> serde_json::Value {
    serde_json::json!({
        "id": share.id,
        "uuid": share.uuid,
        "share_url": crate::service::shares::share_url(state, &share.uuid),
        "share_type": share.share_type.as_str(),
        "title": share.title,
        "asset_id": match share.target { ShareTarget::Asset(a) => Some(a), ShareTarget::Collection(_) => None },
        "collection_id": match share.target { ShareTarget::Collection(c) => Some(c), ShareTarget::Asset(_) => None },
        "expires_at": share.expires_at.map(rfc3339),
        "created_at": rfc3339(share.created_at),
        "revoked_at": share.revoked_at.map(rfc3339),
    })
}

/// `share.created` / `share.revoked` about `share`.
pub fn share_event(state: &AppState, kind: EventType, share: &Share) -> Event {
    Event { owner_id: share.owner_id, kind, data: serde_json::json!({ "share": share_data(state, share) }) }
}

/// `collaboration.session_ended`: about the session's owner's asset; `reason` is `ended` (by its
/// owner, or with its link or asset) or `expired` (`ended_at` is then the expiry).
pub fn session_ended_event(s: &crate::domain::collaboration::Session, ended_at: i64, reason: &str) -> Event {
    Event {
        owner_id: s.owner_id,
        kind: EventType::CollaborationSessionEnded,
        data: serde_json::json!({
            "session": {
                "session_id": s.uuid,
                "asset_id": s.asset_id,
                "created_at": rfc3339(s.created_at),
                "ended_at": rfc3339(ended_at),
                "reason": reason,
            }
        }),
    }
}
