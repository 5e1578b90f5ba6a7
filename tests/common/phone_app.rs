//! A phone app for tests: it receives pushes in memory and signs its answers with a key of
//! its own, as `examples/phone.rs` does over HTTP.

use std::fmt;
use std::sync::{Arc, Mutex};

use data_encoding::BASE64URL_NOPAD;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};
use tower_otp::clock::Timestamp;
use tower_otp::delivery::SendError;
use tower_otp::push::{ApprovalId, Decision, PushMessage, PushSender, answer_message};

#[derive(Clone)]
pub struct PhoneApp {
    key: Arc<SigningKey>,
    received: Arc<Mutex<Vec<PushMessage>>>,
}

impl fmt::Debug for PhoneApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PhoneApp")
    }
}

impl Default for PhoneApp {
    fn default() -> Self {
        PhoneApp::new()
    }
}

#[async_trait::async_trait]
impl PushSender for PhoneApp {
    async fn push(&self, message: &PushMessage) -> Result<(), SendError> {
        self.received.lock().unwrap().push(message.clone());
        Ok(())
    }
}

impl PhoneApp {
    pub fn new() -> PhoneApp {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).unwrap();
        PhoneApp {
            key: Arc::new(SigningKey::from_bytes(&seed)),
            received: Arc::default(),
        }
    }

    /// The app's public key, as enrolment takes it.
    pub fn public_key(&self) -> String {
        BASE64URL_NOPAD.encode(self.key.verifying_key().as_bytes())
    }

    /// The pushes received so far.
    pub fn received(&self) -> Vec<PushMessage> {
        self.received.lock().unwrap().clone()
    }

    /// The last push received.
    pub fn last(&self) -> PushMessage {
        self.received().pop().expect("a push was received")
    }

    /// The body of `POST approvals/{id}/answer`, signed by this app at `at`.
    pub fn answer(&self, id: &str, decision: Decision, number: Option<u8>, at: Timestamp) -> Value {
        let (approval, _) = ApprovalId::parse(id).expect("an approval id");
        let signature = self
            .key
            .sign(&answer_message(&approval, decision, number, at));
        json!({
            "decision": decision.as_str(),
            "number": number,
            "timestamp": at.as_millis(),
            "signature": BASE64URL_NOPAD.encode(&signature.to_bytes()),
        })
    }
}

impl PhoneApp {
    /// This app's signed answer to approval `id` at `at`, as the engine takes it.
    pub fn signed(
        &self,
        id: &str,
        decision: Decision,
        number: Option<u8>,
        at: Timestamp,
    ) -> tower_otp::push::SignedAnswer {
        let body = self.answer(id, decision, number, at);
        tower_otp::push::SignedAnswer::new(
            decision,
            number,
            at,
            body["signature"].as_str().unwrap(),
        )
        .unwrap()
    }
}
