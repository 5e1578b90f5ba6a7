//! [`PushSender`]: how an approval reaches the phone.

use std::fmt;

use async_trait::async_trait;
use serde::Serialize;

use super::{ApprovalContext, ApprovalId};
use crate::clock::Timestamp;
use crate::delivery::SendError;
use crate::device::{DeviceId, UserId};

/// Delivers approvals to phones, through a push provider or a gateway in front of one.
///
/// Implementations bound their own running time, as a [`Sender`](crate::delivery::Sender)
/// does. `WebhookSender` (feature `webhook`) is one: it `POST`s [`PushMessage::body`] as JSON.
///
/// ```
/// use tower_otp::delivery::SendError;
/// use tower_otp::push::{PushMessage, PushSender};
///
/// #[derive(Debug)]
/// struct Provider;
///
/// #[async_trait::async_trait]
/// impl PushSender for Provider {
///     async fn push(&self, message: &PushMessage) -> Result<(), SendError> {
///         // provider.send(message.device_token(), message.body()).await
///         let _ = (message.device_token(), message.body());
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait PushSender: Send + Sync + fmt::Debug + 'static {
    /// Delivers `message`. An error means the phone will not show the approval.
    async fn push(&self, message: &PushMessage) -> Result<(), SendError>;
}

/// An approval to show on a phone: where it goes, the three numbers to choose from (one of
/// them the login's), and what to say about the login. It holds no secret, but nothing in it
/// says which number is the right one.
#[derive(Clone)]
pub struct PushMessage {
    user: UserId,
    device: DeviceId,
    device_token: String,
    approval: ApprovalId,
    choices: [u8; 3],
    requested_at: Timestamp,
    expires_at: Timestamp,
    context: ApprovalContext,
}

/// The JSON a push carries to the phone.
#[derive(Serialize)]
struct Body<'a> {
    to: &'a str,
    kind: &'static str,
    approval_id: &'a str,
    device_id: &'a str,
    choices: [u8; 3],
    requested_at: u64,
    expires_at: u64,
    context: &'a ApprovalContext,
}

impl PushMessage {
    #[cfg_attr(not(feature = "push"), allow(dead_code))]
    pub(crate) fn new(
        user: UserId,
        device: DeviceId,
        device_token: String,
        approval: ApprovalId,
        choices: [u8; 3],
        (requested_at, expires_at): (Timestamp, Timestamp),
        context: ApprovalContext,
    ) -> Self {
        PushMessage {
            user,
            device,
            device_token,
            approval,
            choices,
            requested_at,
            expires_at,
            context,
        }
    }

    /// The user asked.
    pub fn user(&self) -> &UserId {
        &self.user
    }

    /// The push device asked.
    pub fn device(&self) -> &DeviceId {
        &self.device
    }

    /// The device's token with its push provider.
    pub fn device_token(&self) -> &str {
        &self.device_token
    }

    /// The approval the phone answers.
    pub fn approval(&self) -> &ApprovalId {
        &self.approval
    }

    /// The three numbers the phone offers; the login shows one of them.
    pub fn choices(&self) -> [u8; 3] {
        self.choices
    }

    /// When the login asked.
    pub fn requested_at(&self) -> Timestamp {
        self.requested_at
    }

    /// When the approval expires.
    pub fn expires_at(&self) -> Timestamp {
        self.expires_at
    }

    /// What to show about the login.
    pub fn context(&self) -> &ApprovalContext {
        &self.context
    }

    /// The JSON the phone receives: `{"to", "kind": "approval", "approval_id", "device_id",
    /// "choices": [n, n, n], "requested_at" and "expires_at" (ms), "context": {"client_addr"?, "user_agent"?,
    /// "application"?}}`.
    pub fn body(&self) -> serde_json::Value {
        serde_json::to_value(Body {
            to: &self.device_token,
            kind: "approval",
            approval_id: self.approval.as_str(),
            device_id: self.device.as_str(),
            choices: self.choices,
            requested_at: self.requested_at.as_millis(),
            expires_at: self.expires_at.as_millis(),
            context: &self.context,
        })
        .unwrap_or_default()
    }
}

impl fmt::Debug for PushMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushMessage")
            .field("user", &self.user)
            .field("device", &self.device)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "webhook")]
#[async_trait]
impl PushSender for crate::delivery::WebhookSender {
    /// `POST`s [`PushMessage::body`] to the webhook's URL, with its headers and timeout.
    async fn push(&self, message: &PushMessage) -> Result<(), SendError> {
        self.post_json(&message.body()).await
    }
}
