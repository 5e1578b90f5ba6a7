//! What a guarded request costs Redis in the steady state, counted by the server itself
//! (`INFO commandstats` deltas on a private redis-server): one `HMGET`, a plain read, whether
//! the session is verified or not; a sliding idle expiry that writes at most once per
//! refresh interval; and the reads of concurrent requests leaving together, each with its own
//! reply.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use futures_util::future::join_all;
use tower::ServiceExt;

use common::http::CookieJar;
use common::redis_server::RedisServer;
use tower_otp::device::{Caller, Enrollment, TotpSettings};
use tower_otp::guard::RequireOtpLayer;
use tower_otp::layer::OtpLayer;
use tower_otp::session::{OtpSession, SessionConfig};
use tower_otp::store::RedisConfig;
use tower_otp::{ServerKey, TwoFactor, UserId, VerifiedDevice};

const REQUESTS: u64 = 50;

async fn login(session: OtpSession, user: String) -> StatusCode {
    session.login(UserId::new(user).unwrap()).await.unwrap();
    StatusCode::OK
}

async fn verify(session: OtpSession, code: String) -> StatusCode {
    match session.verify_any(&code).await {
        Ok(_) => StatusCode::OK,
        Err(_) => StatusCode::UNAUTHORIZED,
    }
}

fn app(two_factor: TwoFactor, config: SessionConfig) -> Router {
    Router::new()
        .route("/login", post(login))
        .route("/verify", post(verify))
        .route(
            "/guarded",
            get(|| async { "in" }).layer(RequireOtpLayer::new()),
        )
        .route(
            "/whoami",
            get(|device: VerifiedDevice| async move { device.user().as_str().to_owned() })
                .layer(RequireOtpLayer::new()),
        )
        .route(
            "/if-configured",
            get(|| async { "in" }).layer(RequireOtpLayer::new().if_configured()),
        )
        .layer(OtpLayer::new(two_factor).with_config(config))
}

struct Harness {
    server: RedisServer,
    two_factor: TwoFactor,
    app: Router,
}

async fn harness(config: SessionConfig) -> Harness {
    harness_with(config, |redis| redis).await
}

async fn harness_with(
    config: SessionConfig,
    redis: impl FnOnce(RedisConfig) -> RedisConfig,
) -> Harness {
    let server = RedisServer::start();
    let store = redis(RedisConfig::server(server.url()))
        .connect()
        .await
        .unwrap();
    let two_factor = TwoFactor::new(store, ServerKey::new(&[3; 32]).unwrap());
    Harness {
        app: app(two_factor.clone(), config),
        server,
        two_factor,
    }
}

impl Harness {
    /// A confirmed TOTP device of `user` and a backup code to verify with (the TOTP code of
    /// this time step went into the confirmation).
    async fn backup_code(&self, user: &str) -> String {
        self.device(user).await;
        let caller = Caller::administrator(UserId::new(user).unwrap());
        let set = self
            .two_factor
            .generate_backup_codes(&caller)
            .await
            .unwrap();
        set.codes.iter().next().unwrap().to_owned()
    }

    async fn device(&self, user: &str) -> Enrollment {
        let user = UserId::new(user).unwrap();
        let enrolment = self
            .two_factor
            .enroll_totp(&user, "Phone", user.as_str(), TotpSettings::default())
            .await
            .unwrap();
        let code = enrolment.current_code(self.two_factor.now());
        self.two_factor
            .confirm_device(&user, &enrolment.device.id, &code)
            .await
            .unwrap();
        enrolment
    }

    async fn call(&self, jar: &mut CookieJar, method: &str, path: &str, body: &str) -> StatusCode {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::from(body.to_owned()))
            .unwrap();
        jar.add_to(request.headers_mut());
        let response = self.app.clone().oneshot(request).await.unwrap();
        jar.update(response.headers());
        response.status()
    }

    /// The cookies of a session of `user` (who gets a device) verified with a backup code.
    async fn verified_session(&self, user: &str) -> CookieJar {
        let code = self.backup_code(user).await;
        let mut jar = CookieJar::default();
        assert_eq!(
            self.call(&mut jar, "POST", "/login", user).await,
            StatusCode::OK
        );
        assert_eq!(
            self.call(&mut jar, "POST", "/verify", &code).await,
            StatusCode::OK
        );
        jar
    }

    /// Calls per command since the last reset, as the server counted them.
    fn commands(&self) -> BTreeMap<String, u64> {
        let info = self.server.query(&["INFO", "commandstats"]);
        info.text()
            .lines()
            .filter_map(|line| {
                let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
                let calls = stats.strip_prefix("calls=")?.split(',').next()?;
                Some((name.to_owned(), calls.parse().ok()?))
            })
            .filter(|(name, _)| name != "info" && !name.starts_with("config"))
            .collect()
    }

    /// How many times Redis has read from its clients' connections (`INFO stats`).
    fn network_reads(&self) -> u64 {
        let info = self.server.query(&["INFO", "stats"]);
        info.text()
            .lines()
            .find_map(|line| line.strip_prefix("total_reads_processed:"))
            .and_then(|n| n.trim().parse().ok())
            .expect("total_reads_processed in INFO stats")
    }

    /// `GET /whoami` with `jar`'s cookies: the status and the body.
    async fn whoami(&self, jar: &CookieJar) -> (StatusCode, String) {
        let mut request = Request::get("/whoami").body(Body::empty()).unwrap();
        jar.add_to(request.headers_mut());
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    fn reset_counts(&self) {
        self.server.query(&["CONFIG", "RESETSTAT"]);
    }

    /// `REQUESTS` calls of `path`, each answered `status`; the commands they cost.
    async fn steady(
        &self,
        jar: &mut CookieJar,
        path: &str,
        status: StatusCode,
    ) -> BTreeMap<String, u64> {
        self.reset_counts();
        for _ in 0..REQUESTS {
            assert_eq!(self.call(jar, "GET", path, "").await, status);
        }
        self.commands()
    }
}

fn only_hmget(n: u64) -> BTreeMap<String, u64> {
    BTreeMap::from([("hmget".to_owned(), n)])
}

#[tokio::test]
async fn a_guarded_request_of_a_verified_session_costs_one_read_command() {
    let h = harness(SessionConfig::default()).await;
    let mut jar = h.verified_session("alice").await;

    let commands = h.steady(&mut jar, "/guarded", StatusCode::OK).await;
    println!("{REQUESTS} verified guarded requests: {commands:?}");
    assert_eq!(commands, only_hmget(REQUESTS));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guarded_request_served_by_the_local_cache_costs_no_command() {
    let h = harness_with(SessionConfig::default(), |redis| {
        redis.with_local_cache(1_000)
    })
    .await;
    // Let the cache's listener subscribe and take its lease.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut jar = h.verified_session("alice").await;
    assert_eq!(
        h.call(&mut jar, "GET", "/guarded", "").await,
        StatusCode::OK
    );

    let commands = h.steady(&mut jar, "/guarded", StatusCode::OK).await;
    println!("{REQUESTS} verified guarded requests with the local cache: {commands:?}");
    // Nothing but the listener's pings, and a read when the lease lapsed (the cache fails
    // closed when its listener is late, as on a machine this busy running tests).
    assert!(
        commands
            .keys()
            .all(|name| name == "ping" || name == "hmget"),
        "{commands:?}"
    );
    assert!(
        commands
            .get("hmget")
            .is_none_or(|&reads| reads <= REQUESTS / 10),
        "{commands:?}"
    );
}

#[tokio::test]
async fn a_guarded_request_of_an_unverified_session_costs_one_read_command() {
    let h = harness(SessionConfig::default()).await;
    h.device("bob").await;
    let mut bob = CookieJar::default();
    assert_eq!(
        h.call(&mut bob, "POST", "/login", "bob").await,
        StatusCode::OK
    );
    // Bob has a device: refused, for the price of one read.
    let commands = h.steady(&mut bob, "/guarded", StatusCode::FORBIDDEN).await;
    println!("{REQUESTS} unverified guarded requests: {commands:?}");
    assert_eq!(commands, only_hmget(REQUESTS));

    // Carol has none: let through by an if-configured guard, sent to set-up by a plain one.
    let mut carol = CookieJar::default();
    assert_eq!(
        h.call(&mut carol, "POST", "/login", "carol").await,
        StatusCode::OK
    );
    let commands = h.steady(&mut carol, "/if-configured", StatusCode::OK).await;
    assert_eq!(commands, only_hmget(REQUESTS));
    let commands = h
        .steady(&mut carol, "/guarded", StatusCode::FORBIDDEN)
        .await;
    assert_eq!(commands, only_hmget(REQUESTS));

    // The flag follows the devices: once Carol confirms one, the if-configured guard
    // refuses her unverified session.
    h.device("carol").await;
    assert_eq!(
        h.call(&mut carol, "GET", "/if-configured", "").await,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn idle_expiry_slides_with_one_write_per_refresh_interval() {
    let config = SessionConfig::default()
        .with_idle_timeout(Duration::from_millis(1_500))
        .unwrap()
        .with_pending_idle_timeout(Duration::from_millis(1_500))
        .unwrap()
        .with_idle_refresh(Duration::from_millis(400));
    let h = harness(config).await;
    let mut jar = CookieJar::default();
    assert_eq!(
        h.call(&mut jar, "POST", "/login", "dave").await,
        StatusCode::OK
    );
    h.reset_counts();
    // Three seconds of use, twice the idle timeout: the session lives on.
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            h.call(&mut jar, "GET", "/if-configured", "").await,
            StatusCode::OK
        );
    }
    let commands = h.commands();
    println!("30 requests over 3 s, idle 1.5 s, refresh 0.4 s: {commands:?}");
    assert_eq!(commands.get("hmget"), Some(&30));
    // The server counts the commands scripts run too: each touch writes the session once.
    let touches = commands.get("hset").copied().unwrap_or(0);
    // A touch when more than 0.4 s of the idle time is used: about every 0.5 s.
    assert!((4..=8).contains(&touches), "{commands:?}");
    // Then idle: it ends.
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    assert_eq!(
        h.call(&mut jar, "GET", "/if-configured", "").await,
        StatusCode::UNAUTHORIZED
    );
}

/// Users with a verified session each, and requests for all of them at once.
const USERS: usize = 8;
const REQUESTS_EACH: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_session_reads_leave_together_and_each_gets_its_own_reply() {
    let mut socket_reads = Vec::new();
    for pipelined in [true, false] {
        let h = Arc::new(
            harness_with(SessionConfig::default(), |redis| {
                redis.with_pipelined_reads(pipelined)
            })
            .await,
        );
        let mut jars = Vec::new();
        for i in 0..USERS {
            let user = format!("user-{i}");
            let jar = Arc::new(h.verified_session(&user).await);
            jars.push((user, jar));
        }
        h.reset_counts();
        let reads_before = h.network_reads();
        // Requests on tasks of their own, as a server runs them.
        let tasks: Vec<_> = jars
            .iter()
            .flat_map(|(user, jar)| (0..REQUESTS_EACH).map(move |_| (user.clone(), jar.clone())))
            .map(|(user, jar)| {
                let h = h.clone();
                tokio::spawn(async move { (user, h.whoami(&jar).await) })
            })
            .collect();
        for task in tasks {
            let (user, (status, body)) = task.await.unwrap();
            assert_eq!((status, body.as_str()), (StatusCode::OK, user.as_str()));
        }
        // The `INFO` of `network_reads` itself was one.
        let reads = h.network_reads() - reads_before - 1;
        let n = (USERS * REQUESTS_EACH) as u64;
        println!(
            "{n} concurrent reads, pipelined: {pipelined}: Redis read its socket {reads} times"
        );
        assert_eq!(h.commands(), only_hmget(n));
        socket_reads.push(reads);
    }
    // However the runtime interleaves the requests, the reads issued in one turn of it share
    // a pipeline. One by one, the redis crate's own connection coalesces only what happens to
    // be queued when it writes: no bound holds there, and none is asserted.
    let pipelined = socket_reads[0];
    let n = (USERS * REQUESTS_EACH) as u64;
    assert!(
        pipelined <= n / 8,
        "{pipelined} socket reads for {n} pipelined reads"
    );
}

#[tokio::test]
async fn a_read_that_redis_refuses_fails_alone() {
    let h = harness(SessionConfig::default()).await;
    let alice = h.verified_session("alice").await;
    let bob = h.verified_session("bob").await;
    let carol = h.verified_session("carol").await;
    // Carol's sessions hash becomes a string: her HMGET gets a WRONGTYPE error.
    let tag = h
        .two_factor
        .store()
        .user_tag(&UserId::new("carol").unwrap());
    let key = format!("tower-otp:{{{}}}:s", tag.as_str());
    h.server.query(&["DEL", &key]);
    h.server.query(&["SET", &key, "not a hash"]);

    let answers = join_all([&alice, &carol, &bob, &carol, &alice].map(|jar| h.whoami(jar))).await;
    let statuses: Vec<StatusCode> = answers.iter().map(|(status, _)| *status).collect();
    // Carol's requests fail closed (the store could not be read); the others in the same
    // pipeline are answered as always.
    let unavailable = StatusCode::SERVICE_UNAVAILABLE;
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            unavailable,
            StatusCode::OK,
            unavailable,
            StatusCode::OK
        ]
    );
    assert_eq!(answers[0].1, "alice");
    assert_eq!(answers[2].1, "bob");
}
