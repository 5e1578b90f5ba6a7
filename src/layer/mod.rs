//! [`OtpLayer`]: gives every request an [`OtpSession`](crate::session::OtpSession).
//!
//! The layer reads the session id from the request (cookie or bearer header) without touching
//! the store, inserts an `OtpSession` handle as a request extension, and writes any cookie
//! change the handle made (login, verification, logout) to the response. Routes that never
//! look at the session cost no store round trip.
//!
//! ```
//! use axum::{Router, routing::get};
//! use tower_otp::{MemoryStore, ServerKey, TwoFactor};
//! use tower_otp::layer::OtpLayer;
//! use tower_otp::session::OtpSession;
//!
//! async fn whoami(session: OtpSession) -> String {
//!     match session.user().await {
//!         Ok(Some(user)) => format!("hello {user}"),
//!         Ok(None) => "hello stranger".into(),
//!         Err(error) => format!("error: {}", error.kind()),
//!     }
//! }
//!
//! let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::generate());
//! let app: Router = Router::new()
//!     .route("/", get(whoami))
//!     .layer(OtpLayer::new(two_factor));
//! ```
//!
//! ## The verified device on every request
//!
//! [`VerifiedDevice`] is the crate's answer to "is this request verified, and by which
//! device?": a request extension present exactly when the session passed the second factor.
//! [`RequireOtpLayer`](crate::guard::RequireOtpLayer) inserts it for the requests it lets
//! through; [`VerifiedDeviceLayer`], inside `OtpLayer`, loads the session before the inner
//! service and inserts it — or nothing — for every request, never refusing one. A store outage
//! inserts nothing: no extension means not verified. It describes the session as the request
//! found it; a handler that logs out or verifies should ask its `OtpSession` afterwards.
//!
//! A plain Tower service reads it from the request's extensions:
//!
//! ```
//! use std::convert::Infallible;
//! use axum::body::Body;
//! use http::{Request, Response};
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_otp::layer::{OtpLayer, VerifiedDeviceLayer};
//! use tower_otp::{MemoryStore, ServerKey, TwoFactor, VerifiedDevice};
//!
//! async fn whoami(request: Request<Body>) -> Result<Response<Body>, Infallible> {
//!     let text = match request.extensions().get::<VerifiedDevice>() {
//!         Some(device) => format!("{} by {}", device.user(), device.device_kind()),
//!         None => "not verified".to_owned(),
//!     };
//!     Ok(Response::new(Body::from(text)))
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::generate());
//! let service = ServiceBuilder::new()
//!     .layer(OtpLayer::new(two_factor))
//!     .layer(VerifiedDeviceLayer::new())
//!     .service_fn(whoami);
//!
//! let response = service.oneshot(Request::new(Body::empty())).await.unwrap();
//! let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
//! assert_eq!(body, "not verified");
//! # });
//! ```
//!
//! In axum, take it as an extractor: `VerifiedDevice` refuses a request that is not verified
//! with the guards' answer (403 `otp_required` and its JSON body, 401 without a login),
//! `Option<VerifiedDevice>` is `None` for it.
//!
//! ```
//! use axum::{Router, routing::get};
//! use tower_otp::layer::{OtpLayer, VerifiedDeviceLayer};
//! use tower_otp::{MemoryStore, ServerKey, TwoFactor, VerifiedDevice};
//!
//! async fn account(device: Option<VerifiedDevice>) -> String {
//!     match device {
//!         Some(device) if device.remembered() => format!("{}, on a remembered browser", device.user()),
//!         Some(device) => format!("{}, verified by {}", device.user(), device.device_id()),
//!         None => "log in and verify first".to_owned(),
//!     }
//! }
//!
//! let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::generate());
//! let app: Router = Router::new()
//!     .route("/account", get(account))
//!     .layer(VerifiedDeviceLayer::new())
//!     .layer(OtpLayer::new(two_factor));
//! ```

mod eager;
mod extract;
mod future;
mod otp_layer;
mod service;
mod verified;

pub use eager::{LoadVerifiedDevice, VerifiedDeviceLayer};
pub use extract::MissingOtpLayer;
pub use future::ResponseFuture;
pub use otp_layer::OtpLayer;
pub use service::Otp;
pub use verified::VerifiedDevice;
