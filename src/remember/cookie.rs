//! The remember-device cookie: what it binds, and how it is signed and checked.

use std::fmt;
use std::time::Duration;

use data_encoding::BASE64URL_NOPAD;
use hmac::{KeyInit, Mac};
use zeroize::Zeroizing;

use super::BrowserId;
use super::browser::hex16;
use crate::clock::Timestamp;
use crate::device::{DeviceId, KeyError};
use crate::session::UserTag;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Domain separation for the MAC: a remember cookie's MAC means nothing anywhere else.
const MAC_DOMAIN: &[u8] = b"tower-otp:remember-cookie:v1\0";
/// 2: the user's tag in place of the user id, so the cookie does not show who it is for.
const VERSION: u8 = 2;
/// version, issued, expires, stamp, browser id, device id, user tag.
const PAYLOAD_LEN: usize = 1 + 8 + 8 + 8 + 16 + 16 + 16;
const MAC_LEN: usize = 32;
/// Longest cookie value looked at; anything longer is refused unread.
const MAX_VALUE_LEN: usize = 1024;

/// Settings of remember-device cookies: signing keys, lifetime, name.
///
/// Keys: the first signs, every one verifies, so keys rotate by putting a new one first and
/// dropping the old one once its cookies have expired (or at once, to revoke them all).
#[derive(Clone)]
pub struct RememberConfig {
    keys: Vec<Zeroizing<Vec<u8>>>,
    lifetime: Duration,
    cookie_name: Option<String>,
}

impl RememberConfig {
    /// The shortest key accepted, in bytes.
    pub const MIN_KEY_LEN: usize = 32;

    /// Cookies signed with `keys[0]`, verified with any of `keys` (each at least 32 bytes),
    /// valid for 30 days.
    pub fn new<K: AsRef<[u8]>>(keys: impl IntoIterator<Item = K>) -> Result<Self, KeyError> {
        let keys: Vec<Zeroizing<Vec<u8>>> = keys
            .into_iter()
            .map(|k| Zeroizing::new(k.as_ref().to_vec()))
            .collect();
        if keys.is_empty() || keys.iter().any(|k| k.len() < Self::MIN_KEY_LEN) {
            return Err(KeyError::WrongLength);
        }
        Ok(RememberConfig {
            keys,
            lifetime: Duration::from_secs(30 * 24 * 60 * 60),
            cookie_name: None,
        })
    }

    /// How long a browser stays remembered (default 30 days).
    pub fn with_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// The cookie's name (default `__Host-otp-remember`, or `otp-remember` when the session
    /// cookie cannot use the `__Host-` prefix). Other attributes follow the session cookie.
    pub fn with_cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie_name = Some(name.into());
        self
    }

    /// The lifetime.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    pub(crate) fn cookie_name(&self, session_cookie: &str) -> String {
        match &self.cookie_name {
            Some(name) => name.clone(),
            None if session_cookie.starts_with("__Host-") => "__Host-otp-remember".to_owned(),
            None => "otp-remember".to_owned(),
        }
    }

    /// The cookie value for `claims`, signed with the first key.
    pub(crate) fn sign(&self, claims: &RememberClaims) -> String {
        let payload = claims.encode();
        let mac = mac(&self.keys[0], &payload);
        format!(
            "{}.{}",
            BASE64URL_NOPAD.encode(&payload),
            BASE64URL_NOPAD.encode(&mac)
        )
    }

    /// The claims of a cookie value signed by any configured key; `None` for anything else.
    pub(crate) fn verify(&self, value: &str) -> Option<RememberClaims> {
        if value.len() > MAX_VALUE_LEN {
            return None;
        }
        let (payload, tag) = value.split_once('.')?;
        let payload = BASE64URL_NOPAD.decode(payload.as_bytes()).ok()?;
        let tag = BASE64URL_NOPAD.decode(tag.as_bytes()).ok()?;
        if tag.len() != MAC_LEN {
            return None;
        }
        // Every key is tried, so the time taken does not tell which one matched.
        let mut valid = false;
        for key in &self.keys {
            let mut check = HmacSha256::new_from_slice(key).ok()?;
            check.update(MAC_DOMAIN);
            check.update(&payload);
            valid |= check.verify_slice(&tag).is_ok();
        }
        if !valid {
            return None;
        }
        RememberClaims::decode(&payload)
    }
}

fn mac(key: &[u8], payload: &[u8]) -> [u8; MAC_LEN] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(MAC_DOMAIN);
    mac.update(payload);
    mac.finalize().into_bytes().into()
}

impl fmt::Debug for RememberConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RememberConfig")
            .field("keys", &format_args!("[{} redacted]", self.keys.len()))
            .field("lifetime", &self.lifetime)
            .field("cookie_name", &self.cookie_name)
            .finish()
    }
}

/// What a remember cookie binds: the user (by the store's tag of the user, which is keyed, so
/// the cookie, signed but not encrypted, does not name the user), the device, the browser
/// record, the user's stamp when it was issued, and its issue and expiry times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RememberClaims {
    pub(crate) user: UserTag,
    pub(crate) device: DeviceId,
    pub(crate) browser: BrowserId,
    pub(crate) stamp: u64,
    pub(crate) issued_at: Timestamp,
    pub(crate) expires_at: Timestamp,
}

impl RememberClaims {
    /// Fixed-width fields only: no two claims encode alike.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(PAYLOAD_LEN);
        out.push(VERSION);
        out.extend_from_slice(&self.issued_at.as_millis().to_be_bytes());
        out.extend_from_slice(&self.expires_at.as_millis().to_be_bytes());
        out.extend_from_slice(&self.stamp.to_be_bytes());
        out.extend_from_slice(&self.browser.to_bytes());
        out.extend_from_slice(&hex16(self.device.as_str()));
        out.extend_from_slice(&hex16(self.user.as_str()));
        out
    }

    fn decode(payload: &[u8]) -> Option<Self> {
        if payload.len() != PAYLOAD_LEN || payload[0] != VERSION {
            return None;
        }
        let u64_at = |at: usize| {
            Some(u64::from_be_bytes(
                payload.get(at..at + 8)?.try_into().ok()?,
            ))
        };
        let issued_at = Timestamp::from_millis(u64_at(1)?);
        let expires_at = Timestamp::from_millis(u64_at(9)?);
        let stamp = u64_at(17)?;
        let browser: [u8; 16] = payload.get(25..41)?.try_into().ok()?;
        let device: [u8; 16] = payload.get(41..57)?.try_into().ok()?;
        let user = payload.get(57..73)?;
        Some(RememberClaims {
            user: UserTag::parse(&data_encoding::HEXLOWER.encode(user))?,
            device: data_encoding::HEXLOWER.encode(&device).parse().ok()?,
            browser: BrowserId::from_bytes(&browser),
            stamp,
            issued_at,
            expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::UserId;

    fn claims() -> RememberClaims {
        RememberClaims {
            user: UserTag::unkeyed(&UserId::new("alice").unwrap()),
            device: DeviceId::generate(),
            browser: BrowserId::generate(),
            stamp: 7,
            issued_at: Timestamp::from_millis(1_000),
            expires_at: Timestamp::from_millis(2_000),
        }
    }

    #[test]
    fn signed_claims_round_trip_and_keys_rotate() {
        let old = RememberConfig::new([[1u8; 32]]).unwrap();
        let rotated = RememberConfig::new([[2u8; 32], [1u8; 32]]).unwrap();
        let removed = RememberConfig::new([[2u8; 32]]).unwrap();
        let claims = claims();
        let value = old.sign(&claims);
        assert_eq!(old.verify(&value), Some(claims.clone()));
        assert_eq!(
            rotated.verify(&value),
            Some(claims.clone()),
            "old keys still verify"
        );
        assert_eq!(removed.verify(&value), None, "a removed key does not");
        assert_eq!(removed.verify(&rotated.sign(&claims)), Some(claims));
    }

    #[test]
    fn short_keys_are_refused_and_keys_never_shown() {
        assert!(RememberConfig::new([[0u8; 31]]).is_err());
        assert!(RememberConfig::new(Vec::<Vec<u8>>::new()).is_err());
        let config = RememberConfig::new([[9u8; 32]]).unwrap();
        assert!(!format!("{config:?}").contains("9, 9"));
    }

    #[test]
    fn every_cookie_has_one_length() {
        let config = RememberConfig::new([[1u8; 32]]).unwrap();
        let value = config.sign(&claims());
        let (payload, _) = value.split_once('.').unwrap();
        let payload = BASE64URL_NOPAD.decode(payload.as_bytes()).unwrap();
        assert_eq!(payload.len(), PAYLOAD_LEN);
        assert_eq!(RememberClaims::decode(&payload[..PAYLOAD_LEN - 1]), None);
    }

    #[test]
    fn cookies_of_the_first_format_are_refused() {
        let config = RememberConfig::new([[1u8; 32]]).unwrap();
        let mut payload = claims().encode();
        payload[0] = 1;
        let first = format!(
            "{}.{}",
            BASE64URL_NOPAD.encode(&payload),
            BASE64URL_NOPAD.encode(&mac(&[1u8; 32], &payload))
        );
        assert_eq!(config.verify(&first), None);
    }
}
