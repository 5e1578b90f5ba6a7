//! The factor rule, proven endpoint by endpoint and operation by operation.
//!
//! Three tables: every endpoint of the JSON API × the state of the caller's session, every
//! factor-changing operation of the engine × the state of its `Caller`, and every form of the
//! pages (`ui::router`) × the state of the session, each cell the answer it must get. Every cell builds its world from scratch (its own store, clock and user),
//! on the MemoryStore and on a RedisStore. A refused request must change nothing.
//!
//! An endpoint without a row fails [`every_endpoint_of_the_api_has_a_row`]: the routes that
//! `src/api/mod.rs` registers, the routes its documentation table lists, and the routes the
//! router answers (every method probed on every path) must each be exactly the table's. An
//! endpoint may have several rows, one per kind of request (disable with a code, a wrong one,
//! none).

#![cfg(feature = "api")]

mod common;

use std::collections::BTreeSet;

use serde_json::{Value, json};
use tower_otp::device::{Caller, DeviceId, HotpSettings, TotpSettings};
use tower_otp::remember::BrowserId;

use common::api_harness::{Account, Backend, Client, Harness, Totp, Who};

// ----- the API table -------------------------------------------------------------------------

/// An endpoint of `api::router`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "webauthn"), allow(dead_code))]
enum Endpoint {
    Methods,
    ListDevices,
    AddDevice,
    UpdateDevice,
    DeleteDevice,
    ConfirmDevice,
    /// `POST disable` with a current code of the user's app.
    DisableWithCode,
    /// `POST disable` with a wrong code.
    DisableWithWrongCode,
    /// `POST disable` with no code.
    DisableWithoutCode,
    BackupCodesLeft,
    NewBackupCodes,
    Challenge,
    RequestConfirmation,
    CheckConfirmation,
    AnswerConfirmation,
    Verify,
    ListRemembered,
    ForgetAllRemembered,
    ForgetRemembered,
    Status,
    Logout,
    LogoutAll,
    RegisterKeyBegin,
    RegisterKeyFinish,
    VerifyKeyBegin,
    VerifyKeyFinish,
}

impl Endpoint {
    /// Method and path, as `src/api/mod.rs` spells them (without the leading slash).
    fn route(self) -> (&'static str, &'static str) {
        use Endpoint::*;
        match self {
            Methods => ("GET", "methods"),
            ListDevices => ("GET", "devices"),
            AddDevice => ("POST", "devices"),
            UpdateDevice => ("PATCH", "devices/{id}"),
            DeleteDevice => ("DELETE", "devices/{id}"),
            ConfirmDevice => ("POST", "devices/{id}/confirm"),
            DisableWithCode | DisableWithWrongCode | DisableWithoutCode => ("POST", "disable"),
            BackupCodesLeft => ("GET", "backup-codes"),
            NewBackupCodes => ("POST", "backup-codes"),
            Challenge => ("POST", "challenges"),
            RequestConfirmation => ("POST", "confirmations"),
            CheckConfirmation => ("GET", "confirmations/{id}"),
            AnswerConfirmation => ("POST", "confirmations/{id}/confirm"),
            Verify => ("POST", "verify"),
            ListRemembered => ("GET", "remembered"),
            ForgetAllRemembered => ("DELETE", "remembered"),
            ForgetRemembered => ("DELETE", "remembered/{id}"),
            Status => ("GET", "status"),
            Logout => ("POST", "logout"),
            LogoutAll => ("POST", "logout-all"),
            RegisterKeyBegin => ("POST", "webauthn/register/begin"),
            RegisterKeyFinish => ("POST", "webauthn/register/finish"),
            VerifyKeyBegin => ("POST", "webauthn/verify/begin"),
            VerifyKeyFinish => ("POST", "webauthn/verify/finish"),
        }
    }
}

/// An expected answer: the status, and for a refusal its error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Expect(u16, &'static str);

const fn ok(status: u16) -> Expect {
    Expect(status, "")
}

const LOG_IN: Expect = Expect(401, "not_authenticated");
const OTP: Expect = Expect(403, "otp_required");
const REAUTH: Expect = Expect(403, "reauthentication_required");
const WRONG_CODE: Expect = Expect(401, "invalid_code");
const NO_CODE: Expect = Expect(400, "code_required");

/// The columns of [`API`].
const API_COLUMNS: [Who; 6] = [
    Who::Anonymous,
    Who::NewUser,
    Who::PasswordOnly,
    Who::Remembered,
    Who::Stale,
    Who::Fresh,
];

/// What each endpoint answers each caller. A new user has no confirmed device; everyone
/// else acts on a user who has an authenticator app and an email device.
#[rustfmt::skip]
const API: &[(Endpoint, [Expect; 6])] = {
    use Endpoint::*;
    &[
    //                        anonymous     new user      password only  remembered   stale        fresh
    (Methods,             [ok(200),     ok(200),      ok(200),       ok(200),     ok(200),     ok(200)]),
    (ListDevices,         [LOG_IN,      ok(200),      OTP,           ok(200),     ok(200),     ok(200)]),
    (AddDevice,           [LOG_IN,      ok(201),      OTP,           REAUTH,      REAUTH,      ok(201)]),
    (UpdateDevice,        [LOG_IN,      ok(200),      OTP,           ok(200),     ok(200),     ok(200)]),
    (DeleteDevice,        [LOG_IN,      ok(204),      OTP,           REAUTH,      REAUTH,      ok(204)]),
    (ConfirmDevice,       [LOG_IN,      ok(200),      OTP,           REAUTH,      REAUTH,      ok(200)]),
    // Disabling takes a code in the request itself, which verifies the session first.
    (DisableWithCode,     [LOG_IN,      ok(200),      ok(200),       ok(200),     ok(200),     ok(200)]),
    (DisableWithWrongCode,[LOG_IN,      ok(200),      WRONG_CODE,    WRONG_CODE,  WRONG_CODE,  WRONG_CODE]),
    (DisableWithoutCode,  [LOG_IN,      ok(200),      NO_CODE,       NO_CODE,     NO_CODE,     NO_CODE]),
    (BackupCodesLeft,     [LOG_IN,      ok(200),      OTP,           ok(200),     ok(200),     ok(200)]),
    // Backup codes back up a factor: a new user has none to back up.
    (NewBackupCodes,      [LOG_IN,      Expect(409, "not_configured"),
                                                      OTP,           REAUTH,      REAUTH,      ok(201)]),
    // Asking for a code is how a password-only session verifies.
    (Challenge,           [LOG_IN,      ok(200),      ok(200),       ok(200),     ok(200),     ok(200)]),
    (RequestConfirmation, [LOG_IN,      ok(201),      OTP,           REAUTH,      REAUTH,      ok(201)]),
    (CheckConfirmation,   [LOG_IN,      ok(200),      ok(200),       ok(200),     ok(200),     ok(200)]),
    (AnswerConfirmation,  [LOG_IN,      ok(200),      OTP,           REAUTH,      REAUTH,      ok(200)]),
    (Verify,              [LOG_IN,      Expect(409, "not_configured"),
                                                      ok(200),       ok(200),     ok(200),     ok(200)]),
    (ListRemembered,      [LOG_IN,      ok(200),      OTP,           ok(200),     ok(200),     ok(200)]),
    (ForgetAllRemembered, [LOG_IN,      ok(200),      OTP,           ok(200),     ok(200),     ok(200)]),
    // A new user has no remembered browser to forget.
    (ForgetRemembered,    [LOG_IN,      Expect(404, "remembered_not_found"),
                                                      OTP,           ok(204),     ok(204),     ok(204)]),
    (Status,              [ok(200),     ok(200),      ok(200),       ok(200),     ok(200),     ok(200)]),
    (Logout,              [ok(200),     ok(200),      ok(200),       ok(200),     ok(200),     ok(200)]),
    // Ending the user's other sessions and forgetting their browsers takes the second factor.
    (LogoutAll,           [LOG_IN,      ok(200),      OTP,           ok(200),     ok(200),     ok(200)]),
    ]
};

/// The rows of the security-key endpoints (feature `webauthn`). The user has a key of their
/// own (but a new user has none).
#[cfg(feature = "webauthn")]
#[rustfmt::skip]
const KEY_ROWS: &[(Endpoint, [Expect; 6])] = {
    use Endpoint::*;
    const NO_KEY: Expect = Expect(409, "not_configured");
    &[
    //                        anonymous     new user      password only  remembered   stale        fresh
    (RegisterKeyBegin,    [LOG_IN,      ok(200),      OTP,           REAUTH,      REAUTH,      ok(200)]),
    (RegisterKeyFinish,   [LOG_IN,      ok(200),      OTP,           REAUTH,      REAUTH,      ok(200)]),
    // Verifying is how a password-only session passes the second factor.
    (VerifyKeyBegin,      [LOG_IN,      NO_KEY,       ok(200),       ok(200),     ok(200),     ok(200)]),
    (VerifyKeyFinish,     [LOG_IN,      Expect(409, "webauthn_ceremony_missing"),
                                                      ok(200),       ok(200),     ok(200),     ok(200)]),
    ]
};

#[cfg(not(feature = "webauthn"))]
const KEY_ROWS: &[(Endpoint, [Expect; 6])] = &[];

/// Every row of the API table.
fn api_rows() -> impl Iterator<Item = &'static (Endpoint, [Expect; 6])> {
    API.iter().chain(KEY_ROWS)
}

/// A world in one caller state, ready for one request.
struct World {
    h: Harness,
    who: Who,
    account: Option<Account>,
    client: Client,
}

impl World {
    async fn new(backend: &Backend, who: Who) -> World {
        let h = Harness::start(backend).await;
        let (account, client) = h.world(who).await;
        World {
            h,
            who,
            account,
            client,
        }
    }

    fn account(&self) -> Option<&Account> {
        self.account.as_ref()
    }

    /// The user's device a row renames or deletes: their app, or for a new user a pending
    /// one (the only kind they have).
    async fn own_device(&self) -> String {
        match self.account() {
            Some(account) => account.phone.id.clone(),
            None => self.h.pending_totp("Pending").await.id,
        }
    }

    /// A code from the user's app, or a made-up one for a user who has none.
    fn phone_code(&self) -> String {
        match self.account() {
            Some(account) => account.phone.code(&self.h.clock),
            None => "123456".to_owned(),
        }
    }

    /// A code the user's app does not show now.
    fn wrong_code(&self) -> String {
        let right = self.phone_code();
        let wrong = if right == "000000" {
            "111111"
        } else {
            "000000"
        };
        wrong.to_owned()
    }

    /// May this caller change the user's factors?
    fn may_change_factors(&self) -> bool {
        matches!(self.who, Who::NewUser | Who::Fresh)
    }

    /// A pending confirmation of a new email address, and the code sent for it. Requested by
    /// the row's own session when it may (codes are bound to the session that asked), by the
    /// administrator otherwise.
    async fn email_confirmation(&mut self) -> (String, String) {
        let address = "alice+confirm@example.com";
        let state = json!({"destination": address});
        let id = if self.may_change_factors() {
            let requested = self
                .client
                .post(
                    "/2fa/confirmations",
                    json!({"method": "email", "state": state}),
                )
                .await;
            assert_eq!(requested.status, 201, "{:?}", requested.json);
            requested.json["id"].as_str().unwrap().to_owned()
        } else {
            let confirmation = self
                .h
                .confirmer
                .request(self.h.administrator(), "email", state)
                .await
                .unwrap();
            confirmation.id.as_str().to_owned()
        };
        (id, self.h.outbox.last_code_for(address).unwrap())
    }

    /// The request a row sends: method, path and body (`None` for no body).
    async fn request(&mut self, endpoint: Endpoint) -> (&'static str, String, Option<Value>) {
        use Endpoint::*;
        let (method, _) = endpoint.route();
        let (path, body) = match endpoint {
            Methods => ("/2fa/methods".to_owned(), None),
            ListDevices => ("/2fa/devices".to_owned(), None),
            AddDevice => (
                "/2fa/devices".to_owned(),
                Some(json!({"method": "totp", "name": "New"})),
            ),
            UpdateDevice => (
                format!("/2fa/devices/{}", self.own_device().await),
                Some(json!({"name": "Renamed"})),
            ),
            DeleteDevice => (format!("/2fa/devices/{}", self.own_device().await), None),
            ConfirmDevice => {
                let pending = self.h.pending_totp("Tablet").await;
                let token = pending.code(&self.h.clock);
                (
                    format!("/2fa/devices/{}/confirm", pending.id),
                    Some(json!({"code": token})),
                )
            }
            DisableWithCode => (
                "/2fa/disable".to_owned(),
                Some(json!({"code": self.phone_code()})),
            ),
            DisableWithWrongCode => (
                "/2fa/disable".to_owned(),
                Some(json!({"code": self.wrong_code()})),
            ),
            DisableWithoutCode => ("/2fa/disable".to_owned(), None),
            BackupCodesLeft => ("/2fa/backup-codes".to_owned(), None),
            NewBackupCodes => ("/2fa/backup-codes".to_owned(), None),
            Challenge => {
                let device = match self.account() {
                    Some(account) => account.mail.clone(),
                    None => self.pending_email().await,
                };
                (
                    "/2fa/challenges".to_owned(),
                    Some(json!({"device_id": device})),
                )
            }
            RequestConfirmation => (
                "/2fa/confirmations".to_owned(),
                Some(json!({"method": "email", "state": {"destination": "alice+new@example.com"}})),
            ),
            CheckConfirmation => {
                let (id, _) = self.email_confirmation().await;
                (format!("/2fa/confirmations/{id}"), None)
            }
            AnswerConfirmation => {
                let (id, code) = self.email_confirmation().await;
                (
                    format!("/2fa/confirmations/{id}/confirm"),
                    Some(json!({"data": {"code": code}})),
                )
            }
            Verify => (
                "/2fa/verify".to_owned(),
                Some(json!({"code": self.phone_code()})),
            ),
            ListRemembered => ("/2fa/remembered".to_owned(), None),
            ForgetAllRemembered => ("/2fa/remembered".to_owned(), None),
            ForgetRemembered => (
                format!("/2fa/remembered/{}", self.remembered_browser().await),
                None,
            ),
            Status => ("/2fa/status".to_owned(), None),
            Logout => ("/2fa/logout".to_owned(), None),
            LogoutAll => ("/2fa/logout-all".to_owned(), None),
            RegisterKeyBegin | RegisterKeyFinish | VerifyKeyBegin | VerifyKeyFinish => {
                self.key_request(endpoint).await
            }
        };
        (method, path, body)
    }

    /// A security-key row's request. A finish answers a ceremony of the row's own session
    /// where the session may begin one, else one begun by a fresh session of the user.
    #[cfg(feature = "webauthn")]
    async fn key_request(&mut self, endpoint: Endpoint) -> (String, Option<Value>) {
        use Endpoint::*;
        use common::api_harness::SoftKey;
        let mut key = SoftKey::new();
        let registered = self.account().is_some();
        if registered {
            key.register_for(&self.h).await;
        }
        let path = format!("/2fa/{}", endpoint.route().1);
        let body = match endpoint {
            RegisterKeyBegin => Some(json!({"name": "Key"})),
            VerifyKeyBegin => None,
            RegisterKeyFinish => {
                let begin = "/2fa/webauthn/register/begin";
                let body = json!({"name": "Key"});
                let options = match begin_ceremony(&mut self.client, begin, body.clone()).await {
                    Some(options) => options,
                    None => {
                        let account = self.account().unwrap();
                        let mut fresh = self.h.fresh_session(account).await;
                        begin_ceremony(&mut fresh, begin, body).await.unwrap()
                    }
                };
                Some(json!({"credential": key.register(&options)}))
            }
            VerifyKeyFinish => {
                let begin = "/2fa/webauthn/verify/begin";
                let options = match begin_ceremony(&mut self.client, begin, json!({})).await {
                    Some(options) => options,
                    None => {
                        // A key answering a ceremony of no session of this user.
                        let other = self.h.two_factor.clone();
                        let mut spare = SoftKey::new();
                        spare.register_for(&self.h).await;
                        let options = other
                            .begin_key_verification(self.h.administrator())
                            .await
                            .unwrap();
                        key = spare;
                        json!(options)
                    }
                };
                Some(json!({"credential": key.sign(&options)}))
            }
            _ => unreachable!("not a security-key row"),
        };
        (path, body)
    }

    #[cfg(not(feature = "webauthn"))]
    async fn key_request(&mut self, _endpoint: Endpoint) -> (String, Option<Value>) {
        unreachable!("security-key rows need the feature `webauthn`")
    }

    /// A pending email device of a new user, added by the administrator (no code sent yet).
    async fn pending_email(&self) -> String {
        let device = self
            .h
            .two_factor
            .add_out_of_band_device(self.h.administrator(), "Mail", "email", "alice@example.com")
            .await
            .unwrap();
        device.id.to_string()
    }

    /// The user's remembered browser, or a made-up id for a user who has none.
    async fn remembered_browser(&self) -> String {
        let browsers = self
            .h
            .two_factor
            .remembered_browsers(&self.h.user())
            .await
            .unwrap();
        match browsers.first() {
            Some(browser) => browser.id.as_str().to_owned(),
            None => BrowserId::generate().as_str().to_owned(),
        }
    }

    /// What a refused request must leave as it was.
    async fn snapshot(&self) -> (Vec<(String, bool, String, bool)>, usize) {
        (self.h.devices().await, self.h.remembered_browsers().await)
    }
}

/// Begins a security-key ceremony as `client`: its options, if it may.
#[cfg(feature = "webauthn")]
async fn begin_ceremony(client: &mut Client, path: &str, body: Value) -> Option<Value> {
    let options = client.post(path, body).await;
    (options.status == 200).then_some(options.json)
}

/// Runs one cell; a mismatch is described, not panicked on, so that a run lists them all.
async fn api_cell(backend: &Backend, endpoint: Endpoint, who: Who, expect: Expect) -> Vec<String> {
    let mut world = World::new(backend, who).await;
    let request = world.request(endpoint).await;
    send_and_compare(&mut world, &format!("{endpoint:?}"), request, expect).await
}

/// Sends a row's request as the world's client and compares the answer with `expect`; a
/// refused request must leave the devices and remembered browsers as they were.
async fn send_and_compare(
    world: &mut World,
    row: &str,
    (method, path, body): (&str, String, Option<Value>),
    expect: Expect,
) -> Vec<String> {
    let who = world.who;
    let before = world.snapshot().await;
    let reply = world.client.send(method, &path, body).await;
    let mut mismatches = Vec::new();
    let got = (reply.status.as_u16(), reply.error());
    if got != (expect.0, expect.1) {
        mismatches.push(format!(
            "{row} as {who:?}: expected {expect:?}, got {got:?} {}",
            reply.json
        ));
    }
    if expect.0 >= 400 && world.snapshot().await != before {
        mismatches.push(format!(
            "{row} as {who:?}: refused, yet the devices or remembered browsers changed"
        ));
    }
    mismatches
}

async fn api_matrix(backend: Backend) {
    let mut mismatches = Vec::new();
    for (endpoint, row) in api_rows() {
        for (who, expect) in API_COLUMNS.iter().zip(row) {
            mismatches.extend(api_cell(&backend, *endpoint, *who, *expect).await);
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} cells differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

// ----- every endpoint has a row ---------------------------------------------------------------

type Route = (String, String);

fn table_routes() -> BTreeSet<Route> {
    let routes = api_rows().map(|(endpoint, _)| endpoint.route());
    #[cfg(feature = "push")]
    let routes = routes.chain(push::API.iter().map(|(endpoint, _)| endpoint.route()));
    routes
        .map(|(method, path)| (method.to_owned(), path.to_owned()))
        .collect()
}

const API_SOURCE: &str = include_str!("../src/api/mod.rs");
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// The routes `src/api/mod.rs` registers: each `.route("/path", get(..).post(..))` call,
/// comments aside.
fn source_routes() -> BTreeSet<Route> {
    let code: String = API_SOURCE
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    for other in [".nest(", ".merge(", ".route_service(", ".nest_service("] {
        assert!(
            !code.contains(other),
            "src/api/mod.rs routes with `{other}`: teach this test to read it"
        );
    }
    let mut routes = BTreeSet::new();
    for call in code.split(".route(").skip(1) {
        let path = call.split('"').nth(1).expect("a route's path literal");
        let arguments = &call[..closing_paren(call)];
        for method in METHODS {
            if calls(arguments, &method.to_lowercase()) {
                routes.insert((method.to_owned(), path.trim_start_matches('/').to_owned()));
            }
        }
    }
    routes
}

/// Where the parenthesis opened just before `text` closes.
fn closing_paren(text: &str) -> usize {
    let mut depth = 1;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced parentheses in src/api/mod.rs");
}

/// Whether `code` calls the function `name(` (not `other_name(`).
fn calls(code: &str, name: &str) -> bool {
    let pattern = format!("{name}(");
    code.match_indices(&pattern).any(|(i, _)| {
        code[..i]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
    })
}

/// The routes of the endpoint table in the module documentation of `src/api/mod.rs`: the
/// first cell of each row, e.g. `` `POST confirmations` `{method, state?}`, `GET
/// confirmations/{id}` ``.
fn documented_routes() -> BTreeSet<Route> {
    let mut routes = BTreeSet::new();
    for line in API_SOURCE.lines() {
        let Some(row) = line.strip_prefix("//! | `") else {
            continue;
        };
        let first_cell = row.split(" | ").next().unwrap();
        for span in first_cell
            .split('`')
            .skip_while(|s| s.is_empty())
            .step_by(2)
        {
            if let Some((method, path)) = span.split_once(' ')
                && METHODS.contains(&method)
            {
                routes.insert((method.to_owned(), path.to_owned()));
            }
        }
    }
    routes
}

/// The routes the router answers: every method on every path any source names, probed
/// without a session; 404 `not_found` and 405 mean no such route.
async fn answered_routes(paths: &BTreeSet<String>) -> BTreeSet<Route> {
    let h = Harness::start(&Backend::Memory).await;
    let mut client = h.client();
    let mut routes = BTreeSet::new();
    for path in paths {
        let concrete = path.replace("{id}", &"0".repeat(32));
        for method in METHODS {
            let reply = client.send(method, &format!("/2fa/{concrete}"), None).await;
            let absent =
                reply.status == 405 || (reply.status == 404 && reply.error() == "not_found");
            if !absent {
                routes.insert((method.to_owned(), path.clone()));
            }
        }
    }
    routes
}

/// Whether this build has the route: the security-key routes need the feature `webauthn`.
fn built(route: &Route) -> bool {
    cfg!(feature = "webauthn") || !route.1.starts_with("webauthn/")
}

#[tokio::test]
async fn every_endpoint_of_the_api_has_a_row() {
    let table = table_routes();
    let source: BTreeSet<Route> = source_routes().into_iter().filter(built).collect();
    let documented: BTreeSet<Route> = documented_routes().into_iter().filter(built).collect();
    assert_eq!(source, table, "routes in src/api/mod.rs vs the matrix");
    assert_eq!(documented, table, "routes in the API docs vs the matrix");
    let paths = table
        .iter()
        .chain(&source)
        .chain(&documented)
        .map(|(_, path)| path.clone())
        .collect();
    assert_eq!(
        answered_routes(&paths).await,
        table,
        "routes the router answers vs the matrix"
    );
}

// ----- the engine table ------------------------------------------------------------------------

/// A factor-changing (or factor-touching) operation of `TwoFactor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "webauthn"), allow(dead_code))]
enum Operation {
    EnrollTotp,
    EnrollHotp,
    AddOutOfBandDevice,
    ConfirmDevice,
    GenerateBackupCodes,
    DeleteDevice,
    DeleteAllDevices,
    RenameDevice,
    SetDefaultDevice,
    /// Begin and finish a security-key registration (feature `webauthn`).
    RegisterKey,
}

/// What an operation returns: done, or the error's kind.
type Outcome = Result<(), &'static str>;

const DONE: Outcome = Ok(());
const NEEDS_OTP: Outcome = Err("otp_required");
const NEEDS_REAUTH: Outcome = Err("reauthentication_required");

/// The columns of [`ENGINE`].
const ENGINE_COLUMNS: [Who; 6] = [
    Who::NewUser,
    Who::PasswordOnly,
    Who::Remembered,
    Who::Stale,
    Who::Fresh,
    Who::Administrator,
];

#[rustfmt::skip]
const ENGINE: &[(Operation, [Outcome; 6])] = {
    use Operation::*;
    &[
    //                        new user  password only  remembered     stale          fresh  administrator
    (EnrollTotp,          [DONE,     NEEDS_OTP,     NEEDS_REAUTH,  NEEDS_REAUTH,  DONE,  DONE]),
    (EnrollHotp,          [DONE,     NEEDS_OTP,     NEEDS_REAUTH,  NEEDS_REAUTH,  DONE,  DONE]),
    (AddOutOfBandDevice,  [DONE,     NEEDS_OTP,     NEEDS_REAUTH,  NEEDS_REAUTH,  DONE,  DONE]),
    (ConfirmDevice,       [DONE,     NEEDS_OTP,     NEEDS_REAUTH,  NEEDS_REAUTH,  DONE,  DONE]),
    (GenerateBackupCodes, [Err("not_configured"),
                                     NEEDS_OTP,     NEEDS_REAUTH,  NEEDS_REAUTH,  DONE,  DONE]),
    (DeleteDevice,        [DONE,     NEEDS_OTP,     NEEDS_REAUTH,  NEEDS_REAUTH,  DONE,  DONE]),
    (DeleteAllDevices,    [DONE,     NEEDS_OTP,     NEEDS_REAUTH,  NEEDS_REAUTH,  DONE,  DONE]),
    // Naming and choosing the default touch no secret: any verification will do.
    (RenameDevice,        [DONE,     NEEDS_OTP,     DONE,          DONE,          DONE,  DONE]),
    (SetDefaultDevice,    [DONE,     NEEDS_OTP,     DONE,          DONE,          DONE,  DONE]),
    ]
};

#[cfg(feature = "webauthn")]
#[rustfmt::skip]
const ENGINE_KEY_ROWS: &[(Operation, [Outcome; 6])] = &[
    //                        new user  password only  remembered     stale          fresh  administrator
    (Operation::RegisterKey, [DONE,  NEEDS_OTP,     NEEDS_REAUTH,  NEEDS_REAUTH,  DONE,  DONE]),
];

#[cfg(not(feature = "webauthn"))]
const ENGINE_KEY_ROWS: &[(Operation, [Outcome; 6])] = &[];

/// The caller a column stands for: a session's own, or the administrator.
async fn engine_caller(h: &Harness, who: Who, client: &mut Client) -> Caller {
    let caller = match who {
        Who::Administrator => h.administrator(),
        _ => h.caller_of(client).await,
    };
    assert_eq!(Some(h.two_factor.caller_state(&caller)), who.caller_state());
    caller
}

/// What an operation acts on: the user's own device, and a pending one to confirm.
struct Targets {
    own: DeviceId,
    pending: Option<Totp>,
}

async fn perform(h: &Harness, operation: Operation, caller: &Caller, targets: &Targets) -> Outcome {
    use Operation::*;
    let tf = &h.two_factor;
    let own = &targets.own;
    let done = match operation {
        EnrollTotp => tf
            .enroll_totp(caller, "New", "alice", TotpSettings::default())
            .await
            .map(drop),
        EnrollHotp => tf
            .enroll_hotp(caller, "New", "alice", HotpSettings::default())
            .await
            .map(drop),
        AddOutOfBandDevice => tf
            .add_out_of_band_device(caller, "Other", "email", "alice+other@example.com")
            .await
            .map(drop),
        ConfirmDevice => {
            let pending = targets.pending.as_ref().unwrap();
            let id: DeviceId = pending.id.parse().unwrap();
            let first = !tf.is_configured(caller.user()).await.unwrap();
            match tf
                .confirm_device(caller, &id, &pending.code(&h.clock))
                .await
            {
                // Only a user's very first device is their first.
                Ok(confirmed) if confirmed.first != first => return Err("wrong_first_flag"),
                other => other.map(drop),
            }
        }
        GenerateBackupCodes => tf.generate_backup_codes(caller).await.map(drop),
        DeleteDevice => match tf.delete_device(caller, own).await {
            Ok(false) => return Err("nothing_deleted"),
            other => other.map(drop),
        },
        DeleteAllDevices => tf.delete_all_devices(caller).await.map(drop),
        RenameDevice => tf.rename_device(caller, own, "Renamed").await.map(drop),
        SetDefaultDevice => tf.set_default_device(caller, own).await.map(drop),
        RegisterKey => register_key(h, caller).await,
    };
    done.map_err(|e| e.kind())
}

#[cfg(feature = "webauthn")]
async fn register_key(h: &Harness, caller: &Caller) -> Result<(), tower_otp::device::Error> {
    let options = h.two_factor.begin_key_registration(caller, "Key").await?;
    let answer = common::api_harness::SoftKey::new().register(&json!(options));
    let answer = serde_json::from_value(answer).unwrap();
    let first = !h.two_factor.is_configured(caller.user()).await?;
    let registered = h
        .two_factor
        .finish_key_registration(caller, &answer)
        .await?;
    assert_eq!(
        registered.first, first,
        "only a user's first factor is their first"
    );
    Ok(())
}

#[cfg(not(feature = "webauthn"))]
async fn register_key(_h: &Harness, _caller: &Caller) -> Result<(), tower_otp::device::Error> {
    unreachable!("security-key rows need the feature `webauthn`")
}

async fn engine_cell(
    backend: &Backend,
    operation: Operation,
    who: Who,
    expect: Outcome,
) -> Vec<String> {
    let h = Harness::start(backend).await;
    let (account, mut client) = h.world(who).await;
    let caller = engine_caller(&h, who, &mut client).await;
    let own = match &account {
        Some(account) => account.phone.id.clone(),
        None => h.pending_totp("Pending").await.id,
    };
    let pending = match operation {
        Operation::ConfirmDevice => Some(h.pending_totp("Tablet").await),
        _ => None,
    };
    let targets = Targets {
        own: own.parse().unwrap(),
        pending,
    };
    let before = h.devices().await;
    let got = perform(&h, operation, &caller, &targets).await;
    let mut mismatches = Vec::new();
    if got != expect {
        mismatches.push(format!(
            "{operation:?} by {who:?}: expected {expect:?}, got {got:?}"
        ));
    }
    if expect.is_err() && h.devices().await != before {
        mismatches.push(format!(
            "{operation:?} by {who:?}: refused, yet the devices changed"
        ));
    }
    mismatches
}

async fn engine_matrix(backend: Backend) {
    let mut mismatches = Vec::new();
    for (operation, row) in ENGINE.iter().chain(ENGINE_KEY_ROWS) {
        for (who, expect) in ENGINE_COLUMNS.iter().zip(row) {
            mismatches.extend(engine_cell(&backend, *operation, *who, *expect).await);
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} cells differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

// ----- both stores -----------------------------------------------------------------------------

#[tokio::test]
async fn api_matrix_on_the_memory_store() {
    api_matrix(Backend::Memory).await;
}

#[tokio::test]
async fn engine_matrix_on_the_memory_store() {
    engine_matrix(Backend::Memory).await;
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn api_matrix_on_redis() {
    api_matrix(common::api_harness::shared_redis()).await;
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn engine_matrix_on_redis() {
    engine_matrix(common::api_harness::shared_redis()).await;
}

// ----- push approvals ---------------------------------------------------------------------------

/// The rows of push approvals (feature `push`): the login's poll and the phone's answer in
/// the API table, and enrolling and confirming a push device in the engine table.
#[cfg(feature = "push")]
mod push {
    use tower_otp::clock::Clock;
    use tower_otp::push::{ApprovalUse, Decision};

    use super::*;

    /// An endpoint of push approvals.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(super) enum Endpoint {
        /// `GET approvals/{id}` of an approval the phone approved.
        PollApproval,
        /// `POST approvals/{id}/answer`: the phone's approval.
        AnswerApproval,
    }

    impl Endpoint {
        pub(super) fn route(self) -> (&'static str, &'static str) {
            match self {
                Endpoint::PollApproval => ("GET", "approvals/{id}"),
                Endpoint::AnswerApproval => ("POST", "approvals/{id}/answer"),
            }
        }
    }

    #[rustfmt::skip]
    pub(super) const API: &[(Endpoint, [Expect; 6])] = {
        use self::Endpoint::*;
        &[
        //                     anonymous  new user  password only  remembered  stale     fresh
        // An approved push is how a password-only session verifies (a new user's first
        // device is confirmed by it).
        (PollApproval,     [LOG_IN,   ok(200),  ok(200),       ok(200),    ok(200),  ok(200)]),
        // The phone's answer carries no session at all: the signature proves it.
        (AnswerApproval,   [ok(200),  ok(200),  ok(200),       ok(200),    ok(200),  ok(200)]),
        ]
    };

    /// A push device of the user added by the administrator: confirmed by a first approval
    /// if the user has a factor, pending (their first device to be) if not.
    async fn push_device(h: &Harness, configured: bool) -> DeviceId {
        let admin = h.administrator();
        let device = h
            .two_factor
            .enroll_push(&admin, "Push", "token", &h.phone.public_key())
            .await
            .unwrap();
        if configured {
            let id = approved(h, &admin, &device.id).await;
            let used = h.two_factor.use_approval(&admin, &id).await.unwrap();
            assert!(matches!(used, ApprovalUse::Confirmed(_)), "{used:?}");
        }
        device.id
    }

    /// Sends an approval for `caller`'s login and approves it on the phone; its id.
    async fn approved(h: &Harness, caller: &Caller, device: &DeviceId) -> String {
        let requested = h.two_factor.request_approval(caller, device).await.unwrap();
        let id = requested.id.as_str().to_owned();
        let answer = h.phone.signed(
            &id,
            Decision::Approve,
            Some(requested.number),
            h.clock.now(),
        );
        h.two_factor.answer_approval(&id, &answer).await.unwrap();
        id
    }

    async fn api_cell(
        backend: &Backend,
        endpoint: Endpoint,
        who: Who,
        expect: Expect,
    ) -> Vec<String> {
        let mut world = World::new(backend, who).await;
        let device = push_device(&world.h, world.account.is_some()).await;
        let (method, path, body) = match endpoint {
            Endpoint::PollApproval => {
                let id = match who {
                    // No session to ask with: an approval of another login.
                    Who::Anonymous => approved(&world.h, &world.h.administrator(), &device).await,
                    _ => {
                        let requested = world
                            .client
                            .post("/2fa/challenges", json!({"device_id": device.as_str()}))
                            .await;
                        assert_eq!(requested.status, 200, "{:?}", requested.json);
                        let id = requested.json["id"].as_str().unwrap().to_owned();
                        let number = requested.json["number"].as_u64().unwrap() as u8;
                        let answer = world.h.phone.signed(
                            &id,
                            Decision::Approve,
                            Some(number),
                            world.h.clock.now(),
                        );
                        world
                            .h
                            .two_factor
                            .answer_approval(&id, &answer)
                            .await
                            .unwrap();
                        id
                    }
                };
                ("GET", format!("/2fa/approvals/{id}"), None)
            }
            Endpoint::AnswerApproval => {
                let admin = world.h.administrator();
                let requested = world
                    .h
                    .two_factor
                    .request_approval(&admin, &device)
                    .await
                    .unwrap();
                let id = requested.id.as_str();
                let body = world.h.phone.answer(
                    id,
                    Decision::Approve,
                    Some(requested.number),
                    world.h.clock.now(),
                );
                ("POST", format!("/2fa/approvals/{id}/answer"), Some(body))
            }
        };
        let mut mismatches = send_and_compare(
            &mut world,
            &format!("{endpoint:?}"),
            (method, path, body),
            expect,
        )
        .await;
        if endpoint == Endpoint::PollApproval && expect.0 < 400 && !world.client.is_verified().await
        {
            mismatches.push(format!(
                "{endpoint:?} as {who:?}: the approval did not verify the session"
            ));
        }
        mismatches
    }

    /// A factor-changing operation of push devices.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Operation {
        EnrollPush,
        /// `use_approval` of an approved approval for a pending push device.
        ConfirmPush,
    }

    #[rustfmt::skip]
    const ENGINE: &[(Operation, [Outcome; 6])] = {
        use self::Operation::*;
        &[
        //                  new user  password only  remembered     stale          fresh  administrator
        (EnrollPush,    [DONE,     NEEDS_OTP,     NEEDS_REAUTH,  NEEDS_REAUTH,  DONE,  DONE]),
        (ConfirmPush,   [DONE,     NEEDS_OTP,     NEEDS_REAUTH,  NEEDS_REAUTH,  DONE,  DONE]),
        ]
    };

    async fn perform(h: &Harness, operation: Operation, caller: &Caller) -> Outcome {
        let tf = &h.two_factor;
        let done = match operation {
            Operation::EnrollPush => tf
                .enroll_push(caller, "New", "token", &h.phone.public_key())
                .await
                .map(drop),
            Operation::ConfirmPush => {
                let device = push_device(h, false).await;
                let first = !tf.is_configured(caller.user()).await.unwrap();
                let id = approved(h, caller, &device).await;
                match tf.use_approval(caller, &id).await {
                    Ok(ApprovalUse::Confirmed(confirmed)) if confirmed.first == first => Ok(()),
                    Ok(other) => {
                        return Err(if matches!(other, ApprovalUse::Confirmed(_)) {
                            "wrong_first_flag"
                        } else {
                            "not_confirmed"
                        });
                    }
                    Err(error) => Err(error),
                }
            }
        };
        done.map_err(|e| e.kind())
    }

    async fn engine_cell(
        backend: &Backend,
        operation: Operation,
        who: Who,
        expect: Outcome,
    ) -> Vec<String> {
        let h = Harness::start(backend).await;
        let (_, mut client) = h.world(who).await;
        let caller = engine_caller(&h, who, &mut client).await;
        let before = h.devices().await;
        let got = perform(&h, operation, &caller).await;
        let mut mismatches = Vec::new();
        if got != expect {
            mismatches.push(format!(
                "{operation:?} by {who:?}: expected {expect:?}, got {got:?}"
            ));
        }
        // A refused confirmation leaves the pending device it was about, and nothing else.
        let after: Vec<_> = h
            .devices()
            .await
            .into_iter()
            .filter(|d| d.1 || d.2 != "Push")
            .collect();
        if expect.is_err() && after != before {
            mismatches.push(format!(
                "{operation:?} by {who:?}: refused, yet the devices changed"
            ));
        }
        mismatches
    }

    async fn matrix(backend: Backend) {
        let mut mismatches = Vec::new();
        for (endpoint, row) in API {
            for (who, expect) in API_COLUMNS.iter().zip(row) {
                mismatches.extend(api_cell(&backend, *endpoint, *who, *expect).await);
            }
        }
        for (operation, row) in ENGINE {
            for (who, expect) in ENGINE_COLUMNS.iter().zip(row) {
                mismatches.extend(engine_cell(&backend, *operation, *who, *expect).await);
            }
        }
        assert!(
            mismatches.is_empty(),
            "{} cells differ:\n{}",
            mismatches.len(),
            mismatches.join("\n")
        );
    }

    #[tokio::test]
    async fn push_rows_on_the_memory_store() {
        matrix(Backend::Memory).await;
    }

    #[cfg(feature = "redis")]
    #[tokio::test]
    async fn push_rows_on_redis() {
        matrix(common::api_harness::shared_redis()).await;
    }
}

// ----- the pages table -------------------------------------------------------------------------

/// A form of the pages (`ui::router`, at `/account/two-factor`).
#[cfg(feature = "ui")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "webauthn"), allow(dead_code))]
enum Form {
    AddApp,
    AddPhone,
    NewBackupCodes,
    RemoveDevice,
    RenameDevice,
    MakeDefault,
    RevokeBrowser,
    RevokeAllBrowsers,
    DisableWithCode,
    DisableWithWrongCode,
    LogoutAll,
    /// Adding a security key: its ceremony page (feature `webauthn`).
    AddSecurityKey,
}

/// What a form's answer must be.
#[cfg(feature = "ui")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Page {
    /// To the application's login page.
    Login,
    /// To the verification page, to come back with a fresh code.
    StepUp,
    /// The page says what is wrong; nothing changed.
    Shown,
    /// Done: the next page, without an error.
    Done,
}

/// The columns of [`PAGES`].
#[cfg(feature = "ui")]
const PAGE_COLUMNS: [Who; 6] = [
    Who::Anonymous,
    Who::NewUser,
    Who::PasswordOnly,
    Who::Remembered,
    Who::Stale,
    Who::Fresh,
];

#[cfg(feature = "ui")]
#[rustfmt::skip]
const PAGES: &[(Form, [Page; 6])] = {
    use Form::*;
    use Page::*;
    &[
    //                        anonymous  new user  password only  remembered  stale   fresh
    (AddApp,               [Login,     Done,     StepUp,        StepUp,     StepUp, Done]),
    (AddPhone,             [Login,     Done,     StepUp,        StepUp,     StepUp, Done]),
    // A new user has nothing to back up yet.
    (NewBackupCodes,       [Login,     Shown,    StepUp,        StepUp,     StepUp, Done]),
    (RemoveDevice,         [Login,     Done,     StepUp,        StepUp,     StepUp, Done]),
    (RenameDevice,         [Login,     Done,     StepUp,        Done,       Done,   Done]),
    (MakeDefault,          [Login,     Done,     StepUp,        Done,       Done,   Done]),
    (RevokeBrowser,        [Login,     Done,     StepUp,        Done,       Done,   Done]),
    (RevokeAllBrowsers,    [Login,     Done,     StepUp,        Done,       Done,   Done]),
    // The code in the form is the fresh verification.
    (DisableWithCode,      [Login,     Done,     Done,          Done,       Done,   Done]),
    (DisableWithWrongCode, [Login,     Done,     Shown,         Shown,      Shown,  Shown]),
    (LogoutAll,            [Login,     Done,     StepUp,        Done,       Done,   Done]),
    ]
};

#[cfg(all(feature = "ui", feature = "webauthn"))]
#[rustfmt::skip]
const KEY_PAGES: &[(Form, [Page; 6])] = {
    use Page::*;
    &[
    //                                  anonymous  new user  password only  remembered  stale   fresh
    (Form::AddSecurityKey,          [Login,     Done,     StepUp,        StepUp,     StepUp, Done]),
    ]
};

#[cfg(all(feature = "ui", not(feature = "webauthn")))]
const KEY_PAGES: &[(Form, [Page; 6])] = &[];

#[cfg(feature = "ui")]
impl World {
    /// The form's path and fields, without the CSRF token.
    async fn form(&self, form: Form) -> (String, String) {
        use Form::*;
        let base = "/account/two-factor";
        match form {
            AddApp => (format!("{base}/setup/method/totp"), "name=Phone".into()),
            AddPhone => (
                format!("{base}/setup/method/sms"),
                "name=Phone&destination=%2B31612345678".into(),
            ),
            NewBackupCodes => (format!("{base}/backup-codes"), String::new()),
            RemoveDevice => (
                format!("{base}/devices/{}/remove", self.own_device().await),
                String::new(),
            ),
            RenameDevice => (
                format!("{base}/devices/{}/rename", self.own_device().await),
                "name=Renamed".into(),
            ),
            MakeDefault => (
                format!("{base}/devices/{}/default", self.own_device().await),
                String::new(),
            ),
            RevokeBrowser => (
                format!("{base}/browsers/{}/revoke", self.remembered_browser().await),
                String::new(),
            ),
            RevokeAllBrowsers => (format!("{base}/browsers/revoke-all"), String::new()),
            DisableWithCode => (
                format!("{base}/disable"),
                format!("code={}", self.phone_code()),
            ),
            DisableWithWrongCode => (
                format!("{base}/disable"),
                format!("code={}", self.wrong_code()),
            ),
            LogoutAll => (format!("{base}/logout-all"), String::new()),
            AddSecurityKey => (format!("{base}/setup/method/webauthn"), "name=Key".into()),
        }
    }

    /// The session's CSRF token, from the first of two pages that has a form: the disable
    /// page (any user with a factor) or the profile (a user without one). None for an
    /// anonymous visitor.
    async fn csrf(&mut self) -> String {
        let marker = "name=\"csrf\" value=\"";
        for page in ["/account/two-factor/disable", "/account/two-factor"] {
            let page = self.client.get(page).await;
            if let Some((_, rest)) = page.text.split_once(marker) {
                return rest.split('"').next().unwrap_or_default().to_owned();
            }
        }
        String::new()
    }
}

#[cfg(feature = "ui")]
fn page_outcome(reply: &common::api_harness::Reply) -> Option<Page> {
    let redirect = reply.status.as_u16() == 303;
    if redirect && reply.location.starts_with("/login?") {
        Some(Page::Login)
    } else if redirect && reply.location.starts_with("/account/two-factor/verify?") {
        Some(Page::StepUp)
    } else if reply.status.as_u16() == 200 && reply.text.contains("role=\"alert\"") {
        Some(Page::Shown)
    } else if redirect || reply.status.as_u16() == 200 {
        Some(Page::Done)
    } else {
        None
    }
}

#[cfg(feature = "ui")]
async fn page_cell(backend: &Backend, form: Form, who: Who, expect: Page) -> Vec<String> {
    let mut world = World::new(backend, who).await;
    let (path, fields) = world.form(form).await;
    let token = world.csrf().await;
    let body = format!("csrf={token}&{fields}");
    let before = world.snapshot().await;
    let content_type = [("content-type", "application/x-www-form-urlencoded")];
    let reply = world
        .client
        .send_raw("POST", &path, &content_type, &body)
        .await;
    let got = page_outcome(&reply);
    let mut mismatches = Vec::new();
    if got != Some(expect) {
        mismatches.push(format!(
            "{form:?} as {who:?}: expected {expect:?}, got {got:?} ({} {})",
            reply.status, reply.location
        ));
    }
    if expect != Page::Done && world.snapshot().await != before {
        mismatches.push(format!(
            "{form:?} as {who:?}: refused, yet the devices or remembered browsers changed"
        ));
    }
    mismatches
}

#[cfg(feature = "ui")]
async fn pages_matrix(backend: Backend) {
    let mut mismatches = Vec::new();
    for (form, row) in PAGES.iter().chain(KEY_PAGES) {
        for (who, expect) in PAGE_COLUMNS.iter().zip(row) {
            mismatches.extend(page_cell(&backend, *form, *who, *expect).await);
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[cfg(feature = "ui")]
#[tokio::test]
async fn pages_matrix_on_the_memory_store() {
    pages_matrix(Backend::Memory).await;
}

#[cfg(all(feature = "ui", feature = "redis"))]
#[tokio::test]
async fn pages_matrix_on_redis() {
    pages_matrix(common::api_harness::shared_redis()).await;
}
