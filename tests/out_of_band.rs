//! Out-of-band devices end to end on the memory store, with an injected clock and the outbox
//! sender: adding, sending, cooldown, replacement, expiry, single use, throttling, the login a
//! code is bound to, its tries, and the send limits.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::instrumented_store::InstrumentedStore;
use common::sessions::new_login;
use tower_otp::Caller;
use tower_otp::clock::{ManualClock, Timestamp};
use tower_otp::device::{
    Device, Message, OutOfBandPolicy, OutboxSender, SendError, ThrottlePolicy, TotpSettings,
    out_of_band, sender_fn,
};
use tower_otp::otp::Digits;
use tower_otp::store::{MemoryStore, RateLimit};
use tower_otp::{Error, ServerKey, TwoFactor, UserId};

const START: u64 = 1_700_000_000_000;

struct Fixture {
    clock: ManualClock,
    store: InstrumentedStore,
    outbox: OutboxSender,
    two_factor: TwoFactor,
    user: UserId,
}

fn fixture() -> Fixture {
    fixture_with(|t| t)
}

fn fixture_with(configure: impl FnOnce(TwoFactor) -> TwoFactor) -> Fixture {
    let clock = ManualClock::new(Timestamp::from_millis(START));
    let store = InstrumentedStore::new(MemoryStore::new().with_clock(clock.clone()));
    let outbox = OutboxSender::new();
    let two_factor = configure(
        TwoFactor::new(store.clone(), ServerKey::new(&[9; 32]).unwrap())
            .with_clock(clock.clone())
            .with_sender(out_of_band::EMAIL, outbox.clone())
            .with_sender(out_of_band::SMS, outbox.clone()),
    );
    Fixture {
        clock,
        store,
        outbox,
        two_factor,
        user: UserId::new("alice").unwrap(),
    }
}

impl Fixture {
    async fn email_device(&self) -> Device {
        self.two_factor
            .add_out_of_band_device(&self.user, "Mail", out_of_band::EMAIL, "alice@example.com")
            .await
            .unwrap()
    }

    /// An email device, confirmed with its first code, with the cooldown over.
    async fn confirmed_email_device(&self) -> Device {
        let device = self.email_device().await;
        self.two_factor
            .send_challenge(&self.user, &device.id)
            .await
            .unwrap();
        let code = self.last_code();
        self.two_factor
            .confirm_device(&self.user, &device.id, &code)
            .await
            .unwrap();
        self.advance(60_000);
        device
    }

    fn last_code(&self) -> String {
        self.outbox.last_code_for("alice@example.com").unwrap()
    }

    async fn verify(&self, device: &Device, code: &str) -> &'static str {
        self.verify_as(&Caller::from(&self.user), device, code)
            .await
    }

    async fn verify_as(&self, caller: &Caller, device: &Device, code: &str) -> &'static str {
        match self.two_factor.verify(caller, &device.id, code).await {
            Ok(_) => "ok",
            Err(error) => error.kind(),
        }
    }

    /// Sends a code to `device` for a caller without a login; the error kind if refused.
    async fn send(&self, device: &Device) -> Result<(), &'static str> {
        self.two_factor
            .send_challenge(&self.user, &device.id)
            .await
            .map(drop)
            .map_err(|e| e.kind())
    }

    fn advance(&self, millis: u64) {
        self.clock.advance(Duration::from_millis(millis));
    }
}

/// A code that is not `code`, of the same length.
fn other_than(code: &str) -> String {
    code.chars()
        .map(|c| if c == '0' { '1' } else { '0' })
        .collect()
}

#[tokio::test]
async fn a_device_is_confirmed_with_the_code_it_was_sent() {
    let f = fixture();
    let device = f.email_device().await;
    assert!(!device.confirmed);
    assert_eq!(device.kind().as_str(), "out_of_band");
    assert_eq!(
        device.masked_destination().as_deref(),
        Some("a***@example.com")
    );

    let sent = f
        .two_factor
        .send_challenge(&f.user, &device.id)
        .await
        .unwrap();
    assert_eq!(sent.masked_destination, "a***@example.com");
    assert_eq!(sent.channel, "email");
    let now = Timestamp::from_millis(START);
    assert_eq!(
        sent.expires_at,
        now.saturating_add(Duration::from_secs(300))
    );
    assert_eq!(
        sent.resend_after,
        now.saturating_add(Duration::from_secs(30))
    );

    let message = f.outbox.last_for("alice@example.com").unwrap();
    assert_eq!(message.code().len(), 6);
    assert!(message.code().bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(message.device(), &device.id);
    assert_eq!(message.user(), &f.user);
    assert_eq!(message.expires_at(), sent.expires_at);

    // An unconfirmed device cannot verify, and that attempt does not use the code up.
    assert_eq!(
        f.verify(&device, message.code()).await,
        "device_not_confirmed"
    );
    f.advance(2_000);
    let confirmed = f
        .two_factor
        .confirm_device(&f.user, &device.id, message.code())
        .await
        .unwrap();
    assert!(confirmed.verification.device.confirmed && confirmed.first);
    assert!(f.two_factor.is_configured(&f.user).await.unwrap());
    // The confirming code is used up.
    f.advance(2_000);
    assert_eq!(f.verify(&device, message.code()).await, "invalid_code");
}

#[tokio::test]
async fn a_code_works_once() {
    let f = fixture();
    let device = f.confirmed_email_device().await;
    f.two_factor
        .send_challenge(&f.user, &device.id)
        .await
        .unwrap();
    let code = f.last_code();
    assert_eq!(f.verify(&device, &code).await, "ok");
    f.advance(2_000);
    assert_eq!(f.verify(&device, &code).await, "invalid_code");
    // Any device of the user may match, out-of-band ones included.
    f.advance(60_000);
    f.two_factor
        .send_challenge(&f.user, &device.id)
        .await
        .unwrap();
    let verification = f
        .two_factor
        .verify_any(&f.user, &f.last_code())
        .await
        .unwrap();
    assert_eq!(verification.device.id, device.id);
}

#[tokio::test]
async fn a_new_code_waits_for_the_cooldown_and_then_replaces_the_old_one() {
    let f = fixture();
    let device = f.confirmed_email_device().await;
    f.two_factor
        .send_challenge(&f.user, &device.id)
        .await
        .unwrap();
    let first = f.last_code();
    let sent_before = f.outbox.len();

    f.advance(10_000);
    let refused = f
        .two_factor
        .send_challenge(&f.user, &device.id)
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), "cooldown");
    assert_eq!(
        refused.retry_after(f.two_factor.now()),
        Some(Duration::from_secs(20))
    );
    assert!(
        matches!(refused, Error::Cooldown { retry_after, .. } if retry_after == Duration::from_secs(20))
    );
    assert_eq!(f.outbox.len(), sent_before, "nothing was sent");

    f.advance(20_000);
    f.two_factor
        .send_challenge(&f.user, &device.id)
        .await
        .unwrap();
    let second = f.last_code();
    assert_eq!(f.outbox.len(), sent_before + 1);
    if first != second {
        assert_eq!(f.verify(&device, &first).await, "invalid_code");
        f.advance(2_000);
    }
    assert_eq!(f.verify(&device, &second).await, "ok");
}

#[tokio::test]
async fn a_code_expires_after_its_validity() {
    let f = fixture_with(|t| {
        t.with_out_of_band_policy(
            OutOfBandPolicy::new()
                .with_validity(Duration::from_secs(120))
                .with_cooldown(Duration::from_secs(10)),
        )
    });
    let device = f.confirmed_email_device().await;
    let sent = f
        .two_factor
        .send_challenge(&f.user, &device.id)
        .await
        .unwrap();
    assert_eq!(
        sent.expires_at,
        f.two_factor.now().saturating_add(Duration::from_secs(120))
    );
    let code = f.last_code();
    f.advance(120_000);
    assert_eq!(f.verify(&device, &code).await, "invalid_code");
    // An expired code leaves no cooldown behind.
    f.two_factor
        .send_challenge(&f.user, &device.id)
        .await
        .unwrap();
    f.advance(119_000);
    assert_eq!(f.verify(&device, &f.last_code()).await, "ok");
}

#[tokio::test]
async fn wrong_codes_are_throttled_like_every_other_device() {
    let f = fixture();
    let device = f.confirmed_email_device().await;
    f.two_factor
        .send_challenge(&f.user, &device.id)
        .await
        .unwrap();
    let code = f.last_code();
    let wrong = other_than(&code);
    assert_eq!(f.verify(&device, &wrong).await, "invalid_code");
    // One failure: 1 s before the next attempt, the right code included.
    assert_eq!(f.verify(&device, &code).await, "throttled");
    f.advance(1_000);
    assert_eq!(f.verify(&device, &wrong).await, "invalid_code");
    f.advance(1_000);
    assert_eq!(f.verify(&device, &code).await, "throttled");
    f.advance(1_000);
    assert_eq!(f.verify(&device, "12345").await, "malformed_code");
    f.advance(4_000);
    // The code survived the failed attempts and still works once.
    assert_eq!(f.verify(&device, &code).await, "ok");
}

#[tokio::test]
async fn a_locked_user_is_sent_nothing() {
    let f = fixture_with(|t| {
        t.with_throttle_policy(
            ThrottlePolicy::new()
                .with_factor(Duration::ZERO)
                .with_user_failure_limit(3),
        )
    });
    let device = f.confirmed_email_device().await;
    f.two_factor
        .send_challenge(&f.user, &device.id)
        .await
        .unwrap();
    let wrong = other_than(&f.last_code());
    for _ in 0..3 {
        assert_eq!(f.verify(&device, &wrong).await, "invalid_code");
    }
    f.advance(60_000);
    let sent_before = f.outbox.len();
    let error = f
        .two_factor
        .send_challenge(&f.user, &device.id)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "locked");
    assert_eq!(f.outbox.len(), sent_before);
    f.two_factor.reset_lockout(&f.user).await.unwrap();
    f.two_factor
        .send_challenge(&f.user, &device.id)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_undelivered_code_is_withdrawn_and_may_be_resent_at_once() {
    let captured: Arc<Mutex<Vec<String>>> = Arc::default();
    let failing = {
        let captured = captured.clone();
        sender_fn(move |message: Message| {
            captured.lock().unwrap().push(message.code().to_owned());
            async { Err(SendError::Unavailable("gateway down".into())) }
        })
    };
    let f = fixture_with(|t| t.with_sender("sms", failing));
    let device = f
        .two_factor
        .add_out_of_band_device(&f.user, "Phone", "sms", "+31 6 12345658")
        .await
        .unwrap();
    assert_eq!(
        device.masked_destination().as_deref(),
        Some("+31 *******58")
    );
    let error = f
        .two_factor
        .send_challenge(&f.user, &device.id)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "delivery_failed");
    assert!(matches!(&error, Error::Delivery(e) if e.kind() == "delivery_unavailable"));
    let code = captured.lock().unwrap()[0].clone();
    assert!(!error.to_string().contains(&code));
    // No cooldown: the user may ask again straight away…
    let error = f
        .two_factor
        .send_challenge(&f.user, &device.id)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "delivery_failed");
    // …and neither undelivered code confirms the device.
    let codes = captured.lock().unwrap().clone();
    assert_eq!(codes.len(), 2);
    for code in codes {
        let result = f
            .two_factor
            .confirm_device(&f.user, &device.id, &code)
            .await;
        assert_eq!(result.unwrap_err().kind(), "invalid_code");
        f.advance(10_000);
    }
}

#[tokio::test]
async fn destinations_are_checked_for_their_channel() {
    let f = fixture();
    let add = |channel: &'static str, to: &'static str| {
        let (two_factor, user) = (f.two_factor.clone(), f.user.clone());
        async move {
            two_factor
                .add_out_of_band_device(&user, "Device", channel, to)
                .await
        }
    };
    assert_eq!(
        add("email", "not an address").await.unwrap_err().kind(),
        "invalid_destination"
    );
    assert_eq!(
        add("sms", "06 1234 5658").await.unwrap_err().kind(),
        "invalid_destination"
    );
    assert_eq!(
        add("pigeon", "loft 4").await.unwrap_err().kind(),
        "unknown_channel"
    );
    let phone = add("sms", "+31 (6) 1234-5658").await.unwrap();
    assert!(matches!(
        &phone.config,
        tower_otp::device::DeviceConfig::OutOfBand { destination, .. } if destination == "+31612345658"
    ));
    assert_eq!(
        add("email", "Alice@EXAMPLE.com")
            .await
            .unwrap()
            .masked_destination()
            .as_deref(),
        Some("A***@example.com")
    );
    assert_eq!(f.two_factor.devices(&f.user).await.unwrap().len(), 2);
}

#[tokio::test]
async fn adding_a_pending_destination_again_returns_the_pending_device() {
    let f = fixture();
    let first = f.email_device().await;
    f.two_factor
        .send_challenge(&f.user, &first.id)
        .await
        .unwrap();
    let again = f
        .two_factor
        .add_out_of_band_device(&f.user, "Work", "email", " alice@Example.com")
        .await
        .unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(again.name, "Work");
    assert_eq!(f.two_factor.devices(&f.user).await.unwrap().len(), 1);
    // The cooldown still applies to it.
    assert_eq!(
        f.two_factor
            .send_challenge(&f.user, &again.id)
            .await
            .unwrap_err()
            .kind(),
        "cooldown"
    );
    f.two_factor
        .confirm_device(&f.user, &first.id, &f.last_code())
        .await
        .unwrap();
    // A caller who may add devices gets the duplicate refused.
    let admin = Caller::administrator(f.user.clone());
    assert_eq!(
        f.two_factor
            .add_out_of_band_device(&admin, "Mail", "email", "alice@example.com")
            .await
            .unwrap_err()
            .kind(),
        "duplicate_device"
    );
}

#[tokio::test]
async fn only_out_of_band_devices_of_the_user_get_challenges() {
    let f = fixture();
    let totp = f
        .two_factor
        .enroll_totp(&f.user, "App", "alice", TotpSettings::default())
        .await
        .unwrap();
    let send = |user: &UserId, device: &tower_otp::DeviceId| {
        let (two_factor, user, device) = (f.two_factor.clone(), user.clone(), device.clone());
        async move { two_factor.send_challenge(&user, &device).await }
    };
    assert_eq!(
        send(&f.user, &totp.device.id).await.unwrap_err().kind(),
        "device_not_found"
    );
    let mail = f.email_device().await;
    let bob = UserId::new("bob").unwrap();
    assert_eq!(
        send(&bob, &mail.id).await.unwrap_err().kind(),
        "device_not_found"
    );
    f.two_factor.delete_device(&f.user, &mail.id).await.unwrap();
    assert_eq!(
        send(&f.user, &mail.id).await.unwrap_err().kind(),
        "device_not_found"
    );
    assert!(f.outbox.is_empty());
}

#[tokio::test]
async fn code_length_follows_the_policy() {
    let f = fixture_with(|t| {
        t.with_out_of_band_policy(OutOfBandPolicy::new().with_digits(Digits::EIGHT))
    });
    let device = f.email_device().await;
    f.two_factor
        .send_challenge(&f.user, &device.id)
        .await
        .unwrap();
    let code = f.last_code();
    assert_eq!(code.len(), 8);
    // The store is given a hash, not the code.
    let challenges = f.store.challenges();
    let stored = format!("{:?}", challenges.last().unwrap());
    assert!(stored.contains("CodeHash"), "{stored}");
    assert!(!stored.contains(&code), "{stored}");
    assert_eq!(
        f.two_factor
            .confirm_device(&f.user, &device.id, &code[..6])
            .await
            .unwrap_err()
            .kind(),
        "malformed_code"
    );
    f.advance(2_000);
    f.two_factor
        .confirm_device(&f.user, &device.id, &code)
        .await
        .unwrap();
}

fn unthrottled() -> ThrottlePolicy {
    ThrottlePolicy::new()
        .with_factor(Duration::ZERO)
        .with_user_failure_limit(1_000)
}

#[tokio::test]
async fn a_code_verifies_only_the_login_that_asked_for_it() {
    let f = fixture_with(|t| t.with_throttle_policy(unthrottled()));
    let device = f.confirmed_email_device().await;
    let asked = new_login(&f.two_factor, &f.user).await;
    let other = new_login(&f.two_factor, &f.user).await;
    f.two_factor
        .send_challenge(&asked, &device.id)
        .await
        .unwrap();
    let code = f.last_code();
    // Someone who knows the password and logs in alongside gets nowhere with it: in another
    // login, or with no login at all, it is a wrong code…
    assert_eq!(f.verify_as(&other, &device, &code).await, "invalid_code");
    assert_eq!(
        f.two_factor
            .verify_any(&other, &code)
            .await
            .unwrap_err()
            .kind(),
        "invalid_code"
    );
    assert_eq!(f.verify(&device, &code).await, "invalid_code");
    // …which the login that asked for it can still use.
    assert_eq!(f.verify_as(&asked, &device, &code).await, "ok");

    // A code sent with no login works only without one.
    f.advance(60_000);
    f.send(&device).await.unwrap();
    let code = f.last_code();
    assert_eq!(f.verify_as(&asked, &device, &code).await, "invalid_code");
    assert_eq!(f.verify(&device, &code).await, "ok");
}

#[tokio::test]
async fn a_code_dies_at_its_fifth_wrong_try() {
    let f = fixture_with(|t| t.with_throttle_policy(unthrottled()));
    let device = f.confirmed_email_device().await;
    f.send(&device).await.unwrap();
    let code = f.last_code();
    let wrong = other_than(&code);
    for _ in 0..4 {
        assert_eq!(f.verify(&device, &wrong).await, "invalid_code");
    }
    assert_eq!(f.verify(&device, &code).await, "ok", "the fifth try");

    f.advance(60_000);
    f.send(&device).await.unwrap();
    let code = f.last_code();
    for _ in 0..5 {
        assert_eq!(f.verify(&device, &other_than(&code)).await, "invalid_code");
    }
    assert_eq!(f.verify(&device, &code).await, "invalid_code", "dead");
    // A dead code leaves no cooldown: the user may ask for another at once.
    f.send(&device).await.unwrap();
    assert_eq!(f.verify(&device, &f.last_code()).await, "ok");
}

#[tokio::test]
async fn every_attempt_takes_a_try_whatever_it_is_and_whoever_makes_it() {
    let f = fixture_with(|t| {
        t.with_throttle_policy(unthrottled())
            .with_out_of_band_policy(OutOfBandPolicy::new().with_max_tries(3))
    });
    let device = f.confirmed_email_device().await;
    let asked = new_login(&f.two_factor, &f.user).await;
    let other = new_login(&f.two_factor, &f.user).await;
    f.two_factor
        .send_challenge(&asked, &device.id)
        .await
        .unwrap();
    let code = f.last_code();
    // Malformed input, the right code from another login, anything through verify_any: each
    // takes one of the code's three tries.
    assert_eq!(f.verify_as(&asked, &device, "12").await, "malformed_code");
    assert_eq!(f.verify_as(&other, &device, &code).await, "invalid_code");
    f.two_factor
        .verify_any(&asked, &other_than(&code))
        .await
        .unwrap_err();
    assert_eq!(f.verify_as(&asked, &device, &code).await, "invalid_code");
}

/// Adds a pending email device for `to` to `user` as a trusted caller (so that it works
/// whatever factors the user has).
async fn add_pending(f: &Fixture, user: &UserId, to: &str) -> Device {
    f.two_factor
        .add_out_of_band_device(&Caller::administrator(user.clone()), "Mail", "email", to)
        .await
        .unwrap()
}

async fn send_to(f: &Fixture, user: &UserId, device: &Device) -> Result<(), Error> {
    f.two_factor
        .send_challenge(user, &device.id)
        .await
        .map(drop)
}

#[tokio::test]
async fn a_user_gets_five_codes_a_quarter_hour_for_pending_devices() {
    // Pending devices that outlive the wait below.
    let f = fixture_with(|t| t.with_pending_device_lifetime(Duration::from_secs(3600)));
    let mut pending = Vec::new();
    for n in 0..3 {
        pending.push(add_pending(&f, &f.user, &format!("a{n}@example.com")).await);
    }
    for device in &pending {
        send_to(&f, &f.user, device).await.unwrap();
        // A send refused by the cooldown does not count.
        let refused = send_to(&f, &f.user, device).await.unwrap_err();
        assert_eq!(refused.kind(), "cooldown");
    }
    f.advance(30_000);
    for device in &pending[..2] {
        send_to(&f, &f.user, device).await.unwrap();
    }
    let sent = f.outbox.len();
    let refused = send_to(&f, &f.user, &pending[2]).await.unwrap_err();
    assert_eq!(refused.kind(), "send_limited");
    assert_eq!(
        refused.retry_after(f.two_factor.now()),
        Some(Duration::from_secs(15 * 60 - 30))
    );
    assert_eq!(f.outbox.len(), sent, "nothing was sent");
    f.advance(15 * 60 * 1000 - 30_000 - 1);
    assert_eq!(
        send_to(&f, &f.user, &pending[2]).await.unwrap_err().kind(),
        "send_limited"
    );
    f.advance(1);
    send_to(&f, &f.user, &pending[2]).await.unwrap();
}

#[tokio::test]
async fn a_user_gets_ten_codes_an_hour_in_all() {
    let f = fixture();
    let device = f.confirmed_email_device().await;
    let mut pending = Vec::new();
    for n in 0..3 {
        let other = add_pending(&f, &f.user, &format!("b{n}@example.com")).await;
        send_to(&f, &f.user, &other).await.unwrap();
        pending.push(other);
    }
    f.advance(30_000);
    send_to(&f, &f.user, &pending[0]).await.unwrap();
    // Five sends so far (one to confirm the device); five more to the confirmed device…
    for _ in 0..5 {
        f.advance(30_000);
        f.send(&device).await.unwrap();
    }
    // …and the eleventh waits until the first is an hour old, although this destination has
    // had only five as a confirmed device.
    f.advance(30_000);
    let refused = send_to(&f, &f.user, &device).await.unwrap_err();
    assert!(matches!(refused, Error::SendLimited { .. }), "{refused:?}");
    let first_sent = Timestamp::from_millis(START);
    assert_eq!(
        refused.retry_after(f.two_factor.now()),
        Some(
            first_sent
                .saturating_add(Duration::from_secs(3600))
                .since(f.two_factor.now())
        )
    );
}

#[tokio::test]
async fn a_destination_gets_five_codes_an_hour_as_anyones_pending_device() {
    let f = fixture();
    // The owner confirms the address (one send to it as a pending device)…
    let victim = UserId::new("victim").unwrap();
    let own = add_pending(&f, &victim, "victim@example.com").await;
    send_to(&f, &victim, &own).await.unwrap();
    let code = f.outbox.last_code_for("victim@example.com").unwrap();
    f.two_factor
        .confirm_device(&victim, &own.id, &code)
        .await
        .unwrap();
    // …then other accounts name it, spelled every which way: four more get through.
    let spellings = [
        "victim@example.com",
        "Victim@example.com",
        "victim+1@example.com",
        "VICTIM+2@EXAMPLE.COM",
        "victim+3@example.com",
    ];
    for (n, to) in spellings.iter().enumerate() {
        let attacker = UserId::new(format!("attacker-{n}")).unwrap();
        let device = add_pending(&f, &attacker, to).await;
        let sent = send_to(&f, &attacker, &device).await;
        if n < 4 {
            sent.unwrap();
        } else {
            assert_eq!(sent.unwrap_err().kind(), "send_limited");
        }
    }
    // The owner's own logins still get their codes: sends to a confirmed device count apart.
    f.advance(60_000);
    send_to(&f, &victim, &own).await.unwrap();
}

#[tokio::test]
async fn send_limits_can_be_set_or_lifted() {
    let one_a_minute = RateLimit::new(1, Duration::from_secs(60));
    let f = fixture_with(|t| {
        t.with_out_of_band_policy(
            OutOfBandPolicy::new()
                .with_cooldown(Duration::ZERO)
                .with_user_send_limit(one_a_minute),
        )
    });
    let device = f.email_device().await;
    f.send(&device).await.unwrap();
    assert_eq!(f.send(&device).await.unwrap_err(), "send_limited");

    let f = fixture_with(|t| {
        t.with_out_of_band_policy(
            OutOfBandPolicy::new()
                .with_cooldown(Duration::ZERO)
                .without_send_limits(),
        )
    });
    let device = f.email_device().await;
    for _ in 0..20 {
        f.send(&device).await.unwrap();
    }
}
