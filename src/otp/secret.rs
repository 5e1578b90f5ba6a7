//! Shared secrets: generation, encoding, and keeping them out of logs.

use std::fmt;

use data_encoding::BASE32_NOPAD;
use zeroize::Zeroizing;

/// The shared secret of an HOTP or TOTP device.
///
/// Its `Debug` output shows only its length, and its memory is zeroed when dropped. The bytes
/// leave it only through the explicitly named [`Secret::expose_bytes`] and
/// [`Secret::to_base32`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// The shortest secret accepted: 160 bits, as RFC 4226 section 4 recommends.
    pub const MIN_LEN: usize = 20;
    /// The longest secret accepted (a SHA-512 block); longer ones would only be hashed down.
    pub const MAX_LEN: usize = 128;

    /// A new random secret of `len` bytes from the operating system's random number generator.
    pub fn generate(len: usize) -> Result<Self, SecretError> {
        check_len(len)?;
        Ok(Secret(Zeroizing::new(random_bytes(len))))
    }

    /// A secret from raw bytes (for importing existing devices).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, SecretError> {
        let bytes = Zeroizing::new(bytes);
        check_len(bytes.len())?;
        Ok(Secret(bytes))
    }

    /// A secret from RFC 4648 base32 as authenticator apps show it: case, spaces, hyphens
    /// and `=` padding are ignored.
    pub fn from_base32(text: &str) -> Result<Self, SecretError> {
        let cleaned: Zeroizing<String> = Zeroizing::new(
            text.chars()
                .filter(|c| !c.is_whitespace() && *c != '-' && *c != '=')
                .map(|c| c.to_ascii_uppercase())
                .collect(),
        );
        let bytes = BASE32_NOPAD
            .decode(cleaned.as_bytes())
            .map_err(|_| SecretError::NotBase32)?;
        Secret::from_bytes(bytes)
    }

    /// The secret in unpadded base32, the form `otpauth://` URIs and people use.
    pub fn to_base32(&self) -> Zeroizing<String> {
        Zeroizing::new(BASE32_NOPAD.encode(&self.0))
    }

    /// The raw secret bytes.
    pub fn expose_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The secret's length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a secret has at least [`Secret::MIN_LEN`] bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret([redacted; {} bytes])", self.0.len())
    }
}

fn check_len(len: usize) -> Result<(), SecretError> {
    if len < Secret::MIN_LEN {
        Err(SecretError::TooShort { bits: len * 8 })
    } else if len > Secret::MAX_LEN {
        Err(SecretError::TooLong)
    } else {
        Ok(())
    }
}

/// Why a secret was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// Shorter than 160 bits.
    #[error("secret has {bits} bits; at least 160 are required")]
    TooShort {
        /// The length that was given, in bits.
        bits: usize,
    },
    /// Longer than [`Secret::MAX_LEN`] bytes.
    #[error("secret is longer than 128 bytes")]
    TooLong,
    /// Not valid base32.
    #[error("secret is not valid base32")]
    NotBase32,
}

/// `len` bytes from the operating system's random number generator.
///
/// # Panics
///
/// If the operating system cannot provide randomness; nothing secure can be done then.
pub(crate) fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_long_random_and_distinct() {
        let a = Secret::generate(20).unwrap();
        let b = Secret::generate(20).unwrap();
        assert_eq!(a.len(), 20);
        assert_ne!(a.expose_bytes(), b.expose_bytes());
        assert_eq!(
            Secret::generate(19).unwrap_err(),
            SecretError::TooShort { bits: 152 }
        );
    }

    #[test]
    fn base32_round_trip_ignores_case_spaces_and_padding() {
        let secret = Secret::from_base32("gezd gnbv gy3t qojq gezd gnbv gy3t qojq====").unwrap();
        assert_eq!(secret.expose_bytes(), b"12345678901234567890");
        assert_eq!(
            secret.to_base32().as_str(),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
        assert_eq!(
            Secret::from_base32("not base32!").unwrap_err(),
            SecretError::NotBase32
        );
    }

    #[test]
    fn debug_shows_no_secret_material() {
        let secret = Secret::from_bytes(b"12345678901234567890".to_vec()).unwrap();
        let shown = format!("{secret:?}");
        assert_eq!(shown, "Secret([redacted; 20 bytes])");
    }
}
