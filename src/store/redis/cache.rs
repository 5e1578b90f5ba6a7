//! The local cache of sessions ([`RedisConfig::with_local_cache`](super::RedisConfig::with_local_cache)):
//! what a guarded request reads (the session and whether its user has a confirmed device),
//! served from process memory, invalidated everywhere by the writes themselves.
//!
//! * Every script that changes a user's sessions or confirmed devices publishes the user's tag
//!   on `PREFIX:invalidate` in the same atomic step, so no write can forget to. Each instance
//!   listens on a dedicated connection and drops the user's entries; the writing instance
//!   drops its own at once too.
//! * Fail closed: the listener pings every [`PING_EVERY`]; a hit is served only within
//!   [`LEASE`] of sending a ping that was answered (after the invalidations that arrived
//!   before the answer were applied). Past the lease, or with the connection lost, every read
//!   goes to Redis, and a new connection starts from an empty cache.
//! * Fill guard: a read that raced an invalidation does not fill the cache (a generation
//!   counter taken before the read must not have moved).
//! * An entry lives until the session's idle deadline as read, and never longer than
//!   [`BACKSTOP`]; the cache holds at most its capacity of entries.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use tokio::time::Instant;

use crate::session::SessionKey;
use crate::store::LoadedSession;

/// How often the listener pings its connection.
pub(super) const PING_EVERY: Duration = Duration::from_millis(20);

/// How long after a ping was sent an answer to it lets the cache serve hits.
pub(super) const LEASE: Duration = Duration::from_millis(80);

/// The longest an entry is served, whatever the session's deadline.
pub(super) const BACKSTOP: Duration = Duration::from_secs(30);

/// The longest wait before connecting the listener again.
const MAX_RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// The channel of invalidations under `prefix` (the scripts build the same name).
pub(super) fn channel(prefix: &str) -> String {
    format!("{prefix}:invalidate")
}

/// Sessions by user tag, then by session digest.
type Entries = HashMap<String, HashMap<String, Entry>>;

struct Entry {
    session: LoadedSession,
    /// When it was read from Redis: its idle time left counts down from then.
    read_at: Instant,
    /// When it stops being served: the session's idle deadline, or the backstop.
    until: Instant,
}

/// The cache shared by the clones of one store.
pub(super) struct LocalCache {
    capacity: usize,
    entries: Mutex<State>,
    /// Moves on every invalidation and flush: a fill that saw it move may be stale.
    generation: AtomicU64,
    /// Hits are served until this instant (ms after `epoch`); 0 for never.
    lease_until: AtomicU64,
    epoch: Instant,
}

#[derive(Default)]
struct State {
    by_tag: Entries,
    len: usize,
}

impl LocalCache {
    pub(super) fn new(capacity: usize) -> Self {
        LocalCache {
            capacity,
            entries: Mutex::default(),
            generation: AtomicU64::new(0),
            lease_until: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned map is still consistent.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether the listener's lease holds now.
    fn leased(&self) -> bool {
        self.millis(Instant::now()) < self.lease_until.load(Ordering::Acquire)
    }

    /// The session at `key`, if cached, live and the lease holds.
    pub(super) fn get(&self, key: &SessionKey) -> Option<LoadedSession> {
        if !self.leased() {
            return None;
        }
        let now = Instant::now();
        let state = self.lock();
        let entry = state.by_tag.get(key.tag().as_str())?.get(key.digest())?;
        if entry.until <= now {
            return None;
        }
        let mut session = entry.session.clone();
        // What is left of the idle time the read saw (not of the backstop: the session's
        // refresh must not come due early).
        session.idle_left = session
            .idle_left
            .saturating_sub(now.saturating_duration_since(entry.read_at));
        Some(session)
    }

    /// The generation to take before reading Redis, for [`LocalCache::fill`].
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Caches a session read from Redis, unless an invalidation or flush came after
    /// `generation` was taken (the read may predate a write) or the lease does not hold.
    pub(super) fn fill(&self, key: &SessionKey, session: &LoadedSession, generation: u64) {
        let now = Instant::now();
        let until = now + session.idle_left.min(BACKSTOP);
        let mut state = self.lock();
        // Checked under the lock: invalidations take it too, so none slips in between.
        if self.generation() != generation || !self.leased() || self.capacity == 0 {
            return;
        }
        if state.len >= self.capacity {
            evict(&mut state, now);
        }
        let entry = Entry {
            session: session.clone(),
            read_at: now,
            until,
        };
        let user = state
            .by_tag
            .entry(key.tag().as_str().to_owned())
            .or_default();
        if user.insert(key.digest().to_owned(), entry).is_none() {
            state.len += 1;
        }
    }

    /// Drops every entry of the user with `tag`.
    pub(super) fn invalidate(&self, tag: &str) {
        let mut state = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(user) = state.by_tag.remove(tag) {
            state.len -= user.len();
        }
    }

    /// Drops the session at `key` (its idle deadline moved: the next read takes it anew).
    pub(super) fn forget(&self, key: &SessionKey) {
        let mut state = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        let tag = key.tag().as_str();
        let State { by_tag, len } = &mut *state;
        if let Some(user) = by_tag.get_mut(tag)
            && user.remove(key.digest()).is_some()
        {
            *len -= 1;
            if user.is_empty() {
                by_tag.remove(tag);
            }
        }
    }

    /// Drops everything and stops serving hits until the next lease.
    fn flush(&self) {
        self.lease_until.store(0, Ordering::Release);
        let mut state = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        *state = State::default();
    }

    /// Hits may be served until `LEASE` after `sent`, when a ping sent then was answered.
    fn renew(&self, sent: Instant) {
        self.lease_until
            .fetch_max(self.millis(sent + LEASE), Ordering::AcqRel);
    }

    /// How many entries are cached.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len
    }
}

/// Makes room for one entry: drops the expired ones, else one user's entries.
fn evict(state: &mut State, now: Instant) {
    let before = state.len;
    state.by_tag.retain(|_, user| {
        user.retain(|_, entry| entry.until > now);
        !user.is_empty()
    });
    state.len = state.by_tag.values().map(HashMap::len).sum();
    if state.len == before
        && let Some(tag) = state.by_tag.keys().next().cloned()
        && let Some(user) = state.by_tag.remove(&tag)
    {
        state.len -= user.len();
    }
}

/// Keeps the cache's invalidation connection: subscribes, applies invalidations, renews the
/// lease with pings, and on any failure flushes and connects again. Ends when the last store
/// holding the cache is dropped.
pub(super) fn listen(cache: &Arc<LocalCache>, urls: Vec<String>, channel: String) {
    let cache = Arc::downgrade(cache);
    tokio::spawn(async move {
        let mut delay = PING_EVERY;
        let mut turn = 0usize;
        loop {
            let Some(strong) = cache.upgrade() else {
                return;
            };
            strong.flush();
            drop(strong);
            let url = &urls[turn % urls.len()];
            turn += 1;
            match subscribe(url, &channel).await {
                Ok(pubsub) => {
                    delay = PING_EVERY;
                    if !serve(&cache, pubsub).await {
                        return;
                    }
                    tracing::warn!("local session cache: invalidation connection lost; flushed");
                }
                Err(error) => {
                    tracing::warn!(kind = ?error.kind(), "local session cache: cannot subscribe");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_RECONNECT_DELAY);
                }
            }
        }
    });
}

async fn subscribe(url: &str, channel: &str) -> redis::RedisResult<redis::aio::PubSub> {
    let client = redis::Client::open(url)?;
    let connect = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok(pubsub)
    };
    tokio::time::timeout(LEASE * 10, connect)
        .await
        .unwrap_or_else(|_| {
            Err(redis::RedisError::from(std::io::Error::from(
                std::io::ErrorKind::TimedOut,
            )))
        })
}

/// Serves one connection until it fails (false when the cache is gone).
async fn serve(cache: &Weak<LocalCache>, pubsub: redis::aio::PubSub) -> bool {
    let (mut sink, mut stream) = pubsub.split();
    let mut next_ping = Instant::now();
    loop {
        match tokio::time::timeout_at(next_ping, stream.next()).await {
            Ok(Some(message)) => {
                let Some(cache) = cache.upgrade() else {
                    return false;
                };
                apply(&cache, &message);
            }
            Ok(None) => return true,
            Err(_) => {
                let sent = Instant::now();
                next_ping = sent + PING_EVERY;
                let answered = tokio::time::timeout(LEASE, sink.ping::<redis::Value>()).await;
                if !matches!(answered, Ok(Ok(_))) {
                    return true;
                }
                let Some(cache) = cache.upgrade() else {
                    return false;
                };
                // The invalidations sent before the answer are queued by now: apply them
                // before the lease lets any hit through.
                while let Some(Some(message)) = stream.next().now_or_never() {
                    apply(&cache, &message);
                }
                cache.renew(sent);
            }
        }
    }
}

fn apply(cache: &LocalCache, message: &redis::Msg) {
    match message.get_payload::<String>() {
        Ok(tag) => cache.invalidate(&tag),
        // Not one of ours: trust nothing cached.
        Err(_) => cache.flush(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use crate::device::UserId;
    use crate::session::{SessionRecord, UserTag};

    fn session(idle_left: Duration) -> LoadedSession {
        LoadedSession {
            record: SessionRecord {
                user: UserId::new("alice").unwrap(),
                created_at: Timestamp::from_millis(1),
                expires_at: Timestamp::from_millis(2),
                verified: None,
                login: None,
            },
            idle_left,
            configured: Some(true),
        }
    }

    fn key(secret: &str) -> SessionKey {
        SessionKey::new(
            UserTag::unkeyed(&UserId::new("alice").unwrap()),
            secret.as_bytes(),
        )
    }

    fn leased(capacity: usize) -> LocalCache {
        let cache = LocalCache::new(capacity);
        cache.renew(Instant::now() + Duration::from_secs(60));
        cache
    }

    #[tokio::test]
    async fn a_read_that_raced_an_invalidation_does_not_fill() {
        let cache = leased(10);
        let (key, value) = (key("s"), session(Duration::from_secs(3600)));
        let before = cache.generation();
        // A write lands between the read from Redis and the fill.
        cache.invalidate(key.tag().as_str());
        cache.fill(&key, &value, before);
        assert_eq!(cache.get(&key), None);
        // A fill that saw no invalidation is served.
        cache.fill(&key, &value, cache.generation());
        let hit = cache.get(&key).unwrap();
        assert_eq!(hit.record, value.record);
        // The idle time left is the session's, not the backstop's.
        assert!(hit.idle_left > BACKSTOP);
    }

    #[tokio::test]
    async fn nothing_is_served_without_a_lease_or_past_the_deadline() {
        let cache = LocalCache::new(10);
        let (key, value) = (key("s"), session(Duration::from_secs(60)));
        cache.fill(&key, &value, cache.generation());
        assert_eq!(cache.get(&key), None, "filled without a lease");
        cache.renew(Instant::now());
        cache.fill(&key, &value, cache.generation());
        assert!(cache.get(&key).is_some());
        cache.flush();
        assert_eq!(cache.get(&key), None);

        let cache = leased(10);
        cache.fill(
            &key,
            &session(Duration::from_millis(20)),
            cache.generation(),
        );
        assert!(cache.get(&key).is_some());
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(cache.get(&key), None, "outlived its session");
    }

    #[tokio::test]
    async fn the_size_is_bounded() {
        let cache = leased(3);
        let value = session(Duration::from_secs(60));
        for i in 0..10 {
            let key = SessionKey::new(
                UserTag::unkeyed(&UserId::new(format!("user-{i}")).unwrap()),
                b"s",
            );
            cache.fill(&key, &value, cache.generation());
            assert!(cache.len() <= 3);
        }
    }
}
