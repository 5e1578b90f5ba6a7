//! A store wrapper that counts round trips and can be switched off, to test laziness and
//! failing closed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tower_otp::clock::Timestamp;
use tower_otp::confirm::{ConfirmationKey, ConfirmationRecord, ConfirmationStatus};
use tower_otp::device::{CodeHash, Device, DeviceId, ThrottlePolicy, UserId};
use tower_otp::remember::{BrowserId, RememberedBrowser, RememberedCheck};
use tower_otp::session::{SessionKey, SessionRecord, TagKey, UserTag};
use tower_otp::store::{
    AttemptGrant, AttemptPurpose, CeremonyKey, CeremonyState, Challenge, ChallengePut,
    ConfirmOutcome, ConfirmationAttempt, ConfirmationInsert, DeviceInsert, DeviceLimits, KeyUse,
    LoadedSession, RateBucket, RateCount, SharedStore, Store, StoreError, SuccessProof,
};

/// Delegates to an inner store, counting calls and keeping the challenges it is given; while
/// `down`, every call fails as `Unavailable`.
#[derive(Debug, Clone)]
pub struct InstrumentedStore {
    inner: SharedStore,
    calls: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
    challenges: Arc<Mutex<Vec<Challenge>>>,
}

impl InstrumentedStore {
    pub fn new(inner: impl Store) -> Self {
        InstrumentedStore {
            inner: Arc::new(inner),
            calls: Arc::default(),
            down: Arc::default(),
            challenges: Arc::default(),
        }
    }

    /// Every challenge given to `put_challenge` so far, as it was given.
    pub fn challenges(&self) -> Vec<Challenge> {
        self.challenges.lock().unwrap().clone()
    }

    /// Store calls so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Makes every call fail (true) or work again (false).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn gate(&self) -> Result<&SharedStore, StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable("switched off by the test".into()))
        } else {
            Ok(&self.inner)
        }
    }
}

#[async_trait]
impl Store for InstrumentedStore {
    // Tags are computed, not fetched: neither a call nor subject to `down`.
    fn user_tag(&self, user: &UserId) -> UserTag {
        self.inner.user_tag(user)
    }
    fn bind_tag_key(&self, key: TagKey) {
        self.inner.bind_tag_key(key)
    }
    async fn insert_device(
        &self,
        device: &Device,
        limits: &DeviceLimits,
    ) -> Result<DeviceInsert, StoreError> {
        self.gate()?.insert_device(device, limits).await
    }
    async fn update_device(&self, device: &Device) -> Result<bool, StoreError> {
        self.gate()?.update_device(device).await
    }
    async fn confirm_device(
        &self,
        user: &UserId,
        id: &DeviceId,
        only_if_first: bool,
    ) -> Result<ConfirmOutcome, StoreError> {
        self.gate()?.confirm_device(user, id, only_if_first).await
    }
    async fn get_device(&self, user: &UserId, id: &DeviceId) -> Result<Option<Device>, StoreError> {
        self.gate()?.get_device(user, id).await
    }
    async fn list_devices(&self, user: &UserId) -> Result<Vec<Device>, StoreError> {
        self.gate()?.list_devices(user).await
    }
    async fn delete_device(&self, user: &UserId, id: &DeviceId) -> Result<bool, StoreError> {
        self.gate()?.delete_device(user, id).await
    }
    async fn delete_all_devices(&self, user: &UserId) -> Result<u64, StoreError> {
        self.gate()?.delete_all_devices(user).await
    }
    async fn replace_backup_codes(
        &self,
        user: &UserId,
        device: &DeviceId,
        hashes: &[CodeHash],
    ) -> Result<(), StoreError> {
        self.gate()?
            .replace_backup_codes(user, device, hashes)
            .await
    }
    async fn count_backup_codes(
        &self,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<u64, StoreError> {
        self.gate()?.count_backup_codes(user, device).await
    }
    async fn put_challenge(
        &self,
        user: &UserId,
        device: &DeviceId,
        challenge: &Challenge,
        now: Timestamp,
    ) -> Result<ChallengePut, StoreError> {
        let inner = self.gate()?;
        self.challenges.lock().unwrap().push(challenge.clone());
        inner.put_challenge(user, device, challenge, now).await
    }
    async fn begin_attempt(
        &self,
        user: &UserId,
        devices: &[DeviceId],
        purpose: AttemptPurpose,
        policy: &ThrottlePolicy,
        now: Timestamp,
    ) -> Result<AttemptGrant, StoreError> {
        self.gate()?
            .begin_attempt(user, devices, purpose, policy, now)
            .await
    }
    async fn commit_success(
        &self,
        user: &UserId,
        device: &DeviceId,
        proof: &SuccessProof,
        refund: &[DeviceId],
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.gate()?
            .commit_success(user, device, proof, refund, now)
            .await
    }
    async fn reset_user_failures(&self, user: &UserId) -> Result<(), StoreError> {
        self.gate()?.reset_user_failures(user).await
    }
    async fn user_failures(&self, user: &UserId) -> Result<(u32, Option<Timestamp>), StoreError> {
        self.gate()?.user_failures(user).await
    }
    async fn user_stamp(&self, user: &UserId) -> Result<u64, StoreError> {
        self.gate()?.user_stamp(user).await
    }
    async fn bump_user_stamp(&self, user: &UserId) -> Result<u64, StoreError> {
        self.gate()?.bump_user_stamp(user).await
    }
    async fn load_session(&self, key: &SessionKey) -> Result<Option<LoadedSession>, StoreError> {
        self.gate()?.load_session(key).await
    }
    async fn touch_session(&self, key: &SessionKey, idle: Duration) -> Result<bool, StoreError> {
        self.gate()?.touch_session(key, idle).await
    }
    async fn count_session_attempt(
        &self,
        key: &SessionKey,
        ttl: Duration,
    ) -> Result<u64, StoreError> {
        self.gate()?.count_session_attempt(key, ttl).await
    }
    async fn save_session(
        &self,
        key: &SessionKey,
        record: &SessionRecord,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.gate()?.save_session(key, record, ttl).await
    }
    async fn rotate_session(
        &self,
        old: &SessionKey,
        new: &SessionKey,
        record: &SessionRecord,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.gate()?.rotate_session(old, new, record, ttl).await
    }
    async fn delete_session(&self, key: &SessionKey) -> Result<bool, StoreError> {
        self.gate()?.delete_session(key).await
    }
    async fn delete_user_sessions(&self, tag: &UserTag) -> Result<u64, StoreError> {
        self.gate()?.delete_user_sessions(tag).await
    }
    async fn put_remembered(&self, browser: &RememberedBrowser) -> Result<u64, StoreError> {
        self.gate()?.put_remembered(browser).await
    }
    async fn check_remembered(
        &self,
        user: &UserId,
        id: &BrowserId,
        device: &DeviceId,
        now: Timestamp,
    ) -> Result<RememberedCheck, StoreError> {
        self.gate()?.check_remembered(user, id, device, now).await
    }
    async fn list_remembered(&self, user: &UserId) -> Result<Vec<RememberedBrowser>, StoreError> {
        self.gate()?.list_remembered(user).await
    }
    async fn delete_remembered(&self, user: &UserId, id: &BrowserId) -> Result<bool, StoreError> {
        self.gate()?.delete_remembered(user, id).await
    }
    async fn delete_all_remembered(&self, user: &UserId) -> Result<u64, StoreError> {
        self.gate()?.delete_all_remembered(user).await
    }
    async fn discard_challenge(
        &self,
        user: &UserId,
        device: &DeviceId,
        hash: &CodeHash,
    ) -> Result<bool, StoreError> {
        self.gate()?.discard_challenge(user, device, hash).await
    }
    async fn insert_confirmation(
        &self,
        key: &ConfirmationKey,
        record: &ConfirmationRecord,
        max_open: u32,
    ) -> Result<ConfirmationInsert, StoreError> {
        self.gate()?
            .insert_confirmation(key, record, max_open)
            .await
    }
    async fn start_confirmation(
        &self,
        key: &ConfirmationKey,
        record: &ConfirmationRecord,
    ) -> Result<bool, StoreError> {
        self.gate()?.start_confirmation(key, record).await
    }
    async fn count_rate_limited(
        &self,
        buckets: &[RateBucket],
        now: Timestamp,
    ) -> Result<RateCount, StoreError> {
        self.gate()?.count_rate_limited(buckets, now).await
    }
    async fn uncount_rate_limited(
        &self,
        buckets: &[RateBucket],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.gate()?.uncount_rate_limited(buckets, now).await
    }
    async fn get_confirmation(
        &self,
        key: &ConfirmationKey,
    ) -> Result<Option<ConfirmationRecord>, StoreError> {
        self.gate()?.get_confirmation(key).await
    }
    async fn begin_confirmation_attempt(
        &self,
        key: &ConfirmationKey,
        max_attempts: u32,
        now: Timestamp,
    ) -> Result<ConfirmationAttempt, StoreError> {
        self.gate()?
            .begin_confirmation_attempt(key, max_attempts, now)
            .await
    }
    async fn settle_confirmation(
        &self,
        key: &ConfirmationKey,
        status: ConfirmationStatus,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.gate()?.settle_confirmation(key, status, now).await
    }
    async fn use_confirmation(
        &self,
        key: &ConfirmationKey,
        now: Timestamp,
    ) -> Result<Option<ConfirmationRecord>, StoreError> {
        self.gate()?.use_confirmation(key, now).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.gate()?.ping().await
    }
    async fn put_ceremony(
        &self,
        key: &CeremonyKey,
        state: &CeremonyState,
    ) -> Result<(), StoreError> {
        self.gate()?.put_ceremony(key, state).await
    }
    async fn take_ceremony(
        &self,
        key: &CeremonyKey,
        now: Timestamp,
    ) -> Result<Option<CeremonyState>, StoreError> {
        self.gate()?.take_ceremony(key, now).await
    }
    async fn record_key_use(
        &self,
        user: &UserId,
        device: &DeviceId,
        counter: u64,
        now: Timestamp,
    ) -> Result<KeyUse, StoreError> {
        self.gate()?
            .record_key_use(user, device, counter, now)
            .await
    }
}
