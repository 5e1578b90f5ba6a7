//! Why a guard refused a request, and the response it answers with.

use std::fmt;

use axum_core::response::IntoResponse;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};

/// What a request that did not pass through `OtpLayer` is told, by guards and extractors
/// alike: the usual cause is the order of the layers, so it says which order works.
pub(crate) const MISSING_LAYER: &str = "`OtpLayer` is missing: `RequireOtpLayer`, `OtpSession` \
     and `Verified` work only inside it. Add `OtpLayer` last (outermost) with `.layer()`, or \
     first in a `ServiceBuilder`.";

/// The reason a request was refused. Each has a status and a stable machine-readable code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectionKind {
    /// The request did not pass through `OtpLayer` (a wiring mistake, usually a guard added
    /// outside it): 500 `otp_layer_missing`.
    MissingLayer,
    /// The bearer token is not a session id of this crate: 401 `invalid_session_token`.
    InvalidToken,
    /// No user passed the first factor: 401 `not_authenticated`.
    NotAuthenticated,
    /// The user may not enter (the guard's predicate said no): 403 `forbidden`.
    Forbidden,
    /// The user has no confirmed device and must set one up first: 403 `otp_setup_required`.
    SetupRequired,
    /// The session has not passed the second factor: 403 `otp_required`.
    OtpRequired,
    /// The session's verification is too old, remembered, or by a device kind this route does
    /// not accept: 403 `otp_reauthentication_required`.
    ReauthenticationRequired,
    /// The store cannot be reached; the guard fails closed: 503 `store_unavailable`.
    StoreUnavailable,
}

impl RejectionKind {
    /// The status code of a status-mode answer.
    pub fn status(self) -> StatusCode {
        match self {
            RejectionKind::MissingLayer => StatusCode::INTERNAL_SERVER_ERROR,
            RejectionKind::InvalidToken | RejectionKind::NotAuthenticated => {
                StatusCode::UNAUTHORIZED
            }
            RejectionKind::Forbidden
            | RejectionKind::SetupRequired
            | RejectionKind::OtpRequired
            | RejectionKind::ReauthenticationRequired => StatusCode::FORBIDDEN,
            RejectionKind::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The stable error code.
    pub fn code(self) -> &'static str {
        match self {
            RejectionKind::MissingLayer => "otp_layer_missing",
            RejectionKind::InvalidToken => "invalid_session_token",
            RejectionKind::NotAuthenticated => "not_authenticated",
            RejectionKind::Forbidden => "forbidden",
            RejectionKind::SetupRequired => "otp_setup_required",
            RejectionKind::OtpRequired => "otp_required",
            RejectionKind::ReauthenticationRequired => "otp_reauthentication_required",
            RejectionKind::StoreUnavailable => "store_unavailable",
        }
    }

    /// A human-readable explanation.
    pub fn message(self) -> &'static str {
        match self {
            RejectionKind::MissingLayer => MISSING_LAYER,
            RejectionKind::InvalidToken => "The bearer token is not a valid session token.",
            RejectionKind::NotAuthenticated => "Log in first.",
            RejectionKind::Forbidden => "You may not access this resource.",
            RejectionKind::SetupRequired => "Set up a second factor first.",
            RejectionKind::OtpRequired => "Verify with your second factor first.",
            RejectionKind::ReauthenticationRequired => "Verify with your second factor again.",
            RejectionKind::StoreUnavailable => "The service is temporarily unavailable.",
        }
    }
}

impl fmt::Display for RejectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A guard's refusal: a status with a small JSON body (`{"error": code, "message": ...}`),
/// or a redirect to a login, verification or setup page.
///
/// The [`RejectionKind`] is also put in the response's extensions, for logging middleware.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", kind.message())]
pub struct GuardRejection {
    kind: RejectionKind,
    location: Option<String>,
}

impl GuardRejection {
    pub(crate) fn status_only(kind: RejectionKind) -> Self {
        GuardRejection {
            kind,
            location: None,
        }
    }

    pub(crate) fn redirect(kind: RejectionKind, location: String) -> Self {
        GuardRejection {
            kind,
            location: Some(location),
        }
    }

    /// Why.
    pub fn kind(&self) -> RejectionKind {
        self.kind
    }

    /// Where a redirect points, in redirect mode.
    pub fn location(&self) -> Option<&str> {
        self.location.as_deref()
    }

    /// The response status: 303 See Other for a redirect, else the kind's status.
    pub fn status(&self) -> StatusCode {
        match self.location {
            Some(_) => StatusCode::SEE_OTHER,
            None => self.kind.status(),
        }
    }

    /// The JSON body of a status answer.
    pub fn body_text(&self) -> String {
        serde_json::json!({"error": self.kind.code(), "message": self.kind.message()}).to_string()
    }

    /// The response, for any body type that can be made from a `String`.
    pub fn into_http<B: From<String>>(self) -> Response<B> {
        let mut response = Response::new(B::from(match self.location {
            Some(_) => String::new(),
            None => self.body_text(),
        }));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match &self.location {
            Some(location) => {
                if let Ok(value) = HeaderValue::from_str(location) {
                    headers.insert(LOCATION, value);
                }
            }
            None => {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                if self.kind.status() == StatusCode::UNAUTHORIZED {
                    headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                }
            }
        }
        response.extensions_mut().insert(self.kind);
        response
    }
}

impl IntoResponse for GuardRejection {
    fn into_response(self) -> axum_core::response::Response {
        self.into_http()
    }
}
