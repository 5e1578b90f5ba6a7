//! Push approvals through the JSON API: enrolment confirmed by a first signed answer, the
//! login's request and poll, the phone's answer, and the refusals with their stable codes.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tower_otp::clock::Clock;
use tower_otp::push::Decision;

use common::api_harness::{Backend, Client, Harness, USER};

/// A user whose first device is a push device, enrolled through the API by `browser`, and
/// the device's id.
async fn enrol_push(h: &Harness, browser: &mut Client) -> String {
    let added = browser
        .post(
            "/2fa/devices",
            json!({"method": "push", "name": "Phone",
                   "config": {"token": "provider-token", "public_key": h.phone.public_key()}}),
        )
        .await;
    assert_eq!(added.status, 201, "{:?}", added.json);
    let device = added.json["device"]["id"].as_str().unwrap().to_owned();
    assert_eq!(added.json["device"]["confirmed"], false);
    let approval = &added.json["approval"];
    let id = approval["id"].as_str().unwrap();
    assert_eq!(approval["uuid"], approval["id"]);
    let number = approval["number"].as_u64().unwrap() as u8;
    let push = h.phone.last();
    assert!(
        push.choices().contains(&number),
        "the phone offers the number"
    );
    assert_eq!(push.approval().as_str(), id);
    assert_eq!(push.device_token(), "provider-token");
    let body = push.body();
    assert_eq!(body["requested_at"], h.clock.now().as_millis());
    assert_eq!(body["context"]["application"], "Matrix");
    assert!(body.get("number").is_none(), "{body}");
    let answered = h
        .client()
        .post(
            &format!("/2fa/approvals/{id}/answer"),
            h.phone
                .answer(id, Decision::Approve, Some(number), h.clock.now()),
        )
        .await;
    assert_eq!(answered.status, 200, "{:?}", answered.json);
    assert_eq!(answered.json["status"], "approved");
    let polled = browser.get(&format!("/2fa/approvals/{id}")).await;
    assert_eq!(polled.status, 200, "{:?}", polled.json);
    assert_eq!(polled.json["status"], "used");
    assert_eq!(polled.json["verified"], true, "the first device verifies");
    assert_eq!(polled.json["device"]["confirmed"], true);
    device
}

/// Sends a push for `browser`'s login: the approval's id and number.
async fn request(browser: &mut Client, device: &str) -> (String, u8) {
    let requested = browser
        .post("/2fa/challenges", json!({"device_id": device}))
        .await;
    assert_eq!(requested.status, 200, "{:?}", requested.json);
    assert_eq!(requested.json["kind"], "push");
    assert_eq!(requested.json["uuid"], requested.json["id"]);
    (
        requested.json["id"].as_str().unwrap().to_owned(),
        requested.json["number"].as_u64().unwrap() as u8,
    )
}

async fn answer(h: &Harness, id: &str, decision: Decision, number: Option<u8>) -> (u16, String) {
    let body = h.phone.answer(id, decision, number, h.clock.now());
    h.client()
        .post(&format!("/2fa/approvals/{id}/answer"), body)
        .await
        .outcome()
}

#[tokio::test]
async fn push_is_offered_enrolled_and_verifies_a_login_once() {
    let h = Harness::start(&Backend::Memory).await;
    let mut browser = h.client();
    browser.login(USER).await;
    let methods = browser.get("/2fa/methods").await;
    assert!(
        methods.json["methods"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["key"] == "push"),
        "{:?}",
        methods.json
    );
    let device = enrol_push(&h, &mut browser).await;
    let status = browser.get("/2fa/status").await;
    assert_eq!(status.json["device"]["kind"], "push");

    // A new login: the password, then the phone.
    let mut login = h.client();
    login.login(USER).await;
    assert!(!login.is_verified().await);
    h.later(Duration::from_secs(1));
    let (id, number) = request(&mut login, &device).await;
    let pending = login.get(&format!("/2fa/approvals/{id}")).await;
    assert_eq!(pending.json["status"], "pending");
    assert_eq!(pending.json["verified"], false);
    assert_eq!(
        answer(&h, &id, Decision::Approve, Some(number)).await,
        (200, String::new())
    );
    // Another login of the same user cannot read it, let alone use it.
    let mut other = h.client();
    other.login(USER).await;
    assert_eq!(
        other.get(&format!("/2fa/approvals/{id}")).await.outcome(),
        (404, "approval_not_found".into())
    );
    assert_eq!(
        h.client()
            .get(&format!("/2fa/approvals/{id}"))
            .await
            .outcome(),
        (401, "not_authenticated".into())
    );
    let used = login.get(&format!("/2fa/approvals/{id}")).await;
    assert_eq!(
        (
            used.json["status"].as_str(),
            used.json["verified"].as_bool()
        ),
        (Some("used"), Some(true))
    );
    assert!(login.is_verified().await);
    assert!(!other.is_verified().await);
    // Used once. The verification moved the login to a new session id, and the approval
    // belongs to the one that asked: it is gone for every session now. The answer cannot
    // come again either.
    let again = login.get(&format!("/2fa/approvals/{id}")).await;
    assert_eq!(again.outcome(), (404, "approval_not_found".into()));
    assert_eq!(
        answer(&h, &id, Decision::Approve, Some(number)).await,
        (409, "approval_answered".into())
    );
}

#[tokio::test]
async fn refused_answers_have_stable_codes() {
    let h = Harness::start(&Backend::Memory).await;
    let mut browser = h.client();
    browser.login(USER).await;
    let device = enrol_push(&h, &mut browser).await;
    let mut login = h.client();
    login.login(USER).await;
    let (id, number) = request(&mut login, &device).await;
    // One live approval per user.
    let busy = login
        .post("/2fa/challenges", json!({"device_id": device}))
        .await;
    assert_eq!(busy.outcome(), (429, "approval_pending".into()));
    let path = format!("/2fa/approvals/{id}/answer");
    let mut phone = h.client();

    let mut forged = h
        .phone
        .answer(&id, Decision::Approve, Some(number), h.clock.now());
    forged["signature"] = json!(data_encoding::BASE64URL_NOPAD.encode(&[1u8; 64]));
    assert_eq!(
        phone.post(&path, forged).await.outcome(),
        (401, "bad_signature".into())
    );
    let mut short = h
        .phone
        .answer(&id, Decision::Approve, Some(number), h.clock.now());
    short["signature"] = json!("AAAA");
    assert_eq!(
        phone.post(&path, short).await.outcome(),
        (400, "malformed_answer".into())
    );
    let stale = h.phone.answer(
        &id,
        Decision::Approve,
        Some(number),
        h.clock.now().saturating_sub(Duration::from_secs(300)),
    );
    assert_eq!(
        phone.post(&path, stale).await.outcome(),
        (401, "stale_answer".into())
    );
    let unknown = format!("/2fa/approvals/{}/answer", "x".repeat(10));
    let body = h.phone.answer(&id, Decision::Deny, None, h.clock.now());
    assert_eq!(
        phone.post(&unknown, body.clone()).await.outcome(),
        (404, "approval_not_found".into())
    );
    let mut odd = body.clone();
    odd["decision"] = json!("maybe");
    assert_eq!(phone.post(&path, odd).await.outcome().0, 400);
    let not_json = phone
        .send_raw(
            "POST",
            &path,
            &[("content-type", "text/plain")],
            &body.to_string(),
        )
        .await;
    assert_eq!(not_json.outcome(), (415, "unsupported_media_type".into()));
    let wait = login.get(&format!("/2fa/approvals/{id}?wait=31")).await;
    assert_eq!(wait.outcome(), (400, "invalid_request".into()));
    // Still pending after all of that; a wrong number ends it as denied.
    let wrong = h
        .phone
        .last()
        .choices()
        .into_iter()
        .find(|n| *n != number)
        .unwrap();
    assert_eq!(
        answer(&h, &id, Decision::Approve, Some(wrong)).await,
        (403, "wrong_number".into())
    );
    let denied = login.get(&format!("/2fa/approvals/{id}")).await;
    assert_eq!(
        (
            denied.json["status"].as_str(),
            denied.json["verified"].as_bool()
        ),
        (Some("denied"), Some(false))
    );
    assert!(!login.is_verified().await);
    // The user's one live approval is settled: another may be sent; one more is over the
    // limit of three in ten minutes (the enrolment's counted).
    let (id, _) = request(&mut login, &device).await;
    assert_eq!(
        answer(&h, &id, Decision::Deny, None).await,
        (200, String::new())
    );
    let limited = login
        .post("/2fa/challenges", json!({"device_id": device}))
        .await;
    assert_eq!(limited.outcome(), (429, "push_limited".into()));
}

#[tokio::test]
async fn the_phone_answers_across_sites_and_a_report_pauses_pushes() {
    let h = Harness::start(&Backend::Memory).await;
    let events = Arc::new(Mutex::new(Vec::<Value>::new()));
    let seen = events.clone();
    h.two_factor.events().on(move |event| {
        seen.lock()
            .unwrap()
            .push(serde_json::to_value(event).unwrap())
    });
    let mut browser = h.client();
    browser.login(USER).await;
    let device = enrol_push(&h, &mut browser).await;
    let mut login = h.client();
    login.login(USER).await;
    let (id, number) = request(&mut login, &device).await;
    // The defence against forged cross-site requests guards cookies; the answer has none
    // and is signed. Other requests from such a page are still refused.
    let cross_site = [
        ("content-type", "application/json"),
        ("origin", "https://elsewhere.example"),
        ("sec-fetch-site", "cross-site"),
    ];
    let refused = login
        .send_raw("POST", "/2fa/logout", &cross_site, "{}")
        .await;
    assert_eq!(refused.outcome(), (403, "cross_site_request".into()));
    let body = h.phone.answer(&id, Decision::Report, None, h.clock.now());
    let reported = h
        .client()
        .send_raw(
            "POST",
            &format!("/2fa/approvals/{id}/answer"),
            &cross_site,
            &body.to_string(),
        )
        .await;
    assert_eq!(reported.status, 200, "{:?}", reported.json);
    assert_eq!(reported.json["status"], "reported");
    let polled = login.get(&format!("/2fa/approvals/{id}")).await;
    assert_eq!(polled.json["status"], "reported");
    let blocked = login
        .post("/2fa/challenges", json!({"device_id": device}))
        .await;
    assert_eq!(blocked.outcome(), (429, "push_blocked".into()));
    let events = events.lock().unwrap();
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    for name in [
        "approval_requested",
        "approval_approved",
        "approval_reported",
    ] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    for event in events
        .iter()
        .filter(|e| e["event"].as_str().unwrap().starts_with("approval_"))
    {
        let text = event.to_string();
        assert!(!text.contains("number") && !text.contains(&id), "{text}");
        assert_eq!(event["device"]["kind"], "push", "{text}");
    }
    let reported = events
        .iter()
        .find(|e| e["event"] == "approval_reported")
        .unwrap();
    assert!(reported["blocked_until"].as_u64().is_some());
    let _ = number;
}

#[tokio::test]
async fn a_long_poll_answers_when_the_phone_does() {
    let h = Harness::start(&Backend::Memory).await;
    let mut browser = h.client();
    browser.login(USER).await;
    let device = enrol_push(&h, &mut browser).await;
    let mut login = h.client();
    login.login(USER).await;
    let (id, number) = request(&mut login, &device).await;
    let poll = {
        let mut login = login.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let reply = login.get(&format!("/2fa/approvals/{id}?wait=20")).await;
            (reply, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        answer(&h, &id, Decision::Approve, Some(number)).await,
        (200, String::new())
    );
    let (reply, took) = poll.await.unwrap();
    assert_eq!(reply.json["status"], "used", "{:?}", reply.json);
    assert_eq!(reply.json["verified"], true);
    assert!(took < Duration::from_secs(5), "{took:?}");
    // Without an answer, a long poll gives up after `wait` seconds, still pending.
    let (id, _) = {
        let mut again = h.client();
        again.login(USER).await;
        let requested = request(&mut again, &device).await;
        let started = std::time::Instant::now();
        let reply = again
            .get(&format!("/2fa/approvals/{}?wait=1", requested.0))
            .await;
        assert_eq!(reply.json["status"], "pending");
        assert!(started.elapsed() >= Duration::from_secs(1));
        requested
    };
    assert_eq!(
        answer(&h, &id, Decision::Deny, None).await,
        (200, String::new())
    );
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn push_verifies_a_login_on_redis() {
    let h = Harness::start(&common::api_harness::shared_redis()).await;
    let mut browser = h.client();
    browser.login(USER).await;
    let device = enrol_push(&h, &mut browser).await;
    let mut login = h.client();
    login.login(USER).await;
    let (id, number) = request(&mut login, &device).await;
    assert_eq!(
        answer(&h, &id, Decision::Approve, Some(number)).await,
        (200, String::new())
    );
    let used = login.get(&format!("/2fa/approvals/{id}")).await;
    assert_eq!(used.json["verified"], true, "{:?}", used.json);
    assert!(login.is_verified().await);
}

/// A user locked out after wrong codes gets no push, and an approval the phone approved
/// before the lock verifies nothing during it.
#[tokio::test]
async fn a_locked_out_user_neither_gets_nor_uses_approvals() {
    use tower_otp::device::ThrottlePolicy;
    use tower_otp::push::ApprovalUse;
    use tower_otp::{MemoryStore, ServerKey, TwoFactor, UserId};

    let phone = common::phone_app::PhoneApp::new();
    let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::generate())
        .with_push_sender(phone.clone())
        .with_throttle_policy(ThrottlePolicy::default().with_user_failure_limit(1));
    let alice = UserId::new(USER).unwrap();
    let device = two_factor
        .enroll_push(&alice, "Phone", "token", &phone.public_key())
        .await
        .unwrap();
    let approve = |id: String, number: u8| {
        let (two_factor, phone) = (two_factor.clone(), phone.clone());
        async move {
            let answer = phone.signed(&id, Decision::Approve, Some(number), two_factor.now());
            two_factor.answer_approval(&id, &answer).await.unwrap();
            id
        }
    };
    let first = two_factor
        .request_approval(&alice, &device.id)
        .await
        .unwrap();
    let id = approve(first.id.as_str().to_owned(), first.number).await;
    assert!(matches!(
        two_factor.use_approval(&alice, &id).await.unwrap(),
        ApprovalUse::Confirmed(_)
    ));
    let before_lock = two_factor
        .request_approval(&alice, &device.id)
        .await
        .unwrap();
    let id = approve(before_lock.id.as_str().to_owned(), before_lock.number).await;
    // A wrong code (a push device takes none) locks the user at a limit of one failure.
    assert!(two_factor.verify_any(&alice, "000000").await.is_err());
    let used = two_factor.use_approval(&alice, &id).await;
    assert_eq!(used.unwrap_err().kind(), "locked");
    let refused = two_factor.request_approval(&alice, &device.id).await;
    assert_eq!(refused.unwrap_err().kind(), "locked");
    two_factor.reset_lockout(&alice).await.unwrap();
    assert!(matches!(
        two_factor.use_approval(&alice, &id).await.unwrap(),
        ApprovalUse::Verified(_)
    ));
}

/// The value of the first `<input name="NAME" ... value="...">` on a page.
#[cfg(feature = "ui")]
fn field(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {page}"))
        + marker.len();
    let end = page[start..].find('"').unwrap() + start;
    page[start..end].to_owned()
}

/// The verification page of the pages (feature `ui`) offers push: a request to the phone,
/// the number to choose there, and the login goes on once the phone approved.
#[cfg(feature = "ui")]
#[tokio::test]
async fn the_verification_page_offers_push() {
    const PAGES: &str = "/account/two-factor";
    let h = Harness::start(&Backend::Memory).await;
    let mut browser = h.client();
    browser.login(USER).await;
    let device = enrol_push(&h, &mut browser).await;
    let mut login = h.client();
    login.login(USER).await;
    let page = login
        .get(&format!("{PAGES}/verify?login=1&next=/admin"))
        .await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(
        page.text.contains("Send a request to my phone"),
        "{}",
        page.text
    );
    assert!(
        !page.text.contains("name=\"code\""),
        "no code field for a push device"
    );
    let form = format!(
        "csrf={}&device={device}&login=1&next=/admin",
        field(&page.text, "csrf")
    );
    let form_headers = [("content-type", "application/x-www-form-urlencoded")];
    let sent = login
        .send_raw(
            "POST",
            &format!("{PAGES}/verify/send"),
            &form_headers,
            &form,
        )
        .await;
    assert_eq!(sent.status, 303, "{}", sent.text);
    assert!(sent.location.contains("approval="), "{}", sent.location);
    let waiting = login.get(&sent.location).await;
    let push = h.phone.last();
    let number = push
        .choices()
        .into_iter()
        .find(|n| {
            waiting
                .text
                .contains(&format!("<strong class=\"number\">{n}</strong>"))
        })
        .expect("the page shows one of the phone's numbers");
    // Not approved yet: the same page again.
    let again = login.get(&sent.location).await;
    assert_eq!(again.status, 200);
    assert!(again.text.contains("I approved it"), "{}", again.text);
    let id = push.approval().as_str().to_owned();
    assert_eq!(
        answer(&h, &id, Decision::Approve, Some(number)).await,
        (200, String::new())
    );
    let done = login.get(&sent.location).await;
    assert_eq!(
        (done.status.as_u16(), done.location.as_str()),
        (303, "/admin"),
        "{}",
        done.text
    );
    assert!(login.is_verified().await);

    // A denial says so on the page, and verifies nothing.
    let mut other = h.client();
    other.login(USER).await;
    let page = other.get(&format!("{PAGES}/verify")).await;
    let form = format!("csrf={}&device={device}", field(&page.text, "csrf"));
    let sent = other
        .send_raw(
            "POST",
            &format!("{PAGES}/verify/send"),
            &form_headers,
            &form,
        )
        .await;
    let id = h.phone.last().approval().as_str().to_owned();
    assert_eq!(
        answer(&h, &id, Decision::Deny, None).await,
        (200, String::new())
    );
    let denied = other.get(&sent.location).await;
    assert_eq!(denied.status, 200);
    assert!(
        denied.text.contains("denied on your phone"),
        "{}",
        denied.text
    );
    assert!(!other.is_verified().await);
}
