//! Turning the second factor off, with a code.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::form::{Posted, code_problem};
use super::page::{Page, Ui, redirect, with_query};
use super::views;
use super::visitor::{Problem, Visitor};
use crate::device::DeviceId;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct DisableQuery {
    sent: Option<String>,
}

pub(crate) async fn show(
    State(ui): State<Arc<Ui>>,
    visitor: Visitor,
    Query(query): Query<DisableQuery>,
) -> Response {
    if let Err(answer) = visitor.require_user(&ui) {
        return answer;
    }
    render(&ui, &visitor, query.sent.is_some(), None).await
}

/// The page: a code field, and a button per out-of-band device to have a code sent.
async fn render(ui: &Ui, visitor: &Visitor, sent: bool, problem: Option<Problem>) -> Response {
    let Some(user) = visitor.user() else {
        return ui.login_redirect(&visitor.url("/disable"));
    };
    let devices = match visitor.session().two_factor().devices(user).await {
        Ok(devices) => views::confirmed(&devices),
        Err(_) => return visitor.unavailable(ui),
    };
    let page = Page::new("disable.html")
        .set("configured", !devices.is_empty())
        .set("devices", devices)
        .set("sent", sent)
        .set("error", problem);
    ui.render(visitor, page)
}

/// The disable form: a code from any of the user's devices, backup codes included.
#[derive(Debug, Deserialize)]
pub(crate) struct DisableForm {
    #[serde(default)]
    code: String,
}

pub(crate) async fn submit(State(ui): State<Arc<Ui>>, posted: Posted<DisableForm>) -> Response {
    let Posted { visitor, form } = posted;
    let configured = match visitor.user() {
        Some(user) => match visitor.is_configured(&ui, user).await {
            Ok(configured) => configured,
            Err(answer) => return answer,
        },
        None => return ui.login_redirect(&visitor.url("/disable")),
    };
    // Backup codes have letters: only an empty field is caught here.
    if configured && let Some(problem) = code_problem(&form.code, true) {
        return render(&ui, &visitor, false, Some(problem)).await;
    }
    let code = configured.then_some(form.code.as_str());
    match visitor.session().disable_second_factor(code).await {
        Ok(Some(_)) => redirect(&with_query(&visitor.url("/"), "done", "disabled")),
        Ok(None) => render(&ui, &visitor, false, Some(Problem::new("empty_code"))).await,
        Err(error) => match visitor.problem(&ui, &error, &visitor.url("/disable")) {
            Ok(problem) => render(&ui, &visitor, false, Some(problem)).await,
            Err(answer) => answer,
        },
    }
}

/// Sends a code to one of the user's out-of-band devices, to disable with.
#[derive(Debug, Deserialize)]
pub(crate) struct SendForm {
    device: String,
}

pub(crate) async fn send(State(ui): State<Arc<Ui>>, posted: Posted<SendForm>) -> Response {
    let Posted { visitor, form } = posted;
    let Some(caller) = visitor.caller() else {
        return ui.login_redirect(&visitor.url("/disable"));
    };
    let Ok(device) = form.device.parse::<DeviceId>() else {
        return render(&ui, &visitor, false, Some(Problem::new("device_not_found"))).await;
    };
    let sent = visitor
        .session()
        .two_factor()
        .send_challenge(caller, &device)
        .await;
    match sent {
        Ok(_) => redirect(&with_query(&visitor.url("/disable"), "sent", "1")),
        Err(error) => match visitor.problem(&ui, &error.into(), &visitor.url("/disable")) {
            Ok(problem) => render(&ui, &visitor, false, Some(problem)).await,
            Err(answer) => answer,
        },
    }
}
