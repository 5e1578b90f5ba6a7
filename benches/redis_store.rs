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
use tower_otp::clock::Timestamp;
use tower_otp::layer::OtpLayer;
use tower_otp::session::{SessionKey, SessionRecord, VerifiedBy};
use tower_otp::store::RedisConfig;
use tower_otp::{
    DeviceId, DeviceKind, MemoryStore, RedisStore, ServerKey, Store, TwoFactor, UserId,
};

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
    let cached = setup(
        &runtime,
        runtime
            .block_on(
                RedisConfig::server(server.url())
                    .with_key_prefix("cached")
                    .with_local_cache(10_000)
                    .connect(),
            )
            .expect("connect to the private redis-server"),
    );
    let sides = [
        ("memory (baseline)", &memory),
        ("redis", &redis),
        ("redis + local cache", &cached),
    ];

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

    session_reads(c, &runtime, &server);
    drop((memory, redis, cached));
    drop(server);
}

/// The session read that sliding expiry used to cost: a script that reads the session, sets
/// its time to live and re-scores it in the session index, on every request; then its JSON.
const PREVIOUS_LOAD_SESSION: &str = r"
local key, index, digest = KEYS[1], KEYS[2], ARGV[1]
local record = redis.call('GET', key)
if not record then
  return false
end
local ok, decoded = pcall(cjson.decode, record)
local verified = decoded.verified ~= nil and decoded.verified ~= cjson.null
local idle = tonumber(verified and ARGV[2] or ARGV[3])
redis.call('PEXPIRE', key, idle)
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZADD', index, now + idle, digest)
if redis.call('PTTL', index) < idle then
  redis.call('PEXPIRE', index, idle)
end
return record
";

/// `load_session` alone, side by side: the previous script (kept here only to compare), the
/// plain `HMGET` of now, and a hit of the local cache.
fn session_reads(c: &mut Criterion, runtime: &Runtime, server: &RedisServer) {
    let connect = |config: RedisConfig| runtime.block_on(config.connect()).unwrap();
    let plain = connect(RedisConfig::server(server.url()).with_key_prefix("reads"));
    let cached = connect(
        RedisConfig::server(server.url())
            .with_key_prefix("reads")
            .with_local_cache(10_000),
    );
    let user = UserId::new("reader").unwrap();
    let key = SessionKey::new(plain.user_tag(&user), b"session");
    let record = SessionRecord {
        user: user.clone(),
        created_at: Timestamp::from_millis(1_800_000_000_000),
        expires_at: Timestamp::from_millis(1_800_043_200_000),
        verified: Some(VerifiedBy {
            device_id: DeviceId::generate(),
            device_kind: DeviceKind::Totp,
            at: Timestamp::from_millis(1_800_000_000_000),
            remembered: false,
        }),
        login: None,
    };
    runtime.block_on(async {
        plain
            .save_session(&key, &record, Duration::from_secs(3600))
            .await
            .unwrap();
        // Let the cache's listener take its lease.
        tokio::time::sleep(Duration::from_millis(200)).await;
    });
    let client = redis::Client::open(server.url()).unwrap();
    let mut previous = runtime
        .block_on(client.get_multiplexed_async_connection())
        .unwrap();
    let old_key = "previous:{tag}:session:digest";
    let old_index = "previous:{tag}:sessions";
    let json = serde_json::to_string(&record).unwrap();
    runtime.block_on(async {
        redis::cmd("SET")
            .arg(old_key)
            .arg(&json)
            .arg("PX")
            .arg(3_600_000)
            .exec_async(&mut previous)
            .await
            .unwrap();
    });
    let script = redis::Script::new(PREVIOUS_LOAD_SESSION);

    let mut group = c.benchmark_group("store: load_session, verified session");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("previous: script (GET, PEXPIRE, ZADD) + JSON", |b| {
        b.to_async(runtime).iter(|| {
            let mut connection = previous.clone();
            let script = &script;
            async move {
                let value: String = script
                    .key(old_key)
                    .key(old_index)
                    .arg("digest")
                    .arg(7_200_000)
                    .arg(600_000)
                    .invoke_async(&mut connection)
                    .await
                    .unwrap();
                serde_json::from_str::<SessionRecord>(&value).unwrap()
            }
        })
    });
    for (name, store) in [("HMGET", &plain), ("local cache hit", &cached)] {
        group.bench_function(name, |b| {
            b.to_async(runtime)
                .iter(|| async { store.load_session(&key).await.unwrap().unwrap() })
        });
    }
    group.finish();
}

criterion_group!(benches, stores);
criterion_main!(benches);
