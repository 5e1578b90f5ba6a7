//! Parsing what a person typed into a token.

use std::fmt;

use zeroize::Zeroizing;

use super::Digits;

/// A one-time code as entered by a user, normalised: whitespace removed, exactly the
/// expected number of ASCII digits. Its `Debug` output never shows the digits.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Zeroizing<String>);

/// Input longer than this (in bytes, before whitespace is removed) is refused unread.
const MAX_INPUT_LEN: usize = 64;

impl Token {
    /// Normalises `input` and checks it is exactly `digits` ASCII digits.
    ///
    /// Whitespace anywhere is removed (`"123 456"` and `" 123456\n"` are `"123456"`). Signs,
    /// letters, non-ASCII digits and wrong lengths are errors; nothing is parsed as a number.
    pub fn parse(input: &str, digits: Digits) -> Result<Token, TokenError> {
        if input.len() > MAX_INPUT_LEN {
            return Err(TokenError::TooLong);
        }
        let normalised: Zeroizing<String> =
            Zeroizing::new(input.chars().filter(|c| !c.is_whitespace()).collect());
        if normalised.is_empty() {
            return Err(TokenError::Empty);
        }
        if !normalised.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TokenError::NotDigits);
        }
        if normalised.len() != digits.len() {
            return Err(TokenError::WrongLength {
                expected: digits.get(),
            });
        }
        Ok(Token(normalised))
    }

    /// The normalised digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token([redacted; {} digits])", self.0.len())
    }
}

/// Why an input is not a token. None of the variants carries the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Nothing but whitespace.
    #[error("the code is empty")]
    Empty,
    /// Far longer than any code.
    #[error("the code is too long")]
    TooLong,
    /// Something other than the ASCII digits 0-9 (after whitespace is removed).
    #[error("the code must contain only the digits 0-9")]
    NotDigits,
    /// The wrong number of digits.
    #[error("the code must have {expected} digits")]
    WrongLength {
        /// The number of digits expected.
        expected: u8,
    },
    /// Not in the form of any code the user has (say, a backup code with a wrong character).
    #[error("the code is not in a recognised form")]
    Unrecognised,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse6(input: &str) -> Result<String, TokenError> {
        Token::parse(input, Digits::SIX).map(|t| t.as_str().to_owned())
    }

    #[test]
    fn whitespace_anywhere_is_removed() {
        assert_eq!(parse6("123456").unwrap(), "123456");
        assert_eq!(parse6(" 123 456\t\n").unwrap(), "123456");
        assert_eq!(parse6("\u{a0}12 34 56\u{2003}").unwrap(), "123456");
        assert_eq!(parse6("012345").unwrap(), "012345");
    }

    #[test]
    fn anything_but_exactly_six_ascii_digits_is_refused() {
        assert_eq!(parse6(""), Err(TokenError::Empty));
        assert_eq!(parse6("   "), Err(TokenError::Empty));
        assert_eq!(parse6("+12345"), Err(TokenError::NotDigits));
        assert_eq!(parse6("-12345"), Err(TokenError::NotDigits));
        assert_eq!(parse6("12345a"), Err(TokenError::NotDigits));
        assert_eq!(parse6("1234.5"), Err(TokenError::NotDigits));
        // Arabic-Indic and full-width digits are digits to Unicode, not to us.
        assert_eq!(parse6("١٢٣٤٥٦"), Err(TokenError::NotDigits));
        assert_eq!(parse6("１２３４５６"), Err(TokenError::NotDigits));
        assert_eq!(
            parse6("0123456"),
            Err(TokenError::WrongLength { expected: 6 })
        );
        assert_eq!(
            parse6("12345"),
            Err(TokenError::WrongLength { expected: 6 })
        );
        assert_eq!(parse6(&"1".repeat(65)), Err(TokenError::TooLong));
        assert_eq!(parse6(&"1".repeat(10_000)), Err(TokenError::TooLong));
    }

    #[test]
    fn debug_never_shows_the_digits() {
        let token = Token::parse("987654", Digits::SIX).unwrap();
        assert_eq!(format!("{token:?}"), "Token([redacted; 6 digits])");
    }
}
