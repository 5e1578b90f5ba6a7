//! Push approvals: "Is this you signing in?" on the user's phone, with number matching and
//! limits against push fatigue.
//!
//! A push device is a phone app instance: a token for its push provider and an Ed25519 public
//! key the app signs its answers with (feature `push`). The flow, through the
//! [engine](crate::TwoFactor) or the [JSON API](crate::api):
//!
//! 1. **Enrolment** ([`TwoFactor::enroll_push`](crate::TwoFactor::enroll_push)): a factor
//!    change, under the factor rule. The device stays unconfirmed until it answers a first
//!    approval with its key.
//! 2. **Request** ([`TwoFactor::request_approval`](crate::TwoFactor::request_approval)): an
//!    approval for the caller's login, bound to its session as an out-of-band code is. It
//!    lives two minutes by default and carries the login's context (time, client address,
//!    user agent, application) and a **number to match**: the login shows two digits, the
//!    phone offers three, and only the right one approves; a wrong one ends the approval as
//!    denied. A [`PushSender`] delivers it.
//! 3. **Answer** ([`TwoFactor::answer_approval`](crate::TwoFactor::answer_approval),
//!    `POST approvals/{id}/answer`): signed by the device key over [`answer_message`], which
//!    is domain-separated and versioned. The store accepts one answer, atomically, on every
//!    backend; a second one, a replayed one, a wrong number, a bad signature, a time out of
//!    range are refused with the stable codes of [`ApprovalError`].
//! 4. **Use** ([`OtpSession::use_approval`](crate::session::OtpSession::use_approval),
//!    `GET approvals/{id}`): the login polls; an approved approval verifies exactly the
//!    session that asked for it, exactly once (or, for an enrolment, confirms the device under
//!    the factor rule).
//!
//! Against push fatigue ([`PushPolicy`]): one live approval per user, 3 requests per 10
//! minutes, and a denial marked "this wasn't me" ([`Decision::Report`]) pauses pushes for an
//! hour and emits `approval_reported`. Events: `approval_requested`, `approval_approved`,
//! `approval_denied`, `approval_expired`, `approval_reported`, none with the number.

#[cfg(feature = "push")]
mod answer;
#[cfg(feature = "push")]
mod engine;
mod error;
mod policy;
mod record;
mod sender;

#[cfg(feature = "push")]
use std::sync::Arc;

#[cfg(feature = "push")]
#[cfg_attr(docsrs, doc(cfg(feature = "push")))]
pub use answer::{Decision, PushKey, SignedAnswer, answer_message};
#[cfg(feature = "push")]
#[cfg_attr(docsrs, doc(cfg(feature = "push")))]
pub use engine::{ApprovalRequested, ApprovalUse, SessionApproval};
pub use error::ApprovalError;
pub use policy::PushPolicy;
pub use record::{
    ApprovalContext, ApprovalCreate, ApprovalId, ApprovalKey, ApprovalRecord, ApprovalStatus,
};
pub use sender::{PushMessage, PushSender};

/// What a [`TwoFactor`](crate::TwoFactor) keeps for pushes.
#[cfg(feature = "push")]
#[derive(Clone, Debug, Default)]
pub(crate) struct PushSettings {
    pub(crate) policy: PushPolicy,
    pub(crate) sender: Option<Arc<dyn PushSender>>,
}
