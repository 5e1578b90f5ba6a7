//! Store outages seen by guards and by `VerifiedDeviceLayer`: logged at `warn`, at most one
//! line per interval.
//!
//! During an outage every guarded request fails, so a line per request would flood the logs
//! just when they are needed; one line per interval, counting the refusals it left out, says
//! the same.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::session::SessionError;

/// At most one outage line per this interval, per process.
pub(crate) const OUTAGE_LOG_INTERVAL: Duration = Duration::from_secs(10);

static OUTAGES: OutageLog = OutageLog::new(OUTAGE_LOG_INTERVAL);

/// Logs that a guard refused a request, or `VerifiedDeviceLayer` took it as not verified,
/// because the store failed (rate-limited).
pub(crate) fn store_outage(error: &SessionError) {
    if let Some(suppressed) = OUTAGES.record(Instant::now()) {
        tracing::warn!(
            kind = error.kind(),
            error = %error,
            suppressed,
            "the store failed: guards answer 503 and no request is taken as verified \
             (`suppressed`: failures not logged since the previous line)"
        );
    }
}

/// When the last line was written, and how many outages were left out since.
#[derive(Debug)]
struct OutageLog {
    interval: Duration,
    state: Mutex<LogState>,
}

#[derive(Debug)]
struct LogState {
    last_line: Option<Instant>,
    suppressed: u64,
}

impl OutageLog {
    const fn new(interval: Duration) -> Self {
        OutageLog {
            interval,
            state: Mutex::new(LogState {
                last_line: None,
                suppressed: 0,
            }),
        }
    }

    /// Counts an outage at `now`. `Some(suppressed)` when a line is due, with how many
    /// outages since the previous line were left out; `None` to stay quiet.
    fn record(&self, now: Instant) -> Option<u64> {
        // Counting cannot leave the state half-changed, so a poisoned lock is still sound.
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let due = state
            .last_line
            .is_none_or(|last| now.saturating_duration_since(last) >= self.interval);
        if !due {
            state.suppressed = state.suppressed.saturating_add(1);
            return None;
        }
        state.last_line = Some(now);
        Some(std::mem::take(&mut state.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_counting_the_ones_left_out() {
        let log = OutageLog::new(Duration::from_secs(10));
        let start = Instant::now();
        let at = |secs| start + Duration::from_secs(secs);
        assert_eq!(log.record(at(0)), Some(0), "the first outage is logged");
        assert_eq!(log.record(at(1)), None);
        assert_eq!(log.record(at(9)), None);
        assert_eq!(
            log.record(at(10)),
            Some(2),
            "then one line counting the two left out"
        );
        assert_eq!(log.record(at(12)), None);
        assert_eq!(log.record(at(100)), Some(1));
        assert_eq!(log.record(at(200)), Some(0));
    }
}
