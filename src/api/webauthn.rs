//! Security keys (WebAuthn, feature `webauthn`): the two round trips of registration and of
//! verification. Each *begin* answers the options to pass to the browser's
//! `navigator.credentials.create()` or `get()`, `{"publicKey": {...}}`, binary fields in
//! base64url; each *finish* takes the browser's answer, the `PublicKeyCredential` as JSON
//! (binary fields in base64url), as `credential`.

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::ApiError;
use super::account::verified;
use super::devices::{confirmed, no_store};
use super::extract::{ApiJson, Caller};
use crate::webauthn::{PublicKeyCredential, RegisterPublicKeyCredential};

type ApiResult = Result<axum::response::Response, ApiError>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewKey {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Registration {
    credential: RegisterPublicKeyCredential,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Assertion {
    credential: PublicKeyCredential,
    #[serde(default)]
    remember: bool,
}

/// `POST webauthn/register/begin` `{name}`: a factor change.
pub(crate) async fn begin_registration(
    caller: Caller,
    ApiJson(body): ApiJson<NewKey>,
) -> ApiResult {
    let options = caller
        .session
        .two_factor()
        .begin_key_registration(&caller.who, &body.name)
        .await
        .map_err(|e| ApiError::device(&e, caller.now()))?;
    Ok(no_store(StatusCode::OK, json!(options)))
}

/// `POST webauthn/register/finish` `{credential}`: the new key, as a device confirmation.
pub(crate) async fn finish_registration(
    caller: Caller,
    ApiJson(body): ApiJson<Registration>,
) -> ApiResult {
    let done = caller
        .session
        .finish_key_registration(&body.credential)
        .await
        .map_err(|e| ApiError::session(&e, caller.now()))?;
    confirmed(&caller, &done)
}

/// `POST webauthn/verify/begin`: the options to verify with one of the user's keys.
pub(crate) async fn begin_verification(caller: Caller) -> ApiResult {
    let options = caller
        .session
        .two_factor()
        .begin_key_verification(&caller.who)
        .await
        .map_err(|e| ApiError::device(&e, caller.now()))?;
    Ok(no_store(StatusCode::OK, json!(options)))
}

/// `POST webauthn/verify/finish` `{credential, remember?}`: verifies the session, as `verify`
/// does with a code.
pub(crate) async fn finish_verification(
    caller: Caller,
    ApiJson(body): ApiJson<Assertion>,
) -> ApiResult {
    let done = caller
        .session
        .finish_key_verification(&body.credential)
        .await
        .map_err(|e| ApiError::session(&e, caller.now()))?;
    verified(&caller, &done, body.remember).await
}
