//! Callers of real sessions, for tests of what is bound to a login.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::routing::post;
use tower::ServiceExt;
use tower_otp::layer::OtpLayer;
use tower_otp::session::OtpSession;
use tower_otp::{Caller, TwoFactor, UserId};

/// Logs `user` in afresh, as a new browser would, through `OtpLayer`, and returns the caller
/// of that session: a first-factor caller with a login binding of its own.
pub async fn new_login(two_factor: &TwoFactor, user: &UserId) -> Caller {
    let slot: Arc<Mutex<Option<Caller>>> = Arc::default();
    let handler = {
        let (slot, user) = (slot.clone(), user.clone());
        move |session: OtpSession| async move {
            session.login(user).await.unwrap();
            *slot.lock().unwrap() = Some(session.caller().await.unwrap());
        }
    };
    let app = Router::new()
        .route("/login", post(handler))
        .layer(OtpLayer::new(two_factor.clone()));
    let request = Request::post("/login").body(Body::empty()).unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let caller = slot.lock().unwrap().take().expect("the handler ran");
    assert!(caller.binding().is_some());
    caller
}
