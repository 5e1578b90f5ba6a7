//! [`ApprovalError`]: why an approval could not be asked for, read or answered.

use std::time::Duration;

use crate::clock::Timestamp;

/// Why an approval operation failed. Carried by
/// [`Error::Approval`](crate::device::Error::Approval); [`ApprovalError::kind`] is the stable
/// code the API answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApprovalError {
    /// No such approval, or not one of this login (the same answer for both).
    #[error("no such approval")]
    NotFound,
    /// The approval was not answered in time.
    #[error("the approval has expired")]
    Expired,
    /// The approval was answered already; an answer counts once.
    #[error("the approval was answered already")]
    AlreadyAnswered,
    /// The phone chose a number other than the one shown at the login: the approval is
    /// denied.
    #[error("the number chosen does not match; the approval is denied")]
    WrongNumber,
    /// The answer's signature is not the device's.
    #[error("the answer's signature is not valid")]
    BadSignature,
    /// The answer's time is too far from the server's, or before the approval was asked for.
    #[error("the answer's time is out of range")]
    StaleAnswer,
    /// The answer or the device's key is not in the expected form.
    #[error("malformed answer: {0}")]
    Malformed(&'static str),
    /// No push sender is configured.
    #[error("push approvals are not configured")]
    Unavailable,
    /// The user has an approval waiting for its answer already.
    #[error("an approval is waiting for an answer; try again in {} s", retry_after.as_secs().max(1))]
    Busy {
        /// When that approval expires.
        until: Timestamp,
        /// How long that is from now.
        retry_after: Duration,
    },
    /// The user answered a recent push with "this wasn't me": pushes are paused.
    #[error("pushes are paused after a reported sign-in; try again in {} s", retry_after.as_secs().max(1))]
    Blocked {
        /// When pushes may be sent again.
        until: Timestamp,
        /// How long that is from now.
        retry_after: Duration,
    },
    /// Too many approvals were asked for, or too many answers given, recently.
    #[error("too many approvals; try again in {} s", retry_after.as_secs().max(1))]
    Limited {
        /// When another may be asked for.
        until: Timestamp,
        /// How long that is from now.
        retry_after: Duration,
    },
}

impl ApprovalError {
    /// A stable, machine-readable code for the error.
    pub fn kind(&self) -> &'static str {
        match self {
            ApprovalError::NotFound => "approval_not_found",
            ApprovalError::Expired => "approval_expired",
            ApprovalError::AlreadyAnswered => "approval_answered",
            ApprovalError::WrongNumber => "wrong_number",
            ApprovalError::BadSignature => "bad_signature",
            ApprovalError::StaleAnswer => "stale_answer",
            ApprovalError::Malformed(_) => "malformed_answer",
            ApprovalError::Unavailable => "push_unavailable",
            ApprovalError::Busy { .. } => "approval_pending",
            ApprovalError::Blocked { .. } => "push_blocked",
            ApprovalError::Limited { .. } => "push_limited",
        }
    }

    /// When to try again, for the refusals that end by themselves.
    pub fn until(&self) -> Option<Timestamp> {
        match self {
            ApprovalError::Busy { until, .. }
            | ApprovalError::Blocked { until, .. }
            | ApprovalError::Limited { until, .. } => Some(*until),
            _ => None,
        }
    }
}
