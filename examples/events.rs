//! Run with `cargo run --example events`
//!
//! Subscribes to the event bus and prints every event as one JSON line on standard output,
//! while a short scripted flow runs on the embedded in-memory store: enrolment, confirmation,
//! backup codes, then login, a verification, a wrong code, a throttled retry, a backup code
//! and logout through an axum router with `OtpLayer` (so those events carry the request).
//! The subscriber reads the bus as a `Stream`.
//! The steps are narrated on standard error, so that
//! `cargo run --example events 2>/dev/null | jq .` shows the events alone. Exits by itself.
//!
//! The clock is a manual one, moved forward by the script instead of waiting for the next
//! TOTP step or the end of a throttling delay.

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use tower::ServiceExt;
use tower_otp::clock::{Clock, ManualClock, Timestamp};
use tower_otp::device::TotpSettings;
use tower_otp::events::RecvError;
use tower_otp::layer::OtpLayer;
use tower_otp::session::{OtpSession, SessionError};
use tower_otp::{Caller, MemoryStore, ServerKey, TwoFactor, UserId};

fn refused(error: SessionError) -> Response {
    let status = match error.kind() {
        "throttled" | "locked" => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::UNAUTHORIZED,
    };
    (status, error.kind()).into_response()
}

/// `POST /login` with the user name as the body (a stand-in for a real first factor),
/// `POST /verify` with a code, `POST /logout`. Session ids travel as bearer tokens; each
/// answer that issues a new one carries it as its body.
fn app(two_factor: TwoFactor) -> Router {
    Router::new()
        .route(
            "/login",
            post(|session: OtpSession, name: String| async move {
                let Ok(user) = UserId::new(name) else {
                    return StatusCode::BAD_REQUEST.into_response();
                };
                match session.login(user).await {
                    Ok(token) => token.expose().to_owned().into_response(),
                    Err(error) => refused(error),
                }
            }),
        )
        .route(
            "/verify",
            post(|session: OtpSession, code: String| async move {
                match session.verify_any(&code).await {
                    Ok(done) => done
                        .token
                        .map(|token| token.expose().to_owned())
                        .unwrap_or_default()
                        .into_response(),
                    Err(error) => refused(error),
                }
            }),
        )
        .route(
            "/logout",
            post(|session: OtpSession| async move {
                match session.logout().await {
                    Ok(_) => StatusCode::NO_CONTENT.into_response(),
                    Err(error) => refused(error),
                }
            }),
        )
        .layer(OtpLayer::new(two_factor))
}

/// Narrates a step on standard error, in one write so that it does not interleave with the
/// events on standard output.
fn note(line: &str) {
    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
}

/// Sends one request as a browser at 127.0.0.1 would, and returns the status and body.
async fn post_to(
    app: &Router,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> Result<(StatusCode, String), Box<dyn std::error::Error>> {
    let mut request = Request::post(path)
        .header("user-agent", "events-example/1.0")
        .extension(SocketAddr::from(([127, 0, 0, 1], 50_000)));
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::from(body.to_owned()))?)
        .await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    run().await?;
    Ok(())
}

/// Runs the flow, printing each event as it comes; returns the events' names, in order.
pub(crate) async fn run() -> Result<Vec<&'static str>, Box<dyn std::error::Error>> {
    let clock = ManualClock::new(Timestamp::from(SystemTime::now()));
    let two_factor = TwoFactor::new(
        MemoryStore::new().with_clock(clock.clone()),
        ServerKey::generate(),
    )
    .with_clock(clock.clone())
    .with_issuer("events example")?;

    // The subscriber: a `Stream` on its own task. It never slows the flow down; had it fallen
    // more than the bus's capacity behind, it would be told how many events it missed.
    let mut stream = two_factor.events().subscribe();
    let printer = tokio::spawn(async move {
        let mut names = Vec::new();
        // The stream ends once every handle on the bus is gone: the flow is over.
        while let Some(item) = stream.next().await {
            match item {
                Ok(event) => {
                    names.push(event.kind.name());
                    match serde_json::to_string(&*event) {
                        Ok(line) => println!("{line}"),
                        Err(error) => eprintln!("could not serialise an event: {error}"),
                    }
                }
                Err(RecvError::Lagged(missed)) => eprintln!("missed {missed} events"),
                Err(error) => eprintln!("{error}"),
            }
        }
        names
    });

    let alice = UserId::new("alice")?;
    note("# enrol an authenticator app and confirm it with its first code");
    let enrolment = two_factor
        .enroll_totp(&alice, "Phone", "alice", TotpSettings::default())
        .await?;
    let code = enrolment.current_code(clock.now());
    let confirmed = two_factor
        .confirm_device(&alice, &enrolment.device.id, &code)
        .await?;

    note("# issue backup codes (a factor change: the caller just verified with a code)");
    let fresh = Caller::verified(&confirmed.verification);
    let backup = two_factor.generate_backup_codes(&fresh).await?;

    let app = app(two_factor.clone());
    note("# log in (the first factor is the application's; the session start is an event)");
    let (_, mut token) = post_to(&app, "/login", None, "alice").await?;

    note("# verify with the app's next code");
    clock.advance(Duration::from_secs(30));
    let code = enrolment.current_code(clock.now());
    let (status, body) = post_to(&app, "/verify", Some(&token), &code).await?;
    note(&format!("  -> {status}"));
    if status == StatusCode::OK {
        token = body; // the session's new id
    }

    note("# a wrong code, then an immediate retry, which is throttled");
    clock.advance(Duration::from_secs(30));
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..2 {
        let (status, body) = post_to(&app, "/verify", Some(&token), wrong).await?;
        note(&format!("  -> {status} {body}"));
    }

    note("# a backup code, once the delay is over");
    clock.advance(Duration::from_secs(5));
    let backup_code = backup.codes.iter().next().ok_or("no backup code")?;
    let (status, body) = post_to(&app, "/verify", Some(&token), backup_code).await?;
    note(&format!("  -> {status}"));
    if status == StatusCode::OK {
        token = body;
    }

    note("# log out");
    let (status, _) = post_to(&app, "/logout", Some(&token), "").await?;
    note(&format!("  -> {status}"));

    // Dropping the last handles on the bus closes it; the printer drains what is buffered
    // and stops.
    drop((app, two_factor));
    Ok(tokio::time::timeout(Duration::from_secs(5), printer).await??)
}
