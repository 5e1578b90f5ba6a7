//! An in-memory outbox, for tests and demos.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use super::{Message, SendError, Sender};
use crate::device::out_of_band::normalise_destination;

/// The most messages an outbox keeps; older ones are dropped.
const CAPACITY: usize = 1_000;

/// A [`Sender`] that delivers nothing and keeps every message in memory instead, so tests and
/// demos can read the codes. Clones share one outbox; it keeps the latest 1,000 messages.
///
/// ```
/// use tower_otp::device::{OutboxSender, out_of_band};
/// use tower_otp::{ServerKey, TwoFactor, UserId};
/// use tower_otp::store::MemoryStore;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let outbox = OutboxSender::new();
/// let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::generate())
///     .with_sender(out_of_band::EMAIL, outbox.clone());
/// let alice = UserId::new("alice").unwrap();
/// let device = two_factor
///     .add_out_of_band_device(&alice, "Work mail", out_of_band::EMAIL, "alice@example.com")
///     .await?;
/// let sent = two_factor.send_challenge(&alice, &device.id).await?;
/// assert_eq!(sent.masked_destination, "a***@example.com");
///
/// let code = outbox.last_code_for("alice@example.com").unwrap();
/// two_factor.confirm_device(&alice, &device.id, &code).await?;
/// # Ok::<(), tower_otp::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Default)]
pub struct OutboxSender {
    messages: Arc<Mutex<Vec<Message>>>,
}

impl OutboxSender {
    /// An empty outbox.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Message>> {
        // Pushing and reading cannot leave the vector half-changed, so a poisoned lock is
        // still consistent.
        self.messages
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every kept message, oldest first.
    pub fn messages(&self) -> Vec<Message> {
        self.lock().clone()
    }

    /// The latest message to `destination` (as typed or as stored).
    pub fn last_for(&self, destination: &str) -> Option<Message> {
        self.lock()
            .iter()
            .rev()
            .find(|m| same_destination(m, destination))
            .cloned()
    }

    /// The code of the latest message to `destination` (as typed or as stored).
    pub fn last_code_for(&self, destination: &str) -> Option<String> {
        self.last_for(destination).map(|m| m.code().to_owned())
    }

    /// How many messages are kept.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no message is kept.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Forgets every message.
    pub fn clear(&self) {
        self.lock().clear();
    }
}

fn same_destination(message: &Message, destination: &str) -> bool {
    message.destination() == destination
        || normalise_destination(message.channel(), destination)
            .is_ok_and(|normalised| normalised == message.destination())
}

impl fmt::Debug for OutboxSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboxSender")
            .field("messages", &self.len())
            .finish()
    }
}

#[async_trait]
impl Sender for OutboxSender {
    async fn send(&self, message: &Message) -> Result<(), SendError> {
        let mut messages = self.lock();
        if messages.len() >= CAPACITY {
            messages.remove(0);
        }
        messages.push(message.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_message;
    use super::*;

    #[tokio::test]
    async fn keeps_the_latest_messages_and_finds_them_by_destination() {
        let outbox = OutboxSender::new();
        let shared = outbox.clone();
        for i in 0..(CAPACITY + 5) {
            shared
                .send(&test_message(&format!("{i:06}")))
                .await
                .unwrap();
        }
        assert_eq!(outbox.len(), CAPACITY);
        assert_eq!(outbox.messages()[0].code(), "000005");
        assert_eq!(
            outbox.last_code_for(" alice@EXAMPLE.com ").as_deref(),
            Some("001004")
        );
        assert_eq!(outbox.last_code_for("bob@example.com"), None);
        assert_eq!(format!("{outbox:?}"), "OutboxSender { messages: 1000 }");
        outbox.clear();
        assert!(shared.is_empty());
    }
}
