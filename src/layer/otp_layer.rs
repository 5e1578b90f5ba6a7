use std::sync::Arc;

use tower::Layer;

use super::Otp;
use crate::device::TwoFactor;
use crate::session::{SessionConfig, SessionContext};

/// Adds an [`OtpSession`](crate::session::OtpSession) to every request. See the
/// [module docs](super).
#[derive(Clone, Debug)]
pub struct OtpLayer {
    context: Arc<SessionContext>,
}

impl OtpLayer {
    /// A layer over `two_factor` (and its store) with the default [`SessionConfig`].
    pub fn new(two_factor: TwoFactor) -> Self {
        OtpLayer {
            context: Arc::new(SessionContext {
                two_factor,
                config: SessionConfig::default(),
            }),
        }
    }

    /// Uses these session settings.
    pub fn with_config(self, config: SessionConfig) -> Self {
        OtpLayer {
            context: Arc::new(SessionContext {
                two_factor: self.context.two_factor.clone(),
                config,
            }),
        }
    }
}

impl<S> Layer<S> for OtpLayer {
    type Service = Otp<S>;

    fn layer(&self, inner: S) -> Otp<S> {
        Otp::new(inner, self.context.clone())
    }
}
