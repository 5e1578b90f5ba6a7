//! The cost of the layer and guard on a request, side by side with the same service without
//! them, and with `VerifiedDeviceLayer` loading every session up front. Run with `cargo bench --bench hot_path`.

#[path = "support/app.rs"]
mod app;

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tower_otp::layer::{OtpLayer, VerifiedDeviceLayer};
use tower_otp::{MemoryStore, ServerKey, TwoFactor, UserId};

use app::{call, confirmed_totp, routes, routes_without_layer, verified_session};

fn hot_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::new(&[1; 32]).unwrap());
    let with_layer = routes().layer(OtpLayer::new(two_factor.clone()));
    let without_layer = routes_without_layer();
    // The same routes loading every session up front, on the same store (the cookie works).
    let eager = routes()
        .layer(VerifiedDeviceLayer::new())
        .layer(OtpLayer::new(two_factor.clone()));
    let cookie = runtime.block_on(verified_session(&with_layer));

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
    group.bench_function("eager layer, unguarded route", |b| {
        b.to_async(&runtime)
            .iter(|| call(&eager, "/public", Some(&cookie)))
    });
    group.bench_function("eager layer + guard, verified session", |b| {
        b.to_async(&runtime)
            .iter(|| call(&eager, "/admin", Some(&cookie)))
    });
    group.bench_function("layer + guard, anonymous (401)", |b| {
        b.to_async(&runtime)
            .iter(|| call(&with_layer, "/admin", None))
    });
    group.finish();

    // Verification itself: a wrong code costs three HMACs (the tolerance window) and one
    // store operation (counting the attempt).
    let fast = app::without_throttling(two_factor);
    let user = UserId::new("bob").unwrap();
    let device = runtime.block_on(confirmed_totp(&fast, &user));
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
