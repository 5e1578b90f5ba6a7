//! The error type of the confirmation API.

use crate::store::StoreError;

use super::ConfirmationStatus;

/// Why a confirmation operation failed.
///
/// [`ConfirmError::kind`] gives a stable, machine-readable code for each case. No variant
/// carries a code, an id or a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfirmError {
    /// No method is registered under that key.
    #[error("unknown confirmation method")]
    UnknownMethod,
    /// The user has no such confirmation (or it has been forgotten).
    #[error("no such confirmation")]
    NotFound,
    /// The confirmation is not in a state that allows the operation: already confirmed,
    /// failed, expired or used.
    #[error("the confirmation is {status}")]
    NotPending {
        /// Its current status.
        status: ConfirmationStatus,
    },
    /// The answer did not confirm it.
    #[error("the confirmation was not accepted; {attempts_left} attempts left")]
    Rejected {
        /// How many more answers will be tried before it fails.
        attempts_left: u32,
    },
    /// The user has as many open confirmations (in process or confirmed, and unexpired) as
    /// the policy allows; one must be used, fail or expire first.
    #[error("too many open confirmations")]
    TooManyOpen,
    /// The confirmation belongs to another method than the one it is used for.
    #[error("the confirmation is for another method")]
    WrongMethod,
    /// The request or the answer lacks something the method needs, or is too large.
    #[error("invalid confirmation data: {0}")]
    InvalidData(&'static str),
    /// A device operation the method performs failed (a wrong code is [`Self::Rejected`]
    /// instead; this is throttling, a lockout, a failed delivery…).
    #[error(transparent)]
    Device(#[from] crate::device::Error),
    /// A method of the application's failed.
    #[error("the confirmation method failed: {0}")]
    Method(String),
    /// The store failed; nothing was confirmed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ConfirmError {
    /// A stable, machine-readable code for the error.
    pub fn kind(&self) -> &'static str {
        match self {
            ConfirmError::UnknownMethod => "unknown_method",
            ConfirmError::NotFound => "confirmation_not_found",
            ConfirmError::NotPending { status } => match status {
                ConfirmationStatus::InProcess => "confirmation_not_confirmed",
                ConfirmationStatus::Confirmed => "confirmation_already_confirmed",
                ConfirmationStatus::Failed => "confirmation_failed",
                ConfirmationStatus::Expired => "confirmation_expired",
                ConfirmationStatus::Used => "confirmation_used",
            },
            ConfirmError::Rejected { .. } => "confirmation_rejected",
            ConfirmError::TooManyOpen => "too_many_confirmations",
            ConfirmError::WrongMethod => "wrong_method",
            ConfirmError::InvalidData(_) => "invalid_data",
            ConfirmError::Device(error) => error.kind(),
            ConfirmError::Method(_) => "method_failed",
            ConfirmError::Store(error) => error.kind(),
        }
    }
}
