//! The engine's ceremonies against a software authenticator.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs::prelude::Url;

use super::{CEREMONY_LIFETIME, RelyingParty};
use crate::clock::{Clock, ManualClock, SystemClock};
use crate::device::{DeviceKind, Error, UserId};
use crate::engine::{Caller, CallerState, TwoFactor};
use crate::events::EventKind;
use crate::{MemoryStore, ServerKey};

const ORIGIN: &str = "http://localhost:8080";

struct Fixture {
    two_factor: TwoFactor,
    clock: ManualClock,
    events: Arc<Mutex<Vec<EventKind>>>,
    alice: UserId,
}

fn fixture() -> Fixture {
    let clock = ManualClock::new(SystemClock.now());
    let relying_party = RelyingParty::new("localhost", ORIGIN, "Test").unwrap();
    let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::generate())
        .with_clock(clock.clone())
        .with_webauthn(relying_party);
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    two_factor
        .events()
        .on(move |event| seen.lock().unwrap().push(event.kind.clone()));
    Fixture {
        two_factor,
        clock,
        events,
        alice: UserId::new("alice").unwrap(),
    }
}

fn key() -> WebauthnAuthenticator<SoftPasskey> {
    WebauthnAuthenticator::new(SoftPasskey::new(true))
}

fn origin() -> Url {
    Url::parse(ORIGIN).unwrap()
}

impl Fixture {
    /// A caller who has given their password in the login `login`.
    fn session(&self, login: &str) -> Caller {
        Caller::of_session(self.alice.clone(), None, login.to_owned())
    }

    async fn register(
        &self,
        caller: &Caller,
        key: &mut WebauthnAuthenticator<SoftPasskey>,
    ) -> Result<crate::engine::ConfirmedDevice, Error> {
        let options = self
            .two_factor
            .begin_key_registration(caller, "YubiKey")
            .await?;
        let answer = key.do_registration(origin(), options).unwrap();
        self.two_factor
            .finish_key_registration(caller, &answer)
            .await
    }

    async fn answer(
        &self,
        caller: &Caller,
        key: &mut WebauthnAuthenticator<SoftPasskey>,
    ) -> webauthn_rs::prelude::PublicKeyCredential {
        let options = self
            .two_factor
            .begin_key_verification(caller)
            .await
            .unwrap();
        key.do_authentication(origin(), options).unwrap()
    }

    fn take_events(&self) -> Vec<&'static str> {
        let mut events = self.events.lock().unwrap();
        events.drain(..).map(|kind| kind.name()).collect()
    }
}

#[tokio::test]
async fn a_registered_key_verifies_a_later_login() {
    let f = fixture();
    let mut yubikey = key();
    let registered = f
        .register(&f.session("login-1"), &mut yubikey)
        .await
        .unwrap();
    assert!(registered.first);
    let device = &registered.verification.device;
    assert_eq!(device.kind(), DeviceKind::WebAuthn);
    assert!(device.confirmed);
    assert_eq!(device.name, "YubiKey");
    assert_eq!(f.take_events(), ["device_added", "device_confirmed"]);

    let later = f.session("login-2");
    let answer = f.answer(&later, &mut yubikey).await;
    let verification = f
        .two_factor
        .finish_key_verification(&later, &answer)
        .await
        .unwrap();
    assert_eq!(verification.device.id, device.id);
    assert_eq!(f.take_events(), ["user_verified"]);
    // As fresh as a code: it may change factors.
    let fresh = Caller::verified(&verification);
    assert_eq!(f.two_factor.caller_state(&fresh), CallerState::Fresh);
    let stored = f
        .two_factor
        .store()
        .get_device(&f.alice, &device.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.state.last_used_at, Some(f.clock.now()));
    assert!(stored.state.next_counter > 0);
}

#[tokio::test]
async fn a_ceremony_is_used_once_and_only_by_its_session() {
    let f = fixture();
    let mut yubikey = key();
    f.register(&f.session("login-1"), &mut yubikey)
        .await
        .unwrap();
    let mine = f.session("login-2");
    let answer = f.answer(&mine, &mut yubikey).await;
    let other = f.session("login-3");
    let stolen = f.two_factor.finish_key_verification(&other, &answer).await;
    assert_eq!(stolen.unwrap_err().kind(), "webauthn_ceremony_missing");
    f.two_factor
        .finish_key_verification(&mine, &answer)
        .await
        .unwrap();
    let again = f.two_factor.finish_key_verification(&mine, &answer).await;
    assert_eq!(again.unwrap_err().kind(), "webauthn_ceremony_missing");
}

#[tokio::test]
async fn a_ceremony_expires_after_five_minutes() {
    let f = fixture();
    let mut yubikey = key();
    let login = f.session("login-1");
    let options = f
        .two_factor
        .begin_key_registration(&login, "YubiKey")
        .await
        .unwrap();
    let answer = yubikey.do_registration(origin(), options).unwrap();
    f.clock.advance(CEREMONY_LIFETIME);
    let late = f.two_factor.finish_key_registration(&login, &answer).await;
    assert_eq!(late.unwrap_err().kind(), "webauthn_ceremony_missing");
    assert!(!f.two_factor.is_configured(&f.alice).await.unwrap());

    f.register(&login, &mut yubikey).await.unwrap();
    let answer = f.answer(&login, &mut yubikey).await;
    f.clock
        .advance(CEREMONY_LIFETIME - Duration::from_millis(1));
    f.two_factor
        .finish_key_verification(&login, &answer)
        .await
        .unwrap();
}

#[tokio::test]
async fn adding_a_key_is_a_factor_change() {
    let f = fixture();
    let mut first = key();
    let registered = f.register(&f.session("login-1"), &mut first).await.unwrap();
    // A password alone adds nothing once the user has a factor...
    let refused = f
        .two_factor
        .begin_key_registration(&f.session("login-2"), "Spare")
        .await;
    assert_eq!(refused.unwrap_err().kind(), "otp_required");
    // ...a fresh verification does, and the new key is not a first device.
    let fresh = Caller::verified(&registered.verification);
    let mut spare = key();
    let second = f.register(&fresh, &mut spare).await.unwrap();
    assert!(!second.first);
    // Once stale, a finish is refused even with a ceremony begun while fresh.
    let options = f
        .two_factor
        .begin_key_registration(&fresh, "Third")
        .await
        .unwrap();
    let answer = key().do_registration(origin(), options).unwrap();
    f.clock
        .advance(f.two_factor.reauthentication_window() + Duration::from_secs(1));
    let stale = f.two_factor.finish_key_registration(&fresh, &answer).await;
    assert_eq!(stale.unwrap_err().kind(), "reauthentication_required");
}

#[tokio::test]
async fn registration_options_exclude_the_users_keys() {
    let f = fixture();
    let registered = f.register(&f.session("login-1"), &mut key()).await.unwrap();
    let fresh = Caller::verified(&registered.verification);
    let options = f
        .two_factor
        .begin_key_registration(&fresh, "Spare")
        .await
        .unwrap();
    // An authenticator holding one of them declines, so a key is never registered twice.
    let options = serde_json::to_value(&options).unwrap();
    let excluded = &options["publicKey"]["excludeCredentials"];
    let crate::device::DeviceConfig::WebAuthn { credential_id, .. } =
        &registered.verification.device.config
    else {
        unreachable!("a security key");
    };
    assert_eq!(excluded.as_array().unwrap().len(), 1);
    assert_eq!(excluded[0]["id"], credential_id.as_str());
}

#[tokio::test]
async fn a_key_that_never_registered_is_refused_and_counted() {
    let f = fixture();
    let mut yubikey = key();
    let registered = f
        .register(&f.session("login-1"), &mut yubikey)
        .await
        .unwrap();
    let login = f.session("login-2");
    let options = f.two_factor.begin_key_verification(&login).await.unwrap();
    // A stranger's key answering for one of its own (the browser would offer nothing).
    let mut stranger = key();
    let theirs = f_register_elsewhere(&mut stranger).await;
    let mut json = serde_json::to_value(&options).unwrap();
    json["publicKey"]["allowCredentials"] =
        serde_json::json!([{"type": "public-key", "id": theirs}]);
    let stranger_options = serde_json::from_value(json).unwrap();
    let answer = stranger
        .do_authentication(origin(), stranger_options)
        .unwrap();
    f.take_events();
    let refused = f.two_factor.finish_key_verification(&login, &answer).await;
    assert_eq!(refused.unwrap_err().kind(), "webauthn_refused");
    assert_eq!(f.take_events(), ["verification_failed"]);
    let device = f
        .two_factor
        .store()
        .get_device(&f.alice, &registered.verification.device.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(device.state.failures, 1);
}

/// Registers `key` with another engine, returning the credential id it made.
async fn f_register_elsewhere(key: &mut WebauthnAuthenticator<SoftPasskey>) -> String {
    let other = fixture();
    let registered = other
        .register(&other.session("elsewhere"), key)
        .await
        .unwrap();
    let crate::device::DeviceConfig::WebAuthn { credential_id, .. } =
        &registered.verification.device.config
    else {
        unreachable!("a security key");
    };
    credential_id.clone()
}

#[tokio::test]
async fn a_counter_that_goes_backwards_is_refused_and_reported() {
    let f = fixture();
    let mut yubikey = key();
    f.register(&f.session("login-1"), &mut yubikey)
        .await
        .unwrap();
    // The first answer is signed before the second: its counter is lower. Used after the
    // second, it is what a clone of the key would send.
    let (early, late) = (f.session("login-2"), f.session("login-3"));
    let first_answer = f.answer(&early, &mut yubikey).await;
    let second_answer = f.answer(&late, &mut yubikey).await;
    f.two_factor
        .finish_key_verification(&late, &second_answer)
        .await
        .unwrap();
    f.take_events();
    let cloned = f
        .two_factor
        .finish_key_verification(&early, &first_answer)
        .await;
    assert_eq!(cloned.unwrap_err().kind(), "webauthn_counter_regressed");
    assert_eq!(
        f.take_events(),
        ["webauthn_counter_regressed", "verification_failed"]
    );
}

#[tokio::test]
async fn keys_verify_only_through_their_ceremony() {
    let f = fixture();
    let registered = f.register(&f.session("login-1"), &mut key()).await.unwrap();
    let typed = f
        .two_factor
        .verify(
            &f.session("login-2"),
            &registered.verification.device.id,
            "123456",
        )
        .await;
    assert_eq!(typed.unwrap_err().kind(), "invalid_code");
    let nobody = Caller::of_session(UserId::new("bob").unwrap(), None, "login".into());
    let none = f.two_factor.begin_key_verification(&nobody).await;
    assert_eq!(none.unwrap_err().kind(), "not_configured");
}

#[tokio::test]
async fn without_a_relying_party_keys_are_refused() {
    let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::generate());
    let alice = UserId::new("alice").unwrap();
    let refused = two_factor.begin_key_registration(&alice, "YubiKey").await;
    assert_eq!(refused.unwrap_err().kind(), "invalid_settings");
}
