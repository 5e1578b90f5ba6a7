//! Push approvals on every store, written once against the engine over two clients of one
//! store (two application instances) and run against every backend through
//! [`push_conformance_tests!`] (see `tests/store_conformance.rs`): single use under 200
//! concurrent answers, expiry, wrong numbers, bad signatures, replays, other logins and the
//! fatigue limits.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use data_encoding::BASE64URL_NOPAD;
use ed25519_dalek::{Signer, SigningKey};
use tower_otp::clock::{Clock, ManualClock, SystemClock, Timestamp};
use tower_otp::delivery::SendError;
use tower_otp::device::{Device, Error, UserId};
use tower_otp::push::{
    ApprovalContext, ApprovalCreate, ApprovalError, ApprovalId, ApprovalRecord, ApprovalRequested,
    ApprovalStatus, ApprovalUse, Decision, PushMessage, PushPolicy, PushSender, SignedAnswer,
    answer_message,
};
use tower_otp::store::{LoginBinding, RateLimit, SharedStore};
use tower_otp::{ServerKey, TwoFactor};

/// Keeps every push, as a phone would receive it.
#[derive(Clone, Debug, Default)]
struct Phone {
    received: Arc<Mutex<Vec<PushMessage>>>,
}

#[async_trait::async_trait]
impl PushSender for Phone {
    async fn push(&self, message: &PushMessage) -> Result<(), SendError> {
        self.received.lock().unwrap().push(message.clone());
        Ok(())
    }
}

/// Two instances of the engine over two clients of one store, on one manual clock, with a
/// phone app's key and the events both emitted.
struct Rig {
    first: TwoFactor,
    second: TwoFactor,
    clock: ManualClock,
    phone: Phone,
    key: SigningKey,
    events: Arc<Mutex<Vec<String>>>,
}

fn signing_key() -> SigningKey {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).unwrap();
    SigningKey::from_bytes(&seed)
}

fn public_key(key: &SigningKey) -> String {
    BASE64URL_NOPAD.encode(key.verifying_key().as_bytes())
}

/// A lenient answer limit: the races send hundreds of answers.
fn test_policy() -> PushPolicy {
    PushPolicy::default().with_answers(RateLimit::new(1_000, Duration::from_secs(600)))
}

impl Rig {
    async fn new((one, two): (SharedStore, SharedStore), policy: PushPolicy) -> Rig {
        let server_key = ServerKey::generate();
        let clock = ManualClock::new(SystemClock.now());
        let phone = Phone::default();
        let events = Arc::new(Mutex::new(Vec::new()));
        let engine = |store: SharedStore| {
            let engine = TwoFactor::from_shared(store, server_key.clone())
                .with_clock(clock.clone())
                .with_push_sender(phone.clone())
                .with_push_policy(policy);
            let seen = events.clone();
            engine
                .events()
                .on(move |event| seen.lock().unwrap().push(event.kind.name().to_owned()));
            engine
        };
        Rig {
            first: engine(one),
            second: engine(two),
            clock,
            phone,
            key: signing_key(),
            events,
        }
    }

    /// A user with a confirmed push device of `self.key`.
    async fn user_with_phone(&self, name: &str) -> (UserId, Device) {
        let user = UserId::new(name).unwrap();
        let device = self
            .first
            .enroll_push(&user, "Phone", "token-1", &public_key(&self.key))
            .await
            .unwrap();
        let requested = self
            .first
            .request_approval(&user, &device.id)
            .await
            .unwrap();
        let answer = self.sign(&requested.id, Decision::Approve, Some(requested.number));
        self.second
            .answer_approval(requested.id.as_str(), &answer)
            .await
            .unwrap();
        match self
            .first
            .use_approval(&user, requested.id.as_str())
            .await
            .unwrap()
        {
            ApprovalUse::Confirmed(confirmed) => assert!(confirmed.first),
            other => panic!("not confirmed: {other:?}"),
        }
        let device = self.first.device(&user, &device.id).await.unwrap().unwrap();
        assert!(device.confirmed);
        (user, device)
    }

    /// Sends an approval for `user`'s login to `device`, through the first instance.
    async fn push(&self, user: &UserId, device: &Device) -> ApprovalRequested {
        self.first.request_approval(user, &device.id).await.unwrap()
    }

    /// The phone's answer to `requested` with the right number, through the second instance.
    async fn answer(
        &self,
        requested: &ApprovalRequested,
        decision: Decision,
    ) -> Result<ApprovalRecord, Error> {
        let answer = self.sign(&requested.id, decision, Some(requested.number));
        self.second
            .answer_approval(requested.id.as_str(), &answer)
            .await
    }

    fn sign(&self, id: &ApprovalId, decision: Decision, number: Option<u8>) -> SignedAnswer {
        sign_with(&self.key, id, decision, number, self.clock.now())
    }

    /// The numbers the last push offered.
    fn last_choices(&self) -> [u8; 3] {
        self.phone
            .received
            .lock()
            .unwrap()
            .last()
            .unwrap()
            .choices()
    }

    fn saw(&self, event: &str) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| *e == event)
            .count()
    }
}

fn sign_with(
    key: &SigningKey,
    id: &ApprovalId,
    decision: Decision,
    number: Option<u8>,
    at: Timestamp,
) -> SignedAnswer {
    let signature = key.sign(&answer_message(id, decision, number, at));
    let text = BASE64URL_NOPAD.encode(&signature.to_bytes());
    SignedAnswer::new(decision, number, at, &text).unwrap()
}

/// A new approval id of the user with `tag`, made as the engine makes them.
fn fresh_approval_id(
    tag: &tower_otp::session::UserTag,
) -> (ApprovalId, tower_otp::push::ApprovalKey) {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).unwrap();
    let text = format!("{}.{}", tag.as_str(), BASE64URL_NOPAD.encode(&secret));
    ApprovalId::parse(&text).unwrap()
}

fn approval_error(result: Result<impl std::fmt::Debug, Error>) -> ApprovalError {
    match result {
        Err(Error::Approval(error)) => error,
        other => panic!("expected an approval error, got {other:?}"),
    }
}

/// Generates one `#[tokio::test]` per case. `$clients` is an expression of type
/// `impl Fn() -> impl Future<Output = (SharedStore, SharedStore)>` giving two clients of one
/// fresh namespace.
#[macro_export]
macro_rules! push_conformance_tests {
    ($clients:expr) => {
        $crate::push_conformance_tests!(@tests $clients;
            race_two_hundred_answers_from_two_clients_settle_once,
            race_two_hundred_uses_verify_once,
            approvals_expire_unanswered,
            a_wrong_number_denies,
            a_bad_signature_changes_nothing,
            an_old_signed_answer_cannot_be_replayed,
            an_approval_is_only_its_own_logins,
            one_live_approval_per_user,
            requests_are_limited_per_window,
            a_report_blocks_pushes_for_a_while,
        );
    };
    (@tests $clients:expr; $($name:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                $crate::common::push_conformance::$name(($clients)().await).await;
            }
        )*
    };
}

pub async fn race_two_hundred_answers_from_two_clients_settle_once(
    clients: (SharedStore, SharedStore),
) {
    let rig = Rig::new(clients, test_policy()).await;
    let (alice, device) = rig.user_with_phone("alice").await;
    let requested = rig.push(&alice, &device).await;
    let number = requested.number;
    let wrong = rig
        .last_choices()
        .into_iter()
        .find(|n| *n != number)
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let engine = if i % 2 == 0 {
            rig.first.clone()
        } else {
            rig.second.clone()
        };
        // Right and wrong numbers, approvals and denials: one answer counts, whatever it is.
        let (decision, chosen) = match i % 4 {
            0 | 1 => (Decision::Approve, number),
            2 => (Decision::Approve, wrong),
            _ => (Decision::Deny, number),
        };
        let answer = rig.sign(&requested.id, decision, Some(chosen));
        let id = requested.id.as_str().to_owned();
        tasks.push(tokio::spawn(async move {
            engine.answer_approval(&id, &answer).await
        }));
    }
    let mut settled = Vec::new();
    let mut refused = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(record) => settled.push(record.status),
            Err(Error::Approval(ApprovalError::WrongNumber)) => {
                settled.push(ApprovalStatus::Denied)
            }
            Err(Error::Approval(ApprovalError::AlreadyAnswered)) => refused += 1,
            Err(other) => panic!("unexpected: {other:?}"),
        }
    }
    assert_eq!(settled.len(), 1, "{settled:?}");
    assert_eq!(refused, 199);
    let stored = rig
        .second
        .store()
        .get_approval(&ApprovalId::parse(requested.id.as_str()).unwrap().1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status, settled[0]);
    assert_eq!(
        rig.saw("approval_approved") + rig.saw("approval_denied"),
        2,
        "the enrolment's approval and this one"
    );
}

pub async fn race_two_hundred_uses_verify_once(clients: (SharedStore, SharedStore)) {
    let rig = Rig::new(clients, test_policy()).await;
    let (alice, device) = rig.user_with_phone("alice").await;
    let requested = rig.push(&alice, &device).await;
    let answer = rig.sign(&requested.id, Decision::Approve, Some(requested.number));
    let approved = rig
        .first
        .answer_approval(requested.id.as_str(), &answer)
        .await
        .unwrap();
    assert_eq!(approved.status, ApprovalStatus::Approved);
    let verified_before = rig.saw("user_verified");
    let mut tasks = Vec::new();
    for i in 0..200 {
        let engine = if i % 2 == 0 {
            rig.first.clone()
        } else {
            rig.second.clone()
        };
        let (user, id) = (alice.clone(), requested.id.as_str().to_owned());
        tasks.push(tokio::spawn(async move {
            engine.use_approval(&user, &id).await
        }));
    }
    let mut verified = 0;
    for task in tasks {
        match task.await.unwrap().unwrap() {
            ApprovalUse::Verified(verification) => {
                assert_eq!(verification.device.id, device.id);
                verified += 1;
            }
            ApprovalUse::NotApproved(record) => assert_eq!(record.status, ApprovalStatus::Used),
            other => panic!("unexpected: {other:?}"),
        }
    }
    assert_eq!(verified, 1);
    assert_eq!(rig.saw("user_verified"), verified_before + 1);
}

pub async fn approvals_expire_unanswered(clients: (SharedStore, SharedStore)) {
    let rig = Rig::new(clients, test_policy()).await;
    let (alice, device) = rig.user_with_phone("alice").await;
    let requested = rig.push(&alice, &device).await;
    assert_eq!(
        requested.expires_at,
        rig.clock.now().saturating_add(Duration::from_secs(120))
    );
    rig.clock.advance(Duration::from_secs(120));
    let late = rig.sign(&requested.id, Decision::Approve, Some(requested.number));
    assert_eq!(
        approval_error(
            rig.second
                .answer_approval(requested.id.as_str(), &late)
                .await
        ),
        ApprovalError::Expired
    );
    let record = rig
        .first
        .approval(&alice, requested.id.as_str())
        .await
        .unwrap();
    assert_eq!(record.status, ApprovalStatus::Expired);
    match rig
        .first
        .use_approval(&alice, requested.id.as_str())
        .await
        .unwrap()
    {
        ApprovalUse::NotApproved(record) => assert_eq!(record.status, ApprovalStatus::Expired),
        other => panic!("unexpected: {other:?}"),
    }
    assert_eq!(rig.saw("approval_expired"), 1, "announced once");
    // The expired approval no longer holds the user's live slot.
    rig.push(&alice, &device).await;
}

pub async fn a_wrong_number_denies(clients: (SharedStore, SharedStore)) {
    let rig = Rig::new(clients, test_policy()).await;
    let (alice, device) = rig.user_with_phone("alice").await;
    let requested = rig.push(&alice, &device).await;
    let choices = rig.last_choices();
    assert!(choices.contains(&requested.number));
    let wrong = choices
        .into_iter()
        .find(|n| *n != requested.number)
        .unwrap();
    let answer = rig.sign(&requested.id, Decision::Approve, Some(wrong));
    assert_eq!(
        approval_error(
            rig.second
                .answer_approval(requested.id.as_str(), &answer)
                .await
        ),
        ApprovalError::WrongNumber
    );
    // Denied for good: the right number no longer helps, and nothing verifies.
    let right = rig.sign(&requested.id, Decision::Approve, Some(requested.number));
    assert_eq!(
        approval_error(
            rig.first
                .answer_approval(requested.id.as_str(), &right)
                .await
        ),
        ApprovalError::AlreadyAnswered
    );
    match rig
        .first
        .use_approval(&alice, requested.id.as_str())
        .await
        .unwrap()
    {
        ApprovalUse::NotApproved(record) => assert_eq!(record.status, ApprovalStatus::Denied),
        other => panic!("unexpected: {other:?}"),
    }
    // An approval without a number is denied too.
    let requested = rig.push(&alice, &device).await;
    let blind = rig.sign(&requested.id, Decision::Approve, None);
    assert_eq!(
        approval_error(
            rig.second
                .answer_approval(requested.id.as_str(), &blind)
                .await
        ),
        ApprovalError::WrongNumber
    );
    assert_eq!(rig.saw("approval_denied"), 2);
}

pub async fn a_bad_signature_changes_nothing(clients: (SharedStore, SharedStore)) {
    let rig = Rig::new(clients, test_policy()).await;
    let (alice, device) = rig.user_with_phone("alice").await;
    let requested = rig.push(&alice, &device).await;
    let id = requested.id.as_str();
    let other_key = signing_key();
    let now = rig.clock.now();
    let forged = sign_with(
        &other_key,
        &requested.id,
        Decision::Approve,
        Some(requested.number),
        now,
    );
    assert_eq!(
        approval_error(rig.second.answer_approval(id, &forged).await),
        ApprovalError::BadSignature
    );
    // A signature over other fields than those sent.
    let mut altered = rig.sign(&requested.id, Decision::Deny, Some(requested.number));
    altered.decision = Decision::Approve;
    assert_eq!(
        approval_error(rig.second.answer_approval(id, &altered).await),
        ApprovalError::BadSignature
    );
    let zero = SignedAnswer::new(
        Decision::Approve,
        Some(requested.number),
        now,
        &BASE64URL_NOPAD.encode(&[0u8; 64]),
    )
    .unwrap();
    assert_eq!(
        approval_error(rig.second.answer_approval(id, &zero).await),
        ApprovalError::BadSignature
    );
    let record = rig.first.approval(&alice, id).await.unwrap();
    assert_eq!(record.status, ApprovalStatus::Pending);
    let answer = rig.sign(&requested.id, Decision::Approve, Some(requested.number));
    let settled = rig.first.answer_approval(id, &answer).await.unwrap();
    assert_eq!(settled.status, ApprovalStatus::Approved);
}

pub async fn an_old_signed_answer_cannot_be_replayed(clients: (SharedStore, SharedStore)) {
    let rig = Rig::new(clients, test_policy()).await;
    let (alice, device) = rig.user_with_phone("alice").await;
    let first = rig.push(&alice, &device).await;
    let old = rig.sign(&first.id, Decision::Approve, Some(first.number));
    rig.second
        .answer_approval(first.id.as_str(), &old)
        .await
        .unwrap();
    assert!(matches!(
        rig.first
            .use_approval(&alice, first.id.as_str())
            .await
            .unwrap(),
        ApprovalUse::Verified(_)
    ));
    // Again for the same approval: it counts once.
    assert_eq!(
        approval_error(rig.second.answer_approval(first.id.as_str(), &old).await),
        ApprovalError::AlreadyAnswered
    );
    // For the next approval: the signature names the first one's id.
    rig.clock.advance(Duration::from_secs(5));
    let next = rig.push(&alice, &device).await;
    let replayed = SignedAnswer {
        number: Some(next.number),
        ..old.clone()
    };
    assert_eq!(
        approval_error(rig.second.answer_approval(next.id.as_str(), &old).await),
        ApprovalError::BadSignature
    );
    assert_eq!(
        approval_error(
            rig.second
                .answer_approval(next.id.as_str(), &replayed)
                .await
        ),
        ApprovalError::BadSignature
    );
    // A valid signature with a time too far from now, either way.
    for at in [
        rig.clock.now().saturating_sub(Duration::from_secs(61)),
        rig.clock.now().saturating_add(Duration::from_secs(61)),
    ] {
        let stale = sign_with(&rig.key, &next.id, Decision::Approve, Some(next.number), at);
        assert_eq!(
            approval_error(rig.second.answer_approval(next.id.as_str(), &stale).await),
            ApprovalError::StaleAnswer
        );
    }
    assert_eq!(
        rig.first
            .approval(&alice, next.id.as_str())
            .await
            .unwrap()
            .status,
        ApprovalStatus::Pending
    );
}

pub async fn an_approval_is_only_its_own_logins(clients: (SharedStore, SharedStore)) {
    let rig = Rig::new(clients, test_policy()).await;
    let (alice, device) = rig.user_with_phone("alice").await;
    let bob_key = signing_key();
    let bob = UserId::new("bob").unwrap();
    let bob_device = rig
        .first
        .enroll_push(&bob, "Phone", "token-2", &public_key(&bob_key))
        .await
        .unwrap();
    let requested = rig.push(&alice, &device).await;
    let id = requested.id.as_str();
    // Bob's phone cannot answer Alice's approval, nor can Bob read or use it.
    let bobs = sign_with(
        &bob_key,
        &requested.id,
        Decision::Approve,
        Some(requested.number),
        rig.clock.now(),
    );
    assert_eq!(
        approval_error(rig.second.answer_approval(id, &bobs).await),
        ApprovalError::BadSignature
    );
    assert_eq!(
        approval_error(rig.first.approval(&bob, id).await),
        ApprovalError::NotFound
    );
    assert_eq!(
        approval_error(rig.first.use_approval(&bob, id).await),
        ApprovalError::NotFound
    );
    // Alice's approval cannot be sent to Bob's device, nor Bob's to Alice's.
    assert!(matches!(
        rig.first.request_approval(&alice, &bob_device.id).await,
        Err(Error::DeviceNotFound)
    ));
    // In the store, only the login it is bound to uses an approval, once.
    let store = rig.first.store();
    let (id, key) = fresh_approval_id(&store.user_tag(&alice));
    let now = rig.clock.now();
    let mine = LoginBinding::new("login-one");
    let record = ApprovalRecord {
        user: alice.clone(),
        device: device.id.clone(),
        binding: Some(mine.clone()),
        number: 42,
        created_at: now,
        expires_at: now.saturating_add(Duration::from_secs(120)),
        context: ApprovalContext::default(),
        status: ApprovalStatus::Pending,
        answered_at: None,
    };
    // The user's live approval is the one requested above: answer it first.
    rig.answer(&requested, Decision::Deny).await.unwrap();
    let retain = now.saturating_add(Duration::from_secs(240));
    assert_eq!(
        store.create_approval(&key, &record, retain).await.unwrap(),
        ApprovalCreate::Created
    );
    assert!(
        store.create_approval(&key, &record, retain).await.is_err(),
        "exists"
    );
    let other_store = rig.second.store();
    let settled = other_store
        .settle_approval(&key, ApprovalStatus::Approved, None, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(settled.status, ApprovalStatus::Approved);
    assert_eq!(settled.answered_at.map(|t| t >= now), Some(true));
    let theirs = LoginBinding::new("login-two");
    assert!(
        other_store
            .use_approval(&key, Some(&theirs))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        other_store
            .use_approval(&key, None)
            .await
            .unwrap()
            .is_none()
    );
    let used = store
        .use_approval(&key, Some(&mine))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(used.status, ApprovalStatus::Used);
    assert!(
        other_store
            .use_approval(&key, Some(&mine))
            .await
            .unwrap()
            .is_none()
    );
    drop(id);
}

pub async fn one_live_approval_per_user(clients: (SharedStore, SharedStore)) {
    let rig = Rig::new(clients, test_policy()).await;
    let (alice, device) = rig.user_with_phone("alice").await;
    let requested = rig.push(&alice, &device).await;
    match approval_error(rig.second.request_approval(&alice, &device.id).await) {
        ApprovalError::Busy { until, .. } => assert_eq!(until, requested.expires_at),
        other => panic!("unexpected: {other:?}"),
    }
    // Concurrent requests: at most one is sent.
    rig.answer(&requested, Decision::Deny).await.unwrap();
    let sent_before = rig.phone.received.lock().unwrap().len();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let engine = if i % 2 == 0 {
            rig.first.clone()
        } else {
            rig.second.clone()
        };
        let (user, id) = (alice.clone(), device.id.clone());
        tasks.push(tokio::spawn(async move {
            engine.request_approval(&user, &id).await
        }));
    }
    let mut sent = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => sent += 1,
            Err(Error::Approval(ApprovalError::Busy { .. } | ApprovalError::Limited { .. })) => {}
            Err(other) => panic!("unexpected: {other:?}"),
        }
    }
    assert_eq!(sent, 1);
    assert_eq!(rig.phone.received.lock().unwrap().len(), sent_before + 1);
}

pub async fn requests_are_limited_per_window(clients: (SharedStore, SharedStore)) {
    let rig = Rig::new(clients, test_policy()).await;
    let (alice, device) = rig.user_with_phone("alice").await;
    // The enrolment's approval counted once: two more within ten minutes.
    for _ in 0..2 {
        rig.clock.advance(Duration::from_secs(1));
        let requested = rig.push(&alice, &device).await;
        rig.answer(&requested, Decision::Deny).await.unwrap();
    }
    rig.clock.advance(Duration::from_secs(1));
    match approval_error(rig.second.request_approval(&alice, &device.id).await) {
        ApprovalError::Limited { until, .. } => assert!(until > rig.clock.now()),
        other => panic!("unexpected: {other:?}"),
    }
    rig.clock.advance(Duration::from_secs(600));
    rig.push(&alice, &device).await;
    assert_eq!(rig.saw("approval_requested"), 4);
}

pub async fn a_report_blocks_pushes_for_a_while(clients: (SharedStore, SharedStore)) {
    let block = Duration::from_secs(900);
    let rig = Rig::new(clients, test_policy().with_report_block(block)).await;
    let (alice, device) = rig.user_with_phone("alice").await;
    let requested = rig.push(&alice, &device).await;
    let report = rig.sign(&requested.id, Decision::Report, None);
    let reported = rig
        .second
        .answer_approval(requested.id.as_str(), &report)
        .await
        .unwrap();
    assert_eq!(reported.status, ApprovalStatus::Reported);
    assert_eq!(rig.saw("approval_reported"), 1);
    assert_eq!(
        rig.first
            .approval(&alice, requested.id.as_str())
            .await
            .unwrap()
            .status,
        ApprovalStatus::Reported
    );
    let reported_at = rig.clock.now();
    rig.clock.advance(Duration::from_secs(600));
    match approval_error(rig.first.request_approval(&alice, &device.id).await) {
        ApprovalError::Blocked { until, .. } => {
            assert_eq!(until, reported_at.saturating_add(block))
        }
        other => panic!("unexpected: {other:?}"),
    }
    rig.clock.advance(Duration::from_secs(301));
    rig.second
        .request_approval(&alice, &device.id)
        .await
        .unwrap();
}
