//! Delivery through an HTTP gateway (SMS providers and the like), with reqwest.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use reqwest::{Client, Url, redirect};

use super::{Message, SendError, Sender, Template};

/// A [`Sender`] that `POST`s each code as JSON to a gateway's URL (over rustls for `https`):
///
/// ```json
/// {"to": "+31612345658", "code": "123456", "channel": "sms", "expires_at": 1700000300}
/// ```
///
/// `expires_at` is in whole seconds since the Unix epoch. With
/// [`WebhookSender::with_template`], a `"text"` field carries the rendered message as well.
///
/// Any 2xx answer is success; redirects are not followed (they would resend the code to
/// another address); 4xx is a rejection and anything else unavailability. The whole request
/// may take [`WebhookSender::DEFAULT_TIMEOUT`] unless set otherwise. Errors carry only the
/// HTTP status or the kind of failure: not the code, not the URL (which may hold a key).
///
/// ```
/// use tower_otp::device::WebhookSender;
///
/// let sender = WebhookSender::new("https://sms-gateway.example.com/v1/send")?
///     .with_header("authorization", "Bearer gateway-token")?;
/// # Ok::<(), tower_otp::device::WebhookConfigError>(())
/// ```
///
/// The `call` channel (a voice call that reads the code out) goes through a voice gateway
/// the same way; its `"text"`, from [`Template::spoken`], says the digits one by one:
///
/// ```
/// use tower_otp::device::{Template, WebhookSender};
/// use tower_otp::{MemoryStore, ServerKey, TwoFactor};
///
/// let calls = WebhookSender::new("https://voice-gateway.example.com/v1/call")?
///     .with_template(Template::spoken());
/// let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::generate())
///     .with_sender("call", calls);
/// # Ok::<(), tower_otp::device::WebhookConfigError>(())
/// ```
#[derive(Clone)]
pub struct WebhookSender {
    client: Client,
    url: Url,
    headers: HeaderMap,
    timeout: Duration,
    template: Option<Template>,
}

impl WebhookSender {
    /// How long a request may take unless set otherwise.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

    /// A sender to `url` (`http` or `https`).
    pub fn new(url: &str) -> Result<Self, WebhookConfigError> {
        let url = Url::parse(url).map_err(|_| WebhookConfigError::InvalidUrl)?;
        if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
            return Err(WebhookConfigError::InvalidUrl);
        }
        let client = Client::builder()
            .redirect(redirect::Policy::none())
            .build()
            .map_err(|_| WebhookConfigError::Client)?;
        Ok(WebhookSender {
            client,
            url,
            headers: HeaderMap::new(),
            timeout: Self::DEFAULT_TIMEOUT,
            template: None,
        })
    }

    /// Sends this header with every request (say, `authorization`). Its value is treated as
    /// a secret: never shown in `Debug` output.
    pub fn with_header(mut self, name: &str, value: &str) -> Result<Self, WebhookConfigError> {
        let name = HeaderName::try_from(name).map_err(|_| WebhookConfigError::InvalidHeader)?;
        let mut value =
            HeaderValue::try_from(value).map_err(|_| WebhookConfigError::InvalidHeader)?;
        value.set_sensitive(true);
        self.headers.insert(name, value);
        Ok(self)
    }

    /// How long a request may take in all (default 10 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Adds a `"text"` field with the message rendered from `template`.
    pub fn with_template(mut self, template: Template) -> Self {
        self.template = Some(template);
        self
    }

    fn body(&self, message: &Message) -> serde_json::Value {
        let mut body = serde_json::json!({
            "to": message.destination(),
            "code": message.code(),
            "channel": message.channel(),
            "expires_at": message.expires_at().as_secs(),
        });
        if let (Some(template), Some(fields)) = (&self.template, body.as_object_mut()) {
            fields.insert(
                "text".into(),
                template.render(message).as_str().to_owned().into(),
            );
        }
        body
    }
}

fn status_error(status: StatusCode) -> SendError {
    let code = status.as_u16();
    if status.is_redirection() {
        SendError::Misconfigured(format!(
            "the gateway answered with a redirect (HTTP {code})"
        ))
    } else if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS {
        SendError::Rejected(format!("HTTP status {code}"))
    } else {
        SendError::Unavailable(format!("HTTP status {code}"))
    }
}

/// What went wrong, without reqwest's text (which names the URL).
fn request_error(error: &reqwest::Error) -> SendError {
    if error.is_timeout() {
        SendError::Timeout
    } else if error.is_connect() {
        SendError::Unavailable("cannot connect to the gateway".into())
    } else {
        SendError::Unavailable("the request to the gateway failed".into())
    }
}

impl fmt::Debug for WebhookSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The query string and any user info may hold credentials.
        let url = format!(
            "{}://{}{}",
            self.url.scheme(),
            self.url.host_str().unwrap_or_default(),
            self.url.path()
        );
        let headers: Vec<&str> = self.headers.keys().map(HeaderName::as_str).collect();
        f.debug_struct("WebhookSender")
            .field("url", &url)
            .field("headers", &headers)
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[async_trait]
impl Sender for WebhookSender {
    async fn send(&self, message: &Message) -> Result<(), SendError> {
        self.post_json(&self.body(message)).await
    }
}

impl WebhookSender {
    /// `POST`s `body` as JSON to the gateway, with the configured headers and timeout.
    pub(crate) async fn post_json(&self, body: &serde_json::Value) -> Result<(), SendError> {
        let response = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .timeout(self.timeout)
            .json(body)
            .send()
            .await
            .map_err(|error| request_error(&error))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(status_error(status))
        }
    }
}

/// A [`WebhookSender`] cannot be configured so.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookConfigError {
    /// Not an absolute `http` or `https` URL.
    #[error("the webhook URL must be an absolute http or https URL")]
    InvalidUrl,
    /// A header name or value is not valid HTTP.
    #[error("invalid header name or value")]
    InvalidHeader,
    /// The HTTP client cannot be set up (its TLS configuration failed).
    #[error("the HTTP client cannot be set up")]
    Client,
}

#[cfg(test)]
mod tests {
    use super::super::test_message;
    use super::*;

    #[test]
    fn the_body_has_the_documented_fields() {
        let sender = WebhookSender::new("https://gw.example.com/send").unwrap();
        assert_eq!(
            sender.body(&test_message("424242")),
            serde_json::json!({
                "to": "alice@example.com", "code": "424242", "channel": "email",
                "expires_at": 1_000_300,
            })
        );
        let with_text = sender.with_template(Template::new("Code {code}").unwrap());
        assert_eq!(
            with_text.body(&test_message("424242"))["text"],
            "Code 424242"
        );
    }

    #[test]
    fn configuration_is_checked_and_secrets_stay_out_of_debug() {
        for bad in [
            "",
            "not a url",
            "ftp://gw.example.com/",
            "/relative",
            "mailto:a@b.c",
        ] {
            assert_eq!(
                WebhookSender::new(bad).unwrap_err(),
                WebhookConfigError::InvalidUrl,
                "{bad}"
            );
        }
        let sender = WebhookSender::new("https://user:pw@gw.example.com/send?key=s3cret").unwrap();
        assert_eq!(
            sender.clone().with_header("bad name", "x").unwrap_err(),
            WebhookConfigError::InvalidHeader
        );
        let sender = sender.with_header("authorization", "Bearer t0ken").unwrap();
        let debug = format!("{sender:?}");
        for secret in ["s3cret", "t0ken", "pw@"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(debug.contains("https://gw.example.com/send"), "{debug}");
        assert!(debug.contains("authorization"), "{debug}");
    }
}
