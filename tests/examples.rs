//! The examples, driven in process to every end state their documentation names: each
//! example's application is built by the example's own `app` (or `service`, or `run`), on an
//! engine with a manual clock, so that codes and throttling delays need no waiting. (The demo
//! server has its own black-box test, `tests/demo_server.rs`.)

// Each server example includes its own copy of `examples/support/store.rs`, as it does when
// built alone.
#![allow(clippy::duplicate_mod)]

mod common;

#[allow(dead_code)]
#[path = "../examples/axum_admin.rs"]
mod axum_admin;
#[cfg(feature = "axum-login")]
#[allow(dead_code)]
#[path = "../examples/axum_login.rs"]
mod axum_login;
#[allow(dead_code)]
#[path = "../examples/bearer_api.rs"]
mod bearer_api;
#[allow(dead_code)]
#[path = "../examples/events.rs"]
mod events_example;
#[allow(dead_code)]
#[path = "../examples/hyper_service.rs"]
mod hyper_service;
#[allow(dead_code)]
#[path = "../examples/new_device_notice.rs"]
mod new_device_notice;

use std::fmt::Debug;
use std::marker::PhantomData;
use std::time::Duration;

use axum::http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::{Service, ServiceExt};

use common::http::CookieJar;
use tower_otp::clock::{Clock, ManualClock, Timestamp};
use tower_otp::otp::{Algorithm, Digits, OtpKey, Secret, TotpParams};
use tower_otp::{MemoryStore, ServerKey, TwoFactor};

/// The start of a TOTP step, so that a second or two later is still the same step.
const START: u64 = 1_800_000_000_000;

fn clock() -> ManualClock {
    ManualClock::new(Timestamp::from_millis(START))
}

fn engine(clock: &ManualClock) -> TwoFactor {
    TwoFactor::new(
        MemoryStore::new().with_clock(clock.clone()),
        ServerKey::generate(),
    )
    .with_clock(clock.clone())
}

/// The code an authenticator app that scanned `otpauth_uri` shows at the clock's time.
fn code(otpauth_uri: &str, clock: &ManualClock) -> String {
    let secret = otpauth_uri
        .split(['?', '&'])
        .find_map(|pair| pair.strip_prefix("secret="))
        .expect("a secret in the URI");
    let key = OtpKey::new(
        Secret::from_base32(secret).unwrap(),
        Algorithm::Sha1,
        Digits::SIX,
    );
    let step = TotpParams::default()
        .time_step(clock.now().as_secs())
        .unwrap();
    key.hotp(step).reveal().to_owned()
}

/// A code of the right shape that is not `right`.
fn wrong(right: &str) -> &'static str {
    if right == "000000" {
        "111111"
    } else {
        "000000"
    }
}

/// A client of any of the examples' services, keeping cookies and, once given, a bearer token.
struct Client<S, B> {
    service: S,
    jar: CookieJar,
    bearer: Option<String>,
    body: PhantomData<fn() -> B>,
}

/// What came back: the status and the body, as JSON when it is JSON.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// The status and the JSON body's `error`, or the text when the body is not JSON.
    fn outcome(&self) -> (u16, String) {
        let json = self.json();
        let detail = json["error"]
            .as_str()
            .map_or_else(|| self.text.trim().to_owned(), str::to_owned);
        (self.status.as_u16(), detail)
    }
}

fn outcome(status: u16, detail: &str) -> (u16, String) {
    (status, detail.to_owned())
}

impl<S, B, R> Client<S, B>
where
    S: Service<Request<B>, Response = Response<R>> + Clone,
    S::Error: Debug,
    B: From<String>,
    R: hyper::body::Body,
    R::Error: Debug,
{
    fn new(service: S) -> Self {
        Client {
            service,
            jar: CookieJar::default(),
            bearer: None,
            body: PhantomData,
        }
    }

    async fn send(&mut self, method: &str, path: &str, body: Option<(&str, String)>) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(bearer) = &self.bearer {
            request = request.header("authorization", format!("Bearer {bearer}"));
        }
        let (content_type, body) = body.unwrap_or(("", String::new()));
        if !content_type.is_empty() {
            request = request.header("content-type", content_type);
        }
        let mut request = request.body(B::from(body)).unwrap();
        self.jar.add_to(request.headers_mut());
        let response = self.service.clone().oneshot(request).await.unwrap();
        self.jar.update(response.headers());
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn get(&mut self, path: &str) -> Answer {
        self.send("GET", path, None).await
    }

    async fn post(&mut self, path: &str) -> Answer {
        self.send("POST", path, None).await
    }

    async fn post_json(&mut self, path: &str, body: Value) -> Answer {
        self.send("POST", path, Some(("application/json", body.to_string())))
            .await
    }

    #[cfg(feature = "axum-login")]
    async fn post_form(&mut self, path: &str, body: &str) -> Answer {
        let form = "application/x-www-form-urlencoded";
        self.send("POST", path, Some((form, body.to_owned()))).await
    }
}

/// A client of an axum application.
fn browser(app: &axum::Router) -> Client<axum::Router, axum::body::Body> {
    Client::new(app.clone())
}

/// The device id and the provisioning URI of an enrolment answer.
fn enrolled(answer: &Answer) -> (String, String) {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let json = answer.json();
    (
        json["device_id"].as_str().unwrap().to_owned(),
        json["otpauth_uri"].as_str().unwrap().to_owned(),
    )
}

// ----- axum_admin ----------------------------------------------------------------------------

#[tokio::test]
async fn axum_admin_reaches_every_end_state_it_describes() {
    let clock = clock();
    let app = axum_admin::app(engine(&clock)).unwrap();
    let mut alice = browser(&app);
    let login = json!({"username": "alice", "password": "password"});

    assert_eq!(alice.get("/").await.outcome(), outcome(200, "Public page."));
    assert_eq!(
        alice.get("/account").await.outcome(),
        outcome(401, "not_authenticated")
    );
    assert_eq!(
        alice.get("/admin").await.outcome(),
        outcome(401, "not_authenticated")
    );
    let refused = alice
        .post_json("/login", json!({"username": "alice", "password": "wrong"}))
        .await;
    assert_eq!(refused.outcome(), outcome(401, "invalid_credentials"));
    assert_eq!(alice.post_json("/login", login.clone()).await.status, 200);
    assert_eq!(
        alice.get("/admin").await.outcome(),
        outcome(403, "otp_setup_required")
    );

    let (device, uri) = enrolled(&alice.post("/enroll").await);
    let right = code(&uri, &clock);
    let bad_id = json!({"device_id": "nope", "code": right});
    assert_eq!(
        alice.post_json("/confirm", bad_id).await.outcome(),
        outcome(400, "invalid_device_id")
    );
    let wrong_code = json!({"device_id": device, "code": wrong(&right)});
    assert_eq!(
        alice.post_json("/confirm", wrong_code).await.outcome(),
        outcome(401, "invalid_code")
    );
    clock.advance(Duration::from_secs(2));
    let confirmed = alice
        .post_json("/confirm", json!({"device_id": device, "code": right}))
        .await;
    assert_eq!(confirmed.json(), json!({"verified": true}));
    assert_eq!(
        alice.get("/admin").await.outcome(),
        outcome(200, "Welcome to the admin, alice.")
    );
    assert_eq!(
        alice.get("/account").await.json(),
        json!({"user": "alice", "verified": true})
    );

    // bob is no staff member.
    let mut bob = browser(&app);
    let bob_login = json!({"username": "bob", "password": "password"});
    bob.post_json("/login", bob_login).await;
    assert_eq!(bob.get("/admin").await.outcome(), outcome(403, "forbidden"));

    // alice's next login: the password is not enough, for /admin or for a new device.
    clock.advance(Duration::from_secs(30));
    let mut laptop = browser(&app);
    laptop.post_json("/login", login).await;
    assert_eq!(
        laptop.get("/admin").await.outcome(),
        outcome(403, "otp_required")
    );
    assert_eq!(
        laptop.post("/enroll").await.outcome(),
        outcome(403, "otp_required")
    );
    let right = code(&uri, &clock);
    let wrong_code = json!({"code": wrong(&right)});
    assert_eq!(
        laptop.post_json("/verify", wrong_code).await.outcome(),
        outcome(401, "invalid_code")
    );
    // A wrong code makes the next one wait a second.
    assert_eq!(
        laptop
            .post_json("/verify", json!({"code": right}))
            .await
            .outcome(),
        outcome(429, "throttled")
    );
    clock.advance(Duration::from_secs(1));
    let verified = laptop.post_json("/verify", json!({"code": right})).await;
    assert_eq!(verified.json()["verified"], true, "{}", verified.text);
    assert_eq!(laptop.get("/admin").await.status, 200);
    assert_eq!(laptop.post("/logout").await.status, 204);
    assert_eq!(
        laptop.get("/admin").await.outcome(),
        outcome(401, "not_authenticated")
    );
    assert_eq!(
        alice.get("/admin").await.status,
        200,
        "other sessions go on"
    );
}

// ----- hyper_service -------------------------------------------------------------------------

#[tokio::test]
async fn hyper_service_enrols_and_reaches_every_end_state_it_describes() {
    type Body = http_body_util::Full<hyper::body::Bytes>;

    let clock = clock();
    let service = hyper_service::service::<Body>(engine(&clock)).unwrap();
    let mut client = Client::new(service.clone());
    assert_eq!(client.get("/").await.json(), json!({"public": true}));
    assert_eq!(client.get("/me").await.json(), json!({"verified": false}));
    assert_eq!(
        client.get("/secret").await.outcome(),
        outcome(401, "not_authenticated")
    );
    assert_eq!(
        client.post("/login").await.outcome(),
        outcome(400, "give_user_in_query")
    );
    let login = client.post("/login?user=alice").await;
    client.bearer = Some(login.json()["token"].as_str().unwrap().to_owned());
    assert_eq!(
        client.get("/secret").await.outcome(),
        outcome(403, "otp_setup_required")
    );
    assert_eq!(client.get("/me").await.json(), json!({"verified": false}));

    let (device, uri) = enrolled(&client.post("/enroll").await);
    let right = code(&uri, &clock);
    assert_eq!(
        client
            .send("POST", "/confirm", Some(("", "not json".into())))
            .await
            .outcome(),
        outcome(400, "invalid_json")
    );
    let wrong_code = json!({"device_id": device, "code": wrong(&right)});
    assert_eq!(
        client.post_json("/confirm", wrong_code).await.outcome(),
        outcome(401, "invalid_code")
    );
    clock.advance(Duration::from_secs(2));
    let confirmed = client
        .post_json("/confirm", json!({"device_id": device, "code": right}))
        .await
        .json();
    assert_eq!(confirmed["verified"], true);
    let old_token = client
        .bearer
        .replace(confirmed["token"].as_str().unwrap().into());
    assert_eq!(
        client.get("/secret").await.json(),
        json!({"secret": 42, "user": "alice"})
    );
    assert_eq!(
        client.get("/me").await.json(),
        json!({
            "verified": true,
            "user": "alice",
            "device_id": device,
            "device_kind": "totp",
            "remembered": false,
        })
    );
    let mut stale = Client::new(service.clone());
    stale.bearer = old_token;
    assert_eq!(
        stale.get("/secret").await.status,
        401,
        "the token changed on verification"
    );

    // The next login needs a code.
    clock.advance(Duration::from_secs(30));
    let mut next = Client::new(service.clone());
    let login = next.post("/login?user=alice").await;
    next.bearer = Some(login.json()["token"].as_str().unwrap().to_owned());
    assert_eq!(
        next.get("/secret").await.outcome(),
        outcome(403, "otp_required")
    );
    assert_eq!(
        next.post("/enroll").await.outcome(),
        outcome(403, "otp_required")
    );
    let verified = next
        .post_json("/verify", json!({"code": code(&uri, &clock)}))
        .await
        .json();
    next.bearer = Some(verified["token"].as_str().unwrap().to_owned());
    assert_eq!(next.get("/secret").await.status, 200);
    assert_eq!(
        next.post("/logout").await.json(),
        json!({"logged_out": true})
    );
    assert_eq!(
        next.get("/secret").await.outcome(),
        outcome(401, "not_authenticated")
    );
    assert_eq!(next.get("/me").await.json(), json!({"verified": false}));
    assert_eq!(next.get("/nope").await.outcome(), outcome(404, "not_found"));
}

// ----- axum_login ----------------------------------------------------------------------------

#[cfg(feature = "axum-login")]
#[tokio::test]
async fn axum_login_ends_the_verification_with_a_new_login_and_with_logout() {
    let clock = clock();
    let app = axum_login::app(engine(&clock));
    let mut alice = browser(&app);
    let password = "username=alice&password=password";

    assert_eq!(
        alice.get("/admin").await.outcome(),
        outcome(401, "not_authenticated")
    );
    assert_eq!(
        alice.post("/2fa/enroll").await.outcome(),
        outcome(401, "log in first")
    );
    assert_eq!(
        alice
            .post_form("/login", "username=alice&password=wrong")
            .await
            .outcome(),
        outcome(401, "wrong username or password")
    );
    assert_eq!(alice.post_form("/login", password).await.status, 200);
    assert_eq!(
        alice.get("/admin").await.outcome(),
        outcome(403, "otp_setup_required")
    );
    let (device, uri) = enrolled(&alice.post("/2fa/enroll").await);
    let right = code(&uri, &clock);
    let form = |code: &str| format!("device_id={device}&code={code}");
    assert_eq!(
        alice
            .post_form("/2fa/confirm", &form(wrong(&right)))
            .await
            .outcome(),
        outcome(401, "invalid_code")
    );
    clock.advance(Duration::from_secs(2));
    assert_eq!(
        alice
            .post_form("/2fa/confirm", &form(&right))
            .await
            .outcome(),
        outcome(200, "verified")
    );
    assert_eq!(
        alice.get("/admin").await.outcome(),
        outcome(200, "admin area, alice")
    );

    // Logging in again in the same browser starts a new login, unverified.
    assert_eq!(alice.post_form("/login", password).await.status, 200);
    assert_eq!(
        alice.get("/admin").await.outcome(),
        outcome(403, "otp_required")
    );
    clock.advance(Duration::from_secs(30));
    let verify = format!("code={}", code(&uri, &clock));
    assert_eq!(
        alice.post_form("/2fa/verify", &verify).await.outcome(),
        outcome(200, "verified")
    );
    assert_eq!(alice.get("/admin").await.status, 200);

    // axum-login's logout ends it too.
    assert_eq!(alice.post("/logout").await.status, 204);
    assert_eq!(
        alice.get("/admin").await.outcome(),
        outcome(401, "not_authenticated")
    );

    let mut bob = browser(&app);
    bob.post_form("/login", "username=bob&password=password")
        .await;
    assert_eq!(bob.get("/admin").await.outcome(), outcome(403, "forbidden"));
}

// ----- bearer_api ----------------------------------------------------------------------------

#[tokio::test]
async fn bearer_api_verifies_each_token_on_its_own() {
    let clock = clock();
    let app = bearer_api::app(engine(&clock));
    let credentials = json!({"username": "alice", "password": "password"});
    let mut first = browser(&app);
    let refused = first
        .post_json("/token", json!({"username": "alice", "password": "wrong"}))
        .await;
    assert_eq!(refused.outcome(), outcome(401, "invalid_credentials"));
    assert_eq!(
        first.get("/api/secret").await.outcome(),
        outcome(401, "not_authenticated")
    );
    let token = first.post_json("/token", credentials.clone()).await.json();
    first.bearer = Some(token["token"].as_str().unwrap().to_owned());
    assert_eq!(
        first.get("/api/secret").await.outcome(),
        outcome(403, "otp_setup_required")
    );

    let (device, uri) = enrolled(&first.post("/2fa/enroll").await);
    let right = code(&uri, &clock);
    assert_eq!(
        first
            .post_json("/2fa/confirm", json!({"device_id": "nope", "code": right}))
            .await
            .outcome(),
        outcome(400, "invalid_device_id")
    );
    let wrong_code = json!({"device_id": device, "code": wrong(&right)});
    assert_eq!(
        first.post_json("/2fa/confirm", wrong_code).await.outcome(),
        outcome(401, "invalid_code")
    );
    clock.advance(Duration::from_secs(2));
    let confirmed = first
        .post_json("/2fa/confirm", json!({"device_id": device, "code": right}))
        .await;
    assert_eq!(confirmed.json(), json!({"verified": true}));
    assert_eq!(
        first.get("/api/secret").await.json(),
        json!({"secret": 42, "user": "alice"})
    );

    // A new token of the same user starts unverified, and the same token is verified after.
    clock.advance(Duration::from_secs(30));
    let mut second = browser(&app);
    let token = second.post_json("/token", credentials).await.json();
    second.bearer = Some(token["token"].as_str().unwrap().to_owned());
    assert_eq!(
        second.get("/api/secret").await.outcome(),
        outcome(403, "otp_required")
    );
    assert_eq!(
        second.post("/2fa/enroll").await.outcome(),
        outcome(403, "otp_required")
    );
    let verified = second
        .post_json("/2fa/verify", json!({"code": code(&uri, &clock)}))
        .await;
    assert_eq!(verified.json(), json!({"verified": true}));
    assert_eq!(second.get("/api/secret").await.status, 200);
    assert_eq!(first.get("/api/secret").await.status, 200);
}

// ----- the scripted examples -----------------------------------------------------------------

#[tokio::test]
async fn the_events_example_prints_the_flow_it_narrates() {
    let names = events_example::run().await.unwrap();
    let narrated = [
        "device_added",
        "device_confirmed",
        "backup_codes_regenerated",
        "session_started",
        "user_verified",
        "verification_failed",
        "throttled",
        "backup_code_used",
        "logged_out",
    ];
    let mut rest = names.iter();
    for expected in narrated {
        assert!(
            rest.any(|name| *name == expected),
            "{expected} missing, or out of order, in {names:?}"
        );
    }
}

#[tokio::test]
async fn the_new_device_notice_example_sends_a_notice_per_usable_factor_change() {
    let sent = new_device_notice::run().await.unwrap();
    let bodies: Vec<&str> = sent.iter().map(|notice| notice.body.as_str()).collect();
    assert_eq!(bodies.len(), 3, "{bodies:?}");
    assert!(bodies[0].starts_with("A new second factor, \"Phone\""));
    assert!(bodies[1].starts_with("Backup codes were created"));
    assert!(bodies[2].starts_with("The second factor \"Phone\""));
    assert!(sent.iter().all(|notice| notice.to == "alice@example.com"));
}
