//! CPU time spent by the parts of a load run: the server runtime's threads of this process
//! (read from `/proc/self/task`) and the Redis servers (their `INFO cpu`), so that a scenario
//! can report microseconds of CPU per request for each.
//!
//! Included by the load benchmark with `#[path = "support/cpu.rs"] mod cpu;`.

use std::time::Duration;

/// Clock ticks per second of `/proc/*/stat` times: 100 on every Linux this runs on
/// (`getconf CLK_TCK`), so one tick is 10 ms.
const TICKS_PER_SECOND: u64 = 100;

/// CPU time (user + system) of this process's threads whose name starts with `prefix`
/// (tokio names its workers after the runtime's `thread_name`). Threads that ended before
/// the call are not counted; the runtimes here keep theirs for the whole run.
pub(crate) fn threads_named(prefix: &str) -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let ticks: u64 = tasks
        .flatten()
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|name| name.trim_end().starts_with(prefix))
        })
        .filter_map(|task| std::fs::read_to_string(task.path().join("stat")).ok())
        .filter_map(|stat| user_and_system_ticks(&stat))
        .sum();
    Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND)
}

/// Fields 14 and 15 (utime, stime) of a `/proc/*/stat` line. The command name (field 2) may
/// hold spaces and parentheses, so fields are counted after its last `)`.
fn user_and_system_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

/// `used_cpu_user + used_cpu_sys` from a Redis server's `INFO cpu` reply (microsecond
/// precision), or `None` if the reply has neither.
pub(crate) fn redis_cpu(info: &str) -> Option<Duration> {
    let field = |name: &str| -> Option<f64> {
        info.lines()
            .find_map(|line| line.trim().strip_prefix(name)?.strip_prefix(':'))
            .and_then(|value| value.trim().parse().ok())
    };
    let seconds = field("used_cpu_user")? + field("used_cpu_sys")?;
    Some(Duration::from_secs_f64(seconds))
}
