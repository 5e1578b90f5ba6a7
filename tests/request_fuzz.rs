//! Random requests from the network — cookies, bearer headers, paths, JSON bodies — through
//! the layer, the guards and the JSON API: never a panic, never a 5xx.

mod common;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request};
use axum::routing::{get, post};
use proptest::prelude::*;
use serde_json::{Value, json};
use tower::ServiceExt;

use tower_otp::api::{self, ApiConfig};
use tower_otp::confirm::{Confirmer, DeviceMethod, OutOfBandMethod};
use tower_otp::device::OutboxSender;
use tower_otp::guard::{RequireOtpLayer, Verified};
use tower_otp::layer::OtpLayer;
use tower_otp::remember::RememberConfig;
use tower_otp::session::OtpSession;
use tower_otp::{MemoryStore, ServerKey, TwoFactor, UserId};

fn app() -> Router {
    let outbox = OutboxSender::new();
    let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::new(&[6; 32]).unwrap())
        .with_sender("email", outbox);
    let confirmer = Confirmer::new(&two_factor)
        .with_method(OutOfBandMethod::new(two_factor.clone(), "email").into_method())
        .with_method(DeviceMethod::new(two_factor.clone()).into_method());
    let login = |session: OtpSession| async move {
        session
            .login(UserId::new("alice").unwrap())
            .await
            .unwrap()
            .expose()
            .to_owned()
    };
    Router::new()
        .route("/login", post(login))
        .route(
            "/admin",
            get(|v: Verified| async move { v.user.to_string() }).layer(RequireOtpLayer::new()),
        )
        .nest(
            "/2fa",
            api::router(ApiConfig::new().with_confirmer(confirmer)),
        )
        .layer(OtpLayer::new(two_factor).with_remember(RememberConfig::new([[7u8; 32]]).unwrap()))
}

const PATHS: &[&str] = &[
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
    "code",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        "[ -~]{0,24}".prop_map(Value::from),
        "[0-9]{6,8}".prop_map(Value::from),
        Just(Value::from("totp")),
        Just(Value::from("email")),
        Just(Value::from("device")),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|pairs| {
                Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        json_value().prop_map(|v| v.to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..64),
        Just(Vec::new()),
    ]
}

/// Header value bytes: visible ASCII, spaces and tabs, and bytes above 0x7f.
fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![0x20u8..0x7f, Just(b'\t'), 0x80u8..=0xff],
        0..120,
    )
}

fn cookie() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        header_bytes(),
        "[A-Za-z0-9_=.;-]{0,90}".prop_map(|v| format!("__Host-otp-session={v}").into_bytes()),
        "[A-Za-z0-9_=.;-]{0,200}".prop_map(|v| format!("__Host-otp-remember={v}").into_bytes()),
    ]
}

fn authorization() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        header_bytes(),
        header_bytes().prop_map(|v| [b"Bearer ".as_slice(), &v].concat())
    ]
}

/// A path segment: anything, percent-encoded.
fn segment() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<u8>(), 0..40).prop_map(|bytes| {
        bytes
            .iter()
            .map(|b| format!("%{b:02X}"))
            .collect::<String>()
    })
}

#[derive(Debug, Clone)]
struct Fuzzed {
    method: &'static str,
    path: String,
    json_type: bool,
    cookie: Option<Vec<u8>>,
    authorization: Option<Vec<u8>>,
    body: Vec<u8>,
    logged_in: bool,
}

fn request() -> impl Strategy<Value = Fuzzed> {
    (
        prop::sample::select(vec!["GET", "POST", "PATCH", "DELETE", "PUT"]),
        prop::sample::select(PATHS),
        segment(),
        any::<bool>(),
        prop::option::of(cookie()),
        prop::option::of(authorization()),
        body(),
        any::<bool>(),
    )
        .prop_map(
            |(method, path, id, json_type, cookie, authorization, body, logged_in)| Fuzzed {
                method,
                path: path.replace("{}", &id),
                json_type,
                cookie,
                authorization,
                body,
                logged_in,
            },
        )
}

async fn session_cookie(app: &Router) -> String {
    let response = app
        .clone()
        .oneshot(Request::post("/login").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let set_cookie = response.headers()["set-cookie"].to_str().unwrap();
    set_cookie.split(';').next().unwrap().to_owned()
}

#[test]
fn random_requests_never_panic_or_fail_the_server() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let app = app();
    let valid_cookie = runtime.block_on(session_cookie(&app));
    let config = ProptestConfig {
        cases: 768,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(fuzzed in request())| {
        let mut builder = Request::builder().method(fuzzed.method).uri(&fuzzed.path);
        if fuzzed.json_type {
            builder = builder.header("content-type", "application/json");
        }
        let mut cookies = Vec::new();
        if fuzzed.logged_in {
            cookies.push(valid_cookie.clone().into_bytes());
        }
        cookies.extend(fuzzed.cookie.clone());
        for cookie in cookies {
            if let Ok(value) = HeaderValue::from_bytes(&cookie) {
                builder = builder.header("cookie", value);
            }
        }
        if let Some(Ok(value)) = fuzzed.authorization.as_deref().map(HeaderValue::from_bytes) {
            builder = builder.header("authorization", value);
        }
        let request = builder.body(Body::from(fuzzed.body.clone())).unwrap();
        let response = runtime.block_on(app.clone().oneshot(request)).unwrap();
        prop_assert!(
            !response.status().is_server_error(),
            "{} for {:?}", response.status(), fuzzed
        );
    });
}
