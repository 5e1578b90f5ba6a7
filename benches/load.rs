//! Load test: real HTTP servers in this process (`axum::serve` on `127.0.0.1:0`), each driven
//! by keep-alive HTTP/1.1 connections with one request in flight each, scenario after scenario
//! and round after round (every scenario in each round, so that drift on the machine is shared
//! by all), reporting throughput, latency percentiles and CPU time per request side by side in one
//! Markdown table:
//!
//! * bare axum (the routes without `OtpLayer`);
//! * the floor of any Redis-backed guard: one `GET` of a JSON session record and its decoding
//!   per request, on the connection type `RedisStore` uses;
//! * tower-sessions 0.14 with `tower-sessions-redis-store`, reading one session value;
//! * with the layer: a route that never looks at the session, a guarded route with a verified
//!   session's cookie (on `MemoryStore`, `RedisStore`, `RedisStore` with its local cache and
//!   `RedisStore` on a Redis Cluster), and
//!   the JSON API's `GET /2fa/status`;
//! * wrong codes: every connection a session of one user, all of them sending a wrong code to
//!   `POST /2fa/verify` at once, throttling off; every answer must be a 401 or a 429.
//!
//! CPU time per request: the servers' runtime threads (`/proc/self/task`, 10 ms ticks) and the
//! scenario's Redis servers (`INFO cpu`), from the end of the warm-up to the end of the
//! scenario, divided by the counted requests. The clients' runtime is not counted. A second
//! table compares the throughputs with the goals (ratios of one run on one machine).
//!
//! Any other status, or a failed connection, fails the run after the tables are printed.
//!
//! Run with `cargo bench --bench load` (about 3 minutes; needs `redis-server` and
//! `redis-cli` on `PATH`: the bench starts a private server and a private three-node Cluster
//! on free loopback ports and stops them at the end). An argument runs only the scenarios
//! whose name contains it: `cargo bench --bench load -- redis`.
//!
//! Settings, from the environment:
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `LOAD_ROUNDS` | 5 | rounds: each runs every scenario in turn, and a scenario's figures are over all its rounds |
//! | `LOAD_SECONDS` | 10 | seconds counted per scenario, shared among the rounds |
//! | `LOAD_WARMUP_SECONDS` | 0.5 | seconds of requests before each round's count, not counted |
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
#[path = "support/baselines.rs"]
mod baselines;
#[path = "support/cpu.rs"]
mod cpu;
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
use tower_otp::store::RedisConfig;
use tower_otp::{MemoryStore, RedisStore, ServerKey, Store, TwoFactor, UserId};

use load_client::{Latency, Outcome, Plan, Template};
use redis_server::{RedisCluster, RedisServer};

/// The user whose sessions send wrong codes.
const GUESSER: &str = "carol";

fn main() {
    let bench = std::env::args().any(|arg| arg == "--bench");
    let filter = std::env::args().skip(1).find(|arg| !arg.starts_with('-'));
    let settings = Settings::from_env(bench);

    let servers = runtime(settings.server_threads, SERVER_THREADS);
    let clients = runtime(settings.client_threads, "client");
    let redis = RedisServer::start();
    let cluster = RedisCluster::start();

    let memory = servers.block_on(Site::new(MemoryStore::new(), &settings));
    let redis_store = servers
        .block_on(RedisStore::connect(&redis.url()))
        .expect("connect to the private redis-server");
    let redis_site = servers.block_on(Site::new(redis_store, &settings));
    let cached_store = servers
        .block_on(
            RedisConfig::server(redis.url())
                .with_key_prefix("cached")
                .with_local_cache(10_000)
                .connect(),
        )
        .expect("connect to the private redis-server with a local cache");
    let cached_site = servers.block_on(Site::new(cached_store, &settings));
    let cluster_store = servers
        .block_on(RedisStore::connect_cluster(cluster.urls()))
        .expect("connect to the private Redis Cluster");
    let cluster_site = servers.block_on(Site::new(cluster_store, &settings));
    let (floor_app, floor_cookie) = servers.block_on(baselines::one_get_floor(&redis.url()));
    let sessions_app = servers.block_on(baselines::tower_sessions_app(&redis.url()));
    let sessions_cookie = servers.block_on(login_cookie(&sessions_app));

    let bare = Server::start(&servers, app::routes_without_layer());
    let floor = Server::start(&servers, floor_app);
    let sessions = Server::start(&servers, sessions_app);
    let with_memory = Server::start(&servers, memory.app.clone());
    let with_redis = Server::start(&servers, redis_site.app.clone());
    let with_cache = Server::start(&servers, cached_site.app.clone());
    let with_cluster = Server::start(&servers, cluster_site.app.clone());

    let n = settings.connections;
    let ok: &[u16] = &[200];
    let refused: &[u16] = &[401, 429];
    let one_redis = [redis.port()];
    let cluster_nodes: Vec<u16> = cluster.nodes().iter().map(RedisServer::port).collect();
    let scenarios = [
        Scenario::new(BARE, "-", &bare, ok).get("/admin", &memory.verified, n),
        Scenario::new(FLOOR, "redis", &floor, ok)
            .on(&one_redis)
            .get("/admin", &floor_cookie, n),
        Scenario::new(TOWER_SESSIONS, "redis", &sessions, ok)
            .on(&one_redis)
            .get("/admin", &sessions_cookie, n),
        Scenario::new(UNGUARDED, "memory", &with_memory, ok).get("/public", &memory.verified, n),
        Scenario::new(UNGUARDED, "redis", &with_redis, ok)
            .on(&one_redis)
            .get("/public", &redis_site.verified, n),
        Scenario::new(GUARDED, "memory", &with_memory, ok).get("/admin", &memory.verified, n),
        Scenario::new(GUARDED, "redis", &with_redis, ok)
            .on(&one_redis)
            .get("/admin", &redis_site.verified, n),
        Scenario::new(GUARDED, LOCAL_CACHE, &with_cache, ok)
            .on(&one_redis)
            .get("/admin", &cached_site.verified, n),
        Scenario::new(GUARDED, "redis cluster", &with_cluster, ok)
            .on(&cluster_nodes)
            .get("/admin", &cluster_site.verified, n),
        Scenario::new("API: GET /2fa/status, verified", "memory", &with_memory, ok).get(
            "/2fa/status",
            &memory.verified,
            n,
        ),
        Scenario::new("API: GET /2fa/status, verified", "redis", &with_redis, ok)
            .on(&one_redis)
            .get("/2fa/status", &redis_site.verified, n),
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
        .on(&one_redis)
        .wrong_codes(&redis_site),
    ];

    println!("{}", settings.describe());
    let chosen: Vec<Scenario> = scenarios
        .into_iter()
        .filter(|s| {
            filter
                .as_ref()
                .is_none_or(|f| s.label().contains(f.as_str()))
        })
        .collect();
    // Round after round, every scenario in turn: whatever drifts on the machine during the
    // run (other processes, the CPU's clock, the kernel's buffers) is shared by all of them,
    // not charged to whichever ran at the time.
    let mut rows: Vec<Row> = Vec::new();
    for round in 1..=settings.rounds {
        for (i, scenario) in chosen.iter().enumerate() {
            eprintln!("round {round}/{}: {}", settings.rounds, scenario.label());
            let row = run(&clients, &settings, scenario);
            match rows.get_mut(i) {
                Some(total) => total.absorb(row),
                None => rows.push(row),
            }
        }
    }

    let all = [
        bare,
        floor,
        sessions,
        with_memory,
        with_redis,
        with_cache,
        with_cluster,
    ];
    for server in all {
        server.stop(&servers);
    }
    drop((memory, redis_site, cached_site, cluster_site));
    drop(servers);
    drop((redis, cluster));

    println!("{}", table(&rows));
    println!("{}", goals(&rows));
    let failures: Vec<String> = rows.iter().flat_map(Row::failures).collect();
    assert!(
        failures.is_empty(),
        "unexpected results:\n{}",
        failures.join("\n")
    );
}

/// The thread name of the servers' runtime, by which their CPU time is told from the
/// clients'.
const SERVER_THREADS: &str = "server";

const BARE: &str = "bare axum, no layer";
const FLOOR: &str = "one Redis GET per request (floor)";
const TOWER_SESSIONS: &str = "tower-sessions 0.14 + Redis store";
const UNGUARDED: &str = "OtpLayer, route that never reads the session";
const GUARDED: &str = "OtpLayer + RequireOtpLayer, verified session";
/// The store column of `RedisStore` with `RedisConfig::with_local_cache`.
const LOCAL_CACHE: &str = "redis, local cache";

/// Drives one scenario and reads the CPU time the servers and Redis spent while its requests
/// were counted.
fn run(clients: &Runtime, settings: &Settings, scenario: &Scenario) -> Row {
    let ports = scenario.redis_ports.clone();
    let (outcome, before) = clients.block_on(async {
        let after_warmup = async {
            tokio::time::sleep(settings.warmup).await;
            let ports = ports.clone();
            tokio::task::spawn_blocking(move || CpuUse::now(&ports))
                .await
                .unwrap()
        };
        let load = load_client::run(scenario.addr, settings.plan(), scenario.templates.clone());
        tokio::join!(load, after_warmup)
    });
    let spent = CpuUse::now(&ports).since(&before);
    Row {
        name: scenario.name,
        store: scenario.store,
        expected: scenario.expected,
        outcome,
        spent,
    }
}

/// CPU time used so far by the servers' threads and by the Redis servers of a scenario.
struct CpuUse {
    server: Duration,
    redis: Option<Duration>,
}

impl CpuUse {
    fn now(redis_ports: &[u16]) -> CpuUse {
        let redis = (!redis_ports.is_empty()).then(|| {
            redis_ports
                .iter()
                .map(|&port| {
                    let info = redis_server::raw_command(port, "INFO cpu").expect("INFO cpu");
                    cpu::redis_cpu(&info).expect("used_cpu_user and used_cpu_sys in INFO cpu")
                })
                .sum()
        });
        CpuUse {
            server: cpu::threads_named(SERVER_THREADS),
            redis,
        }
    }

    fn plus(&self, other: &CpuUse) -> CpuUse {
        CpuUse {
            server: self.server + other.server,
            redis: self.redis.zip(other.redis).map(|(a, b)| a + b),
        }
    }

    fn since(&self, before: &CpuUse) -> CpuUse {
        CpuUse {
            server: self.server.saturating_sub(before.server),
            redis: self
                .redis
                .zip(before.redis)
                .map(|(now, then)| now.saturating_sub(then)),
        }
    }
}

/// Logs a session into the tower-sessions application and returns its cookie.
async fn login_cookie(app: &Router) -> String {
    let response = app
        .clone()
        .oneshot(Request::post("/login").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    let cookie = app::session_cookie(&response);
    assert_eq!(app::call(app, "/admin", Some(&cookie)).await, 200);
    cookie
}

/// What the environment (or the smoke-test defaults) asks for.
struct Settings {
    rounds: usize,
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
        let (rounds, seconds, warmup, connections) = if bench {
            (5, 10.0, 0.5, 32)
        } else {
            (1, 0.2, 0.05, 4)
        };
        let rounds = env("LOAD_ROUNDS", rounds).max(1);
        Settings {
            rounds,
            measure: Duration::from_secs_f64(env("LOAD_SECONDS", seconds) / rounds as f64),
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
        let round = self.warmup + self.measure + self.plan().request_timeout;
        round * 10 * self.rounds as u32 + Duration::from_secs(300)
    }

    fn describe(&self) -> String {
        format!(
            "{} connections; {} round(s), in each {:.2} s warm-up + {:.2} s counted per \
             scenario, at most {} requests per scenario and round; server runtime {} worker \
             thread(s), client runtime {}; {} CPU(s)",
            self.connections,
            self.rounds,
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
    /// The Redis servers whose CPU time the scenario's requests cost.
    redis_ports: Vec<u16>,
}

impl Scenario {
    fn label(&self) -> String {
        format!("{} ({})", self.name, self.store)
    }

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
            redis_ports: Vec::new(),
        }
    }

    /// The scenario's store lives in these Redis servers.
    fn on(self, redis_ports: &[u16]) -> Scenario {
        Scenario {
            redis_ports: redis_ports.to_vec(),
            ..self
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
    /// CPU time spent while the requests were counted.
    spent: CpuUse,
}

impl Row {
    /// Adds another round of the same scenario.
    fn absorb(&mut self, round: Row) {
        self.outcome.absorb(round.outcome);
        self.spent = self.spent.plus(&round.spent);
    }

    /// `spent` per counted request, in microseconds, or `-` when not measured.
    fn per_request(&self, spent: Option<Duration>) -> String {
        match spent {
            Some(spent) if self.outcome.requests() > 0 => format!(
                "{:.1} µs",
                spent.as_secs_f64() * 1e6 / self.outcome.requests() as f64
            ),
            _ => "-".to_owned(),
        }
    }

    /// Server and Redis CPU per counted request, in microseconds.
    fn cost_per_request(&self) -> Option<f64> {
        let requests = self.outcome.requests();
        let spent = self.spent.server + self.spent.redis.unwrap_or_default();
        (requests > 0).then(|| spent.as_secs_f64() * 1e6 / requests as f64)
    }

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
    let bare = throughput_of(rows, BARE, "-");
    let floor = throughput_of(rows, FLOOR, "redis");
    let mut out = String::from(
        "| scenario | store | requests | req/s | vs bare | vs floor | p50 | p99 | \
         server CPU/req | Redis CPU/req | statuses |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n",
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
            "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} |\n",
            row.name,
            row.store,
            o.requests(),
            o.throughput(),
            ratio(o.throughput(), bare),
            ratio(o.throughput(), floor),
            Latency(o.percentile(0.50)),
            Latency(o.percentile(0.99)),
            row.per_request(Some(row.spent.server)),
            row.per_request(row.spent.redis),
            statuses.join(", "),
        ));
    }
    out
}

/// The goals, each as measured in this run: ratios of throughputs.
fn goals(rows: &[Row]) -> String {
    let row = |name, store| rows.iter().find(|r| r.name == name && r.store == store);
    let bare = row(BARE, "-");
    let floor = row(FLOOR, "redis");
    let sessions = row(TOWER_SESSIONS, "redis");
    let guarded = row(GUARDED, "redis");
    let cached = row(GUARDED, LOCAL_CACHE);
    let unguarded = row(UNGUARDED, "redis");
    let lines = [
        (
            "guarded on RedisStore vs the one-GET floor",
            guarded,
            floor,
            0.95,
        ),
        (
            "guarded on RedisStore vs tower-sessions",
            guarded,
            sessions,
            1.15,
        ),
        (
            "guarded with the local cache vs bare axum",
            cached,
            bare,
            0.85,
        ),
        (
            "unguarded route behind OtpLayer vs bare axum",
            unguarded,
            bare,
            0.95,
        ),
    ];
    // The goals are ratios of throughput. Beside them, the same ratio of what a request costs
    // (server and Redis CPU): on a machine the client shares, throughput also moves with the
    // client's and the scheduler's share, the cost does not.
    let mut out = String::from(
        "| goal | ratio | target | met | cost ratio (CPU/req) |\n\
         | --- | ---: | ---: | --- | ---: |\n",
    );
    for (goal, measured, against, target) in lines {
        let (shown, met, cost) = match (measured, against) {
            (Some(m), Some(a)) if a.outcome.throughput() > 0.0 => {
                let r = m.outcome.throughput() / a.outcome.throughput();
                let cost = match (a.cost_per_request(), m.cost_per_request()) {
                    (Some(a), Some(m)) if m > 0.0 => format!("{:.2}", a / m),
                    _ => "-".to_owned(),
                };
                (
                    format!("{r:.2}"),
                    if r >= target { "yes" } else { "no" },
                    cost,
                )
            }
            _ => ("-".to_owned(), "not run", "-".to_owned()),
        };
        out.push_str(&format!(
            "| {goal} | {shown} | ≥ {target:.2} | {met} | {cost} |\n"
        ));
    }
    out
}

fn throughput_of(rows: &[Row], name: &str, store: &str) -> Option<f64> {
    rows.iter()
        .find(|row| row.name == name && row.store == store)
        .map(|row| row.outcome.throughput())
}

fn ratio(throughput: f64, of: Option<f64>) -> String {
    match of {
        Some(of) if of > 0.0 => format!("{:.2}", throughput / of),
        _ => "-".to_owned(),
    }
}
