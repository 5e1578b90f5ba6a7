//! Guards: [`RequireOtpLayer`] for routes and whole subtrees, and the [`Verified`] extractor.
//!
//! A guard lets a request through only when its session passed the second factor, and tells
//! apart every other case with its own answer (see [`RejectionKind`]): anonymous (401),
//! unverified (403 `otp_required`), no device yet (403 `otp_setup_required`), verification too
//! old or of the wrong kind (403 `otp_reauthentication_required`), not allowed by the guard's
//! predicate (403 `forbidden`), store unreachable (503 — a guard never fails open). In
//! redirect mode the first three become redirects to the login, verification and setup pages,
//! with a `next` parameter; a page never redirects to itself.
//!
//! ```
//! use axum::{Router, routing::get, body::Body};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//! use tower_otp::{MemoryStore, ServerKey, TwoFactor, UserId};
//! use tower_otp::guard::{RequireOtpLayer, Verified};
//! use tower_otp::layer::OtpLayer;
//!
//! async fn admin(verified: Verified) -> String {
//!     format!("welcome, {}", verified.user)
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let staff = |user: UserId| async move { user.as_str() == "alice" };
//! let app: Router = Router::new()
//!     .route("/admin", get(admin))
//!     .layer(RequireOtpLayer::new().predicate(staff))
//!     .layer(OtpLayer::new(TwoFactor::new(MemoryStore::new(), ServerKey::generate())));
//!
//! let response = app.oneshot(Request::get("/admin").body(Body::empty()).unwrap()).await.unwrap();
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! # });
//! ```

pub(crate) mod extract;
mod layer;
pub(crate) mod outage;
mod policy;
mod rejection;
mod service;

pub use extract::Verified;
pub use layer::RequireOtpLayer;
pub use policy::{BoxFuture, RedirectTargets, UserPredicate, safe_next};
pub use rejection::{GuardRejection, RejectionKind};
pub use service::{RequireOtp, ResponseFuture};
