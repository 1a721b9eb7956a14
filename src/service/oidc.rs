//! Single sign-on with OpenID Connect (SPEC §13): the provider's metadata and keys (discovered
//! lazily, cached, keys fetched again for an unknown `kid`), the start of a sign-in (authorization
//! code flow with PKCE S256, `state` and `nonce`, kept in the database so that the callback may
//! reach any instance) and its end (the code exchanged, the ID token verified by the
//! `openidconnect` crate against the provider's JWKS, the account found or created, its role set
//! from the configured claim). The page session is opened by the caller, as for a password sign-in.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreClientAuthMethod, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreProviderMetadata, CoreRevocableToken, CoreRevocationErrorResponse, CoreTokenIntrospectionResponse,
    CoreTokenType,
};
use openidconnect::{
    AccessTokenHash, AdditionalClaims, AsyncHttpClient, AuthType, AuthorizationCode, Client, ClientId, ClientSecret,
    CsrfToken, EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, HttpRequest, HttpResponse,
    IdTokenClaims, IdTokenFields, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, RequestTokenError, Scope, StandardErrorResponse, StandardTokenResponse, TokenResponse,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::config::Config;
use crate::domain::audit::AuditAction;
use crate::domain::users::{Email, PersonName, Role, User};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::store::oidc::PendingLogin;
use crate::store::users::Created;

/// The stored password of accounts made by SSO: not an Argon2 hash, so no password ever matches it.
pub const NO_PASSWORD: &str = "!sso";

/// How long a sign-in may take between the redirect to the provider and the callback.
const LOGIN_TTL_MS: i64 = 10 * 60 * 1000;

/// Provider metadata (and its keys) are discovered again after this long.
const METADATA_TTL: Duration = Duration::from_secs(3600);

/// An unknown `kid` fetches the keys again at most this often (a rotated key is found at once;
/// a token naming keys that do not exist cannot make us hammer the provider).
const JWKS_REFETCH_MIN: Duration = Duration::from_secs(10);

/// Seconds an ID token is still accepted after its `exp` (clock skew with the provider).
const EXPIRY_LEEWAY_MS: i64 = 30_000;

/// Claims beyond the standard ones: the role claim (`oidc_role_claim`) is looked up here.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExtraClaims {
    #[serde(flatten)]
    pub claims: serde_json::Map<String, serde_json::Value>,
}

impl AdditionalClaims for ExtraClaims {}

type SsoIdTokenFields = IdTokenFields<
    ExtraClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type SsoIdToken =
    openidconnect::IdToken<ExtraClaims, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;
type SsoTokenResponse = StandardTokenResponse<SsoIdTokenFields, CoreTokenType>;

/// The client as `from_provider_metadata` makes it: authorization URL set, token URL maybe.
type SsoClient = Client<
    ExtraClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    SsoTokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// A failed request to the provider.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

/// The provider's HTTP client: our reqwest (rustls on aws-lc-rs), no redirects followed (SSRF),
/// bounded in time.
#[derive(Clone)]
pub struct Http(reqwest::Client);

impl<'c> AsyncHttpClient<'c> for Http {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let request = reqwest::Request::try_from(request).map_err(|e| HttpError(e.to_string()))?;
            let response = self.0.execute(request).await.map_err(|e| HttpError(e.to_string()))?;
            let mut out = http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                out = out.header(name, value);
            }
            // Discovery documents, key sets and token answers are small; a huge one is refused.
            let body = response.bytes().await.map_err(|e| HttpError(e.to_string()))?;
            if body.len() > 1024 * 1024 {
                return Err(HttpError("the provider's answer is larger than 1 MiB".into()));
            }
            out.body(body.to_vec()).map_err(|e| HttpError(e.to_string()))
        })
    }
}

/// The provider as last discovered.
struct Provider {
    metadata: CoreProviderMetadata,
    discovered: Instant,
    /// When the keys were last fetched again for an unknown key id (not at discovery).
    keys_refetched: Option<Instant>,
}

/// Single sign-on of this instance: settings, HTTP client and the cached provider metadata.
/// The cache is this instance's own: metadata and keys are the provider's, the same for every
/// instance, and nothing of ours is kept in it.
pub struct Oidc {
    issuer: IssuerUrl,
    client_id: ClientId,
    client_secret: ClientSecret,
    redirect: RedirectUrl,
    scopes: Vec<String>,
    role_claim: Option<String>,
    admin_values: Vec<String>,
    dashboard_values: Vec<String>,
    /// The name of the provider on the login page.
    pub name: String,
    http: Http,
    provider: tokio::sync::RwLock<Option<Arc<Provider>>>,
    /// One discovery or key fetch at a time.
    refreshing: tokio::sync::Mutex<()>,
}

/// Where to send the browser, and the value of its binding cookie.
pub struct Begun {
    pub authorize_url: String,
    /// The value of the short-lived cookie that ties the callback to this browser.
    pub browser_secret: String,
}

/// What the provider's redirect brought back.
pub struct Callback {
    pub state: String,
    pub code: String,
    /// The binding cookie's value, if the browser sent it.
    pub browser_secret: Option<String>,
    /// The client's address (for the audit log's keyed hash).
    pub ip: std::net::IpAddr,
}

/// A finished SSO sign-in: the account, and where to go now.
pub struct SignedIn {
    pub user: User,
    pub return_to: String,
    pub created: bool,
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn sso_error(message: impl Into<String>) -> AppError {
    AppError::bad_request(ErrorCode::SsoFailed, message)
}

fn unverified(message: impl Into<String>) -> AppError {
    AppError::Forbidden { code: ErrorCode::SsoFailed, message: message.into() }
}

fn provider_down(e: impl std::fmt::Display) -> AppError {
    tracing::warn!(error = %e, "the single sign-on provider cannot be reached");
    AppError::Unavailable("the single sign-on provider cannot be reached right now; try again in a minute".into())
}

/// The role the claim's value gives: `admin` when one of its values is an admin value, else
/// `dashboard` when one is a dashboard value, else `user`. The claim may be one string or a list.
pub fn role_from_claim(value: Option<&serde_json::Value>, admin: &[String], dashboard: &[String]) -> Role {
    let values: Vec<&str> = match value {
        Some(serde_json::Value::String(s)) => vec![s.as_str()],
        Some(serde_json::Value::Array(items)) => items.iter().filter_map(|v| v.as_str()).collect(),
        _ => vec![],
    };
    if values.iter().any(|v| admin.iter().any(|a| a == v)) {
        Role::Admin
    } else if values.iter().any(|v| dashboard.iter().any(|d| d == v)) {
        Role::Dashboard
    } else {
        Role::User
    }
}

impl Oidc {
    /// SSO of `config`, or `None` when it is not configured.
    pub fn from_config(config: &Config) -> anyhow::Result<Option<Oidc>> {
        let (Some(issuer), Some(client_id), Some(secret)) =
            (&config.oidc_issuer, &config.oidc_client_id, &config.oidc_client_secret)
        else {
            return Ok(None);
        };
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Some(Oidc {
            issuer: IssuerUrl::new(issuer.clone())?,
            client_id: ClientId::new(client_id.clone()),
            client_secret: ClientSecret::new(secret.clone()),
            redirect: RedirectUrl::new(format!("{}/auth/oidc/callback", config.base_url()))?,
            scopes: config.oidc_scopes.iter().filter(|s| s.as_str() != "openid").cloned().collect(),
            role_claim: config.oidc_role_claim.clone(),
            admin_values: config.oidc_admin_values.clone(),
            dashboard_values: config.oidc_dashboard_values.clone(),
            name: config.oidc_name.trim().to_string(),
            http: Http(http),
            provider: tokio::sync::RwLock::new(None),
            refreshing: tokio::sync::Mutex::new(()),
        }))
    }

    /// The provider's metadata and keys: cached, discovered when missing or older than an hour.
    /// While the provider is down a cached copy is still used; without one, a 503.
    async fn provider(&self) -> AppResult<Arc<Provider>> {
        if let Some(p) = self.provider.read().await.as_ref()
            && p.discovered.elapsed() < METADATA_TTL
        {
            return Ok(p.clone());
        }
        let _one = self.refreshing.lock().await;
        let cached = self.provider.read().await.clone();
        if let Some(p) = &cached
            && p.discovered.elapsed() < METADATA_TTL
        {
            return Ok(p.clone());
        }
        match CoreProviderMetadata::discover_async(self.issuer.clone(), &self.http).await {
            Ok(metadata) => {
                let p = Arc::new(Provider { metadata, discovered: Instant::now(), keys_refetched: None });
                *self.provider.write().await = Some(p.clone());
                tracing::info!(issuer = %self.issuer.as_str(), "single sign-on provider discovered");
                Ok(p)
            }
            Err(e) => match cached {
                Some(p) => {
                    tracing::warn!(error = %e, "single sign-on discovery failed; using the cached metadata");
                    Ok(p)
                }
                None => Err(provider_down(e)),
            },
        }
    }

    /// Fetches the provider's keys again (a key rotated since discovery); at most every
    /// `JWKS_REFETCH_MIN`. Returns the provider with the new keys, or `None` when nothing changed.
    async fn refetch_keys(&self, seen: &Arc<Provider>) -> Option<Arc<Provider>> {
        let _one = self.refreshing.lock().await;
        let current = self.provider.read().await.clone()?;
        if !Arc::ptr_eq(&current, seen) {
            return Some(current);
        }
        if current.keys_refetched.is_some_and(|t| t.elapsed() < JWKS_REFETCH_MIN) {
            return None;
        }
        let keys = match CoreJsonWebKeySet::fetch_async(current.metadata.jwks_uri(), &self.http).await {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(error = %e, "fetching the single sign-on provider's keys failed");
                return None;
            }
        };
        let metadata = current.metadata.clone().set_jwks(keys);
        let p = Arc::new(Provider { metadata, discovered: current.discovered, keys_refetched: Some(Instant::now()) });
        *self.provider.write().await = Some(p.clone());
        tracing::info!("single sign-on provider keys fetched again (unknown key id)");
        Some(p)
    }

    fn client(&self, provider: &Provider) -> SsoClient {
        let client = SsoClient::from_provider_metadata(
            provider.metadata.clone(),
            self.client_id.clone(),
            Some(self.client_secret.clone()),
        )
        .set_redirect_uri(self.redirect.clone());
        // client_secret_basic unless the provider says it only takes client_secret_post.
        let methods = provider.metadata.token_endpoint_auth_methods_supported();
        let post_only = methods.is_some_and(|m| {
            !m.contains(&CoreClientAuthMethod::ClientSecretBasic) && m.contains(&CoreClientAuthMethod::ClientSecretPost)
        });
        if post_only { client.set_auth_type(AuthType::RequestBody) } else { client }
    }
}

/// The SSO of `state`, or a 404 when it is not configured.
pub fn configured(state: &AppState) -> AppResult<&Oidc> {
    state.oidc.as_ref().ok_or(AppError::NotFound("single sign-on"))
}

/// Starts a sign-in: a fresh `state`, `nonce` and PKCE verifier kept in the database (with the
/// hash of the browser's binding cookie and the same-origin path `return_to`), and the
/// provider's authorization URL to send the browser to. Each start writes a row, so starts count
/// against the sign-in limit per client address (`login_rate_per_ip_per_minute`, shared by every
/// instance), like password sign-ins.
pub async fn begin(state: &AppState, return_to: &str, ip: std::net::IpAddr) -> AppResult<Begun> {
    let oidc = configured(state)?;
    state.limits.login_per_ip.check(ip).await?;
    let provider = oidc.provider().await?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let login_state = crate::auth::random_token();
    let nonce = crate::auth::random_token();
    let browser_secret = crate::auth::random_token();
    let url = {
        let client = oidc.client(&provider);
        let s = login_state.clone();
        let n = nonce.clone();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            move || CsrfToken::new(s),
            move || Nonce::new(n),
        );
        for scope in &oidc.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        request.set_pkce_challenge(challenge).url().0
    };
    let now = state.clock.now_ms();
    state
        .store
        .insert_oidc_login(
            &PendingLogin {
                state: login_state,
                browser_hash: sha256_hex(&browser_secret),
                nonce,
                pkce_verifier: verifier.secret().clone(),
                return_to: return_to.to_string(),
                expires_at: now + LOGIN_TTL_MS,
            },
            now,
        )
        .await?;
    Ok(Begun { authorize_url: url.to_string(), browser_secret })
}

/// Ends a sign-in: takes its `state` (once), exchanges the code, verifies the ID token and signs
/// the person in to their account (found by provider identity, then by verified e-mail address,
/// or created). Every refusal says why in words a person can act on.
pub async fn finish(state: &AppState, callback: Callback) -> AppResult<SignedIn> {
    let oidc = configured(state)?;
    let cb_ip = callback.ip;
    let pending = state.store.take_oidc_login(&callback.state).await?.ok_or_else(|| {
        sso_error("this sign-in is unknown or was already used (wrong state); start again from the login page")
    })?;
    if pending.expires_at <= state.clock.now_ms() {
        return Err(sso_error("this sign-in took too long and has expired; start again from the login page"));
    }
    let same_browser =
        callback.browser_secret.as_deref().is_some_and(|b| crate::auth::same(&sha256_hex(b), &pending.browser_hash));
    if !same_browser {
        return Err(sso_error(
            "this sign-in was started in another browser (or its cookie is gone); start again from the login page",
        ));
    }
    let mut provider = oidc.provider().await?;
    let client = oidc.client(&provider);
    let exchange = client
        .exchange_code(AuthorizationCode::new(callback.code))
        .map_err(|e| provider_down(format!("the provider has no token endpoint: {e}")))?
        .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()));
    let tokens = match exchange.request_async(&oidc.http).await {
        Ok(t) => t,
        Err(RequestTokenError::ServerResponse(e)) => {
            tracing::info!(error = %e, "the single sign-on provider refused the code");
            return Err(AppError::Unauthenticated(format!("the sign-in provider refused the sign-in: {e}")));
        }
        Err(e) => return Err(provider_down(e)),
    };
    let id_token =
        tokens.id_token().ok_or_else(|| AppError::Unauthenticated("the sign-in provider sent no ID token".into()))?;
    let nonce = Nonce::new(pending.nonce.clone());
    let clock = state.clock.clone();
    let now = move || chrono::DateTime::from_timestamp_millis(clock.now_ms() - EXPIRY_LEEWAY_MS).unwrap_or_default();
    // The crate checks the signature against the provider's keys, the issuer, the audience (this
    // client alone), the expiry and the nonce. An unknown key id fetches the keys once more.
    let mut keys_refetched = false;
    let claims: IdTokenClaims<ExtraClaims, CoreGenderClaim> = loop {
        let client = oidc.client(&provider);
        let verifier = client.id_token_verifier().set_time_fn(now.clone());
        let e = match id_token.claims(&verifier, &nonce) {
            Ok(c) => {
                check_access_token_hash(c, id_token, &verifier, tokens.access_token())?;
                break c.clone();
            }
            Err(e) => e,
        };
        let unknown_key = matches!(
            e,
            openidconnect::ClaimsVerificationError::SignatureVerification(
                openidconnect::SignatureVerificationError::NoMatchingKey
            )
        );
        if unknown_key && !keys_refetched {
            keys_refetched = true;
            if let Some(p) = oidc.refetch_keys(&provider).await {
                provider = p;
                continue;
            }
        }
        let why = match std::error::Error::source(&e) {
            Some(cause) => format!("{e} ({cause})"),
            None => e.to_string(),
        };
        tracing::info!(error = %why, "single sign-on ID token refused");
        return Err(AppError::Unauthenticated(format!("the sign-in could not be verified: {why}")));
    };
    let email = claims.email().ok_or_else(|| {
        unverified("the sign-in provider did not give an e-mail address; ask it to share it (scope email)")
    })?;
    if claims.email_verified() != Some(true) {
        return Err(unverified(
            "the sign-in provider has not verified this e-mail address; verify it there, then sign in again",
        ));
    }
    let email =
        Email::parse(email.as_str()).map_err(|_| unverified("the e-mail address the provider gave is not valid"))?;
    let issuer = claims.issuer().as_str().to_string();
    let subject = claims.subject().as_str().to_string();
    let role = oidc.role_claim.as_ref().map(|claim| {
        role_from_claim(claims.additional_claims().claims.get(claim), &oidc.admin_values, &oidc.dashboard_values)
    });
    let name = claims
        .name()
        .and_then(|n| n.get(None))
        .map(|n| n.as_str().to_string())
        .or_else(|| claims.preferred_username().map(|u| u.as_str().to_string()));
    let (user, created) = account(state, &issuer, &subject, &email, name.as_deref(), role, cb_ip).await?;
    if !user.is_active {
        return Err(AppError::Forbidden {
            code: ErrorCode::AccountDisabled,
            message: "this account is disabled".into(),
        });
    }
    let now_ms = state.clock.now_ms();
    state.store.link_identity(&issuer, &subject, user.id, email.as_str(), now_ms).await?;
    let user = match role {
        Some(r) if r != user.role => set_role(state, user, r, cb_ip).await?,
        _ => user,
    };
    tracing::info!(user_id = user.id, created, role = user.role.as_str(), "signed in with single sign-on");
    Ok(SignedIn { user, return_to: pending.return_to, created })
}

/// The ID token's `at_hash`, when it has one, must be the hash of the access token it came with.
fn check_access_token_hash(
    claims: &IdTokenClaims<ExtraClaims, CoreGenderClaim>,
    id_token: &SsoIdToken,
    verifier: &openidconnect::IdTokenVerifier<'_, CoreJsonWebKey>,
    access_token: &openidconnect::AccessToken,
) -> AppResult<()> {
    let Some(expected) = claims.access_token_hash() else { return Ok(()) };
    let refuse = |why: String| AppError::Unauthenticated(format!("the sign-in could not be verified: {why}"));
    let alg = id_token.signing_alg().map_err(|e| refuse(e.to_string()))?;
    let key = id_token.signing_key(verifier).map_err(|e| refuse(e.to_string()))?;
    let actual = AccessTokenHash::from_token(access_token, alg, key).map_err(|e| refuse(e.to_string()))?;
    if actual != *expected {
        return Err(refuse("the access token does not match the ID token".into()));
    }
    Ok(())
}

/// The account of the identity (`issuer`, `subject`): the one linked to it, else the one with the
/// verified address `email`, else a new one (role from the claim; without a role claim the usual
/// rule: `user`, or `admin` for the first account). New accounts have no usable password.
async fn account(
    state: &AppState,
    issuer: &str,
    subject: &str,
    email: &Email,
    name: Option<&str>,
    role: Option<Role>,
    ip: std::net::IpAddr,
) -> AppResult<(User, bool)> {
    if let Some(u) = state.store.user_by_identity(issuer, subject).await? {
        return Ok((u, false));
    }
    if let Some(u) = state.store.user_by_email(email.as_str()).await? {
        return Ok((u, false));
    }
    let local = email.as_str().split('@').next().unwrap_or("user");
    let name = name
        .and_then(|n| PersonName::parse(n).ok())
        .or_else(|| PersonName::parse(local).ok())
        .ok_or_else(|| unverified("the sign-in provider gave no usable name"))?;
    let who = crate::service::audit::who(state, None, Some(ip));
    let audit = |id: i64, role: Role| {
        let details = serde_json::json!({"email": email.as_str(), "role": role.as_str(), "via": "sso"});
        who.as_actor(id).entry(AuditAction::UserCreated, id, details)
    };
    match state.store.create_user(email, &name, NO_PASSWORD, role, state.clock.now_ms(), audit).await? {
        Created::Ok(u) => {
            tracing::info!(user_id = u.id, role = u.role.as_str(), "account created by single sign-on");
            Ok((u, true))
        }
        // Another sign-in of the same address created it a moment ago.
        Created::EmailTaken => match state.store.user_by_email(email.as_str()).await? {
            Some(u) => Ok((u, false)),
            None => Err(AppError::internal(anyhow::anyhow!("account vanished while signing in"))),
        },
    }
}

/// Sets the role the claim gives, except that the last active admin keeps the role (as with
/// `PATCH /api/admin/users/{id}/`): an installation is never left without an admin.
async fn set_role(state: &AppState, user: User, role: Role, ip: std::net::IpAddr) -> AppResult<User> {
    if user.is_admin() && role != Role::Admin && state.store.count_admins().await? <= 1 {
        tracing::warn!(user_id = user.id, "single sign-on would remove the last admin; the account stays admin");
        return Ok(user);
    }
    let details =
        serde_json::json!({"email": user.email, "from": user.role.as_str(), "to": role.as_str(), "via": "sso"});
    let entry = crate::service::audit::who(state, Some(user.id), Some(ip)).entry(
        AuditAction::UserRoleChanged,
        user.id,
        details,
    );
    let updated = state.store.update_user(user.id, Some(role), None, state.clock.now_ms(), &[entry]).await?;
    tracing::info!(user_id = user.id, from = user.role.as_str(), to = role.as_str(), "role set by single sign-on");
    Ok(updated.unwrap_or(user))
}

/// With `oidc_only`, whether `user` may still sign in with a password: only local admins (admin
/// accounts never linked to the provider, such as those made by `vitrine user create`), the way
/// in when the provider is down or misconfigured.
pub async fn password_allowed(state: &AppState, user: &User) -> AppResult<bool> {
    if !state.config.oidc_only {
        return Ok(true);
    }
    Ok(user.is_admin() && !state.store.has_identity(user.id).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_role_follows_string_or_list_claims_admin_first() {
        let admin = vec!["vitrine-admins".to_string()];
        let dash = vec!["vitrine-dashboard".to_string(), "support".to_string()];
        let role = |v: serde_json::Value| role_from_claim(Some(&v), &admin, &dash);
        assert_eq!(role(serde_json::json!("vitrine-admins")), Role::Admin);
        assert_eq!(role(serde_json::json!(["support", "vitrine-admins"])), Role::Admin);
        assert_eq!(role(serde_json::json!(["staff", "support"])), Role::Dashboard);
        assert_eq!(role(serde_json::json!("staff")), Role::User);
        assert_eq!(role(serde_json::json!(42)), Role::User);
        assert_eq!(role_from_claim(None, &admin, &dash), Role::User);
    }
}
