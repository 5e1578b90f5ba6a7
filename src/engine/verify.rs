//! Verification: claiming an attempt, matching the code, committing the match.

use super::Caller;
use super::{BACKUP_CODE_PURPOSE, CHALLENGE_PURPOSE, Purpose, TwoFactor, Verification};
use crate::clock::Timestamp;
use crate::device::matching::{CounterMatch, match_hotp, match_totp};
use crate::device::{Device, DeviceConfig, DeviceId, DeviceKind, Error, UserId};
use crate::events::EventKind;
use crate::otp::{OtpKey, Token, TokenError};
use crate::store::{AttemptGrant, AttemptSlot, LoginBinding, SuccessProof};

impl TwoFactor {
    // ----- verification --------------------------------------------------------------------

    /// Verifies `input` as a code of the caller's user's confirmed device `device`. An
    /// out-of-band code verifies only for the login it was sent for (see
    /// [`TwoFactor::send_challenge`]).
    pub async fn verify(
        &self,
        caller: impl Into<Caller>,
        device: &DeviceId,
        input: &str,
    ) -> Result<Verification, Error> {
        let caller = caller.into();
        self.attempt(&caller, vec![device.clone()], &[], input, Purpose::Verify)
            .await
    }

    /// Verifies `input` against every confirmed device of the user whose codes it could be
    /// (a 6-digit input is not tried as a backup code), backup codes included.
    pub async fn verify_any(
        &self,
        caller: impl Into<Caller>,
        input: &str,
    ) -> Result<Verification, Error> {
        let caller = caller.into();
        let user = caller.user();
        let confirmed: Vec<Device> = self
            .inner
            .store
            .list_devices(user)
            .await?
            .into_iter()
            .filter(|d| d.confirmed)
            .collect();
        if confirmed.is_empty() {
            return Err(Error::NotConfigured);
        }
        let mut candidates: Vec<DeviceId> = confirmed
            .iter()
            .filter(|d| self.could_be_code_of(d, input))
            .map(|d| d.id.clone())
            .collect();
        if candidates.is_empty() {
            // Still count the attempt, against the device the user would normally use.
            let fallback = confirmed
                .iter()
                .find(|d| d.is_default)
                .or_else(|| {
                    confirmed
                        .iter()
                        .find(|d| d.kind() != DeviceKind::BackupCodes)
                })
                .unwrap_or(&confirmed[0]);
            candidates.push(fallback.id.clone());
        }
        self.attempt(&caller, candidates, &confirmed, input, Purpose::Verify)
            .await
    }

    fn could_be_code_of(&self, device: &Device, input: &str) -> bool {
        match &device.config {
            DeviceConfig::Totp { digits, .. }
            | DeviceConfig::Hotp { digits, .. }
            | DeviceConfig::OutOfBand { digits, .. } => Token::parse(input, *digits).is_ok(),
            DeviceConfig::BackupCodes => self.inner.backup.normalise(input).is_some(),
            // A push device answers approvals: no code is ever one of its.
            DeviceConfig::Push { .. } => false,
            // A security key answers a ceremony, never a typed code.
            DeviceConfig::WebAuthn { .. } => false,
        }
    }

    /// Claims an attempt on `candidates` of the caller's user, checks `input` against each
    /// allowed one, commits the first match, and reports the outcome as one event. `known`
    /// may hold some of the candidates already read (for naming them in events). The
    /// caller's binding goes with an out-of-band code to the store, which accepts the code
    /// only from the login it was sent for.
    pub(super) async fn attempt(
        &self,
        caller: &Caller,
        candidates: Vec<DeviceId>,
        known: &[Device],
        input: &str,
        purpose: Purpose,
    ) -> Result<Verification, Error> {
        let user = caller.user();
        let binding = caller.binding().map(LoginBinding::new);
        let now = self.now();
        let store = &self.inner.store;
        let slots = match store
            .begin_attempt(user, &candidates, purpose, &self.inner.throttle, now)
            .await?
        {
            AttemptGrant::Locked { until } => {
                self.emit(EventKind::Locked { until }, user, None);
                return Err(Error::Locked { until });
            }
            AttemptGrant::Slots(slots) => slots,
        };
        let mut allowed = Vec::new();
        let mut throttled: Option<(Timestamp, &DeviceId)> = None;
        // A device in the wrong confirmation state for `purpose`: refused, never counted.
        let mut refused: Option<Error> = None;
        for (slot, id) in slots.into_iter().zip(&candidates) {
            match slot {
                AttemptSlot::Allowed(device) => allowed.push(*device),
                AttemptSlot::NotConfirmed => refused = Some(Error::NotConfirmed),
                AttemptSlot::AlreadyConfirmed => refused = Some(Error::AlreadyConfirmed),
                AttemptSlot::Throttled { until } => {
                    if throttled.is_none_or(|(earliest, _)| until < earliest) {
                        throttled = Some((until, id));
                    }
                }
                AttemptSlot::Missing => {}
            }
        }
        if allowed.is_empty() {
            let Some((until, id)) = throttled else {
                let Some(error) = refused else {
                    return Err(Error::DeviceNotFound);
                };
                let reason = error.kind().to_owned();
                self.emit(EventKind::VerificationFailed { reason }, user, None);
                return Err(error);
            };
            let device = match known.iter().find(|d| &d.id == id) {
                Some(device) => Some(device.clone()),
                None => store.get_device(user, id).await?,
            };
            self.emit(
                EventKind::Throttled {
                    retry_at: until,
                    count: 1,
                },
                user,
                device.as_ref(),
            );
            return Err(Error::Throttled {
                until,
                retry_after: until.since(now),
            });
        }
        let claimed: Vec<DeviceId> = allowed.iter().map(|d| d.id.clone()).collect();
        let mut failure: Option<(Error, Device)> = None;
        for device in allowed {
            let outcome = match self.proof_for(&device, input, purpose, now, binding.as_ref()) {
                Ok(proof) => {
                    let refund: Vec<DeviceId> = claimed
                        .iter()
                        .filter(|id| **id != device.id)
                        .cloned()
                        .collect();
                    if store
                        .commit_success(user, &device.id, &proof, &refund, now)
                        .await?
                    {
                        return self.verified(device, now, purpose).await;
                    }
                    stale_proof_error(&proof)
                }
                Err(error) => error,
            };
            tracing::debug!(user = %user, device = %device.id, kind = %device.kind(), reason = outcome.kind(), "verification failed");
            if failure
                .as_ref()
                .is_none_or(|(worst, _)| failure_rank(&outcome) > failure_rank(worst))
            {
                failure = Some((outcome, device));
            }
        }
        let (error, device) = failure.expect("at least one device was allowed");
        let kind = match &error {
            Error::Replayed => EventKind::ReplayRefused,
            other => EventKind::VerificationFailed {
                reason: other.kind().to_owned(),
            },
        };
        self.emit(kind, user, Some(&device));
        self.announce_lock_set_at(user, now).await;
        Err(error)
    }

    /// Emits [`EventKind::Locked`] if the failed attempt made at `now` is the one that locked
    /// the user: the store sets the lock to `now + lock_period` on the attempt that reaches
    /// the limit, and counts no attempt while locked, so no other attempt leaves that mark.
    /// Costs one read of the user's state, on failures only.
    pub(crate) async fn announce_lock_set_at(&self, user: &UserId, now: Timestamp) {
        let lock_this_attempt_sets = now.saturating_add(self.inner.throttle.lock_period());
        match self.inner.store.user_failures(user).await {
            Ok((_, Some(until))) if until == lock_this_attempt_sets && until > now => {
                self.emit(EventKind::Locked { until }, user, None);
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(user = %user, reason = error.kind(), "could not read the user's lock after a failure; a lock it set is not announced");
            }
        }
    }

    /// What the store must check to accept `input` for `device` from a caller of the login
    /// `binding`, or why it cannot match.
    fn proof_for(
        &self,
        device: &Device,
        input: &str,
        purpose: Purpose,
        now: Timestamp,
        binding: Option<&LoginBinding>,
    ) -> Result<SuccessProof, Error> {
        match (device.confirmed, purpose) {
            (false, Purpose::Verify) => return Err(Error::NotConfirmed),
            (true, Purpose::Confirm) => return Err(Error::AlreadyConfirmed),
            _ => {}
        }
        let state = &device.state;
        let counter_match = match &device.config {
            DeviceConfig::Totp {
                secret,
                algorithm,
                digits,
                params,
            } => {
                let token = Token::parse(input, *digits).map_err(Error::Malformed)?;
                let secret = self.inner.sealer.open(secret, &device.user, &device.id)?;
                let key = OtpKey::new(secret, *algorithm, *digits);
                match_totp(
                    &key,
                    params,
                    &self.inner.totp,
                    state.next_counter,
                    state.drift,
                    &token,
                    now.as_secs(),
                )
            }
            DeviceConfig::Hotp {
                secret,
                algorithm,
                digits,
            } => {
                let token = Token::parse(input, *digits).map_err(Error::Malformed)?;
                let secret = self.inner.sealer.open(secret, &device.user, &device.id)?;
                let key = OtpKey::new(secret, *algorithm, *digits);
                match_hotp(&key, &self.inner.hotp, state.next_counter, &token)
            }
            DeviceConfig::BackupCodes => {
                let canonical = self
                    .inner
                    .backup
                    .normalise(input)
                    .ok_or(Error::Malformed(TokenError::Unrecognised))?;
                let hash = self.inner.server_key.hash_code(
                    BACKUP_CODE_PURPOSE,
                    &device.user,
                    &device.id,
                    &canonical,
                );
                return Ok(SuccessProof::BackupCode(hash));
            }
            DeviceConfig::OutOfBand { digits, .. } => {
                let token = Token::parse(input, *digits).map_err(Error::Malformed)?;
                let hash = self.inner.server_key.hash_code(
                    CHALLENGE_PURPOSE,
                    &device.user,
                    &device.id,
                    token.as_str(),
                );
                return Ok(SuccessProof::Challenge {
                    hash,
                    binding: binding.cloned(),
                });
            }
            DeviceConfig::Push { .. } => return Err(Error::InvalidCode),
            DeviceConfig::WebAuthn { .. } => return Err(Error::InvalidCode),
        };
        match counter_match {
            CounterMatch::Fresh {
                next_counter,
                drift,
            } => Ok(SuccessProof::Counter {
                next_counter,
                drift,
            }),
            CounterMatch::Replayed => Err(Error::Replayed),
            CounterMatch::None => Err(Error::InvalidCode),
        }
    }

    pub(crate) async fn verified(
        &self,
        device: Device,
        now: Timestamp,
        purpose: Purpose,
    ) -> Result<Verification, Error> {
        let backup_codes_remaining = if device.kind() == DeviceKind::BackupCodes {
            Some(
                self.inner
                    .store
                    .count_backup_codes(&device.user, &device.id)
                    .await?,
            )
        } else {
            None
        };
        tracing::debug!(user = %device.user, device = %device.id, kind = %device.kind(), "second factor verified");
        if purpose == Purpose::Verify {
            self.emit(EventKind::UserVerified, &device.user, Some(&device));
        }
        if let Some(remaining) = backup_codes_remaining {
            self.emit(
                EventKind::BackupCodeUsed { remaining },
                &device.user,
                Some(&device),
            );
        }
        Ok(Verification {
            device,
            at: now,
            backup_codes_remaining,
        })
    }
}

/// Why the store refused a proof: a counter it refused was taken first (by a concurrent
/// request with the same code); a code hash it refused was never valid or is used up, which
/// the store cannot tell apart.
fn stale_proof_error(proof: &SuccessProof) -> Error {
    match proof {
        SuccessProof::Counter { .. } => Error::Replayed,
        SuccessProof::BackupCode(_) | SuccessProof::Challenge { .. } => Error::InvalidCode,
    }
}

/// Which failure to report when several devices failed: the most informative.
fn failure_rank(error: &Error) -> u8 {
    match error {
        Error::InvalidCode => 0,
        Error::Malformed(_) => 1,
        Error::Replayed => 2,
        _ => 3,
    }
}
