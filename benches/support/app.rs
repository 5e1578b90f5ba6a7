//! What the benchmarks share: the routes of a small guarded application, one request
//! through them, a verified session, and a confirmed device to verify against.
//!
//! Included by each benchmark with `#[path = "support/app.rs"] mod app;`.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::response::Response;
use axum::routing::{get, post};
use http::{Request, StatusCode};
use tower::ServiceExt;
use tower_otp::device::{Enrollment, ThrottlePolicy, TotpSettings};
use tower_otp::guard::RequireOtpLayer;
use tower_otp::session::OtpSession;
use tower_otp::{DeviceId, TwoFactor, UserId};

/// `/public`, `/admin` behind `RequireOtpLayer`, and `/setup`, which logs `alice` in and
/// enrols and confirms a device, leaving the session verified.
pub(crate) fn routes() -> Router {
    Router::new()
        .route("/public", get(|| async { "public" }))
        .route(
            "/admin",
            get(|| async { "admin" }).layer(RequireOtpLayer::new()),
        )
        .route(
            "/setup",
            post(|session: OtpSession| async move {
                let user = UserId::new("alice").unwrap();
                session.login(user.clone()).await.unwrap();
                let enrolment = session
                    .two_factor()
                    .enroll_totp(&user, "Phone", "alice", TotpSettings::default())
                    .await
                    .unwrap();
                let code = enrolment.current_code(session.two_factor().now());
                session
                    .confirm_device(&enrolment.device.id, &code)
                    .await
                    .unwrap();
                "ok"
            }),
        )
}

/// The same routes with no layer and no guard: the baseline.
pub(crate) fn routes_without_layer() -> Router {
    Router::new()
        .route("/public", get(|| async { "public" }))
        .route("/admin", get(|| async { "admin" }))
}

/// One `GET` through `app`, with `cookie` if given.
pub(crate) async fn call(app: &Router, path: &str, cookie: Option<&str>) -> StatusCode {
    let mut request = Request::get(path);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    response.status()
}

/// Runs `/setup` on `app` (which has `OtpLayer`) and returns the verified session's cookie,
/// checked to open `/admin`.
pub(crate) async fn verified_session(app: &Router) -> String {
    let response = app
        .clone()
        .oneshot(Request::post("/setup").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = session_cookie(&response);
    assert_eq!(call(app, "/admin", Some(&cookie)).await, StatusCode::OK);
    cookie
}

/// The `name=value` of the last cookie that `response` sets: the session cookie, after any
/// rotation.
pub(crate) fn session_cookie(response: &Response) -> String {
    let set_cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .next_back()
        .expect("a set-cookie header");
    set_cookie
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// `two_factor` with per-device delays and the user lockout off, so that wrong codes can be
/// tried without end.
pub(crate) fn without_throttling(two_factor: TwoFactor) -> TwoFactor {
    two_factor.with_throttle_policy(
        ThrottlePolicy::new()
            .with_factor(Duration::ZERO)
            .with_user_failure_limit(u32::MAX),
    )
}

/// Enrols and confirms a TOTP device for `user`.
pub(crate) async fn confirmed_totp(two_factor: &TwoFactor, user: &UserId) -> DeviceId {
    confirmed_totp_enrollment(two_factor, user).await.device.id
}

/// Enrols and confirms a TOTP device for `user`, keeping its secret to compute its codes.
pub(crate) async fn confirmed_totp_enrollment(two_factor: &TwoFactor, user: &UserId) -> Enrollment {
    let enrolment = two_factor
        .enroll_totp(user, "Phone", user.as_str(), TotpSettings::default())
        .await
        .unwrap();
    let code = enrolment.current_code(two_factor.now());
    two_factor
        .confirm_device(user, &enrolment.device.id, &code)
        .await
        .unwrap();
    enrolment
}
