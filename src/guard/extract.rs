use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;

use super::policy::GuardPolicy;
use super::{GuardRejection, RejectionKind};
use crate::device::UserId;
use crate::session::{OtpSession, VerifiedBy};

/// Extracts the verified user of a request whose session passed the second factor; rejects
/// the request otherwise (with a [`GuardRejection`], status mode).
///
/// Behind a [`RequireOtpLayer`](super::RequireOtpLayer) it reads what the guard found; alone
/// it checks the session itself (one store round trip). `Option<Verified>` never rejects
/// except when the store is down or `OtpLayer` is missing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The user.
    pub user: UserId,
    /// How and when the session was verified.
    pub by: VerifiedBy,
}

impl<S: Send + Sync> FromRequestParts<S> for Verified {
    type Rejection = GuardRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(verified) = parts.extensions.get::<Verified>() {
            return Ok(verified.clone());
        }
        let session = parts.extensions.get::<OtpSession>();
        let passed = GuardPolicy::default().evaluate(session, &parts.uri).await?;
        match passed.verified {
            Some(by) => Ok(Verified {
                user: passed.user,
                by,
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
        match <Verified as FromRequestParts<S>>::from_request_parts(parts, state).await {
            Ok(verified) => Ok(Some(verified)),
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
}
