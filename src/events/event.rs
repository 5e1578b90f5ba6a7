//! What an event says.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::device::{Device, DeviceId, DeviceKind, UserId};

/// Something that happened to a user's second factor. Serialises to one flat JSON object:
/// `{"event": "user_verified", "user": "alice", "device": {...}, "at": 1700000000000, ...}`.
///
/// Events never carry a secret, a code, a token or a cookie.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// What happened, with its details.
    #[serde(flatten)]
    pub kind: EventKind,
    /// Whose factor.
    pub user: UserId,
    /// Which device, when one is concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceRef>,
    /// When (milliseconds since the Unix epoch).
    pub at: Timestamp,
    /// The request during which it happened, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestMeta>,
    /// The id of the [`Events`](super::Events) instance (application process) that emitted it.
    pub instance: String,
}

/// The kinds of event, with their details.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// A code was accepted: the user passed the second factor.
    UserVerified,
    /// A code was refused as wrong or malformed.
    VerificationFailed {
        /// `invalid_code` or `malformed_code`.
        reason: String,
    },
    /// A code that had been used already was presented again.
    ReplayRefused,
    /// An attempt was refused because of recent failures on the device.
    ///
    /// Refusals of one user are coalesced: at most one `throttled` event a second per user
    /// from each [`Events`](super::Events) bus (each instance coalesces its own).
    /// Refusals within a second of the last one emitted are held back and counted. The next
    /// `throttled` event of the user stands for them all, with the details (device, time,
    /// request) of the latest: the next refusal after that second, or, when none comes, the
    /// latest held back, emitted once the second is over by the next event of this process,
    /// whoever it concerns (within a second or two under any traffic). Held-back refusals
    /// are kept in memory only: a process that stops with some held back never reports them.
    Throttled {
        /// When the device may be tried again.
        retry_at: Timestamp,
        /// How many refusals this event stands for (itself and those held back since the
        /// previous `throttled` event of the user); at least 1.
        #[serde(default = "one")]
        count: u64,
    },
    /// An attempt was refused because the user is locked out.
    Locked {
        /// When the lock ends.
        until: Timestamp,
    },
    /// A remember-device cookie verified a session.
    RememberedDeviceUsed,
    /// A remember-device cookie was presented and refused.
    RememberedDeviceRefused {
        /// Why: `invalid`, `expired`, `wrong_user`, `revoked`, `device_gone`, `stamp_changed`.
        reason: String,
    },
    /// A browser was remembered after a verification.
    DeviceRemembered,
    /// One or all remembered browsers were revoked.
    RememberedDevicesRevoked {
        /// How many.
        count: u64,
    },
    /// A backup code was used.
    BackupCodeUsed {
        /// How many remain.
        remaining: u64,
    },
    /// A new set of backup codes replaced the old one.
    BackupCodesRegenerated {
        /// How many codes the new set has.
        count: usize,
    },
    /// A device was added (unconfirmed, or confirmed at once as backup codes are).
    DeviceAdded,
    /// A new device was confirmed with a code from it.
    DeviceConfirmed,
    /// A device was removed.
    DeviceRemoved,
    /// Every device of the user was removed: the second factor is off.
    AllDevicesRemoved {
        /// How many.
        count: u64,
    },
    /// An out-of-band code was delivered to the device's destination (not emitted when the
    /// sender failed or the cooldown refused a new code).
    ChallengeSent {
        /// The channel it went through (`email`, `sms`…); never the destination or the code.
        channel: String,
    },
    /// A confirmation was requested (see [`Confirmer`](crate::Confirmer)). One that its
    /// method confirms at once is followed by [`EventKind::ConfirmationConfirmed`].
    ConfirmationRequested {
        /// The key of its method.
        method: String,
    },
    /// A confirmation was confirmed: the user's answer was accepted.
    ConfirmationConfirmed {
        /// The key of its method.
        method: String,
    },
    /// A confirmation failed: the last answer it allowed was wrong. (Each wrong answer of a
    /// built-in method is also a [`EventKind::VerificationFailed`] of the device.)
    ConfirmationFailed {
        /// The key of its method.
        method: String,
    },
    /// A confirmed confirmation was used, which happens once.
    ConfirmationUsed {
        /// The key of its method.
        method: String,
    },
    /// A session began: [`OtpSession::login`](crate::session::OtpSession::login) started one
    /// for a user who passed the application's first factor. Not emitted for the logins of an
    /// identity source, which are the application's own.
    SessionStarted,
    /// A session ended by logout.
    LoggedOut,
    /// Every session of the user ended.
    LoggedOutEverywhere {
        /// How many sessions ended.
        sessions: u64,
    },
    /// A push approval was sent to the device (never with its number to match).
    ApprovalRequested,
    /// The phone approved with the right number.
    ApprovalApproved,
    /// The phone denied the approval.
    ApprovalDenied {
        /// `denied`, or `wrong_number` when the phone chose another number than the login's.
        reason: String,
    },
    /// An approval was not answered in time.
    ApprovalExpired,
    /// The phone denied the approval as "this wasn't me": pushes to the user pause until
    /// `blocked_until`. Worth telling the user, and a security team.
    ApprovalReported {
        /// When pushes may be sent again.
        blocked_until: Timestamp,
    },
    /// A security key answered with a signature counter not above the one stored: it may
    /// have been cloned. The verification was refused.
    WebauthnCounterRegressed,
}

fn one() -> u64 {
    1
}

impl EventKind {
    /// The event's name, as in JSON (`user_verified`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::UserVerified => "user_verified",
            EventKind::VerificationFailed { .. } => "verification_failed",
            EventKind::ReplayRefused => "replay_refused",
            EventKind::Throttled { .. } => "throttled",
            EventKind::Locked { .. } => "locked",
            EventKind::RememberedDeviceUsed => "remembered_device_used",
            EventKind::RememberedDeviceRefused { .. } => "remembered_device_refused",
            EventKind::DeviceRemembered => "device_remembered",
            EventKind::RememberedDevicesRevoked { .. } => "remembered_devices_revoked",
            EventKind::BackupCodeUsed { .. } => "backup_code_used",
            EventKind::BackupCodesRegenerated { .. } => "backup_codes_regenerated",
            EventKind::DeviceAdded => "device_added",
            EventKind::DeviceConfirmed => "device_confirmed",
            EventKind::DeviceRemoved => "device_removed",
            EventKind::AllDevicesRemoved { .. } => "all_devices_removed",
            EventKind::ChallengeSent { .. } => "challenge_sent",
            EventKind::ConfirmationRequested { .. } => "confirmation_requested",
            EventKind::ConfirmationConfirmed { .. } => "confirmation_confirmed",
            EventKind::ConfirmationFailed { .. } => "confirmation_failed",
            EventKind::ConfirmationUsed { .. } => "confirmation_used",
            EventKind::SessionStarted => "session_started",
            EventKind::LoggedOut => "logged_out",
            EventKind::LoggedOutEverywhere { .. } => "logged_out_everywhere",
            EventKind::ApprovalRequested => "approval_requested",
            EventKind::ApprovalApproved => "approval_approved",
            EventKind::ApprovalDenied { .. } => "approval_denied",
            EventKind::ApprovalExpired => "approval_expired",
            EventKind::ApprovalReported { .. } => "approval_reported",
            EventKind::WebauthnCounterRegressed => "webauthn_counter_regressed",
        }
    }
}

/// The device an event concerns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRef {
    /// Its id.
    pub id: DeviceId,
    /// Its kind.
    pub kind: DeviceKind,
    /// The name its owner gave it.
    pub name: String,
}

impl From<&Device> for DeviceRef {
    fn from(device: &Device) -> Self {
        DeviceRef {
            id: device.id.clone(),
            kind: device.kind(),
            name: device.name.clone(),
        }
    }
}

/// The request during which an event happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestMeta {
    /// The HTTP method.
    pub method: String,
    /// The path, without the query string (which could carry secrets).
    pub path: String,
    /// The client's address, when the layer was told how to find it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_addr: Option<IpAddr>,
    /// The `User-Agent` header (truncated to 256 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}
