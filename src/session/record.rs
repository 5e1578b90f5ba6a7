//! What a session remembers, and how it is addressed in the store.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::Timestamp;
use crate::device::{DeviceId, DeviceKind, UserId};

/// Where a session lives in the store: its user's tag and a digest of its secret id.
///
/// The tag is derived from the user id and is shared by every key of that user, which keeps a
/// user's sessions, devices and counters in one Redis Cluster hash slot; logging out everywhere
/// and rotating an id are then single atomic operations. The store sees only a SHA-256 digest
/// of the secret part of a session id, so a dump of the store contains no usable session ids.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey {
    tag: UserTag,
    digest: String,
}

impl SessionKey {
    /// The key of the session whose secret id is `secret`, owned by the user with `tag`.
    pub fn new(tag: UserTag, secret: &[u8]) -> Self {
        SessionKey {
            tag,
            digest: data_encoding::HEXLOWER.encode(&Sha256::digest(secret)[..16]),
        }
    }

    /// The owner's tag.
    pub fn tag(&self) -> &UserTag {
        &self.tag
    }

    /// The digest of the secret id: 32 lowercase hex digits.
    pub fn digest(&self) -> &str {
        &self.digest
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The digest is not the id, but there is no reason to put it in logs either.
        write!(f, "SessionKey({}, [redacted])", self.tag.as_str())
    }
}

/// A short, stable, non-secret tag of a user id: 32 lowercase hex digits of its SHA-256.
/// Every store key of the user carries it (as a Redis Cluster `{hash tag}`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserTag(String);

impl UserTag {
    /// The tag of `user`.
    pub fn of(user: &UserId) -> Self {
        UserTag(data_encoding::HEXLOWER.encode(&Sha256::digest(user.as_str().as_bytes())[..16]))
    }

    /// A tag read from a session id; `None` unless exactly 32 lowercase hex digits.
    pub fn parse(text: &str) -> Option<Self> {
        let valid =
            text.len() == 32 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        valid.then(|| UserTag(text.to_owned()))
    }

    /// The tag as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for UserTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserTag({})", self.0)
    }
}

/// The stored state of one session of a user who passed the first factor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Who passed the first factor.
    pub user: UserId,
    /// When the session began (the first-factor login).
    pub created_at: Timestamp,
    /// The end of the session's absolute lifetime, however active it is.
    pub expires_at: Timestamp,
    /// The second factor, once passed.
    #[serde(default)]
    pub verified: Option<VerifiedBy>,
    /// For identities from outside the crate (an external login or token): a digest of the
    /// login it belongs to, so a verification never carries over to another login.
    #[serde(default)]
    pub login: Option<String>,
}

/// How and when a session passed the second factor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedBy {
    /// The device that verified.
    pub device_id: DeviceId,
    /// Its kind.
    pub device_kind: DeviceKind,
    /// When.
    pub at: Timestamp,
    /// Whether a remembered-device cookie did it rather than a code entered now.
    #[serde(default)]
    pub remembered: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_stable_hex_and_parse_strictly() {
        let alice = UserTag::of(&UserId::new("alice").unwrap());
        assert_eq!(alice, UserTag::of(&UserId::new("alice").unwrap()));
        assert_ne!(alice, UserTag::of(&UserId::new("bob").unwrap()));
        assert_eq!(alice.as_str().len(), 32);
        assert_eq!(UserTag::parse(alice.as_str()), Some(alice));
        assert_eq!(UserTag::parse("{x}"), None);
        assert_eq!(UserTag::parse(&"A".repeat(32)), None);
    }

    #[test]
    fn session_keys_hold_a_digest_not_the_id() {
        let tag = UserTag::of(&UserId::new("alice").unwrap());
        let key = SessionKey::new(tag, b"secret-session-id");
        assert_eq!(key.digest().len(), 32);
        assert!(!format!("{key:?}").contains(key.digest()));
    }
}
