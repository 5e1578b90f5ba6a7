//! The store of the server examples: the embedded in-memory store by default, a Redis server
//! with `--redis-url URL` (or the `REDIS_URL` environment variable).
//!
//! Included by each example with `#[path = "support/store.rs"] mod store;`.

use std::error::Error;

use tower_otp::MemoryStore;
use tower_otp::store::SharedStore;

/// The store chosen on the command line or in the environment, and a description of it to
/// print (without any password the URL holds).
pub(crate) async fn from_args() -> Result<(SharedStore, String), Box<dyn Error>> {
    match redis_url()? {
        None => Ok((
            std::sync::Arc::new(MemoryStore::new()),
            "in-memory store".into(),
        )),
        Some(url) => connect(&url).await,
    }
}

/// `--redis-url URL`, `--redis-url=URL`, else a non-empty `REDIS_URL`.
fn redis_url() -> Result<Option<String>, Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let mut url = None;
    while let Some(arg) = args.next() {
        if arg == "--redis-url" {
            url = Some(args.next().ok_or("--redis-url needs a URL")?);
        } else if let Some(value) = arg.strip_prefix("--redis-url=") {
            url = Some(value.to_owned());
        } else {
            return Err(format!("unknown argument {arg:?}; usage: [--redis-url URL]").into());
        }
    }
    Ok(url.or_else(|| {
        std::env::var("REDIS_URL")
            .ok()
            .filter(|url| !url.is_empty())
    }))
}

#[cfg(feature = "redis")]
async fn connect(url: &str) -> Result<(SharedStore, String), Box<dyn Error>> {
    let store = tower_otp::RedisStore::connect(url).await?;
    Ok((
        std::sync::Arc::new(store),
        format!("Redis store at {}", redacted(url)),
    ))
}

#[cfg(not(feature = "redis"))]
async fn connect(_url: &str) -> Result<(SharedStore, String), Box<dyn Error>> {
    Err("a Redis URL was given, but the example was built without the `redis` feature".into())
}

/// The URL without its user and password.
#[cfg(feature = "redis")]
fn redacted(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://{host}"),
        _ => url.to_owned(),
    }
}
