//! Users, devices, and the state a device keeps between verifications.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::otp::{Algorithm, Digits, TotpParams, random_bytes};

use super::seal::SealedSecret;
use crate::hex::Hex128;

/// The application's identifier of a user: whatever its first factor (password login, an
/// upstream gateway, a JWT `sub`) says the user is. Not a secret; it appears in events. Cheap
/// to clone: clones share the text.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(Arc<str>);

impl UserId {
    /// Longest user id accepted, in bytes.
    pub const MAX_LEN: usize = 256;

    /// A user id; empty, overlong or control-character ids are refused.
    pub fn new(id: impl Into<String>) -> Result<Self, InvalidId> {
        id.into().parse()
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({:?})", self.0)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for UserId {
    type Error = InvalidId;
    fn try_from(id: String) -> Result<Self, InvalidId> {
        UserId::new(id)
    }
}

impl TryFrom<&str> for UserId {
    type Error = InvalidId;
    fn try_from(id: &str) -> Result<Self, InvalidId> {
        id.parse()
    }
}

impl From<u64> for UserId {
    fn from(id: u64) -> Self {
        UserId(id.to_string().into())
    }
}

impl From<i64> for UserId {
    fn from(id: i64) -> Self {
        UserId(id.to_string().into())
    }
}

impl From<UserId> for String {
    fn from(id: UserId) -> String {
        id.0.as_ref().to_owned()
    }
}

impl FromStr for UserId {
    type Err = InvalidId;
    fn from_str(id: &str) -> Result<Self, InvalidId> {
        if id.is_empty() || id.len() > Self::MAX_LEN || id.chars().any(char::is_control) {
            return Err(InvalidId);
        }
        Ok(UserId(id.into()))
    }
}

/// An id that is empty, too long, or not in the expected form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid identifier")]
pub struct InvalidId;

/// A device's identifier: 128 random bits as 32 lowercase hex digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeviceId(Hex128);

impl DeviceId {
    /// A new random id.
    pub fn generate() -> Self {
        DeviceId(Hex128::encode(&random_bytes(16)))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl FromStr for DeviceId {
    type Err = InvalidId;
    /// Parses exactly 32 lowercase hex digits; anything else (from a URL, say) is refused.
    fn from_str(id: &str) -> Result<Self, InvalidId> {
        Hex128::parse(id).map(DeviceId).ok_or(InvalidId)
    }
}

impl TryFrom<String> for DeviceId {
    type Error = InvalidId;
    fn try_from(id: String) -> Result<Self, InvalidId> {
        id.parse()
    }
}

impl From<DeviceId> for String {
    fn from(id: DeviceId) -> String {
        id.as_str().to_owned()
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({})", self.0)
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of factor a device is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeviceKind {
    /// Time-based one-time passwords (RFC 6238): an authenticator app.
    Totp,
    /// Counter-based one-time passwords (RFC 4226): a hardware token.
    Hotp,
    /// A set of single-use backup (emergency) codes.
    BackupCodes,
    /// A code sent on request through a channel such as email or SMS.
    OutOfBand,
    /// A phone app that approves logins when asked, with signed answers (see
    /// [`push`](crate::push)).
    Push,
    /// A security key or passkey (WebAuthn; feature `webauthn`).
    #[serde(rename = "webauthn")]
    WebAuthn,
}

impl DeviceKind {
    /// The stable name used in JSON, events and store records.
    pub const fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Totp => "totp",
            DeviceKind::Hotp => "hotp",
            DeviceKind::BackupCodes => "backup_codes",
            DeviceKind::OutOfBand => "out_of_band",
            DeviceKind::Push => "push",
            DeviceKind::WebAuthn => "webauthn",
        }
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind-specific, rarely changing part of a device. Secrets are held sealed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeviceConfig {
    /// A TOTP device.
    Totp {
        /// The shared secret, sealed (see [`SecretSealer`](super::SecretSealer)).
        secret: SealedSecret,
        /// HMAC hash function.
        algorithm: Algorithm,
        /// Code length.
        digits: Digits,
        /// Step and start time.
        #[serde(flatten)]
        params: TotpParams,
    },
    /// An HOTP device.
    Hotp {
        /// The shared secret, sealed.
        secret: SealedSecret,
        /// HMAC hash function.
        algorithm: Algorithm,
        /// Code length.
        digits: Digits,
    },
    /// Backup codes; the codes themselves are kept, hashed, beside the device.
    BackupCodes,
    /// An out-of-band device: codes are generated per challenge and sent to `destination`.
    OutOfBand {
        /// The delivery channel, e.g. `email` or `sms`: the name of a registered sender.
        channel: String,
        /// Where codes go (an address or phone number). Shown masked to users.
        destination: String,
        /// Code length.
        digits: Digits,
    },
    /// A push device: a phone app instance that answers approvals, signed.
    Push {
        /// The app instance's token with its push provider: where approvals go.
        token: String,
        /// The Ed25519 public key its answers are signed with, as unpadded base64url.
        public_key: String,
    },
    /// A security key (WebAuthn). Its signature counter is kept in the device's state
    /// (`next_counter`), where the store checks and moves it atomically.
    #[serde(rename = "webauthn")]
    WebAuthn {
        /// The credential id the authenticator gave, base64url without padding: unique among
        /// the user's keys.
        credential_id: String,
        /// The registered credential (public key and its parameters) as the relying party
        /// serialised it. Public: no secret is kept for a security key.
        credential: String,
    },
}

impl DeviceConfig {
    /// The device kind this configuration belongs to.
    pub fn kind(&self) -> DeviceKind {
        match self {
            DeviceConfig::Totp { .. } => DeviceKind::Totp,
            DeviceConfig::Hotp { .. } => DeviceKind::Hotp,
            DeviceConfig::BackupCodes => DeviceKind::BackupCodes,
            DeviceConfig::OutOfBand { .. } => DeviceKind::OutOfBand,
            DeviceConfig::Push { .. } => DeviceKind::Push,
            DeviceConfig::WebAuthn { .. } => DeviceKind::WebAuthn,
        }
    }
}

/// The fast-changing part of a device, updated only by the store's atomic operations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceState {
    /// The smallest counter (HOTP) or time step (TOTP) still acceptable: one past the last
    /// accepted one. Anything below it is a replay.
    pub next_counter: u64,
    /// TOTP only: learned clock drift of the device, in steps.
    pub drift: i64,
    /// Verification attempts on this device since its last success (each attempt counts
    /// when it starts, so concurrent guesses cannot slip past the throttle).
    pub failures: u32,
    /// When the last counted attempt started.
    pub last_failure_at: Option<Timestamp>,
    /// When the device last verified successfully.
    pub last_used_at: Option<Timestamp>,
}

/// A factor a user has configured: its identity, its configuration and its state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Stable identifier.
    pub id: DeviceId,
    /// The owner.
    pub user: UserId,
    /// A name the user chose ("Phone", "YubiKey").
    pub name: String,
    /// Whether the user has proved possession (entered a code) yet. Unconfirmed devices
    /// cannot be used to verify.
    pub confirmed: bool,
    /// For an unconfirmed device: when it expires unless confirmed first. From then on the
    /// store treats it as gone (see [`Device::is_live_at`]). Confirmed devices have none;
    /// an unconfirmed device without one never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_until: Option<Timestamp>,
    /// Whether this is the device to offer first.
    #[serde(default)]
    pub is_default: bool,
    /// When the device was added.
    pub created_at: Timestamp,
    /// Kind-specific configuration.
    pub config: DeviceConfig,
    /// Counters and throttle state.
    #[serde(default)]
    pub state: DeviceState,
}

impl Device {
    /// The device's kind.
    pub fn kind(&self) -> DeviceKind {
        self.config.kind()
    }

    /// Whether the device still exists at `now`: it has no deadline, or its deadline is
    /// later than `now`.
    pub fn is_live_at(&self, now: Timestamp) -> bool {
        self.pending_until.is_none_or(|until| until > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids_are_random_hex_and_parse_strictly() {
        let a = DeviceId::generate();
        assert_eq!(a.as_str().len(), 32);
        assert_ne!(a, DeviceId::generate());
        assert_eq!(a.as_str().parse::<DeviceId>().unwrap(), a);
        for bad in [
            "",
            "abc",
            &"A".repeat(32),
            &"g".repeat(32),
            &"0".repeat(33),
            "../etc/passwd",
        ] {
            assert!(bad.parse::<DeviceId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_device_is_live_until_its_deadline() {
        let device = |pending_until: Option<Timestamp>| Device {
            id: DeviceId::generate(),
            user: UserId::from(1u64),
            name: "Phone".into(),
            confirmed: pending_until.is_none(),
            pending_until,
            is_default: false,
            created_at: Timestamp::from_secs(1),
            config: DeviceConfig::BackupCodes,
            state: DeviceState::default(),
        };
        let deadline = Timestamp::from_secs(100);
        let pending = device(Some(deadline));
        assert!(pending.is_live_at(Timestamp::from_millis(99_999)));
        assert!(!pending.is_live_at(deadline));
        assert!(device(None).is_live_at(Timestamp::from_millis(u64::MAX)));
        // Old records without the field read as having no deadline.
        let mut json = serde_json::to_value(&pending).unwrap();
        json.as_object_mut().unwrap().remove("pending_until");
        let read: Device = serde_json::from_value(json).unwrap();
        assert_eq!(read.pending_until, None);
        let confirmed = serde_json::to_value(device(None)).unwrap();
        assert!(confirmed.get("pending_until").is_none());
    }

    #[test]
    fn user_ids_refuse_empty_long_and_control_characters() {
        assert!(UserId::new("alice").is_ok());
        assert!(UserId::new("").is_err());
        assert!(UserId::new("a\nb").is_err());
        assert!(UserId::new("x".repeat(257)).is_err());
        assert_eq!(UserId::from(42u64).as_str(), "42");
    }
}
