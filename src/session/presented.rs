//! What a request presents: a session id of ours (cookie or bearer header), or an identity
//! from the application's own login.

use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE};
use http::request::Parts;

use super::identity::Identified;
use super::{SessionConfig, SessionContext, SessionKey, SessionToken, UserTag};
use crate::device::UserId;

/// What the request carried.
#[derive(Clone, Debug)]
pub(crate) enum Presented {
    /// Nothing: anonymous.
    Nothing,
    /// A bearer header, or an identity, that is not valid.
    Malformed,
    /// A session id of ours.
    Token {
        key: SessionKey,
        transport: Transport,
    },
    /// A user from the identity source, and the key of their login's second-factor state.
    External { key: SessionKey, user: UserId },
}

/// How a session id travelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// In the session cookie.
    Cookie,
    /// In an `Authorization: Bearer` header.
    Bearer,
}

impl Presented {
    /// Reads the request: through the identity source when one is configured, else our own
    /// session id.
    pub(crate) fn find(context: &SessionContext, parts: &Parts) -> Presented {
        let Some(source) = &context.identity else {
            return own_session(&context.config, &parts.headers);
        };
        match source.identify(parts) {
            Identified::Anonymous => Presented::Nothing,
            Identified::Invalid => Presented::Malformed,
            Identified::User(identity) => Presented::External {
                key: SessionKey::new(UserTag::of(identity.user()), identity.login()),
                user: identity.user().clone(),
            },
        }
    }
}

/// Finds our session id: a bearer header first (it is explicit), then the cookie. A
/// malformed cookie is treated as absent; a malformed bearer id is reported.
fn own_session(config: &SessionConfig, headers: &HeaderMap) -> Presented {
    let bearer = if config.accepts_bearer() {
        bearer_token(headers)
    } else {
        None
    };
    if let Some(Some((_, key))) = bearer.map(|text| text.and_then(SessionToken::parse)) {
        return Presented::Token {
            key,
            transport: Transport::Bearer,
        };
    }
    if let Some(key) = cookie_values(headers, config.cookie_name())
        .find_map(|value| SessionToken::parse(value).map(|(_, key)| key))
    {
        return Presented::Token {
            key,
            transport: Transport::Cookie,
        };
    }
    if bearer.is_some() {
        Presented::Malformed
    } else {
        Presented::Nothing
    }
}

/// The credentials of an `Authorization: Bearer` header: `None` without one, `Some(None)`
/// when they are not even text.
fn bearer_token(headers: &HeaderMap) -> Option<Option<&str>> {
    let value = headers.get(AUTHORIZATION)?.as_bytes();
    let scheme = value.get(..7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    Some(std::str::from_utf8(&value[7..]).ok().map(str::trim))
}

/// Every value of the cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie_values<'a>(
    headers: &'a HeaderMap,
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|header| header.split(';'))
        .filter_map(move |pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then(|| value.trim_matches('"'))
        })
}
