//! The one error type of device management and verification.

use std::time::Duration;

use crate::clock::Timestamp;
use crate::otp::{ProvisioningError, TokenError};
use crate::store::StoreError;

use super::seal::SealError;
use crate::delivery::SendError;

/// Why a device operation or a verification failed.
///
/// [`Error::kind`] gives a stable, machine-readable code for each case. No variant carries a
/// secret or a code. Note that [`Error::Replayed`] is distinguished for events and logs; tell
/// end users only that the code was wrong ([`Error::is_wrong_code`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input cannot be a code of the device (wrong length, not digits…). It still counted
    /// as a failed attempt.
    #[error("malformed code: {0}")]
    Malformed(TokenError),
    /// The code is wrong.
    #[error("the code is not valid")]
    InvalidCode,
    /// The code was valid once and has been used (or an older one was).
    #[error("the code has been used already")]
    Replayed,
    /// Too many recent failures on the device; try again later.
    #[error("too many attempts; try again in {} s", retry_after.as_secs().max(1))]
    Throttled {
        /// When the device may be tried again.
        until: Timestamp,
        /// How long that is from now.
        retry_after: Duration,
    },
    /// Too many consecutive failures across the user's devices; verification is locked.
    #[error("verification is locked after too many failures")]
    Locked {
        /// When the lock ends.
        until: Timestamp,
    },
    /// The user has no such device (or it is of a kind this operation does not apply to).
    #[error("no such device")]
    DeviceNotFound,
    /// The device is not confirmed yet and cannot verify.
    #[error("the device is not confirmed")]
    NotConfirmed,
    /// The device is confirmed already.
    #[error("the device is confirmed already")]
    AlreadyConfirmed,
    /// The user has no confirmed device to verify with.
    #[error("no device is configured")]
    NotConfigured,
    /// The caller must pass the second factor first: the user has a confirmed device and the
    /// caller passed only the first factor.
    #[error("verify with the second factor first")]
    VerificationRequired,
    /// The caller must verify with a code again: changing factors needs a code verification
    /// within the re-verification window, and the caller's is older, or was a remembered
    /// browser.
    #[error("verify with a code again to change the second factor")]
    ReauthenticationRequired,
    /// The user has as many devices as allowed.
    #[error("too many devices")]
    TooManyDevices,
    /// The user has as many unconfirmed devices as allowed: confirm or delete one first, or
    /// wait for one to expire.
    #[error("too many unconfirmed devices")]
    TooManyPendingDevices,
    /// A device name is empty, too long or has control characters.
    #[error("invalid device name")]
    InvalidName,
    /// Device settings out of range (say, a TOTP step of 0).
    #[error("invalid device settings: {0}")]
    InvalidSettings(&'static str),
    /// An out-of-band destination is not valid for its channel.
    #[error("invalid destination: {0}")]
    InvalidDestination(&'static str),
    /// No sender is registered for the channel.
    #[error("no sender is registered for this channel")]
    UnknownChannel,
    /// The user has a confirmed device with this channel and destination already.
    #[error("a device with this destination exists already")]
    DuplicateDevice,
    /// A code was sent to the device too recently; try again later.
    #[error("a code was sent recently; try again in {} s", retry_after.as_secs().max(1))]
    Cooldown {
        /// When another code may be sent.
        until: Timestamp,
        /// How long that is from now.
        retry_after: Duration,
    },
    /// Too many codes were sent recently to the user or to the destination (see
    /// [`OutOfBandPolicy`](super::OutOfBandPolicy)); try again later.
    #[error("too many codes were sent; try again in {} s", retry_after.as_secs().max(1))]
    SendLimited {
        /// When another code may be sent.
        until: Timestamp,
        /// How long that is from now.
        retry_after: Duration,
    },
    /// The code could not be delivered; no code is pending.
    #[error("the code could not be delivered: {0}")]
    Delivery(SendError),
    /// A security-key step came with no ceremony of this session to answer: never begun,
    /// used already, or expired.
    #[error("no security-key ceremony is in progress; begin again")]
    CeremonyMissing,
    /// The security key's answer does not verify (wrong key, origin or challenge, or a
    /// malformed answer).
    #[error("the security key's answer was refused")]
    KeyRefused,
    /// The security key's signature counter went backwards: it may have been cloned.
    #[error("the security key's signature counter went backwards")]
    CounterRegressed,
    /// The security key is registered already.
    #[error("this security key is registered already")]
    KeyRegisteredAlready,
    /// No provisioning URI can be made for these settings.
    #[error(transparent)]
    Provisioning(#[from] ProvisioningError),
    /// A stored secret cannot be opened with the configured keys.
    #[error(transparent)]
    Sealing(#[from] SealError),
    /// The store failed; nothing was verified.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A push approval could not be asked for, read or answered.
    #[error(transparent)]
    Approval(#[from] crate::push::ApprovalError),
}

impl Error {
    /// A stable, machine-readable code for the error.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Malformed(_) => "malformed_code",
            Error::InvalidCode => "invalid_code",
            Error::Replayed => "replayed_code",
            Error::Throttled { .. } => "throttled",
            Error::Locked { .. } => "locked",
            Error::DeviceNotFound => "device_not_found",
            Error::NotConfirmed => "device_not_confirmed",
            Error::AlreadyConfirmed => "device_already_confirmed",
            Error::NotConfigured => "not_configured",
            Error::VerificationRequired => "otp_required",
            Error::ReauthenticationRequired => "reauthentication_required",
            Error::TooManyDevices => "too_many_devices",
            Error::TooManyPendingDevices => "too_many_pending_devices",
            Error::InvalidName => "invalid_name",
            Error::InvalidSettings(_) => "invalid_settings",
            Error::InvalidDestination(_) => "invalid_destination",
            Error::UnknownChannel => "unknown_channel",
            Error::DuplicateDevice => "duplicate_device",
            Error::Cooldown { .. } => "cooldown",
            Error::SendLimited { .. } => "send_limited",
            Error::Delivery(_) => "delivery_failed",
            Error::CeremonyMissing => "webauthn_ceremony_missing",
            Error::KeyRefused => "webauthn_refused",
            Error::CounterRegressed => "webauthn_counter_regressed",
            Error::KeyRegisteredAlready => "webauthn_key_registered",
            Error::Provisioning(_) => "invalid_provisioning",
            Error::Sealing(_) => "server_misconfigured",
            Error::Store(error) => error.kind(),
            Error::Approval(error) => error.kind(),
        }
    }

    /// Whether this is a wrong, malformed or replayed code: what an end user should hear as
    /// "that code is not valid".
    pub fn is_wrong_code(&self) -> bool {
        matches!(
            self,
            Error::Malformed(_) | Error::InvalidCode | Error::Replayed
        )
    }

    /// How long to wait before trying again, for throttled and locked failures and for a
    /// send refused by the cooldown or the send limits.
    pub fn retry_after(&self, now: Timestamp) -> Option<Duration> {
        match self {
            Error::Throttled { until, .. }
            | Error::Locked { until }
            | Error::Cooldown { until, .. }
            | Error::SendLimited { until, .. } => Some(until.since(now)),
            Error::Approval(error) => error.until().map(|until| until.since(now)),
            _ => None,
        }
    }
}
