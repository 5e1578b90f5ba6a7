//! Black-box runs of the demo server (`examples/demo.rs`): the binary is started on a free
//! loopback port and driven over HTTP — on the in-memory store, on a private Redis (two
//! instances sharing it), and on a private Redis Cluster.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tower_otp::otp::{Algorithm, Digits, OtpKey, Secret, TotpParams};

use common::demo::{Demo, demo_binary};
use common::http::{CookieJar, RawResponse, send};
use common::redis_server::{RedisCluster, RedisServer};

/// A browser: cookies kept between requests.
struct Browser {
    addr: SocketAddr,
    jar: CookieJar,
}

impl Browser {
    fn new(demo: &Demo) -> Self {
        Browser {
            addr: demo.addr,
            jar: CookieJar::default(),
        }
    }

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
}

fn totp_code(secret: &str) -> String {
    let key = OtpKey::new(
        Secret::from_base32(secret).unwrap(),
        Algorithm::Sha1,
        Digits::SIX,
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    key.hotp(TotpParams::default().time_step(now).unwrap())
        .reveal()
        .to_owned()
}

/// Waits into a fresh TOTP step, so that a code used next is not used up already.
async fn next_step() {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let left = 30_000 - (now.as_millis() % 30_000) as u64;
    tokio::time::sleep(Duration::from_millis(left + 50)).await;
}

/// The whole journey of the issue: login, enrol TOTP, confirm, verify, admin, backup codes,
/// logout-all.
async fn journey(demo: &Demo) {
    let mut alice = Browser::new(demo);
    let home = alice.call("GET", "/", None).await;
    assert_eq!(home.status, 200);
    assert_eq!(alice.call("GET", "/account", None).await.status, 401);
    let wrong = alice
        .call(
            "POST",
            "/login",
            Some(json!({"username": "alice", "password": "nope"})),
        )
        .await;
    assert_eq!(
        (wrong.status, wrong.json()["error"].as_str()),
        (401, Some("invalid_credentials"))
    );
    let login = alice
        .call(
            "POST",
            "/login",
            Some(json!({"username": "alice", "password": "password"})),
        )
        .await;
    assert_eq!(login.status, 200, "{}", login.body);
    assert_eq!(alice.call("GET", "/account", None).await.status, 200);
    let blocked = alice.call("GET", "/admin", None).await;
    assert_eq!(
        (blocked.status, blocked.json()["error"].as_str()),
        (403, Some("otp_setup_required"))
    );

    let enrolled = alice
        .call(
            "POST",
            "/2fa/devices?qr=svg",
            Some(json!({"method": "totp", "name": "Phone"})),
        )
        .await;
    assert_eq!(enrolled.status, 201, "{}", enrolled.body);
    assert_eq!(enrolled.header("cache-control"), Some("no-store"));
    let enrolled = enrolled.json();
    let id = enrolled["device"]["id"].as_str().unwrap().to_owned();
    let secret = enrolled["provisioning"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        enrolled["provisioning"]["qr_svg"]
            .as_str()
            .unwrap()
            .contains("<svg")
    );
    let confirm = alice
        .call(
            "POST",
            &format!("/2fa/devices/{id}/confirm"),
            Some(json!({"code": totp_code(&secret)})),
        )
        .await;
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    let admin = alice.call("GET", "/admin", None).await;
    assert_eq!(
        (admin.status, admin.json()["user"].as_str()),
        (200, Some("alice"))
    );

    let codes = alice.call("POST", "/2fa/backup-codes", None).await;
    assert_eq!(codes.status, 201, "{}", codes.body);
    let codes: Vec<String> = codes.json()["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().into())
        .collect();

    // A second browser: login, verify with a fresh code, then with a backup code elsewhere.
    next_step().await;
    let mut laptop = Browser::new(demo);
    laptop
        .call(
            "POST",
            "/login",
            Some(json!({"username": "alice", "password": "password"})),
        )
        .await;
    let blocked = laptop.call("GET", "/admin", None).await;
    assert_eq!(
        (blocked.status, blocked.json()["error"].as_str()),
        (403, Some("otp_required"))
    );
    let verified = laptop
        .call(
            "POST",
            "/2fa/verify",
            Some(json!({"code": totp_code(&secret)})),
        )
        .await;
    assert_eq!(verified.status, 200, "{}", verified.body);
    assert_eq!(laptop.call("GET", "/admin", None).await.status, 200);
    let mut tablet = Browser::new(demo);
    tablet
        .call(
            "POST",
            "/login",
            Some(json!({"username": "alice", "password": "password"})),
        )
        .await;
    let by_code = tablet
        .call("POST", "/2fa/verify", Some(json!({"code": codes[0]})))
        .await;
    assert_eq!(by_code.json()["backup_codes_remaining"], 9);

    // bob is no staff member, verified or not.
    let mut bob = Browser::new(demo);
    bob.call(
        "POST",
        "/login",
        Some(json!({"username": "bob", "password": "password"})),
    )
    .await;
    assert_eq!(bob.call("GET", "/admin", None).await.status, 403);

    let all = alice.call("POST", "/2fa/logout-all", None).await;
    assert_eq!(
        (all.status, all.json()["sessions"].as_u64()),
        (200, Some(3))
    );
    for browser in [&mut alice, &mut laptop, &mut tablet] {
        assert_eq!(browser.call("GET", "/admin", None).await.status, 401);
    }
    assert_eq!(bob.call("GET", "/account", None).await.status, 200);
}

fn event_names(demo: &Demo) -> Vec<String> {
    demo.events()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_on_the_memory_store() {
    let demo = Demo::start(&[]);
    journey(&demo).await;
    // Events reach standard output as JSON lines, with the request they came from.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let names = event_names(&demo);
    for expected in [
        "device_added",
        "device_confirmed",
        "backup_codes_regenerated",
        "user_verified",
        "backup_code_used",
        "logged_out_everywhere",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    let added = demo
        .events()
        .into_iter()
        .find(|e| e["event"] == "device_added")
        .unwrap();
    assert_eq!(added["request"]["path"], "/2fa/devices");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_on_redis_two_instances_share_state() {
    let redis = RedisServer::start();
    let secret = "a shared demo secret of at least 32 bytes";
    let first = Demo::start(&["--redis-url", &redis.url(), "--secret", secret]);
    let second = Demo::start(&["--redis-url", &redis.url(), "--secret", secret]);
    journey(&first).await;
    // A session made on one instance works on the other.
    let mut browser = Browser::new(&first);
    browser
        .call(
            "POST",
            "/login",
            Some(json!({"username": "bob", "password": "password"})),
        )
        .await;
    browser.addr = second.addr;
    let account = browser.call("GET", "/account", None).await;
    assert_eq!(
        (account.status, account.json()["user"].as_str()),
        (200, Some("bob"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_on_a_redis_cluster() {
    let cluster = RedisCluster::start();
    let urls = cluster.urls().join(",");
    let demo = Demo::start(&[
        "--redis-cluster",
        &urls,
        "--secret",
        "the cluster's secret, 32 bytes or more",
    ]);
    journey(&demo).await;
}

#[test]
fn the_demo_refuses_a_short_secret_and_says_why() {
    let mut child = Command::new(demo_binary())
        .args(["--addr", "127.0.0.1:0", "--secret", "abc"])
        .env_remove("TOWER_OTP_SECRET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the demo");
    // A demo that took the secret would listen forever: it must be gone within moments.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the demo started with a 3-byte secret");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    // Its few lines fit in the pipe, and end there once it is gone.
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("the master key must be at least 32 bytes; got 3"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_hands_the_session_token_only_to_bearer_clients() {
    let demo = Demo::start(&[]);
    let mut browser = Browser::new(&demo);
    let login = browser
        .call(
            "POST",
            "/login",
            Some(json!({"username": "bob", "password": "password"})),
        )
        .await;
    assert_eq!(login.status, 200, "{}", login.body);
    assert_eq!(login.json(), json!({"user": "bob"}));
    assert_eq!(browser.call("GET", "/account", None).await.status, 200);

    let login = send(
        demo.addr,
        "POST",
        "/login",
        &[("content-type", "application/json")],
        &json!({"username": "bob", "password": "password", "bearer": true}).to_string(),
    )
    .await;
    let token = login.json()["token"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer {token}");
    let account = send(
        demo.addr,
        "GET",
        "/account",
        &[("authorization", bearer.as_str())],
        "",
    )
    .await;
    assert_eq!(
        (account.status, account.json()["user"].as_str()),
        (200, Some("bob"))
    );
}

#[test]
fn bad_options_are_refused_with_usage() {
    let output = Command::new(demo_binary()).arg("--bogus").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown option --bogus"));
    let output = Command::new(demo_binary())
        .args(["--addr", "not-an-address"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

// ----- attacks on the factor rule, from outside -------------------------------------------------

const ATTACKER_EMAIL: &str = "attacker@evil.example";
const ATTACKER_PHONE: &str = "+15550100999";

impl Browser {
    async fn login(&mut self, user: &str) {
        let login = self
            .call(
                "POST",
                "/login",
                Some(json!({"username": user, "password": "password"})),
            )
            .await;
        assert_eq!(login.status, 200, "{}", login.body);
    }
}

/// What a request got: the status and the error code.
fn outcome(response: &RawResponse) -> (u16, String) {
    let error = serde_json::from_str::<Value>(&response.body)
        .ok()
        .and_then(|body| body["error"].as_str().map(str::to_owned));
    (response.status, error.unwrap_or_default())
}

fn refused(status: u16, error: &str) -> (u16, String) {
    (status, error.to_owned())
}

/// Adds an authenticator app and confirms it; returns its id and secret.
async fn enrol_app(browser: &mut Browser, name: &str) -> (String, String) {
    let added = browser
        .call(
            "POST",
            "/2fa/devices",
            Some(json!({"method": "totp", "name": name})),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.body);
    let added = added.json();
    let id = added["device"]["id"].as_str().unwrap().to_owned();
    let secret = added["provisioning"]["secret"].as_str().unwrap().to_owned();
    let confirmed = browser
        .call(
            "POST",
            &format!("/2fa/devices/{id}/confirm"),
            Some(json!({"code": totp_code(&secret)})),
        )
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    (id, secret)
}

/// alice has an authenticator app; an attacker who knows her password asks the confirmation
/// API to confirm an email address and a phone number of their own, answers the code, and
/// asks for a login code on the new device. Refused at the first step; nothing is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_adds_no_destination_of_an_attacker_who_knows_the_password() {
    let demo = Demo::start(&[]);
    let mut alice = Browser::new(&demo);
    alice.login("alice").await;
    enrol_app(&mut alice, "Phone").await;
    let mut attacker = Browser::new(&demo);
    attacker.login("alice").await;
    for (method, destination) in [("email", ATTACKER_EMAIL), ("sms", ATTACKER_PHONE)] {
        let requested = attacker
            .call(
                "POST",
                "/2fa/confirmations",
                Some(json!({"method": method, "state": {"destination": destination}})),
            )
            .await;
        let id = requested.json()["id"]
            .as_str()
            .map_or_else(|| "A".repeat(43), str::to_owned);
        let device = requested.json()["state"]["device_id"]
            .as_str()
            .map_or_else(|| "0".repeat(32), str::to_owned);
        let code = demo
            .printed_code(destination)
            .unwrap_or_else(|| "000000".into());
        let answered = attacker
            .call(
                "POST",
                &format!("/2fa/confirmations/{id}/confirm"),
                Some(json!({"data": {"code": code}})),
            )
            .await;
        let challenged = attacker
            .call(
                "POST",
                "/2fa/challenges",
                Some(json!({"device_id": device})),
            )
            .await;
        let verified = attacker
            .call(
                "POST",
                "/2fa/verify",
                Some(json!({"device_id": device, "code": code})),
            )
            .await;
        let admin = attacker.call("GET", "/admin", None).await;
        assert_eq!(
            [&requested, &answered, &challenged, &verified, &admin].map(outcome),
            [
                refused(403, "otp_required"),
                refused(404, "confirmation_not_found"),
                refused(404, "device_not_found"),
                refused(404, "device_not_found"),
                refused(403, "otp_required"),
            ],
            "{method}"
        );
    }
    // alice's own new address gets its code; by then any code for the attacker would have
    // been printed before it.
    let added = alice
        .call(
            "POST",
            "/2fa/devices",
            Some(json!({"method": "email", "name": "Mail", "config": {"destination": "alice@example.com"}})),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.body);
    demo.code_sent_to("alice@example.com");
    assert_eq!(demo.printed_code(ATTACKER_EMAIL), None);
    assert_eq!(demo.printed_code(ATTACKER_PHONE), None);
    let status = attacker.call("GET", "/2fa/status", None).await.json();
    assert_eq!(status["verified"], false);
}

/// Before alice has a factor, an attacker who knows her password adds an app and an email
/// address of their own. alice enrols her phone. The attacker logs in again: the planted
/// devices cannot be confirmed or used, alice's phone cannot be removed, /admin stays shut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_planted_in_the_demo_before_enrolment_never_becomes_a_factor() {
    let demo = Demo::start(&[]);
    let mut planter = Browser::new(&demo);
    planter.login("alice").await;
    let planted = planter
        .call(
            "POST",
            "/2fa/devices",
            Some(json!({"method": "totp", "name": "Phone 2"})),
        )
        .await;
    assert_eq!(planted.status, 201, "{}", planted.body);
    let planted = planted.json();
    let planted_id = planted["device"]["id"].as_str().unwrap().to_owned();
    let planted_secret = planted["provisioning"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let mail = planter
        .call(
            "POST",
            "/2fa/devices",
            Some(json!({"method": "email", "name": "Mail", "config": {"destination": ATTACKER_EMAIL}})),
        )
        .await;
    assert_eq!(mail.status, 201, "{}", mail.body);
    let mail_id = mail.json()["device"]["id"].as_str().unwrap().to_owned();
    let mail_code = demo.code_sent_to(ATTACKER_EMAIL);

    let mut alice = Browser::new(&demo);
    alice.login("alice").await;
    let (phone, _) = enrol_app(&mut alice, "Phone").await;

    let mut attacker = Browser::new(&demo);
    attacker.login("alice").await;
    let token = totp_code(&planted_secret);
    for (id, code) in [(&planted_id, &token), (&mail_id, &mail_code)] {
        let confirm = attacker
            .call(
                "POST",
                &format!("/2fa/devices/{id}/confirm"),
                Some(json!({"code": code})),
            )
            .await;
        // Gone (404) or refused to a password alone (403): either way not confirmed.
        assert!(
            matches!(
                outcome(&confirm),
                (404, ref e) | (403, ref e) if e == "device_not_found" || e == "otp_required"
            ),
            "{}",
            confirm.body
        );
    }
    let with_planted = attacker
        .call(
            "POST",
            "/2fa/verify",
            Some(json!({"device_id": planted_id, "code": token})),
        )
        .await;
    let with_any = attacker
        .call("POST", "/2fa/verify", Some(json!({"code": token})))
        .await;
    let remove_phone = attacker
        .call("DELETE", &format!("/2fa/devices/{phone}"), Some(json!({})))
        .await;
    let admin = attacker.call("GET", "/admin", None).await;
    assert_eq!(
        [&with_planted, &with_any, &remove_phone, &admin].map(outcome),
        [
            refused(404, "device_not_found"),
            refused(401, "invalid_code"),
            refused(403, "otp_required"),
            refused(403, "otp_required"),
        ]
    );
    assert_eq!(
        attacker.call("GET", "/2fa/status", None).await.json()["verified"],
        false
    );
    // alice's first confirmation removed everything planted; her phone is all there is.
    let devices = alice.call("GET", "/2fa/devices", None).await.json();
    let ids: Vec<&str> = devices["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [phone.as_str()]);
}

// ----- the README's flow ---------------------------------------------------------------------

/// A request of the README's curl flow, with the answer its comment expects.
#[derive(Debug)]
struct Curl {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
    status: u16,
    /// The answer's JSON body (when the comment shows one) or its error code.
    expected: Option<String>,
}

#[derive(Debug)]
enum Step {
    Curl(Curl),
    Sleep(Duration),
}

/// A shell line's words, single quotes honoured, and its trailing `#` comment.
fn shell_words(line: &str) -> (Vec<String>, Option<&str>) {
    let (mut words, mut word, mut in_word, mut quoted) = (Vec::new(), String::new(), false, false);
    for (at, c) in line.char_indices() {
        match c {
            '\'' => (quoted, in_word) = (!quoted, true),
            '#' if !quoted && !in_word => return (words, Some(line[at + 1..].trim())),
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    (words, None)
}

fn parse_curl(words: Vec<String>, comment: Option<&str>) -> Curl {
    let mut method = None;
    let mut path = None;
    let mut headers = Vec::new();
    let mut body = None;
    let mut args = words.into_iter().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            // Both name the cookie jar, which the test keeps itself.
            "-c" | "-b" => {
                args.next();
            }
            "-X" => method = args.next(),
            "-H" => {
                let header = args.next().unwrap();
                let (name, value) = header.split_once(": ").unwrap();
                headers.push((name.to_owned(), value.to_owned()));
            }
            "-d" => body = args.next(),
            url if url.starts_with("127.0.0.1:3000/") => {
                path = Some(url["127.0.0.1:3000".len()..].to_owned());
            }
            other => panic!("the README's flow uses `{other}`, which this test does not know"),
        }
    }
    let comment = comment.expect("each request of the README's flow says what it answers");
    let (status, expected) = comment.split_once(' ').unwrap_or((comment, ""));
    Curl {
        method: method.unwrap_or_else(|| if body.is_some() { "POST" } else { "GET" }.into()),
        path: path.expect("a URL"),
        headers,
        body: body.unwrap_or_default(),
        status: status.parse().expect("a status first in the comment"),
        expected: (!expected.is_empty()).then(|| expected.to_owned()),
    }
}

/// The steps of the README's `sh` block that runs the flow.
fn readme_flow() -> Vec<Step> {
    let readme = include_str!("../README.md");
    let block = readme
        .split("```sh\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .find(|block| block.contains("/2fa/verify"))
        .expect("the README's curl flow");
    block
        .replace("\\\n", " ")
        .lines()
        .map(shell_words)
        .filter(|(words, _)| !words.is_empty())
        .map(|(words, comment)| match words[0].as_str() {
            "curl" => Step::Curl(parse_curl(words, comment)),
            "sleep" => Step::Sleep(Duration::from_secs(words[1].parse().unwrap())),
            other => panic!("the README's flow runs `{other}`, which this test does not know"),
        })
        .collect()
}

/// The current TOTP time step.
fn current_step() -> u64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    TotpParams::default().time_step(now.as_secs()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_flow_runs_against_the_demo_as_written() {
    let demo = Demo::start(&[]);
    let steps = readme_flow();
    assert!(steps.len() >= 15, "{steps:?}");
    let mut jar = CookieJar::default();
    let (mut device, mut secret) = (String::new(), String::new());
    let mut used_step = None;
    for step in steps {
        let curl = match step {
            Step::Sleep(pause) => {
                tokio::time::sleep(pause).await;
                continue;
            }
            Step::Curl(curl) => curl,
        };
        let path = curl.path.replace("/ID/", &format!("/{device}/"));
        let mut body = curl.body.clone();
        if body.contains("\"code\"") {
            // A code works once: a new one needs a new time step.
            if used_step == Some(current_step()) || totp_code(&secret) == "000000" {
                next_step().await;
            }
            body = body.replace("123456", &totp_code(&secret));
        }
        let cookie = jar.header().unwrap_or_default();
        let mut headers: Vec<(&str, &str)> = curl
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        if !cookie.is_empty() {
            headers.push(("cookie", &cookie));
        }
        let response = send(demo.addr, &curl.method, &path, &headers, &body).await;
        for set_cookie in response.headers_named("set-cookie") {
            jar.apply(set_cookie);
        }
        assert_eq!(response.status, curl.status, "{curl:?}: {}", response.body);
        match curl.expected.as_deref() {
            Some(json) if json.starts_with('{') => {
                assert_eq!(
                    response.json(),
                    serde_json::from_str::<Value>(json).unwrap()
                )
            }
            Some(error) => assert_eq!(response.json()["error"], error, "{curl:?}"),
            None => {}
        }
        if body.contains("\"code\"") && response.status == 200 {
            used_step = Some(current_step());
        }
        if path == "/2fa/devices" && response.status == 201 {
            // Where the README says they are.
            let enrolled = response.json();
            device = enrolled["device"]["id"].as_str().unwrap().to_owned();
            secret = enrolled["provisioning"]["secret"]
                .as_str()
                .unwrap()
                .to_owned();
            let uri = enrolled["provisioning"]["otpauth_uri"].as_str().unwrap();
            assert!(uri.contains(&format!("secret={secret}")), "{uri}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_with_a_local_cache_sees_a_logout_made_on_another_instance() {
    let redis = RedisServer::start();
    let secret = "a shared demo secret of at least 32 bytes";
    let args = [
        "--redis-url",
        &redis.url(),
        "--secret",
        secret,
        "--local-cache",
    ];
    let (first, second) = (Demo::start(&args), Demo::start(&args));
    let mut browser = Browser::new(&first);
    let login = json!({"username": "bob", "password": "password"});
    browser.call("POST", "/login", Some(login)).await;
    browser.addr = second.addr;
    // Read twice on the second instance: the second read is served from its cache.
    for _ in 0..2 {
        assert_eq!(browser.call("GET", "/account", None).await.status, 200);
    }
    let cookie = browser.jar.clone();
    browser.addr = first.addr;
    let all = browser.call("POST", "/2fa/logout-all", None).await;
    assert_eq!(all.status, 200, "{}", all.body);
    let mut stale = Browser {
        addr: second.addr,
        jar: cookie,
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(stale.call("GET", "/account", None).await.status, 401);
}
