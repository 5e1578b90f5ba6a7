//! Push approvals: the login asks and polls, the phone answers.
//!
//! `POST approvals/{id}/answer` is the phone's: it carries no session, and is proven by the
//! device's signature instead, which no page of another site can make. It is mounted outside
//! the cross-site request defence (see [`csrf`](super::csrf)), which guards cookies.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, RawQuery};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::ApiError;
use super::devices::bearer_token;
use super::extract::{ApiJson, Caller};
use super::views::DeviceView;
use crate::clock::Timestamp;
use crate::device::DeviceId;
use crate::push::{ApprovalRequested, ApprovalStatus, Decision, SignedAnswer};
use crate::session::OtpSession;

type ApiResult = Result<Response, ApiError>;

/// The longest long poll, in seconds.
const MAX_WAIT_SECS: u64 = 30;
/// How often a long poll looks at the store.
const POLL_STEP: Duration = Duration::from_millis(250);

/// What the login page shows while the phone decides; `uuid` is the reference API's name of
/// the id.
pub(crate) fn requested_view(requested: &ApprovalRequested) -> Value {
    json!({
        "id": requested.id.as_str(),
        "uuid": requested.id.as_str(),
        "number": requested.number,
        "expires_at": requested.expires_at.as_millis(),
    })
}

/// `POST challenges` for a push device: sends an approval.
pub(crate) async fn request(caller: &Caller, device: &DeviceId) -> ApiResult {
    let requested = caller
        .session
        .two_factor()
        .request_approval(&caller.who, device)
        .await
        .map_err(|e| ApiError::device(&e, caller.now()))?;
    let mut answer = json!({"device_id": device.as_str(), "kind": "push"});
    if let (Some(fields), Value::Object(approval)) =
        (answer.as_object_mut(), requested_view(&requested))
    {
        fields.extend(approval);
    }
    Ok(Json(answer).into_response())
}

/// `GET approvals/{id}[?wait=N]`: the approval's status for the login that asked for it;
/// once approved, it verifies this session (once). With `wait`, answers as soon as the
/// approval is no longer pending, or after `N` seconds (at most 30).
pub(crate) async fn poll(
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let wait = wait_secs(query.as_deref())?;
    let deadline = Instant::now() + Duration::from_secs(wait);
    let done = loop {
        let done = caller
            .session
            .use_approval(&id)
            .await
            .map_err(|e| ApiError::session(&e, caller.now()))?;
        let now = Instant::now();
        if done.status != ApprovalStatus::Pending || now >= deadline {
            break done;
        }
        tokio::time::sleep(POLL_STEP.min(deadline - now)).await;
    };
    let verified = done.verified.is_some() || caller.status.is_verified();
    let mut answer = json!({
        "id": id,
        "status": done.status.as_str(),
        "expires_at": done.expires_at.as_millis(),
        "verified": verified,
    });
    if let Some(confirmed) = &done.confirmed {
        answer["device"] = json!(DeviceView::from(&confirmed.verification.device));
    }
    if let Some(token) = bearer_token(
        &caller,
        done.verified.as_ref().and_then(|v| v.token.as_ref()),
    ) {
        answer["token"] = json!(token);
    }
    Ok(Json(answer).into_response())
}

/// The `wait` of a long poll, in seconds: 0 without one.
fn wait_secs(query: Option<&str>) -> Result<u64, ApiError> {
    let mut wait = 0;
    for pair in query.unwrap_or_default().split('&') {
        if let Some(value) = pair.strip_prefix("wait=") {
            wait = value
                .parse::<u64>()
                .ok()
                .filter(|secs| *secs <= MAX_WAIT_SECS)
                .ok_or_else(|| {
                    ApiError::bad_request("invalid_request", "`wait` is 0 to 30 seconds.")
                })?;
        }
    }
    Ok(wait)
}

/// The body of `POST approvals/{id}/answer`: the decision, the number chosen, the time (ms
/// since the Unix epoch) and the signature (unpadded base64url) over
/// [`answer_message`](crate::push::answer_message).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AnswerBody {
    decision: Decision,
    #[serde(default)]
    number: Option<u8>,
    timestamp: u64,
    signature: String,
}

/// `POST approvals/{id}/answer`: the phone's signed answer.
pub(crate) async fn answer(
    session: Option<axum::Extension<OtpSession>>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AnswerBody>,
) -> ApiResult {
    let axum::Extension(session) = session.ok_or_else(|| {
        let missing = crate::guard::RejectionKind::MissingLayer;
        ApiError::new(missing.status(), missing.code(), missing.message())
    })?;
    let two_factor = session.two_factor();
    let now = two_factor.now();
    let failed = |e| ApiError::device(&e, now);
    let at = Timestamp::from_millis(body.timestamp);
    let signed = SignedAnswer::new(body.decision, body.number, at, &body.signature)
        .map_err(|e| failed(e.into()))?;
    let record = two_factor
        .answer_approval(&id, &signed)
        .await
        .map_err(failed)?;
    Ok((
        StatusCode::OK,
        Json(json!({"id": id, "status": record.status.as_str()})),
    )
        .into_response())
}
