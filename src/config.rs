//! Typed configuration: defaults < `vitrine.toml` < `VITRINE_*` environment; validated before a port
//! is bound, with errors that say what to change; secrets print as `***`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};

/// Where blobs live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    Local,
    S3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    Open,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The whole configuration. Field names are the keys of `vitrine.toml` and, upper-cased with a
/// `VITRINE_` prefix, of the environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: String,
    pub data_dir: PathBuf,
    pub public_url: String,
    /// `sqlite://...` or `postgres://...`; empty means SQLite in `data_dir/vitrine.db`. A PostgreSQL
    /// URL may carry libpq's TLS parameters (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`).
    #[serde(deserialize_with = "lossy_opt_string")]
    pub database_url: Option<String>,
    pub database_max_connections: u32,
    pub storage: StorageKind,
    #[serde(deserialize_with = "lossy_opt_string")]
    pub s3_endpoint: Option<String>,
    #[serde(deserialize_with = "lossy_opt_string")]
    pub s3_bucket: Option<String>,
    #[serde(deserialize_with = "lossy_string")]
    pub s3_region: String,
    #[serde(deserialize_with = "lossy_opt_string")]
    pub s3_access_key: Option<String>,
    #[serde(deserialize_with = "lossy_opt_string")]
    pub s3_secret_key: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`), which most self-hosted S3 servers need.
    pub s3_path_style: bool,
    /// `redis://` or `rediss://` (TLS), optionally with `user:password@`.
    #[serde(deserialize_with = "lossy_opt_string")]
    pub bus_url: Option<String>,
    /// PEM file of the CA that signed the Redis server's certificate (`rediss://` only); empty
    /// means the public CAs built into the binary (Mozilla's list).
    #[serde(deserialize_with = "lossy_opt_string")]
    pub bus_tls_ca: Option<String>,
    #[serde(deserialize_with = "lossy_opt_string")]
    pub smtp_url: Option<String>,
    /// Sender of notification and invitation mails.
    #[serde(deserialize_with = "lossy_string")]
    pub smtp_from: String,
    /// At most one access e-mail per link in this many seconds (live notifications are not limited).
    pub notify_email_interval_secs: u64,
    #[serde(deserialize_with = "lossy_opt_string")]
    pub clamd_address: Option<String>,
    #[serde(deserialize_with = "lossy_opt_string")]
    pub geoip_db: Option<String>,
    pub registration: Registration,
    /// Proxies whose `X-Forwarded-For` is believed: IP addresses or CIDR ranges.
    #[serde(deserialize_with = "string_list")]
    pub trusted_proxies: Vec<String>,
    pub log_format: LogFormat,
    #[serde(deserialize_with = "lossy_string")]
    pub log_level: String,
    /// Signing key of access tokens; generated into `data_dir/secrets` when empty.
    #[serde(deserialize_with = "lossy_opt_string")]
    pub jwt_secret: Option<String>,
    /// Key of signed download URLs and CSRF tokens; generated into `data_dir/secrets` when empty.
    #[serde(deserialize_with = "lossy_opt_string")]
    pub hmac_secret: Option<String>,
    /// Lifetime of access tokens and login sessions.
    pub token_ttl_secs: u64,
    /// Largest accepted asset upload.
    pub asset_max_bytes: u64,
    /// Unfinished resumable (tus) uploads expire this long after their last bytes arrived.
    pub upload_expiry_hours: u64,
    /// Unfinished resumable uploads a user may have at once (429 beyond).
    pub upload_max_open_per_user: u32,
    /// Allowed MIME types of uploaded assets (sniffed from the bytes).
    #[serde(deserialize_with = "string_list")]
    pub asset_allowed_types: Vec<String>,
    /// Largest image (width x height) that is decoded for a thumbnail; larger ones are refused.
    pub image_max_pixels: u64,
    /// Lifetime of signed download URLs.
    pub download_url_ttl_secs: u64,
    pub login_rate_per_ip_per_minute: u32,
    pub login_rate_per_account_per_minute: u32,
    /// How often the leftover-blob sweeper runs.
    pub blob_gc_interval_secs: u64,
    /// Unreferenced blobs younger than this are left alone (an upload may be committing).
    pub blob_gc_grace_secs: u64,
    /// Requests per minute per IP on a link's password and download endpoints.
    pub share_access_rate_per_ip_per_minute: u32,
    /// Links a user may create per hour.
    pub share_create_rate_per_user_per_hour: u32,
    /// Wrong passwords per IP and link before a lockout.
    pub share_password_max_failures: u32,
    /// Length of that lockout.
    pub share_lockout_secs: u64,
    /// How long a counted download may be resumed (Range) without counting again.
    pub share_resume_window_secs: u64,
    /// Record share views, previews, downloads and comments.
    pub analytics_enabled: bool,
    /// Raw analytics events older than this are deleted (daily rollups stay).
    pub analytics_retention_days: u32,
    /// Audit log entries older than this are deleted (SPEC §13).
    pub audit_retention_days: u32,
    /// Events waiting to be written; when full, new events are dropped (and counted).
    pub analytics_queue_capacity: usize,
    /// How many durable events a reconnecting live client may recover; an older gap gets the
    /// current state instead (`recovered: false`).
    pub realtime_recovery_window: i64,
    /// Comments by share visitors (guests), per client IP.
    pub guest_comment_rate_per_ip_per_minute: u32,
    /// Uploads to file requests, per client IP (SPEC §11).
    pub file_request_rate_per_ip_per_minute: u32,
    /// Gallery and search endpoints: requests per hour of a dashboard user (SPEC §6).
    pub gallery_rate_dashboard_per_hour: u32,
    /// Gallery and search endpoints: requests per hour of an admin.
    pub gallery_rate_admin_per_hour: u32,
    /// Chat uploads: largest file (25 MiB).
    pub chat_max_bytes: u64,
    /// Chat uploads: MIME types accepted (decided from the bytes).
    #[serde(deserialize_with = "string_list")]
    pub chat_allowed_types: Vec<String>,
    /// Chat uploads per uploader (visitor session or agent) per minute.
    pub chat_upload_rate_per_minute: u32,
    /// Chat sessions opened per client IP per minute.
    pub chat_session_rate_per_ip_per_minute: u32,
    /// Lifetime of a visitor's chat token.
    pub chat_token_ttl_secs: u64,
    /// Lifetime of the signed `url` / `thumbnail` links of chat files.
    pub chat_url_ttl_secs: u64,
    /// With clamd unreachable: store unscanned (true) or refuse with 503 (false).
    pub clamd_fail_open: bool,
    /// Longest clamd may take to accept a connection, to take the next piece of an upload, or to
    /// answer once the upload has ended (the client's pace in between is not counted).
    pub clamd_timeout_secs: u64,
    /// On SIGTERM, how long requests in flight (uploads, downloads) may run before they are cut.
    pub shutdown_grace_secs: u64,
    /// Bearer token of `/metrics` scrapers that may see per-tenant series (company ids); without
    /// it `/metrics` shows only series that name no tenant. At least 32 characters.
    #[serde(deserialize_with = "lossy_opt_string")]
    pub metrics_token: Option<String>,
    /// A request's line and headers must arrive within this many seconds of its first byte.
    pub header_timeout_secs: u64,
    /// A keep-alive connection with no request under way is closed after this many seconds.
    pub idle_timeout_secs: u64,
    /// Longest wait for request-body bytes, and the window `body_min_rate_bytes` is averaged over.
    pub body_timeout_secs: u64,
    /// Slowest accepted request body, in bytes per second of waiting (0: only the stall rule).
    pub body_min_rate_bytes: u64,
    /// Live connections (WebSockets included); lowered to fit the open-files limit.
    pub max_connections: u64,
    /// Live connections from one client address (0: no cap); a trusted proxy counts only globally.
    pub max_connections_per_ip: u64,
    /// Social-network message templates (`{title}`, `{url}`, `{description}`) and hashtags.
    pub social: crate::domain::shares::SocialConfig,
    /// Images decoded at once (uploads wait their turn); 0 = one per CPU core.
    pub image_decode_concurrency: usize,
    /// Memory one image decode may allocate; an image needing more is refused (422).
    pub image_decode_max_bytes: u64,
    /// Largest image (width x height) accepted in chat uploads (below `image_max_pixels`).
    pub chat_image_max_pixels: u64,
    /// Local storage: `/readyz` reports storage `full` below this much free space.
    pub storage_min_free_bytes: u64,
    /// Webhook hosts allowed although they resolve to loopback, private or link-local addresses
    /// (host names or IP addresses, as written in the webhook URL).
    #[serde(deserialize_with = "string_list")]
    pub webhook_allowed_hosts: Vec<String>,
    /// Delays between a failed webhook delivery and its retries; `failed` after the last.
    #[serde(deserialize_with = "u64_list")]
    pub webhook_retry_delays_secs: Vec<u64>,
    /// A webhook receiver that has not answered in this long has failed the attempt.
    pub webhook_timeout_secs: u64,
    /// Single sign-on (OpenID Connect): the provider's issuer URL (its discovery document is
    /// `{issuer}/.well-known/openid-configuration`). SSO is on when this, `oidc_client_id` and
    /// `oidc_client_secret` are set.
    #[serde(deserialize_with = "lossy_opt_string")]
    pub oidc_issuer: Option<String>,
    #[serde(deserialize_with = "lossy_opt_string")]
    pub oidc_client_id: Option<String>,
    #[serde(deserialize_with = "lossy_opt_string")]
    pub oidc_client_secret: Option<String>,
    /// The provider's name on the login page: "Sign in with {oidc_name}".
    #[serde(deserialize_with = "lossy_string")]
    pub oidc_name: String,
    /// Scopes asked for (`openid` is always sent).
    #[serde(deserialize_with = "string_list")]
    pub oidc_scopes: Vec<String>,
    /// ID token claim (a string or a list of strings, e.g. `groups` or `role`) that sets the
    /// account's role at every SSO sign-in; unset: roles are managed in Vitrine.
    #[serde(deserialize_with = "lossy_opt_string")]
    pub oidc_role_claim: Option<String>,
    /// Values of `oidc_role_claim` that make an account `admin`.
    #[serde(deserialize_with = "string_list")]
    pub oidc_admin_values: Vec<String>,
    /// Values of `oidc_role_claim` that make an account `dashboard` (when none is an admin value).
    #[serde(deserialize_with = "string_list")]
    pub oidc_dashboard_values: Vec<String>,
    /// Only SSO signs in: password sign-in (page and API) and self-registration are refused,
    /// except password sign-in of local admins (admin accounts never linked to the provider).
    pub oidc_only: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./data"),
            public_url: "http://127.0.0.1:8080".into(),
            database_url: None,
            database_max_connections: 16,
            storage: StorageKind::Local,
            s3_endpoint: None,
            s3_bucket: None,
            s3_region: "us-east-1".into(),
            s3_access_key: None,
            s3_secret_key: None,
            s3_path_style: true,
            bus_url: None,
            bus_tls_ca: None,
            smtp_url: None,
            smtp_from: "Vitrine <no-reply@localhost>".into(),
            notify_email_interval_secs: 600,
            clamd_address: None,
            geoip_db: None,
            registration: Registration::Open,
            trusted_proxies: vec![],
            log_format: LogFormat::Text,
            log_level: "info".into(),
            jwt_secret: None,
            hmac_secret: None,
            token_ttl_secs: 24 * 3600,
            asset_max_bytes: 2 * 1024 * 1024 * 1024,
            upload_expiry_hours: 24,
            upload_max_open_per_user: 20,
            asset_allowed_types: crate::domain::filetype::default_asset_types(),
            image_max_pixels: 100_000_000,
            download_url_ttl_secs: 3600,
            login_rate_per_ip_per_minute: 10,
            login_rate_per_account_per_minute: 5,
            blob_gc_interval_secs: 600,
            blob_gc_grace_secs: 3600,
            share_access_rate_per_ip_per_minute: 10,
            share_create_rate_per_user_per_hour: 50,
            share_password_max_failures: 5,
            share_lockout_secs: 900,
            share_resume_window_secs: 3600,
            analytics_enabled: true,
            analytics_retention_days: 365,
            audit_retention_days: 365,
            analytics_queue_capacity: 100_000,
            realtime_recovery_window: 10_000,
            guest_comment_rate_per_ip_per_minute: 10,
            file_request_rate_per_ip_per_minute: 30,
            gallery_rate_dashboard_per_hour: 200,
            gallery_rate_admin_per_hour: 300,
            chat_max_bytes: 25 * 1024 * 1024,
            chat_allowed_types: crate::domain::filetype::default_chat_types(),
            chat_upload_rate_per_minute: 10,
            chat_session_rate_per_ip_per_minute: 30,
            chat_token_ttl_secs: 86_400,
            chat_url_ttl_secs: 3_600,
            clamd_fail_open: false,
            clamd_timeout_secs: 30,
            shutdown_grace_secs: 30,
            metrics_token: None,
            header_timeout_secs: 10,
            idle_timeout_secs: 60,
            body_timeout_secs: 10,
            body_min_rate_bytes: 1024,
            max_connections: 10_000,
            max_connections_per_ip: 200,
            social: crate::domain::shares::SocialConfig::default(),
            image_decode_concurrency: 0,
            image_decode_max_bytes: 512 * 1024 * 1024,
            chat_image_max_pixels: 50_000_000,
            storage_min_free_bytes: 64 * 1024 * 1024,
            webhook_allowed_hosts: vec![],
            webhook_retry_delays_secs: vec![5, 30, 120, 600, 3600, 21600],
            webhook_timeout_secs: 10,
            oidc_issuer: None,
            oidc_client_id: None,
            oidc_client_secret: None,
            oidc_name: "SSO".into(),
            oidc_scopes: vec!["openid".into(), "email".into(), "profile".into()],
            oidc_role_claim: None,
            oidc_admin_values: vec![],
            oidc_dashboard_values: vec![],
            oidc_only: false,
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    S(String),
    I(i64),
    U(u64),
    F(f64),
    B(bool),
}

impl Scalar {
    fn into_string(self) -> String {
        match self {
            Scalar::S(s) => s,
            Scalar::I(i) => i.to_string(),
            Scalar::U(u) => u.to_string(),
            Scalar::F(f) => f.to_string(),
            Scalar::B(b) => b.to_string(),
        }
    }
}

/// Accepts strings, numbers and booleans as a string (environment values like `123` parse as numbers).
fn lossy_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Scalar::deserialize(d)?.into_string())
}

fn lossy_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = Option::<Scalar>::deserialize(d)?.map(Scalar::into_string);
    Ok(s.filter(|s| !s.trim().is_empty()))
}

/// A list given either as a TOML array or as one comma-separated string (handy in the environment).
fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        One(String),
        Many(Vec<String>),
    }
    Ok(match List::deserialize(d)? {
        List::One(s) => s.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect(),
        List::Many(v) => v,
    })
}

/// A list of whole numbers given as a TOML array or as one comma-separated string.
fn u64_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        One(u64),
        Text(String),
        Many(Vec<u64>),
    }
    match List::deserialize(d)? {
        List::One(n) => Ok(vec![n]),
        List::Many(v) => Ok(v),
        List::Text(s) => s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| p.parse::<u64>().map_err(|_| serde::de::Error::custom(format!("{p:?} is not a whole number"))))
            .collect(),
    }
}

impl Config {
    /// Loads defaults, then the file (explicit path, or `vitrine.toml` in the working directory if
    /// present), then `VITRINE_*` variables.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        match path {
            Some(p) => {
                if !p.exists() {
                    bail!("the configuration file {} does not exist; fix --config", p.display());
                }
                fig = fig.merge(Toml::file(p));
            }
            None => {
                if Path::new("vitrine.toml").exists() {
                    fig = fig.merge(Toml::file("vitrine.toml"));
                }
            }
        }
        // `VITRINE_SOCIAL__TWITTER=...` sets `social.twitter`.
        // `VITRINE_NEW_USER_PASSWORD` is an argument of `vitrine user create`, not a setting.
        fig = fig.merge(Env::prefixed("VITRINE_").ignore(&["new_user_password"]).split("__"));
        let config: Config = fig.extract().map_err(|e| {
            let mut msgs = vec![];
            for err in e {
                let key = err.path.join(".");
                msgs.push(format!("setting `{key}` (VITRINE_{}): {}", key.to_uppercase(), err.kind));
            }
            anyhow::anyhow!("invalid configuration:\n  {}", msgs.join("\n  "))
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot; every message names the setting to change.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut problems = vec![];
        if self.listen.parse::<SocketAddr>().is_err() {
            problems.push(format!("`listen` = {:?} is not an address:port such as 127.0.0.1:8080", self.listen));
        }
        match url::Url::parse(&self.public_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => problems.push(format!(
                "`public_url` = {:?} must be an absolute http(s) URL such as https://files.example.com",
                self.public_url
            )),
        }
        if let Some(db) = &self.database_url {
            if db.starts_with("postgres://") || db.starts_with("postgresql://") {
                check_postgres_tls(db, &mut problems);
            } else if !db.starts_with("sqlite:") {
                problems.push("`database_url` must start with sqlite:, postgres:// or postgresql://".into());
            }
        }
        if self.database_max_connections == 0 {
            problems.push("`database_max_connections` must be at least 1".into());
        }
        if self.storage == StorageKind::S3 {
            if self.s3_bucket.is_none() {
                problems.push("`storage = \"s3\"` needs `s3_bucket`".into());
            }
            if self.s3_access_key.is_some() != self.s3_secret_key.is_some() {
                problems.push("set both `s3_access_key` and `s3_secret_key`, or neither".into());
            }
            if let Some(ep) = &self.s3_endpoint
                && url::Url::parse(ep).is_err()
            {
                problems.push(format!("`s3_endpoint` = {ep:?} is not a URL such as http://127.0.0.1:9000"));
            }
        }
        for p in &self.trusted_proxies {
            if p.parse::<IpNet>().is_err() && p.parse::<IpAddr>().is_err() {
                problems.push(format!("`trusted_proxies` entry {p:?} is not an IP address or CIDR range"));
            }
        }
        if self.token_ttl_secs < 60 {
            problems.push("`token_ttl_secs` must be at least 60".into());
        }
        if self.asset_max_bytes == 0 {
            problems.push("`asset_max_bytes` must be greater than 0".into());
        }
        if !(1..=24 * 365).contains(&self.upload_expiry_hours) {
            problems.push("`upload_expiry_hours` must be between 1 and 8760".into());
        }
        if self.webhook_retry_delays_secs.len() > 20 {
            problems.push("`webhook_retry_delays_secs` may list at most 20 delays".into());
        }
        if !(1..=300).contains(&self.webhook_timeout_secs) {
            problems.push("`webhook_timeout_secs` must be between 1 and 300".into());
        }
        if self.upload_max_open_per_user == 0 {
            problems.push("`upload_max_open_per_user` must be at least 1".into());
        }
        if self.chat_allowed_types.is_empty() {
            problems.push("`chat_allowed_types` must list at least one MIME type".into());
        }
        if self.chat_max_bytes == 0 || self.chat_url_ttl_secs == 0 || self.chat_token_ttl_secs == 0 {
            problems.push("`chat_max_bytes`, `chat_url_ttl_secs` and `chat_token_ttl_secs` must be positive".into());
        }
        if let Some(a) = self.clamd_address.as_deref()
            && let Err(e) = crate::scan::ClamdAddr::parse(a)
        {
            problems.push(format!("`clamd_address`: {e}"));
        }
        if self.asset_allowed_types.is_empty() {
            problems.push("`asset_allowed_types` must list at least one MIME type".into());
        }
        if self.image_max_pixels == 0 {
            problems.push("`image_max_pixels` must be greater than 0".into());
        }
        if self.download_url_ttl_secs == 0 {
            problems.push("`download_url_ttl_secs` must be greater than 0".into());
        }
        if self.login_rate_per_ip_per_minute == 0 || self.login_rate_per_account_per_minute == 0 {
            problems.push("login rate limits must be at least 1 per minute".into());
        }
        if self.share_access_rate_per_ip_per_minute == 0 || self.share_create_rate_per_user_per_hour == 0 {
            problems.push("share rate limits must be at least 1".into());
        }
        if self.file_request_rate_per_ip_per_minute == 0 {
            problems.push("`file_request_rate_per_ip_per_minute` must be at least 1".into());
        }
        if self.smtp_from.parse::<lettre::message::Mailbox>().is_err() {
            problems.push(format!(
                "`smtp_from` = {:?} is not an address such as Vitrine <files@example.com>",
                self.smtp_from
            ));
        }
        if let Some(u) = &self.smtp_url
            && !(u.starts_with("smtp://") || u.starts_with("smtps://"))
        {
            problems.push("`smtp_url` must start with smtp:// or smtps://".into());
        }
        if self.realtime_recovery_window < 1 {
            problems.push("`realtime_recovery_window` must be at least 1".into());
        }
        if let Some(url) = &self.bus_url
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            problems.push("`bus_url` must be a redis:// or rediss:// URL".into());
        }
        // The redis crate reads `rediss://…/#insecure` as "skip the certificate check", which this
        // build leaves out on purpose: name the way to trust a private CA instead.
        if let Some(url) = self.bus_url.as_deref().and_then(|u| url::Url::parse(u).ok())
            && url.scheme() == "rediss"
            && url.fragment() == Some("insecure")
        {
            problems.push(
                "`bus_url`: #insecure (no certificate check) is not supported; give the CA of the Redis \
                 server's certificate in `bus_tls_ca` instead"
                    .into(),
            );
        }
        if let Some(ca) = &self.bus_tls_ca {
            if !self.bus_url.as_deref().is_some_and(|u| u.starts_with("rediss://")) {
                problems.push("`bus_tls_ca` is set but `bus_url` is not a rediss:// (TLS) URL".into());
            }
            if !Path::new(ca).is_file() {
                problems.push(format!("`bus_tls_ca` = {ca:?} is not a readable file (a PEM CA certificate)"));
            }
        }
        if self.analytics_queue_capacity == 0 {
            problems.push("`analytics_queue_capacity` must be at least 1".into());
        }
        if self.audit_retention_days == 0 {
            problems.push("`audit_retention_days` must be at least 1".into());
        }
        if self.analytics_retention_days == 0 {
            problems.push("`analytics_retention_days` must be at least 1".into());
        }
        if let Some(p) = &self.geoip_db
            && !Path::new(p).is_file()
        {
            problems.push(format!("`geoip_db` = {p:?} is not a readable file (a GeoLite2 or DB-IP .mmdb)"));
        }
        if self.share_password_max_failures == 0 {
            problems.push("`share_password_max_failures` must be at least 1".into());
        }
        if !(1..=3600).contains(&self.shutdown_grace_secs) {
            problems.push("`shutdown_grace_secs` must be between 1 and 3600".into());
        }
        if self.metrics_token.as_ref().is_some_and(|t| t.trim().len() < 32) {
            problems.push("`metrics_token` must be at least 32 characters long (a random secret)".into());
        }
        for (key, secs) in [
            ("header_timeout_secs", self.header_timeout_secs),
            ("idle_timeout_secs", self.idle_timeout_secs),
            ("body_timeout_secs", self.body_timeout_secs),
        ] {
            if !(1..=3600).contains(&secs) {
                problems.push(format!("`{key}` must be between 1 and 3600"));
            }
        }
        if self.max_connections == 0 {
            problems.push("`max_connections` must be at least 1".into());
        }
        if self.max_connections_per_ip > self.max_connections {
            problems.push("`max_connections_per_ip` must not exceed `max_connections` (0 turns it off)".into());
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log_level).is_err() {
            problems.push(format!("`log_level` = {:?} is not a level such as info or debug", self.log_level));
        }
        if self.image_decode_max_bytes < 16 * 1024 * 1024 {
            problems.push("`image_decode_max_bytes` must be at least 16777216 (16 MiB)".into());
        }
        if self.chat_image_max_pixels == 0 {
            problems.push("`chat_image_max_pixels` must be greater than 0".into());
        }
        self.check_oidc(&mut problems);
        if problems.is_empty() { Ok(()) } else { bail!("invalid configuration:\n  {}", problems.join("\n  ")) }
    }

    /// Single sign-on: the three settings go together, the issuer is an https URL (http only on
    /// a loopback host, for tests and local providers), the other `oidc_*` settings need SSO on.
    fn check_oidc(&self, problems: &mut Vec<String>) {
        let given = [
            ("oidc_issuer", self.oidc_issuer.is_some()),
            ("oidc_client_id", self.oidc_client_id.is_some()),
            ("oidc_client_secret", self.oidc_client_secret.is_some()),
        ];
        if given.iter().any(|(_, set)| *set) && !given.iter().all(|(_, set)| *set) {
            let missing: Vec<&str> = given.iter().filter(|(_, set)| !set).map(|(k, _)| *k).collect();
            problems.push(format!(
                "single sign-on needs `oidc_issuer`, `oidc_client_id` and `oidc_client_secret` together; missing: {}",
                missing.join(", ")
            ));
        }
        if let Some(issuer) = &self.oidc_issuer {
            let loopback = |u: &url::Url| match u.host() {
                Some(url::Host::Domain(d)) => d == "localhost",
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            match url::Url::parse(issuer) {
                Ok(u) if u.scheme() == "https" && u.host().is_some() => {}
                Ok(u) if u.scheme() == "http" && loopback(&u) => {}
                _ => problems.push(format!(
                    "`oidc_issuer` = {issuer:?} must be the provider's https URL, such as \
                     https://sso.example.com/realms/main (http only on localhost)"
                )),
            }
        }
        let name = self.oidc_name.trim();
        if name.is_empty() || name.chars().count() > 60 || name.chars().any(char::is_control) {
            problems.push("`oidc_name` must be 1 to 60 characters, such as Keycloak".into());
        }
        if self.oidc_issuer.is_none() {
            if self.oidc_only {
                problems.push("`oidc_only = true` needs single sign-on: set `oidc_issuer`, `oidc_client_id` and `oidc_client_secret`".into());
            }
            if self.oidc_role_claim.is_some() {
                problems.push("`oidc_role_claim` is set but single sign-on is off (set `oidc_issuer`)".into());
            }
        }
        if self.oidc_role_claim.is_none()
            && (!self.oidc_admin_values.is_empty() || !self.oidc_dashboard_values.is_empty())
        {
            problems.push(
                "`oidc_admin_values` / `oidc_dashboard_values` need `oidc_role_claim` (the claim they are looked up in)"
                    .into(),
            );
        }
        if self.oidc_scopes.iter().any(|s| s.is_empty() || s.contains(char::is_whitespace)) {
            problems.push("`oidc_scopes` must be scope names without spaces, such as openid, email, profile".into());
        }
    }

    /// Whether single sign-on is configured.
    pub fn oidc_enabled(&self) -> bool {
        self.oidc_issuer.is_some() && self.oidc_client_id.is_some() && self.oidc_client_secret.is_some()
    }

    pub fn listen_addr(&self) -> anyhow::Result<SocketAddr> {
        self.listen.parse().with_context(|| format!("`listen` = {:?}", self.listen))
    }

    /// The database URL in force: the configured one, or SQLite inside `data_dir`.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(u) => u.clone(),
            None => format!("sqlite://{}?mode=rwc", self.data_dir.join("vitrine.db").display()),
        }
    }

    /// `public_url` without a trailing slash, the base of every absolute URL we print.
    pub fn base_url(&self) -> &str {
        self.public_url.trim_end_matches('/')
    }

    pub fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    pub fn trusted_proxy_nets(&self) -> Vec<IpNet> {
        self.trusted_proxies
            .iter()
            .filter_map(|p| p.parse::<IpNet>().ok().or_else(|| p.parse::<IpAddr>().ok().map(IpNet::from)))
            .collect()
    }

    /// The effective configuration as TOML with every secret replaced by `***`.
    pub fn to_masked_toml(&self) -> anyhow::Result<String> {
        let mut c = self.clone();
        c.database_url = Some(mask_url_password(&self.effective_database_url()));
        for secret in [
            &mut c.s3_secret_key,
            &mut c.jwt_secret,
            &mut c.hmac_secret,
            &mut c.metrics_token,
            &mut c.oidc_client_secret,
        ] {
            if secret.is_some() {
                *secret = Some("***".into());
            }
        }
        c.s3_access_key = c.s3_access_key.as_ref().map(|_| "***".into());
        c.smtp_url = c.smtp_url.as_deref().map(mask_url_password);
        c.bus_url = c.bus_url.as_deref().map(mask_url_password);
        Ok(toml::to_string_pretty(&c)?)
    }
}

/// The `sslmode` values PostgreSQL (libpq) and sqlx know.
const PG_SSLMODES: &[&str] = &["disable", "allow", "prefer", "require", "verify-ca", "verify-full"];

/// Checks the TLS parameters of a PostgreSQL `database_url` under the names sqlx reads (libpq's and
/// its own dashed aliases). sqlx ignores a parameter it does not know, so a misspelt `ssl…` key
/// would silently connect without the protection asked for: those are refused here, as are an
/// unknown `sslmode` and certificate files that do not exist. The URL is never echoed (it may
/// hold a password).
fn check_postgres_tls(db: &str, problems: &mut Vec<String>) {
    let Ok(url) = url::Url::parse(db) else {
        problems.push("`database_url` is not a valid URL (percent-encode special characters in the password)".into());
        return;
    };
    let (mut cert, mut key) = (false, false);
    for (name, value) in url.query_pairs() {
        match &*name {
            "sslmode" | "ssl-mode" if !PG_SSLMODES.contains(&value.to_ascii_lowercase().as_str()) => {
                problems.push(format!("`database_url`: sslmode={value:?} is not one of {}", PG_SSLMODES.join(", ")));
            }
            "sslmode" | "ssl-mode" => {}
            // libpq's `sslrootcert=system` (the host's certificate store) has no equivalent in sqlx.
            "sslrootcert" | "ssl-root-cert" | "ssl-ca" if value == "system" => problems.push(format!(
                "`database_url`: {name}=system is not supported; leave {name} out to trust the public CAs built \
                 into Vitrine (Mozilla's list), or give the path of a PEM file"
            )),
            "sslrootcert" | "ssl-root-cert" | "ssl-ca" | "sslcert" | "ssl-cert" | "sslkey" | "ssl-key" => {
                let what = match &*name {
                    "sslcert" | "ssl-cert" => {
                        cert = true;
                        "a PEM client certificate"
                    }
                    "sslkey" | "ssl-key" => {
                        key = true;
                        "a PEM private key"
                    }
                    _ => "a PEM CA certificate",
                };
                if !Path::new(&*value).is_file() {
                    problems.push(format!("`database_url`: {name}={value:?} is not a readable file ({what})"));
                }
            }
            other if other.starts_with("ssl") => problems.push(format!(
                "`database_url`: unknown TLS parameter {other:?}; use sslmode, sslrootcert, sslcert or sslkey"
            )),
            _ => {}
        }
    }
    if cert != key {
        problems.push("`database_url`: give sslcert and sslkey together (a client certificate and its key)".into());
    }
}

/// `scheme://user:secret@host` -> `scheme://user:***@host`.
pub fn mask_url_password(u: &str) -> String {
    match url::Url::parse(u) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => u.to_string(),
    }
}

/// The commented example file printed by `vitrine config example`.
pub const EXAMPLE_TOML: &str = include_str!("../vitrine.example.toml");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().expect("defaults validate");
    }

    #[test]
    fn example_file_parses_to_the_defaults() {
        let c: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(EXAMPLE_TOML))
            .extract()
            .expect("example parses");
        c.validate().expect("example validates");
        assert_eq!(c.listen, "127.0.0.1:8080");
    }

    #[test]
    fn a_bad_listen_address_names_the_setting() {
        let c = Config { listen: "nonsense".into(), ..Config::default() };
        let e = c.validate().expect_err("must fail").to_string();
        assert!(e.contains("`listen`"), "{e}");
    }

    #[test]
    fn a_shutdown_grace_of_zero_names_the_setting() {
        let c = Config { shutdown_grace_secs: 0, ..Config::default() };
        let e = c.validate().expect_err("must fail").to_string();
        assert!(e.contains("`shutdown_grace_secs`"), "{e}");
    }

    #[test]
    fn a_short_metrics_token_is_refused_and_a_long_one_masked() {
        let c = Config { metrics_token: Some("short".into()), ..Config::default() };
        let e = c.validate().expect_err("must fail").to_string();
        assert!(e.contains("`metrics_token`"), "{e}");
        let c = Config { metrics_token: Some("m".repeat(40)), ..Config::default() };
        c.validate().expect("valid");
        assert!(!c.to_masked_toml().expect("toml").contains(&"m".repeat(40)));
    }

    #[test]
    fn connection_limits_name_the_setting() {
        let c = Config { header_timeout_secs: 0, max_connections: 0, ..Config::default() };
        let e = c.validate().expect_err("must fail").to_string();
        assert!(e.contains("`header_timeout_secs`") && e.contains("`max_connections`"), "{e}");
        let c = Config { max_connections: 10, max_connections_per_ip: 11, ..Config::default() };
        let e = c.validate().expect_err("must fail").to_string();
        assert!(e.contains("`max_connections_per_ip`"), "{e}");
        Config { max_connections_per_ip: 0, ..Config::default() }.validate().expect("0 turns the cap off");
    }

    #[test]
    fn single_sign_on_settings_go_together_and_name_what_is_missing() {
        let sso = |issuer: &str| Config {
            oidc_issuer: Some(issuer.into()),
            oidc_client_id: Some("vitrine".into()),
            oidc_client_secret: Some("s3cret-value".into()),
            ..Config::default()
        };
        assert_eq!(problems_with(sso("https://sso.example.com/realms/main")), "");
        assert_eq!(problems_with(sso("http://127.0.0.1:8081")), "", "http on loopback (tests, local providers)");
        assert!(problems_with(sso("http://sso.example.com")).contains("`oidc_issuer`"));
        let half = Config { oidc_issuer: Some("https://sso.example.com".into()), ..Config::default() };
        let e = problems_with(half);
        assert!(e.contains("missing: oidc_client_id, oidc_client_secret"), "{e}");
        let e = problems_with(Config { oidc_only: true, ..Config::default() });
        assert!(e.contains("`oidc_only = true` needs single sign-on"), "{e}");
        let e = problems_with(Config { oidc_admin_values: vec!["admins".into()], ..sso("https://sso.example.com") });
        assert!(e.contains("need `oidc_role_claim`"), "{e}");
        let masked = sso("https://sso.example.com").to_masked_toml().expect("toml");
        assert!(!masked.contains("s3cret-value"), "{masked}");
    }

    #[test]
    fn secrets_are_masked() {
        let c = Config {
            jwt_secret: Some("topsecret".into()),
            database_url: Some("postgres://u:pw@h/db".into()),
            ..Config::default()
        };
        let out = c.to_masked_toml().expect("toml");
        assert!(!out.contains("topsecret") && !out.contains(":pw@"), "{out}");
    }

    #[test]
    fn redis_passwords_are_masked_with_or_without_a_user() {
        assert_eq!(
            mask_url_password("rediss://vitrine:secret@cache.example.com:6380/0"),
            "rediss://vitrine:***@cache.example.com:6380/0"
        );
        assert_eq!(mask_url_password("redis://:secret@127.0.0.1:6379"), "redis://:***@127.0.0.1:6379");
        let c =
            Config { bus_url: Some("rediss://vitrine:secret@cache.example.com:6380/0".into()), ..Config::default() };
        let out = c.to_masked_toml().expect("toml");
        assert!(!out.contains("secret") && out.contains("rediss://vitrine:***@cache.example.com:6380/0"), "{out}");
    }

    fn problems_with(c: Config) -> String {
        c.validate().map(|()| String::new()).unwrap_or_else(|e| e.to_string())
    }

    fn with_db(url: &str) -> Config {
        Config { database_url: Some(url.into()), ..Config::default() }
    }

    #[test]
    fn postgres_tls_parameters_are_checked_with_messages_that_name_them() {
        let ca = tempfile::NamedTempFile::new().expect("ca file");
        let ca = ca.path().display().to_string();
        let ok = format!("postgres://v:pw@db.example.com/v?sslmode=verify-full&sslrootcert={ca}");
        assert_eq!(problems_with(with_db(&ok)), "");
        assert_eq!(problems_with(with_db("postgresql://v@db/v?sslmode=REQUIRE")), "");

        let e = problems_with(with_db("postgres://v:pw@db/v?sslmode=verify-everything"));
        assert!(e.contains("sslmode=\"verify-everything\" is not one of disable,"), "{e}");
        assert!(!e.contains("pw"), "the URL's password is not echoed: {e}");
        let e = problems_with(with_db("postgres://v@db/v?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem"));
        assert!(e.contains("sslrootcert=\"/nonexistent/ca.pem\" is not a readable file"), "{e}");
        let e = problems_with(with_db("postgres://v@db/v?sslmode=verify-full&sslrootcert=system"));
        assert!(e.contains("sslrootcert=system is not supported"), "{e}");
        let e = problems_with(with_db("postgres://v@db/v?ssl_mode=verify-full"));
        assert!(e.contains("unknown TLS parameter \"ssl_mode\""), "{e}");
        let e = problems_with(with_db(&format!("postgres://v@db/v?sslmode=verify-full&sslcert={ca}")));
        assert!(e.contains("give sslcert and sslkey together"), "{e}");
    }

    #[test]
    fn the_redis_ca_needs_a_rediss_url_and_an_existing_file() {
        let ca = tempfile::NamedTempFile::new().expect("ca file");
        let ca = ca.path().display().to_string();
        let c = Config {
            bus_url: Some("rediss://vitrine:pw@cache.example.com:6380/0".into()),
            bus_tls_ca: Some(ca.clone()),
            ..Config::default()
        };
        assert_eq!(problems_with(c), "");
        let c = Config { bus_url: Some("redis://cache:6379".into()), bus_tls_ca: Some(ca), ..Config::default() };
        assert!(problems_with(c).contains("`bus_tls_ca` is set but `bus_url` is not a rediss://"));
        let c = Config {
            bus_url: Some("rediss://cache:6380".into()),
            bus_tls_ca: Some("/nonexistent/ca.pem".into()),
            ..Config::default()
        };
        assert!(problems_with(c).contains("`bus_tls_ca` = \"/nonexistent/ca.pem\" is not a readable file"));
        let c = Config { bus_url: Some("rediss://cache:6380/#insecure".into()), ..Config::default() };
        assert!(problems_with(c).contains("#insecure (no certificate check) is not supported"));
    }
}
