//! Verification hardening: the TOTP window keeps real time whatever drift was learned,
//! plain secrets are refused once sealing is on, a lock is announced when it is set (on both
//! stores), and throttled refusals are coalesced into counted events.

mod common;

use std::sync::Arc;
use std::time::Duration;

use tower_otp::clock::{Clock, ManualClock, Timestamp};
use tower_otp::device::{
    DeviceConfig, Enrollment, SealError, SealingKey, SecretSealer, ThrottlePolicy, TotpPolicy,
    TotpSettings,
};
use tower_otp::events::{Event, EventKind, EventStream};
use tower_otp::store::{MemoryStore, Store};
use tower_otp::{Caller, Error, ServerKey, TwoFactor, UserId};

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
    let verified = migrating.verify(&f.user, id, &code).await.unwrap();
    let fresh = migrating
        .enroll_totp(
            Caller::verified(&verified),
            "New phone",
            "alice",
            TotpSettings::default(),
        )
        .await
        .unwrap();
    let stored = migrating.device(&f.user, &fresh.device.id).await.unwrap();
    match stored.unwrap().config {
        DeviceConfig::Totp { secret, .. } => assert!(!secret.is_plain()),
        other => panic!("{other:?}"),
    }
}

// ----- the lock is announced when it is set ------------------------------------------------

/// A code that no phone within `reach` steps of now shows.
fn wrong_code(enrolment: &Enrollment, now: Timestamp, reach: u32) -> String {
    let shown: Vec<String> = (0..=2 * reach)
        .map(|i| {
            let at = now.saturating_add(STEP * i).saturating_sub(STEP * reach);
            enrolment.current_code(at)
        })
        .collect();
    (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|code| !shown.contains(code))
        .unwrap()
}

fn drain(stream: &mut EventStream) -> Vec<Arc<Event>> {
    let mut events = Vec::new();
    while let Some(event) = stream.try_recv() {
        events.push(event.unwrap());
    }
    events
}

fn names(events: &[Arc<Event>]) -> Vec<&'static str> {
    events.iter().map(|e| e.kind.name()).collect()
}

async fn the_failure_that_locks_announces_it(store: impl Store) {
    let clock = ManualClock::new(Timestamp::from_millis(START));
    let two_factor = over(&clock, store).with_throttle_policy(
        ThrottlePolicy::new()
            .with_factor(Duration::ZERO)
            .with_user_failure_limit(3)
            .with_lock_period(Duration::from_secs(3600)),
    );
    let mut stream = two_factor.events().subscribe();
    let user = UserId::new("alice").unwrap();
    let enrolment = two_factor
        .enroll_totp(&user, "Phone", "alice", TotpSettings::default())
        .await
        .unwrap();
    let id = &enrolment.device.id;
    two_factor
        .confirm_device(&user, id, &enrolment.current_code(clock.now()))
        .await
        .unwrap();
    let wrong = wrong_code(&enrolment, clock.now(), 2);
    drain(&mut stream);

    for _ in 0..2 {
        clock.advance(Duration::from_millis(10));
        two_factor.verify(&user, id, &wrong).await.unwrap_err();
    }
    assert_eq!(
        names(&drain(&mut stream)),
        ["verification_failed", "verification_failed"]
    );
    clock.advance(Duration::from_millis(10));
    let locking = clock.now();
    two_factor.verify(&user, id, &wrong).await.unwrap_err();
    let events = drain(&mut stream);
    assert_eq!(names(&events), ["verification_failed", "locked"]);
    let until = locking.saturating_add(Duration::from_secs(3600));
    assert_eq!(events[1].kind, EventKind::Locked { until });
    assert_eq!(events[1].user, user);

    // Tries while locked are announced as before, each on its own.
    clock.advance(Duration::from_millis(10));
    let locked = two_factor.verify(&user, id, &wrong).await.unwrap_err();
    assert!(matches!(locked, Error::Locked { .. }), "{locked:?}");
    assert_eq!(names(&drain(&mut stream)), ["locked"]);

    // Once the lock is over, the right code on the attempt that reaches the limit again
    // clears the count: nothing is locked, nothing announced.
    clock.advance(Duration::from_secs(3600));
    let wrong = wrong_code(&enrolment, clock.now(), 2);
    for _ in 0..2 {
        clock.advance(Duration::from_millis(10));
        two_factor.verify(&user, id, &wrong).await.unwrap_err();
    }
    clock.advance(STEP);
    let code = enrolment.current_code(clock.now());
    two_factor.verify(&user, id, &code).await.unwrap();
    assert_eq!(
        names(&drain(&mut stream)),
        [
            "verification_failed",
            "verification_failed",
            "user_verified"
        ]
    );
}

#[tokio::test]
async fn the_failure_that_locks_announces_it_on_the_memory_store() {
    the_failure_that_locks_announces_it(MemoryStore::new()).await;
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn the_failure_that_locks_announces_it_on_redis() {
    use common::redis_server::{RedisServer, unique_prefix};
    use tower_otp::store::RedisConfig;

    let server = RedisServer::start();
    let store = RedisConfig::server(server.url())
        .with_key_prefix(unique_prefix())
        .connect()
        .await
        .expect("connect");
    the_failure_that_locks_announces_it(store).await;
}

// ----- throttled refusals are coalesced ----------------------------------------------------

fn throttled_count(event: &Event) -> u64 {
    match event.kind {
        EventKind::Throttled { count, .. } => count,
        ref other => panic!("not throttled: {other:?}"),
    }
}

#[tokio::test]
async fn throttled_refusals_are_coalesced_to_one_event_a_second_per_user() {
    let mut f = fixture();
    f.two_factor = f
        .two_factor
        .clone()
        .with_throttle_policy(ThrottlePolicy::new().with_factor(Duration::from_secs(60)));
    let mut stream = f.two_factor.events().subscribe();
    let enrolment = f.confirmed_totp().await;
    let id = &enrolment.device.id;
    let wrong = wrong_code(&enrolment, f.clock.now(), 2);
    f.two_factor.verify(&f.user, id, &wrong).await.unwrap_err();
    drain(&mut stream);

    let refuse = |times: usize| {
        let (two_factor, user, wrong) = (f.two_factor.clone(), f.user.clone(), wrong.clone());
        let id = id.clone();
        async move {
            for _ in 0..times {
                let refused = two_factor.verify(&user, &id, &wrong).await.unwrap_err();
                assert_eq!(refused.kind(), "throttled");
            }
        }
    };
    refuse(5).await;
    let first = drain(&mut stream);
    assert_eq!(names(&first), ["throttled"], "the first refusal at once");
    assert_eq!(throttled_count(&first[0]), 1);

    f.clock.advance(Duration::from_millis(500));
    refuse(3).await;
    assert!(drain(&mut stream).is_empty(), "held back within the second");

    f.clock.advance(Duration::from_millis(600));
    refuse(1).await;
    let next = drain(&mut stream);
    assert_eq!(names(&next), ["throttled"]);
    assert_eq!(
        throttled_count(&next[0]),
        8,
        "itself and the seven held back"
    );
    let json = serde_json::to_value(&*next[0]).unwrap();
    assert_eq!(json["event"], "throttled");
    assert_eq!(json["count"], 8);
    assert_eq!(next[0].device.as_ref().unwrap().id, *id);

    // The last refusals of a burst are reported too, by the next event of anyone once their
    // second is over.
    f.clock.advance(Duration::from_millis(200));
    refuse(2).await;
    assert!(drain(&mut stream).is_empty());
    f.clock.advance(Duration::from_secs(2));
    let bob = UserId::new("bob").unwrap();
    f.two_factor
        .enroll_totp(&bob, "Phone", "bob", TotpSettings::default())
        .await
        .unwrap();
    let flushed = drain(&mut stream);
    assert_eq!(names(&flushed), ["throttled", "device_added"]);
    assert_eq!(
        (flushed[0].user.as_str(), throttled_count(&flushed[0])),
        ("alice", 2)
    );
    assert_eq!(
        flushed[0].at,
        f.clock.now().saturating_sub(Duration::from_secs(2)),
        "the time of the latest refusal it stands for"
    );
}
