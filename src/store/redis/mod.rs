//! The Redis and Redis Cluster store (feature `redis`).
//!
//! [`RedisStore`] keeps everything the [`Store`](super::Store) trait persists in Redis, so that
//! any number of application instances sharing one Redis, or one Redis Cluster, behave as one
//! process with [`MemoryStore`](super::MemoryStore). The crate's conformance suite runs against
//! both backends and both Redis modes.
//!
//! ```no_run
//! use tower_otp::store::{RedisConfig, RedisStore};
//! use tower_otp::{ServerKey, TwoFactor};
//!
//! # async fn example() -> Result<(), tower_otp::store::StoreError> {
//! // One server:
//! let store = RedisStore::connect("redis://127.0.0.1:6379/").await?;
//! // or a cluster, with settings:
//! let store = RedisConfig::cluster(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"])
//!     .with_key_prefix("myapp-otp")
//!     .connect()
//!     .await?;
//! let two_factor = TwoFactor::new(store, ServerKey::generate());
//! # let _ = two_factor;
//! # Ok(()) }
//! ```
//!
//! # Key layout
//!
//! `P` is the key prefix (default `tower-otp`), `T` the owner's [`UserTag`](crate::session::UserTag)
//! (32 hex digits of an HMAC-SHA256 of the user id under the [`TagKey`](crate::session::TagKey)
//! the store's [`TwoFactor`](crate::TwoFactor) binds, so key names tell nothing about user ids
//! to anyone without the [`ServerKey`](crate::ServerKey); a store used without a `TwoFactor`
//! uses a plain SHA-256). Every key of a user carries `{T}`, its only braces, as its Redis
//! Cluster hash tag: all of a user's keys live in one hash slot, so each operation, however
//! many keys it touches, runs on one node. Instances sharing a Redis must share the
//! `ServerKey` and the prefix to see the same keys.
//!
//! | key | type | time to live | holds |
//! | --- | --- | --- | --- |
//! | `P:{T}:devices` | hash | none (an unconfirmed device expires on its own, see below) | per device `ID`: field `ID`, the record as JSON (everything but the state and the confirmation); field `ID:s`, the state as `seq,next_counter,drift,failures,last_failure_at,last_used_at,confirmed,pending_until` (times in ms, empty when unset; `seq` is the insertion order; `confirmed` is `1` or `0`). Field `#seq` counts insertions. Deleted with the last device. |
//! | `P:{T}:user` | hash | none | `failures`, `locked_until` (removed when cleared, so the hash disappears when empty), `stamp` (kept for good: a stamp must never repeat) |
//! | `P:{T}:codes:ID` | set | none | the backup-code hashes of device `ID`; gone when the last is used or the device is deleted |
//! | `P:{T}:challenge:ID` | hash | until `expires_at` (`PEXPIREAT`, Redis's clock) | `h` code hash, `exp`, `ra` (resend after), `b` the login binding (`=` and the binding; empty for none), `mt` the tries it takes, `t` the tries it has had |
//! | `P:{T}:s` | hash | at least its longest idle deadline | the user's sessions: field `D` (the [`SessionKey`](crate::session::SessionKey)'s digest), the session as `IDLE\|EXP\|CREATED\|DEVICE\|KIND\|AT\|REM\|LOGIN\|USER` (the idle deadline in ms by Redis's clock, then the record in compact text, the verification fields empty when unverified); field `c`, `1` if the user has a confirmed device, else `0`. Sessions past their idle deadline are pruned on every save and rotation |
//! | `P:{T}:confirmation:D` | hash | until its `retain_until` (`PEXPIREAT`) | `rec` the record as JSON, `status` and `attempts` the current ones, `exp` its expiry (ms); `D` is the [`ConfirmationKey`](crate::confirm::ConfirmationKey)'s digest |
//! | `P:{T}:confirmations` | sorted set | until its longest-lived member expires | the user's confirmation digests, scored by expiry (ms); those no longer open are pruned whenever one is inserted |
//! | `P:{T}:rate:NAME` | string | the limit's window, from the last event | a rate-limit counter of the user: the times of the events in its window (ms), comma-separated |
//! | `P:rate:NAME` | string | the limit's window, from the last event | a rate-limit counter shared by all users (no hash tag: a slot of its own); for a destination, `NAME` holds a keyed digest of it, never the destination |
//! | `P:{T}:approval:D` | hash | until its `retain_until` (`PEXPIREAT`) | a push approval: `rec` the record as JSON (written once), `st` its status, `exp` its expiry (ms), `b` the login binding (as a challenge's), `ans` when it was answered (ms, empty for none); `D` is the [`ApprovalKey`](crate::push::ApprovalKey)'s digest |
//! | `P:{T}:push` | hash | until its live approval or its block ends, whichever is later | the user's push state: `live` and `live_exp`, the digest and expiry of the live approval; `blocked`, until when a report stops pushes (ms) |
//! | `P:{T}:browsers` | hash | until its longest-lived member expires | remembered browsers: field = browser id, value `EXP\|LAST\|JSON` (expiry and last use in ms outside the JSON, so scripts never re-encode it); expired members pruned whenever it is read |
//!
//! Counters and times are stored as decimal strings and compared in the scripts as strings,
//! never as Lua numbers (doubles, which round above 2^53). Times to live are capped at 2^52 ms
//! (about 142,000 years) for the same reason. Backup and challenge codes are stored only as
//! keyed hashes; device secrets as the [`SecretSealer`](crate::device::SecretSealer) left them.
//!
//! # One operation, one atomic step, one round trip
//!
//! Every operation that reads and then writes is one Lua script, which Redis runs without
//! interleaving anything else (a rate-limit count over several hash slots is one script per
//! slot; see [`Store::count_rate_limited`](super::Store::count_rate_limited)). Device reads are scripts too, so that the layout of the devices
//! hash lives in the scripts alone; the rest are single commands. Each operation costs one round
//! trip, rate limits aside (three, once, when the server does not know the script yet:
//! `NOSCRIPT`, `SCRIPT LOAD`, `EVALSHA`); `tests/redis_store.rs` counts them with `MONITOR`.
//!
//! | operation | how |
//! | --- | --- |
//! | `insert_device` (limits over the live devices), `update_device`, `confirm_device` (only if unconfirmed, optionally only if first; a first one deletes the other unconfirmed devices), `get_device`, `list_devices` | script |
//! | `delete_device`, `delete_all_devices` (with the browsers they remembered and the verification of the sessions they verified) | script |
//! | `replace_backup_codes` (with the browsers remembered through the device), `count_backup_codes`, `put_challenge` (cooldown), `begin_attempt` (lock, throttle and counting over several devices, and a try of each device's challenge), `commit_success` (counter compare-and-set, backup-code `SREM`, challenge and binding check-and-delete, resets and refunds) | script |
//! | `load_session` (the session and the configured flag: a plain read, no script; on one server, the reads of concurrent requests leave together as one pipeline, see [`RedisConfig::with_pipelined_reads`]) | `HMGET` |
//! | `save_session`, `touch_session` (a live session's idle deadline only), `rotate_session` (only if the old one is live), `delete_session`, `delete_user_sessions` (sessions and remembered browsers) | script |
//! | `discard_challenge` (only with the same hash), `insert_confirmation` (only if new, and under the cap on open ones), `start_confirmation` (only if unanswered), `begin_confirmation_attempt` (count, or fail at the limit), `settle_confirmation` (only from in process), `use_confirmation` (exactly once) | script |
//! | `count_rate_limited`, `uncount_rate_limited` | one script per hash slot among the buckets, a user's counters sharing one and each shared counter having its own (an out-of-band send counts in two slots); a refusal takes back the earlier slots' counts and checks the later ones, one script each |
//! | `get_confirmation`, `get_approval` | `HMGET` |
//! | `create_approval` (under the user's block and one live approval), `settle_approval` (only from pending, in time or once expired; frees the live slot, a report moves the block), `use_approval` (approved, same login, exactly once) | script |
//! | `put_remembered` (returns the stamp), `check_remembered` (browser, device and stamp, marking the browser used), `list_remembered`, `delete_remembered`, `delete_all_remembered` | script |
//! | `user_failures` `HMGET`; `reset_user_failures` `HDEL`; `user_stamp` `HGET`; `bump_user_stamp` `HINCRBY`; `ping` `PING` | command |
//!
//! A script checks everything it reads before its first write (Redis does not undo the writes
//! of a script that fails half-way); a damaged record makes the operation fail with
//! [`StoreError::Corrupt`](super::StoreError::Corrupt) and change nothing. The throttle rule
//! reaches `begin_attempt` as a table of thresholds computed from the
//! [`ThrottlePolicy`](crate::device::ThrottlePolicy), so Redis reproduces
//! [`ThrottlePolicy::retry_at`](crate::device::ThrottlePolicy::retry_at) exactly, with string
//! comparisons only.
//!
//! Expiry is Redis's own: challenges expire at their `expires_at` by the server's clock,
//! whatever the callers' clocks say. A session's idle deadline is written by the scripts from
//! the server's clock and compared by `load_session` with the instance's own wall clock (the
//! read is a plain `HMGET`, which cannot ask Redis the time): keep the clocks in step (NTP), as
//! any skew lengthens or shortens idle expiry by as much.
//!
//! # The hot path
//!
//! A guarded request reads its session with one `HMGET` of one key, which also answers
//! whether the user has a confirmed device (the guard's question for an unverified session):
//! no script and no write. Sliding idle expiry is a `touch_session` script at most once per
//! refresh interval per session ([`SessionConfig::with_idle_refresh`](crate::session::SessionConfig::with_idle_refresh)),
//! on the request that finds it due. The configured flag is kept exact by the scripts that
//! change it (`insert_device`, `confirm_device`, `delete_device`, `delete_all_devices`) and
//! written with every session saved. Throttle and lock times use
//! the `now` the caller passes, as the trait asks.
//!
//! An unconfirmed device expires at its `pending_until`, by the server's clock (or the
//! caller's `now`, where one is passed, if it is later): every script that reads a device
//! treats it as gone from then on, and the scripts that write the device set
//! (`insert_device`, `update_device`, `confirm_device`, `delete_device`) delete the expired
//! ones with their codes and challenges. The devices hash itself has no time to live.
//!
//! # Revocation
//!
//! Deleting a device, deleting all devices, regenerating backup codes and logging out
//! everywhere each revoke, in the same script, what the change ends: remembered browsers
//! (their records are decoded with `cjson` to find the device they were remembered through)
//! and the verification of the user's sessions (all in the user's sessions hash). A session's
//! verification fields are emptied in its text, the rest kept as stored; the hash keeps its
//! time to live. A damaged record makes the whole operation fail as corrupt, changing
//! nothing. `load_session` is unchanged: the work is done by the revoking write, never on the
//! hot path.
//!
//! # Timeouts, failures and retries
//!
//! * Every operation has a deadline (default 2 s, [`RedisConfig::with_timeout`]): the redis
//!   client's response and connection timeouts, and an overall limit around the whole
//!   operation. Past it, or if Redis cannot be reached, the operation fails with
//!   [`StoreError::Unavailable`](super::StoreError::Unavailable), and the crate fails closed.
//! * A single server is reached through the redis crate's `ConnectionManager`: one multiplexed
//!   connection per store (clones share it) that reconnects in the background after an I/O
//!   error. It never sends a command again.
//! * Pipelined session reads ([`RedisConfig::with_pipelined_reads`]) keep each read's own
//!   reply and error: a read that Redis refuses fails alone (or, refused before running, is
//!   sent again on its own as above), and a batch with no answer within the deadline fails
//!   every read in it.
//! * A cluster is reached through the redis crate's async cluster client, built with no retries
//!   of its own, because it would resend a command after an I/O error or a timeout, when the
//!   server may have run it already (a failed attempt counted twice, say). Instead the store
//!   sends a request again only when the server refused to run it — `MOVED`, `ASK`,
//!   `TRYAGAIN`, `CLUSTERDOWN`, `MASTERDOWN`, `LOADING`, `NOSCRIPT` — with a short back-off,
//!   within the deadline (for a single server too). A `MOVED` also refreshes the client's slot
//!   map.
//! * After a timeout the outcome is unknown: the server may still run the request. The caller
//!   sees `Unavailable` either way; nothing is applied twice.
//! * Error messages name the kind of failure only, never replies or stored values.
//!
//! # Memory
//!
//! Measured with `MEMORY USAGE <key> SAMPLES 0` on redis-server 7.0 (64-bit, jemalloc), default
//! prefix (`cargo test --test redis_store -- --ignored --nocapture memory`):
//!
//! | what | bytes |
//! | --- | --- |
//! | a user with one confirmed TOTP device (sealed secret) and ten backup codes | 2,232: `devices` 1,128 + `codes:ID` 1,104 |
//! | a user's first session (the sessions hash) | 416 |
//! | each further session of the user | 184 |
//! | the `user` hash, while the user has failures, a lock or a stamp | 136 |
//!
//! Redis 7.2 and later keep small sets compactly (listpack), which shrinks the code set.
//! `MEMORY USAGE` leaves out the keyspace's own entries; `INFO memory` over 1k to 1M sessions
//! (`cargo bench --bench session_memory`, figures in `BENCHMARKS.md`) gives about 515 B for a
//! user's first session and 208 B for each further one.
//!
//! # Deployment notes
//!
//! * Redis 6.0 or later (the scripts use `SET ... KEEPTTL`).
//! * Redis persistence decides what survives a Redis restart: without it, a restart forgets
//!   devices, used codes and locks. Use AOF (`appendonly yes`) for a store of record.
//! * While a cluster slot migrates, operations on the users in it may fail with `Unavailable`
//!   until the migration ends (multi-key scripts get `TRYAGAIN`).
//! * When a cluster node stops answering, its users' operations fail with `Unavailable` after
//!   the timeout; right after such a timeout the cluster client refreshes its view of the
//!   cluster, and an operation for another node's user may fail once too.
//! * The per-user stamp is a Redis integer: it changes about 9 * 10^18 times before failing.

mod cache;
mod config;
mod connection;
mod keys;
mod pipelining;
mod reply;
mod scripts;
mod session;
mod store;

pub use config::RedisConfig;
pub use store::RedisStore;
