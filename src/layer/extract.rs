use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::guard::{GuardRejection, RejectionKind};
use crate::session::OtpSession;

/// Rejection of the [`OtpSession`] extractor: the request did not pass through
/// [`OtpLayer`](super::OtpLayer), usually because it was added inside the routes or layers
/// that need it rather than outside them.
///
/// Answers like a guard that finds no layer: 500 with the JSON body
/// `{"error": "otp_layer_missing", "message": ...}`, the message saying which order works.
#[derive(Clone, Copy, Debug, Default, thiserror::Error)]
#[error("{}", RejectionKind::MissingLayer.message())]
pub struct MissingOtpLayer;

impl MissingOtpLayer {
    /// 500 Internal Server Error: this is a wiring mistake, not the client's.
    pub fn status(&self) -> StatusCode {
        RejectionKind::MissingLayer.status()
    }

    /// The stable error code, `otp_layer_missing`.
    pub fn kind(&self) -> &'static str {
        RejectionKind::MissingLayer.code()
    }

    /// The JSON body: `{"error": "otp_layer_missing", "message": ...}`.
    pub fn body_text(&self) -> String {
        self.rejection().body_text()
    }

    fn rejection(&self) -> GuardRejection {
        GuardRejection::status_only(RejectionKind::MissingLayer)
    }
}

impl IntoResponse for MissingOtpLayer {
    fn into_response(self) -> Response {
        self.rejection().into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for OtpSession {
    type Rejection = MissingOtpLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<OtpSession>()
            .cloned()
            .ok_or(MissingOtpLayer)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for OtpSession {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<OtpSession>().cloned())
    }
}
