//! How sessions travel and how long they live.

use std::time::Duration;

use tower_cookies::cookie::{Cookie, SameSite};

#[cfg(test)]
use super::SessionToken;

/// Session settings: cookie attributes, bearer tokens, lifetimes.
///
/// Defaults: cookie `__Host-otp-session` (`Secure`, `HttpOnly`, `SameSite=Lax`, `Path=/`),
/// bearer tokens accepted, idle timeout 2 hours, absolute lifetime 12 hours; a session that
/// has passed only the first factor lives 10 minutes idle and ends after 10 code attempts.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    cookie_name: Option<String>,
    secure: bool,
    same_site: SameSite,
    path: String,
    domain: Option<String>,
    accept_bearer: bool,
    idle_timeout: Duration,
    absolute_lifetime: Duration,
    pending_idle_timeout: Duration,
    pending_attempts: u32,
    idle_refresh: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            cookie_name: None,
            secure: true,
            same_site: SameSite::Lax,
            path: "/".to_owned(),
            domain: None,
            accept_bearer: true,
            idle_timeout: Duration::from_secs(2 * 60 * 60),
            absolute_lifetime: Duration::from_secs(12 * 60 * 60),
            pending_idle_timeout: Duration::from_secs(10 * 60),
            pending_attempts: 10,
            idle_refresh: Duration::from_secs(60),
        }
    }
}

/// A setting that cannot work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The cookie name is empty or has characters not allowed in a cookie name.
    #[error("invalid cookie name")]
    CookieName,
    /// A `__Host-` cookie must be `Secure`, have `Path=/` and no `Domain`.
    #[error("a __Host- cookie must be Secure, with Path=/ and no Domain")]
    HostPrefix,
    /// `SameSite=None` requires `Secure`.
    #[error("SameSite=None requires Secure")]
    SameSiteNone,
    /// A lifetime is zero, or an idle timeout is longer than the absolute lifetime.
    #[error(
        "lifetimes must be positive, and the idle timeout no longer than the absolute lifetime"
    )]
    Lifetime,
}

impl SessionConfig {
    /// The default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// The cookie's name (default `__Host-otp-session`, or `otp-session` when the `__Host-`
    /// prefix cannot apply).
    pub fn with_cookie_name(mut self, name: impl Into<String>) -> Result<Self, ConfigError> {
        let name = name.into();
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
        if !valid {
            return Err(ConfigError::CookieName);
        }
        self.cookie_name = Some(name);
        self.checked()
    }

    /// Whether the cookie is `Secure` (default true). Turn it off only for plain-HTTP
    /// development servers.
    pub fn with_secure(mut self, secure: bool) -> Result<Self, ConfigError> {
        self.secure = secure;
        self.checked()
    }

    /// The cookie's `SameSite` (default `Lax`).
    pub fn with_same_site(mut self, same_site: SameSite) -> Result<Self, ConfigError> {
        self.same_site = same_site;
        self.checked()
    }

    /// The cookie's `Path` (default `/`).
    pub fn with_path(mut self, path: impl Into<String>) -> Result<Self, ConfigError> {
        self.path = path.into();
        self.checked()
    }

    /// The cookie's `Domain` (default none: the exact host).
    pub fn with_domain(mut self, domain: impl Into<String>) -> Result<Self, ConfigError> {
        self.domain = Some(domain.into());
        self.checked()
    }

    /// Whether `Authorization: Bearer` session ids are accepted (default true).
    pub fn with_bearer(mut self, accept: bool) -> Self {
        self.accept_bearer = accept;
        self
    }

    /// How long a session lives without being used (default 2 hours).
    pub fn with_idle_timeout(mut self, idle: Duration) -> Result<Self, ConfigError> {
        self.idle_timeout = idle;
        self.checked()
    }

    /// How long a session lives at most, however active (default 12 hours).
    pub fn with_absolute_lifetime(mut self, lifetime: Duration) -> Result<Self, ConfigError> {
        self.absolute_lifetime = lifetime;
        self.checked()
    }

    /// How long a session that has passed only the first factor lives without being used
    /// (default 10 minutes): a password alone buys a short window for the second factor, not
    /// a session. Verifying gives the session the full idle timeout.
    pub fn with_pending_idle_timeout(mut self, idle: Duration) -> Result<Self, ConfigError> {
        self.pending_idle_timeout = idle;
        self.checked()
    }

    /// How many codes a session that has passed only the first factor may try (default 10,
    /// at least 1); the session ends at the next attempt, and the user must log in again.
    /// This is on top of the per-device and per-user throttles, which span sessions.
    pub fn with_pending_attempts(mut self, attempts: u32) -> Self {
        self.pending_attempts = attempts.max(1);
        self
    }

    /// How often at most a session's idle deadline is moved (default 60 s, and at most half
    /// the idle timeout). Reading a session is a plain read; a request that finds less than
    /// the idle timeout minus this interval left writes the new deadline (one more store
    /// operation, once per interval per session). So a session ends between `idle - interval`
    /// and `idle` after its last use.
    pub fn with_idle_refresh(mut self, interval: Duration) -> Self {
        self.idle_refresh = interval;
        self
    }

    /// Whether a session with `idle_left` of an idle timeout of `idle` is due a touch.
    pub(crate) fn needs_refresh(&self, idle: Duration, idle_left: Duration) -> bool {
        let interval = self.idle_refresh.min(idle / 2);
        idle_left < idle.saturating_sub(interval)
    }

    fn checked(self) -> Result<Self, ConfigError> {
        if let Some(name) = &self.cookie_name
            && name.starts_with("__Host-")
            && !self.host_prefix_allowed()
        {
            return Err(ConfigError::HostPrefix);
        }
        if self.same_site == SameSite::None && !self.secure {
            return Err(ConfigError::SameSiteNone);
        }
        if self.idle_timeout.is_zero()
            || self.idle_timeout > self.absolute_lifetime
            || self.pending_idle_timeout.is_zero()
            || self.pending_idle_timeout > self.absolute_lifetime
        {
            return Err(ConfigError::Lifetime);
        }
        Ok(self)
    }

    fn host_prefix_allowed(&self) -> bool {
        self.secure && self.path == "/" && self.domain.is_none()
    }

    /// The cookie name in use.
    pub fn cookie_name(&self) -> &str {
        match &self.cookie_name {
            Some(name) => name,
            None if self.host_prefix_allowed() => "__Host-otp-session",
            None => "otp-session",
        }
    }

    /// Whether bearer session ids are accepted.
    pub fn accepts_bearer(&self) -> bool {
        self.accept_bearer
    }

    /// The idle timeout.
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// The absolute lifetime.
    pub fn absolute_lifetime(&self) -> Duration {
        self.absolute_lifetime
    }

    /// The idle timeout of a session that has passed only the first factor.
    pub fn pending_idle_timeout(&self) -> Duration {
        self.pending_idle_timeout
    }

    /// The longest interval between two moves of a session's idle deadline (see
    /// [`SessionConfig::with_idle_refresh`]).
    pub fn idle_refresh(&self) -> Duration {
        self.idle_refresh
    }

    /// How many codes a session that has passed only the first factor may try.
    pub fn pending_attempts(&self) -> u32 {
        self.pending_attempts
    }

    /// The `Set-Cookie` value carrying `token` for `max_age`.
    #[cfg(test)]
    fn set_cookie(&self, token: &SessionToken, max_age: Duration) -> String {
        self.cookie(self.cookie_name(), token.expose(), max_age)
    }

    /// The `Set-Cookie` value that removes the cookie.
    #[cfg(test)]
    fn clear_cookie(&self) -> String {
        self.cookie(self.cookie_name(), "", Duration::ZERO)
    }

    /// A `Set-Cookie` value with this configuration's attributes: `HttpOnly`, `Secure`,
    /// `SameSite`, `Path`, `Domain`. An empty value with no `max_age` removes the cookie.
    pub(crate) fn cookie(&self, name: &str, value: &str, max_age: Duration) -> String {
        let mut cookie = Cookie::build((name.to_owned(), value.to_owned()))
            .http_only(true)
            .secure(self.secure)
            .same_site(self.same_site)
            .path(self.path.clone())
            .max_age(tower_cookies::cookie::time::Duration::seconds(
                i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX),
            ));
        if let Some(domain) = &self.domain {
            cookie = cookie.domain(domain.clone());
        }
        cookie.build().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::UserId;
    use crate::session::UserTag;

    #[test]
    fn the_default_cookie_is_host_prefixed_secure_http_only_and_lax() {
        let config = SessionConfig::default();
        let (token, _) = SessionToken::generate(&UserTag::unkeyed(&UserId::new("a").unwrap()));
        let cookie = config.set_cookie(&token, Duration::from_secs(60));
        assert!(cookie.starts_with(&format!("__Host-otp-session={}", token.expose())));
        for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/", "Max-Age=60"] {
            assert!(cookie.contains(attribute), "{cookie}");
        }
        assert!(!cookie.contains("Domain"));
        let cleared = config.clear_cookie();
        assert!(cleared.starts_with("__Host-otp-session=;"), "{cleared}");
        assert!(cleared.contains("Max-Age=0"));
    }

    #[test]
    fn a_session_is_touched_once_per_refresh_interval() {
        let config = SessionConfig::default().with_idle_refresh(Duration::from_secs(60));
        let hour = Duration::from_secs(3600);
        assert!(!config.needs_refresh(hour, hour));
        assert!(!config.needs_refresh(hour, hour - Duration::from_secs(60)));
        assert!(config.needs_refresh(hour, hour - Duration::from_secs(61)));
        // Never less often than every half idle timeout.
        let short = Duration::from_secs(10);
        assert!(config.needs_refresh(short, Duration::from_secs(4)));
        assert!(!config.needs_refresh(short, Duration::from_secs(5)));
    }

    #[test]
    fn impossible_settings_are_refused() {
        let config = SessionConfig::default();
        assert_eq!(
            config.clone().with_secure(false).unwrap().cookie_name(),
            "otp-session"
        );
        assert_eq!(
            config
                .clone()
                .with_cookie_name("__Host-x")
                .unwrap()
                .with_secure(false)
                .unwrap_err(),
            ConfigError::HostPrefix
        );
        assert_eq!(
            config.clone().with_cookie_name("a b").unwrap_err(),
            ConfigError::CookieName
        );
        assert_eq!(
            config.clone().with_cookie_name("").unwrap_err(),
            ConfigError::CookieName
        );
        assert_eq!(
            config
                .clone()
                .with_same_site(SameSite::None)
                .unwrap()
                .with_secure(false)
                .unwrap_err(),
            ConfigError::SameSiteNone
        );
        assert_eq!(
            config
                .clone()
                .with_idle_timeout(Duration::from_secs(13 * 3600))
                .unwrap_err(),
            ConfigError::Lifetime
        );
        assert_eq!(
            config.with_domain("example.com").unwrap().cookie_name(),
            "otp-session"
        );
    }
}
