//! [`Posted`]: a form the pages sent, from a signed-in user, with the session's CSRF token.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::page::Ui;
use super::visitor::{Problem, Visitor};
use crate::otp::{Digits, Token, TokenError};

/// Largest form body read, in bytes: the pages' forms are a few fields.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// A form `POST` that passed the checks every form must: a signed-in user (else to the login
/// page), the session's CSRF token in the `csrf` field (else 403), and fields that parse as
/// `T` (else 400). No handler sees a form that failed them.
#[derive(Debug)]
pub(crate) struct Posted<T> {
    pub(crate) visitor: Visitor,
    pub(crate) form: T,
}

#[derive(Deserialize)]
struct CsrfField {
    csrf: Option<String>,
}

impl<T: DeserializeOwned> FromRequest<Arc<Ui>> for Posted<T> {
    type Rejection = Response;

    async fn from_request(request: Request, ui: &Arc<Ui>) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let visitor = Visitor::from_request_parts(&mut parts, ui).await?;
        if visitor.user().is_none() {
            // A form cannot be sent again after the login: back to the profile.
            return Err(ui.login_redirect(&visitor.url("/")));
        }
        let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| ui.error(&visitor, StatusCode::PAYLOAD_TOO_LARGE, "bad_form"))?;
        let token = serde_urlencoded::from_bytes::<CsrfField>(&bytes)
            .ok()
            .and_then(|field| field.csrf);
        if !token.is_some_and(|token| visitor.csrf_is_valid(&token)) {
            tracing::debug!("a page form without the session's CSRF token was refused");
            return Err(ui.error(&visitor, StatusCode::FORBIDDEN, "csrf"));
        }
        let form = serde_urlencoded::from_bytes::<T>(&bytes)
            .map_err(|_| ui.error(&visitor, StatusCode::BAD_REQUEST, "bad_form"))?;
        Ok(Posted { visitor, form })
    }
}

/// A form whose only field, besides the token, is where to go next.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct NextForm {
    #[serde(default)]
    pub(crate) next: Option<String>,
}

/// A query that says where to go next.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct NextQuery {
    #[serde(default)]
    pub(crate) next: Option<String>,
}

/// What is wrong with a typed code before any device sees it, for the message under the
/// field: nothing typed, or (for codes other than backup codes, which have letters) anything
/// but digits. Caught here, a typo costs no verification attempt; the length and the code
/// itself are the engine's to judge.
pub(crate) fn code_problem(code: &str, backup: bool) -> Option<Problem> {
    if code.trim().is_empty() {
        return Some(Problem::new("empty_code"));
    }
    if backup {
        return None;
    }
    match Token::parse(code, Digits::SIX) {
        Err(TokenError::NotDigits | TokenError::TooLong) => Some(Problem::new("not_digits")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_in_a_code_are_caught_before_the_engine() {
        assert_eq!(code_problem("12a456", false).unwrap().code, "not_digits");
        assert_eq!(code_problem("  ", false).unwrap().code, "empty_code");
        assert!(code_problem("123 456", false).is_none());
        // The length is the device's business: eight digits may be right.
        assert!(code_problem("12345678", false).is_none());
        assert!(code_problem("ABCDE-FGHJK", true).is_none());
    }
}
