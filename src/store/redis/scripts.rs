//! The Lua scripts (each one appended to the shared prelude) and the arguments only they need.
//!
//! A [`Script`] is sent by its SHA-1 (`EVALSHA`); when the server answers `NOSCRIPT` (after a
//! restart, a failover or `SCRIPT FLUSH`) the redis crate loads it and sends it again. Neither
//! `NOSCRIPT` nor the load changes any data, so the operation still runs exactly once.

use std::sync::LazyLock;

use redis::Script;

use crate::clock::{Timestamp, duration_millis};
use crate::device::ThrottlePolicy;

macro_rules! scripts {
    ($($name:ident => $file:literal,)*) => {
        $(
            pub(super) static $name: LazyLock<Script> = LazyLock::new(|| {
                Script::new(concat!(
                    include_str!("lua/prelude.lua"),
                    include_str!(concat!("lua/", $file))
                ))
            });
        )*
    };
}

scripts! {
    INSERT_DEVICE => "insert_device.lua",
    UPDATE_DEVICE => "update_device.lua",
    CONFIRM_DEVICE => "confirm_device.lua",
    GET_DEVICE => "get_device.lua",
    LIST_DEVICES => "list_devices.lua",
    DELETE_DEVICE => "delete_device.lua",
    DELETE_ALL_DEVICES => "delete_all_devices.lua",
    REPLACE_BACKUP_CODES => "replace_backup_codes.lua",
    COUNT_BACKUP_CODES => "count_backup_codes.lua",
    PUT_CHALLENGE => "put_challenge.lua",
    BEGIN_ATTEMPT => "begin_attempt.lua",
    COMMIT_SUCCESS => "commit_success.lua",
    SAVE_SESSION => "save_session.lua",
    TOUCH_SESSION => "touch_session.lua",
    COUNT_SESSION_ATTEMPT => "count_session_attempt.lua",
    ROTATE_SESSION => "rotate_session.lua",
    DELETE_SESSION => "delete_session.lua",
    DELETE_USER_SESSIONS => "delete_user_sessions.lua",
    PUT_REMEMBERED => "put_remembered.lua",
    CHECK_REMEMBERED => "check_remembered.lua",
    LIST_REMEMBERED => "list_remembered.lua",
    DELETE_REMEMBERED => "delete_remembered.lua",
    DELETE_ALL_REMEMBERED => "delete_all_remembered.lua",
    DISCARD_CHALLENGE => "discard_challenge.lua",
    INSERT_CONFIRMATION => "insert_confirmation.lua",
    BEGIN_CONFIRMATION_ATTEMPT => "begin_confirmation_attempt.lua",
    SETTLE_CONFIRMATION => "settle_confirmation.lua",
    USE_CONFIRMATION => "use_confirmation.lua",
    START_CONFIRMATION => "start_confirmation.lua",
    COUNT_RATE_LIMITED => "count_rate_limited.lua",
    UNCOUNT_RATE_LIMITED => "uncount_rate_limited.lua",
    RECORD_KEY_USE => "record_key_use.lua",
}

/// The push approval scripts: the prelude, then the approvals' own, then the script.
macro_rules! approval_scripts {
    ($($name:ident => $file:literal,)*) => {
        $(
            pub(super) static $name: LazyLock<Script> = LazyLock::new(|| {
                Script::new(concat!(
                    include_str!("lua/prelude.lua"),
                    include_str!("lua/approval_prelude.lua"),
                    include_str!(concat!("lua/", $file))
                ))
            });
        )*
    };
}

approval_scripts! {
    CREATE_APPROVAL => "create_approval.lua",
    SETTLE_APPROVAL => "settle_approval.lua",
    USE_APPROVAL => "use_approval.lua",
}

/// Marks a threshold that every recorded failure is above.
const ALWAYS: &str = "*";

/// The throttle rule of `policy` at `now`, in the form `begin_attempt.lua` applies it: entry
/// `F` is the latest failure time that no longer throttles a device with `F` failures, and the
/// last entry holds for every larger count.
///
/// [`ThrottlePolicy::retry_at`] is `last.saturating_add(delay_after(F)) > now` for a delay
/// above zero, which is `last > now - delay_after(F)` (always true when the delay exceeds
/// `now`, never when `now` is the end of time), and never true for a zero delay. Redis compares these as strings, exactly, with no arithmetic that
/// Lua's doubles could round. The delays stop growing at the policy's cap (or at the end of
/// `u64`), so the table has at most 66 entries and usually about a dozen.
pub(super) fn throttle_thresholds(policy: &ThrottlePolicy, now: Timestamp) -> Vec<String> {
    let now = now.as_millis();
    let threshold = |delay: u64| {
        if now == u64::MAX || delay == 0 {
            // No failure time is above the largest: never throttled.
            u64::MAX.to_string()
        } else {
            now.checked_sub(delay)
                .map_or_else(|| ALWAYS.to_owned(), |t| t.to_string())
        }
    };
    let delay = |failures: u32| duration_millis(policy.delay_after(failures));
    let mut thresholds = vec![threshold(delay(0))];
    let mut failures = 1;
    loop {
        let current = delay(failures);
        thresholds.push(threshold(current));
        if delay(failures + 1) == current {
            return thresholds;
        }
        failures += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The comparison `begin_attempt.lua` makes, on integers instead of decimal strings.
    fn throttled_by_table(thresholds: &[String], failures: u32, last: u64) -> bool {
        let index = (failures as usize).min(thresholds.len() - 1);
        match thresholds[index].as_str() {
            ALWAYS => true,
            threshold => last > threshold.parse::<u64>().unwrap(),
        }
    }

    #[test]
    fn the_table_agrees_with_retry_at() {
        let policies = [
            ThrottlePolicy::default(),
            ThrottlePolicy::default().with_factor(Duration::ZERO),
            ThrottlePolicy::default().with_factor(Duration::from_millis(1)),
            ThrottlePolicy::default().with_factor(Duration::from_millis(3)),
            ThrottlePolicy::default()
                .with_factor(Duration::from_secs(5))
                .with_max_delay(Duration::from_secs(1)),
            ThrottlePolicy::default().with_max_delay(Duration::MAX),
            ThrottlePolicy::default()
                .with_factor(Duration::MAX)
                .with_max_delay(Duration::MAX),
        ];
        let times = [
            0,
            1,
            999,
            1_000,
            100_000,
            1_700_000_000_000,
            u64::MAX / 2,
            u64::MAX - 1,
            u64::MAX,
        ];
        let failure_counts = [0, 1, 2, 3, 10, 11, 12, 20, 63, 64, 65, 66, 100, u32::MAX];
        for policy in &policies {
            for &now in &times {
                let thresholds = throttle_thresholds(policy, Timestamp::from_millis(now));
                assert!(thresholds.len() <= 66);
                for &failures in &failure_counts {
                    let delay = duration_millis(policy.delay_after(failures));
                    let lasts = times.iter().copied().chain([
                        now.saturating_sub(delay),
                        now.saturating_sub(delay).saturating_add(1),
                    ]);
                    for last in lasts {
                        let (last_at, now_at) =
                            (Timestamp::from_millis(last), Timestamp::from_millis(now));
                        let expected = policy.retry_at(failures, Some(last_at), now_at).is_some();
                        assert_eq!(
                            throttled_by_table(&thresholds, failures, last),
                            expected,
                            "{policy:?} now={now} failures={failures} last={last}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_default_policy_needs_a_short_table() {
        let thresholds = throttle_thresholds(&ThrottlePolicy::default(), Timestamp::from_secs(1));
        // 0 failures, then 1 s, 2 s, ... 512 s, and the 900 s cap from 11 failures on.
        assert_eq!(thresholds.len(), 12);
        assert_eq!(thresholds[0], u64::MAX.to_string());
        assert_eq!(thresholds[1], "0");
        assert_eq!(thresholds[2], ALWAYS);
    }
}
