//! A ready JSON API for axum (feature `api`): devices, provisioning, backup codes,
//! challenges, confirmations, verification, remembered browsers and logout.
//!
//! Nest [`router`] where you like, inside an [`OtpLayer`](crate::layer::OtpLayer):
//!
//! ```
//! use axum::Router;
//! use tower_otp::api::{self, ApiConfig};
//! use tower_otp::layer::OtpLayer;
//! use tower_otp::{MemoryStore, ServerKey, TwoFactor};
//!
//! let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::generate());
//! let app: Router = Router::new()
//!     .nest("/2fa", api::router(ApiConfig::new()))
//!     .layer(OtpLayer::new(two_factor));
//! ```
//!
//! JSON in, JSON out; times are milliseconds since the Unix epoch. A one-time code, from an
//! app, a token, a message or the backup codes, is always sent as `code` (`token`, its older
//! name, is accepted too). Errors are `{"error": "<stable_code>", "message": "..."}`: 400
//! malformed request (`invalid_request` names a missing field: "missing field `code`"), 401
//! not authenticated or wrong code, 403 not allowed (for example
//! `reauthentication_required`), 404 unknown, 409 conflict, 429 throttled (with
//! `Retry-After`), 503 store down. Messages never quote the request body.
//!
//! | endpoint | does |
//! | --- | --- |
//! | `GET methods` | the available methods (and confirmation methods) |
//! | `GET devices` | the user's devices |
//! | `POST devices` `{method, name, config?}` | adds a device: `totp` (`config`: `algorithm`, `digits` 6/8, `period`) and `hotp` answer `{"device", "provisioning": {"secret", "otpauth_uri"}}` once, and `POST devices?qr=svg` adds `qr_svg`, the URI as an SVG QR code (about 23 KB); an out-of-band channel (`config`: `destination`) sends the first code |
//! | `POST devices/{id}/confirm` `{code}` | confirms a new device with a code (and verifies the session) |
//! | `PATCH devices/{id}` `{name?, default?}` | renames it, or makes it the default |
//! | `DELETE devices/{id}` | removes it |
//! | `POST disable` `{code}` | removes every device, once `code` from one of them verified the session; without a confirmed device there is nothing to remove and no code is needed |
//! | `POST backup-codes` / `GET backup-codes` | a new set (shown once) / how many remain |
//! | `POST challenges` `{device_id}` | sends a code to an out-of-band device; for a push device (feature `push`), sends an approval and answers its `id` (also as `uuid`), the `number` to show and `expires_at` |
//! | `GET approvals/{id}` (`?wait=N`) | push: the approval's `status` (`pending`, `approved`, `denied`, `reported`, `expired`, `used`) for the session that asked for it; once approved it verifies that session, once (`verified`, and the rotated `token` for bearer clients); `wait` (0 to 30 s) holds the answer until the status changes |
//! | `POST approvals/{id}/answer` `{decision, number?, timestamp, signature}` | push: the phone's answer, signed by the device key over [`answer_message`](crate::push::answer_message); called by the phone, with no session and outside the cross-site defence; refused with `bad_signature`, `stale_answer`, `wrong_number` (which denies the approval), `approval_answered`, `approval_expired`, `approval_not_found` |
//! | `POST confirmations` `{method, state?}`, `GET confirmations/{id}`, `POST confirmations/{id}/confirm` `{data?}` | the confirmation API |
//! | `POST verify` `{device_id?, code, remember?}` | verifies the session; without `device_id` any confirmed device may match, backup codes included; bearer clients get the rotated session `token` |
//! | `GET remembered`, `DELETE remembered/{id}`, `DELETE remembered` | the user's remembered browsers |
//! | `GET status` | authenticated, user, verified, device, verified_at, remembered, configured, and `devices`: the confirmed ones to choose from, `{id, kind, name, default, destination?}` (out-of-band destinations masked) |
//! | `POST webauthn/register/begin` `{name}`, `POST webauthn/register/finish` `{credential}` | registers a security key (feature `webauthn`): the options for `navigator.credentials.create()`, then the browser's answer; the key is a confirmed device at once (and the user's first verifies the session) |
//! | `POST webauthn/verify/begin`, `POST webauthn/verify/finish` `{credential, remember?}` | verifies the session with a security key: the options for `navigator.credentials.get()`, then the browser's answer; answered as `verify` |
//! | `POST logout`, `POST logout-all` | ends this session / every session of the user (under an identity source, `logout` ends only the second-factor verification: the application's login goes on) |
//!
//! The engine's factor rule applies to every endpoint (see [`Caller`](crate::Caller)): for a
//! user who has a confirmed device, adding, confirming or removing devices and creating
//! backup codes need a code verification younger than
//! [`TwoFactor::with_reauthentication_window`](crate::TwoFactor::with_reauthentication_window)
//! (default 20 minutes), answered `403 otp_required` for a first-factor session and
//! `403 reauthentication_required` for a remembered or stale one; disabling the second
//! factor takes a code in the request itself. Only the first device's confirmation verifies
//! the session. Each change emits an event, to turn into a notice to the user. Listing
//! devices, backup codes left and remembered browsers needs a verified session (`403
//! otp_required`) from such users; `GET status` does not, so that a login page can use it.
//! Responses carrying a secret are sent with `Cache-Control: no-store`.
//!
//! Every request other than GET, HEAD and OPTIONS must say `Content-Type: application/json`
//! (`415 unsupported_media_type` otherwise); endpoints that take no fields accept an empty
//! body or `{}` and ignore it. These requests are refused with `403 cross_site_request` when
//! `Sec-Fetch-Site` is `cross-site` (anything but `same-origin`, `same-site` or `none`), or
//! when `Origin` is present and is not the request's own origin: its scheme when the request
//! says it, host and port, from the request target or `Host`, or from `X-Forwarded-Proto`
//! and `X-Forwarded-Host` with [`ApiConfig::with_trusted_forwarded_headers`]. `Origin: null`
//! is refused. Together with the JSON type, which a page of another origin cannot send
//! without a CORS preflight, this keeps pages of other sites, sibling subdomains included,
//! from acting with a user's cookie.

mod account;
#[cfg(feature = "push")]
mod approvals;
mod config;
mod csrf;
mod devices;
mod error;
mod extract;
mod views;
#[cfg(feature = "webauthn")]
mod webauthn;

use std::sync::Arc;

use axum::routing::{get, patch, post};
use axum::{Router, middleware};

pub use config::ApiConfig;
pub use error::ApiError;

/// The API's routes, to nest under a prefix of your choice inside an `OtpLayer`.
///
/// The router carries its own state, so it fits any application's router: `S` is the
/// state of the router it is nested into (or `()`).
///
/// ```
/// use axum::Router;
/// use axum::extract::State;
/// use axum::routing::get;
/// use tower_otp::api::{self, ApiConfig};
/// use tower_otp::layer::OtpLayer;
/// use tower_otp::{MemoryStore, ServerKey, TwoFactor};
///
/// #[derive(Clone)]
/// struct AppState {
///     greeting: &'static str,
/// }
///
/// async fn hello(State(state): State<AppState>) -> &'static str {
///     state.greeting
/// }
///
/// let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::generate());
/// let app: Router<AppState> = Router::new()
///     .route("/", get(hello))
///     .nest("/2fa", api::router(ApiConfig::new()))
///     .layer(OtpLayer::new(two_factor));
/// let app: Router = app.with_state(AppState { greeting: "hello" });
/// # let _ = app;
/// ```
pub fn router<S>(config: ApiConfig) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let policy = csrf::OriginPolicy {
        trust_forwarded: config.trust_forwarded_headers,
    };
    routes()
        .fallback(|| async { ApiError::not_found("not_found") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "This endpoint does not take that method.",
            )
        })
        // Added last, so that it wraps every route and both fallbacks.
        .layer(middleware::from_fn_with_state(
            policy,
            csrf::refuse_cross_site,
        ))
        .with_state(Arc::new(config))
}

fn routes() -> Router<Arc<ApiConfig>> {
    let routes = Router::new()
        .route("/methods", get(devices::methods))
        .route("/devices", get(devices::list).post(devices::create))
        .route(
            "/devices/{id}",
            patch(devices::update).delete(devices::delete),
        )
        .route("/devices/{id}/confirm", post(devices::confirm))
        .route("/disable", post(devices::disable))
        .route(
            "/backup-codes",
            get(devices::backup_codes_left).post(devices::new_backup_codes),
        )
        .route("/challenges", post(devices::send_challenge))
        .route("/confirmations", post(account::request_confirmation))
        .route("/confirmations/{id}", get(account::check_confirmation))
        .route(
            "/confirmations/{id}/confirm",
            post(account::answer_confirmation),
        )
        .route("/verify", post(account::verify))
        .route(
            "/remembered",
            get(account::remembered).delete(account::forget_all),
        )
        .route("/remembered/{id}", axum::routing::delete(account::forget))
        .route("/status", get(account::status))
        .route("/logout", post(account::logout))
        .route("/logout-all", post(account::logout_all));
    // The answer is the phone's: the cross-site defence lets it through (see `csrf`).
    #[cfg(feature = "push")]
    let routes = routes
        .route("/approvals/{id}", get(approvals::poll))
        .route("/approvals/{id}/answer", post(approvals::answer));
    #[cfg(feature = "webauthn")]
    let routes = routes
        .route(
            "/webauthn/register/begin",
            post(webauthn::begin_registration),
        )
        .route(
            "/webauthn/register/finish",
            post(webauthn::finish_registration),
        )
        .route("/webauthn/verify/begin", post(webauthn::begin_verification))
        .route(
            "/webauthn/verify/finish",
            post(webauthn::finish_verification),
        );
    routes
}
