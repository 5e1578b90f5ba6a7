//! What a session remembers, and how it is addressed in the store.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::UserTag;
use crate::clock::Timestamp;
use crate::device::{DeviceId, DeviceKind, UserId};
use crate::hex::Hex128;

/// Where a session lives in the store: its user's tag and a digest of its secret id.
///
/// The tag is the store's [`UserTag`] of the user and is shared by every key of that user,
/// which keeps a user's sessions, devices and counters in one Redis Cluster hash slot; logging
/// out everywhere and rotating an id are then single atomic operations. The store sees only a SHA-256 digest
/// of the secret part of a session id, so a dump of the store contains no usable session ids.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey {
    tag: UserTag,
    digest: Hex128,
}

impl SessionKey {
    /// The key of the session whose secret id is `secret`, owned by the user with `tag`.
    pub fn new(tag: UserTag, secret: &[u8]) -> Self {
        SessionKey {
            tag,
            digest: Hex128::encode(&Sha256::digest(secret)),
        }
    }

    /// The owner's tag.
    pub fn tag(&self) -> &UserTag {
        &self.tag
    }

    /// The digest of the secret id: 32 lowercase hex digits.
    pub fn digest(&self) -> &str {
        self.digest.as_str()
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The digest is not the id, but there is no reason to put it in logs either.
        write!(f, "SessionKey({}, [redacted])", self.tag.as_str())
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
    fn session_keys_hold_a_digest_not_the_id() {
        let tag = UserTag::unkeyed(&UserId::new("alice").unwrap());
        let key = SessionKey::new(tag, b"secret-session-id");
        assert_eq!(key.digest().len(), 32);
        assert!(!format!("{key:?}").contains(key.digest()));
    }
}
