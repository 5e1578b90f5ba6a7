//! The store conformance suite, run against every backend, with the push approvals
//! (feature `push`).

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

    #[cfg(feature = "push")]
    mod push {
        crate::push_conformance_tests!(super::clients);
    }
}

/// Two separate Redis clients (two application instances) in a key namespace of their own.
#[cfg(feature = "redis")]
async fn redis_clients(
    config: tower_otp::store::RedisConfig,
) -> (tower_otp::store::SharedStore, tower_otp::store::SharedStore) {
    let config = config.with_key_prefix(common::redis_server::unique_prefix());
    let first = config.clone().connect().await.expect("connect to redis");
    let second = config.connect().await.expect("connect to redis");
    (std::sync::Arc::new(first), std::sync::Arc::new(second))
}

#[cfg(feature = "redis")]
mod redis_single {
    use std::sync::OnceLock;

    use tower_otp::store::{RedisConfig, SharedStore};

    use crate::common::redis_server::RedisServer;

    /// One private server for this test binary.
    fn server() -> &'static RedisServer {
        static SERVER: OnceLock<RedisServer> = OnceLock::new();
        SERVER.get_or_init(RedisServer::start)
    }

    async fn clients() -> (SharedStore, SharedStore) {
        crate::redis_clients(RedisConfig::server(server().url())).await
    }

    crate::store_conformance_tests!(clients);

    #[cfg(feature = "push")]
    mod push {
        crate::push_conformance_tests!(super::clients);
    }
}

#[cfg(feature = "redis")]
mod redis_cluster {
    use std::sync::OnceLock;

    use tower_otp::store::{RedisConfig, SharedStore};

    use crate::common::redis_server::RedisCluster;

    /// One private three-master cluster for this test binary.
    fn cluster() -> &'static RedisCluster {
        static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
        CLUSTER.get_or_init(RedisCluster::start)
    }

    async fn clients() -> (SharedStore, SharedStore) {
        crate::redis_clients(RedisConfig::cluster(cluster().urls())).await
    }

    crate::store_conformance_tests!(clients);

    #[cfg(feature = "push")]
    mod push {
        crate::push_conformance_tests!(super::clients);
    }
}
