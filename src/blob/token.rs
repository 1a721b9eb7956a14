//! Signed download tokens: `base64url(payload).base64url(hmac)`; the payload names the blob, its
//! expiry and how it is to be served. Compared in constant time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// How a browser should treat the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Disposition {
    #[serde(rename = "i")]
    Inline,
    #[serde(rename = "a")]
    Attachment,
}

/// The row a download token was issued for: the link works only while that row exists and still
/// points at the blob (issue 18 item 6: a deleted asset's links stop at once, on every instance).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Owner {
    /// An asset (its file or its thumbnail).
    #[serde(rename = "a")]
    Asset(i64),
    /// A chat file (its file or its thumbnail).
    #[serde(rename = "c")]
    ChatFile(i64),
}

/// What a download token grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Blob key.
    #[serde(rename = "k")]
    pub key: String,
    /// Expiry, unix seconds.
    #[serde(rename = "e")]
    pub expires: i64,
    #[serde(rename = "d")]
    pub disposition: Disposition,
    /// File name shown to the user.
    #[serde(rename = "n")]
    pub name: String,
    #[serde(rename = "m")]
    pub mime: String,
    /// Strong validator (content hash) for ETag / If-Range.
    #[serde(rename = "h")]
    pub etag: String,
    /// The row the link belongs to; tokens without one are checked against every row.
    #[serde(rename = "o", default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    BadSignature,
    Expired,
}

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8], data: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable_hmac());
    m.update(b"vitrine-download\0");
    m.update(data);
    m
}

#[cold]
fn unreachable_hmac() -> HmacSha256 {
    panic!("HMAC-SHA256 accepts every key length")
}

pub fn sign(key: &[u8], grant: &Grant) -> String {
    let payload = serde_json::to_vec(grant).unwrap_or_default();
    let sig = mac(key, &payload).finalize().into_bytes();
    format!("{}.{}", B64.encode(&payload), B64.encode(sig))
}

/// Verifies signature then expiry (`now` in unix seconds).
pub fn verify(key: &[u8], token: &str, now: i64) -> Result<Grant, TokenError> {
    let (p, s) = token.split_once('.').ok_or(TokenError::Malformed)?;
    let payload = B64.decode(p).map_err(|_| TokenError::Malformed)?;
    let sig = B64.decode(s).map_err(|_| TokenError::Malformed)?;
    mac(key, &payload).verify_slice(&sig).map_err(|_| TokenError::BadSignature)?;
    let grant: Grant = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
    if grant.expires <= now {
        return Err(TokenError::Expired);
    }
    Ok(grant)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(expires: i64) -> Grant {
        Grant {
            key: "assets/1/abc".into(),
            expires,
            disposition: Disposition::Attachment,
            name: "a.pdf".into(),
            mime: "application/pdf".into(),
            etag: "abc".into(),
            owner: Some(Owner::Asset(7)),
        }
    }

    #[test]
    fn round_trip_then_tamper_then_expire() {
        let t = sign(b"k1", &grant(100));
        assert_eq!(verify(b"k1", &t, 99), Ok(grant(100)));
        assert_eq!(verify(b"k2", &t, 99), Err(TokenError::BadSignature));
        assert_eq!(verify(b"k1", &t, 100), Err(TokenError::Expired));
        let forged = format!(
            "{}.{}",
            B64.encode(serde_json::to_vec(&grant(10_000)).unwrap_or_default()),
            t.split_once('.').map(|x| x.1).unwrap_or("")
        );
        assert_eq!(verify(b"k1", &forged, 99), Err(TokenError::BadSignature));
        assert_eq!(verify(b"k1", "garbage", 99), Err(TokenError::Malformed));
    }
}
