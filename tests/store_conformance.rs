//! The store conformance suite, run against every backend.

mod common;

mod memory {
    use tower_otp::store::{MemoryStore, SharedStore};

    async fn clients() -> (SharedStore, SharedStore) {
        let store = MemoryStore::new();
        (
            std::sync::Arc::new(store.clone()),
            std::sync::Arc::new(store),
        )
    }

    crate::store_conformance_tests!(clients);
}
