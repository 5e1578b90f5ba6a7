//! The connection to one Redis server or to a Redis Cluster, and how a request runs on it:
//! within a deadline, and retried only when the server certainly did not run it.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{
    Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, ScriptInvocation, ServerErrorKind, Value,
};
use tokio::time::Instant;

use super::pipelining::ReadPipeline;
use crate::store::StoreError;

/// Where to connect.
#[derive(Clone)]
pub(super) enum Target {
    Server(String),
    Cluster(Vec<String>),
}

/// A multiplexed connection shared by all clones of a store, reconnecting on its own.
#[derive(Clone)]
pub(super) enum Connection {
    Server(ConnectionManager),
    Cluster(ClusterConnection),
}

/// How long to wait before sending again a request that the server refused to run (a cluster
/// redirect, `TRYAGAIN`, `CLUSTERDOWN`, `LOADING`, or `NOSCRIPT` again because the script cache
/// was flushed between loading and running); doubled on each try, within the deadline.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(20);

impl Connection {
    /// The reads of concurrent requests sent together ([`ReadPipeline`]), on a single
    /// server; `None` on a cluster.
    pub(super) fn read_pipeline(&self, timeout: Duration) -> Option<ReadPipeline> {
        match self {
            Connection::Server(manager) => Some(ReadPipeline::start(manager.clone(), timeout)),
            Connection::Cluster(_) => None,
        }
    }

    /// Connects, failing after `timeout`.
    ///
    /// Neither client ever sends a command again after an I/O error or a timeout, because the
    /// server may have run it: the connection manager only reconnects, and the cluster client
    /// is built with no retries of its own (it would resend on I/O errors, so the redirects it
    /// would follow are handled by [`run`](Connection::run) instead).
    ///
    /// A failure says where and what Redis said (see [`startup_error`]).
    pub(super) async fn open(target: &Target, timeout: Duration) -> Result<Self, StoreError> {
        match target {
            Target::Server(url) => open_server(url, timeout).await,
            Target::Cluster(urls) => open_cluster(urls, timeout).await,
        }
    }

    /// Runs one request: one round trip, or three when the script must be loaded first.
    pub(super) async fn run(
        &self,
        request: &Request<'_>,
        timeout: Duration,
    ) -> Result<Value, StoreError> {
        let deadline = Instant::now() + timeout;
        let mut connection = self.clone();
        let attempts = async {
            let mut delay = FIRST_RETRY_DELAY;
            loop {
                let result = match request {
                    Request::Script(invocation) => invocation.invoke_async(&mut connection).await,
                    Request::Command(command) => command.query_async(&mut connection).await,
                };
                match result {
                    Err(error) if not_run(&error) && Instant::now() + delay < deadline => {
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                    result => return result.map_err(StoreError::from),
                }
            }
        };
        within(timeout, attempts).await
    }
}

async fn open_server(url: &str, timeout: Duration) -> Result<Connection, StoreError> {
    let client = redis::Client::open(url).map_err(invalid_url)?;
    let place = place_of(&client);
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(timeout))
        .set_connection_timeout(Some(timeout))
        // Reconnection attempts, not command retries: a command waiting for the connection
        // fails fast while the server is down.
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(250));
    match tokio::time::timeout(timeout, ConnectionManager::new_with_config(client, config)).await {
        Ok(Ok(manager)) => Ok(Connection::Server(manager)),
        Ok(Err(error)) => Err(startup_error(&format!("redis at {place}"), &error)),
        Err(_) => Err(no_answer(&format!("redis at {place}"), timeout)),
    }
}

async fn open_cluster(urls: &[String], timeout: Duration) -> Result<Connection, StoreError> {
    let client = ClusterClient::builder(urls.iter().map(String::as_str))
        .retries(0)
        .connection_timeout(timeout)
        .response_timeout(timeout)
        .build()
        .map_err(invalid_url)?;
    match tokio::time::timeout(timeout, client.get_async_connection()).await {
        Ok(Ok(connection)) => Ok(Connection::Cluster(connection)),
        Ok(Err(error)) => Err(cluster_startup_error(urls, &error, timeout).await),
        Err(_) => Err(no_answer(&cluster_at(urls), timeout)),
    }
}

/// A connection failure at start-up, with what Redis said. Nothing stored has been read on
/// this connection yet, so unlike the errors of requests ([`From<RedisError>`]) the redis
/// crate's message cannot quote a stored value, and it holds the reason an operator needs:
/// the server's refusal (`DB index is out of range`, a failed authentication) or the
/// operating system's error.
fn startup_error(subject: &str, error: &RedisError) -> StoreError {
    StoreError::Unavailable(format!("{subject}: {error}"))
}

fn no_answer(subject: &str, timeout: Duration) -> StoreError {
    StoreError::Unavailable(format!("{subject}: no answer within {timeout:?}"))
}

/// The cluster client's error names no node when none of the initial nodes can be reached,
/// so each is tried on its own to say which failed and why.
async fn cluster_startup_error(
    urls: &[String],
    error: &RedisError,
    timeout: Duration,
) -> StoreError {
    let mut probes = tokio::task::JoinSet::new();
    for (i, url) in urls.iter().enumerate() {
        let url = url.clone();
        probes.spawn(async move { (i, probe(&url, timeout).await) });
    }
    let mut failures: Vec<(usize, String)> = Vec::new();
    while let Some(done) = probes.join_next().await {
        if let Ok((i, Some(failure))) = done {
            failures.push((i, failure));
        }
    }
    if failures.is_empty() {
        // Every node answers on its own: the cluster itself is the problem.
        return startup_error(&cluster_at(urls), error);
    }
    failures.sort();
    let failures: Vec<String> = failures.into_iter().map(|(_, failure)| failure).collect();
    StoreError::Unavailable(format!("redis cluster: {}", failures.join("; ")))
}

/// Why one node cannot be connected to, or `None` if it can.
async fn probe(url: &str, timeout: Duration) -> Option<String> {
    // The cluster client took this URL already.
    let client = redis::Client::open(url).ok()?;
    let place = place_of(&client);
    match tokio::time::timeout(timeout, client.get_multiplexed_async_connection()).await {
        Ok(Ok(_)) => None,
        Ok(Err(error)) => Some(format!("node {place}: {error}")),
        Err(_) => Some(format!("node {place}: no answer within {timeout:?}")),
    }
}

/// Host and port (or socket path) and database of a client, without user or password.
fn place_of(client: &redis::Client) -> String {
    let info = client.get_connection_info();
    match info.redis_settings().db() {
        0 => info.addr().to_string(),
        db => format!("{} (database {db})", info.addr()),
    }
}

/// `redis cluster at` the places of its initial nodes.
fn cluster_at(urls: &[String]) -> String {
    let places: Vec<String> = urls
        .iter()
        .filter_map(|url| redis::Client::open(url.as_str()).ok())
        .map(|client| place_of(&client))
        .collect();
    format!("redis cluster at {}", places.join(", "))
}

/// A request: a script or a plain command.
pub(super) enum Request<'a> {
    Script(ScriptInvocation<'a>),
    Command(Cmd),
}

/// Fails with [`StoreError::Unavailable`] if `operation` takes longer than `timeout`.
pub(super) async fn within<T>(
    timeout: Duration,
    operation: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(timeout, operation)
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(format!(
                "redis: no answer within {timeout:?}"
            )))
        })
}

/// Whether the server refused the request before running any of it, so that sending it again
/// cannot apply it twice.
pub(super) fn not_run(error: &RedisError) -> bool {
    matches!(
        error.kind(),
        ErrorKind::Server(
            ServerErrorKind::Moved
                | ServerErrorKind::Ask
                | ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::MasterDown
                | ServerErrorKind::BusyLoading
                | ServerErrorKind::NoScript
        )
    )
}

/// The redis crate's URL errors can quote the URL, password included.
fn invalid_url(_: RedisError) -> StoreError {
    StoreError::Invalid("invalid Redis URL")
}

/// The error code the scripts raise when a stored record fails their checks.
const CORRUPT_CODE: &str = "CORRUPT";

impl From<RedisError> for StoreError {
    /// Only the error's kind is kept: the redis crate's messages can quote replies, and so
    /// stored values.
    fn from(error: RedisError) -> Self {
        if error.code() == Some(CORRUPT_CODE) {
            return StoreError::Corrupt("a stored record failed a check in Redis".into());
        }
        match error.kind() {
            ErrorKind::UnexpectedReturnType => {
                StoreError::Corrupt("unexpected reply type from Redis".into())
            }
            ErrorKind::InvalidClientConfig => StoreError::Invalid("invalid Redis settings"),
            _ if error.is_timeout() => StoreError::Unavailable("redis: timed out".into()),
            _ if error.is_connection_refusal() => {
                StoreError::Unavailable("redis: connection refused".into())
            }
            _ if error.is_connection_dropped() => {
                StoreError::Unavailable("redis: connection lost".into())
            }
            _ => StoreError::Unavailable(format!("redis: {}", describe(&error))),
        }
    }
}

/// The error's category, and a server error's code (both fixed words).
fn describe(error: &RedisError) -> String {
    match error.kind() {
        ErrorKind::Server(kind) => format!("{} ({kind:?})", error.category()),
        _ => error.category().to_owned(),
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Server(connection) => connection.req_packed_command(cmd),
            Connection::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Server(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            Connection::Cluster(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Server(connection) => connection.get_db(),
            Connection::Cluster(connection) => connection.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_become_store_errors_without_details() {
        let timeout = RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "secret-value",
        ));
        let converted = StoreError::from(timeout);
        assert_eq!(converted.kind(), "store_unavailable");
        assert!(!converted.to_string().contains("secret"));

        let typed = RedisError::from((
            ErrorKind::UnexpectedReturnType,
            "bad",
            "secret-value".to_owned(),
        ));
        let converted = StoreError::from(typed);
        assert_eq!(converted.kind(), "store_corrupt");
        assert!(!converted.to_string().contains("secret"));
    }
}
