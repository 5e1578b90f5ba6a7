use std::sync::Arc;
use std::time::Duration;

use tower::Layer;

use super::RequireOtp;
use super::policy::{GuardPolicy, RedirectTargets, UserPredicate};
use crate::device::DeviceKind;

/// Requires a verified second factor for every request to the wrapped service. See the
/// [module docs](super).
///
/// By default it answers with a status and a JSON body; `redirect_to` switches it to
/// redirects. Needs [`OtpLayer`](crate::layer::OtpLayer) outside it.
#[derive(Clone, Debug, Default)]
pub struct RequireOtpLayer {
    policy: Arc<GuardPolicy>,
}

impl RequireOtpLayer {
    /// A guard requiring a verified session, answering refusals with a status.
    pub fn new() -> Self {
        Self::default()
    }

    fn change(mut self, change: impl FnOnce(&mut GuardPolicy)) -> Self {
        change(Arc::make_mut(&mut self.policy));
        self
    }

    /// Lets users who have no confirmed device through unverified (django-otp's
    /// `otp_required(if_configured=True)`); users who have one must verify.
    pub fn if_configured(self) -> Self {
        self.change(|p| p.if_configured = true)
    }

    /// Redirects instead of answering with a status: anonymous users to the login page,
    /// unverified ones to the verification page, each with a `next` parameter.
    pub fn redirect_to(self, targets: RedirectTargets) -> Self {
        self.change(|p| p.redirect = Some(targets))
    }

    /// Requires the verification to be at most `max_age` old (step-up for sensitive routes).
    pub fn max_age(self, max_age: Duration) -> Self {
        self.change(|p| p.max_age = Some(max_age))
    }

    /// Refuses sessions verified by a remembered device: a code must have been entered in
    /// this session.
    pub fn no_remembered(self) -> Self {
        self.change(|p| p.no_remembered = true)
    }

    /// Accepts only verifications by these device kinds (for example, no backup codes).
    pub fn allowed_kinds(self, kinds: impl IntoIterator<Item = DeviceKind>) -> Self {
        let kinds = kinds.into_iter().collect();
        self.change(|p| p.allowed_kinds = Some(kinds))
    }

    /// Also requires `predicate` to accept the user (for example, staff only).
    pub fn predicate(self, predicate: impl UserPredicate) -> Self {
        let predicate: Arc<dyn UserPredicate> = Arc::new(predicate);
        self.change(|p| p.predicate = Some(predicate))
    }
}

impl<S> Layer<S> for RequireOtpLayer {
    type Service = RequireOtp<S>;

    fn layer(&self, inner: S) -> RequireOtp<S> {
        RequireOtp::new(inner, self.policy.clone())
    }
}
