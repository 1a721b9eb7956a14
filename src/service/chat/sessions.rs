//! Visitor sessions: opening one from the widget, a company's sessions for its agents, a
//! session's messages.

use std::net::IpAddr;

use super::access::{CHAT_TOKEN, Reach, visible_company};
use crate::app::AppState;
use crate::domain::chat::{ChatSession, Company, MessageOut, Side, parse_page_url};
use crate::domain::users::User;
use crate::error::{AppError, AppResult};
use crate::store::chat::SessionSummary;

/// A visitor's new session with the company of `widget_key`, and its chat token (valid
/// `chat_token_ttl_secs`).
pub struct Opened {
    pub company: Company,
    pub session: ChatSession,
    pub token: String,
    pub expires_in: u64,
}

/// Opens a visitor's session (the widget calls this), within the per-address budget. `page_url`:
/// the page the visitor is on, when the widget knows it (shown to the agents).
pub async fn open(state: &AppState, ip: IpAddr, widget_key: Option<&str>, page_url: Option<&str>) -> AppResult<Opened> {
    let key = widget_key.map(str::trim).filter(|k| !k.is_empty());
    let key = key.ok_or_else(|| AppError::validation("widget_key", "is required"))?;
    let page_url = parse_page_url(page_url.unwrap_or("")).map_err(|e| AppError::validation("page_url", e))?;
    state.limits.chat_session_per_ip.check(ip).await?;
    let company = state.store.company_by_widget_key(key).await?.ok_or(AppError::NotFound("widget"))?;
    let uuid = uuid::Uuid::new_v4().to_string();
    let session = state.store.insert_chat_session(&uuid, &company, page_url.as_deref(), state.clock.now_ms()).await?;
    let ttl = state.config.chat_token_ttl_secs;
    let token = state.auth.issue(&session.uuid, CHAT_TOKEN, ttl)?;
    metrics::counter!("vitrine_chat_sessions_total").increment(1);
    Ok(Opened { company, session, token, expires_in: ttl })
}

/// One page of a company's sessions, most recently active first (its agents and admins), with
/// the total.
pub async fn of_company(
    state: &AppState,
    user: &User,
    company_id: &str,
    page: crate::domain::pagination::PageRequest,
) -> AppResult<(Company, Vec<SessionSummary>, i64)> {
    let company = visible_company(state, user, company_id).await?;
    let (list, count) = state.store.chat_sessions_of(company.id, user.id, page.limit(), page.offset()).await?;
    Ok((company, list, count))
}

/// The agent of `reach` has seen the session as it is now: its unread count for them is zero
/// (until the visitor writes again). Only agents read sessions this way.
pub async fn mark_read(state: &AppState, reach: &Reach) -> AppResult<()> {
    let Some(user_id) = reach.user_id.filter(|_| reach.side == Side::Agent) else {
        return Err(AppError::forbidden("only the company's agents mark sessions as read"));
    };
    state.store.mark_chat_read(reach.session.id, user_id, state.clock.now_ms()).await?;
    Ok(())
}

/// A session's messages, oldest first.
pub async fn messages(state: &AppState, reach: &Reach) -> AppResult<Vec<MessageOut>> {
    Ok(state.store.chat_messages(reach.session.id).await?.iter().map(MessageOut::of).collect())
}
