//! Webhooks (SPEC §13): event types, the parsed endpoint settings, the address classifier that
//! keeps deliveries off loopback, private and link-local networks (SSRF), Standard Webhooks
//! signatures and the retry schedule. No I/O.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::ToSchema;

use crate::error::{AppError, FieldErrors};

/// Every event a webhook can subscribe to (SPEC §13), plus `webhook.test`, which only
/// `POST /api/webhooks/{id}/test/` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    ShareCreated,
    ShareRevoked,
    ShareViewed,
    ShareDownloaded,
    FileRequestUploaded,
    CommentCreated,
    CollaborationSessionEnded,
    ChatFileShared,
    Test,
}

impl EventType {
    /// The events a webhook may subscribe to.
    pub const SUBSCRIBABLE: &'static [EventType] = &[
        EventType::ShareCreated,
        EventType::ShareRevoked,
        EventType::ShareViewed,
        EventType::ShareDownloaded,
        EventType::FileRequestUploaded,
        EventType::CommentCreated,
        EventType::CollaborationSessionEnded,
        EventType::ChatFileShared,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ShareCreated => "share.created",
            EventType::ShareRevoked => "share.revoked",
            EventType::ShareViewed => "share.viewed",
            EventType::ShareDownloaded => "share.downloaded",
            EventType::FileRequestUploaded => "file_request.uploaded",
            EventType::CommentCreated => "comment.created",
            EventType::CollaborationSessionEnded => "collaboration.session_ended",
            EventType::ChatFileShared => "chat.file_shared",
            EventType::Test => "webhook.test",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EventType::SUBSCRIBABLE.iter().chain([&EventType::Test]).copied().find(|e| e.as_str() == s)
    }
}

/// An event about `owner_id`'s content, to be put in the outbox of every matching webhook in the
/// transaction of the change it describes.
#[derive(Debug, Clone)]
pub struct Event {
    /// The user whose content the event is about (the link's, file request's, asset's owner).
    pub owner_id: i64,
    pub kind: EventType,
    pub data: serde_json::Value,
}

/// Who a webhook hears about: its owner's content, or (admins only) everyone's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Own,
    All,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Own => "own",
            Scope::All => "all",
        }
    }
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "own" => Some(Scope::Own),
            "all" => Some(Scope::All),
            _ => None,
        }
    }
}

/// A stored webhook.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub id: i64,
    pub user_id: i64,
    pub url: String,
    pub events: Vec<String>,
    pub description: String,
    pub secret: String,
    pub scope: Scope,
    pub active: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A delivery's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> DeliveryStatus {
        match s {
            "delivered" => DeliveryStatus::Delivered,
            "failed" => DeliveryStatus::Failed,
            _ => DeliveryStatus::Pending,
        }
    }
}

/// One row of the outbox.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: i64,
    pub webhook_id: i64,
    pub event_id: String,
    pub event_type: String,
    pub payload: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub response_status: Option<i64>,
    pub response_body: Option<String>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

/// Longest URL and description accepted.
pub const MAX_URL_LEN: usize = 2048;
pub const MAX_DESCRIPTION_CHARS: usize = 500;
/// Webhooks one user may have.
pub const MAX_WEBHOOKS_PER_USER: i64 = 20;
/// The part of a receiver's answer that is kept.
pub const MAX_RESPONSE_BODY: usize = 1024;

/// The JSON body of create and PATCH (every field optional here; create requires url and events).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct WebhookIn {
    /// `http` or `https` URL; must not resolve to a loopback, private or link-local address
    /// unless its host is in `webhook_allowed_hosts`.
    pub url: Option<String>,
    /// A non-empty subset of the event types (SPEC §13).
    pub events: Option<Vec<String>>,
    /// At most 500 characters.
    pub description: Option<String>,
    /// `own` (default) or `all` (admins only: every user's events).
    pub scope: Option<String>,
    /// PATCH only: pause (`false`) or resume deliveries.
    pub active: Option<bool>,
}

/// Validated settings of a webhook (the host of `url` is checked against the network separately).
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub url: url::Url,
    pub events: Vec<EventType>,
    pub description: String,
    pub scope: Scope,
    pub active: bool,
}

impl WebhookSettings {
    /// Parses a create body (`base` None) or a PATCH body over the current settings.
    pub fn parse(input: WebhookIn, base: Option<&WebhookSettings>) -> Result<WebhookSettings, AppError> {
        let mut fields = FieldErrors::new();
        let url = match (input.url, base) {
            (Some(u), _) => match parse_url(&u) {
                Ok(u) => Some(u),
                Err(why) => {
                    fields.insert("url".into(), why.into());
                    None
                }
            },
            (None, Some(b)) => Some(b.url.clone()),
            (None, None) => {
                fields.insert("url".into(), "is required".into());
                None
            }
        };
        let events = match (input.events, base) {
            (Some(e), _) => match parse_events(&e) {
                Ok(e) => Some(e),
                Err(why) => {
                    fields.insert("events".into(), why);
                    None
                }
            },
            (None, Some(b)) => Some(b.events.clone()),
            (None, None) => {
                fields.insert("events".into(), "is required".into());
                None
            }
        };
        let description = match (input.description, base) {
            (Some(d), _) => {
                let d = d.trim().to_string();
                if d.chars().count() > MAX_DESCRIPTION_CHARS {
                    fields.insert("description".into(), format!("must be at most {MAX_DESCRIPTION_CHARS} characters"));
                }
                d
            }
            (None, Some(b)) => b.description.clone(),
            (None, None) => String::new(),
        };
        let scope = match (input.scope.as_deref(), base) {
            (Some(s), _) => Scope::parse(s).unwrap_or_else(|| {
                fields.insert("scope".into(), "must be \"own\" or \"all\"".into());
                Scope::Own
            }),
            (None, Some(b)) => b.scope,
            (None, None) => Scope::Own,
        };
        let active = input.active.or(base.map(|b| b.active)).unwrap_or(true);
        match (url, events) {
            (Some(url), Some(events)) if fields.is_empty() => {
                Ok(WebhookSettings { url, events, description, scope, active })
            }
            _ => Err(AppError::from_fields(fields)),
        }
    }

    pub fn events_json(&self) -> String {
        serde_json::Value::from(self.events.iter().map(|e| e.as_str()).collect::<Vec<_>>()).to_string()
    }
}

impl Webhook {
    /// The stored settings (for a PATCH over them).
    pub fn settings(&self) -> Result<WebhookSettings, AppError> {
        Ok(WebhookSettings {
            url: url::Url::parse(&self.url).map_err(AppError::internal)?,
            events: self.events.iter().filter_map(|e| EventType::parse(e)).collect(),
            description: self.description.clone(),
            scope: self.scope,
            active: self.active,
        })
    }
}

fn parse_url(raw: &str) -> Result<url::Url, &'static str> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("is required");
    }
    if raw.len() > MAX_URL_LEN {
        return Err("is too long (at most 2048 characters)");
    }
    let url = url::Url::parse(raw).map_err(|_| "is not a valid URL")?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http or https URL");
    }
    if url.host().is_none() {
        return Err("must name a host");
    }
    Ok(url)
}

fn parse_events(raw: &[String]) -> Result<Vec<EventType>, String> {
    if raw.is_empty() {
        return Err("must name at least one event".into());
    }
    let mut out = Vec::new();
    let mut unknown = Vec::new();
    for e in raw {
        match EventType::parse(e.trim()).filter(|e| *e != EventType::Test) {
            Some(e) if !out.contains(&e) => out.push(e),
            Some(_) => {}
            None => unknown.push(e.clone()),
        }
    }
    if !unknown.is_empty() {
        let known: Vec<&str> = EventType::SUBSCRIBABLE.iter().map(|e| e.as_str()).collect();
        return Err(format!("unknown events {}: choose among {}", unknown.join(", "), known.join(", ")));
    }
    Ok(out)
}

/// The host of a webhook URL as `webhook_allowed_hosts` lists it: lower case, without a trailing
/// dot, IPv6 without brackets.
pub fn host_key(url: &url::Url) -> String {
    match url.host() {
        Some(url::Host::Domain(d)) => d.trim_end_matches('.').to_ascii_lowercase(),
        Some(url::Host::Ipv4(a)) => a.to_string(),
        Some(url::Host::Ipv6(a)) => a.to_string(),
        None => String::new(),
    }
}

/// Whether `host` (a `host_key`) is listed in `webhook_allowed_hosts`.
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    allowed.iter().any(|a| {
        a.trim().trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').eq_ignore_ascii_case(host)
    })
}

/// Why a delivery may not go to `ip`, or None for a public unicast address. Refused: loopback,
/// private (RFC 1918), shared address space (100.64/10, CGNAT), link-local (169.254/16 with the
/// cloud metadata address, fe80::/10), unique-local (fc00::/7), unspecified, multicast,
/// broadcast, the IETF/documentation/benchmarking/reserved ranges, and the IPv4-mapped,
/// IPv4-compatible, NAT64 (64:ff9b::/96) and 6to4 forms of refused IPv4 addresses.
pub fn forbidden_address(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() || o[0] == 0 {
        Some("unspecified")
    } else if ip.is_private() {
        Some("private")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Some("shared address space (CGNAT)")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if ip.is_broadcast() || o[0] >= 240 || reserved_v4(o) {
        Some("reserved")
    } else {
        None
    }
}

/// IETF protocol assignments (192.0.0/24), documentation (192.0.2/24, 198.51.100/24,
/// 203.0.113/24) and benchmarking (198.18/15).
fn reserved_v4(o: [u8; 4]) -> bool {
    matches!((o[0], o[1], o[2]), (192, 0, 0) | (192, 0, 2) | (198, 51, 100) | (203, 0, 113))
        || (o[0] == 198 && (o[1] & 0xfe) == 18)
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip.is_loopback() {
        return Some("loopback");
    }
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (the deprecated compatible form).
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4);
    }
    if s[0..6] == [0, 0, 0, 0, 0, 0] {
        return forbidden_v4(Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8))
            .or(Some("IPv4-compatible"));
    }
    // NAT64 (64:ff9b::/96, 64:ff9b:1::/48): the embedded IPv4 address decides.
    if s[0] == 0x64 && s[1] == 0xff9b {
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        return forbidden_v4(v4);
    }
    // 6to4 (2002::/16): the IPv4 address in the next 32 bits.
    if s[0] == 0x2002 {
        let v4 = Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8);
        return forbidden_v4(v4);
    }
    if (s[0] & 0xfe00) == 0xfc00 {
        Some("unique-local")
    } else if (s[0] & 0xffc0) == 0xfe80 {
        Some("link-local")
    } else if (s[0] & 0xffc0) == 0xfec0 {
        Some("site-local")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        Some("documentation")
    } else if s[0] == 0x0100 && s[1..4] == [0, 0, 0] {
        Some("discard-only")
    } else {
        None
    }
}

/// `whsec_…`: the prefix Standard Webhooks secrets carry.
pub const SECRET_PREFIX: &str = "whsec_";

/// A secret from random bytes (24 to 32 of them).
pub fn secret_from(bytes: &[u8]) -> String {
    format!("{SECRET_PREFIX}{}", B64.encode(bytes))
}

/// The HMAC key of a `whsec_` secret: its base64-decoded part.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    B64.decode(secret.strip_prefix(SECRET_PREFIX)?).ok()
}

/// The `webhook-signature` header value: `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")).
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    #[allow(clippy::unwrap_used, reason = "HMAC takes keys of any length")]
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

/// The body of a delivery: `{type, timestamp, data}` (timestamp RFC 3339).
pub fn payload(kind: EventType, timestamp: &str, data: &serde_json::Value) -> String {
    /// The body, borrowed (no copy of `data`); fields in the order `json!` wrote them (sorted).
    #[derive(Serialize)]
    struct Body<'a> {
        data: &'a serde_json::Value,
        timestamp: &'a str,
        #[serde(rename = "type")]
        kind: &'a str,
    }
    serde_json::to_string(&Body { data, timestamp, kind: kind.as_str() }).unwrap_or_default()
}

/// When the next attempt is due after `attempts` failed ones (ms after now), or None when the
/// schedule is spent (the delivery fails).
pub fn retry_delay_ms(attempts: i64, delays_secs: &[u64]) -> Option<i64> {
    let i = usize::try_from(attempts.max(1) - 1).ok()?;
    delays_secs.get(i).map(|s| (*s as i64).saturating_mul(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_is_the_json_object_of_type_timestamp_and_data() {
        let data = serde_json::json!({"share": {"uuid": "u", "title": "T \"q\""}, "asset_id": 3, "visitor": null});
        let body = payload(EventType::ShareViewed, "2026-12-05T10:00:00.000Z", &data);
        let expected =
            serde_json::json!({"type": "share.viewed", "timestamp": "2026-12-05T10:00:00.000Z", "data": data});
        assert_eq!(body, expected.to_string(), "the same bytes as the object written by serde_json");
    }

    fn refused(s: &str) -> bool {
        forbidden_address(s.parse().expect("an address")).is_some()
    }

    #[test]
    fn private_loopback_and_link_local_addresses_are_refused() {
        for a in [
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.254",
            "192.168.1.1",
            "127.0.0.1",
            "127.0.0.2",
            "169.254.169.254",
            "169.254.0.1",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
            "2002:c0a8:101::1",
        ] {
            assert!(refused(a), "{a} should be refused");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for a in [
            "93.184.216.34",
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "172.15.255.255",
            "100.128.0.1",
            "11.0.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(!refused(a), "{a} should be allowed");
        }
    }

    #[test]
    fn settings_parse_and_refuse_what_they_should() {
        let ok = WebhookSettings::parse(
            WebhookIn {
                url: Some("https://example.com/hook".into()),
                events: Some(vec!["share.created".into(), "share.created".into(), "comment.created".into()]),
                ..Default::default()
            },
            None,
        )
        .expect("valid");
        assert_eq!(ok.events, vec![EventType::ShareCreated, EventType::CommentCreated]);
        assert_eq!(ok.scope, Scope::Own);
        for (url, events) in [
            ("ftp://example.com/", vec!["share.created"]),
            ("file:///etc/passwd", vec!["share.created"]),
            ("https://example.com/", vec![]),
            ("https://example.com/", vec!["share.exploded"]),
            ("https://example.com/", vec!["webhook.test"]),
            ("not a url", vec!["share.created"]),
        ] {
            let input = WebhookIn {
                url: Some(url.into()),
                events: Some(events.into_iter().map(String::from).collect()),
                ..Default::default()
            };
            assert!(WebhookSettings::parse(input, None).is_err(), "{url}");
        }
    }

    #[test]
    fn signatures_follow_standard_webhooks() {
        // The example of the Standard Webhooks specification's reference libraries.
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("base64");
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn hosts_match_the_allow_list_loosely() {
        let allowed = vec!["LocalHost".to_string(), "[::1]".to_string()];
        assert!(host_allowed("localhost", &allowed));
        assert!(host_allowed("::1", &allowed));
        assert!(!host_allowed("127.0.0.1", &allowed));
        let u = url::Url::parse("http://Example.COM./x").expect("url");
        assert_eq!(host_key(&u), "example.com");
    }

    #[test]
    fn retries_follow_the_schedule_then_stop() {
        let d = [5, 30];
        assert_eq!(retry_delay_ms(1, &d), Some(5_000));
        assert_eq!(retry_delay_ms(2, &d), Some(30_000));
        assert_eq!(retry_delay_ms(3, &d), None);
    }
}
