//! Verification, status, logout, remembered browsers and confirmations.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::devices::bearer_token;
use super::extract::{AnyCaller, ApiJson, Caller};
use super::views::DeviceChoice;
use super::{ApiConfig, ApiError};
use crate::confirm::{Confirmation, ConfirmationId, Confirmer};
use crate::device::{DeviceId, UserId};
use crate::remember::BrowserId;
use crate::session::SessionVerification;

type ApiResult = Result<Response, ApiError>;

/// The body of `POST verify`. `token` is the older name of `code`.
#[derive(Deserialize)]
pub(crate) struct VerifyRequest {
    device_id: Option<String>,
    #[serde(alias = "token")]
    code: String,
    #[serde(default)]
    remember: bool,
}

pub(crate) async fn verify(caller: Caller, ApiJson(body): ApiJson<VerifyRequest>) -> ApiResult {
    let failed = |e| ApiError::session(&e, caller.now());
    let done = match &body.device_id {
        Some(id) => {
            let id: DeviceId = id
                .parse()
                .map_err(|_| ApiError::not_found("device_not_found"))?;
            caller.session.verify(&id, &body.code).await
        }
        None => caller.session.verify_any(&body.code).await,
    }
    .map_err(failed)?;
    verified(&caller, &done, body.remember).await
}

/// The answer to a verification that succeeded, remembering the browser if asked.
pub(crate) async fn verified(
    caller: &Caller,
    done: &SessionVerification,
    remember: bool,
) -> ApiResult {
    // Remembering needs a cookie client and remember-device cookies on the layer; otherwise
    // the answer just says it did not happen.
    let remembered = remember && caller.session.remember_device().await.is_ok();
    let mut answer = json!({
        "verified": true,
        "device_id": done.verification.device.id.as_str(),
        "remembered": remembered,
    });
    if let Some(remaining) = done.verification.backup_codes_remaining {
        answer["backup_codes_remaining"] = json!(remaining);
    }
    if let Some(token) = bearer_token(caller, done.token.as_ref()) {
        answer["token"] = json!(token);
    }
    Ok(Json(answer).into_response())
}

/// Readable before the second factor: a login page learns from it whether to ask for a code
/// and which devices to offer.
pub(crate) async fn status(caller: AnyCaller) -> ApiResult {
    let status = &caller.status;
    let devices = match &status.user {
        Some(user) => confirmed_devices(&caller, user).await?,
        None => Vec::new(),
    };
    let verified = status.verified.as_ref();
    Ok(Json(json!({
        "authenticated": status.user.is_some(),
        "user": status.user.as_ref().map(|u| u.as_str()),
        "verified": verified.is_some(),
        "device": verified.map(|v| json!({"id": v.device_id.as_str(), "kind": v.device_kind.as_str()})),
        "verified_at": verified.map(|v| v.at.as_millis()),
        "remembered": verified.is_some_and(|v| v.remembered),
        // Configured means having a confirmed device; the list is at hand, so no second read.
        "configured": !devices.is_empty(),
        "devices": devices,
    }))
    .into_response())
}

async fn confirmed_devices(
    caller: &AnyCaller,
    user: &UserId,
) -> Result<Vec<DeviceChoice>, ApiError> {
    let two_factor = caller.session.two_factor();
    let devices = two_factor
        .devices(user)
        .await
        .map_err(|e| ApiError::device(&e, two_factor.now()))?;
    Ok(devices
        .iter()
        .filter(|device| device.confirmed)
        .map(DeviceChoice::from)
        .collect())
}

pub(crate) async fn logout(caller: AnyCaller) -> ApiResult {
    let now = caller.session.two_factor().now();
    let ended = caller
        .session
        .logout()
        .await
        .map_err(|e| ApiError::session(&e, now))?;
    Ok(Json(json!({"logged_out": ended})).into_response())
}

pub(crate) async fn logout_all(caller: Caller) -> ApiResult {
    let sessions = caller
        .session
        .logout_all()
        .await
        .map_err(|e| ApiError::session(&e, caller.now()))?;
    Ok(Json(json!({"sessions": sessions})).into_response())
}

pub(crate) async fn remembered(caller: Caller) -> ApiResult {
    caller.require_verified().await?;
    let browsers = caller
        .session
        .two_factor()
        .remembered_browsers(&caller.user)
        .await
        .map_err(|e| ApiError::device(&e, caller.now()))?;
    let browsers: Vec<Value> = browsers
        .iter()
        .map(|b| {
            json!({"id": b.id.as_str(), "device_id": b.device_id.as_str(),
                   "created_at": b.created_at.as_millis(),
                   "last_used_at": b.last_used_at.map(|t| t.as_millis()),
                   "expires_at": b.expires_at.as_millis(), "user_agent": b.user_agent})
        })
        .collect();
    Ok(Json(json!({"remembered": browsers})).into_response())
}

pub(crate) async fn forget(caller: Caller, Path(id): Path<String>) -> ApiResult {
    caller.require_verified().await?;
    let id: BrowserId = id
        .parse()
        .map_err(|_| ApiError::not_found("remembered_not_found"))?;
    let existed = caller
        .session
        .two_factor()
        .forget_browser(&caller.user, &id)
        .await
        .map_err(|e| ApiError::device(&e, caller.now()))?;
    if existed {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found("remembered_not_found"))
    }
}

pub(crate) async fn forget_all(caller: Caller) -> ApiResult {
    caller.require_verified().await?;
    let forgotten = caller
        .session
        .two_factor()
        .forget_all_browsers(&caller.user)
        .await
        .map_err(|e| ApiError::device(&e, caller.now()))?;
    Ok(Json(json!({"forgotten": forgotten})).into_response())
}

// ----- confirmations -----------------------------------------------------------------------

fn confirmer(config: &ApiConfig) -> Result<&Confirmer, ApiError> {
    config
        .confirmer
        .as_ref()
        .ok_or_else(|| ApiError::not_found("unknown_method"))
}

fn confirmation_view(confirmation: &Confirmation) -> Value {
    json!({
        "id": confirmation.id.as_str(),
        "method": confirmation.method,
        "status": confirmation.status.as_str(),
        "state": confirmation.state,
        "expires_at": confirmation.expires_at.as_millis(),
        "attempts_left": confirmation.attempts_left,
    })
}

fn confirmation_id(id: &str) -> Result<ConfirmationId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::not_found("confirmation_not_found"))
}

#[derive(Deserialize)]
pub(crate) struct ConfirmationRequest {
    method: String,
    #[serde(default)]
    state: Option<Value>,
}

pub(crate) async fn request_confirmation(
    State(config): State<Arc<ApiConfig>>,
    caller: Caller,
    ApiJson(body): ApiJson<ConfirmationRequest>,
) -> ApiResult {
    let state = body.state.unwrap_or_else(|| json!({}));
    let confirmation = confirmer(&config)?
        .request(&caller.who, &body.method, state)
        .await
        .map_err(|e| ApiError::confirm(&e, caller.now()))?;
    Ok((StatusCode::CREATED, Json(confirmation_view(&confirmation))).into_response())
}

pub(crate) async fn check_confirmation(
    State(config): State<Arc<ApiConfig>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult {
    let confirmation = confirmer(&config)?
        .check(&caller.user, &confirmation_id(&id)?)
        .await
        .map_err(|e| ApiError::confirm(&e, caller.now()))?;
    Ok(Json(confirmation_view(&confirmation)).into_response())
}

#[derive(Deserialize)]
pub(crate) struct ConfirmationAnswer {
    #[serde(default)]
    data: Option<Value>,
}

pub(crate) async fn answer_confirmation(
    State(config): State<Arc<ApiConfig>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ConfirmationAnswer>,
) -> ApiResult {
    let data = body.data.unwrap_or_else(|| json!({}));
    let confirmation = confirmer(&config)?
        .confirm(&caller.who, &confirmation_id(&id)?, &data)
        .await
        .map_err(|e| ApiError::confirm(&e, caller.now()))?;
    Ok(Json(confirmation_view(&confirmation)).into_response())
}
