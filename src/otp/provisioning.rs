//! `otpauth://` URIs for authenticator apps, and their QR codes.

use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use zeroize::Zeroizing;

use super::{Algorithm, Digits, Secret};
#[cfg(any(feature = "api", feature = "ui"))]
use crate::device::UserId;

/// Everything but RFC 3986 unreserved characters is percent-encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Longest issuer or account name accepted.
const MAX_LABEL_PART: usize = 256;

/// A provisioning URI in the [Key Uri Format] that authenticator apps read from a QR code:
/// `otpauth://totp/Issuer:account?secret=...&issuer=Issuer&algorithm=SHA1&digits=6&period=30`.
///
/// It contains the secret, so its `Debug` shows only the type and label, and its memory is
/// zeroed when dropped. Show it to the device's owner once, at enrolment.
///
/// ```
/// use tower_otp::otp::{Algorithm, Digits, OtpauthUri, Secret};
///
/// let secret = Secret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
/// let uri = OtpauthUri::totp("ACME Co", "alice@example.com", &secret, Algorithm::Sha1, Digits::SIX, 30).unwrap();
/// assert_eq!(
///     uri.as_str(),
///     "otpauth://totp/ACME%20Co:alice%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
///      &issuer=ACME%20Co&algorithm=SHA1&digits=6&period=30"
/// );
/// ```
///
/// [Key Uri Format]: https://github.com/google/google-authenticator/wiki/Key-Uri-Format
#[derive(Clone, PartialEq, Eq)]
pub struct OtpauthUri(Zeroizing<String>);

impl OtpauthUri {
    /// The URI of a TOTP device with a `period`-second step.
    ///
    /// The format has no field for a `t0` other than 0: devices with another `t0` cannot be
    /// provisioned by URI.
    pub fn totp(
        issuer: &str,
        account: &str,
        secret: &Secret,
        algorithm: Algorithm,
        digits: Digits,
        period: u64,
    ) -> Result<Self, ProvisioningError> {
        Self::build(
            "totp",
            issuer,
            account,
            secret,
            algorithm,
            digits,
            ("period", period),
        )
    }

    /// The URI of an HOTP device whose next counter value is `counter`.
    pub fn hotp(
        issuer: &str,
        account: &str,
        secret: &Secret,
        algorithm: Algorithm,
        digits: Digits,
        counter: u64,
    ) -> Result<Self, ProvisioningError> {
        Self::build(
            "hotp",
            issuer,
            account,
            secret,
            algorithm,
            digits,
            ("counter", counter),
        )
    }

    fn build(
        kind: &str,
        issuer: &str,
        account: &str,
        secret: &Secret,
        algorithm: Algorithm,
        digits: Digits,
        (moving_name, moving_value): (&str, u64),
    ) -> Result<Self, ProvisioningError> {
        check_label_part(issuer, true)?;
        check_label_part(account, false)?;
        let account = utf8_percent_encode(account, COMPONENT);
        let issuer = utf8_percent_encode(issuer, COMPONENT).to_string();
        let label = if issuer.is_empty() {
            account.to_string()
        } else {
            format!("{issuer}:{account}")
        };
        let mut uri = Zeroizing::new(format!("otpauth://{kind}/{label}?secret="));
        uri.push_str(&secret.to_base32());
        if !issuer.is_empty() {
            uri.push_str("&issuer=");
            uri.push_str(&issuer);
        }
        uri.push_str(&format!(
            "&algorithm={algorithm}&digits={digits}&{moving_name}={moving_value}"
        ));
        Ok(OtpauthUri(uri))
    }

    /// The URI text. It contains the secret.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URI as an SVG QR code (medium error correction), ready to inline in a page.
    #[cfg(feature = "qr")]
    #[cfg_attr(docsrs, doc(cfg(feature = "qr")))]
    pub fn to_svg(&self) -> Result<Zeroizing<String>, ProvisioningError> {
        use qrcode::render::svg;
        let code =
            qrcode::QrCode::with_error_correction_level(self.0.as_bytes(), qrcode::EcLevel::M)
                .map_err(|_| ProvisioningError::QrTooLong)?;
        Ok(Zeroizing::new(
            code.render::<svg::Color<'_>>()
                .min_dimensions(200, 200)
                .quiet_zone(true)
                .build(),
        ))
    }
}

impl fmt::Debug for OtpauthUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OtpauthUri([redacted])")
    }
}

/// Checks that `issuer` can be the issuer of a provisioning URI: no `:`, at most 256 bytes
/// (empty is allowed: the label is then the account name alone).
pub(crate) fn check_issuer(issuer: &str) -> Result<(), ProvisioningError> {
    check_label_part(issuer, true)
}

/// How a front-end (the JSON API, the pages) names a user's account in authenticator apps:
/// the application's function of the user, made valid by [`account_name`].
#[cfg(any(feature = "api", feature = "ui"))]
#[derive(Clone)]
pub(crate) struct AccountLabel(std::sync::Arc<dyn Fn(&UserId) -> String + Send + Sync>);

#[cfg(any(feature = "api", feature = "ui"))]
impl AccountLabel {
    pub(crate) fn new(label: impl Fn(&UserId) -> String + Send + Sync + 'static) -> Self {
        AccountLabel(std::sync::Arc::new(label))
    }

    /// The user id itself.
    pub(crate) fn user_id() -> Self {
        AccountLabel::new(|user: &UserId| user.to_string())
    }

    /// The account label of `user`, valid in a provisioning URI.
    pub(crate) fn for_user(&self, user: &UserId) -> String {
        account_name(&(self.0)(user), user.as_str())
    }
}

/// `label` made a valid account name, for labels the crate chooses on its own (a user id,
/// say): every `:` replaced with `_` (the format has no way to escape it: `%3A` counts as a
/// separator too), cut to 256 bytes at a character boundary, and `fallback` if it is empty.
#[cfg_attr(
    not(any(feature = "api", feature = "ui")),
    allow(dead_code, reason = "only the front-ends label accounts")
)]
pub(crate) fn account_name(label: &str, fallback: &str) -> String {
    let label = if label.is_empty() { fallback } else { label };
    let mut name = label.replace(':', "_");
    if name.len() > MAX_LABEL_PART {
        let mut end = MAX_LABEL_PART;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
    }
    name
}

fn check_label_part(part: &str, may_be_empty: bool) -> Result<(), ProvisioningError> {
    if part.is_empty() && !may_be_empty {
        return Err(ProvisioningError::EmptyAccount);
    }
    if part.contains(':') {
        return Err(ProvisioningError::Colon);
    }
    if part.len() > MAX_LABEL_PART {
        return Err(ProvisioningError::TooLong);
    }
    Ok(())
}

/// Why a provisioning URI could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProvisioningError {
    /// The account name is empty.
    #[error("the account name of a provisioning URI must not be empty")]
    EmptyAccount,
    /// Issuer or account name contains `:`, which separates them in the label.
    #[error("issuer and account name must not contain ':'")]
    Colon,
    /// Issuer or account name is longer than 256 bytes.
    #[error("issuer or account name is longer than 256 bytes")]
    TooLong,
    /// The URI does not fit in a QR code.
    #[error("the provisioning URI is too long for a QR code")]
    QrTooLong,
}

impl ProvisioningError {
    /// A stable, machine-readable name of the error kind.
    pub fn kind(&self) -> &'static str {
        match self {
            ProvisioningError::EmptyAccount => "empty_account_name",
            ProvisioningError::Colon => "colon_in_label",
            ProvisioningError::TooLong => "label_too_long",
            ProvisioningError::QrTooLong => "qr_too_long",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc_secret() -> Secret {
        Secret::from_bytes(b"12345678901234567890".to_vec()).unwrap()
    }

    #[test]
    fn hotp_uri_carries_counter_and_encodes_the_label() {
        let uri = OtpauthUri::hotp(
            "Böse & Co",
            "a b/c?d",
            &rfc_secret(),
            Algorithm::Sha256,
            Digits::EIGHT,
            7,
        )
        .unwrap();
        assert_eq!(
            uri.as_str(),
            "otpauth://hotp/B%C3%B6se%20%26%20Co:a%20b%2Fc%3Fd?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=B%C3%B6se%20%26%20Co&algorithm=SHA256&digits=8&counter=7"
        );
    }

    #[test]
    fn an_empty_issuer_leaves_a_bare_account_label() {
        let uri =
            OtpauthUri::totp("", "bob", &rfc_secret(), Algorithm::Sha1, Digits::SIX, 30).unwrap();
        assert!(uri.as_str().starts_with("otpauth://totp/bob?secret="));
        assert!(!uri.as_str().contains("issuer="));
    }

    #[test]
    fn ambiguous_labels_are_refused() {
        let secret = rfc_secret();
        let totp = |issuer, account| {
            OtpauthUri::totp(issuer, account, &secret, Algorithm::Sha1, Digits::SIX, 30)
        };
        assert_eq!(totp("a:b", "c").unwrap_err(), ProvisioningError::Colon);
        assert_eq!(totp("a", "b:c").unwrap_err(), ProvisioningError::Colon);
        assert_eq!(totp("a", "").unwrap_err(), ProvisioningError::EmptyAccount);
        assert_eq!(
            totp("a", &"x".repeat(300)).unwrap_err(),
            ProvisioningError::TooLong
        );
    }

    #[test]
    fn any_label_becomes_a_valid_account_name() {
        let secret = rfc_secret();
        let valid = |account: &str| {
            OtpauthUri::totp("i", account, &secret, Algorithm::Sha1, Digits::SIX, 30).is_ok()
        };
        for label in ["tenant:alice", ":", "a::b:", "", &"é:".repeat(200), "plain"] {
            let name = account_name(label, "fallback");
            assert!(valid(&name), "{label:?} gave {name:?}");
            assert!(!name.contains(':'));
        }
        assert_eq!(account_name("tenant:alice", "x"), "tenant_alice");
        assert_eq!(account_name("", "fallback"), "fallback");
        assert_eq!(account_name("plain", "x"), "plain");
        assert_eq!(account_name(&"é".repeat(200), "x"), "é".repeat(128));
        assert!(check_issuer("ACME").is_ok() && check_issuer("").is_ok());
        assert_eq!(check_issuer("A:B"), Err(ProvisioningError::Colon));
    }

    #[test]
    fn debug_hides_the_secret() {
        let uri =
            OtpauthUri::totp("x", "y", &rfc_secret(), Algorithm::Sha1, Digits::SIX, 30).unwrap();
        assert_eq!(format!("{uri:?}"), "OtpauthUri([redacted])");
    }

    #[cfg(feature = "qr")]
    #[test]
    fn qr_code_is_an_svg() {
        let uri =
            OtpauthUri::totp("x", "y", &rfc_secret(), Algorithm::Sha1, Digits::SIX, 30).unwrap();
        let svg = uri.to_svg().unwrap();
        assert!(svg.starts_with("<?xml"), "{}", &svg[..40]);
        assert!(svg.contains("<svg"));
        assert!(!svg.contains("GEZDGNBV"));
    }
}
