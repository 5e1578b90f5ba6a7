//! Run with `cargo run --example demo`
//!
//! The demo web app: a small service with a password login, the second-factor pages at
//! `/account/two-factor`, the second-factor JSON API at `/2fa`, a logged-in page and a
//! staff-only admin area behind a verified second factor. Open http://127.0.0.1:3000 in a
//! browser and walk through it: sign in, set up an authenticator app, make backup codes,
//! open the admin area, sign out, sign in again with a code.
//!
//! * `GET /` — the home page, public
//! * `GET /login` — the password form; `POST /login` as a form signs in and goes on to the
//!   verification step (`/account/two-factor/verify?login=1&next=...`) when the user has a
//!   second factor
//! * `POST /login` `{"username", "password", "bearer"?}` as JSON — users `alice` (staff) and
//!   `bob`, password `password`; sets the session cookie and answers `{"user"}`. With
//!   `"bearer": true` the answer is `{"user", "token"}`, the session token to send as
//!   `Authorization: Bearer TOKEN`: a token in a body is only for clients that asked for one,
//!   never for a browser page whose scripts could read it.
//! * `/account/two-factor/...` — the pages (see `tower_otp::ui`)
//! * `/2fa/...` — the JSON API (see `tower_otp::api`)
//! * `GET /account` — logged in (JSON)
//! * `GET /admin` — staff, second factor verified (JSON, status answers)
//! * `GET /staff`, `GET /staff/users` — the admin area for browsers: staff, second factor
//!   verified, and redirects to the login, verification or setup page otherwise
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
//! * `--push-url URL` (`TOWER_OTP_PUSH_URL`) — send push approvals as webhook `POST`s to
//!   this URL, such as the phone simulator's (`cargo run --example phone --features
//!   push,webhook`); needs the demo built with the features `push` and `webhook`
//!   (`cargo run --example demo --features push,webhook`).
//!
//! With the feature `webauthn` (`cargo run --example demo --features webauthn`), security
//! keys and passkeys are offered too: open http://localhost:3000 (browsers allow WebAuthn
//! over plain HTTP only on `localhost`).
//!
//! Every event is printed as one JSON line on standard output; everything else (start-up
//! messages, out-of-band codes "sent" or "called" by the console sender) goes to standard
//! error.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, FromRequest, Json, Query, Request};
use axum::http::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE, HOST, ORIGIN};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde_json::json;
use tower_otp::api::{self, ApiConfig};
use tower_otp::confirm::{Confirmer, DeviceMethod, OutOfBandMethod};
use tower_otp::device::{ConsoleSender, SecretSealer};
use tower_otp::events::Events;
use tower_otp::guard::{RedirectTargets, RequireOtpLayer, Verified, safe_next};
use tower_otp::layer::OtpLayer;
use tower_otp::remember::RememberConfig;
use tower_otp::session::{OtpSession, SessionConfig};
use tower_otp::store::{MemoryStore, RedisConfig, SharedStore};
use tower_otp::ui::{self, UiConfig};
use tower_otp::{Keys, TwoFactor, UserId};

const USERS: [(&str, bool); 2] = [("alice", true), ("bob", false)];
const PASSWORD: &str = "password";
/// Where the second-factor pages are mounted: links in mails and bookmarks rely on it.
const PAGES: &str = "/account/two-factor";

/// Command-line options, each with an environment fallback.
struct Options {
    addr: SocketAddr,
    redis_url: Option<String>,
    redis_cluster: Option<Vec<String>>,
    secret: Option<String>,
    push_url: Option<String>,
    local_cache: bool,
}

fn options() -> Result<Options, String> {
    let mut addr = None;
    let mut redis_url = std::env::var("REDIS_URL").ok();
    let mut redis_cluster = std::env::var("REDIS_CLUSTER").ok();
    let mut secret = std::env::var("TOWER_OTP_SECRET").ok();
    let mut push_url = std::env::var("TOWER_OTP_PUSH_URL").ok();
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
            "--push-url" => push_url = Some(value()?),
            "--local-cache" => local_cache = true,
            "--help" | "-h" => {
                return Err("usage: demo [--addr HOST:PORT] [--redis-url URL | --redis-cluster URL,URL,...] [--local-cache] [--secret TEXT] [--push-url URL]".into());
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
        push_url: push_url.filter(|v| !v.is_empty()),
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
fn password_ok(username: &str, password: &str) -> bool {
    use subtle::ConstantTimeEq;
    let known = USERS.iter().any(|(name, _)| *name == username);
    let matches: bool = password.as_bytes().ct_eq(PASSWORD.as_bytes()).into();
    known && matches
}

/// `POST /login`: a form from the login page, or JSON from an API client.
async fn login(session: OtpSession, request: Request) -> Response {
    let form = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
    if form {
        let same_origin = same_origin(request.headers());
        return match Form::<FormLogin>::from_request(request, &()).await {
            Ok(Form(login)) if same_origin => form_login(session, login).await,
            Ok(_) => (
                StatusCode::FORBIDDEN,
                "Sign in from this site's own login page.",
            )
                .into_response(),
            Err(rejection) => rejection.into_response(),
        };
    }
    match Json::<Login>::from_request(request, &()).await {
        Ok(Json(login)) => json_login(session, login).await,
        Err(rejection) => rejection.into_response(),
    }
}

async fn json_login(session: OtpSession, login: Login) -> Response {
    if !password_ok(&login.username, &login.password) {
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

/// The login page's form.
#[derive(Deserialize)]
struct FormLogin {
    username: String,
    password: String,
    #[serde(default)]
    next: Option<String>,
}

/// After the password, the second factor's verification step for users who have one; the
/// step goes on at once in a remembered browser.
async fn form_login(session: OtpSession, login: FormLogin) -> Response {
    let next = login.next.as_deref().and_then(safe_next).unwrap_or("/");
    if !password_ok(&login.username, &login.password) {
        return (StatusCode::UNAUTHORIZED, page(&login_page(next, true))).into_response();
    }
    let Ok(user) = UserId::new(login.username) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    if session.login(user.clone()).await.is_err() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "The service is unavailable.",
        )
            .into_response();
    }
    match session.two_factor().is_configured(&user).await {
        Ok(true) => {
            let next = utf8_percent_encode(next, NON_ALPHANUMERIC);
            Redirect::to(&format!("{PAGES}/verify?login=1&next={next}")).into_response()
        }
        Ok(false) => Redirect::to(next).into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The service is unavailable.",
        )
            .into_response(),
    }
}

/// A form from another site must not sign anyone in (login CSRF): the browser says where
/// the form came from in `Sec-Fetch-Site` and `Origin`.
fn same_origin(headers: &HeaderMap) -> bool {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let fetch_site_ok =
        header("sec-fetch-site").is_none_or(|site| matches!(site, "same-origin" | "none"));
    let origin_ok = match (header(ORIGIN.as_str()), header(HOST.as_str())) {
        (None, _) => true,
        (Some(origin), Some(host)) => origin == format!("http://{host}"),
        (Some(_), None) => false,
    };
    fetch_site_ok && origin_ok
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn login_form(Query(query): Query<NextQuery>) -> Response {
    let next = query.next.as_deref().and_then(safe_next).unwrap_or("/");
    page(&login_page(next, false))
}

fn login_page(next: &str, failed: bool) -> String {
    let error = if failed {
        r#"<p class="error" role="alert" id="login-error">Wrong username or password.</p>"#
    } else {
        ""
    };
    format!(
        r#"<h1>Sign in</h1>{error}
<form method="post" action="/login">
  <input type="hidden" name="next" value="{next}">
  <p class="field"><label for="username">Username</label>
    <input id="username" name="username" autocomplete="username" required></p>
  <p class="field"><label for="password">Password</label>
    <input id="password" name="password" type="password" autocomplete="current-password" required></p>
  <button type="submit">Sign in</button>
</form>
<p>Users: <code>alice</code> (staff) and <code>bob</code>, password <code>password</code>.</p>"#,
        next = escape(next)
    )
}

async fn home(session: OtpSession) -> Response {
    let who = match session.user().await {
        Ok(Some(user)) => format!(
            "<p>Signed in as <strong>{}</strong>.</p>",
            escape(user.as_str())
        ),
        _ => r#"<p><a href="/login" id="sign-in">Sign in</a></p>"#.to_owned(),
    };
    page(&format!(
        r#"<h1>tower-otp demo</h1>{who}
<ul>
  <li><a href="/staff" id="admin-area">Admin area</a> (staff, with a second factor)</li>
  <li><a href="{PAGES}" id="two-factor">Two-factor settings</a></li>
</ul>"#
    ))
}

async fn staff(verified: Verified) -> Response {
    page(&format!(
        r#"<h1 id="admin-title">Admin area</h1>
<p>Welcome, {}. Only staff who passed the second factor see this page.</p>
<p><a href="/staff/users">Users</a> · <a href="{PAGES}">Two-factor settings</a> · <a href="/">Home</a></p>"#,
        escape(verified.user.as_str())
    ))
}

async fn staff_users() -> Response {
    let rows: String = USERS
        .iter()
        .map(|(name, staff)| format!("<li>{name}{}</li>", if *staff { " (staff)" } else { "" }))
        .collect();
    page(&format!(
        r#"<h1>Users</h1><ul>{rows}</ul><p><a href="/staff">Admin area</a></p>"#
    ))
}

/// A page of the demo itself, in the pages' stylesheet, under a policy without script.
fn page(content: &str) -> Response {
    let html = format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>tower-otp demo</title>
<link rel="stylesheet" href="{PAGES}/style.css"></head>
<body><header class="site"><a href="/">Home</a></header><main>{content}</main></body></html>"#
    );
    let policy = HeaderValue::from_static(
        "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    ([(CONTENT_SECURITY_POLICY, policy)], Html(html)).into_response()
}

/// Text for HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
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

/// Security keys for the demo (feature `webauthn`). Browsers allow WebAuthn over plain HTTP
/// only on `localhost`, so the relying party is `localhost` on the demo's port: open the demo
/// at http://localhost:PORT to use a key.
#[cfg(feature = "webauthn")]
fn with_security_keys(
    two_factor: TwoFactor,
    addr: SocketAddr,
) -> Result<TwoFactor, tower_otp::webauthn::RelyingPartyError> {
    let origin = format!("http://localhost:{}", addr.port());
    let site = tower_otp::webauthn::RelyingParty::new("localhost", &origin, "tower-otp demo")?;
    eprintln!("Security keys: open {origin} (WebAuthn needs localhost over plain HTTP).");
    Ok(two_factor.with_webauthn(site))
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
        .with_sender("sms", ConsoleSender::with_writer(std::io::stderr()))
        .with_sender("call", ConsoleSender::with_writer(std::io::stderr()));
    let two_factor = with_push(two_factor, options.push_url.as_deref())?;
    #[cfg(feature = "webauthn")]
    let two_factor = with_security_keys(two_factor, options.addr)?;
    let confirmer = Confirmer::new(&two_factor)
        .with_method(OutOfBandMethod::new(two_factor.clone(), "email").into_method())
        .with_method(OutOfBandMethod::new(two_factor.clone(), "sms").into_method())
        .with_method(DeviceMethod::new(two_factor.clone()).into_method());

    // Plain HTTP on loopback: the cookies cannot be `Secure` (nor `__Host-` prefixed) here.
    let sessions = SessionConfig::new().with_secure(false)?;
    let remember = RememberConfig::new([keys.remember_key()])?;
    let staff_only = |user: UserId| async move { is_staff(&user) };
    // Browsers are sent to the pages; API clients get status answers at /admin.
    let to_pages = RedirectTargets::new("/login", format!("{PAGES}/verify"))
        .with_setup(format!("{PAGES}/setup"));
    let admin_area = Router::new()
        .route("/", get(staff))
        .route("/users", get(staff_users))
        .layer(
            RequireOtpLayer::new()
                .predicate(staff_only)
                .redirect_to(to_pages),
        );
    let app = Router::new()
        .route("/", get(home))
        .route("/login", get(login_form).post(login))
        .route("/account", get(account))
        .route(
            "/admin",
            get(admin).layer(RequireOtpLayer::new().predicate(staff_only)),
        )
        .nest("/staff", admin_area)
        .nest(PAGES, ui::router(UiConfig::new().with_login_url("/login")))
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

/// Push approvals go to `url` as webhook `POST`s, when one is given.
#[cfg(all(feature = "push", feature = "webhook"))]
fn with_push(two_factor: TwoFactor, url: Option<&str>) -> Result<TwoFactor, String> {
    let Some(url) = url else {
        return Ok(two_factor);
    };
    let sender = tower_otp::device::WebhookSender::new(url)
        .map_err(|error| format!("--push-url: {error}"))?
        .with_timeout(std::time::Duration::from_secs(5));
    eprintln!("push approvals go to {url}");
    Ok(two_factor.with_push_sender(sender))
}

/// Without the features, a push URL is refused rather than ignored.
#[cfg(not(all(feature = "push", feature = "webhook")))]
fn with_push(two_factor: TwoFactor, url: Option<&str>) -> Result<TwoFactor, String> {
    match url {
        None => Ok(two_factor),
        Some(_) => Err("--push-url needs the demo built with `--features push,webhook`".into()),
    }
}

/// 256 random bits, for a demo started without a secret.
fn random_secret() -> Vec<u8> {
    let mut bytes = vec![0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random number generator");
    bytes
}
