use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tower::Layer;

use super::Otp;
use crate::device::TwoFactor;
use crate::events::{Event, Events};
use crate::remember::RememberConfig;
use crate::session::{ClientAddrFn, IdentitySource, SessionConfig, SessionContext};

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
                identity: None,
                remember: None,
            }),
        }
    }

    fn change(self, change: impl FnOnce(&mut SessionContext)) -> Self {
        let mut context = SessionContext {
            two_factor: self.context.two_factor.clone(),
            config: self.context.config.clone(),
            client_addr: self.context.client_addr.clone(),
            identity: self.context.identity.clone(),
            remember: self.context.remember.clone(),
        };
        change(&mut context);
        OtpLayer {
            context: Arc::new(context),
        }
    }

    /// Calls `hook` for every event of this process (on the layer's [`TwoFactor`] event bus;
    /// see [`events`](crate::events)).
    pub fn on_event(self, hook: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.context.two_factor.events().on(hook);
        self
    }

    /// The event bus, to subscribe to events.
    pub fn events(&self) -> &Events {
        self.context.two_factor.events()
    }

    /// Uses these session settings.
    pub fn with_config(self, config: SessionConfig) -> Self {
        self.change(|c| c.config = config)
    }

    /// Takes the first-factor user from the application's own login instead of this crate's
    /// sessions: axum-login ([`AxumLoginIdentity`], feature `axum-login`), a validated
    /// token's claims, a trusted gateway's header. The second-factor state is kept in the
    /// store, bound to the user and the login; `OtpSession::login` is then refused, and
    /// `OtpSession::logout` ends only the verification, not the application's login.
    ///
    /// ```
    /// use tower_otp::session::Identity;
    /// # use tower_otp::{layer::OtpLayer, MemoryStore, ServerKey, TwoFactor, UserId};
    /// # let layer = OtpLayer::new(TwoFactor::new(MemoryStore::new(), ServerKey::generate()));
    /// /// What an upstream JWT layer left in the extensions.
    /// #[derive(Clone)]
    /// struct Claims { sub: String, sid: String }
    ///
    /// let layer = layer.with_identity(|parts: &http::request::Parts| {
    ///     let claims = parts.extensions.get::<Claims>()?;
    ///     Some(Identity::new(UserId::new(claims.sub.clone()).ok()?, &claims.sid))
    /// });
    /// ```
    ///
    #[cfg_attr(
        feature = "axum-login",
        doc = "[`AxumLoginIdentity`]: crate::session::AxumLoginIdentity"
    )]
    #[cfg_attr(
        not(feature = "axum-login"),
        doc = "[`AxumLoginIdentity`]: crate#feature-flags"
    )]
    pub fn with_identity(self, source: impl IdentitySource) -> Self {
        let source: Arc<dyn IdentitySource> = Arc::new(source);
        self.change(|c| c.identity = Some(source))
    }

    /// Enables remember-device cookies (see [`remember`](crate::remember)).
    pub fn with_remember(self, remember: RememberConfig) -> Self {
        self.change(|c| c.remember = Some(remember))
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
