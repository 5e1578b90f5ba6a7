//! Extractors with the API's own rejections: JSON bodies, and the calling user.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::ApiError;
use crate::device::UserId;
use crate::session::{OtpSession, SessionStatus};

/// A JSON body; anything else is a 400 with a stable code. The messages never quote the body,
/// which may hold a code.
#[derive(Debug)]
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_error(&rejection)),
        }
    }
}

fn json_error(rejection: &JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => unsupported_media_type(),
        JsonRejection::JsonDataError(_) => ApiError::bad_request(
            "invalid_request",
            "The JSON body does not have the fields this endpoint expects.",
        ),
        JsonRejection::JsonSyntaxError(_) => {
            ApiError::bad_request("malformed_json", "The body is not valid JSON.")
        }
        _ => ApiError::bad_request("malformed_request", "The request body could not be read."),
    }
}

/// A body that is not declared as JSON.
pub(crate) fn unsupported_media_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "Send JSON with `Content-Type: application/json`.",
    )
}

/// The session of a request whose user passed the first factor.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub(crate) session: OtpSession,
    pub(crate) user: UserId,
    pub(crate) status: SessionStatus,
    /// Who asks, for the engine's factor rule.
    pub(crate) who: crate::device::Caller,
}

/// The session of any request (for endpoints that answer anonymous callers too).
#[derive(Clone, Debug)]
pub(crate) struct AnyCaller {
    pub(crate) session: OtpSession,
    pub(crate) status: SessionStatus,
}

impl<S: Send + Sync> FromRequestParts<S> for AnyCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let session = parts
            .extensions
            .get::<OtpSession>()
            .cloned()
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "otp_layer_missing",
                    "OtpSession not found in the request extensions. Is `OtpLayer` enabled?",
                )
            })?;
        let now = session.two_factor().now();
        let status = session
            .status()
            .await
            .map_err(|e| ApiError::session(&e, now))?;
        Ok(AnyCaller { session, status })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let AnyCaller { session, status } = AnyCaller::from_request_parts(parts, state).await?;
        match status.user.clone() {
            Some(user) => {
                // The session is loaded already: no second store round trip.
                let now = session.two_factor().now();
                let who = session
                    .caller()
                    .await
                    .map_err(|e| ApiError::session(&e, now))?;
                Ok(Caller {
                    session,
                    user,
                    status,
                    who,
                })
            }
            None if status.malformed_token => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_session_token",
                "The bearer token is not a valid session token.",
            )),
            None => Err(ApiError::not_authenticated()),
        }
    }
}

impl Caller {
    pub(crate) fn now(&self) -> crate::clock::Timestamp {
        self.session.two_factor().now()
    }

    /// For reading and renaming: a user who has a confirmed device must be verified.
    pub(crate) async fn require_verified(&self) -> Result<(), ApiError> {
        if self.status.verified.is_some() || !self.is_configured().await? {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "otp_required",
                "Verify with your second factor first.",
            ))
        }
    }

    pub(crate) async fn is_configured(&self) -> Result<bool, ApiError> {
        self.session
            .two_factor()
            .is_configured(&self.user)
            .await
            .map_err(|e| ApiError::device(&e, self.now()))
    }
}
