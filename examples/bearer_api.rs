//! Run with `cargo run --example bearer_api`
//!
//! An API that already authenticates clients with its own bearer tokens adds a second factor:
//! its auth middleware says who the token belongs to (user and token id), tower-otp keeps the
//! second-factor state of that token, and verifying "upgrades" the token so guarded routes
//! accept it. Serves on 127.0.0.1:3004.
//!
//! ```text
//! curl -X POST 127.0.0.1:3004/token -d '{"username":"alice","password":"password"}' -H 'content-type: application/json'
//! curl 127.0.0.1:3004/api/secret -H 'Authorization: Bearer TOKEN'         # 403 otp_setup_required
//! curl -X POST 127.0.0.1:3004/2fa/enroll -H 'Authorization: Bearer TOKEN' # scan the URI
//! curl -X POST 127.0.0.1:3004/2fa/confirm -H 'Authorization: Bearer TOKEN' \
//!      -H 'content-type: application/json' -d '{"device_id":"ID","code":"123456"}'
//! curl 127.0.0.1:3004/api/secret -H 'Authorization: Bearer TOKEN'         # 200
//! ```
//!
//! A new token of the same user answers `403 otp_required` until `POST /2fa/verify` with
//! `{"code": "..."}`; the token stays the same, verified from then on.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tower_otp::device::TotpSettings;
use tower_otp::guard::{RequireOtpLayer, Verified};
use tower_otp::layer::OtpLayer;
use tower_otp::session::{Identity, OtpSession};
use tower_otp::{DeviceId, MemoryStore, ServerKey, TwoFactor, UserId};

/// What the application's auth middleware knows about a valid token.
#[derive(Clone, Debug)]
struct Claims {
    user: String,
    token_id: String,
}

/// The application's own token table (a stand-in for JWTs or an API-key service).
type Tokens = Arc<RwLock<HashMap<String, Claims>>>;

#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

async fn issue_token(
    State(tokens): State<Tokens>,
    Json(credentials): Json<Credentials>,
) -> Response {
    if !matches!(credentials.username.as_str(), "alice" | "bob")
        || credentials.password != "password"
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_credentials"})),
        )
            .into_response();
    }
    let token = hex(&random::<32>());
    let claims = Claims {
        user: credentials.username,
        token_id: hex(&random::<16>()),
    };
    tokens.write().unwrap().insert(token.clone(), claims);
    Json(json!({"token": token})).into_response()
}

/// The application's auth middleware: a valid bearer token puts its `Claims` in the request.
async fn authenticate(State(tokens): State<Tokens>, mut request: Request, next: Next) -> Response {
    let bearer = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    if let Some(claims) = bearer.and_then(|token| tokens.read().unwrap().get(token).cloned()) {
        request.extensions_mut().insert(claims);
    }
    next.run(request).await
}

/// Enrols an authenticator app. The session is the caller: the engine refuses a token that
/// passed only the first factor once the user has a device (a stolen password must not add a
/// second factor), and asks a fresh code verification for any further device.
async fn enroll(session: OtpSession) -> Response {
    let Ok(caller) = session.caller().await else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let account = caller.user().as_str().to_owned();
    match session.two_factor().enroll_totp(&caller, "Authenticator", &account, TotpSettings::default()).await {
        Ok(enrolment) => (
            [("cache-control", "no-store")],
            Json(json!({"device_id": enrolment.device.id.as_str(), "otpauth_uri": enrolment.uri.as_str()})),
        )
            .into_response(),
        Err(error) => {
            let status = match error {
                tower_otp::Error::VerificationRequired | tower_otp::Error::ReauthenticationRequired => StatusCode::FORBIDDEN,
                _ => StatusCode::BAD_REQUEST,
            };
            (status, Json(json!({"error": error.kind()}))).into_response()
        }
    }
}

#[derive(Deserialize)]
struct Code {
    device_id: Option<String>,
    code: String,
}

async fn confirm_or_verify(session: OtpSession, Json(body): Json<Code>) -> Response {
    let result = match body.device_id.as_deref().map(str::parse::<DeviceId>) {
        // Only the user's first device verifies the token that confirms it; a further device
        // needs a token verified by a code recently, and leaves it as it was.
        Some(Ok(device)) => session
            .confirm_device(&device, &body.code)
            .await
            .map(|done| done.verified_session),
        Some(Err(_)) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "invalid_device_id"})),
            )
                .into_response();
        }
        None => session.verify_any(&body.code).await.map(|_| true),
    };
    match result {
        // The same token is verified now, or was already: nothing new to hand out.
        Ok(_) => Json(json!({"verified": true})).into_response(),
        Err(error) => (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": error.kind()})),
        )
            .into_response(),
    }
}

async fn secret(verified: Verified) -> Json<serde_json::Value> {
    Json(json!({"secret": 42, "user": verified.user.as_str()}))
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    getrandom::fill(&mut bytes).expect("OS randomness");
    bytes
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The application: the token endpoint outside everything; the application's auth
/// middleware outside `OtpLayer`, whose identity source reads the `Claims` it leaves.
pub(crate) fn app(two_factor: TwoFactor) -> Router {
    let tokens = Tokens::default();
    // The second factor is bound to the user and the token id: a new token starts unverified.
    let identity = |parts: &axum::http::request::Parts| {
        let claims = parts.extensions.get::<Claims>()?;
        Some(Identity::new(
            UserId::new(claims.user.clone()).ok()?,
            &claims.token_id,
        ))
    };
    Router::new()
        .route("/api/secret", get(secret).layer(RequireOtpLayer::new()))
        .route("/2fa/enroll", post(enroll))
        .route("/2fa/confirm", post(confirm_or_verify))
        .route("/2fa/verify", post(confirm_or_verify))
        .layer(OtpLayer::new(two_factor).with_identity(identity))
        .layer(middleware::from_fn_with_state(tokens.clone(), authenticate))
        .route("/token", post(issue_token))
        .with_state(tokens)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3004").await?;
    println!("listening on http://127.0.0.1:3004; users alice and bob, password `password`");
    let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::generate())
        .with_issuer("bearer API example")?;
    axum::serve(listener, app(two_factor)).await?;
    Ok(())
}
