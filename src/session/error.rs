//! Errors of session operations.

use crate::store::StoreError;

/// A session operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// No user has passed the first factor in this session.
    #[error("not authenticated")]
    NotAuthenticated,
    /// The session ended while the request ran (logged out elsewhere, or expired).
    #[error("the session has ended")]
    SessionEnded,
    /// The session has not passed the second factor (by a code, for remembering a browser).
    #[error("the session is not verified")]
    NotVerified,
    /// The session passed only the first factor and has tried as many codes as it may; it
    /// has ended (log in again).
    #[error("too many codes tried in this session; log in again")]
    TooManyAttempts,
    /// Remember-device cookies are not enabled, or the client does not take cookies.
    #[error("remembering this browser is not available")]
    RememberUnavailable,
    /// Logins are the identity source's business, not this crate's (see
    /// `OtpLayer::with_identity`).
    #[error("logins are managed by the application's identity source")]
    ExternalLogin,
    /// Device management or verification failed.
    #[error(transparent)]
    Otp(#[from] crate::Error),
    /// The store failed; nothing was changed that the caller can rely on.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SessionError {
    /// A stable, machine-readable code.
    pub fn kind(&self) -> &'static str {
        match self {
            SessionError::NotAuthenticated => "not_authenticated",
            SessionError::SessionEnded => "session_ended",
            SessionError::ExternalLogin => "login_managed_externally",
            SessionError::NotVerified => "otp_required",
            SessionError::RememberUnavailable => "remember_unavailable",
            SessionError::TooManyAttempts => "too_many_attempts",
            SessionError::Otp(error) => error.kind(),
            SessionError::Store(error) => error.kind(),
        }
    }

    /// Whether the store failed (directly or under a verification).
    pub fn is_store_failure(&self) -> bool {
        matches!(
            self,
            SessionError::Store(_) | SessionError::Otp(crate::Error::Store(_))
        )
    }
}
