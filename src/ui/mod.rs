//! Server-rendered pages for people (feature `ui`): the verification step of a login, the
//! setup wizard, backup codes, the profile and disabling the second factor, for axum.
//!
//! Nest [`router`] where the application wants it, inside an
//! [`OtpLayer`](crate::layer::OtpLayer), next to the application's own password login:
//!
//! ```
//! use axum::Router;
//! use tower_otp::layer::OtpLayer;
//! use tower_otp::ui::{self, UiConfig};
//! use tower_otp::{MemoryStore, ServerKey, TwoFactor};
//!
//! let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::generate());
//! let app: Router = Router::new()
//!     .nest("/account/two-factor", ui::router(UiConfig::new().with_login_url("/login")))
//!     .layer(OtpLayer::new(two_factor));
//! ```
//!
//! The pages work with JavaScript off, and are a second front-end over the same engine as
//! the [JSON API](crate::api): every rule (the factor rule of [`Caller`](crate::Caller),
//! throttling, replay protection) is the engine's.
//!
//! | page | does |
//! | --- | --- |
//! | `GET /` | the profile: whether the second factor is on, the primary and backup methods; rename a device, make it the default, remove it; remembered browsers (revoke one, all); sign out everywhere |
//! | `GET /verify?next=` | the verification step of a login, and the step-up page of [`RequireOtpLayer`](crate::guard::RequireOtpLayer)'s redirect mode and `max_age`: choose a device, have a code sent or a call placed, enter it, remember this browser, or use a backup code instead; then on to `next` |
//! | `GET /setup` | the setup wizard: introduction, choose a method, configure it (an authenticator app by QR code or by typing its secret; a phone number or an address, checked with a code), confirm; `GET /setup/complete` ends it |
//! | `GET /backup-codes` | how many backup codes are left; `POST` makes a new set, shown once, to print or download as text |
//! | `GET /disable` | turns the second factor off, with a code |
//! | `GET /style.css` | the stylesheet |
//! | `POST /verify/key`, `GET /webauthn.js` | with feature `webauthn`: "Use your security key" on the verification step, and the small script that asks the browser for the key (the setup wizard offers "Security key" as a method) |
//!
//! Point the guard's redirect mode at the pages:
//! `RedirectTargets::new("/login", "/account/two-factor/verify").with_setup("/account/two-factor/setup")`.
//!
//! # The factor rule, on pages
//!
//! Every page that changes a factor (adding a method, new backup codes, removing a device,
//! disabling) asks the engine, which refuses a session that is not freshly verified by a code
//! while the user has a factor (`VerificationRequired`, `ReauthenticationRequired`). The page
//! then sends the user to `verify` with `next` set to the page they were on: they enter a
//! code, and come back.
//!
//! # Security
//!
//! * Every form `POST` carries a CSRF token bound to the session: an HMAC of the session's id
//!   digest under a key derived from the [`ServerKey`](crate::ServerKey), compared in
//!   constant time. A `POST` without the right one is refused with 403. The token changes
//!   whenever the session id does (login, verification).
//! * Every answer carries a strict `Content-Security-Policy` (`default-src 'none'`, the
//!   stylesheet from the same origin, no script at all), `Cache-Control: no-store` (pages
//!   show secrets, backup codes, masked numbers), `X-Frame-Options: DENY`,
//!   `X-Content-Type-Options: nosniff` and `Referrer-Policy: same-origin`.
//! * `next` is followed only when it is a local path ([`safe_next`](crate::guard::safe_next)):
//!   it starts with one `/`, has no backslash and no control characters. Anything else is
//!   ignored, and the user goes to the home page.
//! * Code fields have `autocomplete="one-time-code"` and `inputmode="numeric"`; a code with
//!   letters gets a message without costing a verification attempt.
//!
//! # Templates
//!
//! The pages are [minijinja](https://docs.rs/minijinja) templates, shipped embedded in the
//! crate. Minijinja because it is made for this: templates are data, loaded at run time, so
//! an application replaces any of them ([`UiConfig::with_template`]) and the stylesheet
//! ([`UiConfig::with_stylesheet`]) without forking the crate or a build step; the Jinja
//! syntax is known to designers and translators; autoescaping is on for every template
//! (values can never become markup); and it compiles fast with few dependencies. Compile-time
//! engines (askama) would make every change a rebuild of the crate and rule out replacing a
//! template at run time.
//!
//! Every text a person reads is in a template, ready for translation: handlers hand the
//! templates data and stable codes (`invalid_code`, `throttled`, …), and `macros.html` turns
//! codes, method keys and device kinds into words. [`TEMPLATE_NAMES`] lists the templates.

// Gates and checks answer early with the page to show: a `Response` in the error variant,
// made once per request, where its size costs nothing.
#![allow(clippy::result_large_err)]

mod backup;
mod config;
mod csrf;
mod disable;
mod form;
#[cfg(feature = "webauthn")]
mod keys;
mod page;
mod profile;
mod setup;
mod templates;
mod verify;
mod views;
mod visitor;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

pub use config::{TemplateError, UiConfig};
pub use templates::TEMPLATE_NAMES;

use page::Ui;

/// The pages' routes, to nest under a prefix of your choice inside an `OtpLayer`.
///
/// The router carries its own state, so it fits any application's router: `S` is the state
/// of the router it is nested into (or `()`).
pub fn router<S>(config: UiConfig) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let ui = Arc::new(Ui::new(config));
    routes()
        .fallback(page::not_found)
        // Added last, so that it wraps every route and the fallback.
        .layer(axum::middleware::map_response(page::security_headers))
        .with_state(ui)
}

fn routes() -> Router<Arc<Ui>> {
    let routes = Router::new()
        .route("/", get(profile::show))
        .route("/style.css", get(page::stylesheet))
        .route("/verify", get(verify::show).post(verify::submit))
        .route("/verify/send", post(verify::send))
        .route("/setup", get(setup::intro))
        .route("/setup/complete", get(setup::complete))
        .route("/setup/confirm", post(setup::confirm))
        .route("/setup/resend", post(setup::resend))
        .route(
            "/setup/method/{method}",
            get(setup::method).post(setup::start),
        )
        .route("/backup-codes", get(backup::show).post(backup::generate))
        .route("/disable", get(disable::show).post(disable::submit))
        .route("/disable/send", post(disable::send))
        .route("/devices/{id}/rename", post(profile::rename))
        .route("/devices/{id}/default", post(profile::make_default))
        .route("/devices/{id}/remove", post(profile::remove))
        .route("/browsers/{id}/revoke", post(profile::revoke_browser))
        .route("/browsers/revoke-all", post(profile::revoke_all_browsers))
        .route("/logout", post(profile::logout))
        .route("/logout-all", post(profile::logout_all));
    #[cfg(feature = "webauthn")]
    let routes = routes
        .route("/webauthn.js", get(keys::script))
        .route("/verify/key", post(keys::begin_verification))
        .route("/verify/key/finish", post(keys::finish_verification))
        .route("/setup/key/finish", post(keys::finish_registration));
    routes
}
