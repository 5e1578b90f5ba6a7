//! Key names. Every key of a user starts with `PREFIX:{TAG}:`, the user's tag in braces, so
//! that Redis Cluster puts all of them in one hash slot.

use crate::confirm::ConfirmationKey;
use crate::device::DeviceId;
use crate::push::ApprovalKey;
use crate::session::{SessionKey, UserTag};
use crate::store::RateKey;

/// Field names of the per-user hash. The scripts `begin_attempt.lua` and
/// `commit_success.lua` use the same names.
pub(super) const USER_FAILURES: &str = "failures";
pub(super) const USER_LOCKED_UNTIL: &str = "locked_until";
pub(super) const USER_STAMP: &str = "stamp";

/// The field of the sessions hash that tells whether the user has a confirmed device
/// (`CONFIGURED` in the scripts' prelude).
pub(super) const SESSIONS_CONFIGURED: &str = "c";

/// Builds the key names under one prefix.
#[derive(Clone, Debug)]
pub(super) struct Keys {
    prefix: String,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `PREFIX:{TAG}:name`.
    fn key(&self, tag: &UserTag, name: &str) -> String {
        // Built in place: formatting grows the string several times, and the session read
        // names a key on every request.
        let tag = tag.as_str();
        let mut key = String::with_capacity(self.prefix.len() + tag.len() + name.len() + 4);
        for part in [&*self.prefix, ":{", tag, "}:", name] {
            key.push_str(part);
        }
        key
    }

    /// The user's devices and their state (a hash).
    pub(super) fn devices(&self, tag: &UserTag) -> String {
        self.key(tag, "devices")
    }

    /// The user's failure count, lock and stamp (a hash).
    pub(super) fn user(&self, tag: &UserTag) -> String {
        self.key(tag, "user")
    }

    /// The prefix of the user's backup-code sets; the device id completes it.
    pub(super) fn codes_prefix(&self, tag: &UserTag) -> String {
        self.key(tag, "codes:")
    }

    /// One device's backup-code hashes (a set).
    pub(super) fn codes(&self, tag: &UserTag, device: &DeviceId) -> String {
        self.codes_prefix(tag) + device.as_str()
    }

    /// The prefix of the user's challenges; the device id completes it.
    pub(super) fn challenge_prefix(&self, tag: &UserTag) -> String {
        self.key(tag, "challenge:")
    }

    /// One device's pending challenge (a hash with a time to live).
    pub(super) fn challenge(&self, tag: &UserTag, device: &DeviceId) -> String {
        self.challenge_prefix(tag) + device.as_str()
    }

    /// One WebAuthn ceremony of the user (a string with a time to live), by
    /// [`CeremonyKey::name`](crate::store::CeremonyKey::name).
    pub(super) fn ceremony(&self, tag: &UserTag, name: &str) -> String {
        self.key(tag, &format!("ceremony:{name}"))
    }

    /// The prefix of the confirmations with `tag`; the confirmation digest completes it.
    pub(super) fn confirmation_prefix(&self, tag: &UserTag) -> String {
        self.key(tag, "confirmation:")
    }

    /// The check value of the key user tags are made with (a string, no user tag: its own
    /// slot).
    pub(super) fn tag_key_check(&self) -> String {
        format!("{}:tag-key-check", self.prefix)
    }

    /// The code attempts of a session that has passed only the first factor (a counter
    /// with a time to live).
    pub(super) fn session_attempts(&self, key: &SessionKey) -> String {
        self.key(key.tag(), "attempts:") + key.digest()
    }

    /// One confirmation (a hash with a time to live).
    pub(super) fn confirmation(&self, key: &ConfirmationKey) -> String {
        self.confirmation_prefix(key.tag()) + key.digest()
    }

    /// The index of the confirmations with `tag` (a sorted set with a time to live).
    pub(super) fn confirmations(&self, tag: &UserTag) -> String {
        self.key(tag, "confirmations")
    }

    /// One rate-limit counter (a string with a time to live): a user's under the user's tag,
    /// a shared one under no tag at all, so in a hash slot of its own.
    pub(super) fn rate(&self, key: &RateKey) -> String {
        match key {
            RateKey::User { tag, name } => self.key(tag, "rate:") + name,
            RateKey::Shared(name) => format!("{}:rate:{}", self.prefix, name),
        }
    }

    /// The user's remembered browsers (a hash with a time to live).
    pub(super) fn browsers(&self, tag: &UserTag) -> String {
        self.key(tag, "browsers")
    }

    /// The sessions with `tag` and whether their user has a confirmed device (a hash with a
    /// time to live). Short, as there is one per user with a session.
    pub(super) fn sessions(&self, tag: &UserTag) -> String {
        self.key(tag, "s")
    }

    /// The user's push state: live approval and block (a hash with a time to live).
    pub(super) fn push(&self, tag: &UserTag) -> String {
        self.key(tag, "push")
    }

    /// One push approval (a hash with a time to live).
    pub(super) fn approval(&self, key: &ApprovalKey) -> String {
        self.key(key.tag(), "approval:") + key.digest()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::UserId;

    #[test]
    fn every_key_of_a_user_carries_the_users_tag_once() {
        let keys = Keys::new("app");
        let alice = UserId::new("alice").unwrap();
        let tag = UserTag::unkeyed(&alice);
        let device = DeviceId::generate();
        let hash_tag = format!("{{{}}}", tag.as_str());
        for key in [
            keys.devices(&tag),
            keys.user(&tag),
            keys.codes(&tag, &device),
            keys.challenge(&tag, &device),
            keys.sessions(&tag),
            keys.browsers(&tag),
            keys.confirmations(&tag),
            keys.rate(&RateKey::User {
                tag: tag.clone(),
                name: "sends".into(),
            }),
        ] {
            assert!(key.starts_with(&format!("app:{hash_tag}:")), "{key}");
            assert_eq!(key.matches('{').count(), 1, "{key}");
        }
        assert_eq!(keys.sessions(&tag), format!("app:{hash_tag}:s"));
    }

    #[test]
    fn a_shared_rate_key_has_no_hash_tag() {
        let keys = Keys::new("app");
        assert_eq!(
            keys.rate(&RateKey::Shared("dest:0123abcd".into())),
            "app:rate:dest:0123abcd"
        );
    }
}
