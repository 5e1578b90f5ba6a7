//! The engine's push operations: enrolment, requests, signed answers, and their use by the
//! login that asked.

use std::fmt;
use std::sync::Arc;

use subtle::ConstantTimeEq;

use super::{
    ApprovalContext, ApprovalCreate, ApprovalError, ApprovalId, ApprovalKey, ApprovalRecord,
    ApprovalStatus, Decision, PushKey, PushMessage, PushPolicy, PushSender, SignedAnswer,
    answer_message,
};
use crate::clock::Timestamp;
use crate::device::{
    Caller, CallerState, ConfirmedDevice, Device, DeviceConfig, DeviceId, Error, TwoFactor, UserId,
    Verification,
};
use crate::engine::Needs;
use crate::events::EventKind;
use crate::otp::random_bytes;
use crate::session::{OtpSession, SessionError, SessionVerification};
use crate::store::{LoginBinding, RateBucket, RateCount, RateKey};

/// The user's rate-limit counter of approvals asked for.
const REQUESTS_COUNTER: &str = "push-requests";
/// The user's rate-limit counter of answers given.
const ANSWERS_COUNTER: &str = "push-answers";
/// Longest push token accepted, in bytes (providers' tokens are a few hundred).
const MAX_TOKEN_LEN: usize = 4096;

/// An approval sent to the phone: what the login page shows while it waits.
#[derive(Clone)]
pub struct ApprovalRequested {
    /// The approval's id, to poll with (and, in the reference API's words, its `uuid`).
    pub id: ApprovalId,
    /// The push device asked.
    pub device: Device,
    /// The number to show on the login page: the phone must choose it to approve.
    pub number: u8,
    /// When the approval expires unanswered.
    pub expires_at: Timestamp,
}

impl fmt::Debug for ApprovalRequested {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApprovalRequested")
            .field("device", &self.device.id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// What [`TwoFactor::use_approval`] came to.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ApprovalUse {
    /// Not approved, or not any more: the approval as it stands (pending, denied, reported,
    /// expired or used).
    NotApproved(ApprovalRecord),
    /// Approved, and now used: the verification by the confirmed push device.
    Verified(Verification),
    /// Approved, for an enrolment: the push device is confirmed now.
    Confirmed(ConfirmedDevice),
}

/// What [`OtpSession::use_approval`] came to.
#[derive(Clone, Debug)]
pub struct SessionApproval {
    /// Where the approval stands now ([`ApprovalStatus::Used`] once it verified or confirmed).
    pub status: ApprovalStatus,
    /// When it expires (or expired) unanswered.
    pub expires_at: Timestamp,
    /// The session's verification by the approval, when it verified the session.
    pub verified: Option<SessionVerification>,
    /// The device the approval confirmed, for an enrolment.
    pub confirmed: Option<ConfirmedDevice>,
}

impl TwoFactor {
    /// Delivers approvals through `sender` (none by default: approvals are refused with
    /// `push_unavailable`).
    pub fn with_push_sender(self, sender: impl PushSender) -> Self {
        let sender: Arc<dyn PushSender> = Arc::new(sender);
        self.configure_push(|push| push.sender = Some(sender))
    }

    /// Lifetimes and fatigue limits of approvals.
    pub fn with_push_policy(self, policy: PushPolicy) -> Self {
        self.configure_push(|push| push.policy = policy)
    }

    /// The push settings.
    pub fn push_policy(&self) -> &PushPolicy {
        &self.push_settings().policy
    }

    /// Whether approvals can be sent: a push sender is configured.
    pub fn push_enabled(&self) -> bool {
        self.push_settings().sender.is_some()
    }

    /// Adds an unconfirmed push device for the caller's user: the app instance's push
    /// `token` and the Ed25519 `public_key` (32 bytes, unpadded base64url) it signs answers
    /// with. Confirm it by sending it an approval ([`TwoFactor::request_approval`]) and using
    /// the approved approval ([`TwoFactor::use_approval`]).
    ///
    /// A factor change, as [`TwoFactor::enroll_totp`].
    pub async fn enroll_push(
        &self,
        caller: impl Into<Caller>,
        name: &str,
        token: &str,
        public_key: &str,
    ) -> Result<Device, Error> {
        let caller = caller.into();
        if !self.push_enabled() {
            return Err(ApprovalError::Unavailable.into());
        }
        let key: PushKey = public_key.parse()?;
        if token.is_empty() || token.len() > MAX_TOKEN_LEN || token.chars().any(char::is_control) {
            return Err(Error::InvalidSettings(
                "the push token is 1 to 4096 bytes without control characters",
            ));
        }
        self.authorize(&caller, Needs::FactorChange).await?;
        let user = caller.user();
        let public_key = key.to_text();
        let devices = self.store().list_devices(user).await?;
        let same_key = |d: &Device| matches!(&d.config, DeviceConfig::Push { public_key: k, .. } if *k == public_key);
        if devices.iter().any(same_key) {
            return Err(Error::DuplicateDevice);
        }
        let config = DeviceConfig::Push {
            token: token.to_owned(),
            public_key,
        };
        self.add_device(user, DeviceId::generate(), name, false, config)
            .await
    }

    /// Sends an approval for the caller's login to the user's push device `device`
    /// (confirmed, or pending its first answer), bound to the caller's session like an
    /// out-of-band code ([`Caller::binding`]). The login shows the returned number; the phone
    /// offers it among three.
    ///
    /// Refused while the user is locked out ([`Error::Locked`]), has a live approval
    /// ([`ApprovalError::Busy`]), has been sent as many as the policy allows
    /// ([`ApprovalError::Limited`]) or reported a push recently ([`ApprovalError::Blocked`]).
    /// If the sender fails, the approval is withdrawn ([`Error::Delivery`]).
    pub async fn request_approval(
        &self,
        caller: impl Into<Caller>,
        device: &DeviceId,
    ) -> Result<ApprovalRequested, Error> {
        let caller = caller.into();
        let user = caller.user();
        let sender = self
            .push_settings()
            .sender
            .clone()
            .ok_or(ApprovalError::Unavailable)?;
        let (found, token) = self.push_device(user, device).await?;
        let now = self.now();
        self.refuse_if_locked(user, now).await?;
        let policy = *self.push_policy();
        let limits = [self.push_bucket(user, REQUESTS_COUNTER, policy.requests())];
        self.count_push(&limits, now).await?;
        let (id, key) = ApprovalId::generate(&self.store().user_tag(user));
        let number = random_number();
        let record = ApprovalRecord {
            user: user.clone(),
            device: device.clone(),
            binding: caller.binding().map(LoginBinding::new),
            number,
            created_at: now,
            expires_at: now.saturating_add(policy.lifetime()),
            context: self.approval_context(),
            status: ApprovalStatus::Pending,
            answered_at: None,
        };
        let retain_until = record.expires_at.saturating_add(policy.lifetime());
        let refusal = match self
            .store()
            .create_approval(&key, &record, retain_until)
            .await
        {
            Ok(ApprovalCreate::Created) => None,
            Ok(ApprovalCreate::Busy { until }) => Some(Error::from(ApprovalError::Busy {
                until,
                retry_after: until.since(now),
            })),
            Ok(ApprovalCreate::Blocked { until }) => Some(Error::from(ApprovalError::Blocked {
                until,
                retry_after: until.since(now),
            })),
            Err(error) => Some(error.into()),
        };
        if let Some(error) = refusal {
            self.uncount_push(&limits, now).await;
            return Err(error);
        }
        let message = PushMessage::new(
            user.clone(),
            device.clone(),
            token,
            id.clone(),
            choices_with(number),
            (record.created_at, record.expires_at),
            record.context.clone(),
        );
        if let Err(error) = sender.push(&message).await {
            // Withdrawn: an approval nobody was shown must not hold the user's one live slot.
            let withdrawn = self
                .store()
                .settle_approval(&key, ApprovalStatus::Denied, None, now)
                .await;
            tracing::debug!(user = %user, device = %device, reason = error.kind(), withdrawn = matches!(withdrawn, Ok(Some(_))), "approval not delivered");
            return Err(Error::Delivery(error));
        }
        tracing::debug!(user = %user, device = %device, "approval sent");
        self.emit(EventKind::ApprovalRequested, user, Some(&found));
        Ok(ApprovalRequested {
            id,
            device: found,
            number,
            expires_at: record.expires_at,
        })
    }

    /// Takes the phone's signed answer to approval `id`. No session is involved: the
    /// signature by the approval's device proves the answer, over [`answer_message`].
    ///
    /// Refused, changing nothing, with [`ApprovalError::NotFound`] (no such approval, or its
    /// device is gone), [`ApprovalError::BadSignature`], [`ApprovalError::StaleAnswer`] (the
    /// answer's time is more than the policy's skew from now, or before the approval),
    /// [`ApprovalError::AlreadyAnswered`], [`ApprovalError::Expired`], or
    /// [`ApprovalError::Limited`] past the policy's answers per window. An approval with the
    /// wrong number is settled as denied and refused with [`ApprovalError::WrongNumber`].
    /// Returns the settled approval.
    pub async fn answer_approval(
        &self,
        id: &str,
        answer: &SignedAnswer,
    ) -> Result<ApprovalRecord, Error> {
        let (id, key) = ApprovalId::parse(id).ok_or(ApprovalError::NotFound)?;
        let now = self.now();
        let record = self
            .store()
            .get_approval(&key)
            .await?
            .ok_or(ApprovalError::NotFound)?;
        let user = &record.user;
        let limits = [self.push_bucket(user, ANSWERS_COUNTER, self.push_policy().answers())];
        self.count_push(&limits, now).await?;
        let device = self
            .store()
            .get_device(user, &record.device)
            .await?
            .ok_or(ApprovalError::NotFound)?;
        let DeviceConfig::Push { public_key, .. } = &device.config else {
            return Err(ApprovalError::NotFound.into());
        };
        let key_of_device: PushKey = public_key.parse()?;
        let message = answer_message(&id, answer.decision, answer.number, answer.at);
        if !key_of_device.verifies(&message, &answer.signature) {
            self.refuse_answer(user, &device, ApprovalError::BadSignature);
            return Err(ApprovalError::BadSignature.into());
        }
        let skew = self.push_policy().answer_skew();
        let earliest = record.created_at.saturating_sub(skew);
        if answer.at.since(now) > skew || now.since(answer.at) > skew || answer.at < earliest {
            self.refuse_answer(user, &device, ApprovalError::StaleAnswer);
            return Err(ApprovalError::StaleAnswer.into());
        }
        match record.status_at(now) {
            ApprovalStatus::Pending => {}
            ApprovalStatus::Expired => {
                self.expire(&key, &record, &device, now).await?;
                return Err(ApprovalError::Expired.into());
            }
            _ => return Err(ApprovalError::AlreadyAnswered.into()),
        }
        let right_number = answer
            .number
            .is_some_and(|n| bool::from([n].ct_eq(&[record.number])));
        let (status, block_until) = match answer.decision {
            Decision::Approve if right_number => (ApprovalStatus::Approved, None),
            Decision::Approve | Decision::Deny => (ApprovalStatus::Denied, None),
            Decision::Report => (
                ApprovalStatus::Reported,
                Some(now.saturating_add(self.push_policy().report_block())),
            ),
        };
        let Some(settled) = self
            .store()
            .settle_approval(&key, status, block_until, now)
            .await?
        else {
            return Err(self.why_not_settled(&key).await?.into());
        };
        let kind = match (status, block_until) {
            (ApprovalStatus::Approved, _) => EventKind::ApprovalApproved,
            (ApprovalStatus::Reported, Some(blocked_until)) => {
                EventKind::ApprovalReported { blocked_until }
            }
            _ if answer.decision == Decision::Approve => EventKind::ApprovalDenied {
                reason: "wrong_number".into(),
            },
            _ => EventKind::ApprovalDenied {
                reason: "denied".into(),
            },
        };
        tracing::debug!(user = %user, device = %device.id, status = %status, "approval answered");
        self.emit(kind, user, Some(&device));
        if answer.decision == Decision::Approve && !right_number {
            return Err(ApprovalError::WrongNumber.into());
        }
        Ok(settled)
    }

    /// The approval `id` as it stands, for the login that asked for it only (any other
    /// caller gets [`ApprovalError::NotFound`]). An unanswered approval past its expiry is
    /// settled as expired (emitting `approval_expired` once).
    pub async fn approval(
        &self,
        caller: impl Into<Caller>,
        id: &str,
    ) -> Result<ApprovalRecord, Error> {
        let caller = caller.into();
        let (_, key) = ApprovalId::parse(id).ok_or(ApprovalError::NotFound)?;
        let mut record = self.own_approval(&caller, &key).await?;
        let now = self.now();
        if record.status_at(now) == ApprovalStatus::Expired {
            if let Some(device) = self
                .store()
                .get_device(caller.user(), &record.device)
                .await?
            {
                self.expire(&key, &record, &device, now).await?;
            }
            record.status = ApprovalStatus::Expired;
        }
        Ok(record)
    }

    /// Uses the approval `id` of the caller's login, once it is approved: exactly one call
    /// gets [`ApprovalUse::Verified`] (a verification by the push device, as a code's) or,
    /// for a device pending its first answer, [`ApprovalUse::Confirmed`], under the factor
    /// rule of [`TwoFactor::confirm_device`]. Otherwise the approval as it stands.
    pub async fn use_approval(
        &self,
        caller: impl Into<Caller>,
        id: &str,
    ) -> Result<ApprovalUse, Error> {
        let caller = caller.into();
        let record = self.approval(&caller, id).await?;
        if record.status != ApprovalStatus::Approved {
            return Ok(ApprovalUse::NotApproved(record));
        }
        let user = caller.user();
        // A lockout after too many wrong codes holds for every factor.
        self.refuse_if_locked(user, self.now()).await?;
        let device = self
            .store()
            .get_device(user, &record.device)
            .await?
            .ok_or(Error::DeviceNotFound)?;
        let only_if_first = !matches!(
            self.caller_state(&caller),
            CallerState::Fresh | CallerState::Administrator
        );
        if !device.confirmed && only_if_first {
            self.authorize(&caller, Needs::FactorChange).await?;
        }
        let (_, key) = ApprovalId::parse(id).ok_or(ApprovalError::NotFound)?;
        let binding = caller.binding().map(LoginBinding::new);
        let Some(used) = self.store().use_approval(&key, binding.as_ref()).await? else {
            // Another request of this login used it first.
            let record = self.approval(&caller, id).await?;
            return Ok(ApprovalUse::NotApproved(record));
        };
        let now = self.now();
        let verification = Verification {
            device,
            at: now,
            backup_codes_remaining: None,
        };
        if verification.device.confirmed {
            tracing::debug!(user = %user, device = %used.device, "second factor verified by push");
            self.emit(EventKind::UserVerified, user, Some(&verification.device));
            return Ok(ApprovalUse::Verified(verification));
        }
        let (confirmed, first) = self
            .settle_confirmed(verification.device.clone(), only_if_first)
            .await?;
        tracing::debug!(user = %user, device = %confirmed.id, first, "push device confirmed");
        self.emit(EventKind::DeviceConfirmed, user, Some(&confirmed));
        Ok(ApprovalUse::Confirmed(ConfirmedDevice {
            verification: Verification {
                device: confirmed,
                ..verification
            },
            first,
        }))
    }

    /// [`Error::Locked`] while the user is locked out after too many failed codes.
    async fn refuse_if_locked(&self, user: &UserId, now: Timestamp) -> Result<(), Error> {
        match self.store().user_failures(user).await? {
            (_, Some(until)) if until > now => Err(Error::Locked { until }),
            _ => Ok(()),
        }
    }

    /// Why the store did not settle an approval that was pending a moment ago: another answer
    /// came first, or the store's clock (ahead of this instance's) has it expired.
    async fn why_not_settled(&self, key: &ApprovalKey) -> Result<ApprovalError, Error> {
        let record = self.store().get_approval(key).await?;
        Ok(match record.map(|r| r.status) {
            Some(ApprovalStatus::Pending) => ApprovalError::Expired,
            Some(_) => ApprovalError::AlreadyAnswered,
            None => ApprovalError::NotFound,
        })
    }

    /// The approval at `key` if the caller's login asked for it.
    async fn own_approval(
        &self,
        caller: &Caller,
        key: &ApprovalKey,
    ) -> Result<ApprovalRecord, Error> {
        let record = self
            .store()
            .get_approval(key)
            .await?
            .ok_or(ApprovalError::NotFound)?;
        let binding = caller.binding().map(LoginBinding::new);
        if &record.user != caller.user() || record.binding != binding {
            return Err(ApprovalError::NotFound.into());
        }
        Ok(record)
    }

    /// Settles an approval past its expiry as expired; the one call that does emits
    /// `approval_expired`.
    async fn expire(
        &self,
        key: &ApprovalKey,
        record: &ApprovalRecord,
        device: &Device,
        now: Timestamp,
    ) -> Result<(), Error> {
        let settled = self
            .store()
            .settle_approval(key, ApprovalStatus::Expired, None, now)
            .await?;
        if settled.is_some() {
            self.emit(EventKind::ApprovalExpired, &record.user, Some(device));
        }
        Ok(())
    }

    /// Reports a refused answer as a failed verification of the device.
    fn refuse_answer(&self, user: &UserId, device: &Device, error: ApprovalError) {
        tracing::debug!(user = %user, device = %device.id, reason = error.kind(), "approval answer refused");
        let reason = error.kind().to_owned();
        self.emit(EventKind::VerificationFailed { reason }, user, Some(device));
    }

    /// The user's push device `device`, with its token.
    async fn push_device(
        &self,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<(Device, String), Error> {
        let found = self
            .store()
            .get_device(user, device)
            .await?
            .ok_or(Error::DeviceNotFound)?;
        let DeviceConfig::Push { token, .. } = &found.config else {
            return Err(Error::DeviceNotFound);
        };
        let token = token.clone();
        Ok((found, token))
    }

    /// What the phone shows about the current request's login.
    fn approval_context(&self) -> ApprovalContext {
        let request = crate::events::current_request(&[]);
        let issuer = self.issuer();
        ApprovalContext {
            client_addr: request.as_ref().and_then(|r| r.client_addr),
            user_agent: request.and_then(|r| r.user_agent),
            application: (!issuer.is_empty()).then(|| issuer.to_owned()),
        }
    }

    fn push_bucket(&self, user: &UserId, name: &str, limit: crate::store::RateLimit) -> RateBucket {
        RateBucket {
            key: RateKey::User {
                tag: self.store().user_tag(user),
                name: name.to_owned(),
            },
            limit,
        }
    }

    /// Counts a push event against `limits`, or refuses it with [`ApprovalError::Limited`].
    async fn count_push(&self, limits: &[RateBucket], now: Timestamp) -> Result<(), Error> {
        match self.store().count_rate_limited(limits, now).await? {
            RateCount::Counted => Ok(()),
            RateCount::Limited { until } => Err(ApprovalError::Limited {
                until,
                retry_after: until.since(now),
            }
            .into()),
        }
    }

    /// Takes back a request counted at `now` that did not happen. Should the store fail,
    /// the count stays: the limit is met a little early, never exceeded.
    async fn uncount_push(&self, limits: &[RateBucket], now: Timestamp) {
        if let Err(error) = self.store().uncount_rate_limited(limits, now).await {
            tracing::warn!(kind = error.kind(), "push count not taken back");
        }
    }
}

impl OtpSession {
    /// Uses an approval this session asked for ([`TwoFactor::use_approval`]): once the phone
    /// approved it, it verifies this session (rotating an own session's id), exactly once; an
    /// enrolment's approval confirms the push device, and verifies the session only if it is
    /// the user's first device. Until then, and for any other outcome, the approval's status.
    pub async fn use_approval(&self, id: &str) -> Result<SessionApproval, SessionError> {
        let two_factor = self.two_factor().clone();
        let step = |caller: Caller| async move {
            let used = two_factor.use_approval(&caller, id).await?;
            let verification = match &used {
                ApprovalUse::NotApproved(_) => None,
                ApprovalUse::Verified(verification) => Some(verification.clone()),
                ApprovalUse::Confirmed(confirmed) => {
                    confirmed.first.then(|| confirmed.verification.clone())
                }
            };
            Ok::<_, SessionError>((used, verification))
        };
        let (used, verified) = self.verify_with(step).await?;
        Ok(match used {
            ApprovalUse::NotApproved(record) => SessionApproval {
                status: record.status,
                expires_at: record.expires_at,
                verified,
                confirmed: None,
            },
            ApprovalUse::Verified(verification) => SessionApproval {
                status: ApprovalStatus::Used,
                expires_at: verification.at,
                verified,
                confirmed: None,
            },
            ApprovalUse::Confirmed(confirmed) => {
                if confirmed.first {
                    let device = &confirmed.verification.device;
                    self.two_factor()
                        .emit(EventKind::UserVerified, &device.user, Some(device));
                }
                SessionApproval {
                    status: ApprovalStatus::Used,
                    expires_at: confirmed.verification.at,
                    verified,
                    confirmed: Some(confirmed),
                }
            }
        })
    }
}

/// A two-digit number, 10 to 99, uniformly: bytes of 180 or more are drawn again.
fn random_number() -> u8 {
    loop {
        let byte = random_bytes(1)[0];
        if byte < 180 {
            return 10 + byte % 90;
        }
    }
}

/// `number` and two other two-digit numbers, in random order.
fn choices_with(number: u8) -> [u8; 3] {
    let mut choices = vec![number];
    while choices.len() < 3 {
        let other = random_number();
        if !choices.contains(&other) {
            choices.push(other);
        }
    }
    let at = usize::from(random_bytes(1)[0] % 3);
    choices.swap(0, at);
    [choices[0], choices[1], choices[2]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_have_two_digits_and_choices_hold_the_number_once() {
        for _ in 0..500 {
            let number = random_number();
            assert!((10..=99).contains(&number));
            let choices = choices_with(number);
            assert_eq!(choices.iter().filter(|c| **c == number).count(), 1);
            assert!(choices.iter().all(|c| (10..=99).contains(c)));
            assert_ne!(choices[1], choices[2]);
        }
    }
}
