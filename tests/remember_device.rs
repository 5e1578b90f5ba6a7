//! Remember-device cookies: the happy path, every refusal case (one test each), a property
//! test that no random modification of a valid cookie verifies, and key rotation.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tower::ServiceExt;

use common::http::CookieJar;
use common::instrumented_store::InstrumentedStore;
use tower_otp::Caller;
use tower_otp::clock::{Clock, ManualClock, Timestamp};
use tower_otp::device::{Enrollment, TotpSettings};
use tower_otp::events::{EventKind, EventStream, Events};
use tower_otp::guard::RequireOtpLayer;
use tower_otp::layer::{OtpLayer, VerifiedDeviceLayer};
use tower_otp::remember::RememberConfig;
use tower_otp::session::OtpSession;
use tower_otp::store::Store;
use tower_otp::{MemoryStore, ServerKey, TwoFactor, UserId, VerifiedDevice};

const REMEMBER: &str = "__Host-otp-remember";
const KEY_1: [u8; 32] = [1; 32];
const KEY_2: [u8; 32] = [2; 32];

async fn login(session: OtpSession, body: String) -> StatusCode {
    session.login(UserId::new(body).unwrap()).await.unwrap();
    StatusCode::OK
}

async fn verify_and_remember(session: OtpSession, code: String) -> Response {
    if let Err(error) = session.verify_any(&code).await {
        return (StatusCode::UNAUTHORIZED, error.kind()).into_response();
    }
    match session.remember_device().await {
        Ok(browser) => browser.id.to_string().into_response(),
        Err(error) => (StatusCode::BAD_REQUEST, error.kind()).into_response(),
    }
}

async fn status(session: OtpSession) -> Response {
    match session.status().await {
        Ok(status) => axum::Json(json!({
            "user": status.user.map(String::from),
            "verified": status.verified.is_some(),
            "remembered": status.verified.map(|v| v.remembered),
        }))
        .into_response(),
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, error.kind()).into_response(),
    }
}

/// The verified device the eager layer left, as a plain service reads it.
async fn device(device: Option<axum::Extension<VerifiedDevice>>) -> axum::Json<serde_json::Value> {
    axum::Json(match device {
        Some(device) => json!({"remembered": device.remembered()}),
        None => serde_json::Value::Null,
    })
}

fn app(two_factor: TwoFactor, keys: &[[u8; 32]]) -> Router {
    Router::new()
        .route("/login", post(login))
        .route("/verify", post(verify_and_remember))
        .route("/status", get(status))
        .route(
            "/remember",
            post(|s: OtpSession| async move {
                match s.remember_device().await {
                    Ok(_) => (StatusCode::OK, "remembered"),
                    Err(error) => (StatusCode::BAD_REQUEST, error.kind()),
                }
            }),
        )
        .route(
            "/logout",
            post(|s: OtpSession| async move {
                s.logout()
                    .await
                    .map(|_| "ok")
                    .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)
            }),
        )
        .route(
            "/admin",
            get(|| async { "admin" }).layer(RequireOtpLayer::new()),
        )
        .route("/device", get(device).layer(VerifiedDeviceLayer::new()))
        .route(
            "/sensitive",
            get(|| async { "sensitive" }).layer(RequireOtpLayer::new().no_remembered()),
        )
        .layer(OtpLayer::new(two_factor).with_remember(RememberConfig::new(keys).unwrap()))
}

struct Harness {
    clock: ManualClock,
    store: InstrumentedStore,
    two_factor: TwoFactor,
    events: EventStream,
    devices: std::collections::HashMap<&'static str, Enrollment>,
}

async fn harness() -> Harness {
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let store = InstrumentedStore::new(MemoryStore::new().with_clock(clock.clone()));
    let events = Events::new();
    let stream = events.subscribe();
    let two_factor = TwoFactor::new(store.clone(), ServerKey::new(&[3; 32]).unwrap())
        .with_clock(clock.clone())
        .with_events(events);
    let mut devices = std::collections::HashMap::new();
    for name in ["alice", "bob"] {
        let user = UserId::new(name).unwrap();
        let enrolment = two_factor
            .enroll_totp(&user, "Phone", name, TotpSettings::default())
            .await
            .unwrap();
        let code = enrolment.current_code(clock.now());
        two_factor
            .confirm_device(&user, &enrolment.device.id, &code)
            .await
            .unwrap();
        devices.insert(name, enrolment);
    }
    clock.advance(Duration::from_secs(30));
    Harness {
        clock,
        store,
        two_factor,
        events: stream,
        devices,
    }
}

struct Browser {
    app: Router,
    jar: CookieJar,
}

impl Browser {
    async fn call(
        &mut self,
        method: &str,
        path: &str,
        body: &str,
    ) -> (StatusCode, String, Vec<String>) {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("user-agent", "Firefox/140")
            .body(Body::from(body.to_owned()))
            .unwrap();
        self.jar.add_to(request.headers_mut());
        let response = self.app.clone().oneshot(request).await.unwrap();
        self.jar.update(response.headers());
        let status = response.status();
        let set_cookies = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            String::from_utf8_lossy(&body).into_owned(),
            set_cookies,
        )
    }

    async fn status(&mut self) -> serde_json::Value {
        let (status, body, _) = self.call("GET", "/status", "").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    fn remember_cookie(&self) -> Option<String> {
        self.jar.get(REMEMBER).map(str::to_owned)
    }

    /// Replaces the remember cookie (or removes it).
    fn set_remember_cookie(&mut self, value: Option<&str>) {
        match value {
            Some(value) => self.jar.apply(&format!("{REMEMBER}={value}")),
            None => self.jar.apply(&format!("{REMEMBER}=; Max-Age=0")),
        }
    }
}

impl Harness {
    fn browser(&self, keys: &[[u8; 32]]) -> Browser {
        Browser {
            app: app(self.two_factor.clone(), keys),
            jar: CookieJar::default(),
        }
    }

    /// Logs `user` in on `browser`, verifies and asks to remember the browser; then logs out.
    async fn remembered(&self, browser: &mut Browser, user: &'static str) -> String {
        browser.call("POST", "/login", user).await;
        let code = self.devices[user].current_code(self.clock.now());
        let (status, body, set_cookies) = browser.call("POST", "/verify", &code).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let remember = set_cookies
            .iter()
            .find(|c| c.starts_with(REMEMBER))
            .expect("a remember cookie")
            .clone();
        for attribute in [
            "HttpOnly",
            "Secure",
            "SameSite=Lax",
            "Path=/",
            "Max-Age=2592000",
        ] {
            assert!(remember.contains(attribute), "{remember}");
        }
        browser.call("POST", "/logout", "").await;
        self.clock.advance(Duration::from_secs(30));
        body
    }

    /// Logs `user` in again and reports whether the remember cookie verified the session.
    async fn relogin(&self, browser: &mut Browser, user: &str) -> bool {
        browser.call("POST", "/login", user).await;
        let status = browser.status().await;
        assert_eq!(status["user"], user);
        status["verified"].as_bool().unwrap()
    }

    fn drain(&mut self) -> Vec<EventKind> {
        let mut kinds = Vec::new();
        while let Some(event) = self.events.try_recv() {
            kinds.push(event.unwrap().kind.clone());
        }
        kinds
    }

    fn refusal(&mut self) -> Option<String> {
        self.drain().into_iter().find_map(|k| match k {
            EventKind::RememberedDeviceRefused { reason } => Some(reason),
            _ => None,
        })
    }
}

#[tokio::test]
async fn a_remembered_browser_skips_the_code_at_the_cost_of_one_lookup() {
    let mut h = harness().await;
    let mut browser = h.browser(&[KEY_1]);
    let browser_id = h.remembered(&mut browser, "alice").await;
    h.drain();

    browser.call("POST", "/login", "alice").await;
    let calls = h.store.calls();
    let status = browser.status().await;
    assert_eq!(
        (status["verified"].as_bool(), status["remembered"].as_bool()),
        (Some(true), Some(true))
    );
    // Load the session, check the browser (with its device and the stamp), rotate the id.
    assert_eq!(h.store.calls() - calls, 3);
    assert!(h.drain().contains(&EventKind::RememberedDeviceUsed));
    assert_eq!(browser.call("GET", "/admin", "").await.0, StatusCode::OK);
    assert_eq!(
        browser.call("GET", "/sensitive", "").await.0,
        StatusCode::FORBIDDEN,
        "no_remembered"
    );

    let alice = UserId::new("alice").unwrap();
    let listed = h.two_factor.remembered_browsers(&alice).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id.as_str(), browser_id);
    assert_eq!(listed[0].user_agent.as_deref(), Some("Firefox/140"));
    assert!(listed[0].last_used_at.is_some());
}

#[tokio::test]
async fn remembering_needs_a_code_verified_session() {
    let h = harness().await;
    let mut browser = h.browser(&[KEY_1]);
    assert_eq!(
        browser.call("POST", "/remember", "").await.1,
        "not_authenticated"
    );
    browser.call("POST", "/login", "alice").await;
    assert_eq!(
        browser.call("POST", "/remember", "").await.1,
        "otp_required"
    );
    browser.call("POST", "/logout", "").await;
    h.remembered(&mut browser, "alice").await;
    browser.call("POST", "/login", "alice").await;
    // Verified by the remembered browser, not by a code: no new cookie from that.
    assert_eq!(browser.status().await["remembered"], true);
    assert_eq!(
        browser.call("POST", "/remember", "").await.1,
        "otp_required"
    );
}

#[tokio::test]
async fn a_changed_byte_is_refused() {
    let mut h = harness().await;
    let mut browser = h.browser(&[KEY_1]);
    h.remembered(&mut browser, "alice").await;
    let cookie = browser.remember_cookie().unwrap();
    let mut tampered = cookie.clone().into_bytes();
    tampered[10] = if tampered[10] == b'A' { b'B' } else { b'A' };
    browser.set_remember_cookie(Some(std::str::from_utf8(&tampered).unwrap()));
    h.drain();
    assert!(!h.relogin(&mut browser, "alice").await);
    assert_eq!(h.refusal().as_deref(), Some("invalid"));
    assert_eq!(browser.remember_cookie(), None, "the bad cookie is removed");
}

#[tokio::test]
async fn a_truncated_or_padded_cookie_is_refused() {
    let mut h = harness().await;
    let mut browser = h.browser(&[KEY_1]);
    h.remembered(&mut browser, "alice").await;
    let cookie = browser.remember_cookie().unwrap();
    for changed in [
        &cookie[..cookie.len() - 1],
        &format!("{cookie}A"),
        &format!("A{cookie}"),
        &cookie[..20],
    ] {
        browser.set_remember_cookie(Some(changed));
        h.drain();
        assert!(!h.relogin(&mut browser, "alice").await, "{changed}");
        assert_eq!(h.refusal().as_deref(), Some("invalid"));
    }
}

#[tokio::test]
async fn another_users_cookie_is_refused_and_kept_for_them() {
    let mut h = harness().await;
    let mut browser = h.browser(&[KEY_1]);
    h.remembered(&mut browser, "bob").await;
    h.drain();
    assert!(!h.relogin(&mut browser, "alice").await);
    assert_eq!(h.refusal().as_deref(), Some("wrong_user"));
    assert!(
        browser.remember_cookie().is_some(),
        "bob's cookie stays for bob"
    );
    browser.call("POST", "/logout", "").await;
    assert!(h.relogin(&mut browser, "bob").await);
}

#[tokio::test]
async fn the_cookie_binds_the_users_tag_and_does_not_name_the_user() {
    let h = harness().await;
    let mut browser = h.browser(&[KEY_1]);
    h.remembered(&mut browser, "alice").await;
    let cookie = browser.remember_cookie().unwrap();
    let (payload, _) = cookie.split_once('.').unwrap();
    let payload = data_encoding::BASE64URL_NOPAD
        .decode(payload.as_bytes())
        .unwrap();
    assert!(!payload.windows(5).any(|w| w == b"alice"), "{payload:?}");
    let tag = h.store.user_tag(&UserId::new("alice").unwrap());
    let tag = data_encoding::HEXLOWER
        .decode(tag.as_str().as_bytes())
        .unwrap();
    assert!(payload.ends_with(&tag), "{payload:?}");
}

#[tokio::test]
async fn a_deleted_device_ends_its_cookies() {
    let mut h = harness().await;
    let mut browser = h.browser(&[KEY_1]);
    h.remembered(&mut browser, "alice").await;
    let alice = UserId::new("alice").unwrap();
    h.two_factor
        .delete_device(
            &Caller::administrator(alice.clone()),
            &h.devices["alice"].device.id,
        )
        .await
        .unwrap();
    h.drain();
    assert!(!h.relogin(&mut browser, "alice").await);
    // Deleting the device deleted the browsers remembered through it.
    assert_eq!(h.refusal().as_deref(), Some("revoked"));
    assert!(
        h.two_factor
            .remembered_browsers(&alice)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn an_update_cannot_withdraw_the_confirmation_behind_a_cookie() {
    let mut h = harness().await;
    let mut browser = h.browser(&[KEY_1]);
    h.remembered(&mut browser, "alice").await;
    let alice = UserId::new("alice").unwrap();
    let mut device = h
        .store
        .get_device(&alice, &h.devices["alice"].device.id)
        .await
        .unwrap()
        .unwrap();
    // A stale copy written back (a rename racing a confirmation, say) keeps the stored
    // confirmation: only confirming changes it.
    device.confirmed = false;
    h.store.update_device(&device).await.unwrap();
    let stored = h.store.get_device(&alice, &device.id).await.unwrap();
    assert!(stored.is_some_and(|d| d.confirmed));
    h.drain();
    assert!(h.relogin(&mut browser, "alice").await);
}

#[tokio::test]
async fn an_expired_cookie_is_refused() {
    let mut h = harness().await;
    let mut browser = h.browser(&[KEY_1]);
    h.remembered(&mut browser, "alice").await;
    h.clock.advance(Duration::from_secs(30 * 24 * 60 * 60));
    h.drain();
    assert!(!h.relogin(&mut browser, "alice").await);
    assert_eq!(h.refusal().as_deref(), Some("expired"));
}

#[tokio::test]
async fn a_changed_user_stamp_ends_every_cookie() {
    let mut h = harness().await;
    let mut browser = h.browser(&[KEY_1]);
    h.remembered(&mut browser, "alice").await;
    let alice = UserId::new("alice").unwrap();
    h.store.bump_user_stamp(&alice).await.unwrap();
    h.drain();
    assert!(!h.relogin(&mut browser, "alice").await);
    assert_eq!(h.refusal().as_deref(), Some("stamp_changed"));

    // What applications call on a password change: stamp and records both go.
    let mut other = h.browser(&[KEY_1]);
    h.remembered(&mut other, "alice").await;
    h.two_factor.invalidate_remembered(&alice).await.unwrap();
    h.drain();
    assert!(!h.relogin(&mut other, "alice").await);
    assert!(h.refusal().is_some());
}

#[tokio::test]
async fn a_revoked_browser_is_refused_at_once() {
    let mut h = harness().await;
    let alice = UserId::new("alice").unwrap();
    let mut first = h.browser(&[KEY_1]);
    let mut second = h.browser(&[KEY_1]);
    let first_id = h.remembered(&mut first, "alice").await;
    h.remembered(&mut second, "alice").await;
    assert!(
        h.two_factor
            .forget_browser(&alice, &first_id.parse().unwrap())
            .await
            .unwrap()
    );
    h.drain();
    assert!(!h.relogin(&mut first, "alice").await);
    assert_eq!(h.refusal().as_deref(), Some("revoked"));
    second.call("POST", "/logout", "").await;
    assert!(
        h.relogin(&mut second, "alice").await,
        "the other browser still works"
    );
    assert_eq!(h.two_factor.forget_all_browsers(&alice).await.unwrap(), 1);
    second.call("POST", "/logout", "").await;
    assert!(!h.relogin(&mut second, "alice").await);
}

#[tokio::test]
async fn the_verified_device_says_remembered_and_is_absent_once_the_browser_is_refused() {
    let mut h = harness().await;
    let alice = UserId::new("alice").unwrap();
    let mut browser = h.browser(&[KEY_1]);
    let browser_id = h.remembered(&mut browser, "alice").await;
    browser.call("POST", "/login", "alice").await;
    let (status, body, _) = browser.call("GET", "/device", "").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, r#"{"remembered":true}"#)
    );
    assert_eq!(
        browser.call("GET", "/sensitive", "").await.0,
        StatusCode::FORBIDDEN,
        "a guard refusing remembered verifications still does"
    );

    browser.call("POST", "/logout", "").await;
    h.two_factor
        .forget_browser(&alice, &browser_id.parse().unwrap())
        .await
        .unwrap();
    h.drain();
    browser.call("POST", "/login", "alice").await;
    let (status, body, _) = browser.call("GET", "/device", "").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "null"));
    assert_eq!(h.refusal().as_deref(), Some("revoked"));
}

#[tokio::test]
async fn keys_rotate_old_ones_verify_removed_ones_do_not() {
    let mut h = harness().await;
    let mut old = h.browser(&[KEY_1]);
    h.remembered(&mut old, "alice").await;
    let cookie = old.remember_cookie().unwrap();

    let mut rotated = h.browser(&[KEY_2, KEY_1]);
    rotated.set_remember_cookie(Some(&cookie));
    assert!(
        h.relogin(&mut rotated, "alice").await,
        "an old key still verifies"
    );

    let mut removed = h.browser(&[KEY_2]);
    removed.set_remember_cookie(Some(&cookie));
    h.drain();
    assert!(!h.relogin(&mut removed, "alice").await);
    assert_eq!(h.refusal().as_deref(), Some("invalid"));
}

#[tokio::test]
async fn malformed_cookies_are_absent_never_errors() {
    let mut h = harness().await;
    let mut browser = h.browser(&[KEY_1]);
    for garbage in [
        "",
        ".",
        "..",
        "a.b",
        "\u{1F980}",
        &"A".repeat(5000),
        "AAAA.AAAA",
        "%00",
    ] {
        browser.set_remember_cookie(Some(garbage));
        browser.call("POST", "/login", "alice").await;
        let (status, _, _) = browser.call("GET", "/status", "").await;
        assert_eq!(status, StatusCode::OK, "{garbage:.20}");
        assert_eq!(browser.status().await["verified"], false);
    }
    h.drain();
}

/// One valid cookie and a harness to present variants of it, shared by the property test.
async fn property_fixture() -> (Harness, Browser, String) {
    let h = harness().await;
    let mut browser = h.browser(&[KEY_1]);
    h.remembered(&mut browser, "alice").await;
    let cookie = browser.remember_cookie().unwrap();
    (h, browser, cookie)
}

#[test]
fn no_random_modification_of_a_valid_cookie_verifies() {
    use proptest::prelude::*;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (h, browser, cookie) = runtime.block_on(property_fixture());
    let h = Arc::new(h);
    let browser = Arc::new(tokio::sync::Mutex::new(browser));
    let alphabet: Vec<char> = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.="
        .chars()
        .collect();
    let strategy = (
        proptest::collection::vec((0..cookie.len(), 0..alphabet.len()), 1..4),
        0..3usize,
    );
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    });
    runner
        .run(&strategy, |(edits, mode)| {
            let mut bytes: Vec<char> = cookie.chars().collect();
            for (at, with) in edits {
                let at = at.min(bytes.len().saturating_sub(1));
                match mode {
                    0 => bytes[at] = alphabet[with],
                    1 => bytes.insert(at, alphabet[with]),
                    _ => {
                        bytes.remove(at);
                    }
                }
            }
            let modified: String = bytes.into_iter().collect();
            prop_assume!(modified != cookie);
            let verified = runtime.block_on(async {
                let mut browser = browser.lock().await;
                browser.set_remember_cookie(Some(&modified));
                h.relogin(&mut browser, "alice").await
            });
            prop_assert!(!verified, "a modified cookie verified: {}", modified);
            Ok(())
        })
        .unwrap();
    // The unmodified cookie still works: the test could have failed.
    let verified = runtime.block_on(async {
        let mut browser = browser.lock().await;
        browser.set_remember_cookie(Some(&cookie));
        h.relogin(&mut browser, "alice").await
    });
    assert!(verified);
}
