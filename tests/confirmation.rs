//! The confirmation API end to end on the memory store, with an injected clock: states and
//! transitions, expiry, attempts, use-once, the caps on open confirmations and state size,
//! and the built-in methods.

mod common;

use std::time::Duration;

use async_trait::async_trait;
use common::sessions::new_login;
use serde_json::{Value, json};
use tower_otp::Caller;
use tower_otp::clock::{ManualClock, Timestamp};
use tower_otp::confirm::{
    ConfirmError, ConfirmPolicy, ConfirmationBackend, ConfirmationId, ConfirmationStatus,
    Confirmer, Context, DeviceMethod, Method, OutOfBandMethod, Requested,
};
use tower_otp::device::{
    DeviceConfig, Message, OutboxSender, SendError, TotpSettings, out_of_band, sender_fn,
};
use tower_otp::store::MemoryStore;
use tower_otp::{ServerKey, TwoFactor, UserId};

const START: u64 = 1_700_000_000_000;

struct Fixture {
    clock: ManualClock,
    outbox: OutboxSender,
    two_factor: TwoFactor,
    confirmer: Confirmer,
    user: UserId,
}

fn fixture() -> Fixture {
    fixture_with(ConfirmPolicy::default())
}

fn fixture_with(policy: ConfirmPolicy) -> Fixture {
    let clock = ManualClock::new(Timestamp::from_millis(START));
    let outbox = OutboxSender::new();
    let failing = sender_fn(|_: Message| async { Err(SendError::Rejected("no".into())) });
    let two_factor = TwoFactor::new(
        MemoryStore::new().with_clock(clock.clone()),
        ServerKey::new(&[2; 32]).unwrap(),
    )
    .with_clock(clock.clone())
    .with_sender(out_of_band::EMAIL, outbox.clone())
    .with_sender(out_of_band::SMS, failing);
    let confirmer = Confirmer::new(&two_factor)
        .with_policy(policy)
        .with_method(OutOfBandMethod::new(two_factor.clone(), "email").into_method())
        .with_method(OutOfBandMethod::new(two_factor.clone(), "sms").into_method())
        .with_method(DeviceMethod::new(two_factor.clone()).into_method());
    Fixture {
        clock,
        outbox,
        two_factor,
        confirmer,
        user: UserId::new("alice").unwrap(),
    }
}

impl Fixture {
    fn advance(&self, millis: u64) {
        self.clock.advance(Duration::from_millis(millis));
    }

    async fn request_email(&self) -> tower_otp::confirm::Confirmation {
        self.confirmer
            .request(
                &self.user,
                "email",
                json!({"destination": "alice@example.com", "name": "Work"}),
            )
            .await
            .unwrap()
    }

    fn code(&self) -> Value {
        json!({"code": self.outbox.last_code_for("alice@example.com").unwrap()})
    }

    async fn confirm(
        &self,
        id: &ConfirmationId,
        data: &Value,
    ) -> Result<ConfirmationStatus, &'static str> {
        self.confirmer
            .confirm(&self.user, id, data)
            .await
            .map(|c| c.status)
            .map_err(|e| e.kind())
    }

    async fn status(&self, id: &ConfirmationId) -> ConfirmationStatus {
        self.confirmer.check(&self.user, id).await.unwrap().status
    }
}

fn wrong_code(data: &Value) -> Value {
    let code: String = data["code"]
        .as_str()
        .unwrap()
        .chars()
        .map(|c| if c == '0' { '1' } else { '0' })
        .collect();
    json!({ "code": code })
}

#[tokio::test]
async fn a_new_address_is_confirmed_with_the_code_sent_to_it() {
    let f = fixture();
    let pending = f.request_email().await;
    assert_eq!(pending.status, ConfirmationStatus::InProcess);
    assert_eq!(pending.method, "email");
    assert_eq!(pending.attempts_left, 5);
    assert_eq!(
        pending.expires_at,
        Timestamp::from_millis(START).saturating_add(Duration::from_secs(600))
    );
    assert_eq!(pending.state["masked_destination"], "a***@example.com");
    assert_eq!(pending.state["channel"], "email");
    // The address is a pending, unconfirmed device until then.
    let devices = f.two_factor.devices(&f.user).await.unwrap();
    assert_eq!(devices.len(), 1);
    assert!(!devices[0].confirmed);
    assert_eq!(devices[0].name, "Work");
    assert_eq!(pending.state["device_id"], devices[0].id.as_str());
    assert!(!f.two_factor.is_configured(&f.user).await.unwrap());

    let code = f.code();
    let error = f
        .confirmer
        .confirm(&f.user, &pending.id, &wrong_code(&code))
        .await
        .unwrap_err();
    assert!(matches!(error, ConfirmError::Rejected { attempts_left: 4 }));
    assert_eq!(f.status(&pending.id).await, ConfirmationStatus::InProcess);
    f.advance(2_000); // past the device's throttle after one failure

    let confirmed = f
        .confirmer
        .confirm(&f.user, &pending.id, &code)
        .await
        .unwrap();
    assert_eq!(confirmed.status, ConfirmationStatus::Confirmed);
    assert_eq!(confirmed.attempts_left, 3);
    assert!(f.two_factor.devices(&f.user).await.unwrap()[0].confirmed);
    assert_eq!(f.status(&pending.id).await, ConfirmationStatus::Confirmed);
    assert_eq!(
        f.confirm(&pending.id, &code).await,
        Err("confirmation_already_confirmed")
    );

    let used = f
        .confirmer
        .consume(&f.user, &pending.id, "email")
        .await
        .unwrap();
    assert_eq!(used.status, ConfirmationStatus::Used);
    assert_eq!(used.state, pending.state);
    assert_eq!(
        f.confirmer
            .consume(&f.user, &pending.id, "email")
            .await
            .unwrap_err()
            .kind(),
        "confirmation_used"
    );
    assert_eq!(f.status(&pending.id).await, ConfirmationStatus::Used);
}

#[tokio::test]
async fn a_configuration_change_is_confirmed_only_when_the_destination_changes() {
    let f = fixture();
    let old = json!({"destination": "alice@example.com"});
    let same = json!({"destination": " alice@EXAMPLE.com", "name": "Renamed"});
    assert!(
        f.confirmer
            .change_user_config(&f.user, "email", Some(&old), &same)
            .await
            .unwrap()
            .is_none()
    );
    let new = json!({"destination": "alice@example.org"});
    let requested = f
        .confirmer
        .change_user_config(&f.user, "email", Some(&old), &new)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(requested.state["masked_destination"], "a***@example.org");
    assert_eq!(
        f.outbox.last_for("alice@example.org").unwrap().channel(),
        "email"
    );
    let first = f
        .confirmer
        .change_user_config(&f.user, "email", None, &old)
        .await
        .unwrap();
    assert!(first.is_some(), "a first address is confirmed too");
    let bad = f
        .confirmer
        .change_user_config(&f.user, "email", None, &json!({"destination": "nope"}))
        .await
        .unwrap_err();
    assert_eq!(bad.kind(), "invalid_destination");
    let missing = f
        .confirmer
        .change_user_config(&f.user, "email", None, &json!({}))
        .await
        .unwrap_err();
    assert_eq!(missing.kind(), "invalid_data");
    // The device method has nothing to configure.
    assert!(
        f.confirmer
            .change_user_config(&f.user, "device", None, &json!({}))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_confirmation_expires_whether_pending_or_confirmed_and_is_then_forgotten() {
    let f = fixture_with(
        ConfirmPolicy::new()
            .with_ttl(Duration::from_secs(120))
            .with_retention(Duration::from_secs(60)),
    );
    let pending = f.request_email().await;
    let code = f.code();
    f.advance(120_000);
    assert_eq!(f.status(&pending.id).await, ConfirmationStatus::Expired);
    assert_eq!(
        f.confirm(&pending.id, &code).await,
        Err("confirmation_expired")
    );
    assert!(
        !f.two_factor.devices(&f.user).await.unwrap()[0].confirmed,
        "an expired confirmation confirms nothing"
    );

    let second = f
        .confirmer
        .request(
            &f.user,
            "email",
            json!({"destination": "alice@example.org"}),
        )
        .await
        .unwrap();
    let code = json!({"code": f.outbox.last_code_for("alice@example.org").unwrap()});
    assert_eq!(
        f.confirm(&second.id, &code).await,
        Ok(ConfirmationStatus::Confirmed)
    );
    f.advance(119_999);
    assert_eq!(f.status(&second.id).await, ConfirmationStatus::Confirmed);
    f.advance(1);
    assert_eq!(f.status(&second.id).await, ConfirmationStatus::Expired);
    assert_eq!(
        f.confirmer
            .consume(&f.user, &second.id, "email")
            .await
            .unwrap_err()
            .kind(),
        "confirmation_expired"
    );

    // Kept for the retention period after expiry, then forgotten.
    f.advance(59_999);
    assert_eq!(f.status(&second.id).await, ConfirmationStatus::Expired);
    f.advance(1);
    assert_eq!(
        f.confirmer
            .check(&f.user, &second.id)
            .await
            .unwrap_err()
            .kind(),
        "confirmation_not_found"
    );
}

#[tokio::test]
async fn the_last_wrong_answer_fails_the_confirmation() {
    let f = fixture_with(ConfirmPolicy::new().with_max_attempts(3));
    let pending = f.request_email().await;
    let code = f.code();
    let wrong = wrong_code(&code);
    for left in [2, 1, 0] {
        let error = f
            .confirmer
            .confirm(&f.user, &pending.id, &wrong)
            .await
            .unwrap_err();
        assert!(
            matches!(error, ConfirmError::Rejected { attempts_left } if attempts_left == left),
            "{error:?}"
        );
        f.advance(60_000); // past every device throttle
    }
    assert_eq!(f.status(&pending.id).await, ConfirmationStatus::Failed);
    // Even the right code no longer works, and the device stays unconfirmed.
    assert_eq!(
        f.confirm(&pending.id, &code).await,
        Err("confirmation_failed")
    );
    assert!(!f.two_factor.devices(&f.user).await.unwrap()[0].confirmed);
    let check = f.confirmer.check(&f.user, &pending.id).await.unwrap();
    assert_eq!(check.attempts_left, 0);
}

#[tokio::test]
async fn answers_the_method_cannot_read_count_as_attempts() {
    let f = fixture_with(ConfirmPolicy::new().with_max_attempts(2));
    let pending = f.request_email().await;
    assert_eq!(
        f.confirm(&pending.id, &json!({})).await,
        Err("invalid_data")
    );
    assert_eq!(
        f.confirm(&pending.id, &json!({"code": 123456})).await,
        Err("invalid_data")
    );
    assert_eq!(f.status(&pending.id).await, ConfirmationStatus::InProcess);
    // Both attempts were used: the next answer fails it, right or not.
    assert_eq!(
        f.confirm(&pending.id, &f.code()).await,
        Err("confirmation_failed")
    );
    assert_eq!(f.status(&pending.id).await, ConfirmationStatus::Failed);
}

#[tokio::test]
async fn a_confirmation_is_used_only_when_confirmed_only_by_its_owner_and_method() {
    let f = fixture();
    let pending = f.request_email().await;
    let consume = |user: &UserId, method: &'static str| {
        let (confirmer, user, id) = (f.confirmer.clone(), user.clone(), pending.id.clone());
        async move {
            confirmer
                .consume(&user, &id, method)
                .await
                .map(|c| c.status)
                .map_err(|e| e.kind())
        }
    };
    assert_eq!(
        consume(&f.user, "email").await,
        Err("confirmation_not_confirmed")
    );
    f.confirm(&pending.id, &f.code()).await.unwrap();
    let bob = UserId::new("bob").unwrap();
    assert_eq!(consume(&bob, "email").await, Err("confirmation_not_found"));
    assert_eq!(
        f.confirmer
            .check(&bob, &pending.id)
            .await
            .unwrap_err()
            .kind(),
        "confirmation_not_found"
    );
    assert_eq!(
        f.confirmer
            .confirm(&bob, &pending.id, &f.code())
            .await
            .unwrap_err()
            .kind(),
        "confirmation_not_found"
    );
    assert_eq!(consume(&f.user, "device").await, Err("wrong_method"));
    // Neither refusal used it up.
    assert_eq!(
        consume(&f.user, "email").await,
        Ok(ConfirmationStatus::Used)
    );
    assert_eq!(
        f.confirmer
            .check(&f.user, &ConfirmationId::generate())
            .await
            .unwrap_err()
            .kind(),
        "confirmation_not_found"
    );
}

#[tokio::test]
async fn an_undeliverable_address_leaves_no_pending_device() {
    let f = fixture();
    let error = f
        .confirmer
        .request(&f.user, "sms", json!({"destination": "+31612345658"}))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "delivery_failed");
    assert!(f.two_factor.devices(&f.user).await.unwrap().is_empty());
    assert_eq!(
        f.confirmer
            .request(&f.user, "pigeon", json!({}))
            .await
            .unwrap_err()
            .kind(),
        "unknown_method"
    );
}

#[tokio::test]
async fn a_sensitive_action_is_confirmed_with_any_device() {
    let f = fixture();
    let action = json!({"action": "delete_account"});
    assert_eq!(
        f.confirmer
            .request(&f.user, "device", action.clone())
            .await
            .unwrap_err()
            .kind(),
        "not_configured"
    );
    let totp = f
        .two_factor
        .enroll_totp(
            &Caller::administrator(f.user.clone()),
            "App",
            "alice",
            TotpSettings::default(),
        )
        .await
        .unwrap();
    f.two_factor
        .confirm_device(
            &Caller::administrator(f.user.clone()),
            &totp.device.id,
            &totp.current_code(f.two_factor.now()),
        )
        .await
        .unwrap();
    let backup = f
        .two_factor
        .generate_backup_codes(&Caller::administrator(f.user.clone()))
        .await
        .unwrap();
    f.advance(30_000);

    let pending = f
        .confirmer
        .request(&f.user, "device", action.clone())
        .await
        .unwrap();
    assert_eq!(pending.state, action);
    assert_eq!(
        f.confirm(
            &pending.id,
            &json!({"code": totp.current_code(f.two_factor.now())})
        )
        .await,
        Ok(ConfirmationStatus::Confirmed)
    );
    let used = f
        .confirmer
        .consume(&f.user, &pending.id, DeviceMethod::KEY)
        .await
        .unwrap();
    assert_eq!(used.state["action"], "delete_account");

    // A backup code does as well, and is used up by it.
    let other = f
        .confirmer
        .request(&f.user, "device", Value::Null)
        .await
        .unwrap();
    let code = backup.codes.iter().next().unwrap().to_owned();
    assert_eq!(
        f.confirm(&other.id, &json!({ "code": code })).await,
        Ok(ConfirmationStatus::Confirmed)
    );
    assert_eq!(
        f.two_factor.backup_codes_remaining(&f.user).await.unwrap(),
        9
    );
    assert_eq!(
        f.confirmer
            .request(&f.user, "device", json!([1, 2]))
            .await
            .unwrap_err()
            .kind(),
        "invalid_data"
    );
    let huge = json!({"blob": "x".repeat(9 * 1024)});
    assert_eq!(
        f.confirmer
            .request(&f.user, "device", huge)
            .await
            .unwrap_err()
            .kind(),
        "invalid_data"
    );
}

#[tokio::test]
async fn a_pinned_out_of_band_device_gets_a_code_and_only_it_confirms() {
    let f = fixture();
    let enrolled = f.request_email().await;
    f.confirm(&enrolled.id, &f.code()).await.unwrap();
    let mail = f.two_factor.devices(&f.user).await.unwrap().remove(0);
    let totp = f
        .two_factor
        .enroll_totp(
            &Caller::administrator(f.user.clone()),
            "App",
            "alice",
            TotpSettings::default(),
        )
        .await
        .unwrap();
    f.two_factor
        .confirm_device(
            &Caller::administrator(f.user.clone()),
            &totp.device.id,
            &totp.current_code(f.two_factor.now()),
        )
        .await
        .unwrap();
    f.advance(60_000);

    let pending = f
        .confirmer
        .request(
            &f.user,
            "device",
            json!({"action": "change_password", "device_id": mail.id}),
        )
        .await
        .unwrap();
    assert_eq!(pending.state["masked_destination"], "a***@example.com");
    let code = f.code();
    // The app's code does not confirm what the mail was sent for.
    let app = json!({"code": totp.current_code(f.two_factor.now())});
    assert_eq!(
        f.confirm(&pending.id, &app).await,
        Err("confirmation_rejected")
    );
    let elsewhere = json!({"code": code["code"], "device_id": totp.device.id});
    assert_eq!(
        f.confirm(&pending.id, &elsewhere).await,
        Err("confirmation_rejected")
    );
    f.advance(10_000);
    assert_eq!(
        f.confirm(&pending.id, &code).await,
        Ok(ConfirmationStatus::Confirmed)
    );
    // The pinned device must be one of the user's confirmed devices.
    let unknown = json!({"device_id": tower_otp::DeviceId::generate()});
    assert_eq!(
        f.confirmer
            .request(&f.user, "device", unknown)
            .await
            .unwrap_err()
            .kind(),
        "device_not_found"
    );
    assert!(matches!(mail.config, DeviceConfig::OutOfBand { .. }));
}

/// An application's method: confirms at once when the state says so.
#[derive(Debug)]
struct Instant;

#[async_trait]
impl ConfirmationBackend for Instant {
    async fn change_user_config(
        &self,
        _cx: Context<'_>,
        _old: Option<&Value>,
        new: &Value,
    ) -> Result<Option<Value>, ConfirmError> {
        Ok(Some(new.clone()))
    }

    async fn request_confirmation(
        &self,
        cx: Context<'_>,
        state: Value,
    ) -> Result<Requested, ConfirmError> {
        assert_eq!(cx.method, "instant");
        if state["now"] == true {
            Ok(Requested::Confirmed(state))
        } else {
            Ok(Requested::InProcess(state))
        }
    }

    async fn confirm(
        &self,
        _cx: Context<'_>,
        _state: &Value,
        data: &Value,
    ) -> Result<bool, ConfirmError> {
        Ok(data["yes"] == true)
    }
}

#[tokio::test]
async fn applications_register_their_own_methods() {
    let f = fixture();
    let schema = json!({"type": "object"});
    let confirmer = f.confirmer.clone().with_method(
        Method::new("instant", "Instant", Instant)
            .with_global_config_schema(schema.clone())
            .with_user_config_schema(schema.clone()),
    );
    let keys: Vec<&str> = confirmer.methods().map(Method::key).collect();
    assert_eq!(keys, ["device", "email", "instant", "sms"]);
    let instant = confirmer.method("instant").unwrap();
    assert_eq!(instant.name(), "Instant");
    assert_eq!(instant.global_config_schema(), Some(&schema));
    assert!(
        confirmer
            .method("email")
            .unwrap()
            .user_config_schema()
            .is_some()
    );
    assert!(
        confirmer
            .method("device")
            .unwrap()
            .user_config_schema()
            .is_none()
    );

    let at_once = confirmer
        .change_user_config(&f.user, "instant", None, &json!({"now": true}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(at_once.status, ConfirmationStatus::Confirmed);
    confirmer
        .consume(&f.user, &at_once.id, "instant")
        .await
        .unwrap();

    let pending = confirmer
        .request(&f.user, "instant", json!({}))
        .await
        .unwrap();
    let no = confirmer
        .confirm(&f.user, &pending.id, &json!({"yes": false}))
        .await;
    assert!(matches!(
        no,
        Err(ConfirmError::Rejected { attempts_left: 4 })
    ));
    let yes = confirmer
        .confirm(&f.user, &pending.id, &json!({"yes": true}))
        .await
        .unwrap();
    assert_eq!(yes.status, ConfirmationStatus::Confirmed);
    // The original confirmer does not know the method.
    assert_eq!(
        f.confirmer
            .confirm(&f.user, &pending.id, &json!({}))
            .await
            .unwrap_err()
            .kind(),
        "confirmation_already_confirmed"
    );
    assert_eq!(
        f.confirmer
            .consume(&f.user, &pending.id, "instant")
            .await
            .unwrap()
            .status,
        ConfirmationStatus::Used
    );
    assert!(!format!("{pending:?}").contains(pending.id.as_str()));
}

#[tokio::test]
async fn open_confirmations_are_capped_before_anything_is_sent() {
    let f = fixture_with(ConfirmPolicy::new().with_max_open(2));
    let request = |to: &str| {
        let (confirmer, user) = (f.confirmer.clone(), f.user.clone());
        let state = json!({"destination": to});
        async move { confirmer.request(&user, "email", state).await }
    };
    let first = request("a@example.com").await.unwrap();
    request("b@example.com").await.unwrap();
    let refused = request("c@example.com").await.unwrap_err();
    assert!(matches!(refused, ConfirmError::TooManyOpen));
    assert_eq!(refused.kind(), "too_many_confirmations");
    // Refused before the method ran: no code sent, no device added.
    assert_eq!(f.outbox.len(), 2);
    assert_eq!(f.two_factor.devices(&f.user).await.unwrap().len(), 2);
    // Another user has a cap of their own.
    let bob = UserId::new("bob").unwrap();
    f.confirmer
        .request(&bob, "email", json!({"destination": "bob@example.com"}))
        .await
        .unwrap();

    // A confirmed confirmation is still open; a used one is not.
    let code = json!({"code": f.outbox.last_code_for("a@example.com").unwrap()});
    f.confirmer
        .confirm(&f.user, &first.id, &code)
        .await
        .unwrap();
    assert_eq!(
        request("c@example.com").await.unwrap_err().kind(),
        "too_many_confirmations"
    );
    f.confirmer
        .consume(&f.user, &first.id, "email")
        .await
        .unwrap();
    let admin = Caller::administrator(f.user.clone());
    f.confirmer
        .request(&admin, "email", json!({"destination": "c@example.com"}))
        .await
        .unwrap();
    // Expired ones are not either.
    f.advance(10 * 60 * 1000);
    f.confirmer
        .request(&admin, "email", json!({"destination": "d@example.com"}))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_request_whose_method_fails_takes_no_place() {
    let f = fixture_with(ConfirmPolicy::new().with_max_open(1));
    let confirmer =
        f.confirmer
            .clone()
            .with_method(Method::new("inflating", "Inflating", Inflating));
    for method in ["sms", "inflating"] {
        let state = json!({"destination": "+31612345658"});
        let error = confirmer.request(&f.user, method, state).await.unwrap_err();
        assert!(
            matches!(error.kind(), "delivery_failed" | "invalid_data"),
            "{error:?}"
        );
    }
    f.request_email().await;
}

#[tokio::test]
async fn states_are_limited_to_a_kibibyte_unless_the_policy_says_otherwise() {
    let f = fixture();
    let confirmer = f
        .confirmer
        .clone()
        .with_method(Method::new("instant", "Instant", Instant));
    let padded = |bytes: usize| json!({"pad": "x".repeat(bytes)});
    confirmer
        .request(&f.user, "instant", padded(1000))
        .await
        .unwrap();
    let refused = confirmer
        .request(&f.user, "instant", padded(1100))
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), "invalid_data");
    let roomier = confirmer.with_policy(ConfirmPolicy::new().with_max_state_bytes(4096));
    roomier
        .request(&f.user, "instant", padded(1100))
        .await
        .unwrap();
    assert_eq!(
        ConfirmPolicy::new()
            .with_max_state_bytes(usize::MAX)
            .max_state_bytes(),
        ConfirmPolicy::MAX_STATE_BYTES
    );
}

#[tokio::test]
async fn a_code_sent_for_a_confirmation_confirms_it_only_from_the_same_login() {
    let f = fixture();
    let asked = new_login(&f.two_factor, &f.user).await;
    let other = new_login(&f.two_factor, &f.user).await;
    let pending = f
        .confirmer
        .request(&asked, "email", json!({"destination": "alice@example.com"}))
        .await
        .unwrap();
    let code = f.code();
    let elsewhere = f.confirmer.confirm(&other, &pending.id, &code).await;
    assert!(
        matches!(elsewhere, Err(ConfirmError::Rejected { attempts_left: 4 })),
        "{elsewhere:?}"
    );
    f.advance(2_000); // past the device's throttle after one failure
    let confirmed = f
        .confirmer
        .confirm(&asked, &pending.id, &code)
        .await
        .unwrap();
    assert_eq!(confirmed.status, ConfirmationStatus::Confirmed);
}

/// A method whose started state is larger than any policy allows.
#[derive(Debug)]
struct Inflating;

#[async_trait]
impl ConfirmationBackend for Inflating {
    async fn change_user_config(
        &self,
        _cx: Context<'_>,
        _old: Option<&Value>,
        _new: &Value,
    ) -> Result<Option<Value>, ConfirmError> {
        Ok(None)
    }

    async fn request_confirmation(
        &self,
        _cx: Context<'_>,
        _state: Value,
    ) -> Result<Requested, ConfirmError> {
        Ok(Requested::InProcess(json!({"pad": "x".repeat(100_000)})))
    }

    async fn confirm(
        &self,
        _cx: Context<'_>,
        _state: &Value,
        _data: &Value,
    ) -> Result<bool, ConfirmError> {
        Ok(false)
    }
}
