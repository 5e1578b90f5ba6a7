//! Per-session second-factor state.
//!
//! A session begins when the application's first factor succeeds and records who the user
//! is; it is marked verified when the user passes a second factor, and it ends at logout,
//! at idle or absolute expiry, or when the user logs out everywhere.

mod record;

pub use record::{SessionKey, SessionRecord, UserTag, VerifiedBy};
