//! Email delivery over SMTP, with lettre.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::{AsyncSmtpTransportBuilder, Error as SmtpError};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::{Message, SendError, Sender, Template};

/// A [`Sender`] of codes by email over SMTP (lettre on tokio; TLS by rustls with the Mozilla
/// root certificates).
///
/// * [`SmtpSender::relay`]: TLS from the first byte, port 465 — the right choice for most
///   mail services.
/// * [`SmtpSender::starttls_relay`]: port 587, upgraded with STARTTLS, which is required:
///   nothing is sent if the server does not offer it.
/// * [`SmtpSender::unencrypted_localhost`]: plain SMTP to a relay on this machine.
///
/// Each send opens one connection and may take [`SmtpSender::DEFAULT_TIMEOUT`] (or what
/// [`SmtpSender::with_timeout`] says) in all. Errors carry only the SMTP status or the kind of
/// failure, never the message.
///
/// ```no_run
/// use tower_otp::device::{SmtpSender, Template};
///
/// let sender = SmtpSender::relay("smtp.example.com", "ACME <security@example.com>")?
///     .with_credentials("security@example.com", "app-password")
///     .with_subject("Your ACME sign-in code")
///     .with_template(Template::new("Your code is {code}. It works for {minutes} minutes.")?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SmtpSender {
    builder: AsyncSmtpTransportBuilder,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    subject: String,
    template: Template,
    timeout: Duration,
}

impl SmtpSender {
    /// How long a whole send may take unless set otherwise.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

    /// TLS to `host` on port 465, sending as `from` (`"Name <address>"` or an address).
    pub fn relay(host: &str, from: &str) -> Result<Self, SmtpConfigError> {
        let builder = AsyncSmtpTransport::<Tokio1Executor>::relay(host)
            .map_err(|_| SmtpConfigError::InvalidHost)?;
        Self::from_builder(builder, from)
    }

    /// STARTTLS to `host` on port 587, sending as `from`.
    pub fn starttls_relay(host: &str, from: &str) -> Result<Self, SmtpConfigError> {
        let builder = AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
            .map_err(|_| SmtpConfigError::InvalidHost)?;
        Self::from_builder(builder, from)
    }

    /// Plain SMTP to `127.0.0.1:port`, sending as `from`: for a relay on this machine (or a
    /// test's mail sink). Never use it across a network.
    pub fn unencrypted_localhost(port: u16, from: &str) -> Result<Self, SmtpConfigError> {
        let builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1").port(port);
        Self::from_builder(builder, from)
    }

    /// A sender over a transport configured with lettre directly, sending as `from`.
    pub fn from_builder(
        builder: AsyncSmtpTransportBuilder,
        from: &str,
    ) -> Result<Self, SmtpConfigError> {
        let from: Mailbox = from.parse().map_err(|_| SmtpConfigError::InvalidFrom)?;
        let builder = builder.timeout(Some(Self::DEFAULT_TIMEOUT));
        Ok(SmtpSender {
            transport: builder.clone().build(),
            builder,
            from,
            subject: "Your verification code".to_owned(),
            template: Template::default(),
            timeout: Self::DEFAULT_TIMEOUT,
        })
    }

    fn rebuild(
        mut self,
        change: impl FnOnce(AsyncSmtpTransportBuilder) -> AsyncSmtpTransportBuilder,
    ) -> Self {
        self.builder = change(self.builder);
        self.transport = self.builder.clone().build();
        self
    }

    /// Logs in with `username` and `password` (only over an encrypted connection, unless the
    /// transport is the unencrypted local one).
    pub fn with_credentials(
        self,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        let credentials = Credentials::new(username.into(), password.into());
        self.rebuild(|b| b.credentials(credentials))
    }

    /// The port, if not the default of the constructor.
    pub fn with_port(self, port: u16) -> Self {
        self.rebuild(|b| b.port(port))
    }

    /// How long a whole send, connecting included, may take (default 20 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self.rebuild(|b| b.timeout(Some(timeout)))
    }

    /// The subject line (default "Your verification code").
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = subject.into();
        self
    }

    /// The body of the mail (default: the code and how many minutes it works).
    pub fn with_template(mut self, template: Template) -> Self {
        self.template = template;
        self
    }

    fn email(&self, message: &Message) -> Result<lettre::Message, SendError> {
        let to: Mailbox = message
            .destination()
            .parse()
            .map_err(|_| SendError::Rejected("the destination is not an email address".into()))?;
        let body = self.template.render(message);
        lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(self.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_string())
            .map_err(|_| SendError::Misconfigured("the email cannot be built".into()))
    }
}

/// What went wrong, without the server's text: only the status code and the kind of failure.
fn send_error(error: &SmtpError) -> SendError {
    let status = error.status().map(|code| code.to_string());
    if error.is_timeout() {
        SendError::Timeout
    } else if error.is_permanent() {
        SendError::Rejected(format!("SMTP status {}", status.unwrap_or_default()))
    } else if error.is_transient() {
        SendError::Unavailable(format!("SMTP status {}", status.unwrap_or_default()))
    } else if error.is_tls() {
        SendError::Unavailable("TLS failed".into())
    } else {
        SendError::Unavailable("SMTP connection failed".into())
    }
}

impl fmt::Debug for SmtpSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // lettre's own Debug output leaves credentials out.
        f.debug_struct("SmtpSender")
            .field("transport", &self.builder)
            .field("from", &self.from.email.to_string())
            .field("subject", &self.subject)
            .finish()
    }
}

#[async_trait]
impl Sender for SmtpSender {
    async fn send(&self, message: &Message) -> Result<(), SendError> {
        let email = self.email(message)?;
        // lettre's own timeout covers connecting only; a server that stops answering later
        // would hold the request for ever.
        match tokio::time::timeout(self.timeout, self.transport.send(email)).await {
            Ok(sent) => sent.map(drop).map_err(|error| send_error(&error)),
            Err(_) => Err(SendError::Timeout),
        }
    }
}

/// An [`SmtpSender`] cannot be configured so.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SmtpConfigError {
    /// The sender address is not a valid mailbox.
    #[error("the sender address is not a valid mailbox")]
    InvalidFrom,
    /// TLS cannot be set up for the host name.
    #[error("TLS cannot be set up for this host name")]
    InvalidHost,
}

#[cfg(test)]
mod tests {
    use super::super::test_message;
    use super::*;

    #[test]
    fn builds_a_plain_text_mail_with_the_rendered_template() {
        let sender = SmtpSender::unencrypted_localhost(2525, "ACME <security@example.com>")
            .unwrap()
            .with_subject("Sign-in code")
            .with_template(Template::new("Code: {code}").unwrap());
        let email = sender.email(&test_message("135790")).unwrap();
        let text = String::from_utf8(email.formatted()).unwrap();
        assert!(text.contains("Subject: Sign-in code"), "{text}");
        assert!(text.contains("To: alice@example.com"), "{text}");
        assert!(text.contains("From: ACME <security@example.com>"), "{text}");
        assert!(text.ends_with("Code: 135790"), "{text}");
        assert_eq!(
            SmtpSender::unencrypted_localhost(25, "not a mailbox").unwrap_err(),
            SmtpConfigError::InvalidFrom
        );
        let debug = format!("{:?}", sender.with_credentials("user", "hunter2"));
        assert!(!debug.contains("hunter2"), "{debug}");
    }
}
