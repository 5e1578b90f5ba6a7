//! Throttling of verification attempts.

use std::time::Duration;

use crate::clock::{Timestamp, duration_millis};

/// How fast wrong codes slow an attacker down.
///
/// Two limits apply to every verification, whatever the device kind:
///
/// * **Per device**, django-otp's exponential backoff: after `n` counted attempts without a
///   success, the next attempt on that device is refused until `factor * 2^(n-1)` has passed
///   since the last one, capped at `max_delay` (django-otp has no cap, so a few dozen typos can
///   lock a real user out for days). Each device has its own count, so wrong TOTP codes never
///   block the user's backup codes.
/// * **Per user**, a count of consecutive failed attempts across all devices. At
///   `user_failure_limit` (100, as NIST SP 800-63B section 5.2.2 allows at most) verification
///   is locked for `lock_period` or until the application calls
///   [`TwoFactor::reset_lockout`](super::TwoFactor::reset_lockout).
///
/// An attempt counts when it *starts*, atomically in the store, and a success clears the
/// count; concurrent guesses therefore cannot all slip through before the first failure is
/// recorded.
///
/// # What an attacker gets under the defaults
///
/// At most 100 guesses per user per lock period (24 h) in total, whatever the number of
/// devices, and fewer in practice because of the per-device delays (the first ten failures on
/// a device take 17 minutes of waiting, then one guess per 15 minutes). A 6-digit TOTP code
/// with the default tolerance of one step accepts 3 codes per guess, 4 once the device has
/// learned a drift (bounded by the tolerance, see
/// [`TotpPolicy`](super::TotpPolicy)), so the best chance of success is
/// `100 * 4 / 10^6 = 4 * 10^-4` per day (about 1 in 2,500); an HOTP device with the default
/// look-ahead of 5 accepts 6 codes per guess: `6 * 10^-4` per day. A 50-bit backup code
/// guess against a set of 10 succeeds with probability `10 / 2^50` per guess: below `10^-12`
/// per day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottlePolicy {
    factor: Duration,
    max_delay: Duration,
    user_failure_limit: u32,
    lock_period: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        ThrottlePolicy {
            factor: Duration::from_secs(1),
            max_delay: Duration::from_secs(15 * 60),
            user_failure_limit: 100,
            lock_period: Duration::from_secs(24 * 60 * 60),
        }
    }
}

impl ThrottlePolicy {
    /// The default policy: factor 1 s, cap 15 min, 100 failures lock for 24 h.
    pub fn new() -> Self {
        Self::default()
    }

    /// The base delay after one failure (default 1 s); zero turns per-device delays off.
    pub fn with_factor(mut self, factor: Duration) -> Self {
        self.factor = factor;
        self
    }

    /// The longest per-device delay (default 15 minutes).
    pub fn with_max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// Consecutive failures across a user's devices that lock verification (default 100;
    /// at least 1).
    pub fn with_user_failure_limit(mut self, limit: u32) -> Self {
        self.user_failure_limit = limit.max(1);
        self
    }

    /// How long a lock lasts (default 24 hours).
    pub fn with_lock_period(mut self, period: Duration) -> Self {
        self.lock_period = period;
        self
    }

    /// The base delay.
    pub fn factor(&self) -> Duration {
        self.factor
    }

    /// The delay cap.
    pub fn max_delay(&self) -> Duration {
        self.max_delay
    }

    /// The per-user failure limit.
    pub fn user_failure_limit(&self) -> u32 {
        self.user_failure_limit
    }

    /// The lock period.
    pub fn lock_period(&self) -> Duration {
        self.lock_period
    }

    /// The wait after `failures` counted attempts: `factor * 2^(failures-1)`, capped.
    pub fn delay_after(&self, failures: u32) -> Duration {
        delay_millis(
            duration_millis(self.factor),
            duration_millis(self.max_delay),
            failures,
        )
        .map_or(Duration::ZERO, Duration::from_millis)
    }

    /// When a device with `failures` counted attempts, the last at `last_failure_at`, may be
    /// tried again; `None` if it may be tried now, as it always may when the delay is zero.
    pub fn retry_at(
        &self,
        failures: u32,
        last_failure_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Option<Timestamp> {
        let last = last_failure_at?;
        let delay = self.delay_after(failures);
        // No delay, no wait: a failure stamped after `now` (a concurrent attempt that read
        // the clock later, another instance's clock running ahead) must not throttle.
        if delay.is_zero() {
            return None;
        }
        let until = last.saturating_add(delay);
        (until > now).then_some(until)
    }
}

/// `factor * 2^(failures-1)` milliseconds, capped at `max`; `None` for no failures. Never
/// overflows: the exponent is clamped before shifting.
pub(crate) fn delay_millis(factor: u64, max: u64, failures: u32) -> Option<u64> {
    let exponent = failures.checked_sub(1)?;
    let multiplier = 1u64.checked_shl(exponent).unwrap_or(u64::MAX);
    Some(factor.saturating_mul(multiplier).min(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_the_factor_and_stop_at_the_cap() {
        let policy = ThrottlePolicy::default();
        assert_eq!(policy.delay_after(0), Duration::ZERO);
        assert_eq!(policy.delay_after(1), Duration::from_secs(1));
        assert_eq!(policy.delay_after(2), Duration::from_secs(2));
        assert_eq!(policy.delay_after(3), Duration::from_secs(4));
        assert_eq!(policy.delay_after(10), Duration::from_secs(512));
        assert_eq!(policy.delay_after(11), Duration::from_secs(900));
        assert_eq!(policy.delay_after(64), Duration::from_secs(900));
        assert_eq!(policy.delay_after(u32::MAX), Duration::from_secs(900));
        let custom = policy.with_factor(Duration::from_millis(250));
        assert_eq!(custom.delay_after(3), Duration::from_millis(1000));
        let off = policy.with_factor(Duration::ZERO);
        assert_eq!(off.delay_after(100), Duration::ZERO);
    }

    #[test]
    fn retry_at_is_after_the_last_failure() {
        let policy = ThrottlePolicy::default();
        let t = Timestamp::from_secs(1000);
        assert_eq!(policy.retry_at(0, None, t), None);
        assert_eq!(
            policy.retry_at(3, Some(t), t),
            Some(Timestamp::from_secs(1004))
        );
        assert_eq!(
            policy.retry_at(3, Some(t), Timestamp::from_secs(1004)),
            None
        );
    }

    #[test]
    fn no_delay_never_throttles_even_after_a_later_failure() {
        let later = Timestamp::from_millis(1_005);
        let now = Timestamp::from_millis(1_000);
        let off = ThrottlePolicy::default().with_factor(Duration::ZERO);
        assert_eq!(off.retry_at(1, Some(later), now), None);
        assert_eq!(off.retry_at(u32::MAX, Some(later), now), None);
        let on = ThrottlePolicy::default();
        assert_eq!(
            on.retry_at(0, Some(later), now),
            None,
            "no failures counted"
        );
        assert_eq!(
            on.retry_at(1, Some(later), now),
            Some(Timestamp::from_millis(2_005))
        );
    }
}
