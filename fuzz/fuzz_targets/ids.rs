//! Identifiers from URLs, JSON bodies and session ids: `DeviceId`, `BrowserId`,
//! `ConfirmationId`, `UserId` and `UserTag`, from text and from JSON. Never a panic; what is
//! accepted is kept unchanged, and JSON agrees with `FromStr`.

#![no_main]

use std::str::FromStr;

use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use tower_otp::confirm::ConfirmationId;
use tower_otp::remember::BrowserId;
use tower_otp::session::UserTag;
use tower_otp::{DeviceId, UserId};

/// Parses `input` as `T` from text and from a JSON string, and checks they agree.
fn check<T, F>(input: &str, as_str: F)
where
    T: FromStr + DeserializeOwned,
    F: Fn(&T) -> &str,
{
    let parsed = T::from_str(input).ok();
    if let Some(id) = &parsed {
        assert_eq!(as_str(id), input);
    }
    let json = serde_json::Value::from(input).to_string();
    let from_json = serde_json::from_str::<T>(&json).ok();
    assert_eq!(
        from_json.as_ref().map(&as_str),
        parsed.as_ref().map(&as_str)
    );
}

fuzz_target!(|input: &str| {
    check::<DeviceId, _>(input, DeviceId::as_str);
    check::<BrowserId, _>(input, BrowserId::as_str);
    check::<UserId, _>(input, UserId::as_str);
    if let Some(tag) = UserTag::parse(input) {
        assert_eq!(tag.as_str(), input);
    }
    // Not deserialisable: confirmation ids come from URLs only.
    if let Ok(id) = ConfirmationId::from_str(input) {
        assert_eq!(id.as_str(), input);
        assert!(!format!("{id:?}").contains(input));
    }
});
