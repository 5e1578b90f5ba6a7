//! Extractors with the API's own rejections: JSON bodies, and the calling user.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::Value;

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
        // Any JSON first, then the endpoint's fields: serde's own error, not the extractor's,
        // says which field is missing.
        let Json(value) = Json::<Value>::from_request(request, state)
            .await
            .map_err(|rejection| json_error(&rejection))?;
        serde_json::from_value(value)
            .map(ApiJson)
            .map_err(|error| ApiError::bad_request("invalid_request", fields_error(&error)))
    }
}

fn json_error(rejection: &JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => unsupported_media_type(),
        JsonRejection::JsonDataError(_) => ApiError::bad_request("invalid_request", NOT_THE_FIELDS),
        JsonRejection::JsonSyntaxError(_) => {
            ApiError::bad_request("malformed_json", "The body is not valid JSON.")
        }
        _ => ApiError::bad_request("malformed_request", "The request body could not be read."),
    }
}

const NOT_THE_FIELDS: &str = "The JSON body does not have the fields this endpoint expects.";
const OTHER_FIELDS: &str = "the fields are not those expected";

/// What is wrong with a JSON value's fields, for people, without quoting the value: for
/// example "missing field `code`".
///
/// serde's messages name the field that is missing or given twice (the endpoint's own field
/// names) and end with what was expected (also the endpoint's own words); they also quote the
/// unknown field or the wrong value, which come from the body and may hold a code. Only the
/// endpoint's parts are kept: the body's come before serde's last `, expected `.
pub(crate) fn fields_error(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let named = |prefix: &str| {
        let name = message.strip_prefix(prefix)?.strip_suffix('`')?;
        let plain =
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        plain.then(|| format!("{prefix}{name}`"))
    };
    let expected = || {
        message
            .rsplit_once(", expected ")
            .map(|(_, expected)| expected)
    };
    if let Some(missing) = named("missing field `") {
        missing
    } else if let Some(twice) = named("duplicate field `") {
        twice
    } else if message.contains("expected struct ") {
        "expected a JSON object".to_owned()
    } else if message.starts_with("unknown field `") {
        match message.rsplit_once("`, expected ") {
            Some((_, fields)) => format!("unknown field; expected {fields}"),
            None => "unknown field; this endpoint takes no fields".to_owned(),
        }
    } else if message.starts_with("invalid type: ") || message.starts_with("invalid value: ") {
        match expected() {
            Some(expected) => format!("a field has the wrong type or value; expected {expected}"),
            None => OTHER_FIELDS.to_owned(),
        }
    } else {
        OTHER_FIELDS.to_owned()
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
                let missing = crate::guard::RejectionKind::MissingLayer;
                ApiError::new(missing.status(), missing.code(), missing.message())
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

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        #[serde(alias = "token")]
        code: String,
        #[serde(default)]
        remember: bool,
    }

    fn problem(body: Value) -> String {
        fields_error(&serde_json::from_value::<Body>(body).unwrap_err())
    }

    #[test]
    fn missing_and_repeated_fields_are_named() {
        assert_eq!(problem(serde_json::json!({})), "missing field `code`");
        assert_eq!(
            problem(serde_json::json!({"remember": true})),
            "missing field `code`"
        );
        // The alias stands for the same field.
        assert_eq!(
            problem(serde_json::json!({"code": "1", "token": "2"})),
            "duplicate field `code`"
        );
    }

    #[test]
    fn the_body_is_never_quoted() {
        let secret = "493817";
        let cases = [
            serde_json::json!({"code": 493817}),
            serde_json::json!({"code": ["493817"]}),
            serde_json::json!({"code": "x", "493817": 1}),
            serde_json::json!({"code": "x", "493817`, expected `nothing": 1}),
            serde_json::json!({"code": "x", "remember": "493817, expected y"}),
            serde_json::json!("493817"),
            serde_json::json!([493817]),
        ];
        for body in cases {
            let message = problem(body.clone());
            assert!(!message.contains(secret), "{body}: {message}");
        }
        assert_eq!(
            problem(serde_json::json!({"code": 493817})),
            "a field has the wrong type or value; expected a string"
        );
        assert_eq!(
            problem(serde_json::json!({"code": "x", "colour": 1})),
            "unknown field; expected one of `code`, `token`, `remember`"
        );
        assert_eq!(
            problem(serde_json::json!("493817")),
            "expected a JSON object"
        );
    }
}
