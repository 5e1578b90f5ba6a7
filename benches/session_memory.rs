//! Redis memory per session: loads 1k, 10k, 100k and 1M sessions into a private redis-server
//! through `RedisStore::save_session`, as logins do, and prints Redis's `used_memory` delta
//! per session at each step: the first session of a user (which brings the user's sessions
//! hash) and a further session of a user who has one. Each step starts from an empty server.
//!
//! Run with `cargo bench --bench session_memory` (add `-- 100000` to stop at 100k). The
//! numbers are Redis's, whatever the client's build profile.

#[path = "../tests/common/redis_server.rs"]
#[allow(unreachable_pub)]
mod redis_server;

use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use redis_server::RedisServer;
use tower_otp::clock::{Clock, SystemClock};
use tower_otp::device::{Device, DeviceId, DeviceKind, DeviceState, UserId};
use tower_otp::session::{SessionKey, SessionRecord, VerifiedBy};
use tower_otp::store::{DeviceLimits, RedisStore, Store};

/// Saves in flight at once over the store's one multiplexed connection.
const IN_FLIGHT: usize = 256;
const STEPS: [u64; 4] = [1_000, 10_000, 100_000, 1_000_000];

fn main() {
    let max: u64 = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(1_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = RedisServer::start();
    let version = server.query(&["INFO", "server"]);
    let version = version
        .text()
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("?")
        .to_owned();
    println!("redis-server {version}, default key prefix, a verified session record");
    println!(
        "{:>10} {:>22} {:>22} {:>8}",
        "sessions", "first of a user (B)", "further session (B)", "load (s)"
    );
    runtime.block_on(async {
        let store = RedisStore::connect(&server.url()).await.unwrap();
        for &n in STEPS.iter().filter(|&&n| n <= max) {
            server.query(&["FLUSHALL"]);
            let started = Instant::now();
            add_devices(&store, n).await;
            let empty = used_memory(&server);
            save_sessions(&store, n, "first").await;
            let first = used_memory(&server);
            save_sessions(&store, n, "second").await;
            let second = used_memory(&server);
            println!(
                "{n:>10} {:>22.1} {:>22.1} {:>8.1}",
                (first - empty) as f64 / n as f64,
                (second - first) as f64 / n as f64,
                started.elapsed().as_secs_f64()
            );
        }
    });
}

fn user(i: u64) -> UserId {
    UserId::new(format!("user-{i:07}@example.com")).unwrap()
}

/// The device of user `i`: derived from `i`, so that sessions can name it.
fn device_id(i: u64) -> DeviceId {
    format!("{i:032x}").parse().unwrap()
}

/// A confirmed TOTP device for each of `n` users (not counted: sessions need one to be
/// verified by).
async fn add_devices(store: &RedisStore, n: u64) {
    let now = SystemClock.now();
    stream::iter(0..n)
        .for_each_concurrent(IN_FLIGHT, |i| async move {
            let config = serde_json::from_value(serde_json::json!({
                "kind": "totp", "secret": "plain:GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
                "algorithm": "SHA1", "digits": 6, "step": 30, "t0": 0
            }))
            .unwrap();
            let device = Device {
                id: device_id(i),
                user: user(i),
                name: "Phone".to_owned(),
                confirmed: true,
                pending_until: None,
                is_default: true,
                created_at: now,
                config,
                state: DeviceState::default(),
            };
            store
                .insert_device(&device, &DeviceLimits::default())
                .await
                .unwrap();
        })
        .await;
}

/// One session of each of `n` users, verified by the user's device; `which` names the
/// session id.
async fn save_sessions(store: &RedisStore, n: u64, which: &str) {
    let now = SystemClock.now();
    stream::iter(0..n)
        .for_each_concurrent(IN_FLIGHT, |i| async move {
            let user = user(i);
            let key = SessionKey::new(store.user_tag(&user), format!("{which}-{i}").as_bytes());
            let record = SessionRecord {
                user,
                created_at: now,
                expires_at: now.saturating_add(Duration::from_secs(12 * 3600)),
                verified: Some(VerifiedBy {
                    device_id: device_id(i),
                    device_kind: DeviceKind::Totp,
                    at: now,
                    remembered: false,
                }),
                login: None,
            };
            store
                .save_session(&key, &record, Duration::from_secs(2 * 3600))
                .await
                .unwrap();
        })
        .await;
}

fn used_memory(server: &RedisServer) -> i64 {
    let info = server.query(&["INFO", "memory"]);
    info.text()
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory in INFO memory")
}
