//! Delivering events: synchronous hooks and asynchronous subscribers.

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll, Waker, ready};

use futures_core::Stream;
use tokio::sync::{broadcast, mpsc};

use super::coalesce::ThrottleCoalescer;
use super::context::current_request;
use super::{DeviceRef, Event, EventKind};
use crate::clock::Timestamp;
use crate::device::UserId;
use crate::otp::random_bytes;

type Hook = Arc<dyn Fn(&Event) + Send + Sync>;

/// Where events go: hooks called in line, and a broadcast channel for subscribers.
///
/// * [`Events::on`] registers a synchronous hook, called on the emitting task for every
///   event of this process. Keep hooks quick; a panicking hook is caught and logged, never
///   failing the request.
/// * [`Events::subscribe`] gives an [`EventStream`], also a `futures` `Stream`. Sending never
///   waits for subscribers: a subscriber that falls more than the channel's capacity behind
///   loses the oldest events and is told how many ([`RecvError::Lagged`]).
/// * With the `redis` feature, [`RedisEventBridge`] fans events out to the subscribers of
///   every instance.
///
/// `throttled` events are coalesced to at most one a second per user (see
/// [`EventKind::Throttled`]). The request path an event carries has its secret segments
/// replaced by `{id}` (see [`Events::redact_path_segment_after`]).
///
/// Cheap to clone; clones share hooks and subscribers.
///
#[cfg_attr(
    feature = "redis",
    doc = "[`RedisEventBridge`]: super::RedisEventBridge"
)]
#[cfg_attr(
    not(feature = "redis"),
    doc = "[`RedisEventBridge`]: crate#feature-flags"
)]
#[derive(Clone)]
pub struct Events {
    inner: Arc<Inner>,
}

struct Inner {
    instance: String,
    hooks: RwLock<Arc<[Hook]>>,
    sender: broadcast::Sender<Arc<Event>>,
    forward: RwLock<Option<mpsc::Sender<Arc<Event>>>>,
    /// Events the bridge's full queue refused since the bridge last reported them.
    forward_dropped: AtomicU64,
    throttled: ThrottleCoalescer,
    /// Path segments after which the next one is a secret.
    secret_after: RwLock<Arc<[Box<str>]>>,
}

/// The API's confirmation routes take the confirmation id, a secret, after this segment.
const CONFIRMATIONS_SEGMENT: &str = "confirmations";
/// The API's push approval routes take the approval id after this segment: not a secret on
/// its own, but it names a login in progress.
const APPROVALS_SEGMENT: &str = "approvals";

impl Default for Events {
    fn default() -> Self {
        Events::new()
    }
}

impl Events {
    /// Subscribers' default buffer, in events.
    pub const DEFAULT_CAPACITY: usize = 1024;

    /// An event bus with the default subscriber buffer and a random instance id.
    pub fn new() -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY)
    }

    /// An event bus whose subscribers may fall `capacity` events behind before losing some.
    pub fn with_capacity(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Events {
            inner: Arc::new(Inner {
                instance: data_encoding::HEXLOWER.encode(&random_bytes(8)),
                hooks: RwLock::new(Arc::from(Vec::new())),
                sender,
                forward: RwLock::new(None),
                forward_dropped: AtomicU64::new(0),
                throttled: ThrottleCoalescer::default(),
                secret_after: RwLock::new(Arc::from([
                    Box::from(CONFIRMATIONS_SEGMENT),
                    Box::from(APPROVALS_SEGMENT),
                ])),
            }),
        }
    }

    /// This process's instance id, carried by every event it emits.
    pub fn instance(&self) -> &str {
        &self.inner.instance
    }

    /// Registers a hook called for every event emitted by this process.
    pub fn on(&self, hook: impl Fn(&Event) + Send + Sync + 'static) {
        let mut hooks = self.inner.hooks.write().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<Hook> = hooks.iter().cloned().collect();
        list.push(Arc::new(hook));
        *hooks = Arc::from(list);
    }

    /// A new subscription to every event from now on (this process's, and other instances'
    /// when bridged).
    pub fn subscribe(&self) -> EventStream {
        EventStream::new(self.inner.sender.subscribe())
    }

    /// Keeps the path segment that follows a segment equal to `marker` out of events: it
    /// becomes `{id}`. For routes of the application that take a secret in their path, such
    /// as `/reset/{token}` (`marker` `"reset"`), during which events may be emitted (a
    /// remembered browser recognised by [`OtpLayer`](crate::layer::OtpLayer), say).
    ///
    /// Always redacted: the segment after `confirmations` (the confirmation API's
    /// `/confirmations/{id}`, whatever the segment holds) and after `approvals` (push
    /// approvals, `/approvals/{id}`), and any segment shaped like a
    /// [`ConfirmationId`](crate::confirm::ConfirmationId), wherever it is routed. Markers
    /// match whole segments exactly, as they appear in the request (not percent-decoded).
    pub fn redact_path_segment_after(&self, marker: &str) {
        let mut list = self
            .inner
            .secret_after
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if !list.iter().any(|m| **m == *marker) {
            let mut markers = list.to_vec();
            markers.push(Box::from(marker));
            *list = Arc::from(markers);
        }
    }

    /// Builds and delivers an event about `user` now, in the current request's context.
    pub(crate) fn emit(
        &self,
        kind: EventKind,
        user: &UserId,
        device: Option<DeviceRef>,
        at: Timestamp,
    ) {
        let event = Event {
            kind,
            user: user.clone(),
            device,
            at,
            request: current_request(&self.secret_after()),
            instance: self.inner.instance.clone(),
        };
        for event in self.inner.throttled.admit(event) {
            self.deliver(Arc::new(event));
        }
    }

    fn secret_after(&self) -> Arc<[Box<str>]> {
        self.inner
            .secret_after
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn deliver(&self, event: Arc<Event>) {
        tracing::debug!(event = event.kind.name(), user = %event.user, "event");
        self.run_hooks(&event);
        if let Some(forward) = self
            .inner
            .forward
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            // A full or closed bridge drops the event rather than slow the request down; the
            // bridge reports how many.
            if forward.try_send(event.clone()).is_err() {
                self.inner.forward_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        let _ = self.inner.sender.send(event);
    }

    fn run_hooks(&self, event: &Event) {
        let hooks = self
            .inner
            .hooks
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for hook in hooks.iter() {
            if catch_unwind(AssertUnwindSafe(|| hook(event))).is_err() {
                tracing::error!(event = event.kind.name(), "an event hook panicked");
            }
        }
    }

    /// Delivers an event from another instance to this process's subscribers (not hooks:
    /// hooks act once, on the instance where the event happened).
    #[cfg(feature = "redis")]
    pub(crate) fn deliver_remote(&self, event: Event) {
        let _ = self.inner.sender.send(Arc::new(event));
    }

    /// How many events the bridge's queue refused since the last call.
    #[cfg(feature = "redis")]
    pub(crate) fn take_forward_dropped(&self) -> u64 {
        self.inner.forward_dropped.swap(0, Ordering::Relaxed)
    }

    /// Sends every local event to `forward` too (the Redis bridge's publisher).
    #[cfg(feature = "redis")]
    pub(crate) fn set_forward(&self, forward: Option<mpsc::Sender<Arc<Event>>>) {
        *self
            .inner
            .forward
            .write()
            .unwrap_or_else(|e| e.into_inner()) = forward;
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Events")
            .field("instance", &self.inner.instance)
            .field("subscribers", &self.inner.sender.receiver_count())
            .finish_non_exhaustive()
    }
}

/// A subscription to events, from [`Events::subscribe`].
///
/// Read it with [`recv`](EventStream::recv), or as a [`Stream`] (with `StreamExt::next` of
/// `futures-util` or `tokio-stream`), whose items are `Ok(event)`, or
/// `Err(RecvError::Lagged(n))` when the subscriber fell behind and missed `n` events; the
/// stream then goes on with the oldest event still buffered, and ends when the bus is gone.
///
/// ```
/// use futures_util::StreamExt;
/// use tower_otp::events::{EventKind, Events, RecvError};
/// # use tower_otp::{MemoryStore, ServerKey, TwoFactor, UserId};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let events = Events::new();
/// let mut stream = events.subscribe();
/// # let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::generate())
/// #     .with_events(events.clone());
/// # let enrolment = two_factor.enroll_totp(&UserId::new("alice").unwrap(), "Phone", "alice",
/// #     Default::default()).await.unwrap();
/// # drop((two_factor, events));
/// while let Some(item) = stream.next().await {
///     match item {
///         Ok(event) => println!("{}", serde_json::to_string(&*event).unwrap()),
///         Err(RecvError::Lagged(missed)) => eprintln!("missed {missed} events"),
///         Err(other) => eprintln!("{other}"),
///     }
/// }
/// # });
/// ```
pub struct EventStream {
    /// The receiver, unless a receive is under way (it is then inside `receiving`).
    receiver: Option<broadcast::Receiver<Arc<Event>>>,
    /// A receive that was polled and had to wait; it gives the receiver back when done.
    receiving: Option<Receiving>,
}

type Received = (
    Result<Arc<Event>, broadcast::error::RecvError>,
    broadcast::Receiver<Arc<Event>>,
);

/// A receive waiting for the next event. Boxed because tokio's receiver offers waiting only
/// as a future that borrows it; owning the receiver lets the stream keep it across polls.
type Receiving = Pin<Box<dyn Future<Output = Received> + Send + Sync>>;

/// Why [`EventStream::recv`] returned no event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// The subscriber fell behind and this many events were dropped for it; the stream goes
    /// on with the oldest event still buffered.
    #[error("subscriber lagged behind and missed {0} events")]
    Lagged(u64),
    /// The event bus is gone.
    #[error("the event bus is closed")]
    Closed,
}

impl RecvError {
    /// A stable, machine-readable name: `lagged` or `closed`.
    pub fn kind(&self) -> &'static str {
        match self {
            RecvError::Lagged(_) => "lagged",
            RecvError::Closed => "closed",
        }
    }
}

impl From<broadcast::error::RecvError> for RecvError {
    fn from(error: broadcast::error::RecvError) -> Self {
        match error {
            broadcast::error::RecvError::Lagged(n) => RecvError::Lagged(n),
            broadcast::error::RecvError::Closed => RecvError::Closed,
        }
    }
}

impl EventStream {
    fn new(receiver: broadcast::Receiver<Arc<Event>>) -> Self {
        EventStream {
            receiver: Some(receiver),
            receiving: None,
        }
    }

    /// The next event. Cancel-safe: a receive dropped before it finished loses nothing.
    pub async fn recv(&mut self) -> Result<Arc<Event>, RecvError> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Option<Result<Arc<Event>, RecvError>> {
        if let Some(receiver) = &mut self.receiver {
            return match receiver.try_recv() {
                Ok(event) => Some(Ok(event)),
                Err(broadcast::error::TryRecvError::Empty) => None,
                Err(broadcast::error::TryRecvError::Lagged(n)) => Some(Err(RecvError::Lagged(n))),
                Err(broadcast::error::TryRecvError::Closed) => Some(Err(RecvError::Closed)),
            };
        }
        // A receive is under way: it has finished if one poll completes it. Whoever polls
        // next registers their own waker again.
        match self.poll_recv(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(result) => Some(result),
            Poll::Pending => None,
        }
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Arc<Event>, RecvError>> {
        if self.receiving.is_none() {
            // An event already buffered needs no allocation.
            if let Some(ready) = self.try_recv() {
                return Poll::Ready(ready);
            }
            if let Some(mut receiver) = self.receiver.take() {
                self.receiving = Some(Box::pin(async move {
                    let result = receiver.recv().await;
                    (result, receiver)
                }));
            }
        }
        let Some(receiving) = self.receiving.as_mut() else {
            // Unreachable: the receiver is always in one of the two places.
            return Poll::Ready(Err(RecvError::Closed));
        };
        let (result, receiver) = ready!(receiving.as_mut().poll(cx));
        self.receiving = None;
        self.receiver = Some(receiver);
        Poll::Ready(result.map_err(RecvError::from))
    }
}

impl Stream for EventStream {
    type Item = Result<Arc<Event>, RecvError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match ready!(self.get_mut().poll_recv(cx)) {
            Err(RecvError::Closed) => Poll::Ready(None),
            item => Poll::Ready(Some(item)),
        }
    }
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream")
            .field("waiting", &self.receiving.is_some())
            .finish_non_exhaustive()
    }
}
