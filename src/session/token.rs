//! Session ids as they travel in cookies and `Authorization: Bearer` headers.

use std::fmt;

use data_encoding::BASE64URL_NOPAD;
use zeroize::Zeroizing;

use super::{SessionKey, UserTag};
use crate::otp::random_bytes;

/// Bytes of randomness in a session id: 256 bits.
const SECRET_LEN: usize = 32;
/// Length of the base64url form of the random part.
const SECRET_TEXT_LEN: usize = 43;
/// `tag` `.` `secret`.
const TOKEN_LEN: usize = 32 + 1 + SECRET_TEXT_LEN;

/// A session id: the owner's [`UserTag`] and 256 random bits, as `TAG.SECRET`.
///
/// It is a bearer credential: give it only to its owner. Its `Debug` output is redacted; the
/// text leaves it only through [`SessionToken::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken(Zeroizing<String>);

impl SessionToken {
    /// A new random id for a session of the user with `tag`, and its store key.
    pub(crate) fn generate(tag: &UserTag) -> (SessionToken, SessionKey) {
        let secret = Zeroizing::new(random_bytes(SECRET_LEN));
        let text = format!("{}.{}", tag.as_str(), BASE64URL_NOPAD.encode(&secret));
        (
            SessionToken(Zeroizing::new(text)),
            SessionKey::new(tag.clone(), &secret),
        )
    }

    /// Parses a presented id strictly; `None` for anything not exactly of the form this
    /// crate issues.
    pub fn parse(text: &str) -> Option<(SessionToken, SessionKey)> {
        let key = Self::key_of(text)?;
        Some((SessionToken(Zeroizing::new(text.to_owned())), key))
    }

    /// The store key of a presented id, parsed as strictly as [`SessionToken::parse`] does,
    /// without keeping a copy of the id (what every request that reads its session needs).
    pub(crate) fn key_of(text: &str) -> Option<SessionKey> {
        if text.len() != TOKEN_LEN {
            return None;
        }
        let (tag, secret) = text.split_once('.')?;
        if secret.len() != SECRET_TEXT_LEN
            || BASE64URL_NOPAD.decode_len(secret.len()).ok()? != SECRET_LEN
        {
            return None;
        }
        let mut bytes = Zeroizing::new([0u8; SECRET_LEN]);
        BASE64URL_NOPAD
            .decode_mut(secret.as_bytes(), &mut bytes[..])
            .ok()?;
        Some(SessionKey::new(UserTag::parse(tag)?, &bytes[..]))
    }

    /// The id's text, for a cookie value or to hand to an API client.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::UserId;

    #[test]
    fn generated_tokens_parse_to_the_same_key() {
        let tag = UserTag::unkeyed(&UserId::new("alice").unwrap());
        let (token, key) = SessionToken::generate(&tag);
        assert_eq!(token.expose().len(), TOKEN_LEN);
        let (parsed, parsed_key) = SessionToken::parse(token.expose()).unwrap();
        assert_eq!(parsed, token);
        assert_eq!(parsed_key, key);
        assert_ne!(SessionToken::generate(&tag).1, key);
        assert_eq!(format!("{token:?}"), "SessionToken([redacted])");
    }

    #[test]
    fn anything_else_is_refused() {
        let tag = UserTag::unkeyed(&UserId::new("alice").unwrap());
        let (token, _) = SessionToken::generate(&tag);
        let text = token.expose();
        let mut bad = vec![
            String::new(),
            "x".repeat(TOKEN_LEN),
            text[..TOKEN_LEN - 1].to_owned(),
            format!("{text}A"),
            text.replacen('.', "-", 1),
            text.to_uppercase(),
            format!("{}={}", &text[..TOKEN_LEN - 1], ""),
        ];
        // A last character whose low bits are not zero is not canonical base64.
        bad.push(format!("{}B", &text[..TOKEN_LEN - 1]));
        bad.push(format!("{}é", &text[..TOKEN_LEN - 2]));
        for candidate in bad {
            if candidate != text {
                assert!(SessionToken::parse(&candidate).is_none(), "{candidate}");
            }
        }
    }
}
