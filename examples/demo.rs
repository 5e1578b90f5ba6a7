//! Run with `cargo run --example demo`
//!
//! The demo web app: a small service with a password login, the second-factor JSON API at
//! `/2fa`, a logged-in page and a staff-only admin page behind a verified second factor.
//!
//! * `GET /` — public
//! * `POST /login` `{"username", "password", "bearer"?}` — users `alice` (staff) and `bob`,
//!   password `password`; sets the session cookie and answers `{"user"}`. With
//!   `"bearer": true` the answer is `{"user", "token"}`, the session token to send as
//!   `Authorization: Bearer TOKEN`: a token in a body is only for clients that asked for one,
//!   never for a browser page whose scripts could read it.
//! * `/2fa/...` — the JSON API (see `tower_otp::api`)
//! * `GET /account` — logged in
//! * `GET /admin` — staff, second factor verified
//!
//! Options (each also from the environment):
//!
//! * `--addr HOST:PORT` — where to listen (default `127.0.0.1:3000`)
//! * `--redis-url URL` (`REDIS_URL`) — keep state in Redis instead of memory
//! * `--redis-cluster URL,URL,...` (`REDIS_CLUSTER`) — keep state in a Redis Cluster
//! * `--local-cache` — with Redis, serve sessions from a local cache
//!   (`RedisConfig::with_local_cache`)
//! * `--secret TEXT` (`TOWER_OTP_SECRET`) — the master secret, at least 32 bytes, every key
//!   is derived from (`tower_otp::Keys::derive`), so that several instances on one Redis
//!   share backup codes, sealed secrets and remembered browsers; without it a random one is
//!   used. Make one with `openssl rand -base64 32`.
//!
//! Every event is printed as one JSON line on standard output; everything else (start-up
//! messages, out-of-band codes "sent" by the console sender) goes to standard error.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use tower_otp::api::{self, ApiConfig};
use tower_otp::confirm::{Confirmer, DeviceMethod, OutOfBandMethod};
use tower_otp::device::{ConsoleSender, SecretSealer};
use tower_otp::events::Events;
use tower_otp::guard::{RequireOtpLayer, Verified};
use tower_otp::layer::OtpLayer;
use tower_otp::remember::RememberConfig;
use tower_otp::session::{OtpSession, SessionConfig};
use tower_otp::store::{MemoryStore, RedisConfig, SharedStore};
use tower_otp::{Keys, TwoFactor, UserId};

const USERS: [(&str, bool); 2] = [("alice", true), ("bob", false)];
const PASSWORD: &str = "password";

/// Command-line options, each with an environment fallback.
struct Options {
    addr: SocketAddr,
    redis_url: Option<String>,
    redis_cluster: Option<Vec<String>>,
    secret: Option<String>,
    local_cache: bool,
}

fn options() -> Result<Options, String> {
    let mut addr = None;
    let mut redis_url = std::env::var("REDIS_URL").ok();
    let mut redis_cluster = std::env::var("REDIS_CLUSTER").ok();
    let mut secret = std::env::var("TOWER_OTP_SECRET").ok();
    let mut local_cache = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or(format!("{name} needs a value"))
        };
        match name.as_str() {
            "--addr" => addr = Some(value()?),
            "--redis-url" => redis_url = Some(value()?),
            "--redis-cluster" => redis_cluster = Some(value()?),
            "--secret" => secret = Some(value()?),
            "--local-cache" => local_cache = true,
            "--help" | "-h" => {
                return Err("usage: demo [--addr HOST:PORT] [--redis-url URL | --redis-cluster URL,URL,...] [--local-cache] [--secret TEXT]".into());
            }
            other => return Err(format!("unknown option {other}; try --help")),
        }
    }
    let addr = addr
        .as_deref()
        .unwrap_or("127.0.0.1:3000")
        .parse()
        .map_err(|_| "--addr takes HOST:PORT, such as 127.0.0.1:3000".to_owned())?;
    Ok(Options {
        addr,
        redis_url: redis_url.filter(|v| !v.is_empty()),
        redis_cluster: redis_cluster
            .filter(|v| !v.is_empty())
            .map(|v| v.split(',').map(str::trim).map(str::to_owned).collect()),
        secret: secret.filter(|v| !v.is_empty()),
        local_cache,
    })
}

/// Sessions the demo's local cache holds at most.
const LOCAL_CACHE_CAPACITY: usize = 100_000;

/// `config`, with the local cache when asked for.
fn with_cache(config: RedisConfig, options: &Options) -> RedisConfig {
    if options.local_cache {
        config.with_local_cache(LOCAL_CACHE_CAPACITY)
    } else {
        config
    }
}

async fn store(options: &Options) -> Result<(SharedStore, String), Box<dyn std::error::Error>> {
    Ok(match (&options.redis_url, &options.redis_cluster) {
        (Some(_), Some(_)) => return Err("give --redis-url or --redis-cluster, not both".into()),
        (Some(url), None) => (
            Arc::new(
                with_cache(RedisConfig::server(url), options)
                    .connect()
                    .await?,
            ),
            format!("Redis at {url}"),
        ),
        (None, Some(urls)) => (
            Arc::new(
                with_cache(RedisConfig::cluster(urls.clone()), options)
                    .connect()
                    .await?,
            ),
            format!("Redis Cluster at {}", urls.join(",")),
        ),
        (None, None) if options.local_cache => {
            return Err("--local-cache needs --redis-url or --redis-cluster".into());
        }
        (None, None) => (
            Arc::new(MemoryStore::new()),
            "the in-memory store".to_owned(),
        ),
    })
}

#[derive(Deserialize)]
struct Login {
    username: String,
    password: String,
    /// The client keeps the session token itself, rather than in a cookie.
    #[serde(default)]
    bearer: bool,
}

/// The demo's first factor: a fixed password, compared in constant time.
fn password_ok(login: &Login) -> bool {
    use subtle::ConstantTimeEq;
    let known = USERS.iter().any(|(name, _)| *name == login.username);
    let matches: bool = login.password.as_bytes().ct_eq(PASSWORD.as_bytes()).into();
    known && matches
}

async fn login(session: OtpSession, Json(login): Json<Login>) -> Response {
    if !password_ok(&login) {
        let body =
            json!({"error": "invalid_credentials", "message": "Wrong username or password."});
        return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    }
    let Ok(user) = UserId::new(login.username) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    match session.login(user.clone()).await {
        Ok(token) if login.bearer => {
            Json(json!({"user": user.as_str(), "token": token.expose()})).into_response()
        }
        Ok(_) => Json(json!({"user": user.as_str()})).into_response(),
        Err(error) => {
            let body = json!({"error": error.kind(), "message": error.to_string()});
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

async fn account(session: OtpSession) -> Response {
    match session.status().await {
        Ok(status) if status.is_authenticated() => {
            let verified = status.is_verified();
            Json(json!({"user": status.user.map(String::from), "verified": verified}))
                .into_response()
        }
        Ok(_) => (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "not_authenticated", "message": "Log in first."})),
        )
            .into_response(),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": error.kind(), "message": error.to_string()})),
        )
            .into_response(),
    }
}

async fn admin(verified: Verified) -> Json<serde_json::Value> {
    // The guard of /admin demands a verification, so `by` is always there.
    let device_kind = verified.by.map(|by| by.device_kind.as_str());
    Json(json!({"admin": true, "user": verified.user.as_str(), "verified_by": device_kind}))
}

fn is_staff(user: &UserId) -> bool {
    USERS
        .iter()
        .any(|(name, staff)| *staff && *name == user.as_str())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = match options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let master = match &options.secret {
        Some(secret) => secret.as_bytes().to_vec(),
        None => {
            eprintln!(
                "No --secret (or TOWER_OTP_SECRET) given: using a random one. Sessions and remembered browsers will not survive a restart or be shared with other instances."
            );
            random_secret()
        }
    };
    // Refused before anything starts, with the reason: a short secret is a weak key.
    let keys = match Keys::derive(&master) {
        Ok(keys) => keys,
        Err(error) => {
            eprintln!("--secret: {error}");
            std::process::exit(2);
        }
    };
    let (store, store_name) = store(&options).await?;

    let events = Events::new();
    events.on(|event| {
        if let Ok(line) = serde_json::to_string(event) {
            println!("{line}");
        }
    });
    let two_factor = TwoFactor::from_shared(store, keys.server_key())
        .with_issuer("tower-otp demo")?
        .with_events(events)
        .with_sealer(SecretSealer::new(vec![keys.sealing_key()])?)
        .with_sender("email", ConsoleSender::with_writer(std::io::stderr()))
        .with_sender("sms", ConsoleSender::with_writer(std::io::stderr()));
    let confirmer = Confirmer::new(&two_factor)
        .with_method(OutOfBandMethod::new(two_factor.clone(), "email").into_method())
        .with_method(OutOfBandMethod::new(two_factor.clone(), "sms").into_method())
        .with_method(DeviceMethod::new(two_factor.clone()).into_method());

    // Plain HTTP on loopback: the cookies cannot be `Secure` (nor `__Host-` prefixed) here.
    let sessions = SessionConfig::new().with_secure(false)?;
    let remember = RememberConfig::new([keys.remember_key()])?;
    let staff_only = |user: UserId| async move { is_staff(&user) };
    let app = Router::new()
        .route(
            "/",
            get(|| async { "tower-otp demo: POST /login, then /2fa/..., /account, /admin\n" }),
        )
        .route("/login", post(login))
        .route("/account", get(account))
        .route(
            "/admin",
            get(admin).layer(RequireOtpLayer::new().predicate(staff_only)),
        )
        .nest(
            "/2fa",
            api::router(ApiConfig::new().with_confirmer(confirmer)),
        )
        .layer(
            OtpLayer::new(two_factor)
                .with_config(sessions)
                .with_remember(remember),
        );

    let listener = tokio::net::TcpListener::bind(options.addr).await?;
    eprintln!(
        "tower-otp demo listening on http://{} on {store_name}",
        listener.local_addr()?
    );
    for (name, staff) in USERS {
        eprintln!(
            "  user {name:<6} password {PASSWORD}{}",
            if staff { "  (staff)" } else { "" }
        );
    }
    axum::serve(listener, app).await?;
    Ok(())
}

/// 256 random bits, for a demo started without a secret.
fn random_secret() -> Vec<u8> {
    let mut bytes = vec![0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random number generator");
    bytes
}
