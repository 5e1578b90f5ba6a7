//! [`VerifiedDevice`]: "this request is verified, by this device", as a request extension.

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;

use crate::clock::Timestamp;
use crate::device::{DeviceId, DeviceKind, UserId};
use crate::guard::extract::optional;
use crate::guard::{GuardRejection, RejectionKind, Verified};
use crate::session::VerifiedBy;

/// The request's session passed the second factor: who, with which device, and when.
///
/// This is the crate's one answer to "is this request verified, and by which device?". It is
/// in the request's extensions exactly when the answer is yes:
///
/// * [`VerifiedDeviceLayer`](super::VerifiedDeviceLayer) inserts it for every request whose
///   session is verified, and nothing otherwise (anonymous, unverified, or the store down);
/// * [`RequireOtpLayer`](crate::guard::RequireOtpLayer) inserts it for every request it lets
///   through verified (an `if_configured` guard letting through a user with no device inserts
///   none).
///
/// No extension means not verified: read it with
/// `request.extensions().get::<VerifiedDevice>()` in a plain Tower service. In axum it is an
/// extractor, like [`Verified`]: `VerifiedDevice` rejects a request that is not verified
/// with the guard's [`GuardRejection`] (status and JSON body), and `Option<VerifiedDevice>`
/// is `None` for it. Without an extension either one checks the session itself, as
/// [`Verified`] does; the session's state is loaded at most once per request, so behind
/// `VerifiedDeviceLayer` that costs no further store round trip.
///
/// It holds no secret: ids, a kind and a time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedDevice {
    user: UserId,
    by: VerifiedBy,
}

impl VerifiedDevice {
    /// The verification `by` of `user`'s session.
    pub(crate) fn new(user: UserId, by: VerifiedBy) -> Self {
        VerifiedDevice { user, by }
    }

    /// The user.
    pub fn user(&self) -> &UserId {
        &self.user
    }

    /// The device that verified the session.
    pub fn device_id(&self) -> &DeviceId {
        &self.by.device_id
    }

    /// Its kind: a guard on backup codes, say, reads this.
    pub fn device_kind(&self) -> DeviceKind {
        self.by.device_kind
    }

    /// When the session was verified.
    pub fn verified_at(&self) -> Timestamp {
        self.by.at
    }

    /// Whether a remember-device cookie verified the session rather than a code entered in
    /// it.
    pub fn remembered(&self) -> bool {
        self.by.remembered
    }

    /// The whole verification record, as the session holds it.
    pub fn verified_by(&self) -> &VerifiedBy {
        &self.by
    }
}

impl From<VerifiedDevice> for Verified {
    fn from(device: VerifiedDevice) -> Self {
        Verified {
            user: device.user,
            by: Some(device.by),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for VerifiedDevice {
    type Rejection = GuardRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(device) = parts.extensions.get::<VerifiedDevice>() {
            return Ok(device.clone());
        }
        // One decision for both extractors: whatever `Verified` finds or works out.
        let verified = <Verified as FromRequestParts<S>>::from_request_parts(parts, state).await?;
        match verified.by {
            Some(by) => Ok(VerifiedDevice::new(verified.user, by)),
            // An `if_configured` guard let through a user who has no device to name.
            None => Err(GuardRejection::status_only(RejectionKind::OtpRequired)),
        }
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for VerifiedDevice {
    type Rejection = GuardRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        // As `Option<Verified>`: a wiring mistake or an outage is not "not verified".
        optional(<VerifiedDevice as FromRequestParts<S>>::from_request_parts(parts, state).await)
    }
}
