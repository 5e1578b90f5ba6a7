//! With per-device delays off, no attempt is throttled, also when the device's last failure
//! carries a later time than the attempt's own: concurrent requests read the clock in one
//! order and reach the store in another, and instances sharing a Redis have clocks a little
//! apart. On both stores.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use tower_otp::clock::{ManualClock, Timestamp};
use tower_otp::device::{ThrottlePolicy, TotpSettings};
use tower_otp::store::{MemoryStore, Store};
use tower_otp::{Error, ServerKey, TwoFactor, UserId};

/// Half-way through a TOTP step.
const START: u64 = 30_000_000_015;

async fn a_later_failure_does_not_throttle(store: impl Store) {
    let clock = ManualClock::new(Timestamp::from_millis(START));
    let two_factor = TwoFactor::new(store, ServerKey::new(&[3; 32]).unwrap())
        .with_clock(clock.clone())
        // The store expires unconfirmed devices by its own clock, decades ahead of this one.
        .with_pending_device_lifetime(Duration::from_secs(100 * 365 * 24 * 3600))
        .with_throttle_policy(
            ThrottlePolicy::new()
                .with_factor(Duration::ZERO)
                .with_user_failure_limit(u32::MAX),
        );
    let user = UserId::new("alice").unwrap();
    let enrolment = two_factor
        .enroll_totp(&user, "Phone", "alice", TotpSettings::default())
        .await
        .unwrap();
    let now = Timestamp::from_millis(START);
    two_factor
        .confirm_device(&user, &enrolment.device.id, &enrolment.current_code(now))
        .await
        .unwrap();
    let shown: HashSet<String> = [START - 30_000, START, START + 30_000]
        .map(|ms| enrolment.current_code(Timestamp::from_millis(ms)))
        .into();
    let wrong = (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|code| !shown.contains(code))
        .unwrap();

    // The attempt that read the clock later reaches the store first.
    clock.set(Timestamp::from_millis(START + 5));
    let first = two_factor.verify(&user, &enrolment.device.id, &wrong).await;
    assert!(matches!(first, Err(Error::InvalidCode)), "{first:?}");
    clock.set(Timestamp::from_millis(START));
    let second = two_factor.verify(&user, &enrolment.device.id, &wrong).await;
    assert!(matches!(second, Err(Error::InvalidCode)), "{second:?}");
}

#[tokio::test]
async fn memory_store() {
    a_later_failure_does_not_throttle(MemoryStore::new()).await;
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_store() {
    use common::redis_server::{RedisServer, unique_prefix};
    use tower_otp::store::RedisConfig;

    let server = RedisServer::start();
    let store = RedisConfig::server(server.url())
        .with_key_prefix(unique_prefix())
        .connect()
        .await
        .expect("connect");
    a_later_failure_does_not_throttle(store).await;
}
