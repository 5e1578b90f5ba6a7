//! Security keys through the JSON API, with software authenticators: register, sign out,
//! verify, list, remove; a key that never registered is refused. On the MemoryStore and on
//! a RedisStore.

mod common;

use serde_json::{Value, json};

use common::api_harness::{Backend, Client, Harness, SoftKey, USER};

/// Registers `key` for the user from `client`'s session; returns the new device.
async fn register(client: &mut Client, key: &mut SoftKey, name: &str) -> Value {
    let options = client
        .post("/2fa/webauthn/register/begin", json!({"name": name}))
        .await;
    assert_eq!(options.status, 200, "{:?}", options.json);
    let answer = key.register(&options.json);
    let done = client
        .post(
            "/2fa/webauthn/register/finish",
            json!({"credential": answer}),
        )
        .await;
    assert_eq!(done.status, 200, "{:?}", done.json);
    done.json
}

/// Verifies `client`'s session with `key`: the answer.
async fn verify(client: &mut Client, key: &mut SoftKey) -> common::api_harness::Reply {
    let options = client.post("/2fa/webauthn/verify/begin", json!({})).await;
    assert_eq!(options.status, 200, "{:?}", options.json);
    let answer = key.sign(&options.json);
    client
        .post("/2fa/webauthn/verify/finish", json!({"credential": answer}))
        .await
}

async fn a_key_registers_verifies_and_is_removed(backend: Backend) {
    let h = Harness::start(&backend).await;
    let mut browser = h.client();
    browser.login(USER).await;
    let mut key = SoftKey::new();
    let registered = register(&mut browser, &mut key, "YubiKey").await;
    // The user's first factor verifies the session that registered it.
    assert_eq!(registered["verified"], true);
    assert_eq!(registered["device"]["kind"], "webauthn");
    assert!(browser.is_verified().await);

    // Signed out and in again: the key verifies the new login.
    browser.post("/2fa/logout", json!({})).await;
    browser.login(USER).await;
    assert!(!browser.is_verified().await);
    h.later(std::time::Duration::from_secs(5));
    let verified = verify(&mut browser, &mut key).await;
    assert_eq!(verified.status, 200, "{:?}", verified.json);
    assert_eq!(verified.json["device_id"], registered["device"]["id"]);
    assert!(browser.is_verified().await);
    assert_eq!(browser.state().await.as_deref(), Some("fresh"));

    // The device list shows its name, creation and last use.
    let devices = browser.get("/2fa/devices").await.json["devices"].clone();
    let listed = &devices[0];
    assert_eq!(listed["name"], "YubiKey");
    assert_eq!(listed["method"], "webauthn");
    assert!(listed["created_at"].as_u64().unwrap() > 0);
    assert_eq!(
        listed["last_used_at"].as_u64().unwrap(),
        h.two_factor.now().as_millis()
    );

    // A key that never registered for this user is refused: here one of another user's,
    // answering as if the page had offered it.
    let mut stranger = SoftKey::new();
    let mut bob = h.client();
    bob.login("bob").await;
    register(&mut bob, &mut stranger, "Bob's key").await;
    let bobs_key = credential_id(&h, "bob").await;
    let mut other = h.client();
    other.login(USER).await;
    let mut options = other
        .post("/2fa/webauthn/verify/begin", json!({}))
        .await
        .json;
    options["publicKey"]["allowCredentials"] = json!([{"type": "public-key", "id": bobs_key}]);
    let refused = other
        .post(
            "/2fa/webauthn/verify/finish",
            json!({"credential": stranger.sign(&options)}),
        )
        .await;
    assert_eq!(refused.outcome(), (401, "webauthn_refused".to_owned()));
    assert!(!other.is_verified().await);

    // Removed as any device is.
    let id = registered["device"]["id"].as_str().unwrap();
    let removed = browser.delete(&format!("/2fa/devices/{id}")).await;
    assert_eq!(removed.status, 204, "{:?}", removed.json);
    let mut later = h.client();
    later.login(USER).await;
    let none = later.post("/2fa/webauthn/verify/begin", json!({})).await;
    assert_eq!(none.outcome(), (409, "not_configured".to_owned()));
}

async fn malformed_answers_are_refused_cleanly(backend: Backend) {
    let h = Harness::start(&backend).await;
    let mut browser = h.client();
    browser.login(USER).await;
    register(&mut browser, &mut SoftKey::new(), "Key").await;
    for body in [
        json!({}),
        json!({"credential": 1}),
        json!({"credential": {"id": "x", "rawId": "!!", "response": {}, "type": "public-key"}}),
    ] {
        let reply = browser.post("/2fa/webauthn/verify/finish", body).await;
        assert_eq!(reply.status, 400, "{:?}", reply.json);
        assert_eq!(reply.error(), "invalid_request");
    }
    // A well-formed answer with no ceremony begun.
    let missing = browser
        .post(
            "/2fa/webauthn/register/finish",
            json!({"credential": registration_shape()}),
        )
        .await;
    assert_eq!(
        missing.outcome(),
        (409, "webauthn_ceremony_missing".to_owned())
    );
}

/// The credential id of `user`'s security key.
async fn credential_id(h: &Harness, user: &str) -> String {
    let user = tower_otp::UserId::new(user).unwrap();
    let devices = h.two_factor.devices(&user).await.unwrap();
    devices
        .iter()
        .find_map(|device| match &device.config {
            tower_otp::device::DeviceConfig::WebAuthn { credential_id, .. } => {
                Some(credential_id.clone())
            }
            _ => None,
        })
        .unwrap()
}

/// A registration answer with the right fields but nothing valid in them.
fn registration_shape() -> Value {
    json!({"id": "AA", "rawId": "AA", "type": "public-key",
           "response": {"attestationObject": "AA", "clientDataJSON": "AA"}})
}

#[tokio::test]
async fn a_key_registers_verifies_and_is_removed_on_memory() {
    a_key_registers_verifies_and_is_removed(Backend::Memory).await;
}

#[tokio::test]
async fn a_key_registers_verifies_and_is_removed_on_redis() {
    a_key_registers_verifies_and_is_removed(common::api_harness::shared_redis()).await;
}

#[tokio::test]
async fn malformed_answers_are_refused_cleanly_on_memory() {
    malformed_answers_are_refused_cleanly(Backend::Memory).await;
}
