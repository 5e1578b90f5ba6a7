//! The API's errors: `{"error": "<stable_code>", "message": "..."}` with the right status.

use std::time::Duration;

use axum::Json;
use axum::http::header::{CACHE_CONTROL, RETRY_AFTER};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::clock::Timestamp;
use crate::confirm::ConfirmError;
use crate::device::Error;
use crate::push::ApprovalError;
use crate::session::SessionError;
use crate::store::StoreError;

/// An API error: a status, a stable machine-readable code, a message for people, and for
/// throttling a `Retry-After`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<Duration>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    fn retry_after(mut self, wait: Option<Duration>) -> Self {
        self.retry_after = wait;
        self
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable error code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    pub(crate) fn not_authenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "not_authenticated",
            "Log in first.",
        )
    }

    pub(crate) fn not_found(code: &'static str) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, "No such resource.")
    }

    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub(crate) fn store(error: &StoreError) -> Self {
        if let StoreError::Unavailable(_) = error {
            tracing::warn!(kind = error.kind(), "store unavailable");
        } else {
            tracing::error!(kind = error.kind(), "store error");
        }
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "The service is temporarily unavailable.",
        )
    }

    /// A device or verification error, answered as the API does: wrong and replayed codes
    /// alike as `invalid_code`.
    pub(crate) fn device(error: &Error, now: Timestamp) -> Self {
        let (status, code) = match error {
            Error::Store(store) => return Self::store(store),
            Error::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed_code"),
            Error::InvalidCode | Error::Replayed => (StatusCode::UNAUTHORIZED, "invalid_code"),
            Error::KeyRefused | Error::CounterRegressed => (StatusCode::UNAUTHORIZED, error.kind()),
            Error::Throttled { .. }
            | Error::Locked { .. }
            | Error::Cooldown { .. }
            | Error::SendLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, error.kind()),
            Error::DeviceNotFound => (StatusCode::NOT_FOUND, error.kind()),
            Error::VerificationRequired | Error::ReauthenticationRequired => {
                (StatusCode::FORBIDDEN, error.kind())
            }
            Error::NotConfirmed
            | Error::AlreadyConfirmed
            | Error::NotConfigured
            | Error::TooManyDevices
            | Error::TooManyPendingDevices
            | Error::DuplicateDevice
            | Error::CeremonyMissing
            | Error::KeyRegisteredAlready => (StatusCode::CONFLICT, error.kind()),
            Error::Delivery(_) => (StatusCode::BAD_GATEWAY, error.kind()),
            Error::Approval(approval) => (approval_status(approval), error.kind()),
            Error::Sealing(_) => (StatusCode::INTERNAL_SERVER_ERROR, error.kind()),
            _ => (StatusCode::BAD_REQUEST, error.kind()),
        };
        let message = if code == "invalid_code" {
            "The code is not valid.".to_owned()
        } else {
            error.to_string()
        };
        Self::new(status, code, message).retry_after(error.retry_after(now))
    }

    pub(crate) fn session(error: &SessionError, now: Timestamp) -> Self {
        match error {
            SessionError::Otp(error) => Self::device(error, now),
            SessionError::Store(error) => Self::store(error),
            SessionError::NotAuthenticated | SessionError::SessionEnded => {
                Self::not_authenticated()
            }
            SessionError::TooManyAttempts => {
                Self::new(StatusCode::UNAUTHORIZED, error.kind(), error.to_string())
            }
            SessionError::NotVerified => {
                Self::new(StatusCode::FORBIDDEN, "otp_required", error.to_string())
            }
            _ => Self::new(StatusCode::CONFLICT, error.kind(), error.to_string()),
        }
    }

    pub(crate) fn confirm(error: &ConfirmError, now: Timestamp) -> Self {
        let status = match error {
            ConfirmError::Device(error) => return Self::device(error, now),
            ConfirmError::Store(error) => return Self::store(error),
            ConfirmError::UnknownMethod | ConfirmError::NotFound => StatusCode::NOT_FOUND,
            ConfirmError::Rejected { .. } => StatusCode::UNAUTHORIZED,
            ConfirmError::TooManyOpen => StatusCode::TOO_MANY_REQUESTS,
            ConfirmError::NotPending { .. } | ConfirmError::WrongMethod => StatusCode::CONFLICT,
            ConfirmError::InvalidData(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, error.kind(), error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": self.code, "message": self.message}));
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(wait) = self.retry_after {
            // Whole seconds, rounded up: a client that waits this long is let through.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            headers.insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}

/// The status of an approval error: who is at fault, and whether waiting helps.
fn approval_status(error: &ApprovalError) -> StatusCode {
    match error {
        ApprovalError::NotFound => StatusCode::NOT_FOUND,
        ApprovalError::Expired => StatusCode::GONE,
        ApprovalError::AlreadyAnswered | ApprovalError::Unavailable => StatusCode::CONFLICT,
        ApprovalError::WrongNumber => StatusCode::FORBIDDEN,
        ApprovalError::BadSignature | ApprovalError::StaleAnswer => StatusCode::UNAUTHORIZED,
        ApprovalError::Busy { .. }
        | ApprovalError::Blocked { .. }
        | ApprovalError::Limited { .. } => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::BAD_REQUEST,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_over_its_limits_is_429_with_retry_after() {
        let now = Timestamp::from_secs(1_000);
        let limited = Error::SendLimited {
            until: Timestamp::from_millis(1_090_500),
            retry_after: Duration::from_millis(90_500),
        };
        let error = ApiError::device(&limited, now);
        assert_eq!(
            (error.status(), error.code()),
            (StatusCode::TOO_MANY_REQUESTS, "send_limited")
        );
        let response = error.into_response();
        assert_eq!(response.headers()[RETRY_AFTER], "91");
    }

    #[test]
    fn too_many_open_confirmations_is_429() {
        let error = ApiError::confirm(&ConfirmError::TooManyOpen, Timestamp::from_secs(1));
        assert_eq!(
            (error.status(), error.code()),
            (StatusCode::TOO_MANY_REQUESTS, "too_many_confirmations")
        );
    }
}
