//! The guard suite, run once per identity source: the crate's own sessions, a closure over a
//! trusted gateway's headers, and axum-login on tower-sessions.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Json;
use axum::http::{HeaderName, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tower::ServiceExt;

use common::http::CookieJar;
use common::instrumented_store::InstrumentedStore;
use tower_otp::clock::{ManualClock, Timestamp};
use tower_otp::device::{Enrollment, TotpSettings};
use tower_otp::guard::{RedirectTargets, RequireOtpLayer, Verified};
use tower_otp::layer::OtpLayer;
#[cfg(feature = "axum-login")]
use tower_otp::session::AxumLoginIdentity;
use tower_otp::session::{Identity, OtpSession};
use tower_otp::{MemoryStore, ServerKey, TwoFactor, UserId};

// ----- routes shared by every source ---------------------------------------------------------

#[derive(Deserialize)]
struct Code {
    token: String,
}

async fn verify(session: OtpSession, Json(body): Json<Code>) -> Response {
    match session.verify_any(&body.token).await {
        Ok(_) => Json(json!({"verified": true})).into_response(),
        Err(error) => (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": error.kind()})),
        )
            .into_response(),
    }
}

async fn drop_verification(session: OtpSession) -> StatusCode {
    session.logout().await.unwrap();
    StatusCode::OK
}

async fn logout_all(session: OtpSession) -> Response {
    match session.logout_all().await {
        Ok(count) => Json(json!({"ended": count})).into_response(),
        Err(error) => (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": error.kind()})),
        )
            .into_response(),
    }
}

async fn whoami(verified: Verified) -> String {
    verified.user.to_string()
}

fn guarded_routes() -> Router {
    let staff = |user: UserId| async move { user.as_str() == "alice" };
    Router::new()
        .route("/verify", post(verify))
        .route("/2fa/logout", post(drop_verification))
        .route("/2fa/logout-all", post(logout_all))
        .route("/verified", get(whoami).layer(RequireOtpLayer::new()))
        .route(
            "/admin",
            get(whoami).layer(RequireOtpLayer::new().predicate(staff)),
        )
        .route(
            "/step-up",
            get(whoami).layer(RequireOtpLayer::new().max_age(Duration::from_secs(300))),
        )
        .route(
            "/if-configured",
            get(|| async { "ok" }).layer(RequireOtpLayer::new().if_configured()),
        )
        .route(
            "/r/area",
            get(|| async { "ok" }).layer(
                RequireOtpLayer::new().redirect_to(RedirectTargets::new("/login", "/verify-page")),
            ),
        )
}

// ----- the sources ---------------------------------------------------------------------------

trait Source {
    /// The app: the shared routes plus the source's own login routes and layers.
    fn app(two_factor: TwoFactor) -> Router;
    /// Logs `user` in as the application would.
    async fn login(client: &mut Client, user: &str);
    /// Logs out of the application's first factor.
    async fn logout(client: &mut Client);
    /// Makes the same underlying session belong to another user.
    async fn switch_user(client: &mut Client, user: &str);
    /// Presents a forged identity.
    fn forge(client: &mut Client);
}

/// The crate's own sessions.
struct Own;

#[derive(Deserialize)]
struct LoginBody {
    user: String,
}

impl Source for Own {
    fn app(two_factor: TwoFactor) -> Router {
        let login = |session: OtpSession, Json(body): Json<LoginBody>| async move {
            session
                .login(UserId::new(body.user).unwrap())
                .await
                .unwrap();
            StatusCode::OK
        };
        guarded_routes()
            .route("/login", post(login))
            .layer(OtpLayer::new(two_factor))
    }
    async fn login(client: &mut Client, user: &str) {
        assert_eq!(
            client.post("/login", json!({"user": user})).await.0,
            StatusCode::OK
        );
    }
    async fn logout(client: &mut Client) {
        assert_eq!(
            client.post("/2fa/logout", json!({})).await.0,
            StatusCode::OK
        );
    }
    async fn switch_user(client: &mut Client, user: &str) {
        Self::login(client, user).await;
    }
    fn forge(client: &mut Client) {
        client.jar = CookieJar::default();
        client.jar.apply(&format!(
            "__Host-otp-session={}.{}",
            "0".repeat(32),
            "A".repeat(43)
        ));
    }
}

/// A gateway in front of the app authenticates users and sets `x-user` and `x-login`, with
/// a shared secret proving the headers came from it.
struct Gateway;

const GATEWAY_SECRET: &str = "gateway-secret";

impl Source for Gateway {
    fn app(two_factor: TwoFactor) -> Router {
        let identity = |parts: &http::request::Parts| {
            let header = |name: &str| parts.headers.get(name)?.to_str().ok();
            if header("x-gateway-secret")? != GATEWAY_SECRET {
                return None;
            }
            Some(Identity::new(
                UserId::new(header("x-user")?).ok()?,
                header("x-login")?,
            ))
        };
        guarded_routes().layer(OtpLayer::new(two_factor).with_identity(identity))
    }
    async fn login(client: &mut Client, user: &str) {
        let login = format!("login-{}", rand_suffix());
        client
            .headers
            .insert("x-gateway-secret".into(), GATEWAY_SECRET.into());
        client.headers.insert("x-user".into(), user.into());
        client.headers.insert("x-login".into(), login);
    }
    async fn logout(client: &mut Client) {
        client.headers.clear();
    }
    async fn switch_user(client: &mut Client, user: &str) {
        client.headers.insert("x-user".into(), user.into());
    }
    fn forge(client: &mut Client) {
        client
            .headers
            .insert("x-gateway-secret".into(), "guessed".into());
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::SeqCst).to_string()
}

/// axum-login with tower-sessions' memory store.
#[cfg(feature = "axum-login")]
struct AxumLogin;

#[cfg(feature = "axum-login")]
#[derive(Clone, Debug)]
struct AppUser {
    id: String,
    password_hash: Vec<u8>,
}

#[cfg(feature = "axum-login")]
impl axum_login::AuthUser for AppUser {
    type Id = String;
    fn id(&self) -> String {
        self.id.clone()
    }
    fn session_auth_hash(&self) -> &[u8] {
        &self.password_hash
    }
}

#[cfg(feature = "axum-login")]
#[derive(Clone, Debug)]
struct Backend {
    users: HashMap<String, AppUser>,
}

#[cfg(feature = "axum-login")]
impl axum_login::AuthnBackend for Backend {
    type User = AppUser;
    type Credentials = String;
    type Error = std::convert::Infallible;

    async fn authenticate(&self, name: String) -> Result<Option<AppUser>, Self::Error> {
        Ok(self.users.get(&name).cloned())
    }
    async fn get_user(&self, id: &String) -> Result<Option<AppUser>, Self::Error> {
        Ok(self.users.get(id).cloned())
    }
}

#[cfg(feature = "axum-login")]
type AuthSession = axum_login::AuthSession<Backend>;

#[cfg(feature = "axum-login")]
impl Source for AxumLogin {
    fn app(two_factor: TwoFactor) -> Router {
        let users = ["alice", "bob", "carol"]
            .into_iter()
            .map(|name| {
                (
                    name.to_owned(),
                    AppUser {
                        id: name.to_owned(),
                        password_hash: name.as_bytes().to_vec(),
                    },
                )
            })
            .collect();
        let sessions =
            tower_sessions::SessionManagerLayer::new(tower_sessions::MemoryStore::default())
                .with_secure(false);
        let auth = axum_login::AuthManagerLayerBuilder::new(Backend { users }, sessions).build();
        let login = |mut auth: AuthSession, Json(body): Json<LoginBody>| async move {
            let user = auth.authenticate(body.user).await.unwrap().unwrap();
            auth.login(&user).await.unwrap();
            StatusCode::OK
        };
        let logout = |mut auth: AuthSession| async move {
            auth.logout().await.unwrap();
            StatusCode::OK
        };
        guarded_routes()
            .route("/login", post(login))
            .route("/logout", post(logout))
            .layer(OtpLayer::new(two_factor).with_identity(AxumLoginIdentity::<Backend>::new()))
            .layer(auth)
    }
    async fn login(client: &mut Client, user: &str) {
        assert_eq!(
            client.post("/login", json!({"user": user})).await.0,
            StatusCode::OK
        );
    }
    async fn logout(client: &mut Client) {
        assert_eq!(client.post("/logout", json!({})).await.0, StatusCode::OK);
    }
    async fn switch_user(client: &mut Client, user: &str) {
        // Logging in over a live login keeps the session and its id (axum-login cycles the
        // id only when nobody was logged in).
        Self::login(client, user).await;
    }
    fn forge(client: &mut Client) {
        client.jar = CookieJar::default();
        client.jar.apply("id=AAAAAAAAAAAAAAAAAAAAAA");
    }
}

// ----- the harness ---------------------------------------------------------------------------

struct Client {
    app: Router,
    jar: CookieJar,
    headers: HashMap<String, String>,
}

impl Client {
    async fn call(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, String, Option<String>) {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in &self.headers {
            request = request.header(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let mut request = match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
            None => request.body(Body::empty()).unwrap(),
        };
        self.jar.add_to(request.headers_mut());
        let response = self.app.clone().oneshot(request).await.unwrap();
        self.jar.update(response.headers());
        let status = response.status();
        let location = response
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            String::from_utf8_lossy(&bytes).into_owned(),
            location,
        )
    }

    async fn get(&mut self, path: &str) -> (StatusCode, String) {
        let (status, body, _) = self.call("GET", path, None).await;
        let code = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or(body);
        (status, code)
    }

    async fn post(&mut self, path: &str, body: Value) -> (StatusCode, String) {
        let (status, body, _) = self.call("POST", path, Some(body)).await;
        (status, body)
    }
}

struct Harness {
    clock: ManualClock,
    store: InstrumentedStore,
    two_factor: TwoFactor,
    app: Router,
    devices: HashMap<&'static str, Enrollment>,
}

async fn harness<S: Source>() -> Harness {
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let store = InstrumentedStore::new(MemoryStore::new().with_clock(clock.clone()));
    let two_factor =
        TwoFactor::new(store.clone(), ServerKey::new(&[2; 32]).unwrap()).with_clock(clock.clone());
    let mut devices = HashMap::new();
    for name in ["alice", "bob"] {
        let user = UserId::new(name).unwrap();
        let enrolment = two_factor
            .enroll_totp(&user, "Phone", name, TotpSettings::default())
            .await
            .unwrap();
        let code = enrolment.current_code(two_factor.now());
        two_factor
            .confirm_device(&user, &enrolment.device.id, &code)
            .await
            .unwrap();
        devices.insert(name, enrolment);
    }
    clock.advance(Duration::from_secs(30));
    let app = S::app(two_factor.clone());
    Harness {
        clock,
        store,
        two_factor,
        app,
        devices,
    }
}

impl Harness {
    fn client(&self) -> Client {
        Client {
            app: self.app.clone(),
            jar: CookieJar::default(),
            headers: HashMap::new(),
        }
    }

    /// Verifies with `user`'s device, then moves past the step so the next code is fresh.
    async fn verify(&self, client: &mut Client, user: &str) -> StatusCode {
        let code = self.devices[user].current_code(tower_otp::clock::Clock::now(&self.clock));
        let status = client.post("/verify", json!({"token": code})).await.0;
        self.clock.advance(Duration::from_secs(30));
        status
    }
}

// ----- the suite -----------------------------------------------------------------------------

async fn login_verify_logout<S: Source>() {
    let h = harness::<S>().await;
    let mut c = h.client();
    assert_eq!(
        c.get("/verified").await,
        (StatusCode::UNAUTHORIZED, "not_authenticated".into())
    );
    S::login(&mut c, "alice").await;
    assert_eq!(
        c.get("/verified").await,
        (StatusCode::FORBIDDEN, "otp_required".into())
    );
    assert_eq!(h.verify(&mut c, "alice").await, StatusCode::OK);
    assert_eq!(c.get("/verified").await, (StatusCode::OK, "alice".into()));
    assert_eq!(c.get("/admin").await, (StatusCode::OK, "alice".into()));
    S::logout(&mut c).await;
    assert_eq!(c.get("/verified").await.0, StatusCode::UNAUTHORIZED);
}

async fn a_new_login_starts_unverified<S: Source>() {
    let h = harness::<S>().await;
    let mut c = h.client();
    S::login(&mut c, "alice").await;
    h.verify(&mut c, "alice").await;
    assert_eq!(c.get("/verified").await.0, StatusCode::OK);
    S::logout(&mut c).await;
    S::login(&mut c, "alice").await;
    assert_eq!(
        c.get("/verified").await,
        (StatusCode::FORBIDDEN, "otp_required".into())
    );
}

async fn switching_user_in_one_session_drops_verification<S: Source>() {
    let h = harness::<S>().await;
    let mut c = h.client();
    S::login(&mut c, "alice").await;
    h.verify(&mut c, "alice").await;
    assert_eq!(c.get("/verified").await, (StatusCode::OK, "alice".into()));
    S::switch_user(&mut c, "bob").await;
    assert_eq!(
        c.get("/verified").await,
        (StatusCode::FORBIDDEN, "otp_required".into())
    );
    h.verify(&mut c, "bob").await;
    assert_eq!(c.get("/verified").await, (StatusCode::OK, "bob".into()));
    assert_eq!(
        c.get("/admin").await,
        (StatusCode::FORBIDDEN, "forbidden".into())
    );
}

async fn a_forged_identity_is_anonymous<S: Source>() {
    let h = harness::<S>().await;
    let mut c = h.client();
    S::login(&mut c, "alice").await;
    h.verify(&mut c, "alice").await;
    S::forge(&mut c);
    let (status, _) = c.get("/verified").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = c.post("/verify", json!({"token": "123456"})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn guard_options_behave_the_same<S: Source>() {
    let h = harness::<S>().await;
    let mut c = h.client();
    let (status, _, location) = c.call("GET", "/r/area", None).await;
    assert_eq!(
        (status, location.as_deref()),
        (StatusCode::SEE_OTHER, Some("/login?next=/r/area"))
    );
    S::login(&mut c, "alice").await;
    let (_, _, location) = c.call("GET", "/r/area", None).await;
    assert_eq!(location.as_deref(), Some("/verify-page?next=/r/area"));
    h.verify(&mut c, "alice").await;
    assert_eq!(c.get("/step-up").await.0, StatusCode::OK);
    h.clock.advance(Duration::from_secs(300));
    assert_eq!(
        c.get("/step-up").await,
        (
            StatusCode::FORBIDDEN,
            "otp_reauthentication_required".into()
        )
    );

    let mut carol = h.client();
    S::login(&mut carol, "carol").await;
    assert_eq!(carol.get("/if-configured").await.0, StatusCode::OK);
    assert_eq!(
        carol.get("/verified").await,
        (StatusCode::FORBIDDEN, "otp_setup_required".into())
    );
    let mut bob = h.client();
    S::login(&mut bob, "bob").await;
    assert_eq!(
        bob.get("/if-configured").await,
        (StatusCode::FORBIDDEN, "otp_required".into())
    );
}

async fn logout_everywhere_drops_every_verification<S: Source>() {
    let h = harness::<S>().await;
    let mut laptop = h.client();
    let mut phone = h.client();
    S::login(&mut laptop, "alice").await;
    h.verify(&mut laptop, "alice").await;
    S::login(&mut phone, "alice").await;
    h.verify(&mut phone, "alice").await;
    assert_eq!(phone.get("/verified").await.0, StatusCode::OK);
    let (status, body) = laptop.post("/2fa/logout-all", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for client in [&mut laptop, &mut phone] {
        let (status, _) = client.get("/verified").await;
        assert_ne!(status, StatusCode::OK);
    }
}

async fn a_store_outage_fails_closed<S: Source>() {
    let h = harness::<S>().await;
    let mut c = h.client();
    S::login(&mut c, "alice").await;
    h.verify(&mut c, "alice").await;
    h.store.set_down(true);
    assert_eq!(
        c.get("/verified").await,
        (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable".into())
    );
    assert_eq!(c.get("/admin").await.0, StatusCode::SERVICE_UNAVAILABLE);
    h.store.set_down(false);
    assert_eq!(c.get("/verified").await.0, StatusCode::OK);
    let _ = &h.two_factor;
}

macro_rules! suite {
    ($module:ident, $source:ty) => {
        mod $module {
            use super::*;
            #[tokio::test]
            async fn login_verify_logout() {
                super::login_verify_logout::<$source>().await
            }
            #[tokio::test]
            async fn a_new_login_starts_unverified() {
                super::a_new_login_starts_unverified::<$source>().await
            }
            #[tokio::test]
            async fn switching_user_in_one_session_drops_verification() {
                super::switching_user_in_one_session_drops_verification::<$source>().await
            }
            #[tokio::test]
            async fn a_forged_identity_is_anonymous() {
                super::a_forged_identity_is_anonymous::<$source>().await
            }
            #[tokio::test]
            async fn guard_options_behave_the_same() {
                super::guard_options_behave_the_same::<$source>().await
            }
            #[tokio::test]
            async fn logout_everywhere_drops_every_verification() {
                super::logout_everywhere_drops_every_verification::<$source>().await
            }
            #[tokio::test]
            async fn a_store_outage_fails_closed() {
                super::a_store_outage_fails_closed::<$source>().await
            }
        }
    };
}

suite!(own_sessions, Own);
suite!(gateway_headers, Gateway);
#[cfg(feature = "axum-login")]
suite!(axum_login_sessions, AxumLogin);
