//! 128-bit values written as 32 lowercase hex digits (device ids, user tags, session
//! digests), kept inline: a request reads several of them, and copying 32 bytes costs less
//! than allocating a string for each.

use std::fmt;

/// Bytes of the value.
const BYTES: usize = 16;
/// Hex digits of its text.
const DIGITS: usize = 2 * BYTES;

/// 128 bits as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Hex128([u8; DIGITS]);

impl Hex128 {
    /// The first 16 bytes of `bytes` (a digest, or 16 random bytes).
    pub(crate) fn encode(bytes: &[u8]) -> Self {
        let mut text = [0u8; DIGITS];
        data_encoding::HEXLOWER.encode_mut(&bytes[..BYTES], &mut text);
        Hex128(text)
    }

    /// Exactly 32 lowercase hex digits, or `None`.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let bytes: [u8; DIGITS] = text.as_bytes().try_into().ok()?;
        bytes
            .iter()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            .then_some(Hex128(bytes))
    }

    pub(crate) fn as_str(&self) -> &str {
        // Only hex digits are ever stored, so this is always the text.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Hex128 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Hex128 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_as_the_hex_of_the_first_16_bytes() {
        let bytes: Vec<u8> = (0u8..20).map(|b| b.wrapping_mul(37)).collect();
        let hex = Hex128::encode(&bytes);
        assert_eq!(hex.as_str(), data_encoding::HEXLOWER.encode(&bytes[..16]));
        assert_eq!(Hex128::parse(hex.as_str()), Some(hex));
    }

    #[test]
    fn parses_only_32_lowercase_hex_digits() {
        let good = "0123456789abcdef0123456789abcdef";
        assert!(Hex128::parse(good).is_some());
        for bad in [
            "",
            &good[1..],
            &format!("{good}0"),
            &good.to_uppercase(),
            &good.replace('f', "g"),
            &format!("é{}", &good[2..]),
        ] {
            assert_eq!(Hex128::parse(bad), None, "{bad}");
        }
    }
}
