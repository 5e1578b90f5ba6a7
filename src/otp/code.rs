//! Computing codes and finding which counter a token belongs to.

use std::fmt;
use std::ops::RangeInclusive;

use subtle::{ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroizing;

use super::{Algorithm, Digits, Secret, Token};

/// A secret ready to compute HOTP values: the secret, its hash algorithm and code length.
///
/// TOTP is HOTP over a time step ([`TotpParams::time_step`]), so one key serves both.
#[derive(Clone)]
pub struct OtpKey {
    // totp-rs with a one-second step computes HOTP(counter) as generate(counter). Its `Debug`
    // prints the secret, so this type implements `Debug` by hand.
    inner: totp_rs::Totp,
    algorithm: Algorithm,
    digits: Digits,
}

impl OtpKey {
    /// A key over `secret`.
    pub fn new(secret: Secret, algorithm: Algorithm, digits: Digits) -> Self {
        let inner = totp_rs::Builder::new()
            .with_algorithm(algorithm.to_totp_rs())
            .with_digits(digits.get())
            .with_skew(0)
            .with_step_duration(1)
            .with_secret(secret.expose_bytes())
            // Secret and Digits already enforce stricter rules than totp-rs checks here.
            .build_noncompliant();
        OtpKey {
            inner,
            algorithm,
            digits,
        }
    }

    /// The HOTP value for `counter` (RFC 4226 section 5.3).
    pub fn hotp(&self, counter: u64) -> Code {
        // totp-rs formats the value zero-padded to the configured length.
        Code(Zeroizing::new(self.inner.generate(counter).to_string()))
    }

    /// The key's hash algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The key's code length.
    pub fn digits(&self) -> Digits {
        self.digits
    }
}

impl fmt::Debug for OtpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtpKey")
            .field("secret", &"[redacted]")
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .finish()
    }
}

/// A computed one-time code. Compare it with [`Code::matches`]; its `Debug` hides the digits.
#[derive(Clone, PartialEq, Eq)]
pub struct Code(Zeroizing<String>);

impl Code {
    /// True when `token` is this code; constant time in the digits.
    pub fn matches(&self, token: &Token) -> bool {
        self.0.as_bytes().ct_eq(token.as_str().as_bytes()).into()
    }

    /// The digits, for showing the code to its owner (tests, examples, out-of-band delivery).
    pub fn reveal(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Code([redacted])")
    }
}

/// The time parameters of TOTP (RFC 6238 section 4): the step `X` and the start `T0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TotpParams {
    /// Seconds per time step; at least 1 (30 is what every app assumes).
    pub step: u64,
    /// The Unix time at which step 0 begins.
    pub t0: u64,
}

impl Default for TotpParams {
    fn default() -> Self {
        TotpParams { step: 30, t0: 0 }
    }
}

impl TotpParams {
    /// The time step containing `unix_secs`, or `None` before `t0` or with a zero step.
    pub fn time_step(&self, unix_secs: u64) -> Option<u64> {
        unix_secs.checked_sub(self.t0)?.checked_div(self.step)
    }
}

/// The counter in `candidates` whose code is `token`, if any.
///
/// Every candidate is computed and compared, whatever matches, so the time taken does not tell
/// which counter matched. The caller bounds the range (a tolerance window or a look-ahead).
pub fn find_match(key: &OtpKey, token: &Token, candidates: RangeInclusive<u64>) -> Option<u64> {
    let mut found = subtle::Choice::from(0);
    let mut matched = 0u64;
    for counter in candidates {
        let hit = key
            .hotp(counter)
            .0
            .as_bytes()
            .ct_eq(token.as_str().as_bytes());
        matched.conditional_assign(&counter, hit & !found);
        found |= hit;
    }
    bool::from(found).then_some(matched)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc_key(digits: Digits) -> OtpKey {
        let secret = Secret::from_bytes(b"12345678901234567890".to_vec()).unwrap();
        OtpKey::new(secret, Algorithm::Sha1, digits)
    }

    #[test]
    fn time_step_never_underflows() {
        let params = TotpParams { step: 30, t0: 100 };
        assert_eq!(params.time_step(99), None);
        assert_eq!(params.time_step(100), Some(0));
        assert_eq!(params.time_step(159), Some(1));
        let zero = TotpParams { step: 0, t0: 0 };
        assert_eq!(zero.time_step(1000), None);
    }

    #[test]
    fn find_match_reports_the_matching_counter_only() {
        let key = rfc_key(Digits::SIX);
        let token = Token::parse("287082", Digits::SIX).unwrap(); // RFC 4226 counter 1
        assert_eq!(find_match(&key, &token, 0..=5), Some(1));
        assert_eq!(find_match(&key, &token, 2..=5), None);
        let wrong = Token::parse("000000", Digits::SIX).unwrap();
        assert_eq!(find_match(&key, &wrong, 0..=9), None);
    }

    #[test]
    fn codes_keep_leading_zeros() {
        // RFC 6238: T=1111111109 (step 0x23523EC), SHA1, 8 digits is 07081804.
        let key = rfc_key(Digits::EIGHT);
        assert_eq!(key.hotp(0x23523EC).reveal(), "07081804");
    }

    #[test]
    fn debug_hides_key_and_code() {
        let key = rfc_key(Digits::SIX);
        let shown = format!("{key:?} {:?}", key.hotp(0));
        assert!(!shown.contains("755224"), "{shown}");
        assert!(!shown.contains("1234567890"), "{shown}");
    }
}
