//! Remembered browsers as the store keeps them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::device::{Device, DeviceId, InvalidId, UserId};
use crate::otp::random_bytes;

/// The id of a remembered browser: 128 random bits as 32 lowercase hex digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BrowserId(String);

impl BrowserId {
    /// A new random id.
    pub fn generate() -> Self {
        BrowserId(data_encoding::HEXLOWER.encode(&random_bytes(16)))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn to_bytes(&self) -> [u8; 16] {
        hex16(&self.0)
    }

    pub(crate) fn from_bytes(bytes: &[u8; 16]) -> Self {
        BrowserId(data_encoding::HEXLOWER.encode(bytes))
    }
}

/// The 16 bytes of a 32-digit lowercase hex id (validated on construction).
pub(crate) fn hex16(text: &str) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    if let Ok(decoded) = data_encoding::HEXLOWER.decode(text.as_bytes()) {
        let n = decoded.len().min(16);
        bytes[..n].copy_from_slice(&decoded[..n]);
    }
    bytes
}

impl FromStr for BrowserId {
    type Err = InvalidId;
    fn from_str(id: &str) -> Result<Self, InvalidId> {
        let valid = id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if valid {
            Ok(BrowserId(id.to_owned()))
        } else {
            Err(InvalidId)
        }
    }
}

impl TryFrom<String> for BrowserId {
    type Error = InvalidId;
    fn try_from(id: String) -> Result<Self, InvalidId> {
        id.parse()
    }
}

impl From<BrowserId> for String {
    fn from(id: BrowserId) -> String {
        id.0
    }
}

impl fmt::Debug for BrowserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BrowserId({})", self.0)
    }
}

impl fmt::Display for BrowserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A browser a user asked to be remembered after passing the second factor.
///
/// The record is what makes its cookie valid: deleting it revokes the cookie at once, unlike
/// a purely signed cookie that lives until it expires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RememberedBrowser {
    /// Its id (also in the cookie).
    pub id: BrowserId,
    /// The user.
    pub user: UserId,
    /// The device whose verification it stands for.
    pub device_id: DeviceId,
    /// When it was remembered.
    pub created_at: Timestamp,
    /// When its cookie last verified a session.
    #[serde(default)]
    pub last_used_at: Option<Timestamp>,
    /// When it stops working (the record expires then too).
    pub expires_at: Timestamp,
    /// The browser's `User-Agent` when remembered, to help the user recognise it.
    #[serde(default)]
    pub user_agent: Option<String>,
}

/// Everything needed to accept a remember-device cookie, read in one store operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RememberedCheck {
    /// The browser record, if it exists and has not expired (its `last_used_at` as before
    /// this check).
    pub browser: Option<RememberedBrowser>,
    /// The device the cookie names, if it exists.
    pub device: Option<Device>,
    /// The user's current stamp.
    pub stamp: u64,
}
