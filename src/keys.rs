//! Every key the crate needs, derived from one master secret.
//!
//! An application needs three keys, shared by all its instances: the [`ServerKey`] under
//! which backup codes and out-of-band codes are hashed, a key that signs remember-device
//! cookies, and a [`SealingKey`] that encrypts device secrets at rest. [`Keys::derive`]
//! makes all three from one master secret with HKDF-SHA256 (RFC 5869), each under its own
//! label, so that none of them tells anything about another or about the master:
//!
//! ```
//! use tower_otp::device::SecretSealer;
//! use tower_otp::remember::RememberConfig;
//! use tower_otp::{Keys, MemoryStore, TwoFactor};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // In production: the same random secret on every instance, e.g. from
//! // `openssl rand -base64 32` in an environment variable.
//! let master = "4z0n3o9cS0m3Rand0mT3xtTh4tIsL0ngEnough=";
//! let keys = Keys::derive(master.as_bytes())?;
//!
//! let two_factor = TwoFactor::new(MemoryStore::new(), keys.server_key())
//!     .with_sealer(SecretSealer::new(vec![keys.sealing_key()])?);
//! let remember = RememberConfig::new([keys.remember_key()])?;
//! # let _ = (two_factor, remember);
//! # Ok(()) }
//! ```
//!
//! A master shorter than 32 bytes is refused: "the master key must be at least 32 bytes;
//! got 3". Take it from a secret store or an environment variable, never from the source.
//!
//! # Rotating the master
//!
//! The three keys rotate differently, because they protect different things:
//!
//! * **Remember-cookie key**: list the new key first; it signs new cookies, and the old one
//!   still verifies the cookies it signed. Drop the old key once those have expired (30
//!   days by default), or at once to forget every remembered browser:
//!   `RememberConfig::new([new.remember_key(), old.remember_key()])`.
//! * **Sealing key**: list the new key first; it seals new secrets, and the old one still
//!   opens the secrets it sealed (each sealed secret names its key's id, which
//!   [`Keys::sealing_key`] derives from the master too):
//!   `SecretSealer::new(vec![new.sealing_key(), old.sealing_key()])`. Keep the old key until
//!   no stored secret uses it ([`needs_reseal`](crate::device::SecretSealer::needs_reseal)
//!   tells; re-enrolling a device seals its new secret under the new key).
//! * **Server key**: it cannot rotate on a store in use. Backup codes and pending
//!   out-of-band codes are stored as hashes under it, and a hash cannot be recomputed
//!   without the code; it also keys the user tags under which the Redis store files every
//!   record, so under a new server key no user would have any device, session or remembered
//!   browser (the Redis store refuses to run under another key than its data's). To rotate
//!   the master, keep deriving the server key from the old one
//!   (`TwoFactor::new(store, old.server_key())`) and take the other two keys from the new.
//!
//! A leaked master means all three keys leaked: rotate the remember and sealing keys at once,
//! dropping the old ones. The server key stays, so code hashes in a copy of the store can
//! then be guessed offline; if the store may have leaked too, start a new store under a new
//! master and have users enrol again.

use std::fmt;

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::device::{KeyError, SealingKey, ServerKey};

/// A fixed salt: it separates this crate's keys from anything else derived from the same
/// master (RFC 5869 section 3.1 allows a non-secret, fixed salt).
const SALT: &[u8] = b"tower-otp keys v1";
const SERVER_KEY_LABEL: &[u8] = b"tower-otp/server-key";
const REMEMBER_KEY_LABEL: &[u8] = b"tower-otp/remember-cookie-key";
const SEALING_KEY_LABEL: &[u8] = b"tower-otp/sealing-key";
const SEALING_KEY_ID_LABEL: &[u8] = b"tower-otp/sealing-key-id";

/// The crate's keys, derived from one master secret (see the [module docs](self), which
/// also explain rotation). `Debug` shows no key.
#[derive(Clone)]
pub struct Keys {
    server: ServerKey,
    remember: RememberKey,
    sealing: SealingKey,
}

impl Keys {
    /// The shortest master accepted, in bytes.
    pub const MIN_MASTER_LEN: usize = 32;

    /// Derives every key from `master`, which must be at least 32 bytes
    /// ([`KeyError::TooShort`] otherwise) and should be random: its strength is the
    /// strength of every key.
    pub fn derive(master: &[u8]) -> Result<Keys, KeyError> {
        if master.len() < Self::MIN_MASTER_LEN {
            return Err(KeyError::too_short(
                "the master key",
                Self::MIN_MASTER_LEN,
                master.len(),
            ));
        }
        let hkdf = Hkdf::<Sha256>::new(Some(SALT), master);
        let server = ServerKey::new(&*expand::<32>(&hkdf, SERVER_KEY_LABEL))?;
        let remember = RememberKey(expand::<32>(&hkdf, REMEMBER_KEY_LABEL));
        // The id is stored beside every sealed secret: 48 bits of a separate output tell
        // keys from different masters apart and nothing about the key.
        let id = data_encoding::HEXLOWER.encode(&*expand::<6>(&hkdf, SEALING_KEY_ID_LABEL));
        let sealing = SealingKey::new(&format!("m{id}"), &*expand::<32>(&hkdf, SEALING_KEY_LABEL))?;
        Ok(Keys {
            server,
            remember,
            sealing,
        })
    }

    /// The key under which backup codes and out-of-band codes are hashed, for
    /// [`TwoFactor::new`](crate::TwoFactor::new).
    pub fn server_key(&self) -> ServerKey {
        self.server.clone()
    }

    /// The key that signs remember-device cookies, for
    /// [`RememberConfig::new`](crate::remember::RememberConfig::new).
    pub fn remember_key(&self) -> RememberKey {
        self.remember.clone()
    }

    /// The key that seals device secrets, for
    /// [`SecretSealer::new`](crate::device::SecretSealer::new). Its id (`m` and 12 hex
    /// digits) is derived from the master too, so that keys of two masters can be listed
    /// together while rotating.
    pub fn sealing_key(&self) -> SealingKey {
        self.sealing.clone()
    }
}

/// HKDF-Expand of `N` bytes under `label`.
fn expand<const N: usize>(hkdf: &Hkdf<Sha256>, label: &[u8]) -> Zeroizing<[u8; N]> {
    let mut out = Zeroizing::new([0u8; N]);
    hkdf.expand(label, &mut *out)
        // HKDF-SHA256 gives up to 8160 bytes; N is at most 32.
        .expect("HKDF-SHA256 output of at most 32 bytes");
    out
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("sealing_key_id", &self.sealing.id())
            .finish_non_exhaustive()
    }
}

/// A key that signs remember-device cookies, from [`Keys::remember_key`]. Pass it to
/// [`RememberConfig::new`](crate::remember::RememberConfig::new). `Debug` shows no key.
#[derive(Clone)]
pub struct RememberKey(Zeroizing<[u8; 32]>);

impl AsRef<[u8]> for RememberKey {
    fn as_ref(&self) -> &[u8] {
        &*self.0
    }
}

impl fmt::Debug for RememberKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RememberKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{DeviceId, SecretSealer, UserId};
    use crate::otp::Secret;
    use crate::remember::RememberConfig;

    const MASTER: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_short_master_is_refused_with_the_minimum_and_its_length() {
        let error = Keys::derive(b"abc").unwrap_err();
        assert_eq!(error.kind(), "key_too_short");
        assert_eq!(
            error.to_string(),
            "the master key must be at least 32 bytes; got 3"
        );
        assert!(Keys::derive(&MASTER[..31]).is_err());
        assert!(Keys::derive(MASTER).is_ok());
    }

    #[test]
    fn derivation_is_deterministic_and_keys_are_independent() {
        let a = Keys::derive(MASTER).unwrap();
        let b = Keys::derive(MASTER).unwrap();
        let other = Keys::derive(b"0123456789abcdef0123456789abcdeF").unwrap();
        assert_eq!(a.remember_key().as_ref(), b.remember_key().as_ref());
        assert_ne!(a.remember_key().as_ref(), other.remember_key().as_ref());
        assert_eq!(a.sealing_key().id(), b.sealing_key().id());
        assert_ne!(a.sealing_key().id(), other.sealing_key().id());
        assert_eq!(a.sealing_key().id().len(), 13);
        // No derived key is the master, and the three differ from each other.
        let remember = a.remember_key();
        assert_ne!(remember.as_ref(), MASTER);
        let server = hash_under(&a.server_key());
        assert_eq!(server, hash_under(&b.server_key()));
        assert_ne!(server, hash_under(&other.server_key()));
        assert_ne!(
            server,
            hash_under(&ServerKey::new(remember.as_ref()).unwrap())
        );
    }

    /// A code hashed under `key`: the way to compare server keys without exposing them.
    fn hash_under(key: &ServerKey) -> String {
        let user = UserId::new("alice").unwrap();
        let device: DeviceId = "0123456789abcdef0123456789abcdef".parse().unwrap();
        key.hash_code("test", &user, &device, "ABCDE23456")
            .as_str()
            .to_owned()
    }

    #[test]
    fn the_keys_work_where_they_are_meant_to_and_rotate() {
        let old = Keys::derive(MASTER).unwrap();
        let new = Keys::derive(&[7; 40]).unwrap();
        RememberConfig::new([new.remember_key(), old.remember_key()]).unwrap();
        let user = UserId::new("alice").unwrap();
        let device = DeviceId::generate();
        let secret = Secret::generate(20).unwrap();
        let sealed = SecretSealer::new(vec![old.sealing_key()])
            .unwrap()
            .seal(&secret, &user, &device);
        let rotated = SecretSealer::new(vec![new.sealing_key(), old.sealing_key()]).unwrap();
        assert_eq!(rotated.open(&sealed, &user, &device).unwrap(), secret);
        assert!(rotated.needs_reseal(&sealed));
    }

    /// Pinned outputs (checked against an independent RFC 5869 implementation): a change of
    /// salt or labels would silently change every deployment's keys.
    #[test]
    fn derivation_is_stable() {
        let keys = Keys::derive(MASTER).unwrap();
        assert_eq!(keys.sealing_key().id(), "m384adef93e7e");
        assert_eq!(
            data_encoding::HEXLOWER.encode(keys.remember_key().as_ref()),
            "34a38ae818bb511afa09375b15c5439fc257b712f1a50ddc83fd8d46911c3533"
        );
    }

    #[test]
    fn debug_shows_no_key() {
        let keys = Keys::derive(MASTER).unwrap();
        let debug = format!("{keys:?} {:?}", keys.remember_key());
        let id = keys.sealing_key().id().to_owned();
        assert_eq!(
            debug,
            format!("Keys {{ sealing_key_id: {id:?}, .. }} RememberKey([redacted])")
        );
    }
}
