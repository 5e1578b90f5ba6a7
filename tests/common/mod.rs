//! Helpers shared by the integration tests.

#![allow(dead_code, unreachable_pub, missing_docs)]

#[cfg(feature = "api")]
pub mod api_harness;
#[cfg(all(feature = "ui", feature = "redis"))]
pub mod chromium;
pub mod conformance;
#[cfg(feature = "redis")]
pub mod demo;
pub mod http;
pub mod instrumented_store;
#[cfg(feature = "push")]
pub mod phone_app;
#[cfg(feature = "push")]
pub mod push_conformance;
pub mod redis_server;
pub mod sessions;
