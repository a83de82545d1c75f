//! Time-based one-time passwords (TOTP, RFC 6238) for examples that enable or use two-factor
//! login: HMAC-SHA-1 over the number of 30-second steps since the Unix epoch, truncated as in
//! HOTP (RFC 4226, section 5.3), from a secret given in base32 as in an `otpauth://` URL.
//!
//! The server uses the `totp-rs` crate; this is a separate implementation on purpose, so that
//! a bug there shows up as a failing example instead of being replayed back at it.

use data_encoding::BASE32_NOPAD;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The length of one time step, in seconds (RFC 6238's default, and what apps expect).
pub const STEP_SECONDS: u64 = 30;
/// How many digits a code has (the `otpauth://` default).
pub const DIGITS: u32 = 6;

/// Code lengths RFC 4226 allows: at least 6 digits, at most 8.
const DIGIT_RANGE: std::ops::RangeInclusive<u32> = 6..=8;

/// A TOTP generator for one secret.
#[derive(Clone)]
pub struct Totp {
    /// HMAC-SHA-1 keyed with the secret, cloned for every code.
    mac: Hmac<Sha1>,
    digits: u32,
}

impl Totp {
    /// A generator for the raw secret `key`, giving `digits`-digit codes.
    pub fn new(key: &[u8], digits: u32) -> Result<Self, String> {
        if key.is_empty() {
            return Err("the secret is empty".to_owned());
        }
        if !DIGIT_RANGE.contains(&digits) {
            return Err(format!("codes have 6 to 8 digits, not {digits}"));
        }
        let mac = Hmac::<Sha1>::new_from_slice(key).map_err(|e| format!("keying HMAC-SHA-1: {e}"))?;
        Ok(Self { mac, digits })
    }

    /// A generator for a secret in RFC 4648 base32 (upper case, `=` padding optional), the
    /// form of the `secret` parameter of an `otpauth://totp/` URL.
    pub fn from_base32(secret: &str, digits: u32) -> Result<Self, String> {
        let key = BASE32_NOPAD
            .decode(secret.trim_end_matches('=').as_bytes())
            .map_err(|e| format!("not base32 (RFC 4648, upper case): {e}"))?;
        Self::new(&key, digits)
    }

    /// The code for the time step holding `unix_time` (seconds since the epoch).
    pub fn at(&self, unix_time: u64) -> String {
        self.hotp(unix_time / STEP_SECONDS)
    }

    /// The HOTP code for `counter` (RFC 4226, section 5.3).
    pub fn hotp(&self, counter: u64) -> String {
        let mut mac = self.mac.clone();
        mac.update(&counter.to_be_bytes());
        let hash = mac.finalize().into_bytes();
        // Dynamic truncation: the low 4 bits of the last byte pick where 4 bytes are read,
        // and the top bit of those is dropped so the number is the same signed or unsigned.
        let offset = usize::from(hash[hash.len() - 1] & 0x0f);
        let bytes = [hash[offset], hash[offset + 1], hash[offset + 2], hash[offset + 3]];
        let number = u32::from_be_bytes(bytes) & 0x7fff_ffff;
        let code = number % 10u32.pow(self.digits);
        format!("{code:0width$}", width = self.digits as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SHA-1 secret of RFC 6238 Appendix B: the ASCII digits "1234567890" twice.
    const RFC_SECRET: &[u8] = b"12345678901234567890";
    /// The same secret as an `otpauth://` URL would give it.
    const RFC_SECRET_BASE32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    #[test]
    fn rfc_6238_appendix_b_sha1_vectors() -> Result<(), String> {
        let totp = Totp::new(RFC_SECRET, 8)?;
        let vectors = [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        for (time, code) in vectors {
            assert_eq!(totp.at(time), code, "T = {time}");
        }
        Ok(())
    }

    #[test]
    fn rfc_4226_appendix_d_hotp_vectors() -> Result<(), String> {
        let hotp = Totp::new(RFC_SECRET, 6)?;
        let codes = ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583"];
        for (counter, code) in (0..).zip(codes) {
            assert_eq!(hotp.hotp(counter), code, "counter {counter}");
        }
        Ok(())
    }

    #[test]
    fn six_digit_codes_from_a_base32_secret() -> Result<(), String> {
        let totp = Totp::from_base32(RFC_SECRET_BASE32, DIGITS)?;
        // The last six digits of the eight-digit vectors; leading zeros are kept.
        assert_eq!(totp.at(59), "287082");
        assert_eq!(totp.at(1_111_111_109), "081804");
        // A step is 30 seconds: 1111111110 starts one, 1111111139 is its last second.
        assert_eq!(totp.at(1_111_111_110), "050471");
        assert_eq!(totp.at(1_111_111_139), "050471");
        assert_ne!(totp.at(1_111_111_140), "050471");
        // Padding is optional: "1234" in base32 is `GEZDGNA=`.
        assert_eq!(Totp::from_base32("GEZDGNA=", DIGITS)?.at(59), Totp::new(b"1234", DIGITS)?.at(59));
        assert_eq!(Totp::from_base32("GEZDGNA", DIGITS)?.at(59), Totp::new(b"1234", DIGITS)?.at(59));
        Ok(())
    }

    #[test]
    fn bad_secrets_and_lengths_are_refused() {
        let lower = Totp::from_base32("gezdgnbvgy3tqojqgezdgnbvgy3tqojq", DIGITS);
        assert!(lower.is_err_and(|e| e.starts_with("not base32")));
        assert!(Totp::from_base32("NOT-BASE32!", DIGITS).is_err_and(|e| e.starts_with("not base32")));
        assert!(Totp::from_base32("", DIGITS).is_err_and(|e| e == "the secret is empty"));
        assert!(Totp::new(RFC_SECRET, 5).is_err_and(|e| e.contains("not 5")));
        assert!(Totp::new(RFC_SECRET, 9).is_err_and(|e| e.contains("not 9")));
    }
}
