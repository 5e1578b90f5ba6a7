//! The embedded store: everything in process memory, behind one lock.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use async_trait::async_trait;

use subtle::ConstantTimeEq;

use super::rate_limit::room_at;
use super::{
    AttemptGrant, AttemptPurpose, AttemptSlot, CeremonyKey, CeremonyState, Challenge, ChallengePut,
    ConfirmOutcome, ConfirmationAttempt, ConfirmationInsert, DeviceInsert, DeviceLimits, KeyUse,
    LoadedSession, RateBucket, RateCount, RateKey, Store, StoreError, SuccessProof,
    counter_moves_forward,
};
use super::{LoginBinding, check_approval_settling};
use crate::clock::{Clock, SharedClock, Timestamp, system_clock};
use crate::confirm::{ConfirmationKey, ConfirmationRecord, ConfirmationStatus};
use crate::device::{CodeHash, Device, DeviceId, DeviceKind, ThrottlePolicy, UserId};
use crate::push::{ApprovalCreate, ApprovalKey, ApprovalRecord, ApprovalStatus};
use crate::remember::{BrowserId, RememberedBrowser, RememberedCheck};
use crate::session::{SessionKey, SessionRecord, TagKey, UserTag, UserTagger, VerifiedBy};

/// Expired sessions are swept after this many writes.
const SWEEP_EVERY: u64 = 1024;

/// A complete [`Store`] in process memory: the default, and what examples and tests run on.
///
/// Every operation takes one lock, so each is atomic with respect to all others, and records
/// with a time to live (unconfirmed devices included) expire by the store's clock (the system
/// clock unless given another with [`MemoryStore::with_clock`]). Clones share the same data.
/// Nothing survives the process, and separate processes do not share it: use the Redis store
/// for more than one instance.
///
/// ```
/// use tower_otp::store::{MemoryStore, Store};
/// # tokio_test_block_on(async {
/// let store = MemoryStore::new();
/// store.ping().await.unwrap();
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
    clock: SharedClock,
    /// The same tagger as the state's, read without taking the lock.
    tagger: UserTagger,
}

#[derive(Default)]
struct State {
    tagger: UserTagger,
    users: HashMap<UserId, UserData>,
    /// The user of each tag in `users`, so that an operation given a tag finds the user.
    tags: HashMap<UserTag, UserId>,
    sessions: HashMap<SessionKey, Expiring<SessionRecord>>,
    sessions_by_tag: HashMap<UserTag, HashSet<SessionKey>>,
    session_attempts: HashMap<SessionKey, Expiring<u64>>,
    confirmations: HashMap<ConfirmationKey, ConfirmationRecord>,
    confirmations_by_tag: HashMap<UserTag, HashSet<ConfirmationKey>>,
    rate_counters: HashMap<RateKey, RateCounter>,
    /// WebAuthn ceremonies by user and [`CeremonyKey::name`].
    ceremonies: HashMap<(UserId, String), CeremonyState>,
    writes: u64,
    approvals: HashMap<ApprovalKey, Expiring<ApprovalRecord>>,
    push_users: HashMap<UserTag, PushUser>,
}

/// A user's push state: the live approval and the block a report set.
#[derive(Default)]
struct PushUser {
    /// The live approval, with its expiry.
    live: Option<(ApprovalKey, Timestamp)>,
    /// Until when a report stops pushes.
    blocked_until: Option<Timestamp>,
}

/// The events a rate-limit bucket counted, and how long each counts.
struct RateCounter {
    events: Vec<Timestamp>,
    window: Duration,
}

#[derive(Default)]
struct UserData {
    devices: Vec<Device>,
    backup_codes: HashMap<DeviceId, HashSet<CodeHash>>,
    challenges: HashMap<DeviceId, Challenge>,
    failures: u32,
    locked_until: Option<Timestamp>,
    stamp: u64,
    remembered: Vec<RememberedBrowser>,
}

impl UserData {
    fn device_mut(&mut self, id: &DeviceId) -> Option<&mut Device> {
        self.devices.iter_mut().find(|d| &d.id == id)
    }

    /// Counts one try at the device's live challenge, as an attempt on the device starts; a
    /// challenge that has had all its tries, or has expired by `expiry_now`, is deleted.
    fn count_challenge_try(&mut self, device: &DeviceId, expiry_now: Timestamp) {
        let Some(challenge) = self.challenges.get_mut(device) else {
            return;
        };
        if challenge.expires_at <= expiry_now || challenge.tries >= challenge.max_tries {
            self.challenges.remove(device);
        } else {
            challenge.tries += 1;
        }
    }

    /// The device `id` unless it is gone (expired) at `now`.
    fn live_device_mut(&mut self, id: &DeviceId, now: Timestamp) -> Option<&mut Device> {
        self.device_mut(id).filter(|d| d.is_live_at(now))
    }

    /// The devices still live at `now`.
    fn live_devices(&self, now: Timestamp) -> impl Iterator<Item = &Device> {
        self.devices.iter().filter(move |d| d.is_live_at(now))
    }

    /// Deletes the devices that have expired by `now`, with their codes and challenges.
    fn prune_expired(&mut self, now: Timestamp) {
        self.remove_devices_where(|d| !d.is_live_at(now));
    }

    /// Deletes the devices `doomed` picks, with their codes and challenges.
    fn remove_devices_where(&mut self, doomed: impl Fn(&Device) -> bool) {
        let ids: Vec<DeviceId> = self
            .devices
            .iter()
            .filter(|d| doomed(d))
            .map(|d| d.id.clone())
            .collect();
        for id in &ids {
            self.remove_device(id);
        }
    }

    /// Why `device` may not join the (pruned) devices, if it may not.
    fn refusal(
        &self,
        device: &Device,
        limits: &DeviceLimits,
    ) -> Result<Option<DeviceInsert>, StoreError> {
        if self.devices.iter().any(|d| d.id == device.id) {
            return Err(StoreError::Conflict);
        }
        let backup_codes = |d: &&Device| d.kind() == DeviceKind::BackupCodes;
        if backup_codes(&device)
            && let Some(existing) = self.devices.iter().find(backup_codes)
        {
            return Ok(Some(DeviceInsert::BackupCodesExist(Box::new(
                existing.clone(),
            ))));
        }
        if self.devices.len() >= limits.max_devices as usize {
            return Ok(Some(DeviceInsert::TooManyDevices));
        }
        let pending = self.devices.iter().filter(|d| !d.confirmed).count();
        if !device.confirmed && pending >= limits.max_pending as usize {
            return Ok(Some(DeviceInsert::TooManyPending));
        }
        Ok(None)
    }

    /// Confirms the (pruned) device `id`; see [`Store::confirm_device`].
    fn confirm(&mut self, id: &DeviceId, only_if_first: bool) -> ConfirmOutcome {
        let Some(target) = self.devices.iter().find(|d| &d.id == id) else {
            return ConfirmOutcome::Missing;
        };
        if target.confirmed {
            return ConfirmOutcome::AlreadyConfirmed;
        }
        let first = !self.devices.iter().any(|d| d.confirmed);
        if only_if_first && !first {
            return ConfirmOutcome::NotFirst;
        }
        if let Some(device) = self.device_mut(id) {
            device.confirmed = true;
            device.pending_until = None;
        }
        if first {
            self.remove_devices_where(|d| !d.confirmed);
        }
        ConfirmOutcome::Confirmed { first }
    }

    /// Forgets the browsers remembered through `device`.
    fn forget_browsers_of(&mut self, device: &DeviceId) {
        self.remembered.retain(|b| &b.device_id != device);
    }

    fn remove_device(&mut self, id: &DeviceId) -> bool {
        let before = self.devices.len();
        self.devices.retain(|d| &d.id != id);
        self.backup_codes.remove(id);
        self.challenges.remove(id);
        self.devices.len() != before
    }
}

struct Expiring<T> {
    value: T,
    expires_at: Timestamp,
}

/// Counts only: user ids, device names and destinations are personal data, and a store's
/// `Debug` ends up in logs (through `TwoFactor` and `OtpLayer`).
impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("MemoryStore");
        // `try_lock`: formatting must never wait for, or deadlock on, the store's own lock.
        let state = match self.state.try_lock() {
            Ok(state) => Some(state),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        };
        match state {
            Some(state) => {
                let devices: usize = state.users.values().map(|u| u.devices.len()).sum();
                out.field("users", &state.users.len())
                    .field("devices", &devices)
                    .field("sessions", &state.sessions.len())
                    .field("confirmations", &state.confirmations.len());
            }
            None => {
                out.field("state", &"<in use>");
            }
        }
        out.finish_non_exhaustive()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl MemoryStore {
    /// An empty store on the system clock.
    pub fn new() -> Self {
        let tagger = UserTagger::new();
        MemoryStore {
            state: Arc::new(Mutex::new(State {
                tagger: tagger.clone(),
                ..State::default()
            })),
            clock: system_clock(),
            tagger,
        }
    }

    /// The same store, expiring records by `clock` (share it with the rest of the app).
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The same store, expiring records by a shared clock.
    pub fn with_shared_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No operation panics half-way through an update, so a poisoned lock still guards a
        // consistent state.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Locks the state for a write, sweeping expired sessions now and then.
    fn lock_for_write(&self) -> MutexGuard<'_, State> {
        let mut state = self.lock();
        state.writes += 1;
        if state.writes.is_multiple_of(SWEEP_EVERY) {
            state.sweep(self.clock.now());
        }
        state
    }
}

impl State {
    fn user_mut(&mut self, user: &UserId) -> &mut UserData {
        if !self.users.contains_key(user) {
            self.tags.insert(self.tagger.tag(user), user.clone());
        }
        self.users.entry(user.clone()).or_default()
    }

    /// `record`, or the record without its verification if the device that verified it is no
    /// longer a confirmed device of the user: a device deleted between a code check and the
    /// session write must not leave a session verified by it.
    fn with_live_verifier(&self, record: &SessionRecord, now: Timestamp) -> SessionRecord {
        let Some(verified) = &record.verified else {
            return record.clone();
        };
        let confirmed = self.users.get(&record.user).is_some_and(|user| {
            user.live_devices(now)
                .any(|d| d.id == verified.device_id && d.confirmed)
        });
        if confirmed {
            record.clone()
        } else {
            SessionRecord {
                verified: None,
                ..record.clone()
            }
        }
    }

    /// Tags the known users anew, after the tag key changed from none to one.
    fn retag_users(&mut self) {
        let State {
            tagger,
            users,
            tags,
            ..
        } = self;
        *tags = users
            .keys()
            .map(|user| (tagger.tag(user), user.clone()))
            .collect();
    }

    /// Clears the verification of every session of `user` that `revoked` says was verified
    /// by something now revoked. The sessions keep their expiry.
    fn unverify_sessions(&mut self, user: &UserId, revoked: impl Fn(&VerifiedBy) -> bool) {
        let tag = self.tagger.tag(user);
        let State {
            sessions,
            sessions_by_tag,
            ..
        } = self;
        for key in sessions_by_tag.get(&tag).into_iter().flatten() {
            if let Some(session) = sessions.get_mut(key)
                && session.value.verified.as_ref().is_some_and(&revoked)
            {
                session.value.verified = None;
            }
        }
    }

    fn sweep(&mut self, now: Timestamp) {
        let expired: Vec<SessionKey> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.expires_at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in expired {
            self.remove_session(&key);
        }
        for user in self.users.values_mut() {
            user.remembered.retain(|b| b.expires_at > now);
            user.prune_expired(now);
        }
        self.confirmations.retain(|_, c| c.retain_until > now);
        self.ceremonies.retain(|_, c| c.expires_at > now);
        let confirmations = &self.confirmations;
        self.confirmations_by_tag.retain(|_, keys| {
            keys.retain(|key| confirmations.contains_key(key));
            !keys.is_empty()
        });
        self.rate_counters.retain(|_, counter| {
            counter
                .events
                .iter()
                .any(|at| at.saturating_add(counter.window) > now)
        });
        self.session_attempts.retain(|_, a| a.expires_at > now);
        self.sweep_approvals(now);
        self.users.retain(|_, u| {
            !(u.devices.is_empty()
                && u.failures == 0
                && u.locked_until.is_none()
                && u.stamp == 0
                && u.remembered.is_empty())
        });
        let users = &self.users;
        self.tags.retain(|_, user| users.contains_key(user));
    }

    fn live_session(
        &mut self,
        key: &SessionKey,
        now: Timestamp,
    ) -> Option<&mut Expiring<SessionRecord>> {
        if self.sessions.get(key).is_some_and(|s| s.expires_at <= now) {
            self.remove_session(key);
        }
        self.sessions.get_mut(key)
    }

    /// The confirmation at `key`, forgotten first if its retention is over at `now`.
    fn live_confirmation(
        &mut self,
        key: &ConfirmationKey,
        now: Timestamp,
    ) -> Option<&mut ConfirmationRecord> {
        if self
            .confirmations
            .get(key)
            .is_some_and(|c| c.retain_until <= now)
        {
            self.confirmations.remove(key);
        }
        self.confirmations.get_mut(key)
    }

    /// How many of the confirmations with `tag` are open (in process or confirmed, and
    /// unexpired at `expiry_now`); forgets the index entries of the others. `store_now` is
    /// the store's clock, which decides what is forgotten.
    fn open_confirmations(
        &mut self,
        tag: &UserTag,
        store_now: Timestamp,
        expiry_now: Timestamp,
    ) -> usize {
        let keys: Vec<ConfirmationKey> = self
            .confirmations_by_tag
            .get(tag)
            .map(|keys| keys.iter().cloned().collect())
            .unwrap_or_default();
        let mut open = 0;
        for key in keys {
            let is_open = self.live_confirmation(&key, store_now).is_some_and(|c| {
                matches!(
                    c.status,
                    ConfirmationStatus::InProcess | ConfirmationStatus::Confirmed
                ) && c.expires_at > expiry_now
            });
            if is_open {
                open += 1;
            } else if let Some(keys) = self.confirmations_by_tag.get_mut(tag) {
                keys.remove(&key);
            }
        }
        open
    }

    /// The events of the counter at `key` that still count at `now`.
    fn live_events(&mut self, bucket: &RateBucket, now: Timestamp) -> &mut Vec<Timestamp> {
        let counter = self
            .rate_counters
            .entry(bucket.key.clone())
            .or_insert_with(|| RateCounter {
                events: Vec::new(),
                window: bucket.limit.window(),
            });
        counter.window = bucket.limit.window();
        if let Some(cutoff) = bucket.limit.cutoff(now) {
            counter.events.retain(|at| *at > cutoff);
        }
        &mut counter.events
    }

    fn insert_session(&mut self, key: &SessionKey, record: &SessionRecord, expires_at: Timestamp) {
        self.sessions.insert(
            key.clone(),
            Expiring {
                value: record.clone(),
                expires_at,
            },
        );
        self.sessions_by_tag
            .entry(key.tag().clone())
            .or_default()
            .insert(key.clone());
    }

    fn remove_session(&mut self, key: &SessionKey) -> bool {
        let existed = self.sessions.remove(key).is_some();
        if let Some(keys) = self.sessions_by_tag.get_mut(key.tag()) {
            keys.remove(key);
            if keys.is_empty() {
                self.sessions_by_tag.remove(key.tag());
            }
        }
        existed
    }
}

// ----- push approvals ----------------------------------------------------------------------

impl State {
    /// Forgets approvals past their retention and push states that hold nothing at `now`.
    fn sweep_approvals(&mut self, now: Timestamp) {
        self.approvals.retain(|_, a| a.expires_at > now);
        self.push_users.retain(|_, user| {
            user.live.as_ref().is_some_and(|(_, until)| *until > now)
                || user.blocked_until.is_some_and(|until| until > now)
        });
    }

    /// The approval at `key`, forgotten first if its retention is over at `now`.
    fn live_approval(&mut self, key: &ApprovalKey, now: Timestamp) -> Option<&mut ApprovalRecord> {
        if self.approvals.get(key).is_some_and(|a| a.expires_at <= now) {
            self.approvals.remove(key);
        }
        self.approvals.get_mut(key).map(|a| &mut a.value)
    }

    /// Ends the user's live approval if it is the one at `key`.
    fn end_live_approval(&mut self, key: &ApprovalKey) {
        if let Some(user) = self.push_users.get_mut(key.tag())
            && user.live.as_ref().is_some_and(|(live, _)| live == key)
        {
            user.live = None;
        }
    }
}

/// Checks and applies a proof; challenges count as expired from `expiry_now` on.
fn apply_proof(
    data: &mut UserData,
    device: &DeviceId,
    proof: &SuccessProof,
    expiry_now: Timestamp,
) -> bool {
    match proof {
        SuccessProof::Counter {
            next_counter,
            drift,
        } => match data.device_mut(device) {
            Some(d) if *next_counter > d.state.next_counter => {
                d.state.next_counter = *next_counter;
                d.state.drift = *drift;
                true
            }
            _ => false,
        },
        SuccessProof::BackupCode(hash) => data
            .backup_codes
            .get_mut(device)
            .is_some_and(|codes| codes.remove(hash)),
        SuccessProof::Challenge { hash, binding } => {
            let Some(challenge) = data.challenges.get(device) else {
                return false;
            };
            let live = challenge.expires_at > expiry_now;
            let same_code: bool = challenge
                .hash
                .as_str()
                .as_bytes()
                .ct_eq(hash.as_str().as_bytes())
                .into();
            let accepted = live & same_code & (challenge.binding == *binding);
            // The code dies when accepted, and at a wrong answer to its last try.
            if accepted || (live && challenge.tries >= challenge.max_tries) {
                data.challenges.remove(device);
            }
            accepted
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn user_tag(&self, user: &UserId) -> UserTag {
        self.tagger.tag(user)
    }

    fn bind_tag_key(&self, key: TagKey) {
        let was_keyed = self.tagger.is_keyed();
        if self.tagger.bind(key) && !was_keyed {
            self.lock().retag_users();
        }
    }

    async fn insert_device(
        &self,
        device: &Device,
        limits: &DeviceLimits,
    ) -> Result<DeviceInsert, StoreError> {
        if device.confirmed && device.pending_until.is_some() {
            return Err(StoreError::Invalid("a confirmed device has no deadline"));
        }
        let now = self.clock.now();
        let mut state = self.lock_for_write();
        let data = state.user_mut(&device.user);
        data.prune_expired(now);
        if let Some(refusal) = data.refusal(device, limits)? {
            return Ok(refusal);
        }
        if device.is_live_at(now) {
            data.devices.push(device.clone());
        }
        Ok(DeviceInsert::Inserted)
    }

    async fn update_device(&self, device: &Device) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let mut state = self.lock_for_write();
        let data = state.user_mut(&device.user);
        data.prune_expired(now);
        let Some(stored) = data.device_mut(&device.id) else {
            return Ok(false);
        };
        let kept = (stored.state, stored.confirmed, stored.pending_until);
        *stored = device.clone();
        (stored.state, stored.confirmed, stored.pending_until) = kept;
        Ok(true)
    }

    async fn confirm_device(
        &self,
        user: &UserId,
        id: &DeviceId,
        only_if_first: bool,
    ) -> Result<ConfirmOutcome, StoreError> {
        let now = self.clock.now();
        let mut state = self.lock_for_write();
        let data = state.user_mut(user);
        data.prune_expired(now);
        Ok(data.confirm(id, only_if_first))
    }

    async fn get_device(&self, user: &UserId, id: &DeviceId) -> Result<Option<Device>, StoreError> {
        let now = self.clock.now();
        let state = self.lock();
        Ok(state
            .users
            .get(user)
            .and_then(|u| u.live_devices(now).find(|d| &d.id == id))
            .cloned())
    }

    async fn list_devices(&self, user: &UserId) -> Result<Vec<Device>, StoreError> {
        let now = self.clock.now();
        let state = self.lock();
        Ok(state
            .users
            .get(user)
            .map(|u| u.live_devices(now).cloned().collect())
            .unwrap_or_default())
    }

    async fn delete_device(&self, user: &UserId, id: &DeviceId) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let mut state = self.lock_for_write();
        let data = state.user_mut(user);
        data.prune_expired(now);
        let existed = data.remove_device(id);
        data.forget_browsers_of(id);
        state.unverify_sessions(user, |by| &by.device_id == id);
        Ok(existed)
    }

    async fn delete_all_devices(&self, user: &UserId) -> Result<u64, StoreError> {
        let now = self.clock.now();
        let mut state = self.lock_for_write();
        let data = state.user_mut(user);
        data.prune_expired(now);
        let count = data.devices.len() as u64;
        data.devices.clear();
        data.backup_codes.clear();
        data.challenges.clear();
        data.remembered.clear();
        state.unverify_sessions(user, |_| true);
        Ok(count)
    }

    async fn replace_backup_codes(
        &self,
        user: &UserId,
        device: &DeviceId,
        hashes: &[CodeHash],
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut state = self.lock_for_write();
        let data = state.user_mut(user);
        if data.live_device_mut(device, now).is_none() {
            return Err(StoreError::Invalid("no such device"));
        }
        data.backup_codes
            .insert(device.clone(), hashes.iter().cloned().collect());
        data.forget_browsers_of(device);
        Ok(())
    }

    async fn count_backup_codes(
        &self,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<u64, StoreError> {
        let now = self.clock.now();
        let state = self.lock();
        let Some(data) = state.users.get(user) else {
            return Ok(0);
        };
        if !data.live_devices(now).any(|d| &d.id == device) {
            return Ok(0);
        }
        Ok(data
            .backup_codes
            .get(device)
            .map_or(0, |codes| codes.len() as u64))
    }

    async fn put_challenge(
        &self,
        user: &UserId,
        device: &DeviceId,
        challenge: &Challenge,
        now: Timestamp,
    ) -> Result<ChallengePut, StoreError> {
        // Expiry is the store's own, as in Redis, whatever the caller's clock says.
        let now = now.max(self.clock.now());
        let mut state = self.lock_for_write();
        let data = state.user_mut(user);
        if data.live_device_mut(device, now).is_none() {
            return Err(StoreError::Invalid("no such device"));
        }
        if let Some(current) = data.challenges.get(device)
            && current.expires_at > now
            && current.resend_after > now
        {
            return Ok(ChallengePut::Cooldown {
                until: current.resend_after,
            });
        }
        data.challenges.insert(device.clone(), challenge.clone());
        Ok(ChallengePut::Stored)
    }

    async fn discard_challenge(
        &self,
        user: &UserId,
        device: &DeviceId,
        hash: &CodeHash,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock_for_write();
        let challenges = &mut state.user_mut(user).challenges;
        let matches = challenges.get(device).is_some_and(|c| &c.hash == hash);
        if matches {
            challenges.remove(device);
        }
        Ok(matches)
    }

    async fn begin_attempt(
        &self,
        user: &UserId,
        devices: &[DeviceId],
        purpose: AttemptPurpose,
        policy: &ThrottlePolicy,
        now: Timestamp,
    ) -> Result<AttemptGrant, StoreError> {
        let expiry_now = now.max(self.clock.now());
        let mut state = self.lock_for_write();
        let data = state.user_mut(user);
        match data.locked_until {
            Some(until) if until > now => return Ok(AttemptGrant::Locked { until }),
            Some(_) => {
                data.locked_until = None;
                data.failures = 0;
            }
            None => {}
        }
        let mut slots = Vec::with_capacity(devices.len());
        let mut any_allowed = false;
        for id in devices {
            let slot = match data.live_device_mut(id, expiry_now) {
                None => AttemptSlot::Missing,
                Some(device) if purpose == AttemptPurpose::Verify && !device.confirmed => {
                    AttemptSlot::NotConfirmed
                }
                Some(device) if purpose == AttemptPurpose::Confirm && device.confirmed => {
                    AttemptSlot::AlreadyConfirmed
                }
                Some(device) => {
                    let s = &mut device.state;
                    match policy.retry_at(s.failures, s.last_failure_at, now) {
                        Some(until) => AttemptSlot::Throttled { until },
                        None => {
                            let before = device.clone();
                            device.state.failures = device.state.failures.saturating_add(1);
                            device.state.last_failure_at = Some(now);
                            any_allowed = true;
                            AttemptSlot::Allowed(Box::new(before))
                        }
                    }
                }
            };
            if let AttemptSlot::Allowed(_) = slot {
                data.count_challenge_try(id, expiry_now);
            }
            slots.push(slot);
        }
        if any_allowed {
            data.failures = data.failures.saturating_add(1);
            if data.failures >= policy.user_failure_limit() {
                data.locked_until = Some(now.saturating_add(policy.lock_period()));
            }
        }
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
        let expiry_now = now.max(self.clock.now());
        let mut state = self.lock_for_write();
        let data = state.user_mut(user);
        if data.live_device_mut(device, expiry_now).is_none()
            || !apply_proof(data, device, proof, expiry_now)
        {
            return Ok(false);
        }
        if let Some(d) = data.device_mut(device) {
            d.state.failures = 0;
            d.state.last_failure_at = None;
            d.state.last_used_at = Some(now);
        }
        for id in refund.iter().filter(|id| *id != device) {
            if let Some(d) = data.live_device_mut(id, expiry_now) {
                d.state.failures = d.state.failures.saturating_sub(1);
            }
        }
        data.failures = 0;
        data.locked_until = None;
        Ok(true)
    }

    async fn reset_user_failures(&self, user: &UserId) -> Result<(), StoreError> {
        let mut state = self.lock_for_write();
        let data = state.user_mut(user);
        data.failures = 0;
        data.locked_until = None;
        Ok(())
    }

    async fn user_failures(&self, user: &UserId) -> Result<(u32, Option<Timestamp>), StoreError> {
        let state = self.lock();
        Ok(state
            .users
            .get(user)
            .map_or((0, None), |u| (u.failures, u.locked_until)))
    }

    async fn insert_confirmation(
        &self,
        key: &ConfirmationKey,
        record: &ConfirmationRecord,
        max_open: u32,
    ) -> Result<ConfirmationInsert, StoreError> {
        let store_now = self.clock.now();
        let expiry_now = record.created_at.max(store_now);
        let mut state = self.lock_for_write();
        if state.live_confirmation(key, store_now).is_some() {
            return Err(StoreError::Conflict);
        }
        let open = state.open_confirmations(key.tag(), store_now, expiry_now);
        if open >= usize::try_from(max_open).unwrap_or(usize::MAX) {
            return Ok(ConfirmationInsert::TooManyOpen);
        }
        state.confirmations.insert(key.clone(), record.clone());
        state
            .confirmations_by_tag
            .entry(key.tag().clone())
            .or_default()
            .insert(key.clone());
        Ok(ConfirmationInsert::Inserted)
    }

    async fn start_confirmation(
        &self,
        key: &ConfirmationKey,
        record: &ConfirmationRecord,
    ) -> Result<bool, StoreError> {
        super::check_starting_status(record.status)?;
        let store_now = self.clock.now();
        let mut state = self.lock_for_write();
        match state.live_confirmation(key, store_now) {
            Some(stored)
                if stored.status == ConfirmationStatus::InProcess && stored.attempts == 0 =>
            {
                stored.status = record.status;
                stored.state = record.state.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn get_confirmation(
        &self,
        key: &ConfirmationKey,
    ) -> Result<Option<ConfirmationRecord>, StoreError> {
        let now = self.clock.now();
        let mut state = self.lock();
        Ok(state.live_confirmation(key, now).map(|c| c.clone()))
    }

    async fn begin_confirmation_attempt(
        &self,
        key: &ConfirmationKey,
        max_attempts: u32,
        now: Timestamp,
    ) -> Result<ConfirmationAttempt, StoreError> {
        let store_now = self.clock.now();
        let now = now.max(store_now);
        let mut state = self.lock_for_write();
        let Some(record) = state.live_confirmation(key, store_now) else {
            return Ok(ConfirmationAttempt::Missing);
        };
        if record.status != ConfirmationStatus::InProcess || record.expires_at <= now {
            return Ok(ConfirmationAttempt::Refused(record.clone()));
        }
        if record.attempts >= max_attempts {
            record.status = ConfirmationStatus::Failed;
            return Ok(ConfirmationAttempt::Refused(record.clone()));
        }
        record.attempts += 1;
        Ok(ConfirmationAttempt::Granted(record.clone()))
    }

    async fn settle_confirmation(
        &self,
        key: &ConfirmationKey,
        status: ConfirmationStatus,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        super::check_settling_status(status)?;
        let store_now = self.clock.now();
        let now = now.max(store_now);
        let mut state = self.lock_for_write();
        match state.live_confirmation(key, store_now) {
            Some(record)
                if record.status == ConfirmationStatus::InProcess && record.expires_at > now =>
            {
                record.status = status;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn use_confirmation(
        &self,
        key: &ConfirmationKey,
        now: Timestamp,
    ) -> Result<Option<ConfirmationRecord>, StoreError> {
        let store_now = self.clock.now();
        let now = now.max(store_now);
        let mut state = self.lock_for_write();
        match state.live_confirmation(key, store_now) {
            Some(record)
                if record.status == ConfirmationStatus::Confirmed && record.expires_at > now =>
            {
                record.status = ConfirmationStatus::Used;
                Ok(Some(record.clone()))
            }
            _ => Ok(None),
        }
    }

    async fn count_rate_limited(
        &self,
        buckets: &[RateBucket],
        now: Timestamp,
    ) -> Result<RateCount, StoreError> {
        let mut state = self.lock_for_write();
        let mut until: Option<Timestamp> = None;
        for bucket in buckets {
            let events = state.live_events(bucket, now);
            if events.len() >= bucket.limit.max() as usize {
                let oldest = events.iter().min().copied().unwrap_or(now);
                let room = room_at(&bucket.limit, oldest);
                until = Some(until.map_or(room, |later| later.max(room)));
            }
        }
        if let Some(until) = until {
            return Ok(RateCount::Limited { until });
        }
        for bucket in buckets {
            state.live_events(bucket, now).push(now);
        }
        Ok(RateCount::Counted)
    }

    async fn uncount_rate_limited(
        &self,
        buckets: &[RateBucket],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut state = self.lock_for_write();
        for bucket in buckets {
            if let Some(counter) = state.rate_counters.get_mut(&bucket.key)
                && let Some(at) = counter.events.iter().position(|at| *at == now)
            {
                counter.events.remove(at);
            }
        }
        Ok(())
    }

    async fn user_stamp(&self, user: &UserId) -> Result<u64, StoreError> {
        let state = self.lock();
        Ok(state.users.get(user).map_or(0, |u| u.stamp))
    }

    async fn bump_user_stamp(&self, user: &UserId) -> Result<u64, StoreError> {
        let mut state = self.lock_for_write();
        let data = state.user_mut(user);
        data.stamp = data.stamp.wrapping_add(1).max(1);
        Ok(data.stamp)
    }

    async fn load_session(&self, key: &SessionKey) -> Result<Option<LoadedSession>, StoreError> {
        let now = self.clock.now();
        let mut state = self.lock();
        let Some(session) = state.live_session(key, now) else {
            return Ok(None);
        };
        let idle_left = session.expires_at.since(now);
        let record = session.value.clone();
        let configured = state
            .users
            .get(&record.user)
            .is_some_and(|user| user.live_devices(now).any(|d| d.confirmed));
        Ok(Some(LoadedSession {
            record,
            idle_left,
            configured: Some(configured),
        }))
    }

    async fn touch_session(&self, key: &SessionKey, idle: Duration) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let mut state = self.lock();
        Ok(state
            .live_session(key, now)
            .map(|session| session.expires_at = now.saturating_add(idle))
            .is_some())
    }

    async fn count_session_attempt(
        &self,
        key: &SessionKey,
        ttl: Duration,
    ) -> Result<u64, StoreError> {
        let now = self.clock.now();
        let mut state = self.lock_for_write();
        let attempts = state
            .session_attempts
            .entry(key.clone())
            .or_insert(Expiring {
                value: 0,
                expires_at: now.saturating_add(ttl),
            });
        if attempts.expires_at <= now {
            *attempts = Expiring {
                value: 0,
                expires_at: now.saturating_add(ttl),
            };
        }
        attempts.value += 1;
        Ok(attempts.value)
    }

    async fn save_session(
        &self,
        key: &SessionKey,
        record: &SessionRecord,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut state = self.lock_for_write();
        let record = state.with_live_verifier(record, now);
        state.insert_session(key, &record, now.saturating_add(ttl));
        Ok(())
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
        let now = self.clock.now();
        let mut state = self.lock_for_write();
        if state.live_session(old, now).is_none() {
            return Ok(false);
        }
        state.remove_session(old);
        let record = state.with_live_verifier(record, now);
        state.insert_session(new, &record, now.saturating_add(ttl));
        Ok(true)
    }

    async fn delete_session(&self, key: &SessionKey) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let mut state = self.lock_for_write();
        let live = state.live_session(key, now).is_some();
        state.remove_session(key);
        Ok(live)
    }

    async fn delete_user_sessions(&self, tag: &UserTag) -> Result<u64, StoreError> {
        let now = self.clock.now();
        let mut state = self.lock_for_write();
        if let Some(user) = state.tags.get(tag).cloned() {
            state.user_mut(&user).remembered.clear();
        }
        let keys: Vec<SessionKey> = state
            .sessions_by_tag
            .get(tag)
            .map(|keys| keys.iter().cloned().collect())
            .unwrap_or_default();
        let mut live = 0;
        for key in keys {
            if state.live_session(&key, now).is_some() {
                live += 1;
            }
            state.remove_session(&key);
        }
        Ok(live)
    }

    async fn put_remembered(&self, browser: &RememberedBrowser) -> Result<u64, StoreError> {
        let mut state = self.lock_for_write();
        let data = state.user_mut(&browser.user);
        data.remembered.retain(|b| b.id != browser.id);
        data.remembered.push(browser.clone());
        Ok(data.stamp)
    }

    async fn check_remembered(
        &self,
        user: &UserId,
        id: &BrowserId,
        device: &DeviceId,
        now: Timestamp,
    ) -> Result<RememberedCheck, StoreError> {
        let expiry_now = now.max(self.clock.now());
        let mut state = self.lock_for_write();
        let data = state.user_mut(user);
        data.remembered.retain(|b| b.expires_at > expiry_now);
        let browser = data.remembered.iter_mut().find(|b| &b.id == id).map(|b| {
            let before = b.clone();
            b.last_used_at = Some(now);
            before
        });
        Ok(RememberedCheck {
            browser,
            device: data.live_device_mut(device, expiry_now).map(|d| d.clone()),
            stamp: data.stamp,
        })
    }

    async fn list_remembered(&self, user: &UserId) -> Result<Vec<RememberedBrowser>, StoreError> {
        let now = self.clock.now();
        let state = self.lock();
        Ok(state
            .users
            .get(user)
            .map(|u| {
                u.remembered
                    .iter()
                    .filter(|b| b.expires_at > now)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn delete_remembered(&self, user: &UserId, id: &BrowserId) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let mut state = self.lock_for_write();
        let data = state.user_mut(user);
        let live = data
            .remembered
            .iter()
            .any(|b| &b.id == id && b.expires_at > now);
        data.remembered.retain(|b| &b.id != id);
        Ok(live)
    }

    async fn delete_all_remembered(&self, user: &UserId) -> Result<u64, StoreError> {
        let now = self.clock.now();
        let mut state = self.lock_for_write();
        let data = state.user_mut(user);
        let live = data
            .remembered
            .iter()
            .filter(|b| b.expires_at > now)
            .count() as u64;
        data.remembered.clear();
        Ok(live)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn put_ceremony(
        &self,
        key: &CeremonyKey,
        state: &CeremonyState,
    ) -> Result<(), StoreError> {
        let mut store = self.lock_for_write();
        store
            .ceremonies
            .insert((key.user.clone(), key.name()), state.clone());
        Ok(())
    }

    async fn take_ceremony(
        &self,
        key: &CeremonyKey,
        now: Timestamp,
    ) -> Result<Option<CeremonyState>, StoreError> {
        let expiry_now = now.max(self.clock.now());
        let mut store = self.lock_for_write();
        let taken = store.ceremonies.remove(&(key.user.clone(), key.name()));
        Ok(taken.filter(|c| c.expires_at > expiry_now))
    }

    async fn record_key_use(
        &self,
        user: &UserId,
        device: &DeviceId,
        counter: u64,
        now: Timestamp,
    ) -> Result<KeyUse, StoreError> {
        let expiry_now = now.max(self.clock.now());
        let mut state = self.lock_for_write();
        let data = state.user_mut(user);
        let Some(key) = data
            .live_device_mut(device, expiry_now)
            .filter(|d| d.confirmed && d.kind() == DeviceKind::WebAuthn)
        else {
            return Ok(KeyUse::Missing);
        };
        let stored = key.state.next_counter;
        if !counter_moves_forward(counter, stored) {
            return Ok(KeyUse::CounterRegressed { stored });
        }
        key.state.next_counter = counter;
        key.state.failures = 0;
        key.state.last_failure_at = None;
        key.state.last_used_at = Some(now);
        data.failures = 0;
        data.locked_until = None;
        Ok(KeyUse::Recorded)
    }

    // ----- push approvals ------------------------------------------------------------------

    async fn create_approval(
        &self,
        key: &ApprovalKey,
        record: &ApprovalRecord,
        retain_until: Timestamp,
    ) -> Result<ApprovalCreate, StoreError> {
        let store_now = self.clock.now();
        let now = record.created_at.max(store_now);
        let mut state = self.lock_for_write();
        if state.live_approval(key, store_now).is_some() {
            return Err(StoreError::Conflict);
        }
        let user = state.push_users.entry(key.tag().clone()).or_default();
        if let Some(until) = user.blocked_until.filter(|until| *until > now) {
            return Ok(ApprovalCreate::Blocked { until });
        }
        if let Some((_, until)) = user.live.as_ref().filter(|(_, until)| *until > now) {
            return Ok(ApprovalCreate::Busy { until: *until });
        }
        user.live = Some((key.clone(), record.expires_at));
        state.approvals.insert(
            key.clone(),
            Expiring {
                value: record.clone(),
                expires_at: retain_until,
            },
        );
        Ok(ApprovalCreate::Created)
    }

    async fn get_approval(&self, key: &ApprovalKey) -> Result<Option<ApprovalRecord>, StoreError> {
        let now = self.clock.now();
        let mut state = self.lock();
        Ok(state.live_approval(key, now).map(|a| a.clone()))
    }

    async fn settle_approval(
        &self,
        key: &ApprovalKey,
        status: ApprovalStatus,
        block_until: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<Option<ApprovalRecord>, StoreError> {
        check_approval_settling(status)?;
        let store_now = self.clock.now();
        let now = now.max(store_now);
        let mut state = self.lock_for_write();
        let Some(record) = state.live_approval(key, store_now) else {
            return Ok(None);
        };
        let expired = record.expires_at <= now;
        if record.status != ApprovalStatus::Pending
            || expired != (status == ApprovalStatus::Expired)
        {
            return Ok(None);
        }
        record.status = status;
        if status != ApprovalStatus::Expired {
            record.answered_at = Some(now);
        }
        let settled = record.clone();
        state.end_live_approval(key);
        if let (ApprovalStatus::Reported, Some(block)) = (status, block_until) {
            let user = state.push_users.entry(key.tag().clone()).or_default();
            user.blocked_until = Some(user.blocked_until.map_or(block, |b| b.max(block)));
        }
        Ok(Some(settled))
    }

    async fn use_approval(
        &self,
        key: &ApprovalKey,
        binding: Option<&LoginBinding>,
    ) -> Result<Option<ApprovalRecord>, StoreError> {
        let now = self.clock.now();
        let mut state = self.lock_for_write();
        match state.live_approval(key, now) {
            Some(record)
                if record.status == ApprovalStatus::Approved
                    && record.binding.as_ref() == binding =>
            {
                record.status = ApprovalStatus::Used;
                Ok(Some(record.clone()))
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ServerKey;

    #[tokio::test]
    async fn a_key_bound_after_records_still_finds_their_user() {
        let store = MemoryStore::new();
        let alice = UserId::new("alice").unwrap();
        let browser = RememberedBrowser {
            id: BrowserId::generate(),
            user: alice.clone(),
            device_id: DeviceId::generate(),
            created_at: Timestamp::from_secs(1),
            last_used_at: None,
            expires_at: Timestamp::from_secs(10_000_000_000),
            user_agent: None,
        };
        store.put_remembered(&browser).await.unwrap();
        let unkeyed = store.user_tag(&alice);
        store.bind_tag_key(ServerKey::new(&[1; 32]).unwrap().tag_key());
        let keyed = store.user_tag(&alice);
        assert_ne!(keyed, unkeyed);
        store.delete_user_sessions(&keyed).await.unwrap();
        assert!(store.list_remembered(&alice).await.unwrap().is_empty());
    }
}
