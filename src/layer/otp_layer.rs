use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tower::Layer;

use super::Otp;
use crate::device::TwoFactor;
use crate::session::{ClientAddrFn, SessionConfig, SessionContext};

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
                client_addr: Arc::new(socket_addr_extension),
            }),
        }
    }

    fn change(self, change: impl FnOnce(&mut SessionContext)) -> Self {
        let mut context = SessionContext {
            two_factor: self.context.two_factor.clone(),
            config: self.context.config.clone(),
            client_addr: self.context.client_addr.clone(),
        };
        change(&mut context);
        OtpLayer {
            context: Arc::new(context),
        }
    }

    /// Uses these session settings.
    pub fn with_config(self, config: SessionConfig) -> Self {
        self.change(|c| c.config = config)
    }

    /// How to find the client's address for events. The default reads a [`SocketAddr`]
    /// request extension; behind axum, read its `ConnectInfo`:
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use axum::extract::ConnectInfo;
    /// # use tower_otp::{layer::OtpLayer, MemoryStore, ServerKey, TwoFactor};
    /// # let layer = OtpLayer::new(TwoFactor::new(MemoryStore::new(), ServerKey::generate()));
    /// let layer = layer.with_client_addr(|parts| {
    ///     parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip())
    /// });
    /// ```
    ///
    /// Trust `X-Forwarded-For` only from your own proxies.
    pub fn with_client_addr(
        self,
        find: impl Fn(&http::request::Parts) -> Option<IpAddr> + Send + Sync + 'static,
    ) -> Self {
        let find: ClientAddrFn = Arc::new(find);
        self.change(|c| c.client_addr = find)
    }
}

fn socket_addr_extension(parts: &http::request::Parts) -> Option<IpAddr> {
    parts.extensions.get::<SocketAddr>().map(SocketAddr::ip)
}

impl<S> Layer<S> for OtpLayer {
    type Service = Otp<S>;

    fn layer(&self, inner: S) -> Otp<S> {
        Otp::new(inner, self.context.clone())
    }
}
