//! The scopes of personal access tokens (SPEC §13), enforced in one place for every route: a
//! request that carries an access token (`Authorization: Bearer vtr_…` or `?token=vtr_…`) is
//! authenticated here, then refused with 403 `insufficient_scope` unless the token holds the
//! scope that `domain::tokens::required_scope` names for its method and route. Sign-ins (JWTs,
//! the page cookie) hold every scope and pass untouched. The handlers' extractors then find the
//! caller in the request's extensions instead of looking the token up again.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::domain::tokens::{Needs, required_scope};
use crate::service::auth::SignedIn;
use crate::service::tokens::{authenticate, insufficient_scope, is_access_token};

/// The access token a request was made with, already authenticated and within its scopes.
#[derive(Clone)]
pub struct TokenCaller {
    pub token: String,
    pub signed: SignedIn,
}

/// The access tokens a request carries: the bearer token and the `?token=` parameter.
fn access_tokens(req: &Request) -> Vec<String> {
    let mut found = vec![];
    if let Some(t) = crate::http::extract::bearer_in(req.headers())
        && is_access_token(t)
    {
        found.push(t.to_string());
    }
    if let Some(q) = req.uri().query() {
        for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
            if k == "token" && is_access_token(&v) && !found.iter().any(|f| *f == v) {
                found.push(v.into_owned());
            }
        }
    }
    found
}

/// Middleware: authenticates every access token of the request and checks its scope.
pub async fn enforce(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let tokens = access_tokens(&req);
    if tokens.is_empty() {
        return next.run(req).await;
    }
    let path = match req.extensions().get::<MatchedPath>() {
        Some(m) => m.as_str().to_string(),
        None => req.uri().path().to_string(),
    };
    let needs = required_scope(req.method().is_safe(), &path);
    let mut first = None;
    for token in tokens {
        let signed = match authenticate(&state, &token).await {
            Ok(s) => s,
            Err(e) => return e.into_response(),
        };
        match needs {
            Needs::SignIn => {
                return insufficient_scope("access tokens cannot call this endpoint; sign in to do this")
                    .into_response();
            }
            Needs::Scope(s) if !signed.scopes.contains(s) => {
                return insufficient_scope(format!("this access token does not have the `{}` scope", s.as_str()))
                    .into_response();
            }
            Needs::Scope(_) => {}
        }
        first.get_or_insert(TokenCaller { token, signed });
    }
    if let Some(caller) = first {
        req.extensions_mut().insert(caller);
    }
    next.run(req).await
}
