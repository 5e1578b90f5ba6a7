//! Unconfirmed devices and device limits through `TwoFactor`, on the memory store and on
//! Redis: concurrent adds never pass the limits, concurrent first backup-code sets leave one
//! device and one valid set, attempts to verify with an unconfirmed device are never counted,
//! unconfirmed devices expire, and a first confirmation ends the others.
//!
//! The memory store answers without ever yielding, so its concurrent runs seldom interleave;
//! the Redis runs, with a round trip per operation, are the ones that race for sure.

mod common;

use std::sync::Arc;
use std::time::Duration;

use tower_otp::clock::{Clock, ManualClock, Timestamp};
use tower_otp::device::{Caller, ThrottlePolicy, TotpSettings};
use tower_otp::store::{MemoryStore, SharedStore};
use tower_otp::{DeviceKind, Error, ServerKey, TwoFactor, UserId};

/// A `TwoFactor` on `store` with throttling off, so that many wrong codes may be tried.
fn two_factor(store: SharedStore) -> TwoFactor {
    TwoFactor::from_shared(store, ServerKey::new(&[5; 32]).unwrap()).with_throttle_policy(
        ThrottlePolicy::new()
            .with_factor(Duration::ZERO)
            .with_user_failure_limit(u32::MAX),
    )
}

/// Runs `operation(i)` for i in 0..n at once and returns the outcomes in order.
async fn concurrently<T, F, Fut>(n: usize, operation: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let run = operation(i);
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                run.await
            })
        })
        .collect();
    let mut outcomes = Vec::with_capacity(n);
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    outcomes
}

async fn thirty_concurrent_enrolments_never_pass_the_limits(store: SharedStore) {
    // (user, max devices, max pending, devices that fit, refusal for the others)
    let cases = [
        ("alice", 20, 3, 3, "too_many_pending_devices"),
        ("bob", 5, 20, 5, "too_many_devices"),
    ];
    for (name, max_devices, max_pending, fit, refusal) in cases {
        let two_factor = two_factor(store.clone())
            .with_max_devices(max_devices)
            .with_max_pending_devices(max_pending);
        let user = UserId::new(name).unwrap();
        // An administrator, so that the limits alone decide.
        let caller = Caller::administrator(user.clone());
        let outcomes = concurrently(30, |_| {
            let (two_factor, caller) = (two_factor.clone(), caller.clone());
            async move {
                two_factor
                    .enroll_totp(caller, "Phone", "account", TotpSettings::default())
                    .await
                    .map(drop)
                    .map_err(|e| e.kind())
            }
        })
        .await;
        let added = outcomes.iter().filter(|o| o.is_ok()).count();
        assert_eq!(added, fit, "{name}: {outcomes:?}");
        assert!(
            outcomes.iter().all(|o| *o == Ok(()) || *o == Err(refusal)),
            "{name}: {outcomes:?}"
        );
        assert_eq!(two_factor.devices(&user).await.unwrap().len(), fit);
    }
}

async fn sixteen_concurrent_first_backup_code_sets_leave_one_device_and_one_set(
    store: SharedStore,
) {
    let two_factor = two_factor(store);
    let user = UserId::new("alice").unwrap();
    // An administrator: once the first set exists, a first-factor caller may make no other.
    let caller = Caller::administrator(user.clone());
    // Backup codes back up a factor: the user has an app first.
    let app = two_factor
        .enroll_totp(&caller, "Phone", "account", TotpSettings::default())
        .await
        .unwrap();
    let code = app.current_code(two_factor.now());
    two_factor
        .confirm_device(&caller, &app.device.id, &code)
        .await
        .unwrap();
    let sets = concurrently(16, |_| {
        let (two_factor, caller) = (two_factor.clone(), caller.clone());
        async move { two_factor.generate_backup_codes(caller).await.unwrap() }
    })
    .await;
    let devices: Vec<_> = two_factor
        .devices(&user)
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.kind() == DeviceKind::BackupCodes)
        .collect();
    assert_eq!(devices.len(), 1, "{devices:?}");
    let id = &devices[0].id;
    assert!(sets.iter().all(|set| &set.device.id == id));

    // Exactly one set works, all of it; every code of the fifteen others is refused.
    let mut working_sets = 0;
    for set in &sets {
        let mut verified = 0;
        for code in set.codes.iter() {
            match two_factor.verify(&user, id, code).await {
                Ok(_) => verified += 1,
                Err(error) => assert_eq!(error.kind(), "invalid_code"),
            }
        }
        assert!(verified == 0 || verified == set.codes.len(), "{verified}");
        working_sets += usize::from(verified > 0);
    }
    assert_eq!(working_sets, 1);
    assert_eq!(two_factor.backup_codes_remaining(&user).await.unwrap(), 0);
}

async fn verifying_with_an_unconfirmed_device_is_never_counted(store: SharedStore) {
    let two_factor = two_factor(store.clone())
        .with_throttle_policy(ThrottlePolicy::default().with_user_failure_limit(5));
    let user = UserId::new("alice").unwrap();
    let enrolment = two_factor
        .enroll_totp(&user, "Phone", "account", TotpSettings::default())
        .await
        .unwrap();
    let code = enrolment.current_code(two_factor.now());
    let outcomes = concurrently(200, |i| {
        let (two_factor, user, id) = (
            two_factor.clone(),
            user.clone(),
            enrolment.device.id.clone(),
        );
        let input = if i % 2 == 0 {
            code.clone()
        } else {
            "000000".to_owned()
        };
        async move {
            two_factor
                .verify(&user, &id, &input)
                .await
                .map(drop)
                .map_err(|e| e.kind())
        }
    })
    .await;
    assert!(outcomes.iter().all(|o| *o == Err("device_not_confirmed")));
    assert_eq!(store.user_failures(&user).await.unwrap(), (0, None));
    let device = two_factor
        .device(&user, &enrolment.device.id)
        .await
        .unwrap();
    assert_eq!(device.unwrap().state.failures, 0);
    // The code was never used up: it still confirms the device.
    two_factor
        .confirm_device(&user, &enrolment.device.id, &code)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_thirty_concurrent_enrolments_never_pass_the_limits() {
    thirty_concurrent_enrolments_never_pass_the_limits(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_sixteen_concurrent_first_backup_code_sets_leave_one_device_and_one_set() {
    sixteen_concurrent_first_backup_code_sets_leave_one_device_and_one_set(Arc::new(
        MemoryStore::new(),
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_verifying_with_an_unconfirmed_device_is_never_counted() {
    verifying_with_an_unconfirmed_device_is_never_counted(Arc::new(MemoryStore::new())).await;
}

#[cfg(feature = "redis")]
mod redis {
    use std::sync::{Arc, OnceLock};

    use tower_otp::store::{RedisConfig, SharedStore};

    use crate::common::redis_server::{RedisServer, unique_prefix};

    fn server() -> &'static RedisServer {
        static SERVER: OnceLock<RedisServer> = OnceLock::new();
        SERVER.get_or_init(RedisServer::start)
    }

    async fn store() -> SharedStore {
        let store = RedisConfig::server(server().url())
            .with_key_prefix(unique_prefix())
            .connect()
            .await
            .expect("connect");
        Arc::new(store)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn thirty_concurrent_enrolments_never_pass_the_limits() {
        super::thirty_concurrent_enrolments_never_pass_the_limits(store().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sixteen_concurrent_first_backup_code_sets_leave_one_device_and_one_set() {
        super::sixteen_concurrent_first_backup_code_sets_leave_one_device_and_one_set(
            store().await,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn verifying_with_an_unconfirmed_device_is_never_counted() {
        super::verifying_with_an_unconfirmed_device_is_never_counted(store().await).await;
    }
}

// ----- expiry and first confirmation, on the memory store's injected clock ------------------

fn manual() -> (ManualClock, TwoFactor) {
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let store = MemoryStore::new().with_clock(clock.clone());
    let two_factor = TwoFactor::new(store, ServerKey::new(&[5; 32]).unwrap())
        .with_clock(clock.clone())
        .with_pending_device_lifetime(Duration::from_secs(600));
    (clock, two_factor)
}

#[tokio::test]
async fn an_unconfirmed_device_expires_after_its_lifetime() {
    let (clock, two_factor) = manual();
    let user = UserId::new("alice").unwrap();
    let enrolment = two_factor
        .enroll_totp(&user, "Phone", "account", TotpSettings::default())
        .await
        .unwrap();
    let deadline = clock.now().saturating_add(Duration::from_secs(600));
    assert_eq!(enrolment.device.pending_until, Some(deadline));
    clock.advance(Duration::from_secs(599));
    assert_eq!(two_factor.devices(&user).await.unwrap().len(), 1);
    clock.advance(Duration::from_secs(1));
    assert_eq!(two_factor.devices(&user).await.unwrap(), vec![]);
    let code = enrolment.current_code(clock.now());
    let late = two_factor
        .confirm_device(&user, &enrolment.device.id, &code)
        .await;
    assert_eq!(late.unwrap_err().kind(), "device_not_found");
}

#[tokio::test]
async fn confirming_the_first_device_ends_the_other_unconfirmed_ones() {
    let (clock, two_factor) = manual();
    let user = UserId::new("alice").unwrap();
    let mut enrolments = Vec::new();
    for name in ["Mine", "Planted", "Another"] {
        let enrolment = two_factor
            .enroll_totp(&user, name, "account", TotpSettings::default())
            .await
            .unwrap();
        enrolments.push(enrolment);
    }
    let fourth = two_factor
        .enroll_totp(&user, "One too many", "account", TotpSettings::default())
        .await;
    assert!(matches!(fourth, Err(Error::TooManyPendingDevices)));

    let mine = &enrolments[0];
    let confirmed = two_factor
        .confirm_device(&user, &mine.device.id, &mine.current_code(clock.now()))
        .await
        .unwrap();
    assert!(confirmed.first);
    let device = &confirmed.verification.device;
    assert!(device.confirmed);
    assert_eq!(device.pending_until, None);
    let left = two_factor.devices(&user).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, mine.device.id);
    assert_eq!(left[0].pending_until, None);
    // A later device, added and confirmed by a freshly verified caller, ends nothing, and
    // the first never expires.
    let fresh = Caller::verified(&confirmed.verification);
    let later = two_factor
        .enroll_totp(&fresh, "Later", "account", TotpSettings::default())
        .await
        .unwrap();
    let planted = two_factor
        .enroll_totp(&fresh, "Another", "account", TotpSettings::default())
        .await
        .unwrap();
    clock.advance(Duration::from_secs(30));
    let code = later.current_code(clock.now());
    let second = two_factor
        .confirm_device(&fresh, &later.device.id, &code)
        .await
        .unwrap();
    assert!(!second.first);
    assert!(
        two_factor
            .device(&user, &planted.device.id)
            .await
            .unwrap()
            .is_some()
    );
    clock.advance(Duration::from_secs(3600));
    let left = two_factor.devices(&user).await.unwrap();
    let ids: Vec<_> = left.iter().map(|d| d.id.clone()).collect();
    assert_eq!(ids, vec![mine.device.id.clone(), later.device.id.clone()]);
}
