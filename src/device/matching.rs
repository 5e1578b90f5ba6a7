//! Matching a token against a device's counters: the TOTP tolerance window with drift, and
//! the HOTP look-ahead. Pure arithmetic on a snapshot of the device; the store then accepts
//! the match atomically, or refuses it as a replay.

use crate::otp::{OtpKey, Token, TotpParams, find_match};

/// TOTP verification settings.
///
/// A code is accepted if it belongs to a step of the window around the real current step:
/// `tolerance` steps either side, always, so that a phone with an accurate clock is never
/// refused. With drift learning on, a device whose codes keep arriving early or late teaches
/// the server its drift, and the window reaches that many steps further on the drift's side
/// (and no further on the other). A guess is therefore checked against at most
/// `2 * tolerance + 1 + max_drift` codes (see [`TotpPolicy::window_width`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TotpPolicy {
    tolerance: u8,
    sync: bool,
    /// `None`: bounded by the tolerance.
    max_drift: Option<u8>,
}

impl Default for TotpPolicy {
    /// Tolerance 1 step either side, drift learning on, drift at most the tolerance.
    fn default() -> Self {
        TotpPolicy {
            tolerance: 1,
            sync: true,
            max_drift: None,
        }
    }
}

impl TotpPolicy {
    /// The default policy.
    pub fn new() -> Self {
        Self::default()
    }

    /// Steps accepted either side of the real current step (default 1, at most 10).
    pub fn with_tolerance(mut self, steps: u8) -> Self {
        self.tolerance = steps.min(10);
        self
    }

    /// Whether to learn a device's clock drift from codes of neighbouring steps (default on,
    /// like django-otp's `OTP_TOTP_SYNC`).
    pub fn with_sync(mut self, sync: bool) -> Self {
        self.sync = sync;
        self
    }

    /// The largest drift learned, in steps (at most 10). By default the drift is bounded by
    /// the tolerance, so it only remembers an offset the tolerance accepts anyway.
    ///
    /// A larger bound lets a phone whose clock is further off keep verifying, at a price:
    /// each step of learned drift adds one code that a guess is checked against (so an
    /// attacker's chance per guess grows by a third for each step with the default
    /// tolerance of 1), and accepts codes that far ahead of real time, so that a code read
    /// off a phone well ahead of time stays usable longer. The real current step and its
    /// tolerance stay in the window whatever the drift.
    pub fn with_max_drift(mut self, steps: u8) -> Self {
        self.max_drift = Some(steps.min(10));
        self
    }

    /// The tolerance in steps.
    pub fn tolerance(&self) -> u8 {
        self.tolerance
    }

    /// The largest drift learned, in steps.
    pub fn max_drift(&self) -> u8 {
        self.max_drift.unwrap_or(self.tolerance)
    }

    /// The most codes a guess is checked against: the window's width with the largest
    /// drift.
    pub fn window_width(&self) -> u64 {
        2 * u64::from(self.tolerance) + 1 + u64::from(self.max_drift())
    }

    /// The steps accepted at real step `current` for a device with learned `drift`: the
    /// tolerance around `current`, stretched by the (bounded) drift on its side.
    fn window(&self, current: u64, drift: i64) -> (u64, u64) {
        let tolerance = i128::from(self.tolerance);
        let (current, drift) = (i128::from(current), i128::from(self.bound_drift(drift)));
        (
            to_u64(current - tolerance + drift.min(0)),
            to_u64(current + tolerance + drift.max(0)),
        )
    }

    fn bound_drift(&self, drift: i64) -> i64 {
        let max = i64::from(self.max_drift());
        drift.clamp(-max, max)
    }
}

/// HOTP verification settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HotpPolicy {
    look_ahead: u32,
}

impl Default for HotpPolicy {
    /// A look-ahead of 5 counters past the expected one (django-otp's default).
    fn default() -> Self {
        HotpPolicy { look_ahead: 5 }
    }
}

impl HotpPolicy {
    /// The default policy.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counters accepted beyond the expected one, for presses that never reached the server
    /// (default 5, at most 100).
    pub fn with_look_ahead(mut self, counters: u32) -> Self {
        self.look_ahead = counters.min(100);
        self
    }

    /// The look-ahead.
    pub fn look_ahead(&self) -> u32 {
        self.look_ahead
    }
}

/// What a token matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CounterMatch {
    /// A fresh counter or step: store `next_counter` and `drift`.
    Fresh { next_counter: u64, drift: i64 },
    /// A counter or step at or below the last accepted one.
    Replayed,
    /// Nothing in the window.
    None,
}

/// Matches a TOTP token at `unix_secs` against the window around the real current step
/// (see [`TotpPolicy`]).
pub(crate) fn match_totp(
    key: &OtpKey,
    params: &TotpParams,
    policy: &TotpPolicy,
    next_counter: u64,
    drift: i64,
    token: &Token,
    unix_secs: u64,
) -> CounterMatch {
    let Some(current) = params.time_step(unix_secs) else {
        return CounterMatch::None;
    };
    let (low, high) = policy.window(current, drift);
    if let Some(step) = find_in(key, token, low.max(next_counter), high) {
        let learned = if policy.sync {
            i64::try_from(i128::from(step) - i128::from(current)).unwrap_or(0)
        } else {
            drift
        };
        return CounterMatch::Fresh {
            next_counter: step.saturating_add(1),
            drift: policy.bound_drift(learned),
        };
    }
    replay_or_none(
        key,
        token,
        low,
        high.min(next_counter.saturating_sub(1)),
        next_counter,
    )
}

/// Matches an HOTP token against `next_counter ..= next_counter + look_ahead`.
pub(crate) fn match_hotp(
    key: &OtpKey,
    policy: &HotpPolicy,
    next_counter: u64,
    token: &Token,
) -> CounterMatch {
    let high = next_counter.saturating_add(u64::from(policy.look_ahead));
    match find_in(key, token, next_counter, high) {
        Some(counter) => CounterMatch::Fresh {
            next_counter: counter.saturating_add(1),
            drift: 0,
        },
        None => {
            // The last few accepted counters: a token seen again is a replay, worth telling
            // apart in events.
            let low = next_counter.saturating_sub(u64::from(policy.look_ahead) + 1);
            replay_or_none(
                key,
                token,
                low,
                next_counter.saturating_sub(1),
                next_counter,
            )
        }
    }
}

fn find_in(key: &OtpKey, token: &Token, low: u64, high: u64) -> Option<u64> {
    (low <= high)
        .then(|| find_match(key, token, low..=high))
        .flatten()
}

fn replay_or_none(
    key: &OtpKey,
    token: &Token,
    low: u64,
    high: u64,
    next_counter: u64,
) -> CounterMatch {
    if next_counter > 0 && find_in(key, token, low, high).is_some() {
        CounterMatch::Replayed
    } else {
        CounterMatch::None
    }
}

fn to_u64(value: i128) -> u64 {
    value.clamp(0, i128::from(u64::MAX)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otp::{Algorithm, Digits, Secret};

    fn key() -> OtpKey {
        OtpKey::new(
            Secret::from_bytes(b"12345678901234567890".to_vec()).unwrap(),
            Algorithm::Sha1,
            Digits::SIX,
        )
    }

    fn token_at(step: u64) -> Token {
        Token::parse(key().hotp(step).reveal(), Digits::SIX).unwrap()
    }

    const NOW: u64 = 1_000_000 * 30 + 7; // step 1_000_000

    #[test]
    fn totp_accepts_the_window_and_learns_drift() {
        let params = TotpParams::default();
        let policy = TotpPolicy::default();
        let m = |step, next, drift| {
            match_totp(&key(), &params, &policy, next, drift, &token_at(step), NOW)
        };
        assert_eq!(
            m(1_000_000, 0, 0),
            CounterMatch::Fresh {
                next_counter: 1_000_001,
                drift: 0
            }
        );
        assert_eq!(
            m(999_999, 0, 0),
            CounterMatch::Fresh {
                next_counter: 1_000_000,
                drift: -1
            }
        );
        assert_eq!(
            m(1_000_001, 0, 0),
            CounterMatch::Fresh {
                next_counter: 1_000_002,
                drift: 1
            }
        );
        assert_eq!(m(1_000_002, 0, 0), CounterMatch::None);
        // A learned drift of +1 stretches the window: +2 is accepted, and -1 still is.
        assert_eq!(
            m(1_000_002, 0, 1),
            CounterMatch::Fresh {
                next_counter: 1_000_003,
                drift: 1
            }
        );
        assert_eq!(
            m(999_999, 0, 1),
            CounterMatch::Fresh {
                next_counter: 1_000_000,
                drift: -1
            }
        );
        assert_eq!(m(999_998, 0, 1), CounterMatch::None);
        // Drift never passes the bound (the tolerance by default), even when stored out of
        // range.
        assert_eq!(
            m(1_000_002, 0, 50),
            CounterMatch::Fresh {
                next_counter: 1_000_003,
                drift: 1
            }
        );
        assert_eq!(m(1_000_003, 0, 50), CounterMatch::None);
        assert_eq!(m(999_997, 0, -50), CounterMatch::None);
    }

    #[test]
    fn the_window_always_holds_the_real_step_and_its_tolerance() {
        let params = TotpParams::default();
        for policy in [
            TotpPolicy::default(),
            TotpPolicy::default().with_max_drift(5),
            TotpPolicy::default().with_tolerance(2).with_max_drift(10),
        ] {
            let tolerance = u64::from(policy.tolerance());
            for drift in [-50, -10, -5, -1, 0, 1, 5, 10, 50] {
                for step in NOW / 30 - tolerance..=NOW / 30 + tolerance {
                    let got = match_totp(&key(), &params, &policy, 0, drift, &token_at(step), NOW);
                    assert!(
                        matches!(got, CounterMatch::Fresh { .. }),
                        "{policy:?}, drift {drift}, step {step}: {got:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_larger_drift_bound_reaches_further_on_the_drifts_side_only() {
        let params = TotpParams::default();
        let policy = TotpPolicy::default().with_max_drift(5);
        assert_eq!(policy.max_drift(), 5);
        assert_eq!(policy.window_width(), 8);
        let m = |step, drift| match_totp(&key(), &params, &policy, 0, drift, &token_at(step), NOW);
        assert_eq!(
            m(1_000_006, 5),
            CounterMatch::Fresh {
                next_counter: 1_000_007,
                drift: 5
            }
        );
        assert_eq!(m(1_000_007, 5), CounterMatch::None);
        assert_eq!(m(999_998, 5), CounterMatch::None);
        assert_eq!(
            m(999_994, -5),
            CounterMatch::Fresh {
                next_counter: 999_995,
                drift: -5
            }
        );
        assert_eq!(m(1_000_002, -5), CounterMatch::None);
    }

    #[test]
    fn the_default_drift_bound_follows_the_tolerance() {
        assert_eq!(TotpPolicy::default().max_drift(), 1);
        assert_eq!(TotpPolicy::default().window_width(), 4);
        let wide = TotpPolicy::default().with_tolerance(3);
        assert_eq!((wide.max_drift(), wide.window_width()), (3, 10));
        let fixed = TotpPolicy::default().with_max_drift(0).with_tolerance(3);
        assert_eq!((fixed.max_drift(), fixed.window_width()), (0, 7));
    }

    #[test]
    fn totp_refuses_replays_inside_the_window() {
        let params = TotpParams::default();
        let policy = TotpPolicy::default();
        let m = |step, next| match_totp(&key(), &params, &policy, next, 0, &token_at(step), NOW);
        assert_eq!(m(1_000_000, 1_000_001), CounterMatch::Replayed);
        assert_eq!(m(999_999, 1_000_001), CounterMatch::Replayed);
        assert_eq!(m(999_999, 1_000_000), CounterMatch::Replayed);
        assert_eq!(
            m(1_000_001, 1_000_001),
            CounterMatch::Fresh {
                next_counter: 1_000_002,
                drift: 1
            }
        );
    }

    #[test]
    fn totp_without_sync_keeps_drift() {
        let params = TotpParams::default();
        let policy = TotpPolicy::default().with_sync(false);
        let got = match_totp(&key(), &params, &policy, 0, 0, &token_at(999_999), NOW);
        assert_eq!(
            got,
            CounterMatch::Fresh {
                next_counter: 1_000_000,
                drift: 0
            }
        );
    }

    #[test]
    fn totp_time_arithmetic_never_underflows() {
        let policy = TotpPolicy::default().with_tolerance(10);
        // Before t0: nothing matches.
        let late_start = TotpParams {
            step: 30,
            t0: 1_000,
        };
        assert_eq!(
            match_totp(&key(), &late_start, &policy, 0, 0, &token_at(0), 999),
            CounterMatch::None
        );
        // t < tolerance * step: the window is clipped at step 0.
        let params = TotpParams::default();
        assert_eq!(
            match_totp(&key(), &params, &policy, 0, -2, &token_at(0), 5),
            CounterMatch::Fresh {
                next_counter: 1,
                drift: 0
            }
        );
        // Huge time and drift: clipped, no overflow.
        let _ = match_totp(
            &key(),
            &TotpParams { step: 1, t0: 0 },
            &policy,
            u64::MAX,
            i64::MAX,
            &token_at(0),
            u64::MAX,
        );
    }

    #[test]
    fn hotp_looks_ahead_and_spots_replays() {
        let policy = HotpPolicy::default();
        let m = |counter, next| match_hotp(&key(), &policy, next, &token_at(counter));
        assert_eq!(
            m(0, 0),
            CounterMatch::Fresh {
                next_counter: 1,
                drift: 0
            }
        );
        assert_eq!(
            m(5, 0),
            CounterMatch::Fresh {
                next_counter: 6,
                drift: 0
            }
        );
        assert_eq!(m(6, 0), CounterMatch::None);
        assert_eq!(m(3, 4), CounterMatch::Replayed);
        assert_eq!(
            m(9, 4),
            CounterMatch::Fresh {
                next_counter: 10,
                drift: 0
            }
        );
    }
}
