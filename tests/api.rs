//! The JSON API through the router: every endpoint, and every error code it answers with.

mod common;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::Response;
use axum::routing::post;
use serde_json::{Value, json};
use tower::ServiceExt;

use common::http::CookieJar;
use common::instrumented_store::InstrumentedStore;
use tower_otp::api::{self, ApiConfig};
use tower_otp::clock::{Clock, ManualClock, Timestamp};
use tower_otp::confirm::{Confirmer, DeviceMethod, OutOfBandMethod};
use tower_otp::device::OutboxSender;
use tower_otp::layer::OtpLayer;
use tower_otp::otp::{Algorithm, Digits, OtpKey, Secret};
use tower_otp::remember::RememberConfig;
use tower_otp::session::OtpSession;
use tower_otp::{MemoryStore, ServerKey, TwoFactor, UserId};

struct Harness {
    clock: ManualClock,
    store: InstrumentedStore,
    outbox: OutboxSender,
    app: Router,
}

fn harness() -> Harness {
    harness_with(|config| config)
}

fn harness_with(api_config: impl FnOnce(ApiConfig) -> ApiConfig) -> Harness {
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let store = InstrumentedStore::new(MemoryStore::new().with_clock(clock.clone()));
    let outbox = OutboxSender::new();
    let two_factor = TwoFactor::new(store.clone(), ServerKey::new(&[5; 32]).unwrap())
        .with_clock(clock.clone())
        .with_issuer("API test")
        .unwrap()
        .with_sender("email", outbox.clone())
        .with_sender("sms", outbox.clone());
    let confirmer = Confirmer::new(&two_factor)
        .with_clock(clock.clone())
        .with_method(OutOfBandMethod::new(two_factor.clone(), "email").into_method())
        .with_method(DeviceMethod::new(two_factor.clone()).into_method());
    let app = Router::new()
        .route("/login", post(login))
        .nest(
            "/2fa",
            api::router(api_config(ApiConfig::new().with_confirmer(confirmer))),
        )
        .layer(OtpLayer::new(two_factor).with_remember(RememberConfig::new([[8u8; 32]]).unwrap()));
    Harness {
        clock,
        store,
        outbox,
        app,
    }
}

/// The application's first factor, reduced to naming the user: the session token, or a 503
/// with the error's kind.
async fn login(session: OtpSession, body: String) -> (StatusCode, String) {
    let user = UserId::new(body).unwrap();
    match session.login(user).await {
        Ok(token) => (StatusCode::OK, token.expose().to_owned()),
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, error.kind().to_owned()),
    }
}

#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    json: Value,
}

impl Reply {
    fn error(&self) -> &str {
        self.json["error"].as_str().unwrap_or("")
    }

    fn expect(&self, status: StatusCode, error: &str) {
        assert_eq!(
            (self.status, self.error()),
            (status, error),
            "{:?}",
            self.json
        );
    }

    fn retry_after(&self) -> u64 {
        self.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    }
}

struct Client {
    app: Router,
    jar: CookieJar,
    bearer: Option<String>,
}

impl Client {
    async fn raw(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &str,
    ) -> Reply {
        let headers: Vec<(&str, &str)> = content_type
            .map(|content_type| ("content-type", content_type))
            .into_iter()
            .collect();
        self.send(method, path, &headers, body).await
    }

    async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        let response = self.request(method, path, headers, body).await;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            json,
        }
    }

    /// Sends a request with the client's cookies (or bearer token) and keeps the cookies it
    /// sets.
    async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Response {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(bearer) = &self.bearer {
            request = request.header("authorization", format!("Bearer {bearer}"));
        }
        let mut request = request.body(Body::from(body.to_owned())).unwrap();
        self.jar.add_to(request.headers_mut());
        let response = self.app.clone().oneshot(request).await.unwrap();
        self.jar.update(response.headers());
        response
    }

    async fn get(&mut self, path: &str) -> Reply {
        self.raw("GET", path, None, "").await
    }

    async fn delete(&mut self, path: &str) -> Reply {
        self.raw("DELETE", path, Some("application/json"), "").await
    }

    async fn post(&mut self, path: &str, body: Value) -> Reply {
        self.raw("POST", path, Some("application/json"), &body.to_string())
            .await
    }

    async fn patch(&mut self, path: &str, body: Value) -> Reply {
        self.raw("PATCH", path, Some("application/json"), &body.to_string())
            .await
    }

    /// Logs `user` in, presenting the session the client holds: the new session token, or
    /// the error's kind.
    async fn login(&mut self, user: &str) -> String {
        let response = self.request("POST", "/login", &[], user).await;
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }
}

/// A TOTP device added through the API: its id and a way to compute its codes.
struct Totp {
    id: String,
    key: OtpKey,
}

impl Totp {
    fn code(&self, clock: &ManualClock, offset: i64) -> String {
        let step = clock.now().as_secs() / 30;
        self.key
            .hotp(step.checked_add_signed(offset).unwrap())
            .reveal()
            .to_owned()
    }
}

impl Harness {
    fn client(&self) -> Client {
        Client {
            app: self.app.clone(),
            jar: CookieJar::default(),
            bearer: None,
        }
    }

    fn later(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }

    /// Adds a TOTP device through the API, unconfirmed.
    async fn pending_totp(&self, client: &mut Client) -> Totp {
        let reply = client
            .post("/2fa/devices", json!({"method": "totp", "name": "Phone"}))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.json);
        let secret =
            Secret::from_base32(reply.json["provisioning"]["secret"].as_str().unwrap()).unwrap();
        Totp {
            id: reply.json["device"]["id"].as_str().unwrap().to_owned(),
            key: OtpKey::new(secret, Algorithm::Sha1, Digits::SIX),
        }
    }

    /// Adds and confirms a TOTP device through the API (the session ends up verified).
    async fn totp(&self, client: &mut Client) -> Totp {
        let totp = self.pending_totp(client).await;
        let path = format!("/2fa/devices/{}/confirm", totp.id);
        let confirmed = client
            .post(&path, json!({"code": totp.code(&self.clock, 0)}))
            .await;
        assert_eq!(confirmed.status, StatusCode::OK, "{:?}", confirmed.json);
        self.later(30);
        totp
    }
}

#[tokio::test]
async fn methods_are_listed_for_anyone() {
    let h = harness();
    let reply = h.client().get("/2fa/methods").await;
    assert_eq!(reply.status, StatusCode::OK);
    let keys: Vec<&str> = reply.json["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["totp", "hotp", "backup_codes", "email", "sms"]);
    let confirmations: Vec<&str> = reply.json["confirmation_methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["key"].as_str().unwrap())
        .collect();
    assert!(confirmations.contains(&"device") && confirmations.contains(&"email"));
}

#[tokio::test]
async fn every_user_endpoint_needs_a_login() {
    let h = harness();
    let mut anonymous = h.client();
    let id = "0".repeat(32);
    for (method, path) in [
        ("GET", "/2fa/devices".to_owned()),
        ("POST", "/2fa/devices".to_owned()),
        ("POST", format!("/2fa/devices/{id}/confirm")),
        ("PATCH", format!("/2fa/devices/{id}")),
        ("DELETE", format!("/2fa/devices/{id}")),
        ("POST", "/2fa/disable".to_owned()),
        ("POST", "/2fa/backup-codes".to_owned()),
        ("GET", "/2fa/backup-codes".to_owned()),
        ("POST", "/2fa/challenges".to_owned()),
        ("POST", "/2fa/confirmations".to_owned()),
        ("POST", "/2fa/verify".to_owned()),
        ("GET", "/2fa/remembered".to_owned()),
        ("DELETE", "/2fa/remembered".to_owned()),
        ("POST", "/2fa/logout-all".to_owned()),
    ] {
        let reply = anonymous
            .raw(method, &path, Some("application/json"), "{}")
            .await;
        reply.expect(StatusCode::UNAUTHORIZED, "not_authenticated");
    }
    anonymous.bearer = Some("not-a-token".into());
    anonymous
        .get("/2fa/devices")
        .await
        .expect(StatusCode::UNAUTHORIZED, "invalid_session_token");
}

#[tokio::test]
async fn adding_a_totp_device_provisions_it_once() {
    let h = harness();
    let mut c = h.client();
    c.login("alice").await;
    let reply = c
        .post(
            "/2fa/devices",
            json!({"method": "totp", "name": "Work phone",
                                     "config": {"algorithm": "SHA256", "digits": 8, "period": 60}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.headers["cache-control"], "no-store");
    let provisioning = &reply.json["provisioning"];
    let uri = provisioning["otpauth_uri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/API%20test:alice?secret="),
        "{uri}"
    );
    assert!(
        uri.ends_with("&algorithm=SHA256&digits=8&period=60"),
        "{uri}"
    );
    assert!(uri.contains(provisioning["secret"].as_str().unwrap()));
    assert!(
        provisioning.get("qr_svg").is_none(),
        "the QR code only when asked for"
    );
    let size: usize = reply.headers["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(size < 2_000, "{size} bytes");
    assert_eq!(reply.json["device"]["confirmed"], false);
    assert_eq!(reply.json["device"]["method"], "totp");
    // Listing never shows the secret again.
    let list = c.get("/2fa/devices").await;
    assert_eq!(list.json["devices"].as_array().unwrap().len(), 1);
    assert!(
        !list
            .json
            .to_string()
            .contains(provisioning["secret"].as_str().unwrap())
    );

    let hotp = c
        .post("/2fa/devices", json!({"method": "hotp", "name": "Token"}))
        .await;
    assert_eq!(hotp.status, StatusCode::CREATED);
    assert!(
        hotp.json["provisioning"]["otpauth_uri"]
            .as_str()
            .unwrap()
            .contains("&counter=0")
    );
}

#[tokio::test]
async fn bad_device_requests_get_400s() {
    let h = harness();
    let mut c = h.client();
    c.login("alice").await;
    let cases = [
        (
            json!({"method": "totp", "name": "x", "config": {"digits": 7}}),
            "invalid_settings",
        ),
        (
            json!({"method": "totp", "name": "x", "config": {"algorithm": "MD5"}}),
            "invalid_settings",
        ),
        (
            json!({"method": "totp", "name": "x", "config": {"period": 0}}),
            "invalid_settings",
        ),
        (
            json!({"method": "totp", "name": "x", "config": {"colour": "red"}}),
            "invalid_settings",
        ),
        (
            json!({"method": "hotp", "name": "x", "config": {"period": 30}}),
            "invalid_settings",
        ),
        (
            json!({"method": "carrier-pigeon", "name": "x"}),
            "unknown_method",
        ),
        (
            json!({"method": "backup_codes", "name": "x"}),
            "unknown_method",
        ),
        (json!({"method": "totp", "name": ""}), "invalid_name"),
        (
            json!({"method": "email", "name": "x", "config": {"destination": "not an address"}}),
            "invalid_destination",
        ),
        (json!({"method": "email", "name": "x"}), "invalid_settings"),
        (json!({"name": "x"}), "invalid_request"),
    ];
    for (body, code) in cases {
        c.post("/2fa/devices", body.clone())
            .await
            .expect(StatusCode::BAD_REQUEST, code);
    }
    c.raw(
        "POST",
        "/2fa/devices",
        Some("application/json"),
        "{not json",
    )
    .await
    .expect(StatusCode::BAD_REQUEST, "malformed_json");
    c.raw("POST", "/2fa/devices", None, "{}")
        .await
        .expect(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    assert!(
        c.get("/2fa/devices").await.json["devices"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn confirming_a_device_checks_the_code() {
    let h = harness();
    let mut c = h.client();
    c.login("alice").await;
    let reply = c
        .post("/2fa/devices", json!({"method": "totp", "name": "Phone"}))
        .await;
    let id = reply.json["device"]["id"].as_str().unwrap().to_owned();
    let secret =
        Secret::from_base32(reply.json["provisioning"]["secret"].as_str().unwrap()).unwrap();
    let totp = Totp {
        id: id.clone(),
        key: OtpKey::new(secret, Algorithm::Sha1, Digits::SIX),
    };
    let path = format!("/2fa/devices/{id}/confirm");

    c.post(&path, json!({"code": "000000"}))
        .await
        .expect(StatusCode::UNAUTHORIZED, "invalid_code");
    let throttled = c.post(&path, json!({"code": totp.code(&h.clock, 0)})).await;
    throttled.expect(StatusCode::TOO_MANY_REQUESTS, "throttled");
    assert_eq!(throttled.retry_after(), 1);
    h.later(2);
    c.post(&path, json!({"code": "12a456"}))
        .await
        .expect(StatusCode::BAD_REQUEST, "malformed_code");
    h.later(5);
    c.post(
        &format!("/2fa/devices/{}/confirm", "f".repeat(32)),
        json!({"code": "123456"}),
    )
    .await
    .expect(StatusCode::NOT_FOUND, "device_not_found");
    c.post("/2fa/devices/..%2F/confirm", json!({"code": "123456"}))
        .await
        .expect(StatusCode::NOT_FOUND, "device_not_found");
    let ok = c.post(&path, json!({"code": totp.code(&h.clock, 0)})).await;
    assert_eq!(
        (ok.status, &ok.json["verified"]),
        (StatusCode::OK, &json!(true))
    );
    assert_eq!(ok.json["device"]["confirmed"], true);
    h.later(30);
    c.post(&path, json!({"code": totp.code(&h.clock, 0)}))
        .await
        .expect(StatusCode::CONFLICT, "device_already_confirmed");
}

#[tokio::test]
async fn a_user_id_with_a_colon_enrols() {
    let h = harness();
    let mut c = h.client();
    c.login("tenant:alice").await;
    let totp = h.totp(&mut c).await;
    let device = c.get("/2fa/devices").await.json["devices"][0].clone();
    assert_eq!(
        (&device["id"], &device["confirmed"]),
        (&json!(totp.id), &json!(true))
    );
    let reply = c
        .post("/2fa/devices", json!({"method": "hotp", "name": "Key"}))
        .await;
    let uri = reply.json["provisioning"]["otpauth_uri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://hotp/API%20test:tenant_alice?secret="),
        "{uri}"
    );
}

#[tokio::test]
async fn an_account_label_of_the_applications_own_is_made_valid() {
    let h = harness_with(|config| config.with_account_label(|user| format!("EU:{user}")));
    let mut c = h.client();
    c.login("alice").await;
    let reply = c
        .post("/2fa/devices", json!({"method": "totp", "name": "Phone"}))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.json);
    let uri = reply.json["provisioning"]["otpauth_uri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/API%20test:EU_alice?"),
        "{uri}"
    );
}

#[test]
fn an_issuer_that_would_break_every_enrolment_is_refused_at_once() {
    let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::generate());
    let refused = two_factor.clone().with_issuer("ACME:EU").unwrap_err();
    assert_eq!(refused.kind(), "colon_in_label");
    let refused = two_factor.clone().with_issuer("x".repeat(257)).unwrap_err();
    assert_eq!(refused.kind(), "label_too_long");
    assert!(two_factor.with_issuer("ACME EU").is_ok());
}

#[tokio::test]
async fn the_qr_code_comes_when_asked_for() {
    let h = harness();
    let mut c = h.client();
    c.login("alice").await;
    c.post(
        "/2fa/devices?qr=png",
        json!({"method": "totp", "name": "Phone"}),
    )
    .await
    .expect(StatusCode::BAD_REQUEST, "invalid_request");
    assert!(
        h.client().get("/2fa/status").await.json["devices"]
            .as_array()
            .is_some_and(Vec::is_empty),
        "a refused query adds nothing"
    );
    for method in ["totp", "hotp"] {
        let reply = c
            .post(
                "/2fa/devices?qr=svg",
                json!({"method": method, "name": method}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.json);
        let svg = reply.json["provisioning"]["qr_svg"].as_str().unwrap();
        assert!(svg.contains("<svg"), "{method}");
        assert!(reply.json["provisioning"]["otpauth_uri"].is_string());
    }
}

#[tokio::test]
async fn the_code_goes_by_either_name() {
    let h = harness();
    let mut c = h.client();
    c.login("alice").await;
    // `token`, the older name, confirms a device...
    let totp = h.pending_totp(&mut c).await;
    let path = format!("/2fa/devices/{}/confirm", totp.id);
    let confirmed = c
        .post(&path, json!({"token": totp.code(&h.clock, 0)}))
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{:?}", confirmed.json);
    // ...and verifies, as `code` does.
    for name in ["token", "code"] {
        h.later(30);
        let mut s = h.client();
        s.login("alice").await;
        let reply = s
            .post("/2fa/verify", json!({name: totp.code(&h.clock, 0)}))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{name}: {:?}", reply.json);
    }
    // Both at once is one field given twice.
    let mut s = h.client();
    s.login("alice").await;
    let both = s
        .post("/2fa/verify", json!({"code": "123456", "token": "123456"}))
        .await;
    both.expect(StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(both.json["message"], "duplicate field `code`");
}

#[tokio::test]
async fn a_missing_field_is_named_and_the_body_never_quoted() {
    let h = harness();
    let mut c = h.client();
    c.login("alice").await;
    let cases = [
        ("/2fa/verify", json!({}), "missing field `code`"),
        (
            "/2fa/verify",
            json!({"remember": true}),
            "missing field `code`",
        ),
        (
            "/2fa/devices/0123456789abcdef0123456789abcdef/confirm",
            json!({}),
            "missing field `code`",
        ),
        (
            "/2fa/devices",
            json!({"name": "x"}),
            "missing field `method`",
        ),
        ("/2fa/challenges", json!({}), "missing field `device_id`"),
    ];
    for (path, body, message) in cases {
        let reply = c.post(path, body).await;
        reply.expect(StatusCode::BAD_REQUEST, "invalid_request");
        assert_eq!(reply.json["message"], message, "{path}");
    }
    let reply = c
        .post(
            "/2fa/devices",
            json!({"method": "email", "name": "x", "config": {}}),
        )
        .await;
    reply.expect(StatusCode::BAD_REQUEST, "invalid_settings");
    assert_eq!(reply.json["message"], "config: missing field `destination`");
    // A code in the wrong shape, or in a field of its own, is not repeated back.
    for body in [
        json!({"code": 493817}),
        json!({"code": ["493817"]}),
        json!({"code": "x", "493817": true}),
    ] {
        let reply = c.post("/2fa/disable", body.clone()).await;
        reply.expect(StatusCode::BAD_REQUEST, "invalid_request");
        let message = reply.json["message"].as_str().unwrap();
        assert!(!message.contains("493817"), "{body}: {message}");
    }
}

#[tokio::test]
async fn sensitive_changes_need_a_recent_code_verification() {
    let h = harness();
    let mut c = h.client();
    c.login("alice").await;
    let totp = h.totp(&mut c).await;
    // A new login is not verified yet: a password alone changes no factor.
    let mut later = h.client();
    later.login("alice").await;
    let id = &totp.id;
    later
        .post("/2fa/devices", json!({"method": "totp", "name": "x"}))
        .await
        .expect(StatusCode::FORBIDDEN, "otp_required");
    later
        .delete(&format!("/2fa/devices/{id}"))
        .await
        .expect(StatusCode::FORBIDDEN, "otp_required");
    later
        .post("/2fa/disable", json!({}))
        .await
        .expect(StatusCode::BAD_REQUEST, "code_required");
    later
        .post("/2fa/backup-codes", json!({}))
        .await
        .expect(StatusCode::FORBIDDEN, "otp_required");
    later
        .patch(&format!("/2fa/devices/{id}"), json!({"name": "y"}))
        .await
        .expect(StatusCode::FORBIDDEN, "otp_required");
    later
        .get("/2fa/remembered")
        .await
        .expect(StatusCode::FORBIDDEN, "otp_required");

    assert_eq!(
        later
            .post("/2fa/verify", json!({"code": totp.code(&h.clock, 0)}))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        later.post("/2fa/backup-codes", json!({})).await.status,
        StatusCode::CREATED
    );
    // Twenty minutes later the verification is too old for changes, fine for the rest.
    h.later(20 * 60 + 1);
    later
        .post("/2fa/backup-codes", json!({}))
        .await
        .expect(StatusCode::FORBIDDEN, "reauthentication_required");
    assert_eq!(
        later
            .patch(&format!("/2fa/devices/{id}"), json!({"name": "Old phone"}))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn devices_are_renamed_defaulted_and_removed() {
    let h = harness();
    let mut c = h.client();
    c.login("alice").await;
    let totp = h.totp(&mut c).await;
    let path = format!("/2fa/devices/{}", totp.id);
    let renamed = c.patch(&path, json!({"name": "  Old phone "})).await;
    assert_eq!(renamed.json["device"]["name"], "Old phone");
    let defaulted = c.patch(&path, json!({"default": true})).await;
    assert_eq!(defaulted.json["device"]["default"], true);
    c.patch(&path, json!({"default": false}))
        .await
        .expect(StatusCode::BAD_REQUEST, "invalid_request");
    c.patch(&path, json!({"name": ""}))
        .await
        .expect(StatusCode::BAD_REQUEST, "invalid_name");
    c.patch(&path, json!({"colour": "red"}))
        .await
        .expect(StatusCode::BAD_REQUEST, "invalid_request");
    c.patch(
        &format!("/2fa/devices/{}", "e".repeat(32)),
        json!({"name": "x"}),
    )
    .await
    .expect(StatusCode::NOT_FOUND, "device_not_found");

    let deleted = c.delete(&path).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    c.delete(&path)
        .await
        .expect(StatusCode::NOT_FOUND, "device_not_found");
}

#[tokio::test]
async fn disabling_removes_every_device_and_remembered_browser() {
    let h = harness();
    let mut c = h.client();
    c.login("alice").await;
    let totp = h.totp(&mut c).await;
    c.post("/2fa/backup-codes", json!({})).await;
    let verified = c
        .post(
            "/2fa/verify",
            json!({"code": totp.code(&h.clock, 0), "remember": true}),
        )
        .await;
    assert_eq!(verified.json["remembered"], true);
    h.later(30);
    let reply = c
        .post("/2fa/disable", json!({"code": totp.code(&h.clock, 0)}))
        .await;
    assert_eq!(
        (reply.status, &reply.json["removed"]),
        (StatusCode::OK, &json!(2)),
        "{:?}",
        reply.json
    );
    let status = c.get("/2fa/status").await;
    assert_eq!(status.json["configured"], false);
    assert!(
        c.get("/2fa/remembered").await.json["remembered"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn disabling_needs_a_code_even_from_a_verified_session() {
    let h = harness();
    let mut c = h.client();
    c.login("alice").await;
    h.totp(&mut c).await;
    let codes = c.post("/2fa/backup-codes", json!({})).await.json["codes"].clone();
    let devices = |reply: Reply| reply.json["devices"].as_array().unwrap().len();

    c.post("/2fa/disable", json!({}))
        .await
        .expect(StatusCode::BAD_REQUEST, "code_required");
    c.post("/2fa/disable", json!({"code": "000000"}))
        .await
        .expect(StatusCode::UNAUTHORIZED, "invalid_code");
    c.post("/2fa/disable", json!({"code": "123456", "colour": "red"}))
        .await
        .expect(StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(devices(c.get("/2fa/devices").await), 2, "nothing removed");

    // A password-only session that knows a code is the user: the code is the factor. The
    // backup code comes in the `token` field, the alias of `code`.
    h.later(60);
    let mut fresh = h.client();
    fresh.login("alice").await;
    let reply = fresh.post("/2fa/disable", json!({"token": codes[0]})).await;
    assert_eq!(
        (reply.status, &reply.json["removed"]),
        (StatusCode::OK, &json!(2)),
        "{:?}",
        reply.json
    );
    assert_eq!(devices(fresh.get("/2fa/devices").await), 0);
}

#[tokio::test]
async fn disabling_without_a_confirmed_device_needs_no_code() {
    let h = harness();
    let mut c = h.client();
    c.login("bob").await;
    let pending = c
        .post("/2fa/devices", json!({"method": "totp", "name": "Phone"}))
        .await;
    assert_eq!(pending.status, StatusCode::CREATED);
    let reply = c.post("/2fa/disable", json!({})).await;
    // The pending device goes with it.
    assert_eq!(
        (reply.status, &reply.json),
        (StatusCode::OK, &json!({"removed": 1}))
    );
    assert_eq!(c.get("/2fa/devices").await.json["devices"], json!([]));
}

#[tokio::test]
async fn a_bearer_client_keeps_its_session_through_disabling() {
    let h = harness();
    let mut browser = h.client();
    browser.login("alice").await;
    let totp = h.totp(&mut browser).await;
    let mut api = h.client();
    let token = api.login("alice").await;
    api.jar = CookieJar::default();
    api.bearer = Some(token.clone());
    let reply = api
        .post("/2fa/disable", json!({"code": totp.code(&h.clock, 0)}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
    let rotated = reply.json["token"].as_str().unwrap().to_owned();
    assert_ne!(rotated, token);
    api.bearer = Some(rotated);
    assert_eq!(api.get("/2fa/status").await.json["authenticated"], true);
}

#[tokio::test]
async fn backup_codes_are_shown_once_and_counted() {
    let h = harness();
    let mut c = h.client();
    c.login("alice").await;
    assert_eq!(c.get("/2fa/backup-codes").await.json["remaining"], 0);
    // Backup codes back up a factor: none without one.
    c.post("/2fa/backup-codes", json!({}))
        .await
        .expect(StatusCode::CONFLICT, "not_configured");
    h.totp(&mut c).await;
    let created = c.post("/2fa/backup-codes", json!({})).await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.headers["cache-control"], "no-store");
    let codes: Vec<String> = created.json["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!((codes.len(), &created.json["remaining"]), (10, &json!(10)));

    let mut other = h.client();
    other.login("alice").await;
    let used = other.post("/2fa/verify", json!({"code": codes[0]})).await;
    assert_eq!(
        (used.status, &used.json["backup_codes_remaining"]),
        (StatusCode::OK, &json!(9))
    );
    assert_eq!(other.get("/2fa/backup-codes").await.json["remaining"], 9);
    h.later(5);
    let mut third = h.client();
    third.login("alice").await;
    third
        .post("/2fa/verify", json!({"code": codes[0]}))
        .await
        .expect(StatusCode::UNAUTHORIZED, "invalid_code");
}

#[tokio::test]
async fn out_of_band_devices_get_codes_with_a_cooldown() {
    let h = harness();
    let mut c = h.client();
    c.login("alice").await;
    let added = c
        .post("/2fa/devices", json!({"method": "email", "name": "Mail", "config": {"destination": "alice@example.com"}}))
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{:?}", added.json);
    assert_eq!(added.json["challenge"]["destination"], "a***@example.com");
    assert_eq!(added.json["device"]["destination"], "a***@example.com");
    let id = added.json["device"]["id"].as_str().unwrap().to_owned();

    let again = c.post("/2fa/challenges", json!({"device_id": id})).await;
    again.expect(StatusCode::TOO_MANY_REQUESTS, "cooldown");
    assert_eq!(again.retry_after(), 30);
    c.post("/2fa/challenges", json!({"device_id": "nope"}))
        .await
        .expect(StatusCode::NOT_FOUND, "device_not_found");
    c.post("/2fa/challenges", json!({}))
        .await
        .expect(StatusCode::BAD_REQUEST, "invalid_request");
    h.later(31);
    let resent = c.post("/2fa/challenges", json!({"device_id": id})).await;
    assert_eq!(
        (resent.status, &resent.json["destination"]),
        (StatusCode::OK, &json!("a***@example.com"))
    );

    let code = h.outbox.last_code_for("alice@example.com").unwrap();
    let confirmed = c
        .post(&format!("/2fa/devices/{id}/confirm"), json!({"code": code}))
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{:?}", confirmed.json);
    // An authenticator device cannot be sent a code.
    let totp = h.totp(&mut c).await;
    c.post("/2fa/challenges", json!({"device_id": totp.id}))
        .await
        .expect(StatusCode::NOT_FOUND, "device_not_found");
}

#[tokio::test]
async fn verify_answers_every_failure_distinctly_but_never_says_replay() {
    let h = harness();
    let mut c = h.client();
    c.login("bob").await;
    c.post("/2fa/verify", json!({"code": "123456"}))
        .await
        .expect(StatusCode::CONFLICT, "not_configured");
    let totp = h.totp(&mut c).await;
    let mut s = h.client();
    s.login("bob").await;
    let code = totp.code(&h.clock, 0);
    let ok = s
        .post("/2fa/verify", json!({"device_id": totp.id, "code": code}))
        .await;
    assert_eq!(
        (ok.status, &ok.json["device_id"]),
        (StatusCode::OK, &json!(totp.id))
    );
    assert_eq!(ok.json["remembered"], false);
    h.later(5);
    s.post("/2fa/verify", json!({"code": code}))
        .await
        .expect(StatusCode::UNAUTHORIZED, "invalid_code");
    s.post("/2fa/verify", json!({"code": "000000"}))
        .await
        .expect(StatusCode::TOO_MANY_REQUESTS, "throttled");
    s.post(
        "/2fa/verify",
        json!({"device_id": "0".repeat(32), "code": "000000"}),
    )
    .await
    .expect(StatusCode::NOT_FOUND, "device_not_found");
    s.post("/2fa/verify", json!({"device_id": "bad", "code": "000000"}))
        .await
        .expect(StatusCode::NOT_FOUND, "device_not_found");
    s.post("/2fa/verify", json!({"code": 123456}))
        .await
        .expect(StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn a_locked_user_gets_429_with_the_wait() {
    let h = harness();
    let mut c = h.client();
    c.login("carol").await;
    h.totp(&mut c).await;
    for _ in 0..100 {
        // The waits outlast sessions: log in again each time, as a patient attacker would.
        c.login("carol").await;
        let reply = c.post("/2fa/verify", json!({"code": "000000"})).await;
        assert!(
            matches!(reply.error(), "invalid_code" | "throttled"),
            "{:?}",
            reply.json
        );
        h.later(16 * 60);
    }
    c.login("carol").await;
    let locked = c.post("/2fa/verify", json!({"code": "000000"})).await;
    locked.expect(StatusCode::TOO_MANY_REQUESTS, "locked");
    assert!(locked.retry_after() > 23 * 3600);
}

#[tokio::test]
async fn bearer_clients_get_the_upgraded_token() {
    let h = harness();
    let mut browser = h.client();
    browser.login("alice").await;
    let totp = h.totp(&mut browser).await;

    let mut api = h.client();
    let token = api.login("alice").await;
    api.jar = CookieJar::default();
    api.bearer = Some(token.clone());
    let verified = api
        .post(
            "/2fa/verify",
            json!({"code": totp.code(&h.clock, 0), "remember": true}),
        )
        .await;
    assert_eq!(verified.status, StatusCode::OK);
    assert_eq!(
        verified.json["remembered"], false,
        "no cookies for bearer clients"
    );
    assert!(verified.headers.get("set-cookie").is_none());
    let upgraded = verified.json["token"].as_str().unwrap().to_owned();
    assert_ne!(upgraded, token);
    api.get("/2fa/status").await.expect(StatusCode::OK, "");
    assert_eq!(
        api.get("/2fa/status").await.json["authenticated"],
        false,
        "the old token is gone"
    );
    api.bearer = Some(upgraded);
    let status = api.get("/2fa/status").await;
    assert_eq!(
        (&status.json["verified"], &status.json["user"]),
        (&json!(true), &json!("alice"))
    );
}

#[tokio::test]
async fn remembered_browsers_are_listed_and_revoked() {
    let h = harness();
    let mut c = h.client();
    c.login("alice").await;
    let totp = h.totp(&mut c).await;
    let reply = c
        .post(
            "/2fa/verify",
            json!({"code": totp.code(&h.clock, 0), "remember": true}),
        )
        .await;
    assert_eq!(reply.json["remembered"], true);
    assert!(c.jar.get("__Host-otp-remember").is_some());
    let list = c.get("/2fa/remembered").await;
    let browsers = list.json["remembered"].as_array().unwrap();
    assert_eq!(browsers.len(), 1);
    let id = browsers[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(browsers[0]["device_id"], json!(totp.id));

    // A new login in this browser is verified by the cookie.
    c.login("alice").await;
    let status = c.get("/2fa/status").await;
    assert_eq!(
        (&status.json["verified"], &status.json["remembered"]),
        (&json!(true), &json!(true))
    );

    assert_eq!(
        c.delete(&format!("/2fa/remembered/{id}")).await.status,
        StatusCode::NO_CONTENT
    );
    c.delete(&format!("/2fa/remembered/{id}"))
        .await
        .expect(StatusCode::NOT_FOUND, "remembered_not_found");
    c.delete("/2fa/remembered/xyz")
        .await
        .expect(StatusCode::NOT_FOUND, "remembered_not_found");
    let all = c.delete("/2fa/remembered").await;
    assert_eq!(
        (all.status, &all.json["forgotten"]),
        (StatusCode::OK, &json!(0))
    );
}

#[tokio::test]
async fn status_reports_the_session() {
    let h = harness();
    let mut c = h.client();
    let anonymous = c.get("/2fa/status").await;
    assert_eq!(
        anonymous.json,
        json!({"authenticated": false, "user": null, "verified": false, "device": null,
               "verified_at": null, "remembered": false, "configured": false, "devices": []})
    );
    c.login("alice").await;
    let totp = h.totp(&mut c).await;
    let status = c.get("/2fa/status").await.json;
    assert_eq!(status["device"], json!({"id": totp.id, "kind": "totp"}));
    assert_eq!(status["configured"], true);
    assert!(status["verified_at"].as_u64().unwrap() >= 1_800_000_000_000);
}

#[tokio::test]
async fn status_offers_the_confirmed_devices_before_the_second_factor() {
    let h = harness();
    let mut c = h.client();
    c.login("alice").await;
    let totp = h.totp(&mut c).await;
    let mail = c
        .post(
            "/2fa/devices",
            json!({"method": "email", "name": "Mail",
                                      "config": {"destination": "alice@example.com"}}),
        )
        .await;
    let mail_id = mail.json["device"]["id"].as_str().unwrap().to_owned();
    let code = h.outbox.last_code_for("alice@example.com").unwrap();
    let confirmed = c
        .post(
            &format!("/2fa/devices/{mail_id}/confirm"),
            json!({"code": code}),
        )
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{:?}", confirmed.json);
    c.patch(&format!("/2fa/devices/{mail_id}"), json!({"default": true}))
        .await;
    h.later(30);
    let pending = c
        .post(
            "/2fa/devices",
            json!({"method": "hotp", "name": "Pending token"}),
        )
        .await;
    assert_eq!(pending.status, StatusCode::CREATED, "{:?}", pending.json);

    let mut login_page = h.client();
    login_page.login("alice").await;
    let status = login_page.get("/2fa/status").await;
    assert_eq!(status.status, StatusCode::OK);
    assert_eq!(
        (&status.json["authenticated"], &status.json["verified"]),
        (&json!(true), &json!(false))
    );
    // Exactly what choosing a device needs: no secrets, no times, no pending device.
    assert_eq!(
        status.json["devices"],
        json!([
            {"id": totp.id, "kind": "totp", "name": "Phone", "default": false},
            {"id": mail_id, "kind": "out_of_band", "name": "Mail", "default": true,
             "destination": "a***@example.com"},
        ])
    );
}

#[tokio::test]
async fn reading_factors_needs_the_second_factor() {
    let h = harness();
    let mut c = h.client();
    c.login("alice").await;
    let totp = h.totp(&mut c).await;
    c.post("/2fa/backup-codes", json!({})).await;

    let mut password_only = h.client();
    password_only.login("alice").await;
    for path in ["/2fa/devices", "/2fa/backup-codes", "/2fa/remembered"] {
        password_only
            .get(path)
            .await
            .expect(StatusCode::FORBIDDEN, "otp_required");
    }
    let verified = password_only
        .post("/2fa/verify", json!({"code": totp.code(&h.clock, 0)}))
        .await;
    assert_eq!(verified.status, StatusCode::OK);
    for path in ["/2fa/devices", "/2fa/backup-codes", "/2fa/remembered"] {
        let reply = password_only.get(path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {:?}", reply.json);
    }
}

/// Every state-changing request the API serves (and two it does not), with a body each
/// would accept.
fn state_changing_requests(device: &str) -> Vec<(&'static str, String, Value)> {
    let id = "0".repeat(32);
    vec![
        (
            "POST",
            "/2fa/devices".into(),
            json!({"method": "totp", "name": "Evil"}),
        ),
        (
            "PATCH",
            format!("/2fa/devices/{device}"),
            json!({"name": "Evil"}),
        ),
        ("DELETE", format!("/2fa/devices/{device}"), json!({})),
        (
            "POST",
            format!("/2fa/devices/{device}/confirm"),
            json!({"code": "123456"}),
        ),
        ("POST", "/2fa/disable".into(), json!({"code": "123456"})),
        ("POST", "/2fa/backup-codes".into(), json!({})),
        (
            "POST",
            "/2fa/challenges".into(),
            json!({"device_id": device}),
        ),
        (
            "POST",
            "/2fa/confirmations".into(),
            json!({"method": "device"}),
        ),
        (
            "POST",
            format!("/2fa/confirmations/{id}/confirm"),
            json!({}),
        ),
        (
            "POST",
            "/2fa/verify".into(),
            json!({"code": "123456", "remember": true}),
        ),
        ("DELETE", "/2fa/remembered".into(), json!({})),
        ("DELETE", format!("/2fa/remembered/{id}"), json!({})),
        ("POST", "/2fa/logout".into(), json!({})),
        ("POST", "/2fa/logout-all".into(), json!({})),
        ("POST", "/2fa/no-such-endpoint".into(), json!({})),
        ("PUT", "/2fa/status".into(), json!({})),
    ]
}

/// A verified session with a TOTP device and backup codes, its device ids.
async fn verified_user(h: &Harness, c: &mut Client) -> Totp {
    c.login("alice").await;
    let totp = h.totp(c).await;
    let codes = c.post("/2fa/backup-codes", json!({})).await;
    assert_eq!(codes.status, StatusCode::CREATED);
    totp
}

/// The session still stands, verified, with both devices and all ten backup codes.
async fn nothing_changed(c: &mut Client) {
    let status = c.get("/2fa/status").await.json;
    assert_eq!(
        (&status["authenticated"], &status["verified"]),
        (&json!(true), &json!(true)),
        "{status}"
    );
    assert_eq!(
        c.get("/2fa/devices").await.json["devices"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(c.get("/2fa/backup-codes").await.json["remaining"], 10);
    assert_eq!(c.get("/2fa/remembered").await.json["remembered"], json!([]));
}

#[tokio::test]
async fn other_sites_cannot_change_anything() {
    let h = harness();
    let mut c = h.client();
    let totp = verified_user(&h, &mut c).await;
    let host = ("host", "app.example.com");
    let forgeries: [&[(&str, &str)]; 5] = [
        &[host, ("sec-fetch-site", "cross-site")],
        &[host, ("origin", "https://evil.example")],
        &[host, ("origin", "null")],
        // A sibling subdomain is `same-site` to the browser, but not the same origin.
        &[
            host,
            ("sec-fetch-site", "same-site"),
            ("origin", "https://blog.example.com"),
        ],
        &[host, ("origin", "https://app.example.com:8443")],
    ];
    for (method, path, body) in state_changing_requests(&totp.id) {
        for forgery in forgeries {
            let mut headers = forgery.to_vec();
            headers.push(("content-type", "application/json"));
            let reply = c.send(method, &path, &headers, &body.to_string()).await;
            reply.expect(StatusCode::FORBIDDEN, "cross_site_request");
            assert!(reply.json["message"].is_string(), "{:?}", reply.json);
        }
    }
    nothing_changed(&mut c).await;
}

#[tokio::test]
async fn only_json_requests_change_anything() {
    let h = harness();
    let mut c = h.client();
    let totp = verified_user(&h, &mut c).await;
    // What a form, or a `fetch` that needs no preflight, can send.
    let simple = [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
    ];
    for (method, path, body) in state_changing_requests(&totp.id) {
        for content_type in simple {
            c.raw(method, &path, content_type, &body.to_string())
                .await
                .expect(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
        }
    }
    nothing_changed(&mut c).await;
}

#[tokio::test]
async fn the_own_origin_and_same_site_fetches_pass() {
    let h = harness();
    let mut c = h.client();
    let totp = verified_user(&h, &mut c).await;
    let path = format!("/2fa/devices/{}", totp.id);
    let host = ("host", "app.example.com:8443");
    let allowed: [&[(&str, &str)]; 6] = [
        &[],
        &[host, ("origin", "https://app.example.com:8443")],
        &[
            host,
            ("origin", "https://APP.example.com:8443"),
            ("sec-fetch-site", "same-origin"),
        ],
        &[host, ("sec-fetch-site", "same-site")],
        &[host, ("sec-fetch-site", "none")],
        &[
            ("host", "app.example.com"),
            ("origin", "https://app.example.com"),
        ],
    ];
    for (i, headers) in allowed.into_iter().enumerate() {
        let mut headers = headers.to_vec();
        headers.push(("content-type", "application/json; charset=utf-8"));
        let name = format!("Phone {i}");
        let reply = c
            .send("PATCH", &path, &headers, &json!({"name": name}).to_string())
            .await;
        assert_eq!(
            (reply.status, &reply.json["device"]["name"]),
            (StatusCode::OK, &json!(name)),
            "{headers:?}"
        );
    }
    // Reading is not checked: the answer is not the other site's to read.
    let read = c
        .send(
            "GET",
            "/2fa/status",
            &[("sec-fetch-site", "cross-site")],
            "",
        )
        .await;
    assert_eq!(read.status, StatusCode::OK);
}

#[tokio::test]
async fn forwarded_headers_name_the_origin_only_when_trusted() {
    let behind_proxy = [
        ("host", "10.0.0.7:8080"),
        ("x-forwarded-host", "app.example.com"),
        ("x-forwarded-proto", "https"),
        ("origin", "https://app.example.com"),
        ("content-type", "application/json"),
    ];
    let downgraded = [
        ("host", "10.0.0.7:8080"),
        ("x-forwarded-host", "app.example.com"),
        ("x-forwarded-proto", "https"),
        ("origin", "http://app.example.com"),
        ("content-type", "application/json"),
    ];
    for trusted in [false, true] {
        let h = harness_with(|config| config.with_trusted_forwarded_headers(trusted));
        let mut c = h.client();
        c.login("alice").await;
        let reply = c.send("POST", "/2fa/logout", &downgraded, "{}").await;
        reply.expect(StatusCode::FORBIDDEN, "cross_site_request");
        let reply = c.send("POST", "/2fa/logout", &behind_proxy, "{}").await;
        if trusted {
            assert_eq!(reply.json["logged_out"], true, "{:?}", reply.json);
        } else {
            reply.expect(StatusCode::FORBIDDEN, "cross_site_request");
        }
    }
}

#[tokio::test]
async fn a_login_replaces_a_malformed_session_token() {
    let h = harness();
    let mut c = h.client();
    c.jar
        .apply("__Host-otp-session=not-a-session-token; Path=/");
    let token = c.login("alice").await;
    assert_eq!(c.jar.get("__Host-otp-session"), Some(token.as_str()));
    assert_eq!(c.get("/2fa/status").await.json["user"], "alice");

    let mut api = h.client();
    api.bearer = Some("not-a-session-token".into());
    let token = api.login("alice").await;
    api.bearer = Some(token);
    assert_eq!(api.get("/2fa/status").await.json["user"], "alice");
}

#[tokio::test]
async fn a_login_fails_closed_while_the_store_is_down() {
    let h = harness();
    let mut c = h.client();
    let first = c.login("alice").await;
    h.store.set_down(true);
    assert_eq!(c.login("alice").await, "store_unavailable");
    h.store.set_down(false);
    assert_eq!(
        c.jar.get("__Host-otp-session"),
        Some(first.as_str()),
        "the old session is kept"
    );
    assert_eq!(c.get("/2fa/status").await.json["user"], "alice");
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn a_login_replaces_a_damaged_session_record() {
    use common::redis_server::RedisServer;
    use tower_otp::session::SessionToken;
    use tower_otp::store::RedisStore;

    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let two_factor = TwoFactor::new(store, ServerKey::new(&[5; 32]).unwrap());
    let app = Router::new()
        .route("/login", post(login))
        .nest("/2fa", api::router(ApiConfig::new()))
        .layer(OtpLayer::new(two_factor));
    let mut c = Client {
        app,
        jar: CookieJar::default(),
        bearer: None,
    };
    let old = c.login("alice").await;
    let (_, key) = SessionToken::parse(&old).unwrap();
    // The user's sessions hash, field = the session digest.
    let pattern = format!("*{{{}}}:s", key.tag().as_str());
    let stored = server.query(&["KEYS", &pattern]).strings();
    assert_eq!(stored.len(), 1, "{stored:?}");
    server.query(&["HSET", &stored[0], key.digest(), "{damaged"]);
    c.get("/2fa/status")
        .await
        .expect(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable");

    let new = c.login("alice").await;
    assert!(SessionToken::parse(&new).is_some(), "{new}");
    assert_ne!(new, old);
    assert_eq!(
        server.query(&["HEXISTS", &stored[0], key.digest()]).int(),
        0,
        "the damaged record is gone"
    );
    assert_eq!(c.get("/2fa/status").await.json["user"], "alice");
}

#[tokio::test]
async fn logout_and_logout_all() {
    let h = harness();
    let mut laptop = h.client();
    let mut phone = h.client();
    laptop.login("alice").await;
    phone.login("alice").await;
    let out = phone.post("/2fa/logout", json!({})).await;
    assert_eq!(out.json["logged_out"], true);
    assert_eq!(
        phone.post("/2fa/logout", json!({})).await.json["logged_out"],
        false
    );
    phone.login("alice").await;
    let all = laptop.post("/2fa/logout-all", json!({})).await;
    assert_eq!(all.json["sessions"], 2);
    assert_eq!(phone.get("/2fa/status").await.json["authenticated"], false);
}

#[tokio::test]
async fn confirmations_are_requested_checked_and_confirmed() {
    let h = harness();
    let mut c = h.client();
    c.login("alice").await;
    let totp = h.totp(&mut c).await;
    let requested = c
        .post(
            "/2fa/confirmations",
            json!({"method": "device", "state": {"action": "delete_account"}}),
        )
        .await;
    assert_eq!(
        requested.status,
        StatusCode::CREATED,
        "{:?}",
        requested.json
    );
    assert_eq!(requested.json["status"], "in_process");
    let id = requested.json["id"].as_str().unwrap().to_owned();
    assert_eq!(
        c.get(&format!("/2fa/confirmations/{id}")).await.json["status"],
        "in_process"
    );

    let path = format!("/2fa/confirmations/{id}/confirm");
    let rejected = c.post(&path, json!({"data": {"code": "000000"}})).await;
    rejected.expect(StatusCode::UNAUTHORIZED, "confirmation_rejected");
    h.later(3);
    let confirmed = c
        .post(&path, json!({"data": {"code": totp.code(&h.clock, 0)}}))
        .await;
    assert_eq!(
        (confirmed.status, &confirmed.json["status"]),
        (StatusCode::OK, &json!("confirmed")),
        "{:?}",
        confirmed.json
    );
    c.post(&path, json!({"data": {"code": "000000"}}))
        .await
        .expect(StatusCode::CONFLICT, "confirmation_already_confirmed");

    c.post("/2fa/confirmations", json!({"method": "telepathy"}))
        .await
        .expect(StatusCode::NOT_FOUND, "unknown_method");
    c.get(&format!("/2fa/confirmations/{}", "A".repeat(43)))
        .await
        .expect(StatusCode::NOT_FOUND, "confirmation_not_found");
    c.get("/2fa/confirmations/short")
        .await
        .expect(StatusCode::NOT_FOUND, "confirmation_not_found");
    // Another user cannot see it.
    let mut bob = h.client();
    bob.login("bob").await;
    bob.get(&format!("/2fa/confirmations/{id}"))
        .await
        .expect(StatusCode::NOT_FOUND, "confirmation_not_found");
}

#[tokio::test]
async fn new_destinations_are_confirmed_by_email() {
    let h = harness();
    let mut c = h.client();
    c.login("alice").await;
    let requested = c
        .post(
            "/2fa/confirmations",
            json!({"method": "email", "state": {"destination": "new@example.com"}}),
        )
        .await;
    assert_eq!(
        requested.status,
        StatusCode::CREATED,
        "{:?}",
        requested.json
    );
    let id = requested.json["id"].as_str().unwrap().to_owned();
    let code = h.outbox.last_code_for("new@example.com").unwrap();
    let confirmed = c
        .post(
            &format!("/2fa/confirmations/{id}/confirm"),
            json!({"data": {"code": code}}),
        )
        .await;
    assert_eq!(
        confirmed.json["status"], "confirmed",
        "{:?}",
        confirmed.json
    );
    let status = c.get("/2fa/status").await.json;
    assert_eq!(status["devices"][0]["kind"], "out_of_band");
    c.post(
        "/2fa/confirmations",
        json!({"method": "email", "state": {}}),
    )
    .await
    .expect(StatusCode::BAD_REQUEST, "invalid_data");
}

#[tokio::test]
async fn the_store_down_is_503_everywhere() {
    let h = harness();
    let mut c = h.client();
    c.login("alice").await;
    h.store.set_down(true);
    for (method, path) in [
        ("GET", "/2fa/devices"),
        ("GET", "/2fa/status"),
        ("POST", "/2fa/verify"),
        ("GET", "/2fa/backup-codes"),
    ] {
        let reply = c
            .raw(
                method,
                path,
                Some("application/json"),
                r#"{"code": "123456"}"#,
            )
            .await;
        reply.expect(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable");
    }
    h.store.set_down(false);
    assert_eq!(c.get("/2fa/status").await.json["authenticated"], true);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_json() {
    let h = harness();
    let mut c = h.client();
    c.get("/2fa/nothing-here")
        .await
        .expect(StatusCode::NOT_FOUND, "not_found");
    c.delete("/2fa/status")
        .await
        .expect(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

#[tokio::test]
async fn a_session_that_passed_only_the_password_tries_ten_codes_then_ends() {
    let h = harness();
    let mut owner = h.client();
    owner.login("alice").await;
    let totp = h.totp(&mut owner).await;
    let mut guesser = h.client();
    guesser.login("alice").await;
    for _ in 0..10 {
        guesser
            .post("/2fa/verify", json!({"code": "000000"}))
            .await
            .expect(StatusCode::UNAUTHORIZED, "invalid_code");
        // Past the device's throttle (at most 256 s after 9 failures), within the session's
        // idle time: only the session's own limit can refuse.
        h.later(9 * 60);
    }
    // Even the right code is not checked any more: the session is over.
    guesser
        .post("/2fa/verify", json!({"code": totp.code(&h.clock, 0)}))
        .await
        .expect(StatusCode::UNAUTHORIZED, "too_many_attempts");
    let status = guesser.get("/2fa/status").await;
    assert_eq!(status.json["authenticated"], json!(false));
    // A new login starts a new count.
    guesser.login("alice").await;
    let verified = guesser
        .post("/2fa/verify", json!({"code": totp.code(&h.clock, 0)}))
        .await;
    assert_eq!(verified.status, StatusCode::OK, "{:?}", verified.json);
}

#[tokio::test]
async fn a_session_that_passed_only_the_password_lives_ten_minutes_idle() {
    let h = harness();
    let mut owner = h.client();
    owner.login("alice").await;
    let totp = h.totp(&mut owner).await;
    let mut pending = h.client();
    pending.login("alice").await;
    let mut verified = h.client();
    verified.login("alice").await;
    let reply = verified
        .post("/2fa/verify", json!({"code": totp.code(&h.clock, 0)}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
    // Nine minutes of quiet: both live on, and using them restarts their idle time.
    h.later(9 * 60);
    for client in [&mut pending, &mut verified] {
        assert_eq!(
            client.get("/2fa/status").await.json["authenticated"],
            json!(true)
        );
    }
    h.later(10 * 60 + 1);
    assert_eq!(
        pending.get("/2fa/status").await.json["authenticated"],
        json!(false)
    );
    assert_eq!(
        verified.get("/2fa/status").await.json["authenticated"],
        json!(true)
    );
}
