//! Remember-device cookies: "trust this browser for 30 days".
//!
//! After a verification the application may call
//! [`OtpSession::remember_device`](crate::session::OtpSession::remember_device). The layer
//! then sets a cookie signed with HMAC-SHA256 that binds the user, the device, a browser
//! record kept in the store, the user's stamp and its issue and expiry times. On a later,
//! not yet verified session of the same user the cookie marks the session verified by that
//! device, flagged as remembered — one store round trip.
//!
//! The cookie is refused (treated as absent, with a `remembered_device_refused` event) when
//! it was changed in any way, belongs to another user, has expired, names a device that was
//! deleted or unconfirmed, was revoked (its browser record deleted: users can list and revoke
//! their remembered browsers), the user's stamp changed (call
//! [`TwoFactor::invalidate_remembered`](crate::TwoFactor::invalidate_remembered) on a password
//! change or "sign out all browsers"), or was signed by a key no longer configured.
//!
//! Guards can refuse remembered verifications for sensitive routes
//! ([`RequireOtpLayer::no_remembered`](crate::guard::RequireOtpLayer::no_remembered)).

mod browser;
mod cookie;

pub use browser::{BrowserId, RememberedBrowser, RememberedCheck};
pub use cookie::RememberConfig;

pub(crate) use cookie::RememberClaims;
