//! [`Visitor`]: who is looking at a page, and the gates pages put in front of them.

use std::sync::Arc;

use axum::extract::{FromRequestParts, NestedPath};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::csrf;
use super::page::{Ui, redirect, with_query};
use crate::device::UserId;
use crate::session::{OtpSession, SessionError, SessionStatus};
use crate::{Caller, CallerState, Error};

/// The session of a page's request, loaded once (one store read), with where the pages are
/// mounted.
#[derive(Clone, Debug)]
pub(crate) struct Visitor {
    session: OtpSession,
    status: SessionStatus,
    caller: Option<Caller>,
    base: String,
}

impl FromRequestParts<Arc<Ui>> for Visitor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _ui: &Arc<Ui>) -> Result<Self, Response> {
        let session = parts
            .extensions
            .get::<OtpSession>()
            .cloned()
            .ok_or_else(|| {
                let missing = crate::guard::RejectionKind::MissingLayer;
                (missing.status(), missing.message()).into_response()
            })?;
        let base = parts
            .extensions
            .get::<NestedPath>()
            .map(|nested| nested.as_str().trim_end_matches('/').to_owned())
            .unwrap_or_default();
        let unavailable = |_| {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "The service is unavailable; try again in a moment.",
            )
                .into_response()
        };
        let status = session.status().await.map_err(unavailable)?;
        let caller = match status.user {
            Some(_) => Some(session.caller().await.map_err(unavailable)?),
            None => None,
        };
        Ok(Visitor {
            session,
            status,
            caller,
            base,
        })
    }
}

/// A problem to show on the page, in the template's words: a stable code, and how long to
/// wait where that is the point.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Problem {
    pub(crate) code: &'static str,
    pub(crate) retry_after: Option<u64>,
}

impl Problem {
    pub(crate) fn new(code: &'static str) -> Self {
        Problem {
            code,
            retry_after: None,
        }
    }
}

impl Visitor {
    pub(crate) fn session(&self) -> &OtpSession {
        &self.session
    }

    pub(crate) fn user(&self) -> Option<&UserId> {
        self.status.user.as_ref()
    }

    pub(crate) fn caller(&self) -> Option<&Caller> {
        self.caller.as_ref()
    }

    /// Where the pages are mounted (`/account/two-factor`), without a trailing `/`.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// The URL of the page at `path` (`/verify`) under the mount point. The profile, at
    /// `/`, is the mount point itself: a nested router's root has no trailing `/`.
    pub(crate) fn url(&self, path: &str) -> String {
        if path == "/" && !self.base.is_empty() {
            return self.base.clone();
        }
        format!("{}{path}", self.base)
    }

    /// This request's path and query, as the browser asked for it.
    pub(crate) fn here(&self) -> String {
        let uri = self.session.request_uri();
        uri.path_and_query()
            .map_or_else(|| self.url("/"), |pq| pq.as_str().to_owned())
    }

    pub(crate) fn is_verified(&self) -> bool {
        self.status.is_verified()
    }

    /// Whether the session was verified by a code within the re-verification window.
    pub(crate) fn is_fresh(&self) -> bool {
        self.caller.as_ref().is_some_and(|caller| {
            matches!(
                self.session.two_factor().caller_state(caller),
                CallerState::Fresh | CallerState::Administrator
            )
        })
    }

    /// The CSRF token of this session's forms.
    pub(crate) fn csrf_token(&self) -> Option<String> {
        csrf::token(self.session.two_factor(), self.caller.as_ref()?)
    }

    pub(crate) fn csrf_is_valid(&self, given: &str) -> bool {
        self.caller
            .as_ref()
            .is_some_and(|caller| csrf::is_valid(self.session.two_factor(), caller, given))
    }

    /// The user and their session's caller, or a redirect to the login page.
    pub(crate) fn require_user(&self, ui: &Ui) -> Result<(UserId, Caller), Response> {
        match (self.status.user.clone(), self.caller.clone()) {
            (Some(user), Some(caller)) => Ok((user, caller)),
            _ => Err(ui.login_redirect(&self.here())),
        }
    }

    /// Whether the user has a confirmed device; a store failure is a 503 page.
    pub(crate) async fn is_configured(&self, ui: &Ui, user: &UserId) -> Result<bool, Response> {
        self.session
            .two_factor()
            .is_configured(user)
            .await
            .map_err(|_| self.unavailable(ui))
    }

    /// How many backup codes the user has left; a store failure is a 503 page.
    pub(crate) async fn backup_codes_remaining(
        &self,
        ui: &Ui,
        user: &UserId,
    ) -> Result<u64, Response> {
        self.session
            .two_factor()
            .backup_codes_remaining(user)
            .await
            .map_err(|_| self.unavailable(ui))
    }

    /// For pages that show factors: a user who has a confirmed device must be verified, or
    /// is sent to verify and then to `back`.
    pub(crate) async fn require_verified(
        &self,
        ui: &Ui,
        back: &str,
    ) -> Result<(UserId, Caller, bool), Response> {
        let (user, caller) = self.require_user(ui)?;
        let configured = self.is_configured(ui, &user).await?;
        if configured && !self.is_verified() {
            return Err(self.step_up(back));
        }
        Ok((user, caller, configured))
    }

    /// For pages that change factors: a user who has a confirmed device must have verified
    /// with a code just now, or is sent to verify and back here. The engine enforces the
    /// same rule on every change; asking first spares the user a form that would be refused.
    pub(crate) async fn require_fresh(&self, ui: &Ui) -> Result<(UserId, Caller, bool), Response> {
        let (user, caller) = self.require_user(ui)?;
        let configured = self.is_configured(ui, &user).await?;
        if configured && !self.is_fresh() {
            return Err(self.step_up(&self.here()));
        }
        Ok((user, caller, configured))
    }

    /// To the verification page, and back to `back` after a code.
    pub(crate) fn step_up(&self, back: &str) -> Response {
        redirect(&with_query(&self.url("/verify"), "next", back))
    }

    pub(crate) fn unavailable(&self, ui: &Ui) -> Response {
        ui.error(self, StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    }

    /// What to do about `error`: a problem to show on the page, or an answer of its own —
    /// verify first and come back to `back`, log in again, or a 503 page.
    pub(crate) fn problem(
        &self,
        ui: &Ui,
        error: &SessionError,
        back: &str,
    ) -> Result<Problem, Response> {
        let now = self.session.two_factor().now();
        let engine_error = match error {
            SessionError::Otp(error) => Some(error),
            _ => None,
        };
        if error.is_store_failure() {
            return Err(self.unavailable(ui));
        }
        match (error, engine_error) {
            (_, Some(Error::VerificationRequired | Error::ReauthenticationRequired))
            | (SessionError::NotVerified, _) => Err(self.step_up(back)),
            (
                SessionError::NotAuthenticated
                | SessionError::SessionEnded
                | SessionError::TooManyAttempts,
                _,
            ) => Err(ui.login_redirect(back)),
            (_, Some(error)) if error.is_wrong_code() => Ok(Problem::new("invalid_code")),
            (_, Some(error)) => Ok(Problem {
                code: error.kind(),
                retry_after: error.retry_after(now).map(|wait| wait.as_secs().max(1)),
            }),
            _ => Ok(Problem::new(error.kind())),
        }
    }
}
