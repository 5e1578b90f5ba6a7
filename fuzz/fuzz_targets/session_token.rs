//! `SessionToken::parse`: never a panic; what it accepts is kept unchanged, parses again to
//! the same store key, and never shows in `Debug`. An id in the form the crate issues, built
//! from a fuzzed user and secret, is always accepted, with the key of that user and secret.

#![no_main]

use data_encoding::BASE64URL_NOPAD;
use libfuzzer_sys::fuzz_target;
use tower_otp::{ServerKey, UserId};
use tower_otp::session::{SessionKey, SessionToken, UserTag};

fuzz_target!(|input: (&str, &str, [u8; 32])| {
    let (text, user, secret) = input;
    if let Some((token, key)) = SessionToken::parse(text) {
        assert_eq!(token.expose(), text);
        let (again, same_key) = SessionToken::parse(token.expose()).expect("parses again");
        assert_eq!(again, token);
        assert_eq!(same_key, key);
        let (tag, _) = text.split_once('.').expect("TAG.SECRET");
        assert_eq!(UserTag::parse(tag).as_ref(), Some(key.tag()));
        assert!(!format!("{token:?}").contains(text));
    }

    let Ok(user) = UserId::new(user) else {
        return;
    };
    let tag = ServerKey::new(&[1; 32]).unwrap().tag_key().tag(&user);
    let issued = format!("{}.{}", tag.as_str(), BASE64URL_NOPAD.encode(&secret));
    let (token, key) = SessionToken::parse(&issued).expect("an id of the issued form");
    assert_eq!(token.expose(), issued);
    assert_eq!(key, SessionKey::new(tag, &secret));
});
