//! A small OpenID provider for the single sign-on tests, served by axum on a loopback port:
//! discovery document, JWKS, an authorization endpoint that approves at once (redirecting back
//! with a code and the given `state`), and a token endpoint that checks the client's credentials,
//! the code, the redirect URI and the PKCE verifier before it answers with an ID token signed
//! RS256 (with `jsonwebtoken`, here in the test only: the server verifies with `openidconnect`).
//! The test says what the next ID token carries and how it is spoiled (`Next`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::TestApp;
use super::pages::{cookie_pair, set_cookie};

pub const CLIENT_ID: &str = "vitrine-test";
pub const CLIENT_SECRET: &str = "test-client-secret-0123456789";

/// The provider's signing key, and another one it does not publish (a forged signature).
const PROVIDER_KEY: &str = include_str!("oidc/provider-key.pem");
const OTHER_KEY: &str = include_str!("oidc/other-key.pem");

/// What the next ID token carries, and how it is spoiled.
#[derive(Clone, Debug)]
pub struct Next {
    pub sub: String,
    pub email: Option<String>,
    /// `None`: the claim is left out.
    pub email_verified: Option<Value>,
    pub name: Option<String>,
    /// More claims (the role claim, …).
    pub extra: serde_json::Map<String, Value>,
    /// Sends this nonce instead of the one the sign-in started with.
    pub nonce: Option<String>,
    /// Sends this audience instead of the client id.
    pub aud: Option<Value>,
    /// Seconds from now to `exp` (default 300; negative: already expired).
    pub exp_in: i64,
    /// Signs with a key the provider does not publish (under the published key's id).
    pub forge_signature: bool,
}

impl Next {
    /// A verified person.
    pub fn person(sub: &str, email: &str, name: &str) -> Next {
        Next {
            sub: sub.into(),
            email: Some(email.into()),
            email_verified: Some(json!(true)),
            name: Some(name.into()),
            extra: Default::default(),
            nonce: None,
            aud: None,
            exp_in: 300,
            forge_signature: false,
        }
    }

    /// With one more claim.
    pub fn with(mut self, claim: &str, value: Value) -> Next {
        self.extra.insert(claim.into(), value);
        self
    }
}

struct Grant {
    redirect_uri: String,
    challenge: String,
    nonce: String,
    next: Next,
}

#[derive(Default)]
struct Inner {
    next: Option<Next>,
    codes: HashMap<String, Grant>,
    /// The query of every authorization request, in order.
    authorize_requests: Vec<HashMap<String, String>>,
    jwks_fetches: usize,
    token_requests: usize,
    /// The key id tokens are signed with: "k1" (PROVIDER_KEY), or "k2" (OTHER_KEY) after `rotate`.
    kid: String,
    /// Published key ids.
    published: Vec<String>,
    /// The authorization endpoint refuses (`error=access_denied`).
    deny: bool,
}

/// The running provider; stops when dropped.
pub struct Idp {
    pub issuer: String,
    inner: Arc<Mutex<Inner>>,
    stop: CancellationToken,
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("time").as_secs() as i64
}

fn jwk(pem: &str, kid: &str) -> Jwk {
    let key = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("test key");
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).expect("jwk");
    jwk.common.key_id = Some(kid.into());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk.common.key_algorithm = Some(KeyAlgorithm::RS256);
    jwk
}

impl Idp {
    /// Starts the provider on a fresh loopback port.
    pub async fn start() -> Idp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind provider");
        Idp::serve(listener).await
    }

    /// Starts the provider on `port` (a test that first saw it down).
    pub async fn start_on(port: u16) -> Idp {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind provider port");
        Idp::serve(listener).await
    }

    async fn serve(listener: tokio::net::TcpListener) -> Idp {
        let issuer = format!("http://{}", listener.local_addr().expect("addr"));
        let inner =
            Arc::new(Mutex::new(Inner { kid: "k1".into(), published: vec!["k1".into()], ..Default::default() }));
        let shared = (issuer.clone(), inner.clone());
        let app = axum::Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(shared);
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(stopped.cancelled_owned()).await;
        });
        Idp { issuer, inner, stop }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The claims of the next sign-in (kept for the ones after, until changed).
    pub fn next(&self, next: Next) {
        self.lock().next = Some(next);
    }

    /// The authorization endpoint refuses from now on.
    pub fn deny(&self) {
        self.lock().deny = true;
    }

    /// Signs with a new key under a new id, published beside the old one.
    pub fn rotate(&self) {
        let mut i = self.lock();
        i.kid = "k2".into();
        i.published.push("k2".into());
    }

    pub fn jwks_fetches(&self) -> usize {
        self.lock().jwks_fetches
    }

    pub fn token_requests(&self) -> usize {
        self.lock().token_requests
    }

    /// The query of the last authorization request.
    pub fn last_authorize(&self) -> HashMap<String, String> {
        self.lock().authorize_requests.last().cloned().expect("an authorization request")
    }

    /// The settings that point `config` at this provider.
    pub fn configure(&self, c: &mut vitrine::config::Config) {
        configure(&self.issuer, c);
    }
}

/// Points `config` at a provider at `issuer`.
pub fn configure(issuer: &str, c: &mut vitrine::config::Config) {
    c.oidc_issuer = Some(issuer.into());
    c.oidc_client_id = Some(CLIENT_ID.into());
    c.oidc_client_secret = Some(CLIENT_SECRET.into());
    c.oidc_name = "Test IdP".into();
}

type Shared = (String, Arc<Mutex<Inner>>);

fn lock(inner: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(|e| e.into_inner())
}

async fn discovery(State((issuer, _)): State<Shared>) -> axum::Json<Value> {
    axum::Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "email", "profile"],
    }))
}

async fn jwks(State((_, inner)): State<Shared>) -> axum::Json<JwkSet> {
    let mut i = lock(&inner);
    i.jwks_fetches += 1;
    let keys = i.published.iter().map(|kid| jwk(if kid == "k1" { PROVIDER_KEY } else { OTHER_KEY }, kid)).collect();
    axum::Json(JwkSet { keys })
}

async fn authorize(State((_, inner)): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut i = lock(&inner);
    i.authorize_requests.push(q.clone());
    let field = |k: &str| q.get(k).cloned().unwrap_or_default();
    let redirect_uri = field("redirect_uri");
    let state = field("state");
    if i.deny {
        let to =
            format!("{redirect_uri}?error=access_denied&error_description=Access+denied+by+the+test&state={state}");
        return Redirect::to(&to).into_response();
    }
    let ok = field("response_type") == "code"
        && field("client_id") == CLIENT_ID
        && field("code_challenge_method") == "S256"
        && !field("code_challenge").is_empty()
        && field("scope").split(' ').any(|s| s == "openid");
    if !ok {
        return (StatusCode::BAD_REQUEST, format!("bad authorization request: {q:?}")).into_response();
    }
    let next = i.next.clone().expect("the test sets the next sign-in's claims");
    let code = uuid::Uuid::new_v4().simple().to_string();
    i.codes.insert(
        code.clone(),
        Grant { redirect_uri: redirect_uri.clone(), challenge: field("code_challenge"), nonce: field("nonce"), next },
    );
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{redirect_uri}{sep}code={code}&state={state}")).into_response()
}

fn oauth_error(error: &str) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(json!({"error": error}))).into_response()
}

async fn token(
    State((issuer, inner)): State<Shared>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let mut i = lock(&inner);
    i.token_requests += 1;
    // client_secret_basic (the form's client_id/client_secret would be client_secret_post).
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let post = f.get("client_id").zip(f.get("client_secret")).map(|(id, s)| format!("{id}:{s}"));
    if basic.or(post).as_deref() != Some(&format!("{CLIENT_ID}:{CLIENT_SECRET}")) {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_client"}))).into_response();
    }
    if f.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return oauth_error("unsupported_grant_type");
    }
    let Some(grant) = f.get("code").and_then(|c| i.codes.remove(c)) else { return oauth_error("invalid_grant") };
    if f.get("redirect_uri") != Some(&grant.redirect_uri) {
        return oauth_error("invalid_grant");
    }
    let verifier = f.get("code_verifier").cloned().unwrap_or_default();
    if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != grant.challenge {
        return oauth_error("invalid_grant");
    }
    let n = &grant.next;
    let mut claims = serde_json::Map::new();
    claims.insert("iss".into(), json!(issuer));
    claims.insert("sub".into(), json!(n.sub));
    claims.insert("aud".into(), n.aud.clone().unwrap_or(json!(CLIENT_ID)));
    claims.insert("iat".into(), json!(now()));
    claims.insert("exp".into(), json!(now() + n.exp_in));
    claims.insert("nonce".into(), json!(n.nonce.clone().unwrap_or(grant.nonce.clone())));
    if let Some(e) = &n.email {
        claims.insert("email".into(), json!(e));
    }
    if let Some(v) = &n.email_verified {
        claims.insert("email_verified".into(), v.clone());
    }
    if let Some(name) = &n.name {
        claims.insert("name".into(), json!(name));
    }
    for (k, v) in &n.extra {
        claims.insert(k.clone(), v.clone());
    }
    let (pem, kid) = match (n.forge_signature, i.kid.as_str()) {
        (true, _) => (OTHER_KEY, "k1"),
        (false, "k1") => (PROVIDER_KEY, "k1"),
        (false, _) => (OTHER_KEY, "k2"),
    };
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    let key = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("test key");
    let id_token = jsonwebtoken::encode(&header, &Value::Object(claims), &key).expect("sign");
    axum::Json(json!({
        "access_token": format!("at-{}", uuid::Uuid::new_v4().simple()),
        "token_type": "Bearer",
        "expires_in": 300,
        "id_token": id_token,
    }))
    .into_response()
}

/// One single sign-on through the HTTP front door, as a browser without JavaScript makes it.
pub struct SignIn {
    /// The `/auth/oidc/login` answer (303 to the provider, or a page).
    pub login: reqwest::StatusCode,
    /// The callback URL the provider sent the browser to (path and query on the app).
    pub callback_url: Option<String>,
    /// The browser-binding cookie (`name=value`) set by `/auth/oidc/login`.
    pub browser_cookie: Option<String>,
    /// The callback's answer.
    pub status: reqwest::StatusCode,
    pub location: Option<String>,
    /// The page session cookie (`vitrine_session=…`) when signed in.
    pub session: Option<String>,
    pub body: String,
}

impl SignIn {
    /// Signed in: the cookie header of the browser now.
    pub fn cookie(&self) -> String {
        assert_eq!(self.status, reqwest::StatusCode::SEE_OTHER, "signed in; page: {}", self.body);
        self.session.clone().expect("the session cookie")
    }
}

/// Starts a sign-in on `app` (to come back to `next`) and lets the provider approve it: the
/// callback URL and the browser-binding cookie, or the login answer when it did not redirect.
pub async fn start(app: &TestApp, next: &str) -> (reqwest::Response, Option<String>, Option<String>) {
    let login =
        app.client.get(app.url(&format!("/auth/oidc/login?next={}", urlencode(next)))).send().await.expect("login");
    if login.status() != reqwest::StatusCode::SEE_OTHER {
        return (login, None, None);
    }
    let cookie = set_cookie(&login, "vitrine_oidc").map(|c| cookie_pair(&c));
    let authorize = login.headers().get("location").and_then(|l| l.to_str().ok()).expect("location").to_string();
    let approved = app.client.get(&authorize).send().await.expect("authorize");
    let callback = approved.headers().get("location").and_then(|l| l.to_str().ok()).map(str::to_string);
    (login, callback, cookie)
}

/// Sends the provider's redirect to `app` (maybe another instance than the one that started it).
pub async fn finish(app: &TestApp, callback_url: &str, cookie: Option<&str>) -> (reqwest::Response, String) {
    let url = match callback_url.find("/auth/oidc/callback") {
        Some(i) => app.url(&callback_url[i..]),
        None => panic!("not a callback URL: {callback_url}"),
    };
    let mut req = app.client.get(url);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let r = req.send().await.expect("callback");
    let location = r.headers().get("location").and_then(|l| l.to_str().ok()).map(str::to_string);
    (r, location.unwrap_or_default())
}

/// A whole sign-in on `app`, coming back to `next`.
pub async fn sign_in(app: &TestApp, next: &str) -> SignIn {
    let (login, callback, cookie) = start(app, next).await;
    let login_status = login.status();
    let Some(callback_url) = callback else {
        let body = login.text().await.unwrap_or_default();
        return SignIn {
            login: login_status,
            callback_url: None,
            browser_cookie: None,
            status: login_status,
            location: None,
            session: None,
            body,
        };
    };
    let (r, location) = finish(app, &callback_url, cookie.as_deref()).await;
    let status = r.status();
    let session = set_cookie(&r, "vitrine_session").map(|c| cookie_pair(&c));
    let body = r.text().await.unwrap_or_default();
    SignIn {
        login: login_status,
        callback_url: Some(callback_url),
        browser_cookie: cookie,
        status,
        location: (!location.is_empty()).then_some(location),
        session,
        body,
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `GET /api/auth/me` with the page session `cookie`: the account JSON (the status when not 200).
pub async fn me(app: &TestApp, cookie: &str) -> Result<Value, reqwest::StatusCode> {
    let r = app.client.get(app.url("/api/auth/me/")).header("cookie", cookie).send().await.expect("me");
    if r.status() != reqwest::StatusCode::OK {
        return Err(r.status());
    }
    Ok(r.json().await.expect("json"))
}
