//! What a guard demands, and the decision for one request.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::{GuardRejection, RejectionKind, Verified};
use crate::device::{DeviceKind, UserId};
use crate::layer::VerifiedDevice;
use crate::session::{OtpSession, SessionError, VerifiedBy};

/// A boxed future, as returned by [`UserPredicate::allows`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An async check on the user, such as "is staff", for admin subtrees. Implemented for
/// closures `Fn(UserId) -> impl Future<Output = bool>`. Answer `false` on errors: the guard
/// must fail closed.
pub trait UserPredicate: Send + Sync + 'static {
    /// Whether `user` may pass.
    fn allows(&self, user: UserId) -> BoxFuture<'static, bool>;
}

impl<F, Fut> UserPredicate for F
where
    F: Fn(UserId) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    fn allows(&self, user: UserId) -> BoxFuture<'static, bool> {
        Box::pin(self(user))
    }
}

/// Where redirect-mode guards send people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedirectTargets {
    login: String,
    verify: String,
    setup: Option<String>,
}

impl RedirectTargets {
    /// Anonymous users go to `login`, unverified ones to `verify`. Without a setup page
    /// ([`RedirectTargets::with_setup`]), users with no device get a 403 status answer
    /// instead of a redirect, never a loop between login and verification.
    pub fn new(login: impl Into<String>, verify: impl Into<String>) -> Self {
        RedirectTargets {
            login: login.into(),
            verify: verify.into(),
            setup: None,
        }
    }

    /// Users with no confirmed device go to `setup`.
    pub fn with_setup(mut self, setup: impl Into<String>) -> Self {
        self.setup = Some(setup.into());
        self
    }

    fn target(&self, kind: RejectionKind) -> Option<&str> {
        match kind {
            RejectionKind::NotAuthenticated | RejectionKind::InvalidToken => Some(&self.login),
            RejectionKind::OtpRequired | RejectionKind::ReauthenticationRequired => {
                Some(&self.verify)
            }
            RejectionKind::SetupRequired => self.setup.as_deref(),
            _ => None,
        }
    }
}

/// The requirements of a guard. Built through [`RequireOtpLayer`](super::RequireOtpLayer).
#[derive(Clone, Default)]
pub(crate) struct GuardPolicy {
    pub(crate) if_configured: bool,
    pub(crate) redirect: Option<RedirectTargets>,
    pub(crate) max_age: Option<Duration>,
    pub(crate) no_remembered: bool,
    pub(crate) allowed_kinds: Option<Vec<DeviceKind>>,
    pub(crate) predicate: Option<Arc<dyn UserPredicate>>,
}

impl fmt::Debug for GuardPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardPolicy")
            .field("if_configured", &self.if_configured)
            .field("redirect", &self.redirect)
            .field("max_age", &self.max_age)
            .field("no_remembered", &self.no_remembered)
            .field("allowed_kinds", &self.allowed_kinds)
            .field("predicate", &self.predicate.as_ref().map(|_| "<fn>"))
            .finish()
    }
}

/// A request that passed a guard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Passed {
    pub(crate) user: UserId,
    pub(crate) verified: Option<VerifiedBy>,
}

impl Passed {
    /// Leaves the decision in `extensions`: [`VerifiedDevice`] when a device verified the
    /// session (the contract for every service behind the guard, which the [`Verified`]
    /// extractor reads too), else a [`Verified`] without a device for the extractor, which
    /// accepts whatever this guard let through (an `if_configured` pass included).
    pub(crate) fn record(self, extensions: &mut http::Extensions) {
        match self.verified {
            Some(by) => extensions
                .insert(VerifiedDevice::new(self.user, by))
                .map(drop),
            None => extensions
                .insert(Verified {
                    user: self.user,
                    by: None,
                })
                .map(drop),
        };
    }
}

impl GuardPolicy {
    /// Decides for one request. Costs one store round trip, a plain read: the session and
    /// whether its user has a device are read together (a store that does not keep the latter
    /// beside the session costs a second round trip for an unverified session).
    pub(crate) async fn evaluate(
        &self,
        session: Option<&OtpSession>,
        uri: &Uri,
    ) -> Result<Passed, GuardRejection> {
        // Nested routers strip their prefix; the layer saw the full path.
        let uri = session.map_or(uri, |s| s.request_uri());
        let refuse = |kind| self.refusal(kind, uri);
        let session = session.ok_or_else(|| refuse(RejectionKind::MissingLayer))?;
        let status = session
            .status()
            .await
            .map_err(|e| refuse(failure_kind(&e)))?;
        let Some(user) = status.user else {
            let kind = if status.malformed_token {
                RejectionKind::InvalidToken
            } else {
                RejectionKind::NotAuthenticated
            };
            return Err(refuse(kind));
        };
        if let Some(predicate) = &self.predicate
            && !predicate.allows(user.clone()).await
        {
            return Err(refuse(RejectionKind::Forbidden));
        }
        if let Some(verified) = status.verified {
            if self.accepts(&verified, session) {
                return Ok(Passed {
                    user,
                    verified: Some(verified),
                });
            }
            return Err(refuse(RejectionKind::ReauthenticationRequired));
        }
        let configured = session
            .is_configured()
            .await
            .map_err(|e| refuse(failure_kind(&e)))?;
        match (configured, self.if_configured) {
            (false, true) => Ok(Passed {
                user,
                verified: None,
            }),
            (false, false) => Err(refuse(RejectionKind::SetupRequired)),
            (true, _) => Err(refuse(RejectionKind::OtpRequired)),
        }
    }

    fn accepts(&self, verified: &VerifiedBy, session: &OtpSession) -> bool {
        let fresh = self
            .max_age
            .is_none_or(|max_age| session.two_factor().now().since(verified.at) <= max_age);
        let kind_allowed = self
            .allowed_kinds
            .as_ref()
            .is_none_or(|kinds| kinds.contains(&verified.device_kind));
        fresh && kind_allowed && !(self.no_remembered && verified.remembered)
    }

    /// A redirect when this guard redirects for `kind` and the target is not this very page;
    /// otherwise a status answer.
    fn refusal(&self, kind: RejectionKind, uri: &Uri) -> GuardRejection {
        let target = self
            .redirect
            .as_ref()
            .and_then(|targets| targets.target(kind));
        match target {
            Some(target) if !same_path(target, uri.path()) => {
                GuardRejection::redirect(kind, with_next(target, uri))
            }
            _ => GuardRejection::status_only(kind),
        }
    }
}

/// The refusal a session error calls for; a store failure is also logged (rate-limited).
fn failure_kind(error: &SessionError) -> RejectionKind {
    if error.is_store_failure() {
        super::outage::store_outage(error);
        RejectionKind::StoreUnavailable
    } else {
        RejectionKind::NotAuthenticated
    }
}

fn same_path(target: &str, path: &str) -> bool {
    target.split(['?', '#']).next() == Some(path)
}

/// Characters escaped in the `next` value: everything but unreserved and `/`.
const NEXT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// `target` with `next` set to the request's path and query.
fn with_next(target: &str, uri: &Uri) -> String {
    let here = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let separator = if target.contains('?') { '&' } else { '?' };
    format!(
        "{target}{separator}next={}",
        utf8_percent_encode(here, NEXT)
    )
}

/// The `next` value to send a user on to after login or verification, if it is safe: a local
/// path (`/…`, not `//host`) with no backslash (browsers read `/\host` as `//host`) and no
/// control characters. Anything else, such as an absolute URL to another site, gives `None`
/// (use your home page) — an open redirect otherwise.
pub fn safe_next(next: &str) -> Option<&str> {
    let local = next.starts_with('/') && !next.starts_with("//") && !next.contains('\\');
    (local && !next.chars().any(|c| c.is_control())).then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_the_escaped_path_and_query() {
        let uri: Uri = "/admin/users?page=2&q=a b"
            .parse()
            .unwrap_or_else(|_| "/admin/users?page=2".parse().unwrap());
        assert_eq!(
            with_next("/login", &uri),
            format!(
                "/login?next={}",
                utf8_percent_encode(uri.path_and_query().unwrap().as_str(), NEXT)
            )
        );
        let uri: Uri = "/admin?x=1".parse().unwrap();
        assert_eq!(with_next("/login", &uri), "/login?next=/admin%3Fx%3D1");
        assert_eq!(
            with_next("/login?lang=en", &uri),
            "/login?lang=en&next=/admin%3Fx%3D1"
        );
    }

    #[test]
    fn only_local_paths_are_safe_next_values() {
        assert_eq!(safe_next("/admin?x=1"), Some("/admin?x=1"));
        for unsafe_next in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "/a\\b",
            "admin",
            "",
            "/a\nb",
        ] {
            assert_eq!(safe_next(unsafe_next), None, "{unsafe_next:?}");
        }
    }
}
