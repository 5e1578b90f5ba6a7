//! Security keys in a real browser: headless Chromium with the WebDriver virtual
//! authenticators of the W3C WebAuthn specification (which chromedriver implements), against
//! the demo server built with the feature `webauthn`. Register a key through the pages, sign
//! out, sign in and verify with it, remove it; a second authenticator that never registered
//! is refused.
//!
//! Needs Debian's `chromium` and `chromium-driver`, as `tests/browser.rs`.

mod common;

use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, Locator};
use serde_json::{Value, json};

use common::chromium::Chromedriver;
use common::demo::Demo;
use common::http::send;
use common::redis_server::RedisServer;

/// How long the whole journey may take.
const JOURNEY_LIMIT: Duration = Duration::from_secs(120);

/// A command of the WebDriver extension for virtual authenticators, sent raw.
#[derive(Debug)]
struct Authenticators {
    method: http::Method,
    /// Below `/session/{id}/webauthn/`.
    path: String,
    body: Option<Value>,
}

impl WebDriverCompatibleCommand for Authenticators {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        let session = session_id.unwrap_or_default();
        base_url.join(&format!("session/{session}/webauthn/{}", self.path))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (
            self.method.clone(),
            self.body.as_ref().map(Value::to_string),
        )
    }
}

/// The browser at the demo, with its virtual authenticators.
struct Visit {
    browser: Client,
    base: String,
    addr: std::net::SocketAddr,
}

impl Visit {
    async fn webauthn(&self, method: http::Method, path: String, body: Option<Value>) -> Value {
        let command = Authenticators { method, path, body };
        self.browser
            .issue_cmd(command)
            .await
            .unwrap_or_else(|e| panic!("a virtual authenticator command: {e}"))
    }

    /// Plugs in a new USB security key that verifies its user (a PIN, say); returns its id.
    async fn plug_in_key(&self) -> String {
        let options = json!({
            "protocol": "ctap2", "transport": "usb", "hasResidentKey": false,
            "hasUserVerification": true, "isUserConsenting": true, "isUserVerified": true,
        });
        let id = self
            .webauthn(http::Method::POST, "authenticator".into(), Some(options))
            .await;
        id.as_str().expect("an authenticator id").to_owned()
    }

    async fn unplug(&self, key: &str) {
        let path = format!("authenticator/{key}");
        self.webauthn(http::Method::DELETE, path, None).await;
    }

    /// The key's credentials (private keys included: it is a virtual one).
    async fn credentials(&self, key: &str) -> Vec<Value> {
        let path = format!("authenticator/{key}/credentials");
        let found = self.webauthn(http::Method::GET, path, None).await;
        found.as_array().cloned().unwrap_or_default()
    }

    async fn add_credential(&self, key: &str, credential: &Value) {
        let path = format!("authenticator/{key}/credential");
        let body = json!({
            "credentialId": credential["credentialId"],
            "isResidentCredential": false,
            "rpId": credential["rpId"],
            "privateKey": credential["privateKey"],
            "signCount": credential["signCount"],
        });
        self.webauthn(http::Method::POST, path, Some(body)).await;
    }

    async fn open(&self, path: &str) {
        let url = format!("{}{path}", self.base);
        self.browser
            .goto(&url)
            .await
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
    }

    async fn at(&self) -> String {
        let url = self.browser.current_url().await.unwrap();
        assert_eq!(
            url.host_str(),
            Some("localhost"),
            "stayed on the site: {url}"
        );
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    async fn element(&self, css: &str) -> fantoccini::elements::Element {
        match self.browser.find(Locator::Css(css)).await {
            Ok(element) => element,
            Err(error) => panic!("{css}: {error} on {}", self.at().await),
        }
    }

    async fn text_of(&self, css: &str) -> String {
        self.element(css).await.text().await.unwrap()
    }

    /// Clicks, and waits for the next page (the old document gone).
    async fn click(&self, css: &str) {
        let old_page = self.element("html").await;
        self.element(css).await.click().await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while old_page.tag_name().await.is_ok() {
            assert!(Instant::now() < deadline, "{css} led to no new page");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn sign_in(&self) {
        self.open("/login").await;
        for (field, text) in [("#username", "alice"), ("#password", "password")] {
            let input = self.element(field).await;
            input.clear().await.unwrap();
            input.send_keys(text).await.unwrap();
        }
        self.click("form[action='/login'] button").await;
    }

    async fn sign_out(&self) {
        self.open("/account/two-factor").await;
        self.click("#sign-out").await;
    }

    /// From the verification step: "Use your security key", then the key's button.
    async fn use_the_key(&self) {
        self.click("#use-security-key").await;
        assert!(
            self.at().await.ends_with("/verify/key"),
            "{}",
            self.at().await
        );
        self.element("#security-key-start")
            .await
            .click()
            .await
            .unwrap();
    }

    /// Waits until the page at `path` is shown.
    async fn wait_for(&self, path: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.at().await != path {
            if Instant::now() >= deadline {
                let error = match self.browser.find(Locator::Id("security-key-status")).await {
                    Ok(status) => status.attr("data-error").await.unwrap(),
                    Err(_) => None,
                };
                panic!(
                    "still at {} (browser error {error:?}): {}",
                    self.at().await,
                    self.text_of("main").await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The key page allows the pages' own script, and no inline one; the script is a file.
async fn the_key_page_allows_only_its_own_script(visit: &Visit) {
    visit
        .open("/account/two-factor/setup/method/webauthn")
        .await;
    let field = visit.element("input[name='csrf']").await;
    let token = field.attr("value").await.unwrap().unwrap();
    let cookies = visit.browser.get_all_cookies().await.unwrap();
    let cookie: Vec<String> = cookies
        .iter()
        .map(|c| format!("{}={}", c.name(), c.value()))
        .collect();
    let page = send(
        visit.addr,
        "POST",
        "/account/two-factor/setup/method/webauthn",
        &[
            ("cookie", cookie.join("; ").as_str()),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        &format!("csrf={token}&name=Key"),
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(page.body.matches("<script").count(), 1);
    // (minijinja writes the path's slashes as `&#x2f;`.)
    assert!(
        page.body.contains("webauthn.js\"></script>"),
        "{}",
        page.body
    );
    let script = send(
        visit.addr,
        "GET",
        "/account/two-factor/webauthn.js",
        &[],
        "",
    )
    .await;
    assert_eq!(script.status, 200);
    assert!(
        script
            .header("content-type")
            .unwrap()
            .starts_with("text/javascript")
    );
    // Every other page still allows no script at all.
    let profile = send(
        visit.addr,
        "GET",
        "/account/two-factor",
        &[("cookie", cookie.join("; ").as_str())],
        "",
    )
    .await;
    let csp = profile.header("content-security-policy").unwrap();
    assert!(!csp.contains("script-src"), "{csp}");
}

async fn journey(visit: &Visit) {
    // Sign in: no second factor yet, so the wizard. It offers a security key.
    let yubikey = visit.plug_in_key().await;
    visit.sign_in().await;
    the_key_page_allows_only_its_own_script(visit).await;
    visit.open("/account/two-factor/setup").await;
    visit.click("#method-webauthn").await;
    visit.click("main form button").await;
    assert!(visit.at().await.ends_with("/setup/method/webauthn"));
    let csp = visit.element("#security-key-form").await;
    assert_eq!(
        csp.attr("data-ceremony").await.unwrap().as_deref(),
        Some("register")
    );
    visit
        .element("#security-key-start")
        .await
        .click()
        .await
        .unwrap();
    visit.wait_for("/account/two-factor/setup/complete").await;

    // The profile lists it, used never yet.
    visit.open("/account/two-factor").await;
    let methods = visit.text_of("table.devices").await;
    assert!(methods.contains("Security key"), "{methods}");

    // Sign out, sign in: the verification step asks for the key, and the key verifies.
    visit.sign_out().await;
    visit.sign_in().await;
    let at = visit.at().await;
    assert!(at.starts_with("/account/two-factor/verify?"), "{at}");
    visit.use_the_key().await;
    visit.wait_for("/").await;
    visit.open("/account/two-factor").await;
    assert!(visit.text_of("#status").await.contains("on"));

    // Another key, which never registered, is refused: the page says so, and the session
    // stays unverified.
    let registered = visit.credentials(&yubikey).await;
    assert_eq!(registered.len(), 1);
    visit.unplug(&yubikey).await;
    let stranger = visit.plug_in_key().await;
    visit.sign_out().await;
    visit.sign_in().await;
    visit.use_the_key().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = visit.element("#security-key-status").await;
        if status.attr("hidden").await.unwrap().is_none() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stranger key was not refused"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    visit.open("/staff").await;
    assert!(
        visit.at().await.starts_with("/account/two-factor/verify?"),
        "not verified: {}",
        visit.at().await
    );

    // The registered key again (its credential moved to a new virtual key): it verifies,
    // and it is removed from the profile.
    visit.unplug(&stranger).await;
    let again = visit.plug_in_key().await;
    visit.add_credential(&again, &registered[0]).await;
    visit.open("/account/two-factor/verify?login=1").await;
    visit.use_the_key().await;
    visit.wait_for("/").await;
    visit.open("/account/two-factor").await;
    visit.click("form[action$='/remove'] button").await;
    visit.open("/account/two-factor").await;
    assert!(visit.text_of("#status").await.contains("off"));
}

async fn run(demo: &Demo) {
    let driver = Chromedriver::start();
    let profile = tempfile::tempdir().unwrap();
    let browser = driver.browser(profile.path()).await;
    let visit = Visit {
        browser,
        base: format!("http://localhost:{}", demo.addr.port()),
        addr: demo.addr,
    };
    let outcome = tokio::time::timeout(JOURNEY_LIMIT, journey(&visit)).await;
    let _ = visit.browser.clone().close().await;
    outcome.expect("the journey took too long");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_keys_in_chromium_on_the_memory_store() {
    run(&Demo::start(&[])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_keys_in_chromium_on_redis() {
    let redis = RedisServer::start();
    run(&Demo::start(&["--redis-url", &redis.url()])).await;
}
