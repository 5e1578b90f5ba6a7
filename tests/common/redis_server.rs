//! Private `redis-server` processes for tests: a free loopback port, a temporary directory,
//! no persistence. A server stops when its handle is dropped, and a watchdog stops it when the
//! test process exits (servers shared through a `static` are never dropped).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const INSTALL_HINT: &str = "redis-server was not found on PATH. The Redis tests start their own private \
     redis-server; install it (Debian: `apt-get install redis-server`) or run `scripts/test`, \
     which installs it.";

/// A running private redis-server.
pub struct RedisServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts a standalone server on a free loopback port.
    pub fn start() -> RedisServer {
        Self::start_with(free_port, &[])
    }

    /// Starts a server on a port chosen by `pick_port`, with extra arguments.
    pub fn start_with(pick_port: fn() -> u16, extra: &[&str]) -> RedisServer {
        require_binary("redis-server");
        for _ in 0..20 {
            let port = pick_port();
            let dir = tempfile::tempdir().expect("temporary directory for redis-server");
            let mut child = spawn(port, dir.path(), extra);
            if wait_until_ready(port, &mut child) {
                watch(child.id(), dir.path());
                return RedisServer {
                    child,
                    port,
                    _dir: dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("could not start redis-server on a free loopback port after 20 attempts");
    }

    /// The port it listens on (loopback only).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Sends one inline command and returns the raw reply.
    pub fn command(&self, command: &str) -> String {
        raw_command(self.port, command).unwrap_or_else(|e| panic!("{command}: {e}"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Panics with install instructions if `binary` is not on PATH.
pub fn require_binary(binary: &str) {
    let found = Command::new(binary)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(found, "{INSTALL_HINT} (missing: {binary})");
}

/// A port that was free on 127.0.0.1 a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

fn spawn(port: u16, dir: &Path, extra: &[&str]) -> Child {
    Command::new("redis-server")
        .args(["--port", &port.to_string()])
        .args(["--bind", "127.0.0.1"])
        .args(["--dir", dir.to_str().expect("utf-8 temp path")])
        .args(["--save", ""])
        .args(["--appendonly", "no"])
        .args(["--daemonize", "no"])
        .args(["--logfile", ""])
        .args(["--loglevel", "warning"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{INSTALL_HINT} ({e})"))
}

fn wait_until_ready(port: u16, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false; // exited: most likely the port was taken meanwhile
        }
        if raw_command(port, "PING").is_ok_and(|reply| reply.starts_with("+PONG")) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Kills `pid` and removes `dir` once this test process has exited.
fn watch(pid: u32, dir: &Path) {
    let script = format!(
        "while kill -0 {parent} 2>/dev/null; do sleep 0.5; done; kill {pid} 2>/dev/null; rm -rf '{dir}'",
        parent = std::process::id(),
        dir = dir.display()
    );
    let _ = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

/// Sends one inline command over a new connection and reads the reply.
pub fn raw_command(port: u16, command: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(
        &SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into(),
        Duration::from_secs(1),
    )?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(format!("{command}\r\n").as_bytes())?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf)?;
        reply.extend_from_slice(&buf[..n]);
        if n == 0 || reply_complete(&reply) {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

/// Whether a RESP reply to an inline command is complete (simple, error, integer or bulk).
fn reply_complete(reply: &[u8]) -> bool {
    let text = String::from_utf8_lossy(reply);
    let Some(first_line_end) = text.find("\r\n") else {
        return false;
    };
    match text.as_bytes()[0] {
        b'$' => match text[1..first_line_end].parse::<i64>() {
            Ok(len) if len >= 0 => text.len() >= first_line_end + 2 + len as usize + 2,
            _ => true,
        },
        _ => true,
    }
}
