//! Hash algorithms and code lengths.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The HMAC hash function of an OTP device.
///
/// SHA1 is what nearly every authenticator app supports; some apps silently use SHA1 whatever
/// the URI says, so choose another only when the users' apps are known to honour it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Algorithm {
    /// HMAC-SHA1 (the RFC 4226 default).
    #[default]
    #[serde(rename = "SHA1")]
    Sha1,
    /// HMAC-SHA256.
    #[serde(rename = "SHA256")]
    Sha256,
    /// HMAC-SHA512.
    #[serde(rename = "SHA512")]
    Sha512,
}

impl Algorithm {
    /// The name used in `otpauth://` URIs and JSON: `SHA1`, `SHA256` or `SHA512`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }

    /// The secret length, in bytes, generated for new devices: the hash's output size (RFC 4226
    /// asks for at least 160 bits, RFC 6238's reference code uses the output size).
    pub const fn secret_len(self) -> usize {
        match self {
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
            Algorithm::Sha512 => 64,
        }
    }

    pub(crate) const fn to_totp_rs(self) -> totp_rs::Algorithm {
        match self {
            Algorithm::Sha1 => totp_rs::Algorithm::SHA1,
            Algorithm::Sha256 => totp_rs::Algorithm::SHA256,
            Algorithm::Sha512 => totp_rs::Algorithm::SHA512,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name given is not `SHA1`, `SHA256` or `SHA512`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown OTP algorithm; expected SHA1, SHA256 or SHA512")]
pub struct UnknownAlgorithm;

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name.to_ascii_uppercase().as_str() {
            "SHA1" => Ok(Algorithm::Sha1),
            "SHA256" => Ok(Algorithm::Sha256),
            "SHA512" => Ok(Algorithm::Sha512),
            _ => Err(UnknownAlgorithm),
        }
    }
}

/// The number of digits in a code: 6, 7 or 8 (RFC 4226 section 5.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Digits(u8);

impl Digits {
    /// Six digits, the default of every authenticator app.
    pub const SIX: Digits = Digits(6);
    /// Seven digits.
    pub const SEVEN: Digits = Digits(7);
    /// Eight digits.
    pub const EIGHT: Digits = Digits(8);

    /// `digits` if it is 6, 7 or 8.
    pub const fn new(digits: u8) -> Result<Self, InvalidDigits> {
        match digits {
            6..=8 => Ok(Digits(digits)),
            _ => Err(InvalidDigits),
        }
    }

    /// The number of digits.
    pub const fn get(self) -> u8 {
        self.0
    }

    /// The number of digits as a length.
    pub const fn len(self) -> usize {
        self.0 as usize
    }

    /// Always false: a code has at least six digits. Present because `len` is.
    pub const fn is_empty(self) -> bool {
        false
    }
}

impl Default for Digits {
    fn default() -> Self {
        Digits::SIX
    }
}

impl fmt::Display for Digits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A digit count other than 6, 7 or 8.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("an OTP code has 6, 7 or 8 digits")]
pub struct InvalidDigits;

impl TryFrom<u8> for Digits {
    type Error = InvalidDigits;

    fn try_from(digits: u8) -> Result<Self, Self::Error> {
        Digits::new(digits)
    }
}

impl From<Digits> for u8 {
    fn from(digits: Digits) -> u8 {
        digits.0
    }
}
