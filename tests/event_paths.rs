//! The request path an event carries keeps secrets out: the confirmation id in the JSON API's
//! confirmation routes, and the segments an application marks as secret on its own routes.

#![cfg(feature = "api")]

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::routing::post;
use http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use tower_otp::api::{self, ApiConfig};
use tower_otp::clock::{Clock, ManualClock, Timestamp};
use tower_otp::confirm::{Confirmer, DeviceMethod};
use tower_otp::device::{Enrollment, TotpSettings};
use tower_otp::events::Event;
use tower_otp::layer::OtpLayer;
use tower_otp::session::OtpSession;
use tower_otp::{MemoryStore, ServerKey, TwoFactor, UserId};

struct App {
    clock: ManualClock,
    two_factor: TwoFactor,
    router: Router,
    events: Arc<Mutex<Vec<Event>>>,
    token: Option<String>,
}

fn app() -> App {
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_015));
    let two_factor = TwoFactor::new(
        MemoryStore::new().with_clock(clock.clone()),
        ServerKey::new(&[7; 32]).unwrap(),
    )
    .with_clock(clock.clone());
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    two_factor
        .events()
        .on(move |event| seen.lock().unwrap().push(event.clone()));
    two_factor.events().redact_path_segment_after("reset");
    let confirmer = Confirmer::new(&two_factor)
        .with_clock(clock.clone())
        .with_method(DeviceMethod::new(two_factor.clone()).into_method());
    let login = |session: OtpSession, body: String| async move {
        let token = session.login(UserId::new(body).unwrap()).await.unwrap();
        token.expose().to_owned()
    };
    // An application route with a secret in its path, during which an event is emitted.
    let reset = |session: OtpSession| async move {
        let user = session.user().await.unwrap().unwrap();
        session
            .two_factor()
            .enroll_totp(&user, "Phone", "alice", TotpSettings::default())
            .await
            .unwrap();
    };
    let router = Router::new()
        .route("/login", post(login))
        .route("/account/reset/{token}/done", post(reset))
        .nest(
            "/2fa",
            api::router(ApiConfig::new().with_confirmer(confirmer)),
        )
        .layer(OtpLayer::new(two_factor.clone()));
    App {
        clock,
        two_factor,
        router,
        events,
        token: None,
    }
}

impl App {
    async fn call(&mut self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let body = match body {
            Some(json) => {
                request = request.header("content-type", "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let response = self
            .router
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn login(&mut self, user: &str) {
        let request = Request::post("/login").body(Body::from(user.to_owned()));
        let response = self.router.clone().oneshot(request.unwrap()).await.unwrap();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        self.token = Some(String::from_utf8(bytes.to_vec()).unwrap());
    }

    async fn confirmed_totp(&self, user: &UserId) -> Enrollment {
        let enrolment = self
            .two_factor
            .enroll_totp(user, "Phone", "alice", TotpSettings::default())
            .await
            .unwrap();
        let code = enrolment.current_code(self.clock.now());
        self.two_factor
            .confirm_device(user, &enrolment.device.id, &code)
            .await
            .unwrap();
        self.clock.advance(std::time::Duration::from_secs(60));
        enrolment
    }

    /// The paths of the events emitted since the last call, and the events as JSON.
    fn take_events(&self) -> (Vec<String>, String) {
        let events = std::mem::take(&mut *self.events.lock().unwrap());
        let paths = events
            .iter()
            .filter_map(|e| e.request.as_ref().map(|r| r.path.clone()))
            .collect();
        (paths, serde_json::to_string(&events).unwrap())
    }
}

#[tokio::test]
async fn confirmation_ids_never_reach_an_events_path() {
    let mut app = app();
    let alice = UserId::new("alice").unwrap();
    let totp = app.confirmed_totp(&alice).await;
    app.login("alice").await;
    let (status, requested) = app
        .call(
            "POST",
            "/2fa/confirmations",
            Some(json!({"method": "device", "state": {"action": "close_account"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{requested}");
    let id = requested["id"].as_str().unwrap().to_owned();
    app.take_events();

    let confirm = format!("/2fa/confirmations/{id}/confirm");
    let wrong = json!({"data": {"code": "000000"}});
    let (status, _) = app.call("POST", &confirm, Some(wrong)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app
        .call("GET", &format!("/2fa/confirmations/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    app.clock.advance(std::time::Duration::from_secs(30));
    let right = json!({"data": {"code": totp.current_code(app.clock.now())}});
    let (status, answered) = app.call("POST", &confirm, Some(right)).await;
    assert_eq!(
        (status, &answered["status"]),
        (StatusCode::OK, &json!("confirmed"))
    );

    let (paths, json) = app.take_events();
    assert!(
        paths.len() >= 2,
        "a failure and a confirmation at least: {paths:?}"
    );
    for path in &paths {
        assert_eq!(path, "/2fa/confirmations/{id}/confirm");
    }
    assert!(!json.contains(&id), "{json}");
    assert!(json.contains("\"path\":\"/2fa/confirmations/{id}/confirm\""));
}

#[tokio::test]
async fn segments_the_application_marks_as_secret_stay_out_too() {
    let mut app = app();
    app.login("alice").await;
    app.take_events(); // `session_started`, on `/login`
    let (status, _) = app
        .call("POST", "/account/reset/TOKEN-s3cr3t/done", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (paths, json) = app.take_events();
    assert!(!paths.is_empty());
    for path in &paths {
        assert_eq!(path, "/account/reset/{id}/done");
    }
    assert!(!json.contains("s3cr3t"), "{json}");
}
