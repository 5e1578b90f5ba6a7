//! The hot path on each store, side by side: a guarded request through `OtpLayer` and
//! `RequireOtpLayer` with a verified session, an unguarded one, and a verification with a
//! wrong code, on `MemoryStore` and on `RedisStore` over loopback. The bench starts its own
//! redis-server on a free loopback port and stops it at the end.
//!
//! Run with `cargo bench --bench redis_store`.

#[path = "support/app.rs"]
#[allow(dead_code)]
mod app;
#[path = "../tests/common/redis_server.rs"]
#[allow(unreachable_pub)]
mod redis_server;

use std::time::Duration;

use axum::Router;
use criterion::{Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use tower_otp::layer::OtpLayer;
use tower_otp::{DeviceId, MemoryStore, RedisStore, ServerKey, Store, TwoFactor, UserId};

use app::{call, confirmed_totp, routes, verified_session, without_throttling};
use redis_server::RedisServer;

/// An application over one store: its router with the layer, a verified session's cookie,
/// and a confirmed device to verify against with throttling off.
struct Setup {
    app: Router,
    cookie: String,
    two_factor: TwoFactor,
    user: UserId,
    device: DeviceId,
}

fn setup(runtime: &Runtime, store: impl Store) -> Setup {
    let two_factor = TwoFactor::new(store, ServerKey::new(&[1; 32]).unwrap());
    let app = routes().layer(OtpLayer::new(two_factor.clone()));
    let cookie = runtime.block_on(verified_session(&app));
    let two_factor = without_throttling(two_factor);
    let user = UserId::new("bob").unwrap();
    let device = runtime.block_on(confirmed_totp(&two_factor, &user));
    Setup {
        app,
        cookie,
        two_factor,
        user,
        device,
    }
}

fn stores(c: &mut Criterion) {
    // One thread for the application, as in `hot_path`; redis-server has the other core.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = RedisServer::start();
    let memory = setup(&runtime, MemoryStore::new());
    let redis = setup(
        &runtime,
        runtime
            .block_on(RedisStore::connect(&server.url()))
            .expect("connect to the private redis-server"),
    );
    let sides = [("memory (baseline)", &memory), ("redis", &redis)];

    let mut group = c.benchmark_group("store: layer + guard, verified session");
    group.measurement_time(Duration::from_secs(5));
    for (name, side) in sides {
        group.bench_function(name, |b| {
            b.to_async(&runtime)
                .iter(|| call(&side.app, "/admin", Some(&side.cookie)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("store: layer, unguarded route");
    group.measurement_time(Duration::from_secs(5));
    for (name, side) in sides {
        group.bench_function(name, |b| {
            b.to_async(&runtime)
                .iter(|| call(&side.app, "/public", Some(&side.cookie)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("store: verify, TOTP, wrong code");
    group.measurement_time(Duration::from_secs(5));
    for (name, side) in sides {
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| async {
                let refused = side.two_factor.verify(&side.user, &side.device, "000000");
                assert!(refused.await.is_err());
            })
        });
    }
    group.finish();

    drop((memory, redis));
    drop(server);
}

criterion_group!(benches, stores);
criterion_main!(benches);
