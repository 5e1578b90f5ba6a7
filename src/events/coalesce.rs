//! Coalescing of `throttled` events, so that someone hammering a throttled device cannot turn
//! each refused guess into an audit-log line, a notification or a Redis message.
//!
//! Per user, the first refusal opens a one-second window and is emitted at once; later
//! refusals in the window are held back (the latest kept, the others counted). The next
//! refusal after the window is emitted standing for the ones held back. Refusals held back
//! when no further one comes are flushed by a prune, which any event may trigger once their
//! window is over (at most one prune a second), so they are reported a second or two late
//! rather than never. Memory is bounded: at most [`MAX_USERS`] users are tracked; beyond
//! that the user whose window opened first is flushed and forgotten.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{Event, EventKind};
use crate::clock::Timestamp;
use crate::device::UserId;

/// At most one `throttled` event per user per this long.
pub(crate) const WINDOW: Duration = Duration::from_secs(1);

/// Users tracked at once.
pub(crate) const MAX_USERS: usize = 4096;

/// Holds back and counts `throttled` events; see the module docs.
#[derive(Debug)]
pub(crate) struct ThrottleCoalescer {
    users: Mutex<HashMap<UserId, Window>>,
    /// When a prune may next find work, in ms (`u64::MAX`: nothing tracked). Read without
    /// the lock by every event, so that the common case costs one atomic load.
    next_prune: AtomicU64,
}

#[derive(Debug)]
struct Window {
    /// When the user's last `throttled` event was emitted.
    opened_at: Timestamp,
    /// The latest refusal held back since then, its count covering all of them.
    held: Option<Event>,
}

impl Window {
    fn is_over(&self, now: Timestamp) -> bool {
        now >= self.opened_at.saturating_add(WINDOW)
    }
}

impl Default for ThrottleCoalescer {
    fn default() -> Self {
        ThrottleCoalescer {
            users: Mutex::new(HashMap::new()),
            next_prune: AtomicU64::new(u64::MAX),
        }
    }
}

impl ThrottleCoalescer {
    /// Takes `event` and returns the events to deliver now, in order: held-back refusals
    /// whose window is over, then `event` itself unless it is a `throttled` event held back.
    pub(crate) fn admit(&self, event: Event) -> Vec<Event> {
        let now = event.at;
        let due = now.as_millis() >= self.next_prune.load(Ordering::Relaxed);
        if !due && !is_throttled(&event) {
            return vec![event];
        }
        let throttled = is_throttled(&event).then(|| event.user.clone());
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        if due {
            self.prune(&mut users, now, throttled.as_ref(), &mut out);
        }
        let Some(user) = throttled else {
            out.push(event);
            return out;
        };
        if !users.contains_key(&user) && users.len() >= MAX_USERS {
            evict_oldest(&mut users, &mut out);
        }
        out.extend(coalesce(&mut users, event));
        self.next_prune
            .fetch_min(now.saturating_add(WINDOW).as_millis(), Ordering::Relaxed);
        out
    }

    /// Flushes the held-back refusals of windows that are over (reopening those windows, so
    /// that a user still gets at most one event a second) and forgets users with nothing
    /// held back; then schedules the next prune, at least a second from now. `arriving`,
    /// the user of the `throttled` event being admitted, is left to [`coalesce`], which
    /// folds what is held back into that event.
    fn prune(
        &self,
        users: &mut HashMap<UserId, Window>,
        now: Timestamp,
        arriving: Option<&UserId>,
        out: &mut Vec<Event>,
    ) {
        let mut earliest = u64::MAX;
        users.retain(|user, window| {
            if window.is_over(now) && arriving != Some(user) {
                let Some(held) = window.held.take() else {
                    return false;
                };
                out.push(held);
                window.opened_at = now;
            }
            earliest = earliest.min(window.opened_at.saturating_add(WINDOW).as_millis());
            true
        });
        let next = if users.is_empty() {
            u64::MAX
        } else {
            earliest.max(now.saturating_add(WINDOW).as_millis())
        };
        self.next_prune.store(next, Ordering::Relaxed);
    }
}

fn is_throttled(event: &Event) -> bool {
    matches!(event.kind, EventKind::Throttled { .. })
}

/// Emits `event` if its user's window is over (or new), holds it back otherwise.
fn coalesce(users: &mut HashMap<UserId, Window>, mut event: Event) -> Option<Event> {
    let now = event.at;
    let Some(window) = users.get_mut(&event.user) else {
        users.insert(
            event.user.clone(),
            Window {
                opened_at: now,
                held: None,
            },
        );
        return Some(event);
    };
    let count = 1 + window.held.take().map_or(0, |held| count_of(&held));
    set_count(&mut event, count);
    if window.is_over(now) {
        window.opened_at = now;
        Some(event)
    } else {
        window.held = Some(event);
        None
    }
}

/// Makes room for one more user: flushes and forgets the one whose window opened first.
fn evict_oldest(users: &mut HashMap<UserId, Window>, out: &mut Vec<Event>) {
    let oldest = users
        .iter()
        .min_by_key(|(_, window)| window.opened_at)
        .map(|(user, _)| user.clone());
    if let Some(held) = oldest.and_then(|user| users.remove(&user)?.held) {
        out.push(held);
    }
}

fn count_of(event: &Event) -> u64 {
    match event.kind {
        EventKind::Throttled { count, .. } => count,
        _ => 1,
    }
}

fn set_count(event: &mut Event, new: u64) {
    if let EventKind::Throttled { count, .. } = &mut event.kind {
        *count = new;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(user: &str, kind: EventKind, at_ms: u64) -> Event {
        Event {
            kind,
            user: UserId::new(user).unwrap(),
            device: None,
            at: Timestamp::from_millis(at_ms),
            request: None,
            instance: "test".into(),
        }
    }

    fn throttled(user: &str, at_ms: u64) -> Event {
        let retry_at = Timestamp::from_millis(at_ms + 60_000);
        event(user, EventKind::Throttled { retry_at, count: 1 }, at_ms)
    }

    /// `(user, at, count)` of each event, `count` 0 for other kinds.
    fn summary(events: &[Event]) -> Vec<(String, u64, u64)> {
        events
            .iter()
            .map(|e| {
                let count = if is_throttled(e) { count_of(e) } else { 0 };
                (e.user.as_str().to_owned(), e.at.as_millis(), count)
            })
            .collect()
    }

    fn row(user: &str, at: u64, count: u64) -> (String, u64, u64) {
        (user.to_owned(), at, count)
    }

    #[test]
    fn other_events_pass_untouched_while_nothing_is_held() {
        let coalescer = ThrottleCoalescer::default();
        let out = coalescer.admit(event("alice", EventKind::UserVerified, 1_000));
        assert_eq!(summary(&out), [row("alice", 1_000, 0)]);
        assert_eq!(coalescer.next_prune.load(Ordering::Relaxed), u64::MAX);
    }

    #[test]
    fn the_window_holds_back_and_counts_and_the_next_event_reports_them() {
        let c = ThrottleCoalescer::default();
        assert_eq!(
            summary(&c.admit(throttled("alice", 1_000))),
            [row("alice", 1_000, 1)]
        );
        for at in [1_000, 1_200, 1_999] {
            assert!(c.admit(throttled("alice", at)).is_empty(), "held at {at}");
        }
        // Another user has a window of their own.
        assert_eq!(
            summary(&c.admit(throttled("bob", 1_500))),
            [row("bob", 1_500, 1)]
        );
        assert_eq!(
            summary(&c.admit(throttled("alice", 2_000))),
            [row("alice", 2_000, 4)]
        );
        assert!(c.admit(throttled("alice", 2_100)).is_empty());
    }

    #[test]
    fn held_back_refusals_are_flushed_by_a_later_event_of_anyone() {
        let c = ThrottleCoalescer::default();
        c.admit(throttled("alice", 1_000));
        c.admit(throttled("alice", 1_100));
        c.admit(throttled("alice", 1_300));
        assert!(c.admit(event("bob", EventKind::UserVerified, 1_900)).len() == 1);
        let out = c.admit(event("bob", EventKind::UserVerified, 2_100));
        assert_eq!(
            summary(&out),
            [row("alice", 1_300, 2), row("bob", 2_100, 0)]
        );
        // The flush reopened alice's window: her next refusal within it is held back.
        assert!(c.admit(throttled("alice", 2_500)).is_empty());
        // A window with nothing held is forgotten at the next prune.
        let out = c.admit(event("bob", EventKind::LoggedOut, 3_200));
        assert_eq!(
            summary(&out),
            [row("alice", 2_500, 1), row("bob", 3_200, 0)]
        );
        c.admit(event("bob", EventKind::LoggedOut, 4_300));
        assert!(c.users.lock().unwrap().is_empty());
        assert_eq!(c.next_prune.load(Ordering::Relaxed), u64::MAX);
    }

    #[test]
    fn memory_is_bounded_and_evicted_counts_are_not_lost() {
        let c = ThrottleCoalescer::default();
        c.admit(throttled("first", 1_000));
        c.admit(throttled("first", 1_001));
        for i in 0..MAX_USERS - 1 {
            c.admit(throttled(&format!("user{i}"), 1_002));
        }
        assert_eq!(c.users.lock().unwrap().len(), MAX_USERS);
        let out = c.admit(throttled("one-too-many", 1_003));
        assert_eq!(
            summary(&out),
            [row("first", 1_001, 1), row("one-too-many", 1_003, 1)]
        );
        assert_eq!(c.users.lock().unwrap().len(), MAX_USERS);
    }
}
