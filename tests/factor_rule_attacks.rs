//! Attacks on the factor rule, each run to its end in process, on the MemoryStore and on a
//! RedisStore.
//!
//! The attacker knows only the user's password, or holds a cookie of the user's browser, or
//! is a page on a sibling site. Each chain is the whole attack, step after step, the attacker
//! going on with whatever the previous answers gave them; the test compares the transcript
//! with the one where the right step refuses, and then checks that the account is as the user
//! left it.

#![cfg(feature = "api")]

mod common;

use serde_json::json;
use tower_otp::device::DeviceId;

use common::api_harness::{Backend, Client, Harness, Reply, Totp, USER, USER_EMAIL, Who};

const ATTACKER_EMAIL: &str = "attacker@evil.example";
const ATTACKER_PHONE: &str = "+15550100999";

/// One step of an attack: what the attacker tried, the status and the error code.
type Step = (&'static str, u16, String);

fn step(name: &'static str, reply: &Reply) -> Step {
    (name, reply.status.as_u16(), reply.error().to_owned())
}

fn expect(name: &'static str, status: u16, error: &str) -> Step {
    (name, status, error.to_owned())
}

/// A made-up device id, for an attacker who was given none.
fn no_device() -> String {
    "0".repeat(32)
}

/// A user who has set up an authenticator app from their own browser.
async fn user_with_an_app(h: &Harness) -> (Client, Totp) {
    let mut user = h.client();
    user.login(USER).await;
    let phone = h.enrol_totp(&mut user, "Phone").await;
    h.next_step();
    (user, phone)
}

// ----- the confirmation API -------------------------------------------------------------------

/// From a password-only session of a user who has an app: ask the confirmation API to
/// confirm the attacker's own address, answer the code sent there, then ask for a login code
/// on the new device and verify with it.
async fn confirmation_api_attack(backend: &Backend, channel: &str, destination: &str) {
    let h = Harness::start(backend).await;
    user_with_an_app(&h).await;
    let before = h.devices().await;
    let mut attacker = h.client();
    attacker.login(USER).await;

    let mut chain = Vec::new();
    let requested = attacker
        .post(
            "/2fa/confirmations",
            json!({"method": channel, "state": {"destination": destination}}),
        )
        .await;
    chain.push(step("request a confirmation of my destination", &requested));
    let id = requested.json["id"]
        .as_str()
        .map_or_else(|| "A".repeat(43), str::to_owned);
    let device = requested.json["state"]["device_id"]
        .as_str()
        .map_or_else(no_device, str::to_owned);
    let code = h
        .outbox
        .last_code_for(destination)
        .unwrap_or_else(|| "000000".into());
    let answered = attacker
        .post(
            &format!("/2fa/confirmations/{id}/confirm"),
            json!({"data": {"code": code}}),
        )
        .await;
    chain.push(step("answer the code sent there", &answered));
    h.next_step();
    let challenged = attacker
        .post("/2fa/challenges", json!({"device_id": device}))
        .await;
    chain.push(step("ask for a login code on my device", &challenged));
    let code = h
        .outbox
        .last_code_for(destination)
        .unwrap_or_else(|| "000000".into());
    let verified = attacker
        .post("/2fa/verify", json!({"device_id": device, "token": code}))
        .await;
    chain.push(step("verify with it", &verified));
    chain.push(step("open the guarded page", &attacker.get("/admin").await));

    assert_eq!(
        chain,
        [
            expect(
                "request a confirmation of my destination",
                403,
                "otp_required"
            ),
            expect("answer the code sent there", 404, "confirmation_not_found"),
            expect("ask for a login code on my device", 404, "device_not_found"),
            expect("verify with it", 404, "device_not_found"),
            expect("open the guarded page", 403, "otp_required"),
        ],
        "{channel}"
    );
    assert!(
        h.outbox.last_for(destination).is_none(),
        "a code went to the attacker's {channel}"
    );
    assert_eq!(h.devices().await, before);
    assert!(!attacker.is_verified().await);
}

async fn the_confirmation_api_adds_no_email_address_for_a_password(backend: &Backend) {
    confirmation_api_attack(backend, "email", ATTACKER_EMAIL).await;
}

async fn the_confirmation_api_adds_no_phone_number_for_a_password(backend: &Backend) {
    confirmation_api_attack(backend, "sms", ATTACKER_PHONE).await;
}

// ----- a device planted before the user enrols ------------------------------------------------

/// While the user has no factor, the attacker's password-only session adds an app and an
/// email address of their own and keeps the secret and the code. The user then enrols and
/// confirms their own phone. The attacker comes back with the password: neither planted
/// device can be confirmed or used, and the user's phone cannot be removed.
async fn a_device_planted_before_enrolment_never_becomes_a_factor(backend: &Backend) {
    let h = Harness::start(backend).await;
    let mut planter = h.client();
    planter.login(USER).await;
    let added = planter
        .post("/2fa/devices", json!({"method": "totp", "name": "Phone 2"}))
        .await;
    assert_eq!(added.status, 201, "{:?}", added.json);
    let planted = Totp::from_reply(&added);
    let added = planter
        .post(
            "/2fa/devices",
            json!({"method": "email", "name": "Mail", "config": {"destination": ATTACKER_EMAIL}}),
        )
        .await;
    assert_eq!(added.status, 201, "{:?}", added.json);
    let planted_mail = added.json["device"]["id"].as_str().unwrap().to_owned();
    let mail_code = h.outbox.last_code_for(ATTACKER_EMAIL).unwrap();

    let (_, phone) = user_with_an_app(&h).await;

    let mut attacker = h.client();
    attacker.login(USER).await;
    let token = planted.code(&h.clock);
    let confirm = |id: &str| format!("/2fa/devices/{id}/confirm");
    let mut chain = Vec::new();
    let confirmations = [
        attacker
            .post(&confirm(&planted.id), json!({"token": token}))
            .await,
        attacker
            .post(&confirm(&planted_mail), json!({"token": mail_code}))
            .await,
        planter
            .post(&confirm(&planted.id), json!({"token": token}))
            .await,
    ];
    chain.push(step(
        "verify with my app",
        &attacker
            .post(
                "/2fa/verify",
                json!({"device_id": planted.id, "token": token}),
            )
            .await,
    ));
    chain.push(step(
        "verify with any device",
        &attacker.post("/2fa/verify", json!({"token": token})).await,
    ));
    chain.push(step(
        "remove the user's phone",
        &attacker.delete(&format!("/2fa/devices/{}", phone.id)).await,
    ));
    // A patient attacker waits out the throttling of the last wrong code.
    h.next_step();
    let token = planted.code(&h.clock);
    chain.push(step(
        "disable with my app's code",
        &attacker.post("/2fa/disable", json!({"code": token})).await,
    ));
    chain.push(step("open the guarded page", &attacker.get("/admin").await));

    // Refused as gone (404) or as needing the second factor (403): either way not confirmed.
    for reply in &confirmations {
        assert!(
            matches!(
                (reply.status.as_u16(), reply.error()),
                (404, "device_not_found") | (403, "otp_required")
            ),
            "a planted device was confirmed: {:?}",
            reply.json
        );
    }
    assert_eq!(
        chain,
        [
            expect("verify with my app", 404, "device_not_found"),
            expect("verify with any device", 401, "invalid_code"),
            expect("remove the user's phone", 403, "otp_required"),
            expect("disable with my app's code", 401, "invalid_code"),
            expect("open the guarded page", 403, "otp_required"),
        ]
    );
    assert!(!attacker.is_verified().await);
    assert!(!planter.is_verified().await);
    // The user's first confirmation removed every device the attacker had planted.
    assert_eq!(h.device_ids().await, [phone.id]);
}

/// The attacker confirms a planted device at the very moment the user confirms their own,
/// as the first device each. Exactly one of them may win: otherwise the attacker's device
/// stays, confirmed, next to the user's.
async fn racing_the_users_first_confirmation_confirms_one_device(backend: &Backend) {
    for round in 0..20 {
        let h = Harness::start(backend).await;
        let planted = h.pending_totp("Planted").await;
        let own = h.pending_totp("Phone").await;
        let confirm = |totp: &Totp| {
            let (two_factor, user) = (h.two_factor.clone(), h.user());
            let (id, code): (DeviceId, _) = (totp.id.parse().unwrap(), totp.code(&h.clock));
            tokio::spawn(async move { two_factor.confirm_device(&user, &id, &code).await })
        };
        let (attacker, user) = (confirm(&planted), confirm(&own));
        let (attacker, user) = (attacker.await.unwrap(), user.await.unwrap());
        let winners = [&attacker, &user].iter().filter(|r| r.is_ok()).count();
        let confirmed = h.devices().await.iter().filter(|d| d.1).count();
        // expected: one winner and one confirmed device. Confirming checks "first" and
        // confirms in separate store operations, so both callers can see no confirmed device
        // and both win, leaving two confirmed devices (or none, each deleting the other).
        assert_eq!(
            (winners, confirmed),
            (1, 1),
            "round {round}: attacker {:?}, user {:?}",
            attacker.map(|c| c.first),
            user.map(|c| c.first)
        );
    }
}

/// The attacker asks for backup codes with the password at the very moment the user confirms
/// their first device. Backup codes are a confirmed factor at once, so exactly one of the two
/// may succeed: the user's confirmation (and the attacker is then refused), or the attacker's
/// codes (and the user, now configured, is refused).
async fn racing_the_users_first_confirmation_with_backup_codes_gives_one_factor(backend: &Backend) {
    for round in 0..20 {
        let h = Harness::start(backend).await;
        let own = h.pending_totp("Phone").await;
        let (two_factor, user) = (h.two_factor.clone(), h.user());
        let attacker = tokio::spawn(async move { two_factor.generate_backup_codes(&user).await });
        let (two_factor, user) = (h.two_factor.clone(), h.user());
        let (id, code): (DeviceId, _) = (own.id.parse().unwrap(), own.code(&h.clock));
        let confirmed =
            tokio::spawn(async move { two_factor.confirm_device(&user, &id, &code).await });
        let (attacker, confirmed) = (attacker.await.unwrap(), confirmed.await.unwrap());
        // expected: one of the two. The factor rule reads whether the user has a confirmed
        // device, and the change is written later, in other store operations: both callers
        // can pass the check while the user has none, leaving the attacker's backup codes
        // next to the user's new phone.
        assert!(
            attacker.is_ok() != confirmed.is_ok(),
            "round {round}: attacker's codes {:?}, user's confirmation {:?}",
            attacker.map(drop),
            confirmed.map(|c| c.first)
        );
    }
}

// ----- remembered, stale and fresh sessions ---------------------------------------------------

/// The changes of factor a session might try: adding an app, adding an address through the
/// confirmation API, creating backup codes, removing the email device.
async fn try_every_factor_change(session: &mut Client, mail: &str) -> Vec<Step> {
    let mut chain = Vec::new();
    let reply = session
        .post("/2fa/devices", json!({"method": "totp", "name": "Tablet"}))
        .await;
    chain.push(step("add an app", &reply));
    let reply = session
        .post(
            "/2fa/confirmations",
            json!({"method": "email", "state": {"destination": "alice+2@example.com"}}),
        )
        .await;
    chain.push(step("add an address by confirmation", &reply));
    let reply = session.post("/2fa/backup-codes", json!({})).await;
    chain.push(step("create backup codes", &reply));
    let reply = session.delete(&format!("/2fa/devices/{mail}")).await;
    chain.push(step("remove a device", &reply));
    chain
}

fn all_refused(error: &str) -> Vec<Step> {
    [
        "add an app",
        "add an address by confirmation",
        "create backup codes",
        "remove a device",
    ]
    .into_iter()
    .map(|name| expect(name, 403, error))
    .collect()
}

/// A browser verified by its remember-device cookie, and a session verified longer ago than
/// the window, change no factor; a code makes them fresh, and then they may.
async fn remembered_and_stale_sessions_change_no_factor(backend: &Backend) {
    for who in [Who::Remembered, Who::Stale] {
        let h = Harness::start(backend).await;
        let (account, mut session) = h.world(who).await;
        let account = account.unwrap();
        let (devices, browsers) = (h.devices().await, h.remembered_browsers().await);
        let chain = try_every_factor_change(&mut session, &account.mail).await;
        assert_eq!(chain, all_refused("reauthentication_required"), "{who:?}");
        assert_eq!(h.devices().await, devices, "{who:?}");
        assert_eq!(h.remembered_browsers().await, browsers, "{who:?}");

        let verified = session
            .post(
                "/2fa/verify",
                json!({"token": account.phone.code(&h.clock)}),
            )
            .await;
        assert_eq!(verified.status, 200, "{who:?}: {:?}", verified.json);
        assert_eq!(session.state().await.as_deref(), Some("fresh"), "{who:?}");
        let chain = try_every_factor_change(&mut session, &account.mail).await;
        assert_eq!(chain, changes_made(), "{who:?}");
    }
}

fn changes_made() -> Vec<Step> {
    vec![
        expect("add an app", 201, ""),
        expect("add an address by confirmation", 201, ""),
        expect("create backup codes", 201, ""),
        expect("remove a device", 204, ""),
    ]
}

/// A session verified by a code a moment ago changes factors; a password-only session of the
/// same user, next to it, does not.
async fn a_fresh_session_changes_factors_and_a_password_alone_does_not(backend: &Backend) {
    let h = Harness::start(backend).await;
    let (account, mut fresh) = h.world(Who::Fresh).await;
    let account = account.unwrap();
    let mut password_only = h.client();
    password_only.login(USER).await;
    let chain = try_every_factor_change(&mut password_only, &account.mail).await;
    assert_eq!(chain, all_refused("otp_required"));
    let chain = try_every_factor_change(&mut fresh, &account.mail).await;
    assert_eq!(chain, changes_made());
}

/// The user's fresh session adds a second app. A password-only session that learns its code
/// cannot confirm it, and stays unverified; the fresh session confirms it, and its own
/// verification stays the one it had.
async fn confirming_a_second_device_verifies_no_session(backend: &Backend) {
    let h = Harness::start(backend).await;
    let (account, mut fresh) = h.world(Who::Fresh).await;
    let account = account.unwrap();
    let added = fresh
        .post("/2fa/devices", json!({"method": "totp", "name": "Tablet"}))
        .await;
    assert_eq!(added.status, 201, "{:?}", added.json);
    let tablet = Totp::from_reply(&added);
    let path = format!("/2fa/devices/{}/confirm", tablet.id);

    let mut password_only = h.client();
    password_only.login(USER).await;
    let refused = password_only
        .post(&path, json!({"token": tablet.code(&h.clock)}))
        .await;
    assert_eq!(refused.outcome(), (403, "otp_required".to_owned()));
    assert!(!password_only.is_verified().await);
    assert_eq!(
        password_only.get("/admin").await.outcome(),
        (403, "otp_required".to_owned())
    );

    let verified_by = fresh.get("/2fa/status").await.json["device"]["id"].clone();
    assert_eq!(verified_by, json!(account.phone.id));
    let confirmed = fresh
        .post(&path, json!({"token": tablet.code(&h.clock)}))
        .await;
    assert_eq!(confirmed.status, 200, "{:?}", confirmed.json);
    let status = fresh.get("/2fa/status").await.json;
    assert_eq!(status["device"]["id"], verified_by, "{status}");
    // The engine says so too: a second confirmation is never a first.
    let another = h.pending_totp("Watch").await;
    let done = h
        .two_factor
        .confirm_device(
            h.administrator(),
            &another.id.parse().unwrap(),
            &another.code(&h.clock),
        )
        .await
        .unwrap();
    assert!(!done.first);
}

// ----- codes bound to the session that asked ----------------------------------------------------

/// The user asks for a login code by email in their own session; the attacker, who knows the
/// password and has seen the code, cannot verify their own session with it. The user can.
async fn a_code_sent_for_the_users_session_does_not_verify_the_attackers(backend: &Backend) {
    let h = Harness::start(backend).await;
    let mut setup = h.client();
    setup.login(USER).await;
    let mail = h.enrol_email(&mut setup, USER_EMAIL).await;
    h.next_step();
    let mut user = h.client();
    user.login(USER).await;
    let mut attacker = h.client();
    attacker.login(USER).await;
    let sent = user
        .post("/2fa/challenges", json!({"device_id": mail}))
        .await;
    assert_eq!(sent.status, 200, "{:?}", sent.json);
    let code = h.outbox.last_code_for(USER_EMAIL).unwrap();
    let stolen = attacker
        .post("/2fa/verify", json!({"device_id": mail, "token": code}))
        .await;
    assert_eq!(stolen.outcome(), (401, "invalid_code".to_owned()));
    assert!(!attacker.is_verified().await);
    // The attacker's try counted as a wrong code: the device is throttled for a second.
    h.later(std::time::Duration::from_secs(1));
    let own = user
        .post("/2fa/verify", json!({"device_id": mail, "token": code}))
        .await;
    assert_eq!(own.status, 200, "{:?}", own.json);
}

// ----- stolen cookies -------------------------------------------------------------------------

/// The attacker has copied the cookies of the user's remembered browser. Once the user
/// removes the device the browser was remembered with, or logs out everywhere, a new login
/// with those cookies is not verified.
async fn stolen_remember_cookies_die_with_their_device_and_with_logout_everywhere(
    backend: &Backend,
) {
    for revoke in ["remove the device", "log out everywhere"] {
        let h = Harness::start(backend).await;
        let account = h.configure().await;
        let mut thief = h.same_browser(&account.browser);
        thief.login(USER).await;
        assert_eq!(
            thief.state().await.as_deref(),
            Some("remembered"),
            "{revoke}"
        );

        let mut user = h.fresh_session(&account).await;
        let reply = match revoke {
            "remove the device" => {
                user.delete(&format!("/2fa/devices/{}", account.phone.id))
                    .await
            }
            _ => user.post("/2fa/logout-all", json!({})).await,
        };
        assert!(reply.status.is_success(), "{revoke}: {:?}", reply.json);

        let mut thief = h.same_browser(&account.browser);
        thief.login(USER).await;
        assert_eq!(
            thief.state().await.as_deref(),
            Some("first_factor"),
            "{revoke}"
        );
        assert_eq!(
            thief.get("/admin").await.outcome(),
            (403, "otp_required".to_owned()),
            "{revoke}"
        );
    }
}

// ----- a page on a sibling site ---------------------------------------------------------------

/// A page on a sibling site makes the user's fresh browser post to the API: as a cross-site
/// fetch, with a foreign `Origin`, or as a form. Each is refused, and nothing changes.
async fn a_sibling_site_cannot_act_with_the_users_cookies(backend: &Backend) {
    let h = Harness::start(backend).await;
    let (_, mut browser) = h.world(Who::Fresh).await;
    let devices = h.devices().await;
    let body = json!({"method": "totp", "name": "Evil"}).to_string();
    let json = ("content-type", "application/json");
    let forged: [&[(&str, &str)]; 5] = [
        &[json, ("sec-fetch-site", "cross-site")],
        &[json, ("origin", "https://sibling.example.com")],
        &[json, ("origin", "null")],
        &[
            ("content-type", "text/plain"),
            ("sec-fetch-site", "same-site"),
        ],
        &[("content-type", "application/x-www-form-urlencoded")],
    ];
    for headers in forged {
        let reply = browser
            .send_raw("POST", "/2fa/devices", headers, &body)
            .await;
        let refused = matches!(
            (reply.status.as_u16(), reply.error()),
            (403, "cross_site_request") | (415, "unsupported_media_type")
        );
        assert!(refused, "{headers:?}: {:?}", reply.outcome());
    }
    assert_eq!(h.devices().await, devices);
}

macro_rules! on_both_stores {
    ($($attack:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $attack() {
                    super::$attack(&super::Backend::Memory).await;
                }
            )*
        }

        #[cfg(feature = "redis")]
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $attack() {
                    super::$attack(&super::common::api_harness::shared_redis()).await;
                }
            )*
        }
    };
}

on_both_stores!(
    the_confirmation_api_adds_no_email_address_for_a_password,
    the_confirmation_api_adds_no_phone_number_for_a_password,
    a_device_planted_before_enrolment_never_becomes_a_factor,
    racing_the_users_first_confirmation_confirms_one_device,
    racing_the_users_first_confirmation_with_backup_codes_gives_one_factor,
    remembered_and_stale_sessions_change_no_factor,
    a_fresh_session_changes_factors_and_a_password_alone_does_not,
    confirming_a_second_device_verifies_no_session,
    a_code_sent_for_the_users_session_does_not_verify_the_attackers,
    stolen_remember_cookies_die_with_their_device_and_with_logout_everywhere,
    a_sibling_site_cannot_act_with_the_users_cookies,
);
