//! Credentials: Argon2id password hashes (off the async threads, bounded), access tokens (JWT,
//! HS256 only, `exp` required), generated secrets kept in the data dir, CSRF tokens.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use crate::domain::time::Clock;
use crate::error::AppError;

/// Signing keys, from the config or generated on first start.
#[derive(Clone)]
pub struct Secrets {
    pub jwt: Vec<u8>,
    pub hmac: Vec<u8>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(***)")
    }
}

impl Secrets {
    /// Configured secrets (`jwt_secret`, `hmac_secret`) win; otherwise
    /// `data_dir/secrets/<name>.key` is read or created (0600).
    pub fn load(data_dir: &Path, jwt_secret: Option<&str>, hmac_secret: Option<&str>) -> anyhow::Result<Secrets> {
        let dir = data_dir.join("secrets");
        let jwt = match jwt_secret {
            Some(s) => s.as_bytes().to_vec(),
            None => load_or_create(&dir, "jwt")?,
        };
        let hmac = match hmac_secret {
            Some(s) => s.as_bytes().to_vec(),
            None => load_or_create(&dir, "hmac")?,
        };
        if jwt.len() < 32 || hmac.len() < 32 {
            anyhow::bail!("`jwt_secret` and `hmac_secret` must be at least 32 characters long");
        }
        Ok(Secrets { jwt, hmac })
    }
}

fn load_or_create(dir: &Path, name: &str) -> anyhow::Result<Vec<u8>> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let path = dir.join(format!("{name}.key"));
    if let Ok(s) = std::fs::read_to_string(&path) {
        let s = s.trim().to_string();
        if s.len() >= 32 {
            return Ok(s.into_bytes());
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let value = hex::encode(raw);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot write the secret {}", path.display()))?;
    f.write_all(value.as_bytes())?;
    f.sync_all()?;
    Ok(value.into_bytes())
}

/// Claims of an access token.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    pub iat: u64,
    /// Token kind: `ACCESS` (API bearer tokens of accounts), `PAGE_SESSION` (the login cookie,
    /// never accepted as a bearer token), "share" (a link), "chat" (a chat visitor).
    pub typ: String,
    /// The sign-in session an account token belongs to (`ACCESS`, `PAGE_SESSION`): it is honoured
    /// only while that session is live in the database (issue 18 item 7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// Kind of an account's API bearer token (`Authorization: Bearer`, `?token=`).
pub const ACCESS: &str = "access";
/// Kind of the HTML login cookie's token: a different kind, so the cookie is never a bearer token.
pub const PAGE_SESSION: &str = "session";

/// Password hashing and token signing.
pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_secs: u64,
    hash_permits: Arc<Semaphore>,
    dummy_hash: String,
    /// The app's clock: `iat`/`exp` of new tokens and the expiry check.
    clock: Arc<dyn Clock>,
}

/// Seconds a token is still accepted after its `exp` (clock skew between instances).
const LEEWAY_SECS: u64 = 5;

impl Auth {
    pub fn new(secrets: &Secrets, ttl_secs: u64, clock: Arc<dyn Clock>) -> anyhow::Result<Auth> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_required_spec_claims(&["exp", "sub", "iat"]);
        // `exp` is required here and checked in `verify` against the app's clock (jsonwebtoken
        // would read the system time).
        validation.validate_exp = false;
        let dummy_hash = hash_now("not a real password, used to equalise timing")?;
        Ok(Auth {
            encoding: EncodingKey::from_secret(&secrets.jwt),
            decoding: DecodingKey::from_secret(&secrets.jwt),
            validation,
            ttl_secs,
            // Argon2id takes ~19 MiB and tens of ms per hash: at most two at a time per core.
            hash_permits: Arc::new(Semaphore::new(
                std::thread::available_parallelism().map(|n| n.get() * 2).unwrap_or(4),
            )),
            dummy_hash,
            clock,
        })
    }

    /// Unix seconds by the app's clock.
    fn now_secs(&self) -> u64 {
        (self.clock.now_ms() / 1000).max(0) as u64
    }

    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    pub async fn hash_password(&self, password: &str) -> Result<String, AppError> {
        let _permit = self.hash_permits.acquire().await.map_err(AppError::internal)?;
        let pw = password.to_string();
        tokio::task::spawn_blocking(move || hash_now(&pw))
            .await
            .map_err(AppError::internal)?
            .map_err(AppError::internal)
    }

    /// Checks `password` against `hash`; with no hash (unknown account) it still spends the time.
    pub async fn verify_password(&self, password: &str, hash: Option<&str>) -> Result<bool, AppError> {
        let _permit = self.hash_permits.acquire().await.map_err(AppError::internal)?;
        let pw = password.to_string();
        let known = hash.is_some();
        let h = hash.unwrap_or(&self.dummy_hash).to_string();
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&h)
                .map(|parsed| Argon2::default().verify_password(pw.as_bytes(), &parsed).is_ok())
                .unwrap_or(false)
        })
        .await
        .map_err(AppError::internal)?;
        Ok(ok && known)
    }

    pub fn issue(&self, subject: &str, typ: &str, ttl_secs: u64) -> Result<String, AppError> {
        let now = self.now_secs();
        let claims =
            Claims { sub: subject.to_string(), exp: now + ttl_secs, iat: now, typ: typ.to_string(), sid: None };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(AppError::internal)
    }

    /// An account token of kind `typ` (`ACCESS` or `PAGE_SESSION`) bound to the sign-in session
    /// `sid`, expiring at `exp` (unix seconds, the session's own expiry).
    pub fn issue_for_session(&self, user_id: i64, typ: &str, sid: &str, exp: u64) -> Result<String, AppError> {
        let now = self.now_secs();
        let claims =
            Claims { sub: user_id.to_string(), exp, iat: now, typ: typ.to_string(), sid: Some(sid.to_string()) };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(AppError::internal)
    }

    /// Decodes a token of kind `typ`; any failure is a 401.
    pub fn verify(&self, token: &str, typ: &str) -> Result<Claims, AppError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| AppError::Unauthenticated("the token is not valid".into()))?;
        if data.claims.exp < self.now_secs().saturating_sub(LEEWAY_SECS) {
            return Err(AppError::Unauthenticated("the token has expired; log in again".into()));
        }
        if data.claims.typ != typ {
            return Err(AppError::Unauthenticated("the token is not valid here".into()));
        }
        Ok(data.claims)
    }
}

fn hash_now(password: &str) -> anyhow::Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("password hashing failed: {e}"))
}

/// A fresh random token (hex) for CSRF cookies.
pub fn random_token() -> String {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    hex::encode(raw)
}

/// A new personal access token: `vtr_` and 32 bytes from the CSPRNG in base64url (43 characters).
pub fn new_api_token() -> String {
    use base64::Engine;
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    format!("{}{}", crate::domain::tokens::TOKEN_PREFIX, base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw))
}

/// What the database keeps of an access token: its SHA-256 (hex). The token holds 256 random
/// bits, so a plain hash is enough (no salt, no slow hash) and a lookup by hash finds it.
pub fn api_token_hash(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// Constant-time string equality.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::ManualClock;

    #[test]
    fn tokens_are_stamped_and_expire_by_the_apps_clock() {
        // 2024: long past by the system's time, so only the app's clock can call it valid.
        let clock = Arc::new(ManualClock::new(1_705_314_600_000));
        let auth = Auth::new(&Secrets { jwt: vec![7; 32], hmac: vec![8; 32] }, 3600, clock.clone()).expect("auth");
        let token = auth.issue("abc", "share", 60).expect("token");
        let claims = auth.verify(&token, "share").expect("valid");
        assert_eq!((claims.iat, claims.exp), (1_705_314_600, 1_705_314_660));
        clock.advance_ms((60 + LEEWAY_SECS as i64) * 1000);
        assert!(auth.verify(&token, "share").is_ok(), "still valid within the leeway");
        clock.advance_ms(1000);
        assert!(auth.verify(&token, "share").is_err(), "expired");
    }
}
