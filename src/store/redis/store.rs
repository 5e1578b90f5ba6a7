//! [`RedisStore`]: the [`Store`] operations as scripts and single commands.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::{ScriptInvocation, Value};
use subtle::ConstantTimeEq;
use tokio::sync::OnceCell;

use super::cache::{self, LocalCache};
use super::connection::{Connection, Request};
use super::keys::{Keys, SESSIONS_CONFIGURED, USER_FAILURES, USER_LOCKED_UNTIL, USER_STAMP};
use super::pipelining::{Answer, ReadPipeline};
use super::{RedisConfig, reply, scripts, session};
use crate::clock::{Timestamp, duration_millis};
use crate::confirm::{ConfirmationKey, ConfirmationRecord, ConfirmationStatus};
use crate::device::{CodeHash, Device, DeviceId, DeviceKind, ThrottlePolicy, UserId};
use crate::push::{ApprovalCreate, ApprovalKey, ApprovalRecord, ApprovalStatus};
use crate::remember::{BrowserId, RememberedBrowser, RememberedCheck};
use crate::session::{SessionKey, SessionRecord, TagKey, UserTag, UserTagger};
use crate::store::rate_limit::room_at;
use crate::store::{
    AttemptGrant, AttemptPurpose, AttemptSlot, CeremonyKey, CeremonyState, Challenge, ChallengePut,
    ConfirmOutcome, ConfirmationAttempt, ConfirmationInsert, DeviceInsert, DeviceLimits, KeyUse,
    LoadedSession, LoginBinding, RateBucket, RateCount, Store, StoreError, SuccessProof,
};

/// The id of the device a session record says verified it ('' if none), and the record
/// without that verification, for the scripts that keep a verification only while its device
/// exists.
fn verification_parts(record: &SessionRecord) -> Result<(String, String), StoreError> {
    let Some(verified) = &record.verified else {
        return Ok((String::new(), String::new()));
    };
    let unverified = SessionRecord {
        verified: None,
        ..record.clone()
    };
    Ok((
        verified.device_id.as_str().to_owned(),
        session::encode(&unverified)?,
    ))
}

/// Longest time to live given to Redis, in milliseconds (2^52, about 142,000 years): the
/// scripts add it to the server time in Lua numbers, which are exact only below 2^53.
const MAX_TTL_MILLIS: u64 = 1 << 52;

/// A [`Store`] in Redis or Redis Cluster, shared by any number of application instances. See
/// the [module docs](crate::store::redis) for the key layout, atomicity, timeouts and retries.
///
/// Clones share one multiplexed connection and the key of user tags
/// ([`Store::bind_tag_key`]).
///
/// ```no_run
/// use tower_otp::store::{RedisStore, Store};
///
/// # async fn example() -> Result<(), tower_otp::store::StoreError> {
/// let store = RedisStore::connect("redis://127.0.0.1:6379/").await?;
/// store.ping().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    connection: Connection,
    keys: Keys,
    tagger: UserTagger,
    /// Whether the data in Redis was tagged with the bound key: checked once, then kept.
    key_check: Arc<OnceCell<bool>>,
    timeout: Duration,
    mode: &'static str,
    /// The local cache of sessions, when configured.
    cache: Option<Arc<LocalCache>>,
    /// Where session reads go to leave together, when they do.
    reads: Option<ReadPipeline>,
}

impl RedisStore {
    /// Connects to one Redis server with the default settings (see [`RedisConfig`]).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        RedisConfig::server(url).connect().await
    }

    /// Connects to a Redis Cluster through any of `urls`, with the default settings.
    pub async fn connect_cluster<I>(urls: I) -> Result<Self, StoreError>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        RedisConfig::cluster(urls).connect().await
    }

    pub(super) async fn open(config: RedisConfig) -> Result<Self, StoreError> {
        let cache = config.local_cache.map(|capacity| {
            let cache = Arc::new(LocalCache::new(capacity));
            cache::listen(
                &cache,
                config.listener_urls(),
                cache::channel(&config.key_prefix),
            );
            cache
        });
        let connection = Connection::open(&config.target, config.timeout).await?;
        let reads = config
            .pipelined_reads
            .then(|| connection.read_pipeline(config.timeout))
            .flatten();
        Ok(RedisStore {
            cache,
            connection,
            reads,
            keys: Keys::new(&config.key_prefix),
            tagger: UserTagger::new(),
            key_check: Arc::default(),
            timeout: config.timeout,
            mode: config.mode(),
        })
    }

    /// The prefix of every key.
    pub fn key_prefix(&self) -> &str {
        self.keys.prefix()
    }

    /// Runs a script that changes the sessions or confirmed devices of the user with `tag`,
    /// then drops the user from this instance's local cache at once (others hear it from
    /// the script), whatever the outcome: a failed or timed-out write may have been applied.
    async fn eval_change(
        &self,
        tag: &UserTag,
        invocation: ScriptInvocation<'_>,
    ) -> Result<Value, StoreError> {
        let result = self.eval(invocation).await;
        if let Some(cache) = &self.cache {
            cache.invalidate(tag.as_str());
        }
        result
    }

    /// The session and the configured flag, from Redis: one `HMGET`.
    async fn read_session(&self, key: &SessionKey) -> Result<Option<LoadedSession>, StoreError> {
        let mut command = redis::cmd("HMGET");
        command
            .arg(self.keys.sessions(key.tag()))
            .arg(key.digest())
            .arg(SESSIONS_CONFIGURED);
        let [value, configured] = reply::tuple(self.read(command).await?, "session")?;
        session::loaded(
            reply::text(&value)?,
            reply::text(&configured)?,
            session::wall_millis(),
        )
    }

    async fn eval(&self, invocation: ScriptInvocation<'_>) -> Result<Value, StoreError> {
        self.check_tag_key().await?;
        self.connection
            .run(&Request::Script(invocation), self.timeout)
            .await
    }

    /// A plain read, sent with the reads of concurrent requests when reads are pipelined.
    async fn read(&self, command: redis::Cmd) -> Result<Value, StoreError> {
        let Some(reads) = &self.reads else {
            return self.command(command).await;
        };
        self.check_tag_key().await?;
        match reads.read(command).await {
            Answer::Reply(reply) => reply,
            Answer::SendAlone(command) => self.command(command).await,
        }
    }

    async fn command(&self, command: redis::Cmd) -> Result<Value, StoreError> {
        self.check_tag_key().await?;
        self.connection
            .run(&Request::Command(command), self.timeout)
            .await
    }

    /// Fails closed if the data in Redis was tagged under another key. A user's keys are named
    /// by their tag, so an instance with another `ServerKey` would find no device of anyone
    /// and take every user for one who never enrolled: a password would be enough. The first
    /// instance to run stores a check value of its key; every instance compares with it once.
    async fn check_tag_key(&self) -> Result<(), StoreError> {
        let Some(key) = self.tagger.key() else {
            return Ok(());
        };
        let matches = self
            .key_check
            .get_or_try_init(|| self.compare_tag_key(key.check_value()))
            .await?;
        if *matches {
            Ok(())
        } else {
            Err(StoreError::Invalid(
                "this store's data is tagged under another ServerKey; refusing to use it",
            ))
        }
    }

    /// Stores `check` as the store's key check unless one is there, and tells whether the
    /// stored one is `check`.
    async fn compare_tag_key(&self, check: String) -> Result<bool, StoreError> {
        let key = self.keys.tag_key_check();
        let mut set = redis::cmd("SET");
        set.arg(&key).arg(&check).arg("NX");
        self.connection
            .run(&Request::Command(set), self.timeout)
            .await?;
        let mut get = redis::cmd("GET");
        get.arg(&key);
        let stored = self
            .connection
            .run(&Request::Command(get), self.timeout)
            .await?;
        let stored = reply::text(&stored)?.unwrap_or_default();
        let matches: bool = stored.as_bytes().ct_eq(check.as_bytes()).into();
        if !matches {
            tracing::error!(
                key = %key,
                "the data in this Redis was tagged under another ServerKey: every operation \
                 fails until the instances share one ServerKey"
            );
        }
        Ok(matches)
    }

    /// A confirmation from its stored JSON and its current status and attempt count.
    fn parse_confirmation(
        &self,
        rec: &Value,
        status: &Value,
        attempts: &Value,
        key: &ConfirmationKey,
    ) -> Result<ConfirmationRecord, StoreError> {
        let mut record: ConfirmationRecord =
            serde_json::from_str(reply::required_text(rec, "confirmation")?)?;
        record.status = serde_json::from_value(serde_json::Value::String(
            reply::required_text(status, "confirmation status")?.to_owned(),
        ))?;
        record.attempts = reply::number(attempts, "confirmation attempts")?;
        if !self.user_tag(&record.user).matches(key.tag()) {
            return Err(reply::corrupt("confirmation owner"));
        }
        Ok(record)
    }

    /// Adds the prefixes of a user's backup-code and challenge keys, which scripts that delete
    /// devices complete with the device ids.
    fn device_key_prefixes(&self, call: &mut ScriptInvocation<'_>, tag: &UserTag) {
        call.arg(self.keys.codes_prefix(tag))
            .arg(self.keys.challenge_prefix(tag));
    }

    /// Counts `now` in one group of buckets that share a hash slot, in one script; or, with
    /// `check_only`, only finds whether one is full.
    async fn count_rate_group(
        &self,
        group: &[&RateBucket],
        now: Timestamp,
        check_only: bool,
    ) -> Result<RateCount, StoreError> {
        let mut call = scripts::COUNT_RATE_LIMITED.prepare_invoke();
        call.arg(if check_only { "check" } else { "count" })
            .arg(now.as_millis());
        for bucket in group {
            call.key(self.keys.rate(&bucket.key))
                .arg(bucket.limit.max())
                .arg(optional_time(bucket.limit.cutoff(now)))
                .arg(duration_millis(bucket.limit.window()));
        }
        let answer = reply::required_array(self.eval(call).await?, "rate limit result")?;
        match answer.split_first() {
            Some((status, [])) if matches!(reply::text(status)?, Some("counted" | "room")) => {
                Ok(RateCount::Counted)
            }
            Some((status, full)) if reply::text(status)? == Some("limited") && !full.is_empty() => {
                let mut until = Timestamp::from_millis(0);
                for pair in full.chunks(2) {
                    let [position, oldest] = pair else {
                        return Err(reply::corrupt("rate limit result"));
                    };
                    let position: usize = reply::number(position, "rate limit bucket")?;
                    let bucket = position
                        .checked_sub(1)
                        .and_then(|i| group.get(i))
                        .ok_or_else(|| reply::corrupt("rate limit bucket"))?;
                    let oldest = Timestamp::from_millis(reply::number(oldest, "rate limit event")?);
                    until = until.max(room_at(&bucket.limit, oldest));
                }
                Ok(RateCount::Limited { until })
            }
            _ => Err(reply::corrupt("rate limit result")),
        }
    }

    /// Takes `now` back out of one group of buckets that share a hash slot.
    async fn uncount_rate_group(
        &self,
        group: &[&RateBucket],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut call = scripts::UNCOUNT_RATE_LIMITED.prepare_invoke();
        call.arg(now.as_millis());
        for bucket in group {
            call.key(self.keys.rate(&bucket.key));
        }
        self.eval(call).await.map(drop)
    }
}

/// `buckets` in groups that one script may touch together in a Redis Cluster: a user's
/// counters share the user's hash slot; a shared counter has a slot of its own. Groups keep
/// the order in which their first bucket appears.
fn slot_groups(buckets: &[RateBucket]) -> Vec<Vec<&RateBucket>> {
    let mut groups: Vec<Vec<&RateBucket>> = Vec::new();
    for bucket in buckets {
        let same_slot = bucket.key.tag().and_then(|tag| {
            groups
                .iter_mut()
                .find(|group| group[0].key.tag() == Some(tag))
        });
        match same_slot {
            Some(group) => group.push(bucket),
            None => groups.push(vec![bucket]),
        }
    }
    groups
}

/// A challenge's binding as the scripts store and compare it: '' for none, else '=' and the
/// binding (so that no binding differs even from an empty one).
fn binding_arg(binding: Option<&LoginBinding>) -> String {
    binding.map_or_else(String::new, |b| format!("={}", b.as_str()))
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("mode", &self.mode)
            .field("key_prefix", &self.keys.prefix())
            .field("tags", &self.tagger)
            .field("timeout", &self.timeout)
            .field("local_cache", &self.cache.is_some())
            .finish_non_exhaustive()
    }
}

/// A script's 0-or-1 answer.
fn flag(value: &Value) -> Result<bool, StoreError> {
    match reply::number::<i64>(value, "script result")? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(reply::corrupt("script result")),
    }
}

/// An optional time as the scripts take it: milliseconds, or empty for none.
fn optional_time(time: Option<Timestamp>) -> String {
    time.map_or_else(String::new, |t| t.as_millis().to_string())
}

fn ttl_millis(ttl: Duration) -> u64 {
    duration_millis(ttl).min(MAX_TTL_MILLIS)
}

/// A remembered browser as `put_remembered.lua` stores it: "EXP|LAST|JSON", the times outside
/// the JSON so that scripts can read and change them without decoding it.
fn browser_value(browser: &RememberedBrowser) -> Result<String, StoreError> {
    let record = RememberedBrowser {
        last_used_at: None,
        ..browser.clone()
    };
    Ok(format!(
        "{}|{}|{}",
        browser.expires_at.as_millis(),
        optional_time(browser.last_used_at),
        serde_json::to_string(&record)?
    ))
}

/// A stored browser of `user`, read back.
fn parse_browser(value: &Value, user: &UserId) -> Result<RememberedBrowser, StoreError> {
    let text = reply::required_text(value, "remembered browser")?;
    let mut parts = text.splitn(3, '|');
    let (Some(_), Some(last), Some(json)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(reply::corrupt("remembered browser"));
    };
    let mut browser: RememberedBrowser = serde_json::from_str(json)?;
    browser.last_used_at = match last {
        "" => None,
        millis => Some(Timestamp::from_millis(
            millis
                .parse()
                .map_err(|_| reply::corrupt("browser last use"))?,
        )),
    };
    if &browser.user != user {
        return Err(reply::corrupt("browser owner"));
    }
    Ok(browser)
}

/// A device read back for `user`; a record filed under another user is damaged.
fn owned_by(device: Device, user: &UserId) -> Result<Device, StoreError> {
    if &device.user == user {
        Ok(device)
    } else {
        Err(reply::corrupt("device owner"))
    }
}

/// A flag as the scripts take it.
fn flag_arg(flag: bool) -> &'static str {
    if flag { "1" } else { "0" }
}

/// `insert_device.lua`'s answer.
fn device_insert(answer: Value, user: &UserId) -> Result<DeviceInsert, StoreError> {
    let mut answer = reply::required_array(answer, "insert result")?.into_iter();
    let status = answer.next().unwrap_or_default();
    let device = answer.next().map(reply::device).transpose()?.flatten();
    match (reply::text(&status)?, device) {
        (Some("inserted"), None) => Ok(DeviceInsert::Inserted),
        (Some("conflict"), None) => Err(StoreError::Conflict),
        (Some("too_many"), None) => Ok(DeviceInsert::TooManyDevices),
        (Some("too_many_pending"), None) => Ok(DeviceInsert::TooManyPending),
        (Some("backup"), Some((_, device))) => Ok(DeviceInsert::BackupCodesExist(Box::new(
            owned_by(device, user)?,
        ))),
        _ => Err(reply::corrupt("insert result")),
    }
}

/// One slot of `begin_attempt.lua`'s answer: `[status]` or `[status, device]`.
fn attempt_slot(
    slot: Value,
    user: &UserId,
    policy: &ThrottlePolicy,
    now: Timestamp,
) -> Result<AttemptSlot, StoreError> {
    let mut slot = reply::required_array(slot, "attempt slot")?.into_iter();
    let status = slot.next().unwrap_or_default();
    let device = slot.next().map(reply::device).transpose()?.flatten();
    match (reply::text(&status)?, device) {
        (Some("missing"), None) => Ok(AttemptSlot::Missing),
        (Some("not_confirmed"), None) => Ok(AttemptSlot::NotConfirmed),
        (Some("already_confirmed"), None) => Ok(AttemptSlot::AlreadyConfirmed),
        (Some("allowed"), Some((_, device))) => {
            Ok(AttemptSlot::Allowed(Box::new(owned_by(device, user)?)))
        }
        (Some("throttled"), Some((_, device))) => {
            // The script decided with the policy's thresholds; the time comes from the policy
            // itself.
            let state = device.state;
            policy
                .retry_at(state.failures, state.last_failure_at, now)
                .map(|until| AttemptSlot::Throttled { until })
                .ok_or_else(|| reply::corrupt("throttle state"))
        }
        _ => Err(reply::corrupt("attempt slot")),
    }
}

#[async_trait]
impl Store for RedisStore {
    fn user_tag(&self, user: &UserId) -> UserTag {
        self.tagger.tag(user)
    }

    fn bind_tag_key(&self, key: TagKey) {
        self.tagger.bind(key);
    }

    async fn insert_device(
        &self,
        device: &Device,
        limits: &DeviceLimits,
    ) -> Result<DeviceInsert, StoreError> {
        if device.confirmed && device.pending_until.is_some() {
            return Err(StoreError::Invalid("a confirmed device has no deadline"));
        }
        let tag = self.user_tag(&device.user);
        let state = &device.state;
        let mut call = scripts::INSERT_DEVICE.prepare_invoke();
        call.key(self.keys.devices(&tag))
            .key(self.keys.sessions(&tag))
            .arg(device.id.as_str())
            .arg(reply::device_record(device)?)
            .arg(state.next_counter)
            .arg(state.drift)
            .arg(state.failures)
            .arg(optional_time(state.last_failure_at))
            .arg(optional_time(state.last_used_at))
            .arg(flag_arg(device.confirmed))
            .arg(optional_time(device.pending_until))
            .arg(flag_arg(device.kind() == DeviceKind::BackupCodes))
            .arg(limits.max_devices)
            .arg(limits.max_pending);
        self.device_key_prefixes(&mut call, &tag);
        device_insert(self.eval_change(&tag, call).await?, &device.user)
    }

    async fn update_device(&self, device: &Device) -> Result<bool, StoreError> {
        let tag = self.user_tag(&device.user);
        let mut call = scripts::UPDATE_DEVICE.prepare_invoke();
        call.key(self.keys.devices(&tag))
            .arg(device.id.as_str())
            .arg(reply::device_record(device)?);
        self.device_key_prefixes(&mut call, &tag);
        flag(&self.eval(call).await?)
    }

    async fn confirm_device(
        &self,
        user: &UserId,
        id: &DeviceId,
        only_if_first: bool,
    ) -> Result<ConfirmOutcome, StoreError> {
        let tag = self.user_tag(user);
        let mut call = scripts::CONFIRM_DEVICE.prepare_invoke();
        call.key(self.keys.devices(&tag))
            .key(self.keys.sessions(&tag))
            .arg(id.as_str())
            .arg(flag_arg(only_if_first));
        self.device_key_prefixes(&mut call, &tag);
        match reply::text(&self.eval_change(&tag, call).await?)? {
            Some("first") => Ok(ConfirmOutcome::Confirmed { first: true }),
            Some("confirmed") => Ok(ConfirmOutcome::Confirmed { first: false }),
            Some("already_confirmed") => Ok(ConfirmOutcome::AlreadyConfirmed),
            Some("not_first") => Ok(ConfirmOutcome::NotFirst),
            Some("missing") => Ok(ConfirmOutcome::Missing),
            _ => Err(reply::corrupt("confirmation result")),
        }
    }

    async fn get_device(&self, user: &UserId, id: &DeviceId) -> Result<Option<Device>, StoreError> {
        let mut call = scripts::GET_DEVICE.prepare_invoke();
        call.key(self.keys.devices(&self.user_tag(user)))
            .arg(id.as_str());
        match reply::device(self.eval(call).await?)? {
            Some((_, device)) if &device.id == id => owned_by(device, user).map(Some),
            Some(_) => Err(reply::corrupt("device id")),
            None => Ok(None),
        }
    }

    async fn list_devices(&self, user: &UserId) -> Result<Vec<Device>, StoreError> {
        let mut call = scripts::LIST_DEVICES.prepare_invoke();
        call.key(self.keys.devices(&self.user_tag(user)));
        let mut devices = Vec::new();
        for item in reply::required_array(self.eval(call).await?, "device list")? {
            let (seq, device) = reply::device(item)?.ok_or_else(|| reply::corrupt("device"))?;
            devices.push((seq, owned_by(device, user)?));
        }
        devices.sort_by_key(|(seq, _)| *seq);
        Ok(devices.into_iter().map(|(_, device)| device).collect())
    }

    async fn delete_device(&self, user: &UserId, id: &DeviceId) -> Result<bool, StoreError> {
        let tag = self.user_tag(user);
        let mut call = scripts::DELETE_DEVICE.prepare_invoke();
        call.key(self.keys.devices(&tag))
            .key(self.keys.codes(&tag, id))
            .key(self.keys.challenge(&tag, id))
            .key(self.keys.browsers(&tag))
            .key(self.keys.sessions(&tag))
            .arg(id.as_str());
        self.device_key_prefixes(&mut call, &tag);
        flag(&self.eval_change(&tag, call).await?)
    }

    async fn delete_all_devices(&self, user: &UserId) -> Result<u64, StoreError> {
        let tag = self.user_tag(user);
        let mut call = scripts::DELETE_ALL_DEVICES.prepare_invoke();
        call.key(self.keys.devices(&tag))
            .key(self.keys.browsers(&tag))
            .key(self.keys.sessions(&tag));
        self.device_key_prefixes(&mut call, &tag);
        reply::number(&self.eval_change(&tag, call).await?, "device count")
    }

    async fn replace_backup_codes(
        &self,
        user: &UserId,
        device: &DeviceId,
        hashes: &[CodeHash],
    ) -> Result<(), StoreError> {
        let tag = self.user_tag(user);
        let mut call = scripts::REPLACE_BACKUP_CODES.prepare_invoke();
        call.key(self.keys.devices(&tag))
            .key(self.keys.codes(&tag, device))
            .key(self.keys.browsers(&tag))
            .arg(device.as_str());
        for hash in hashes {
            call.arg(hash.as_str());
        }
        if flag(&self.eval(call).await?)? {
            Ok(())
        } else {
            Err(StoreError::Invalid("no such device"))
        }
    }

    async fn count_backup_codes(
        &self,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<u64, StoreError> {
        let tag = self.user_tag(user);
        let mut call = scripts::COUNT_BACKUP_CODES.prepare_invoke();
        call.key(self.keys.devices(&tag))
            .key(self.keys.codes(&tag, device))
            .arg(device.as_str());
        reply::number(&self.eval(call).await?, "code count")
    }

    async fn put_challenge(
        &self,
        user: &UserId,
        device: &DeviceId,
        challenge: &Challenge,
        now: Timestamp,
    ) -> Result<ChallengePut, StoreError> {
        let tag = self.user_tag(user);
        let mut call = scripts::PUT_CHALLENGE.prepare_invoke();
        call.key(self.keys.devices(&tag))
            .key(self.keys.challenge(&tag, device))
            .arg(device.as_str())
            .arg(now.as_millis())
            .arg(challenge.hash.as_str())
            .arg(challenge.expires_at.as_millis())
            .arg(challenge.resend_after.as_millis())
            .arg(binding_arg(challenge.binding.as_ref()))
            .arg(challenge.max_tries)
            .arg(challenge.tries);
        let answer = reply::required_array(self.eval(call).await?, "challenge result")?;
        match answer.as_slice() {
            [status] if reply::text(status)? == Some("stored") => Ok(ChallengePut::Stored),
            [status] if reply::text(status)? == Some("missing") => {
                Err(StoreError::Invalid("no such device"))
            }
            [status, until] if reply::text(status)? == Some("cooldown") => {
                Ok(ChallengePut::Cooldown {
                    until: Timestamp::from_millis(reply::number(until, "challenge resend time")?),
                })
            }
            _ => Err(reply::corrupt("challenge result")),
        }
    }

    async fn begin_attempt(
        &self,
        user: &UserId,
        devices: &[DeviceId],
        purpose: AttemptPurpose,
        policy: &ThrottlePolicy,
        now: Timestamp,
    ) -> Result<AttemptGrant, StoreError> {
        let tag = self.user_tag(user);
        let mut call = scripts::BEGIN_ATTEMPT.prepare_invoke();
        call.key(self.keys.devices(&tag))
            .key(self.keys.user(&tag))
            .arg(now.as_millis())
            .arg(policy.user_failure_limit())
            .arg(now.saturating_add(policy.lock_period()).as_millis())
            .arg(match purpose {
                AttemptPurpose::Verify => "verify",
                AttemptPurpose::Confirm => "confirm",
            })
            .arg(devices.len());
        for id in devices {
            call.key(self.keys.challenge(&tag, id)).arg(id.as_str());
        }
        call.arg(scripts::throttle_thresholds(policy, now));

        let answer = reply::required_array(self.eval(call).await?, "attempt result")?;
        if let [status, until] = answer.as_slice()
            && reply::text(status).ok().flatten() == Some("locked")
        {
            let until = Timestamp::from_millis(reply::number(until, "user lock")?);
            return Ok(AttemptGrant::Locked { until });
        }
        if answer.len() != devices.len() {
            return Err(reply::corrupt("attempt result"));
        }
        let slots = answer
            .into_iter()
            .map(|slot| attempt_slot(slot, user, policy, now))
            .collect::<Result<_, _>>()?;
        Ok(AttemptGrant::Slots(slots))
    }

    async fn commit_success(
        &self,
        user: &UserId,
        device: &DeviceId,
        proof: &SuccessProof,
        refund: &[DeviceId],
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let tag = self.user_tag(user);
        let mut call = scripts::COMMIT_SUCCESS.prepare_invoke();
        call.key(self.keys.devices(&tag))
            .key(self.keys.user(&tag))
            .key(self.keys.codes(&tag, device))
            .key(self.keys.challenge(&tag, device))
            .arg(device.as_str())
            .arg(now.as_millis());
        match proof {
            SuccessProof::Counter {
                next_counter,
                drift,
            } => call.arg("counter").arg(*next_counter).arg(*drift),
            SuccessProof::BackupCode(hash) => call.arg("code").arg(hash.as_str()).arg(""),
            SuccessProof::Challenge { hash, binding } => call
                .arg("challenge")
                .arg(hash.as_str())
                .arg(binding_arg(binding.as_ref())),
        };
        for id in refund {
            call.arg(id.as_str());
        }
        flag(&self.eval(call).await?)
    }

    async fn reset_user_failures(&self, user: &UserId) -> Result<(), StoreError> {
        let key = self.keys.user(&self.user_tag(user));
        let command = redis::cmd("HDEL")
            .arg(key)
            .arg(USER_FAILURES)
            .arg(USER_LOCKED_UNTIL)
            .clone();
        self.command(command).await.map(drop)
    }

    async fn user_failures(&self, user: &UserId) -> Result<(u32, Option<Timestamp>), StoreError> {
        let key = self.keys.user(&self.user_tag(user));
        let command = redis::cmd("HMGET")
            .arg(key)
            .arg(USER_FAILURES)
            .arg(USER_LOCKED_UNTIL)
            .clone();
        let [failures, locked_until] = reply::tuple(self.command(command).await?, "user state")?;
        Ok((
            reply::optional_number(&failures, "user failures")?.unwrap_or(0),
            reply::optional_number(&locked_until, "user lock")?.map(Timestamp::from_millis),
        ))
    }

    async fn user_stamp(&self, user: &UserId) -> Result<u64, StoreError> {
        let key = self.keys.user(&self.user_tag(user));
        let command = redis::cmd("HGET").arg(key).arg(USER_STAMP).clone();
        Ok(reply::optional_number(&self.command(command).await?, "user stamp")?.unwrap_or(0))
    }

    async fn bump_user_stamp(&self, user: &UserId) -> Result<u64, StoreError> {
        let key = self.keys.user(&self.user_tag(user));
        let command = redis::cmd("HINCRBY")
            .arg(key)
            .arg(USER_STAMP)
            .arg(1)
            .clone();
        reply::number(&self.command(command).await?, "user stamp")
    }

    async fn load_session(&self, key: &SessionKey) -> Result<Option<LoadedSession>, StoreError> {
        // The hot path: from the local cache, or one plain read of the session and the
        // configured flag.
        let Some(cache) = &self.cache else {
            return self.read_session(key).await;
        };
        if let Some(hit) = cache.get(key) {
            return Ok(Some(hit));
        }
        let generation = cache.generation();
        let loaded = self.read_session(key).await?;
        if let Some(session) = &loaded {
            cache.fill(key, session, generation);
        }
        Ok(loaded)
    }

    async fn touch_session(&self, key: &SessionKey, idle: Duration) -> Result<bool, StoreError> {
        let mut call = scripts::TOUCH_SESSION.prepare_invoke();
        call.key(self.keys.sessions(key.tag()))
            .arg(key.digest())
            .arg(ttl_millis(idle));
        let touched = self.eval(call).await;
        // The cached entry has the old deadline: the next read takes the new one.
        if let Some(cache) = &self.cache {
            cache.forget(key);
        }
        flag(&touched?)
    }

    async fn count_session_attempt(
        &self,
        key: &SessionKey,
        ttl: Duration,
    ) -> Result<u64, StoreError> {
        let mut call = scripts::COUNT_SESSION_ATTEMPT.prepare_invoke();
        call.key(self.keys.session_attempts(key))
            .arg(ttl_millis(ttl));
        reply::number(&self.eval(call).await?, "session attempts")
    }

    async fn save_session(
        &self,
        key: &SessionKey,
        record: &SessionRecord,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let (verifier, unverified) = verification_parts(record)?;
        let mut call = scripts::SAVE_SESSION.prepare_invoke();
        call.key(self.keys.sessions(key.tag()))
            .key(self.keys.devices(key.tag()))
            .arg(key.digest())
            .arg(session::encode(record)?)
            .arg(ttl_millis(ttl))
            .arg(verifier)
            .arg(unverified);
        self.eval_change(key.tag(), call).await.map(drop)
    }

    async fn rotate_session(
        &self,
        old: &SessionKey,
        new: &SessionKey,
        record: &SessionRecord,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        if old.tag() != new.tag() {
            return Err(StoreError::Invalid("rotate_session across users"));
        }
        let (verifier, unverified) = verification_parts(record)?;
        let mut call = scripts::ROTATE_SESSION.prepare_invoke();
        call.key(self.keys.sessions(old.tag()))
            .key(self.keys.devices(old.tag()))
            .arg(old.digest())
            .arg(new.digest())
            .arg(session::encode(record)?)
            .arg(ttl_millis(ttl))
            .arg(verifier)
            .arg(unverified);
        flag(&self.eval_change(old.tag(), call).await?)
    }

    async fn delete_session(&self, key: &SessionKey) -> Result<bool, StoreError> {
        let mut call = scripts::DELETE_SESSION.prepare_invoke();
        call.key(self.keys.sessions(key.tag())).arg(key.digest());
        flag(&self.eval_change(key.tag(), call).await?)
    }

    async fn delete_user_sessions(&self, tag: &UserTag) -> Result<u64, StoreError> {
        let mut call = scripts::DELETE_USER_SESSIONS.prepare_invoke();
        call.key(self.keys.sessions(tag))
            .key(self.keys.browsers(tag));
        reply::number(&self.eval_change(tag, call).await?, "session count")
    }

    async fn put_remembered(&self, browser: &RememberedBrowser) -> Result<u64, StoreError> {
        let tag = self.user_tag(&browser.user);
        let mut call = scripts::PUT_REMEMBERED.prepare_invoke();
        call.key(self.keys.browsers(&tag))
            .key(self.keys.user(&tag))
            .arg(browser.id.as_str())
            .arg(browser_value(browser)?)
            .arg(browser.expires_at.as_millis().min(MAX_TTL_MILLIS * 2));
        reply::number(&self.eval(call).await?, "user stamp")
    }

    async fn check_remembered(
        &self,
        user: &UserId,
        id: &BrowserId,
        device: &DeviceId,
        now: Timestamp,
    ) -> Result<RememberedCheck, StoreError> {
        let tag = self.user_tag(user);
        let mut call = scripts::CHECK_REMEMBERED.prepare_invoke();
        call.key(self.keys.browsers(&tag))
            .key(self.keys.devices(&tag))
            .key(self.keys.user(&tag))
            .arg(id.as_str())
            .arg(device.as_str())
            .arg(now.as_millis());
        let [browser, found, stamp] = reply::tuple(self.eval(call).await?, "browser check")?;
        let browser = match reply::text(&browser)? {
            Some(_) => Some(parse_browser(&browser, user)?),
            None => None,
        };
        let device = match reply::device(found)? {
            Some((_, found)) if &found.id == device => Some(owned_by(found, user)?),
            Some(_) => return Err(reply::corrupt("device id")),
            None => None,
        };
        Ok(RememberedCheck {
            browser,
            device,
            stamp: reply::number(&stamp, "user stamp")?,
        })
    }

    async fn list_remembered(&self, user: &UserId) -> Result<Vec<RememberedBrowser>, StoreError> {
        let mut call = scripts::LIST_REMEMBERED.prepare_invoke();
        call.key(self.keys.browsers(&self.user_tag(user)));
        let flat = reply::required_array(self.eval(call).await?, "browser list")?;
        let mut browsers = flat
            .chunks(2)
            .map(|pair| match pair {
                [_, value] => parse_browser(value, user),
                _ => Err(reply::corrupt("browser list")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        browsers.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(browsers)
    }

    async fn delete_remembered(&self, user: &UserId, id: &BrowserId) -> Result<bool, StoreError> {
        let mut call = scripts::DELETE_REMEMBERED.prepare_invoke();
        call.key(self.keys.browsers(&self.user_tag(user)))
            .arg(id.as_str());
        flag(&self.eval(call).await?)
    }

    async fn delete_all_remembered(&self, user: &UserId) -> Result<u64, StoreError> {
        let mut call = scripts::DELETE_ALL_REMEMBERED.prepare_invoke();
        call.key(self.keys.browsers(&self.user_tag(user)));
        reply::number(&self.eval(call).await?, "browser count")
    }

    async fn discard_challenge(
        &self,
        user: &UserId,
        device: &DeviceId,
        hash: &CodeHash,
    ) -> Result<bool, StoreError> {
        let mut call = scripts::DISCARD_CHALLENGE.prepare_invoke();
        call.key(self.keys.challenge(&self.user_tag(user), device))
            .arg(hash.as_str());
        flag(&self.eval(call).await?)
    }

    async fn insert_confirmation(
        &self,
        key: &ConfirmationKey,
        record: &ConfirmationRecord,
        max_open: u32,
    ) -> Result<ConfirmationInsert, StoreError> {
        let mut call = scripts::INSERT_CONFIRMATION.prepare_invoke();
        call.key(self.keys.confirmation(key))
            .key(self.keys.confirmations(key.tag()))
            .arg(serde_json::to_string(record)?)
            .arg(record.status.as_str())
            .arg(record.attempts)
            .arg(record.expires_at.as_millis())
            .arg(record.retain_until.as_millis())
            .arg(record.created_at.as_millis())
            .arg(max_open)
            .arg(self.keys.confirmation_prefix(key.tag()))
            .arg(key.digest());
        let answer = self.eval(call).await?;
        if reply::text(&answer).ok().flatten() == Some("too_many") {
            return Ok(ConfirmationInsert::TooManyOpen);
        }
        if flag(&answer)? {
            Ok(ConfirmationInsert::Inserted)
        } else {
            Err(StoreError::Conflict)
        }
    }

    async fn start_confirmation(
        &self,
        key: &ConfirmationKey,
        record: &ConfirmationRecord,
    ) -> Result<bool, StoreError> {
        crate::store::check_starting_status(record.status)?;
        let mut call = scripts::START_CONFIRMATION.prepare_invoke();
        call.key(self.keys.confirmation(key))
            .arg(serde_json::to_string(record)?)
            .arg(record.status.as_str());
        flag(&self.eval(call).await?)
    }

    async fn get_confirmation(
        &self,
        key: &ConfirmationKey,
    ) -> Result<Option<ConfirmationRecord>, StoreError> {
        let command = redis::cmd("HMGET")
            .arg(self.keys.confirmation(key))
            .arg("rec")
            .arg("status")
            .arg("attempts")
            .clone();
        let [rec, status, attempts] = reply::tuple(self.command(command).await?, "confirmation")?;
        if reply::text(&rec)?.is_none() {
            return Ok(None);
        }
        self.parse_confirmation(&rec, &status, &attempts, key)
            .map(Some)
    }

    async fn begin_confirmation_attempt(
        &self,
        key: &ConfirmationKey,
        max_attempts: u32,
        now: Timestamp,
    ) -> Result<ConfirmationAttempt, StoreError> {
        let mut call = scripts::BEGIN_CONFIRMATION_ATTEMPT.prepare_invoke();
        call.key(self.keys.confirmation(key))
            .arg(max_attempts)
            .arg(now.as_millis());
        let answer = reply::required_array(self.eval(call).await?, "confirmation attempt")?;
        match answer.as_slice() {
            [outcome] if reply::text(outcome)? == Some("missing") => {
                Ok(ConfirmationAttempt::Missing)
            }
            [outcome, rec, status, attempts] => {
                let record = self.parse_confirmation(rec, status, attempts, key)?;
                match reply::text(outcome)? {
                    Some("granted") => Ok(ConfirmationAttempt::Granted(record)),
                    Some("refused") => Ok(ConfirmationAttempt::Refused(record)),
                    _ => Err(reply::corrupt("confirmation attempt")),
                }
            }
            _ => Err(reply::corrupt("confirmation attempt")),
        }
    }

    async fn settle_confirmation(
        &self,
        key: &ConfirmationKey,
        status: ConfirmationStatus,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        crate::store::check_settling_status(status)?;
        let mut call = scripts::SETTLE_CONFIRMATION.prepare_invoke();
        call.key(self.keys.confirmation(key))
            .arg(status.as_str())
            .arg(now.as_millis());
        flag(&self.eval(call).await?)
    }

    async fn use_confirmation(
        &self,
        key: &ConfirmationKey,
        now: Timestamp,
    ) -> Result<Option<ConfirmationRecord>, StoreError> {
        let mut call = scripts::USE_CONFIRMATION.prepare_invoke();
        call.key(self.keys.confirmation(key)).arg(now.as_millis());
        match reply::array(self.eval(call).await?)? {
            Some(fields) => match fields.as_slice() {
                [rec, status, attempts] => self
                    .parse_confirmation(rec, status, attempts, key)
                    .map(Some),
                _ => Err(reply::corrupt("confirmation")),
            },
            None => Ok(None),
        }
    }

    async fn count_rate_limited(
        &self,
        buckets: &[RateBucket],
        now: Timestamp,
    ) -> Result<RateCount, StoreError> {
        let groups = slot_groups(buckets);
        for (counted, group) in groups.iter().enumerate() {
            let RateCount::Limited { mut until } = self.count_rate_group(group, now, false).await?
            else {
                continue;
            };
            for earlier in &groups[..counted] {
                if let Err(error) = self.uncount_rate_group(earlier, now).await {
                    // The earlier counts stay: a limit reached a little early, never exceeded.
                    tracing::warn!(kind = error.kind(), "rate limit count not taken back");
                }
            }
            for later in &groups[counted + 1..] {
                if let RateCount::Limited { until: also } =
                    self.count_rate_group(later, now, true).await?
                {
                    until = until.max(also);
                }
            }
            return Ok(RateCount::Limited { until });
        }
        Ok(RateCount::Counted)
    }

    async fn uncount_rate_limited(
        &self,
        buckets: &[RateBucket],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        for group in slot_groups(buckets) {
            self.uncount_rate_group(&group, now).await?;
        }
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.command(redis::cmd("PING")).await.map(drop)
    }

    async fn put_ceremony(
        &self,
        key: &CeremonyKey,
        state: &CeremonyState,
    ) -> Result<(), StoreError> {
        // The expiry goes in the value too, so that a taker checks it against its own clock
        // as the other stores do; Redis's own expiry drops the record.
        let expires_at = state.expires_at.as_millis();
        let mut set = redis::cmd("SET");
        set.arg(self.keys.ceremony(&self.user_tag(&key.user), &key.name()))
            .arg(format!("{expires_at}|{}", state.state))
            .arg("PXAT")
            .arg(expires_at.max(1));
        self.command(set).await.map(drop)
    }

    async fn take_ceremony(
        &self,
        key: &CeremonyKey,
        now: Timestamp,
    ) -> Result<Option<CeremonyState>, StoreError> {
        let mut take = redis::cmd("GETDEL");
        take.arg(self.keys.ceremony(&self.user_tag(&key.user), &key.name()));
        let value = self.command(take).await?;
        let Some(text) = reply::text(&value)? else {
            return Ok(None);
        };
        let (expires_at, state) = text
            .split_once('|')
            .ok_or_else(|| reply::corrupt("ceremony"))?;
        let expires_at = Timestamp::from_millis(
            expires_at
                .parse()
                .map_err(|_| reply::corrupt("ceremony expiry"))?,
        );
        Ok((expires_at > now).then(|| CeremonyState {
            state: state.to_owned(),
            expires_at,
        }))
    }

    async fn record_key_use(
        &self,
        user: &UserId,
        device: &DeviceId,
        counter: u64,
        now: Timestamp,
    ) -> Result<KeyUse, StoreError> {
        let tag = self.user_tag(user);
        let mut call = scripts::RECORD_KEY_USE.prepare_invoke();
        call.key(self.keys.devices(&tag))
            .key(self.keys.user(&tag))
            .arg(device.as_str())
            .arg(counter)
            .arg(now.as_millis());
        let answer = reply::required_array(self.eval(call).await?, "key use result")?;
        match answer.as_slice() {
            [status] if reply::text(status)? == Some("recorded") => Ok(KeyUse::Recorded),
            [status] if reply::text(status)? == Some("missing") => Ok(KeyUse::Missing),
            [status, stored] if reply::text(status)? == Some("regressed") => {
                Ok(KeyUse::CounterRegressed {
                    stored: reply::number(stored, "stored signature counter")?,
                })
            }
            _ => Err(reply::corrupt("key use result")),
        }
    }

    // ----- push approvals ------------------------------------------------------------------

    async fn create_approval(
        &self,
        key: &ApprovalKey,
        record: &ApprovalRecord,
        retain_until: Timestamp,
    ) -> Result<ApprovalCreate, StoreError> {
        let mut call = scripts::CREATE_APPROVAL.prepare_invoke();
        call.key(self.keys.push(key.tag()))
            .key(self.keys.approval(key))
            .arg(key.digest())
            .arg(serde_json::to_string(record)?)
            .arg(binding_arg(record.binding.as_ref()))
            .arg(record.expires_at.as_millis())
            .arg(retain_until.as_millis())
            .arg(record.created_at.as_millis());
        let answer = reply::required_array(self.eval(call).await?, "approval result")?;
        let until = |value: &Value| reply::number(value, "push time").map(Timestamp::from_millis);
        match answer.as_slice() {
            [status] if reply::text(status)? == Some("created") => Ok(ApprovalCreate::Created),
            [status] if reply::text(status)? == Some("conflict") => Err(StoreError::Conflict),
            [status, at] if reply::text(status)? == Some("busy") => {
                Ok(ApprovalCreate::Busy { until: until(at)? })
            }
            [status, at] if reply::text(status)? == Some("blocked") => {
                Ok(ApprovalCreate::Blocked { until: until(at)? })
            }
            _ => Err(reply::corrupt("approval result")),
        }
    }

    async fn get_approval(&self, key: &ApprovalKey) -> Result<Option<ApprovalRecord>, StoreError> {
        let mut command = redis::cmd("HMGET");
        command
            .arg(self.keys.approval(key))
            .arg("rec")
            .arg("st")
            .arg("ans");
        let fields = reply::required_array(self.command(command).await?, "approval")?;
        parse_approval(&fields)
    }

    async fn settle_approval(
        &self,
        key: &ApprovalKey,
        status: ApprovalStatus,
        block_until: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<Option<ApprovalRecord>, StoreError> {
        crate::store::check_approval_settling(status)?;
        let mut call = scripts::SETTLE_APPROVAL.prepare_invoke();
        call.key(self.keys.push(key.tag()))
            .key(self.keys.approval(key))
            .arg(key.digest())
            .arg(status.as_str())
            .arg(optional_time(block_until))
            .arg(now.as_millis());
        match reply::array(self.eval(call).await?)? {
            Some(fields) => parse_approval(&fields),
            None => Ok(None),
        }
    }

    async fn use_approval(
        &self,
        key: &ApprovalKey,
        binding: Option<&LoginBinding>,
    ) -> Result<Option<ApprovalRecord>, StoreError> {
        let mut call = scripts::USE_APPROVAL.prepare_invoke();
        call.key(self.keys.approval(key)).arg(binding_arg(binding));
        match reply::array(self.eval(call).await?)? {
            Some(fields) => parse_approval(&fields),
            None => Ok(None),
        }
    }
}

/// An approval from its stored fields `[record, status, answered at]`; `None` if the record
/// is gone.
fn parse_approval(fields: &[Value]) -> Result<Option<ApprovalRecord>, StoreError> {
    let [record, status, answered] = fields else {
        return Err(reply::corrupt("approval"));
    };
    let Some(record) = reply::text(record)? else {
        return Ok(None);
    };
    let mut record: ApprovalRecord = serde_json::from_str(record)?;
    record.status = reply::text(status)?
        .and_then(ApprovalStatus::from_name)
        .ok_or_else(|| reply::corrupt("approval status"))?;
    record.answered_at = match reply::text(answered)? {
        None | Some("") => None,
        Some(_) => Some(Timestamp::from_millis(reply::number(
            answered,
            "answer time",
        )?)),
    };
    Ok(Some(record))
}
