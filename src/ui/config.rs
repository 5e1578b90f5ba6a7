//! Settings of the pages.

use std::collections::BTreeMap;
use std::fmt;

use crate::device::UserId;
use crate::otp::AccountLabel;

use super::templates::{self, TEMPLATE_NAMES};

/// Settings of the [pages](super): where the application's login and home page are, the
/// account label in authenticator apps, and any template or stylesheet of the application's
/// own.
#[derive(Clone)]
pub struct UiConfig {
    pub(crate) login_url: String,
    pub(crate) home_url: String,
    pub(crate) account_label: AccountLabel,
    pub(crate) templates: BTreeMap<&'static str, String>,
    pub(crate) stylesheet: Option<String>,
}

impl Default for UiConfig {
    fn default() -> Self {
        UiConfig {
            login_url: "/login".to_owned(),
            home_url: "/".to_owned(),
            account_label: AccountLabel::user_id(),
            templates: BTreeMap::new(),
            stylesheet: None,
        }
    }
}

impl UiConfig {
    /// The defaults: the login at `/login`, the home page at `/`, the user id as the account
    /// label, the shipped templates and stylesheet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The application's login page, where anonymous visitors are sent with `next`
    /// (default `/login`).
    pub fn with_login_url(mut self, url: impl Into<String>) -> Self {
        self.login_url = url.into();
        self
    }

    /// Where users go when there is no safe `next`, and after signing out (default `/`).
    pub fn with_home_url(mut self, url: impl Into<String>) -> Self {
        self.home_url = url.into();
        self
    }

    /// The account name shown in authenticator apps for a user (default: the user id). It is
    /// made one that a provisioning URI can carry: each `:` becomes `_`, a label longer than
    /// 256 bytes is cut, an empty one is replaced by the user id.
    pub fn with_account_label(
        mut self,
        label: impl Fn(&UserId) -> String + Send + Sync + 'static,
    ) -> Self {
        self.account_label = AccountLabel::new(label);
        self
    }

    /// Replaces the shipped template `name` (one of [`TEMPLATE_NAMES`]) with `source`.
    ///
    /// Refused at once, rather than when a page is shown, if `name` is not a template of the
    /// pages or `source` is not a valid template. Autoescaping stays on.
    pub fn with_template(
        mut self,
        name: &str,
        source: impl Into<String>,
    ) -> Result<Self, TemplateError> {
        let name = TEMPLATE_NAMES
            .iter()
            .copied()
            .find(|known| *known == name)
            .ok_or_else(|| TemplateError::UnknownName(name.to_owned()))?;
        let source = source.into();
        templates::check(name, &source)?;
        self.templates.insert(name, source);
        Ok(self)
    }

    /// Replaces the shipped stylesheet, served at `style.css`.
    pub fn with_stylesheet(mut self, css: impl Into<String>) -> Self {
        self.stylesheet = Some(css.into());
        self
    }

    /// The account label of `user`, valid in a provisioning URI.
    pub(crate) fn account_for(&self, user: &UserId) -> String {
        self.account_label.for_user(user)
    }
}

impl fmt::Debug for UiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UiConfig")
            .field("login_url", &self.login_url)
            .field("home_url", &self.home_url)
            .field("templates", &self.templates.keys().collect::<Vec<_>>())
            .field("stylesheet", &self.stylesheet.is_some())
            .finish_non_exhaustive()
    }
}

/// A template the application gave is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// No page uses a template of this name (see [`TEMPLATE_NAMES`]).
    #[error("no template is named {0:?}")]
    UnknownName(String),
    /// The source is not a valid template.
    #[error("template {name:?}: {message}")]
    Syntax {
        /// The template's name.
        name: &'static str,
        /// What is wrong, and where.
        message: String,
    },
}
