//! Helpers shared by the integration tests.

#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod conformance;
pub mod http;
pub mod instrumented_store;
pub mod redis_server;
pub mod sessions;
