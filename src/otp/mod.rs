//! One-time-password arithmetic: HOTP ([RFC 4226]) and TOTP ([RFC 6238]).
//!
//! This module knows nothing about users, devices or storage. It turns a [`Secret`] and a
//! counter or a time into a [`Code`], parses what a person typed into a [`Token`], compares the
//! two in constant time, and builds the `otpauth://` URI (and, with the `qr` feature, an SVG QR
//! code) that authenticator apps scan.
//!
//! Codes are never parsed to integers: `"+123456"`, `"0123456"` and `"123456"` are three
//! different inputs, and only the last is a 6-digit token. A token is exactly the configured
//! number of ASCII digits once whitespace is removed.
//!
//! ```
//! use tower_otp::otp::{Algorithm, Digits, OtpKey, Secret, TotpParams, Token};
//!
//! // The RFC 6238 test secret and its first vector.
//! let secret = Secret::from_bytes(b"12345678901234567890".to_vec()).unwrap();
//! let key = OtpKey::new(secret, Algorithm::Sha1, Digits::EIGHT);
//! let params = TotpParams::default();
//! let step = params.time_step(59).unwrap();
//! assert_eq!(key.hotp(step).reveal(), "94287082");
//!
//! let typed = Token::parse(" 9428 7082 ", Digits::EIGHT).unwrap();
//! assert!(key.hotp(step).matches(&typed));
//! ```
//!
//! [RFC 4226]: https://www.rfc-editor.org/rfc/rfc4226
//! [RFC 6238]: https://www.rfc-editor.org/rfc/rfc6238

mod algorithm;
mod code;
mod provisioning;
mod secret;
mod token;

pub use algorithm::{Algorithm, Digits, InvalidDigits, UnknownAlgorithm};
pub use code::{Code, OtpKey, TotpParams, find_match};
#[cfg(any(feature = "api", feature = "ui"))]
pub(crate) use provisioning::AccountLabel;
pub(crate) use provisioning::check_issuer;
pub use provisioning::{OtpauthUri, ProvisioningError};
pub use secret::{Secret, SecretError};
pub use token::{Token, TokenError};

pub(crate) use secret::random_bytes;
