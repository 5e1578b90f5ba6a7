//! The store contract as tests, written once against `dyn Store` and run against every
//! backend through [`store_conformance_tests!`].
//!
//! Each test receives two clients of one fresh, empty namespace: for the memory store two
//! clones, for Redis two separate connections (two "instances" of an application).

use std::sync::Arc;
use std::time::Duration;

use sha2::Digest;
use tower_otp::clock::{Clock, SystemClock, Timestamp};
use tower_otp::confirm::{ConfirmationId, ConfirmationKey, ConfirmationRecord, ConfirmationStatus};
use tower_otp::device::{
    CodeHash, Device, DeviceConfig, DeviceId, DeviceState, ThrottlePolicy, UserId,
};
use tower_otp::remember::{BrowserId, RememberedBrowser};
use tower_otp::session::{SessionKey, SessionRecord, VerifiedBy};
use tower_otp::store::{
    AttemptGrant, AttemptPurpose, AttemptSlot, CeremonyKey, CeremonyPurpose, CeremonyState,
    Challenge, ChallengePut, ConfirmOutcome, ConfirmationAttempt, ConfirmationInsert, DeviceInsert,
    DeviceLimits, KeyUse, LoginBinding, RateBucket, RateCount, RateKey, RateLimit, SharedStore,
    StoreError, SuccessProof,
};
use tower_otp::{DeviceKind, ServerKey};

/// Generates one `#[tokio::test]` per conformance test. `$clients` is an expression of type
/// `impl Fn() -> impl Future<Output = (SharedStore, SharedStore)>`.
#[macro_export]
macro_rules! store_conformance_tests {
    ($clients:expr) => {
        $crate::store_conformance_tests!(@tests $clients;
            devices_are_inserted_listed_updated_and_deleted,
            update_device_keeps_state_and_never_recreates,
            backup_codes_are_replaced_counted_and_consumed_once,
            begin_attempt_counts_and_throttles,
            begin_attempt_locks_the_user_at_the_limit,
            commit_success_accepts_only_newer_counters,
            commit_success_resets_and_refunds,
            challenges_respect_cooldown_and_work_once,
            challenges_expire,
            challenges_are_discarded_only_with_their_hash,
            user_stamps_start_at_zero_and_change,
            sessions_are_saved_loaded_rotated_and_deleted,
            sessions_expire_when_idle,
            logout_everywhere_removes_only_that_users_sessions,
            race_two_hundred_uses_of_one_totp_step,
            race_two_hundred_uses_of_one_backup_code,
            race_two_hundred_uses_of_one_challenge,
            race_two_hundred_wrong_attempts_match_sequential_throttled,
            race_two_hundred_wrong_attempts_match_sequential_unthrottled,
            remembered_browsers_are_put_checked_listed_and_deleted,
            remembered_browsers_expire,
            begin_attempt_takes_a_device_named_twice_twice,
            commit_success_refunds_once_per_listed_device,
            codes_and_challenges_need_a_device_and_go_with_it,
            sessions_without_time_to_live_are_dead_at_once,
            confirmations_are_stored_once_per_user,
            confirmation_attempts_are_counted_then_fail,
            confirmations_settle_only_from_in_process,
            confirmations_are_used_once_and_only_when_confirmed,
            expired_confirmations_cannot_be_confirmed_or_used,
            confirmations_are_forgotten_after_retention,
            race_two_hundred_uses_of_one_confirmation,
            race_two_hundred_attempts_at_one_confirmation,
            pending_devices_expire_for_every_operation,
            insert_device_enforces_the_limits,
            race_thirty_inserts_never_pass_the_limits,
            confirm_device_confirms_once_and_the_first_ends_other_pending,
            race_only_one_first_device_is_confirmed,
            verification_attempts_on_pending_devices_are_not_counted,
            deleting_a_device_revokes_what_it_verified,
            deleting_all_devices_revokes_every_verification,
            logout_everywhere_forgets_remembered_browsers,
            new_backup_codes_forget_the_browsers_they_remembered,
            challenges_work_only_for_the_login_they_were_sent_for,
            challenges_die_after_their_tries,
            race_challenge_tries_are_counted_exactly,
            rate_limits_count_in_every_bucket_or_in_none,
            rate_limits_slide_and_take_back,
            race_two_hundred_events_against_one_rate_limit,
            open_confirmations_are_capped_per_user,
            reserved_confirmations_are_started_once,
            race_two_hundred_requests_against_the_confirmation_cap,
            a_touch_moves_only_the_idle_deadline,
            a_session_is_read_with_whether_its_user_has_a_device,
            a_session_is_not_stored_verified_by_a_device_that_is_gone,
            session_attempts_are_counted_once_each_and_expire,
            user_tags_are_keyed_alike_by_every_client,
            webauthn_ceremonies_are_taken_once_and_only_by_their_login,
            webauthn_ceremonies_expire,
            race_two_hundred_takes_of_one_webauthn_ceremony,
            security_key_counters_only_move_forward,
            race_two_hundred_uses_of_one_security_key_counter,
        );
    };
    (@tests $clients:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (a, b) = ($clients)().await;
                $crate::common::conformance::bind_one_tag_key(&a, &b);
                $crate::common::conformance::$name(a, b).await;
            }
        )*
    };
}

/// Binds one tag key into both clients, as the `TwoFactor` of every instance does.
pub fn bind_one_tag_key(a: &SharedStore, b: &SharedStore) {
    let key = ServerKey::generate();
    a.bind_tag_key(key.tag_key());
    b.bind_tag_key(key.tag_key());
}

fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

fn t(secs: u64) -> Timestamp {
    Timestamp::from_secs(secs)
}

fn hash(n: u32) -> CodeHash {
    serde_json::from_value(serde_json::json!(format!("{n:032x}"))).unwrap()
}

fn device(owner: &UserId, kind: DeviceKind, created: u64) -> Device {
    let config = match kind {
        DeviceKind::BackupCodes => DeviceConfig::BackupCodes,
        DeviceKind::WebAuthn => DeviceConfig::WebAuthn {
            credential_id: "Y3JlZGVudGlhbA".into(),
            credential: "{}".into(),
        },
        DeviceKind::OutOfBand => serde_json::from_value(serde_json::json!({
            "kind": "out_of_band", "channel": "email", "destination": "a@example.com", "digits": 6
        }))
        .unwrap(),
        _ => serde_json::from_value(serde_json::json!({
            "kind": "totp", "secret": "plain:GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
            "algorithm": "SHA1", "digits": 6, "step": 30, "t0": 0
        }))
        .unwrap(),
    };
    Device {
        id: DeviceId::generate(),
        user: owner.clone(),
        name: format!("{kind} device"),
        confirmed: true,
        pending_until: None,
        is_default: false,
        created_at: t(created),
        config,
        state: DeviceState::default(),
    }
}

const VERIFY: AttemptPurpose = AttemptPurpose::Verify;
const CONFIRM: AttemptPurpose = AttemptPurpose::Confirm;

/// Inserts a device within the default limits, which it must not reach.
async fn insert(store: &SharedStore, device: &Device) {
    assert_eq!(
        store
            .insert_device(device, &DeviceLimits::default())
            .await
            .unwrap(),
        DeviceInsert::Inserted
    );
}

/// The proof of code `n` given by a caller without a login.
fn unbound_code(n: u32) -> SuccessProof {
    SuccessProof::Challenge {
        hash: hash(n),
        binding: None,
    }
}

fn slots(grant: AttemptGrant) -> Vec<AttemptSlot> {
    match grant {
        AttemptGrant::Slots(slots) => slots,
        AttemptGrant::Locked { until } => panic!("unexpectedly locked until {until}"),
    }
}

fn session(owner: &UserId) -> SessionRecord {
    SessionRecord {
        user: owner.clone(),
        created_at: t(1),
        expires_at: t(10_000_000_000),
        verified: None,
        login: None,
    }
}

/// The record of the live session at `key`.
async fn load(store: &SharedStore, key: &SessionKey) -> Option<SessionRecord> {
    store.load_session(key).await.unwrap().map(|s| s.record)
}

/// The key of a session of `owner`, tagged as `store` tags its users.
fn session_key(store: &SharedStore, owner: &UserId, secret: &str) -> SessionKey {
    SessionKey::new(store.user_tag(owner), secret.as_bytes())
}

fn throttle_off() -> ThrottlePolicy {
    ThrottlePolicy::new()
        .with_factor(Duration::ZERO)
        .with_user_failure_limit(1_000_000)
}

pub async fn devices_are_inserted_listed_updated_and_deleted(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let bob = user("bob");
    let first = device(&alice, DeviceKind::Totp, 1);
    let second = device(&alice, DeviceKind::BackupCodes, 2);
    let bobs = device(&bob, DeviceKind::Totp, 3);
    insert(&a, &first).await;
    insert(&b, &second).await;
    insert(&a, &bobs).await;
    assert!(matches!(
        b.insert_device(&first, &DeviceLimits::default()).await,
        Err(tower_otp::store::StoreError::Conflict)
    ));

    assert_eq!(
        b.get_device(&alice, &first.id).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        b.get_device(&bob, &first.id).await.unwrap(),
        None,
        "devices are per user"
    );
    let listed = a.list_devices(&alice).await.unwrap();
    assert_eq!(listed, vec![first.clone(), second.clone()], "oldest first");
    assert_eq!(a.list_devices(&user("nobody")).await.unwrap(), vec![]);

    let mut renamed = first.clone();
    renamed.name = "Renamed".into();
    renamed.is_default = true;
    // The confirmation is not a descriptive field: an update never changes it.
    let mut unconfirming = renamed.clone();
    unconfirming.confirmed = false;
    unconfirming.pending_until = Some(t(1));
    assert!(b.update_device(&unconfirming).await.unwrap());
    assert_eq!(
        a.get_device(&alice, &first.id).await.unwrap(),
        Some(renamed)
    );

    assert!(a.delete_device(&alice, &first.id).await.unwrap());
    assert!(!b.delete_device(&alice, &first.id).await.unwrap());
    assert_eq!(b.get_device(&alice, &first.id).await.unwrap(), None);
    assert_eq!(a.delete_all_devices(&alice).await.unwrap(), 1);
    assert_eq!(a.list_devices(&alice).await.unwrap(), vec![]);
    assert_eq!(a.list_devices(&bob).await.unwrap(), vec![bobs]);
}

pub async fn update_device_keeps_state_and_never_recreates(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let d = device(&alice, DeviceKind::Totp, 1);
    insert(&a, &d).await;
    let proof = SuccessProof::Counter {
        next_counter: 42,
        drift: -1,
    };
    assert!(
        a.commit_success(&alice, &d.id, &proof, &[], t(100))
            .await
            .unwrap()
    );

    // A stale copy's state must not overwrite the counters.
    let mut stale = d.clone();
    stale.name = "New name".into();
    assert!(b.update_device(&stale).await.unwrap());
    let stored = a.get_device(&alice, &d.id).await.unwrap().unwrap();
    assert_eq!(stored.name, "New name");
    assert_eq!(stored.state.next_counter, 42);
    assert_eq!(stored.state.drift, -1);
    assert_eq!(stored.state.last_used_at, Some(t(100)));

    assert!(a.delete_device(&alice, &d.id).await.unwrap());
    assert!(!b.update_device(&stale).await.unwrap());
    assert_eq!(a.get_device(&alice, &d.id).await.unwrap(), None);
}

pub async fn backup_codes_are_replaced_counted_and_consumed_once(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let d = device(&alice, DeviceKind::BackupCodes, 1);
    insert(&a, &d).await;
    assert_eq!(a.count_backup_codes(&alice, &d.id).await.unwrap(), 0);
    let first_set: Vec<_> = (0..10).map(hash).collect();
    a.replace_backup_codes(&alice, &d.id, &first_set)
        .await
        .unwrap();
    assert_eq!(b.count_backup_codes(&alice, &d.id).await.unwrap(), 10);

    let use_code = |n| SuccessProof::BackupCode(hash(n));
    assert!(
        b.commit_success(&alice, &d.id, &use_code(3), &[], t(1))
            .await
            .unwrap()
    );
    assert!(
        !a.commit_success(&alice, &d.id, &use_code(3), &[], t(2))
            .await
            .unwrap()
    );
    assert!(
        !a.commit_success(&alice, &d.id, &use_code(99), &[], t(2))
            .await
            .unwrap()
    );
    assert_eq!(a.count_backup_codes(&alice, &d.id).await.unwrap(), 9);

    let second_set: Vec<_> = (100..105).map(hash).collect();
    b.replace_backup_codes(&alice, &d.id, &second_set)
        .await
        .unwrap();
    assert_eq!(a.count_backup_codes(&alice, &d.id).await.unwrap(), 5);
    assert!(
        !a.commit_success(&alice, &d.id, &use_code(4), &[], t(3))
            .await
            .unwrap()
    );
    assert!(
        a.commit_success(&alice, &d.id, &use_code(104), &[], t(3))
            .await
            .unwrap()
    );

    // Another user's device with the same hash is unaffected.
    let bob = user("bob");
    let bobs = device(&bob, DeviceKind::BackupCodes, 1);
    insert(&a, &bobs).await;
    a.replace_backup_codes(&bob, &bobs.id, &[hash(100)])
        .await
        .unwrap();
    assert!(
        a.commit_success(&alice, &d.id, &use_code(100), &[], t(4))
            .await
            .unwrap()
    );
    assert_eq!(b.count_backup_codes(&bob, &bobs.id).await.unwrap(), 1);

    assert!(a.delete_device(&alice, &d.id).await.unwrap());
    assert_eq!(b.count_backup_codes(&alice, &d.id).await.unwrap(), 0);
}

pub async fn begin_attempt_counts_and_throttles(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let policy = ThrottlePolicy::default();
    let totp = device(&alice, DeviceKind::Totp, 1);
    let backup = device(&alice, DeviceKind::BackupCodes, 2);
    insert(&a, &totp).await;
    insert(&a, &backup).await;
    let missing = DeviceId::generate();

    let got = slots(
        a.begin_attempt(
            &alice,
            &[totp.id.clone(), missing.clone()],
            VERIFY,
            &policy,
            t(100),
        )
        .await
        .unwrap(),
    );
    assert_eq!(got.len(), 2);
    assert!(matches!(&got[0], AttemptSlot::Allowed(d) if d.id == totp.id && d.state.failures == 0));
    assert_eq!(got[1], AttemptSlot::Missing);
    let stored = b.get_device(&alice, &totp.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.state.failures, stored.state.last_failure_at),
        (1, Some(t(100)))
    );
    assert_eq!(a.user_failures(&alice).await.unwrap(), (1, None));

    // 1 failure: 1 s delay. Throttled attempts change nothing; other devices are free.
    let got = slots(
        b.begin_attempt(
            &alice,
            &[totp.id.clone(), backup.id.clone()],
            VERIFY,
            &policy,
            Timestamp::from_millis(100_999),
        )
        .await
        .unwrap(),
    );
    assert_eq!(got[0], AttemptSlot::Throttled { until: t(101) });
    assert!(matches!(&got[1], AttemptSlot::Allowed(d) if d.id == backup.id));
    assert_eq!(
        a.get_device(&alice, &totp.id)
            .await
            .unwrap()
            .unwrap()
            .state
            .failures,
        1
    );
    assert_eq!(a.user_failures(&alice).await.unwrap(), (2, None));

    let got = slots(
        a.begin_attempt(
            &alice,
            std::slice::from_ref(&totp.id),
            VERIFY,
            &policy,
            t(101),
        )
        .await
        .unwrap(),
    );
    assert!(matches!(&got[0], AttemptSlot::Allowed(d) if d.state.failures == 1));
    // 2 failures: 2 s.
    let got = slots(
        a.begin_attempt(
            &alice,
            std::slice::from_ref(&totp.id),
            VERIFY,
            &policy,
            Timestamp::from_millis(102_999),
        )
        .await
        .unwrap(),
    );
    assert_eq!(got[0], AttemptSlot::Throttled { until: t(103) });

    // Nothing allowed: the user count does not move.
    let before = a.user_failures(&alice).await.unwrap();
    let got = slots(
        a.begin_attempt(&alice, &[missing], VERIFY, &policy, t(200))
            .await
            .unwrap(),
    );
    assert_eq!(got, vec![AttemptSlot::Missing]);
    assert_eq!(a.user_failures(&alice).await.unwrap(), before);
}

pub async fn begin_attempt_locks_the_user_at_the_limit(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let policy = throttle_off()
        .with_user_failure_limit(3)
        .with_lock_period(Duration::from_secs(60));
    let d = device(&alice, DeviceKind::Totp, 1);
    insert(&a, &d).await;
    let ids = [d.id.clone()];
    for i in 0..3 {
        let got = slots(
            a.begin_attempt(&alice, &ids, VERIFY, &policy, t(100 + i))
                .await
                .unwrap(),
        );
        assert!(matches!(got[0], AttemptSlot::Allowed(_)), "attempt {i}");
    }
    assert_eq!(b.user_failures(&alice).await.unwrap(), (3, Some(t(162))));
    assert_eq!(
        b.begin_attempt(&alice, &ids, VERIFY, &policy, t(161))
            .await
            .unwrap(),
        AttemptGrant::Locked { until: t(162) }
    );
    assert_eq!(
        a.get_device(&alice, &d.id)
            .await
            .unwrap()
            .unwrap()
            .state
            .failures,
        3
    );

    // The lock ends by itself, and the count starts again from zero.
    let got = slots(
        b.begin_attempt(&alice, &ids, VERIFY, &policy, t(162))
            .await
            .unwrap(),
    );
    assert!(matches!(got[0], AttemptSlot::Allowed(_)));
    assert_eq!(a.user_failures(&alice).await.unwrap(), (1, None));

    for i in 0..2 {
        let _ = a
            .begin_attempt(&alice, &ids, VERIFY, &policy, t(170 + i))
            .await
            .unwrap();
    }
    assert!(matches!(
        a.begin_attempt(&alice, &ids, VERIFY, &policy, t(180))
            .await
            .unwrap(),
        AttemptGrant::Locked { .. }
    ));
    b.reset_user_failures(&alice).await.unwrap();
    assert_eq!(a.user_failures(&alice).await.unwrap(), (0, None));
    assert!(matches!(
        a.begin_attempt(&alice, &ids, VERIFY, &policy, t(181))
            .await
            .unwrap(),
        AttemptGrant::Slots(_)
    ));

    // Locks are per user.
    let bob = user("bob");
    assert_eq!(a.user_failures(&bob).await.unwrap(), (0, None));
}

pub async fn commit_success_accepts_only_newer_counters(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let d = device(&alice, DeviceKind::Totp, 1);
    insert(&a, &d).await;
    let counter = |next_counter, drift| SuccessProof::Counter {
        next_counter,
        drift,
    };
    assert!(
        a.commit_success(&alice, &d.id, &counter(1_000_001, 1), &[], t(10))
            .await
            .unwrap()
    );
    assert!(
        !b.commit_success(&alice, &d.id, &counter(1_000_001, 0), &[], t(11))
            .await
            .unwrap()
    );
    assert!(
        !b.commit_success(&alice, &d.id, &counter(1_000_000, 0), &[], t(11))
            .await
            .unwrap()
    );
    let stored = a.get_device(&alice, &d.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.state.next_counter, stored.state.drift),
        (1_000_001, 1)
    );
    assert!(
        b.commit_success(&alice, &d.id, &counter(u64::MAX, -2), &[], t(12))
            .await
            .unwrap()
    );
    let stored = a.get_device(&alice, &d.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.state.next_counter, stored.state.drift),
        (u64::MAX, -2)
    );
    assert!(
        !a.commit_success(&alice, &DeviceId::generate(), &counter(5, 0), &[], t(13))
            .await
            .unwrap()
    );
}

pub async fn commit_success_resets_and_refunds(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let policy = throttle_off();
    let winner = device(&alice, DeviceKind::Totp, 1);
    let other = device(&alice, DeviceKind::Totp, 2);
    insert(&a, &winner).await;
    insert(&a, &other).await;
    let both = [winner.id.clone(), other.id.clone()];
    for i in 0..3 {
        slots(
            a.begin_attempt(&alice, &both, VERIFY, &policy, t(100 + i))
                .await
                .unwrap(),
        );
    }
    assert_eq!(a.user_failures(&alice).await.unwrap(), (3, None));
    let proof = SuccessProof::Counter {
        next_counter: 7,
        drift: 0,
    };
    assert!(
        b.commit_success(&alice, &winner.id, &proof, &both, t(200))
            .await
            .unwrap()
    );
    let w = a.get_device(&alice, &winner.id).await.unwrap().unwrap();
    assert_eq!(
        (
            w.state.failures,
            w.state.last_failure_at,
            w.state.last_used_at
        ),
        (0, None, Some(t(200)))
    );
    let o = a.get_device(&alice, &other.id).await.unwrap().unwrap();
    assert_eq!(o.state.failures, 2, "one failure refunded");
    assert_eq!(o.state.last_used_at, None);
    assert_eq!(a.user_failures(&alice).await.unwrap(), (0, None));

    // A stale proof changes nothing.
    slots(
        a.begin_attempt(&alice, &both, VERIFY, &policy, t(300))
            .await
            .unwrap(),
    );
    assert!(
        !b.commit_success(&alice, &winner.id, &proof, &both, t(301))
            .await
            .unwrap()
    );
    assert_eq!(
        a.get_device(&alice, &winner.id)
            .await
            .unwrap()
            .unwrap()
            .state
            .failures,
        1
    );
    assert_eq!(
        a.get_device(&alice, &other.id)
            .await
            .unwrap()
            .unwrap()
            .state
            .failures,
        3
    );
    assert_eq!(a.user_failures(&alice).await.unwrap(), (1, None));
}

pub async fn challenges_respect_cooldown_and_work_once(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let d = device(&alice, DeviceKind::OutOfBand, 1);
    insert(&a, &d).await;
    let now = SystemClock.now();
    let challenge = |n, resend: u64| Challenge {
        hash: hash(n),
        expires_at: now.saturating_add(Duration::from_secs(300)),
        resend_after: now.saturating_add(Duration::from_secs(resend)),
        binding: None,
        max_tries: 5,
        tries: 0,
    };
    assert_eq!(
        a.put_challenge(&alice, &d.id, &challenge(1, 30), now)
            .await
            .unwrap(),
        ChallengePut::Stored
    );
    let until = now.saturating_add(Duration::from_secs(30));
    assert_eq!(
        b.put_challenge(&alice, &d.id, &challenge(2, 30), now)
            .await
            .unwrap(),
        ChallengePut::Cooldown { until }
    );
    // After the cooldown a new code replaces the old one.
    let later = now.saturating_add(Duration::from_secs(31));
    assert_eq!(
        b.put_challenge(&alice, &d.id, &challenge(2, 60), later)
            .await
            .unwrap(),
        ChallengePut::Stored
    );
    let proof = unbound_code;
    assert!(
        !a.commit_success(&alice, &d.id, &proof(1), &[], later)
            .await
            .unwrap(),
        "replaced code"
    );
    assert!(
        a.commit_success(&alice, &d.id, &proof(2), &[], later)
            .await
            .unwrap()
    );
    assert!(
        !b.commit_success(&alice, &d.id, &proof(2), &[], later)
            .await
            .unwrap(),
        "used once"
    );
    // Used: a new one may be sent at once.
    assert_eq!(
        a.put_challenge(&alice, &d.id, &challenge(3, 60), later)
            .await
            .unwrap(),
        ChallengePut::Stored
    );
    // Past its expiry (by the caller's clock) a code does not work.
    let expired = now.saturating_add(Duration::from_secs(301));
    assert!(
        !a.commit_success(&alice, &d.id, &proof(3), &[], expired)
            .await
            .unwrap()
    );
}

pub async fn challenges_expire(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let d = device(&alice, DeviceKind::OutOfBand, 1);
    insert(&a, &d).await;
    let now = SystemClock.now();
    let short = Challenge {
        hash: hash(1),
        expires_at: now.saturating_add(Duration::from_millis(800)),
        resend_after: now.saturating_add(Duration::from_secs(60)),
        binding: None,
        max_tries: 5,
        tries: 0,
    };
    assert_eq!(
        a.put_challenge(&alice, &d.id, &short, now).await.unwrap(),
        ChallengePut::Stored
    );
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    // The record is gone by the store's own expiry: no cooldown left, and the code is dead
    // even for a caller whose clock lags.
    let again = Challenge {
        hash: hash(2),
        ..short.clone()
    };
    assert_eq!(
        b.put_challenge(&alice, &d.id, &again, now).await.unwrap(),
        ChallengePut::Stored
    );
    assert!(
        !b.commit_success(&alice, &d.id, &unbound_code(1), &[], now)
            .await
            .unwrap()
    );
}

pub async fn challenges_are_discarded_only_with_their_hash(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let d = device(&alice, DeviceKind::OutOfBand, 1);
    insert(&a, &d).await;
    let now = SystemClock.now();
    let challenge = |n| Challenge {
        hash: hash(n),
        expires_at: now.saturating_add(Duration::from_secs(300)),
        resend_after: now.saturating_add(Duration::from_secs(60)),
        binding: None,
        max_tries: 5,
        tries: 0,
    };
    assert!(
        !a.discard_challenge(&alice, &d.id, &hash(1)).await.unwrap(),
        "nothing to discard"
    );
    a.put_challenge(&alice, &d.id, &challenge(1), now)
        .await
        .unwrap();
    // Another hash (a newer code) is left alone, cooldown and all.
    assert!(!b.discard_challenge(&alice, &d.id, &hash(2)).await.unwrap());
    assert!(matches!(
        b.put_challenge(&alice, &d.id, &challenge(2), now)
            .await
            .unwrap(),
        ChallengePut::Cooldown { .. }
    ));
    // Per user: bob's discard does not reach alice's challenge.
    assert!(
        !b.discard_challenge(&user("bob"), &d.id, &hash(1))
            .await
            .unwrap()
    );
    assert!(b.discard_challenge(&alice, &d.id, &hash(1)).await.unwrap());
    assert!(!a.discard_challenge(&alice, &d.id, &hash(1)).await.unwrap());
    assert!(
        !a.commit_success(&alice, &d.id, &unbound_code(1), &[], now)
            .await
            .unwrap(),
        "a discarded code does not work"
    );
    // The cooldown went with it.
    assert_eq!(
        a.put_challenge(&alice, &d.id, &challenge(3), now)
            .await
            .unwrap(),
        ChallengePut::Stored
    );
}

pub async fn user_stamps_start_at_zero_and_change(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    assert_eq!(a.user_stamp(&alice).await.unwrap(), 0);
    let first = b.bump_user_stamp(&alice).await.unwrap();
    assert_ne!(first, 0);
    assert_eq!(a.user_stamp(&alice).await.unwrap(), first);
    let second = a.bump_user_stamp(&alice).await.unwrap();
    assert_ne!(second, first);
    assert_eq!(b.user_stamp(&alice).await.unwrap(), second);
    assert_eq!(b.user_stamp(&user("bob")).await.unwrap(), 0);
}

pub async fn sessions_are_saved_loaded_rotated_and_deleted(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let hour = Duration::from_secs(3600);
    let key = session_key(&a, &alice, "first");
    let record = session(&alice);
    assert_eq!(load(&a, &key).await, None);
    a.save_session(&key, &record, hour).await.unwrap();
    assert_eq!(load(&b, &key).await, Some(record.clone()));

    let app = device(&alice, DeviceKind::Totp, 1);
    insert(&a, &app).await;
    let mut verified = record.clone();
    verified.verified = Some(VerifiedBy {
        device_id: app.id.clone(),
        device_kind: DeviceKind::Totp,
        at: t(5),
        remembered: false,
    });
    let rotated = session_key(&a, &alice, "second");
    assert!(
        b.rotate_session(&key, &rotated, &verified, hour)
            .await
            .unwrap()
    );
    assert_eq!(load(&a, &key).await, None);
    assert_eq!(load(&a, &rotated).await, Some(verified.clone()));
    // The old id cannot be rotated again (it was used), and nothing is created for it.
    let third = session_key(&a, &alice, "third");
    assert!(
        !a.rotate_session(&key, &third, &verified, hour)
            .await
            .unwrap()
    );
    assert_eq!(load(&b, &third).await, None);
    // Rotation stays within one user.
    let bobs = session_key(&a, &user("bob"), "x");
    assert!(
        a.rotate_session(&rotated, &bobs, &verified, hour)
            .await
            .is_err()
    );

    assert!(b.delete_session(&rotated).await.unwrap());
    assert!(!a.delete_session(&rotated).await.unwrap());
    assert_eq!(load(&a, &rotated).await, None);
}

pub async fn sessions_expire_when_idle(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let key = session_key(&a, &alice, "idle");
    let idle = Duration::from_millis(1_000);
    a.save_session(&key, &session(&alice), idle).await.unwrap();
    // Reading is a plain read: only a touch moves the idle deadline.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let loaded = b.load_session(&key).await.unwrap().unwrap();
        assert!(loaded.idle_left <= Duration::from_millis(500));
        assert!(b.touch_session(&key, idle).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(load(&a, &key).await.is_some());
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(load(&a, &key).await, None);
    // Neither a touch nor a rotation brings an expired session back.
    assert!(!b.touch_session(&key, idle).await.unwrap());
    assert_eq!(load(&a, &key).await, None);
    let next = session_key(&a, &alice, "next");
    assert!(
        !a.rotate_session(&key, &next, &session(&alice), idle)
            .await
            .unwrap()
    );
}

pub async fn logout_everywhere_removes_only_that_users_sessions(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let bob = user("bob");
    let hour = Duration::from_secs(3600);
    let alices: Vec<_> = (0..5)
        .map(|i| session_key(&a, &alice, &format!("a{i}")))
        .collect();
    for key in &alices {
        a.save_session(key, &session(&alice), hour).await.unwrap();
    }
    let bobs = session_key(&a, &bob, "b");
    b.save_session(&bobs, &session(&bob), hour).await.unwrap();
    // A rotated session is still found.
    let rotated = session_key(&a, &alice, "rotated");
    assert!(
        a.rotate_session(&alices[0], &rotated, &session(&alice), hour)
            .await
            .unwrap()
    );
    assert!(a.delete_session(&alices[1]).await.unwrap());

    assert_eq!(
        b.delete_user_sessions(&b.user_tag(&alice)).await.unwrap(),
        4
    );
    for key in alices.iter().chain([&rotated]) {
        assert_eq!(load(&a, key).await, None);
    }
    assert!(load(&a, &bobs).await.is_some());
    assert_eq!(
        a.delete_user_sessions(&a.user_tag(&alice)).await.unwrap(),
        0
    );
}

/// Runs `attempt` 200 times concurrently, alternating between the two clients, and returns
/// how many returned true.
async fn race<F, Fut>(a: &SharedStore, b: &SharedStore, attempt: F) -> usize
where
    F: Fn(SharedStore) -> Fut,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let barrier = Arc::new(tokio::sync::Barrier::new(200));
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let client = if i % 2 == 0 { a.clone() } else { b.clone() };
            let run = attempt(client);
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                run.await
            })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        wins += usize::from(task.await.unwrap());
    }
    wins
}

pub async fn race_two_hundred_uses_of_one_totp_step(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let d = device(&alice, DeviceKind::Totp, 1);
    insert(&a, &d).await;
    let wins = race(&a, &b, |store| {
        let (alice, id) = (alice.clone(), d.id.clone());
        async move {
            let proof = SuccessProof::Counter {
                next_counter: 1_000_001,
                drift: 0,
            };
            store
                .commit_success(&alice, &id, &proof, &[], t(1))
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(wins, 1);
}

pub async fn race_two_hundred_uses_of_one_backup_code(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let d = device(&alice, DeviceKind::BackupCodes, 1);
    insert(&a, &d).await;
    a.replace_backup_codes(&alice, &d.id, &[hash(1), hash(2)])
        .await
        .unwrap();
    let wins = race(&a, &b, |store| {
        let (alice, id) = (alice.clone(), d.id.clone());
        async move {
            let proof = SuccessProof::BackupCode(hash(1));
            store
                .commit_success(&alice, &id, &proof, &[], t(1))
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(wins, 1);
    assert_eq!(a.count_backup_codes(&alice, &d.id).await.unwrap(), 1);
}

pub async fn race_two_hundred_uses_of_one_challenge(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let d = device(&alice, DeviceKind::OutOfBand, 1);
    insert(&a, &d).await;
    let now = SystemClock.now();
    let challenge = Challenge {
        hash: hash(1),
        expires_at: now.saturating_add(Duration::from_secs(300)),
        resend_after: now,
        binding: None,
        max_tries: 5,
        tries: 0,
    };
    a.put_challenge(&alice, &d.id, &challenge, now)
        .await
        .unwrap();
    let wins = race(&a, &b, |store| {
        let (alice, id) = (alice.clone(), d.id.clone());
        async move {
            let proof = unbound_code(1);
            store
                .commit_success(&alice, &id, &proof, &[], now)
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(wins, 1);
}

/// 200 wrong attempts at one instant, concurrently, leave the same state as one by one.
async fn wrong_attempts_match_sequential(a: SharedStore, b: SharedStore, policy: ThrottlePolicy) {
    let alice = user("alice");
    let concurrent = device(&alice, DeviceKind::Totp, 1);
    let sequential = device(&user("bob"), DeviceKind::Totp, 1);
    insert(&a, &concurrent).await;
    insert(&a, &sequential).await;
    let now = t(1_000);
    for _ in 0..200 {
        a.begin_attempt(
            &sequential.user,
            std::slice::from_ref(&sequential.id),
            VERIFY,
            &policy,
            now,
        )
        .await
        .unwrap();
    }
    let allowed = race(&a, &b, |store| {
        let (alice, id) = (alice.clone(), concurrent.id.clone());
        async move {
            let grant = store
                .begin_attempt(&alice, &[id], VERIFY, &policy, now)
                .await
                .unwrap();
            matches!(grant, AttemptGrant::Slots(s) if matches!(s[0], AttemptSlot::Allowed(_)))
        }
    })
    .await;
    let expected = a
        .get_device(&sequential.user, &sequential.id)
        .await
        .unwrap()
        .unwrap();
    let actual = a.get_device(&alice, &concurrent.id).await.unwrap().unwrap();
    assert_eq!(actual.state, expected.state);
    assert_eq!(allowed as u32, expected.state.failures);
    assert_eq!(
        a.user_failures(&alice).await.unwrap(),
        a.user_failures(&sequential.user).await.unwrap()
    );
}

pub async fn race_two_hundred_wrong_attempts_match_sequential_throttled(
    a: SharedStore,
    b: SharedStore,
) {
    wrong_attempts_match_sequential(a, b, ThrottlePolicy::default()).await;
}

pub async fn race_two_hundred_wrong_attempts_match_sequential_unthrottled(
    a: SharedStore,
    b: SharedStore,
) {
    wrong_attempts_match_sequential(a, b, throttle_off()).await;
}

fn browser(
    owner: &UserId,
    device: &DeviceId,
    created: Timestamp,
    lifetime: Duration,
) -> RememberedBrowser {
    RememberedBrowser {
        id: BrowserId::generate(),
        user: owner.clone(),
        device_id: device.clone(),
        created_at: created,
        last_used_at: None,
        expires_at: created.saturating_add(lifetime),
        user_agent: Some("Firefox/140".into()),
    }
}

pub async fn remembered_browsers_are_put_checked_listed_and_deleted(
    a: SharedStore,
    b: SharedStore,
) {
    let alice = user("alice");
    let d = device(&alice, DeviceKind::Totp, 1);
    insert(&a, &d).await;
    let now = SystemClock.now();
    let day = Duration::from_secs(86_400);
    let first = browser(&alice, &d.id, now, day);
    let second = browser(
        &alice,
        &d.id,
        now.saturating_add(Duration::from_millis(1)),
        day,
    );
    assert_eq!(
        a.put_remembered(&first).await.unwrap(),
        0,
        "the stamp comes back"
    );
    let stamp = b.bump_user_stamp(&alice).await.unwrap();
    assert_eq!(b.put_remembered(&second).await.unwrap(), stamp);
    assert_eq!(
        a.list_remembered(&alice).await.unwrap(),
        vec![first.clone(), second.clone()]
    );
    assert_eq!(a.list_remembered(&user("bob")).await.unwrap(), vec![]);

    let later = now.saturating_add(Duration::from_secs(60));
    let check = b
        .check_remembered(&alice, &first.id, &d.id, later)
        .await
        .unwrap();
    assert_eq!(
        check.browser,
        Some(first.clone()),
        "as it was before the check"
    );
    assert_eq!(check.device, Some(d.clone()));
    assert_eq!(check.stamp, stamp);
    let listed = a.list_remembered(&alice).await.unwrap();
    assert_eq!(
        listed[0].last_used_at,
        Some(later),
        "the check records its use"
    );

    let missing_device = DeviceId::generate();
    let check = a
        .check_remembered(&alice, &second.id, &missing_device, later)
        .await
        .unwrap();
    assert_eq!((check.browser.is_some(), check.device), (true, None));
    let check = a
        .check_remembered(&alice, &BrowserId::generate(), &d.id, later)
        .await
        .unwrap();
    assert_eq!(check.browser, None);
    let check = a
        .check_remembered(&user("bob"), &first.id, &d.id, later)
        .await
        .unwrap();
    assert_eq!(
        (check.browser, check.device, check.stamp),
        (None, None, 0),
        "per user"
    );
    assert!(a.delete_remembered(&alice, &first.id).await.unwrap());
    assert!(!b.delete_remembered(&alice, &first.id).await.unwrap());
    assert_eq!(a.list_remembered(&alice).await.unwrap().len(), 1);
    // Past its expiry by the caller's clock a browser does not check out.
    let expired = now
        .saturating_add(day)
        .saturating_add(Duration::from_millis(1));
    assert_eq!(
        a.check_remembered(&alice, &second.id, &d.id, expired)
            .await
            .unwrap()
            .browser,
        None
    );
    let third = browser(&alice, &d.id, now, day);
    a.put_remembered(&third).await.unwrap();
    assert!(b.delete_all_remembered(&alice).await.unwrap() >= 1);
    assert_eq!(a.list_remembered(&alice).await.unwrap(), vec![]);
    assert_eq!(b.delete_all_remembered(&alice).await.unwrap(), 0);
}

pub async fn remembered_browsers_expire(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let d = device(&alice, DeviceKind::Totp, 1);
    insert(&a, &d).await;
    let now = SystemClock.now();
    let short = browser(&alice, &d.id, now, Duration::from_millis(800));
    let long = browser(&alice, &d.id, now, Duration::from_secs(3600));
    a.put_remembered(&short).await.unwrap();
    a.put_remembered(&long).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    // Gone by the store's own clock, even for a caller whose clock lags.
    assert_eq!(
        b.check_remembered(&alice, &short.id, &d.id, now)
            .await
            .unwrap()
            .browser,
        None
    );
    assert_eq!(b.list_remembered(&alice).await.unwrap(), vec![long]);
    assert!(!b.delete_remembered(&alice, &short.id).await.unwrap());
}

pub async fn begin_attempt_takes_a_device_named_twice_twice(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let d = device(&alice, DeviceKind::Totp, 1);
    insert(&a, &d).await;
    let twice = [d.id.clone(), d.id.clone()];

    // Without delays: two slots, the second seeing the first; the user count moves once.
    let got = slots(
        b.begin_attempt(&alice, &twice, VERIFY, &throttle_off(), t(100))
            .await
            .unwrap(),
    );
    assert!(matches!(&got[0], AttemptSlot::Allowed(x) if x.state.failures == 0));
    assert!(
        matches!(&got[1], AttemptSlot::Allowed(x) if x.state.failures == 1 && x.state.last_failure_at == Some(t(100)))
    );
    let stored = a.get_device(&alice, &d.id).await.unwrap().unwrap();
    assert_eq!(stored.state.failures, 2);
    assert_eq!(a.user_failures(&alice).await.unwrap(), (1, None));

    // With delays the second slot is throttled by the first.
    let got = slots(
        a.begin_attempt(&alice, &twice, VERIFY, &ThrottlePolicy::default(), t(200))
            .await
            .unwrap(),
    );
    assert!(matches!(&got[0], AttemptSlot::Allowed(x) if x.state.failures == 2));
    assert_eq!(got[1], AttemptSlot::Throttled { until: t(204) });
    assert_eq!(b.user_failures(&alice).await.unwrap(), (2, None));
}

pub async fn commit_success_refunds_once_per_listed_device(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let policy = throttle_off();
    let winner = device(&alice, DeviceKind::Totp, 1);
    let other = device(&alice, DeviceKind::Totp, 2);
    insert(&a, &winner).await;
    insert(&a, &other).await;
    let both = [winner.id.clone(), other.id.clone()];
    for i in 0..3 {
        slots(
            a.begin_attempt(&alice, &both, VERIFY, &policy, t(i))
                .await
                .unwrap(),
        );
    }
    let proof = SuccessProof::Counter {
        next_counter: 1,
        drift: 0,
    };
    // The winner is never refunded (it is reset); a device listed twice gets two back; an
    // unknown one is ignored.
    let refund = [
        other.id.clone(),
        winner.id.clone(),
        other.id.clone(),
        DeviceId::generate(),
    ];
    assert!(
        b.commit_success(&alice, &winner.id, &proof, &refund, t(10))
            .await
            .unwrap()
    );
    let state = |id: DeviceId| {
        let (a, alice) = (a.clone(), alice.clone());
        async move { a.get_device(&alice, &id).await.unwrap().unwrap().state }
    };
    assert_eq!(state(winner.id.clone()).await.failures, 0);
    let o = state(other.id.clone()).await;
    assert_eq!((o.failures, o.last_failure_at), (1, Some(t(2))));
    // Refunds stop at zero.
    let proof = SuccessProof::Counter {
        next_counter: 2,
        drift: 0,
    };
    let many = vec![other.id.clone(); 5];
    assert!(
        a.commit_success(&alice, &winner.id, &proof, &many, t(11))
            .await
            .unwrap()
    );
    assert_eq!(state(other.id.clone()).await.failures, 0);
}

pub async fn codes_and_challenges_need_a_device_and_go_with_it(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let d = device(&alice, DeviceKind::OutOfBand, 1);
    let now = SystemClock.now();
    let challenge = Challenge {
        hash: hash(1),
        expires_at: now.saturating_add(Duration::from_secs(300)),
        resend_after: now.saturating_add(Duration::from_secs(60)),
        binding: None,
        max_tries: 5,
        tries: 0,
    };
    // No device, no codes or challenge.
    assert!(matches!(
        a.replace_backup_codes(&alice, &d.id, &[hash(1)]).await,
        Err(tower_otp::store::StoreError::Invalid(_))
    ));
    assert!(matches!(
        a.put_challenge(&alice, &d.id, &challenge, now).await,
        Err(tower_otp::store::StoreError::Invalid(_))
    ));
    assert_eq!(b.count_backup_codes(&alice, &d.id).await.unwrap(), 0);

    insert(&a, &d).await;
    a.replace_backup_codes(&alice, &d.id, &[hash(1), hash(2)])
        .await
        .unwrap();
    assert_eq!(
        a.put_challenge(&alice, &d.id, &challenge, now)
            .await
            .unwrap(),
        ChallengePut::Stored
    );
    assert_eq!(b.delete_all_devices(&alice).await.unwrap(), 1);

    // The same device again starts clean: no codes, no challenge, no cooldown.
    insert(&b, &d).await;
    assert_eq!(a.count_backup_codes(&alice, &d.id).await.unwrap(), 0);
    assert!(
        !a.commit_success(&alice, &d.id, &unbound_code(1), &[], now)
            .await
            .unwrap()
    );
    let again = Challenge {
        hash: hash(3),
        ..challenge.clone()
    };
    assert_eq!(
        a.put_challenge(&alice, &d.id, &again, now).await.unwrap(),
        ChallengePut::Stored
    );
    assert_eq!(
        b.put_challenge(&alice, &d.id, &challenge, now)
            .await
            .unwrap(),
        ChallengePut::Cooldown {
            until: challenge.resend_after
        }
    );
}

pub async fn sessions_without_time_to_live_are_dead_at_once(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let hour = Duration::from_secs(3600);
    let key = session_key(&a, &alice, "zero");
    a.save_session(&key, &session(&alice), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(load(&b, &key).await, None);

    // Touched with no idle time left: dead at once too.
    a.save_session(&key, &session(&alice), hour).await.unwrap();
    assert_eq!(load(&b, &key).await, Some(session(&alice)));
    assert!(b.touch_session(&key, Duration::ZERO).await.unwrap());
    assert_eq!(load(&a, &key).await, None);
    assert_eq!(
        b.delete_user_sessions(&b.user_tag(&alice)).await.unwrap(),
        0
    );
}

/// A confirmation of `owner` in process, requested now, expiring in 10 minutes and kept an
/// hour more; and its key.
fn confirmation(store: &SharedStore, owner: &UserId) -> (ConfirmationKey, ConfirmationRecord) {
    let now = SystemClock.now();
    let expires_at = now.saturating_add(Duration::from_secs(600));
    let record = ConfirmationRecord {
        user: owner.clone(),
        method: "device".into(),
        status: ConfirmationStatus::InProcess,
        state: serde_json::json!({"action": "delete_account", "n": [1, 2, 3]}),
        attempts: 0,
        created_at: now,
        expires_at,
        retain_until: expires_at.saturating_add(Duration::from_secs(3600)),
    };
    (
        ConfirmationKey::new(store.user_tag(owner), &ConfirmationId::generate()),
        record,
    )
}

fn granted(attempt: ConfirmationAttempt) -> ConfirmationRecord {
    match attempt {
        ConfirmationAttempt::Granted(record) => record,
        other => panic!("not granted: {other:?}"),
    }
}

fn refused(attempt: ConfirmationAttempt) -> ConfirmationRecord {
    match attempt {
        ConfirmationAttempt::Refused(record) => record,
        other => panic!("not refused: {other:?}"),
    }
}

pub async fn confirmations_are_stored_once_per_user(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let id = ConfirmationId::generate();
    let key = ConfirmationKey::new(a.user_tag(&alice), &id);
    let (_, record) = confirmation(&a, &alice);
    assert_eq!(b.get_confirmation(&key).await.unwrap(), None);
    a.insert_confirmation(&key, &record, 10).await.unwrap();
    assert_eq!(
        b.get_confirmation(&key).await.unwrap(),
        Some(record.clone())
    );
    assert!(matches!(
        b.insert_confirmation(&key, &record, 10).await,
        Err(StoreError::Conflict)
    ));
    // The same id under another user is another key: nothing there.
    let bobs = ConfirmationKey::new(b.user_tag(&user("bob")), &id);
    assert_eq!(a.get_confirmation(&bobs).await.unwrap(), None);
    assert_eq!(
        a.begin_confirmation_attempt(&bobs, 5, SystemClock.now())
            .await
            .unwrap(),
        ConfirmationAttempt::Missing
    );
    assert!(
        !a.settle_confirmation(&bobs, ConfirmationStatus::Confirmed, SystemClock.now())
            .await
            .unwrap()
    );
    assert_eq!(
        a.use_confirmation(&bobs, SystemClock.now()).await.unwrap(),
        None
    );
    assert_eq!(b.get_confirmation(&key).await.unwrap(), Some(record));
}

pub async fn confirmation_attempts_are_counted_then_fail(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let (key, record) = confirmation(&a, &alice);
    a.insert_confirmation(&key, &record, 10).await.unwrap();
    let now = SystemClock.now();
    for n in 1..=3 {
        let client = if n % 2 == 0 { &a } else { &b };
        let got = granted(
            client
                .begin_confirmation_attempt(&key, 3, now)
                .await
                .unwrap(),
        );
        assert_eq!(got.attempts, n);
        assert_eq!(got.status, ConfirmationStatus::InProcess);
        assert_eq!(got.state, record.state);
    }
    // No attempts left: it fails, and stays failed.
    let failed = refused(a.begin_confirmation_attempt(&key, 3, now).await.unwrap());
    assert_eq!(
        (failed.status, failed.attempts),
        (ConfirmationStatus::Failed, 3)
    );
    assert_eq!(
        b.get_confirmation(&key).await.unwrap(),
        Some(failed.clone())
    );
    let again = refused(b.begin_confirmation_attempt(&key, 10, now).await.unwrap());
    assert_eq!(again, failed);
    assert!(
        !a.settle_confirmation(&key, ConfirmationStatus::Confirmed, now)
            .await
            .unwrap()
    );
}

pub async fn confirmations_settle_only_from_in_process(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let (key, record) = confirmation(&a, &alice);
    a.insert_confirmation(&key, &record, 10).await.unwrap();
    let now = SystemClock.now();
    for wrong in [
        ConfirmationStatus::InProcess,
        ConfirmationStatus::Used,
        ConfirmationStatus::Expired,
    ] {
        assert!(matches!(
            a.settle_confirmation(&key, wrong, now).await,
            Err(StoreError::Invalid(_))
        ));
    }
    granted(a.begin_confirmation_attempt(&key, 5, now).await.unwrap());
    assert!(
        b.settle_confirmation(&key, ConfirmationStatus::Confirmed, now)
            .await
            .unwrap()
    );
    assert!(
        !a.settle_confirmation(&key, ConfirmationStatus::Failed, now)
            .await
            .unwrap()
    );
    assert!(
        !a.settle_confirmation(&key, ConfirmationStatus::Confirmed, now)
            .await
            .unwrap()
    );
    let stored = a.get_confirmation(&key).await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.attempts),
        (ConfirmationStatus::Confirmed, 1)
    );
    // A confirmed one takes no more answers.
    assert_eq!(
        refused(b.begin_confirmation_attempt(&key, 5, now).await.unwrap()),
        stored
    );

    let (other, record) = confirmation(&a, &alice);
    a.insert_confirmation(&other, &record, 10).await.unwrap();
    assert!(
        b.settle_confirmation(&other, ConfirmationStatus::Failed, now)
            .await
            .unwrap()
    );
    assert_eq!(
        a.get_confirmation(&other).await.unwrap().unwrap().status,
        ConfirmationStatus::Failed
    );
    assert_eq!(a.use_confirmation(&other, now).await.unwrap(), None);
}

pub async fn confirmations_are_used_once_and_only_when_confirmed(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let (key, record) = confirmation(&a, &alice);
    a.insert_confirmation(&key, &record, 10).await.unwrap();
    let now = SystemClock.now();
    assert_eq!(
        b.use_confirmation(&key, now).await.unwrap(),
        None,
        "in process"
    );
    assert!(
        a.settle_confirmation(&key, ConfirmationStatus::Confirmed, now)
            .await
            .unwrap()
    );
    let used = b.use_confirmation(&key, now).await.unwrap().unwrap();
    assert_eq!(used.status, ConfirmationStatus::Used);
    assert_eq!(used.state, record.state);
    assert_eq!(used.user, alice);
    assert_eq!(a.use_confirmation(&key, now).await.unwrap(), None, "used");
    assert_eq!(b.get_confirmation(&key).await.unwrap(), Some(used));
    assert!(matches!(
        a.begin_confirmation_attempt(&key, 5, now).await.unwrap(),
        ConfirmationAttempt::Refused(r) if r.status == ConfirmationStatus::Used
    ));
}

pub async fn expired_confirmations_cannot_be_confirmed_or_used(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let (key, record) = confirmation(&a, &alice);
    a.insert_confirmation(&key, &record, 10).await.unwrap();
    let at_expiry = record.expires_at;
    let before = at_expiry.saturating_sub(Duration::from_millis(1));
    assert_eq!(
        refused(
            b.begin_confirmation_attempt(&key, 5, at_expiry)
                .await
                .unwrap()
        ),
        record
    );
    assert!(
        !b.settle_confirmation(&key, ConfirmationStatus::Confirmed, at_expiry)
            .await
            .unwrap()
    );
    granted(a.begin_confirmation_attempt(&key, 5, before).await.unwrap());
    assert!(
        a.settle_confirmation(&key, ConfirmationStatus::Confirmed, before)
            .await
            .unwrap()
    );
    assert_eq!(b.use_confirmation(&key, at_expiry).await.unwrap(), None);
    let stored = a.get_confirmation(&key).await.unwrap().unwrap();
    assert_eq!(stored.status, ConfirmationStatus::Confirmed);
    assert_eq!(stored.status_at(at_expiry), ConfirmationStatus::Expired);
    assert!(b.use_confirmation(&key, before).await.unwrap().is_some());
}

pub async fn confirmations_are_forgotten_after_retention(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let (key, mut record) = confirmation(&a, &alice);
    let now = SystemClock.now();
    record.expires_at = now.saturating_add(Duration::from_millis(400));
    record.retain_until = now.saturating_add(Duration::from_millis(800));
    a.insert_confirmation(&key, &record, 10).await.unwrap();
    assert!(b.get_confirmation(&key).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    // Forgotten by the store's own clock, whatever the caller's says.
    assert_eq!(b.get_confirmation(&key).await.unwrap(), None);
    assert_eq!(
        a.begin_confirmation_attempt(&key, 5, now).await.unwrap(),
        ConfirmationAttempt::Missing
    );
    assert_eq!(a.use_confirmation(&key, now).await.unwrap(), None);
    a.insert_confirmation(&key, &confirmation(&a, &alice).1, 10)
        .await
        .unwrap();
}

pub async fn race_two_hundred_uses_of_one_confirmation(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let (key, record) = confirmation(&a, &alice);
    a.insert_confirmation(&key, &record, 10).await.unwrap();
    let now = SystemClock.now();
    assert!(
        b.settle_confirmation(&key, ConfirmationStatus::Confirmed, now)
            .await
            .unwrap()
    );
    let wins = race(&a, &b, |store| {
        let key = key.clone();
        async move { store.use_confirmation(&key, now).await.unwrap().is_some() }
    })
    .await;
    assert_eq!(wins, 1);
    assert_eq!(
        a.get_confirmation(&key).await.unwrap().unwrap().status,
        ConfirmationStatus::Used
    );
}

pub async fn race_two_hundred_attempts_at_one_confirmation(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let (key, record) = confirmation(&a, &alice);
    a.insert_confirmation(&key, &record, 10).await.unwrap();
    let now = SystemClock.now();
    let granted = race(&a, &b, |store| {
        let key = key.clone();
        async move {
            matches!(
                store
                    .begin_confirmation_attempt(&key, 5, now)
                    .await
                    .unwrap(),
                ConfirmationAttempt::Granted(_)
            )
        }
    })
    .await;
    assert_eq!(granted, 5);
    let stored = b.get_confirmation(&key).await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.attempts),
        (ConfirmationStatus::Failed, 5)
    );
}

// ----- unconfirmed devices, limits, confirmation ------------------------------------------

/// An unconfirmed device of `kind` that expires at `until`.
fn pending(owner: &UserId, kind: DeviceKind, until: Timestamp) -> Device {
    Device {
        confirmed: false,
        pending_until: Some(until),
        ..device(owner, kind, 1)
    }
}

fn limits(max_devices: u32, max_pending: u32) -> DeviceLimits {
    DeviceLimits {
        max_devices,
        max_pending,
    }
}

/// Runs `attempt(client, i)` for i in 0..n concurrently, alternating between the two clients,
/// and returns the outcomes in order.
async fn race_n<T, F, Fut>(a: &SharedStore, b: &SharedStore, n: usize, attempt: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(SharedStore, usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let client = if i % 2 == 0 { a.clone() } else { b.clone() };
            let run = attempt(client, i);
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

pub async fn pending_devices_expire_for_every_operation(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let now = SystemClock.now();
    let soon = now.saturating_add(Duration::from_millis(1_000));
    let confirmed = device(&alice, DeviceKind::Totp, 1);
    let totp = pending(&alice, DeviceKind::Totp, soon);
    let oob = pending(&alice, DeviceKind::OutOfBand, soon);
    let codes = pending(&alice, DeviceKind::BackupCodes, soon);
    for d in [&confirmed, &totp, &oob, &codes] {
        insert(&a, d).await;
    }
    a.replace_backup_codes(&alice, &codes.id, &[hash(1)])
        .await
        .unwrap();
    let later = now.saturating_add(Duration::from_secs(300));
    let challenge = Challenge {
        hash: hash(2),
        expires_at: later,
        resend_after: now,
        binding: None,
        max_tries: 5,
        tries: 0,
    };
    let browser = browser(&alice, &totp.id, now, Duration::from_secs(3600));
    a.put_remembered(&browser).await.unwrap();
    assert_eq!(
        b.get_device(&alice, &totp.id).await.unwrap(),
        Some(totp.clone())
    );
    assert_eq!(b.list_devices(&alice).await.unwrap().len(), 4);
    assert_eq!(b.count_backup_codes(&alice, &codes.id).await.unwrap(), 1);

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let now = SystemClock.now();
    assert_eq!(b.get_device(&alice, &totp.id).await.unwrap(), None);
    assert_eq!(
        b.list_devices(&alice).await.unwrap(),
        vec![confirmed.clone()]
    );
    assert_eq!(a.count_backup_codes(&alice, &codes.id).await.unwrap(), 0);
    let ids = [totp.id.clone(), oob.id.clone(), codes.id.clone()];
    let got = slots(
        a.begin_attempt(&alice, &ids, CONFIRM, &throttle_off(), now)
            .await
            .unwrap(),
    );
    assert_eq!(got, vec![AttemptSlot::Missing; 3]);
    assert_eq!(a.user_failures(&alice).await.unwrap(), (0, None));
    let proof = SuccessProof::Counter {
        next_counter: 5,
        drift: 0,
    };
    assert!(
        !b.commit_success(&alice, &totp.id, &proof, &[], now)
            .await
            .unwrap()
    );
    assert!(
        !b.commit_success(
            &alice,
            &codes.id,
            &SuccessProof::BackupCode(hash(1)),
            &[],
            now
        )
        .await
        .unwrap()
    );
    assert!(matches!(
        a.put_challenge(&alice, &oob.id, &challenge, now).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        a.replace_backup_codes(&alice, &codes.id, &[hash(3)]).await,
        Err(StoreError::Invalid(_))
    ));
    let check = b
        .check_remembered(&alice, &browser.id, &totp.id, now)
        .await
        .unwrap();
    assert_eq!(check.device, None);
    assert!(!a.update_device(&totp).await.unwrap());
    assert_eq!(
        a.confirm_device(&alice, &totp.id, false).await.unwrap(),
        ConfirmOutcome::Missing
    );
    assert!(!b.delete_device(&alice, &oob.id).await.unwrap());
    // An expired device counts toward no limit, and its id is free again.
    assert_eq!(
        a.insert_device(&pending(&alice, DeviceKind::Totp, later), &limits(2, 1))
            .await
            .unwrap(),
        DeviceInsert::Inserted
    );
    let mut again = totp.clone();
    again.pending_until = Some(later);
    insert(&b, &again).await;
    assert_eq!(b.get_device(&alice, &totp.id).await.unwrap(), Some(again));
    assert_eq!(
        b.get_device(&alice, &confirmed.id).await.unwrap(),
        Some(confirmed)
    );

    // A deadline already past: reported inserted, and gone at once.
    let stillborn = pending(&alice, DeviceKind::Totp, t(1));
    insert(&a, &stillborn).await;
    assert_eq!(b.get_device(&alice, &stillborn.id).await.unwrap(), None);
    // A confirmed device has no deadline.
    let mut invalid = device(&alice, DeviceKind::Totp, 1);
    invalid.pending_until = Some(later);
    assert!(matches!(
        a.insert_device(&invalid, &DeviceLimits::default()).await,
        Err(StoreError::Invalid(_))
    ));
}

pub async fn insert_device_enforces_the_limits(a: SharedStore, b: SharedStore) {
    let (alice, bob) = (user("alice"), user("bob"));
    let later = SystemClock.now().saturating_add(Duration::from_secs(300));
    let limits = limits(4, 2);
    let backup = device(&alice, DeviceKind::BackupCodes, 1);
    let mut outcomes = Vec::new();
    for d in [
        backup.clone(),
        pending(&alice, DeviceKind::Totp, later),
        pending(&alice, DeviceKind::OutOfBand, later),
        pending(&alice, DeviceKind::Totp, later),
        device(&alice, DeviceKind::Totp, 2),
        device(&alice, DeviceKind::Totp, 3),
        pending(&alice, DeviceKind::Totp, later),
    ] {
        let client = if outcomes.len() % 2 == 0 { &a } else { &b };
        outcomes.push(client.insert_device(&d, &limits).await.unwrap());
    }
    use DeviceInsert::*;
    assert_eq!(
        outcomes,
        [
            Inserted,
            Inserted,
            Inserted,
            TooManyPending,
            Inserted,
            TooManyDevices,
            TooManyDevices
        ]
    );
    assert_eq!(a.list_devices(&alice).await.unwrap().len(), 4);

    // One backup-code device per user, reported before the count limit.
    let second_backup = device(&alice, DeviceKind::BackupCodes, 4);
    let stored_backup = a.get_device(&alice, &backup.id).await.unwrap().unwrap();
    assert_eq!(
        b.insert_device(&second_backup, &limits).await.unwrap(),
        BackupCodesExist(Box::new(stored_backup))
    );
    assert!(matches!(
        b.insert_device(&backup, &limits).await,
        Err(StoreError::Conflict)
    ));
    // Limits are per user.
    insert(&a, &device(&bob, DeviceKind::BackupCodes, 1)).await;
    insert(&b, &pending(&bob, DeviceKind::Totp, later)).await;
}

pub async fn race_thirty_inserts_never_pass_the_limits(a: SharedStore, b: SharedStore) {
    let later = SystemClock.now().saturating_add(Duration::from_secs(300));
    let cases = [
        (user("alice"), DeviceKind::Totp, true, 5),
        (user("bob"), DeviceKind::Totp, false, 3),
        (user("carol"), DeviceKind::BackupCodes, true, 1),
    ];
    for (owner, kind, confirmed, allowed) in cases {
        let outcomes = race_n(&a, &b, 30, |store, _| {
            let mut d = device(&owner, kind, 1);
            if !confirmed {
                d = pending(&owner, kind, later);
            }
            async move { store.insert_device(&d, &limits(5, 3)).await.unwrap() }
        })
        .await;
        let inserted = outcomes
            .iter()
            .filter(|o| **o == DeviceInsert::Inserted)
            .count();
        assert_eq!(inserted, allowed, "{owner:?}: {outcomes:?}");
        let stored = a.list_devices(&owner).await.unwrap();
        assert_eq!(stored.len(), allowed, "{owner:?}");
        for outcome in outcomes {
            match outcome {
                DeviceInsert::Inserted => {}
                DeviceInsert::TooManyDevices => assert!(confirmed && kind == DeviceKind::Totp),
                DeviceInsert::TooManyPending => assert!(!confirmed),
                DeviceInsert::BackupCodesExist(winner) => assert_eq!(*winner, stored[0]),
            }
        }
    }
}

pub async fn confirm_device_confirms_once_and_the_first_ends_other_pending(
    a: SharedStore,
    b: SharedStore,
) {
    let alice = user("alice");
    let now = SystemClock.now();
    let later = now.saturating_add(Duration::from_secs(300));
    let first = pending(&alice, DeviceKind::Totp, later);
    let rival = pending(&alice, DeviceKind::OutOfBand, later);
    let other = pending(&alice, DeviceKind::Totp, later);
    for d in [&first, &rival, &other] {
        insert(&a, d).await;
    }
    let challenge = Challenge {
        hash: hash(1),
        expires_at: later,
        resend_after: later,
        binding: None,
        max_tries: 5,
        tries: 0,
    };
    a.put_challenge(&alice, &rival.id, &challenge, now)
        .await
        .unwrap();

    assert_eq!(
        b.confirm_device(&alice, &first.id, true).await.unwrap(),
        ConfirmOutcome::Confirmed { first: true }
    );
    let mut confirmed = first.clone();
    confirmed.confirmed = true;
    confirmed.pending_until = None;
    assert_eq!(
        a.list_devices(&alice).await.unwrap(),
        vec![confirmed.clone()]
    );
    // The rival's challenge went with it: a device added again under its id has none.
    insert(&a, &rival).await;
    assert!(
        !a.commit_success(&alice, &rival.id, &unbound_code(1), &[], now)
            .await
            .unwrap()
    );
    assert!(a.delete_device(&alice, &rival.id).await.unwrap());

    assert_eq!(
        a.confirm_device(&alice, &first.id, false).await.unwrap(),
        ConfirmOutcome::AlreadyConfirmed
    );
    assert_eq!(
        a.confirm_device(&alice, &DeviceId::generate(), false)
            .await
            .unwrap(),
        ConfirmOutcome::Missing
    );

    // A further device: refused when only a first may be confirmed, then confirmed, leaving
    // the other unconfirmed devices alone.
    let second = pending(&alice, DeviceKind::Totp, later);
    let third = pending(&alice, DeviceKind::Totp, later);
    insert(&a, &second).await;
    insert(&b, &third).await;
    assert_eq!(
        b.confirm_device(&alice, &second.id, true).await.unwrap(),
        ConfirmOutcome::NotFirst
    );
    assert_eq!(
        a.get_device(&alice, &second.id).await.unwrap(),
        Some(second.clone())
    );
    assert_eq!(
        b.confirm_device(&alice, &second.id, false).await.unwrap(),
        ConfirmOutcome::Confirmed { first: false }
    );
    let stored = a.get_device(&alice, &second.id).await.unwrap().unwrap();
    assert!(stored.confirmed && stored.pending_until.is_none());
    assert_eq!(a.get_device(&alice, &third.id).await.unwrap(), Some(third));
    // The confirmation survives the deadline it had.
    let bob = user("bob");
    let brief = pending(
        &bob,
        DeviceKind::Totp,
        SystemClock.now().saturating_add(Duration::from_millis(500)),
    );
    insert(&a, &brief).await;
    assert_eq!(
        b.confirm_device(&bob, &brief.id, false).await.unwrap(),
        ConfirmOutcome::Confirmed { first: true }
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(a.get_device(&bob, &brief.id).await.unwrap().is_some());
    assert_eq!(
        a.get_device(&alice, &first.id).await.unwrap(),
        Some(confirmed)
    );
}

pub async fn race_only_one_first_device_is_confirmed(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let later = SystemClock.now().saturating_add(Duration::from_secs(300));
    let candidates: Vec<Device> = (0..10)
        .map(|_| pending(&alice, DeviceKind::Totp, later))
        .collect();
    for d in &candidates {
        let inserted = a.insert_device(d, &limits(20, 10)).await.unwrap();
        assert_eq!(inserted, DeviceInsert::Inserted);
    }
    let outcomes = race_n(&a, &b, 10, |store, i| {
        let (alice, id) = (alice.clone(), candidates[i].id.clone());
        async move { store.confirm_device(&alice, &id, true).await.unwrap() }
    })
    .await;
    let firsts = outcomes
        .iter()
        .filter(|o| **o == ConfirmOutcome::Confirmed { first: true })
        .count();
    assert_eq!(firsts, 1, "{outcomes:?}");
    assert!(
        outcomes.iter().all(|o| matches!(
            o,
            ConfirmOutcome::Confirmed { first: true } | ConfirmOutcome::Missing
        )),
        "{outcomes:?}"
    );
    let left = a.list_devices(&alice).await.unwrap();
    assert_eq!(left.len(), 1);
    assert!(left[0].confirmed);
}

pub async fn verification_attempts_on_pending_devices_are_not_counted(
    a: SharedStore,
    b: SharedStore,
) {
    let alice = user("alice");
    let later = SystemClock.now().saturating_add(Duration::from_secs(300));
    let policy = ThrottlePolicy::default().with_user_failure_limit(3);
    let unconfirmed = pending(&alice, DeviceKind::Totp, later);
    let confirmed = device(&alice, DeviceKind::Totp, 1);
    insert(&a, &unconfirmed).await;
    insert(&a, &confirmed).await;
    let outcomes = race_n(&a, &b, 200, |store, i| {
        let (alice, id, policy) = (alice.clone(), unconfirmed.id.clone(), policy);
        async move {
            let now = t(100 + i as u64);
            store
                .begin_attempt(&alice, &[id], VERIFY, &policy, now)
                .await
                .unwrap()
        }
    })
    .await;
    for grant in outcomes {
        assert_eq!(slots(grant), vec![AttemptSlot::NotConfirmed]);
    }
    assert_eq!(a.user_failures(&alice).await.unwrap(), (0, None));
    let stored = b
        .get_device(&alice, &unconfirmed.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.state, DeviceState::default());

    // Confirming a confirmed device is refused uncounted too.
    let got = slots(
        a.begin_attempt(
            &alice,
            std::slice::from_ref(&confirmed.id),
            CONFIRM,
            &policy,
            t(400),
        )
        .await
        .unwrap(),
    );
    assert_eq!(got, vec![AttemptSlot::AlreadyConfirmed]);
    assert_eq!(a.user_failures(&alice).await.unwrap(), (0, None));
    // Each device is judged for itself, and only allowed ones count.
    let both = [confirmed.id.clone(), unconfirmed.id.clone()];
    let got = slots(
        b.begin_attempt(&alice, &both, VERIFY, &policy, t(500))
            .await
            .unwrap(),
    );
    assert!(matches!(&got[0], AttemptSlot::Allowed(d) if d.id == confirmed.id));
    assert_eq!(got[1], AttemptSlot::NotConfirmed);
    let got = slots(
        b.begin_attempt(&alice, &both, CONFIRM, &policy, t(600))
            .await
            .unwrap(),
    );
    assert_eq!(got[0], AttemptSlot::AlreadyConfirmed);
    assert!(matches!(&got[1], AttemptSlot::Allowed(d) if d.id == unconfirmed.id));
    assert_eq!(a.user_failures(&alice).await.unwrap(), (2, None));
}

// ----- revocation ----------------------------------------------------------------------------

fn verified_by(owner: &UserId, device: &DeviceId, remembered: bool) -> SessionRecord {
    SessionRecord {
        verified: Some(VerifiedBy {
            device_id: device.clone(),
            device_kind: DeviceKind::Totp,
            at: Timestamp::from_millis(1_700_000_000_123),
            remembered,
        }),
        login: Some("login-digest".into()),
        ..session(owner)
    }
}

/// The ids of the user's live remembered browsers, sorted.
async fn browser_ids(store: &SharedStore, owner: &UserId) -> Vec<BrowserId> {
    let mut ids: Vec<BrowserId> = store
        .list_remembered(owner)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.id)
        .collect();
    ids.sort();
    ids
}

/// Two users, each with two devices, a browser remembered through each device, and sessions
/// verified by each device (by code and by cookie) and unverified ones. Bob's devices reuse
/// Alice's ids, so that only the user tells them apart.
struct Revocable {
    alice: UserId,
    bob: UserId,
    doomed: Device,
    kept: Device,
    doomed_browser: BrowserId,
    kept_browser: BrowserId,
    bobs_browsers: Vec<BrowserId>,
    /// Alice's sessions: verified by `doomed` (by code, by cookie), by `kept`, unverified.
    sessions: [(SessionKey, SessionRecord); 4],
    /// One more session of Alice's verified by `doomed`, never read before
    /// [`Revocable::check_expiry_kept`] (reading would set its time to live again).
    witness: SessionKey,
    bobs_sessions: Vec<(SessionKey, SessionRecord)>,
}

const SESSION_TTL: Duration = Duration::from_secs(2);

async fn revocable(a: &SharedStore, b: &SharedStore, doomed_kind: DeviceKind) -> Revocable {
    let (alice, bob) = (user("alice"), user("bob"));
    let now = SystemClock.now();
    let doomed = device(&alice, doomed_kind, 1);
    let kept = device(&alice, DeviceKind::Totp, 2);
    insert(a, &doomed).await;
    insert(b, &kept).await;
    let lifetime = Duration::from_secs(3600);
    let doomed_browser = browser(&alice, &doomed.id, now, lifetime);
    let kept_browser = browser(&alice, &kept.id, now, lifetime);
    a.put_remembered(&doomed_browser).await.unwrap();
    b.put_remembered(&kept_browser).await.unwrap();
    let mut bobs_browsers = Vec::new();
    let mut bobs_sessions = Vec::new();
    for (i, source) in [&doomed, &kept].into_iter().enumerate() {
        let bobs = Device {
            user: bob.clone(),
            ..source.clone()
        };
        insert(a, &bobs).await;
        let remembered = browser(&bob, &bobs.id, now, lifetime);
        b.put_remembered(&remembered).await.unwrap();
        bobs_browsers.push(remembered.id);
        let key = session_key(a, &bob, &format!("bob-{i}"));
        let record = verified_by(&bob, &bobs.id, false);
        a.save_session(&key, &record, SESSION_TTL).await.unwrap();
        bobs_sessions.push((key, record));
    }
    bobs_browsers.sort();
    let sessions = [
        verified_by(&alice, &doomed.id, false),
        verified_by(&alice, &doomed.id, true),
        verified_by(&alice, &kept.id, false),
        session(&alice),
    ]
    .map(|record| {
        let key = session_key(a, &alice, &format!("{:?}", record.verified));
        (key, record)
    });
    for (key, record) in &sessions {
        b.save_session(key, record, SESSION_TTL).await.unwrap();
    }
    let witness = session_key(a, &alice, "witness");
    let record = verified_by(&alice, &doomed.id, false);
    a.save_session(&witness, &record, SESSION_TTL)
        .await
        .unwrap();
    Revocable {
        alice,
        bob,
        doomed,
        kept,
        doomed_browser: doomed_browser.id,
        kept_browser: kept_browser.id,
        bobs_browsers,
        sessions,
        witness,
        bobs_sessions,
    }
}

impl Revocable {
    /// Checks that Alice's sessions are as `expected` (the records, in order) and Bob's are
    /// untouched; without extending any of them.
    async fn check_sessions(&self, store: &SharedStore, expected: [SessionRecord; 4]) {
        for ((key, _), expected) in self.sessions.iter().zip(expected) {
            let loaded = load(store, key).await;
            assert_eq!(loaded, Some(expected));
        }
        for (key, record) in &self.bobs_sessions {
            let loaded = load(store, key).await;
            assert_eq!(
                loaded.as_ref(),
                Some(record),
                "another user's session changed"
            );
        }
        assert_eq!(browser_ids(store, &self.bob).await, self.bobs_browsers);
    }

    fn unverified(&self, index: usize) -> SessionRecord {
        SessionRecord {
            verified: None,
            ..self.sessions[index].1.clone()
        }
    }

    fn unchanged(&self, index: usize) -> SessionRecord {
        self.sessions[index].1.clone()
    }

    /// Checks that a session whose verification was cleared expires when it would have:
    /// clearing kept its time to live.
    async fn check_expiry_kept(&self, store: &SharedStore) {
        tokio::time::sleep(SESSION_TTL + Duration::from_millis(200)).await;
        let witness = load(store, &self.witness).await;
        assert_eq!(witness, None);
    }
}

pub async fn deleting_a_device_revokes_what_it_verified(a: SharedStore, b: SharedStore) {
    let r = revocable(&a, &b, DeviceKind::Totp).await;
    let mut kept_expected = vec![r.kept_browser.clone()];
    kept_expected.sort();
    assert!(b.delete_device(&r.alice, &r.doomed.id).await.unwrap());
    assert_eq!(browser_ids(&a, &r.alice).await, kept_expected);
    r.check_sessions(
        &a,
        [
            r.unverified(0),
            r.unverified(1),
            r.unchanged(2),
            r.unchanged(3),
        ],
    )
    .await;
    assert_eq!(
        a.list_devices(&r.alice).await.unwrap(),
        vec![r.kept.clone()]
    );
    assert_eq!(a.list_devices(&r.bob).await.unwrap().len(), 2);
    // Deleting it again finds nothing, and changes nothing.
    assert!(!a.delete_device(&r.alice, &r.doomed.id).await.unwrap());
    assert_eq!(browser_ids(&b, &r.alice).await, kept_expected);
    r.check_expiry_kept(&b).await;
}

pub async fn deleting_all_devices_revokes_every_verification(a: SharedStore, b: SharedStore) {
    let r = revocable(&a, &b, DeviceKind::Totp).await;
    assert_eq!(a.delete_all_devices(&r.alice).await.unwrap(), 2);
    assert_eq!(browser_ids(&b, &r.alice).await, vec![]);
    r.check_sessions(
        &b,
        [
            r.unverified(0),
            r.unverified(1),
            r.unverified(2),
            r.unchanged(3),
        ],
    )
    .await;
    assert_eq!(b.list_devices(&r.bob).await.unwrap().len(), 2);
    r.check_expiry_kept(&a).await;
}

pub async fn logout_everywhere_forgets_remembered_browsers(a: SharedStore, b: SharedStore) {
    let r = revocable(&a, &b, DeviceKind::Totp).await;
    assert_eq!(
        b.delete_user_sessions(&b.user_tag(&r.alice)).await.unwrap(),
        5
    );
    assert_eq!(browser_ids(&a, &r.alice).await, vec![]);
    let alices = r.sessions.iter().map(|(key, _)| key).chain([&r.witness]);
    for key in alices {
        assert_eq!(load(&a, key).await, None);
    }
    for (key, record) in &r.bobs_sessions {
        let loaded = load(&a, key).await;
        assert_eq!(loaded.as_ref(), Some(record));
    }
    assert_eq!(browser_ids(&b, &r.bob).await, r.bobs_browsers);
    // Also with no session left to find the user by.
    let again = browser(
        &r.alice,
        &r.kept.id,
        SystemClock.now(),
        Duration::from_secs(60),
    );
    a.put_remembered(&again).await.unwrap();
    assert_eq!(
        b.delete_user_sessions(&b.user_tag(&r.alice)).await.unwrap(),
        0
    );
    assert_eq!(browser_ids(&a, &r.alice).await, vec![]);
}

pub async fn new_backup_codes_forget_the_browsers_they_remembered(a: SharedStore, b: SharedStore) {
    let r = revocable(&a, &b, DeviceKind::BackupCodes).await;
    a.replace_backup_codes(&r.alice, &r.doomed.id, &[hash(1)])
        .await
        .unwrap();
    assert_eq!(
        browser_ids(&b, &r.alice).await,
        vec![r.kept_browser.clone()]
    );
    // Sessions keep their verification, whichever device gave it.
    r.check_sessions(
        &a,
        [
            r.unchanged(0),
            r.unchanged(1),
            r.unchanged(2),
            r.unchanged(3),
        ],
    )
    .await;
    let check = a
        .check_remembered(&r.alice, &r.doomed_browser, &r.doomed.id, SystemClock.now())
        .await
        .unwrap();
    assert_eq!(
        (check.browser, check.device),
        (None, Some(r.doomed.clone()))
    );
}

pub async fn a_touch_moves_only_the_idle_deadline(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let hour = Duration::from_secs(3600);
    let key = session_key(&a, &alice, "touched");
    let app = device(&alice, DeviceKind::Totp, 1);
    insert(&a, &app).await;
    let mut record = session(&alice);
    record.verified = Some(VerifiedBy {
        device_id: app.id.clone(),
        device_kind: DeviceKind::Totp,
        at: t(2),
        remembered: false,
    });
    a.save_session(&key, &record, Duration::from_millis(500))
        .await
        .unwrap();
    let loaded = b.load_session(&key).await.unwrap().unwrap();
    assert!(loaded.idle_left <= Duration::from_millis(500));
    assert!(b.touch_session(&key, hour).await.unwrap());
    let loaded = a.load_session(&key).await.unwrap().unwrap();
    assert!(loaded.idle_left > Duration::from_secs(3590));
    assert_eq!(loaded.record, record);
    // A revocation between the read and the touch stays: the touch keeps the record as
    // stored.
    assert!(a.delete_device(&alice, &app.id).await.unwrap());
    assert!(b.touch_session(&key, hour).await.unwrap());
    let unverified = SessionRecord {
        verified: None,
        ..record
    };
    assert_eq!(load(&a, &key).await, Some(unverified));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(load(&b, &key).await.is_some());
}

pub async fn a_session_is_read_with_whether_its_user_has_a_device(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let hour = Duration::from_secs(3600);
    let key = session_key(&a, &alice, "flag");
    let configured = |loaded: Option<tower_otp::store::LoadedSession>| {
        // A store that does not keep the flag answers None; the guard then asks.
        loaded.unwrap().configured
    };
    a.save_session(&key, &session(&alice), hour).await.unwrap();
    let first = configured(b.load_session(&key).await.unwrap());
    if first.is_none() {
        return;
    }
    assert_eq!(first, Some(false));
    // An unconfirmed device does not count; confirming it does.
    let mut pending = device(&alice, DeviceKind::Totp, 1);
    pending.confirmed = false;
    pending.pending_until = Some(t(10_000_000_000));
    insert(&a, &pending).await;
    assert_eq!(configured(b.load_session(&key).await.unwrap()), Some(false));
    assert_eq!(
        a.confirm_device(&alice, &pending.id, false).await.unwrap(),
        ConfirmOutcome::Confirmed { first: true }
    );
    assert_eq!(configured(b.load_session(&key).await.unwrap()), Some(true));
    // A second confirmed device, then deleting one, then the other.
    let codes = device(&alice, DeviceKind::BackupCodes, 2);
    insert(&b, &codes).await;
    assert!(a.delete_device(&alice, &pending.id).await.unwrap());
    assert_eq!(configured(b.load_session(&key).await.unwrap()), Some(true));
    assert!(b.delete_device(&alice, &codes.id).await.unwrap());
    assert_eq!(configured(a.load_session(&key).await.unwrap()), Some(false));
    // A confirmed device inserted as such, then every device deleted at once.
    insert(&a, &device(&alice, DeviceKind::Totp, 3)).await;
    assert_eq!(configured(b.load_session(&key).await.unwrap()), Some(true));
    assert_eq!(b.delete_all_devices(&alice).await.unwrap(), 1);
    assert_eq!(configured(a.load_session(&key).await.unwrap()), Some(false));
    // A session saved while the user has a device says so from the start.
    insert(&a, &device(&alice, DeviceKind::Totp, 4)).await;
    let later = session_key(&a, &alice, "later");
    b.save_session(&later, &session(&alice), hour)
        .await
        .unwrap();
    assert_eq!(
        configured(a.load_session(&later).await.unwrap()),
        Some(true)
    );
    // Another user's flag is their own.
    let bob = user("bob");
    let bobs = session_key(&a, &bob, "bob");
    a.save_session(&bobs, &session(&bob), hour).await.unwrap();
    assert_eq!(
        configured(b.load_session(&bobs).await.unwrap()),
        Some(false)
    );
}

pub async fn session_attempts_are_counted_once_each_and_expire(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let key = session_key(&a, &alice, "tries");
    let ttl = Duration::from_millis(600);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            store.count_session_attempt(&key, ttl).await.unwrap()
        }));
    }
    let mut counts = Vec::new();
    for task in tasks {
        counts.push(task.await.unwrap());
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=50).collect::<Vec<u64>>());
    // Another session's count is its own.
    let other = session_key(&a, &alice, "other");
    assert_eq!(a.count_session_attempt(&other, ttl).await.unwrap(), 1);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(b.count_session_attempt(&key, ttl).await.unwrap(), 1);
}

/// Clients bound with one key tag every user alike, and not with the plain digest of the user
/// id, which anyone could check a guess against; a key bound later changes nothing.
pub async fn user_tags_are_keyed_alike_by_every_client(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let tag = a.user_tag(&alice);
    assert_eq!(b.user_tag(&alice), tag);
    assert_ne!(a.user_tag(&user("bob")), tag);
    let plain = data_encoding::HEXLOWER.encode(&sha2::Sha256::digest(b"alice")[..16]);
    assert_ne!(tag.as_str(), plain);

    let key = session_key(&a, &alice, "tagged");
    a.save_session(&key, &session(&alice), Duration::from_secs(60))
        .await
        .unwrap();
    a.bind_tag_key(ServerKey::generate().tag_key());
    b.bind_tag_key(ServerKey::generate().tag_key());
    assert_eq!(a.user_tag(&alice), tag);
    assert_eq!(b.user_tag(&alice), tag);
    assert_eq!(
        b.delete_user_sessions(&b.user_tag(&alice)).await.unwrap(),
        1,
        "the session is found under the first key's tag"
    );
}

/// A live challenge with code `n`, sent for `binding`, taking `max_tries` tries, with a
/// minute of cooldown.
fn live_challenge(n: u32, binding: Option<&str>, max_tries: u32) -> Challenge {
    let now = SystemClock.now();
    Challenge {
        hash: hash(n),
        expires_at: now.saturating_add(Duration::from_secs(300)),
        resend_after: now.saturating_add(Duration::from_secs(60)),
        binding: binding.map(LoginBinding::new),
        max_tries,
        tries: 0,
    }
}

fn code_from(n: u32, binding: Option<&str>) -> SuccessProof {
    SuccessProof::Challenge {
        hash: hash(n),
        binding: binding.map(LoginBinding::new),
    }
}

/// Claims one attempt at `device` of `owner`, unthrottled, and asserts it was allowed.
async fn claim(store: &SharedStore, owner: &UserId, device: &DeviceId, now: Timestamp) {
    let granted = slots(
        store
            .begin_attempt(
                owner,
                std::slice::from_ref(device),
                VERIFY,
                &throttle_off(),
                now,
            )
            .await
            .unwrap(),
    );
    assert!(matches!(granted[..], [AttemptSlot::Allowed(_)]));
}

pub async fn challenges_work_only_for_the_login_they_were_sent_for(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let d = device(&alice, DeviceKind::OutOfBand, 1);
    insert(&a, &d).await;
    let now = SystemClock.now();
    a.put_challenge(&alice, &d.id, &live_challenge(1, Some("login-1"), 5), now)
        .await
        .unwrap();
    // The right code from another login, or from a caller without one, is refused…
    for wrong_login in [Some("login-2"), None, Some("")] {
        assert!(
            !b.commit_success(&alice, &d.id, &code_from(1, wrong_login), &[], now)
                .await
                .unwrap(),
            "{wrong_login:?}"
        );
    }
    // …and leaves the code to its own login.
    assert!(
        a.commit_success(&alice, &d.id, &code_from(1, Some("login-1")), &[], now)
            .await
            .unwrap()
    );

    // A code sent for no login works only without one.
    let other = device(&alice, DeviceKind::OutOfBand, 2);
    insert(&a, &other).await;
    a.put_challenge(&alice, &other.id, &live_challenge(2, None, 5), now)
        .await
        .unwrap();
    for some_login in [Some("login-1"), Some("")] {
        assert!(
            !b.commit_success(&alice, &other.id, &code_from(2, some_login), &[], now)
                .await
                .unwrap()
        );
    }
    assert!(
        b.commit_success(&alice, &other.id, &code_from(2, None), &[], now)
            .await
            .unwrap()
    );
}

pub async fn challenges_die_after_their_tries(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let now = SystemClock.now();
    let login = Some("login");
    let fresh_device = |created| {
        let (a, alice) = (a.clone(), alice.clone());
        async move {
            let d = device(&alice, DeviceKind::OutOfBand, created);
            insert(&a, &d).await;
            a.put_challenge(&alice, &d.id, &live_challenge(1, login, 3), now)
                .await
                .unwrap();
            d
        }
    };

    // Two wrong tries leave the third to the right code.
    let d = fresh_device(1).await;
    for client in [&a, &b] {
        claim(client, &alice, &d.id, now).await;
        assert!(
            !client
                .commit_success(&alice, &d.id, &code_from(9, login), &[], now)
                .await
                .unwrap()
        );
    }
    claim(&a, &alice, &d.id, now).await;
    assert!(
        a.commit_success(&alice, &d.id, &code_from(1, login), &[], now)
            .await
            .unwrap()
    );

    // The third wrong try kills the code, and its cooldown with it.
    let d = fresh_device(2).await;
    for client in [&a, &b, &a] {
        claim(client, &alice, &d.id, now).await;
        assert!(
            !client
                .commit_success(&alice, &d.id, &code_from(9, login), &[], now)
                .await
                .unwrap()
        );
    }
    assert!(
        !b.commit_success(&alice, &d.id, &code_from(1, login), &[], now)
            .await
            .unwrap(),
        "dead after its last wrong try"
    );
    assert_eq!(
        b.put_challenge(&alice, &d.id, &live_challenge(2, login, 3), now)
            .await
            .unwrap(),
        ChallengePut::Stored
    );

    // A try counts when the attempt starts, whether or not the code is ever checked: the
    // attempt after the last finds the code gone.
    let d = fresh_device(3).await;
    for client in [&a, &b, &a, &b] {
        claim(client, &alice, &d.id, now).await;
    }
    assert!(
        !a.commit_success(&alice, &d.id, &code_from(1, login), &[], now)
            .await
            .unwrap()
    );
    assert_eq!(
        a.put_challenge(&alice, &d.id, &live_challenge(2, login, 3), now)
            .await
            .unwrap(),
        ChallengePut::Stored
    );
    // A challenge of another device is not touched by these attempts.
    let untouched = fresh_device(4).await;
    assert!(
        b.commit_success(&alice, &untouched.id, &code_from(1, login), &[], now)
            .await
            .unwrap()
    );
}

pub async fn race_challenge_tries_are_counted_exactly(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let d = device(&alice, DeviceKind::OutOfBand, 1);
    insert(&a, &d).await;
    let now = SystemClock.now();
    a.put_challenge(&alice, &d.id, &live_challenge(1, None, 200), now)
        .await
        .unwrap();
    // 200 attempts at once take the code's 200 tries, no more and no fewer…
    race(&a, &b, |store| {
        let (alice, id) = (alice.clone(), d.id.clone());
        async move {
            claim(&store, &alice, &id, now).await;
            true
        }
    })
    .await;
    // …so the code is still there (its cooldown holds)…
    assert!(matches!(
        b.put_challenge(&alice, &d.id, &live_challenge(2, None, 5), now)
            .await
            .unwrap(),
        ChallengePut::Cooldown { .. }
    ));
    // …and the 201st attempt finds it gone.
    claim(&b, &alice, &d.id, now).await;
    assert!(
        !a.commit_success(&alice, &d.id, &unbound_code(1), &[], now)
            .await
            .unwrap()
    );
}

fn user_bucket(store: &SharedStore, owner: &UserId, name: &str, max: u32) -> RateBucket {
    RateBucket {
        key: RateKey::User {
            tag: store.user_tag(owner),
            name: name.into(),
        },
        limit: RateLimit::new(max, Duration::from_secs(60)),
    }
}

/// A shared bucket of its own for this test run (shared names are not under a user).
fn shared_bucket(max: u32) -> RateBucket {
    RateBucket {
        key: RateKey::Shared(format!("test:{}", DeviceId::generate())),
        limit: RateLimit::new(max, Duration::from_secs(60)),
    }
}

pub async fn rate_limits_count_in_every_bucket_or_in_none(a: SharedStore, b: SharedStore) {
    let (alice, bob) = (user("alice"), user("bob"));
    let now = SystemClock.now();
    let later = now.saturating_add(Duration::from_secs(1));
    let (per_user, shared) = (user_bucket(&a, &alice, "sends", 2), shared_bucket(3));
    let both = [per_user.clone(), shared.clone()];
    assert_eq!(
        a.count_rate_limited(&both, now).await.unwrap(),
        RateCount::Counted
    );
    assert_eq!(
        b.count_rate_limited(&both, later).await.unwrap(),
        RateCount::Counted
    );
    // The user's bucket is full until its first event leaves the window.
    let until = now.saturating_add(Duration::from_secs(60));
    assert_eq!(
        a.count_rate_limited(&both, later).await.unwrap(),
        RateCount::Limited { until }
    );
    // Nothing was counted in the shared bucket by the refusal: it takes one more.
    let shared_only = std::slice::from_ref(&shared);
    assert_eq!(
        b.count_rate_limited(shared_only, later).await.unwrap(),
        RateCount::Counted
    );
    assert!(matches!(
        a.count_rate_limited(shared_only, later).await.unwrap(),
        RateCount::Limited { .. }
    ));
    // Bob's bucket of the same name is his own; the shared one is full for him too.
    let bobs = user_bucket(&a, &bob, "sends", 2);
    assert_eq!(
        a.count_rate_limited(std::slice::from_ref(&bobs), later)
            .await
            .unwrap(),
        RateCount::Counted
    );
    assert!(matches!(
        b.count_rate_limited(&[bobs, shared.clone()], later)
            .await
            .unwrap(),
        RateCount::Limited { .. }
    ));
    // A full shared bucket refuses a user's bucket that has room, which then still has it:
    // whatever the store counted first was taken back.
    let roomy = user_bucket(&a, &bob, "other", 2);
    assert!(matches!(
        a.count_rate_limited(&[roomy.clone(), shared], later)
            .await
            .unwrap(),
        RateCount::Limited { .. }
    ));
    for client in [&a, &b] {
        assert_eq!(
            client
                .count_rate_limited(std::slice::from_ref(&roomy), later)
                .await
                .unwrap(),
            RateCount::Counted
        );
    }
    // When several are full, the answer waits for all of them.
    let (full_early, full_late) = (shared_bucket(1), shared_bucket(1));
    a.count_rate_limited(std::slice::from_ref(&full_early), now)
        .await
        .unwrap();
    a.count_rate_limited(std::slice::from_ref(&full_late), later)
        .await
        .unwrap();
    assert_eq!(
        b.count_rate_limited(&[full_early, full_late], later)
            .await
            .unwrap(),
        RateCount::Limited {
            until: later.saturating_add(Duration::from_secs(60))
        }
    );
}

pub async fn rate_limits_slide_and_take_back(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let now = SystemClock.now();
    let at = |secs| now.saturating_add(Duration::from_secs(secs));
    let bucket = [user_bucket(&a, &alice, "sends", 2)];
    for secs in [0, 30] {
        assert_eq!(
            a.count_rate_limited(&bucket, at(secs)).await.unwrap(),
            RateCount::Counted
        );
    }
    assert_eq!(
        b.count_rate_limited(&bucket, at(59)).await.unwrap(),
        RateCount::Limited { until: at(60) }
    );
    // A window slides: at 60 s the first event has left it, the second has not.
    assert_eq!(
        b.count_rate_limited(&bucket, at(60)).await.unwrap(),
        RateCount::Counted
    );
    assert_eq!(
        a.count_rate_limited(&bucket, at(61)).await.unwrap(),
        RateCount::Limited { until: at(90) }
    );
    // An event taken back frees its place; taking back one that never was changes nothing.
    b.uncount_rate_limited(&bucket, at(60)).await.unwrap();
    a.uncount_rate_limited(&bucket, at(61)).await.unwrap();
    assert_eq!(
        a.count_rate_limited(&bucket, at(61)).await.unwrap(),
        RateCount::Counted
    );
    assert!(matches!(
        b.count_rate_limited(&bucket, at(62)).await.unwrap(),
        RateCount::Limited { .. }
    ));
}

pub async fn race_two_hundred_events_against_one_rate_limit(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let now = SystemClock.now();
    let buckets = [user_bucket(&a, &alice, "sends", 10), shared_bucket(20)];
    let counted = race(&a, &b, |store| {
        let buckets = buckets.clone();
        async move { store.count_rate_limited(&buckets, now).await.unwrap() == RateCount::Counted }
    })
    .await;
    assert_eq!(counted, 10);
    // The shared bucket counted exactly those ten: ten more fit.
    let shared = std::slice::from_ref(&buckets[1]);
    for _ in 0..10 {
        assert_eq!(
            a.count_rate_limited(shared, now).await.unwrap(),
            RateCount::Counted
        );
    }
    assert!(matches!(
        b.count_rate_limited(shared, now).await.unwrap(),
        RateCount::Limited { .. }
    ));
}

fn inserted(outcome: Result<ConfirmationInsert, StoreError>) -> bool {
    match outcome.unwrap() {
        ConfirmationInsert::Inserted => true,
        ConfirmationInsert::TooManyOpen => false,
    }
}

pub async fn open_confirmations_are_capped_per_user(a: SharedStore, b: SharedStore) {
    let (alice, bob) = (user("alice"), user("bob"));
    let now = SystemClock.now();
    let mut open = Vec::new();
    for _ in 0..3 {
        let (key, record) = confirmation(&a, &alice);
        assert!(inserted(a.insert_confirmation(&key, &record, 3).await));
        open.push(key);
    }
    let (refused_key, record) = confirmation(&a, &alice);
    assert!(!inserted(
        b.insert_confirmation(&refused_key, &record, 3).await
    ));
    assert_eq!(a.get_confirmation(&refused_key).await.unwrap(), None);
    // Another user's count is their own.
    let (key, record) = confirmation(&a, &bob);
    assert!(inserted(b.insert_confirmation(&key, &record, 3).await));

    // A confirmed one still counts; a failed one or a used one does not.
    assert!(
        a.settle_confirmation(&open[0], ConfirmationStatus::Confirmed, now)
            .await
            .unwrap()
    );
    assert!(!inserted(
        b.insert_confirmation(&refused_key, &record_of(&a, &alice), 3)
            .await
    ));
    a.use_confirmation(&open[0], now).await.unwrap().unwrap();
    let (key, record) = confirmation(&a, &alice);
    assert!(inserted(b.insert_confirmation(&key, &record, 3).await));
    assert!(
        b.settle_confirmation(&open[1], ConfirmationStatus::Failed, now)
            .await
            .unwrap()
    );
    let (key, record) = confirmation(&a, &alice);
    assert!(inserted(a.insert_confirmation(&key, &record, 3).await));
    assert!(!inserted(
        b.insert_confirmation(&refused_key, &record_of(&a, &alice), 3)
            .await
    ));

    // An expired one does not count either (nor does one inserted expired).
    let dave = user("dave");
    let (key, mut record) = confirmation(&a, &dave);
    record.expires_at = now.saturating_sub(Duration::from_secs(1));
    assert!(inserted(a.insert_confirmation(&key, &record, 1).await));
    let (key, record) = confirmation(&a, &dave);
    assert!(inserted(a.insert_confirmation(&key, &record, 1).await));
    let (key, record) = confirmation(&a, &dave);
    assert!(!inserted(b.insert_confirmation(&key, &record, 1).await));
    let (key, mut record) = confirmation(&a, &user("carol"));
    record.expires_at = now.saturating_add(Duration::from_millis(300));
    assert!(inserted(a.insert_confirmation(&key, &record, 1).await));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (key, record) = confirmation(&a, &user("carol"));
    assert!(inserted(b.insert_confirmation(&key, &record, 1).await));
}

/// A confirmation record of `owner` in process, requested now.
fn record_of(store: &SharedStore, owner: &UserId) -> ConfirmationRecord {
    confirmation(store, owner).1
}

pub async fn reserved_confirmations_are_started_once(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let now = SystemClock.now();
    let (key, mut record) = confirmation(&a, &alice);
    record.state = serde_json::Value::Null;
    a.insert_confirmation(&key, &record, 10).await.unwrap();
    let mut started = record.clone();
    started.state = serde_json::json!({"masked_destination": "a***@example.com"});
    started.status = ConfirmationStatus::Confirmed;
    assert!(b.start_confirmation(&key, &started).await.unwrap());
    assert_eq!(
        a.get_confirmation(&key).await.unwrap(),
        Some(started.clone())
    );
    assert!(
        !a.start_confirmation(&key, &started).await.unwrap(),
        "started already"
    );
    assert!(a.use_confirmation(&key, now).await.unwrap().is_some());

    // Only an unanswered one is started; a missing one is not created.
    let (key, record) = confirmation(&a, &alice);
    a.insert_confirmation(&key, &record, 10).await.unwrap();
    granted(b.begin_confirmation_attempt(&key, 5, now).await.unwrap());
    assert!(!a.start_confirmation(&key, &record).await.unwrap());
    let (missing, record) = confirmation(&a, &alice);
    assert!(!b.start_confirmation(&missing, &record).await.unwrap());
    assert_eq!(a.get_confirmation(&missing).await.unwrap(), None);
    // It starts in process or confirmed, nothing else.
    let (key, mut record) = confirmation(&a, &alice);
    a.insert_confirmation(&key, &record, 10).await.unwrap();
    record.status = ConfirmationStatus::Used;
    assert!(matches!(
        b.start_confirmation(&key, &record).await,
        Err(StoreError::Invalid(_))
    ));
}

pub async fn race_two_hundred_requests_against_the_confirmation_cap(
    a: SharedStore,
    b: SharedStore,
) {
    let alice = user("alice");
    let wins = race(&a, &b, |store| {
        let (key, record) = confirmation(&store, &alice);
        async move { inserted(store.insert_confirmation(&key, &record, 10).await) }
    })
    .await;
    assert_eq!(wins, 10);
}

pub async fn a_session_is_not_stored_verified_by_a_device_that_is_gone(
    a: SharedStore,
    b: SharedStore,
) {
    let alice = user("alice");
    let hour = Duration::from_secs(3600);
    let app = device(&alice, DeviceKind::Totp, 1);
    insert(&a, &app).await;
    let mut pending_device = device(&alice, DeviceKind::Totp, 2);
    pending_device.confirmed = false;
    pending_device.pending_until = Some(Timestamp::from_secs(u64::MAX / 2_000));
    insert(&a, &pending_device).await;
    let by = |id: &DeviceId| {
        let mut record = session(&alice);
        record.verified = Some(VerifiedBy {
            device_id: id.clone(),
            device_kind: DeviceKind::Totp,
            at: t(5),
            remembered: false,
        });
        record
    };
    let unverified = session(&alice);

    // A code checked just before the device was deleted verifies nothing, whether the session
    // is saved or rotated; a device that was never confirmed verifies nothing either.
    for gone in [DeviceId::generate(), pending_device.id.clone()] {
        let saved = session_key(&a, &alice, &format!("saved-{gone}"));
        a.save_session(&saved, &by(&gone), hour).await.unwrap();
        assert_eq!(load(&b, &saved).await, Some(unverified.clone()));
        let rotated = session_key(&a, &alice, &format!("rotated-{gone}"));
        assert!(
            b.rotate_session(&saved, &rotated, &by(&gone), hour)
                .await
                .unwrap()
        );
        assert_eq!(load(&a, &rotated).await, Some(unverified.clone()));
    }
    // The device that is there verifies, until it is deleted.
    let kept = session_key(&a, &alice, "kept");
    a.save_session(&kept, &by(&app.id), hour).await.unwrap();
    assert_eq!(load(&b, &kept).await, Some(by(&app.id)));
    assert!(b.delete_device(&alice, &app.id).await.unwrap());
    let after = session_key(&a, &alice, "after");
    assert!(
        a.rotate_session(&kept, &after, &by(&app.id), hour)
            .await
            .unwrap()
    );
    assert_eq!(load(&b, &after).await, Some(unverified));
}

// ----- security keys (WebAuthn) ---------------------------------------------------------------

fn ceremony_key(owner: &UserId, binding: Option<&str>, purpose: CeremonyPurpose) -> CeremonyKey {
    CeremonyKey {
        user: owner.clone(),
        binding: binding.map(LoginBinding::new),
        purpose,
    }
}

fn ceremony(text: &str, expires_at: Timestamp) -> CeremonyState {
    CeremonyState {
        state: text.to_owned(),
        expires_at,
    }
}

pub async fn webauthn_ceremonies_are_taken_once_and_only_by_their_login(
    a: SharedStore,
    b: SharedStore,
) {
    let (alice, bob) = (user("alice"), user("bob"));
    let now = SystemClock.now();
    let later = now.saturating_add(Duration::from_secs(300));
    let mine = ceremony_key(&alice, Some("login-1"), CeremonyPurpose::Authenticate);
    a.put_ceremony(&mine, &ceremony("first", later))
        .await
        .unwrap();
    // Beginning again in the same login replaces the earlier ceremony.
    a.put_ceremony(&mine, &ceremony("second", later))
        .await
        .unwrap();
    for other in [
        ceremony_key(&alice, Some("login-2"), CeremonyPurpose::Authenticate),
        ceremony_key(&alice, None, CeremonyPurpose::Authenticate),
        ceremony_key(&alice, Some("login-1"), CeremonyPurpose::Register),
        ceremony_key(&bob, Some("login-1"), CeremonyPurpose::Authenticate),
    ] {
        assert_eq!(
            b.take_ceremony(&other, now).await.unwrap(),
            None,
            "{other:?}"
        );
    }
    // Other logins neither saw nor consumed it; its own login takes it once.
    assert_eq!(
        b.take_ceremony(&mine, now).await.unwrap(),
        Some(ceremony("second", later))
    );
    assert_eq!(a.take_ceremony(&mine, now).await.unwrap(), None);
    // A state may hold any text, separators included.
    let odd = ceremony("{\"a\":\"b|c\"}", later);
    a.put_ceremony(&mine, &odd).await.unwrap();
    assert_eq!(b.take_ceremony(&mine, now).await.unwrap(), Some(odd));
}

pub async fn webauthn_ceremonies_expire(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let now = SystemClock.now();
    let key = ceremony_key(&alice, Some("login"), CeremonyPurpose::Register);
    // Past its expiry by the caller's clock: gone.
    let soon = now.saturating_add(Duration::from_secs(5));
    a.put_ceremony(&key, &ceremony("state", soon))
        .await
        .unwrap();
    assert_eq!(
        b.take_ceremony(&key, soon.saturating_add(Duration::from_millis(1)))
            .await
            .unwrap(),
        None
    );
    // Past it by the store's own clock: gone too, even for a caller whose clock lags.
    let short = now.saturating_add(Duration::from_millis(800));
    a.put_ceremony(&key, &ceremony("state", short))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(b.take_ceremony(&key, now).await.unwrap(), None);
}

pub async fn race_two_hundred_takes_of_one_webauthn_ceremony(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let now = SystemClock.now();
    let key = ceremony_key(&alice, Some("login"), CeremonyPurpose::Authenticate);
    a.put_ceremony(
        &key,
        &ceremony("state", now.saturating_add(Duration::from_secs(300))),
    )
    .await
    .unwrap();
    let wins = race(&a, &b, |store| {
        let key = key.clone();
        async move { store.take_ceremony(&key, now).await.unwrap().is_some() }
    })
    .await;
    assert_eq!(wins, 1);
}

pub async fn security_key_counters_only_move_forward(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let key = device(&alice, DeviceKind::WebAuthn, 1);
    insert(&a, &key).await;
    // A key that keeps no counter reports 0 every time, until it starts counting.
    assert_eq!(
        a.record_key_use(&alice, &key.id, 0, t(10)).await.unwrap(),
        KeyUse::Recorded
    );
    assert_eq!(
        b.record_key_use(&alice, &key.id, 0, t(11)).await.unwrap(),
        KeyUse::Recorded
    );
    assert_eq!(
        a.record_key_use(&alice, &key.id, 5, t(12)).await.unwrap(),
        KeyUse::Recorded
    );
    for stale in [5, 3, 0] {
        assert_eq!(
            b.record_key_use(&alice, &key.id, stale, t(13))
                .await
                .unwrap(),
            KeyUse::CounterRegressed { stored: 5 },
            "{stale}"
        );
    }
    // A refused use changed nothing; failures counted before are cleared by a good one.
    a.begin_attempt(
        &alice,
        std::slice::from_ref(&key.id),
        VERIFY,
        &throttle_off(),
        t(14),
    )
    .await
    .unwrap();
    assert_eq!(
        a.record_key_use(&alice, &key.id, u64::from(u32::MAX), t(15))
            .await
            .unwrap(),
        KeyUse::Recorded
    );
    let stored = b.get_device(&alice, &key.id).await.unwrap().unwrap();
    assert_eq!(stored.state.next_counter, u64::from(u32::MAX));
    assert_eq!(stored.state.failures, 0);
    assert_eq!(stored.state.last_used_at, Some(t(15)));
    assert_eq!(b.user_failures(&alice).await.unwrap(), (0, None));

    // Only a live, confirmed security key of the user records a use.
    let totp = device(&alice, DeviceKind::Totp, 2);
    insert(&a, &totp).await;
    let mut pending = device(&alice, DeviceKind::WebAuthn, 3);
    pending.confirmed = false;
    insert(&a, &pending).await;
    for (owner, id) in [
        (&alice, &totp.id),
        (&alice, &pending.id),
        (&alice, &DeviceId::generate()),
        (&user("bob"), &key.id),
    ] {
        assert_eq!(
            a.record_key_use(owner, id, 1 << 40, t(16)).await.unwrap(),
            KeyUse::Missing
        );
    }
    assert_eq!(
        b.get_device(&alice, &totp.id).await.unwrap().unwrap().state,
        totp.state
    );
}

pub async fn race_two_hundred_uses_of_one_security_key_counter(a: SharedStore, b: SharedStore) {
    let alice = user("alice");
    let key = device(&alice, DeviceKind::WebAuthn, 1);
    insert(&a, &key).await;
    let wins = race(&a, &b, |store| {
        let (alice, id) = (alice.clone(), key.id.clone());
        async move {
            match store.record_key_use(&alice, &id, 7, t(2)).await.unwrap() {
                KeyUse::Recorded => true,
                KeyUse::CounterRegressed { stored: 7 } => false,
                other => panic!("{other:?}"),
            }
        }
    })
    .await;
    assert_eq!(wins, 1);
}
