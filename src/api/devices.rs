//! Methods, devices, backup codes and challenges.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::http::header::CACHE_CONTROL;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{ApiJson, Caller, fields_error};
use super::views::DeviceView;
use super::{ApiConfig, ApiError};
use crate::device::{Device, DeviceId, DeviceKind, Enrollment, HotpSettings, TotpSettings};
use crate::engine::Method;
use crate::otp::{Algorithm, Digits, TotpParams};
use crate::session::SessionConfirmation;

type ApiResult = Result<Response, ApiError>;

/// Responses that carry a secret must never be cached.
pub(crate) fn no_store(status: StatusCode, body: Value) -> Response {
    (status, [(CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

pub(crate) async fn methods(
    State(config): State<Arc<ApiConfig>>,
    caller: super::extract::AnyCaller,
) -> Json<Value> {
    let methods: Vec<Value> = caller
        .session
        .two_factor()
        .methods()
        .iter()
        .map(method_view)
        .collect();
    let confirmations: Vec<Value> = config
        .confirmer
        .iter()
        .flat_map(|confirmer| confirmer.methods())
        .map(|method| {
            json!({"key": method.key(), "name": method.name(),
                   "global_config_schema": method.global_config_schema(),
                   "user_config_schema": method.user_config_schema()})
        })
        .collect();
    Json(json!({"methods": methods, "confirmation_methods": confirmations}))
}

/// A method as the API lists it: its key, kind, an English name and the `config` it takes.
fn method_view(method: &Method) -> Value {
    let key = method.key();
    let kind = method.kind();
    match kind {
        DeviceKind::Totp => json!({"key": key, "kind": kind.as_str(), "name": "Authenticator app",
                                   "config_schema": totp_config_schema()}),
        DeviceKind::Hotp => {
            json!({"key": key, "kind": kind.as_str(), "name": "Hardware token (HOTP)"})
        }
        DeviceKind::BackupCodes => {
            json!({"key": key, "kind": kind.as_str(), "name": "Backup codes"})
        }
        DeviceKind::Push => {
            json!({"key": key, "kind": kind.as_str(), "name": "Approve on your phone",
                                   "config_schema": {"type": "object", "required": ["token", "public_key"],
                                                     "properties": {"token": {"type": "string"},
                                                                    "public_key": {"type": "string"}}}})
        }
        DeviceKind::WebAuthn => {
            json!({"key": key, "kind": kind.as_str(), "name": "Security key"})
        }
        _ => json!({"key": key, "kind": kind.as_str(), "name": format!("Code by {key}"),
                    "config_schema": {"type": "object", "required": ["destination"],
                                      "properties": {"destination": {"type": "string"}}}}),
    }
}

fn totp_config_schema() -> Value {
    json!({"type": "object", "properties": {
        "algorithm": {"enum": ["SHA1", "SHA256", "SHA512"]},
        "digits": {"enum": [6, 8]},
        "period": {"type": "integer", "minimum": 1, "maximum": 3600}}})
}

pub(crate) async fn list(caller: Caller) -> ApiResult {
    caller.require_verified().await?;
    let devices = caller
        .session
        .devices()
        .await
        .map_err(|e| ApiError::session(&e, caller.now()))?;
    let views: Vec<DeviceView> = devices.iter().map(DeviceView::from).collect();
    Ok(Json(json!({"devices": views})).into_response())
}

#[derive(Deserialize)]
pub(crate) struct NewDevice {
    method: String,
    name: String,
    #[serde(default)]
    config: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct OtpConfig {
    algorithm: Option<String>,
    digits: Option<u8>,
    period: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutOfBandConfig {
    destination: String,
}

/// A push device's `config`: the app's push token and its Ed25519 public key.
#[cfg(feature = "push")]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PushConfig {
    token: String,
    public_key: String,
}

pub(crate) async fn create(
    State(config): State<Arc<ApiConfig>>,
    caller: Caller,
    RawQuery(query): RawQuery,
    ApiJson(body): ApiJson<NewDevice>,
) -> ApiResult {
    // Checked before anything is added: a bad query must not leave a device behind.
    let qr = wants_qr(query.as_deref())?;
    let two_factor = caller.session.two_factor();
    let now = caller.now();
    let failed = |e| ApiError::device(&e, now);
    let account = config.account_for(&caller.user);
    match body.method.as_str() {
        "totp" => {
            let otp = otp_config(body.config)?;
            let settings = TotpSettings {
                algorithm: otp.0,
                digits: otp.1,
                params: TotpParams {
                    step: otp.2.unwrap_or(30),
                    t0: 0,
                },
            };
            let enrolment = two_factor
                .enroll_totp(&caller.who, &body.name, &account, settings)
                .await
                .map_err(failed)?;
            provisioning(enrolment, qr)
        }
        "hotp" => {
            let otp = otp_config(body.config)?;
            if otp.2.is_some() {
                return Err(ApiError::bad_request(
                    "invalid_settings",
                    "HOTP devices have no period.",
                ));
            }
            let settings = HotpSettings {
                algorithm: otp.0,
                digits: otp.1,
            };
            let enrolment = two_factor
                .enroll_hotp(&caller.who, &body.name, &account, settings)
                .await
                .map_err(failed)?;
            provisioning(enrolment, qr)
        }
        #[cfg(feature = "push")]
        "push" => {
            let push = parse_config::<PushConfig>(body.config)?;
            let device = two_factor
                .enroll_push(&caller.who, &body.name, &push.token, &push.public_key)
                .await
                .map_err(failed)?;
            let requested = two_factor
                .request_approval(&caller.who, &device.id)
                .await
                .map_err(failed)?;
            let body = json!({
                "device": DeviceView::from(&device),
                "approval": super::approvals::requested_view(&requested),
            });
            Ok((StatusCode::CREATED, Json(body)).into_response())
        }
        "backup_codes" => Err(ApiError::bad_request(
            "unknown_method",
            "Backup codes are created with POST backup-codes.",
        )),
        "webauthn" => Err(ApiError::bad_request(
            "unknown_method",
            "Security keys are registered with POST webauthn/register/begin.",
        )),
        channel if two_factor.channels().any(|c| c == channel) => {
            let destination = parse_config::<OutOfBandConfig>(body.config)?.destination;
            let device = two_factor
                .add_out_of_band_device(&caller.who, &body.name, channel, &destination)
                .await
                .map_err(failed)?;
            let sent = two_factor
                .send_challenge(&caller.who, &device.id)
                .await
                .map_err(failed)?;
            let body = json!({
                "device": DeviceView::from(&device),
                "challenge": {"destination": sent.masked_destination,
                              "expires_at": sent.expires_at.as_millis(),
                              "resend_after": sent.resend_after.as_millis()},
            });
            Ok((StatusCode::CREATED, Json(body)).into_response())
        }
        _ => Err(ApiError::bad_request(
            "unknown_method",
            "No such method; see GET methods.",
        )),
    }
}

fn parse_config<T: serde::de::DeserializeOwned>(config: Option<Value>) -> Result<T, ApiError> {
    let invalid = |message: String| ApiError::bad_request("invalid_settings", message);
    let config = config
        .filter(|config| !config.is_null())
        .ok_or_else(|| invalid("This method needs a `config` object.".to_owned()))?;
    serde_json::from_value(config)
        .map_err(|error| invalid(format!("config: {}", fields_error(&error))))
}

/// Algorithm, digits (6 or 8) and period of an OTP device's `config`.
fn otp_config(config: Option<Value>) -> Result<(Algorithm, Digits, Option<u64>), ApiError> {
    let config: OtpConfig = match config {
        None | Some(Value::Null) => OtpConfig::default(),
        some => parse_config(some)?,
    };
    let algorithm = match config.algorithm {
        None => Algorithm::Sha1,
        Some(name) => name.parse().map_err(|_| {
            ApiError::bad_request("invalid_settings", "algorithm is SHA1, SHA256 or SHA512")
        })?,
    };
    let digits = match config.digits {
        None | Some(6) => Digits::SIX,
        Some(8) => Digits::EIGHT,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_settings",
                "digits is 6 or 8",
            ));
        }
    };
    Ok((algorithm, digits, config.period))
}

/// Whether the query asks for the QR code (`qr=svg`). Other parameters are ignored.
fn wants_qr(query: Option<&str>) -> Result<bool, ApiError> {
    let mut wants = false;
    for pair in query.unwrap_or_default().split('&') {
        match pair.split_once('=').unwrap_or((pair, "")) {
            ("qr", "svg") => wants = true,
            ("qr", _) => {
                return Err(ApiError::bad_request(
                    "invalid_request",
                    "`qr` takes one value: `svg`.",
                ));
            }
            _ => {}
        }
    }
    Ok(wants)
}

/// The 201 answer of a new OTP device: the secret is shown once, never cached. The QR code
/// (some 23 KB of SVG) only when asked for: most clients draw it from `otpauth_uri`.
fn provisioning(enrolment: Enrollment, qr: bool) -> ApiResult {
    let mut provisioning = json!({
        "secret": enrolment.secret.to_base32().as_str(),
        "otpauth_uri": enrolment.uri.as_str(),
    });
    if qr {
        let svg = enrolment.uri.to_svg().map_err(|_| {
            ApiError::bad_request(
                "invalid_provisioning",
                "The provisioning URI is too long for a QR code.",
            )
        })?;
        provisioning["qr_svg"] = json!(svg.as_str());
    }
    let body = json!({
        "device": DeviceView::from(&enrolment.device),
        "provisioning": provisioning,
    });
    Ok(no_store(StatusCode::CREATED, body))
}

/// A device id from the path; a malformed one is as unknown as a missing one.
fn device_id(id: &str) -> Result<DeviceId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::not_found("device_not_found"))
}

/// A body holding a code. `token` is the older name of `code`.
#[derive(Deserialize)]
pub(crate) struct Code {
    #[serde(alias = "token")]
    code: String,
}

pub(crate) async fn confirm(
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Code>,
) -> ApiResult {
    let id = device_id(&id)?;
    let done = caller
        .session
        .confirm_device(&id, &body.code)
        .await
        .map_err(|e| ApiError::session(&e, caller.now()))?;
    confirmed(&caller, &done)
}

/// The answer to a device confirmation that succeeded.
pub(crate) fn confirmed(caller: &Caller, done: &SessionConfirmation) -> ApiResult {
    // Only a first device verifies the session; a further one leaves it as it was.
    let verified = done.verified_session || caller.status.is_verified();
    let device = &done.confirmed.verification.device;
    let mut answer = json!({"device": DeviceView::from(device), "verified": verified});
    if let Some(token) = bearer_token(caller, done.token.as_ref()) {
        answer["token"] = json!(token);
    }
    Ok(Json(answer).into_response())
}

/// The rotated session token, for clients that sent theirs in a bearer header.
pub(crate) fn bearer_token(
    caller: &Caller,
    token: Option<&crate::session::SessionToken>,
) -> Option<String> {
    (caller.session.transport() == Some(crate::session::Transport::Bearer))
        .then(|| token.map(|t| t.expose().to_owned()))
        .flatten()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeviceChanges {
    name: Option<String>,
    default: Option<bool>,
}

pub(crate) async fn update(
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DeviceChanges>,
) -> ApiResult {
    let id = device_id(&id)?;
    let two_factor = caller.session.two_factor();
    let failed = |e| ApiError::device(&e, caller.now());
    let mut device: Option<Device> = None;
    if let Some(name) = &body.name {
        device = Some(
            two_factor
                .rename_device(&caller.who, &id, name)
                .await
                .map_err(failed)?,
        );
    }
    match body.default {
        Some(true) => {
            device = Some(
                two_factor
                    .set_default_device(&caller.who, &id)
                    .await
                    .map_err(failed)?,
            )
        }
        Some(false) => {
            return Err(ApiError::bad_request(
                "invalid_request",
                "Make another device the default instead.",
            ));
        }
        None => {}
    }
    let device = match device {
        Some(device) => device,
        None => two_factor
            .device(&caller.user, &id)
            .await
            .map_err(failed)?
            .ok_or_else(|| ApiError::not_found("device_not_found"))?,
    };
    Ok(Json(json!({"device": DeviceView::from(&device)})).into_response())
}

pub(crate) async fn delete(caller: Caller, Path(id): Path<String>) -> ApiResult {
    let id = device_id(&id)?;
    let existed = caller
        .session
        .two_factor()
        .delete_device(&caller.who, &id)
        .await
        .map_err(|e| ApiError::device(&e, caller.now()))?;
    if existed {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found("device_not_found"))
    }
}

/// The body of `POST disable`: a code of one of the user's confirmed devices.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DisableRequest {
    #[serde(default, alias = "token")]
    code: Option<String>,
}

/// Removes every device, once a code from one of them proves that the second factor, not
/// only the password, asks for it.
pub(crate) async fn disable(caller: Caller, ApiJson(body): ApiJson<DisableRequest>) -> ApiResult {
    let done = caller
        .session
        .disable_second_factor(body.code.as_deref())
        .await
        .map_err(|e| ApiError::session(&e, caller.now()))?
        .ok_or_else(|| {
            ApiError::bad_request(
                "code_required",
                "Send a `code` from one of your devices to disable the second factor.",
            )
        })?;
    let mut answer = json!({"removed": done.removed});
    if let Some(token) = bearer_token(&caller, done.token.as_ref()) {
        answer["token"] = json!(token);
    }
    Ok(Json(answer).into_response())
}

pub(crate) async fn new_backup_codes(caller: Caller) -> ApiResult {
    let set = caller
        .session
        .two_factor()
        .generate_backup_codes(&caller.who)
        .await
        .map_err(|e| ApiError::device(&e, caller.now()))?;
    let codes: Vec<&str> = set.codes.iter().collect();
    Ok(no_store(
        StatusCode::CREATED,
        json!({"device_id": set.device.id.as_str(), "codes": codes, "remaining": codes.len()}),
    ))
}

pub(crate) async fn backup_codes_left(caller: Caller) -> ApiResult {
    caller.require_verified().await?;
    let remaining = caller
        .session
        .two_factor()
        .backup_codes_remaining(&caller.user)
        .await
        .map_err(|e| ApiError::device(&e, caller.now()))?;
    Ok(Json(json!({"remaining": remaining})).into_response())
}

#[derive(Deserialize)]
pub(crate) struct ChallengeRequest {
    device_id: String,
}

pub(crate) async fn send_challenge(
    caller: Caller,
    ApiJson(body): ApiJson<ChallengeRequest>,
) -> ApiResult {
    let id = device_id(&body.device_id)?;
    #[cfg(feature = "push")]
    if is_push_device(&caller, &id).await? {
        return super::approvals::request(&caller, &id).await;
    }
    let sent = caller
        .session
        .two_factor()
        .send_challenge(&caller.who, &id)
        .await
        .map_err(|e| ApiError::device(&e, caller.now()))?;
    Ok(Json(json!({
        "device_id": sent.device_id.as_str(),
        "destination": sent.masked_destination,
        "expires_at": sent.expires_at.as_millis(),
        "resend_after": sent.resend_after.as_millis(),
    }))
    .into_response())
}

/// Whether `id` is one of the caller's push devices.
#[cfg(feature = "push")]
async fn is_push_device(caller: &Caller, id: &DeviceId) -> Result<bool, ApiError> {
    let device = caller
        .session
        .two_factor()
        .device(&caller.user, id)
        .await
        .map_err(|e| ApiError::device(&e, caller.now()))?;
    Ok(device.is_some_and(|d| d.kind() == crate::device::DeviceKind::Push))
}
