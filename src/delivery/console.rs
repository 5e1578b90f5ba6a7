//! A development sender that prints codes.

use std::fmt;
use std::io::Write;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{Message, SendError, Sender};

/// A [`Sender`] for development that prints each code on standard output (or a writer of
/// your choice), one line per message.
///
/// It writes directly, not through `tracing` or `log`: codes must never reach log pipelines.
/// Do not use it in production, where standard output is often collected as logs.
#[derive(Clone)]
pub struct ConsoleSender {
    out: Option<Arc<Mutex<dyn Write + Send>>>,
}

impl ConsoleSender {
    /// A sender that prints to standard output.
    pub fn new() -> Self {
        ConsoleSender { out: None }
    }

    /// A sender that writes to `out` instead.
    pub fn with_writer(out: impl Write + Send + 'static) -> Self {
        ConsoleSender {
            out: Some(Arc::new(Mutex::new(out))),
        }
    }

    fn line(message: &Message) -> String {
        format!(
            "[tower-otp] {} code for {} (user {}): {} (valid {} s)\n",
            message.channel(),
            message.destination(),
            message.user(),
            message.code(),
            message.valid_for().as_secs(),
        )
    }
}

impl Default for ConsoleSender {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ConsoleSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = if self.out.is_some() {
            "writer"
        } else {
            "stdout"
        };
        f.debug_struct("ConsoleSender")
            .field("target", &target)
            .finish()
    }
}

#[async_trait]
impl Sender for ConsoleSender {
    async fn send(&self, message: &Message) -> Result<(), SendError> {
        let line = zeroize::Zeroizing::new(Self::line(message));
        let written = match &self.out {
            Some(out) => {
                let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
                out.write_all(line.as_bytes()).and_then(|()| out.flush())
            }
            None => {
                let mut out = std::io::stdout().lock();
                out.write_all(line.as_bytes()).and_then(|()| out.flush())
            }
        };
        written.map_err(|error| SendError::Unavailable(format!("cannot write: {}", error.kind())))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_message;
    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn prints_one_line_with_the_code() {
        let buffer = Buffer::default();
        let sender = ConsoleSender::with_writer(buffer.clone());
        sender.send(&test_message("246810")).await.unwrap();
        let printed = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            printed,
            "[tower-otp] email code for alice@example.com (user alice): 246810 (valid 300 s)\n"
        );
        assert!(!format!("{sender:?}").contains("246810"));
    }
}
