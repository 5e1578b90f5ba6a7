//! What a request presents: a session id of ours (cookie or bearer header), or an identity
//! from the application's own login.

use http::header::{AUTHORIZATION, COOKIE};
use http::request::Parts;
use http::{HeaderMap, HeaderValue};

use super::identity::Identified;
use super::{SessionConfig, SessionContext, SessionKey, SessionToken};
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

/// The headers a session id can come in, kept as they are (cloning a header value shares
/// its bytes) so that nothing is parsed for requests that never look at their session.
#[derive(Clone, Debug, Default)]
pub(crate) struct Credentials {
    authorization: Option<HeaderValue>,
    /// The first `Cookie` header apart, since browsers send one: no allocation for it.
    cookie: Option<HeaderValue>,
    more_cookies: Vec<HeaderValue>,
}

impl Credentials {
    pub(crate) fn capture(headers: &HeaderMap) -> Self {
        let mut cookies = headers.get_all(COOKIE).iter().cloned();
        Credentials {
            authorization: headers.get(AUTHORIZATION).cloned(),
            cookie: cookies.next(),
            more_cookies: cookies.collect(),
        }
    }

    fn cookie_headers(&self) -> impl Iterator<Item = &HeaderValue> {
        self.cookie.iter().chain(&self.more_cookies)
    }
}

impl Presented {
    /// What the identity source says, if one is configured (it needs the request's head,
    /// so it runs at once); `None` when the crate's own session id is to be read from the
    /// credentials later.
    pub(crate) fn from_identity(context: &SessionContext, parts: &Parts) -> Option<Presented> {
        let source = context.identity.as_ref()?;
        Some(match source.identify(parts) {
            Identified::Anonymous => Presented::Nothing,
            Identified::Invalid => Presented::Malformed,
            Identified::User(identity) => Presented::External {
                key: SessionKey::new(
                    context.two_factor.store().user_tag(identity.user()),
                    identity.login(),
                ),
                user: identity.user().clone(),
            },
        })
    }

    /// Reads the crate's own session id from the credentials: a bearer header first (it is
    /// explicit), then the cookie. A malformed cookie is treated as absent; a malformed bearer
    /// id is reported.
    pub(crate) fn from_credentials(config: &SessionConfig, credentials: &Credentials) -> Presented {
        let bearer = if config.accepts_bearer() {
            bearer_token(credentials)
        } else {
            None
        };
        if let Some(Some(key)) = bearer.map(|text| text.and_then(SessionToken::key_of)) {
            return Presented::Token {
                key,
                transport: Transport::Bearer,
            };
        }
        if let Some(key) =
            cookie_values(credentials, config.cookie_name()).find_map(SessionToken::key_of)
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
}

/// The credentials of an `Authorization: Bearer` header: `None` without one, `Some(None)`
/// when they are not even text.
fn bearer_token(credentials: &Credentials) -> Option<Option<&str>> {
    let value = credentials.authorization.as_ref()?.as_bytes();
    let scheme = value.get(..7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    Some(std::str::from_utf8(&value[7..]).ok().map(str::trim))
}

/// Every value of the cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie_values<'a>(
    credentials: &'a Credentials,
    name: &str,
) -> impl Iterator<Item = &'a str> {
    credentials
        .cookie_headers()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|header| header.split(';'))
        .filter_map(move |pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then(|| value.trim_matches('"'))
        })
}
