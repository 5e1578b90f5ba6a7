//! Confirmation methods: what a method is, and the trait its backend implements.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::clock::Timestamp;
use crate::device::{Caller, UserId};

use super::ConfirmError;

/// What a backend is told about the call it serves.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Context<'a> {
    /// The user the confirmation is for.
    pub user: &'a UserId,
    /// Who asks, and how far they have proven it. A method that adds or alters the user's
    /// factors passes it to the engine, which applies the factor rule (see [`Caller`]); a
    /// custom method of that kind must refuse callers whose
    /// [`state`](Caller::state) is not fresh while the user has a factor.
    pub caller: &'a Caller,
    /// The key the method is registered under.
    pub method: &'a str,
    /// The current time by the confirmer's clock.
    pub now: Timestamp,
}

/// How a newly requested confirmation starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requested {
    /// Waiting for the user's answer, with this state.
    InProcess(Value),
    /// Nothing to answer: confirmed at once, with this state.
    Confirmed(Value),
}

/// The behaviour of a confirmation method.
///
/// A backend never stores anything secret in a state: states are kept as they are and shown
/// to the client. Wrong answers are `Ok(false)` from [`ConfirmationBackend::confirm`]; an
/// error is for everything else (throttling, a delivery failure, a store failure…).
///
/// The confirmer limits the answers to each confirmation, but a user can request another
/// one: a method whose answers can be guessed must also throttle across confirmations, as the
/// built-in methods do by checking codes through [`TwoFactor`](crate::TwoFactor).
#[async_trait]
pub trait ConfirmationBackend: Send + Sync + fmt::Debug + 'static {
    /// Whether changing the user's configuration of this method from `old` to `new` must be
    /// confirmed first, and if so the state to request the confirmation with.
    async fn change_user_config(
        &self,
        cx: Context<'_>,
        old: Option<&Value>,
        new: &Value,
    ) -> Result<Option<Value>, ConfirmError>;

    /// Starts a confirmation from `state` (sending a code, say), returning its status and the
    /// state to keep.
    async fn request_confirmation(
        &self,
        cx: Context<'_>,
        state: Value,
    ) -> Result<Requested, ConfirmError>;

    /// Whether `data`, the user's answer, confirms the confirmation whose state is `state`.
    async fn confirm(
        &self,
        cx: Context<'_>,
        state: &Value,
        data: &Value,
    ) -> Result<bool, ConfirmError>;
}

/// A registered confirmation method: a key, a name to show, optional JSON schemas of its
/// global and per-user configuration (for clients that build forms), and its backend.
#[derive(Clone, Debug)]
pub struct Method {
    key: String,
    name: String,
    global_config_schema: Option<Value>,
    user_config_schema: Option<Value>,
    backend: Arc<dyn ConfirmationBackend>,
}

impl Method {
    /// A method registered as `key`, shown as `name`.
    pub fn new(
        key: impl Into<String>,
        name: impl Into<String>,
        backend: impl ConfirmationBackend,
    ) -> Self {
        Method {
            key: key.into(),
            name: name.into(),
            global_config_schema: None,
            user_config_schema: None,
            backend: Arc::new(backend),
        }
    }

    /// The JSON schema of the method's global configuration.
    pub fn with_global_config_schema(mut self, schema: Value) -> Self {
        self.global_config_schema = Some(schema);
        self
    }

    /// The JSON schema of a user's configuration of the method.
    pub fn with_user_config_schema(mut self, schema: Value) -> Self {
        self.user_config_schema = Some(schema);
        self
    }

    /// The key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The name to show.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The JSON schema of the global configuration, if any.
    pub fn global_config_schema(&self) -> Option<&Value> {
        self.global_config_schema.as_ref()
    }

    /// The JSON schema of a user's configuration, if any.
    pub fn user_config_schema(&self) -> Option<&Value> {
        self.user_config_schema.as_ref()
    }

    /// The backend.
    pub fn backend(&self) -> &dyn ConfirmationBackend {
        &*self.backend
    }
}
