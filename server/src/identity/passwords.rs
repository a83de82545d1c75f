//! Password policy and hashing. Hashes are argon2id (19 MiB, 2 passes, 1 lane)
//! computed on a blocking thread so logins never stall the async runtime.

use std::collections::HashSet;
use std::sync::LazyLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::kernel::error::DomainError;

pub const MIN_LEN: usize = 8;
pub const MAX_LEN: usize = 128;

/// The 10,000 most common passwords (OWASP SecLists, CC BY-SA 3.0).
static COMMON: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| include_str!("common-passwords.txt").lines().collect());

/// A hash of a random password, verified against when an account does not
/// exist so that unknown emails take as long as wrong passwords.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let random = ulid::Ulid::new().to_string();
    // Hashing a fresh password with fixed parameters does not fail; if it
    // ever did, unknown emails would answer faster than wrong passwords.
    hash_blocking(&random).unwrap_or_else(|err| {
        tracing::error!(error = %err, "hashing the stand-in password failed");
        String::new()
    })
});

fn argon2() -> Argon2<'static> {
    // argon2's defaults are 19 MiB, t=2, p=1: the OWASP minimum for argon2id
    // (a unit test pins them).
    let params = Params::DEFAULT;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Checks length and rejects the most common passwords; a refusal names
/// `param`, the field the password came in.
pub fn check_policy(password: &str, param: &'static str) -> Result<(), DomainError> {
    let weak = |why| DomainError::WeakPassword { param, why };
    let chars = password.chars().count();
    if chars < MIN_LEN {
        return Err(weak("use at least 8 characters"));
    }
    if chars > MAX_LEN {
        return Err(weak("use at most 128 characters"));
    }
    if COMMON.contains(password) || COMMON.contains(password.to_lowercase().as_str()) {
        return Err(weak("this password is among the most commonly used"));
    }
    Ok(())
}

fn hash_blocking(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(argon2().hash_password(password.as_bytes(), &salt)?.to_string())
}

fn verify_blocking(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| argon2().verify_password(password.as_bytes(), &parsed).is_ok())
}

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

pub async fn hash(password: String) -> Result<String, HashError> {
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .map_err(|e| HashError(e.to_string()))?
        .map_err(|e| HashError(e.to_string()))
}

/// Verifies `password` against `hash`, or against a dummy hash when there is
/// no account, so both cases cost the same.
pub async fn verify(password: String, hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || match hash {
        Some(hash) => verify_blocking(&password, &hash),
        None => {
            verify_blocking(&password, &DUMMY_HASH);
            false
        }
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    #[test]
    fn hashes_with_the_owasp_minimum_for_argon2id() {
        let params = argon2::Params::DEFAULT;
        assert_eq!((params.m_cost(), params.t_cost(), params.p_cost()), (19 * 1024, 2, 1));
    }

    use super::*;

    #[test]
    fn policy_rejects_short_long_and_common_passwords() {
        assert!(check_policy("short", "password").is_err());
        assert!(check_policy(&"x".repeat(129), "password").is_err());
        assert!(check_policy("password123", "password").is_err());
        assert!(
            check_policy("PASSWORD1", "password").is_err(),
            "case does not make a common password strong"
        );
        assert!(check_policy("correct horse battery staple", "password").is_ok());
    }

    #[test]
    fn ships_ten_thousand_common_passwords() {
        assert!(COMMON.len() >= 9_900, "{}", COMMON.len());
    }

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() -> Result<(), HashError> {
        let hashed = hash("correct horse battery staple".to_owned()).await?;
        assert!(hashed.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hashed}");
        assert!(verify("correct horse battery staple".to_owned(), Some(hashed.clone())).await);
        assert!(!verify("wrong horse".to_owned(), Some(hashed)).await);
        assert!(!verify("anything".to_owned(), None).await);
        Ok(())
    }
}
