//! # tower-otp
//!
//! A second factor (one-time passwords, backup codes, codes by email or SMS) for services
//! built on [Tower](https://docs.rs/tower): axum routers, plain hyper services, admin
//! subtrees, with state in an embedded store or in Redis shared by many instances.
//!
//! ## Start here
//!
//! Eleven items make a second factor for an axum application with a password login:
//!
//! | item | what it is for |
//! | --- | --- |
//! | [`TwoFactor`] | the engine: users' devices, verification, throttling, events; usable without HTTP |
//! | [`Keys`] | every key the crate needs ([`ServerKey`], remember-cookie key, sealing key) from one master secret: the same on every instance |
//! | [`MemoryStore`] | where state lives in one process, with nothing to run (the examples' store) |
//! | [`RedisStore`] | where state lives for many instances: Redis or a Redis Cluster (feature `redis`) |
//! | [`UserId`] | the user your first factor (your password check) found |
//! | [`OtpLayer`] | gives every request an [`OtpSession`]; add it outermost, after everything that needs it |
//! | [`OtpSession`] | the request's session: `login` once the password is right, `verify`, `logout`, `caller` |
//! | [`RequireOtpLayer`] | lets into a route or subtree only sessions that passed the second factor |
//! | [`Verified`] | the extractor of the user that passed (or that a guard let through) |
//! | [`VerifiedDevice`] | the request extension, and extractor, saying which device verified the session |
//! | [`api::router`] | the JSON API to nest under `/2fa`: enrolment, confirmation, verification, backup codes, logout (feature `api`) |
//!
//! Next, as the need arises: [`Caller`] (who asks the engine to change a user's factors,
//! see the factor rule there), [`RememberConfig`](remember::RememberConfig) (remember this
//! browser), [`SessionConfig`](session::SessionConfig) (cookie and lifetimes),
//! [`Events`](events::Events) (audit logs and notices).
//!
//! ```
//! use axum::{Router, routing::{get, post}};
//! use tower_otp::guard::{RequireOtpLayer, Verified};
//! use tower_otp::layer::OtpLayer;
//! use tower_otp::session::OtpSession;
//! use tower_otp::{MemoryStore, ServerKey, TwoFactor, UserId};
//!
//! async fn login(session: OtpSession) -> &'static str {
//!     // Check the password first; then:
//!     session.login(UserId::new("alice").unwrap()).await.unwrap();
//!     "logged in"
//! }
//!
//! async fn admin(verified: Verified) -> String {
//!     format!("hello {}", verified.user)
//! }
//!
//! let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::generate());
//! let app: Router = Router::new()
//!     .route("/admin", get(admin).layer(RequireOtpLayer::new()))
//!     .route("/login", post(login))
//!     .layer(OtpLayer::new(two_factor));
//! ```
//!
//! The README walks through a whole flow with the demo server, and [`api`] lists the
//! endpoints.
//!
//! ## The parts
//!
//! * [`layer`]: [`OtpLayer`] gives every request an [`OtpSession`], loaded from the store
//!   only when asked; [`VerifiedDeviceLayer`](layer::VerifiedDeviceLayer) loads it up front
//!   and leaves a [`VerifiedDevice`] for plain Tower services.
//! * [`guard`]: [`RequireOtpLayer`] and the [`Verified`] extractor keep unverified users out
//!   of routes and subtrees, with a status and a JSON error code, or a redirect.
//! * [`session`]: sessions by cookie or bearer token, rotated at login and verification, or a
//!   first factor from elsewhere (axum-login, a token's claims) through an
//!   [`IdentitySource`](session::IdentitySource).
//! * [`remember`]: signed, revocable remember-this-browser cookies.
//! * [`events`]: `user_verified` and its siblings, to hooks, subscribers and other instances.
//! * [`api`] (feature `api`): a ready JSON API to mount under `/2fa`.
//! * [`ui::router`] (feature `ui`): the pages a person clicks through, to mount under
//!   `/account/two-factor`.
//! * [`engine`]: [`TwoFactor`], the engine underneath: enrolment, verification, throttling
//!   and the factor rule of [`Caller`]; usable without HTTP.
//! * [`device`]: users' devices and the verification policy: replay protection, drift,
//!   throttling, backup codes, out-of-band codes.
//! * [`delivery`]: how out-of-band codes reach people: the [`Sender`](delivery::Sender) trait
//!   and the senders the crate ships (console, outbox, SMTP, webhook).
//! * [`confirm`]: the confirmation API: confirm a new email address or phone number, or a
//!   sensitive action, before it takes effect.
//! * [`keys`]: [`Keys::derive`] makes every key the crate needs from one master secret.
//! * [`otp`]: HOTP and TOTP arithmetic (RFC 4226 / RFC 6238), `otpauth://` provisioning URIs
//!   and QR codes.
//! * [`store`]: where state lives, [`MemoryStore`] or [`RedisStore`], and how to write
//!   another backend.
//! * [`clock`]: the time source, replaceable in tests.
//!
//! ## The engine without HTTP
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
//! ## Feature flags
//!
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | `redis` | yes | `RedisStore` for Redis and Redis Cluster, `RedisEventBridge` |
//! | `api` | yes | the JSON API for axum (turns on `qr`) |
//! | `qr` | with `api` | [`OtpauthUri::to_svg`](otp::OtpauthUri) |
//! | `axum-login` | no | `AxumLoginIdentity`: the first factor from axum-login |
//! | `smtp` | no | `SmtpSender`: codes by email over SMTP (lettre, rustls) |
//! | `webhook` | no | `WebhookSender`: codes through an HTTP gateway, for SMS and calls (reqwest, rustls) |
//! | `ui` | yes | [`ui::router`]: server-rendered pages (login step, setup wizard, backup codes, profile, disable), minijinja templates (turns on `qr`) |
//! | `webauthn` | no | `webauthn`: security keys and passkeys as a second factor (webauthn-rs, builds on OpenSSL) |
//!
//! ## Logs
//!
//! The crate logs through [`tracing`](https://docs.rs/tracing), never a secret, code or
//! token. At `warn`: a guard that finds the store down (at most one line every 10 seconds,
//! counting the refusals it left out), an API request that meets a store outage, the Redis
//! event bridge losing its connection, device secrets stored unencrypted (once). At `error`:
//! a panicking event hook. At `debug`: each request a guard refuses, session and device
//! changes, and every event.
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
//! * `SECURITY.md`, in the repository, states the threat model and the factor rule in full.
//!
//! [`OtpLayer`]: layer::OtpLayer
//! [`OtpSession`]: session::OtpSession
//! [`RequireOtpLayer`]: guard::RequireOtpLayer
//! [`Verified`]: guard::Verified
#![cfg_attr(feature = "redis", doc = "[`RedisStore`]: store::RedisStore")]
#![cfg_attr(not(feature = "redis"), doc = "[`RedisStore`]: #feature-flags")]
#![cfg_attr(feature = "api", doc = "[`api`]: api")]
#![cfg_attr(feature = "api", doc = "[`api::router`]: api::router")]
#![cfg_attr(not(feature = "api"), doc = "[`api`]: #feature-flags")]
#![cfg_attr(not(feature = "api"), doc = "[`api::router`]: #feature-flags")]
#![cfg_attr(feature = "ui", doc = "[`ui::router`]: ui::router")]
#![cfg_attr(not(feature = "ui"), doc = "[`ui::router`]: #feature-flags")]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "api")]
#[cfg_attr(docsrs, doc(cfg(feature = "api")))]
pub mod api;
pub mod clock;
pub mod confirm;
pub mod delivery;
pub mod device;
pub mod engine;
pub mod events;
pub mod guard;
mod hex;
pub mod keys;
pub mod layer;
pub mod otp;
pub mod push;
pub mod remember;
pub mod session;
pub mod store;
#[cfg(feature = "ui")]
#[cfg_attr(docsrs, doc(cfg(feature = "ui")))]
pub mod ui;
#[cfg(feature = "webauthn")]
#[cfg_attr(docsrs, doc(cfg(feature = "webauthn")))]
pub mod webauthn;

pub use confirm::{ConfirmError, Confirmer};
pub use device::{
    Caller, CallerState, Device, DeviceId, DeviceKind, Error, ServerKey, TwoFactor, UserId,
};
pub use keys::Keys;
pub use layer::VerifiedDevice;
pub use store::{MemoryStore, Store};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use store::{RedisConfig, RedisStore};

#[cfg(all(doctest, feature = "api"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
