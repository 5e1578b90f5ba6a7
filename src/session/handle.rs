//! [`OtpSession`]: the per-request handle on the session.

use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};

use std::time::Duration;

use http::Uri;
use http::request::Parts;
use tokio::sync::MutexGuard;
use zeroize::Zeroizing;

use super::identity::IdentitySource;
use super::presented::{Credentials, Presented, Transport, cookie_values};
use super::{SessionConfig, SessionError, SessionKey, SessionRecord, SessionToken, VerifiedBy};
use crate::clock::Timestamp;
use crate::device::{Caller, ConfirmedDevice, Device, DeviceId, TwoFactor, UserId, Verification};
use crate::events::{CurrentRequest, EventKind, HoldsRequest, RequestInfo};
use crate::remember::{BrowserId, RememberClaims, RememberConfig, RememberedBrowser};

/// Finds a request's client address, for events.
pub(crate) type ClientAddrFn = Arc<dyn Fn(&http::request::Parts) -> Option<IpAddr> + Send + Sync>;

/// What every request's handle shares: the verification engine and the session settings.
pub(crate) struct SessionContext {
    pub(crate) two_factor: TwoFactor,
    pub(crate) config: SessionConfig,
    pub(crate) client_addr: ClientAddrFn,
    /// Where users come from; `None` for the crate's own sessions (`login`).
    pub(crate) identity: Option<Arc<dyn IdentitySource>>,
    /// Remember-device cookies, when enabled.
    pub(crate) remember: Option<RememberConfig>,
}

impl fmt::Debug for SessionContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionContext")
            .field("two_factor", &self.two_factor)
            .field("config", &self.config)
            .field("external_identity", &self.identity.is_some())
            .finish_non_exhaustive()
    }
}

/// The session of the current request, inserted as a request extension by
/// [`OtpLayer`](crate::layer::OtpLayer).
///
/// Cheap to clone. Nothing is read from the store until a method needs the session; the first
/// read is cached for the rest of the request, so a request costs at most one store round
/// trip to learn its state, and none if nothing asks.
///
/// In axum it is an extractor (`session: OtpSession`); in a plain hyper service take it from
/// the request's extensions.
#[derive(Clone)]
pub struct OtpSession {
    shared: Arc<Shared>,
}

struct Shared {
    context: Arc<SessionContext>,
    /// What the request presented, worked out on first use.
    presented: OnceLock<Presented>,
    credentials: Credentials,
    /// The request as the layer saw it (its URI before any router stripped a nesting
    /// prefix), for events, guards' redirects and remembered browsers.
    request: RequestInfo,
    current: tokio::sync::Mutex<Option<Current>>,
    cookies: Mutex<PendingCookies>,
}

impl HoldsRequest for Shared {
    fn request_info(&self) -> &RequestInfo {
        &self.request
    }
}

/// The session as known so far in this request.
#[derive(Clone, Debug, Default)]
struct Current {
    key: Option<SessionKey>,
    record: Option<SessionRecord>,
    /// Bound to a login of the identity source: the key is derived, never rotated.
    external: bool,
    /// Whether the user has a confirmed device, when the store read it with the session.
    configured: Option<bool>,
}

/// A change to a cookie, written to the response by the layer.
#[derive(Clone, Debug)]
enum CookieChange {
    Set {
        value: Zeroizing<String>,
        max_age: Duration,
    },
    Clear,
}

/// The cookie changes a request made: the session cookie and the remember-device cookie.
#[derive(Debug, Default)]
struct PendingCookies {
    session: Option<CookieChange>,
    remember: Option<CookieChange>,
}

/// The session's state at a point in the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionStatus {
    /// Who passed the first factor, if anyone.
    pub user: Option<UserId>,
    /// The second factor, if passed.
    pub verified: Option<VerifiedBy>,
    /// When the session began.
    pub created_at: Option<Timestamp>,
    /// The request carried a bearer token that is not a session id of this crate.
    pub malformed_token: bool,
}

impl SessionStatus {
    /// Whether a user passed the first factor.
    pub fn is_authenticated(&self) -> bool {
        self.user.is_some()
    }

    /// Whether the session passed the second factor.
    pub fn is_verified(&self) -> bool {
        self.verified.is_some()
    }
}

/// A device confirmed through the session ([`OtpSession::confirm_device`]).
#[derive(Clone, Debug)]
pub struct SessionConfirmation {
    /// The confirmed device and the confirming code's verification.
    pub confirmed: ConfirmedDevice,
    /// Whether the confirmation verified the session (only the user's first device does).
    pub verified_session: bool,
    /// The session's new id, when the confirmation verified an own session (see
    /// [`SessionVerification::token`]).
    pub token: Option<SessionToken>,
}

/// A successful verification through the session.
#[derive(Clone, Debug)]
pub struct SessionVerification {
    /// What verified.
    pub verification: Verification,
    /// The session's new id (an own session's id changes on every verification). Cookie
    /// clients receive it as a cookie; hand it to bearer clients. `None` for identities from
    /// an identity source, whose login is not this crate's.
    pub token: Option<SessionToken>,
}

impl OtpSession {
    pub(crate) fn from_request(context: Arc<SessionContext>, parts: &Parts) -> Self {
        let presented = OnceLock::new();
        if let Some(external) = Presented::from_identity(&context, parts) {
            let _ = presented.set(external);
        }
        let request = RequestInfo {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            client_addr: (context.client_addr)(parts),
            user_agent: parts.headers.get(http::header::USER_AGENT).cloned(),
        };
        OtpSession {
            shared: Arc::new(Shared {
                credentials: Credentials::capture(&parts.headers),
                context,
                presented,
                request,
                current: tokio::sync::Mutex::new(None),
                cookies: Mutex::default(),
            }),
        }
    }

    /// This request, for events emitted while it is served.
    pub(crate) fn as_current_request(&self) -> CurrentRequest {
        self.shared.clone()
    }

    /// What the request presented (parsed on first use).
    fn presented(&self) -> &Presented {
        self.shared.presented.get_or_init(|| {
            Presented::from_credentials(&self.shared.context.config, &self.shared.credentials)
        })
    }

    /// The remember-device cookie the request carried, when remembering is configured.
    fn remember_cookie(&self) -> Option<&str> {
        let remember = self.shared.context.remember.as_ref()?;
        let name = remember.cookie_name(self.shared.context.config.cookie_name());
        cookie_values(&self.shared.credentials, &name).next()
    }

    /// The verification engine, for device management (enrolment, backup codes…).
    pub fn two_factor(&self) -> &TwoFactor {
        &self.shared.context.two_factor
    }

    /// The request's URI as the layer saw it (before nested routers strip their prefix).
    pub fn request_uri(&self) -> &Uri {
        &self.shared.request.uri
    }

    /// How the request's session id travelled, if it carried a well-formed one.
    pub fn transport(&self) -> Option<Transport> {
        match self.presented() {
            Presented::Token { transport, .. } => Some(*transport),
            _ => None,
        }
    }

    /// The session's state (one store round trip the first time in a request).
    pub async fn status(&self) -> Result<SessionStatus, SessionError> {
        let current = self.current().await?;
        let record = current.as_ref().and_then(|c| c.record.as_ref());
        Ok(SessionStatus {
            user: record.map(|r| r.user.clone()),
            verified: record.and_then(|r| r.verified.clone()),
            created_at: record.map(|r| r.created_at),
            malformed_token: matches!(self.presented(), Presented::Malformed),
        })
    }

    /// The user who passed the first factor, if any.
    pub async fn user(&self) -> Result<Option<UserId>, SessionError> {
        Ok(self.status().await?.user)
    }

    /// Whether the session passed the second factor.
    pub async fn is_verified(&self) -> Result<bool, SessionError> {
        Ok(self.status().await?.is_verified())
    }

    /// Whether the session's user has a confirmed device: as read together with the session
    /// when the store keeps it there (no further round trip), else asked of the store.
    /// [`SessionError::NotAuthenticated`] without a first-factor user.
    pub(crate) async fn is_configured(&self) -> Result<bool, SessionError> {
        let current = self.current().await?;
        let user = authenticated_user(&current)?;
        match current.as_ref().and_then(|c| c.configured) {
            Some(configured) => Ok(configured),
            None => {
                drop(current);
                Ok(self.two_factor().is_configured(&user).await?)
            }
        }
    }

    /// Starts a session for `user`, who just passed the application's first factor, and
    /// emits `session_started`. Any session the request carried ends: a new id is issued (no
    /// session fixation).
    ///
    /// The old session is never read, only deleted by its id: a record that cannot be read
    /// (damaged, or another user's) must not lock its holder out of logging in again. A store
    /// that does not answer still fails the login.
    pub async fn login(&self, user: UserId) -> Result<SessionToken, SessionError> {
        if self.shared.context.identity.is_some() {
            return Err(SessionError::ExternalLogin);
        }
        let mut current = self.shared.current.lock().await;
        let store = self.store();
        if let Some(old) = self.session_key_to_end(&current) {
            store.delete_session(&old).await?;
        }
        let now = self.now();
        let config = &self.shared.context.config;
        let record = SessionRecord {
            user: user.clone(),
            created_at: now,
            expires_at: now.saturating_add(config.absolute_lifetime()),
            verified: None,
            login: None,
        };
        let (token, key) = SessionToken::generate(&store.user_tag(&user));
        store
            .save_session(&key, &record, config.pending_idle_timeout())
            .await?;
        *current = Some(Current {
            key: Some(key),
            record: Some(record),
            external: false,
            configured: None,
        });
        self.set_session_cookie(&token);
        tracing::debug!(user = %user, "session started");
        self.two_factor()
            .emit(EventKind::SessionStarted, &user, None);
        Ok(token)
    }

    /// The id of the session this request holds: as loaded (and perhaps rotated or ended)
    /// earlier in the request, or else as presented.
    fn session_key_to_end(&self, current: &Option<Current>) -> Option<SessionKey> {
        match current {
            Some(current) => current.key.clone(),
            None => match self.presented() {
                Presented::Token { key, .. } => Some(key.clone()),
                _ => None,
            },
        }
    }

    /// The session's caller, for the engine's operations on the user's factors (see
    /// [`Caller`]): its user, how and when the session was verified, and the login it belongs
    /// to. [`SessionError::NotAuthenticated`] without a first-factor user.
    ///
    /// ```
    /// # use tower_otp::session::OtpSession;
    /// # use tower_otp::device::TotpSettings;
    /// # async fn enrol(session: OtpSession) -> Result<(), Box<dyn std::error::Error>> {
    /// let caller = session.caller().await?;
    /// // Refused unless the user has no factor yet, or verified with a code recently.
    /// let enrolment = session
    ///     .two_factor()
    ///     .enroll_totp(&caller, "Phone", caller.user().as_str(), TotpSettings::default())
    ///     .await?;
    /// # let _ = enrolment; Ok(()) }
    /// ```
    pub async fn caller(&self) -> Result<Caller, SessionError> {
        let current = self.current().await?;
        session_caller(&current)
    }

    /// Verifies `input` with the user's device `device` and marks the session verified.
    pub async fn verify(
        &self,
        device: &DeviceId,
        input: &str,
    ) -> Result<SessionVerification, SessionError> {
        let mut current = self.current().await?;
        let caller = session_caller(&current)?;
        self.claim_pending_attempt(&mut current).await?;
        let verification = self.two_factor().verify(&caller, device, input).await?;
        self.mark_verified(&mut current, verification).await
    }

    /// Verifies `input` with any of the user's confirmed devices (backup codes included) and
    /// marks the session verified.
    pub async fn verify_any(&self, input: &str) -> Result<SessionVerification, SessionError> {
        let mut current = self.current().await?;
        let caller = session_caller(&current)?;
        self.claim_pending_attempt(&mut current).await?;
        let verification = self.two_factor().verify_any(&caller, input).await?;
        self.mark_verified(&mut current, verification).await
    }

    /// Confirms a newly enrolled device with a code from it, under the factor rule of
    /// [`TwoFactor::confirm_device`]: a session that passed only the first factor may confirm
    /// the user's first device, and that confirmation then verifies the session (emitting
    /// `user_verified`); any further device needs a session verified by a code within the
    /// re-verification window, and confirming it leaves the session's verification as it was.
    pub async fn confirm_device(
        &self,
        device: &DeviceId,
        input: &str,
    ) -> Result<SessionConfirmation, SessionError> {
        let mut current = self.current().await?;
        let caller = session_caller(&current)?;
        self.claim_pending_attempt(&mut current).await?;
        let confirmed = self
            .two_factor()
            .confirm_device(&caller, device, input)
            .await?;
        self.settle_confirmation(&mut current, confirmed).await
    }

    /// Verifies the session with the browser's `answer` to the security-key ceremony this
    /// session began ([`TwoFactor::begin_key_verification`] with [`OtpSession::caller`]), as
    /// [`OtpSession::verify`] does with a code.
    #[cfg(feature = "webauthn")]
    #[cfg_attr(docsrs, doc(cfg(feature = "webauthn")))]
    pub async fn finish_key_verification(
        &self,
        answer: &crate::webauthn::PublicKeyCredential,
    ) -> Result<SessionVerification, SessionError> {
        let mut current = self.current().await?;
        let caller = session_caller(&current)?;
        self.claim_pending_attempt(&mut current).await?;
        let verification = self
            .two_factor()
            .finish_key_verification(&caller, answer)
            .await?;
        self.mark_verified(&mut current, verification).await
    }

    /// Registers the security key of the browser's `answer` to the registration this session
    /// began ([`TwoFactor::begin_key_registration`] with [`OtpSession::caller`]), under the
    /// factor rule of [`OtpSession::confirm_device`]: the user's first key verifies the
    /// session.
    #[cfg(feature = "webauthn")]
    #[cfg_attr(docsrs, doc(cfg(feature = "webauthn")))]
    pub async fn finish_key_registration(
        &self,
        answer: &crate::webauthn::RegisterPublicKeyCredential,
    ) -> Result<SessionConfirmation, SessionError> {
        let mut current = self.current().await?;
        let caller = session_caller(&current)?;
        let confirmed = self
            .two_factor()
            .finish_key_registration(&caller, answer)
            .await?;
        self.settle_confirmation(&mut current, confirmed).await
    }

    /// Verifies the session with a newly confirmed device if it is the user's first.
    async fn settle_confirmation(
        &self,
        current: &mut Option<Current>,
        confirmed: ConfirmedDevice,
    ) -> Result<SessionConfirmation, SessionError> {
        if !confirmed.first {
            return Ok(SessionConfirmation {
                confirmed,
                verified_session: false,
                token: None,
            });
        }
        let verification = confirmed.verification.clone();
        let done = self.mark_verified(current, verification).await?;
        let device = &done.verification.device;
        self.two_factor()
            .emit(EventKind::UserVerified, &device.user, Some(device));
        Ok(SessionConfirmation {
            confirmed,
            verified_session: true,
            token: done.token,
        })
    }

    /// A session that has passed only the first factor may try a limited number of codes
    /// ([`SessionConfig::with_pending_attempts`]): counts this attempt before its code is
    /// checked, and past the limit ends the session. An identity source's login cannot be
    /// ended here; it is refused further attempts instead.
    async fn claim_pending_attempt(
        &self,
        current: &mut Option<Current>,
    ) -> Result<(), SessionError> {
        let Some(Current {
            key: Some(key),
            record: Some(record),
            external,
            ..
        }) = current.clone()
        else {
            return Ok(());
        };
        if record.verified.is_some() {
            return Ok(());
        }
        let config = &self.shared.context.config;
        // The count lives as long as the session can: keeping the session busy must not
        // buy fresh attempts.
        let count = self
            .store()
            .count_session_attempt(&key, config.absolute_lifetime())
            .await?;
        if count <= u64::from(config.pending_attempts()) {
            return Ok(());
        }
        if !external {
            self.store().delete_session(&key).await?;
            *current = Some(Current::default());
            self.change_cookies(|c| c.session = Some(CookieChange::Clear));
        }
        tracing::debug!(user = %record.user, attempts = count, "too many codes tried in a pending session");
        Err(SessionError::TooManyAttempts)
    }

    /// Runs `step` with the session's caller, holding the session for the rest of the
    /// request, and records the verification it returns, if any, as [`OtpSession::verify`]
    /// does. For the verifications of other modules (push approvals).
    #[cfg_attr(not(feature = "push"), allow(dead_code))]
    pub(crate) async fn verify_with<T, F, Fut>(
        &self,
        step: F,
    ) -> Result<(T, Option<SessionVerification>), SessionError>
    where
        F: FnOnce(Caller) -> Fut,
        Fut: std::future::Future<Output = Result<(T, Option<Verification>), SessionError>>,
    {
        let mut current = self.current().await?;
        let caller = session_caller(&current)?;
        let (value, verification) = step(caller).await?;
        let verified = match verification {
            Some(verification) => Some(self.mark_verified(&mut current, verification).await?),
            None => None,
        };
        Ok((value, verified))
    }

    async fn mark_verified(
        &self,
        current: &mut Option<Current>,
        verification: Verification,
    ) -> Result<SessionVerification, SessionError> {
        let by = VerifiedBy {
            device_id: verification.device.id.clone(),
            device_kind: verification.device.kind(),
            at: verification.at,
            remembered: false,
        };
        let token = self.store_verification(current, by).await?;
        tracing::debug!(user = %verification.device.user, device = %verification.device.id, "session verified");
        Ok(SessionVerification {
            verification,
            token,
        })
    }

    /// Records `by` in the session. An own session moves to a new id (returned), atomically
    /// and only if it still exists; an identity source's login keeps its derived key.
    async fn store_verification(
        &self,
        current: &mut Option<Current>,
        by: VerifiedBy,
    ) -> Result<Option<SessionToken>, SessionError> {
        let Some(Current {
            key: Some(old_key),
            record: Some(record),
            external,
            ..
        }) = current.as_ref().cloned()
        else {
            return Err(SessionError::NotAuthenticated);
        };
        let record = SessionRecord {
            verified: Some(by),
            ..record
        };
        let idle = self.shared.context.config.idle_timeout();
        if external {
            self.store().save_session(&old_key, &record, idle).await?;
            *current = Some(Current {
                key: Some(old_key),
                record: Some(record),
                external,
                configured: None,
            });
            return Ok(None);
        }
        let (token, key) = SessionToken::generate(old_key.tag());
        if !self
            .store()
            .rotate_session(&old_key, &key, &record, idle)
            .await?
        {
            *current = Some(Current::default());
            self.change_cookies(|c| c.session = Some(CookieChange::Clear));
            return Err(SessionError::SessionEnded);
        }
        *current = Some(Current {
            key: Some(key),
            record: Some(record),
            external,
            configured: None,
        });
        self.set_session_cookie(&token);
        Ok(Some(token))
    }

    /// Remembers this browser for the device that verified the session: sets a signed
    /// remember-device cookie and records the browser in the store, so that the user's later
    /// sessions in this browser are verified without a code until it expires or is revoked.
    ///
    /// Needs remember-device cookies enabled on the layer, a cookie client, and a session
    /// verified by a code (not itself by a remembered browser).
    pub async fn remember_device(&self) -> Result<RememberedBrowser, SessionError> {
        let (Some(config), Some(Transport::Cookie) | None) =
            (&self.shared.context.remember, self.transport())
        else {
            return Err(SessionError::RememberUnavailable);
        };
        let current = self.current().await?;
        let record = current
            .as_ref()
            .and_then(|c| c.record.clone())
            .ok_or(SessionError::NotAuthenticated)?;
        let Some(verified) = record.verified.filter(|v| !v.remembered) else {
            return Err(SessionError::NotVerified);
        };
        drop(current);
        let now = self.now();
        let browser = RememberedBrowser {
            id: BrowserId::generate(),
            user: record.user.clone(),
            device_id: verified.device_id.clone(),
            created_at: now,
            last_used_at: None,
            expires_at: now.saturating_add(config.lifetime()),
            user_agent: self
                .shared
                .request
                .user_agent
                .as_ref()
                .and_then(|ua| ua.to_str().ok())
                .map(|ua| ua.chars().take(256).collect()),
        };
        let stamp = self.store().put_remembered(&browser).await?;
        let value = config.sign(&RememberClaims {
            user: self.store().user_tag(&browser.user),
            device: browser.device_id.clone(),
            browser: browser.id.clone(),
            stamp,
            issued_at: now,
            expires_at: browser.expires_at,
        });
        let max_age = config.lifetime();
        self.change_cookies(|c| {
            c.remember = Some(CookieChange::Set {
                value: Zeroizing::new(value),
                max_age,
            })
        });
        let device = self
            .store()
            .get_device(&browser.user, &browser.device_id)
            .await?;
        self.two_factor()
            .emit(EventKind::DeviceRemembered, &browser.user, device.as_ref());
        Ok(browser)
    }

    /// Ends this session: deletes it from the store and clears its cookie. Returns whether
    /// there was one; emits `logged_out` if so.
    ///
    /// Under an identity source ([`OtpLayer::with_identity`]) the login is the application's,
    /// and this ends only its second-factor verification: the user stays logged in to the
    /// application, unverified, and the next request to a guarded route asks for a code
    /// again. To log the user out, end the application's login as well (axum-login's
    /// `AuthSession::logout`, revoking the token); that alone also ends the verification,
    /// which is bound to the login.
    ///
    /// [`OtpLayer::with_identity`]: crate::layer::OtpLayer::with_identity
    pub async fn logout(&self) -> Result<bool, SessionError> {
        let mut current = self.current().await?;
        let ending = current.take().unwrap_or_default();
        let existed = match &ending.key {
            Some(key) => self.store().delete_session(key).await?,
            None => false,
        };
        *current = Some(Current::default());
        self.change_cookies(|c| c.session = Some(CookieChange::Clear));
        if let (true, Some(record)) = (existed, &ending.record) {
            self.two_factor()
                .emit(EventKind::LoggedOut, &record.user, None);
        }
        Ok(existed)
    }

    /// Ends every session of the current user, on every device and instance. Returns how many.
    ///
    /// Once the user has a confirmed device, the session must be verified
    /// ([`SessionError::NotVerified`] otherwise): a password alone does not end the user's
    /// other sessions.
    pub async fn logout_all(&self) -> Result<u64, SessionError> {
        let mut current = self.current().await?;
        let user = authenticated_user(&current)?;
        let verified = current
            .as_ref()
            .and_then(|c| c.record.as_ref())
            .is_some_and(|r| r.verified.is_some());
        if !verified && self.two_factor().is_configured(&user).await? {
            return Err(SessionError::NotVerified);
        }
        let store = self.store();
        let count = store.delete_user_sessions(&store.user_tag(&user)).await?;
        *current = Some(Current::default());
        self.change_cookies(|c| c.session = Some(CookieChange::Clear));
        tracing::debug!(user = %user, count, "all sessions ended");
        self.two_factor().emit(
            EventKind::LoggedOutEverywhere { sessions: count },
            &user,
            None,
        );
        Ok(count)
    }

    /// The current user's devices.
    pub async fn devices(&self) -> Result<Vec<Device>, SessionError> {
        let current = self.current().await?;
        let user = authenticated_user(&current)?;
        Ok(self.two_factor().devices(&user).await?)
    }

    /// The `Set-Cookie` values to write to the response, taken once.
    pub(crate) fn take_set_cookies(&self) -> Vec<String> {
        let pending = std::mem::take(
            &mut *self
                .shared
                .cookies
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        // A bearer client manages its own token; it gets no cookies.
        if (pending.session.is_none() && pending.remember.is_none())
            || self.transport() == Some(Transport::Bearer)
        {
            return Vec::new();
        }
        let config = &self.shared.context.config;
        let remember_name = self
            .shared
            .context
            .remember
            .as_ref()
            .map(|r| r.cookie_name(config.cookie_name()));
        let session = pending
            .session
            .map(|change| (config.cookie_name().to_owned(), change));
        let remember = remember_name.zip(pending.remember);
        session
            .into_iter()
            .chain(remember)
            .map(|(name, change)| match change {
                CookieChange::Set { value, max_age } => config.cookie(&name, &value, max_age),
                CookieChange::Clear => config.cookie(&name, "", Duration::ZERO),
            })
            .collect()
    }

    fn set_session_cookie(&self, token: &SessionToken) {
        let max_age = self.shared.context.config.absolute_lifetime();
        self.change_cookies(|c| {
            c.session = Some(CookieChange::Set {
                value: Zeroizing::new(token.expose().to_owned()),
                max_age,
            })
        });
    }

    fn change_cookies(&self, change: impl FnOnce(&mut PendingCookies)) {
        change(
            &mut self
                .shared
                .cookies
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
    }

    fn store(&self) -> &crate::store::SharedStore {
        self.two_factor().store()
    }

    fn now(&self) -> Timestamp {
        self.two_factor().now()
    }

    /// The session, loaded from the store on first use.
    async fn current(&self) -> Result<MutexGuard<'_, Option<Current>>, SessionError> {
        let mut current = self.shared.current.lock().await;
        if current.is_none() {
            *current = Some(self.load().await?);
        }
        Ok(current)
    }

    async fn load(&self) -> Result<Current, SessionError> {
        let current = match self.presented() {
            Presented::Nothing | Presented::Malformed => return Ok(Current::default()),
            Presented::Token { key, .. } => self.load_own(key).await?,
            Presented::External { key, user } => self.load_external(key, user).await?,
        };
        let unverified = current
            .record
            .as_ref()
            .is_some_and(|r| r.verified.is_none());
        match (self.remember_cookie(), &self.shared.context.remember) {
            (Some(cookie), Some(config)) if unverified => {
                let mut current = Some(current);
                self.apply_remembered(&mut current, config, cookie).await?;
                Ok(current.unwrap_or_default())
            }
            _ => Ok(current),
        }
    }

    /// Marks an unverified session verified by a valid remember-device cookie, or refuses
    /// the cookie (with an event, and removing it unless it belongs to another user).
    async fn apply_remembered(
        &self,
        current: &mut Option<Current>,
        config: &RememberConfig,
        cookie: &str,
    ) -> Result<(), SessionError> {
        let Some(user) = current
            .as_ref()
            .and_then(|c| c.record.as_ref())
            .map(|r| r.user.clone())
        else {
            return Ok(());
        };
        let now = self.now();
        let tag = self.store().user_tag(&user);
        let claims = match config.verify(cookie) {
            Some(claims) if !claims.user.matches(&tag) => Err(("wrong_user", false)),
            Some(claims) if claims.expires_at <= now => Err(("expired", true)),
            Some(claims) => Ok(claims),
            None => Err(("invalid", true)),
        };
        let claims = match claims {
            Ok(claims) => claims,
            Err((reason, remove_cookie)) => {
                self.refuse_remembered(&user, reason, remove_cookie);
                return Ok(());
            }
        };
        let check = self
            .store()
            .check_remembered(&user, &claims.browser, &claims.device, now)
            .await?;
        let refusal = match (&check.browser, &check.device) {
            (None, _) => Some("revoked"),
            (Some(browser), _) if browser.device_id != claims.device => Some("invalid"),
            (_, None) => Some("device_gone"),
            (_, Some(device)) if !device.confirmed => Some("device_gone"),
            _ if check.stamp != claims.stamp => Some("stamp_changed"),
            _ => None,
        };
        if let Some(reason) = refusal {
            if reason == "device_gone" {
                self.store()
                    .delete_remembered(&user, &claims.browser)
                    .await?;
            }
            self.refuse_remembered(&user, reason, true);
            return Ok(());
        }
        let Some(device) = check.device else {
            return Ok(());
        };
        let by = VerifiedBy {
            device_id: device.id.clone(),
            device_kind: device.kind(),
            at: now,
            remembered: true,
        };
        self.store_verification(current, by).await?;
        self.two_factor()
            .emit(EventKind::RememberedDeviceUsed, &user, Some(&device));
        Ok(())
    }

    fn refuse_remembered(&self, user: &UserId, reason: &str, remove_cookie: bool) {
        if remove_cookie {
            self.change_cookies(|c| c.remember = Some(CookieChange::Clear));
        }
        self.two_factor().emit(
            EventKind::RememberedDeviceRefused {
                reason: reason.to_owned(),
            },
            user,
            None,
        );
    }

    async fn load_own(&self, key: &SessionKey) -> Result<Current, SessionError> {
        let Some(loaded) = self.store().load_session(key).await? else {
            self.change_cookies(|c| c.session = Some(CookieChange::Clear));
            return Ok(Current::default());
        };
        let record = loaded.record;
        let owned = self.store().user_tag(&record.user).matches(key.tag());
        if record.expires_at <= self.now() || !owned {
            self.store().delete_session(key).await?;
            self.change_cookies(|c| c.session = Some(CookieChange::Clear));
            return Ok(Current::default());
        }
        if !self.keep_alive(key, &record, loaded.idle_left).await {
            self.change_cookies(|c| c.session = Some(CookieChange::Clear));
            return Ok(Current::default());
        }
        Ok(Current {
            key: Some(key.clone()),
            record: Some(record),
            external: false,
            configured: loaded.configured,
        })
    }

    /// Moves the session's idle deadline when it is due (once per refresh interval, so that
    /// reading a session stays a plain read). False if the session ended meanwhile. A store
    /// that fails to answer only skips the move: the session read is live until its deadline.
    async fn keep_alive(
        &self,
        key: &SessionKey,
        record: &SessionRecord,
        idle_left: Duration,
    ) -> bool {
        let config = &self.shared.context.config;
        let idle = if record.verified.is_some() {
            config.idle_timeout()
        } else {
            config.pending_idle_timeout()
        };
        if !config.needs_refresh(idle, idle_left) {
            return true;
        }
        match self.store().touch_session(key, idle).await {
            Ok(live) => live,
            Err(error) => {
                tracing::warn!(kind = error.kind(), "session idle deadline not moved");
                true
            }
        }
    }

    /// An identity source's user is authenticated whether or not a record exists yet; the
    /// record only holds the verification of this login.
    async fn load_external(
        &self,
        key: &SessionKey,
        user: &UserId,
    ) -> Result<Current, SessionError> {
        let now = self.now();
        let loaded = self.store().load_session(key).await?;
        let configured = loaded
            .as_ref()
            .filter(|l| l.record.user == *user)
            .and_then(|l| l.configured);
        let record = match loaded {
            Some(loaded)
                if loaded.record.user == *user
                    && loaded.record.expires_at > now
                    && self.keep_alive(key, &loaded.record, loaded.idle_left).await =>
            {
                loaded.record
            }
            stale => {
                if stale.is_some() {
                    self.store().delete_session(key).await?;
                }
                SessionRecord {
                    user: user.clone(),
                    created_at: now,
                    expires_at: now.saturating_add(self.shared.context.config.absolute_lifetime()),
                    verified: None,
                    login: Some(key.digest().to_owned()),
                }
            }
        };
        Ok(Current {
            key: Some(key.clone()),
            record: Some(record),
            external: true,
            configured,
        })
    }
}

/// The caller of the session as loaded: its user, verification and binding.
fn session_caller(current: &Option<Current>) -> Result<Caller, SessionError> {
    let (key, record) = current
        .as_ref()
        .and_then(|c| c.key.as_ref().zip(c.record.as_ref()))
        .ok_or(SessionError::NotAuthenticated)?;
    Ok(Caller::of_session(
        record.user.clone(),
        record.verified.clone(),
        key.digest().to_owned(),
    ))
}

fn authenticated_user(current: &Option<Current>) -> Result<UserId, SessionError> {
    current
        .as_ref()
        .and_then(|c| c.record.as_ref())
        .map(|r| r.user.clone())
        .ok_or(SessionError::NotAuthenticated)
}

impl fmt::Debug for OtpSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtpSession")
            .field("transport", &self.transport())
            .finish_non_exhaustive()
    }
}
