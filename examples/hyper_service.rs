//! Run with `cargo run --example hyper_service` (on Redis: add `-- --redis-url redis://127.0.0.1:6379/`)
//!
//! The same layer and guard on a plain hyper 1.x service, without axum: the session is a
//! request extension, the guard a Tower layer. Serves on 127.0.0.1:3002, on the embedded
//! in-memory store, or on a Redis server given with `--redis-url URL` or `REDIS_URL`.
//!
//! ```text
//! curl -i -X POST 127.0.0.1:3002/login?user=alice     # prints a session token
//! curl -i 127.0.0.1:3002/secret -H 'Authorization: Bearer TOKEN'   # 403 otp_required
//! ```

use std::convert::Infallible;

use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tower::ServiceBuilder;
use tower_otp::guard::RequireOtpLayer;
use tower_otp::layer::OtpLayer;
use tower_otp::session::{OtpSession, SessionConfig};
use tower_otp::{ServerKey, TwoFactor, UserId};

#[path = "support/store.rs"]
mod store;

type Body = Full<Bytes>;

fn text(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    let mut response = Response::new(Body::from(body.into()));
    *response.status_mut() = status;
    response
}

/// Public routes, and a login that trusts `?user=` (a stand-in for a real first factor).
async fn app(request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let Some(session) = request.extensions().get::<OtpSession>().cloned() else {
        return Ok(text(StatusCode::INTERNAL_SERVER_ERROR, "OtpLayer missing"));
    };
    let response = match (request.method(), request.uri().path()) {
        (&Method::GET, "/") => text(StatusCode::OK, "public\n"),
        (&Method::POST, "/login") => {
            let user = request.uri().query().and_then(|q| q.strip_prefix("user="));
            match user.map(UserId::new) {
                Some(Ok(user)) => match session.login(user).await {
                    Ok(token) => text(StatusCode::OK, format!("{}\n", token.expose())),
                    Err(error) => text(StatusCode::SERVICE_UNAVAILABLE, error.kind()),
                },
                _ => text(StatusCode::BAD_REQUEST, "give ?user=NAME\n"),
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    };
    Ok(response)
}

/// Behind the guard: only verified sessions get here.
async fn secret(_request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    Ok(text(StatusCode::OK, "the secret\n"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (store, described) = store::from_args().await?;
    let two_factor = TwoFactor::from_shared(store, ServerKey::generate());
    // Plain HTTP on loopback: the cookie cannot be `Secure` here.
    let config = SessionConfig::new().with_secure(false)?;
    let otp = OtpLayer::new(two_factor).with_config(config);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3002").await?;
    println!("listening on http://127.0.0.1:3002 ({described})");
    loop {
        let (stream, _) = listener.accept().await?;
        let otp = otp.clone();
        tokio::spawn(async move {
            let guarded = ServiceBuilder::new()
                .layer(RequireOtpLayer::new())
                .service_fn(secret);
            let router = tower::service_fn(move |request: Request<Incoming>| {
                let mut guarded = guarded.clone();
                async move {
                    if request.uri().path().starts_with("/secret") {
                        tower::Service::call(&mut guarded, request).await
                    } else {
                        app(request).await
                    }
                }
            });
            let service = ServiceBuilder::new().layer(otp).service(router);
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            if let Err(error) = connection.await {
                eprintln!("connection error: {error}");
            }
        });
    }
}
