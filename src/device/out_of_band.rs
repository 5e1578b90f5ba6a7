//! Out-of-band devices: a code is generated when the user asks for one (a *challenge*) and
//! delivered through a [`Sender`](super::Sender) registered for the device's channel.
//!
//! * The code is numeric, of the device's length (default 6), drawn uniformly from the
//!   operating system's random number generator.
//! * It works for [`OutOfBandPolicy::validity`] (default 300 s), once; the store keeps only its
//!   keyed hash (see [`ServerKey`](super::ServerKey)).
//! * A device has at most one live code: a new challenge replaces the old one, but not before
//!   [`OutOfBandPolicy::cooldown`] (default 30 s) has passed since the last one was sent.
//! * Verifying it goes through the same attempt path, and so the same throttling, as every
//!   other device kind.
//!
//! # Destinations
//!
//! A destination is checked and normalised according to its channel when a device is added:
//!
//! | channel | destination | stored as | shown as |
//! | --- | --- | --- | --- |
//! | `email` | an address `local@domain` (ASCII, dot-atom local part) | domain lower-cased | `a***@example.com` |
//! | `sms`, `voice`, `whatsapp` | an international number, `+` (or `00`) and 7 to 15 digits; spaces, dots, hyphens and parentheses are ignored | E.164, `+31612345658` | `+31 *******58` |
//! | anything else | 1 to 256 characters, no control characters | trimmed | `ab***yz` |
//!
//! Masks show the country code and the last two digits of a number (as django-two-factor-auth
//! does), and the first character of an address's local part with a fixed-length run of
//! asterisks, so neither the address nor its length leaks to whoever sees the screen.

use std::time::Duration;

use zeroize::Zeroizing;

use crate::clock::Timestamp;
use crate::otp::{Digits, random_bytes};

use super::{Device, DeviceConfig, DeviceId, Error};

/// The `email` channel: destinations are email addresses.
pub const EMAIL: &str = "email";
/// The `sms` channel: destinations are international phone numbers.
pub const SMS: &str = "sms";

/// Channels whose destinations are phone numbers.
const PHONE_CHANNELS: &[&str] = &[SMS, "voice", "whatsapp"];

/// Longest destination of a custom channel, in characters.
const MAX_OTHER_CHARS: usize = 256;

/// How out-of-band codes are made and how often they may be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfBandPolicy {
    digits: Digits,
    validity: Duration,
    cooldown: Duration,
}

impl Default for OutOfBandPolicy {
    fn default() -> Self {
        OutOfBandPolicy {
            digits: Digits::SIX,
            validity: Duration::from_secs(300),
            cooldown: Duration::from_secs(30),
        }
    }
}

impl OutOfBandPolicy {
    /// The longest validity accepted.
    pub const MAX_VALIDITY: Duration = Duration::from_secs(24 * 60 * 60);

    /// The default policy: 6 digits, valid for 300 s, 30 s between sends.
    pub fn new() -> Self {
        Self::default()
    }

    /// Code length of devices added from now on (default 6).
    pub fn with_digits(mut self, digits: Digits) -> Self {
        self.digits = digits;
        self
    }

    /// How long a code works (default 300 s; 1 s to 24 h).
    pub fn with_validity(mut self, validity: Duration) -> Self {
        self.validity = validity.clamp(Duration::from_secs(1), Self::MAX_VALIDITY);
        self
    }

    /// How long after sending a code no other may be sent to the device (default 30 s).
    pub fn with_cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown.min(Self::MAX_VALIDITY);
        self
    }

    /// Code length of new devices.
    pub fn digits(&self) -> Digits {
        self.digits
    }

    /// How long a code works.
    pub fn validity(&self) -> Duration {
        self.validity
    }

    /// The wait between two sends to one device.
    pub fn cooldown(&self) -> Duration {
        self.cooldown
    }
}

/// A code was sent. Nothing in it is secret: the destination is masked.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChallengeSent {
    /// The device the code was sent for.
    pub device_id: DeviceId,
    /// The channel it went through.
    pub channel: String,
    /// Where it went, masked for display.
    pub masked_destination: String,
    /// When the code stops working.
    pub expires_at: Timestamp,
    /// When another code may be sent.
    pub resend_after: Timestamp,
}

impl Device {
    /// The destination of an out-of-band device, masked for display; `None` for other kinds.
    pub fn masked_destination(&self) -> Option<String> {
        match &self.config {
            DeviceConfig::OutOfBand {
                channel,
                destination,
                ..
            } => Some(mask_destination(channel, destination)),
            _ => None,
        }
    }
}

/// Checks `destination` for `channel` and returns its stored form (see the
/// [module docs](self)).
pub fn normalise_destination(channel: &str, destination: &str) -> Result<String, Error> {
    let destination = destination.trim();
    if channel == EMAIL {
        normalise_email(destination).ok_or(Error::InvalidDestination("not an email address"))
    } else if PHONE_CHANNELS.contains(&channel) {
        normalise_phone(destination).ok_or(Error::InvalidDestination(
            "not an international phone number (+ and 7 to 15 digits)",
        ))
    } else {
        let count = destination.chars().count();
        let valid =
            (1..=MAX_OTHER_CHARS).contains(&count) && !destination.chars().any(char::is_control);
        valid
            .then(|| destination.to_owned())
            .ok_or(Error::InvalidDestination("empty, too long or unprintable"))
    }
}

/// `destination` (in its stored form) masked for display (see the [module docs](self)).
pub fn mask_destination(channel: &str, destination: &str) -> String {
    if channel == EMAIL
        && let Some((local, domain)) = destination.rsplit_once('@')
    {
        let first: String = local.chars().take(1).collect();
        return format!("{first}***@{domain}");
    }
    if PHONE_CHANNELS.contains(&channel)
        && let Some(digits) = destination.strip_prefix('+')
        && digits.len() > 4
        && digits.bytes().all(|b| b.is_ascii_digit())
    {
        return mask_phone(digits);
    }
    mask_other(destination)
}

fn mask_phone(digits: &str) -> String {
    let (country, national) = digits.split_at(country_code_len(digits).min(digits.len() - 2));
    let hidden = national.len() - 2;
    format!("+{country} {}{}", "*".repeat(hidden), &national[hidden..])
}

fn mask_other(destination: &str) -> String {
    let chars: Vec<char> = destination.chars().collect();
    if chars.len() < 6 {
        return "***".to_owned();
    }
    let head: String = chars[..2].iter().collect();
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("{head}***{tail}")
}

/// The length of the E.164 country code that `digits` begins with. Country codes form a
/// prefix code: `1` and `7` stand alone, the two-digit codes are listed, all others have three.
fn country_code_len(digits: &str) -> usize {
    const TWO_DIGIT: &[&str] = &[
        "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46",
        "47", "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63",
        "64", "65", "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98",
    ];
    if digits.starts_with('1') || digits.starts_with('7') {
        1
    } else if TWO_DIGIT.iter().any(|code| digits.starts_with(code)) {
        2
    } else {
        3
    }
}

fn normalise_phone(input: &str) -> Option<String> {
    let compact: String = input
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '-' | '.' | '(' | ')'))
        .collect();
    let digits = compact
        .strip_prefix('+')
        .or_else(|| compact.strip_prefix("00"))?;
    let valid = (7..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    valid.then(|| format!("+{digits}"))
}

fn normalise_email(input: &str) -> Option<String> {
    let (local, domain) = input.rsplit_once('@')?;
    let domain = domain.to_ascii_lowercase();
    let valid = input.len() <= 254 && valid_local_part(local) && valid_domain(&domain);
    valid.then(|| format!("{local}@{domain}"))
}

/// A dot-atom local part (RFC 5322 section 3.2.3): what every mail system accepts, and nothing
/// that could end a header or add a recipient.
fn valid_local_part(local: &str) -> bool {
    const SPECIALS: &[u8] = b"!#$%&'*+-/=?^_`{|}~";
    (1..=64).contains(&local.len())
        && local.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || SPECIALS.contains(&b))
        })
}

fn valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    let valid_label = |label: &&str| {
        (1..=63).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    domain.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(valid_label)
        && labels
            .last()
            .is_some_and(|tld| !tld.bytes().all(|b| b.is_ascii_digit()))
}

/// A uniformly random numeric code of `digits` digits.
pub(crate) fn generate_code(digits: Digits) -> Zeroizing<String> {
    let mut code = Zeroizing::new(String::with_capacity(digits.len()));
    while code.len() < digits.len() {
        let random = Zeroizing::new(random_bytes(digits.len() * 2));
        // Bytes of 250 and above are dropped: 250 is a multiple of 10, so each digit stays
        // equally likely (a plain `% 10` would favour 0 to 5).
        for byte in random.iter().filter(|b| **b < 250) {
            if code.len() == digits.len() {
                break;
            }
            code.push(char::from(b'0' + byte % 10));
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_normalise_to_e164() {
        for (typed, stored) in [
            ("+31 6 12345658", "+31612345658"),
            ("0031 (6) 1234-5658", "+31612345658"),
            ("+1.415.555.0123", "+14155550123"),
            (" +4915112345678 ", "+4915112345678"),
        ] {
            assert_eq!(
                normalise_destination(SMS, typed).unwrap(),
                stored,
                "{typed}"
            );
        }
        for bad in [
            "0612345658",
            "+31 6 1234 565x",
            "+0123456789",
            "+123456",
            "+1234567890123456",
            "++31612345658",
            "",
            "+",
            "+٣١٦١٢٣٤٥٦٥٨",
        ] {
            assert!(normalise_destination(SMS, bad).is_err(), "{bad}");
        }
        assert!(normalise_destination("voice", "+31612345658").is_ok());
    }

    #[test]
    fn email_addresses_are_checked_and_their_domain_lowercased() {
        for (typed, stored) in [
            ("alice@example.com", "alice@example.com"),
            (
                " Alice.B+2fa@Mail.Example.COM ",
                "Alice.B+2fa@mail.example.com",
            ),
            ("a@b.co", "a@b.co"),
        ] {
            assert_eq!(
                normalise_destination(EMAIL, typed).unwrap(),
                stored,
                "{typed}"
            );
        }
        for bad in [
            "alice",
            "alice@",
            "@example.com",
            "alice@example",
            "alice@@example.com",
            "al ice@example.com",
            "alice@exa mple.com",
            ".alice@example.com",
            "alice.@example.com",
            "al..ice@example.com",
            "alice@-example.com",
            "alice@example..com",
            "alice@1.2.3.4",
            "alice@example.com\r\nBcc: eve@example.com",
            "alice,eve@example.com",
            "<alice@example.com>",
            "\"alice\"@example.com",
            "élise@example.com",
            &format!("{}@example.com", "a".repeat(65)),
            &format!("a@{}.com", "b".repeat(64)),
        ] {
            assert!(normalise_destination(EMAIL, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn other_channels_take_any_printable_text() {
        assert_eq!(
            normalise_destination("push", "  device-token-1 ").unwrap(),
            "device-token-1"
        );
        assert!(normalise_destination("push", "").is_err());
        assert!(normalise_destination("push", "a\u{7}b").is_err());
        assert!(normalise_destination("push", &"x".repeat(257)).is_err());
    }

    #[test]
    fn destinations_are_masked() {
        assert_eq!(mask_destination(SMS, "+31612345658"), "+31 *******58");
        assert_eq!(mask_destination(SMS, "+14155550123"), "+1 ********23");
        assert_eq!(mask_destination(SMS, "+3584012345678"), "+358 ********78");
        assert_eq!(mask_destination(SMS, "+4915112345678"), "+49 *********78");
        assert_eq!(
            mask_destination(EMAIL, "alice@example.com"),
            "a***@example.com"
        );
        assert_eq!(mask_destination(EMAIL, "a@example.com"), "a***@example.com");
        assert_eq!(mask_destination("push", "device-token-1"), "de***-1");
        assert_eq!(mask_destination("push", "short"), "***");
        // Whatever is stored, a mask never panics and never shows the whole value.
        for odd in ["", "+", "+12", "@", "x@", "+1234a", "ünïcødé-ü"] {
            for channel in [SMS, EMAIL, "push"] {
                let masked = mask_destination(channel, odd);
                assert!(odd.is_empty() || masked != odd, "{channel} {odd}");
            }
        }
    }

    #[test]
    fn codes_have_the_right_length_and_look_uniform() {
        for digits in [Digits::SIX, Digits::SEVEN, Digits::EIGHT] {
            let code = generate_code(digits);
            assert_eq!(code.len(), digits.len());
            assert!(code.bytes().all(|b| b.is_ascii_digit()));
        }
        // 60,000 digits: each should appear about 6,000 times. A bias towards 0-5 of the
        // plain modulo kind (each 1/256 more likely) would not show here, but a broken
        // generator (always the same digit, or only some) would.
        let mut counts = [0u32; 10];
        for _ in 0..10_000 {
            for b in generate_code(Digits::SIX).bytes() {
                counts[usize::from(b - b'0')] += 1;
            }
        }
        for (digit, count) in counts.iter().enumerate() {
            assert!((5_400..=6_600).contains(count), "digit {digit}: {count}");
        }
    }

    #[test]
    fn policy_values_are_clamped() {
        let policy = OutOfBandPolicy::new()
            .with_validity(Duration::ZERO)
            .with_cooldown(Duration::from_secs(1_000_000));
        assert_eq!(policy.validity(), Duration::from_secs(1));
        assert_eq!(policy.cooldown(), OutOfBandPolicy::MAX_VALIDITY);
        assert_eq!(OutOfBandPolicy::default().digits(), Digits::SIX);
    }
}
