//! Chat pages (docs/chat.md): the visitor's widget `/chat/widget/?widget_key=…`, made to be
//! framed by the company's site, and the agents' dashboard `/agent/`.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::http::extract::{ApiQuery, PageSession};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(widget)).routes(routes!(agent))
}

#[derive(Template)]
#[template(path = "chat/widget.html")]
struct WidgetPage {
    widget_key: String,
    company_name: String,
    company_id: String,
}

pub struct CompanyItem {
    pub company_id: String,
    pub name: String,
}

#[derive(Template)]
#[template(path = "chat/agent.html")]
struct AgentPage {
    shell: super::Shell,
    token: String,
    companies: Vec<CompanyItem>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct WidgetQuery {
    /// The company's widget key.
    pub widget_key: Option<String>,
}

/// The widget may sit in an iframe on any site; it talks only to this server.
const WIDGET_CSP: &str = "default-src 'self'; img-src * data: blob:; style-src 'self' 'unsafe-inline'; \
    script-src 'self'; connect-src 'self'; frame-ancestors *; base-uri 'none'; form-action 'self'";

/// The visitor's chat widget of a company.
#[utoipa::path(get, path = "/chat/widget", tag = "pages", params(WidgetQuery),
    responses((status = 200, description = "HTML widget", content_type = "text/html"), (status = 404, description = "unknown widget key")))]
pub async fn widget(State(state): State<AppState>, ApiQuery(q): ApiQuery<WidgetQuery>) -> Response {
    let key = q.widget_key.as_deref().map(str::trim).unwrap_or("");
    let company = match state.store.company_by_widget_key(key).await {
        Ok(Some(c)) if !key.is_empty() => c,
        Ok(_) => return super::error_page(StatusCode::NOT_FOUND, "Unknown chat", "This chat widget does not exist."),
        Err(e) => return crate::error::AppError::from(e).into_response(),
    };
    let mut r = super::render(&WidgetPage {
        widget_key: company.widget_key.clone(),
        company_name: company.name.clone(),
        company_id: company.uuid.clone(),
    });
    r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(WIDGET_CSP));
    r
}

/// The agents' dashboard: their companies' sessions, live.
#[utoipa::path(get, path = "/agent", tag = "pages",
    responses((status = 200, description = "HTML dashboard", content_type = "text/html"), (status = 303, description = "sign in first")))]
pub async fn agent(State(state): State<AppState>, PageSession(session): PageSession, shell: super::Shell) -> Response {
    let Some(session) = session else {
        return Redirect::to("/login?next=/agent/").into_response();
    };
    let user = &session.user;
    let companies = match state.store.companies(Some(user.id)).await {
        Ok(c) => c,
        Err(e) => return crate::error::AppError::from(e).into_response(),
    };
    // The page's scripts call the API and the socket with an access token of the signed-in user,
    // bound to the page's session: signing out ends it too.
    let token = match state.auth.issue_for_session(user.id, crate::auth::ACCESS, &session.session_id, session.expires) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let mut r = super::render(&AgentPage {
        shell,
        token,
        companies: companies.into_iter().map(|c| CompanyItem { company_id: c.uuid, name: c.name }).collect(),
    });
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
