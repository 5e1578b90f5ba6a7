//! CSRF tokens of the pages' forms, bound to the session.
//!
//! A token is an HMAC of the session's id digest (the binding of its [`Caller`]) under a key
//! derived from the [`ServerKey`](crate::ServerKey) for this purpose alone: whoever lacks the
//! server key cannot make one, a token of one session is worthless in another, and it changes
//! whenever the session id does (login, verification). Nothing is stored.

use subtle::ConstantTimeEq;

use crate::{Caller, TwoFactor};

/// The key-derivation purpose of the tokens.
const PURPOSE: &str = "ui-csrf";

/// The token of `caller`'s session; `None` for a caller without a session.
pub(crate) fn token(two_factor: &TwoFactor, caller: &Caller) -> Option<String> {
    let binding = caller.binding()?;
    Some(two_factor.server_key().digest(PURPOSE, &[binding]))
}

/// Whether `given` is `caller`'s token, compared in constant time.
pub(crate) fn is_valid(two_factor: &TwoFactor, caller: &Caller, given: &str) -> bool {
    token(two_factor, caller)
        .is_some_and(|expected| bool::from(expected.as_bytes().ct_eq(given.as_bytes())))
}
