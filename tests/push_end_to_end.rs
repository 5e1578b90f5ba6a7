//! Push approvals end to end, as separate processes: the demo server (`examples/demo.rs`) on a
//! private Redis, sending pushes to the phone simulator (`examples/phone.rs`), which enrols
//! itself through the API and answers signed; a browser logs in and the phone approves.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::http::{CookieJar, RawResponse, send};
use common::redis_server::{RedisServer, free_port};

/// An example binary that `cargo test` built next to this test's.
fn example(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().expect("test binary path");
    dir.pop(); // deps/
    dir.pop(); // debug/ (or release/)
    let binary = dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "{} not found: build the examples first",
        binary.display()
    );
    binary
}

/// A running example; killed when dropped. Its standard output is kept, line by line.
struct Process {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Process {
    fn start(name: &str, args: &[&str]) -> Process {
        let mut child = Command::new(example(name))
            .args(args)
            .env_remove("REDIS_URL")
            .env_remove("REDIS_CLUSTER")
            .env_remove("TOWER_OTP_SECRET")
            .env_remove("TOWER_OTP_PUSH_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let kept = lines.clone();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                kept.lock().unwrap().push(line);
            }
        });
        Process { child, lines }
    }

    /// The first line starting with `prefix`, waiting up to `patience` for it.
    fn line(&mut self, prefix: &str, patience: Duration) -> String {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(line) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.starts_with(prefix))
            {
                return line.clone();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "exited ({status}) before `{prefix}`: {:?}",
                    self.lines.lock().unwrap()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no `{prefix}` in {:?}",
                self.lines.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn json_lines(&self) -> Vec<Value> {
        let lines = self.lines.lock().unwrap();
        lines
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A browser on the demo: cookies kept between requests.
struct Browser {
    addr: SocketAddr,
    jar: CookieJar,
}

impl Browser {
    async fn call(&mut self, method: &str, path: &str, body: Option<Value>) -> RawResponse {
        let cookie = self.jar.header().unwrap_or_default();
        let mut headers = vec![("content-type", "application/json")];
        if !cookie.is_empty() {
            headers.push(("cookie", cookie.as_str()));
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let response = send(self.addr, method, path, &headers, &body).await;
        for set_cookie in response.headers_named("set-cookie") {
            self.jar.apply(set_cookie);
        }
        response
    }

    /// Logs alice in and asks her phone: the approval's id and number.
    async fn login_and_push(&mut self) -> (String, u8) {
        let login = self
            .call(
                "POST",
                "/login",
                Some(json!({"username": "alice", "password": "password"})),
            )
            .await;
        assert_eq!(login.status, 200);
        let status = self.call("GET", "/2fa/status", None).await.json();
        let devices = status["devices"].as_array().unwrap();
        let phone = devices
            .iter()
            .find(|d| d["kind"] == "push")
            .expect("the phone enrolled");
        let requested = self
            .call(
                "POST",
                "/2fa/challenges",
                Some(json!({"device_id": phone["id"]})),
            )
            .await;
        assert_eq!(requested.status, 200, "{:?}", requested.json());
        let requested = requested.json();
        (
            requested["uuid"].as_str().unwrap().to_owned(),
            requested["number"].as_u64().unwrap() as u8,
        )
    }
}

/// Two distinct free loopback ports.
fn two_ports() -> (u16, u16) {
    loop {
        let (a, b) = (free_port(), free_port());
        if a != b {
            return (a, b);
        }
    }
}

/// Tells the phone the number the login shows, as its user would tap it.
async fn tap(phone: SocketAddr, id: &str, number: u8) -> Value {
    let body = json!({"approval_id": id, "number": number}).to_string();
    let reply = send(
        phone,
        "POST",
        "/tap",
        &[("content-type", "application/json")],
        &body,
    )
    .await;
    reply.json()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_phone_approves_a_login_on_redis_with_the_right_number_only() {
    let redis = RedisServer::start();
    let (demo_port, phone_port) = two_ports();
    let demo_addr: SocketAddr = format!("127.0.0.1:{demo_port}").parse().unwrap();
    let phone_addr: SocketAddr = format!("127.0.0.1:{phone_port}").parse().unwrap();
    let demo_url = format!("http://{demo_addr}");
    let push_url = format!("http://{phone_addr}/push");
    let mut phone = Process::start(
        "phone",
        &[
            "--demo",
            &demo_url,
            "--listen",
            &phone_addr.to_string(),
            "--answer",
            "approve",
        ],
    );
    phone.line("listening on ", Duration::from_secs(20));
    let demo = Process::start(
        "demo",
        &[
            "--addr",
            &demo_addr.to_string(),
            "--redis-url",
            &redis.url(),
            "--push-url",
            &push_url,
        ],
    );
    // The phone logs in as alice, adds itself, approves its own enrolment and confirms it.
    let enrolled = phone.line("enrolled ", Duration::from_secs(60));
    let device = enrolled.trim_start_matches("enrolled ").to_owned();

    // A login, approved on the phone with the number the login shows.
    let mut browser = Browser {
        addr: demo_addr,
        jar: CookieJar::default(),
    };
    let (id, number) = browser.login_and_push().await;
    let push = phone.line(&format!("push {id} choices "), Duration::from_secs(10));
    let choices: Vec<u8> = push
        .split(' ')
        .skip(3)
        .take(3)
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(choices.contains(&number), "{push}");
    assert!(
        push.contains("127.0.0.1") || push.contains("an unknown address"),
        "{push}"
    );
    assert_eq!(browser.call("GET", "/admin", None).await.status, 403);
    let pending = browser
        .call("GET", &format!("/2fa/approvals/{id}"), None)
        .await
        .json();
    assert_eq!(pending["status"], "pending");
    assert_eq!(tap(phone_addr, &id, number).await["status"], "approved");
    let used = browser
        .call("GET", &format!("/2fa/approvals/{id}?wait=10"), None)
        .await
        .json();
    assert_eq!(
        (used["status"].as_str(), used["verified"].as_bool()),
        (Some("used"), Some(true)),
        "{used}"
    );
    let admin = browser.call("GET", "/admin", None).await;
    assert_eq!(admin.status, 200);
    assert_eq!(admin.json()["verified_by"], "push");

    // Another login: the phone taps another number, which denies it.
    let mut other = Browser {
        addr: demo_addr,
        jar: CookieJar::default(),
    };
    let (id, number) = other.login_and_push().await;
    let push = phone.line(&format!("push {id} choices "), Duration::from_secs(10));
    let wrong: u8 = push
        .split(' ')
        .skip(3)
        .take(3)
        .map(|n| n.parse().unwrap())
        .find(|n| *n != number)
        .unwrap();
    assert_eq!(tap(phone_addr, &id, wrong).await["status"], "wrong_number");
    let denied = other
        .call("GET", &format!("/2fa/approvals/{id}?wait=5"), None)
        .await
        .json();
    assert_eq!(
        (denied["status"].as_str(), denied["verified"].as_bool()),
        (Some("denied"), Some(false)),
        "{denied}"
    );
    assert_eq!(other.call("GET", "/admin", None).await.status, 403);

    // The demo's events tell the story, without the numbers or the approval ids.
    let deadline = Instant::now() + Duration::from_secs(5);
    let events = loop {
        let events = demo.json_lines();
        if events.iter().any(|e| e["event"] == "approval_denied") || Instant::now() > deadline {
            break events;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let count = |name: &str| events.iter().filter(|e| e["event"] == name).count();
    assert_eq!(count("approval_requested"), 3, "{events:?}");
    assert_eq!(count("approval_approved"), 2, "{events:?}");
    assert_eq!(count("device_confirmed"), 1, "{events:?}");
    let denial = events
        .iter()
        .find(|e| e["event"] == "approval_denied")
        .unwrap();
    assert_eq!(denial["reason"], "wrong_number");
    assert_eq!(denial["device"]["id"], device.as_str());
    for event in events
        .iter()
        .filter(|e| e["event"].as_str().unwrap_or("").starts_with("approval_"))
    {
        let text = event.to_string();
        assert!(
            event.get("number").is_none() && !text.contains(&id),
            "{text}"
        );
    }
}
