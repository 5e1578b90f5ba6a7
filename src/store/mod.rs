//! Where state lives: [`MemoryStore`] in the process, or [`RedisStore`] (feature `redis`) in
//! Redis or a Redis Cluster shared by any number of instances.
//!
//! Hand one to [`TwoFactor::new`](crate::TwoFactor::new); most applications need nothing
//! more from this module.
//!
//! ```
//! use tower_otp::{MemoryStore, ServerKey, TwoFactor};
//!
//! let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::generate());
//! ```
//!
//! # Writing a backend
//!
//! Every check that must not be raced is a single operation of the [`Store`]: claiming a
//! verification attempt against the throttle, accepting a counter or time step only if it is
//! newer than the last one, consuming a backup code, checking an out-of-band code with the
//! login it was sent for, counting a send against its rate limits, capping a user's open
//! confirmations, rotating a session id, adding a device within the user's limits, confirming
//! a device, and revoking what a removed device vouched for (remembered browsers, session
//! verifications). A backend makes
//! each one atomic in the store itself (a lock in [`MemoryStore`], a Lua script in Redis), so
//! the guarantees hold across any number of application instances sharing one store.
//!
//! All of a user's keys share the user's [`UserTag`], so a Redis Cluster backend can keep them
//! in one hash slot. Only rate-limit counters shared by all users ([`RateKey::Shared`], the
//! sends to one destination, say) belong to no user; each is a single key of its own. The
//! store is the one source of tags ([`Store::user_tag`]): keyed by the [`TagKey`] a
//! [`TwoFactor`](crate::TwoFactor) binds into it, so that session ids and store keys tell
//! nothing about user ids to anyone without the application's [`ServerKey`](crate::ServerKey).
//!
//! Backends are held as `Arc<dyn Store>`; implement the trait with `#[async_trait]`. The
//! crate's conformance suite (`tests/store_conformance.rs`) states the contract as tests and
//! runs against every backend.
//!
#![cfg_attr(feature = "redis", doc = "[`RedisStore`]: RedisStore")]
#![cfg_attr(not(feature = "redis"), doc = "[`RedisStore`]: crate#feature-flags")]

mod ceremony;
mod memory;
mod rate_limit;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use subtle::ConstantTimeEq;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::{RedisConfig, RedisStore};
pub(crate) use ceremony::counter_moves_forward;
pub use ceremony::{CeremonyKey, CeremonyPurpose, CeremonyState, KeyUse};
pub use memory::MemoryStore;
pub use rate_limit::{RateBucket, RateCount, RateKey, RateLimit};

use crate::clock::Timestamp;
use crate::confirm::{ConfirmationKey, ConfirmationRecord, ConfirmationStatus};
use crate::device::{CodeHash, Device, DeviceId, ThrottlePolicy, UserId};
use crate::push::{ApprovalCreate, ApprovalKey, ApprovalRecord, ApprovalStatus};
use crate::remember::{BrowserId, RememberedBrowser, RememberedCheck};
use crate::session::{SessionKey, SessionRecord, TagKey, UserTag};

/// A store shared by the crate's components.
pub type SharedStore = Arc<dyn Store>;

/// The outcome of [`Store::begin_attempt`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptGrant {
    /// The user is locked out until the given time; nothing was counted.
    Locked {
        /// When the lock ends.
        until: Timestamp,
    },
    /// One slot per requested device, in the order requested.
    Slots(Vec<AttemptSlot>),
}

/// What an attempt passed to [`Store::begin_attempt`] is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptPurpose {
    /// Verifying a session (or an action) with a confirmed device.
    Verify,
    /// Confirming a new, unconfirmed device with its first code.
    Confirm,
}

/// What [`Store::begin_attempt`] decided for one device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptSlot {
    /// The attempt was counted; here is the device as it was when counted.
    Allowed(Box<Device>),
    /// The device is throttled until the given time; nothing was counted for it.
    Throttled {
        /// When the device may be tried again.
        until: Timestamp,
    },
    /// A verification named an unconfirmed device: nothing was counted, neither for the
    /// device nor for the user.
    NotConfirmed,
    /// A confirmation named a device that is confirmed already: nothing was counted.
    AlreadyConfirmed,
    /// The user has no such device (or it has expired).
    Missing,
}

/// The limits [`Store::insert_device`] enforces, counted over the user's live devices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceLimits {
    /// The most devices, confirmed or not, a user may have.
    pub max_devices: u32,
    /// The most unconfirmed devices a user may have.
    pub max_pending: u32,
}

impl Default for DeviceLimits {
    /// 20 devices, of which at most 3 unconfirmed.
    fn default() -> Self {
        DeviceLimits {
            max_devices: 20,
            max_pending: 3,
        }
    }
}

/// The outcome of [`Store::insert_device`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceInsert {
    /// The device was stored.
    Inserted,
    /// The user has [`DeviceLimits::max_devices`] live devices already; nothing was stored.
    TooManyDevices,
    /// The device is unconfirmed and the user has [`DeviceLimits::max_pending`] live
    /// unconfirmed devices already; nothing was stored.
    TooManyPending,
    /// The device holds backup codes and the user has a backup-code device already (here it
    /// is); nothing was stored. A user has at most one.
    BackupCodesExist(Box<Device>),
}

/// The outcome of [`Store::confirm_device`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfirmOutcome {
    /// The device is confirmed now. `first`: it is the user's only confirmed device (and the
    /// user's other unconfirmed devices are gone).
    Confirmed {
        /// Whether the user had no other confirmed device.
        first: bool,
    },
    /// The device was confirmed already; nothing changed.
    AlreadyConfirmed,
    /// Only a first device could be confirmed and the user has another confirmed device;
    /// nothing changed.
    NotFirst,
    /// The user has no such device (or it has expired).
    Missing,
}

/// The evidence a successful verification presents to [`Store::commit_success`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SuccessProof {
    /// An HOTP counter or TOTP step matched: accept only if `next_counter` is greater than
    /// the device's current `next_counter` (otherwise it is a replay), and store it with the
    /// new `drift`.
    Counter {
        /// One past the matched counter or step.
        next_counter: u64,
        /// The device's drift after this match.
        drift: i64,
    },
    /// A backup code: accept only if the hash is still in the device's set, and remove it.
    BackupCode(CodeHash),
    /// An out-of-band code: accept only if the device's live challenge has this hash and
    /// was sent for this login, and delete the challenge.
    Challenge {
        /// The keyed hash of the code given.
        hash: CodeHash,
        /// The login of the caller who gave it (see [`Challenge::binding`]).
        binding: Option<LoginBinding>,
    },
}

/// The outcome of [`Store::put_challenge`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChallengePut {
    /// The challenge was stored, replacing any earlier one of the device.
    Stored,
    /// A challenge was sent too recently; nothing was stored.
    Cooldown {
        /// When another may be sent.
        until: Timestamp,
    },
}

/// A challenge (a pending out-of-band code) as stored.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Challenge {
    /// The keyed hash of the code.
    pub hash: CodeHash,
    /// When the code stops working (the record expires then too).
    pub expires_at: Timestamp,
    /// Before this time no new challenge may replace it.
    pub resend_after: Timestamp,
    /// The login that asked for the code: only a caller of the same login can use it, and a
    /// code sent for no login (`None`) only a caller without one.
    pub binding: Option<LoginBinding>,
    /// How many attempts the code takes: the attempt after the last one finds it gone.
    pub max_tries: u32,
    /// Attempts at the code so far (0 when it is sent), counted as each one starts.
    pub tries: u32,
}

/// The login an out-of-band code was sent for: an opaque digest of the session that asked for
/// it ([`Caller::binding`](crate::device::Caller::binding)). It keeps a code sent to one login
/// from verifying another login of the same user. Compared in constant time; redacted in
/// `Debug` output.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct LoginBinding(String);

impl LoginBinding {
    /// The binding whose opaque text is `digest`.
    pub fn new(digest: impl Into<String>) -> Self {
        LoginBinding(digest.into())
    }

    /// The opaque text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PartialEq for LoginBinding {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for LoginBinding {}

impl fmt::Debug for LoginBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LoginBinding([redacted])")
    }
}

/// The outcome of [`Store::insert_confirmation`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfirmationInsert {
    /// The confirmation was stored.
    Inserted,
    /// The user has as many open confirmations as allowed; nothing was stored.
    TooManyOpen,
}

/// The outcome of [`Store::begin_confirmation_attempt`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfirmationAttempt {
    /// The attempt was counted; here is the confirmation with its `attempts` already raised.
    Granted(ConfirmationRecord),
    /// Nothing was counted: the confirmation is not in process, has expired, or has no
    /// attempts left (and is now failed). Here it is as it is now.
    Refused(ConfirmationRecord),
    /// There is no such confirmation (or the store has forgotten it).
    Missing,
}

/// A session as [`Store::load_session`] finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedSession {
    /// The record as stored.
    pub record: SessionRecord,
    /// How long the session has left before its idle deadline, by the store's clock.
    pub idle_left: Duration,
    /// Whether the user has a confirmed device, as of the same read; `None` when the store
    /// does not keep it beside the session (the caller then asks [`Store::list_devices`]).
    pub configured: Option<bool>,
}

/// The persistence contract. See the [module docs](self).
///
/// `now` parameters come from the caller's [`Clock`](crate::clock::Clock) so that time rules
/// are testable; expiry of records with a TTL is the backend's own (Redis uses its own clock).
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug + 'static {
    // ----- user tags -----------------------------------------------------------------------
    //
    // A backend keeps a `UserTagger` and hands both methods to it; clones of a store share
    // its binding. Every key of a user the backend builds, and every owner check it makes,
    // takes the tag from `user_tag`, so the tags in session ids, confirmation keys and store
    // keys never disagree.

    /// The tag of `user`, which every key of the user carries: a MAC of the user id under the
    /// bound [`TagKey`], or, while none is bound, a plain SHA-256 of it (what a store used on
    /// its own, without a [`TwoFactor`](crate::TwoFactor), gets).
    fn user_tag(&self, user: &UserId) -> UserTag;

    /// Binds the key of user tags; [`TwoFactor`](crate::TwoFactor) does, with
    /// [`ServerKey::tag_key`](crate::ServerKey::tag_key). Bind once, before the store holds
    /// records: the first key bound wins, and a later bind with another key is ignored with
    /// a warning (records already tagged would otherwise be lost). Records written before the
    /// first bind keep their unkeyed tags and are not found under the keyed ones.
    fn bind_tag_key(&self, key: TagKey);

    // ----- devices -------------------------------------------------------------------------
    //
    // A device with a `pending_until` deadline (an unconfirmed one) is *live* until then, by
    // the store's own clock (or the caller's `now`, where one is passed, if it is later).
    // Past it, the device is gone for every operation: no read returns it, no operation
    // finds it, and it counts toward no limit. Operations that write the user's device set
    // (`insert_device`, `update_device`, `delete_device`, `confirm_device`) also delete the
    // expired ones, with their codes and challenges.

    /// Adds a device with its initial state, atomically checking the user's live devices
    /// first, in this order:
    ///
    /// 1. A live device with the same id: [`StoreError::Conflict`].
    /// 2. The device holds backup codes and the user has a live backup-code device:
    ///    [`DeviceInsert::BackupCodesExist`] with that device.
    /// 3. `limits.max_devices` live devices: [`DeviceInsert::TooManyDevices`].
    /// 4. The device is unconfirmed and the user has `limits.max_pending` live unconfirmed
    ///    devices: [`DeviceInsert::TooManyPending`].
    ///
    /// A confirmed device with a `pending_until` is [`StoreError::Invalid`]. A device whose
    /// deadline has passed already is reported inserted, and is gone at once.
    async fn insert_device(
        &self,
        device: &Device,
        limits: &DeviceLimits,
    ) -> Result<DeviceInsert, StoreError>;

    /// Replaces a device's descriptive fields (name, default, config), leaving its state
    /// (counters, throttle) and its confirmation (`confirmed`, `pending_until`) untouched:
    /// only [`Store::confirm_device`] changes those. Returns false, writing nothing, if it is
    /// gone.
    async fn update_device(&self, device: &Device) -> Result<bool, StoreError>;

    /// Atomically confirms the user's live, unconfirmed device `id`: it becomes confirmed
    /// and loses its deadline. With `only_if_first`, refused ([`ConfirmOutcome::NotFirst`])
    /// if the user has another confirmed device. When it is the user's only confirmed device
    /// once confirmed, every other unconfirmed device of the user is deleted, with its codes
    /// and challenge, and the outcome says `first`.
    async fn confirm_device(
        &self,
        user: &UserId,
        id: &DeviceId,
        only_if_first: bool,
    ) -> Result<ConfirmOutcome, StoreError>;

    /// One live device of a user, with its current state.
    async fn get_device(&self, user: &UserId, id: &DeviceId) -> Result<Option<Device>, StoreError>;

    /// All live devices of a user, oldest first.
    async fn list_devices(&self, user: &UserId) -> Result<Vec<Device>, StoreError>;

    /// Deletes a device with its state, backup codes and challenge, and revokes what it
    /// vouched for, in the same operation: the user's remembered browsers remembered through
    /// it are deleted, and every session of the user (every session key with the user's
    /// tag) verified by it loses its verification (`verified` becomes `None`; the session
    /// keeps its time to live). Sessions verified by another device, and other users'
    /// sessions and browsers, are untouched. Returns whether it existed (live).
    async fn delete_device(&self, user: &UserId, id: &DeviceId) -> Result<bool, StoreError>;

    /// Deletes every device of a user (as [`Store::delete_device`]), every remembered
    /// browser of the user, and the verification of every session of the user, in one
    /// operation. Returns how many live devices there were.
    async fn delete_all_devices(&self, user: &UserId) -> Result<u64, StoreError>;

    // ----- codes ---------------------------------------------------------------------------

    /// Replaces the whole backup-code set of a live device, atomically, and in the same
    /// operation deletes the user's remembered browsers remembered through that device: a
    /// new set ends what the old one vouched for. Fails with [`StoreError::Invalid`] if the
    /// device is gone.
    async fn replace_backup_codes(
        &self,
        user: &UserId,
        device: &DeviceId,
        hashes: &[CodeHash],
    ) -> Result<(), StoreError>;

    /// How many unused backup codes a live device has (0 once it is gone).
    async fn count_backup_codes(&self, user: &UserId, device: &DeviceId)
    -> Result<u64, StoreError>;

    /// Stores a new challenge for a live out-of-band device unless the current one's
    /// `resend_after` is still in the future. The record expires at `challenge.expires_at`.
    /// It keeps the challenge's binding and counts its tries (see [`Store::begin_attempt`]
    /// and [`Store::commit_success`]). Fails with [`StoreError::Invalid`] if the device is
    /// gone.
    async fn put_challenge(
        &self,
        user: &UserId,
        device: &DeviceId,
        challenge: &Challenge,
        now: Timestamp,
    ) -> Result<ChallengePut, StoreError>;

    /// Deletes the device's challenge, cooldown included, but only if its hash is `hash`: a
    /// code that could not be delivered is withdrawn, and a newer challenge is never touched.
    /// Returns whether it was deleted.
    async fn discard_challenge(
        &self,
        user: &UserId,
        device: &DeviceId,
        hash: &CodeHash,
    ) -> Result<bool, StoreError>;

    // ----- verification --------------------------------------------------------------------

    /// Atomically claims one verification attempt, made for `purpose`, against each of
    /// `devices` (a user's own).
    ///
    /// 1. If the user's lock is in the future: [`AttemptGrant::Locked`], nothing changes. A
    ///    lock in the past is cleared together with the user's failure count.
    /// 2. Per device, reported and unchanged: missing (or expired); unconfirmed when
    ///    `purpose` is [`AttemptPurpose::Verify`] ([`AttemptSlot::NotConfirmed`]); confirmed
    ///    when it is [`AttemptPurpose::Confirm`] ([`AttemptSlot::AlreadyConfirmed`]);
    ///    throttled (`policy.retry_at(failures, last_failure_at, now)` is in the future).
    ///    Otherwise `failures += 1`, `last_failure_at = now`, and the device as it was
    ///    *before* the increment is returned.
    /// 3. If any device was allowed, the user's failure count goes up by one; reaching
    ///    `policy.user_failure_limit()` sets the user's lock to `now + policy.lock_period()`.
    ///    Devices that were not allowed never count toward the user's failures.
    /// 4. Per allowed device with a challenge: if the challenge has had its `max_tries`
    ///    tries, it is deleted (the code is dead, and this attempt cannot use it); otherwise
    ///    its `tries` go up by one. So a code takes at most `max_tries` attempts, whatever
    ///    they are and however many run at once.
    async fn begin_attempt(
        &self,
        user: &UserId,
        devices: &[DeviceId],
        purpose: AttemptPurpose,
        policy: &ThrottlePolicy,
        now: Timestamp,
    ) -> Result<AttemptGrant, StoreError>;

    /// Atomically checks and applies `proof` to the live `device` (see [`SuccessProof`]). On
    /// success: the device's `failures` go to 0 and `last_used_at` to `now`; the user's
    /// failure count and lock are cleared; each device in `refund` (others claimed by the
    /// same attempt) gets one failure taken back. Returns false if the proof is stale or the
    /// device is gone, changing nothing, except that a challenge refused after its last try
    /// (`tries >= max_tries`) is deleted: a code dies at its last wrong try. A challenge
    /// proof is stale when the code or the binding differs, or the challenge has expired or
    /// is gone.
    async fn commit_success(
        &self,
        user: &UserId,
        device: &DeviceId,
        proof: &SuccessProof,
        refund: &[DeviceId],
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Clears a user's failure count and lock (an administrator's "unlock").
    async fn reset_user_failures(&self, user: &UserId) -> Result<(), StoreError>;

    /// A user's consecutive failure count and lock end, as stored.
    async fn user_failures(&self, user: &UserId) -> Result<(u32, Option<Timestamp>), StoreError>;

    // ----- confirmations -------------------------------------------------------------------
    //
    // A confirmation's key carries its user's tag. "Unexpired" means `expires_at > now`; a
    // backend whose own clock is ahead of the caller's may use its own. The record itself is
    // kept until `retain_until` by the backend's own clock, then forgotten.

    /// Stores a new confirmation, unless its user has `max_open` open confirmations already
    /// ([`ConfirmationInsert::TooManyOpen`]): in process or confirmed, and unexpired at
    /// `record.created_at` (or the store's clock, if it is ahead). Counting and storing are
    /// one atomic step, so concurrent requests never get past the cap. Fails with
    /// [`StoreError::Conflict`] if `key` exists.
    async fn insert_confirmation(
        &self,
        key: &ConfirmationKey,
        record: &ConfirmationRecord,
        max_open: u32,
    ) -> Result<ConfirmationInsert, StoreError>;

    /// Fills in a confirmation stored (reserved) before its method started it: if it is in
    /// process and unanswered (`attempts == 0`), its state and status become `record`'s
    /// (status [`InProcess`](ConfirmationStatus::InProcess) or
    /// [`Confirmed`](ConfirmationStatus::Confirmed), else [`StoreError::Invalid`]); every
    /// other field stays as stored. Returns whether it was filled in.
    async fn start_confirmation(
        &self,
        key: &ConfirmationKey,
        record: &ConfirmationRecord,
    ) -> Result<bool, StoreError>;

    /// A confirmation as stored (its status not adjusted for expiry), or `None` once it is
    /// gone.
    async fn get_confirmation(
        &self,
        key: &ConfirmationKey,
    ) -> Result<Option<ConfirmationRecord>, StoreError>;

    /// Atomically claims one attempt to confirm:
    ///
    /// 1. Missing: [`ConfirmationAttempt::Missing`].
    /// 2. Not [`InProcess`](ConfirmationStatus::InProcess), or expired at `now`:
    ///    [`ConfirmationAttempt::Refused`], unchanged.
    /// 3. `attempts >= max_attempts`: the status becomes
    ///    [`Failed`](ConfirmationStatus::Failed); refused with the failed record.
    /// 4. Otherwise `attempts += 1`: [`ConfirmationAttempt::Granted`] with the new record.
    async fn begin_confirmation_attempt(
        &self,
        key: &ConfirmationKey,
        max_attempts: u32,
        now: Timestamp,
    ) -> Result<ConfirmationAttempt, StoreError>;

    /// Atomically moves a confirmation that is in process and unexpired at `now` to `status`,
    /// which must be [`Confirmed`](ConfirmationStatus::Confirmed) or
    /// [`Failed`](ConfirmationStatus::Failed) (else [`StoreError::Invalid`]). Returns whether
    /// it moved; a confirmation in any other state, or missing, is left alone.
    async fn settle_confirmation(
        &self,
        key: &ConfirmationKey,
        status: ConfirmationStatus,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Atomically uses a confirmation: if it is [`Confirmed`](ConfirmationStatus::Confirmed)
    /// and unexpired at `now`, it becomes [`Used`](ConfirmationStatus::Used) and is returned
    /// as it is now. Of any number of concurrent calls, from any number of instances, exactly
    /// one gets it; every other call, then and later, gets `None`.
    async fn use_confirmation(
        &self,
        key: &ConfirmationKey,
        now: Timestamp,
    ) -> Result<Option<ConfirmationRecord>, StoreError>;

    // ----- rate limits ---------------------------------------------------------------------

    /// Counts one event at `now` in every bucket, or in none: if any bucket has counted
    /// `limit.max()` events within its window before `now` (after `now - limit.window()`),
    /// nothing is counted and the answer is [`RateCount::Limited`], until every bucket found
    /// full has room again. Checking and counting are atomic, so concurrent events never get
    /// past a limit; buckets that a backend keeps apart (Redis: other hash slots) are
    /// counted one group after another, and a refusal by a later group takes back the counts
    /// of the earlier ones, erring towards refusing.
    async fn count_rate_limited(
        &self,
        buckets: &[RateBucket],
        now: Timestamp,
    ) -> Result<RateCount, StoreError>;

    /// Takes back one event counted at `now` by [`Store::count_rate_limited`] from each
    /// bucket (the event did not happen after all). Buckets with no event at `now` are left
    /// alone.
    async fn uncount_rate_limited(
        &self,
        buckets: &[RateBucket],
        now: Timestamp,
    ) -> Result<(), StoreError>;

    // ----- per-user stamp ------------------------------------------------------------------

    /// The user's stamp: a number that changes whenever everything issued to the user so far
    /// (remembered devices) must stop working. 0 if never changed.
    async fn user_stamp(&self, user: &UserId) -> Result<u64, StoreError>;

    /// Changes the user's stamp; returns the new one.
    async fn bump_user_stamp(&self, user: &UserId) -> Result<u64, StoreError>;

    // ----- sessions ------------------------------------------------------------------------

    /// Reads a live session, with how long it has left and whether its user has a confirmed
    /// device, in one plain read that changes nothing: the hot path of every guarded request.
    /// A session past its idle deadline (by the store's clock) is `None`. Sliding expiry is
    /// the caller's, through [`Store::touch_session`], at most once per refresh interval.
    async fn load_session(&self, key: &SessionKey) -> Result<Option<LoadedSession>, StoreError>;

    /// Moves the idle deadline of a live session to `idle` from now (the store's clock),
    /// changing nothing else in it. Returns whether the session was live: a session that
    /// ended meanwhile stays ended.
    async fn touch_session(&self, key: &SessionKey, idle: Duration) -> Result<bool, StoreError>;

    /// Counts one more code attempt of the session at `key`, atomically, and returns the count
    /// so far. The count lives for `ttl` from the first attempt and is independent of the
    /// session record (a session that ends and one that rotates leave it to expire).
    async fn count_session_attempt(
        &self,
        key: &SessionKey,
        ttl: Duration,
    ) -> Result<u64, StoreError>;

    /// Creates or replaces a session that lives for `ttl` unless touched
    /// ([`Store::touch_session`]). A record whose
    /// `verified` names a device the user no longer has as a confirmed device is stored
    /// without that verification, in the same atomic step: a device deleted between a code
    /// check and this write must not leave a session verified by it.
    async fn save_session(
        &self,
        key: &SessionKey,
        record: &SessionRecord,
        ttl: Duration,
    ) -> Result<(), StoreError>;

    /// Atomically moves the session at `old` to `new` with `record`: only if `old` still
    /// exists (so a session ended meanwhile, by logout everywhere say, stays ended). As for
    /// [`Store::save_session`], a verification by a device that is gone is not stored. Both keys
    /// must have the same tag. Returns whether it moved.
    async fn rotate_session(
        &self,
        old: &SessionKey,
        new: &SessionKey,
        record: &SessionRecord,
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// Deletes a session. Returns whether it existed.
    async fn delete_session(&self, key: &SessionKey) -> Result<bool, StoreError>;

    /// Deletes every session whose key has `tag` (every session of one user) and every
    /// remembered browser of the user with that tag, atomically. Returns how many sessions.
    async fn delete_user_sessions(&self, tag: &UserTag) -> Result<u64, StoreError>;

    // ----- remembered browsers --------------------------------------------------------------

    /// Stores a remembered browser, which expires at its `expires_at`; returns the user's
    /// current stamp (to bind into the cookie).
    async fn put_remembered(&self, browser: &RememberedBrowser) -> Result<u64, StoreError>;

    /// In one atomic operation: the browser `id` of `user` unless missing or expired (by the
    /// store's clock or `now`), with its `last_used_at` then set to `now` (the returned
    /// record shows the previous value); the user's live device `device`; and the user's
    /// stamp.
    async fn check_remembered(
        &self,
        user: &UserId,
        id: &BrowserId,
        device: &DeviceId,
        now: Timestamp,
    ) -> Result<RememberedCheck, StoreError>;

    /// The user's live remembered browsers, oldest first.
    async fn list_remembered(&self, user: &UserId) -> Result<Vec<RememberedBrowser>, StoreError>;

    /// Forgets one remembered browser. Returns whether it existed.
    async fn delete_remembered(&self, user: &UserId, id: &BrowserId) -> Result<bool, StoreError>;

    /// Forgets every remembered browser of the user. Returns how many.
    async fn delete_all_remembered(&self, user: &UserId) -> Result<u64, StoreError>;

    // ----- health --------------------------------------------------------------------------

    /// Checks the store can be reached.
    async fn ping(&self) -> Result<(), StoreError>;

    // ----- security keys (WebAuthn) ---------------------------------------------------------
    //
    // Defaults fail closed, as for push approvals below: a backend written before security
    // keys existed still builds, and refuses every ceremony.

    /// Stores the state of a WebAuthn ceremony under `key` until `state.expires_at`,
    /// replacing any earlier ceremony of the same key.
    async fn put_ceremony(
        &self,
        key: &CeremonyKey,
        state: &CeremonyState,
    ) -> Result<(), StoreError> {
        let _ = (key, state);
        Err(CEREMONIES_UNSUPPORTED)
    }

    /// Atomically takes the ceremony of `key`: returns it and deletes it, so that it is used
    /// at most once however many requests race for it. A ceremony expired at `now` (or by the
    /// store's own clock) is gone. A ceremony of another key (another login, purpose or user)
    /// is never returned, nor consumed.
    async fn take_ceremony(
        &self,
        key: &CeremonyKey,
        now: Timestamp,
    ) -> Result<Option<CeremonyState>, StoreError> {
        let _ = (key, now);
        Err(CEREMONIES_UNSUPPORTED)
    }

    /// Atomically records a verification by the user's confirmed security key `device` whose
    /// signature counter is now `counter`: accepted only if the counter moves forward from
    /// the one stored in the device's `next_counter` (or both are 0, for keys that keep no
    /// counter), and then stored. On success, as [`Store::commit_success`]: the device's
    /// `failures` go to 0 and `last_used_at` to `now`, and the user's failure count and lock
    /// are cleared.
    async fn record_key_use(
        &self,
        user: &UserId,
        device: &DeviceId,
        counter: u64,
        now: Timestamp,
    ) -> Result<KeyUse, StoreError> {
        let _ = (user, device, counter, now);
        Err(CEREMONIES_UNSUPPORTED)
    }

    // ----- push approvals ------------------------------------------------------------------
    //
    // An approval's key carries its user's tag. Its record is kept until `retain_until` by
    // the store's own clock, then forgotten. Each user has at most one *live* approval (pending
    // and unexpired) and a push block (set by a report) in the same place. The methods have
    // defaults that fail closed, so that a backend written before approvals existed still
    // builds, and refuses every push.

    /// Stores a new, pending approval, atomically checking the user's push state first:
    ///
    /// 1. A push block in the future (by `record.created_at`, or the store's clock if it is
    ///    ahead): [`ApprovalCreate::Blocked`].
    /// 2. A live approval of the user (pending, unexpired): [`ApprovalCreate::Busy`] with its
    ///    expiry.
    ///
    /// Otherwise the approval is stored and becomes the user's live one. Fails with
    /// [`StoreError::Conflict`] if `key` exists.
    async fn create_approval(
        &self,
        key: &ApprovalKey,
        record: &ApprovalRecord,
        retain_until: Timestamp,
    ) -> Result<ApprovalCreate, StoreError> {
        let _ = (key, record, retain_until);
        Err(APPROVALS_UNSUPPORTED)
    }

    /// An approval as stored (its status not adjusted for expiry), or `None` once it is gone.
    async fn get_approval(&self, key: &ApprovalKey) -> Result<Option<ApprovalRecord>, StoreError> {
        let _ = key;
        Err(APPROVALS_UNSUPPORTED)
    }

    /// Atomically settles a pending approval: to [`Approved`](ApprovalStatus::Approved),
    /// [`Denied`](ApprovalStatus::Denied) or [`Reported`](ApprovalStatus::Reported) only while
    /// it is unexpired at `now` (the phone's answer, with `answered_at = now`), to
    /// [`Expired`](ApprovalStatus::Expired) only once it has expired at `now`; any other target
    /// is [`StoreError::Invalid`]. A settled approval is no longer the user's live one. With
    /// [`Reported`](ApprovalStatus::Reported), the user's push block moves to `block_until` if
    /// that is later. Returns the settled record, or `None` if it was not pending (answered
    /// already, or missing) or not in time: of any number of concurrent calls, from any number
    /// of instances, at most one settles it.
    async fn settle_approval(
        &self,
        key: &ApprovalKey,
        status: ApprovalStatus,
        block_until: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<Option<ApprovalRecord>, StoreError> {
        let _ = (key, status, block_until, now);
        Err(APPROVALS_UNSUPPORTED)
    }

    /// Atomically uses an approval: if it is [`Approved`](ApprovalStatus::Approved) and was
    /// asked for by the login `binding`, it becomes [`Used`](ApprovalStatus::Used) and is
    /// returned as it is now. An approved approval can be used until the store forgets it (its
    /// `retain_until`), so that a login polling just after the phone answered is not too late. Exactly one of any number of concurrent calls gets it; every
    /// other call, then and later, gets `None`.
    async fn use_approval(
        &self,
        key: &ApprovalKey,
        binding: Option<&LoginBinding>,
    ) -> Result<Option<ApprovalRecord>, StoreError> {
        let _ = (key, binding);
        Err(APPROVALS_UNSUPPORTED)
    }
}

/// What a backend without security keys answers to every ceremony and key use.
const CEREMONIES_UNSUPPORTED: StoreError =
    StoreError::Invalid("this store does not keep WebAuthn ceremonies");

/// What a backend without approvals answers to every approval operation.
const APPROVALS_UNSUPPORTED: StoreError =
    StoreError::Invalid("this store does not keep push approvals");

/// Checks the target of [`Store::settle_approval`]: an answer or expiry, nothing else.
pub(crate) fn check_approval_settling(status: ApprovalStatus) -> Result<(), StoreError> {
    match status {
        ApprovalStatus::Approved
        | ApprovalStatus::Denied
        | ApprovalStatus::Reported
        | ApprovalStatus::Expired => Ok(()),
        _ => Err(StoreError::Invalid(
            "an approval settles as approved, denied, reported or expired",
        )),
    }
}

/// A store operation failed. The crate treats every store error as "fail closed": a guarded
/// route answers 503 and a verification fails.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store could not be reached or did not answer in time.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// A record exists already.
    #[error("the record exists already")]
    Conflict,
    /// A stored record could not be read (damaged, or written by an incompatible version).
    #[error("a stored record is damaged: {0}")]
    Corrupt(String),
    /// The request was invalid for this store (for example, keys of different users in one
    /// atomic operation).
    #[error("invalid store request: {0}")]
    Invalid(&'static str),
}

impl StoreError {
    /// A stable, machine-readable name of the error kind.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Unavailable(_) => "store_unavailable",
            StoreError::Conflict => "store_conflict",
            StoreError::Corrupt(_) => "store_corrupt",
            StoreError::Invalid(_) => "store_invalid_request",
        }
    }
}

/// Checks the status of [`Store::start_confirmation`]: in process or confirmed.
pub(crate) fn check_starting_status(status: ConfirmationStatus) -> Result<(), StoreError> {
    match status {
        ConfirmationStatus::InProcess | ConfirmationStatus::Confirmed => Ok(()),
        _ => Err(StoreError::Invalid(
            "a confirmation starts in process or confirmed",
        )),
    }
}

/// Checks the target of [`Store::settle_confirmation`]: confirmed or failed, nothing else.
pub(crate) fn check_settling_status(status: ConfirmationStatus) -> Result<(), StoreError> {
    match status {
        ConfirmationStatus::Confirmed | ConfirmationStatus::Failed => Ok(()),
        _ => Err(StoreError::Invalid(
            "a confirmation settles as confirmed or failed",
        )),
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(error: serde_json::Error) -> Self {
        // Only the category and position: serde_json's message can quote stored values.
        StoreError::Corrupt(format!(
            "{:?} error at line {} column {}",
            error.classify(),
            error.line(),
            error.column()
        ))
    }
}
