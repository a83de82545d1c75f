//! Credentials the server mints: HS256 access tokens (algorithm pinned on
//! verify), opaque refresh tokens, and API key secrets. Only SHA-256 digests
//! of refresh tokens and key secrets are ever stored.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::kernel::error::DomainError;
use crate::kernel::ids::random_base62;

pub const ISSUER: &str = "switchyard";
pub const AUDIENCE: &str = "switchyard-api";
/// The `typ` claim of access tokens, so no other token kind can stand in.
const ACCESS: &str = "access";
/// How far past `exp` a token is still accepted, for clocks slightly apart.
const LEEWAY_SECS: i64 = 5;

/// Signs and verifies session tokens.
#[derive(Clone)]
pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: String,
    /// The login session (refresh-token family) this token belongs to.
    pub sid: String,
    pub typ: String,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

/// A freshly minted secret: the text handed to the client once, and the digest kept.
pub struct Minted {
    pub plain: String,
    pub digest: String,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer").field("access_ttl", &self.access_ttl).finish_non_exhaustive()
    }
}

impl TokenIssuer {
    pub fn new(secret: &[u8], access_ttl: Duration, refresh_ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Expiry is checked against the server's clock in `verify_access`.
        validation.validate_exp = false;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            access_ttl,
            refresh_ttl,
        }
    }

    /// An access token for `user_id` in login session `session_id`, issued at `now`.
    pub fn access_token(&self, user_id: &str, session_id: &str, now: i64) -> Result<String, DomainError> {
        let iat = now;
        let claims = AccessClaims {
            sub: user_id.to_owned(),
            sid: session_id.to_owned(),
            typ: ACCESS.to_owned(),
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            iat,
            exp: iat + self.access_ttl.as_secs() as i64,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|_| DomainError::InvalidToken)
    }

    /// Verifies signature (HS256 only), issuer, audience, type, and expiry at `now`.
    pub fn verify_access(&self, token: &str, now: i64) -> Result<AccessClaims, DomainError> {
        let data = jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map_err(|_| DomainError::InvalidToken)?;
        if data.claims.typ != ACCESS || data.claims.exp < now - LEEWAY_SECS {
            return Err(DomainError::InvalidToken);
        }
        Ok(data.claims)
    }
}

/// Hex SHA-256, the at-rest form of refresh tokens and key secrets.
pub fn digest(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// HMAC-SHA256 of `secret` under `key`, in lowercase hex: for secrets too
/// short to store as a plain digest (recovery codes carry about 51 bits), so
/// a copy of the table alone cannot be searched for them.
pub fn keyed_digest(key: &[u8], secret: &str) -> String {
    use hmac::{Hmac, Mac};
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else { return digest(secret) };
    mac.update(secret.as_bytes());
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// An opaque refresh token: 43 base62 characters, about 256 bits.
pub fn mint_refresh_token() -> Minted {
    let plain = format!("syr_{}", random_base62(43));
    let digest = digest(&plain);
    Minted { plain, digest }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer(secret: &[u8]) -> TokenIssuer {
        TokenIssuer::new(secret, Duration::from_secs(900), Duration::from_secs(3600))
    }

    #[test]
    fn access_tokens_round_trip_and_reject_tampering() -> Result<(), DomainError> {
        let issuer = issuer(b"0123456789abcdef0123456789abcdef");
        let now = 1_800_000_000;
        let token = issuer.access_token("usr_1", "ses_1", now)?;
        let claims = issuer.verify_access(&token, now)?;
        assert_eq!((claims.sub.as_str(), claims.sid.as_str()), ("usr_1", "ses_1"));
        assert_eq!(claims.exp - claims.iat, 900);
        assert!(issuer.verify_access(&token, now + 900 + LEEWAY_SECS).is_ok(), "within the leeway");
        assert!(issuer.verify_access(&token, now + 900 + LEEWAY_SECS + 1).is_err(), "expired");

        let other =
            TokenIssuer::new(b"another-secret-another-secret-123", issuer.access_ttl, issuer.refresh_ttl);
        assert!(other.verify_access(&token, now).is_err(), "signed with another secret");
        Ok(())
    }

    #[test]
    fn rejects_tokens_with_another_algorithm() {
        let issuer = issuer(b"0123456789abcdef0123456789abcdef");
        let claims = AccessClaims {
            sub: "usr_1".into(),
            sid: "ses_1".into(),
            typ: ACCESS.into(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: 1_800_000_000,
            exp: 1_800_000_060,
        };
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims,
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        );
        assert!(hs512.is_ok_and(|token| issuer.verify_access(&token, 1_800_000_000).is_err()));
    }

    #[test]
    fn refresh_tokens_are_long_random_and_stored_as_digests() {
        let (a, b) = (mint_refresh_token(), mint_refresh_token());
        assert_ne!(a.plain, b.plain);
        assert_eq!(a.plain.len(), 4 + 43);
        assert_eq!(a.digest, digest(&a.plain));
        assert_eq!(a.digest.len(), 64);
    }
}
