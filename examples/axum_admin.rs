//! Run with `cargo run --example axum_admin` (on Redis: add `-- --redis-url redis://127.0.0.1:6379/`)
//!
//! An axum application with public routes, a logged-in area, and an `/admin` subtree that
//! needs a staff user who passed the second factor. Serves on 127.0.0.1:3001, on the
//! embedded in-memory store, or on a Redis server given with `--redis-url URL` or
//! `REDIS_URL`. Users `alice` (staff) and `bob`, password `password`. Try:
//!
//! ```text
//! curl -c jar -b jar 127.0.0.1:3001/login -H 'content-type: application/json' \
//!      -d '{"username":"alice","password":"password"}'
//! curl -b jar 127.0.0.1:3001/admin                      # 403 otp_setup_required
//! curl -c jar -b jar -X POST 127.0.0.1:3001/enroll      # scan the otpauth URI
//! curl -c jar -b jar 127.0.0.1:3001/confirm -H 'content-type: application/json' \
//!      -d '{"device_id":"ID","code":"123456"}'
//! curl -b jar 127.0.0.1:3001/admin                      # 200
//! ```
//!
//! A later login gets `403 otp_required` on `/admin` until `POST /verify` `{"code"}`; a
//! wrong code makes the next attempt wait a second (`429 throttled`); bob, who is no staff
//! member, gets `403 forbidden`; `POST /logout` ends the session.

use axum::Router;
use axum::extract::{Json, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use tower_otp::device::TotpSettings;
use tower_otp::guard::{RequireOtpLayer, Verified};
use tower_otp::layer::OtpLayer;
use tower_otp::session::{ConfigError, OtpSession, SessionConfig, SessionError};
use tower_otp::{DeviceId, ServerKey, TwoFactor, UserId};

#[path = "support/store.rs"]
mod store;

/// The application's own first factor: two users, one password, alice is staff.
fn check_password(username: &str, password: &str) -> bool {
    matches!(username, "alice" | "bob") && password == "password"
}

fn is_staff(user: &UserId) -> bool {
    user.as_str() == "alice"
}

fn failure(error: SessionError) -> Response {
    let status = match &error {
        e if e.is_store_failure() => StatusCode::SERVICE_UNAVAILABLE,
        SessionError::NotAuthenticated | SessionError::SessionEnded => StatusCode::UNAUTHORIZED,
        SessionError::Otp(e) if e.is_wrong_code() => StatusCode::UNAUTHORIZED,
        SessionError::Otp(e) if e.kind() == "throttled" || e.kind() == "locked" => {
            StatusCode::TOO_MANY_REQUESTS
        }
        SessionError::Otp(e)
            if matches!(e.kind(), "otp_required" | "reauthentication_required") =>
        {
            StatusCode::FORBIDDEN
        }
        _ => StatusCode::BAD_REQUEST,
    };
    (
        status,
        Json(json!({"error": error.kind(), "message": error.to_string()})),
    )
        .into_response()
}

#[derive(Deserialize)]
struct Login {
    username: String,
    password: String,
}

async fn login(session: OtpSession, Json(login): Json<Login>) -> Response {
    if !check_password(&login.username, &login.password) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_credentials"})),
        )
            .into_response();
    }
    let Ok(user) = UserId::new(login.username) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    match session.login(user).await {
        Ok(_) => Json(json!({"logged_in": true})).into_response(),
        Err(error) => failure(error),
    }
}

/// Enrols an authenticator app. The session is the caller: a session that passed only the
/// password may enrol the user's first device; once the user has one, adding another needs a
/// code verification from the last 20 minutes (`otp_required` / `reauthentication_required`
/// otherwise), so a stolen password cannot add a second factor.
async fn enroll(session: OtpSession, State(two_factor): State<TwoFactor>) -> Response {
    let caller = match session.caller().await {
        Ok(caller) => caller,
        Err(error) => return failure(error),
    };
    let account = caller.user().as_str().to_owned();
    match two_factor
        .enroll_totp(&caller, "Authenticator", &account, TotpSettings::default())
        .await
    {
        Ok(enrolment) => (
            [("cache-control", "no-store")],
            Json(json!({
                "device_id": enrolment.device.id.as_str(),
                "otpauth_uri": enrolment.uri.as_str(),
            })),
        )
            .into_response(),
        Err(error) => failure(error.into()),
    }
}

#[derive(Deserialize)]
struct Code {
    device_id: Option<String>,
    code: String,
}

async fn confirm(session: OtpSession, Json(body): Json<Code>) -> Response {
    let Some(Ok(id)) = body.device_id.map(|id| id.parse::<DeviceId>()) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_device_id"})),
        )
            .into_response();
    };
    // The first device verifies the session that confirms it; a further one needs (and keeps)
    // a fresh verification.
    match session.confirm_device(&id, &body.code).await {
        Ok(_) => Json(json!({"verified": true})).into_response(),
        Err(error) => failure(error),
    }
}

async fn verify(session: OtpSession, Json(body): Json<Code>) -> Response {
    match session.verify_any(&body.code).await {
        Ok(done) => {
            Json(json!({"verified": true, "device_id": done.verification.device.id.as_str()}))
                .into_response()
        }
        Err(error) => failure(error),
    }
}

async fn account(session: OtpSession) -> Response {
    match session.status().await {
        Ok(status) if status.is_authenticated() => {
            let verified = status.is_verified();
            Json(json!({"user": status.user.map(String::from), "verified": verified}))
                .into_response()
        }
        Ok(_) => failure(SessionError::NotAuthenticated),
        Err(error) => failure(error),
    }
}

async fn admin(verified: Verified) -> String {
    format!("Welcome to the admin, {}.\n", verified.user)
}

async fn logout(session: OtpSession) -> Response {
    match session.logout().await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => failure(error),
    }
}

/// The application: the guarded `/admin` subtree nested in the public routes, all inside
/// `OtpLayer`, added last so that it is outermost.
pub(crate) fn app(two_factor: TwoFactor) -> Result<Router, ConfigError> {
    // Plain HTTP on loopback: no `Secure` cookie (and so no `__Host-` prefix).
    let config = SessionConfig::new().with_secure(false)?;
    let staff_only = |user: UserId| async move { is_staff(&user) };
    let admin_area = Router::new()
        .route("/", get(admin))
        .route("/settings", get(admin))
        .layer(RequireOtpLayer::new().predicate(staff_only));
    Ok(Router::new()
        .route("/", get(|| async { "Public page.\n" }))
        .route("/login", post(login))
        .route("/enroll", post(enroll))
        .route("/confirm", post(confirm))
        .route("/verify", post(verify))
        .route("/account", get(account))
        .route("/logout", post(logout))
        .nest("/admin", admin_area)
        .with_state(two_factor.clone())
        .layer(OtpLayer::new(two_factor).with_config(config)))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (store, described) = store::from_args().await?;
    // Every instance sharing a Redis needs the same server key; a real application loads it
    // from its configuration.
    let two_factor =
        TwoFactor::from_shared(store, ServerKey::generate()).with_issuer("axum admin example")?;
    let app = app(two_factor)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3001").await?;
    println!(
        "listening on http://127.0.0.1:3001 ({described}); users alice (staff) and bob, password `password`"
    );
    axum::serve(listener, app).await?;
    Ok(())
}
