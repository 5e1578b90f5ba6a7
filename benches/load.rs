//! Load test: real HTTP servers in this process (`axum::serve` on `127.0.0.1:0`), each driven
//! by keep-alive HTTP/1.1 connections with one request in flight each, scenario after scenario,
//! reporting throughput and latency percentiles side by side in one Markdown table:
//!
//! * the application's routes without `OtpLayer` (the baseline);
//! * with the layer: a route that never looks at the session, a guarded route with a verified
//!   session's cookie, and the JSON API's `GET /2fa/status`, on `MemoryStore` and (the last
//!   two) on `RedisStore`;
//! * wrong codes: every connection a session of one user, all of them sending a wrong code to
//!   `POST /2fa/verify` at once, throttling off; every answer must be a 401 or a 429.
//!
//! Any other status, or a failed connection, fails the run after the table is printed.
//!
//! Run with `cargo bench --bench load` (about 1½ minutes; needs `redis-server` on `PATH`: the
//! bench starts a private one on a free loopback port and stops it at the end). An argument
//! runs only the scenarios whose name contains it: `cargo bench --bench load -- redis`.
//!
//! Settings, from the environment:
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `LOAD_SECONDS` | 10 | seconds counted per scenario |
//! | `LOAD_WARMUP_SECONDS` | 1 | seconds of requests before that, not counted |
//! | `LOAD_CONNECTIONS` | 32 | concurrent connections (and sessions in the wrong-code scenario) |
//! | `LOAD_MAX_REQUESTS` | 10000000 | most requests per scenario, warm-up included |
//! | `LOAD_SERVER_THREADS` | the number of CPUs | worker threads of the servers' runtime |
//! | `LOAD_CLIENT_THREADS` | 1 | worker threads of the clients' runtime |
//!
//! Without `--bench` (as under `cargo test --benches`) every scenario runs for a moment only,
//! with 4 connections, unless the environment says otherwise: a smoke test.

#[path = "support/app.rs"]
#[allow(dead_code)]
mod app;
#[path = "support/load_client.rs"]
mod load_client;
#[path = "../tests/common/redis_server.rs"]
#[allow(unreachable_pub)]
mod redis_server;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::post;
use http::header::{CONTENT_TYPE, COOKIE, HOST};
use http::{HeaderMap, HeaderValue, Method, Request};
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower::ServiceExt;
use tower_otp::api::{self, ApiConfig};
use tower_otp::clock::Timestamp;
use tower_otp::device::Enrollment;
use tower_otp::layer::OtpLayer;
use tower_otp::session::OtpSession;
use tower_otp::{MemoryStore, RedisStore, ServerKey, Store, TwoFactor, UserId};

use load_client::{Latency, Outcome, Plan, Template};
use redis_server::RedisServer;

/// The user whose sessions send wrong codes.
const GUESSER: &str = "carol";

fn main() {
    let bench = std::env::args().any(|arg| arg == "--bench");
    let filter = std::env::args().skip(1).find(|arg| !arg.starts_with('-'));
    let settings = Settings::from_env(bench);

    let servers = runtime(settings.server_threads, "server");
    let clients = runtime(settings.client_threads, "client");
    let redis = RedisServer::start();

    let memory = servers.block_on(Site::new(MemoryStore::new(), &settings));
    let redis_store = servers
        .block_on(RedisStore::connect(&redis.url()))
        .expect("connect to the private redis-server");
    let redis_site = servers.block_on(Site::new(redis_store, &settings));

    let baseline = Server::start(&servers, app::routes_without_layer());
    let with_memory = Server::start(&servers, memory.app.clone());
    let with_redis = Server::start(&servers, redis_site.app.clone());

    let n = settings.connections;
    let ok: &[u16] = &[200];
    let refused: &[u16] = &[401, 429];
    let scenarios = [
        Scenario::new("baseline: no layer", "-", &baseline, ok).get("/admin", &memory.verified, n),
        Scenario::new("layer, unguarded route", "memory", &with_memory, ok).get(
            "/public",
            &memory.verified,
            n,
        ),
        Scenario::new(
            "layer + guard, verified session",
            "memory",
            &with_memory,
            ok,
        )
        .get("/admin", &memory.verified, n),
        Scenario::new("layer + guard, verified session", "redis", &with_redis, ok).get(
            "/admin",
            &redis_site.verified,
            n,
        ),
        Scenario::new("API: GET /2fa/status, verified", "memory", &with_memory, ok).get(
            "/2fa/status",
            &memory.verified,
            n,
        ),
        Scenario::new("API: GET /2fa/status, verified", "redis", &with_redis, ok).get(
            "/2fa/status",
            &redis_site.verified,
            n,
        ),
        Scenario::new(
            "wrong codes, one user, parallel",
            "memory",
            &with_memory,
            refused,
        )
        .wrong_codes(&memory),
        Scenario::new(
            "wrong codes, one user, parallel",
            "redis",
            &with_redis,
            refused,
        )
        .wrong_codes(&redis_site),
    ];

    println!("{}", settings.describe());
    let mut rows = Vec::new();
    for scenario in scenarios {
        let label = format!("{} ({})", scenario.name, scenario.store);
        if filter.as_ref().is_some_and(|f| !label.contains(f.as_str())) {
            continue;
        }
        eprintln!("running: {label}");
        let outcome = clients.block_on(load_client::run(
            scenario.addr,
            settings.plan(),
            scenario.templates,
        ));
        rows.push(Row {
            name: scenario.name,
            store: scenario.store,
            expected: scenario.expected,
            outcome,
        });
    }

    for server in [baseline, with_memory, with_redis] {
        server.stop(&servers);
    }
    drop((memory, redis_site));
    drop(servers);
    drop(redis);

    println!("{}", table(&rows));
    let failures: Vec<String> = rows.iter().flat_map(Row::failures).collect();
    assert!(
        failures.is_empty(),
        "unexpected results:\n{}",
        failures.join("\n")
    );
}

/// What the environment (or the smoke-test defaults) asks for.
struct Settings {
    measure: Duration,
    warmup: Duration,
    connections: usize,
    max_requests: u64,
    server_threads: usize,
    client_threads: usize,
}

impl Settings {
    fn from_env(bench: bool) -> Settings {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (seconds, warmup, connections) = if bench {
            (10.0, 1.0, 32)
        } else {
            (0.2, 0.05, 4)
        };
        Settings {
            measure: Duration::from_secs_f64(env("LOAD_SECONDS", seconds)),
            warmup: Duration::from_secs_f64(env("LOAD_WARMUP_SECONDS", warmup)),
            connections: env("LOAD_CONNECTIONS", connections).max(1),
            max_requests: env("LOAD_MAX_REQUESTS", 10_000_000).max(1),
            server_threads: env("LOAD_SERVER_THREADS", cpus).max(1),
            client_threads: env("LOAD_CLIENT_THREADS", 1).max(1),
        }
    }

    fn plan(&self) -> Plan {
        Plan {
            connections: self.connections,
            warmup: self.warmup,
            measure: self.measure,
            max_requests: self.max_requests,
            request_timeout: Duration::from_secs(10),
        }
    }

    /// How far from now the wrong code must match no code of the device: every scenario's
    /// whole time, with room to spare.
    fn horizon(&self) -> Duration {
        let scenario = self.warmup + self.measure + self.plan().request_timeout;
        scenario * 10 + Duration::from_secs(300)
    }

    fn describe(&self) -> String {
        format!(
            "{} connections, {:.2} s warm-up + {:.2} s counted per scenario, \
             at most {} requests per scenario; server runtime {} worker thread(s), \
             client runtime {}; {} CPU(s)",
            self.connections,
            self.warmup.as_secs_f64(),
            self.measure.as_secs_f64(),
            self.max_requests,
            self.server_threads,
            self.client_threads,
            std::thread::available_parallelism().map_or(1, |n| n.get()),
        )
    }
}

/// `name` from the environment, or `default` if unset; a value that does not parse is an
/// error, not silently the default.
fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a valid value")),
        Err(_) => default,
    }
}

fn runtime(threads: usize, name: &str) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
        .unwrap()
}

/// The application on one store, and what its scenarios present.
struct Site {
    app: Router,
    /// A verified session's cookie (`name=value`).
    verified: String,
    /// Cookies of sessions of [`GUESSER`], one per connection.
    guessers: Vec<String>,
    /// The JSON body that sends [`GUESSER`]'s device a code it cannot accept.
    wrong_code_body: Bytes,
}

impl Site {
    async fn new(store: impl Store, settings: &Settings) -> Site {
        let two_factor =
            app::without_throttling(TwoFactor::new(store, ServerKey::new(&[1; 32]).unwrap()));
        let app = app::routes()
            .route(
                "/login",
                post(|session: OtpSession| async move {
                    session.login(UserId::new(GUESSER).unwrap()).await.unwrap();
                    "ok"
                }),
            )
            .nest("/2fa", api::router(ApiConfig::new()))
            .layer(OtpLayer::new(two_factor.clone()));
        let verified = app::verified_session(&app).await;

        let guesser = UserId::new(GUESSER).unwrap();
        let enrolment = app::confirmed_totp_enrollment(&two_factor, &guesser).await;
        let wrong = code_matching_none(&enrolment, two_factor.now(), settings.horizon());
        let wrong_code_body = serde_json::json!({
            "device_id": enrolment.device.id.as_str(),
            "code": wrong,
        })
        .to_string()
        .into();
        let mut guessers = Vec::with_capacity(settings.connections);
        for _ in 0..settings.connections {
            let response = app
                .clone()
                .oneshot(Request::post("/login").body(Body::empty()).unwrap())
                .await
                .unwrap();
            guessers.push(app::session_cookie(&response));
        }
        Site {
            app,
            verified,
            guessers,
            wrong_code_body,
        }
    }
}

/// A six-digit code that the device shows at no time from a minute before `now` to `horizon`
/// after it, so that a "wrong code" can never be right by chance.
fn code_matching_none(enrolment: &Enrollment, now: Timestamp, horizon: Duration) -> String {
    let step = 30;
    let from = now.as_secs().saturating_sub(2 * step);
    let until = now.saturating_add(horizon).as_secs() + 2 * step;
    let shown: HashSet<String> = (from..=until)
        .step_by(step as usize)
        .map(|secs| enrolment.current_code(Timestamp::from_secs(secs)))
        .collect();
    (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|code| !shown.contains(code))
        .expect("fewer codes shown than there are codes")
}

/// A server on `127.0.0.1:0`, serving until stopped.
struct Server {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    fn start(runtime: &Runtime, app: Router) -> Server {
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = runtime.spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        Server { addr, stop, task }
    }

    /// Stops accepting, lets open connections finish, and waits a few seconds at most.
    fn stop(self, runtime: &Runtime) {
        let _ = self.stop.send(());
        let wait = async { tokio::time::timeout(Duration::from_secs(5), self.task).await };
        let ended = runtime.block_on(wait);
        match ended {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => panic!("server on {} failed: {e}", self.addr),
            Ok(Err(e)) => panic!("server task on {} failed: {e}", self.addr),
            Err(_) => eprintln!(
                "server on {} still had connections; left running",
                self.addr
            ),
        }
    }
}

/// One line of the table: what to send where, and which statuses are right.
struct Scenario {
    name: &'static str,
    store: &'static str,
    addr: SocketAddr,
    expected: &'static [u16],
    templates: Vec<Template>,
}

impl Scenario {
    fn new(
        name: &'static str,
        store: &'static str,
        server: &Server,
        expected: &'static [u16],
    ) -> Scenario {
        Scenario {
            name,
            store,
            addr: server.addr,
            expected,
            templates: Vec::new(),
        }
    }

    /// `GET path` with `cookie` on each of `connections` connections.
    fn get(self, path: &str, cookie: &str, connections: usize) -> Scenario {
        let template = self.template(Method::GET, path, cookie, None);
        Scenario {
            templates: vec![template; connections],
            ..self
        }
    }

    /// `POST /2fa/verify` with a wrong code, each connection in its own session of the same
    /// user.
    fn wrong_codes(self, site: &Site) -> Scenario {
        let body = Some(site.wrong_code_body.clone());
        let templates = site
            .guessers
            .iter()
            .map(|cookie| self.template(Method::POST, "/2fa/verify", cookie, body.clone()))
            .collect();
        Scenario { templates, ..self }
    }

    fn template(&self, method: Method, path: &str, cookie: &str, body: Option<Bytes>) -> Template {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_str(&self.addr.to_string()).unwrap());
        headers.insert(COOKIE, HeaderValue::from_str(cookie).unwrap());
        if body.is_some() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        Template {
            method,
            uri: path.parse().unwrap(),
            headers,
            body: body.unwrap_or_default(),
        }
    }
}

/// A scenario's results.
struct Row {
    name: &'static str,
    store: &'static str,
    expected: &'static [u16],
    outcome: Outcome,
}

impl Row {
    fn failures(&self) -> Vec<String> {
        let label = format!("{} ({})", self.name, self.store);
        let mut failures: Vec<String> = self
            .outcome
            .statuses
            .iter()
            .filter(|(status, _)| !self.expected.contains(status))
            .map(|(status, n)| format!("{label}: {n} responses with status {status}"))
            .collect();
        failures.extend(
            self.outcome
                .errors
                .iter()
                .map(|error| format!("{label}: {error}")),
        );
        if self.outcome.requests() == 0 {
            failures.push(format!("{label}: no request completed"));
        }
        failures
    }
}

fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| scenario | store | requests | req/s | p50 | p90 | p99 | max | statuses |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n",
    );
    for row in rows {
        let o = &row.outcome;
        let statuses: Vec<String> = o
            .statuses
            .iter()
            .map(|(status, n)| format!("{status} × {n}"))
            .chain((!o.errors.is_empty()).then(|| format!("{} errors", o.errors.len())))
            .collect();
        out.push_str(&format!(
            "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {} |\n",
            row.name,
            row.store,
            o.requests(),
            o.throughput(),
            Latency(o.percentile(0.50)),
            Latency(o.percentile(0.90)),
            Latency(o.percentile(0.99)),
            Latency(o.max()),
            statuses.join(", "),
        ));
    }
    out
}
