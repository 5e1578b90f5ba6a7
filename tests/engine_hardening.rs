//! Verification hardening: the TOTP window keeps real time whatever drift was learned, and
//! plain secrets are refused once sealing is on.

use std::time::Duration;

use tower_otp::clock::{Clock, ManualClock, Timestamp};
use tower_otp::device::{
    DeviceConfig, Enrollment, SealError, SealingKey, SecretSealer, TotpPolicy, TotpSettings,
};
use tower_otp::store::{MemoryStore, Store};
use tower_otp::{Error, ServerKey, TwoFactor, UserId};

/// Half-way through a TOTP step.
const START: u64 = 1_800_000_000_015;
const STEP: Duration = Duration::from_secs(30);

struct Fixture {
    clock: ManualClock,
    store: MemoryStore,
    two_factor: TwoFactor,
    user: UserId,
}

fn fixture() -> Fixture {
    let clock = ManualClock::new(Timestamp::from_millis(START));
    let store = MemoryStore::new().with_clock(clock.clone());
    let two_factor = over(&clock, store.clone());
    Fixture {
        clock,
        store,
        two_factor,
        user: UserId::new("alice").unwrap(),
    }
}

fn over(clock: &ManualClock, store: impl Store) -> TwoFactor {
    TwoFactor::new(store, ServerKey::new(&[6; 32]).unwrap()).with_clock(clock.clone())
}

impl Fixture {
    async fn confirmed_totp(&self) -> Enrollment {
        let enrolment = self
            .two_factor
            .enroll_totp(&self.user, "Phone", "alice", TotpSettings::default())
            .await
            .unwrap();
        let code = enrolment.current_code(self.clock.now());
        self.two_factor
            .confirm_device(&self.user, &enrolment.device.id, &code)
            .await
            .unwrap();
        enrolment
    }

    /// Five minutes on: far from every step used so far, and past every per-device delay.
    fn later(&self) {
        self.clock.advance(Duration::from_secs(300));
    }

    /// The code a phone whose clock is `steps` steps ahead shows now.
    fn code_ahead(&self, enrolment: &Enrollment, steps: u32) -> String {
        enrolment.current_code(self.clock.now().saturating_add(STEP * steps))
    }

    async fn drift(&self, enrolment: &Enrollment) -> i64 {
        let device = self.two_factor.device(&self.user, &enrolment.device.id);
        device.await.unwrap().unwrap().state.drift
    }
}

// ----- drift -------------------------------------------------------------------------------

#[tokio::test]
async fn an_accurate_phone_still_verifies_after_a_fast_phone_taught_drift() {
    let f = fixture();
    let enrolment = f.confirmed_totp().await;
    let id = &enrolment.device.id;

    // A phone a step and a half ahead shows the next code, then the one after.
    for ahead in [1, 2] {
        f.later();
        let code = f.code_ahead(&enrolment, ahead);
        f.two_factor.verify(&f.user, id, &code).await.unwrap();
    }
    let learned = f.drift(&enrolment).await;

    f.later();
    let accurate = enrolment.current_code(f.clock.now());
    f.two_factor.verify(&f.user, id, &accurate).await.unwrap();
    assert_eq!(learned, 1, "bounded by the tolerance");
    assert_eq!(f.drift(&enrolment).await, 0);
}

#[tokio::test]
async fn a_larger_drift_bound_never_moves_the_window_off_real_time() {
    let mut f = fixture();
    f.two_factor = f
        .two_factor
        .clone()
        .with_totp_policy(TotpPolicy::new().with_max_drift(5));
    let enrolment = f.confirmed_totp().await;
    let id = &enrolment.device.id;

    for ahead in 1..=6 {
        f.later();
        let code = f.code_ahead(&enrolment, ahead);
        f.two_factor.verify(&f.user, id, &code).await.unwrap();
    }
    assert_eq!(f.drift(&enrolment).await, 5);
    f.later();
    let too_far = f.code_ahead(&enrolment, 7);
    let refused = f.two_factor.verify(&f.user, id, &too_far).await;
    assert!(matches!(refused, Err(Error::InvalidCode)), "{refused:?}");

    f.later();
    let accurate = enrolment.current_code(f.clock.now());
    f.two_factor.verify(&f.user, id, &accurate).await.unwrap();
    f.later();
    let slow = enrolment.current_code(f.clock.now().saturating_sub(STEP));
    f.two_factor.verify(&f.user, id, &slow).await.unwrap();
    assert_eq!(f.drift(&enrolment).await, -1);
}

// ----- sealed secrets ----------------------------------------------------------------------

fn sealing() -> SecretSealer {
    SecretSealer::new(vec![SealingKey::new("k1", &[9; 32]).unwrap()]).unwrap()
}

#[tokio::test]
async fn a_plain_secret_is_refused_once_sealing_is_on_unless_migrating() {
    let f = fixture();
    let enrolment = f.confirmed_totp().await;
    let id = &enrolment.device.id;
    let secret = enrolment.secret.to_base32().as_str().to_owned();

    f.later();
    let sealed = over(&f.clock, f.store.clone()).with_sealer(sealing());
    let code = enrolment.current_code(f.clock.now());
    let refused = sealed.verify(&f.user, id, &code).await.unwrap_err();
    assert!(
        matches!(refused, Error::Sealing(SealError::Plaintext)),
        "{refused:?}"
    );
    assert_eq!(refused.kind(), "server_misconfigured");
    assert!(!refused.to_string().contains(&secret));
    assert!(!format!("{refused:?}").contains(&secret));

    f.later();
    let migrating =
        over(&f.clock, f.store.clone()).with_sealer(sealing().allow_plaintext_migration());
    let code = enrolment.current_code(f.clock.now());
    migrating.verify(&f.user, id, &code).await.unwrap();
    let fresh = migrating
        .enroll_totp(&f.user, "New phone", "alice", TotpSettings::default())
        .await
        .unwrap();
    let stored = migrating.device(&f.user, &fresh.device.id).await.unwrap();
    match stored.unwrap().config {
        DeviceConfig::Totp { secret, .. } => assert!(!secret.is_plain()),
        other => panic!("{other:?}"),
    }
}
