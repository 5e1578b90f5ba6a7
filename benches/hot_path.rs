//! The cost of the layer and guard on a request, side by side with the same service without
//! them. Run with `cargo bench --bench hot_path`.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, StatusCode};
use tower::ServiceExt;
use tower_otp::device::{ThrottlePolicy, TotpSettings};
use tower_otp::guard::RequireOtpLayer;
use tower_otp::layer::OtpLayer;
use tower_otp::session::OtpSession;
use tower_otp::{MemoryStore, ServerKey, TwoFactor, UserId};

fn routes() -> Router {
    Router::new()
        .route("/public", get(|| async { "public" }))
        .route(
            "/admin",
            get(|| async { "admin" }).layer(RequireOtpLayer::new()),
        )
        .route(
            "/setup",
            axum::routing::post(|session: OtpSession| async move {
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

async fn call(app: &Router, path: &str, cookie: Option<&str>) -> StatusCode {
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

fn hot_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::new(&[1; 32]).unwrap());
    let with_layer = routes().layer(OtpLayer::new(two_factor.clone()));
    let without_layer = Router::new()
        .route("/public", get(|| async { "public" }))
        .route("/admin", get(|| async { "admin" }));

    // A verified session to present.
    let cookie = runtime.block_on(async {
        let response = with_layer
            .clone()
            .oneshot(Request::post("/setup").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let set_cookie = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .next_back()
            .unwrap();
        set_cookie
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned()
    });
    assert_eq!(
        runtime.block_on(call(&with_layer, "/admin", Some(&cookie))),
        StatusCode::OK
    );

    let mut group = c.benchmark_group("request");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("baseline: no layer", |b| {
        b.to_async(&runtime)
            .iter(|| call(&without_layer, "/admin", Some(&cookie)))
    });
    group.bench_function("layer, unguarded route", |b| {
        b.to_async(&runtime)
            .iter(|| call(&with_layer, "/public", Some(&cookie)))
    });
    group.bench_function("layer + guard, verified session", |b| {
        b.to_async(&runtime)
            .iter(|| call(&with_layer, "/admin", Some(&cookie)))
    });
    group.bench_function("layer + guard, anonymous (401)", |b| {
        b.to_async(&runtime)
            .iter(|| call(&with_layer, "/admin", None))
    });
    group.finish();

    // Verification itself: three HMACs plus two store operations.
    let fast = two_factor.with_throttle_policy(
        ThrottlePolicy::new()
            .with_factor(Duration::ZERO)
            .with_user_failure_limit(u32::MAX),
    );
    let user = UserId::new("bob").unwrap();
    let device = runtime.block_on(async {
        let enrolment = fast
            .enroll_totp(&user, "Phone", "bob", TotpSettings::default())
            .await
            .unwrap();
        let code = enrolment.current_code(fast.now());
        fast.confirm_device(&user, &enrolment.device.id, &code)
            .await
            .unwrap();
        enrolment.device.id
    });
    let mut group = c.benchmark_group("verify");
    group.bench_function("TOTP, wrong code (memory store)", |b| {
        b.to_async(&runtime).iter(|| async {
            assert!(fast.verify(&user, &device, "000000").await.is_err());
        })
    });
    group.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
