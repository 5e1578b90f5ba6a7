//! The engine's WebAuthn ceremonies: registration and verification, each a begin and a finish
//! with the state between them in the store.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use webauthn_rs::prelude::{
    CreationChallengeResponse, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse, SecurityKey, SecurityKeyAuthentication, SecurityKeyRegistration,
    Uuid, WebauthnError,
};

use super::{CEREMONY_LIFETIME, RelyingParty};
use crate::clock::Timestamp;
use crate::device::{Device, DeviceConfig, DeviceId, Error, UserId};
use crate::engine::{
    Caller, CallerState, ConfirmedDevice, Needs, TwoFactor, Verification, check_name,
};
use crate::events::EventKind;
use crate::store::{
    AttemptGrant, AttemptPurpose, AttemptSlot, CeremonyKey, CeremonyPurpose, CeremonyState, KeyUse,
    LoginBinding,
};

/// What the browser passes to `navigator.credentials.create()` (as `publicKey`) to register a
/// key. Serialises to the JSON the W3C WebAuthn API describes, binary fields in base64url.
pub type KeyRegistrationOptions = CreationChallengeResponse;

/// What the browser passes to `navigator.credentials.get()` (as `publicKey`) to verify with a
/// key.
pub type KeyVerificationOptions = RequestChallengeResponse;

/// A registration between its begin and its finish.
#[derive(Serialize, Deserialize)]
struct PendingRegistration {
    name: String,
    state: SecurityKeyRegistration,
}

impl TwoFactor {
    /// Begins registering a security key named `name` for the caller's user: returns the
    /// options for the browser, and keeps the ceremony for this session for
    /// [`CEREMONY_LIFETIME`]. Beginning again replaces it.
    ///
    /// A factor change, as [`TwoFactor::enroll_totp`]; the user's keys are excluded, so an
    /// authenticator already registered declines.
    pub async fn begin_key_registration(
        &self,
        caller: impl Into<Caller>,
        name: &str,
    ) -> Result<KeyRegistrationOptions, Error> {
        let caller = caller.into();
        self.authorize(&caller, Needs::FactorChange).await?;
        let relying_party = self.require_relying_party()?;
        let name = check_name(name)?;
        let user = caller.user();
        let registered: Vec<_> = self
            .keys_of(user)
            .await?
            .iter()
            .filter_map(|(_, key)| key.as_ref().map(|k| k.cred_id().clone()))
            .collect();
        let (mut options, state) = relying_party
            .webauthn()
            .start_securitykey_registration(
                self.user_handle(user),
                user.as_str(),
                user.as_str(),
                Some(registered),
                None,
                None,
            )
            .map_err(|_| Error::InvalidSettings("the security-key options could not be made"))?;
        // Chromium refuses the whole registration (NotSupportedError) when asked to protect a
        // non-discoverable credential with "user verification required"; the key still
        // verifies its user where it can (user verification "preferred").
        if let Some(extensions) = options.public_key.extensions.as_mut() {
            extensions.cred_protect = None;
        }
        let pending = PendingRegistration { name, state };
        self.keep_ceremony(&caller, CeremonyPurpose::Register, &pending)
            .await?;
        Ok(options)
    }

    /// Finishes the caller's registration with the browser's `answer`: the key becomes a
    /// confirmed device of kind [`DeviceKind::WebAuthn`](crate::DeviceKind::WebAuthn).
    ///
    /// A factor change, as [`TwoFactor::confirm_device`]: a caller who has not verified
    /// freshly may only register the user's first factor, and that first key verifies the
    /// session, as a first confirmed device does ([`ConfirmedDevice::first`]).
    pub async fn finish_key_registration(
        &self,
        caller: impl Into<Caller>,
        answer: &RegisterPublicKeyCredential,
    ) -> Result<ConfirmedDevice, Error> {
        let caller = caller.into();
        let only_if_first = !matches!(
            self.caller_state(&caller),
            CallerState::Fresh | CallerState::Administrator
        );
        if only_if_first {
            self.authorize(&caller, Needs::FactorChange).await?;
        }
        let relying_party = self.require_relying_party()?;
        let pending: PendingRegistration = self
            .take_ceremony(&caller, CeremonyPurpose::Register)
            .await?;
        let user = caller.user();
        let key = relying_party
            .webauthn()
            .finish_securitykey_registration(answer, &pending.state)
            .map_err(|error| {
                tracing::debug!(user = %user, %error, "security key registration refused");
                Error::KeyRefused
            })?;
        let credential_id = credential_id_text(key.cred_id());
        let registered = self.keys_of(user).await?;
        if registered
            .iter()
            .any(|(device, _)| stored_credential_id(device) == Some(&credential_id))
        {
            return Err(Error::KeyRegisteredAlready);
        }
        let config = DeviceConfig::WebAuthn {
            credential_id,
            credential: serde_json::to_string(&key)
                .map_err(|_| Error::InvalidSettings("the security key could not be stored"))?,
        };
        let device = self
            .add_device(user, DeviceId::generate(), &pending.name, false, config)
            .await?;
        let (confirmed, first) = self.settle_confirmed(device, only_if_first).await?;
        tracing::debug!(user = %user, device = %confirmed.id, first, "security key registered");
        self.emit(EventKind::DeviceConfirmed, user, Some(&confirmed));
        Ok(ConfirmedDevice {
            verification: Verification {
                device: confirmed,
                at: self.now(),
                backup_codes_remaining: None,
            },
            first,
        })
    }

    /// Begins verifying the caller with one of the user's security keys: returns the options
    /// for the browser and keeps the ceremony for this session.
    /// [`Error::NotConfigured`] if the user has no key.
    pub async fn begin_key_verification(
        &self,
        caller: impl Into<Caller>,
    ) -> Result<KeyVerificationOptions, Error> {
        let caller = caller.into();
        let relying_party = self.require_relying_party()?;
        let keys: Vec<SecurityKey> = self
            .keys_of(caller.user())
            .await?
            .into_iter()
            .filter(|(device, _)| device.confirmed)
            .filter_map(|(_, key)| key)
            .collect();
        if keys.is_empty() {
            return Err(Error::NotConfigured);
        }
        let (options, state) = relying_party
            .webauthn()
            .start_securitykey_authentication(&keys)
            .map_err(|_| Error::InvalidSettings("the security-key options could not be made"))?;
        self.keep_ceremony(&caller, CeremonyPurpose::Authenticate, &state)
            .await?;
        Ok(options)
    }

    /// Finishes the caller's verification with the browser's `answer`. Counts as a code
    /// verification: throttled and locked as codes are, it verifies the session and makes the
    /// caller fresh for the factor rule, and emits `user_verified` with the key.
    ///
    /// A key whose signature counter did not move forward is refused with
    /// [`Error::CounterRegressed`] and reported as
    /// [`EventKind::WebauthnCounterRegressed`].
    pub async fn finish_key_verification(
        &self,
        caller: impl Into<Caller>,
        answer: &PublicKeyCredential,
    ) -> Result<Verification, Error> {
        let caller = caller.into();
        let relying_party = self.require_relying_party()?;
        let state: SecurityKeyAuthentication = self
            .take_ceremony(&caller, CeremonyPurpose::Authenticate)
            .await?;
        let user = caller.user();
        let confirmed: Vec<Device> = self
            .keys_of(user)
            .await?
            .into_iter()
            .map(|(device, _)| device)
            .filter(|device| device.confirmed)
            .collect();
        let answered = credential_id_text(answer.raw_id.as_ref());
        // An answer from a key the user does not have still counts, against their first key.
        let named = confirmed
            .iter()
            .find(|device| stored_credential_id(device) == Some(&answered));
        let Some(target) = named.or(confirmed.first()) else {
            return Err(Error::NotConfigured);
        };
        let now = self.now();
        let device = self.claim_attempt(user, &target.id, now).await?;
        let result = match relying_party
            .webauthn()
            .finish_securitykey_authentication(answer, &state)
        {
            Ok(result) if named.is_some() => result,
            Ok(_) => return Err(self.key_failed(&device, Error::KeyRefused, now).await),
            Err(WebauthnError::CredentialPossibleCompromise) => {
                // The counter is not above the one the key registered with.
                self.counter_regressed(&device, None);
                return Err(self.key_failed(&device, Error::CounterRegressed, now).await);
            }
            Err(error) => {
                tracing::debug!(user = %user, device = %device.id, %error, "security key answer refused");
                return Err(self.key_failed(&device, Error::KeyRefused, now).await);
            }
        };
        let seen = u64::from(result.counter());
        match self
            .store()
            .record_key_use(user, &device.id, seen, now)
            .await?
        {
            KeyUse::Recorded => self.verified(device, now, AttemptPurpose::Verify).await,
            KeyUse::CounterRegressed { stored } => {
                self.counter_regressed(&device, Some((seen, stored)));
                Err(self.key_failed(&device, Error::CounterRegressed, now).await)
            }
            KeyUse::Missing => Err(Error::DeviceNotFound),
        }
    }

    fn require_relying_party(&self) -> Result<&RelyingParty, Error> {
        self.relying_party().ok_or(Error::InvalidSettings(
            "security keys need a relying party (TwoFactor::with_webauthn)",
        ))
    }

    /// The user's live security keys, each with its credential (`None` if the stored
    /// credential cannot be read: such a key can never verify).
    async fn keys_of(&self, user: &UserId) -> Result<Vec<(Device, Option<SecurityKey>)>, Error> {
        Ok(self
            .store()
            .list_devices(user)
            .await?
            .into_iter()
            .filter_map(|device| match &device.config {
                DeviceConfig::WebAuthn { credential, .. } => {
                    let key = serde_json::from_str(credential).ok();
                    if key.is_none() {
                        tracing::warn!(user = %user, device = %device.id, "a stored security key cannot be read");
                    }
                    Some((device, key))
                }
                _ => None,
            })
            .collect())
    }

    /// The user handle keys keep: derived from the user's store tag, which is keyed by the
    /// server key, so that it tells nothing of the user id and is the same on every instance.
    fn user_handle(&self, user: &UserId) -> Uuid {
        let tag = self.store().user_tag(user);
        let digest = Sha256::digest(tag.as_str().as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Uuid::from_bytes(bytes)
    }

    fn ceremony_key(&self, caller: &Caller, purpose: CeremonyPurpose) -> CeremonyKey {
        CeremonyKey {
            user: caller.user().clone(),
            binding: caller.binding().map(LoginBinding::new),
            purpose,
        }
    }

    async fn keep_ceremony(
        &self,
        caller: &Caller,
        purpose: CeremonyPurpose,
        state: &impl Serialize,
    ) -> Result<(), Error> {
        let state = CeremonyState {
            state: serde_json::to_string(state)
                .map_err(|_| Error::InvalidSettings("the ceremony could not be stored"))?,
            expires_at: self.now().saturating_add(CEREMONY_LIFETIME),
        };
        let key = self.ceremony_key(caller, purpose);
        Ok(self.store().put_ceremony(&key, &state).await?)
    }

    /// Takes the caller's ceremony for `purpose`: once, and only in the session that began it.
    async fn take_ceremony<T: for<'de> Deserialize<'de>>(
        &self,
        caller: &Caller,
        purpose: CeremonyPurpose,
    ) -> Result<T, Error> {
        let key = self.ceremony_key(caller, purpose);
        let taken = self.store().take_ceremony(&key, self.now()).await?;
        let state = taken.ok_or(Error::CeremonyMissing)?;
        serde_json::from_str(&state.state).map_err(|_| Error::CeremonyMissing)
    }

    /// Counts an attempt on the key `id`, as a code attempt is counted.
    async fn claim_attempt(
        &self,
        user: &UserId,
        id: &DeviceId,
        now: Timestamp,
    ) -> Result<Device, Error> {
        let grant = self
            .store()
            .begin_attempt(
                user,
                std::slice::from_ref(id),
                AttemptPurpose::Verify,
                self.throttle_policy(),
                now,
            )
            .await?;
        let slot = match grant {
            AttemptGrant::Locked { until } => {
                self.emit(EventKind::Locked { until }, user, None);
                return Err(Error::Locked { until });
            }
            AttemptGrant::Slots(slots) => slots.into_iter().next(),
        };
        match slot {
            Some(AttemptSlot::Allowed(device)) => Ok(*device),
            Some(AttemptSlot::Throttled { until }) => {
                self.emit(
                    EventKind::Throttled {
                        retry_at: until,
                        count: 1,
                    },
                    user,
                    None,
                );
                Err(Error::Throttled {
                    until,
                    retry_after: until.since(now),
                })
            }
            Some(AttemptSlot::NotConfirmed) => Err(Error::NotConfirmed),
            _ => Err(Error::DeviceNotFound),
        }
    }

    /// Reports a failed attempt on `device` (the attempt stays counted) and returns `error`.
    async fn key_failed(&self, device: &Device, error: Error, now: Timestamp) -> Error {
        let reason = error.kind().to_owned();
        self.emit(
            EventKind::VerificationFailed { reason },
            &device.user,
            Some(device),
        );
        self.announce_lock_set_at(&device.user, now).await;
        error
    }

    /// Reports a key whose counter went backwards: `seen` and `stored` when the store
    /// compared them.
    fn counter_regressed(&self, device: &Device, counters: Option<(u64, u64)>) {
        tracing::warn!(user = %device.user, device = %device.id, ?counters, "a security key's signature counter went backwards: it may have been cloned");
        self.emit(
            EventKind::WebauthnCounterRegressed,
            &device.user,
            Some(device),
        );
    }
}

fn credential_id_text(id: &[u8]) -> String {
    data_encoding::BASE64URL_NOPAD.encode(id)
}

fn stored_credential_id(device: &Device) -> Option<&String> {
    match &device.config {
        DeviceConfig::WebAuthn { credential_id, .. } => Some(credential_id),
        _ => None,
    }
}
