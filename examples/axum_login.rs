//! Run with `cargo run --example axum_login --features axum-login`
//!
//! A second factor on top of an existing axum-login + tower-sessions login: axum-login says
//! who the user is, tower-otp guards the `/admin` subtree with `RequireOtpLayer`. Serves on
//! 127.0.0.1:3003; users `alice` (staff) and `bob`, password `password`.
//!
//! The verification is bound to the login: to the tower-sessions session id and the user's
//! `session_auth_hash`. Logging out (which deletes the session) and a changed password end
//! it, and so does a new login, because this example's `/login` gives the session a new id:
//! axum-login 0.18 keeps the id when someone logs in over an existing login, which would
//! keep the verification too.
//!
//! ```text
//! curl -c jar -b jar 127.0.0.1:3003/login -d 'username=alice&password=password'
//! curl -b jar 127.0.0.1:3003/admin                   # 403 otp_setup_required
//! curl -b jar -X POST 127.0.0.1:3003/2fa/enroll      # {"device_id", "otpauth_uri"}: scan the URI
//! curl -b jar 127.0.0.1:3003/2fa/confirm -d 'device_id=ID&code=123456'
//! curl -b jar 127.0.0.1:3003/admin                   # 200
//! ```
//!
//! After the next login, `/admin` answers `403 otp_required` until `POST /2fa/verify` with
//! `code=...`; bob, who is no staff member, gets `403 forbidden`.

use std::collections::HashMap;

use axum::extract::Form;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_login::{AuthManagerLayerBuilder, AuthUser, AuthnBackend};
use serde::Deserialize;
use serde_json::json;
use tower_otp::device::TotpSettings;
use tower_otp::guard::{RequireOtpLayer, Verified};
use tower_otp::layer::OtpLayer;
use tower_otp::session::{AxumLoginIdentity, OtpSession};
use tower_otp::{DeviceId, MemoryStore, ServerKey, TwoFactor, UserId};
use tower_sessions::SessionManagerLayer;

/// The application's users, as axum-login knows them.
#[derive(Clone, Debug)]
struct User {
    name: String,
    staff: bool,
    /// Stands in for a password hash: changing it ends every login (and verification).
    password_hash: Vec<u8>,
}

impl AuthUser for User {
    type Id = String;
    fn id(&self) -> String {
        self.name.clone()
    }
    fn session_auth_hash(&self) -> &[u8] {
        &self.password_hash
    }
}

#[derive(Clone, Debug, Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

#[derive(Clone, Debug)]
struct Backend {
    users: HashMap<String, User>,
}

impl AuthnBackend for Backend {
    type User = User;
    type Credentials = Credentials;
    type Error = std::convert::Infallible;

    async fn authenticate(&self, credentials: Credentials) -> Result<Option<User>, Self::Error> {
        let user = self.users.get(&credentials.username);
        // A real backend verifies a password hash (in constant time).
        Ok(user.filter(|_| credentials.password == "password").cloned())
    }

    async fn get_user(&self, id: &String) -> Result<Option<User>, Self::Error> {
        Ok(self.users.get(id).cloned())
    }
}

type AuthSession = axum_login::AuthSession<Backend>;

/// Logs in, always under a new session id, so that a new login starts with the second
/// factor unverified. axum-login 0.18 cycles the id only at a browser's first login and keeps
/// it when someone logs in over an existing login (and tower-sessions 0.14 keeps it across a
/// logout's flush in the same request), which would keep the verification too.
async fn login(mut auth: AuthSession, Form(credentials): Form<Credentials>) -> Response {
    let user = match auth.authenticate(credentials).await {
        Ok(Some(user)) => user,
        _ => return (StatusCode::UNAUTHORIZED, "wrong username or password\n").into_response(),
    };
    if auth.session.cycle_id().await.is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    match auth.login(&user).await {
        Ok(()) => "logged in\n".into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn logout(mut auth: AuthSession) -> StatusCode {
    match auth.logout().await {
        Ok(_) => StatusCode::NO_CONTENT,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Enrols an authenticator app, as the session's caller: the first device from a password
/// login, any further one only from a session verified by a code in the last 20 minutes.
async fn enroll(session: OtpSession) -> Response {
    let Ok(caller) = session.caller().await else {
        return (StatusCode::UNAUTHORIZED, "log in first\n").into_response();
    };
    let account = caller.user().as_str().to_owned();
    match session
        .two_factor()
        .enroll_totp(&caller, "Authenticator", &account, TotpSettings::default())
        .await
    {
        Ok(enrolment) => (
            [("cache-control", "no-store")],
            Json(json!({"device_id": enrolment.device.id.as_str(), "otpauth_uri": enrolment.uri.as_str()})),
        )
            .into_response(),
        Err(error) => (StatusCode::FORBIDDEN, format!("{}\n", error.kind())).into_response(),
    }
}

#[derive(Deserialize)]
struct Confirm {
    device_id: String,
    code: String,
}

async fn confirm(session: OtpSession, Form(form): Form<Confirm>) -> Response {
    let Ok(device) = form.device_id.parse::<DeviceId>() else {
        return (StatusCode::BAD_REQUEST, "invalid device id\n").into_response();
    };
    match session.confirm_device(&device, &form.code).await {
        Ok(_) => "verified\n".into_response(),
        Err(error) => (StatusCode::UNAUTHORIZED, format!("{}\n", error.kind())).into_response(),
    }
}

#[derive(Deserialize)]
struct Code {
    code: String,
}

async fn verify(session: OtpSession, Form(form): Form<Code>) -> Response {
    match session.verify_any(&form.code).await {
        Ok(_) => "verified\n".into_response(),
        Err(error) => (StatusCode::UNAUTHORIZED, format!("{}\n", error.kind())).into_response(),
    }
}

async fn admin(verified: Verified) -> String {
    format!("admin area, {}\n", verified.user)
}

/// The application: axum-login's layer outermost, then `OtpLayer`, which reads the
/// `AuthSession` axum-login put in the request, then the routes and the guarded subtree.
pub(crate) fn app(two_factor: TwoFactor) -> Router {
    let users = [("alice", true), ("bob", false)]
        .into_iter()
        .map(|(name, staff)| {
            let user = User {
                name: name.into(),
                staff,
                password_hash: name.as_bytes().to_vec(),
            };
            (name.to_owned(), user)
        })
        .collect::<HashMap<_, _>>();
    let staff: Vec<String> = users
        .values()
        .filter(|u| u.staff)
        .map(|u| u.name.clone())
        .collect();
    let backend = Backend { users };

    let is_staff = move |user: UserId| {
        let staff = staff.contains(&user.as_str().to_owned());
        async move { staff }
    };
    let admin_area = Router::new()
        .route("/", get(admin))
        .layer(RequireOtpLayer::new().predicate(is_staff));

    // Plain HTTP on loopback: no Secure cookies here.
    let sessions =
        SessionManagerLayer::new(tower_sessions::MemoryStore::default()).with_secure(false);
    let auth = AuthManagerLayerBuilder::new(backend, sessions).build();
    Router::new()
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/2fa/enroll", post(enroll))
        .route("/2fa/confirm", post(confirm))
        .route("/2fa/verify", post(verify))
        .nest("/admin", admin_area)
        .layer(OtpLayer::new(two_factor).with_identity(AxumLoginIdentity::<Backend>::new()))
        .layer(auth)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3003").await?;
    println!(
        "listening on http://127.0.0.1:3003; users alice (staff) and bob, password `password`"
    );
    let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::generate())
        .with_issuer("axum-login example")?;
    axum::serve(listener, app(two_factor)).await?;
    Ok(())
}
