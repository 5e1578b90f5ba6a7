//! The layer, sessions and guards driven through an axum router: the whole flow, each guard
//! option, bearer clients, laziness, and failing closed.

mod common;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Json;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tower::ServiceExt;

use common::http::CookieJar;
use common::instrumented_store::InstrumentedStore;
use tower_otp::clock::{Clock, ManualClock, Timestamp};
use tower_otp::device::{Enrollment, TotpSettings};
use tower_otp::guard::{RedirectTargets, RequireOtpLayer, Verified};
use tower_otp::layer::OtpLayer;
use tower_otp::session::{OtpSession, SessionConfig, SessionError};
use tower_otp::store::MemoryStore;
use tower_otp::{Caller, DeviceId, ServerKey, TwoFactor, UserId};

const START: u64 = 1_800_000_000_000;

// ----- the application under test ------------------------------------------------------------

fn error_response(error: SessionError) -> Response {
    let status = match &error {
        e if e.is_store_failure() => StatusCode::SERVICE_UNAVAILABLE,
        SessionError::NotAuthenticated | SessionError::SessionEnded => StatusCode::UNAUTHORIZED,
        SessionError::Otp(e) if e.is_wrong_code() => StatusCode::UNAUTHORIZED,
        SessionError::Otp(tower_otp::Error::Throttled { .. } | tower_otp::Error::Locked { .. }) => {
            StatusCode::TOO_MANY_REQUESTS
        }
        _ => StatusCode::BAD_REQUEST,
    };
    (status, Json(json!({"error": error.kind()}))).into_response()
}

#[derive(Deserialize)]
struct LoginBody {
    user: String,
}

async fn login(session: OtpSession, Json(body): Json<LoginBody>) -> Response {
    let user = UserId::new(body.user).unwrap();
    match session.login(user).await {
        Ok(token) => Json(json!({"token": token.expose()})).into_response(),
        Err(error) => error_response(error),
    }
}

#[derive(Deserialize)]
struct VerifyBody {
    device_id: Option<String>,
    token: String,
}

async fn verify(session: OtpSession, Json(body): Json<VerifyBody>) -> Response {
    let result = match body.device_id {
        Some(id) => {
            session
                .verify(&id.parse::<DeviceId>().unwrap(), &body.token)
                .await
        }
        None => session.verify_any(&body.token).await,
    };
    match result {
        Ok(done) => Json(json!({"token": done.token.as_ref().map(|t| t.expose()), "device_id": done.verification.device.id.as_str()}))
            .into_response(),
        Err(error) => error_response(error),
    }
}

async fn logout(session: OtpSession) -> Response {
    match session.logout().await {
        Ok(existed) => Json(json!({"existed": existed})).into_response(),
        Err(error) => error_response(error),
    }
}

async fn logout_all(session: OtpSession) -> Response {
    match session.logout_all().await {
        Ok(count) => Json(json!({"ended": count})).into_response(),
        Err(error) => error_response(error),
    }
}

async fn account(session: OtpSession) -> Response {
    match session.status().await {
        Ok(status) => match status.user {
            Some(user) => {
                Json(json!({"user": user.as_str(), "verified": status.verified.is_some()}))
                    .into_response()
            }
            None => StatusCode::UNAUTHORIZED.into_response(),
        },
        Err(error) => error_response(error),
    }
}

async fn admin(verified: Verified) -> String {
    let by = verified
        .by
        .map_or("no device".into(), |by| by.device_kind.to_string());
    format!("admin for {} via {by}", verified.user)
}

async fn page() -> &'static str {
    "page"
}

fn app(two_factor: TwoFactor) -> Router {
    let staff = |user: UserId| async move { user.as_str() == "alice" };
    let admin_area = Router::new()
        .route("/", get(admin))
        .route("/users", get(admin))
        .layer(RequireOtpLayer::new().predicate(staff));
    let redirecting = Router::new()
        .route("/area", get(page))
        .route("/verify-page", get(page))
        .layer(RequireOtpLayer::new().redirect_to(
            RedirectTargets::new("/login-page", "/r/verify-page").with_setup("/setup-page"),
        ));
    let redirecting_without_setup = Router::new().route("/area", get(page)).layer(
        RequireOtpLayer::new().redirect_to(RedirectTargets::new("/login-page", "/verify-page")),
    );
    Router::new()
        .route("/", get(|| async { "public" }))
        .route("/login", post(login))
        .route("/verify", post(verify))
        .route("/logout", post(logout))
        .route("/logout-all", post(logout_all))
        .route("/account", get(account))
        .route("/extract-only", get(admin))
        .nest("/admin", admin_area)
        .nest("/r", redirecting)
        .nest("/rs", redirecting_without_setup)
        .route(
            "/step-up",
            get(page).layer(RequireOtpLayer::new().max_age(Duration::from_secs(300))),
        )
        .route(
            "/if-configured",
            get(page).layer(RequireOtpLayer::new().if_configured()),
        )
        .route(
            "/if-configured-extractor",
            get(admin).layer(RequireOtpLayer::new().if_configured()),
        )
        .route(
            "/no-backup",
            get(page).layer(RequireOtpLayer::new().allowed_kinds([tower_otp::DeviceKind::Totp])),
        )
        .layer(
            OtpLayer::new(two_factor).with_config(
                SessionConfig::new()
                    .with_idle_timeout(Duration::from_secs(600))
                    .unwrap()
                    .with_absolute_lifetime(Duration::from_secs(3600))
                    .unwrap(),
            ),
        )
}

// ----- the test harness ----------------------------------------------------------------------

struct Harness {
    clock: ManualClock,
    store: InstrumentedStore,
    two_factor: TwoFactor,
    app: Router,
}

fn harness() -> Harness {
    let clock = ManualClock::new(Timestamp::from_millis(START));
    let store = InstrumentedStore::new(MemoryStore::new().with_clock(clock.clone()));
    let two_factor =
        TwoFactor::new(store.clone(), ServerKey::new(&[1; 32]).unwrap()).with_clock(clock.clone());
    let app = app(two_factor.clone());
    Harness {
        clock,
        store,
        two_factor,
        app,
    }
}

impl Harness {
    /// Enrols and confirms a TOTP device for `user`, then moves to the next time step so the
    /// confirmation code does not collide with the codes a test uses.
    async fn device(&self, user: &str) -> Enrollment {
        let user = UserId::new(user).unwrap();
        let enrolment = self
            .two_factor
            .enroll_totp(&user, "Phone", user.as_str(), TotpSettings::default())
            .await
            .unwrap();
        let code = enrolment.current_code(self.clock.now());
        self.two_factor
            .confirm_device(&user, &enrolment.device.id, &code)
            .await
            .unwrap();
        self.clock.advance(Duration::from_secs(30));
        enrolment
    }

    fn code(&self, enrolment: &Enrollment) -> String {
        enrolment.current_code(self.clock.now())
    }

    fn browser(&self) -> Client {
        Client {
            app: self.app.clone(),
            jar: CookieJar::default(),
            bearer: None,
            last_headers: HeaderMap::new(),
        }
    }
}

struct Client {
    app: Router,
    jar: CookieJar,
    bearer: Option<String>,
    last_headers: HeaderMap,
}

impl Client {
    async fn call(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, String) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(bearer) = &self.bearer {
            request = request.header("authorization", format!("Bearer {bearer}"));
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
        self.last_headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    async fn get(&mut self, path: &str) -> (StatusCode, String) {
        self.call("GET", path, None).await
    }

    async fn post(&mut self, path: &str, body: Value) -> (StatusCode, Value) {
        let (status, text) = self.call("POST", path, Some(body)).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn login(&mut self, user: &str) -> String {
        let (status, body) = self.post("/login", json!({"user": user})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    fn session_cookie(&self) -> Option<String> {
        self.jar.get("__Host-otp-session").map(str::to_owned)
    }
}

fn error_code(body: &str) -> String {
    serde_json::from_str::<Value>(body).unwrap()["error"]
        .as_str()
        .unwrap()
        .to_owned()
}

// ----- the tests -----------------------------------------------------------------------------

#[tokio::test]
async fn the_whole_flow_anonymous_login_verify_admin_logout() {
    let h = harness();
    let device = h.device("alice").await;
    let mut browser = h.browser();

    assert_eq!(browser.get("/").await, (StatusCode::OK, "public".into()));
    let (status, body) = browser.get("/admin").await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::UNAUTHORIZED, "not_authenticated")
    );

    browser.login("alice").await;
    let after_login = browser
        .session_cookie()
        .expect("login sets the session cookie");
    let (status, body) = browser.get("/admin").await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::FORBIDDEN, "otp_required")
    );

    let code = h.code(&device);
    let (status, _) = browser
        .post(
            "/verify",
            json!({"device_id": device.device.id.as_str(), "token": code}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let after_verify = browser.session_cookie().unwrap();
    assert_ne!(
        after_verify, after_login,
        "the session id changes on verification"
    );
    assert_eq!(
        browser.get("/admin").await,
        (StatusCode::OK, "admin for alice via totp".into())
    );
    assert_eq!(browser.get("/admin/users").await.0, StatusCode::OK);

    // The id seen before verification is worthless now.
    let mut stale = h.browser();
    stale
        .jar
        .apply(&format!("__Host-otp-session={after_login}"));
    assert_eq!(stale.get("/admin").await.0, StatusCode::UNAUTHORIZED);

    // The same code cannot verify another session.
    let mut second = h.browser();
    second.login("alice").await;
    let (status, body) = second.post("/verify", json!({"token": code})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("replayed_code"))
    );

    let (status, body) = browser.post("/logout", json!({})).await;
    assert_eq!(
        (status, body["existed"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    assert_eq!(browser.session_cookie(), None, "logout clears the cookie");
    let mut replay = h.browser();
    replay
        .jar
        .apply(&format!("__Host-otp-session={after_verify}"));
    assert_eq!(replay.get("/admin").await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn login_rotates_the_session_id() {
    let h = harness();
    let mut browser = h.browser();
    browser.login("alice").await;
    let first = browser.session_cookie().unwrap();
    browser.login("alice").await;
    let second = browser.session_cookie().unwrap();
    assert_ne!(first, second);
    let mut old = h.browser();
    old.jar.apply(&format!("__Host-otp-session={first}"));
    assert_eq!(
        old.get("/account").await.0,
        StatusCode::UNAUTHORIZED,
        "the old session ended"
    );
}

#[tokio::test]
async fn staff_predicate_guards_the_admin_subtree() {
    let h = harness();
    let device = h.device("bob").await;
    let mut bob = h.browser();
    bob.login("bob").await;
    let (status, body) = bob.get("/admin").await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    bob.post("/verify", json!({"token": h.code(&device)})).await;
    let (status, body) = bob.get("/admin").await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
}

#[tokio::test]
async fn redirect_mode_sends_each_case_to_its_page_without_loops() {
    let h = harness();
    let device = h.device("alice").await;
    let mut browser = h.browser();

    let (status, _) = browser.get("/r/area?x=1").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        browser.last_headers["location"],
        "/login-page?next=/r/area%3Fx%3D1"
    );

    browser.login("alice").await;
    browser.get("/r/area").await;
    assert_eq!(
        browser.last_headers["location"],
        "/r/verify-page?next=/r/area"
    );
    // The verification page itself is behind the same guard: no redirect to itself.
    let (status, body) = browser.get("/r/verify-page").await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::FORBIDDEN, "otp_required")
    );

    // A user with no device goes to setup, not to verification.
    let mut carol = h.browser();
    carol.login("carol").await;
    carol.get("/r/area").await;
    assert_eq!(carol.last_headers["location"], "/setup-page?next=/r/area");
    // …and without a setup page gets a status, never a redirect loop.
    let (status, body) = carol.get("/rs/area").await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::FORBIDDEN, "otp_setup_required")
    );

    browser
        .post("/verify", json!({"token": h.code(&device)}))
        .await;
    assert_eq!(
        browser.get("/r/area").await,
        (StatusCode::OK, "page".into())
    );
}

#[tokio::test]
async fn max_age_demands_a_fresh_verification() {
    let h = harness();
    let device = h.device("alice").await;
    let mut browser = h.browser();
    browser.login("alice").await;
    browser
        .post("/verify", json!({"token": h.code(&device)}))
        .await;
    assert_eq!(browser.get("/step-up").await.0, StatusCode::OK);
    h.clock.advance(Duration::from_secs(301));
    let (status, body) = browser.get("/step-up").await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::FORBIDDEN, "otp_reauthentication_required")
    );
    assert_eq!(
        browser.get("/admin").await.0,
        StatusCode::OK,
        "other routes still accept it"
    );
    browser
        .post("/verify", json!({"token": h.code(&device)}))
        .await;
    assert_eq!(browser.get("/step-up").await.0, StatusCode::OK);
}

#[tokio::test]
async fn if_configured_lets_users_without_a_device_through() {
    let h = harness();
    let mut carol = h.browser();
    carol.login("carol").await;
    assert_eq!(carol.get("/if-configured").await.0, StatusCode::OK);
    let (status, body) = carol.get("/admin").await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::FORBIDDEN, "forbidden")
    );

    h.device("carol").await;
    let (status, body) = carol.get("/if-configured").await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::FORBIDDEN, "otp_required")
    );
}

#[tokio::test]
async fn allowed_kinds_refuse_backup_code_verifications() {
    let h = harness();
    h.device("alice").await;
    let codes = h
        .two_factor
        .generate_backup_codes(Caller::administrator(UserId::new("alice").unwrap()))
        .await
        .unwrap();
    let mut browser = h.browser();
    browser.login("alice").await;
    let (status, _) = browser
        .post(
            "/verify",
            json!({"token": codes.codes.iter().next().unwrap()}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        browser.get("/admin").await,
        (StatusCode::OK, "admin for alice via backup_codes".into())
    );
    let (status, body) = browser.get("/no-backup").await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::FORBIDDEN, "otp_reauthentication_required")
    );
}

#[tokio::test]
async fn the_extractor_alone_guards_a_route() {
    let h = harness();
    let device = h.device("bob").await;
    let mut bob = h.browser();
    assert_eq!(bob.get("/extract-only").await.0, StatusCode::UNAUTHORIZED);
    bob.login("bob").await;
    let (status, body) = bob.get("/extract-only").await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::FORBIDDEN, "otp_required")
    );
    bob.post("/verify", json!({"token": h.code(&device)})).await;
    assert_eq!(bob.get("/extract-only").await.0, StatusCode::OK);
}

#[tokio::test]
async fn bearer_clients_get_tokens_not_cookies() {
    let h = harness();
    let device = h.device("alice").await;
    let mut api = h.browser();
    let token = api.login("alice").await;
    api.jar = CookieJar::default();
    api.bearer = Some(token.clone());
    let (status, body) = api.get("/admin").await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::FORBIDDEN, "otp_required")
    );
    let (status, body) = api.post("/verify", json!({"token": h.code(&device)})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        api.last_headers.get("set-cookie").is_none(),
        "no cookie for bearer clients"
    );
    let upgraded = body["token"].as_str().unwrap().to_owned();
    assert_ne!(upgraded, token);
    assert_eq!(
        api.get("/admin").await.0,
        StatusCode::UNAUTHORIZED,
        "the old token ended"
    );
    api.bearer = Some(upgraded);
    assert_eq!(api.get("/admin").await.0, StatusCode::OK);

    for garbage in [
        "x",
        "Bearer",
        "🦀🦀🦀",
        &format!("{token}x"),
        &"a".repeat(5000),
    ] {
        api.bearer = Some(garbage.to_owned());
        let (status, body) = api.get("/admin").await;
        assert_eq!(
            (status, error_code(&body).as_str()),
            (StatusCode::UNAUTHORIZED, "invalid_session_token"),
            "{garbage:.20}"
        );
        assert_eq!(api.last_headers["www-authenticate"], "Bearer");
    }
}

#[tokio::test]
async fn malformed_cookies_are_treated_as_absent() {
    let h = harness();
    for cookie in [
        "__Host-otp-session=",
        "__Host-otp-session=garbage",
        "__Host-otp-session=\"quoted\"; other=1",
        "=; ;;; =x",
        "__Host-otp-session",
        &format!("__Host-otp-session={}", "A".repeat(10_000)),
    ] {
        let request = Request::get("/admin")
            .header("cookie", cookie)
            .body(Body::empty())
            .unwrap();
        let response = h.app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{cookie:.40}");
    }
    let mut request = Request::get("/account").body(Body::empty()).unwrap();
    request.headers_mut().insert(
        "cookie",
        axum::http::HeaderValue::from_bytes(b"__Host-otp-session=\xff\xfe").unwrap(),
    );
    assert_eq!(
        h.app.clone().oneshot(request).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn logout_all_ends_every_session_of_the_user_only() {
    let h = harness();
    let mut laptop = h.browser();
    let mut phone = h.browser();
    let mut bob = h.browser();
    laptop.login("alice").await;
    phone.login("alice").await;
    bob.login("bob").await;
    let (status, body) = laptop.post("/logout-all", json!({})).await;
    assert_eq!((status, body["ended"].as_u64()), (StatusCode::OK, Some(2)));
    assert_eq!(phone.get("/account").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(laptop.get("/account").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(bob.get("/account").await.0, StatusCode::OK);
}

#[tokio::test]
async fn sessions_expire_idle_and_absolutely() {
    let h = harness();
    let mut browser = h.browser();
    browser.login("alice").await;
    // Idle timeout 600 s, kept alive by use…
    for _ in 0..5 {
        h.clock.advance(Duration::from_secs(500));
        assert_eq!(browser.get("/account").await.0, StatusCode::OK);
    }
    // …until the absolute lifetime of an hour runs out.
    h.clock.advance(Duration::from_secs(1_200));
    assert_eq!(browser.get("/account").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(browser.session_cookie(), None, "the dead cookie is cleared");

    browser.login("alice").await;
    h.clock.advance(Duration::from_secs(601));
    assert_eq!(browser.get("/account").await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn routes_that_never_ask_cost_no_store_round_trip() {
    let h = harness();
    let device = h.device("alice").await;
    let mut browser = h.browser();
    browser.login("alice").await;
    browser
        .post("/verify", json!({"token": h.code(&device)}))
        .await;

    let before = h.store.calls();
    assert_eq!(browser.get("/").await.0, StatusCode::OK);
    assert_eq!(h.store.calls(), before, "public route");

    let before = h.store.calls();
    assert_eq!(browser.get("/admin").await.0, StatusCode::OK);
    assert_eq!(
        h.store.calls(),
        before + 1,
        "guard and extractor share one load"
    );

    let before = h.store.calls();
    assert_eq!(browser.get("/account").await.0, StatusCode::OK);
    assert_eq!(h.store.calls(), before + 1);
}

#[tokio::test]
async fn a_store_outage_fails_closed_with_503() {
    let h = harness();
    let device = h.device("alice").await;
    let mut browser = h.browser();
    browser.login("alice").await;
    browser
        .post("/verify", json!({"token": h.code(&device)}))
        .await;
    assert_eq!(browser.get("/admin").await.0, StatusCode::OK);

    h.store.set_down(true);
    for path in [
        "/admin",
        "/admin/users",
        "/extract-only",
        "/step-up",
        "/if-configured",
        "/r/area",
    ] {
        let (status, body) = browser.get(path).await;
        assert_eq!(
            (status, error_code(&body).as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
            "{path}"
        );
    }
    let (status, body) = browser.post("/verify", json!({"token": "123456"})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("store_unavailable"))
    );
    assert_eq!(
        browser.get("/").await.0,
        StatusCode::OK,
        "public routes keep working"
    );
    assert!(
        browser.session_cookie().is_some(),
        "an outage does not log anyone out"
    );

    h.store.set_down(false);
    assert_eq!(browser.get("/admin").await.0, StatusCode::OK);
}

/// The status and JSON body of a response.
async fn status_and_json(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn get_from(app: Router, path: &str) -> (StatusCode, Value) {
    let request = Request::get(path).body(Body::empty()).unwrap();
    status_and_json(app.oneshot(request).await.unwrap()).await
}

#[tokio::test]
async fn a_guard_without_the_layer_says_so() {
    let app: Router = Router::new()
        .route("/admin", get(page))
        .layer(RequireOtpLayer::new());
    let (status, body) = get_from(app, "/admin").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error"], "otp_layer_missing");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("`OtpLayer` last (outermost)"), "{message}");
}

#[tokio::test]
async fn a_guard_added_outside_the_layer_is_told_the_order_that_works() {
    let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::generate());
    // `.layer()` wraps what is there already: the guard ends up outside `OtpLayer`.
    let app: Router = Router::new()
        .route("/admin", get(page))
        .layer(OtpLayer::new(two_factor))
        .layer(RequireOtpLayer::new());
    let (status, body) = get_from(app, "/admin").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        body,
        json!({
            "error": "otp_layer_missing",
            "message": "`OtpLayer` is missing: `RequireOtpLayer`, `OtpSession` and `Verified` \
                        work only inside it. Add `OtpLayer` last (outermost) with `.layer()`, \
                        or first in a `ServiceBuilder`."
        })
    );
}

#[tokio::test]
async fn every_missing_layer_answer_is_the_same_json() {
    let session = |_: OtpSession| async { "unreachable" };
    let optional = |verified: Option<Verified>| async move { format!("{verified:?}") };
    let app: Router = Router::new()
        .route("/guard", get(page).layer(RequireOtpLayer::new()))
        .route("/session", get(session))
        .route("/verified", get(admin))
        .route("/optional", get(optional));
    let (_, expected) = get_from(app.clone(), "/guard").await;
    assert_eq!(expected["error"], "otp_layer_missing");
    for path in ["/session", "/verified", "/optional"] {
        assert_eq!(
            get_from(app.clone(), path).await,
            (StatusCode::INTERNAL_SERVER_ERROR, expected.clone()),
            "{path}"
        );
    }
}

#[cfg(feature = "api")]
#[tokio::test]
async fn the_api_without_the_layer_answers_the_same_error_code() {
    use tower_otp::api::{self, ApiConfig};

    let app: Router = Router::new().nest("/2fa", api::router(ApiConfig::new()));
    let (status, body) = get_from(app, "/2fa/status").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, Some("otp_layer_missing"))
    );
    assert!(body["message"].is_string(), "{body}");
}

#[tokio::test]
async fn the_extractor_accepts_whom_an_if_configured_guard_let_through() {
    let h = harness();
    let mut carol = h.browser();
    carol.login("carol").await;
    assert_eq!(
        carol.get("/if-configured-extractor").await,
        (StatusCode::OK, "admin for carol via no device".into())
    );

    let device = h.device("carol").await;
    let (status, body) = carol.get("/if-configured-extractor").await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::FORBIDDEN, "otp_required")
    );
    carol
        .post("/verify", json!({"token": h.code(&device)}))
        .await;
    assert_eq!(
        carol.get("/if-configured-extractor").await,
        (StatusCode::OK, "admin for carol via totp".into())
    );
}

#[test]
fn the_services_give_access_to_the_service_they_wrap() {
    use tower::Layer;

    #[derive(Clone, Debug, PartialEq)]
    struct Inner(&'static str);

    let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::generate());
    let mut otp = OtpLayer::new(two_factor).layer(Inner("inner"));
    assert_eq!(otp.get_ref(), &Inner("inner"));
    otp.get_mut().0 = "changed";
    assert_eq!(otp.into_inner(), Inner("changed"));

    let mut guard = RequireOtpLayer::new().layer(Inner("inner"));
    assert_eq!(guard.get_ref(), &Inner("inner"));
    guard.get_mut().0 = "changed";
    assert_eq!(guard.into_inner(), Inner("changed"));
}

#[tokio::test]
async fn the_flow_against_a_real_listening_server() {
    use common::http::send;

    let h = harness();
    let device = h.device("alice").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(axum::serve(listener, h.app.clone()).into_future());

    let mut jar = CookieJar::default();
    let mut call = async |method: &str, path: &str, body: &str| {
        let cookie = jar.header().unwrap_or_default();
        let mut headers = vec![("content-type", "application/json")];
        if !cookie.is_empty() {
            headers.push(("cookie", cookie.as_str()));
        }
        let response = send(addr, method, path, &headers, body).await;
        for set_cookie in response.headers_named("set-cookie") {
            jar.apply(set_cookie);
        }
        response
    };

    assert_eq!(call("GET", "/admin", "").await.status, 401);
    let login = call("POST", "/login", r#"{"user":"alice"}"#).await;
    assert_eq!(login.status, 200);
    let set_cookie = login.header("set-cookie").unwrap().to_owned();
    for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let blocked = call("GET", "/admin", "").await;
    assert_eq!(
        (blocked.status, blocked.json()["error"].as_str()),
        (403, Some("otp_required"))
    );
    let body = json!({"token": h.code(&device)}).to_string();
    assert_eq!(call("POST", "/verify", &body).await.status, 200);
    let allowed = call("GET", "/admin", "").await;
    assert_eq!(
        (allowed.status, allowed.body.as_str()),
        (200, "admin for alice via totp")
    );
    assert_eq!(call("POST", "/logout", "{}").await.status, 200);
    assert_eq!(call("GET", "/admin", "").await.status, 401);
    server.abort();
}
