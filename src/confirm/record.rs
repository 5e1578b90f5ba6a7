//! Confirmations as the store keeps them, and how they are addressed.

use std::fmt;
use std::str::FromStr;

use data_encoding::{BASE64URL_NOPAD, HEXLOWER};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::clock::Timestamp;
use crate::device::{InvalidId, UserId};
use crate::otp::random_bytes;
use crate::session::UserTag;

/// Random bytes in a confirmation id: 256 bits, far past guessing.
const ID_BYTES: usize = 32;
/// Length of an id in unpadded base64url.
const ID_CHARS: usize = 43;

/// The id of a confirmation: 256 random bits as 43 characters of unpadded base64url.
///
/// Whoever holds the id of a confirmed confirmation can use it, so it is a secret: its `Debug`
/// output is redacted and the store sees only a digest of it (see [`ConfirmationKey`]).
#[derive(Clone)]
pub struct ConfirmationId(Zeroizing<String>);

impl ConfirmationId {
    /// A new random id.
    pub fn generate() -> Self {
        ConfirmationId(Zeroizing::new(
            BASE64URL_NOPAD.encode(&random_bytes(ID_BYTES)),
        ))
    }

    /// The id as text, to hand to the client.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ConfirmationId {
    type Err = InvalidId;
    /// Parses exactly 43 base64url characters that decode to 32 bytes; anything else (from a
    /// URL or a JSON body, say) is refused.
    fn from_str(id: &str) -> Result<Self, InvalidId> {
        let decodes = id.len() == ID_CHARS
            && BASE64URL_NOPAD
                .decode(id.as_bytes())
                .is_ok_and(|bytes| bytes.len() == ID_BYTES);
        decodes
            .then(|| ConfirmationId(Zeroizing::new(id.to_owned())))
            .ok_or(InvalidId)
    }
}

impl PartialEq for ConfirmationId {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for ConfirmationId {}

impl fmt::Debug for ConfirmationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConfirmationId([redacted])")
    }
}

/// Where a confirmation lives in the store: its user's [`UserTag`] (so a Redis Cluster keeps
/// it in the user's hash slot) and a SHA-256 digest of its id (so a dump of the store holds
/// no usable id).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ConfirmationKey {
    tag: UserTag,
    digest: String,
}

impl ConfirmationKey {
    /// The key of confirmation `id` of the user whose tag (from the store,
    /// [`Store::user_tag`](crate::store::Store::user_tag)) is `tag`.
    pub fn new(tag: UserTag, id: &ConfirmationId) -> Self {
        ConfirmationKey {
            tag,
            digest: HEXLOWER.encode(&Sha256::digest(id.as_str().as_bytes())[..16]),
        }
    }

    /// The owner's tag.
    pub fn tag(&self) -> &UserTag {
        &self.tag
    }

    /// The digest of the id: 32 lowercase hex digits.
    pub fn digest(&self) -> &str {
        &self.digest
    }
}

impl fmt::Debug for ConfirmationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConfirmationKey({}, [redacted])", self.tag.as_str())
    }
}

/// Where a confirmation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConfirmationStatus {
    /// Requested; waiting for the user's answer.
    InProcess,
    /// The user answered correctly; it can be used once.
    Confirmed,
    /// Too many wrong answers; it can no longer be confirmed.
    Failed,
    /// Its time ran out before it was used.
    Expired,
    /// It was used; it cannot be used again.
    Used,
}

impl ConfirmationStatus {
    /// The stable name used in JSON and store records.
    pub const fn as_str(self) -> &'static str {
        match self {
            ConfirmationStatus::InProcess => "in_process",
            ConfirmationStatus::Confirmed => "confirmed",
            ConfirmationStatus::Failed => "failed",
            ConfirmationStatus::Expired => "expired",
            ConfirmationStatus::Used => "used",
        }
    }
}

impl fmt::Display for ConfirmationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A confirmation as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmationRecord {
    /// Whose it is.
    pub user: UserId,
    /// The key of the method that confirms it.
    pub method: String,
    /// The status as last written; see [`ConfirmationRecord::status_at`] for the status
    /// with expiry applied.
    pub status: ConfirmationStatus,
    /// The method's state (never a secret: it is stored as it is).
    pub state: serde_json::Value,
    /// Attempts to confirm so far.
    pub attempts: u32,
    /// When it was requested.
    pub created_at: Timestamp,
    /// From this time on it can be neither confirmed nor used.
    pub expires_at: Timestamp,
    /// When the store forgets it (by the store's own clock). Until then its final status can
    /// still be read.
    pub retain_until: Timestamp,
}

impl ConfirmationRecord {
    /// The status at `now`: one still in process or confirmed at its expiry is expired.
    pub fn status_at(&self, now: Timestamp) -> ConfirmationStatus {
        match self.status {
            ConfirmationStatus::InProcess | ConfirmationStatus::Confirmed
                if self.expires_at <= now =>
            {
                ConfirmationStatus::Expired
            }
            status => status,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_random_strict_and_redacted() {
        let id = ConfirmationId::generate();
        assert_eq!(id.as_str().len(), ID_CHARS);
        assert_ne!(id, ConfirmationId::generate());
        assert_eq!(id.as_str().parse::<ConfirmationId>().unwrap(), id);
        assert!(!format!("{id:?}").contains(id.as_str()));
        let too_long = format!("{}A", id.as_str());
        for bad in ["", "abc", &too_long, &"*".repeat(ID_CHARS), &"A".repeat(42)] {
            assert!(bad.parse::<ConfirmationId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_carry_the_user_tag_and_a_digest_of_the_id() {
        let alice = UserId::new("alice").unwrap();
        let id = ConfirmationId::generate();
        let tag = UserTag::unkeyed(&alice);
        let key = ConfirmationKey::new(tag.clone(), &id);
        assert_eq!(key.tag(), &tag);
        assert_eq!(key.digest().len(), 32);
        assert!(!key.digest().contains(id.as_str()));
        let bob = UserTag::unkeyed(&UserId::new("bob").unwrap());
        assert_ne!(key, ConfirmationKey::new(bob, &id));
        assert!(!format!("{key:?}").contains(key.digest()));
    }

    #[test]
    fn pending_and_confirmed_records_expire() {
        let record = |status| ConfirmationRecord {
            user: UserId::new("alice").unwrap(),
            method: "device".into(),
            status,
            state: serde_json::Value::Null,
            attempts: 0,
            created_at: Timestamp::from_secs(0),
            expires_at: Timestamp::from_secs(10),
            retain_until: Timestamp::from_secs(100),
        };
        let (before, at) = (Timestamp::from_secs(9), Timestamp::from_secs(10));
        use ConfirmationStatus::*;
        for (status, then, later) in [
            (InProcess, InProcess, Expired),
            (Confirmed, Confirmed, Expired),
            (Failed, Failed, Failed),
            (Used, Used, Used),
        ] {
            assert_eq!(record(status).status_at(before), then);
            assert_eq!(record(status).status_at(at), later);
        }
        assert_eq!(
            serde_json::to_value(InProcess).unwrap(),
            serde_json::json!("in_process")
        );
    }
}
