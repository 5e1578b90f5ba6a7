//! What an operator sees: a store outage in the logs, a `session_started` event at login,
//! subscribers that learn how many events they missed, and `Debug` output free of users'
//! data.
//!
//! Every test installs the same process-wide subscriber first: `tracing` caches per call site
//! whether anyone listens, and a thread-local subscriber arriving while another test has that
//! cached as "no one" would lose lines.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use futures_util::StreamExt;
use tower::ServiceExt;

use common::instrumented_store::InstrumentedStore;
use tower_otp::device::TotpSettings;
use tower_otp::events::{EventKind, Events, RecvError};
use tower_otp::guard::RequireOtpLayer;
use tower_otp::layer::OtpLayer;
use tower_otp::session::OtpSession;
use tower_otp::store::MemoryStore;
use tower_otp::{ServerKey, TwoFactor, UserId};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The log lines of the whole test process so far.
fn logs() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .init();
        captured
    })
}

fn log_lines(containing: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(&logs().0.lock().unwrap()).into_owned();
    text.lines()
        .filter(|line| line.contains(containing))
        .map(str::to_owned)
        .collect()
}

fn engine() -> TwoFactor {
    TwoFactor::new(MemoryStore::new(), ServerKey::new(&[7; 32]).unwrap())
}

#[tokio::test]
async fn a_store_outage_seen_by_a_guard_is_logged_at_warn_once_per_interval() {
    logs();
    let store = InstrumentedStore::new(MemoryStore::new());
    let two_factor = TwoFactor::new(store.clone(), ServerKey::new(&[7; 32]).unwrap());
    let app: Router = Router::new()
        .route("/admin", get(|| async { "admin" }))
        .layer(RequireOtpLayer::new())
        .route(
            "/login",
            post(|session: OtpSession| async move {
                let token = session.login(UserId::new("alice").unwrap()).await.unwrap();
                token.expose().to_owned()
            }),
        )
        .layer(OtpLayer::new(two_factor));
    let login = Request::post("/login").body(Body::empty()).unwrap();
    let response = app.clone().oneshot(login).await.unwrap();
    let token = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let bearer = format!("Bearer {}", String::from_utf8_lossy(&token));
    store.set_down(true);
    for _ in 0..5 {
        let request = Request::get("/admin")
            .header("authorization", &bearer)
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    let lines = log_lines("the store failed");
    assert_eq!(lines.len(), 1, "one line for five refusals: {lines:?}");
    assert!(lines[0].contains(" WARN "), "{}", lines[0]);
    assert!(
        lines[0].contains("kind=\"store_unavailable\""),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("suppressed=0"), "{}", lines[0]);
}

#[tokio::test]
async fn login_emits_session_started_with_the_request() {
    logs();
    let two_factor = engine();
    let mut stream = two_factor.events().subscribe();
    let app: Router = Router::new()
        .route(
            "/login",
            post(|session: OtpSession| async move {
                session.login(UserId::new("alice").unwrap()).await.unwrap();
                "ok"
            }),
        )
        .layer(OtpLayer::new(two_factor));
    let request = Request::post("/login")
        .header("user-agent", "Observer/1.0")
        .body(Body::empty())
        .unwrap();
    app.clone().oneshot(request).await.unwrap();
    let event = stream.try_recv().expect("an event").unwrap();
    assert_eq!(event.kind, EventKind::SessionStarted);
    assert_eq!(event.user.as_str(), "alice");
    assert_eq!(event.device, None);
    let request = event.request.as_ref().expect("the request");
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/login")
    );
    assert_eq!(request.user_agent.as_deref(), Some("Observer/1.0"));
    let json = serde_json::to_value(&*event).unwrap();
    assert_eq!(json["event"], "session_started");
    assert_eq!(stream.try_recv(), None, "one event per login");
}

/// Five users enrol a device each: five `device_added` events.
async fn five_events(two_factor: &TwoFactor) {
    for name in ["ann", "ben", "cat", "dan", "eve"] {
        let user = UserId::new(name).unwrap();
        two_factor
            .enroll_totp(&user, "Phone", name, TotpSettings::default())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn an_event_stream_is_a_stream_that_says_how_many_events_it_missed() {
    logs();
    let events = Events::with_capacity(2);
    let mut stream = events.subscribe();
    let two_factor = engine().with_events(events.clone());
    five_events(&two_factor).await;
    assert_eq!(stream.next().await, Some(Err(RecvError::Lagged(3))));
    for expected in ["dan", "eve"] {
        let event = stream.next().await.unwrap().unwrap();
        assert_eq!(
            (&event.kind, event.user.as_str()),
            (&EventKind::DeviceAdded, expected)
        );
    }
    drop((two_factor, events));
    assert_eq!(stream.next().await, None, "the stream ends with the bus");
}

#[tokio::test]
async fn a_waiting_stream_wakes_for_the_next_event() {
    logs();
    let two_factor = engine();
    let mut stream = two_factor.events().subscribe();
    let waiting = tokio::spawn(async move {
        let first = stream.next().await;
        (first, stream)
    });
    // Let the task poll the empty stream and wait.
    tokio::time::sleep(Duration::from_millis(20)).await;
    five_events(&two_factor).await;
    let (first, mut stream) = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("woken")
        .unwrap();
    assert_eq!(first.unwrap().unwrap().user.as_str(), "ann");
    let mut rest = Vec::new();
    while let Some(Ok(event)) = stream.try_recv() {
        rest.push(event.user.as_str().to_owned());
    }
    assert_eq!(rest, ["ben", "cat", "dan", "eve"]);
    let recv = std::pin::pin!(stream.recv());
    assert!(futures_util::poll!(recv).is_pending(), "nothing more yet");
}

#[tokio::test]
async fn debug_output_counts_users_and_devices_without_naming_them() {
    logs();
    let store = MemoryStore::new();
    let two_factor = TwoFactor::new(store.clone(), ServerKey::new(&[7; 32]).unwrap());
    let user = UserId::new("alice.private@example.com").unwrap();
    two_factor
        .enroll_totp(
            &user,
            "Alice's work phone",
            "alice.private@example.com",
            TotpSettings::default(),
        )
        .await
        .unwrap();
    let layer = OtpLayer::new(two_factor.clone());
    for debug in [
        format!("{store:?}"),
        format!("{two_factor:?}"),
        format!("{layer:?}"),
        format!("{:#?}", layer),
    ] {
        assert!(!debug.contains("alice.private"), "{debug}");
        assert!(!debug.contains("work phone"), "{debug}");
    }
    assert_eq!(
        format!("{store:?}"),
        "MemoryStore { users: 1, devices: 1, sessions: 0, confirmations: 0, .. }"
    );
    assert!(format!("{layer:?}").contains("devices: 1"));
}
