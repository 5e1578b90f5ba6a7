//! Run with `cargo run --example hyper_service` (on Redis: add `-- --redis-url redis://127.0.0.1:6379/`)
//!
//! The same layer and guard on a plain hyper 1.x service, without axum: the session is a
//! request extension, the guard a Tower layer around `/secret`. `VerifiedDeviceLayer` loads
//! every request's session up front and leaves a `VerifiedDevice` extension when it is
//! verified, which `GET /me` reads (the guard and the handlers share that one load). Serves on 127.0.0.1:3002, on
//! the embedded in-memory store, or on a Redis server given with `--redis-url URL` or
//! `REDIS_URL`. Every answer is JSON; the session travels as a bearer token, and each answer
//! that issues a new one (login, and the first confirmation or a verification, which rotate
//! it) carries it as `token`.
//!
//! ```text
//! curl -X POST '127.0.0.1:3002/login?user=alice'                   # {"token": "TOKEN"}
//! curl 127.0.0.1:3002/secret -H 'Authorization: Bearer TOKEN'      # 403 otp_setup_required
//! curl -X POST 127.0.0.1:3002/enroll -H 'Authorization: Bearer TOKEN'
//!                                          # {"device_id", "otpauth_uri"}: scan the URI
//! curl -X POST 127.0.0.1:3002/confirm -H 'Authorization: Bearer TOKEN' \
//!      -d '{"device_id":"ID","code":"123456"}'                    # {"token": "NEW TOKEN"}
//! curl 127.0.0.1:3002/secret -H 'Authorization: Bearer NEW_TOKEN'  # 200
//! curl 127.0.0.1:3002/me -H 'Authorization: Bearer NEW_TOKEN'      # {"verified": true, ...}
//! ```
//!
//! A later login gets `403 otp_required` on `/secret` until `POST /verify` with
//! `{"code": "..."}` (and the new token it answers); `POST /logout` ends the session.

use std::convert::Infallible;

use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use serde_json::{Value, json};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_otp::device::TotpSettings;
use tower_otp::guard::RequireOtpLayer;
use tower_otp::layer::{OtpLayer, VerifiedDeviceLayer};
use tower_otp::session::{OtpSession, SessionConfig, SessionError};
use tower_otp::{DeviceId, ServerKey, TwoFactor, UserId, VerifiedDevice};

#[path = "support/store.rs"]
mod store;

type Body = Full<Bytes>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Request bodies are small JSON objects; anything longer is refused.
const MAX_BODY: usize = 1024;

fn answer(status: StatusCode, body: Value) -> Response<Body> {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn refusal(status: StatusCode, code: &str) -> Response<Body> {
    answer(status, json!({"error": code}))
}

/// The status of a session operation's failure, with its stable code as the body.
fn failure(error: SessionError) -> Response<Body> {
    let status = match &error {
        e if e.is_store_failure() => StatusCode::SERVICE_UNAVAILABLE,
        SessionError::NotAuthenticated | SessionError::SessionEnded => StatusCode::UNAUTHORIZED,
        SessionError::Otp(e) if e.is_wrong_code() => StatusCode::UNAUTHORIZED,
        SessionError::Otp(e) if matches!(e.kind(), "throttled" | "locked") => {
            StatusCode::TOO_MANY_REQUESTS
        }
        SessionError::Otp(e)
            if matches!(e.kind(), "otp_required" | "reauthentication_required") =>
        {
            StatusCode::FORBIDDEN
        }
        _ => StatusCode::BAD_REQUEST,
    };
    refusal(status, error.kind())
}

#[derive(Deserialize)]
struct Code {
    device_id: Option<String>,
    code: String,
}

/// The request's JSON body, read up to [`MAX_BODY`] bytes.
async fn json_body<B>(request: Request<B>) -> Result<Code, Response<Body>>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let bytes = Limited::new(request.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|_| refusal(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"))?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|_| refusal(StatusCode::BAD_REQUEST, "invalid_json"))
}

/// A login that trusts `?user=` (a stand-in for a real first factor).
async fn login(session: &OtpSession, query: Option<&str>) -> Response<Body> {
    let user = query.and_then(|q| q.strip_prefix("user="));
    match user.map(UserId::new) {
        Some(Ok(user)) => match session.login(user).await {
            Ok(token) => answer(StatusCode::OK, json!({"token": token.expose()})),
            Err(e) => failure(e),
        },
        _ => refusal(StatusCode::BAD_REQUEST, "give_user_in_query"),
    }
}

/// Enrols an authenticator app, as the session's caller: the user's first device from a
/// session that passed only the first factor, any further one only from a session verified
/// by a code in the last 20 minutes (`403 otp_required` or `reauthentication_required`).
async fn enroll(session: &OtpSession) -> Response<Body> {
    let caller = match session.caller().await {
        Ok(caller) => caller,
        Err(e) => return failure(e),
    };
    let account = caller.user().as_str().to_owned();
    match session
        .two_factor()
        .enroll_totp(&caller, "Authenticator", &account, TotpSettings::default())
        .await
    {
        Ok(enrolment) => {
            let body = json!({"device_id": enrolment.device.id.as_str(), "otpauth_uri": enrolment.uri.as_str()});
            let mut response = answer(StatusCode::OK, body);
            response.headers_mut().insert(
                http::header::CACHE_CONTROL,
                http::HeaderValue::from_static("no-store"),
            );
            response
        }
        Err(e) => failure(e.into()),
    }
}

/// Confirms the enrolled device with a code from it. The user's first device verifies the
/// session too, which changes its token.
async fn confirm(session: &OtpSession, body: Code) -> Response<Body> {
    let Some(Ok(device)) = body.device_id.map(|id| id.parse::<DeviceId>()) else {
        return refusal(StatusCode::BAD_REQUEST, "invalid_device_id");
    };
    match session.confirm_device(&device, &body.code).await {
        Ok(done) => {
            let token = done.token.as_ref().map(|t| t.expose());
            answer(
                StatusCode::OK,
                json!({"verified": done.verified_session, "token": token}),
            )
        }
        Err(e) => failure(e),
    }
}

/// Verifies a later login with a code from any confirmed device; the token changes.
async fn verify(session: &OtpSession, body: Code) -> Response<Body> {
    match session.verify_any(&body.code).await {
        Ok(done) => {
            let token = done.token.as_ref().map(|t| t.expose());
            answer(StatusCode::OK, json!({"verified": true, "token": token}))
        }
        Err(e) => failure(e),
    }
}

/// Who verified this request's session, and with which device: what `VerifiedDeviceLayer`
/// left in the extensions. No extension means not verified (nor logged in, or the store
/// could not be read: the layer fails closed and never refuses the request itself).
fn me(device: Option<&VerifiedDevice>) -> Response<Body> {
    let body = match device {
        Some(device) => json!({
            "verified": true,
            "user": device.user().as_str(),
            "device_id": device.device_id().as_str(),
            "device_kind": device.device_kind().as_str(),
            "remembered": device.remembered(),
        }),
        None => json!({"verified": false}),
    };
    answer(StatusCode::OK, body)
}

/// Every route but `/secret`.
async fn routes<B>(request: Request<B>) -> Result<Response<Body>, Infallible>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let Some(session) = request.extensions().get::<OtpSession>().cloned() else {
        return Ok(refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "otp_layer_missing",
        ));
    };
    let method = request.method().clone();
    let response = match (&method, request.uri().path()) {
        (&Method::GET, "/") => answer(StatusCode::OK, json!({"public": true})),
        (&Method::GET, "/me") => me(request.extensions().get::<VerifiedDevice>()),
        (&Method::POST, "/login") => login(&session, request.uri().query()).await,
        (&Method::POST, "/enroll") => enroll(&session).await,
        (&Method::POST, "/confirm") => match json_body(request).await {
            Ok(body) => confirm(&session, body).await,
            Err(refused) => refused,
        },
        (&Method::POST, "/verify") => match json_body(request).await {
            Ok(body) => verify(&session, body).await,
            Err(refused) => refused,
        },
        (&Method::POST, "/logout") => match session.logout().await {
            Ok(existed) => answer(StatusCode::OK, json!({"logged_out": existed})),
            Err(e) => failure(e),
        },
        _ => refusal(StatusCode::NOT_FOUND, "not_found"),
    };
    Ok(response)
}

/// Behind the guard: only verified sessions get here, with the device that verified them.
async fn secret<B>(request: Request<B>) -> Result<Response<Body>, Infallible> {
    let user = request
        .extensions()
        .get::<VerifiedDevice>()
        .map(|device| device.user().to_string());
    Ok(answer(StatusCode::OK, json!({"secret": 42, "user": user})))
}

/// The whole service: `OtpLayer` outermost, so that both the guard and the routes find the
/// session; `VerifiedDeviceLayer` inside it, loading each request's session once (a service
/// whose routes mostly never ask would leave it out, or put it on those routes only); the
/// guard wraps `/secret` only.
pub(crate) fn service<B>(
    two_factor: TwoFactor,
) -> Result<
    impl Service<Request<B>, Response = Response<Body>, Error = Infallible, Future: Send>
    + Clone
    + Send
    + 'static,
    tower_otp::session::ConfigError,
>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    // Plain HTTP on loopback: the cookie cannot be `Secure` here.
    let config = SessionConfig::new().with_secure(false)?;
    let guarded = ServiceBuilder::new()
        .layer(RequireOtpLayer::new())
        .service_fn(secret::<B>);
    let router = tower::service_fn(move |request: Request<B>| {
        let guarded = guarded.clone();
        async move {
            if request.uri().path() == "/secret" {
                guarded.oneshot(request).await
            } else {
                routes(request).await
            }
        }
    });
    Ok(ServiceBuilder::new()
        .layer(OtpLayer::new(two_factor).with_config(config))
        .layer(VerifiedDeviceLayer::new())
        .service(router))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (store, described) = store::from_args().await?;
    let two_factor =
        TwoFactor::from_shared(store, ServerKey::generate()).with_issuer("hyper example")?;
    let service = service(two_factor)?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3002").await?;
    println!("listening on http://127.0.0.1:3002 ({described})");
    loop {
        let (stream, _) = listener.accept().await?;
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(error) = connection.await {
                eprintln!("connection error: {error}");
            }
        });
    }
}
