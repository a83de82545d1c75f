//! Mail bodies at rest: an outbox row's body carries codes and one-time
//! tokens until it is delivered, so it is stored encrypted (XChaCha20-Poly1305
//! under a key derived from the server's `encryption_key`, with the row id as
//! associated data, so a body cannot be moved to another row). Only the
//! delivery task, `switchyard outbox` and tests open it.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use data_encoding::BASE64URL_NOPAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::db::{Db, StoreError};
use crate::kernel::ids::random_base62;

/// What a sealed body starts with; the version names the cipher and key derivation.
pub(super) const SEALED_PREFIX: &str = "sealed:v1:";
const NONCE_LEN: usize = 24;
/// The label the body key is derived under, so the configured key can serve other purposes later.
const KEY_LABEL: &[u8] = b"switchyard outbox body v1";
/// The settings row that holds the generated key when none is configured.
const SETTING: &str = "encryption_key";

/// The key that seals and opens outbox bodies.
#[derive(Clone)]
pub struct BodyKey {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for BodyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BodyKey(***)")
    }
}

/// A body that cannot be opened: altered, moved to another row, or sealed
/// under another key (the server's `encryption_key` changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the mail body cannot be decrypted (altered, or sealed under another encryption_key)")]
pub struct Unreadable;

impl BodyKey {
    /// The key derived from `secret` (the configured or generated `encryption_key`).
    pub fn derive(secret: &str) -> Self {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(KEY_LABEL);
        let key = mac.finalize().into_bytes();
        Self { cipher: XChaCha20Poly1305::new(&key) }
    }

    /// The configured key, or else the one generated on first use and kept in
    /// the database so every replica shares it.
    pub async fn load(db: &Db, configured: Option<&str>) -> Result<Self, StoreError> {
        let secret = match configured {
            Some(secret) => secret.to_owned(),
            None => db.setting_get_or_insert(SETTING, &random_base62(64)).await?,
        };
        Ok(Self::derive(&secret))
    }

    /// `body` encrypted for the outbox row `row_id`.
    pub fn seal(&self, row_id: &str, body: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: body.as_bytes(), aad: row_id.as_bytes() })
            .unwrap_or_else(|_| unreachable!("XChaCha20-Poly1305 encrypts any message that fits in memory"));
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{SEALED_PREFIX}{}", BASE64URL_NOPAD.encode(&bytes))
    }

    /// The body of row `row_id` as written. A body without the sealed prefix
    /// is returned as it is: the note a delivered row keeps, or a row queued
    /// before bodies were sealed.
    pub fn open(&self, row_id: &str, stored: &str) -> Result<String, Unreadable> {
        let Some(encoded) = stored.strip_prefix(SEALED_PREFIX) else { return Ok(stored.to_owned()) };
        let bytes = BASE64URL_NOPAD.decode(encoded.as_bytes()).map_err(|_| Unreadable)?;
        if bytes.len() < NONCE_LEN {
            return Err(Unreadable);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: row_id.as_bytes() })
            .map_err(|_| Unreadable)?;
        String::from_utf8(plain).map_err(|_| Unreadable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_body_opens_only_for_its_row_and_key() {
        let key = BodyKey::derive("a-secret-of-at-least-thirty-two-bytes");
        let body = "send this token: syp_Secret123\n";
        let sealed = key.seal("msg_1", body);
        assert!(sealed.starts_with(SEALED_PREFIX) && !sealed.contains("syp_Secret123"));
        assert_eq!(key.open("msg_1", &sealed).as_deref(), Ok(body));
        assert_eq!(key.open("msg_2", &sealed), Err(Unreadable), "another row's id");
        let other = BodyKey::derive("another-secret-of-at-least-thirty-two");
        assert_eq!(other.open("msg_1", &sealed), Err(Unreadable), "another key");
        let mut altered = sealed.clone();
        let last = altered.pop().map_or('A', |c| if c == 'A' { 'B' } else { 'A' });
        altered.push(last);
        assert_eq!(key.open("msg_1", &altered), Err(Unreadable), "an altered byte");
        assert_eq!(key.open("msg_1", "sealed:v1:AAAA"), Err(Unreadable), "too short");
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce() {
        let key = BodyKey::derive("a-secret-of-at-least-thirty-two-bytes");
        assert_ne!(key.seal("msg_1", "same"), key.seal("msg_1", "same"));
    }

    #[test]
    fn bodies_stored_in_clear_open_as_they_are() {
        let key = BodyKey::derive("a-secret-of-at-least-thirty-two-bytes");
        assert_eq!(
            key.open("msg_1", "(delivered; the body is not kept)").as_deref(),
            Ok("(delivered; the body is not kept)")
        );
    }
}
