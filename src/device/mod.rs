//! Devices (a user's configured factors) and the verification policy.
//!
//! A [`Device`] is a TOTP app, an HOTP token, a set of backup codes or an out-of-band channel.
//! [`TwoFactor`] enrols and manages devices and verifies codes against them:
//!
//! * **TOTP**: a window of [`TotpPolicy::tolerance`] steps either side of the device's
//!   expected step; the device's clock drift is learned (bounded) from accepted codes; a code
//!   whose step is not newer than the last accepted one is a replay and is refused, inside the
//!   window too. The code that confirms a new device counts as used.
//! * **HOTP**: a look-ahead window past the expected counter; an accepted code moves the
//!   counter past it.
//! * **Backup codes**: single-use codes stored as keyed hashes (see [`ServerKey`]).
//! * **Out-of-band** (email, SMS, custom channels): a code sent on request through a
//!   [`Sender`], stored as a keyed hash, valid once for a few minutes; see [`out_of_band`].
//! * **Throttling** on every kind; see [`ThrottlePolicy`] for the rules and
//!   the odds they leave an attacker.
//!
//! Every operation that changes a user's factors takes a [`Caller`] and applies the factor
//! rule described there: a password alone never adds, confirms or removes a second factor of a
//! user who has one.
//!
//! Secrets can be sealed at rest with a [`SecretSealer`]; without one they are stored
//! unencrypted, readable by anyone who can read the store.

mod caller;
mod codes;
mod error;
mod manager;
mod matching;
mod model;
pub mod out_of_band;
mod seal;
mod sender;
mod throttle;

pub use caller::{Caller, CallerState};
pub use codes::{BackupCodePolicy, BackupCodes, CodeHash, InvalidPolicy, ServerKey};
pub use error::Error;
pub use manager::{
    BackupCodeSet, ConfirmedDevice, Enrollment, HotpSettings, TotpSettings, TwoFactor, Verification,
};
pub use matching::{HotpPolicy, TotpPolicy};
pub use model::{Device, DeviceConfig, DeviceId, DeviceKind, DeviceState, InvalidId, UserId};
pub use out_of_band::{ChallengeSent, OutOfBandPolicy};
pub use seal::{KeyError, SealError, SealedSecret, SealingKey, SecretSealer};
pub use sender::{
    ConsoleSender, InvalidTemplate, Message, OutboxSender, SendError, Sender, SenderFn, Template,
    sender_fn,
};
#[cfg(feature = "smtp")]
pub use sender::{SmtpConfigError, SmtpSender};
#[cfg(feature = "webhook")]
pub use sender::{WebhookConfigError, WebhookSender};
pub use throttle::ThrottlePolicy;
