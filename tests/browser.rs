//! The pages in a real browser: headless Chromium, driven through `chromedriver` with
//! fantoccini, against the demo server (`examples/demo.rs`) on the memory store and on a
//! private Redis. One journey: log in, set up an app, save backup codes, the admin area,
//! sign out, verify and remember the browser, revoke it, a backup code, disable; and the
//! refusals: a form without its CSRF token, letters in a code, an off-site `next`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/test` installs them): without
//! them the test fails, saying how to install them. A screenshot of each page goes to
//! `target/ui-screenshots/`.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fantoccini::{Client, Locator};
use tower_otp::otp::{Algorithm, Digits, OtpKey, Secret};

use common::chromium::Chromedriver;
use common::demo::Demo;
use common::http::send;
use common::redis_server::RedisServer;

/// How long one journey may take, waits for fresh TOTP steps included.
const JOURNEY_LIMIT: Duration = Duration::from_secs(240);

/// Screenshots of each page, numbered in journey order.
struct Screenshots {
    dir: PathBuf,
    prefix: &'static str,
    count: u32,
}

impl Screenshots {
    fn new(prefix: &'static str) -> Self {
        // target/debug/deps/browser-… → target/ui-screenshots
        let mut dir = std::env::current_exe().unwrap();
        dir.pop();
        dir.pop();
        dir.pop();
        let dir = dir.join("ui-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        Screenshots {
            dir,
            prefix,
            count: 0,
        }
    }

    async fn take(&mut self, browser: &Client, name: &str) {
        self.count += 1;
        let png = browser.screenshot().await.expect("a screenshot");
        let file = self
            .dir
            .join(format!("{}-{:02}-{name}.png", self.prefix, self.count));
        std::fs::write(file, png).unwrap();
    }
}

/// The person at the keyboard: a browser, the demo's address, their authenticator app.
struct Person {
    browser: Client,
    base: String,
    addr: SocketAddr,
    app: Option<OtpKey>,
    last_step: u64,
    shots: Screenshots,
}

impl Person {
    async fn open(&self, path: &str) {
        self.browser
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
    }

    /// The current URL's path and query.
    async fn at(&self) -> String {
        let url = self.browser.current_url().await.unwrap();
        assert_eq!(
            url.host_str(),
            Some("127.0.0.1"),
            "stayed on the site: {url}"
        );
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    async fn text_of(&self, css: &str) -> String {
        self.browser
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .text()
            .await
            .unwrap()
    }

    /// The element `css` finds, or a failure that says on which page it was missing.
    async fn element(&self, css: &str) -> fantoccini::elements::Element {
        match self.browser.find(Locator::Css(css)).await {
            Ok(element) => element,
            Err(error) => panic!("{css}: {error} on {}", self.at().await),
        }
    }

    /// Clicks a link or a form's button, and waits for the next page: until the old page's
    /// document is gone (the URL may stay the same, as when a form shows itself again).
    async fn click(&self, css: &str) {
        let old_page = self.element("html").await;
        self.element(css).await.click().await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        while old_page.tag_name().await.is_ok() {
            assert!(Instant::now() < deadline, "{css} led to no new page");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Ticks a checkbox (no new page).
    async fn tick(&self, css: &str) {
        self.element(css).await.click().await.unwrap();
    }

    async fn type_into(&self, css: &str, text: &str) {
        let field = self.element(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    async fn sign_in(&self, next: Option<&str>) {
        match next {
            Some(next) => self.open(&format!("/login?next={next}")).await,
            None => self.open("/login").await,
        }
        self.type_into("#username", "alice").await;
        self.type_into("#password", "password").await;
        self.click("form[action='/login'] button").await;
    }

    async fn sign_out(&self) {
        self.open("/account/two-factor").await;
        self.click("#sign-out").await;
        assert_eq!(self.at().await, "/");
    }

    /// The app's code in a time step no code was used in yet (waiting for one if needed).
    async fn fresh_code(&mut self) -> String {
        let now = || SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        while now().as_secs() / 30 <= self.last_step {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        self.last_step = now().as_secs() / 30;
        let key = self.app.as_ref().expect("the app is set up");
        key.hotp(self.last_step).reveal().to_owned()
    }

    /// The browser's cookies, as a `Cookie` header.
    async fn cookie_header(&self) -> String {
        let cookies = self.browser.get_all_cookies().await.unwrap();
        cookies
            .iter()
            .map(|c| format!("{}={}", c.name(), c.value()))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

async fn journey(demo: &Demo, driver: &Chromedriver, prefix: &'static str) {
    let profile = tempfile::tempdir().unwrap();
    let browser = driver.browser(profile.path()).await;
    let mut alice = Person {
        browser,
        base: format!("http://{}", demo.addr),
        addr: demo.addr,
        app: None,
        last_step: 0,
        shots: Screenshots::new(prefix),
    };
    let outcome = tokio::time::timeout(JOURNEY_LIMIT, walk(&mut alice)).await;
    let _ = alice.browser.clone().close().await;
    outcome.expect("the journey took too long");
}

async fn walk(alice: &mut Person) {
    // The admin area sends an anonymous visitor to the login page.
    alice.open("/").await;
    alice.shots.take(&alice.browser, "home").await;
    alice.click("#admin-area").await;
    assert_eq!(alice.at().await, "/login?next=/staff");
    alice.shots.take(&alice.browser, "login").await;

    // Log in → redirected to setup.
    alice.type_into("#username", "alice").await;
    alice.type_into("#password", "password").await;
    alice.click("form[action='/login'] button").await;
    assert_eq!(alice.at().await, "/account/two-factor/setup?next=/staff");
    alice.shots.take(&alice.browser, "setup").await;
    alice.click("#method-totp").await;
    alice.shots.take(&alice.browser, "setup-method").await;
    alice.click("main form button").await;
    assert!(
        alice.browser.find(Locator::Css(".qr svg")).await.is_ok(),
        "an inline QR code"
    );
    alice.shots.take(&alice.browser, "setup-app").await;

    // Read the secret from the page, compute the code, confirm.
    let secret: String = alice.text_of("#secret").await.split_whitespace().collect();
    alice.app = Some(OtpKey::new(
        Secret::from_base32(&secret).expect("a base32 secret on the page"),
        Algorithm::Sha1,
        Digits::SIX,
    ));
    let code = alice.fresh_code().await;
    alice.type_into("#code", &code).await;
    alice.click("form[action$='/setup/confirm'] button").await;
    assert_eq!(
        alice.at().await,
        "/account/two-factor/setup/complete?next=/staff"
    );
    alice.shots.take(&alice.browser, "setup-complete").await;

    // See and save the backup codes.
    alice.click("#make-backup-codes").await;
    let codes = alice
        .browser
        .find_all(Locator::Css("#backup-codes code"))
        .await
        .unwrap();
    assert_eq!(codes.len(), 10);
    let backup_code = codes[0].text().await.unwrap();
    let download = alice
        .browser
        .find(Locator::Id("download"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    assert!(download.starts_with("data:text/plain"));
    alice.shots.take(&alice.browser, "backup-codes").await;

    // On to the admin area.
    alice.click("#continue").await;
    assert_eq!(alice.at().await, "/staff");
    assert_eq!(alice.text_of("#admin-title").await, "Admin area");
    alice.shots.take(&alice.browser, "admin").await;

    // A form without its CSRF token is refused, even with the browser's own cookies.
    let cookie = alice.cookie_header().await;
    let forged = send(
        alice.addr,
        "POST",
        "/account/two-factor/backup-codes",
        &[
            ("cookie", cookie.as_str()),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        "",
    )
    .await;
    assert_eq!(forged.status, 403);
    assert!(forged.body.contains("data-code=\"csrf\""));

    // Sign out, log in: the verification step. Letters in the code get a message.
    alice.sign_out().await;
    alice.sign_in(None).await;
    let at = alice.at().await;
    assert!(
        at.starts_with("/account/two-factor/verify?"),
        "{at}: {}",
        alice.text_of("main").await
    );
    alice.shots.take(&alice.browser, "verify").await;
    alice.type_into("#code", "12ab56").await;
    alice.click("form[action$='/verify'] button").await;
    let message = alice.text_of("#code-error").await;
    assert!(message.contains("only digits"), "{message}");
    let described = alice
        .browser
        .find(Locator::Id("code"))
        .await
        .unwrap()
        .attr("aria-describedby")
        .await
        .unwrap();
    assert_eq!(described.as_deref(), Some("code-error"));
    alice.shots.take(&alice.browser, "verify-letters").await;

    // The right code, and remember this browser.
    alice.open("/account/two-factor/verify?login=1").await;
    let code = alice.fresh_code().await;
    alice.type_into("#code", &code).await;
    alice.tick("#remember").await;
    alice.click("form[action$='/verify'] button").await;
    assert_eq!(alice.at().await, "/", "{}", alice.text_of("main").await);

    // A new login in the same browser skips the code, and an off-site next is ignored.
    alice.sign_out().await;
    alice.sign_in(Some("https://evil.example/")).await;
    assert_eq!(
        alice.at().await,
        "/",
        "no code asked, no off-site next followed"
    );
    alice.open("/staff").await;
    assert_eq!(alice.at().await, "/staff");

    // Revoke the browser from the profile: the next login asks again.
    alice.open("/account/two-factor").await;
    alice.shots.take(&alice.browser, "profile").await;
    alice.click(".revoke-browser").await;
    assert_eq!(alice.at().await, "/account/two-factor?done=revoked");
    alice.sign_out().await;
    alice.sign_in(Some("/staff")).await;
    assert_eq!(
        alice.at().await,
        "/account/two-factor/verify?login=1&next=%2Fstaff"
    );

    // Log in with a backup code.
    alice.click("#use-backup").await;
    alice.shots.take(&alice.browser, "verify-backup").await;
    alice.type_into("#code", &backup_code).await;
    alice.click("form[action$='/verify'] button").await;
    assert_eq!(alice.at().await, "/staff");

    // Disable, with a fresh code.
    alice.open("/account/two-factor/disable").await;
    alice.shots.take(&alice.browser, "disable").await;
    let code = alice.fresh_code().await;
    alice.type_into("#code", &code).await;
    alice.click("#disable-submit").await;
    assert_eq!(alice.at().await, "/account/two-factor?done=disabled");
    assert!(alice.text_of("#status").await.contains("off"));
    alice.shots.take(&alice.browser, "disabled").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journey_in_chromium_on_the_memory_store() {
    let driver = Chromedriver::start();
    let demo = Demo::start(&[]);
    journey(&demo, &driver, "memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journey_in_chromium_on_redis() {
    let driver = Chromedriver::start();
    let redis = RedisServer::start();
    let demo = Demo::start(&["--redis-url", &redis.url()]);
    journey(&demo, &driver, "redis").await;
}
