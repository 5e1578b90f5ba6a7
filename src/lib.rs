//! # tower-otp
//!
//! A second factor (one-time passwords, backup codes, codes by email or SMS) for services
//! built on [Tower](https://docs.rs/tower): axum routers, plain hyper services, admin
//! subtrees, with state in an embedded store or in Redis shared by many instances.
//!
//! * [`layer`]: [`OtpLayer`](layer::OtpLayer) gives every request an
//!   [`OtpSession`](session::OtpSession), loaded from the store only when asked.
//! * [`guard`]: [`RequireOtpLayer`](guard::RequireOtpLayer) and the
//!   [`Verified`](guard::Verified) extractor keep unverified users out of routes and subtrees.
//! * [`session`]: sessions by cookie or bearer token, rotated at login and verification, or a
//!   first factor from elsewhere (axum-login, a token's claims) through an
//!   [`IdentitySource`](session::IdentitySource).
//! * [`remember`]: signed, revocable remember-this-browser cookies.
//! * [`events`]: `user_verified` and its siblings, to hooks, subscribers and other instances.
//! * [`api`] (feature `api`): a ready JSON API to mount under `/2fa`.
//! * [`device`]: users' devices and the verification policy — replay protection, drift,
//!   throttling with a cap, a per-user lockout, backup codes stored as keyed hashes, secrets
//!   sealed at rest, out-of-band codes delivered through a [`Sender`](device::Sender).
//!   [`TwoFactor`] is the engine underneath, usable without HTTP.
//! * [`confirm`]: the confirmation API — confirm a new email address or phone number, or a
//!   sensitive action, before it takes effect; each confirmation is used once.
//! * [`keys`]: [`Keys::derive`] makes every key the crate needs from one master secret.
//! * [`otp`]: HOTP and TOTP arithmetic (RFC 4226 / RFC 6238), token parsing, constant-time
//!   comparison, `otpauth://` provisioning URIs and QR codes.
//! * [`store`]: the one persistence trait, with the embedded [`MemoryStore`] and (feature
//!   `redis`) a Redis and Redis Cluster store; every race-sensitive check is atomic in the
//!   store.
//!
//! ## Example
//!
//! ```
//! use tower_otp::{ServerKey, TwoFactor, UserId};
//! use tower_otp::device::TotpSettings;
//! use tower_otp::store::MemoryStore;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::generate())
//!     .with_issuer("ACME")
//!     .unwrap();
//! let user = UserId::new("alice").unwrap();
//! let enrolment = two_factor
//!     .enroll_totp(&user, "Phone", "alice@example.com", TotpSettings::default())
//!     .await?;
//! // Show enrolment.uri as a QR code; the user types the code their app shows.
//! let code = enrolment.current_code(two_factor.now());
//! two_factor.confirm_device(&user, &enrolment.device.id, &code).await?;
//! assert!(two_factor.is_configured(&user).await?);
//! # Ok::<(), tower_otp::Error>(())
//! # }).unwrap();
//! ```
//!
//! See [`guard`] for a guarded axum router and [`api`] for the JSON API.
//!
//! ## Feature flags
//!
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | `redis` | yes | `RedisStore` for Redis and Redis Cluster, `RedisEventBridge` |
//! | `api` | yes | the JSON API for axum (turns on `qr`) |
//! | `qr` | with `api` | [`OtpauthUri::to_svg`](otp::OtpauthUri) |
//! | `axum-login` | no | `AxumLoginIdentity`: the first factor from axum-login |
//! | `smtp` | no | `SmtpSender`: codes by email over SMTP (lettre, rustls) |
//! | `webhook` | no | `WebhookSender`: codes through an HTTP gateway, for SMS (reqwest, rustls) |
//!
//! ## Security and deployment notes
//!
//! * Give every instance the same [`ServerKey`] (backup and out-of-band codes are hashed under
//!   it), the same remember-cookie keys, and, to keep device secrets out of store dumps, a
//!   [`SecretSealer`](device::SecretSealer). [`Keys::derive`] makes all of them from one
//!   master secret; its docs say how each one rotates.
//! * Session cookies are `Secure`, `HttpOnly`, `SameSite=Lax` and `__Host-` prefixed by
//!   default: serve over HTTPS. `SameSite=Lax` is no CSRF protection for state-changing
//!   requests from same-site pages; add your own CSRF defence to cookie-authenticated forms.
//! * Secrets, codes and keys never appear in `Debug` output, logs, events or errors.
//! * Any store error fails closed: guards answer 503, verifications fail.
//! * With Redis, enable persistence (AOF) if it is your store of record: without it a restart
//!   forgets devices, used codes and locks.

#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "api")]
#[cfg_attr(docsrs, doc(cfg(feature = "api")))]
pub mod api;
pub mod clock;
pub mod confirm;
pub mod device;
pub mod events;
pub mod guard;
pub mod keys;
pub mod layer;
pub mod otp;
pub mod remember;
pub mod session;
pub mod store;

pub use confirm::{ConfirmError, Confirmer};
pub use device::{
    Caller, CallerState, Device, DeviceId, DeviceKind, Error, ServerKey, TwoFactor, UserId,
};
pub use keys::Keys;
pub use store::{MemoryStore, Store};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use store::{RedisConfig, RedisStore};

#[cfg(all(doctest, feature = "api"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
