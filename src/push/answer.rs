//! The phone's signed answer: what is signed, and how it is checked.

use std::fmt;
use std::str::FromStr;

use data_encoding::BASE64URL_NOPAD;
use serde::{Deserialize, Serialize};

use super::{ApprovalError, ApprovalId};
use crate::clock::Timestamp;

/// What a signed answer begins with: the protocol, the message and its version, so that a
/// signature made for anything else (another version, another protocol using the same key)
/// never verifies as an answer.
const ANSWER_DOMAIN: &[u8] = b"tower-otp/push-answer/v1";

/// The phone's answer to an approval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// "Yes, this is me", with the number chosen.
    Approve,
    /// "No".
    Deny,
    /// "No, and this wasn't me": pushes to the user pause, and the application is told.
    Report,
}

impl Decision {
    /// The stable name used in JSON and in the signed message.
    pub const fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Deny => "deny",
            Decision::Report => "report",
        }
    }
}

/// The bytes a phone signs to answer approval `id`: `tower-otp/push-answer/v1`, then the
/// approval id, the decision (`approve`, `deny` or `report`), the number chosen (decimal, or
/// empty without one) and the answer's time in milliseconds since the Unix epoch (decimal),
/// each field preceded by a NUL byte. No field can hold a NUL byte, so the encoding is
/// unambiguous.
///
/// ```
/// use tower_otp::clock::Timestamp;
/// use tower_otp::push::{Decision, answer_message};
/// # let id = "a".repeat(32) + "." + &"A".repeat(43);
/// # let id = tower_otp::push::ApprovalId::parse(&id).unwrap().0;
/// let message = answer_message(&id, Decision::Approve, Some(42), Timestamp::from_millis(1_700_000_000_000));
/// assert!(message.starts_with(b"tower-otp/push-answer/v1\0"));
/// assert!(message.ends_with(b"\0approve\x0042\x001700000000000"));
/// ```
pub fn answer_message(
    id: &ApprovalId,
    decision: Decision,
    number: Option<u8>,
    at: Timestamp,
) -> Vec<u8> {
    let number = number.map(|n| n.to_string()).unwrap_or_default();
    let at = at.as_millis().to_string();
    let fields: [&[u8]; 4] = [
        id.as_str().as_bytes(),
        decision.as_str().as_bytes(),
        number.as_bytes(),
        at.as_bytes(),
    ];
    let mut message = ANSWER_DOMAIN.to_vec();
    for field in fields {
        message.push(0);
        message.extend_from_slice(field);
    }
    message
}

/// A phone's answer as it arrives: the decision, the number chosen, the time, and an Ed25519
/// signature by the device's key over [`answer_message`].
#[derive(Clone, PartialEq, Eq)]
pub struct SignedAnswer {
    /// Approve, deny or report.
    pub decision: Decision,
    /// The number chosen; needed to approve.
    pub number: Option<u8>,
    /// When the phone answered.
    pub at: Timestamp,
    /// The signature, 64 bytes.
    pub signature: [u8; 64],
}

impl SignedAnswer {
    /// An answer with its signature in unpadded base64url (86 characters), as the API takes it.
    pub fn new(
        decision: Decision,
        number: Option<u8>,
        at: Timestamp,
        signature: &str,
    ) -> Result<Self, ApprovalError> {
        let malformed = || ApprovalError::Malformed("the signature is 64 bytes of base64url");
        let bytes = BASE64URL_NOPAD
            .decode(signature.as_bytes())
            .map_err(|_| malformed())?;
        let signature = <[u8; 64]>::try_from(bytes.as_slice()).map_err(|_| malformed())?;
        Ok(SignedAnswer {
            decision,
            number,
            at,
            signature,
        })
    }
}

impl fmt::Debug for SignedAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedAnswer")
            .field("decision", &self.decision)
            .field("at", &self.at)
            .finish_non_exhaustive()
    }
}

/// A push device's public key: Ed25519, 32 bytes, as unpadded base64url in its record.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PushKey(ed25519_dalek::VerifyingKey);

impl PushKey {
    /// The key as the device record and the API carry it: unpadded base64url.
    pub fn to_text(&self) -> String {
        BASE64URL_NOPAD.encode(self.0.as_bytes())
    }

    /// Whether `signature` is this key's over `message`, by the strict rules (no
    /// small-order keys or non-canonical signatures: one answer, one valid signature).
    pub(crate) fn verifies(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let signature = ed25519_dalek::Signature::from_bytes(signature);
        self.0.verify_strict(message, &signature).is_ok()
    }
}

impl FromStr for PushKey {
    type Err = ApprovalError;
    /// Parses 32 bytes of unpadded base64url that are a valid Ed25519 point of large order.
    fn from_str(text: &str) -> Result<Self, ApprovalError> {
        let malformed = || ApprovalError::Malformed("the public key is 32 bytes of base64url");
        let bytes = BASE64URL_NOPAD
            .decode(text.as_bytes())
            .map_err(|_| malformed())?;
        let bytes = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| malformed())?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| malformed())?;
        if key.is_weak() {
            return Err(ApprovalError::Malformed("the public key is a weak key"));
        }
        Ok(PushKey(key))
    }
}

impl fmt::Debug for PushKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PushKey({})", self.to_text())
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};

    use super::*;
    use crate::device::UserId;
    use crate::session::UserTag;

    fn id() -> ApprovalId {
        ApprovalId::generate(&UserTag::unkeyed(&UserId::new("alice").unwrap())).0
    }

    #[test]
    fn a_signature_verifies_only_its_own_message() {
        let signing = SigningKey::from_bytes(&[7; 32]);
        let key: PushKey = BASE64URL_NOPAD
            .encode(signing.verifying_key().as_bytes())
            .parse()
            .unwrap();
        let (id, at) = (id(), Timestamp::from_millis(1_000));
        let message = answer_message(&id, Decision::Approve, Some(42), at);
        let signature = signing.sign(&message).to_bytes();
        assert!(key.verifies(&message, &signature));
        for other in [
            answer_message(&id, Decision::Approve, Some(43), at),
            answer_message(&id, Decision::Deny, Some(42), at),
            answer_message(&id, Decision::Approve, None, at),
            answer_message(
                &id,
                Decision::Approve,
                Some(42),
                Timestamp::from_millis(1_001),
            ),
            answer_message(&self::id(), Decision::Approve, Some(42), at),
        ] {
            assert!(!key.verifies(&other, &signature));
        }
    }

    #[test]
    fn keys_and_signatures_are_parsed_strictly() {
        for bad in ["", "AAAA", &"A".repeat(44), "not base64!"] {
            assert!(bad.parse::<PushKey>().is_err(), "{bad}");
        }
        // The identity point is of small order: refused.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(
            BASE64URL_NOPAD
                .encode(&identity)
                .parse::<PushKey>()
                .is_err()
        );
        let at = Timestamp::from_millis(1);
        assert!(SignedAnswer::new(Decision::Deny, None, at, "AAAA").is_err());
        let signature = BASE64URL_NOPAD.encode(&[0u8; 64]);
        assert!(SignedAnswer::new(Decision::Deny, None, at, &signature).is_ok());
    }
}
