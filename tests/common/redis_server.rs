//! Private `redis-server` processes for tests: a free loopback port, a temporary directory,
//! no persistence. A server stops when its handle is dropped, and a watchdog stops it when the
//! test process exits (servers shared through a `static` are never dropped). Three of them make
//! a private Redis Cluster ([`RedisCluster`]).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const INSTALL_HINT: &str = "redis-server or redis-cli was not found on PATH. The Redis tests start their own \
     private redis-server; install it (Debian: `apt-get install redis-server`) or run \
     `scripts/test`, which installs it.";

/// A running private redis-server.
pub struct RedisServer {
    child: Child,
    port: u16,
    extra: Vec<String>,
    dir: tempfile::TempDir,
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
                    extra: extra.iter().map(|arg| arg.to_string()).collect(),
                    dir,
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

    /// Sends one command and parses the reply.
    pub fn query(&self, args: &[&str]) -> Reply {
        query(self.port, args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    /// Stops the server (its data is gone: nothing is persisted).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        for _ in 0..50 {
            let mut child = spawn(self.port, self.dir.path(), &extra);
            if wait_until_ready(self.port, &mut child) {
                watch(child.id(), self.dir.path());
                self.child = child;
                return;
            }
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("could not restart redis-server on port {}", self.port);
    }

    /// Freezes the process (SIGSTOP): it keeps its connections but answers nothing.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused process run again (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Starts watching every command the server runs (`MONITOR`).
    pub fn monitor(&self) -> Monitor {
        Monitor::start(self.port)
    }
}

/// A `MONITOR` connection: counts the commands that clients send, not those that scripts run.
pub struct Monitor {
    port: u16,
    reader: BufReader<TcpStream>,
    markers: u64,
}

impl Monitor {
    fn start(port: u16) -> Monitor {
        let mut stream = TcpStream::connect(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
            .expect("connect for MONITOR");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(b"MONITOR\r\n").unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.starts_with("+OK"), "{line:?}");
        Monitor {
            port,
            reader,
            markers: 0,
        }
    }

    /// How many commands clients sent since the last call (or since the start), as the names
    /// of the commands in order. Scripts' own calls are not counted.
    pub fn client_commands(&mut self) -> Vec<String> {
        self.markers += 1;
        let marker = format!("monitor-marker-{}", self.markers);
        raw_command(self.port, &format!("ECHO {marker}")).expect("marker");
        let mut commands = Vec::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).expect("MONITOR line");
            if line.contains(&marker) {
                return commands;
            }
            // +1700000000.123456 [0 127.0.0.1:40000] "EVALSHA" "..." ... ; scripts show "lua".
            let Some((source, command)) = line.split_once("] ") else {
                continue;
            };
            if source.ends_with(" lua") {
                continue;
            }
            let name = command.split('"').nth(1).unwrap_or_default().to_uppercase();
            commands.push(name);
        }
    }
}

/// A private Redis Cluster of three masters (no replicas) on loopback, each node with its own
/// server, port and directory. Stopped when dropped, and by each node's watchdog.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three nodes, joins them with `redis-cli --cluster create` and waits until every
    /// node reports `cluster_state:ok`.
    pub fn start() -> RedisCluster {
        require_binary("redis-server");
        require_binary("redis-cli");
        let cluster_args = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "5000",
        ];
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| RedisServer::start_with(free_cluster_port, &cluster_args))
            .collect();
        let output = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(
                nodes
                    .iter()
                    .map(|node| format!("127.0.0.1:{}", node.port())),
            )
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{INSTALL_HINT} ({e})"));
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let cluster = RedisCluster { nodes };
        cluster.wait_until_ok();
        cluster
    }

    fn wait_until_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for node in &self.nodes {
            loop {
                let info = raw_command(node.port(), "CLUSTER INFO").unwrap_or_default();
                if info.contains("cluster_state:ok")
                    && info.contains("cluster_slots_ok:16384")
                    && info.contains("cluster_known_nodes:3")
                {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "cluster not ok on port {}: {info}",
                    node.port()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// `redis://127.0.0.1:PORT/` of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The nodes.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }
}

/// A port whose cluster bus port (port + 10000) is free as well. Both are taken below the
/// Linux ephemeral range (32768 and up), where the OS's own choices do not collide with them.
pub fn free_cluster_port() -> u16 {
    for _ in 0..1000 {
        let port = 10_000 + (random_u64() % 12_000) as u16;
        if [port, port + 10_000].iter().all(|&p| is_free(p)) {
            return port;
        }
    }
    panic!("no free port pair (port, port + 10000) on 127.0.0.1");
}

fn is_free(port: u16) -> bool {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// A random number from the standard library's per-process hash keys.
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// A key prefix no other test uses.
pub fn unique_prefix() -> String {
    format!("test-{:016x}", random_u64())
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
    let reply = exchange(port, format!("{command}\r\n").as_bytes())?;
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

/// Sends one command (arguments as given, binary-safe) and parses the reply.
pub fn query(port: u16, args: &[&str]) -> std::io::Result<Reply> {
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    let reply = exchange(port, request.as_bytes())?;
    parse_reply(&reply)
        .map(|(reply, _)| reply)
        .ok_or_else(|| std::io::Error::other("incomplete reply"))
}

/// Sends a request over a new connection and reads one whole reply.
fn exchange(port: u16, request: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(
        &SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into(),
        Duration::from_secs(1),
    )?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(request)?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf)?;
        reply.extend_from_slice(&buf[..n]);
        if n == 0 || parse_reply(&reply).is_some() {
            return Ok(reply);
        }
    }
}

/// A parsed RESP2 reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<String>),
    Array(Vec<Reply>),
}

impl Reply {
    /// The text of a simple or bulk string; panics otherwise.
    pub fn text(&self) -> &str {
        match self {
            Reply::Simple(text) | Reply::Bulk(Some(text)) => text,
            other => panic!("not a string reply: {other:?}"),
        }
    }

    /// The number of an integer reply; panics otherwise.
    pub fn int(&self) -> i64 {
        match self {
            Reply::Int(n) => *n,
            other => panic!("not an integer reply: {other:?}"),
        }
    }

    /// The strings of an array reply; panics otherwise.
    pub fn strings(&self) -> Vec<String> {
        match self {
            Reply::Array(items) => items.iter().map(|i| i.text().to_owned()).collect(),
            other => panic!("not an array reply: {other:?}"),
        }
    }
}

/// Parses one reply from the start of `bytes`; `None` if it is incomplete.
fn parse_reply(bytes: &[u8]) -> Option<(Reply, usize)> {
    let line_end = bytes.windows(2).position(|w| w == b"\r\n")?;
    let line = String::from_utf8_lossy(&bytes[1..line_end]).into_owned();
    let rest = line_end + 2;
    match bytes.first()? {
        b'+' => Some((Reply::Simple(line), rest)),
        b'-' => Some((Reply::Error(line), rest)),
        b':' => Some((Reply::Int(line.parse().ok()?), rest)),
        b'$' => {
            let Ok(len) = usize::try_from(line.parse::<i64>().ok()?) else {
                return Some((Reply::Bulk(None), rest));
            };
            let data = bytes.get(rest..rest + len)?;
            bytes.get(rest + len..rest + len + 2)?;
            let text = String::from_utf8_lossy(data).into_owned();
            Some((Reply::Bulk(Some(text)), rest + len + 2))
        }
        b'*' => {
            let Ok(count) = usize::try_from(line.parse::<i64>().ok()?) else {
                return Some((Reply::Array(Vec::new()), rest));
            };
            let mut items = Vec::with_capacity(count);
            let mut offset = rest;
            for _ in 0..count {
                let (item, used) = parse_reply(&bytes[offset..])?;
                items.push(item);
                offset += used;
            }
            Some((Reply::Array(items), offset))
        }
        _ => Some((Reply::Error(format!("unknown reply: {line}")), rest)),
    }
}
