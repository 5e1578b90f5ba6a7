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
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            reauthentication_window: Duration::from_secs(20 * 60),
            confirmer: None,
            account_label: Arc::new(|user: &UserId| user.to_string()),
        }
    }
}

impl ApiConfig {
    /// The defaults: a 20-minute window for sensitive changes, no confirmation methods, the
    /// user id as the account label in authenticator apps.
    pub fn new() -> Self {
        Self::default()
    }

    /// How recent a code verification must be to add or remove devices, disable the second
    /// factor or create backup codes, for users who already have a confirmed device (default
    /// 20 minutes, as NIST SP 800-63B-4 suggests for reauthentication).
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
}

impl fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiConfig")
            .field("reauthentication_window", &self.reauthentication_window)
            .field("confirmer", &self.confirmer)
            .finish_non_exhaustive()
    }
}
