//! What emitting events costs a request, by who listens: nobody (the baseline), a
//! subscriber that keeps up, a stalled subscriber that never reads (with the default buffer
//! of 1,024 events, and with one of 16), and the Redis bridge publishing to a redis-server on
//! loopback (started by the bench, stopped at its end).
//!
//! Two operations are measured: a verification refused because the user is locked out
//! (one store lookup and one event, so the event is a large part of it), and a verification
//! with a wrong code and throttling off (three HMACs, one store operation, one event).
//!
//! Run with `cargo bench --bench events`.

#[path = "support/app.rs"]
#[allow(dead_code)]
mod app;
#[path = "../tests/common/redis_server.rs"]
#[allow(unreachable_pub)]
mod redis_server;

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use tower_otp::device::ThrottlePolicy;
use tower_otp::events::{EventStream, Events, RecvError, RedisEventBridge};
use tower_otp::{DeviceId, MemoryStore, ServerKey, TwoFactor, UserId};

use app::{confirmed_totp, without_throttling};
use redis_server::RedisServer;

/// Who listens to a bus.
#[derive(Clone, Copy)]
enum Listen {
    Nobody,
    /// A task on the runtime's worker thread that reads every event as it comes.
    Reading,
    /// A subscription nobody reads: once its buffer (the default 1,024 events) is full,
    /// each new event pushes the oldest out.
    Stalled,
    /// The same with a buffer of 16 events: what holding on to the last events costs.
    StalledSmall,
    /// The Redis bridge, publishing every event.
    Bridge,
}

/// What keeps a listener alive while the bench runs.
type Guard = (Option<EventStream>, Option<RedisEventBridge>);

/// A bus and its listener.
fn listen(runtime: &Runtime, how: Listen, redis_url: &str) -> (Events, Guard) {
    let events = match how {
        Listen::StalledSmall => Events::with_capacity(16),
        _ => Events::new(),
    };
    let guard = match how {
        Listen::Nobody => (None, None),
        Listen::Reading => {
            let mut stream = events.subscribe();
            runtime.spawn(async move {
                // Lagging is reported, not fatal: a reader that fell behind goes on.
                while let Ok(_) | Err(RecvError::Lagged(_)) = stream.recv().await {}
            });
            (None, None)
        }
        Listen::Stalled | Listen::StalledSmall => (Some(events.subscribe()), None),
        Listen::Bridge => {
            let bridge = runtime.block_on(RedisEventBridge::start(&events, redis_url));
            (
                None,
                Some(bridge.expect("bridge to the private redis-server")),
            )
        }
    };
    (events, guard)
}

/// A user locked out for a day: each verification is refused at once, with one event.
fn locked_out(runtime: &Runtime, events: Events) -> (TwoFactor, UserId, DeviceId) {
    let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::new(&[2; 32]).unwrap())
        .with_events(events)
        .with_throttle_policy(
            ThrottlePolicy::new()
                .with_factor(Duration::ZERO)
                .with_user_failure_limit(1)
                .with_lock_period(Duration::from_secs(24 * 60 * 60)),
        );
    let user = UserId::new("mallory").unwrap();
    let device = runtime.block_on(async {
        let device = confirmed_totp(&two_factor, &user).await;
        let first = two_factor.verify(&user, &device, "000000").await;
        assert!(first.is_err());
        let refused = two_factor.verify(&user, &device, "000000").await;
        assert_eq!(refused.unwrap_err().kind(), "locked");
        device
    });
    (two_factor, user, device)
}

/// A user whose wrong codes are checked without end.
fn guessing(runtime: &Runtime, events: Events) -> (TwoFactor, UserId, DeviceId) {
    let two_factor = without_throttling(TwoFactor::new(
        MemoryStore::new(),
        ServerKey::new(&[2; 32]).unwrap(),
    ))
    .with_events(events);
    let user = UserId::new("bob").unwrap();
    let device = runtime.block_on(confirmed_totp(&two_factor, &user));
    (two_factor, user, device)
}

fn bench(
    c: &mut Criterion,
    runtime: &Runtime,
    group: &str,
    listeners: &[(&str, Listen)],
    redis_url: &str,
    make: fn(&Runtime, Events) -> (TwoFactor, UserId, DeviceId),
) {
    let mut group = c.benchmark_group(group);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(5));
    for &(name, how) in listeners {
        let (events, guard) = listen(runtime, how, redis_url);
        let (two_factor, user, device) = make(runtime, events);
        group.bench_function(name, |b| {
            b.to_async(runtime).iter(|| async {
                let refused = two_factor.verify(&user, &device, "000000").await;
                assert!(refused.is_err());
            })
        });
        drop(guard);
    }
    group.finish();
}

fn events(c: &mut Criterion) {
    // The benchmark runs on the main thread (`block_on`); spawned tasks (the reading
    // subscriber, the bridge's publisher and subscriber) on the one worker thread.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = RedisServer::start();
    let url = server.url();

    bench(
        c,
        &runtime,
        "events: refused while locked out (one event)",
        &[
            ("no subscriber (baseline)", Listen::Nobody),
            ("subscriber reading", Listen::Reading),
            ("stalled subscriber", Listen::Stalled),
            ("stalled subscriber, buffer of 16", Listen::StalledSmall),
            ("Redis bridge", Listen::Bridge),
        ],
        &url,
        locked_out,
    );
    bench(
        c,
        &runtime,
        "events: verify, TOTP, wrong code (one event)",
        &[
            ("no subscriber (baseline)", Listen::Nobody),
            ("subscriber reading", Listen::Reading),
            ("stalled subscriber", Listen::Stalled),
            ("stalled subscriber, buffer of 16", Listen::StalledSmall),
            ("Redis bridge", Listen::Bridge),
        ],
        &url,
        guessing,
    );

    drop(runtime);
    drop(server);
}

criterion_group!(benches, events);
criterion_main!(benches);
