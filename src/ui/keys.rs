//! Security keys on the pages (feature `webauthn`): the page that runs a ceremony in the
//! browser, its finish for registration and for verification, and the script it needs.
//!
//! The ceremony's options travel in the page itself (a `data-options` attribute), and the
//! browser's answer comes back as an ordinary form field, so the script needs no request of
//! its own: only this page allows a script, from the pages' own origin, and no inline script
//! anywhere.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::form::Posted;
use super::page::{Page, ScriptPage, Ui, redirect};
use super::setup::keep_next;
use super::visitor::{Problem, Visitor};
use crate::guard::safe_next;
use crate::session::SessionError;

/// The browser's side of a ceremony.
const SCRIPT: &str = include_str!("templates/webauthn.js");

/// `GET webauthn.js`.
pub(crate) async fn script() -> Response {
    (
        [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=300"),
        ],
        SCRIPT,
    )
        .into_response()
}

/// Which ceremony a page runs.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Ceremony {
    Register,
    Verify,
}

impl Ceremony {
    fn name(self) -> &'static str {
        match self {
            Ceremony::Register => "register",
            Ceremony::Verify => "verify",
        }
    }

    fn finish_path(self) -> &'static str {
        match self {
            Ceremony::Register => "/setup/key/finish",
            Ceremony::Verify => "/verify/key/finish",
        }
    }
}

/// The page that asks the browser for the security key, with the ceremony's `options`.
pub(crate) fn ceremony_page(
    ui: &Ui,
    visitor: &Visitor,
    ceremony: Ceremony,
    options: &impl serde::Serialize,
    next: Option<&str>,
    problem: Option<Problem>,
) -> Response {
    let options = match serde_json::to_string(options) {
        Ok(options) => options,
        Err(_) => return visitor.unavailable(ui),
    };
    let page = Page::new("security_key.html")
        .set("ceremony", ceremony.name())
        .set("action", visitor.url(ceremony.finish_path()))
        .set("options", options)
        .set("next", next.and_then(safe_next))
        .set("error", problem);
    let mut answer = ui.render(visitor, page);
    answer.extensions_mut().insert(ScriptPage);
    answer
}

/// `POST verify/key`: begins a verification with one of the user's keys.
pub(crate) async fn begin_verification(
    State(ui): State<Arc<Ui>>,
    posted: Posted<super::form::NextForm>,
) -> Response {
    let Posted { visitor, form } = posted;
    verification_page(&ui, &visitor, form.next.as_deref(), None).await
}

async fn verification_page(
    ui: &Ui,
    visitor: &Visitor,
    next: Option<&str>,
    problem: Option<Problem>,
) -> Response {
    let Some(caller) = visitor.caller() else {
        return ui.login_redirect(&visitor.url("/verify"));
    };
    let back = back_to(visitor, "/verify", next);
    let begun = visitor
        .session()
        .two_factor()
        .begin_key_verification(caller)
        .await;
    match begun {
        Ok(options) => ceremony_page(ui, visitor, Ceremony::Verify, &options, next, problem),
        Err(error) => match visitor.problem(ui, &error.into(), &back) {
            Ok(problem) => ui.error(visitor, axum::http::StatusCode::CONFLICT, problem.code),
            Err(answer) => answer,
        },
    }
}

/// The browser's answer to a ceremony.
#[derive(Debug, Deserialize)]
pub(crate) struct AnswerForm {
    #[serde(default)]
    credential: String,
    next: Option<String>,
}

/// The answer, read; a malformed one is as refused as a wrong one.
fn read<T: DeserializeOwned>(answer: &str) -> Result<T, SessionError> {
    serde_json::from_str(answer).map_err(|_| SessionError::Otp(crate::device::Error::KeyRefused))
}

/// `POST verify/key/finish`: verifies the session, then on to `next`.
pub(crate) async fn finish_verification(
    State(ui): State<Arc<Ui>>,
    posted: Posted<AnswerForm>,
) -> Response {
    let Posted { visitor, form } = posted;
    let next = form.next.as_deref();
    let done = match read(&form.credential) {
        Ok(answer) => visitor.session().finish_key_verification(&answer).await,
        Err(error) => Err(error),
    };
    match done {
        Ok(_) => redirect(&ui.next_or_home(next)),
        Err(error) => {
            let back = back_to(&visitor, "/verify", next);
            match visitor.problem(&ui, &error, &back) {
                // Another try needs another ceremony.
                Ok(problem) => verification_page(&ui, &visitor, next, Some(problem)).await,
                Err(answer) => answer,
            }
        }
    }
}

/// `POST setup/key/finish`: registers the key, then on to the wizard's last page.
pub(crate) async fn finish_registration(
    State(ui): State<Arc<Ui>>,
    posted: Posted<AnswerForm>,
) -> Response {
    let Posted { visitor, form } = posted;
    let next = form.next.as_deref();
    let done = match read(&form.credential) {
        Ok(answer) => visitor.session().finish_key_registration(&answer).await,
        Err(error) => Err(error),
    };
    let back = back_to(&visitor, "/setup/method/webauthn", next);
    match done {
        Ok(_) => redirect(&back_to(&visitor, "/setup/complete", next)),
        Err(error) => match visitor.problem(&ui, &error, &back) {
            Ok(problem) => ui.error(&visitor, axum::http::StatusCode::CONFLICT, problem.code),
            Err(answer) => answer,
        },
    }
}

/// The page at `path` with the safe `next`, if there is one.
fn back_to(visitor: &Visitor, path: &str, next: Option<&str>) -> String {
    keep_next(visitor.url(path), next)
}
