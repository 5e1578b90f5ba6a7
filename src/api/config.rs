//! Settings of the JSON API.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::confirm::Confirmer;
use crate::device::UserId;

type AccountLabel = Arc<dyn Fn(&UserId) -> String + Send + Sync>;

/// Settings of the [JSON API](super).
#[derive(Clone)]
pub struct ApiConfig {
    pub(crate) reauthentication_window: Duration,
    pub(crate) confirmer: Option<Confirmer>,
    pub(crate) account_label: AccountLabel,
    pub(crate) trust_forwarded_headers: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            reauthentication_window: Duration::from_secs(20 * 60),
            confirmer: None,
            account_label: Arc::new(|user: &UserId| user.to_string()),
            trust_forwarded_headers: false,
        }
    }
}

impl ApiConfig {
    /// The defaults: a 20-minute window for sensitive changes, no confirmation methods, the
    /// user id as the account label in authenticator apps, forwarded headers not trusted.
    pub fn new() -> Self {
        Self::default()
    }

    /// How recent a code verification must be to add or remove devices or create backup
    /// codes, for users who already have a confirmed device (default 20 minutes, as NIST SP
    /// 800-63B-4 suggests for reauthentication). Disabling the second factor takes a code in
    /// the request itself.
    pub fn with_reauthentication_window(mut self, window: Duration) -> Self {
        self.reauthentication_window = window;
        self
    }

    /// Serves the confirmation endpoints with this confirmer and its methods.
    pub fn with_confirmer(mut self, confirmer: Confirmer) -> Self {
        self.confirmer = Some(confirmer);
        self
    }

    /// The account name shown in authenticator apps for a user (default: the user id).
    pub fn with_account_label(
        mut self,
        label: impl Fn(&UserId) -> String + Send + Sync + 'static,
    ) -> Self {
        self.account_label = Arc::new(label);
        self
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
            .field("reauthentication_window", &self.reauthentication_window)
            .field("confirmer", &self.confirmer)
            .field("trust_forwarded_headers", &self.trust_forwarded_headers)
            .finish_non_exhaustive()
    }
}
