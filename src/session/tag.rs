//! User tags: the short name of a user that every session id and store key carries.
//!
//! A tag is public (it is the first half of every session id), so it must not let anyone
//! who holds a session id check a guess of the user id. It is therefore a MAC of the user id
//! under a key derived from the application's [`ServerKey`](crate::ServerKey), not a plain
//! hash. The store is the single source of tags ([`Store::user_tag`](crate::store::Store)),
//! so session ids, confirmation keys and store keys always agree.

use std::fmt;
use std::sync::{Arc, OnceLock};

use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::device::UserId;
use crate::hex::Hex128;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Bytes of a tag (shown as twice as many hex digits): 128 bits, far from colliding.
const TAG_BYTES: usize = 16;

/// A short, stable tag of a user id: 32 lowercase hex digits. Every store key of the user
/// carries it (as a Redis Cluster `{hash tag}`), and so does every session id.
///
/// Tags come from the store ([`Store::user_tag`](crate::store::Store::user_tag)): keyed with
/// the [`TagKey`] a [`TwoFactor`](crate::TwoFactor) binds into it, so a tag tells nothing
/// about the user id to anyone without the application's [`ServerKey`](crate::ServerKey).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserTag(Hex128);

impl UserTag {
    /// The tag of `user` in a store with no [`TagKey`]: a plain SHA-256 of the user id, which
    /// anyone can compute.
    pub(crate) fn unkeyed(user: &UserId) -> Self {
        UserTag::from_digest(&Sha256::digest(user.as_str().as_bytes()))
    }

    fn from_digest(digest: &[u8]) -> Self {
        UserTag(Hex128::encode(&digest[..TAG_BYTES]))
    }

    /// A tag read from a session id; `None` unless exactly 32 lowercase hex digits.
    pub fn parse(text: &str) -> Option<Self> {
        Hex128::parse(text).map(UserTag)
    }

    /// The tag as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Whether `other` is the same tag, in time independent of where they differ.
    pub(crate) fn matches(&self, other: &UserTag) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl fmt::Debug for UserTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserTag({})", self.as_str())
    }
}

/// The secret key of user tags, derived from the application's
/// [`ServerKey`](crate::ServerKey) by [`ServerKey::tag_key`](crate::ServerKey::tag_key).
/// Every instance of an application sharing a store must use the same one, or they would not
/// find each other's records.
#[derive(Clone)]
pub struct TagKey {
    key: Zeroizing<[u8; 32]>,
    /// The HMAC with the key already absorbed: every request that reads a session tags its
    /// user, and this halves the hashing that costs.
    keyed: HmacSha256,
}

impl TagKey {
    pub(crate) fn from_derived(key: Zeroizing<[u8; 32]>) -> Self {
        let keyed =
            <HmacSha256 as KeyInit>::new_from_slice(&key[..]).expect("HMAC accepts 32-byte keys");
        TagKey { key, keyed }
    }

    /// The keyed tag of `user`: HMAC-SHA256 of the user id, truncated to 128 bits.
    pub fn tag(&self, user: &UserId) -> UserTag {
        UserTag::from_digest(&self.mac(user.as_str().as_bytes()))
    }

    /// A value that only this key gives, stored beside the records a store tags with it so
    /// that a store reached with another key can tell (see `RedisStore`). It reveals nothing
    /// of the key.
    #[cfg(feature = "redis")]
    pub(crate) fn check_value(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.mac(b"tower-otp:tag-key-check\0")[..TAG_BYTES])
    }

    fn mac(&self, message: &[u8]) -> impl std::ops::Deref<Target = [u8]> {
        let mut mac = self.keyed.clone();
        mac.update(message);
        mac.finalize().into_bytes()
    }

    fn same_as(&self, other: &TagKey) -> bool {
        self.key[..].ct_eq(&other.key[..]).into()
    }
}

impl fmt::Debug for TagKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TagKey([redacted])")
    }
}

/// A store's source of user tags, for implementing
/// [`Store::user_tag`](crate::store::Store::user_tag) and
/// [`Store::bind_tag_key`](crate::store::Store::bind_tag_key): unkeyed until a [`TagKey`] is
/// bound, keyed by the first key bound from then on. Clones share the binding, so every
/// clone of a store tags alike.
#[derive(Clone, Default)]
pub struct UserTagger(Arc<OnceLock<TagKey>>);

impl UserTagger {
    /// A tagger with no key yet.
    pub fn new() -> Self {
        UserTagger::default()
    }

    /// Binds `key`, unless a key is bound already: the first key wins, because records
    /// written under it would be lost to any other. Binding the bound key again changes
    /// nothing; binding another one is ignored with a warning. Returns whether `key` is the
    /// bound key now.
    pub fn bind(&self, key: TagKey) -> bool {
        let bound = self.0.get_or_init(|| key.clone());
        let same = bound.same_as(&key);
        if !same {
            tracing::warn!(
                "this store tags users under another key already; the new key is ignored \
                 (give every TwoFactor over one store the same ServerKey)"
            );
        }
        same
    }

    /// Whether a key is bound.
    pub fn is_keyed(&self) -> bool {
        self.0.get().is_some()
    }

    /// The bound key, if any.
    #[cfg(feature = "redis")]
    pub(crate) fn key(&self) -> Option<&TagKey> {
        self.0.get()
    }

    /// The tag of `user`: keyed once a key is bound, a plain SHA-256 of the id before.
    pub fn tag(&self, user: &UserId) -> UserTag {
        match self.0.get() {
            Some(key) => key.tag(user),
            None => UserTag::unkeyed(user),
        }
    }
}

impl fmt::Debug for UserTagger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserTagger")
            .field("keyed", &self.is_keyed())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ServerKey;

    fn alice() -> UserId {
        UserId::new("alice").unwrap()
    }

    fn key(byte: u8) -> TagKey {
        ServerKey::new(&[byte; 32]).unwrap().tag_key()
    }

    #[test]
    fn tags_are_stable_hex_and_parse_strictly() {
        let tagger = UserTagger::new();
        let tag = tagger.tag(&alice());
        assert_eq!(tag, tagger.tag(&alice()));
        assert_ne!(tag, tagger.tag(&UserId::new("bob").unwrap()));
        assert_eq!(tag.as_str().len(), 32);
        assert_eq!(UserTag::parse(tag.as_str()), Some(tag));
        assert_eq!(UserTag::parse("{x}"), None);
        assert_eq!(UserTag::parse(&"A".repeat(32)), None);
    }

    #[test]
    fn an_unkeyed_tag_is_the_plain_digest_and_a_keyed_one_is_not() {
        let plain = data_encoding::HEXLOWER.encode(&Sha256::digest(b"alice")[..16]);
        let tagger = UserTagger::new();
        assert_eq!(tagger.tag(&alice()).as_str(), plain);
        assert!(tagger.bind(key(1)));
        assert!(tagger.is_keyed());
        assert_ne!(tagger.tag(&alice()).as_str(), plain);
        assert_eq!(tagger.tag(&alice()), key(1).tag(&alice()));
    }

    #[test]
    fn different_server_keys_give_different_tags() {
        assert_ne!(key(1).tag(&alice()), key(2).tag(&alice()));
        assert_ne!(
            ServerKey::new(&[1; 32]).unwrap().tag_key().tag(&alice()),
            UserTag::unkeyed(&alice())
        );
    }

    #[test]
    fn the_first_key_bound_wins_and_clones_share_it() {
        let tagger = UserTagger::new();
        let clone = tagger.clone();
        assert!(clone.bind(key(1)));
        assert!(tagger.bind(key(1)), "the same key again is accepted");
        assert!(!tagger.bind(key(2)), "another key is refused");
        assert_eq!(tagger.tag(&alice()), key(1).tag(&alice()));
        assert_eq!(clone.tag(&alice()), key(1).tag(&alice()));
    }

    #[test]
    fn keys_and_taggers_never_show_the_key() {
        let key = ServerKey::new(&[7; 32]).unwrap().tag_key();
        assert_eq!(format!("{key:?}"), "TagKey([redacted])");
        let tagger = UserTagger::new();
        tagger.bind(key);
        assert_eq!(format!("{tagger:?}"), "UserTagger { keyed: true }");
    }

    #[test]
    fn tags_match_only_themselves() {
        let tag = key(1).tag(&alice());
        assert!(tag.matches(&key(1).tag(&alice())));
        assert!(!tag.matches(&key(2).tag(&alice())));
    }
}
