//! The engine: [`TwoFactor`] enrols devices, manages them and verifies codes over a
//! [`Store`], applying the verification policy of [`device`](crate::device) (tolerance, drift,
//! replay protection, throttling) and the factor rule of [`Caller`]: a password alone never
//! adds, confirms or removes a second factor of a user who has one.
//!
//! It needs no HTTP: [`OtpLayer`](crate::layer::OtpLayer) and the JSON API are built on it,
//! and an application can call it directly (a command-line tool, a job, a back office).
//! Out-of-band codes go out through the senders of [`delivery`](crate::delivery).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SharedClock, Timestamp, system_clock};
use crate::events::{DeviceRef, EventKind, Events};
use crate::otp::{Algorithm, Digits, OtpKey, OtpauthUri, Secret, TotpParams};
use crate::remember::{BrowserId, RememberedBrowser};
use crate::store::{
    AttemptPurpose as Purpose, Challenge, ChallengePut, ConfirmOutcome, DeviceInsert, DeviceLimits,
    LoginBinding, RateBucket, RateCount, SharedStore, Store,
};

use crate::delivery::{Message, Sender};
use crate::device::out_of_band::{
    ChallengeSent, OutOfBandPolicy, generate_code, limit_identity, mask_destination,
    normalise_destination,
};
use crate::device::{
    BackupCodePolicy, BackupCodes, HotpPolicy, SecretSealer, ServerKey, ThrottlePolicy, TotpPolicy,
};
use crate::device::{Device, DeviceConfig, DeviceId, DeviceKind, DeviceState, Error, UserId};

/// Hash purposes, one derived key each.
const BACKUP_CODE_PURPOSE: &str = "backup-code";
const CHALLENGE_PURPOSE: &str = "challenge-code";
const SEND_DESTINATION_PURPOSE: &str = "send-destination";

mod caller;
mod methods;
mod verify;

pub use caller::{Caller, CallerState};
pub use methods::Method;

/// Longest device name, in characters.
const MAX_NAME_CHARS: usize = 64;

/// How recent a code verification must be to change factors, by default (NIST SP 800-63B-4
/// suggests reauthentication after at most this long for sensitive operations).
const DEFAULT_REAUTHENTICATION_WINDOW: Duration = Duration::from_secs(20 * 60);

/// Enrols devices, manages them and verifies codes, applying the crate's verification policy
/// (tolerance, drift, replay protection, throttling) over a [`Store`].
///
/// Cheap to clone; clones share configuration and store.
///
/// ```
/// use tower_otp::{ServerKey, TwoFactor, UserId};
/// use tower_otp::device::TotpSettings;
/// use tower_otp::store::MemoryStore;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::generate())
///     .with_issuer("ACME")
///     .unwrap();
/// let alice = UserId::new("alice").unwrap();
///
/// // Enrol: show `uri` as a QR code, then confirm with the first code the app shows.
/// let enrolment = two_factor
///     .enroll_totp(&alice, "Phone", "alice@example.com", TotpSettings::default())
///     .await
///     .unwrap();
/// let code = enrolment.current_code(two_factor.now());
/// two_factor.confirm_device(&alice, &enrolment.device.id, &code).await.unwrap();
///
/// // The same code cannot be used twice.
/// let again = two_factor.verify(&alice, &enrolment.device.id, &code).await;
/// assert_eq!(again.unwrap_err().kind(), "replayed_code");
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct TwoFactor {
    inner: Arc<Inner>,
}

#[derive(Clone, Debug)]
struct Inner {
    store: SharedStore,
    clock: SharedClock,
    server_key: ServerKey,
    sealer: SecretSealer,
    issuer: String,
    totp: TotpPolicy,
    hotp: HotpPolicy,
    backup: BackupCodePolicy,
    throttle: ThrottlePolicy,
    out_of_band: OutOfBandPolicy,
    senders: BTreeMap<String, Arc<dyn Sender>>,
    limits: DeviceLimits,
    pending_lifetime: Duration,
    reauthentication_window: Duration,
    events: Events,
    #[cfg(feature = "push")]
    push: crate::push::PushSettings,
    #[cfg(feature = "webauthn")]
    relying_party: Option<Arc<crate::webauthn::RelyingParty>>,
}

/// What an operation asks of its caller (see [`Caller`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Needs {
    /// Changes the user's factors: a fresh code verification once the user has a factor.
    FactorChange,
    /// Touches the user's factors without changing what verifies (a name, the default): any
    /// verification once the user has a factor.
    Verified,
}

/// Settings of a new TOTP device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TotpSettings {
    /// Hash function (default SHA1, the only one every app supports).
    pub algorithm: Algorithm,
    /// Code length (default 6).
    pub digits: Digits,
    /// Step and start time (default 30 s from the epoch).
    pub params: TotpParams,
}

/// Settings of a new HOTP device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct HotpSettings {
    /// Hash function (default SHA1).
    pub algorithm: Algorithm,
    /// Code length (default 6).
    pub digits: Digits,
}

/// A new, unconfirmed device and what its owner needs to set it up. Show it once.
#[derive(Clone, Debug)]
pub struct Enrollment {
    /// The device, unconfirmed until [`TwoFactor::confirm_device`] accepts a code from it.
    pub device: Device,
    /// The shared secret, for manual entry (`secret.to_base32()`).
    pub secret: Secret,
    /// The `otpauth://` URI to show as a QR code.
    pub uri: OtpauthUri,
}

impl Enrollment {
    /// The code the device shows at `now` (TOTP) or next (HOTP). For tests and examples:
    /// a real client computes it on the device.
    pub fn current_code(&self, now: Timestamp) -> String {
        let code = match &self.device.config {
            DeviceConfig::Totp {
                algorithm,
                digits,
                params,
                ..
            } => {
                let step = params.time_step(now.as_secs()).unwrap_or(0);
                OtpKey::new(self.secret.clone(), *algorithm, *digits).hotp(step)
            }
            DeviceConfig::Hotp {
                algorithm, digits, ..
            } => OtpKey::new(self.secret.clone(), *algorithm, *digits)
                .hotp(self.device.state.next_counter),
            _ => return String::new(),
        };
        code.reveal().to_owned()
    }
}

/// A new set of backup codes and the device that holds them.
#[derive(Clone, Debug)]
pub struct BackupCodeSet {
    /// The user's backup-code device.
    pub device: Device,
    /// The codes, to show once.
    pub codes: BackupCodes,
}

/// A device confirmed by [`TwoFactor::confirm_device`].
#[derive(Clone, Debug)]
pub struct ConfirmedDevice {
    /// The confirming code's verification; its device is now confirmed.
    pub verification: Verification,
    /// Whether it is the user's first confirmed device: only then may the confirmation
    /// verify the session it happened in.
    pub first: bool,
}

/// A successful verification.
#[derive(Clone, Debug)]
pub struct Verification {
    /// The device that verified (as it was before this verification).
    pub device: Device,
    /// When.
    pub at: Timestamp,
    /// For a backup code: how many codes remain.
    pub backup_codes_remaining: Option<u64>,
}

impl TwoFactor {
    /// A `TwoFactor` over `store`, hashing codes under keys derived from `server_key`.
    pub fn new(store: impl Store, server_key: ServerKey) -> Self {
        Self::from_shared(Arc::new(store), server_key)
    }

    /// A `TwoFactor` over a store that is shared with other components.
    ///
    /// It binds the user-tag key derived from `server_key` into the store (see
    /// [`Store::bind_tag_key`]): every instance sharing a store must use the same `server_key`.
    pub fn from_shared(store: SharedStore, server_key: ServerKey) -> Self {
        store.bind_tag_key(server_key.tag_key());
        TwoFactor {
            inner: Arc::new(Inner {
                store,
                clock: system_clock(),
                server_key,
                sealer: SecretSealer::plaintext(),
                issuer: String::new(),
                totp: TotpPolicy::default(),
                hotp: HotpPolicy::default(),
                backup: BackupCodePolicy::default(),
                throttle: ThrottlePolicy::default(),
                out_of_band: OutOfBandPolicy::default(),
                senders: BTreeMap::new(),
                limits: DeviceLimits::default(),
                pending_lifetime: Duration::from_secs(15 * 60),
                reauthentication_window: DEFAULT_REAUTHENTICATION_WINDOW,
                events: Events::new(),
                #[cfg(feature = "push")]
                push: crate::push::PushSettings::default(),
                #[cfg(feature = "webauthn")]
                relying_party: None,
            }),
        }
    }

    fn configure(mut self, change: impl FnOnce(&mut Inner)) -> Self {
        change(Arc::make_mut(&mut self.inner));
        self
    }

    /// Reads time from `clock` (tests pass a [`ManualClock`](crate::clock::ManualClock)).
    pub fn with_clock(self, clock: impl Clock) -> Self {
        self.with_shared_clock(Arc::new(clock))
    }

    /// Reads time from a shared clock.
    pub fn with_shared_clock(self, clock: SharedClock) -> Self {
        self.configure(|c| c.clock = clock)
    }

    /// The issuer shown in authenticator apps: your service's name (default: none).
    ///
    /// Checked now rather than at each enrolment: an issuer that no provisioning URI can
    /// carry, one with a `:` (it separates issuer and account in the apps' label, and the
    /// format cannot escape it) or longer than 256 bytes, is refused here with a
    /// [`ProvisioningError`](crate::otp::ProvisioningError) instead of failing every
    /// enrolment later. Like the crate's other settings that can be wrong
    /// ([`SessionConfig`](crate::session::SessionConfig)), it returns a `Result` at
    /// configuration time, so that a name read from configuration and a literal alike need
    /// only a `?`, with no separate issuer type to build.
    ///
    /// ```
    /// use tower_otp::{MemoryStore, ServerKey, TwoFactor};
    ///
    /// let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::generate());
    /// assert!(two_factor.clone().with_issuer("ACME").is_ok());
    /// let refused = two_factor.with_issuer("ACME:EU").unwrap_err();
    /// assert_eq!(refused.to_string(), "issuer and account name must not contain ':'");
    /// ```
    pub fn with_issuer(
        self,
        issuer: impl Into<String>,
    ) -> Result<Self, crate::otp::ProvisioningError> {
        let issuer = issuer.into();
        crate::otp::check_issuer(&issuer)?;
        Ok(self.configure(|c| c.issuer = issuer))
    }

    /// Seals device secrets at rest with these keys (default: stored unencrypted).
    pub fn with_sealer(self, sealer: SecretSealer) -> Self {
        self.configure(|c| c.sealer = sealer)
    }

    /// TOTP tolerance and drift settings.
    pub fn with_totp_policy(self, policy: TotpPolicy) -> Self {
        self.configure(|c| c.totp = policy)
    }

    /// HOTP look-ahead.
    pub fn with_hotp_policy(self, policy: HotpPolicy) -> Self {
        self.configure(|c| c.hotp = policy)
    }

    /// Number and length of backup codes.
    pub fn with_backup_code_policy(self, policy: BackupCodePolicy) -> Self {
        self.configure(|c| c.backup = policy)
    }

    /// Throttling settings.
    pub fn with_throttle_policy(self, policy: ThrottlePolicy) -> Self {
        self.configure(|c| c.throttle = policy)
    }

    /// Code length, validity, tries, resend cooldown and send limits of out-of-band codes.
    pub fn with_out_of_band_policy(self, policy: OutOfBandPolicy) -> Self {
        self.configure(|c| c.out_of_band = policy)
    }

    /// Delivers the codes of out-of-band devices on `channel` through `sender`, replacing
    /// any sender registered for that channel before. Devices can only be added on channels
    /// with a sender.
    pub fn with_sender(self, channel: impl Into<String>, sender: impl Sender) -> Self {
        let (channel, sender) = (channel.into(), Arc::new(sender));
        self.configure(|c| {
            c.senders.insert(channel, sender);
        })
    }

    /// The most devices a user may have, confirmed or not (default 20).
    pub fn with_max_devices(self, max: usize) -> Self {
        self.configure(|c| c.limits.max_devices = limit(max))
    }

    /// The most unconfirmed devices a user may have at once (default 3). Adding one more
    /// fails with [`Error::TooManyPendingDevices`] until one is confirmed, deleted or expired.
    pub fn with_max_pending_devices(self, max: usize) -> Self {
        self.configure(|c| c.limits.max_pending = limit(max))
    }

    /// How long a new device may stay unconfirmed (default 15 minutes). Past that the store
    /// forgets it, and it must be added again.
    pub fn with_pending_device_lifetime(self, lifetime: Duration) -> Self {
        self.configure(|c| c.pending_lifetime = lifetime)
    }

    /// How recent a code verification must be for a caller to change the factors of a user
    /// who has a confirmed device (default 20 minutes). See [`Caller`].
    pub fn with_reauthentication_window(self, window: Duration) -> Self {
        self.configure(|c| c.reauthentication_window = window)
    }

    /// The re-verification window (see [`TwoFactor::with_reauthentication_window`]).
    pub fn reauthentication_window(&self) -> Duration {
        self.inner.reauthentication_window
    }

    /// The state of `caller` now (see [`Caller`]).
    pub fn caller_state(&self, caller: &Caller) -> CallerState {
        caller.state(self.now(), self.inner.reauthentication_window)
    }

    /// Emits events on `events` (default: a bus of its own, see [`TwoFactor::events`]).
    pub fn with_events(self, events: Events) -> Self {
        self.configure(|c| c.events = events)
    }

    /// Accepts security keys and passkeys (WebAuthn) for `relying_party`: the site that
    /// registers them and that they answer (see [`crate::webauthn`]).
    #[cfg(feature = "webauthn")]
    #[cfg_attr(docsrs, doc(cfg(feature = "webauthn")))]
    pub fn with_webauthn(self, relying_party: crate::webauthn::RelyingParty) -> Self {
        let relying_party = Arc::new(relying_party);
        self.configure(|c| c.relying_party = Some(relying_party))
    }

    /// The relying party security keys answer, if configured.
    #[cfg(feature = "webauthn")]
    pub(crate) fn relying_party(&self) -> Option<&crate::webauthn::RelyingParty> {
        self.inner.relying_party.as_deref()
    }

    /// The event bus: register hooks and subscribe here.
    pub fn events(&self) -> &Events {
        &self.inner.events
    }

    pub(crate) fn emit(&self, kind: EventKind, user: &UserId, device: Option<&Device>) {
        self.inner
            .events
            .emit(kind, user, device.map(DeviceRef::from), self.now());
    }

    /// The store.
    pub fn store(&self) -> &SharedStore {
        &self.inner.store
    }

    /// The clock.
    pub fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }

    /// The push settings (see [`push`](crate::push)).
    #[cfg(feature = "push")]
    pub(crate) fn push_settings(&self) -> &crate::push::PushSettings {
        &self.inner.push
    }

    /// The same engine with its push settings changed.
    #[cfg(feature = "push")]
    pub(crate) fn configure_push(
        self,
        change: impl FnOnce(&mut crate::push::PushSettings),
    ) -> Self {
        self.configure(|c| change(&mut c.push))
    }

    /// The issuer, as configured (empty if none).
    #[cfg(feature = "push")]
    pub(crate) fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The current time by this instance's clock.
    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// The throttling settings.
    pub fn throttle_policy(&self) -> &ThrottlePolicy {
        &self.inner.throttle
    }

    /// The out-of-band code settings.
    pub fn out_of_band_policy(&self) -> &OutOfBandPolicy {
        &self.inner.out_of_band
    }

    /// The channels that have a sender.
    pub fn channels(&self) -> impl Iterator<Item = &str> {
        self.inner.senders.keys().map(String::as_str)
    }

    /// The key from which keys for other purposes are derived (the pages' CSRF tokens).
    #[cfg(feature = "ui")]
    pub(crate) fn server_key(&self) -> &ServerKey {
        &self.inner.server_key
    }

    // ----- enrolment -----------------------------------------------------------------------

    /// Adds an unconfirmed TOTP device for the caller's user, labelled `account` in the user's
    /// app.
    ///
    /// A factor change: for a user who has a confirmed device, `caller` must have verified
    /// with a code within the re-verification window ([`Error::VerificationRequired`] or
    /// [`Error::ReauthenticationRequired`] otherwise; see [`Caller`]). A `&UserId` is a caller
    /// who passed the first factor only, which is enough only while the user has no factor.
    pub async fn enroll_totp(
        &self,
        caller: impl Into<Caller>,
        name: &str,
        account: &str,
        settings: TotpSettings,
    ) -> Result<Enrollment, Error> {
        let caller = caller.into();
        self.authorize(&caller, Needs::FactorChange).await?;
        let user = caller.user();
        if !(1..=3600).contains(&settings.params.step) {
            return Err(Error::InvalidSettings(
                "the TOTP step must be 1 to 3600 seconds",
            ));
        }
        let secret = Secret::generate(settings.algorithm.secret_len())
            .map_err(|_| Error::InvalidSettings("secret length"))?;
        let uri = OtpauthUri::totp(
            &self.inner.issuer,
            account,
            &secret,
            settings.algorithm,
            settings.digits,
            settings.params.step,
        )?;
        let id = DeviceId::generate();
        let config = DeviceConfig::Totp {
            secret: self.inner.sealer.seal(&secret, user, &id),
            algorithm: settings.algorithm,
            digits: settings.digits,
            params: settings.params,
        };
        let device = self.add_device(user, id, name, false, config).await?;
        Ok(Enrollment {
            device,
            secret,
            uri,
        })
    }

    /// Adds an unconfirmed HOTP device for the caller's user, labelled `account`.
    ///
    /// A factor change, as [`TwoFactor::enroll_totp`].
    pub async fn enroll_hotp(
        &self,
        caller: impl Into<Caller>,
        name: &str,
        account: &str,
        settings: HotpSettings,
    ) -> Result<Enrollment, Error> {
        let caller = caller.into();
        self.authorize(&caller, Needs::FactorChange).await?;
        let user = caller.user();
        let secret = Secret::generate(settings.algorithm.secret_len())
            .map_err(|_| Error::InvalidSettings("secret length"))?;
        let uri = OtpauthUri::hotp(
            &self.inner.issuer,
            account,
            &secret,
            settings.algorithm,
            settings.digits,
            0,
        )?;
        let id = DeviceId::generate();
        let config = DeviceConfig::Hotp {
            secret: self.inner.sealer.seal(&secret, user, &id),
            algorithm: settings.algorithm,
            digits: settings.digits,
        };
        let device = self.add_device(user, id, name, false, config).await?;
        Ok(Enrollment {
            device,
            secret,
            uri,
        })
    }

    /// Adds an unconfirmed out-of-band device for the caller's user: codes will go to
    /// `destination` through the sender registered for `channel`. The destination is checked and normalised
    /// for its channel (see [`out_of_band`](crate::device::out_of_band)).
    ///
    /// Confirm it by sending a challenge ([`TwoFactor::send_challenge`]) and passing the code
    /// the user received to [`TwoFactor::confirm_device`]. Adding a destination that the user
    /// already has, unconfirmed, on that channel returns that device (renamed to `name`), so
    /// its resend cooldown still applies; a confirmed one is [`Error::DuplicateDevice`].
    ///
    /// A factor change, as [`TwoFactor::enroll_totp`]: a password alone never points codes at
    /// a new destination of a user who has a factor.
    pub async fn add_out_of_band_device(
        &self,
        caller: impl Into<Caller>,
        name: &str,
        channel: &str,
        destination: &str,
    ) -> Result<Device, Error> {
        let caller = caller.into();
        if !self.inner.senders.contains_key(channel) {
            return Err(Error::UnknownChannel);
        }
        self.authorize(&caller, Needs::FactorChange).await?;
        let user = caller.user();
        let destination = normalise_destination(channel, destination)?;
        let existing = self.inner.store.list_devices(user).await?;
        let same = existing.into_iter().find(|d| {
            matches!(&d.config, DeviceConfig::OutOfBand { channel: c, destination: to, .. }
                if c == channel && *to == destination)
        });
        match same {
            Some(device) if device.confirmed => Err(Error::DuplicateDevice),
            Some(device) => {
                let name = check_name(name)?;
                self.modify_device(user, &device.id, |d| d.name = name)
                    .await
            }
            None => {
                let config = DeviceConfig::OutOfBand {
                    channel: channel.to_owned(),
                    destination,
                    digits: self.inner.out_of_band.digits(),
                };
                self.add_device(user, DeviceId::generate(), name, false, config)
                    .await
            }
        }
    }

    pub(crate) async fn add_device(
        &self,
        user: &UserId,
        id: DeviceId,
        name: &str,
        confirmed: bool,
        config: DeviceConfig,
    ) -> Result<Device, Error> {
        let device = self.new_device(user, id, name, confirmed, config)?;
        let outcome = self
            .inner
            .store
            .insert_device(&device, &self.inner.limits)
            .await?;
        self.inserted(device, outcome)
    }

    /// A device record for `user`, unconfirmed ones with their deadline.
    fn new_device(
        &self,
        user: &UserId,
        id: DeviceId,
        name: &str,
        confirmed: bool,
        config: DeviceConfig,
    ) -> Result<Device, Error> {
        let now = self.now();
        Ok(Device {
            id,
            user: user.clone(),
            name: check_name(name)?,
            confirmed,
            pending_until: (!confirmed).then(|| now.saturating_add(self.inner.pending_lifetime)),
            is_default: false,
            created_at: now,
            config,
            state: DeviceState::default(),
        })
    }

    /// The device, if the store took it (announcing it), or why not.
    fn inserted(&self, device: Device, outcome: DeviceInsert) -> Result<Device, Error> {
        match outcome {
            DeviceInsert::Inserted => {
                tracing::debug!(user = %device.user, device = %device.id, kind = %device.kind(), "device added");
                self.emit(EventKind::DeviceAdded, &device.user, Some(&device));
                Ok(device)
            }
            DeviceInsert::TooManyDevices => Err(Error::TooManyDevices),
            DeviceInsert::TooManyPending => Err(Error::TooManyPendingDevices),
            DeviceInsert::BackupCodesExist(_) => Err(Error::DuplicateDevice),
        }
    }

    /// Confirms a new device with a code from it. The code counts as used.
    ///
    /// A factor change: a caller verified by a code within the re-verification window may
    /// confirm any pending device. Any other caller may confirm only the user's *first*
    /// device, and only while the user has no confirmed one ([`Error::VerificationRequired`]
    /// or [`Error::ReauthenticationRequired`] otherwise, before the code is counted). When the
    /// first device is confirmed, every other pending device of the user is deleted, so a
    /// device added earlier by someone who knew the password never becomes usable.
    ///
    /// Only a first device may verify the session that confirmed it
    /// ([`ConfirmedDevice::first`]); [`OtpSession::confirm_device`](crate::session::OtpSession::confirm_device)
    /// does that.
    pub async fn confirm_device(
        &self,
        caller: impl Into<Caller>,
        device: &DeviceId,
        input: &str,
    ) -> Result<ConfirmedDevice, Error> {
        let caller = caller.into();
        let only_if_first = !matches!(
            self.caller_state(&caller),
            CallerState::Fresh | CallerState::Administrator
        );
        if only_if_first {
            self.authorize(&caller, Needs::FactorChange).await?;
        }
        let user = caller.user();
        let verification = self
            .attempt(&caller, vec![device.clone()], &[], input, Purpose::Confirm)
            .await?;
        let (confirmed, first) = self
            .settle_confirmed(verification.device.clone(), only_if_first)
            .await?;
        tracing::debug!(user = %user, device = %device, first, "device confirmed");
        self.emit(EventKind::DeviceConfirmed, user, Some(&confirmed));
        Ok(ConfirmedDevice {
            verification: Verification {
                device: confirmed,
                ..verification
            },
            first,
        })
    }

    /// Marks `device` confirmed, in one store operation; returns it and whether it is the
    /// user's first confirmed device. With `only_if_first`, refuses if the user has another
    /// confirmed device by now. Confirming the first device deletes the user's other pending
    /// devices.
    pub(crate) async fn settle_confirmed(
        &self,
        mut device: Device,
        only_if_first: bool,
    ) -> Result<(Device, bool), Error> {
        let outcome = self
            .inner
            .store
            .confirm_device(&device.user, &device.id, only_if_first)
            .await?;
        let first = match outcome {
            ConfirmOutcome::Confirmed { first } => first,
            ConfirmOutcome::AlreadyConfirmed => return Err(Error::AlreadyConfirmed),
            ConfirmOutcome::NotFirst => return Err(Error::VerificationRequired),
            ConfirmOutcome::Missing => return Err(Error::DeviceNotFound),
        };
        device.confirmed = true;
        device.pending_until = None;
        Ok((device, first))
    }

    // ----- out-of-band codes --------------------------------------------------------------

    /// Sends a new code to the user's out-of-band device `device` (confirmed or not),
    /// replacing any code sent before. The code works once, until the returned expiry, for
    /// the login of `caller` only (see [`Caller::binding`]; a caller without a session sends a
    /// code that only callers without one can use), and for at most the policy's
    /// [`max_tries`](OutOfBandPolicy::max_tries) attempts.
    ///
    /// Refused with [`Error::Locked`] while the user is locked out, with
    /// [`Error::SendLimited`] when the user or the destination has been sent as many codes as
    /// the policy's send limits allow (see [`out_of_band`](crate::device::out_of_band)), and with
    /// [`Error::Cooldown`] while the last code is younger than the policy's cooldown (such a
    /// refusal does not count against the send limits). The store keeps only the code's keyed
    /// hash, written *before* sending so that the cooldown holds against concurrent requests;
    /// if the sender fails, that hash is withdrawn again ([`Error::Delivery`]): no undelivered
    /// code stays valid, and the user may ask again at once, within the send limits. (Should
    /// the store fail at that moment too, the undelivered code stays until it expires; nobody
    /// has seen it.)
    pub async fn send_challenge(
        &self,
        caller: impl Into<Caller>,
        device: &DeviceId,
    ) -> Result<ChallengeSent, Error> {
        let caller = caller.into();
        let user = caller.user();
        let (found, channel, destination, digits) = self.out_of_band_device(user, device).await?;
        let sender = self
            .inner
            .senders
            .get(&channel)
            .ok_or(Error::UnknownChannel)?;
        let now = self.now();
        if let (_, Some(until)) = self.inner.store.user_failures(user).await?
            && until > now
        {
            return Err(Error::Locked { until });
        }
        let limits = self.send_buckets(&found, &channel, &destination);
        self.count_send(&limits, now).await?;
        let code = generate_code(digits);
        let policy = &self.inner.out_of_band;
        let challenge = Challenge {
            hash: self
                .inner
                .server_key
                .hash_code(CHALLENGE_PURPOSE, user, device, &code),
            expires_at: now.saturating_add(policy.validity()),
            resend_after: now.saturating_add(policy.cooldown()),
            binding: caller.binding().map(LoginBinding::new),
            max_tries: policy.max_tries(),
            tries: 0,
        };
        if let ChallengePut::Cooldown { until } = self
            .inner
            .store
            .put_challenge(user, device, &challenge, now)
            .await?
        {
            self.uncount_send(&limits, now).await;
            return Err(Error::Cooldown {
                until,
                retry_after: until.since(now),
            });
        }
        let masked_destination = mask_destination(&channel, &destination);
        let message = Message::new(
            user.clone(),
            device.clone(),
            channel.clone(),
            destination,
            code,
            challenge.expires_at,
            policy.validity(),
        );
        self.deliver(&**sender, &message, &challenge).await?;
        self.emit(
            EventKind::ChallengeSent {
                channel: channel.clone(),
            },
            user,
            Some(&found),
        );
        Ok(ChallengeSent {
            device_id: device.clone(),
            channel,
            masked_destination,
            expires_at: challenge.expires_at,
            resend_after: challenge.resend_after,
        })
    }

    /// The rate-limit counters a send to `device` counts in (see [`OutOfBandPolicy`]); the
    /// destination is counted under a keyed digest, never in clear.
    fn send_buckets(&self, device: &Device, channel: &str, destination: &str) -> Vec<RateBucket> {
        let identity = limit_identity(channel, destination);
        let digest = self
            .inner
            .server_key
            .digest(SEND_DESTINATION_PURPOSE, &[&identity]);
        let tag = self.inner.store.user_tag(&device.user);
        self.inner
            .out_of_band
            .send_buckets(&tag, !device.confirmed, &digest)
    }

    /// Counts a send against `limits`, or refuses it with [`Error::SendLimited`].
    async fn count_send(&self, limits: &[RateBucket], now: Timestamp) -> Result<(), Error> {
        if limits.is_empty() {
            return Ok(());
        }
        match self.inner.store.count_rate_limited(limits, now).await? {
            RateCount::Counted => Ok(()),
            RateCount::Limited { until } => Err(Error::SendLimited {
                until,
                retry_after: until.since(now),
            }),
        }
    }

    /// Takes back a send counted at `now` that did not happen. Should the store fail, the
    /// count stays: the limit is met a little early, never exceeded.
    async fn uncount_send(&self, limits: &[RateBucket], now: Timestamp) {
        if limits.is_empty() {
            return;
        }
        if let Err(error) = self.inner.store.uncount_rate_limited(limits, now).await {
            tracing::warn!(kind = error.kind(), "send count not taken back");
        }
    }

    /// An out-of-band device of the user, with its channel, destination and code length.
    async fn out_of_band_device(
        &self,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<(Device, String, String, Digits), Error> {
        let found = self
            .inner
            .store
            .get_device(user, device)
            .await?
            .ok_or(Error::DeviceNotFound)?;
        let DeviceConfig::OutOfBand {
            channel,
            destination,
            digits,
        } = &found.config
        else {
            return Err(Error::DeviceNotFound);
        };
        let (channel, destination, digits) = (channel.clone(), destination.clone(), *digits);
        Ok((found, channel, destination, digits))
    }

    /// Sends `message`; if that fails, withdraws its stored `challenge`.
    async fn deliver(
        &self,
        sender: &dyn Sender,
        message: &Message,
        challenge: &Challenge,
    ) -> Result<(), Error> {
        let (user, device, channel) = (message.user(), message.device(), message.channel());
        if let Err(error) = sender.send(message).await {
            let withdrawn = self
                .inner
                .store
                .discard_challenge(user, device, &challenge.hash)
                .await;
            tracing::debug!(user = %user, device = %device, channel, reason = error.kind(), withdrawn = matches!(withdrawn, Ok(true)), "challenge not delivered");
            return Err(Error::Delivery(error));
        }
        tracing::debug!(user = %user, device = %device, channel, "challenge sent");
        Ok(())
    }

    // ----- backup codes --------------------------------------------------------------------

    /// Replaces the user's backup codes with a new set (creating the backup-code device on
    /// first use). Only hashes are stored; show the codes once.
    ///
    /// The user must have a confirmed device other than backup codes
    /// ([`Error::NotConfigured`] otherwise), so this is always a factor change of a configured
    /// user: `caller` must have verified with a code within the re-verification window.
    pub async fn generate_backup_codes(
        &self,
        caller: impl Into<Caller>,
    ) -> Result<BackupCodeSet, Error> {
        let caller = caller.into();
        self.require_a_real_factor(caller.user()).await?;
        self.authorize(&caller, Needs::FactorChange).await?;
        let user = caller.user();
        let device = match self.backup_device(user).await? {
            Some(device) => device,
            None => self.add_backup_device(user).await?,
        };
        let codes = self.inner.backup.generate();
        let hashes: Vec<_> = codes
            .iter()
            .map(|code| {
                let canonical = self.inner.backup.normalise(code).unwrap_or_default();
                self.inner
                    .server_key
                    .hash_code(BACKUP_CODE_PURPOSE, user, &device.id, &canonical)
            })
            .collect();
        self.inner
            .store
            .replace_backup_codes(user, &device.id, &hashes)
            .await?;
        tracing::debug!(user = %user, device = %device.id, count = codes.len(), "backup codes generated");
        let count = codes.len();
        self.emit(
            EventKind::BackupCodesRegenerated { count },
            user,
            Some(&device),
        );
        Ok(BackupCodeSet { device, codes })
    }

    /// How many unused backup codes the user has.
    pub async fn backup_codes_remaining(&self, user: &UserId) -> Result<u64, Error> {
        match self.backup_device(user).await? {
            Some(device) => Ok(self
                .inner
                .store
                .count_backup_codes(user, &device.id)
                .await?),
            None => Ok(0),
        }
    }

    /// Adds the user's backup-code device; if a concurrent request added one first, that
    /// one.
    async fn add_backup_device(&self, user: &UserId) -> Result<Device, Error> {
        let device = self.new_device(
            user,
            DeviceId::generate(),
            "Backup codes",
            true,
            DeviceConfig::BackupCodes,
        )?;
        match self
            .inner
            .store
            .insert_device(&device, &self.inner.limits)
            .await?
        {
            DeviceInsert::BackupCodesExist(winner) => Ok(*winner),
            outcome => self.inserted(device, outcome),
        }
    }

    async fn backup_device(&self, user: &UserId) -> Result<Option<Device>, Error> {
        let devices = self.inner.store.list_devices(user).await?;
        Ok(devices
            .into_iter()
            .find(|d| d.kind() == DeviceKind::BackupCodes))
    }

    // ----- management ----------------------------------------------------------------------

    /// The user's devices, oldest first.
    pub async fn devices(&self, user: &UserId) -> Result<Vec<Device>, Error> {
        Ok(self.inner.store.list_devices(user).await?)
    }

    /// One device of the user.
    pub async fn device(&self, user: &UserId, id: &DeviceId) -> Result<Option<Device>, Error> {
        Ok(self.inner.store.get_device(user, id).await?)
    }

    /// Whether the user has at least one confirmed device.
    pub async fn is_configured(&self, user: &UserId) -> Result<bool, Error> {
        let devices = self.inner.store.list_devices(user).await?;
        Ok(devices.iter().any(|d| d.confirmed))
    }

    /// Renames a device. Once the user has a confirmed device, `caller` must be verified
    /// ([`Error::VerificationRequired`] otherwise).
    pub async fn rename_device(
        &self,
        caller: impl Into<Caller>,
        id: &DeviceId,
        name: &str,
    ) -> Result<Device, Error> {
        let caller = caller.into();
        let name = check_name(name)?;
        self.authorize(&caller, Needs::Verified).await?;
        self.modify_device(caller.user(), id, |d| d.name = name)
            .await
    }

    /// Makes a device the user's default (and no other). Once the user has a confirmed
    /// device, `caller` must be verified ([`Error::VerificationRequired`] otherwise).
    pub async fn set_default_device(
        &self,
        caller: impl Into<Caller>,
        id: &DeviceId,
    ) -> Result<Device, Error> {
        let caller = caller.into();
        self.authorize(&caller, Needs::Verified).await?;
        let user = caller.user();
        let devices = self.inner.store.list_devices(user).await?;
        if !devices.iter().any(|d| &d.id == id) {
            return Err(Error::DeviceNotFound);
        }
        for mut other in devices.into_iter().filter(|d| d.is_default && &d.id != id) {
            other.is_default = false;
            self.inner.store.update_device(&other).await?;
        }
        self.modify_device(user, id, |d| d.is_default = true).await
    }

    async fn modify_device(
        &self,
        user: &UserId,
        id: &DeviceId,
        change: impl FnOnce(&mut Device),
    ) -> Result<Device, Error> {
        let mut device = self
            .inner
            .store
            .get_device(user, id)
            .await?
            .ok_or(Error::DeviceNotFound)?;
        change(&mut device);
        if !self.inner.store.update_device(&device).await? {
            return Err(Error::DeviceNotFound);
        }
        Ok(device)
    }

    /// Deletes a device (with its backup codes), the browsers remembered through it, and the
    /// verification of every session it verified, on every instance. Returns whether it
    /// existed.
    ///
    /// A factor change, as [`TwoFactor::enroll_totp`].
    pub async fn delete_device(
        &self,
        caller: impl Into<Caller>,
        id: &DeviceId,
    ) -> Result<bool, Error> {
        let caller = caller.into();
        self.authorize(&caller, Needs::FactorChange).await?;
        let user = caller.user();
        let Some(device) = self.inner.store.get_device(user, id).await? else {
            return Ok(false);
        };
        let existed = self.inner.store.delete_device(user, id).await?;
        tracing::debug!(user = %user, device = %id, existed, "device deleted");
        if existed {
            self.emit(EventKind::DeviceRemoved, user, Some(&device));
        }
        Ok(existed)
    }

    /// Deletes every device of the user (turning the second factor off), every remembered
    /// browser, and the verification of every session of the user. Returns how many.
    ///
    /// A factor change, as [`TwoFactor::enroll_totp`].
    pub async fn delete_all_devices(&self, caller: impl Into<Caller>) -> Result<u64, Error> {
        let caller = caller.into();
        self.authorize(&caller, Needs::FactorChange).await?;
        let user = caller.user();
        let count = self.inner.store.delete_all_devices(user).await?;
        tracing::debug!(user = %user, count, "all devices deleted");
        if count > 0 {
            self.emit(EventKind::AllDevicesRemoved { count }, user, None);
        }
        Ok(count)
    }

    // ----- remembered browsers --------------------------------------------------------------

    /// The user's remembered browsers, oldest first.
    pub async fn remembered_browsers(
        &self,
        user: &UserId,
    ) -> Result<Vec<RememberedBrowser>, Error> {
        Ok(self.inner.store.list_remembered(user).await?)
    }

    /// Forgets one remembered browser: its cookie stops working at once.
    pub async fn forget_browser(&self, user: &UserId, id: &BrowserId) -> Result<bool, Error> {
        let existed = self.inner.store.delete_remembered(user, id).await?;
        if existed {
            self.emit(EventKind::RememberedDevicesRevoked { count: 1 }, user, None);
        }
        Ok(existed)
    }

    /// Forgets every remembered browser of the user. Returns how many.
    pub async fn forget_all_browsers(&self, user: &UserId) -> Result<u64, Error> {
        let count = self.inner.store.delete_all_remembered(user).await?;
        if count > 0 {
            self.emit(EventKind::RememberedDevicesRevoked { count }, user, None);
        }
        Ok(count)
    }

    /// Makes everything issued to the user so far that depends on their stamp stop working —
    /// every remember-device cookie, including any not recorded — and forgets their
    /// remembered browsers. Call it when the user changes their password or asks to be
    /// signed out of all browsers.
    pub async fn invalidate_remembered(&self, user: &UserId) -> Result<(), Error> {
        self.inner.store.bump_user_stamp(user).await?;
        self.forget_all_browsers(user).await?;
        Ok(())
    }

    /// Backup codes back up a factor: without a confirmed one they would be a factor of their
    /// own, which a password alone could create before the user enrols and keep afterwards.
    async fn require_a_real_factor(&self, user: &UserId) -> Result<(), Error> {
        let devices = self.inner.store.list_devices(user).await?;
        let has_factor = devices
            .iter()
            .any(|d| d.confirmed && d.kind() != DeviceKind::BackupCodes);
        if has_factor {
            Ok(())
        } else {
            Err(Error::NotConfigured)
        }
    }

    /// Applies the factor rule (see [`Caller`]) for an operation that `needs` it.
    pub(crate) async fn authorize(&self, caller: &Caller, needs: Needs) -> Result<(), Error> {
        let state = self.caller_state(caller);
        let enough = match state {
            CallerState::Administrator | CallerState::Fresh => true,
            CallerState::Remembered | CallerState::Stale => needs == Needs::Verified,
            _ => false,
        };
        if enough || !self.is_configured(caller.user()).await? {
            return Ok(());
        }
        tracing::debug!(user = %caller.user(), state = %state, ?needs, "factor rule refused the caller");
        Err(match state {
            CallerState::FirstFactor => Error::VerificationRequired,
            _ => Error::ReauthenticationRequired,
        })
    }

    /// Lifts a lock set by too many consecutive failures.
    pub async fn reset_lockout(&self, user: &UserId) -> Result<(), Error> {
        Ok(self.inner.store.reset_user_failures(user).await?)
    }
}

/// A configured maximum as the store takes it: at least 1.
fn limit(max: usize) -> u32 {
    u32::try_from(max.max(1)).unwrap_or(u32::MAX)
}

pub(crate) fn check_name(name: &str) -> Result<String, Error> {
    let name = name.trim();
    let count = name.chars().count();
    if count == 0 || count > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(Error::InvalidName);
    }
    Ok(name.to_owned())
}
