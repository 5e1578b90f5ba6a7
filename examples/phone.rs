//! Run with `cargo run --example phone --features push,webhook -- --demo http://127.0.0.1:3000`
//!
//! A phone simulator for push approvals: an app instance with an Ed25519 key of its own that
//! enrols itself with the demo (`examples/demo.rs`) through the JSON API, receives the pushes
//! the demo's webhook sender posts to it, shows them, and answers them signed.
//!
//! Try the whole flow locally, in two terminals:
//!
//! ```text
//! cargo run --example phone --features push,webhook -- --demo http://127.0.0.1:3000
//! cargo run --example demo --features push,webhook -- --push-url http://127.0.0.1:3001/push
//! ```
//!
//! The phone logs in as `alice` (a fresh user: push is her first device), adds itself as a
//! push device and approves its own enrolment (it knows that number: it asked). For a login,
//! it shows the three numbers and waits for the one the login page shows: type it on
//! standard input (or `d` to deny, `r` for "this wasn't me"), or `POST /tap
//! {"approval_id", "number"}` to it, as a test does.
//!
//! Options:
//!
//! * `--demo URL` — the demo (default `http://127.0.0.1:3000`)
//! * `--listen HOST:PORT` — where pushes arrive, `POST /push` (default `127.0.0.1:3001`;
//!   loopback only)
//! * `--user NAME`, `--password TEXT` — whose phone this is (default `alice`, `password`)
//! * `--answer approve|deny|report|wrong-number` — how to answer logins (default
//!   `approve`): `deny` and `report` answer as soon as a push arrives; `approve` chooses the
//!   number it is told, `wrong-number` another of the three
//!
//! Standard output gets one line per thing that happens, for people and tests alike:
//! `enrolled DEVICE`, `push APPROVAL choices A B C from ...`, `answered APPROVAL DECISION
//! NUMBER: STATUS`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Json, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use data_encoding::BASE64URL_NOPAD;
use ed25519_dalek::{Signer, SigningKey};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use tower_otp::clock::{Clock, SystemClock};
use tower_otp::push::{ApprovalId, Decision, answer_message};

/// How the phone answers logins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Approve,
    Deny,
    Report,
    WrongNumber,
}

struct Options {
    demo: String,
    listen: SocketAddr,
    user: String,
    password: String,
    mode: Mode,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        demo: "http://127.0.0.1:3000".into(),
        listen: "127.0.0.1:3001".parse().unwrap(),
        user: "alice".into(),
        password: "password".into(),
        mode: Mode::Approve,
    };
    let mut args = std::env::args().skip(1);
    while let Some(name) = args.next() {
        let mut value = || args.next().ok_or(format!("{name} needs a value"));
        match name.as_str() {
            "--demo" => options.demo = value()?.trim_end_matches('/').to_owned(),
            "--listen" => {
                options.listen = value()?
                    .parse()
                    .map_err(|_| "--listen takes HOST:PORT".to_owned())?;
            }
            "--user" => options.user = value()?,
            "--password" => options.password = value()?,
            "--answer" => {
                options.mode = match value()?.as_str() {
                    "approve" => Mode::Approve,
                    "deny" => Mode::Deny,
                    "report" => Mode::Report,
                    "wrong-number" => Mode::WrongNumber,
                    _ => return Err("--answer is approve, deny, report or wrong-number".into()),
                }
            }
            "--help" | "-h" => {
                return Err("usage: phone [--demo URL] [--listen HOST:PORT] [--user NAME] [--password TEXT] [--answer approve|deny|report|wrong-number]".into());
            }
            other => return Err(format!("unknown option {other}; try --help")),
        }
    }
    if !options.listen.ip().is_loopback() {
        return Err("--listen must be a loopback address".into());
    }
    Ok(options)
}

/// The app instance: its key, the demo it answers, and the pushes waiting for an answer.
#[derive(Clone)]
struct Phone {
    key: Arc<SigningKey>,
    demo: String,
    http: reqwest::Client,
    mode: Mode,
    /// Approval id → the numbers offered.
    waiting: Arc<Mutex<HashMap<String, [u8; 3]>>>,
    /// The last push received, which a number typed on standard input answers.
    latest: Arc<Mutex<Option<String>>>,
}

impl Phone {
    fn public_key(&self) -> String {
        BASE64URL_NOPAD.encode(self.key.verifying_key().as_bytes())
    }

    /// Signs and sends an answer; prints what the demo said.
    async fn answer(
        &self,
        id: &str,
        decision: Decision,
        number: Option<u8>,
    ) -> Result<String, String> {
        let (approval, _) = ApprovalId::parse(id).ok_or("not an approval id")?;
        let at = SystemClock.now();
        let signature = self
            .key
            .sign(&answer_message(&approval, decision, number, at));
        let body = json!({
            "decision": decision.as_str(),
            "number": number,
            "timestamp": at.as_millis(),
            "signature": BASE64URL_NOPAD.encode(&signature.to_bytes()),
        });
        let url = format!("{}/2fa/approvals/{id}/answer", self.demo);
        let reply = json_of(self.http.post(url).json(&body)).await?;
        let status = reply["status"]
            .as_str()
            .or(reply["error"].as_str())
            .unwrap_or("?")
            .to_owned();
        let shown = number.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
        println!("answered {id} {} {shown}: {status}", decision.as_str());
        self.waiting.lock().unwrap().remove(id);
        Ok(status)
    }

    /// Answers approval `id` the way the phone's mode says, given the login's `number`.
    async fn tap(&self, id: &str, number: u8) -> Result<String, String> {
        let choices = self
            .waiting
            .lock()
            .unwrap()
            .get(id)
            .copied()
            .ok_or("no such push is waiting")?;
        match self.mode {
            Mode::Approve => self.answer(id, Decision::Approve, Some(number)).await,
            Mode::WrongNumber => {
                let wrong = choices.into_iter().find(|c| *c != number).unwrap_or(number);
                self.answer(id, Decision::Approve, Some(wrong)).await
            }
            Mode::Deny => self.answer(id, Decision::Deny, None).await,
            Mode::Report => self.answer(id, Decision::Report, None).await,
        }
    }
}

/// `POST /push`: the demo's webhook body.
async fn receive(State(phone): State<Phone>, Json(push): Json<Value>) -> StatusCode {
    let (Some(id), Some(choices)) = (push["approval_id"].as_str(), push["choices"].as_array())
    else {
        return StatusCode::BAD_REQUEST;
    };
    let choices: Vec<u8> = choices
        .iter()
        .filter_map(|c| c.as_u64())
        .filter_map(|c| u8::try_from(c).ok())
        .collect();
    let Ok(choices) = <[u8; 3]>::try_from(choices) else {
        return StatusCode::BAD_REQUEST;
    };
    let context = &push["context"];
    println!(
        "push {id} choices {} {} {} from {} ({}) for {}",
        choices[0],
        choices[1],
        choices[2],
        context["client_addr"]
            .as_str()
            .unwrap_or("an unknown address"),
        context["user_agent"]
            .as_str()
            .unwrap_or("an unknown browser"),
        context["application"].as_str().unwrap_or("an application"),
    );
    phone.waiting.lock().unwrap().insert(id.to_owned(), choices);
    *phone.latest.lock().unwrap() = Some(id.to_owned());
    // A denial needs no number: answer at once, after the demo has had its reply.
    if matches!(phone.mode, Mode::Deny | Mode::Report) {
        let (phone, id) = (phone.clone(), id.to_owned());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if let Err(error) = phone.tap(&id, 0).await {
                println!("answer failed: {error}");
            }
        });
    } else {
        println!("type the number the login shows (d: deny, r: this wasn't me)");
    }
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct Tap {
    approval_id: String,
    number: u8,
}

/// `POST /tap`: the number the login shows, as a person would tap it.
async fn tap(State(phone): State<Phone>, Json(tap): Json<Tap>) -> (StatusCode, Json<Value>) {
    match phone.tap(&tap.approval_id, tap.number).await {
        Ok(status) => (StatusCode::OK, Json(json!({"status": status}))),
        Err(error) => (StatusCode::CONFLICT, Json(json!({"error": error}))),
    }
}

/// Logs in (retrying while the demo starts), adds this phone as a push device, approves its
/// own enrolment and confirms it by polling.
async fn enrol(phone: &Phone, options: &Options) -> Result<String, String> {
    let login = json!({"username": options.user, "password": options.password, "bearer": true});
    let deadline = Instant::now() + Duration::from_secs(60);
    let session: Value = loop {
        let reply = phone
            .http
            .post(format!("{}/login", phone.demo))
            .json(&login)
            .send()
            .await;
        match reply {
            Ok(reply) if reply.status().is_success() => {
                break reply.json().await.map_err(|e| e.to_string())?;
            }
            Ok(reply) => return Err(format!("login refused: HTTP {}", reply.status())),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(error) => return Err(format!("the demo cannot be reached: {error}")),
        }
    };
    let token = session["token"]
        .as_str()
        .ok_or("no session token")?
        .to_owned();
    let device_token = format!(
        "simulator-{}",
        BASE64URL_NOPAD.encode(&phone.key.verifying_key().as_bytes()[..6])
    );
    let device = json!({"method": "push", "name": "Phone simulator",
                        "config": {"token": device_token, "public_key": phone.public_key()}});
    let added = json_of(
        phone
            .http
            .post(format!("{}/2fa/devices", phone.demo))
            .bearer_auth(&token)
            .json(&device),
    )
    .await?;
    let (Some(device), Some(id), Some(number)) = (
        added["device"]["id"].as_str(),
        added["approval"]["id"].as_str(),
        added["approval"]["number"].as_u64(),
    ) else {
        return Err(format!("enrolment refused: {added}"));
    };
    let number = u8::try_from(number).map_err(|_| "not a two-digit number")?;
    phone.answer(id, Decision::Approve, Some(number)).await?;
    let url = format!("{}/2fa/approvals/{id}", phone.demo);
    let confirmed = json_of(phone.http.get(url).bearer_auth(&token)).await?;
    if confirmed["device"]["confirmed"] != true {
        return Err(format!("enrolment not confirmed: {confirmed}"));
    }
    Ok(device.to_owned())
}

/// Sends `request` to the demo and reads its JSON answer, whatever the status.
async fn json_of(request: reqwest::RequestBuilder) -> Result<Value, String> {
    let reply = request
        .send()
        .await
        .map_err(|e| format!("the demo cannot be reached: {e}"))?;
    reply
        .json()
        .await
        .map_err(|e| format!("the demo's answer is not JSON: {e}"))
}

/// Numbers typed on standard input answer the latest push.
async fn read_taps(phone: Phone) {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let Some(id) = phone.latest.lock().unwrap().clone() else {
            println!("no push is waiting");
            continue;
        };
        let done = match line.trim() {
            "d" => phone.answer(&id, Decision::Deny, None).await,
            "r" => phone.answer(&id, Decision::Report, None).await,
            number => match number.parse() {
                Ok(number) => phone.tap(&id, number).await,
                Err(_) => Err("type the two digits, d or r".into()),
            },
        };
        if let Err(error) = done {
            println!("{error}");
        }
    }
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
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("the operating system's random number generator");
    let phone = Phone {
        key: Arc::new(SigningKey::from_bytes(&seed)),
        demo: options.demo.clone(),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?,
        mode: options.mode,
        waiting: Arc::default(),
        latest: Arc::default(),
    };
    let app = Router::new()
        .route("/push", post(receive))
        .route("/tap", post(tap))
        .route("/", get(|| async { "tower-otp phone simulator\n" }))
        .with_state(phone.clone());
    let listener = tokio::net::TcpListener::bind(options.listen).await?;
    println!("listening on http://{}/push", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    match enrol(&phone, &options).await {
        Ok(device) => println!("enrolled {device}"),
        Err(error) => {
            println!("enrolment failed: {error}");
            std::process::exit(1);
        }
    }
    read_taps(phone).await;
    // Standard input closed (as under a test): keep answering pushes until stopped.
    std::future::pending::<()>().await;
    Ok(())
}
