//! Events of out-of-band codes and of the confirmation API: each fires exactly once per
//! action, with the device or method it concerns, and never the code, the destination or the
//! confirmation id.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use tower_otp::clock::{ManualClock, Timestamp};
use tower_otp::confirm::{
    ConfirmError, ConfirmPolicy, ConfirmationBackend, Confirmer, Context, Method, OutOfBandMethod,
    Requested,
};
use tower_otp::device::{
    Device, Message, OutboxSender, SendError, ThrottlePolicy, out_of_band, sender_fn,
};
use tower_otp::events::{Event, EventKind, EventStream, Events};
use tower_otp::store::MemoryStore;
use tower_otp::store::SharedStore;
use tower_otp::{DeviceId, DeviceKind, ServerKey, TwoFactor, UserId};

const START: u64 = 1_700_000_000_000;
const ADDRESS: &str = "alice@example.com";
const PHONE: &str = "+31612345658";

struct Fixture {
    clock: ManualClock,
    outbox: OutboxSender,
    two_factor: TwoFactor,
    confirmer: Confirmer,
    stream: EventStream,
    user: UserId,
}

fn fixture() -> Fixture {
    fixture_with(ConfirmPolicy::default())
}

fn fixture_with(policy: ConfirmPolicy) -> Fixture {
    let clock = ManualClock::new(Timestamp::from_millis(START));
    let outbox = OutboxSender::new();
    let failing = sender_fn(|_: Message| async { Err(SendError::Unavailable("down".into())) });
    let events = Events::new();
    let stream = events.subscribe();
    let two_factor = TwoFactor::new(
        MemoryStore::new().with_clock(clock.clone()),
        ServerKey::new(&[7; 32]).unwrap(),
    )
    .with_clock(clock.clone())
    .with_events(events)
    .with_sender(out_of_band::EMAIL, outbox.clone())
    .with_sender(out_of_band::SMS, failing);
    let confirmer = Confirmer::new(&two_factor)
        .with_policy(policy)
        .with_method(OutOfBandMethod::new(two_factor.clone(), out_of_band::EMAIL).into_method())
        .with_method(OutOfBandMethod::new(two_factor.clone(), out_of_band::SMS).into_method())
        .with_method(Method::new("approve", "Approve", Approve));
    Fixture {
        clock,
        outbox,
        two_factor,
        confirmer,
        stream,
        user: UserId::new("alice").unwrap(),
    }
}

impl Fixture {
    /// Every event emitted since the last call.
    fn drain(&mut self) -> Vec<Arc<Event>> {
        let mut events = Vec::new();
        while let Some(event) = self.stream.try_recv() {
            events.push(event.unwrap());
        }
        events
    }

    fn names(&mut self) -> Vec<&'static str> {
        self.drain().iter().map(|e| e.kind.name()).collect()
    }

    async fn email_device(&self) -> Device {
        self.two_factor
            .add_out_of_band_device(&self.user, "Mail", out_of_band::EMAIL, ADDRESS)
            .await
            .unwrap()
    }

    fn last_code(&self) -> String {
        self.outbox.last_code_for(ADDRESS).unwrap()
    }

    fn advance(&self, duration: Duration) {
        self.clock.advance(duration);
    }
}

/// An application's method: `{"approve": true}` confirms; `{"at_once": true}` in the request
/// confirms at once.
#[derive(Debug)]
struct Approve;

#[async_trait]
impl ConfirmationBackend for Approve {
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
        _cx: Context<'_>,
        state: Value,
    ) -> Result<Requested, ConfirmError> {
        if state["at_once"] == true {
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
        Ok(data["approve"] == true)
    }
}

/// The event as JSON text holds none of `secrets`.
fn assert_reveals_none(event: &Event, secrets: &[&str]) {
    let json = serde_json::to_string(event).unwrap();
    for secret in secrets {
        assert!(!json.contains(secret), "{secret:?} in {json}");
    }
}

#[tokio::test]
async fn a_delivered_code_is_announced_once_with_its_device_and_channel() {
    let mut f = fixture();
    let device = f.email_device().await;
    assert_eq!(f.names(), ["device_added"]);

    f.two_factor
        .send_challenge(&f.user, &device.id)
        .await
        .unwrap();
    let events = f.drain();
    assert_eq!(events.len(), 1, "{events:?}");
    let sent = &events[0];
    assert_eq!(
        sent.kind,
        EventKind::ChallengeSent {
            channel: "email".into()
        }
    );
    assert_eq!(sent.user, f.user);
    assert_eq!(sent.at, Timestamp::from_millis(START));
    let d = sent.device.as_ref().unwrap();
    assert_eq!(
        (&d.id, d.kind, d.name.as_str()),
        (&device.id, DeviceKind::OutOfBand, "Mail")
    );
    assert_reveals_none(sent, &[&f.last_code(), ADDRESS, "a***@example.com"]);
    let json = serde_json::to_value(&**sent).unwrap();
    assert_eq!(json["event"], "challenge_sent");
    assert_eq!(json["channel"], "email");
    assert_eq!(serde_json::from_value::<Event>(json).unwrap(), **sent);

    // The cooldown refuses a new code: nothing was sent, nothing is announced.
    let refused = f.two_factor.send_challenge(&f.user, &device.id).await;
    assert_eq!(refused.unwrap_err().kind(), "cooldown");
    assert_eq!(f.names(), Vec::<&str>::new());

    // After it, a new code is announced again, once.
    f.advance(Duration::from_secs(31));
    f.two_factor
        .send_challenge(&f.user, &device.id)
        .await
        .unwrap();
    assert_eq!(f.names(), ["challenge_sent"]);
}

#[tokio::test]
async fn an_undelivered_code_is_not_announced() {
    let mut f = fixture();
    let phone = f
        .two_factor
        .add_out_of_band_device(&f.user, "Phone", out_of_band::SMS, PHONE)
        .await
        .unwrap();
    f.drain();
    for _ in 0..2 {
        let failed = f.two_factor.send_challenge(&f.user, &phone.id).await;
        assert_eq!(failed.unwrap_err().kind(), "delivery_failed");
    }
    assert_eq!(f.names(), Vec::<&str>::new());

    // Nor is a code for a device that does not exist.
    let missing = DeviceId::generate();
    let refused = f.two_factor.send_challenge(&f.user, &missing).await;
    assert_eq!(refused.unwrap_err().kind(), "device_not_found");
    assert_eq!(f.names(), Vec::<&str>::new());
}

#[tokio::test]
async fn no_code_is_announced_while_the_user_is_locked_out() {
    let mut f = fixture();
    let two_factor = f.two_factor.clone().with_throttle_policy(
        ThrottlePolicy::new()
            .with_factor(Duration::ZERO)
            .with_user_failure_limit(1),
    );
    let device = f.email_device().await;
    two_factor
        .send_challenge(&f.user, &device.id)
        .await
        .unwrap();
    let wrong = if f.last_code() == "000000" {
        "111111"
    } else {
        "000000"
    };
    two_factor
        .confirm_device(&f.user, &device.id, wrong)
        .await
        .unwrap_err();
    f.drain();
    f.advance(Duration::from_secs(60));
    let locked = two_factor.send_challenge(&f.user, &device.id).await;
    assert_eq!(locked.unwrap_err().kind(), "locked");
    assert_eq!(f.names(), Vec::<&str>::new());
}

#[tokio::test]
async fn a_new_address_is_requested_confirmed_and_used_one_event_each() {
    let mut f = fixture();
    let pending = f
        .confirmer
        .request(&f.user, "email", json!({"destination": ADDRESS}))
        .await
        .unwrap();
    let events = f.drain();
    let names: Vec<_> = events.iter().map(|e| e.kind.name()).collect();
    assert_eq!(
        names,
        ["device_added", "challenge_sent", "confirmation_requested"]
    );
    assert_eq!(
        events[2].kind,
        EventKind::ConfirmationRequested {
            method: "email".into()
        }
    );
    assert_eq!(events[2].device, None);
    assert_eq!(events[2].user, f.user);
    let code = f.last_code();
    for event in &events {
        assert_reveals_none(event, &[&code, ADDRESS, pending.id.as_str()]);
    }

    f.confirmer
        .confirm(&f.user, &pending.id, &json!({"code": code}))
        .await
        .unwrap();
    let events = f.drain();
    let names: Vec<_> = events.iter().map(|e| e.kind.name()).collect();
    assert_eq!(names, ["device_confirmed", "confirmation_confirmed"]);
    assert_eq!(
        events[1].kind,
        EventKind::ConfirmationConfirmed {
            method: "email".into()
        }
    );

    // Using it for another method is refused, and not announced.
    let wrong_method = f.confirmer.consume(&f.user, &pending.id, "sms").await;
    assert_eq!(wrong_method.unwrap_err().kind(), "wrong_method");
    assert_eq!(f.names(), Vec::<&str>::new());

    f.confirmer
        .consume(&f.user, &pending.id, "email")
        .await
        .unwrap();
    let events = f.drain();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].kind,
        EventKind::ConfirmationUsed {
            method: "email".into()
        }
    );
    assert_reveals_none(&events[0], &[pending.id.as_str(), &code]);
    let json = serde_json::to_value(&*events[0]).unwrap();
    assert_eq!(json["event"], "confirmation_used");
    assert_eq!(json["method"], "email");
    assert_eq!(serde_json::from_value::<Event>(json).unwrap(), *events[0]);

    // A second use fails: no event.
    assert!(
        f.confirmer
            .consume(&f.user, &pending.id, "email")
            .await
            .is_err()
    );
    assert_eq!(f.names(), Vec::<&str>::new());
}

#[tokio::test]
async fn a_confirmation_fails_once_on_its_last_wrong_answer() {
    let mut f = fixture_with(ConfirmPolicy::new().with_max_attempts(2));
    let pending = f
        .confirmer
        .request(&f.user, "approve", json!({"action": "delete_account"}))
        .await
        .unwrap();
    assert_eq!(f.names(), ["confirmation_requested"]);

    let no = json!({"approve": false});
    let first = f.confirmer.confirm(&f.user, &pending.id, &no).await;
    assert_eq!(first.unwrap_err().kind(), "confirmation_rejected");
    assert_eq!(f.names(), Vec::<&str>::new(), "attempts are left");

    let last = f.confirmer.confirm(&f.user, &pending.id, &no).await;
    assert_eq!(last.unwrap_err().kind(), "confirmation_rejected");
    let events = f.drain();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].kind,
        EventKind::ConfirmationFailed {
            method: "approve".into()
        }
    );
    assert_eq!(events[0].kind.name(), "confirmation_failed");

    // Answers to a failed confirmation change nothing and announce nothing.
    let yes = json!({"approve": true});
    let after = f.confirmer.confirm(&f.user, &pending.id, &yes).await;
    assert_eq!(after.unwrap_err().kind(), "confirmation_failed");
    assert_eq!(f.names(), Vec::<&str>::new());
}

#[tokio::test]
async fn a_confirmation_confirmed_at_once_is_announced_as_requested_then_confirmed() {
    let mut f = fixture();
    let done = f
        .confirmer
        .request(&f.user, "approve", json!({"at_once": true}))
        .await
        .unwrap();
    let events = f.drain();
    let kinds: Vec<_> = events.iter().map(|e| e.kind.clone()).collect();
    assert_eq!(
        kinds,
        [
            EventKind::ConfirmationRequested {
                method: "approve".into()
            },
            EventKind::ConfirmationConfirmed {
                method: "approve".into()
            },
        ]
    );

    // An expired confirmation cannot be used, and that is not announced either.
    f.advance(Duration::from_secs(11 * 60));
    let expired = f.confirmer.consume(&f.user, &done.id, "approve").await;
    assert_eq!(expired.unwrap_err().kind(), "confirmation_expired");
    assert_eq!(f.names(), Vec::<&str>::new());
}

#[tokio::test]
async fn confirmers_made_from_a_store_emit_on_their_own_bus_or_the_one_given() {
    let store: SharedStore = Arc::new(MemoryStore::new());
    let user = UserId::new("alice").unwrap();
    let own = Confirmer::from_store(store.clone())
        .with_method(Method::new("approve", "Approve", Approve));
    let mut own_stream = own.events().subscribe();
    own.request(&user, "approve", json!({})).await.unwrap();
    assert_eq!(
        own_stream.try_recv().unwrap().unwrap().kind.name(),
        "confirmation_requested"
    );

    let shared = Events::new();
    let mut shared_stream = shared.subscribe();
    let given = Confirmer::from_store(store)
        .with_events(shared.clone())
        .with_method(Method::new("approve", "Approve", Approve));
    given.request(&user, "approve", json!({})).await.unwrap();
    let event = shared_stream.try_recv().unwrap().unwrap();
    assert_eq!(event.instance, shared.instance());
    assert!(own_stream.try_recv().is_none());
}
