//! Fan-out of events across instances over Redis pub/sub.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{Event, Events};
use crate::store::StoreError;

/// Events waiting to be published; beyond this, new events are dropped (and counted in the
/// logs) rather than slow requests down.
const PUBLISH_QUEUE: usize = 4096;

/// How often dropped events are reported while the queue stays full, so that a flood of
/// events does not become a flood of log lines.
const DROP_REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// Publishes this process's events on a Redis channel and delivers other instances' events
/// from it to this process's subscribers ([`Events::subscribe`]); hooks stay local.
///
/// Publishing happens on a background task fed by a bounded queue (4,096 events): a slow or
/// unreachable Redis never delays a request. Events that find the queue full are dropped, and
/// a warning says how many once the queue has drained (every 10 s while it stays full). The
/// task publishes one event per round trip to Redis, which bounds how many events a second
/// it can carry. Each instance ignores its own events coming back. Works against one Redis
/// and against a Redis Cluster node (cluster `PUBLISH` reaches every node). Stops when
/// dropped.
///
/// ```no_run
/// # async fn run() -> Result<(), tower_otp::store::StoreError> {
/// use tower_otp::events::{Events, RedisEventBridge};
/// let events = Events::new();
/// let _bridge = RedisEventBridge::start(&events, "redis://127.0.0.1:6379/").await?;
/// let mut stream = events.subscribe(); // now also sees other instances' events
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RedisEventBridge {
    events: Events,
    tasks: Vec<JoinHandle<()>>,
}

impl RedisEventBridge {
    /// The default channel.
    pub const DEFAULT_CHANNEL: &'static str = "tower-otp:events";

    /// Bridges `events` over the default channel of the Redis at `url`.
    pub async fn start(events: &Events, url: &str) -> Result<Self, StoreError> {
        Self::start_on(events, url, Self::DEFAULT_CHANNEL).await
    }

    /// Bridges `events` over `channel` of the Redis at `url`. Returns once subscribed.
    pub async fn start_on(events: &Events, url: &str, channel: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let publisher = redis::aio::ConnectionManager::new(client.clone())
            .await
            .map_err(unavailable)?;
        let (ready_tx, ready_rx) = oneshot::channel();
        let subscriber = tokio::spawn(subscribe_loop(
            client,
            channel.to_owned(),
            events.clone(),
            ready_tx,
        ));
        match ready_rx.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                subscriber.abort();
                return Err(error);
            }
            Err(_) => return Err(StoreError::Unavailable("event subscriber stopped".into())),
        }
        let (queue, receiver) = mpsc::channel(PUBLISH_QUEUE);
        let publisher = tokio::spawn(publish_loop(
            publisher,
            channel.to_owned(),
            receiver,
            events.clone(),
        ));
        events.set_forward(Some(queue));
        Ok(RedisEventBridge {
            events: events.clone(),
            tasks: vec![subscriber, publisher],
        })
    }
}

impl Drop for RedisEventBridge {
    fn drop(&mut self) {
        self.events.set_forward(None);
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn unavailable(error: redis::RedisError) -> StoreError {
    // The error's category only: messages can echo server replies.
    StoreError::Unavailable(format!("redis: {:?}", error.kind()))
}

async fn publish_loop(
    mut connection: redis::aio::ConnectionManager,
    channel: String,
    mut queue: mpsc::Receiver<Arc<Event>>,
    events: Events,
) {
    let mut reported = Instant::now();
    while let Some(event) = queue.recv().await {
        if let Ok(payload) = serde_json::to_string(&*event) {
            let published: Result<i64, _> = connection.publish(&channel, payload).await;
            if let Err(error) = published {
                tracing::warn!(kind = ?error.kind(), event = event.kind.name(), "could not publish an event");
            }
        }
        // Events are dropped only while the queue is full, so the queue running empty is the
        // last chance to report them before going idle.
        if queue.is_empty() || reported.elapsed() >= DROP_REPORT_INTERVAL {
            let dropped = events.take_forward_dropped();
            if dropped > 0 {
                tracing::warn!(
                    dropped,
                    "the event publish queue was full; events were not published"
                );
                reported = Instant::now();
            }
        }
    }
}

/// Subscribes, tells `ready` the outcome of the first attempt, then delivers messages and
/// reconnects after failures with a growing pause, until the bridge aborts it.
async fn subscribe_loop(
    client: redis::Client,
    channel: String,
    events: Events,
    ready: oneshot::Sender<Result<(), StoreError>>,
) {
    let mut ready = Some(ready);
    let mut pause = Duration::from_millis(100);
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                Ok(()) => {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(Ok(()));
                    }
                    pause = Duration::from_millis(100);
                    let mut messages = pubsub.on_message();
                    while let Some(message) = messages.next().await {
                        deliver(&events, message.get_payload_bytes());
                    }
                    tracing::warn!("event subscription lost; reconnecting");
                }
                Err(error) => fail_first(&mut ready, error),
            },
            Err(error) => fail_first(&mut ready, error),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

fn fail_first(
    ready: &mut Option<oneshot::Sender<Result<(), StoreError>>>,
    error: redis::RedisError,
) {
    match ready.take() {
        Some(ready) => {
            let _ = ready.send(Err(unavailable(error)));
        }
        None => tracing::warn!(kind = ?error.kind(), "event subscription failed; retrying"),
    }
}

fn deliver(events: &Events, payload: &[u8]) {
    match serde_json::from_slice::<Event>(payload) {
        Ok(event) if event.instance != events.instance() => events.deliver_remote(event),
        Ok(_) => {}
        Err(_) => tracing::warn!("ignored a malformed event message"),
    }
}
