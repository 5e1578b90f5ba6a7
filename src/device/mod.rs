//! Devices (a user's configured factors) and the verification policy.
//!
//! A [`Device`] is a TOTP app, an HOTP token, a set of backup codes or an out-of-band channel.
//! The [engine](crate::engine) ([`TwoFactor`]) enrols and manages devices and verifies codes
//! against them:
//!
//! * **TOTP**: a window of [`TotpPolicy::tolerance`] steps either side of the device's
//!   expected step; the device's clock drift is learned (bounded) from accepted codes; a code
//!   whose step is not newer than the last accepted one is a replay and is refused, inside the
//!   window too. The code that confirms a new device counts as used.
//! * **HOTP**: a look-ahead window past the expected counter; an accepted code moves the
//!   counter past it.
//! * **Backup codes**: single-use codes stored as keyed hashes (see [`ServerKey`]).
//! * **Out-of-band** (email, SMS, custom channels): a code sent on request through a
//!   [`Sender`] (see [`delivery`](crate::delivery)), stored as a keyed hash, valid once for a
//!   few minutes; see [`out_of_band`].
//! * **Throttling** on every kind; see [`ThrottlePolicy`] for the rules and
//!   the odds they leave an attacker.
//!
//! Every operation that changes a user's factors takes a [`Caller`] and applies the factor
//! rule described there: a password alone never adds, confirms or removes a second factor of a
//! user who has one.
//!
//! Secrets can be sealed at rest with a [`SecretSealer`]; without one they are stored
//! unencrypted, readable by anyone who can read the store.

mod codes;
mod error;
pub(crate) mod matching;
mod model;
pub mod out_of_band;
mod seal;
mod throttle;

pub use codes::{BackupCodePolicy, BackupCodes, CodeHash, InvalidPolicy, ServerKey};
pub use error::Error;
// The engine has a module of its own; its items stay reachable here, beside the devices it
// manages.
#[doc(no_inline)]
pub use crate::engine::{
    BackupCodeSet, Caller, CallerState, ConfirmedDevice, Enrollment, HotpSettings, TotpSettings,
    TwoFactor, Verification,
};
pub use matching::{HotpPolicy, TotpPolicy};
pub use model::{Device, DeviceConfig, DeviceId, DeviceKind, DeviceState, InvalidId, UserId};
pub use out_of_band::{ChallengeSent, OutOfBandPolicy};
pub use seal::{KeyError, SealError, SealedSecret, SealingKey, SecretSealer};
// Delivery has a module of its own; its items stay reachable here, beside the devices whose
// codes they deliver.
#[doc(no_inline)]
pub use crate::delivery::{
    ConsoleSender, InvalidTemplate, Message, OutboxSender, SendError, Sender, SenderFn, Template,
    sender_fn,
};
#[cfg(feature = "smtp")]
#[doc(no_inline)]
pub use crate::delivery::{SmtpConfigError, SmtpSender};
#[cfg(feature = "webhook")]
#[doc(no_inline)]
pub use crate::delivery::{WebhookConfigError, WebhookSender};
pub use throttle::ThrottlePolicy;
