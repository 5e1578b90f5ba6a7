//! Events: `user_verified` and its siblings, for audit logs, notifications and metrics.
//!
//! Every login, verification, failure, throttle, lock, device change, backup-code use,
//! out-of-band code delivered, confirmation step, remembered browser and logout emits one
//! [`Event`] carrying the user, the device, the time and the request (method, path, client
//! address, user agent) — never a secret, code or token.
//!
//! ```
//! use tower_otp::{MemoryStore, ServerKey, TwoFactor};
//! use tower_otp::events::{EventKind, Events};
//!
//! let events = Events::new();
//! events.on(|event| {
//!     if let EventKind::DeviceAdded = event.kind {
//!         // e.g. email the user: "a new second factor was added to your account"
//!         println!("new device for {}", event.user);
//!     }
//! });
//! let mut all = events.subscribe(); // an async stream for slower consumers
//! let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::generate()).with_events(events);
//! ```

mod bus;
mod coalesce;
mod context;
#[cfg(feature = "push")]
pub(crate) use context::current_request;
mod event;
#[cfg(feature = "redis")]
mod redis;

pub use bus::{EventStream, Events, RecvError};
pub use event::{DeviceRef, Event, EventKind, RequestMeta};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::RedisEventBridge;

pub(crate) use context::{CurrentRequest, HoldsRequest, RequestInfo, scope};
