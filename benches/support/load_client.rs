//! A closed-loop HTTP/1.1 load generator: a number of keep-alive connections, each sending
//! its next request as soon as the whole previous response has arrived, for a bounded time
//! and a bounded number of requests.
//!
//! Included by the load benchmark with `#[path = "support/load_client.rs"] mod load_client;`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How long and how hard to drive a server.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    /// Open connections, each with one request in flight at a time.
    pub(crate) connections: usize,
    /// Requests before this long after the start are sent but not counted: connections and
    /// caches warm up.
    pub(crate) warmup: Duration,
    /// How long requests are counted after the warm-up.
    pub(crate) measure: Duration,
    /// At most this many requests in all (warm-up included), whatever the time.
    pub(crate) max_requests: u64,
    /// A response slower than this ends its connection and counts as an error.
    pub(crate) request_timeout: Duration,
}

/// One connection's request, sent again and again.
#[derive(Clone, Debug)]
pub(crate) struct Template {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Template {
    fn request(&self) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// What one run measured.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Every counted request's latency, sorted.
    latencies: Vec<Duration>,
    /// From the end of the warm-up to the last counted response.
    elapsed: Duration,
    /// Counted responses by status.
    pub(crate) statuses: BTreeMap<u16, u64>,
    /// Connection failures, timeouts and broken responses (counted or not).
    pub(crate) errors: Vec<String>,
}

impl Outcome {
    /// Counted responses.
    pub(crate) fn requests(&self) -> u64 {
        self.latencies.len() as u64
    }

    /// Counted responses per second.
    pub(crate) fn throughput(&self) -> f64 {
        if self.elapsed.is_zero() {
            return 0.0;
        }
        self.requests() as f64 / self.elapsed.as_secs_f64()
    }

    /// Adds the counted requests of another run of the same scenario (another round).
    pub(crate) fn absorb(&mut self, other: Outcome) {
        self.latencies.extend(other.latencies);
        self.latencies.sort_unstable();
        self.elapsed += other.elapsed;
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.errors.extend(other.errors);
    }

    /// The latency that a share `q` (0 to 1) of the counted requests did not exceed
    /// (nearest rank).
    pub(crate) fn percentile(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = (q * self.latencies.len() as f64).ceil() as usize;
        self.latencies[rank.clamp(1, self.latencies.len()) - 1]
    }
}

/// Drives the server at `addr` with one connection per template (`plan.connections` of
/// them), each sending its template again and again, until the plan's time or request
/// budget runs out. Runs on the caller's runtime.
pub(crate) async fn run(addr: SocketAddr, plan: Plan, templates: Vec<Template>) -> Outcome {
    assert_eq!(
        templates.len(),
        plan.connections,
        "one template per connection"
    );
    let start = Instant::now();
    let counted_from = start + plan.warmup;
    let until = counted_from + plan.measure;
    let per_connection = plan.max_requests.div_ceil(plan.connections as u64).max(1);
    let tasks: Vec<_> = templates
        .into_iter()
        .map(|template| {
            tokio::spawn(drive(
                addr,
                template,
                counted_from,
                until,
                per_connection,
                plan.request_timeout,
            ))
        })
        .collect();
    let mut outcome = Outcome::default();
    let mut last = counted_from;
    for task in tasks {
        let connection = task.await.expect("connection task");
        outcome.latencies.extend(connection.latencies);
        for (status, n) in connection.statuses {
            *outcome.statuses.entry(status).or_default() += n;
        }
        outcome.errors.extend(connection.error);
        last = last.max(connection.last.unwrap_or(counted_from));
    }
    outcome.latencies.sort_unstable();
    outcome.elapsed = last.saturating_duration_since(counted_from);
    outcome
}

#[derive(Default)]
struct Connection {
    latencies: Vec<Duration>,
    statuses: BTreeMap<u16, u64>,
    error: Option<String>,
    last: Option<Instant>,
}

async fn drive(
    addr: SocketAddr,
    template: Template,
    counted_from: Instant,
    until: Instant,
    budget: u64,
    timeout: Duration,
) -> Connection {
    let mut connection = Connection::default();
    let run = exchange_until(
        &mut connection,
        addr,
        &template,
        counted_from,
        until,
        budget,
        timeout,
    );
    if let Err(error) = run.await {
        connection.error = Some(error);
    }
    connection
}

async fn exchange_until(
    connection: &mut Connection,
    addr: SocketAddr,
    template: &Template,
    counted_from: Instant,
    until: Instant,
    budget: u64,
    timeout: Duration,
) -> Result<(), String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    // Small requests and responses: Nagle's algorithm would only add delays.
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (mut sender, driver) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let driver = tokio::spawn(driver);
    let mut sent = 0;
    while sent < budget {
        let started = Instant::now();
        if started >= until {
            break;
        }
        sent += 1;
        let exchange = async {
            sender.ready().await?;
            let response = sender.send_request(template.request()).await?;
            let status = response.status();
            response.into_body().collect().await?;
            Ok::<StatusCode, hyper::Error>(status)
        };
        let status = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| format!("no response within {timeout:?}"))?
            .map_err(|e| format!("request: {e}"))?;
        let finished = Instant::now();
        if started >= counted_from {
            connection.latencies.push(finished - started);
            *connection.statuses.entry(status.as_u16()).or_default() += 1;
            connection.last = Some(finished);
        }
    }
    // Dropping the sender closes the connection once it is idle; the driver then ends.
    drop(sender);
    let _ = tokio::time::timeout(timeout, driver).await;
    Ok(())
}

/// A latency as people read it: microseconds below a millisecond, else milliseconds.
pub(crate) struct Latency(pub(crate) Duration);

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let micros = self.0.as_secs_f64() * 1e6;
        if micros.round() < 1000.0 {
            write!(f, "{micros:.0} µs")
        } else {
            write!(f, "{:.2} ms", micros / 1000.0)
        }
    }
}
