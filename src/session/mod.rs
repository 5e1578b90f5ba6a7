//! Per-session second-factor state.
//!
//! A session begins when the application's first factor succeeds and it calls
//! [`OtpSession::login`]; it records who the user is. It is marked verified when the user
//! passes a second factor ([`OtpSession::verify`]), and it ends at logout, at idle or absolute
//! expiry, or when the user logs out everywhere ([`OtpSession::logout_all`]).
//!
//! The session id is 256 random bits plus the user's [`UserTag`]; it travels in a cookie
//! (`HttpOnly`, `Secure`, `SameSite=Lax`, `__Host-` prefixed by default) or, for API clients,
//! in an `Authorization: Bearer` header. It changes at login and at every verification, so a
//! session id planted before login (fixation) or seen before verification is worthless after.
//! The store keeps only a digest of it.
//!
//! The tag keeps a user's records together in the store; it is a keyed MAC of the user id
//! (see [`TagKey`]), so a session id does not let its holder check a guess of whose it is.

mod config;
mod disable;
mod error;
mod handle;
mod identity;
mod presented;
mod record;
mod tag;
mod token;

pub use config::{ConfigError, SessionConfig};
pub use disable::SecondFactorDisabled;
pub use error::SessionError;
pub use handle::{OtpSession, SessionConfirmation, SessionStatus, SessionVerification};
#[cfg(feature = "axum-login")]
pub use identity::AxumLoginIdentity;
pub use identity::{Identified, Identity, IdentitySource};
pub use presented::Transport;
pub use record::{SessionKey, SessionRecord, VerifiedBy};
pub use tag::{TagKey, UserTag, UserTagger};
pub use token::SessionToken;

pub(crate) use handle::{ClientAddrFn, SessionContext};
