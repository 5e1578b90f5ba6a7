//! What the store keeps for security keys (WebAuthn): the state of a ceremony between its two
//! round trips, and the outcome of recording a key's use.

use std::fmt;

use crate::clock::Timestamp;
use crate::device::UserId;

use super::LoginBinding;

/// What a WebAuthn ceremony is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CeremonyPurpose {
    /// Registering a new security key.
    Register,
    /// Verifying with a registered key.
    Authenticate,
}

impl CeremonyPurpose {
    /// A stable name, part of store keys.
    pub fn as_str(self) -> &'static str {
        match self {
            CeremonyPurpose::Register => "register",
            CeremonyPurpose::Authenticate => "authenticate",
        }
    }
}

/// Where a ceremony's state is kept: the user, the login (session) that began it, and what it
/// is for. A session has at most one ceremony per purpose; beginning another replaces it, and
/// no other session can take it.
#[derive(Clone, PartialEq, Eq)]
pub struct CeremonyKey {
    /// The user the ceremony is for.
    pub user: UserId,
    /// The login that began it (`None`: a caller without a session, such as a tool).
    pub binding: Option<LoginBinding>,
    /// What it is for.
    pub purpose: CeremonyPurpose,
}

impl CeremonyKey {
    /// The key's name below its user: purpose and binding, as stores spell it.
    pub fn name(&self) -> String {
        let binding = self.binding.as_ref().map_or("-", LoginBinding::as_str);
        format!("{}:{binding}", self.purpose.as_str())
    }
}

impl fmt::Debug for CeremonyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CeremonyKey")
            .field("user", &self.user)
            .field("binding", &self.binding)
            .field("purpose", &self.purpose)
            .finish()
    }
}

/// A ceremony's state as stored: opaque text (the relying party's serialised state) and when
/// it stops being usable.
#[derive(Clone, PartialEq, Eq)]
pub struct CeremonyState {
    /// The serialised state; it holds the challenge, so it stays out of `Debug`.
    pub state: String,
    /// When the ceremony expires (the record expires then too).
    pub expires_at: Timestamp,
}

impl fmt::Debug for CeremonyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CeremonyState")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The outcome of [`Store::record_key_use`](super::Store::record_key_use).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyUse {
    /// The counter moved forward (or both it and the stored one are 0, for keys that keep
    /// none): stored, and the use recorded.
    Recorded,
    /// The key's signature counter is not above the stored one: a cloned authenticator, or a
    /// replay. Nothing changed.
    CounterRegressed {
        /// The counter stored for the key.
        stored: u64,
    },
    /// The user has no such confirmed security key. Nothing changed.
    Missing,
}

/// Whether a signature counter `seen` may follow the stored `stored` (W3C WebAuthn §7.2 step
/// 21): it must grow, unless the authenticator keeps no counter (both are 0).
pub(crate) fn counter_moves_forward(seen: u64, stored: u64) -> bool {
    (seen == 0 && stored == 0) || seen > stored
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_must_grow_unless_never_kept() {
        assert!(counter_moves_forward(0, 0));
        assert!(counter_moves_forward(1, 0));
        assert!(counter_moves_forward(8, 7));
        assert!(!counter_moves_forward(7, 7));
        assert!(!counter_moves_forward(3, 7));
        assert!(!counter_moves_forward(0, 7));
    }

    #[test]
    fn debug_hides_the_state_and_the_binding() {
        let state = CeremonyState {
            state: "challenge-secret".into(),
            expires_at: Timestamp::from_secs(1),
        };
        assert!(!format!("{state:?}").contains("challenge-secret"));
        let key = CeremonyKey {
            user: UserId::from(1u64),
            binding: Some(LoginBinding::new("digest-secret")),
            purpose: CeremonyPurpose::Register,
        };
        assert!(!format!("{key:?}").contains("digest-secret"));
        assert_eq!(key.name(), "register:digest-secret");
    }
}
