//! Rate limits: counters of events in a sliding window, checked and counted in one step for
//! several counters at once (see [`Store::count_rate_limited`](super::Store::count_rate_limited)).

use std::fmt;
use std::time::Duration;

use crate::clock::Timestamp;
use crate::session::UserTag;

/// At most [`max`](RateLimit::max) events in any [`window`](RateLimit::window): a sliding
/// window, so no burst at the edge of a fixed period gets twice the limit through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RateLimit {
    max: u32,
    window: Duration,
}

impl RateLimit {
    /// The largest `max` accepted: a counter keeps the time of every event in its window.
    pub const MAX_EVENTS: u32 = 1_000;
    /// The shortest window accepted.
    pub const MIN_WINDOW: Duration = Duration::from_secs(1);
    /// The longest window accepted.
    pub const MAX_WINDOW: Duration = Duration::from_secs(7 * 24 * 60 * 60);

    /// At most `max` events (1 to [`RateLimit::MAX_EVENTS`]) in any `window` (1 s to 7 days).
    pub fn new(max: u32, window: Duration) -> Self {
        RateLimit {
            max: max.clamp(1, Self::MAX_EVENTS),
            window: window.clamp(Self::MIN_WINDOW, Self::MAX_WINDOW),
        }
    }

    /// How many events the window takes.
    pub fn max(&self) -> u32 {
        self.max
    }

    /// How long an event counts.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// The latest time at or before which an event no longer counts at `now`; `None` while
    /// every event since the epoch still counts.
    pub(crate) fn cutoff(&self, now: Timestamp) -> Option<Timestamp> {
        now.as_millis()
            .checked_sub(crate::clock::duration_millis(self.window))
            .map(Timestamp::from_millis)
    }
}

/// The counter a [`RateBucket`] counts in.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum RateKey {
    /// A counter of one user, kept with the user's other records (in a Redis Cluster, in the
    /// user's hash slot). `name` tells the user's counters apart.
    User {
        /// The user's tag.
        tag: UserTag,
        /// The counter's name among the user's.
        name: String,
    },
    /// A counter shared by every user, named `name`. Stores may put the name in clear in a
    /// key: never a destination or other personal data, only a keyed digest of it.
    Shared(String),
}

impl RateKey {
    /// The user's tag, for a counter of one user.
    pub fn tag(&self) -> Option<&UserTag> {
        match self {
            RateKey::User { tag, .. } => Some(tag),
            RateKey::Shared(_) => None,
        }
    }
}

impl fmt::Debug for RateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A shared name is a digest: shown whole it would only help correlate logs with keys.
        match self {
            RateKey::User { tag, name } => write!(f, "RateKey::User({}, {name})", tag.as_str()),
            RateKey::Shared(_) => f.write_str("RateKey::Shared([redacted])"),
        }
    }
}

/// One counter and its limit.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RateBucket {
    /// Where the events are counted.
    pub key: RateKey,
    /// How many are allowed.
    pub limit: RateLimit,
}

/// The outcome of [`Store::count_rate_limited`](super::Store::count_rate_limited).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateCount {
    /// The event was counted in every bucket.
    Counted,
    /// A bucket was full; nothing was counted.
    Limited {
        /// When every bucket found full has room again.
        until: Timestamp,
    },
}

/// The time at which a full bucket whose oldest counted event happened at `oldest` has room
/// again: when that event leaves the window.
pub(crate) fn room_at(limit: &RateLimit, oldest: Timestamp) -> Timestamp {
    oldest.saturating_add(limit.window())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_clamped() {
        let limit = RateLimit::new(0, Duration::ZERO);
        assert_eq!((limit.max(), limit.window()), (1, RateLimit::MIN_WINDOW));
        let limit = RateLimit::new(u32::MAX, Duration::MAX);
        assert_eq!(
            (limit.max(), limit.window()),
            (RateLimit::MAX_EVENTS, RateLimit::MAX_WINDOW)
        );
    }

    #[test]
    fn the_cutoff_is_one_window_back() {
        let limit = RateLimit::new(5, Duration::from_secs(60));
        assert_eq!(
            limit.cutoff(Timestamp::from_secs(100)),
            Some(Timestamp::from_secs(40))
        );
        assert_eq!(limit.cutoff(Timestamp::from_secs(59)), None);
        assert_eq!(
            room_at(&limit, Timestamp::from_secs(40)),
            Timestamp::from_secs(100)
        );
    }

    #[test]
    fn shared_names_are_not_shown() {
        let key = RateKey::Shared("digest-of-a-number".into());
        assert!(!format!("{key:?}").contains("digest"));
    }
}
