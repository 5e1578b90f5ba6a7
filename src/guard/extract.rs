use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;

use super::policy::GuardPolicy;
use super::{GuardRejection, RejectionKind};
use crate::device::UserId;
use crate::layer::VerifiedDevice;
use crate::session::{OtpSession, VerifiedBy};

/// Extracts the user of a request that a guard let through; alone, the user of a session that
/// passed the second factor, rejecting the request otherwise (with a [`GuardRejection`],
/// status mode).
///
/// Behind a [`RequireOtpLayer`](super::RequireOtpLayer) or a
/// [`VerifiedDeviceLayer`](crate::layer::VerifiedDeviceLayer) it takes their decision (the
/// [`VerifiedDevice`] extension), with no store round trip: whoever the guard let through is accepted, and nobody else reaches the
/// handler. In particular, behind [`RequireOtpLayer::if_configured`] a user who has no device
/// yet passes, with `by` set to `None`. Alone it checks the session itself (one store round
/// trip) and demands a verification. `Option<Verified>` never rejects except when the store
/// is down or `OtpLayer` is missing.
///
/// [`RequireOtpLayer::if_configured`]: super::RequireOtpLayer::if_configured
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The user.
    pub user: UserId,
    /// How and when the session was verified; `None` only when an `if_configured` guard let
    /// through a user who has no confirmed device.
    pub by: Option<VerifiedBy>,
}

impl<S: Send + Sync> FromRequestParts<S> for Verified {
    type Rejection = GuardRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(verified) = parts.extensions.get::<Verified>() {
            return Ok(verified.clone());
        }
        if let Some(device) = parts.extensions.get::<VerifiedDevice>() {
            return Ok(device.clone().into());
        }
        let session = parts.extensions.get::<OtpSession>();
        let passed = GuardPolicy::default().evaluate(session, &parts.uri).await?;
        match passed.verified {
            Some(by) => Ok(Verified {
                user: passed.user,
                by: Some(by),
            }),
            // The default policy lets nobody through unverified.
            None => Err(GuardRejection::status_only(RejectionKind::OtpRequired)),
        }
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Verified {
    type Rejection = GuardRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        optional(<Verified as FromRequestParts<S>>::from_request_parts(parts, state).await)
    }
}

/// The optional form of a guard extractor's result: not verified is `None`, but a wiring
/// mistake or a store outage stays an error (it is not "not verified").
pub(crate) fn optional<T>(result: Result<T, GuardRejection>) -> Result<Option<T>, GuardRejection> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(rejection)
            if matches!(
                rejection.kind(),
                RejectionKind::StoreUnavailable | RejectionKind::MissingLayer
            ) =>
        {
            Err(rejection)
        }
        Err(_) => Ok(None),
    }
}
