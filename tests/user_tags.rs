//! User tags are keyed: a session id tells nothing about whose it is to anyone without the
//! application's server key, and instances sharing a store and a server key agree on tags.

mod common;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use sha2::Digest;
use tower::ServiceExt;

use common::http::CookieJar;
use tower_otp::layer::OtpLayer;
use tower_otp::session::OtpSession;
use tower_otp::{MemoryStore, ServerKey, TwoFactor, UserId};

const SESSION: &str = "__Host-otp-session";
const EMAIL: &str = "alice@example.com";

fn app(two_factor: TwoFactor) -> Router {
    Router::new()
        .route(
            "/login",
            post(|s: OtpSession, user: String| async move {
                s.login(UserId::new(user).unwrap()).await.unwrap();
                "ok"
            }),
        )
        .route(
            "/whoami",
            get(|s: OtpSession| async move {
                let status = s.status().await.unwrap();
                status.user.map(String::from).unwrap_or_default()
            }),
        )
        .route(
            "/logout-all",
            post(|s: OtpSession| async move { s.logout_all().await.unwrap().to_string() }),
        )
        .layer(OtpLayer::new(two_factor))
}

/// Calls `app` as the browser whose cookies are in `jar`; the body of a 200.
async fn call(app: &Router, jar: &mut CookieJar, method: &str, path: &str, body: &str) -> String {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::from(body.to_owned()))
        .unwrap();
    jar.add_to(request.headers_mut());
    let response = app.clone().oneshot(request).await.unwrap();
    jar.update(response.headers());
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    String::from_utf8(body.to_vec()).unwrap()
}

/// The tag anyone can compute from a guessed user id: the first 16 bytes of its SHA-256.
fn plain_digest(user: &str) -> String {
    data_encoding::HEXLOWER.encode(&sha2::Sha256::digest(user.as_bytes())[..16])
}

#[tokio::test]
async fn a_session_id_carries_the_keyed_tag_not_a_digest_of_the_user_id() {
    let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::new(&[9; 32]).unwrap());
    let app = app(two_factor.clone());
    let mut jar = CookieJar::default();
    call(&app, &mut jar, "POST", "/login", EMAIL).await;

    let token = jar.get(SESSION).expect("a session cookie").to_owned();
    let (tag, _) = token.split_once('.').unwrap();
    let alice = UserId::new(EMAIL).unwrap();
    assert_eq!(tag, two_factor.store().user_tag(&alice).as_str());
    assert!(!token.contains(&plain_digest(EMAIL)), "{token}");
    assert_ne!(
        tag,
        ServerKey::new(&[8; 32])
            .unwrap()
            .tag_key()
            .tag(&alice)
            .as_str(),
        "another server key tags otherwise"
    );
    assert_eq!(call(&app, &mut jar, "GET", "/whoami", "").await, EMAIL);
}

#[cfg(feature = "redis")]
mod redis {
    use std::sync::OnceLock;

    use tower_otp::store::RedisConfig;

    use super::*;
    use crate::common::redis_server::{RedisServer, unique_prefix};

    fn server() -> &'static RedisServer {
        static SERVER: OnceLock<RedisServer> = OnceLock::new();
        SERVER.get_or_init(RedisServer::start)
    }

    /// One application instance: its own Redis client under `prefix`, keyed by `key`.
    async fn instance(prefix: &str, key: [u8; 32]) -> Router {
        let store = RedisConfig::server(server().url())
            .with_key_prefix(prefix)
            .connect()
            .await
            .unwrap();
        app(TwoFactor::new(store, ServerKey::new(&key).unwrap()))
    }

    #[tokio::test]
    async fn instances_with_one_server_key_share_sessions_and_end_them_everywhere() {
        let prefix = unique_prefix();
        let (first, second) = (
            instance(&prefix, [9; 32]).await,
            instance(&prefix, [9; 32]).await,
        );
        let mut jar = CookieJar::default();
        call(&first, &mut jar, "POST", "/login", EMAIL).await;
        let mut other_browser = CookieJar::default();
        call(&second, &mut other_browser, "POST", "/login", EMAIL).await;

        // A session made on one instance is the same session on the other.
        assert_eq!(call(&second, &mut jar, "GET", "/whoami", "").await, EMAIL);
        // Logging out everywhere on one ends the sessions made on both.
        assert_eq!(
            call(&second, &mut jar, "POST", "/logout-all", "").await,
            "2"
        );
        assert_eq!(
            call(&first, &mut other_browser, "GET", "/whoami", "").await,
            ""
        );
    }

    #[tokio::test]
    async fn an_instance_with_another_server_key_fails_closed() {
        let prefix = unique_prefix();
        let first = instance(&prefix, [9; 32]).await;
        let mut jar = CookieJar::default();
        call(&first, &mut jar, "POST", "/login", EMAIL).await;

        // Its tags would find none of the user's devices: a password would pass for a user who
        // never enrolled. Instead every operation fails, and a guarded route answers 503.
        let store = RedisConfig::server(server().url())
            .with_key_prefix(&prefix)
            .connect()
            .await
            .unwrap();
        let stranger = TwoFactor::new(store, ServerKey::new(&[7; 32]).unwrap());
        let alice = UserId::new(EMAIL).unwrap();
        let refused = stranger.is_configured(&alice).await.unwrap_err();
        assert_eq!(refused.kind(), "store_invalid_request");
        let guarded = Router::new()
            .route("/admin", get(|| async { "admin" }))
            .layer(tower_otp::guard::RequireOtpLayer::new())
            .layer(OtpLayer::new(stranger));
        let mut request = Request::get("/admin").body(Body::empty()).unwrap();
        jar.add_to(request.headers_mut());
        let response = guarded.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        // The instance with the right key goes on working.
        assert_eq!(call(&first, &mut jar, "GET", "/whoami", "").await, EMAIL);
    }
}
