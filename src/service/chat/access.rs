//! Who is calling a chat endpoint or socket, and which session they may act on, as which side:
//! decided in one place, `Caller::reach`.

use crate::app::AppState;
use crate::domain::chat::{ChatSession, Company, Side};
use crate::domain::users::User;
use crate::error::{AppError, AppResult};

/// The token kind of a visitor's chat token.
pub const CHAT_TOKEN: &str = "chat";

/// An authenticated chat caller.
pub enum Caller {
    /// A visitor, bound to one session.
    Visitor(ChatSession),
    /// An account (and the sign-in session of its token); it reaches the sessions of the
    /// companies it is an agent of.
    Agent(User, String),
}

impl Caller {
    /// From a visitor's chat token or an account's access token.
    pub async fn from_token(state: &AppState, token: &str) -> AppResult<Caller> {
        if let Some(visitor) = Caller::visitor(state, token).await? {
            return Ok(visitor);
        }
        let signed = crate::service::auth::access_session(state, token).await?;
        Ok(Caller::Agent(signed.user, signed.session_id))
    }

    /// The visitor of a chat token; None when `token` is no chat token (an account's credential,
    /// or nothing valid: the account rule decides then).
    pub async fn visitor(state: &AppState, token: &str) -> AppResult<Option<Caller>> {
        let Ok(claims) = state.auth.verify(token, CHAT_TOKEN) else { return Ok(None) };
        let session = state
            .store
            .chat_session(&claims.sub)
            .await?
            .ok_or_else(|| AppError::Unauthenticated("this chat session no longer exists".into()))?;
        Ok(Some(Caller::Visitor(session)))
    }

    /// The session named by `company_id` / `session_id` (either may be omitted by a visitor, whose
    /// token names its session; an agent names the session). Anything the caller may not reach,
    /// existing or not, is the same 403.
    pub async fn reach(
        &self,
        state: &AppState,
        company_id: Option<&str>,
        session_id: Option<&str>,
    ) -> AppResult<Reach> {
        let company_id = company_id.map(str::trim).filter(|c| !c.is_empty());
        let session_id = session_id.map(str::trim).filter(|s| !s.is_empty());
        match self {
            Caller::Visitor(s) => {
                if company_id.is_some_and(|c| c != s.company_uuid) || session_id.is_some_and(|id| id != s.uuid) {
                    return Err(no_access());
                }
                Ok(Reach { session: s.clone(), side: Side::User, user_id: None, login: None })
            }
            Caller::Agent(user, login) => {
                let Some(session_id) = session_id else {
                    return Err(AppError::validation("session_id", "is required"));
                };
                let session = state.store.chat_session(session_id).await?.ok_or_else(no_access)?;
                if company_id.is_some_and(|c| c != session.company_uuid)
                    || !state.store.is_agent(session.company_id, user.id).await?
                {
                    return Err(no_access());
                }
                Ok(Reach { session, side: Side::Agent, user_id: Some(user.id), login: Some(login.clone()) })
            }
        }
    }

    /// The rate-limit key of this uploader.
    pub fn limit_key(&self) -> String {
        match self {
            Caller::Visitor(s) => format!("session:{}", s.uuid),
            Caller::Agent(u, _) => format!("agent:{}", u.id),
        }
    }
}

/// A session the caller may act on, and as which side.
pub struct Reach {
    pub session: ChatSession,
    pub side: Side,
    pub user_id: Option<i64>,
    /// An agent's sign-in session: its logout closes the agent's sockets.
    pub login: Option<String>,
}

/// The one refusal for a session the caller may not reach, existing or not.
pub fn no_access() -> AppError {
    AppError::forbidden("you have no access to this chat session")
}

/// A company the caller may see: admins all, agents their own.
pub async fn visible_company(state: &AppState, user: &User, company_id: &str) -> AppResult<Company> {
    let company = state.store.company_by_uuid(company_id).await?.ok_or_else(no_access)?;
    if user.is_admin() || state.store.is_agent(company.id, user.id).await? { Ok(company) } else { Err(no_access()) }
}
