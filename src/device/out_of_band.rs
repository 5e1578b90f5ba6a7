//! Out-of-band devices: a code is generated when the user asks for one (a *challenge*) and
//! delivered through a [`Sender`](super::Sender) registered for the device's channel.
//!
//! * The code is numeric, of the device's length (default 6), drawn uniformly from the
//!   operating system's random number generator.
//! * It works for [`OutOfBandPolicy::validity`] (default 300 s), once; the store keeps only its
//!   keyed hash (see [`ServerKey`](super::ServerKey)).
//! * It works only for the login that asked for it: the caller's
//!   [`binding`](super::Caller::binding) (a digest of the session) is stored with it, and the
//!   store accepts the code only from a caller with the same binding, in the same atomic step
//!   that checks the code. In another session of the same user it is a wrong code, and counts
//!   as one. A code sent by a caller without a session works only for a caller without one.
//! * It takes at most [`OutOfBandPolicy::max_tries`] attempts (default 5). An attempt at the
//!   device takes one of the code's tries when it starts, atomically with the attempt's
//!   throttle count; the code dies at a wrong answer to its last try, and an attempt beyond
//!   that finds it gone. A guesser so has 5 chances in a million per 6-digit code sent.
//! * A device has at most one live code: a new challenge replaces the old one, but not before
//!   [`OutOfBandPolicy::cooldown`] (default 30 s) has passed since the last one was sent. A
//!   code that has died, been used or expired leaves no cooldown behind.
//! * Verifying it goes through the same attempt path, and so the same throttling, as every
//!   other device kind.
//!
//! # Send limits
//!
//! Every send counts against these limits, checked and counted in one atomic step of the
//! store ([`Store::count_rate_limited`](crate::store::Store::count_rate_limited)); if any is
//! reached, nothing is counted or sent and the send fails with
//! [`Error::SendLimited`] (HTTP 429 with `Retry-After` in the JSON
//! API). A send refused by the cooldown is not counted; one that fails to deliver is, since it
//! reached the sender.
//!
//! | limit | default | why |
//! | --- | --- | --- |
//! | [sends of a user](OutOfBandPolicy::with_user_send_limit) | 10 per hour | a user who logs in several times an hour never meets it; a password thief cannot make the user's phone ring all day |
//! | [sends of a user to pending devices](OutOfBandPolicy::with_user_pending_send_limit) | 5 per 15 minutes | a pending destination has not shown it wants codes: confirming one needs one or two |
//! | [sends to one destination as a pending device](OutOfBandPolicy::with_destination_pending_send_limit), across all users | 5 per hour | many accounts can name a stranger's number or address; this caps what the stranger receives however many there are |
//! | [sends to one destination as a confirmed device](OutOfBandPolicy::with_destination_confirmed_send_limit), across all users | 10 per hour | the per-user limit, so one user alone never meets it; it caps what many accounts that confirmed one (premium-rate) number can send to it |
//!
//! The two destination limits count apart, so that sends to someone's number as a pending
//! device of other accounts never use up the codes its owner's own logins need. A destination
//! is counted under a keyed digest, never in clear: of its E.164 form for every phone channel
//! (so SMS and voice share one count), and of an email address lower-cased and without a
//! `+tag` (so `Alice+1@example.com` and `alice@example.com` share one).
//!
//! # Destinations
//!
//! A destination is checked and normalised according to its channel when a device is added:
//!
//! | channel | destination | stored as | shown as |
//! | --- | --- | --- | --- |
//! | `email` | an address `local@domain` (ASCII, dot-atom local part) | domain lower-cased | `a***@example.com` |
//! | `sms`, `call`, `voice`, `whatsapp` | an international number, `+` (or `00`) and 7 to 15 digits; spaces, dots, hyphens and parentheses are ignored | E.164, `+31612345658` | `+31 *******58` |
//! | anything else | 1 to 256 characters, no control characters | trimmed | `ab***yz` |
//!
//! Masks show the country code and the last two digits of a number (as django-two-factor-auth
//! does), and the first character of an address's local part with a fixed-length run of
//! asterisks, so neither the address nor its length leaks to whoever sees the screen.

use std::time::Duration;

use zeroize::Zeroizing;

use crate::clock::Timestamp;
use crate::otp::{Digits, random_bytes};
use crate::session::UserTag;
use crate::store::{RateBucket, RateKey, RateLimit};

use super::{Device, DeviceConfig, DeviceId, Error};

/// The `email` channel: destinations are email addresses.
pub const EMAIL: &str = "email";
/// The `sms` channel: destinations are international phone numbers.
pub const SMS: &str = "sms";
/// The `call` channel: a voice call reads the code out; destinations are international
/// phone numbers.
pub const CALL: &str = "call";

/// Channels whose destinations are phone numbers.
const PHONE_CHANNELS: &[&str] = &[SMS, CALL, "voice", "whatsapp"];

/// Longest destination of a custom channel, in characters.
const MAX_OTHER_CHARS: usize = 256;

/// How out-of-band codes are made, how often they may be tried, and how often sent (see the
/// [module docs](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfBandPolicy {
    digits: Digits,
    validity: Duration,
    cooldown: Duration,
    max_tries: u32,
    user_sends: Option<RateLimit>,
    user_pending_sends: Option<RateLimit>,
    destination_pending_sends: Option<RateLimit>,
    destination_confirmed_sends: Option<RateLimit>,
}

const HOUR: Duration = Duration::from_secs(60 * 60);

impl Default for OutOfBandPolicy {
    fn default() -> Self {
        OutOfBandPolicy {
            digits: Digits::SIX,
            validity: Duration::from_secs(300),
            cooldown: Duration::from_secs(30),
            max_tries: 5,
            user_sends: Some(RateLimit::new(10, HOUR)),
            user_pending_sends: Some(RateLimit::new(5, Duration::from_secs(15 * 60))),
            destination_pending_sends: Some(RateLimit::new(5, HOUR)),
            destination_confirmed_sends: Some(RateLimit::new(10, HOUR)),
        }
    }
}

impl OutOfBandPolicy {
    /// The longest validity accepted.
    pub const MAX_VALIDITY: Duration = Duration::from_secs(24 * 60 * 60);
    /// The most tries a code may be given.
    pub const MAX_TRIES: u32 = 100;

    /// The default policy: 6 digits, valid for 300 s and 5 tries, 30 s between sends, and
    /// the send limits of the [module docs](self).
    pub fn new() -> Self {
        Self::default()
    }

    /// How many attempts a code takes before it dies (default 5; 1 to 100).
    pub fn with_max_tries(mut self, tries: u32) -> Self {
        self.max_tries = tries.clamp(1, Self::MAX_TRIES);
        self
    }

    /// The limit on all sends of one user (default 10 per hour; `None`: no limit).
    pub fn with_user_send_limit(mut self, limit: impl Into<Option<RateLimit>>) -> Self {
        self.user_sends = limit.into();
        self
    }

    /// The limit on sends of one user to the user's pending (unconfirmed) devices (default 5
    /// per 15 minutes; `None`: no limit).
    pub fn with_user_pending_send_limit(mut self, limit: impl Into<Option<RateLimit>>) -> Self {
        self.user_pending_sends = limit.into();
        self
    }

    /// The limit on sends to one destination as a pending device, across all users (default
    /// 5 per hour; `None`: no limit).
    pub fn with_destination_pending_send_limit(
        mut self,
        limit: impl Into<Option<RateLimit>>,
    ) -> Self {
        self.destination_pending_sends = limit.into();
        self
    }

    /// The limit on sends to one destination as a confirmed device, across all users
    /// (default 10 per hour; `None`: no limit).
    pub fn with_destination_confirmed_send_limit(
        mut self,
        limit: impl Into<Option<RateLimit>>,
    ) -> Self {
        self.destination_confirmed_sends = limit.into();
        self
    }

    /// No send limits at all (the cooldown stays). For tests and closed systems only.
    pub fn without_send_limits(self) -> Self {
        self.with_user_send_limit(None)
            .with_user_pending_send_limit(None)
            .with_destination_pending_send_limit(None)
            .with_destination_confirmed_send_limit(None)
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

    /// How many attempts a code takes.
    pub fn max_tries(&self) -> u32 {
        self.max_tries
    }

    /// The limit on all sends of one user.
    pub fn user_send_limit(&self) -> Option<RateLimit> {
        self.user_sends
    }

    /// The limit on sends of one user to pending devices.
    pub fn user_pending_send_limit(&self) -> Option<RateLimit> {
        self.user_pending_sends
    }

    /// The limit on sends to one destination as a pending device.
    pub fn destination_pending_send_limit(&self) -> Option<RateLimit> {
        self.destination_pending_sends
    }

    /// The limit on sends to one destination as a confirmed device.
    pub fn destination_confirmed_send_limit(&self) -> Option<RateLimit> {
        self.destination_confirmed_sends
    }

    /// The counters a send to a device of the user with `tag` (the store's) counts in: the
    /// user's, and those of the destination whose keyed digest is `destination` (see
    /// [`limit_identity`]), as a `pending` device or a confirmed one.
    pub(crate) fn send_buckets(
        &self,
        tag: &UserTag,
        pending: bool,
        destination: &str,
    ) -> Vec<RateBucket> {
        let of_user = |name: &str| RateKey::User {
            tag: tag.clone(),
            name: name.to_owned(),
        };
        let (destination_key, destination_limit) = if pending {
            ("oob-pending:", self.destination_pending_sends)
        } else {
            ("oob-confirmed:", self.destination_confirmed_sends)
        };
        let buckets = [
            (of_user("oob-sends"), self.user_sends),
            (
                of_user("oob-pending-sends"),
                self.user_pending_sends.filter(|_| pending),
            ),
            (
                RateKey::Shared(format!("{destination_key}{destination}")),
                destination_limit,
            ),
        ];
        buckets
            .into_iter()
            .filter_map(|(key, limit)| limit.map(|limit| RateBucket { key, limit }))
            .collect()
    }
}

/// What the send limits of a destination (in its stored form) count under: one identity for
/// every spelling that reaches the same recipient as far as the crate can tell. Phone channels
/// share the E.164 number; an email address is lower-cased whole (most mail systems ignore
/// the case of the local part) and loses a `+tag` (subaddresses reach the same mailbox).
pub(crate) fn limit_identity(channel: &str, destination: &str) -> String {
    if PHONE_CHANNELS.contains(&channel) {
        return format!("tel:{destination}");
    }
    if channel == EMAIL
        && let Some((local, domain)) = destination.rsplit_once('@')
    {
        let mailbox = match local.split_once('+') {
            Some((mailbox, _)) if !mailbox.is_empty() => mailbox,
            _ => local,
        };
        return format!("mailto:{mailbox}@{domain}").to_ascii_lowercase();
    }
    format!("{channel}:{destination}")
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
    use crate::device::UserId;

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
            .with_cooldown(Duration::from_secs(1_000_000))
            .with_max_tries(0);
        assert_eq!(policy.validity(), Duration::from_secs(1));
        assert_eq!(policy.cooldown(), OutOfBandPolicy::MAX_VALIDITY);
        assert_eq!(policy.max_tries(), 1);
        assert_eq!(
            OutOfBandPolicy::new().with_max_tries(u32::MAX).max_tries(),
            OutOfBandPolicy::MAX_TRIES
        );
        assert_eq!(OutOfBandPolicy::default().digits(), Digits::SIX);
        assert_eq!(OutOfBandPolicy::default().max_tries(), 5);
    }

    #[test]
    fn spellings_of_one_recipient_share_their_limits() {
        let email = |to| limit_identity(EMAIL, to);
        assert_eq!(email("Alice@example.com"), email("alice@example.com"));
        assert_eq!(email("alice+2fa@example.com"), email("alice@example.com"));
        assert_ne!(email("bob@example.com"), email("alice@example.com"));
        assert_eq!(email("+tag@example.com"), "mailto:+tag@example.com");
        assert_eq!(
            limit_identity(SMS, "+31612345658"),
            limit_identity("voice", "+31612345658")
        );
        assert_ne!(
            limit_identity("push", "+31612345658"),
            limit_identity(SMS, "+31612345658")
        );
    }

    #[test]
    fn a_send_counts_for_the_user_and_the_destination() {
        let alice = UserTag::unkeyed(&UserId::new("alice").unwrap());
        let names = |pending| {
            OutOfBandPolicy::default()
                .send_buckets(&alice, pending, "d1g3st")
                .into_iter()
                .map(|bucket| match bucket.key {
                    RateKey::User { name, .. } => name,
                    RateKey::Shared(name) => name,
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(true),
            ["oob-sends", "oob-pending-sends", "oob-pending:d1g3st"]
        );
        assert_eq!(names(false), ["oob-sends", "oob-confirmed:d1g3st"]);
        let unlimited = OutOfBandPolicy::default().without_send_limits();
        assert!(unlimited.send_buckets(&alice, true, "d1g3st").is_empty());
    }
}
