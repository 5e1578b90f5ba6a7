//! Where the first-factor user comes from when the application already has a login: an
//! identity source gives the user and the login they are in, and the second-factor state is
//! bound to both.

use std::fmt;

use http::request::Parts;

use crate::device::UserId;

/// A user, and the particular login they are in.
///
/// `login` must identify one login and change whenever the user logs in again: a session id
/// (cycled at login), a token's `sid` or `jti`, a gateway's session header. A verification is
/// bound to the user *and* the login, so it never carries over to another user nor to a new
/// login of the same user. Only a digest of `login` is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    user: UserId,
    login: Vec<u8>,
}

impl Identity {
    /// `user` in the login identified by `login`.
    pub fn new(user: UserId, login: impl AsRef<[u8]>) -> Self {
        Identity {
            user,
            login: login.as_ref().to_vec(),
        }
    }

    /// The user.
    pub fn user(&self) -> &UserId {
        &self.user
    }

    pub(crate) fn login(&self) -> &[u8] {
        &self.login
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The login id can be a session id: a credential.
        f.debug_struct("Identity")
            .field("user", &self.user)
            .field("login", &"[redacted]")
            .finish()
    }
}

/// What an identity source found in a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identified {
    /// No first factor: an anonymous request.
    Anonymous,
    /// Credentials were presented but are not valid (a forged or expired token): treated as
    /// anonymous, answered by guards with `invalid_session_token`.
    Invalid,
    /// A user in a login.
    User(Identity),
}

/// Finds the first-factor identity of a request, for [`OtpLayer::with_identity`].
///
/// Called once per request, before the inner service, with the request's head; keep it
/// cheap (read what an authentication layer outside put in the extensions, or a header a
/// trusted gateway set). Implemented for closures `Fn(&Parts) -> Option<Identity>`.
///
/// [`OtpLayer::with_identity`]: crate::layer::OtpLayer::with_identity
pub trait IdentitySource: Send + Sync + 'static {
    /// The identity of the request.
    fn identify(&self, parts: &Parts) -> Identified;
}

impl<F> IdentitySource for F
where
    F: Fn(&Parts) -> Option<Identity> + Send + Sync + 'static,
{
    fn identify(&self, parts: &Parts) -> Identified {
        match self(parts) {
            Some(identity) => Identified::User(identity),
            None => Identified::Anonymous,
        }
    }
}

/// The user of axum-login's `AuthSession`: `AuthUser::id()` in the login of the underlying
/// tower-sessions session (its id, which axum-login cycles at login, and the user's
/// `session_auth_hash`, which changes with the password).
///
/// Put axum-login's `AuthManagerLayer` outside `OtpLayer`. axum-login's logout, or any cycling
/// of the session id, ends the second-factor verification with it. In the very request that
/// logs in, the new session id is not assigned yet, so the user counts as anonymous to this
/// crate until the next request.
#[cfg(feature = "axum-login")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum-login")))]
pub struct AxumLoginIdentity<B>(std::marker::PhantomData<fn() -> B>);

#[cfg(feature = "axum-login")]
impl<B> AxumLoginIdentity<B> {
    /// The source for backend `B`.
    pub fn new() -> Self {
        AxumLoginIdentity(std::marker::PhantomData)
    }
}

#[cfg(feature = "axum-login")]
impl<B> Default for AxumLoginIdentity<B> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "axum-login")]
impl<B> fmt::Debug for AxumLoginIdentity<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AxumLoginIdentity")
    }
}

#[cfg(feature = "axum-login")]
impl<B> IdentitySource for AxumLoginIdentity<B>
where
    B: axum_login::AuthnBackend + 'static,
{
    fn identify(&self, parts: &Parts) -> Identified {
        use axum_login::AuthUser;

        let Some(auth) = parts.extensions.get::<axum_login::AuthSession<B>>() else {
            return Identified::Anonymous;
        };
        let (Some(user), Some(session_id)) = (&auth.user, auth.session.id()) else {
            return Identified::Anonymous;
        };
        let Ok(user_id) = UserId::new(user.id().to_string()) else {
            return Identified::Invalid;
        };
        let mut login = session_id.to_string().into_bytes();
        login.push(0);
        login.extend_from_slice(user.session_auth_hash());
        Identified::User(Identity::new(user_id, login))
    }
}
