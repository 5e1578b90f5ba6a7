//! Approvals as the store keeps them, and how they are addressed.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::device::{DeviceId, UserId};
use crate::session::{SessionKey, SessionToken, UserTag};
use crate::store::LoginBinding;

/// The id of an approval, as `TAG.SECRET`: the owner's [`UserTag`] (so that the phone's answer,
/// which carries no session, finds the user's records, in the user's Redis Cluster hash slot)
/// and 256 random bits.
///
/// It is not a credential on its own (reading an approval takes the session that asked for it,
/// answering one takes the device's signature), but it names a login in progress: its `Debug`
/// output is redacted and the store sees only a digest of it (see [`ApprovalKey`]).
#[derive(Clone, PartialEq, Eq)]
pub struct ApprovalId(SessionToken);

impl ApprovalId {
    /// A new random id for an approval of the user with `tag`, and its store key.
    #[cfg_attr(not(feature = "push"), allow(dead_code))]
    pub(crate) fn generate(tag: &UserTag) -> (ApprovalId, ApprovalKey) {
        let (token, key) = SessionToken::generate(tag);
        (ApprovalId(token), ApprovalKey(key))
    }

    /// Parses an id strictly (from a URL, say), with its store key; `None` for anything not
    /// exactly of the form this crate issues.
    pub fn parse(text: &str) -> Option<(ApprovalId, ApprovalKey)> {
        SessionToken::parse(text).map(|(token, key)| (ApprovalId(token), ApprovalKey(key)))
    }

    /// The id's text, to hand to the login page and the phone.
    pub fn as_str(&self) -> &str {
        self.0.expose()
    }
}

impl fmt::Debug for ApprovalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApprovalId([redacted])")
    }
}

/// Where an approval lives in the store: its user's tag and a digest of its id.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ApprovalKey(SessionKey);

impl ApprovalKey {
    /// The owner's tag.
    pub fn tag(&self) -> &UserTag {
        self.0.tag()
    }

    /// The digest of the id: 32 lowercase hex digits.
    pub fn digest(&self) -> &str {
        self.0.digest()
    }
}

impl fmt::Debug for ApprovalKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApprovalKey({}, [redacted])", self.tag().as_str())
    }
}

/// Where an approval stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ApprovalStatus {
    /// Sent to the phone; no answer yet.
    Pending,
    /// The phone approved with the right number; the login that asked may use it once.
    Approved,
    /// The phone denied it, or chose a wrong number.
    Denied,
    /// The phone denied it as "this wasn't me": pushes to the user pause for a while.
    Reported,
    /// No answer came in time.
    Expired,
    /// An approved approval that verified its login; it cannot verify again.
    Used,
}

impl ApprovalStatus {
    /// The stable name used in JSON and store records.
    pub const fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Denied => "denied",
            ApprovalStatus::Reported => "reported",
            ApprovalStatus::Expired => "expired",
            ApprovalStatus::Used => "used",
        }
    }

    /// The status named `name` (as [`ApprovalStatus::as_str`] writes it).
    pub fn from_name(name: &str) -> Option<Self> {
        [
            ApprovalStatus::Pending,
            ApprovalStatus::Approved,
            ApprovalStatus::Denied,
            ApprovalStatus::Reported,
            ApprovalStatus::Expired,
            ApprovalStatus::Used,
        ]
        .into_iter()
        .find(|status| status.as_str() == name)
    }

    /// Whether the phone's answer settled it: approved, denied or reported.
    pub fn is_answered(self) -> bool {
        matches!(
            self,
            ApprovalStatus::Approved
                | ApprovalStatus::Denied
                | ApprovalStatus::Reported
                | ApprovalStatus::Used
        )
    }
}

impl fmt::Display for ApprovalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the phone shows about the login asking for approval.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalContext {
    /// The client's address, when the layer was told how to find it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_addr: Option<IpAddr>,
    /// The login's `User-Agent` (at most 256 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The application's name (the issuer), when one is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
}

/// An approval as stored.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    /// Whose login.
    pub user: UserId,
    /// The push device asked.
    pub device: DeviceId,
    /// The login (session) that asked: only it may read and use the approval.
    pub binding: Option<LoginBinding>,
    /// The number to match, 10 to 99: the login page shows it, the phone must choose it.
    pub number: u8,
    /// When it was asked for.
    pub created_at: Timestamp,
    /// When an unanswered approval expires.
    pub expires_at: Timestamp,
    /// What the phone shows about the login.
    pub context: ApprovalContext,
    /// Where it stands.
    pub status: ApprovalStatus,
    /// When the phone's answer settled it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<Timestamp>,
}

impl ApprovalRecord {
    /// The status as of `now`: a pending approval past its expiry reads as expired.
    pub fn status_at(&self, now: Timestamp) -> ApprovalStatus {
        if self.status == ApprovalStatus::Pending && self.expires_at <= now {
            ApprovalStatus::Expired
        } else {
            self.status
        }
    }
}

impl fmt::Debug for ApprovalRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The number to match stays out of logs: a log reader could race the user to it.
        f.debug_struct("ApprovalRecord")
            .field("user", &self.user)
            .field("device", &self.device)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("status", &self.status)
            .field("answered_at", &self.answered_at)
            .finish_non_exhaustive()
    }
}

/// The outcome of [`Store::create_approval`](crate::store::Store::create_approval).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApprovalCreate {
    /// The approval was stored and is the user's live one.
    Created,
    /// The user has a live (pending, unexpired) approval already; nothing was stored.
    Busy {
        /// When that one expires.
        until: Timestamp,
    },
    /// The user reported a push as "this wasn't me" recently; nothing was stored.
    Blocked {
        /// When pushes may be sent again.
        until: Timestamp,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_to_the_same_key_and_debug_hides_them() {
        let tag = UserTag::unkeyed(&UserId::new("alice").unwrap());
        let (id, key) = ApprovalId::generate(&tag);
        let (parsed, parsed_key) = ApprovalId::parse(id.as_str()).unwrap();
        assert_eq!(parsed, id);
        assert_eq!(parsed_key, key);
        assert_eq!(key.tag(), &tag);
        assert!(!format!("{id:?}{key:?}").contains(key.digest()));
        assert!(!format!("{id:?}").contains(id.as_str()));
        for bad in ["", "x.y", &id.as_str()[1..], &format!("{}=", id.as_str())] {
            assert!(ApprovalId::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn statuses_round_trip_and_pending_ones_expire() {
        for status in [
            ApprovalStatus::Pending,
            ApprovalStatus::Approved,
            ApprovalStatus::Denied,
            ApprovalStatus::Reported,
            ApprovalStatus::Expired,
            ApprovalStatus::Used,
        ] {
            assert_eq!(ApprovalStatus::from_name(status.as_str()), Some(status));
        }
        let record = ApprovalRecord {
            user: UserId::new("alice").unwrap(),
            // Fixed: a random id holds "42" one time in eight.
            device: "0123456789abcdef0123456789abcdef".parse().unwrap(),
            binding: None,
            number: 42,
            created_at: Timestamp::from_secs(1),
            expires_at: Timestamp::from_secs(121),
            context: ApprovalContext::default(),
            status: ApprovalStatus::Pending,
            answered_at: None,
        };
        assert_eq!(
            record.status_at(Timestamp::from_secs(120)),
            ApprovalStatus::Pending
        );
        assert_eq!(
            record.status_at(Timestamp::from_secs(121)),
            ApprovalStatus::Expired
        );
        assert!(!format!("{record:?}").contains("42"));
    }
}
