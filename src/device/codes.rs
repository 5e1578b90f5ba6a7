//! Codes that are stored only as keyed hashes: backup codes and out-of-band codes.
//!
//! A code is hashed with HMAC-SHA256 under a key derived from the application's
//! [`ServerKey`], together with its user and device, so a dump of the store neither reveals
//! codes nor lets them be brute-forced offline, and a hash copied to another user is useless.
//! Checking a code is one hash computation and one atomic removal in the store.

use std::fmt;

use data_encoding::HEXLOWER;
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::seal::{KeyError, decode_base64};
use super::{DeviceId, UserId};
use crate::otp::random_bytes;
use crate::session::TagKey;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The purpose of the key of user tags.
const TAG_PURPOSE: &str = "user-tag";

/// The application's server-side secret (at least 256 bits) from which the crate derives its
/// hashing keys and the key of user tags. Every instance of an application must use the same
/// key. Changing it makes every stored backup code and pending out-of-band code unusable and
/// gives every user another [`UserTag`](crate::session::UserTag): a store that files records
/// by tag (Redis) then finds none of a user's devices, sessions or remembered browsers, as if
/// the user had never enrolled. Never change it on a store in use.
#[derive(Clone)]
pub struct ServerKey(Zeroizing<Vec<u8>>);

impl ServerKey {
    /// Shortest key accepted, in bytes.
    pub const MIN_LEN: usize = 32;

    /// A key from at least 32 bytes.
    pub fn new(bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.len() < Self::MIN_LEN {
            return Err(KeyError::WrongLength);
        }
        Ok(ServerKey(Zeroizing::new(bytes.to_vec())))
    }

    /// A key from base64 (standard or URL-safe, padding optional).
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let bytes = Zeroizing::new(decode_base64(text).ok_or(KeyError::NotBase64)?);
        ServerKey::new(&bytes)
    }

    /// A random key. Only for tests and single-process demos: codes hashed under it are
    /// lost when the process exits, and other instances cannot check them.
    pub fn generate() -> Self {
        ServerKey(Zeroizing::new(random_bytes(32)))
    }

    /// A 256-bit key for one purpose, independent of the keys for every other purpose.
    pub(crate) fn derive(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.0)
            .expect("HMAC accepts keys of any length");
        mac.update(b"tower-otp:derive:v1:");
        mac.update(purpose.as_bytes());
        Zeroizing::new(mac.finalize().into_bytes().into())
    }

    /// The key of the user tags in session ids and store keys (see
    /// [`UserTag`](crate::session::UserTag)). A [`TwoFactor`](crate::TwoFactor) binds it into
    /// its store; bind it yourself only into a store used without one.
    pub fn tag_key(&self) -> TagKey {
        TagKey::from_derived(self.derive(TAG_PURPOSE))
    }

    /// The stored form of `code` for `device` of `user`.
    pub(crate) fn hash_code(
        &self,
        purpose: &str,
        user: &UserId,
        device: &DeviceId,
        code: &str,
    ) -> CodeHash {
        CodeHash(self.digest(purpose, &[user.as_str(), device.as_str(), code]))
    }

    /// A keyed digest of `parts` for one purpose: 32 lowercase hex digits that tell nothing
    /// about the parts to whoever lacks the key.
    pub(crate) fn digest(&self, purpose: &str, parts: &[&str]) -> String {
        let key = self.derive(purpose);
        let mut mac =
            <HmacSha256 as KeyInit>::new_from_slice(&*key).expect("HMAC accepts 32-byte keys");
        for part in parts {
            mac.update(&(part.len() as u32).to_be_bytes());
            mac.update(part.as_bytes());
        }
        // 128 bits of the MAC are plenty against collisions and halve the stored size.
        HEXLOWER.encode(&mac.finalize().into_bytes()[..16])
    }
}

impl fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerKey([redacted])")
    }
}

/// The stored, keyed hash of a code: 32 lowercase hex digits.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CodeHash(String);

impl CodeHash {
    /// The hash as hex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CodeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeHash([redacted])")
    }
}

/// Backup-code characters: digits and capitals without the look-alikes 0, 1, I and O.
/// 32 symbols, so each character carries exactly 5 bits.
const ALPHABET: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";

/// How backup codes are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackupCodePolicy {
    count: usize,
    length: usize,
}

impl Default for BackupCodePolicy {
    /// Ten codes of ten characters: 50 bits each, shown as `ABCDE-FGHJK`.
    fn default() -> Self {
        BackupCodePolicy {
            count: 10,
            length: 10,
        }
    }
}

impl BackupCodePolicy {
    /// `count` codes (1 to 100) of `length` characters (8 to 32; 5 bits each, so 40 to 160
    /// bits).
    pub fn new(count: usize, length: usize) -> Result<Self, InvalidPolicy> {
        if !(1..=100).contains(&count) || !(8..=32).contains(&length) {
            return Err(InvalidPolicy);
        }
        Ok(BackupCodePolicy { count, length })
    }

    /// How many codes a set has.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Characters per code.
    pub fn length(&self) -> usize {
        self.length
    }

    /// Entropy of one code, in bits.
    pub fn bits(&self) -> usize {
        self.length * 5
    }

    /// A fresh set of codes.
    pub(crate) fn generate(&self) -> BackupCodes {
        BackupCodes(
            (0..self.count)
                .map(|_| self.generate_one())
                .collect::<Vec<_>>(),
        )
    }

    fn generate_one(&self) -> Zeroizing<String> {
        let random = Zeroizing::new(random_bytes(self.length));
        let mut code = Zeroizing::new(String::with_capacity(self.length + self.length / 5));
        for (i, byte) in random.iter().enumerate() {
            if i > 0 && i % 5 == 0 {
                code.push('-');
            }
            // 256 is a multiple of 32, so masking keeps the distribution uniform.
            code.push(ALPHABET[usize::from(byte & 31)] as char);
        }
        code
    }

    /// The canonical form of a typed code (capitals, separators and whitespace removed), or
    /// `None` if it cannot be a code of this policy.
    pub(crate) fn normalise(&self, input: &str) -> Option<Zeroizing<String>> {
        if input.len() > 4 * self.length {
            return None;
        }
        let canonical: Zeroizing<String> = Zeroizing::new(
            input
                .chars()
                .filter(|c| !c.is_whitespace() && *c != '-' && *c != '_')
                .map(|c| c.to_ascii_uppercase())
                .collect(),
        );
        let valid =
            canonical.len() == self.length && canonical.bytes().all(|b| ALPHABET.contains(&b));
        valid.then_some(canonical)
    }
}

/// Backup-code settings out of range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("backup codes: 1 to 100 codes of 8 to 32 characters")]
pub struct InvalidPolicy;

/// A new set of backup codes, shown to the user once; only their hashes are stored.
/// `Debug` shows how many there are, never the codes.
#[derive(Clone)]
pub struct BackupCodes(Vec<Zeroizing<String>>);

impl BackupCodes {
    /// The codes, formatted for display (`ABCDE-FGHJK`).
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|c| c.as_str())
    }

    /// How many codes there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for BackupCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BackupCodes([{} redacted])", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_formatted_and_from_the_alphabet() {
        let policy = BackupCodePolicy::default();
        assert_eq!(policy.bits(), 50);
        let codes = policy.generate();
        assert_eq!(codes.len(), 10);
        let mut seen = std::collections::HashSet::new();
        for code in codes.iter() {
            assert_eq!(code.len(), 11);
            assert_eq!(&code[5..6], "-");
            assert!(code.bytes().all(|b| b == b'-' || ALPHABET.contains(&b)));
            assert!(seen.insert(code.to_owned()));
        }
        assert_eq!(format!("{codes:?}"), "BackupCodes([10 redacted])");
    }

    #[test]
    fn typed_codes_normalise_case_and_separators() {
        let policy = BackupCodePolicy::default();
        let want = "ABCDE23456";
        for typed in [
            "ABCDE-23456",
            "abcde23456",
            " abcde 23456 ",
            "ab_cde-234-56",
        ] {
            assert_eq!(policy.normalise(typed).unwrap().as_str(), want, "{typed}");
        }
        for bad in [
            "ABCDE-2345",
            "ABCDE-234567",
            "ABCDE-2345O",
            "ABCDE-23451",
            "ÄBCDE23456",
            "",
        ] {
            assert!(policy.normalise(bad).is_none(), "{bad}");
        }
        assert!(policy.normalise(&"A".repeat(1000)).is_none());
    }

    #[test]
    fn hashes_depend_on_key_user_device_and_code() {
        let key = ServerKey::new(&[1; 32]).unwrap();
        let alice = UserId::new("alice").unwrap();
        let bob = UserId::new("bob").unwrap();
        let device = DeviceId::generate();
        let h = |k: &ServerKey, u: &UserId, d: &DeviceId, c: &str| k.hash_code("backup", u, d, c);
        let base = h(&key, &alice, &device, "ABCDE23456");
        assert_eq!(base.as_str().len(), 32);
        assert_eq!(base, h(&key, &alice, &device, "ABCDE23456"));
        assert_ne!(base, h(&key, &bob, &device, "ABCDE23456"));
        assert_ne!(base, h(&key, &alice, &DeviceId::generate(), "ABCDE23456"));
        assert_ne!(base, h(&key, &alice, &device, "ABCDE23457"));
        assert_ne!(
            base,
            h(
                &ServerKey::new(&[2; 32]).unwrap(),
                &alice,
                &device,
                "ABCDE23456"
            )
        );
        assert_ne!(base, key.hash_code("oob", &alice, &device, "ABCDE23456"));
        assert!(ServerKey::new(&[0; 31]).is_err());
        assert_eq!(format!("{key:?}"), "ServerKey([redacted])");
    }
}
