//! `VerifiedDevice`: present exactly when the session is verified, with the device that did
//! it; inserted by `VerifiedDeviceLayer` for every request and by `RequireOtpLayer` for the
//! requests it passes; one store round trip in all; taken by axum handlers as an extractor.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::extract::Extension;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use tower::ServiceExt;

use common::http::CookieJar;
use common::instrumented_store::InstrumentedStore;
use tower_otp::clock::{Clock, ManualClock, Timestamp};
use tower_otp::device::{Enrollment, TotpSettings};
use tower_otp::guard::{RequireOtpLayer, Verified};
use tower_otp::layer::{OtpLayer, VerifiedDeviceLayer};
use tower_otp::session::OtpSession;
use tower_otp::store::MemoryStore;
use tower_otp::{ServerKey, TwoFactor, UserId, VerifiedDevice};

const START: u64 = 1_800_000_000_000;

/// What a handler saw: the extension as JSON, or `null`.
fn describe(device: Option<&VerifiedDevice>) -> Value {
    device.map_or(Value::Null, |d| {
        json!({
            "user": d.user().as_str(),
            "device_id": d.device_id().as_str(),
            "device_kind": d.device_kind().as_str(),
            "verified_at": d.verified_at().as_millis(),
            "remembered": d.remembered(),
        })
    })
}

/// Reads the extension as a plain service would: from the request's extensions.
async fn raw(device: Option<Extension<VerifiedDevice>>) -> Json<Value> {
    Json(describe(device.as_deref()))
}

/// Reads the extension, then asks the session too.
async fn raw_and_session(
    device: Option<Extension<VerifiedDevice>>,
    session: OtpSession,
) -> Json<Value> {
    let verified = session.is_verified().await.unwrap();
    Json(json!({"device": describe(device.as_deref()), "session_verified": verified}))
}

async fn extracted(device: VerifiedDevice) -> Json<Value> {
    Json(describe(Some(&device)))
}

async fn optional(device: Option<VerifiedDevice>) -> Json<Value> {
    Json(describe(device.as_ref()))
}

/// Both extractors on one request: they must agree.
async fn both(device: Option<VerifiedDevice>, verified: Option<Verified>) -> Json<Value> {
    Json(json!({
        "device": describe(device.as_ref()),
        "verified_user": verified.as_ref().map(|v| v.user.to_string()),
        "verified_device": verified.and_then(|v| v.by).map(|by| by.device_id.to_string()),
    }))
}

async fn login(session: OtpSession, user: String) -> StatusCode {
    session.login(UserId::new(user).unwrap()).await.unwrap();
    StatusCode::OK
}

async fn verify(session: OtpSession, code: String) -> Response {
    match session.verify_any(&code).await {
        Ok(_) => StatusCode::OK.into_response(),
        Err(error) => (StatusCode::UNAUTHORIZED, error.kind()).into_response(),
    }
}

fn app(two_factor: TwoFactor) -> Router {
    let eager = Router::new()
        .route("/raw", get(raw))
        .route("/raw-and-session", get(raw_and_session))
        .route("/extracted", get(extracted))
        .route("/optional", get(optional))
        .route("/both", get(both))
        .route(
            "/debug",
            get(|device: VerifiedDevice| async move { format!("{device:?}") }),
        )
        .layer(VerifiedDeviceLayer::new());
    Router::new()
        .route("/login", post(login))
        .route("/verify", post(verify))
        .nest("/eager", eager)
        .route("/lazy/raw", get(raw))
        .route("/lazy/extracted", get(extracted))
        .route("/lazy/optional", get(optional))
        .route("/guarded/raw", get(raw).layer(RequireOtpLayer::new()))
        .route("/guarded/both", get(both).layer(RequireOtpLayer::new()))
        .route(
            "/guarded/if-configured",
            get(both).layer(RequireOtpLayer::new().if_configured()),
        )
        .route(
            "/guarded/extracted-if-configured",
            get(extracted).layer(RequireOtpLayer::new().if_configured()),
        )
        .layer(OtpLayer::new(two_factor))
}

struct Harness {
    clock: ManualClock,
    store: InstrumentedStore,
    two_factor: TwoFactor,
    app: Router,
    jar: CookieJar,
}

fn harness() -> Harness {
    let clock = ManualClock::new(Timestamp::from_millis(START));
    let store = InstrumentedStore::new(MemoryStore::new().with_clock(clock.clone()));
    let two_factor =
        TwoFactor::new(store.clone(), ServerKey::new(&[1; 32]).unwrap()).with_clock(clock.clone());
    Harness {
        app: app(two_factor.clone()),
        clock,
        store,
        two_factor,
        jar: CookieJar::default(),
    }
}

impl Harness {
    /// A confirmed TOTP device for `user`; the clock then moves on a step.
    async fn device(&self, user: &str) -> Enrollment {
        let user = UserId::new(user).unwrap();
        let enrolment = self
            .two_factor
            .enroll_totp(&user, "Phone", user.as_str(), TotpSettings::default())
            .await
            .unwrap();
        let code = enrolment.current_code(self.clock.now());
        self.two_factor
            .confirm_device(&user, &enrolment.device.id, &code)
            .await
            .unwrap();
        self.clock.advance(Duration::from_secs(30));
        enrolment
    }

    async fn call(&mut self, method: &str, path: &str, body: &str) -> (StatusCode, String) {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::from(body.to_owned()))
            .unwrap();
        self.jar.add_to(request.headers_mut());
        let response = self.app.clone().oneshot(request).await.unwrap();
        self.jar.update(response.headers());
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    async fn get(&mut self, path: &str) -> (StatusCode, Value) {
        let (status, body) = self.call("GET", path, "").await;
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// Logs `user` in and verifies with a code from `device`; returns the verification time.
    async fn verified(&mut self, user: &str, device: &Enrollment) -> u64 {
        assert_eq!(self.call("POST", "/login", user).await.0, StatusCode::OK);
        let code = device.current_code(self.clock.now());
        assert_eq!(self.call("POST", "/verify", &code).await.0, StatusCode::OK);
        self.clock.now().as_millis()
    }

    /// The store round trips `path` costs, and its answer.
    async fn counted(&mut self, path: &str) -> (usize, StatusCode, Value) {
        let before = self.store.calls();
        let (status, body) = self.get(path).await;
        (self.store.calls() - before, status, body)
    }
}

fn expected(user: &str, device: &Enrollment, at: u64) -> Value {
    json!({
        "user": user,
        "device_id": device.device.id.as_str(),
        "device_kind": "totp",
        "verified_at": at,
        "remembered": false,
    })
}

#[tokio::test]
async fn the_eager_layer_names_the_device_that_verified_the_session() {
    let mut h = harness();
    let phone = h.device("alice").await;
    let at = h.verified("alice", &phone).await;
    let want = expected("alice", &phone, at);
    assert_eq!(h.get("/eager/raw").await, (StatusCode::OK, want.clone()));
    assert_eq!(
        h.get("/eager/extracted").await,
        (StatusCode::OK, want.clone())
    );
    assert_eq!(
        h.get("/eager/optional").await,
        (StatusCode::OK, want.clone())
    );
    assert_eq!(
        h.get("/eager/both").await.1,
        json!({
            "device": want,
            "verified_user": "alice",
            "verified_device": phone.device.id.as_str(),
        }),
        "VerifiedDevice and Verified agree"
    );
}

#[tokio::test]
async fn without_the_eager_layer_nothing_is_inserted_but_the_extractors_ask_the_session() {
    let mut h = harness();
    let phone = h.device("alice").await;
    let at = h.verified("alice", &phone).await;
    assert_eq!(h.get("/lazy/raw").await, (StatusCode::OK, Value::Null));
    let want = expected("alice", &phone, at);
    assert_eq!(
        h.get("/lazy/extracted").await,
        (StatusCode::OK, want.clone())
    );
    assert_eq!(h.get("/lazy/optional").await, (StatusCode::OK, want));
}

#[tokio::test]
async fn anonymous_and_unverified_sessions_get_no_extension() {
    let mut h = harness();
    let phone = h.device("alice").await;
    for stage in ["anonymous", "unverified"] {
        if stage == "unverified" {
            h.call("POST", "/login", "alice").await;
        }
        assert_eq!(
            h.get("/eager/raw").await,
            (StatusCode::OK, Value::Null),
            "{stage}: the route answers, without the extension"
        );
        assert_eq!(
            h.get("/eager/optional").await,
            (StatusCode::OK, Value::Null)
        );
        let (status, body) = h.get("/eager/extracted").await;
        let want = if stage == "anonymous" {
            (StatusCode::UNAUTHORIZED, "not_authenticated")
        } else {
            (StatusCode::FORBIDDEN, "otp_required")
        };
        assert_eq!((status, body["error"].as_str().unwrap()), want, "{stage}");
        assert!(body["message"].is_string(), "the guard's JSON body: {body}");
    }
    // A wrong code leaves the session unverified.
    let (status, _) = h.call("POST", "/verify", "000000").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(h.get("/eager/raw").await.1, Value::Null);
    // The user has a device all along: only a verification inserts the extension (once
    // the failure's throttling delay has passed).
    h.clock.advance(Duration::from_secs(60));
    let code = phone.current_code(h.clock.now());
    assert_eq!(h.call("POST", "/verify", &code).await.0, StatusCode::OK);
    assert_ne!(h.get("/eager/raw").await.1, Value::Null);
}

#[tokio::test]
async fn a_store_outage_inserts_nothing_and_the_route_still_answers() {
    let mut h = harness();
    let phone = h.device("alice").await;
    h.verified("alice", &phone).await;
    assert_ne!(h.get("/eager/raw").await.1, Value::Null);

    h.store.set_down(true);
    assert_eq!(
        h.get("/eager/raw").await,
        (StatusCode::OK, Value::Null),
        "not verified, and not an error"
    );
    // A handler that demands the device gets the guard's answer to an outage.
    let (status, body) = h.get("/eager/extracted").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("store_unavailable"))
    );

    h.store.set_down(false);
    assert_ne!(h.get("/eager/raw").await.1, Value::Null, "back when it is");
}

#[tokio::test]
async fn the_eager_layer_costs_one_round_trip_shared_with_the_session() {
    let mut h = harness();
    let phone = h.device("alice").await;
    h.verified("alice", &phone).await;

    let (calls, status, body) = h.counted("/eager/raw").await;
    assert_eq!((calls, status), (1, StatusCode::OK));
    assert_ne!(body, Value::Null);

    let (calls, _, body) = h.counted("/eager/raw-and-session").await;
    assert_eq!(calls, 1, "the handler's session reuses the loaded state");
    assert_eq!(body["session_verified"], true);
    assert_ne!(body["device"], Value::Null);

    for path in ["/eager/extracted", "/eager/optional", "/eager/both"] {
        assert_eq!(h.counted(path).await.0, 1, "{path}");
    }
    assert_eq!(
        h.counted("/lazy/raw").await.0,
        0,
        "lazy routes that never ask"
    );
}

#[tokio::test]
async fn the_guard_inserts_it_for_the_requests_it_passes() {
    let mut h = harness();
    let phone = h.device("alice").await;
    let at = h.verified("alice", &phone).await;
    let want = expected("alice", &phone, at);
    let (calls, status, body) = h.counted("/guarded/raw").await;
    assert_eq!((calls, status, body), (1, StatusCode::OK, want.clone()));
    assert_eq!(
        h.get("/guarded/both").await.1,
        json!({
            "device": want,
            "verified_user": "alice",
            "verified_device": phone.device.id.as_str(),
        })
    );
}

#[tokio::test]
async fn an_if_configured_pass_without_a_device_has_no_verified_device() {
    let mut h = harness();
    h.call("POST", "/login", "bob").await;
    assert_eq!(
        h.get("/guarded/if-configured").await,
        (
            StatusCode::OK,
            json!({"device": null, "verified_user": "bob", "verified_device": null})
        ),
        "Verified accepts whom the guard let through; there is no device to name"
    );
    let (status, body) = h.get("/guarded/extracted-if-configured").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("otp_required"))
    );
}

#[tokio::test]
async fn its_debug_output_holds_no_secret() {
    let mut h = harness();
    let phone = h.device("alice").await;
    h.verified("alice", &phone).await;
    let (status, text) = h.call("GET", "/eager/debug", "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains(phone.device.id.as_str()), "{text}");
    let session = h.jar.get("__Host-otp-session").unwrap().to_owned();
    let secret = phone.uri.as_str().split("secret=").nth(1).unwrap();
    let secret = secret.split('&').next().unwrap();
    for hidden in [session.as_str(), secret] {
        assert!(!text.contains(hidden), "{text}");
    }
}
