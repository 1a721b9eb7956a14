//! Who is asking, without storing who they are: keyed visitor hashes, link-preview bots and
//! prefetches (which never count as views or downloads).

use std::net::IpAddr;

use http::HeaderMap;

/// A stable pseudonymous key of (IP, user agent) under `key`; the IP itself is never kept.
pub fn visitor_key(key: &[u8], ip: IpAddr, user_agent: &str) -> String {
    let ip = ip.to_string();
    hex::encode(&super::digest::keyed_digest(key, &[b"visitor\0", ip.as_bytes(), b"\0", user_agent.as_bytes()])[..16])
}

/// Fetchers that unfurl links for chats and social networks, and crawlers.
const BOT_MARKERS: &[&str] = &[
    "bot",
    "crawler",
    "spider",
    "slurp",
    "facebookexternalhit",
    "facebot",
    "whatsapp",
    "telegram",
    "skypeuripreview",
    "embedly",
    "vkshare",
    "pinterest",
    "preview",
    "quora link",
    "outbrain",
    "flipboard",
    "tumblr",
    "bitlybot",
    "nuzzel",
    "mastodon",
    "iframely",
    "headlesschrome/unfurl",
];

/// The keyed hash of a client's address alone, as the audit log keeps it (`ip`): stable under the
/// server's secret, so one address's entries can be told apart and grouped, and never reversible
/// without that secret. Its own context prefix: it never equals a visitor key.
pub fn ip_key(key: &[u8], ip: IpAddr) -> String {
    let ip = ip.to_string();
    hex::encode(&super::digest::keyed_digest(key, &[b"audit-ip\0", ip.as_bytes()])[..16])
}

/// Link-preview fetchers and crawlers (they see the page, but never count). Command-line
/// downloaders (curl, wget) are people and do count.
pub fn is_bot(user_agent: &str) -> bool {
    let ua = user_agent.to_ascii_lowercase();
    BOT_MARKERS.iter().any(|m| ua.contains(m))
}

/// `Sec-Purpose: prefetch` / `Purpose: prefetch` (and `X-Moz: prefetch`).
pub fn is_prefetch(headers: &HeaderMap) -> bool {
    ["sec-purpose", "purpose", "x-purpose", "x-moz"].iter().any(|h| {
        headers.get(*h).and_then(|v| v.to_str().ok()).is_some_and(|v| v.to_ascii_lowercase().contains("prefetch"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_ip_agent_and_secret_only() {
        let ip: IpAddr = "203.0.113.5".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let a = visitor_key(b"k", ip, "UA");
        assert_eq!(a, visitor_key(b"k", ip, "UA"));
        assert_ne!(a, visitor_key(b"k2", ip, "UA"));
        assert_ne!(a, visitor_key(b"k", ip, "UA2"));
        assert!(!a.contains("203"));
        let k = ip_key(b"k", ip);
        assert_eq!(k, ip_key(b"k", ip));
        assert_ne!(k, ip_key(b"k2", ip));
        assert_ne!(k, ip_key(b"k", IpAddr::from([203, 0, 113, 6])));
        assert!(!k.contains("203") && k.len() == 32);
    }

    #[test]
    fn bots_and_prefetches_are_recognised() {
        assert!(is_bot("facebookexternalhit/1.1"));
        assert!(is_bot("Slackbot-LinkExpanding 1.0"));
        assert!(is_bot("WhatsApp/2.23"));
        assert!(!is_bot("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120 Safari/537.36"));
        let mut h = HeaderMap::new();
        h.insert("sec-purpose", http::HeaderValue::from_static("prefetch;prerender"));
        assert!(is_prefetch(&h));
    }
}
