//! `Token::parse` with every code length: never a panic, and what it accepts is exactly the
//! expected number of ASCII digits, parses again to itself, and never shows in `Debug`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_otp::otp::{Digits, Token};

fuzz_target!(|input: &str| {
    for digits in [Digits::SIX, Digits::SEVEN, Digits::EIGHT] {
        let Ok(token) = Token::parse(input, digits) else {
            continue;
        };
        let text = token.as_str();
        assert_eq!(text.len(), digits.len());
        assert!(text.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(Token::parse(text, digits).as_ref(), Ok(&token));
        assert!(!format!("{token:?}").contains(text));
    }
});
