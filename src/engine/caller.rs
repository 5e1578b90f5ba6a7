//! [`Caller`]: who asks the engine to act, and how far they have proven who they are.

use std::fmt;
use std::time::Duration;

use crate::clock::Timestamp;
use crate::session::VerifiedBy;

use super::Verification;
use crate::device::UserId;

/// How far a caller has proven who they are, for the factor rule (see [`Caller`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CallerState {
    /// Passed the first factor only (a password, say).
    FirstFactor,
    /// Verified by a remembered browser: no code was entered in this session.
    Remembered,
    /// Verified by a code, longer ago than the re-verification window.
    Stale,
    /// Verified by a code within the re-verification window.
    Fresh,
    /// A trusted back-office caller: the factor rule does not apply.
    Administrator,
}

impl CallerState {
    /// A stable, machine-readable name.
    pub fn as_str(self) -> &'static str {
        match self {
            CallerState::FirstFactor => "first_factor",
            CallerState::Remembered => "remembered",
            CallerState::Stale => "stale",
            CallerState::Fresh => "fresh",
            CallerState::Administrator => "administrator",
        }
    }
}

impl fmt::Display for CallerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who asks the engine to act for a user, and how they proved it.
///
/// The engine enforces one rule on every operation that changes a user's factors (adding,
/// confirming, re-keying or re-addressing a device, removing one, disabling the second factor,
/// regenerating backup codes): **for a user with a confirmed device, it needs a caller verified
/// by a code within the re-verification window** ([`CallerState::Fresh`]). A password alone
/// ([`CallerState::FirstFactor`]), a remembered browser ([`CallerState::Remembered`]) or an old
/// verification ([`CallerState::Stale`]) is not enough: otherwise whoever learns a password
/// could add a second factor of their own choosing and take the account over.
///
/// A user with no confirmed device yet may enrol from a first-factor session, and only the very
/// first confirmed device may verify the session that confirms it; confirming it deletes every
/// other pending device of the user (a device planted earlier by someone who knew the password
/// never becomes usable).
///
/// In a web service the caller comes from the session:
/// [`OtpSession::caller`](crate::session::OtpSession::caller). Code that has no session builds
/// one with [`Caller::first_factor`] (a user who just gave their password), from a
/// [`Verification`] the engine returned ([`Caller::verified`]), or, for trusted back-office
/// tools that authenticate their operator by other means, [`Caller::administrator`].
///
/// ```
/// use tower_otp::device::TotpSettings;
/// use tower_otp::{Caller, MemoryStore, ServerKey, TwoFactor, UserId};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::generate());
/// let alice = UserId::new("alice").unwrap();
///
/// // With no factor yet, the password is enough to enrol, and the first device verifies.
/// let phone = two_factor
///     .enroll_totp(&alice, "Phone", "alice", TotpSettings::default())
///     .await
///     .unwrap();
/// let code = phone.current_code(two_factor.now());
/// let confirmed = two_factor
///     .confirm_device(&alice, &phone.device.id, &code)
///     .await
///     .unwrap();
/// assert!(confirmed.first);
///
/// // Now the password alone adds nothing...
/// let refused = two_factor
///     .enroll_totp(&alice, "Attacker", "alice", TotpSettings::default())
///     .await;
/// assert_eq!(refused.unwrap_err().kind(), "otp_required");
///
/// // ...but a caller who has just verified with a code may.
/// let fresh = Caller::verified(&confirmed.verification);
/// two_factor
///     .enroll_totp(&fresh, "Tablet", "alice", TotpSettings::default())
///     .await
///     .unwrap();
/// # });
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Caller {
    user: UserId,
    verified: Option<VerifiedBy>,
    binding: Option<String>,
    administrator: bool,
}

impl Caller {
    /// A user who has passed the first factor only (a password, a single sign-on login).
    pub fn first_factor(user: UserId) -> Self {
        Caller {
            user,
            verified: None,
            binding: None,
            administrator: false,
        }
    }

    /// The user who just passed `verification` (a code the engine accepted, at
    /// `verification.at`): fresh until the re-verification window has passed.
    pub fn verified(verification: &Verification) -> Self {
        let device = &verification.device;
        Caller {
            user: device.user.clone(),
            verified: Some(VerifiedBy {
                device_id: device.id.clone(),
                device_kind: device.kind(),
                at: verification.at,
                remembered: false,
            }),
            binding: None,
            administrator: false,
        }
    }

    /// A trusted back-office caller acting on `user`'s factors (support staff resetting a
    /// lost phone, a provisioning script). The factor rule does not apply, so never build
    /// one from anything a request says; events are emitted as for any other caller.
    pub fn administrator(user: UserId) -> Self {
        Caller {
            user,
            verified: None,
            binding: None,
            administrator: true,
        }
    }

    /// The caller of a session: its user, its verification, and the login it belongs to.
    pub(crate) fn of_session(user: UserId, verified: Option<VerifiedBy>, binding: String) -> Self {
        Caller {
            user,
            verified,
            binding: Some(binding),
            administrator: false,
        }
    }

    /// The user acted for.
    pub fn user(&self) -> &UserId {
        &self.user
    }

    /// How the caller passed the second factor, if they did.
    pub fn verified_by(&self) -> Option<&VerifiedBy> {
        self.verified.as_ref()
    }

    /// An opaque digest of the session (login) the caller acts in, if any: out-of-band codes
    /// are bound to it.
    pub fn binding(&self) -> Option<&str> {
        self.binding.as_deref()
    }

    /// The caller's state at `now`, for a re-verification window of `window`.
    pub fn state(&self, now: Timestamp, window: Duration) -> CallerState {
        match &self.verified {
            _ if self.administrator => CallerState::Administrator,
            None => CallerState::FirstFactor,
            Some(by) if by.remembered => CallerState::Remembered,
            // A stamp a little ahead of `now` is another instance's clock; far ahead, it is
            // not trusted as fresh for ever.
            Some(by) if now.since(by.at) <= window && by.at <= now.saturating_add(window) => {
                CallerState::Fresh
            }
            Some(_) => CallerState::Stale,
        }
    }
}

/// A user id alone is a caller who passed the first factor only: the least a caller can be.
impl From<&UserId> for Caller {
    fn from(user: &UserId) -> Self {
        Caller::first_factor(user.clone())
    }
}

impl From<UserId> for Caller {
    fn from(user: UserId) -> Self {
        Caller::first_factor(user)
    }
}

impl From<&Caller> for Caller {
    fn from(caller: &Caller) -> Self {
        caller.clone()
    }
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The binding is a digest of a session id: no reason to put it in logs.
        f.debug_struct("Caller")
            .field("user", &self.user)
            .field("verified", &self.verified)
            .field("administrator", &self.administrator)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{DeviceId, DeviceKind};

    fn verified_at(at: u64, remembered: bool) -> Caller {
        Caller {
            user: UserId::new("alice").unwrap(),
            verified: Some(VerifiedBy {
                device_id: DeviceId::generate(),
                device_kind: DeviceKind::Totp,
                at: Timestamp::from_secs(at),
                remembered,
            }),
            binding: Some("digest".into()),
            administrator: false,
        }
    }

    #[test]
    fn states_follow_the_verification_and_the_window() {
        let window = Duration::from_secs(600);
        let now = Timestamp::from_secs(10_000);
        let alice = UserId::new("alice").unwrap();
        assert_eq!(
            Caller::first_factor(alice.clone()).state(now, window),
            CallerState::FirstFactor
        );
        assert_eq!(
            Caller::administrator(alice).state(now, window),
            CallerState::Administrator
        );
        assert_eq!(
            verified_at(9_400, false).state(now, window),
            CallerState::Fresh
        );
        assert_eq!(
            verified_at(9_399, false).state(now, window),
            CallerState::Stale
        );
        assert_eq!(
            verified_at(9_999, true).state(now, window),
            CallerState::Remembered
        );
        // Another instance's clock a little ahead is fine; far ahead is not trusted for ever.
        assert_eq!(
            verified_at(10_005, false).state(now, window),
            CallerState::Fresh
        );
        assert_eq!(
            verified_at(20_000, false).state(now, window),
            CallerState::Stale
        );
    }

    #[test]
    fn debug_hides_the_binding() {
        assert!(!format!("{:?}", verified_at(1, false)).contains("digest"));
    }
}
