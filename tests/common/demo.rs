//! The demo server (`examples/demo.rs`) as a child process on a free loopback port, for
//! black-box tests: its events and the codes its console sender prints are kept.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::redis_server::free_port;

/// The demo binary that `cargo test` built next to this test's.
pub fn demo_binary() -> PathBuf {
    let mut dir = std::env::current_exe().expect("test binary path");
    dir.pop(); // deps/
    dir.pop(); // debug/ (or release/)
    let binary = dir
        .join("examples")
        .join(format!("demo{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "{} not found: build the examples first (`cargo test` builds them)",
        binary.display()
    );
    binary
}

/// A running demo server; killed when dropped. Its standard output (the events) and
/// standard error (where its console sender writes out-of-band codes) are kept.
pub struct Demo {
    child: Child,
    pub addr: SocketAddr,
    events: Arc<Mutex<Vec<String>>>,
    messages: Arc<Mutex<Vec<String>>>,
}

/// Keeps every line `output` writes, from a thread of its own.
fn keep_lines(output: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let kept = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            kept.lock().unwrap().push(line);
        }
    });
    lines
}

impl Demo {
    pub fn start(args: &[&str]) -> Demo {
        for _ in 0..5 {
            let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let mut child = Command::new(demo_binary())
                .arg("--addr")
                .arg(addr.to_string())
                .args(args)
                .env_remove("REDIS_URL")
                .env_remove("REDIS_CLUSTER")
                .env_remove("TOWER_OTP_SECRET")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start the demo");
            let events = keep_lines(child.stdout.take().unwrap());
            let messages = keep_lines(child.stderr.take().unwrap());
            if wait_for(addr, &mut child) {
                return Demo {
                    child,
                    addr,
                    events,
                    messages,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("the demo server did not start");
    }

    /// The last code the console sender printed for `destination`, waiting a moment for the
    /// line to arrive.
    pub fn code_sent_to(&self, destination: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(code) = self.printed_code(destination) {
                return code;
            }
            assert!(Instant::now() < deadline, "no code sent to {destination}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last code printed for `destination` so far. Lines arrive in order: once a later
    /// code has been read, an earlier one would have been too.
    pub fn printed_code(&self, destination: &str) -> Option<String> {
        // "[tower-otp] email code for a@b.example (user alice): 123456 (valid 300 s)"
        let marker = format!(" code for {destination} (user ");
        let messages = self.messages.lock().unwrap();
        let line = messages.iter().rev().find(|line| line.contains(&marker))?;
        let code = line.split("): ").nth(1)?.split(' ').next()?;
        Some(code.to_owned())
    }

    pub fn events(&self) -> Vec<Value> {
        let lines = self.events.lock().unwrap().clone();
        lines
            .iter()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|_| panic!("not a JSON line: {line}"))
            })
            .collect()
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(addr: SocketAddr, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}
