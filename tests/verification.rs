//! The verification policy end to end on the memory store, with an injected clock.

use std::sync::Arc;
use std::time::Duration;

use tower_otp::clock::{Clock, ManualClock, Timestamp};
use tower_otp::device::{
    DeviceConfig, Enrollment, HotpSettings, SealingKey, SecretSealer, ThrottlePolicy, TotpPolicy,
    TotpSettings,
};
use tower_otp::otp::{OtpKey, TotpParams};
use tower_otp::store::{MemoryStore, Store};
use tower_otp::{Caller, Error, ServerKey, TwoFactor, UserId};

/// Half-way through TOTP step 1_000_000.
const START: u64 = 30_000_000_015;

struct Fixture {
    clock: ManualClock,
    store: MemoryStore,
    two_factor: TwoFactor,
    user: UserId,
    /// Sets up the user's devices whatever they have already, as a provisioning script would
    /// (the factor rule has tests of its own).
    admin: Caller,
}

fn fixture() -> Fixture {
    fixture_with(|t| t)
}

fn fixture_with(configure: impl FnOnce(TwoFactor) -> TwoFactor) -> Fixture {
    let clock = ManualClock::new(Timestamp::from_millis(START));
    let store = MemoryStore::new().with_clock(clock.clone());
    let two_factor = configure(
        TwoFactor::new(store.clone(), ServerKey::new(&[7; 32]).unwrap())
            .with_clock(clock.clone())
            .with_issuer("Test"),
    );
    Fixture {
        clock,
        store,
        two_factor,
        user: UserId::new("alice").unwrap(),
        admin: Caller::administrator(UserId::new("alice").unwrap()),
    }
}

impl Fixture {
    async fn totp(&self) -> Enrollment {
        let enrolment = self
            .two_factor
            .enroll_totp(&self.admin, "Phone", "alice", TotpSettings::default())
            .await
            .unwrap();
        let code = self.totp_code(&enrolment, 0);
        self.two_factor
            .confirm_device(&self.admin, &enrolment.device.id, &code)
            .await
            .unwrap();
        // Each test starts one step later, with no code of the new step used yet.
        self.advance(30_000);
        enrolment
    }

    /// The code of the step `offset` steps from now.
    fn totp_code(&self, enrolment: &Enrollment, offset: i64) -> String {
        let step = TotpParams::default()
            .time_step(self.clock.now().as_secs())
            .unwrap();
        let key = OtpKey::new(
            enrolment.secret.clone(),
            Default::default(),
            Default::default(),
        );
        key.hotp(step.checked_add_signed(offset).unwrap())
            .reveal()
            .to_owned()
    }

    async fn verify(&self, enrolment: &Enrollment, code: &str) -> Result<(), Error> {
        self.two_factor
            .verify(&self.user, &enrolment.device.id, code)
            .await
            .map(|_| ())
    }

    fn advance(&self, millis: u64) {
        self.clock.advance(Duration::from_millis(millis));
    }
}

fn kind(result: Result<(), Error>) -> &'static str {
    match result {
        Ok(()) => "ok",
        Err(error) => error.kind(),
    }
}

#[tokio::test]
async fn a_totp_code_works_once_in_its_step() {
    let f = fixture();
    let device = f.totp().await;
    let code = f.totp_code(&device, 0);
    assert_eq!(kind(f.verify(&device, &code).await), "ok");
    f.advance(2_000); // past the 1 s throttle of nothing: the success reset it anyway
    assert_eq!(kind(f.verify(&device, &code).await), "replayed_code");
}

#[tokio::test]
async fn an_older_code_in_the_window_is_refused_after_a_newer_one() {
    // Without drift learning the window stays at -1..=+1 around the current step.
    let f = fixture_with(|t| t.with_totp_policy(TotpPolicy::new().with_sync(false)));
    let device = f.totp().await;
    assert_eq!(
        kind(f.verify(&device, &f.totp_code(&device, 1)).await),
        "ok"
    );
    f.advance(2_000);
    assert_eq!(
        kind(f.verify(&device, &f.totp_code(&device, 0)).await),
        "replayed_code"
    );
    f.advance(2_000);
    assert_eq!(
        kind(f.verify(&device, &f.totp_code(&device, -1)).await),
        "replayed_code"
    );
}

#[tokio::test]
async fn the_confirmation_code_counts_as_used() {
    let f = fixture();
    let enrolment = f
        .two_factor
        .enroll_totp(&f.user, "Phone", "alice", TotpSettings::default())
        .await
        .unwrap();
    let code = f.totp_code(&enrolment, 0);
    assert_eq!(
        kind(f.verify(&enrolment, &code).await),
        "device_not_confirmed"
    );
    f.advance(2_000);
    let confirmed = f
        .two_factor
        .confirm_device(&f.user, &enrolment.device.id, &code)
        .await
        .unwrap();
    assert!(confirmed.first);
    f.advance(2_000);
    assert_eq!(kind(f.verify(&enrolment, &code).await), "replayed_code");
    f.advance(2_000);
    let fresh = Caller::verified(&confirmed.verification);
    assert_eq!(
        f.two_factor
            .confirm_device(&fresh, &enrolment.device.id, &f.totp_code(&enrolment, 1))
            .await
            .unwrap_err()
            .kind(),
        "device_already_confirmed"
    );
}

#[tokio::test]
async fn drift_is_learned_from_a_neighbouring_step_and_bounded() {
    let f = fixture();
    let device = f.totp().await;
    // The device runs one step fast.
    assert_eq!(
        kind(f.verify(&device, &f.totp_code(&device, 1)).await),
        "ok"
    );
    let stored = f
        .store
        .get_device(&f.user, &device.device.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.state.drift, 1);
    // One step later, the window reaches one step further ahead: +2 is accepted…
    f.advance(30_000);
    assert_eq!(
        kind(f.verify(&device, &f.totp_code(&device, 2)).await),
        "ok"
    );
    let stored = f
        .store
        .get_device(&f.user, &device.device.id)
        .await
        .unwrap()
        .unwrap();
    // …but drift stops at its bound (the tolerance, 1 step): +3 is outside the window.
    assert_eq!(stored.state.drift, 1);
    f.advance(30_000);
    assert_eq!(
        kind(f.verify(&device, &f.totp_code(&device, 3)).await),
        "invalid_code"
    );
    f.advance(2_000);
    assert_eq!(
        kind(f.verify(&device, &f.totp_code(&device, 2)).await),
        "ok"
    );
    let stored = f
        .store
        .get_device(&f.user, &device.device.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.state.drift, 1);
}

#[tokio::test]
async fn hotp_resynchronises_within_the_look_ahead() {
    let f = fixture();
    let enrolment = f
        .two_factor
        .enroll_hotp(&f.admin, "Token", "alice", HotpSettings::default())
        .await
        .unwrap();
    let key = OtpKey::new(
        enrolment.secret.clone(),
        Default::default(),
        Default::default(),
    );
    let code = |c: u64| key.hotp(c).reveal().to_owned();
    let id = &enrolment.device.id;
    f.two_factor
        .confirm_device(&f.admin, id, &code(0))
        .await
        .unwrap();
    // Three presses never reached the server: counter 4 is within the look-ahead of 5.
    f.two_factor.verify(&f.user, id, &code(4)).await.unwrap();
    let stored = f.store.get_device(&f.user, id).await.unwrap().unwrap();
    assert_eq!(stored.state.next_counter, 5);
    f.advance(2_000);
    assert_eq!(
        f.two_factor
            .verify(&f.user, id, &code(2))
            .await
            .unwrap_err()
            .kind(),
        "replayed_code"
    );
    f.advance(2_000);
    assert_eq!(
        f.two_factor
            .verify(&f.user, id, &code(11))
            .await
            .unwrap_err()
            .kind(),
        "invalid_code"
    );
    f.advance(4_000);
    f.two_factor.verify(&f.user, id, &code(10)).await.unwrap();
}

#[tokio::test]
async fn backup_codes_work_once_in_any_case_and_with_any_separator() {
    let f = fixture();
    // Backup codes back up a factor: the user has an app first.
    f.totp().await;
    let set = f.two_factor.generate_backup_codes(&f.admin).await.unwrap();
    let codes: Vec<String> = set.codes.iter().map(str::to_owned).collect();
    assert_eq!(codes.len(), 10);
    assert_eq!(
        f.two_factor.backup_codes_remaining(&f.user).await.unwrap(),
        10
    );

    let typed = codes[0].replace('-', " ").to_lowercase();
    let used = f.two_factor.verify_any(&f.user, &typed).await.unwrap();
    assert_eq!(used.backup_codes_remaining, Some(9));
    f.advance(2_000);
    assert_eq!(
        f.two_factor
            .verify_any(&f.user, &codes[0])
            .await
            .unwrap_err()
            .kind(),
        "invalid_code"
    );
    f.advance(4_000);
    let id = &set.device.id;
    f.two_factor.verify(&f.user, id, &codes[1]).await.unwrap();

    // Regenerating replaces the whole set.
    let fresh = f.two_factor.generate_backup_codes(&f.admin).await.unwrap();
    assert_eq!(fresh.device.id, set.device.id);
    assert_eq!(
        f.two_factor.backup_codes_remaining(&f.user).await.unwrap(),
        10
    );
    f.advance(2_000);
    assert_eq!(
        f.two_factor
            .verify(&f.user, id, &codes[2])
            .await
            .unwrap_err()
            .kind(),
        "invalid_code"
    );
}

#[tokio::test]
async fn one_hundred_tasks_racing_one_backup_code_one_wins() {
    for throttled in [false, true] {
        let f = fixture_with(|t| {
            if throttled {
                t
            } else {
                // No delays, so every task reaches the store's consume step.
                t.with_throttle_policy(
                    ThrottlePolicy::new()
                        .with_factor(Duration::ZERO)
                        .with_user_failure_limit(10_000),
                )
            }
        });
        f.totp().await;
        let set = f.two_factor.generate_backup_codes(&f.admin).await.unwrap();
        let code = set.codes.iter().next().unwrap().to_owned();
        let two_factor = Arc::new(f.two_factor.clone());
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let (two_factor, user, code) = (two_factor.clone(), f.user.clone(), code.clone());
                tokio::spawn(async move { two_factor.verify_any(&user, &code).await.is_ok() })
            })
            .collect();
        let mut wins = 0;
        for task in tasks {
            wins += usize::from(task.await.unwrap());
        }
        assert_eq!(wins, 1, "throttled: {throttled}");
        assert_eq!(
            f.two_factor.backup_codes_remaining(&f.user).await.unwrap(),
            9
        );
    }
}

#[tokio::test]
async fn one_hundred_tasks_racing_one_totp_code_one_wins() {
    let f = fixture_with(|t| {
        t.with_throttle_policy(
            ThrottlePolicy::new()
                .with_factor(Duration::ZERO)
                .with_user_failure_limit(10_000),
        )
    });
    let device = f.totp().await;
    let code = f.totp_code(&device, 0);
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (two_factor, user, id, code) = (
                f.two_factor.clone(),
                f.user.clone(),
                device.device.id.clone(),
                code.clone(),
            );
            tokio::spawn(async move { two_factor.verify(&user, &id, &code).await })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => wins += 1,
            Err(error) => assert_eq!(error.kind(), "replayed_code", "{error:?}"),
        }
    }
    assert_eq!(wins, 1);
}

#[tokio::test]
async fn throttle_delays_double_after_each_failure() {
    let f = fixture();
    let device = f.totp().await;
    // Each failure n is followed by a delay of 2^(n-1) seconds.
    for (failures, delay_ms) in [(1u32, 1_000u64), (2, 2_000), (3, 4_000)] {
        assert_eq!(kind(f.verify(&device, "000000").await), "invalid_code");
        let refused = f.verify(&device, "000000").await.unwrap_err();
        match refused {
            Error::Throttled { retry_after, .. } => {
                assert_eq!(
                    retry_after,
                    Duration::from_millis(delay_ms),
                    "after {failures}"
                )
            }
            other => panic!("after {failures} failures: {other:?}"),
        }
        f.advance(delay_ms - 1);
        assert_eq!(kind(f.verify(&device, "000000").await), "throttled");
        f.advance(1);
    }
    for _ in 4..10 {
        assert_eq!(kind(f.verify(&device, "000000").await), "invalid_code");
        f.advance(600_000);
    }
    // The tenth failure: 512 s.
    assert_eq!(kind(f.verify(&device, "000000").await), "invalid_code");
    match f.verify(&device, "000000").await.unwrap_err() {
        Error::Throttled { retry_after, .. } => assert_eq!(retry_after, Duration::from_secs(512)),
        other => panic!("{other:?}"),
    }
    // A success resets the device.
    f.advance(512_000);
    assert_eq!(
        kind(f.verify(&device, &f.totp_code(&device, 0)).await),
        "ok"
    );
    assert_eq!(kind(f.verify(&device, "000000").await), "invalid_code");
    match f.verify(&device, "000000").await.unwrap_err() {
        Error::Throttled { retry_after, .. } => assert_eq!(retry_after, Duration::from_secs(1)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_delay_is_capped() {
    let f = fixture_with(|t| {
        t.with_throttle_policy(ThrottlePolicy::new().with_max_delay(Duration::from_secs(60)))
    });
    let device = f.totp().await;
    for _ in 0..20 {
        assert_eq!(kind(f.verify(&device, "000000").await), "invalid_code");
        f.advance(60_000);
    }
    assert_eq!(kind(f.verify(&device, "000000").await), "invalid_code");
    match f.verify(&device, "000000").await.unwrap_err() {
        Error::Throttled { retry_after, .. } => assert_eq!(retry_after, Duration::from_secs(60)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn malformed_input_is_refused_and_counts_as_a_failure() {
    let f = fixture();
    let device = f.totp().await;
    for bad in [
        "",
        "12345",
        "1234567",
        "+12345",
        "12345a",
        "١٢٣٤٥٦",
        &"9".repeat(100_000),
    ] {
        assert_eq!(
            kind(f.verify(&device, bad).await),
            "malformed_code",
            "{bad:.10}"
        );
        assert_eq!(kind(f.verify(&device, bad).await), "throttled", "{bad:.10}");
        f.advance(3_600_000);
    }
}

#[tokio::test]
async fn totp_failures_do_not_block_backup_codes() {
    let f = fixture();
    let device = f.totp().await;
    let set = f.two_factor.generate_backup_codes(&f.admin).await.unwrap();
    for _ in 0..12 {
        let _ = f.verify(&device, "000000").await;
        f.advance(1_000);
    }
    assert_eq!(kind(f.verify(&device, "000000").await), "throttled");
    let code = set.codes.iter().next().unwrap();
    f.two_factor.verify_any(&f.user, code).await.unwrap();
}

#[tokio::test]
async fn consecutive_failures_across_devices_lock_the_user() {
    let f = fixture_with(|t| {
        t.with_throttle_policy(
            ThrottlePolicy::new()
                .with_factor(Duration::ZERO)
                .with_user_failure_limit(5)
                .with_lock_period(Duration::from_secs(3600)),
        )
    });
    let device = f.totp().await;
    f.two_factor.generate_backup_codes(&f.admin).await.unwrap();
    for _ in 0..3 {
        assert_eq!(kind(f.verify(&device, "000000").await), "invalid_code");
    }
    for _ in 0..2 {
        let wrong = f.two_factor.verify_any(&f.user, "AAAAA-AAAAA").await;
        assert_eq!(wrong.unwrap_err().kind(), "invalid_code");
    }
    // Even the right code is refused while locked.
    let locked = f
        .verify(&device, &f.totp_code(&device, 0))
        .await
        .unwrap_err();
    assert!(
        matches!(locked, Error::Locked { until } if until == f.clock.now().saturating_add(Duration::from_secs(3600)))
    );
    // An administrator can lift the lock…
    f.two_factor.reset_lockout(&f.user).await.unwrap();
    assert_eq!(
        kind(f.verify(&device, &f.totp_code(&device, 0)).await),
        "ok"
    );
    // …and a lock also ends by itself.
    for _ in 0..5 {
        let _ = f.verify(&device, "000000").await;
    }
    assert_eq!(kind(f.verify(&device, "000000").await), "locked");
    f.advance(3_600_000);
    assert_eq!(
        kind(f.verify(&device, &f.totp_code(&device, 0)).await),
        "ok"
    );
}

#[tokio::test]
async fn a_success_clears_the_user_count() {
    let f = fixture_with(|t| {
        t.with_throttle_policy(
            ThrottlePolicy::new()
                .with_factor(Duration::ZERO)
                .with_user_failure_limit(3),
        )
    });
    let device = f.totp().await;
    for round in 0..3 {
        for _ in 0..2 {
            assert_eq!(kind(f.verify(&device, "000000").await), "invalid_code");
        }
        assert_eq!(
            kind(f.verify(&device, &f.totp_code(&device, round)).await),
            "ok"
        );
    }
}

#[tokio::test]
async fn verify_any_refunds_the_devices_that_did_not_match() {
    let f = fixture();
    let first = f.totp().await;
    let second = f
        .two_factor
        .enroll_totp(&f.admin, "Tablet", "alice", TotpSettings::default())
        .await
        .unwrap();
    f.two_factor
        .confirm_device(&f.admin, &second.device.id, &f.totp_code(&second, 0))
        .await
        .unwrap();
    for _ in 0..5 {
        f.advance(30_000);
        f.two_factor
            .verify_any(&f.user, &f.totp_code(&second, 0))
            .await
            .unwrap();
    }
    let untouched = f
        .store
        .get_device(&f.user, &first.device.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(untouched.state.failures, 0);
}

#[tokio::test]
async fn sealed_secrets_are_not_in_the_store_and_need_their_key() {
    let key = SealingKey::new("k1", &[9; 32]).unwrap();
    let f = fixture_with(|t| t.with_sealer(SecretSealer::new(vec![key]).unwrap()));
    let device = f.totp().await;
    let stored = f
        .store
        .get_device(&f.user, &device.device.id)
        .await
        .unwrap()
        .unwrap();
    let dump = serde_json::to_string(&stored).unwrap();
    assert!(!dump.contains(device.secret.to_base32().as_str()), "{dump}");
    assert!(
        matches!(&stored.config, DeviceConfig::Totp { secret, .. } if secret.key_id() == Some("k1"))
    );
    assert_eq!(
        kind(f.verify(&device, &f.totp_code(&device, 0)).await),
        "ok"
    );

    // The same store read without the key fails closed.
    let keyless = TwoFactor::new(f.store.clone(), ServerKey::new(&[7; 32]).unwrap())
        .with_clock(f.clock.clone())
        .with_sealer(SecretSealer::new(vec![SealingKey::new("k2", &[1; 32]).unwrap()]).unwrap());
    f.advance(30_000);
    let refused = keyless
        .verify(&f.user, &device.device.id, &f.totp_code(&device, 0))
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), "server_misconfigured");
}

#[tokio::test]
async fn devices_can_be_listed_renamed_defaulted_and_deleted() {
    let f = fixture_with(|t| t.with_max_devices(3));
    let phone = f.totp().await;
    let tablet = f.totp().await;
    assert!(f.two_factor.is_configured(&f.user).await.unwrap());
    let renamed = f
        .two_factor
        .rename_device(&f.admin, &phone.device.id, "  Old phone ")
        .await
        .unwrap();
    assert_eq!(renamed.name, "Old phone");
    for bad in ["", "   ", "a\u{7}b", &"x".repeat(65)] {
        assert_eq!(
            f.two_factor
                .rename_device(&f.admin, &phone.device.id, bad)
                .await
                .unwrap_err()
                .kind(),
            "invalid_name"
        );
    }
    f.two_factor
        .set_default_device(&f.admin, &phone.device.id)
        .await
        .unwrap();
    f.two_factor
        .set_default_device(&f.admin, &tablet.device.id)
        .await
        .unwrap();
    let defaults: Vec<_> = f
        .two_factor
        .devices(&f.user)
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.is_default)
        .map(|d| d.id)
        .collect();
    assert_eq!(defaults, vec![tablet.device.id.clone()]);

    f.two_factor.generate_backup_codes(&f.admin).await.unwrap();
    let fourth = f
        .two_factor
        .enroll_totp(&f.admin, "One too many", "alice", TotpSettings::default())
        .await;
    assert_eq!(fourth.unwrap_err().kind(), "too_many_devices");

    assert!(
        f.two_factor
            .delete_device(&f.admin, &phone.device.id)
            .await
            .unwrap()
    );
    assert!(
        !f.two_factor
            .delete_device(&f.admin, &phone.device.id)
            .await
            .unwrap()
    );
    assert_eq!(
        kind(f.verify(&phone, &f.totp_code(&phone, 0)).await),
        "device_not_found"
    );
    assert_eq!(f.two_factor.delete_all_devices(&f.admin).await.unwrap(), 2);
    assert!(!f.two_factor.is_configured(&f.user).await.unwrap());
    assert_eq!(
        f.two_factor.backup_codes_remaining(&f.user).await.unwrap(),
        0
    );
}

#[tokio::test]
async fn other_algorithms_and_lengths_verify() {
    let f = fixture();
    for (algorithm, digits) in [("SHA256", 8u8), ("SHA512", 7), ("SHA1", 8)] {
        let settings = TotpSettings {
            algorithm: algorithm.parse().unwrap(),
            digits: digits.try_into().unwrap(),
            params: TotpParams { step: 60, t0: 0 },
        };
        let enrolment = f
            .two_factor
            .enroll_totp(&f.admin, algorithm, "alice", settings)
            .await
            .unwrap();
        assert!(
            enrolment
                .uri
                .as_str()
                .contains(&format!("algorithm={algorithm}&digits={digits}&period=60"))
        );
        assert_eq!(enrolment.secret.len(), settings.algorithm.secret_len());
        let code = enrolment.current_code(f.clock.now());
        assert_eq!(code.len(), usize::from(digits));
        f.two_factor
            .confirm_device(&f.admin, &enrolment.device.id, &code)
            .await
            .unwrap();
    }
    let bad_step = TotpSettings {
        params: TotpParams { step: 0, t0: 0 },
        ..Default::default()
    };
    assert_eq!(
        f.two_factor
            .enroll_totp(&f.admin, "x", "alice", bad_step)
            .await
            .unwrap_err()
            .kind(),
        "invalid_settings"
    );
}
