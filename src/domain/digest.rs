//! Keyed digests: the one HMAC primitive behind pseudonymous visitor keys and invitation links.
//! A pure function of its inputs; the keys live in `auth::Secrets` and the daily salts.

/// HMAC-SHA256 of the concatenated `parts` under `key` (callers put their own separators and a
/// context prefix in `parts`, so digests made for one purpose never verify for another).
pub fn keyed_digest(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    // HMAC accepts keys of any length, so this cannot fail.
    let mut m =
        <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| panic!("HMAC takes any key length"));
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}
