//! The confirmation API: confirm a change or an action with a second factor before it takes
//! effect.
//!
//! A confirmation is a one-time state in the store, addressed by an unguessable
//! [`ConfirmationId`] (256 bits, of which the store sees only a digest).

mod record;

pub use record::{ConfirmationId, ConfirmationKey, ConfirmationRecord, ConfirmationStatus};
