//! Settings of the JSON API.

use std::fmt;
use std::sync::Arc;

use crate::confirm::Confirmer;
use crate::device::UserId;

type AccountLabel = Arc<dyn Fn(&UserId) -> String + Send + Sync>;

/// Settings of the [JSON API](super).
#[derive(Clone)]
pub struct ApiConfig {
    pub(crate) confirmer: Option<Confirmer>,
    pub(crate) account_label: AccountLabel,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            confirmer: None,
            account_label: Arc::new(|user: &UserId| user.to_string()),
        }
    }
}

impl ApiConfig {
    /// The defaults: no confirmation methods, the user id as the account label in
    /// authenticator apps.
    pub fn new() -> Self {
        Self::default()
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
            .field("confirmer", &self.confirmer)
            .finish_non_exhaustive()
    }
}
