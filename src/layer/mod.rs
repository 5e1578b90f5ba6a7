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

mod extract;
mod future;
mod otp_layer;
mod service;

pub use extract::MissingOtpLayer;
pub use future::ResponseFuture;
pub use otp_layer::OtpLayer;
pub use service::Otp;
