//! How to reach Redis: one server or a cluster, the key prefix, the timeout.

use std::fmt;
use std::time::Duration;

use super::RedisStore;
use super::connection::Target;
use crate::store::StoreError;

/// Settings of a [`RedisStore`]. See the [module docs](crate::store::redis) for what they mean for keys,
/// timeouts and retries.
///
/// ```no_run
/// use std::time::Duration;
/// use tower_otp::store::RedisConfig;
///
/// # async fn example() -> Result<(), tower_otp::store::StoreError> {
/// let store = RedisConfig::cluster(["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"])
///     .with_key_prefix("myapp-otp")
///     .with_timeout(Duration::from_millis(500))
///     .connect()
///     .await?;
/// # let _ = store;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisConfig {
    pub(super) target: Target,
    pub(super) key_prefix: String,
    pub(super) timeout: Duration,
    pub(super) local_cache: Option<usize>,
    pub(super) pipelined_reads: bool,
}

impl RedisConfig {
    /// The default key prefix.
    pub const DEFAULT_KEY_PREFIX: &'static str = "tower-otp";

    /// The default timeout of each store operation.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

    /// One Redis server, e.g. `redis://127.0.0.1:6379/0` (`rediss://` needs the redis crate's
    /// TLS features).
    pub fn server(url: impl Into<String>) -> Self {
        Self::with_target(Target::Server(url.into()))
    }

    /// A Redis Cluster, reached first through any of `urls` (the rest of the cluster is
    /// discovered from them).
    pub fn cluster<I>(urls: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self::with_target(Target::Cluster(urls.into_iter().map(Into::into).collect()))
    }

    fn with_target(target: Target) -> Self {
        RedisConfig {
            target,
            key_prefix: Self::DEFAULT_KEY_PREFIX.to_owned(),
            timeout: Self::DEFAULT_TIMEOUT,
            local_cache: None,
            pipelined_reads: true,
        }
    }

    /// Puts every key under `prefix` (default `tower-otp`), so that several applications can
    /// share one Redis. It must not be empty nor contain `{` or `}`, which would change the
    /// keys' cluster hash slots.
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// How long one store operation may take, connection included (default 2 s). When it
    /// passes, the operation fails with [`StoreError::Unavailable`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Whether the session reads of concurrent requests go to Redis together, as one
    /// pipeline (on by default; one server only, a cluster always sends them one by one).
    ///
    /// Each read stays one `HMGET` with its own reply, and a read issued alone leaves at
    /// once. Under load, the reads that requests issue in the same turn of the scheduler share
    /// one write, one turn of Redis's event loop and one reply to read, which is most of what
    /// a read costs both the instance and Redis (see `BENCHMARKS.md`). A batch with no answer
    /// within the timeout fails every read in it.
    pub fn with_pipelined_reads(mut self, pipelined: bool) -> Self {
        self.pipelined_reads = pipelined;
        self
    }

    /// Serves sessions from a cache in this process, of at most `capacity` sessions (off by
    /// default): a guarded request then costs no Redis round trip while its session is
    /// cached.
    ///
    /// Every change to a user's sessions or confirmed devices, by any instance, reaches every
    /// instance's cache at once: the writing script publishes it on `PREFIX:invalidate`, which
    /// each instance follows on a connection of its own. The cache fails closed: it serves an
    /// entry only within 80 ms of its connection answering a ping (sent every 20 ms), flushes
    /// when the connection is lost or replaced, and otherwise reads Redis (failing if Redis
    /// does). An entry lives until its session's idle deadline as read and at most 30 s. So a
    /// logout, logout everywhere, device removal or disable is seen by every instance within
    /// 100 ms, in practice within a millisecond.
    ///
    /// On a Redis Cluster the invalidations travel as classic pub/sub, which the cluster
    /// broadcasts to every node; the listener connects to any node of `urls`.
    pub fn with_local_cache(mut self, capacity: usize) -> Self {
        self.local_cache = Some(capacity);
        self
    }

    /// Connects. Fails with [`StoreError::Invalid`] for bad settings and
    /// [`StoreError::Unavailable`] if Redis cannot be reached within the timeout or refuses
    /// the connection. That error's message says where (host and port, never the user or
    /// password of the URL) and what went wrong, in Redis's or the operating system's words:
    /// `redis at 127.0.0.1:6379 (database 99): ... DB index is out of range`, or for a
    /// cluster whose initial nodes all fail, each node and its reason:
    /// `redis cluster: node 10.0.0.1:6379: Connection refused (os error 111)`.
    pub async fn connect(self) -> Result<RedisStore, StoreError> {
        self.validate()?;
        RedisStore::open(self).await
    }

    fn validate(&self) -> Result<(), StoreError> {
        if self.key_prefix.is_empty() || self.key_prefix.contains(['{', '}']) {
            return Err(StoreError::Invalid(
                "the Redis key prefix must be non-empty and without braces",
            ));
        }
        if self.timeout.is_zero() {
            return Err(StoreError::Invalid("the Redis timeout must not be zero"));
        }
        if matches!(&self.target, Target::Cluster(urls) if urls.is_empty()) {
            return Err(StoreError::Invalid(
                "a Redis Cluster needs at least one URL",
            ));
        }
        Ok(())
    }

    /// The URLs of the servers the cache's listener may connect to.
    pub(super) fn listener_urls(&self) -> Vec<String> {
        match &self.target {
            Target::Server(url) => vec![url.clone()],
            Target::Cluster(urls) => urls.clone(),
        }
    }

    pub(super) fn mode(&self) -> &'static str {
        match self.target {
            Target::Server(_) => "server",
            Target::Cluster(_) => "cluster",
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // URLs can hold passwords.
        f.debug_struct("RedisConfig")
            .field("mode", &self.mode())
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .field("local_cache", &self.local_cache)
            .field("pipelined_reads", &self.pipelined_reads)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_are_refused_before_connecting() {
        let bad = [
            RedisConfig::server("redis://127.0.0.1/").with_key_prefix(""),
            RedisConfig::server("redis://127.0.0.1/").with_key_prefix("a{b}"),
            RedisConfig::server("redis://127.0.0.1/").with_timeout(Duration::ZERO),
            RedisConfig::cluster(Vec::<String>::new()),
        ];
        for config in bad {
            assert!(matches!(config.validate(), Err(StoreError::Invalid(_))));
        }
        assert!(
            RedisConfig::cluster(["redis://127.0.0.1:7000"])
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn debug_output_leaves_out_the_urls() {
        let config = RedisConfig::server("redis://user:hunter2@127.0.0.1/");
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("tower-otp"));
    }
}
