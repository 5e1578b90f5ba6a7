//! Security keys and passkeys (WebAuthn) as a second factor, on
//! [webauthn-rs](https://docs.rs/webauthn-rs) (feature `webauthn`).
//!
//! A [`RelyingParty`] names the site keys are registered for: its id (a domain) and the origin
//! pages run on. [`TwoFactor::with_webauthn`](crate::TwoFactor::with_webauthn) makes the
//! engine accept keys; then each ceremony is two round trips, a *begin* that returns the
//! options for the browser's `navigator.credentials` call and a *finish* that checks its
//! answer:
//!
//! * registration ([`TwoFactor::begin_key_registration`](crate::TwoFactor::begin_key_registration),
//!   [`TwoFactor::finish_key_registration`](crate::TwoFactor::finish_key_registration)) adds a
//!   confirmed device of kind [`DeviceKind::WebAuthn`](crate::DeviceKind::WebAuthn): a factor
//!   change, under the factor rule like any other (see [`Caller`](crate::Caller));
//! * verification ([`TwoFactor::begin_key_verification`](crate::TwoFactor::begin_key_verification),
//!   [`TwoFactor::finish_key_verification`](crate::TwoFactor::finish_key_verification))
//!   verifies the caller as a code does, throttled as codes are.
//!
//! The state between the two steps stays in the [`Store`](crate::Store), bound to the session
//! that began the ceremony, used once, and forgotten after [`CEREMONY_LIFETIME`]. The store
//! checks and moves each key's signature counter atomically: a key whose counter goes
//! backwards (a cloned authenticator) is refused, and reported as
//! [`EventKind::WebauthnCounterRegressed`](crate::events::EventKind::WebauthnCounterRegressed).
//!
//! Keys are registered as webauthn-rs "security keys": user verification (a PIN, a
//! fingerprint) is asked for where the authenticator offers it, so a passkey works too.
//!
//! ```
//! use tower_otp::webauthn::RelyingParty;
//!
//! let site = RelyingParty::new("example.com", "https://login.example.com", "ACME").unwrap();
//! assert_eq!(site.id(), "example.com");
//! // A page on another site could never use the keys: refused when the service starts.
//! assert!(RelyingParty::new("example.com", "https://example.org", "ACME").is_err());
//! ```

mod ceremony;

use std::fmt;
use std::time::Duration;

use webauthn_rs::prelude::{Url, Webauthn, WebauthnBuilder};

pub use ceremony::{KeyRegistrationOptions, KeyVerificationOptions};
/// The browser's answers, as webauthn-rs reads them from JSON.
pub use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential};

/// How long a ceremony may take between its begin and its finish.
pub const CEREMONY_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// The site security keys are registered for and answer: a relying party id (a registrable
/// domain, such as `example.com`) and the origin the pages run on (`https://login.example.com`),
/// whose host must be the id or below it.
///
/// Checked when built, so that a misconfigured service fails as it starts rather than at each
/// user's first key: the origin must be `https://` (or `http://localhost`, for development),
/// with no path, query, fragment or credentials.
pub struct RelyingParty {
    id: String,
    origin: Url,
    webauthn: Webauthn,
}

impl RelyingParty {
    /// The relying party `id` for pages at `origin`, shown to users as `name`.
    pub fn new(id: &str, origin: &str, name: &str) -> Result<Self, RelyingPartyError> {
        let origin = Url::parse(origin).map_err(|_| RelyingPartyError::InvalidOrigin)?;
        check_origin(&origin)?;
        if id.is_empty() || id != id.to_ascii_lowercase() || name.trim().is_empty() {
            return Err(RelyingPartyError::InvalidId);
        }
        let webauthn = WebauthnBuilder::new(id, &origin)
            .map_err(|_| RelyingPartyError::OriginOutsideId)?
            .rp_name(name)
            .timeout(CEREMONY_LIFETIME)
            .build()
            .map_err(|_| RelyingPartyError::OriginOutsideId)?;
        Ok(RelyingParty {
            id: id.to_owned(),
            origin,
            webauthn,
        })
    }

    /// The relying party id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The origin the pages run on, as configured.
    pub fn origin(&self) -> &str {
        self.origin.as_str().trim_end_matches('/')
    }

    pub(crate) fn webauthn(&self) -> &Webauthn {
        &self.webauthn
    }
}

/// An origin browsers treat as secure, and nothing but an origin.
fn check_origin(origin: &Url) -> Result<(), RelyingPartyError> {
    let bare = origin.path() == "/"
        && origin.query().is_none()
        && origin.fragment().is_none()
        && origin.username().is_empty()
        && origin.password().is_none();
    if !bare {
        return Err(RelyingPartyError::InvalidOrigin);
    }
    match (origin.scheme(), origin.host_str()) {
        ("https", Some(_)) | ("http", Some("localhost")) => Ok(()),
        _ => Err(RelyingPartyError::InsecureOrigin),
    }
}

impl fmt::Debug for RelyingParty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelyingParty")
            .field("id", &self.id)
            .field("origin", &self.origin())
            .finish_non_exhaustive()
    }
}

/// Why a [`RelyingParty`] could not be built: a configuration error to fix before starting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RelyingPartyError {
    /// The origin is not a URL of the form `scheme://host[:port]`.
    #[error("the WebAuthn origin must be scheme://host[:port], with no path, query or credentials")]
    InvalidOrigin,
    /// The origin is neither `https://` nor `http://localhost`: browsers refuse WebAuthn there.
    #[error("the WebAuthn origin must use https (http only for localhost)")]
    InsecureOrigin,
    /// The relying party id or name is empty, or the id is not in lowercase.
    #[error("the WebAuthn relying party id must be a lowercase domain, and its name not empty")]
    InvalidId,
    /// The origin's host is not the relying party id nor a name below it.
    #[error("the WebAuthn origin's host must be the relying party id or a subdomain of it")]
    OriginOutsideId,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relying_party_takes_only_a_secure_origin_of_its_own_domain() {
        let ok = |id, origin| RelyingParty::new(id, origin, "ACME");
        assert!(ok("example.com", "https://example.com").is_ok());
        assert!(ok("example.com", "https://login.example.com:8443").is_ok());
        assert!(ok("localhost", "http://localhost:3000").is_ok());
        let refused = |id, origin| ok(id, origin).unwrap_err();
        assert_eq!(
            refused("example.com", "https://example.org"),
            RelyingPartyError::OriginOutsideId
        );
        assert_eq!(
            refused("example.com", "https://badexample.com"),
            RelyingPartyError::OriginOutsideId
        );
        assert_eq!(
            refused("example.com", "http://example.com"),
            RelyingPartyError::InsecureOrigin
        );
        assert_eq!(
            refused("127.0.0.1", "http://127.0.0.1:3000"),
            RelyingPartyError::InsecureOrigin
        );
        for bad in [
            "example.com",
            "https://example.com/login",
            "https://example.com/?q=1",
            "https://user:pw@example.com",
        ] {
            assert_eq!(
                refused("example.com", bad),
                RelyingPartyError::InvalidOrigin,
                "{bad}"
            );
        }
        assert_eq!(
            refused("Example.com", "https://example.com"),
            RelyingPartyError::InvalidId
        );
        assert_eq!(
            refused("", "https://example.com"),
            RelyingPartyError::InvalidId
        );
    }

    #[test]
    fn debug_names_the_site() {
        let site = RelyingParty::new("example.com", "https://example.com", "ACME").unwrap();
        assert_eq!(
            format!("{site:?}"),
            r#"RelyingParty { id: "example.com", origin: "https://example.com", .. }"#
        );
    }
}

#[cfg(test)]
mod engine_tests;
