//! Events: each action emits its event exactly once with the right payload; hooks and
//! subscribers; a stalled subscriber cannot hold requests up; fan-out across processes over
//! Redis pub/sub.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::post;
use http::Request;
use tower::ServiceExt;
use tower_otp::Caller;
use tower_otp::clock::{Clock, ManualClock, Timestamp};
use tower_otp::device::{Enrollment, ThrottlePolicy, TotpSettings};
use tower_otp::events::{Event, EventKind, EventStream, Events, RecvError};
use tower_otp::layer::OtpLayer;
use tower_otp::session::OtpSession;
use tower_otp::{DeviceKind, MemoryStore, ServerKey, TwoFactor, UserId};

const START: u64 = 1_800_000_000_000;

struct Fixture {
    clock: ManualClock,
    two_factor: TwoFactor,
    stream: EventStream,
    user: UserId,
}

fn fixture() -> Fixture {
    let clock = ManualClock::new(Timestamp::from_millis(START));
    let events = Events::new();
    let stream = events.subscribe();
    let two_factor = TwoFactor::new(
        MemoryStore::new().with_clock(clock.clone()),
        ServerKey::new(&[4; 32]).unwrap(),
    )
    .with_clock(clock.clone())
    .with_events(events)
    .with_throttle_policy(ThrottlePolicy::new().with_user_failure_limit(5));
    Fixture {
        clock,
        two_factor,
        stream,
        user: UserId::new("alice").unwrap(),
    }
}

impl Fixture {
    /// Every event emitted since the last call.
    fn drain(&mut self) -> Vec<Arc<Event>> {
        let mut events = Vec::new();
        while let Some(event) = self.stream.try_recv() {
            events.push(event.unwrap());
        }
        events
    }

    fn names(&mut self) -> Vec<&'static str> {
        self.drain().iter().map(|e| e.kind.name()).collect()
    }

    async fn confirmed_totp(&mut self) -> Enrollment {
        let enrolment = self
            .two_factor
            .enroll_totp(&self.user, "Phone", "alice", TotpSettings::default())
            .await
            .unwrap();
        let code = enrolment.current_code(self.clock.now());
        self.two_factor
            .confirm_device(&self.user, &enrolment.device.id, &code)
            .await
            .unwrap();
        self.clock.advance(Duration::from_secs(30));
        enrolment
    }
}

#[tokio::test]
async fn each_action_emits_its_event_once_with_its_payload() {
    let mut f = fixture();
    let device = f.confirmed_totp().await;
    let events = f.drain();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].kind, EventKind::DeviceAdded);
    assert_eq!(events[1].kind, EventKind::DeviceConfirmed);
    for event in &events {
        let d = event.device.as_ref().unwrap();
        assert_eq!(
            (&d.id, d.kind, d.name.as_str()),
            (&device.device.id, DeviceKind::Totp, "Phone")
        );
        assert_eq!(event.user, f.user);
        assert_eq!(event.request, None, "no request outside the layer");
        assert_eq!(event.instance, f.two_factor.events().instance());
    }
    assert_eq!(events[0].at, Timestamp::from_millis(START));

    let id = &device.device.id;
    let code = device.current_code(f.clock.now());
    f.two_factor.verify(&f.user, id, &code).await.unwrap();
    assert_eq!(f.names(), ["user_verified"]);

    f.clock.advance(Duration::from_secs(5));
    f.two_factor.verify(&f.user, id, &code).await.unwrap_err();
    assert_eq!(f.names(), ["replay_refused"]);

    f.clock.advance(Duration::from_secs(5));
    f.two_factor
        .verify(&f.user, id, "000000")
        .await
        .unwrap_err();
    let failed = f.drain();
    assert_eq!(failed.len(), 1);
    assert_eq!(
        failed[0].kind,
        EventKind::VerificationFailed {
            reason: "invalid_code".into()
        }
    );

    f.two_factor
        .verify(&f.user, id, "000000")
        .await
        .unwrap_err();
    let throttled = f.drain();
    assert_eq!(throttled.len(), 1);
    assert_eq!(
        throttled[0].kind,
        EventKind::Throttled {
            retry_at: f.clock.now().saturating_add(Duration::from_secs(2)),
            count: 1
        }
    );
    assert_eq!(throttled[0].device.as_ref().unwrap().id, *id);

    f.clock.advance(Duration::from_secs(5));
    f.two_factor.verify(&f.user, id, "12ab").await.unwrap_err();
    let malformed = f.drain();
    assert_eq!(
        malformed[0].kind,
        EventKind::VerificationFailed {
            reason: "malformed_code".into()
        }
    );

    let set = f
        .two_factor
        .generate_backup_codes(&Caller::administrator(f.user.clone()))
        .await
        .unwrap();
    let events = f.drain();
    assert_eq!(
        events.iter().map(|e| e.kind.name()).collect::<Vec<_>>(),
        ["device_added", "backup_codes_regenerated"]
    );
    assert_eq!(
        events[1].kind,
        EventKind::BackupCodesRegenerated { count: 10 }
    );
    f.two_factor
        .generate_backup_codes(&Caller::administrator(f.user.clone()))
        .await
        .unwrap();
    assert_eq!(
        f.names(),
        ["backup_codes_regenerated"],
        "the device exists now"
    );
    let fresh = f
        .two_factor
        .generate_backup_codes(&Caller::administrator(f.user.clone()))
        .await
        .unwrap();
    f.drain();
    drop(set);
    let code = fresh.codes.iter().next().unwrap().to_owned();
    f.two_factor.verify_any(&f.user, &code).await.unwrap();
    let events = f.drain();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].kind, EventKind::UserVerified);
    assert_eq!(
        events[0].device.as_ref().unwrap().kind,
        DeviceKind::BackupCodes
    );
    assert_eq!(events[1].kind, EventKind::BackupCodeUsed { remaining: 9 });

    assert!(
        f.two_factor
            .delete_device(&Caller::administrator(f.user.clone()), id)
            .await
            .unwrap()
    );
    assert_eq!(f.names(), ["device_removed"]);
    assert!(
        !f.two_factor
            .delete_device(&Caller::administrator(f.user.clone()), id)
            .await
            .unwrap()
    );
    assert_eq!(
        f.names(),
        Vec::<&str>::new(),
        "nothing removed, nothing emitted"
    );
    assert_eq!(
        f.two_factor
            .delete_all_devices(&Caller::administrator(f.user.clone()))
            .await
            .unwrap(),
        1
    );
    let events = f.drain();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::AllDevicesRemoved { count: 1 });
}

#[tokio::test]
async fn a_lockout_is_announced() {
    let mut f = fixture();
    let two_factor = f.two_factor.clone().with_throttle_policy(
        ThrottlePolicy::new()
            .with_factor(Duration::ZERO)
            .with_user_failure_limit(2),
    );
    let device = f.confirmed_totp().await;
    f.drain();
    for _ in 0..2 {
        two_factor
            .verify(&f.user, &device.device.id, "000000")
            .await
            .unwrap_err();
    }
    let events = f.drain();
    let names: Vec<_> = events.iter().map(|e| e.kind.name()).collect();
    assert_eq!(
        names,
        ["verification_failed", "verification_failed", "locked"],
        "the failure that sets the lock announces it"
    );
    let lock_end = f.clock.now().saturating_add(Duration::from_secs(24 * 3600));
    assert_eq!(events[2].kind, EventKind::Locked { until: lock_end });
    two_factor
        .verify(&f.user, &device.device.id, "000000")
        .await
        .unwrap_err();
    let events = f.drain();
    assert_eq!(events.len(), 1);
    assert!(matches!(events[0].kind, EventKind::Locked { until } if until > f.clock.now()));
}

#[tokio::test]
async fn events_in_a_request_carry_the_request_and_sessions_announce_logouts() {
    let mut f = fixture();
    let layer_hook_calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = Router::new()
        .route(
            "/login-then-logout",
            post(|session: OtpSession| async move {
                session.login(UserId::new("alice").unwrap()).await.unwrap();
                session
                    .two_factor()
                    .enroll_totp(
                        &UserId::new("alice").unwrap(),
                        "Phone",
                        "alice",
                        TotpSettings::default(),
                    )
                    .await
                    .unwrap();
                session.logout().await.unwrap();
                "ok"
            }),
        )
        .route(
            "/logout-all",
            post(|session: OtpSession| async move {
                session.login(UserId::new("alice").unwrap()).await.unwrap();
                session.logout_all().await.unwrap();
                "ok"
            }),
        )
        .layer(OtpLayer::new(f.two_factor.clone()).on_event({
            let seen = layer_hook_calls.clone();
            move |_| {
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }));
    let request = Request::post("/login-then-logout?secret=not-logged")
        .header("user-agent", "TestAgent/1.0")
        .extension(std::net::SocketAddr::from(([127, 0, 0, 1], 4321)))
        .body(Body::empty())
        .unwrap();
    app.clone().oneshot(request).await.unwrap();
    let events = f.drain();
    let names: Vec<_> = events.iter().map(|e| e.kind.name()).collect();
    assert_eq!(names, ["session_started", "device_added", "logged_out"]);
    for event in &events {
        let request = event.request.as_ref().unwrap();
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/login-then-logout", "no query string");
        assert_eq!(request.user_agent.as_deref(), Some("TestAgent/1.0"));
        assert_eq!(request.client_addr, Some([127, 0, 0, 1].into()));
    }
    let json = serde_json::to_value(&*events[2]).unwrap();
    assert_eq!(json["event"], "logged_out");
    assert_eq!(json["user"], "alice");
    assert_eq!(json["request"]["path"], "/login-then-logout");
    assert!(!json.to_string().contains("not-logged"));
    let back: Event = serde_json::from_value(json).unwrap();
    assert_eq!(back, *events[2]);

    app.oneshot(Request::post("/logout-all").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let events = f.drain();
    let kinds: Vec<_> = events.iter().map(|e| e.kind.clone()).collect();
    assert_eq!(
        kinds,
        [
            EventKind::SessionStarted,
            EventKind::LoggedOutEverywhere { sessions: 1 }
        ]
    );
}

#[tokio::test]
async fn hooks_see_every_local_event_and_a_panicking_hook_breaks_nothing() {
    let mut f = fixture();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    f.two_factor
        .events()
        .on(move |event| record.lock().unwrap().push(event.kind.name()));
    f.two_factor.events().on(|_| panic!("a broken hook"));
    let device = f.confirmed_totp().await;
    let code = device.current_code(f.clock.now());
    f.two_factor
        .verify(&f.user, &device.device.id, &code)
        .await
        .unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        ["device_added", "device_confirmed", "user_verified"]
    );
    assert_eq!(
        f.names(),
        ["device_added", "device_confirmed", "user_verified"]
    );
}

#[tokio::test]
async fn a_stalled_subscriber_neither_blocks_requests_nor_fails_silently() {
    let events = Events::with_capacity(16);
    let mut stalled = events.subscribe();
    let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::new(&[4; 32]).unwrap())
        .with_events(events)
        .with_throttle_policy(
            ThrottlePolicy::new()
                .with_factor(Duration::ZERO)
                .with_user_failure_limit(u32::MAX),
        );
    let user = UserId::new("alice").unwrap();
    let enrolment = two_factor
        .enroll_totp(&user, "Phone", "alice", TotpSettings::default())
        .await
        .unwrap();
    let code = enrolment.current_code(two_factor.now());
    two_factor
        .confirm_device(&user, &enrolment.device.id, &code)
        .await
        .unwrap();
    // Far more events than the subscriber's buffer, while it reads nothing: all complete.
    let attempts = tokio::time::timeout(Duration::from_secs(30), async {
        for _ in 0..2_000 {
            two_factor
                .verify(&user, &enrolment.device.id, "000000")
                .await
                .unwrap_err();
        }
    })
    .await;
    assert!(
        attempts.is_ok(),
        "verifications were held up by a stalled subscriber"
    );
    // The subscriber learns what it missed, then goes on with the newest events.
    assert_eq!(
        stalled.recv().await.unwrap_err(),
        RecvError::Lagged(2_002 - 16)
    );
    for _ in 0..16 {
        assert_eq!(
            stalled.recv().await.unwrap().kind.name(),
            "verification_failed"
        );
    }
    assert!(stalled.try_recv().is_none());
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_see_each_others_events_over_redis() {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use common::redis_server::RedisServer;
    use tower_otp::events::RedisEventBridge;
    use tower_otp::store::RedisStore;

    /// One application instance: its own Redis client, event bus, bridge and router.
    async fn instance(url: &str) -> (Router, Events, RedisEventBridge) {
        let store = RedisStore::connect(url).await.unwrap();
        let events = Events::new();
        let bridge = RedisEventBridge::start(&events, url).await.unwrap();
        let two_factor =
            TwoFactor::new(store, ServerKey::new(&[4; 32]).unwrap()).with_events(events.clone());
        let app = Router::new()
            .route(
                "/enrol",
                post(|session: OtpSession| async move {
                    let user = UserId::new("alice").unwrap();
                    session.login(user.clone()).await.unwrap();
                    let two_factor = session.two_factor();
                    two_factor
                        .enroll_totp(&user, "Phone", "alice", TotpSettings::default())
                        .await
                        .unwrap();
                    "ok"
                }),
            )
            .route(
                "/logout-all",
                post(|session: OtpSession| async move {
                    session.login(UserId::new("alice").unwrap()).await.unwrap();
                    session.logout_all().await.unwrap();
                    "ok"
                }),
            )
            .layer(OtpLayer::new(two_factor));
        (app, events, bridge)
    }

    let server = RedisServer::start();
    let (left_app, left, _left_bridge) = instance(&server.url()).await;
    let (right_app, right, _right_bridge) = instance(&server.url()).await;
    let mut left_stream = left.subscribe();
    let mut right_stream = right.subscribe();
    let right_hook_calls = Arc::new(AtomicUsize::new(0));
    let calls = right_hook_calls.clone();
    right.on(move |_| {
        calls.fetch_add(1, Ordering::SeqCst);
    });

    let request = Request::post("/enrol")
        .header("user-agent", "Left/1")
        .body(Body::empty())
        .unwrap();
    left_app.oneshot(request).await.unwrap();
    for expected in [EventKind::SessionStarted, EventKind::DeviceAdded] {
        let local = left_stream.recv().await.unwrap();
        let remote = tokio::time::timeout(Duration::from_secs(5), right_stream.recv())
            .await
            .expect("the other instance received the event")
            .unwrap();
        assert_eq!(*remote, *local);
        assert_eq!(remote.instance, left.instance());
        assert_eq!(remote.kind, expected);
        assert_eq!(remote.request.as_ref().unwrap().path, "/enrol");
    }
    assert_eq!(
        right_hook_calls.load(Ordering::SeqCst),
        0,
        "hooks act only where it happened"
    );

    // And the other way round.
    right_app
        .oneshot(Request::post("/logout-all").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let event = tokio::time::timeout(Duration::from_secs(5), left_stream.recv())
            .await
            .expect("the first instance received the event")
            .unwrap();
        assert_eq!(event.instance, right.instance());
        seen.push(event.kind.clone());
    }
    assert_eq!(
        seen,
        [
            EventKind::SessionStarted,
            EventKind::LoggedOutEverywhere { sessions: 2 }
        ]
    );
    assert_eq!(right_hook_calls.load(Ordering::SeqCst), 2);

    // No echo: each instance saw its own events once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(left_stream.try_recv().is_none());
    for _ in 0..2 {
        let own = right_stream.recv().await.unwrap();
        assert_eq!(own.instance, right.instance());
    }
    assert!(right_stream.try_recv().is_none());
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn a_bridge_that_cannot_keep_up_drops_events_and_says_how_many() {
    use common::redis_server::RedisServer;
    use tower_otp::events::RedisEventBridge;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let captured = Captured::default();
    let writer = captured.clone();
    // The runtime of this test has one thread, which runs the bridge's tasks too.
    let _logs = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish(),
    );

    let server = RedisServer::start();
    let events = Events::new();
    let _bridge = RedisEventBridge::start(&events, &server.url())
        .await
        .unwrap();
    let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::new(&[4; 32]).unwrap())
        .with_events(events)
        .with_throttle_policy(
            ThrottlePolicy::new()
                .with_factor(Duration::ZERO)
                .with_user_failure_limit(1),
        );
    let user = UserId::new("alice").unwrap();
    let enrolment = two_factor
        .enroll_totp(&user, "Phone", "alice", TotpSettings::default())
        .await
        .unwrap();
    let wrong = if enrolment.current_code(two_factor.now()) == "000000" {
        "111111"
    } else {
        "000000"
    };
    two_factor
        .confirm_device(&user, &enrolment.device.id, wrong)
        .await
        .unwrap_err();

    // The events so far go out; then, with Redis frozen, the publisher waits on the first
    // new event; the queue (4,096) fills and the rest are dropped, without holding up a
    // single verification.
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.pause();
    let started = std::time::Instant::now();
    for _ in 0..5_000 {
        let refused = two_factor.verify(&user, &enrolment.device.id, wrong).await;
        assert_eq!(refused.unwrap_err().kind(), "locked");
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    server.resume();

    let logs = || String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !logs().contains("publish queue was full") {
        assert!(
            std::time::Instant::now() < deadline,
            "no report: {}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dropped: u64 = logs()
        .split("dropped=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count: {}", logs()));
    // 5,000 events, 4,096 queued, and at most one taken by the publisher before it waited.
    assert!((903..=904).contains(&dropped), "{dropped}: {}", logs());
}
