//! Requests from the network through the whole application — `OtpLayer` with remember-device
//! cookies, a `RequireOtpLayer` route and the JSON API — on a current-thread runtime: never a
//! panic, never a 5xx.
//!
//! Each input is a short sequence of requests against a fresh application whose user `alice`
//! has a confirmed TOTP device, a verified session, a session not yet verified, and a
//! remembered browser. Requests present those sessions' cookies or bearer ids, that remember
//! cookie (which marks the unverified session verified), the same cookies with fuzzed or
//! edited values, or raw header bytes; so the cookie, bearer and remember-cookie parsers, the
//! path extractors and the JSON bodies all see fuzzed input.

#![no_main]

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use http::{HeaderValue, Request, Uri};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;
use tower::ServiceExt;
use tower_otp::api::{self, ApiConfig};
use tower_otp::confirm::{Confirmer, DeviceMethod, OutOfBandMethod};
use tower_otp::device::{OutboxSender, TotpSettings};
use tower_otp::guard::{RequireOtpLayer, Verified};
use tower_otp::layer::OtpLayer;
use tower_otp::remember::RememberConfig;
use tower_otp::session::OtpSession;
use tower_otp::{MemoryStore, ServerKey, TwoFactor, UserId};

const SESSION_COOKIE: &str = "__Host-otp-session";
const REMEMBER_COOKIE: &str = "__Host-otp-remember";
/// Requests per input; more only makes each run slower.
const MAX_REQUESTS: usize = 4;

const PATHS: &[&str] = &[
    "/login",
    "/admin",
    "/2fa/methods",
    "/2fa/devices",
    "/2fa/devices/{}",
    "/2fa/devices/{}/confirm",
    "/2fa/disable",
    "/2fa/backup-codes",
    "/2fa/challenges",
    "/2fa/confirmations",
    "/2fa/confirmations/{}",
    "/2fa/confirmations/{}/confirm",
    "/2fa/verify",
    "/2fa/remembered",
    "/2fa/remembered/{}",
    "/2fa/status",
    "/2fa/logout",
    "/2fa/logout-all",
];

const KEYS: &[&str] = &[
    "token",
    "device_id",
    "method",
    "name",
    "config",
    "remember",
    "data",
    "state",
    "default",
    "destination",
    "algorithm",
    "digits",
    "period",
];

const WORDS: &[&str] = &[
    "totp", "hotp", "email", "device", "SHA1", "SHA256", "SHA512", "a@b.c", "",
];

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

/// The application, and beside it (out of the fuzzer's reach) a `/setup` route behind the
/// same layer.
fn apps() -> (Router, Router) {
    let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::new(&[6; 32]).unwrap())
        .with_sender("email", OutboxSender::new());
    let confirmer = Confirmer::new(&two_factor)
        .with_method(OutOfBandMethod::new(two_factor.clone(), "email").into_method())
        .with_method(DeviceMethod::new(two_factor.clone()).into_method());
    let layer = OtpLayer::new(two_factor).with_remember(RememberConfig::new([[7u8; 32]]).unwrap());
    let login = |session: OtpSession| async move {
        let user = UserId::new("alice").unwrap();
        session.login(user).await.map(|_| "ok").map_err(|_| "no")
    };
    let app = Router::new()
        .route("/login", post(login))
        .route(
            "/admin",
            get(|v: Verified| async move { v.user.to_string() }).layer(RequireOtpLayer::new()),
        )
        .nest(
            "/2fa",
            api::router(ApiConfig::new().with_confirmer(confirmer)),
        )
        .layer(layer.clone());
    let setup = Router::new().route("/setup", post(setup)).layer(layer);
    (app, setup)
}

/// Logs `alice` in, enrols and confirms a TOTP device (verifying the session) and remembers
/// the browser; answers the device id.
async fn setup(session: OtpSession) -> String {
    let user = UserId::new("alice").unwrap();
    session.login(user.clone()).await.unwrap();
    let two_factor = session.two_factor();
    let enrolment = two_factor
        .enroll_totp(&user, "Phone", "alice", TotpSettings::default())
        .await
        .unwrap();
    let code = enrolment.current_code(two_factor.now());
    session
        .confirm_device(&enrolment.device.id, &code)
        .await
        .unwrap();
    session.remember_device().await.unwrap();
    enrolment.device.id.as_str().to_owned()
}

/// What the fuzzed requests can refer to.
struct Known {
    session: String,
    unverified: String,
    remember: String,
    device: String,
}

/// Runs `POST path` on `app` and returns the cookies it sets, by name, and its body.
async fn post_for_cookies(app: Router, path: &str) -> (Vec<(String, String)>, String) {
    let response = app
        .oneshot(Request::post(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let cookies = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| {
            let pair = value.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            (name.to_owned(), value.to_owned())
        })
        .collect();
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    (cookies, String::from_utf8(body.to_vec()).unwrap())
}

async fn set_up(app: &Router, setup: Router) -> Known {
    let (cookies, device) = post_for_cookies(setup, "/setup").await;
    let named = |cookies: &[(String, String)], wanted: &str| {
        cookies
            .iter()
            .rev()
            .find(|(name, _)| name == wanted)
            .map(|(_, value)| value.clone())
            .unwrap_or_else(|| panic!("no {wanted} cookie"))
    };
    let (later, _) = post_for_cookies(app.clone(), "/login").await;
    Known {
        session: named(&cookies, SESSION_COOKIE),
        unverified: named(&later, SESSION_COOKIE),
        remember: named(&cookies, REMEMBER_COOKIE),
        device,
    }
}

#[derive(Arbitrary, Debug)]
enum Method {
    Get,
    Post,
    Patch,
    Delete,
    Put,
}

#[derive(Arbitrary, Debug)]
enum Path {
    /// One of the application's routes, `{}` replaced by the percent-encoded segment.
    Route(u8, Segment),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Segment {
    Device,
    Bytes(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Cookie {
    Session,
    Unverified,
    Remember,
    SessionValue(Vec<u8>),
    RememberValue(Vec<u8>),
    /// The remember cookie with one byte changed.
    EditedRemember(u16, u8),
    /// The remember cookie cut short.
    TruncatedRemember(u16),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Authorization {
    Session,
    Unverified,
    Bearer(Vec<u8>),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    /// Six to eight digits.
    Digits(u32, u8),
    Word(u8),
    Device,
    Array(Vec<Json>),
    Object(Vec<(u8, Json)>),
}

#[derive(Arbitrary, Debug)]
enum Payload {
    Empty,
    Json(Json),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct FuzzRequest {
    method: Method,
    path: Path,
    json_type: bool,
    /// Each inner list is one `Cookie` header.
    cookies: Vec<Vec<Cookie>>,
    authorization: Option<Authorization>,
    body: Payload,
}

fn pick<'a>(list: &[&'a str], index: u8) -> &'a str {
    list[usize::from(index) % list.len()]
}

fn percent_encoded(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

impl Json {
    fn to_value(&self, known: &Known) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::from(*b),
            Json::Int(n) => Value::from(*n),
            Json::Float(f) => serde_json::json!(f),
            Json::Text(text) => Value::from(text.as_str()),
            Json::Digits(n, len) => {
                let len = 6 + usize::from(*len % 3);
                Value::from(format!("{n:0len$}")[..len].to_owned())
            }
            Json::Word(index) => Value::from(pick(WORDS, *index)),
            Json::Device => Value::from(known.device.as_str()),
            Json::Array(items) => items.iter().map(|i| i.to_value(known)).collect(),
            Json::Object(pairs) => Value::Object(
                pairs
                    .iter()
                    .map(|(key, value)| (pick(KEYS, *key).to_owned(), value.to_value(known)))
                    .collect(),
            ),
        }
    }
}

impl Cookie {
    fn to_bytes(&self, known: &Known) -> Vec<u8> {
        let pair = |name: &str, value: &[u8]| [name.as_bytes(), b"=", value].concat();
        let remember = known.remember.as_bytes();
        match self {
            Cookie::Session => pair(SESSION_COOKIE, known.session.as_bytes()),
            Cookie::Unverified => pair(SESSION_COOKIE, known.unverified.as_bytes()),
            Cookie::Remember => pair(REMEMBER_COOKIE, remember),
            Cookie::SessionValue(value) => pair(SESSION_COOKIE, value),
            Cookie::RememberValue(value) => pair(REMEMBER_COOKIE, value),
            Cookie::EditedRemember(at, byte) => {
                let mut value = remember.to_vec();
                let at = usize::from(*at) % value.len();
                value[at] = *byte;
                pair(REMEMBER_COOKIE, &value)
            }
            Cookie::TruncatedRemember(len) => {
                let len = usize::from(*len) % remember.len();
                pair(REMEMBER_COOKIE, &remember[..len])
            }
            Cookie::Raw(bytes) => bytes.clone(),
        }
    }
}

impl FuzzRequest {
    /// The request, or `None` if its URI or headers could not travel over HTTP at all.
    fn build(&self, known: &Known) -> Option<Request<Body>> {
        let method = match self.method {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Put => "PUT",
        };
        let path = match &self.path {
            Path::Route(index, segment) => {
                let segment = match segment {
                    Segment::Device => known.device.clone(),
                    Segment::Bytes(bytes) => percent_encoded(bytes),
                };
                pick(PATHS, *index).replace("{}", &segment)
            }
            Path::Raw(path) => path.clone(),
        };
        let uri = Uri::try_from(path).ok()?;
        let mut builder = Request::builder().method(method).uri(uri);
        if self.json_type {
            builder = builder.header("content-type", "application/json");
        }
        for header in &self.cookies {
            let parts: Vec<Vec<u8>> = header.iter().map(|c| c.to_bytes(known)).collect();
            builder = builder.header(
                "cookie",
                HeaderValue::from_bytes(&parts.join(&b"; "[..])).ok()?,
            );
        }
        if let Some(authorization) = &self.authorization {
            let value = match authorization {
                Authorization::Session => format!("Bearer {}", known.session).into_bytes(),
                Authorization::Unverified => format!("Bearer {}", known.unverified).into_bytes(),
                Authorization::Bearer(bytes) => [b"Bearer ".as_slice(), bytes].concat(),
                Authorization::Raw(bytes) => bytes.clone(),
            };
            builder = builder.header("authorization", HeaderValue::from_bytes(&value).ok()?);
        }
        let body = match &self.body {
            Payload::Empty => Vec::new(),
            Payload::Json(json) => json.to_value(known).to_string().into_bytes(),
            Payload::Raw(bytes) => bytes.clone(),
        };
        builder.body(Body::from(body)).ok()
    }
}

fuzz_target!(|requests: Vec<FuzzRequest>| {
    runtime().block_on(async {
        let (app, setup) = apps();
        let known = set_up(&app, setup).await;
        for fuzzed in requests.iter().take(MAX_REQUESTS) {
            let Some(request) = fuzzed.build(&known) else {
                continue;
            };
            let response = app.clone().oneshot(request).await.unwrap();
            assert!(
                !response.status().is_server_error(),
                "{} for {fuzzed:?}",
                response.status()
            );
        }
    });
});
