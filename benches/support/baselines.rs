//! The applications a guarded request is compared with in the load benchmark: the least any
//! Redis-backed guard can do per request (one `GET` of a session record and its decoding), and
//! the usual Rust way to keep sessions in Redis (tower-sessions with its Redis store).
//!
//! Included by the load benchmark with `#[path = "support/baselines.rs"] mod baselines;`.

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use http::header::COOKIE;
use http::{HeaderMap, StatusCode};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use tower_sessions::{Session, SessionManagerLayer};
use tower_sessions_redis_store::RedisStore as SessionsRedisStore;
use tower_sessions_redis_store::fred::prelude::{ClientLike, Config, Pool};

/// The floor's cookie name and the id of its one verified session.
const FLOOR_COOKIE: &str = "floor";
const FLOOR_SESSION: &str = "c2Vzc2lvbi1pZC1vZi0xNi1ieXRlcw";

/// What the floor keeps per session: about what a second-factor session record holds.
#[derive(Serialize, Deserialize)]
struct FloorRecord {
    user: String,
    device: String,
    kind: String,
    verified_at: u64,
    remembered: bool,
}

/// `/admin` answers 200 when the session named by the cookie is in Redis and verified: one
/// `GET` and a JSON decode per request, on the connection type `RedisStore` uses. Returns the
/// router and the cookie (`name=value`) of a verified session.
pub(crate) async fn one_get_floor(redis_url: &str) -> (Router, String) {
    let client = redis::Client::open(redis_url).expect("redis URL");
    let mut connection = ConnectionManager::new(client)
        .await
        .expect("connect to the private redis-server");
    let record = FloorRecord {
        user: "alice".into(),
        device: "dev_0123456789abcdef".into(),
        kind: "totp".into(),
        verified_at: 1_790_000_000,
        remembered: false,
    };
    let _: () = connection
        .set(
            floor_key(FLOOR_SESSION),
            serde_json::to_string(&record).unwrap(),
        )
        .await
        .expect("store the floor's session");
    let app = Router::new()
        .route("/admin", get(floor_admin))
        .with_state(connection);
    (app, format!("{FLOOR_COOKIE}={FLOOR_SESSION}"))
}

fn floor_key(id: &str) -> String {
    format!("floor:{{{id}}}")
}

async fn floor_admin(State(mut redis): State<ConnectionManager>, headers: HeaderMap) -> StatusCode {
    let Some(id) = cookie(&headers, FLOOR_COOKIE) else {
        return StatusCode::UNAUTHORIZED;
    };
    let stored: Option<String> = match redis.get(floor_key(id)).await {
        Ok(stored) => stored,
        Err(_) => return StatusCode::SERVICE_UNAVAILABLE,
    };
    match stored.map(|json| serde_json::from_str::<FloorRecord>(&json)) {
        Some(Ok(record)) if record.verified_at > 0 => StatusCode::OK,
        Some(Err(_)) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::UNAUTHORIZED,
    }
}

/// The value of the cookie `name` in the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(key, value)| (key == name).then_some(value))
}

/// tower-sessions 0.14 with `tower-sessions-redis-store` (fred, a pool of 6 connections as in
/// its README), default expiry: `/admin` answers 200 when the session holds `verified`;
/// `POST /login` sets it. A guard on tower-sessions needs at least that much.
pub(crate) async fn tower_sessions_app(redis_url: &str) -> Router {
    let config = Config::from_url(redis_url).expect("redis URL");
    let pool = Pool::new(config, None, None, None, 6).expect("fred pool");
    pool.init()
        .await
        .expect("connect fred to the private redis-server");
    let layer = SessionManagerLayer::new(SessionsRedisStore::new(pool)).with_secure(false);
    Router::new()
        .route("/admin", get(sessions_admin))
        .route("/login", post(sessions_login))
        .layer(layer)
}

async fn sessions_admin(session: Session) -> StatusCode {
    match session.get::<bool>("verified").await {
        Ok(Some(true)) => StatusCode::OK,
        Ok(_) => StatusCode::UNAUTHORIZED,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

async fn sessions_login(session: Session) -> StatusCode {
    match session.insert("verified", true).await {
        Ok(()) => StatusCode::OK,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}
