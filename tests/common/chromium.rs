//! Headless Chromium driven through `chromedriver` with fantoccini, for the browser tests.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

use super::redis_server::free_port;

pub const INSTALL_HINT: &str = "The browser tests drive headless Chromium through chromedriver, \
     and `chromium` or `chromedriver` was not found on PATH. Install them (Debian: \
     `apt-get install chromium chromium-driver`) or run `scripts/test`, which installs them.";

/// A program on PATH, or the test fails saying how to install it.
pub fn require(program: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("{program} not found. {INSTALL_HINT}"))
}

/// A `chromedriver` on a free loopback port; stopped when dropped.
pub struct Chromedriver {
    child: Child,
    pub addr: SocketAddr,
}

impl Chromedriver {
    pub fn start() -> Chromedriver {
        let binary = require("chromedriver");
        for _ in 0..5 {
            let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let mut child = Command::new(&binary)
                .arg(format!("--port={}", addr.port()))
                .arg("--allowed-ips=127.0.0.1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start chromedriver");
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    return Chromedriver { child, addr };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("chromedriver did not start");
    }

    /// A new headless Chromium with a profile of its own.
    pub async fn browser(&self, profile: &std::path::Path) -> Client {
        let chromium = require("chromium");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1100,1200",
                         "--no-first-run", "--disable-extensions",
                         format!("--user-data-dir={}", profile.display())],
            }),
        );
        let connect = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://{}", self.addr))
            .await;
        connect.unwrap_or_else(|e| panic!("a Chromium session: {e}. {INSTALL_HINT}"))
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
