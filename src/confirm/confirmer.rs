//! [`Confirmer`]: requests, confirms, checks and uses confirmations.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::clock::{Clock, SharedClock, Timestamp, system_clock};
use crate::device::{Caller, TwoFactor, UserId};
use crate::events::{EventKind, Events};
use crate::store::{ConfirmationAttempt, ConfirmationInsert, SharedStore};

use super::{
    ConfirmError, ConfirmationId, ConfirmationKey, ConfirmationRecord, ConfirmationStatus, Context,
    Method, Requested,
};

/// How long confirmations live, how many answers they take, how many a user may have open,
/// and how large their state may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfirmPolicy {
    ttl: Duration,
    max_attempts: u32,
    retention: Duration,
    max_open: u32,
    max_state_bytes: usize,
}

impl Default for ConfirmPolicy {
    fn default() -> Self {
        ConfirmPolicy {
            ttl: Duration::from_secs(10 * 60),
            max_attempts: 5,
            retention: Duration::from_secs(60 * 60),
            max_open: 10,
            max_state_bytes: 1024,
        }
    }
}

impl ConfirmPolicy {
    /// The longest time to live and retention accepted.
    pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 60 * 60);
    /// The largest state size accepted.
    pub const MAX_STATE_BYTES: usize = 64 * 1024;

    /// The default policy: 10 minutes to confirm and use, 5 answers, status kept 1 hour more,
    /// 10 open confirmations per user, states of at most 1 KiB.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many confirmations a user may have open at once — in process or confirmed, and
    /// unexpired (default 10; at least 1). A request past it is refused with
    /// [`ConfirmError::TooManyOpen`] before its method runs: no code is sent for it.
    pub fn with_max_open(mut self, max: u32) -> Self {
        self.max_open = max.max(1);
        self
    }

    /// The largest state a confirmation may hold, as JSON, both as requested and as its
    /// method leaves it (default 1 KiB; 64 bytes to 64 KiB). Every state is stored in full
    /// for as long as the confirmation is kept.
    pub fn with_max_state_bytes(mut self, bytes: usize) -> Self {
        self.max_state_bytes = bytes.clamp(64, Self::MAX_STATE_BYTES);
        self
    }

    /// How long after its request a confirmation can be confirmed and used (default 10
    /// minutes; 1 s to 7 days).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl.clamp(Duration::from_secs(1), Self::MAX_DURATION);
        self
    }

    /// How many answers are tried before a confirmation fails (default 5; at least 1).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// How long after its expiry a confirmation's final status can still be read (default 1
    /// hour; at most 7 days).
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention.min(Self::MAX_DURATION);
        self
    }

    /// The time to live.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The answers allowed.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The retention after expiry.
    pub fn retention(&self) -> Duration {
        self.retention
    }

    /// How many confirmations a user may have open at once.
    pub fn max_open(&self) -> u32 {
        self.max_open
    }

    /// The largest state, in bytes of JSON.
    pub fn max_state_bytes(&self) -> usize {
        self.max_state_bytes
    }
}

/// A confirmation as its user may see it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Confirmation {
    /// Its id (a secret of the user's; redacted in `Debug` output).
    pub id: ConfirmationId,
    /// The key of its method.
    pub method: String,
    /// Its status now.
    pub status: ConfirmationStatus,
    /// The method's state (a masked destination, the device a code went to…).
    pub state: Value,
    /// When it can no longer be confirmed or used.
    pub expires_at: Timestamp,
    /// How many more answers will be tried.
    pub attempts_left: u32,
}

/// The confirmation API: a registry of [`Method`]s and one-time confirmation states with
/// `request`, `confirm`, `check` and `use` ([`Confirmer::consume`]). See the
/// [module docs](super).
///
/// Each step emits an event carrying the method's key, never the id, the state or an answer:
/// [`ConfirmationRequested`](EventKind::ConfirmationRequested),
/// [`ConfirmationConfirmed`](EventKind::ConfirmationConfirmed),
/// [`ConfirmationFailed`](EventKind::ConfirmationFailed) and
/// [`ConfirmationUsed`](EventKind::ConfirmationUsed).
///
/// Cheap to clone; clones share configuration and store.
#[derive(Clone, Debug)]
pub struct Confirmer {
    store: SharedStore,
    clock: SharedClock,
    events: Events,
    methods: Arc<BTreeMap<String, Method>>,
    policy: ConfirmPolicy,
}

impl Confirmer {
    /// A confirmer over the store, clock and event bus of `two_factor`, with no methods yet.
    pub fn new(two_factor: &TwoFactor) -> Self {
        Confirmer {
            store: two_factor.store().clone(),
            clock: two_factor.clock().clone(),
            events: two_factor.events().clone(),
            methods: Arc::default(),
            policy: ConfirmPolicy::default(),
        }
    }

    /// A confirmer over `store` on the system clock, with an event bus of its own and no
    /// methods yet.
    pub fn from_store(store: SharedStore) -> Self {
        Confirmer {
            store,
            clock: system_clock(),
            events: Events::new(),
            methods: Arc::default(),
            policy: ConfirmPolicy::default(),
        }
    }

    /// Reads time from `clock`.
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Emits events on `events`.
    pub fn with_events(mut self, events: Events) -> Self {
        self.events = events;
        self
    }

    /// The event bus: register hooks and subscribe here.
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// Lifetime and attempt settings.
    pub fn with_policy(mut self, policy: ConfirmPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Registers `method` under its key, replacing any method registered there before.
    pub fn with_method(mut self, method: Method) -> Self {
        Arc::make_mut(&mut self.methods).insert(method.key().to_owned(), method);
        self
    }

    /// The registered methods, by key.
    pub fn methods(&self) -> impl Iterator<Item = &Method> {
        self.methods.values()
    }

    /// The method registered as `key`.
    pub fn method(&self, key: &str) -> Option<&Method> {
        self.methods.get(key)
    }

    /// The lifetime and attempt settings.
    pub fn policy(&self) -> &ConfirmPolicy {
        &self.policy
    }

    fn check_size(&self, state: &Value) -> Result<(), ConfirmError> {
        let size = serde_json::to_vec(state).map_or(usize::MAX, |json| json.len());
        if size > self.policy.max_state_bytes {
            return Err(ConfirmError::InvalidData(
                "the state is larger than the policy allows",
            ));
        }
        Ok(())
    }

    fn registered(&self, key: &str) -> Result<&Method, ConfirmError> {
        self.method(key).ok_or(ConfirmError::UnknownMethod)
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn emit(&self, kind: EventKind, user: &UserId) {
        self.events.emit(kind, user, None, self.now());
    }

    /// Asks `method` whether changing the user's configuration from `old` to `new` must be
    /// confirmed; if so, requests the confirmation and returns it. `None` means the change
    /// needs no confirmation: apply it.
    ///
    /// `caller` is who asks (a `&UserId` is a caller who passed the first factor only); see
    /// [`Context::caller`].
    pub async fn change_user_config(
        &self,
        caller: impl Into<Caller>,
        method: &str,
        old: Option<&Value>,
        new: &Value,
    ) -> Result<Option<Confirmation>, ConfirmError> {
        let caller = caller.into();
        let registered = self.registered(method)?;
        let cx = Context {
            user: caller.user(),
            caller: &caller,
            method,
            now: self.now(),
        };
        match registered
            .backend()
            .change_user_config(cx, old, new)
            .await?
        {
            None => Ok(None),
            Some(state) => self.request(&caller, method, state).await.map(Some),
        }
    }

    /// Requests a confirmation by `method`, starting from `state` (at most the policy's
    /// [`max_state_bytes`](ConfirmPolicy::max_state_bytes) of JSON). The returned id is the
    /// only way to it: hand it to the user's client.
    ///
    /// `caller` is who asks; methods that add or alter factors apply the factor rule to it
    /// (see [`Context::caller`]). A user with the policy's
    /// [`max_open`](ConfirmPolicy::max_open) open confirmations gets
    /// [`ConfirmError::TooManyOpen`]: the confirmation takes its place in the store, under
    /// that cap and atomically, before its method starts it (sends a code, say).
    pub async fn request(
        &self,
        caller: impl Into<Caller>,
        method: &str,
        state: Value,
    ) -> Result<Confirmation, ConfirmError> {
        let caller = caller.into();
        let user = caller.user();
        let registered = self.registered(method)?;
        self.check_size(&state)?;
        let now = self.now();
        let id = ConfirmationId::generate();
        let key = self.key(user, &id);
        let mut record = self.reserve(&key, user, method, now).await?;
        let cx = Context {
            user,
            caller: &caller,
            method,
            now,
        };
        let started = registered.backend().request_confirmation(cx, state).await;
        let (status, state) = match started {
            Ok(Requested::InProcess(state)) => (ConfirmationStatus::InProcess, state),
            Ok(Requested::Confirmed(state)) => (ConfirmationStatus::Confirmed, state),
            Err(error) => return Err(self.release(&key, error).await),
        };
        if let Err(error) = self.check_size(&state) {
            return Err(self.release(&key, error).await);
        }
        record.status = status;
        record.state = state;
        if !self.store.start_confirmation(&key, &record).await? {
            // Only this request knows the id, so nothing answered it: it expired while the
            // method ran, or the store forgot it.
            return Err(self.current_error(&key, user, self.now()).await);
        }
        tracing::debug!(user = %user, method, status = %status, "confirmation requested");
        let method_key = method.to_owned();
        self.emit(
            EventKind::ConfirmationRequested {
                method: method_key.clone(),
            },
            user,
        );
        if status == ConfirmationStatus::Confirmed {
            self.emit(
                EventKind::ConfirmationConfirmed { method: method_key },
                user,
            );
        }
        Ok(self.view(id, &record, now))
    }

    /// Stores a confirmation in process with no state yet, under the cap on open ones.
    async fn reserve(
        &self,
        key: &ConfirmationKey,
        user: &UserId,
        method: &str,
        now: Timestamp,
    ) -> Result<ConfirmationRecord, ConfirmError> {
        let expires_at = now.saturating_add(self.policy.ttl);
        let record = ConfirmationRecord {
            user: user.clone(),
            method: method.to_owned(),
            status: ConfirmationStatus::InProcess,
            state: Value::Null,
            attempts: 0,
            created_at: now,
            expires_at,
            retain_until: expires_at.saturating_add(self.policy.retention),
        };
        match self
            .store
            .insert_confirmation(key, &record, self.policy.max_open)
            .await?
        {
            ConfirmationInsert::Inserted => Ok(record),
            ConfirmationInsert::TooManyOpen => {
                tracing::debug!(user = %user, method, "too many open confirmations");
                Err(ConfirmError::TooManyOpen)
            }
        }
    }

    /// Closes a reserved confirmation whose method failed to start it (so it no longer counts
    /// as open), and returns the method's error.
    async fn release(&self, key: &ConfirmationKey, error: ConfirmError) -> ConfirmError {
        let closed = self
            .store
            .settle_confirmation(key, ConfirmationStatus::Failed, self.now())
            .await;
        if let Err(store) = closed {
            // It stays open until it expires: the cap is met a little early, never exceeded.
            tracing::warn!(kind = store.kind(), "reserved confirmation not released");
        }
        error
    }

    /// Answers confirmation `id` of `user` with `data` (a code, say). Each answer counts
    /// against the policy's attempts, whether or not the method could check it; the last
    /// wrong one fails the confirmation.
    pub async fn confirm(
        &self,
        caller: impl Into<Caller>,
        id: &ConfirmationId,
        data: &Value,
    ) -> Result<Confirmation, ConfirmError> {
        let caller = caller.into();
        let user = caller.user();
        let key = self.key(user, id);
        let now = self.now();
        let max = self.policy.max_attempts;
        let mut record = match self
            .store
            .begin_confirmation_attempt(&key, max, now)
            .await?
        {
            ConfirmationAttempt::Missing => return Err(ConfirmError::NotFound),
            ConfirmationAttempt::Refused(record) => return Err(not_pending(&record, user, now)),
            ConfirmationAttempt::Granted(record) if record.user == *user => record,
            ConfirmationAttempt::Granted(_) => return Err(ConfirmError::NotFound),
        };
        let registered = self.registered(&record.method)?;
        let cx = Context {
            user,
            caller: &caller,
            method: &record.method,
            now,
        };
        let accepted = registered
            .backend()
            .confirm(cx, &record.state, data)
            .await?;
        if !accepted {
            let attempts_left = max.saturating_sub(record.attempts);
            if attempts_left == 0
                && self
                    .store
                    .settle_confirmation(&key, ConfirmationStatus::Failed, now)
                    .await?
            {
                self.emit(
                    EventKind::ConfirmationFailed {
                        method: record.method.clone(),
                    },
                    user,
                );
            }
            tracing::debug!(user = %user, method = %record.method, attempts_left, "confirmation rejected");
            return Err(ConfirmError::Rejected { attempts_left });
        }
        // The method may have taken a while (a network call): expiry counts from now.
        let now = self.now();
        if !self
            .store
            .settle_confirmation(&key, ConfirmationStatus::Confirmed, now)
            .await?
        {
            return Err(self.current_error(&key, user, now).await);
        }
        record.status = ConfirmationStatus::Confirmed;
        tracing::debug!(user = %user, method = %record.method, "confirmation confirmed");
        self.emit(
            EventKind::ConfirmationConfirmed {
                method: record.method.clone(),
            },
            user,
        );
        Ok(self.view(id.clone(), &record, now))
    }

    /// Confirmation `id` of `user` as it stands.
    pub async fn check(
        &self,
        user: &UserId,
        id: &ConfirmationId,
    ) -> Result<Confirmation, ConfirmError> {
        let record = self.load(&self.key(user, id), user).await?;
        Ok(self.view(id.clone(), &record, self.now()))
    }

    /// Uses confirmation `id` of `user` for an action of `method`: succeeds once, and only
    /// if it is confirmed and unexpired; atomically in the store, so of any number of
    /// concurrent calls on any number of instances exactly one succeeds.
    ///
    /// A confirmation of another method is refused, and not used up. The caller checks that
    /// the returned state matches the action (the same action name, the same object).
    pub async fn consume(
        &self,
        user: &UserId,
        id: &ConfirmationId,
        method: &str,
    ) -> Result<Confirmation, ConfirmError> {
        let key = self.key(user, id);
        if self.load(&key, user).await?.method != method {
            return Err(ConfirmError::WrongMethod);
        }
        let now = self.now();
        match self.store.use_confirmation(&key, now).await? {
            Some(record) => {
                tracing::debug!(user = %user, method, "confirmation used");
                self.emit(
                    EventKind::ConfirmationUsed {
                        method: method.to_owned(),
                    },
                    user,
                );
                Ok(self.view(id.clone(), &record, now))
            }
            None => Err(self.current_error(&key, user, now).await),
        }
    }

    /// Where confirmation `id` of `user` lives in the store.
    fn key(&self, user: &UserId, id: &ConfirmationId) -> ConfirmationKey {
        ConfirmationKey::new(self.store.user_tag(user), id)
    }

    async fn load(
        &self,
        key: &ConfirmationKey,
        user: &UserId,
    ) -> Result<ConfirmationRecord, ConfirmError> {
        self.store
            .get_confirmation(key)
            .await?
            .filter(|record| record.user == *user)
            .ok_or(ConfirmError::NotFound)
    }

    /// Why an operation that needed a pending or confirmed confirmation found none.
    async fn current_error(
        &self,
        key: &ConfirmationKey,
        user: &UserId,
        now: Timestamp,
    ) -> ConfirmError {
        match self.load(key, user).await {
            Ok(record) => not_pending(&record, user, now),
            Err(error) => error,
        }
    }

    fn view(
        &self,
        id: ConfirmationId,
        record: &ConfirmationRecord,
        now: Timestamp,
    ) -> Confirmation {
        Confirmation {
            id,
            method: record.method.clone(),
            status: record.status_at(now),
            state: record.state.clone(),
            expires_at: record.expires_at,
            attempts_left: self.policy.max_attempts.saturating_sub(record.attempts),
        }
    }
}

fn not_pending(record: &ConfirmationRecord, user: &UserId, now: Timestamp) -> ConfirmError {
    if record.user != *user {
        return ConfirmError::NotFound;
    }
    ConfirmError::NotPending {
        status: record.status_at(now),
    }
}
