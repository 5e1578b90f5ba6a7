//! Settings of the JSON API.

use std::fmt;

use crate::confirm::Confirmer;
use crate::device::UserId;
use crate::otp::AccountLabel;

/// Settings of the [JSON API](super).
#[derive(Clone)]
pub struct ApiConfig {
    pub(crate) confirmer: Option<Confirmer>,
    pub(crate) account_label: AccountLabel,
    pub(crate) trust_forwarded_headers: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            confirmer: None,
            account_label: AccountLabel::user_id(),
            trust_forwarded_headers: false,
        }
    }
}

impl ApiConfig {
    /// The defaults: no confirmation methods, the user id as the account label in
    /// authenticator apps (made valid, see [`ApiConfig::with_account_label`]), forwarded
    /// headers not trusted.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves the confirmation endpoints with this confirmer and its methods.
    pub fn with_confirmer(mut self, confirmer: Confirmer) -> Self {
        self.confirmer = Some(confirmer);
        self
    }

    /// The account name shown in authenticator apps for a user (default: the user id).
    ///
    /// Whatever the label, it is made one that a provisioning URI can carry, so that no user
    /// is kept from enrolling by their name: each `:` (which separates issuer and account in
    /// the apps, and cannot be escaped) becomes `_`, so that user `tenant:alice` shows as
    /// `tenant_alice`; a label longer than 256 bytes is cut; an empty one is replaced by the
    /// user id.
    pub fn with_account_label(
        mut self,
        label: impl Fn(&UserId) -> String + Send + Sync + 'static,
    ) -> Self {
        self.account_label = AccountLabel::new(label);
        self
    }

    /// The account label of `user`, valid in a provisioning URI.
    pub(crate) fn account_for(&self, user: &UserId) -> String {
        self.account_label.for_user(user)
    }

    /// Whether the request's own origin, which a state-changing request's `Origin` must
    /// match, is taken from `X-Forwarded-Proto` and `X-Forwarded-Host` (their first values)
    /// when they are present (default: no, only the request target and `Host`).
    ///
    /// Turn it on only behind a reverse proxy that every request passes through and that
    /// sets these headers itself, replacing any a client sent: for example one that forwards
    /// to the service under another host name, or that terminates TLS (an HTTP/1.1 request
    /// does not carry its scheme, so without the proxy's word only host and port are
    /// compared).
    pub fn with_trusted_forwarded_headers(mut self, trusted: bool) -> Self {
        self.trust_forwarded_headers = trusted;
        self
    }
}

impl fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiConfig")
            .field("confirmer", &self.confirmer)
            .field("trust_forwarded_headers", &self.trust_forwarded_headers)
            .finish_non_exhaustive()
    }
}
