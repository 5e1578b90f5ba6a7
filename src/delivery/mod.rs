//! Delivery of out-of-band codes: the [`Sender`] trait and the senders the crate ships.
//!
//! A [`TwoFactor`](crate::TwoFactor) holds one sender per channel name
//! ([`TwoFactor::with_sender`](crate::TwoFactor::with_sender)); a device's channel picks the
//! sender its codes go through.
//!
//! | sender | for | feature |
//! | --- | --- | --- |
//! | [`OutboxSender`] | tests and demos: keeps messages in memory | |
//! | [`ConsoleSender`] | development: prints codes on standard output | |
//! | `SmtpSender` | email over SMTP (lettre) | `smtp` |
//! | `WebhookSender` | SMS, calls through a voice gateway, and other gateways: a JSON `POST` | `webhook` |
//! | [`sender_fn`] | anything else, from an async closure | |
//!
//! A sender sees the code in a [`Message`] and puts it in the message it delivers and nowhere
//! else: [`Message`]'s `Debug` output redacts it, and no [`SendError`] carries it.

mod console;
mod outbox;
#[cfg(feature = "smtp")]
mod smtp;
#[cfg(feature = "webhook")]
mod webhook;

use std::fmt;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use zeroize::Zeroizing;

use crate::clock::Timestamp;

use crate::device::{DeviceId, UserId};

pub use console::ConsoleSender;
pub use outbox::OutboxSender;
#[cfg(feature = "smtp")]
#[cfg_attr(docsrs, doc(cfg(feature = "smtp")))]
pub use smtp::{SmtpConfigError, SmtpSender};
#[cfg(feature = "webhook")]
#[cfg_attr(docsrs, doc(cfg(feature = "webhook")))]
pub use webhook::{WebhookConfigError, WebhookSender};

/// Delivers out-of-band codes over one channel.
///
/// Implementations bound their own running time (a network sender needs a timeout) and
/// never put the code into an error, a log line or `Debug` output.
///
/// ```
/// use tower_otp::device::{Message, SendError, Sender};
///
/// #[derive(Debug)]
/// struct Pager;
///
/// #[async_trait::async_trait]
/// impl Sender for Pager {
///     async fn send(&self, message: &Message) -> Result<(), SendError> {
///         // page(message.destination(), message.code()).await
///         let _ = (message.destination(), message.code());
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait Sender: Send + Sync + fmt::Debug + 'static {
    /// Delivers `message`. An error means the user will not get the code.
    async fn send(&self, message: &Message) -> Result<(), SendError>;
}

/// A code to deliver, with where and for whom. `Debug` output shows everything but the code.
#[derive(Clone)]
pub struct Message {
    user: UserId,
    device: DeviceId,
    channel: String,
    destination: String,
    code: Zeroizing<String>,
    expires_at: Timestamp,
    valid_for: Duration,
}

impl Message {
    pub(crate) fn new(
        user: UserId,
        device: DeviceId,
        channel: String,
        destination: String,
        code: Zeroizing<String>,
        expires_at: Timestamp,
        valid_for: Duration,
    ) -> Self {
        Message {
            user,
            device,
            channel,
            destination,
            code,
            expires_at,
            valid_for,
        }
    }

    /// The user the code is for.
    pub fn user(&self) -> &UserId {
        &self.user
    }

    /// The device the code is for.
    pub fn device(&self) -> &DeviceId {
        &self.device
    }

    /// The channel (the name the sender was registered under).
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Where to send it, in its normalised form (an address, an E.164 number…).
    pub fn destination(&self) -> &str {
        &self.destination
    }

    /// The code. It belongs in the delivered message and nowhere else.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// When the code stops working.
    pub fn expires_at(&self) -> Timestamp {
        self.expires_at
    }

    /// How long the code works from when it was made.
    pub fn valid_for(&self) -> Duration {
        self.valid_for
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("user", &self.user)
            .field("device", &self.device)
            .field("channel", &self.channel)
            .field("destination", &self.destination)
            .field("code", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The text of a delivered message, with placeholders: `{code}`, `{code_spoken}` (the
/// digits one by one, `4, 9, 3, 8, 1, 7`, for a voice gateway to read out), `{minutes}` (the
/// validity, rounded up) and `{seconds}`. One of the two code placeholders is required.
///
/// ```
/// use tower_otp::device::Template;
///
/// assert!(Template::new("Your code is {code}, valid for {minutes} minutes.").is_ok());
/// assert!(Template::new("Your code is {code_spoken}.").is_ok());
/// assert!(Template::new("No code here").is_err());
/// ```
///
/// For the `call` channel, a voice gateway reads the text out: give its `WebhookSender`
/// [`Template::spoken`], which says the digits one by one, twice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template(String);

impl Template {
    /// A template; it must contain `{code}` or `{code_spoken}`.
    pub fn new(text: impl Into<String>) -> Result<Self, InvalidTemplate> {
        let text = text.into();
        if !text.contains("{code}") && !text.contains("{code_spoken}") {
            return Err(InvalidTemplate);
        }
        Ok(Template(text))
    }

    /// The default text of a call: the digits one by one, twice, so that the listener can
    /// write them down.
    pub fn spoken() -> Self {
        Template(
            "Your verification code is: {code_spoken}. Once more: {code_spoken}. \
             It expires in {minutes} minutes."
                .into(),
        )
    }

    /// The template's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text for `message`.
    pub fn render(&self, message: &Message) -> Zeroizing<String> {
        let seconds = message.valid_for.as_secs();
        let spoken = Zeroizing::new(spell_out(message.code()));
        // The code is digits only, so replacing it last cannot create another placeholder;
        // `{code_spoken}` goes first, as `{code}` is no part of it.
        Zeroizing::new(
            self.0
                .replace("{minutes}", &seconds.div_ceil(60).to_string())
                .replace("{seconds}", &seconds.to_string())
                .replace("{code_spoken}", &spoken)
                .replace("{code}", message.code()),
        )
    }
}

/// `code`'s characters one by one, separated by a comma and a space: text-to-speech reads
/// `4, 9, 3` as three digits rather than as a number.
fn spell_out(code: &str) -> String {
    let mut spoken = String::with_capacity(code.len() * 3);
    for (i, c) in code.chars().enumerate() {
        if i > 0 {
            spoken.push_str(", ");
        }
        spoken.push(c);
    }
    spoken
}

impl Default for Template {
    fn default() -> Self {
        Template("Your verification code is {code}. It expires in {minutes} minutes.".into())
    }
}

/// A template without `{code}` or `{code_spoken}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a message template must contain {{code}} or {{code_spoken}}")]
pub struct InvalidTemplate;

/// Why a code could not be delivered. No variant carries the code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The delivery service refused the message or its destination for good.
    #[error("the message was refused: {0}")]
    Rejected(String),
    /// The delivery service could not be reached or failed for now.
    #[error("the delivery service is unavailable: {0}")]
    Unavailable(String),
    /// The delivery service did not answer in time.
    #[error("the delivery service did not answer in time")]
    Timeout,
    /// The sender is configured wrongly.
    #[error("the sender is misconfigured: {0}")]
    Misconfigured(String),
}

impl SendError {
    /// A stable, machine-readable code for the error.
    pub fn kind(&self) -> &'static str {
        match self {
            SendError::Rejected(_) => "delivery_rejected",
            SendError::Unavailable(_) => "delivery_unavailable",
            SendError::Timeout => "delivery_timeout",
            SendError::Misconfigured(_) => "sender_misconfigured",
        }
    }
}

/// A [`Sender`] from an async closure that takes the [`Message`]; see [`sender_fn`].
#[derive(Clone, Copy)]
pub struct SenderFn<F> {
    send: F,
}

/// Makes a [`Sender`] of an async closure.
///
/// ```
/// use tower_otp::device::{Message, SendError, sender_fn};
///
/// let push = sender_fn(|message: Message| async move {
///     // push_notification(message.destination(), message.code()).await
///     let _ = message;
///     Ok::<(), SendError>(())
/// });
/// # let _ = push;
/// ```
pub fn sender_fn<F, Fut>(send: F) -> SenderFn<F>
where
    F: Fn(Message) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), SendError>> + Send + 'static,
{
    SenderFn { send }
}

impl<F> fmt::Debug for SenderFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SenderFn")
    }
}

#[async_trait]
impl<F, Fut> Sender for SenderFn<F>
where
    F: Fn(Message) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), SendError>> + Send + 'static,
{
    async fn send(&self, message: &Message) -> Result<(), SendError> {
        (self.send)(message.clone()).await
    }
}

#[cfg(test)]
pub(crate) fn test_message(code: &str) -> Message {
    Message::new(
        UserId::new("alice").unwrap(),
        DeviceId::generate(),
        "email".into(),
        "alice@example.com".into(),
        Zeroizing::new(code.to_owned()),
        Timestamp::from_secs(1_000_300),
        Duration::from_secs(300),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_redact_the_code() {
        let message = test_message("493021");
        let debug = format!("{message:?}");
        assert!(!debug.contains("493021"), "{debug}");
        assert!(debug.contains("alice@example.com"));
        assert_eq!(message.code(), "493021");
    }

    #[test]
    fn templates_fill_placeholders() {
        let template = Template::new("{code} / {minutes} min / {seconds} s / {code}").unwrap();
        assert_eq!(
            template.render(&test_message("012345")).as_str(),
            "012345 / 5 min / 300 s / 012345"
        );
        assert_eq!(Template::new("nothing"), Err(InvalidTemplate));
        assert!(
            Template::default()
                .render(&test_message("777777"))
                .contains("777777")
        );
    }

    #[test]
    fn spoken_templates_say_the_digits_one_by_one() {
        let text = Template::spoken().render(&test_message("012345"));
        assert_eq!(
            text.as_str(),
            "Your verification code is: 0, 1, 2, 3, 4, 5. Once more: 0, 1, 2, 3, 4, 5. \
             It expires in 5 minutes."
        );
        let both = Template::new("{code_spoken} ({code})").unwrap();
        assert_eq!(both.render(&test_message("493")).as_str(), "4, 9, 3 (493)");
    }
}
