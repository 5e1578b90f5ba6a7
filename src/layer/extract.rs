use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::session::OtpSession;

/// Rejection of the [`OtpSession`] extractor: the request did not pass through
/// [`OtpLayer`](super::OtpLayer).
#[derive(Clone, Copy, Debug, Default, thiserror::Error)]
#[error("OtpSession not found in the request extensions. Is `OtpLayer` enabled?")]
pub struct MissingOtpLayer;

impl MissingOtpLayer {
    /// 500 Internal Server Error: this is a wiring mistake, not the client's.
    pub fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    /// The explanation.
    pub fn body_text(&self) -> String {
        self.to_string()
    }
}

impl IntoResponse for MissingOtpLayer {
    fn into_response(self) -> Response {
        (self.status(), self.body_text()).into_response()
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
