//! Sealing device secrets at rest, so a dump of the store does not leak them.
//!
//! With no key configured, secrets are stored as they are (base32, marked `plain:`); anyone who
//! can read the store can then clone every TOTP and HOTP device. With keys, each secret is
//! encrypted with XChaCha20-Poly1305 under the first key, bound to its user and device (a sealed
//! secret copied onto another device record does not open), and opened with whichever
//! configured key sealed it, so keys can be rotated: add the new key first, keep the old ones
//! until no record uses them.
//!
//! Once keys are configured, a secret still stored unencrypted is refused
//! ([`SealError::Plaintext`]): a record written in plain text behind the sealer's back (by
//! someone with write access to the store, say) must not pass for a device. To move an
//! existing deployment to sealing, allow plaintext secrets for a while with
//! [`SecretSealer::allow_plaintext_migration`].

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use data_encoding::BASE64URL_NOPAD;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{DeviceId, UserId};
use crate::otp::{Secret, random_bytes};

const PLAIN_PREFIX: &str = "plain:";
const SEALED_PREFIX: &str = "xc20p1:";
const NONCE_LEN: usize = 24;
const AAD_DOMAIN: &[u8] = b"tower-otp:device-secret:v1";

/// A device secret as stored: sealed under a key, or plain when no key is configured.
/// Its `Debug` output is redacted either way.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SealedSecret(String);

impl SealedSecret {
    /// Whether the secret is stored unencrypted.
    pub fn is_plain(&self) -> bool {
        self.0.starts_with(PLAIN_PREFIX)
    }

    /// The id of the key that sealed it, if sealed.
    pub fn key_id(&self) -> Option<&str> {
        let rest = self.0.strip_prefix(SEALED_PREFIX)?;
        rest.split_once(':').map(|(id, _)| id)
    }
}

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.key_id() {
            Some(id) => write!(f, "SealedSecret(key {id:?})"),
            None => f.write_str("SealedSecret([redacted])"),
        }
    }
}

/// A 256-bit sealing key with an id recorded beside everything it seals.
#[derive(Clone)]
pub struct SealingKey {
    id: String,
    key: Zeroizing<[u8; 32]>,
}

impl SealingKey {
    /// A key from exactly 32 bytes. The id (1-32 of `A-Z a-z 0-9 _ -`) names it in records.
    pub fn new(id: &str, key: &[u8]) -> Result<Self, KeyError> {
        let valid_id = !id.is_empty()
            && id.len() <= 32
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid_id {
            return Err(KeyError::InvalidId);
        }
        let key: [u8; 32] = key.try_into().map_err(|_| KeyError::WrongLength)?;
        Ok(SealingKey {
            id: id.to_owned(),
            key: Zeroizing::new(key),
        })
    }

    /// A key from 32 bytes in standard or URL-safe base64, with or without padding.
    pub fn from_base64(id: &str, text: &str) -> Result<Self, KeyError> {
        let bytes = Zeroizing::new(decode_base64(text).ok_or(KeyError::NotBase64)?);
        SealingKey::new(id, &bytes)
    }

    /// The key's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

pub(crate) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let trimmed = text.trim().trim_end_matches('=');
    data_encoding::BASE64_NOPAD
        .decode(trimmed.as_bytes())
        .or_else(|_| BASE64URL_NOPAD.decode(trimmed.as_bytes()))
        .ok()
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealingKey")
            .field("id", &self.id)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// A key was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key has the wrong length.
    #[error("the key has the wrong length")]
    WrongLength,
    /// The key is not base64.
    #[error("the key is not valid base64")]
    NotBase64,
    /// The key id is empty, too long, or has characters other than `A-Z a-z 0-9 _ -`.
    #[error("key ids are 1 to 32 characters of A-Z a-z 0-9 _ -")]
    InvalidId,
    /// Two keys share an id.
    #[error("two keys have the same id")]
    DuplicateId,
}

/// Seals and opens device secrets with a list of keys: the first seals, all open.
///
/// With no keys, secrets are stored unencrypted, and the first secret sealed or opened so
/// logs a warning (once per process).
#[derive(Clone, Debug, Default)]
pub struct SecretSealer {
    keys: Vec<SealingKey>,
    plaintext_migration: bool,
}

/// Whether this process has warned that secrets are stored unencrypted.
static PLAINTEXT_WARNED: AtomicBool = AtomicBool::new(false);

fn warn_plaintext_once() {
    if !PLAINTEXT_WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "device secrets are stored unencrypted: anyone who can read the store can copy \
             every TOTP and HOTP device; configure sealing keys (SecretSealer::new, \
             TwoFactor::with_sealer) to encrypt them"
        );
    }
}

impl SecretSealer {
    /// No keys: secrets are stored unencrypted. Say so in your deployment notes.
    pub fn plaintext() -> Self {
        SecretSealer::default()
    }

    /// Seals with `keys[0]`, opens with any of `keys`.
    pub fn new(keys: Vec<SealingKey>) -> Result<Self, KeyError> {
        for (i, key) in keys.iter().enumerate() {
            if keys[..i].iter().any(|k| k.id == key.id) {
                return Err(KeyError::DuplicateId);
            }
        }
        Ok(SecretSealer {
            keys,
            plaintext_migration: false,
        })
    }

    /// Opens secrets stored unencrypted too, although keys are configured, so that devices
    /// enrolled before sealing was turned on keep working. Meant for a migration: it lets
    /// anyone who can write to the store plant a device secret of their choosing in plain
    /// text, so turn it off once no record is plain ([`SecretSealer::needs_reseal`] tells
    /// which are; enrolling such devices again seals their new secrets).
    pub fn allow_plaintext_migration(mut self) -> Self {
        self.plaintext_migration = true;
        self
    }

    /// Whether secrets are encrypted.
    pub fn is_sealing(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Seals `secret` for the device `device` of `user`.
    pub fn seal(&self, secret: &Secret, user: &UserId, device: &DeviceId) -> SealedSecret {
        let Some(key) = self.keys.first() else {
            warn_plaintext_once();
            return SealedSecret(format!("{PLAIN_PREFIX}{}", secret.to_base32().as_str()));
        };
        let nonce_bytes = random_bytes(NONCE_LEN);
        let aad = associated_data(user, device);
        let cipher = XChaCha20Poly1305::new((&*key.key).into());
        let ciphertext = cipher
            .encrypt(
                XNonce::from_slice(&nonce_bytes),
                Payload {
                    msg: secret.expose_bytes(),
                    aad: &aad,
                },
            )
            // Encryption of a short message cannot fail; were it to, storing nothing is right.
            .expect("XChaCha20-Poly1305 encryption of a device secret");
        let mut blob = nonce_bytes;
        blob.extend_from_slice(&ciphertext);
        SealedSecret(format!(
            "{SEALED_PREFIX}{}:{}",
            key.id,
            BASE64URL_NOPAD.encode(&blob)
        ))
    }

    /// Opens a sealed secret of the device `device` of `user`.
    pub fn open(
        &self,
        sealed: &SealedSecret,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<Secret, SealError> {
        if let Some(plain) = sealed.0.strip_prefix(PLAIN_PREFIX) {
            return self.open_plain(plain);
        }
        let rest = sealed
            .0
            .strip_prefix(SEALED_PREFIX)
            .ok_or(SealError::Corrupt)?;
        let (key_id, blob) = rest.split_once(':').ok_or(SealError::Corrupt)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == key_id)
            .ok_or(SealError::UnknownKey)?;
        let blob = BASE64URL_NOPAD
            .decode(blob.as_bytes())
            .map_err(|_| SealError::Corrupt)?;
        if blob.len() <= NONCE_LEN {
            return Err(SealError::Corrupt);
        }
        let (nonce, ciphertext) = blob.split_at(NONCE_LEN);
        let aad = associated_data(user, device);
        let cipher = XChaCha20Poly1305::new((&*key.key).into());
        let plain = cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Corrupt)?;
        Secret::from_bytes(plain).map_err(|_| SealError::Corrupt)
    }

    fn open_plain(&self, base32: &str) -> Result<Secret, SealError> {
        if self.is_sealing() {
            if !self.plaintext_migration {
                return Err(SealError::Plaintext);
            }
        } else {
            warn_plaintext_once();
        }
        Secret::from_base32(base32).map_err(|_| SealError::Corrupt)
    }

    /// Whether `sealed` should be sealed again: it is plain while keys are configured, or
    /// sealed by a key other than the first.
    pub fn needs_reseal(&self, sealed: &SealedSecret) -> bool {
        match self.keys.first() {
            None => false,
            Some(first) => sealed.key_id() != Some(first.id.as_str()),
        }
    }
}

/// Binds a sealed secret to its owner and device, with lengths so fields cannot run together.
fn associated_data(user: &UserId, device: &DeviceId) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_DOMAIN.len() + 8 + user.as_str().len() + 32);
    for part in [
        AAD_DOMAIN,
        user.as_str().as_bytes(),
        device.as_str().as_bytes(),
    ] {
        aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
        aad.extend_from_slice(part);
    }
    aad
}

/// A sealed secret could not be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// It was sealed by a key that is not configured (removed too early?).
    #[error("device secret was sealed by a key that is not configured")]
    UnknownKey,
    /// It is damaged, or belongs to another device or user.
    #[error("device secret is damaged or does not belong to this device")]
    Corrupt,
    /// It is stored unencrypted although sealing keys are configured, and the sealer does
    /// not allow that ([`SecretSealer::allow_plaintext_migration`]).
    #[error("device secret is stored unencrypted although sealing keys are configured")]
    Plaintext,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (UserId, DeviceId) {
        (UserId::new("alice").unwrap(), DeviceId::generate())
    }

    fn key(id: &str, byte: u8) -> SealingKey {
        SealingKey::new(id, &[byte; 32]).unwrap()
    }

    #[test]
    fn sealed_secrets_open_only_for_their_device_and_user() {
        let (user, device) = ids();
        let sealer = SecretSealer::new(vec![key("k1", 1)]).unwrap();
        let secret = Secret::generate(20).unwrap();
        let sealed = sealer.seal(&secret, &user, &device);
        assert!(!sealed.is_plain());
        assert!(!sealed.0.contains(secret.to_base32().as_str()));
        assert_eq!(sealer.open(&sealed, &user, &device).unwrap(), secret);
        let other_device = DeviceId::generate();
        assert_eq!(
            sealer.open(&sealed, &user, &other_device),
            Err(SealError::Corrupt)
        );
        let bob = UserId::new("bob").unwrap();
        assert_eq!(sealer.open(&sealed, &bob, &device), Err(SealError::Corrupt));
    }

    #[test]
    fn rotation_old_keys_open_removed_keys_do_not() {
        let (user, device) = ids();
        let secret = Secret::generate(20).unwrap();
        let old = SecretSealer::new(vec![key("old", 1)]).unwrap();
        let sealed = old.seal(&secret, &user, &device);
        let rotated = SecretSealer::new(vec![key("new", 2), key("old", 1)]).unwrap();
        assert_eq!(rotated.open(&sealed, &user, &device).unwrap(), secret);
        assert!(rotated.needs_reseal(&sealed));
        assert!(!rotated.needs_reseal(&rotated.seal(&secret, &user, &device)));
        let removed = SecretSealer::new(vec![key("new", 2)]).unwrap();
        assert_eq!(
            removed.open(&sealed, &user, &device),
            Err(SealError::UnknownKey)
        );
    }

    #[test]
    fn tampered_sealed_secrets_are_refused() {
        let (user, device) = ids();
        let sealer = SecretSealer::new(vec![key("k1", 1)]).unwrap();
        let sealed = sealer.seal(&Secret::generate(20).unwrap(), &user, &device);
        let text = sealed.0.clone();
        for i in "xc20p1:k1:".len()..text.len() {
            let mut bytes = text.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let tampered = SealedSecret(String::from_utf8(bytes).unwrap());
            assert!(sealer.open(&tampered, &user, &device).is_err());
        }
        let truncated = SealedSecret(text[..text.len() - 4].to_owned());
        assert!(sealer.open(&truncated, &user, &device).is_err());
    }

    #[test]
    fn plain_secrets_are_refused_once_keys_are_configured_unless_migrating() {
        let (user, device) = ids();
        let secret = Secret::generate(20).unwrap();
        let plain = SecretSealer::plaintext().seal(&secret, &user, &device);
        let sealer = SecretSealer::new(vec![key("k1", 1)]).unwrap();
        let refused = sealer.open(&plain, &user, &device).unwrap_err();
        assert_eq!(refused, SealError::Plaintext);
        assert!(!refused.to_string().contains(secret.to_base32().as_str()));
        assert!(sealer.needs_reseal(&plain));
        let migrating = sealer.allow_plaintext_migration();
        assert_eq!(migrating.open(&plain, &user, &device).unwrap(), secret);
        let sealed = migrating.seal(&secret, &user, &device);
        assert!(
            !sealed.is_plain(),
            "migration opens plain secrets, never writes them"
        );
        assert!(!migrating.needs_reseal(&sealed));
    }

    #[test]
    fn plaintext_mode_round_trips_and_keys_are_validated() {
        let (user, device) = ids();
        let secret = Secret::generate(20).unwrap();
        let sealed = SecretSealer::plaintext().seal(&secret, &user, &device);
        assert!(sealed.is_plain());
        assert_eq!(format!("{sealed:?}"), "SealedSecret([redacted])");
        assert_eq!(
            SecretSealer::plaintext()
                .open(&sealed, &user, &device)
                .unwrap(),
            secret
        );
        assert_eq!(
            SealingKey::new("k", &[0; 16]).unwrap_err(),
            KeyError::WrongLength
        );
        assert_eq!(
            SealingKey::new("bad id", &[0; 32]).unwrap_err(),
            KeyError::InvalidId
        );
        assert_eq!(
            SecretSealer::new(vec![key("a", 1), key("a", 2)]).unwrap_err(),
            KeyError::DuplicateId
        );
        let k = SealingKey::from_base64("b64", &BASE64URL_NOPAD.encode(&[7; 32])).unwrap();
        assert!(!format!("{k:?}").contains("7, 7"));
    }
}
