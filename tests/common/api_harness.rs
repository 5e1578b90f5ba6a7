//! An application around the JSON API, driven in process with `oneshot`: a login route that
//! takes the user's name as its body, the API at `/2fa`, a guarded `/admin`, and `/whoami`,
//! which answers the caller's state and keeps the session's `Caller` for engine-level tests.
//! Over a MemoryStore or a RedisStore of its own, with a manual clock and an outbox for
//! out-of-band codes.
//!
//! It also builds a caller in each state of the factor rule from scratch ([`Harness::world`]),
//! the way a real user and browser get there.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tower::ServiceExt;
use tower_otp::api::{self, ApiConfig};
use tower_otp::clock::{Clock, ManualClock, SystemClock};
use tower_otp::confirm::{Confirmer, DeviceMethod, OutOfBandMethod};
use tower_otp::device::{Caller, CallerState, Enrollment, OutboxSender};
use tower_otp::guard::RequireOtpLayer;
use tower_otp::layer::OtpLayer;
use tower_otp::otp::{Algorithm, Digits, OtpKey, Secret};
use tower_otp::remember::RememberConfig;
use tower_otp::session::OtpSession;
use tower_otp::store::{MemoryStore, SharedStore};
use tower_otp::{ServerKey, TwoFactor, UserId};

use super::http::CookieJar;

/// The user every world is about.
pub const USER: &str = "alice";
/// Where the user's own email device sends its codes.
pub const USER_EMAIL: &str = "alice@example.com";
/// The origin security keys answer (feature `webauthn`).
pub const KEY_ORIGIN: &str = "http://localhost";
/// Longer than the default re-verification window (20 minutes).
pub const PAST_THE_WINDOW: Duration = Duration::from_secs(20 * 60 + 1);

/// Where a harness keeps its state.
#[derive(Clone, Debug)]
pub enum Backend {
    Memory,
    /// A RedisStore on this server, in a key namespace of its own.
    #[cfg(feature = "redis")]
    Redis(String),
}

/// A private redis-server shared by the tests of one binary.
#[cfg(feature = "redis")]
pub fn shared_redis() -> Backend {
    use super::redis_server::RedisServer;
    static SERVER: std::sync::OnceLock<RedisServer> = std::sync::OnceLock::new();
    Backend::Redis(SERVER.get_or_init(RedisServer::start).url())
}

/// How far a caller has proven who they are: the columns of the authorisation matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    /// No session at all (the user has a confirmed device).
    Anonymous,
    /// A password-only session of a user who has no device yet.
    NewUser,
    /// A password-only session of a user who has a confirmed device.
    PasswordOnly,
    /// A session verified by a remembered browser, no code entered.
    Remembered,
    /// A session verified by a code longer ago than the re-verification window.
    Stale,
    /// A session verified by a code within the window.
    Fresh,
    /// A trusted back-office caller (engine level only: no session).
    Administrator,
}

impl Who {
    /// The state the engine must see this caller in (`None`: no caller at all).
    pub fn caller_state(self) -> Option<CallerState> {
        match self {
            Who::Anonymous => None,
            Who::NewUser | Who::PasswordOnly => Some(CallerState::FirstFactor),
            Who::Remembered => Some(CallerState::Remembered),
            Who::Stale => Some(CallerState::Stale),
            Who::Fresh => Some(CallerState::Fresh),
            Who::Administrator => Some(CallerState::Administrator),
        }
    }
}

/// The application and what a test needs to look behind it.
pub struct Harness {
    pub clock: ManualClock,
    pub two_factor: TwoFactor,
    pub confirmer: Confirmer,
    pub outbox: OutboxSender,
    /// The phone app that push devices stand for.
    #[cfg(feature = "push")]
    pub phone: super::phone_app::PhoneApp,
    pub app: Router,
    last_caller: Arc<Mutex<Option<Caller>>>,
}

impl Harness {
    pub async fn start(backend: &Backend) -> Harness {
        // The clock starts at the real time: the Redis store compares some deadlines with
        // the server's own clock.
        let clock = ManualClock::new(SystemClock.now());
        let store = store(backend, &clock).await;
        let outbox = OutboxSender::new();
        let two_factor = TwoFactor::from_shared(store, ServerKey::new(&[7; 32]).unwrap())
            .with_clock(clock.clone())
            .with_issuer("Matrix")
            .unwrap()
            .with_sender("email", outbox.clone())
            .with_sender("sms", outbox.clone());
        #[cfg(feature = "push")]
        let phone = super::phone_app::PhoneApp::new();
        #[cfg(feature = "push")]
        let two_factor = two_factor.with_push_sender(phone.clone());
        #[cfg(feature = "webauthn")]
        let two_factor = two_factor.with_webauthn(
            tower_otp::webauthn::RelyingParty::new("localhost", KEY_ORIGIN, "Matrix").unwrap(),
        );
        let confirmer = Confirmer::new(&two_factor)
            .with_clock(clock.clone())
            .with_method(OutOfBandMethod::new(two_factor.clone(), "email").into_method())
            .with_method(OutOfBandMethod::new(two_factor.clone(), "sms").into_method())
            .with_method(DeviceMethod::new(two_factor.clone()).into_method());
        let last_caller = Arc::default();
        let app = app(&two_factor, &confirmer, &last_caller);
        Harness {
            clock,
            two_factor,
            confirmer,
            outbox,
            #[cfg(feature = "push")]
            phone,
            app,
            last_caller,
        }
    }

    pub fn client(&self) -> Client {
        Client {
            app: self.app.clone(),
            jar: CookieJar::default(),
        }
    }

    /// A client with a copy of `other`'s cookies: the same browser.
    pub fn same_browser(&self, other: &Client) -> Client {
        Client {
            app: self.app.clone(),
            jar: other.jar.clone(),
        }
    }

    pub fn later(&self, duration: Duration) {
        self.clock.advance(duration);
    }

    /// Into the next TOTP step, and past the resend cooldown of out-of-band codes.
    pub fn next_step(&self) {
        self.later(Duration::from_secs(31));
    }

    pub fn user(&self) -> UserId {
        UserId::new(USER).unwrap()
    }

    pub fn administrator(&self) -> Caller {
        Caller::administrator(self.user())
    }

    /// The caller of `client`'s session, as the engine sees it.
    pub async fn caller_of(&self, client: &mut Client) -> Caller {
        client.state().await;
        self.last_caller
            .lock()
            .unwrap()
            .take()
            .expect("the client has a session")
    }

    /// The user's devices as (id, confirmed, name, default), to tell whether a refused
    /// request changed anything.
    pub async fn devices(&self) -> Vec<(String, bool, String, bool)> {
        let mut devices: Vec<_> = self
            .two_factor
            .devices(&self.user())
            .await
            .unwrap()
            .into_iter()
            .map(|d| (d.id.to_string(), d.confirmed, d.name, d.is_default))
            .collect();
        devices.sort();
        devices
    }

    pub async fn device_ids(&self) -> Vec<String> {
        self.devices().await.into_iter().map(|d| d.0).collect()
    }

    pub async fn remembered_browsers(&self) -> usize {
        self.two_factor
            .remembered_browsers(&self.user())
            .await
            .unwrap()
            .len()
    }

    /// A pending authenticator app added by the administrator.
    pub async fn pending_totp(&self, name: &str) -> Totp {
        let enrolment = self
            .two_factor
            .enroll_totp(self.administrator(), name, USER, Default::default())
            .await
            .unwrap();
        Totp::of(&enrolment)
    }

    /// Adds an authenticator app through the API and confirms it with its first code.
    pub async fn enrol_totp(&self, client: &mut Client, name: &str) -> Totp {
        let added = client
            .post("/2fa/devices", json!({"method": "totp", "name": name}))
            .await;
        assert_eq!(added.status, StatusCode::CREATED, "{:?}", added.json);
        let totp = Totp::from_reply(&added);
        let confirmed = client
            .post(
                &format!("/2fa/devices/{}/confirm", totp.id),
                json!({"code": totp.code(&self.clock)}),
            )
            .await;
        assert_eq!(confirmed.status, StatusCode::OK, "{:?}", confirmed.json);
        totp
    }

    /// Adds an email device through the API and confirms it with the code it was sent.
    pub async fn enrol_email(&self, client: &mut Client, address: &str) -> String {
        let added = client
            .post(
                "/2fa/devices",
                json!({"method": "email", "name": "Mail", "config": {"destination": address}}),
            )
            .await;
        assert_eq!(added.status, StatusCode::CREATED, "{:?}", added.json);
        let id = added.json["device"]["id"].as_str().unwrap().to_owned();
        let code = self.outbox.last_code_for(address).unwrap();
        let confirmed = client
            .post(&format!("/2fa/devices/{id}/confirm"), json!({"code": code}))
            .await;
        assert_eq!(confirmed.status, StatusCode::OK, "{:?}", confirmed.json);
        id
    }

    /// Sets the user up from a session of their own, as a real user would: an authenticator
    /// app, an email device, and this browser remembered.
    pub async fn configure(&self) -> Account {
        let mut browser = self.client();
        browser.login(USER).await;
        let phone = self.enrol_totp(&mut browser, "Phone").await;
        let mail = self.enrol_email(&mut browser, USER_EMAIL).await;
        self.next_step();
        let remembered = browser
            .post(
                "/2fa/verify",
                json!({"code": phone.code(&self.clock), "remember": true}),
            )
            .await;
        assert_eq!(remembered.json["remembered"], true, "{:?}", remembered.json);
        Account {
            phone,
            mail,
            browser,
        }
    }

    /// A new login of the user, verified with a code from their app.
    pub async fn fresh_session(&self, account: &Account) -> Client {
        let mut client = self.client();
        client.login(USER).await;
        self.next_step();
        let verified = client
            .post(
                "/2fa/verify",
                json!({"code": account.phone.code(&self.clock)}),
            )
            .await;
        assert_eq!(verified.status, StatusCode::OK, "{:?}", verified.json);
        client
    }

    /// A caller in state `who`, built from scratch: the user's account (unless `who` is a
    /// new user) and a client in that state. The clock ends in a TOTP step of its own, past
    /// any resend cooldown, and the client's state is checked.
    pub async fn world(&self, who: Who) -> (Option<Account>, Client) {
        let account = match who {
            Who::NewUser => None,
            _ => Some(self.configure().await),
        };
        let mut client = self.client();
        match who {
            Who::Anonymous | Who::Administrator => {}
            Who::NewUser | Who::PasswordOnly => client.login(USER).await,
            Who::Remembered => {
                client = self.same_browser(&account.as_ref().unwrap().browser);
                client.login(USER).await;
            }
            Who::Stale | Who::Fresh => {
                client = self.fresh_session(account.as_ref().unwrap()).await;
                if who == Who::Stale {
                    self.later(PAST_THE_WINDOW);
                }
            }
        }
        self.next_step();
        if who != Who::Administrator {
            let expected = who.caller_state().map(CallerState::as_str);
            assert_eq!(client.state().await.as_deref(), expected, "{who:?}");
        }
        (account, client)
    }
}

async fn store(backend: &Backend, clock: &ManualClock) -> SharedStore {
    match backend {
        Backend::Memory => Arc::new(MemoryStore::new().with_clock(clock.clone())),
        #[cfg(feature = "redis")]
        Backend::Redis(url) => Arc::new(
            tower_otp::store::RedisConfig::server(url.clone())
                .with_key_prefix(super::redis_server::unique_prefix())
                .connect()
                .await
                .expect("connect to the private redis-server"),
        ),
    }
}

fn app(
    two_factor: &TwoFactor,
    confirmer: &Confirmer,
    last_caller: &Arc<Mutex<Option<Caller>>>,
) -> Router {
    let login = |session: OtpSession, user: String| async move {
        session.login(UserId::new(user).unwrap()).await.unwrap();
        StatusCode::NO_CONTENT
    };
    let slot = last_caller.clone();
    let whoami = move |session: OtpSession| async move {
        let caller = session.caller().await.ok();
        let state = caller
            .as_ref()
            .map(|c| session.two_factor().caller_state(c).as_str());
        *slot.lock().unwrap() = caller;
        Json(json!({"state": state}))
    };
    let remember = RememberConfig::new([[9u8; 32]]).unwrap();
    let router = Router::new()
        .route("/login", post(login))
        .route("/whoami", get(whoami))
        .route(
            "/admin",
            get(|| async { "admin" }).layer(RequireOtpLayer::new()),
        )
        .nest(
            "/2fa",
            api::router(ApiConfig::new().with_confirmer(confirmer.clone())),
        );
    #[cfg(feature = "ui")]
    let router = router.nest(
        "/account/two-factor",
        tower_otp::ui::router(tower_otp::ui::UiConfig::new()),
    );
    router.layer(OtpLayer::new(two_factor.clone()).with_remember(remember))
}

/// A user set up by [`Harness::configure`].
pub struct Account {
    /// The confirmed authenticator app.
    pub phone: Totp,
    /// The id of the confirmed email device.
    pub mail: String,
    /// The browser that set it all up, remembered.
    pub browser: Client,
}

/// An answer of the application.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub json: Value,
    /// The `Location` header, empty when there is none.
    pub location: String,
    /// The body as text (the pages' HTML).
    pub text: String,
}

impl Reply {
    /// The error code, empty when there is none.
    pub fn error(&self) -> &str {
        self.json["error"].as_str().unwrap_or("")
    }

    /// Status and error code.
    pub fn outcome(&self) -> (u16, String) {
        (self.status.as_u16(), self.error().to_owned())
    }
}

/// A browser: cookies kept between requests.
#[derive(Clone)]
pub struct Client {
    app: Router,
    pub jar: CookieJar,
}

impl Client {
    /// Sends a request. Every request but a GET carries a JSON body, `{}` when there is
    /// nothing to say, as the API asks of state-changing requests.
    pub async fn send(&mut self, method: &str, path: &str, body: Option<Value>) -> Reply {
        match (method, body) {
            ("GET", None) => self.send_raw(method, path, &[], "").await,
            (_, body) => {
                let body = body.unwrap_or_else(|| json!({})).to_string();
                let json = [("content-type", "application/json")];
                self.send_raw(method, path, &json, &body).await
            }
        }
    }

    /// Sends a request with exactly these headers (and the browser's cookies) and body.
    pub async fn send_raw(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut request = request.body(Body::from(body.to_owned())).unwrap();
        self.jar.add_to(request.headers_mut());
        let response = self.app.clone().oneshot(request).await.unwrap();
        self.jar.update(response.headers());
        let status = response.status();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Reply {
            status,
            json,
            location,
            text,
        }
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        self.send("GET", path, None).await
    }

    pub async fn post(&mut self, path: &str, body: Value) -> Reply {
        self.send("POST", path, Some(body)).await
    }

    pub async fn delete(&mut self, path: &str) -> Reply {
        self.send("DELETE", path, None).await
    }

    /// Logs `user` in (the first factor), replacing any session of this browser.
    pub async fn login(&mut self, user: &str) {
        let mut request = Request::post("/login")
            .body(Body::from(user.to_owned()))
            .unwrap();
        self.jar.add_to(request.headers_mut());
        let response = self.app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        self.jar.update(response.headers());
    }

    /// The caller state of this browser's session (`None` without one).
    pub async fn state(&mut self) -> Option<String> {
        let reply = self.get("/whoami").await;
        reply.json["state"].as_str().map(str::to_owned)
    }

    /// Whether the session is verified, by `GET /2fa/status`.
    pub async fn is_verified(&mut self) -> bool {
        self.get("/2fa/status").await.json["verified"] == true
    }
}

/// An authenticator app: a device id and the codes it shows.
pub struct Totp {
    pub id: String,
    key: OtpKey,
}

impl Totp {
    /// The device of an API answer to `POST devices` with `totp`.
    pub fn from_reply(reply: &Reply) -> Totp {
        let secret = reply.json["provisioning"]["secret"].as_str().unwrap();
        Totp {
            id: reply.json["device"]["id"].as_str().unwrap().to_owned(),
            key: OtpKey::new(
                Secret::from_base32(secret).unwrap(),
                Algorithm::Sha1,
                Digits::SIX,
            ),
        }
    }

    pub fn of(enrolment: &Enrollment) -> Totp {
        Totp {
            id: enrolment.device.id.to_string(),
            key: OtpKey::new(enrolment.secret.clone(), Algorithm::Sha1, Digits::SIX),
        }
    }

    /// The code it shows now.
    pub fn code(&self, clock: &ManualClock) -> String {
        self.key
            .hotp(clock.now().as_secs() / 30)
            .reveal()
            .to_owned()
    }
}

/// A software security key (feature `webauthn`), answering for [`KEY_ORIGIN`].
#[cfg(feature = "webauthn")]
pub struct SoftKey(
    webauthn_authenticator_rs::WebauthnAuthenticator<
        webauthn_authenticator_rs::softpasskey::SoftPasskey,
    >,
);

#[cfg(feature = "webauthn")]
impl SoftKey {
    pub fn new() -> SoftKey {
        SoftKey(webauthn_authenticator_rs::WebauthnAuthenticator::new(
            webauthn_authenticator_rs::softpasskey::SoftPasskey::new(true),
        ))
    }

    fn origin() -> url::Url {
        url::Url::parse(KEY_ORIGIN).unwrap()
    }

    /// The key's answer to registration options (as the API's JSON).
    pub fn register(&mut self, options: &Value) -> Value {
        let options = serde_json::from_value(options.clone()).unwrap();
        json!(self.0.do_registration(Self::origin(), options).unwrap())
    }

    /// The key's answer to verification options (as the API's JSON).
    pub fn sign(&mut self, options: &Value) -> Value {
        let options = serde_json::from_value(options.clone()).unwrap();
        json!(self.0.do_authentication(Self::origin(), options).unwrap())
    }

    /// Registers the key for the user through the engine, as the administrator.
    pub async fn register_for(&mut self, h: &Harness) {
        let tf = &h.two_factor;
        let options = tf
            .begin_key_registration(h.administrator(), "Key")
            .await
            .unwrap();
        let answer = self.register(&json!(options));
        let answer = serde_json::from_value(answer).unwrap();
        tf.finish_key_registration(h.administrator(), &answer)
            .await
            .unwrap();
    }
}
