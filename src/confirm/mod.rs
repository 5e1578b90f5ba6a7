//! The confirmation API: confirm a change or an action with a second factor before it takes
//! effect.
//!
//! A [`Confirmer`] holds a registry of [`Method`]s. Each has a key, a name, optional JSON
//! schemas of its global and per-user configuration, and a [`ConfirmationBackend`] that
//! decides whether a configuration change needs confirming, starts a confirmation (sending a
//! code, say) and checks the user's answer.
//!
//! A confirmation is a one-time state in the store, addressed by an unguessable
//! [`ConfirmationId`] (256 bits, of which the store sees only a digest):
//!
//! ```text
//!   request ──► in_process ──confirm (right answer)──► confirmed ──use──► used
//!                   │  └──confirm (last wrong answer)──► failed
//!                   └──────── time to live over ───────► expired ◄── (confirmed, unused)
//! ```
//!
//! * [`Confirmer::request`] (or [`Confirmer::change_user_config`]) creates one, in process. A
//!   user has at most the policy's [`max_open`](ConfirmPolicy::max_open) open (in process or
//!   confirmed, and unexpired; default 10): the cap is checked atomically in the store, before
//!   the method sends anything. A state holds at most the policy's
//!   [`max_state_bytes`](ConfirmPolicy::max_state_bytes) of JSON (default 1 KiB).
//! * [`Confirmer::confirm`] checks an answer; each answer counts, and after the policy's
//!   attempts (default 5) it fails. Codes are throttled by their devices besides.
//! * [`Confirmer::check`] reads where it stands.
//! * [`Confirmer::consume`] ("use") succeeds exactly once, only when confirmed and unexpired,
//!   atomically in the store (across every instance sharing a Redis).
//!
//! Each step emits an [event](crate::events) on the bus of the [`TwoFactor`](crate::TwoFactor)
//! the confirmer was made from: `confirmation_requested`, `confirmation_confirmed`,
//! `confirmation_failed` and `confirmation_used`, with the method's key.
//!
//! The built-in methods wrap the device kinds: [`OutOfBandMethod`] confirms a new email
//! address or phone number before it is enabled, and [`DeviceMethod`] confirms a sensitive
//! action with any of the user's devices. Both pass the caller to the engine, so a code they
//! send is bound to the caller's login: only an answer from that login confirms with it.
//!
//! ```
//! use serde_json::json;
//! use tower_otp::confirm::{ConfirmationStatus, Confirmer, DeviceMethod, OutOfBandMethod};
//! use tower_otp::device::{OutboxSender, out_of_band};
//! use tower_otp::{ServerKey, TwoFactor, UserId};
//! use tower_otp::store::MemoryStore;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let outbox = OutboxSender::new();
//! let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::generate())
//!     .with_sender(out_of_band::EMAIL, outbox.clone());
//! let confirmer = Confirmer::new(&two_factor)
//!     .with_method(OutOfBandMethod::new(two_factor.clone(), out_of_band::EMAIL).into_method())
//!     .with_method(DeviceMethod::new(two_factor.clone()).into_method());
//! let alice = UserId::new("alice").unwrap();
//!
//! // A new address is confirmed before it is enabled: a code goes to it…
//! let pending = confirmer
//!     .request(&alice, "email", json!({"destination": "alice@example.com"}))
//!     .await?;
//! assert_eq!(pending.state["masked_destination"], "a***@example.com");
//! // …and the code the user received confirms it (and the new device).
//! let code = outbox.last_code_for("alice@example.com").unwrap();
//! let done = confirmer.confirm(&alice, &pending.id, &json!({"code": code})).await?;
//! assert_eq!(done.status, ConfirmationStatus::Confirmed);
//! assert!(two_factor.is_configured(&alice).await?);
//!
//! // A confirmation is used once.
//! confirmer.consume(&alice, &pending.id, "email").await?;
//! let again = confirmer.consume(&alice, &pending.id, "email").await;
//! assert_eq!(again.unwrap_err().kind(), "confirmation_used");
//! # Ok::<(), tower_otp::confirm::ConfirmError>(())
//! # }).unwrap();
//! ```

mod builtin;
mod confirmer;
mod error;
mod method;
mod record;

pub use builtin::{DeviceMethod, OutOfBandMethod};
pub use confirmer::{ConfirmPolicy, Confirmation, Confirmer};
pub use error::ConfirmError;
pub use method::{ConfirmationBackend, Context, Method, Requested};
pub use record::{ConfirmationId, ConfirmationKey, ConfirmationRecord, ConfirmationStatus};
