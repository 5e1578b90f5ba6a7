//! The setup wizard: introduction, choose a method, configure it, confirm it with a code,
//! done.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::form::{NextQuery, Posted, code_problem};
use super::page::{Page, Ui, redirect, with_query};
use super::views::DeviceItem;
use super::visitor::{Problem, Visitor};
use crate::device::{Device, DeviceId, DeviceKind, Enrollment, HotpSettings, TotpSettings};
use crate::engine::Method;
use crate::guard::safe_next;

/// A method as the wizard offers it.
#[derive(Debug, Serialize)]
struct MethodItem {
    key: String,
    kind: &'static str,
    shared_secret: bool,
    out_of_band: bool,
}

impl From<&Method> for MethodItem {
    fn from(method: &Method) -> Self {
        MethodItem {
            key: method.key().to_owned(),
            kind: method.kind().as_str(),
            shared_secret: method.is_shared_secret(),
            out_of_band: method.is_out_of_band(),
        }
    }
}

/// The engine's methods that the wizard knows how to set up: a shared secret (TOTP, HOTP)
/// or a destination (every out-of-band channel). Backup codes have a page of their own; a
/// kind the wizard has no step for yet is not offered.
fn offered(visitor: &Visitor) -> Vec<Method> {
    visitor
        .session()
        .two_factor()
        .methods()
        .into_iter()
        .filter(|method| {
            method.is_shared_secret()
                || method.is_out_of_band()
                || method.kind() == DeviceKind::WebAuthn
        })
        .collect()
}

fn find_offered(visitor: &Visitor, key: &str) -> Option<Method> {
    offered(visitor)
        .into_iter()
        .find(|method| method.key() == key)
}

/// `url` with the safe `next`, if there is one.
pub(crate) fn keep_next(url: String, next: Option<&str>) -> String {
    match next.and_then(safe_next) {
        Some(next) => with_query(&url, "next", next),
        None => url,
    }
}

pub(crate) async fn intro(
    State(ui): State<Arc<Ui>>,
    visitor: Visitor,
    Query(query): Query<NextQuery>,
) -> Response {
    let configured = match visitor.require_fresh(&ui).await {
        Ok((_, _, configured)) => configured,
        Err(answer) => return answer,
    };
    let methods: Vec<MethodItem> = offered(&visitor).iter().map(MethodItem::from).collect();
    let page = Page::new("setup.html")
        .set("methods", methods)
        .set("configured", configured)
        .set("next", query.next.as_deref().and_then(safe_next));
    ui.render(&visitor, page)
}

pub(crate) async fn method(
    State(ui): State<Arc<Ui>>,
    visitor: Visitor,
    Path(key): Path<String>,
    Query(query): Query<NextQuery>,
) -> Response {
    if let Err(answer) = visitor.require_fresh(&ui).await {
        return answer;
    }
    let Some(method) = find_offered(&visitor, &key) else {
        return ui.error(&visitor, axum::http::StatusCode::NOT_FOUND, "not_found");
    };
    method_page(&ui, &visitor, &method, query.next.as_deref(), None, None)
}

/// The page that configures `method`: a name, and a destination for out-of-band methods.
fn method_page(
    ui: &Ui,
    visitor: &Visitor,
    method: &Method,
    next: Option<&str>,
    destination: Option<&str>,
    problem: Option<Problem>,
) -> Response {
    let page = Page::new("setup_method.html")
        .set("method", MethodItem::from(method))
        .set("next", next.and_then(safe_next))
        .set("destination", destination)
        .set("error", problem);
    ui.render(visitor, page)
}

/// The configure form: a name, and a destination for out-of-band methods.
#[derive(Debug, Deserialize)]
pub(crate) struct StartForm {
    #[serde(default)]
    name: String,
    destination: Option<String>,
    next: Option<String>,
}

pub(crate) async fn start(
    State(ui): State<Arc<Ui>>,
    Path(key): Path<String>,
    posted: Posted<StartForm>,
) -> Response {
    let Posted { visitor, form } = posted;
    let (user, caller) = match visitor.require_user(&ui) {
        Ok(found) => found,
        Err(to_login) => return to_login,
    };
    let Some(method) = find_offered(&visitor, &key) else {
        return ui.error(&visitor, axum::http::StatusCode::NOT_FOUND, "not_found");
    };
    let next = form.next.as_deref();
    let back = keep_next(visitor.url(&format!("/setup/method/{key}")), next);
    let two_factor = visitor.session().two_factor();
    let account = ui.config.account_for(&user);
    let name = form.name.trim();
    let started = match method.kind() {
        DeviceKind::Totp => two_factor
            .enroll_totp(&caller, name, &account, TotpSettings::default())
            .await
            .map(Started::SharedSecret),
        DeviceKind::Hotp => two_factor
            .enroll_hotp(&caller, name, &account, HotpSettings::default())
            .await
            .map(Started::SharedSecret),
        #[cfg(feature = "webauthn")]
        DeviceKind::WebAuthn => two_factor
            .begin_key_registration(&caller, name)
            .await
            .map(|options| Started::SecurityKey(Box::new(options))),
        // `offered` lets through nothing else.
        _ => {
            let destination = form.destination.as_deref().unwrap_or_default();
            two_factor
                .add_out_of_band_device(&caller, name, method.key(), destination)
                .await
                .map(Started::OutOfBand)
        }
    };
    match started {
        Ok(Started::SharedSecret(enrolment)) => {
            Confirm::new(&enrolment.device, next).shared_secret(&ui, &visitor, &enrolment)
        }
        #[cfg(feature = "webauthn")]
        Ok(Started::SecurityKey(options)) => {
            use super::keys::{Ceremony, ceremony_page};
            ceremony_page(&ui, &visitor, Ceremony::Register, &options, next, None)
        }
        Ok(Started::OutOfBand(device)) => {
            // The first code goes out at once; a refusal (a cooldown) shows on the next page.
            let sent = two_factor.send_challenge(&caller, &device.id).await;
            let problem = match sent {
                Ok(_) => None,
                Err(error) => match visitor.problem(&ui, &error.into(), &back) {
                    Ok(problem) => Some(problem),
                    Err(answer) => return answer,
                },
            };
            Confirm::new(&device, next).render(&ui, &visitor, problem.is_none(), problem)
        }
        Err(error) => match visitor.problem(&ui, &error.into(), &back) {
            Ok(problem) => method_page(
                &ui,
                &visitor,
                &method,
                next,
                form.destination.as_deref(),
                Some(problem),
            ),
            Err(answer) => answer,
        },
    }
}

/// What configuring a method made.
enum Started {
    SharedSecret(Enrollment),
    OutOfBand(Device),
    /// A security key's registration, begun: the options for the browser.
    #[cfg(feature = "webauthn")]
    SecurityKey(Box<crate::webauthn::KeyRegistrationOptions>),
}

/// The confirmation step of a new device.
struct Confirm<'a> {
    device: DeviceItem,
    next: Option<&'a str>,
}

impl<'a> Confirm<'a> {
    fn new(device: &Device, next: Option<&'a str>) -> Self {
        Confirm {
            device: DeviceItem::from(device),
            next: next.and_then(safe_next),
        }
    }

    fn page(&self, sent: bool, problem: Option<Problem>) -> Page {
        Page::new("setup_confirm.html")
            .set("device", &self.device)
            .set("next", self.next)
            .set("sent", sent)
            .set("error", problem)
    }

    /// The page that shows a new app's secret, once: as a QR code and in groups of four
    /// characters for typing.
    fn shared_secret(&self, ui: &Ui, visitor: &Visitor, enrolment: &Enrollment) -> Response {
        let secret = enrolment.secret.to_base32();
        let groups: Vec<String> = secret
            .as_bytes()
            .chunks(4)
            .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
            .collect();
        let mut page = self.page(false, None).set("secret_groups", groups);
        if let Ok(svg) = enrolment.uri.to_svg() {
            // Inline, without the XML declaration that HTML has no use for.
            let start = svg.find("<svg").unwrap_or(0);
            page = page.set_markup("qr_svg", svg[start..].to_owned());
        }
        ui.render(visitor, page)
    }

    fn render(&self, ui: &Ui, visitor: &Visitor, sent: bool, problem: Option<Problem>) -> Response {
        ui.render(visitor, self.page(sent, problem))
    }
}

/// The confirmation form: the new device and a code from it.
#[derive(Debug, Deserialize)]
pub(crate) struct ConfirmForm {
    device: String,
    #[serde(default)]
    code: String,
    next: Option<String>,
}

pub(crate) async fn confirm(State(ui): State<Arc<Ui>>, posted: Posted<ConfirmForm>) -> Response {
    let Posted { visitor, form } = posted;
    let device = match pending_device(&ui, &visitor, &form.device).await {
        Ok(device) => device,
        Err(answer) => return answer,
    };
    let next = form.next.as_deref();
    let step = Confirm::new(&device, next);
    if let Some(problem) = code_problem(&form.code, false) {
        return step.render(&ui, &visitor, false, Some(problem));
    }
    let back = keep_next(visitor.url("/setup"), next);
    match visitor
        .session()
        .confirm_device(&device.id, &form.code)
        .await
    {
        Ok(_) => redirect(&keep_next(visitor.url("/setup/complete"), next)),
        Err(error) => match visitor.problem(&ui, &error, &back) {
            Ok(problem) => step.render(&ui, &visitor, false, Some(problem)),
            Err(answer) => answer,
        },
    }
}

/// Sends another code to a new out-of-band device.
#[derive(Debug, Deserialize)]
pub(crate) struct ResendForm {
    device: String,
    next: Option<String>,
}

pub(crate) async fn resend(State(ui): State<Arc<Ui>>, posted: Posted<ResendForm>) -> Response {
    let Posted { visitor, form } = posted;
    let device = match pending_device(&ui, &visitor, &form.device).await {
        Ok(device) => device,
        Err(answer) => return answer,
    };
    let Some(caller) = visitor.caller() else {
        return ui.login_redirect(&visitor.url("/setup"));
    };
    let next = form.next.as_deref();
    let step = Confirm::new(&device, next);
    let back = keep_next(visitor.url("/setup"), next);
    let sent = visitor
        .session()
        .two_factor()
        .send_challenge(caller, &device.id)
        .await;
    match sent {
        Ok(_) => step.render(&ui, &visitor, true, None),
        Err(error) => match visitor.problem(&ui, &error.into(), &back) {
            Ok(problem) => step.render(&ui, &visitor, false, Some(problem)),
            Err(answer) => answer,
        },
    }
}

/// The user's unconfirmed device `id`, or the page that says it is gone (it expired, or
/// was confirmed in another tab).
async fn pending_device(ui: &Ui, visitor: &Visitor, id: &str) -> Result<Device, Response> {
    let (user, _) = visitor.require_user(ui)?;
    let gone = || {
        ui.error(
            visitor,
            axum::http::StatusCode::NOT_FOUND,
            "device_not_found",
        )
    };
    let id: DeviceId = id.parse().map_err(|_| gone())?;
    match visitor.session().two_factor().device(&user, &id).await {
        Ok(Some(device)) if !device.confirmed => Ok(device),
        Ok(_) => Err(gone()),
        Err(_) => Err(visitor.unavailable(ui)),
    }
}

pub(crate) async fn complete(
    State(ui): State<Arc<Ui>>,
    visitor: Visitor,
    Query(query): Query<NextQuery>,
) -> Response {
    let (user, _, _) = match visitor.require_verified(&ui, &visitor.here()).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let remaining = match visitor.backup_codes_remaining(&ui, &user).await {
        Ok(remaining) => remaining,
        Err(answer) => return answer,
    };
    let page = Page::new("setup_complete.html")
        .set("backup_codes_remaining", remaining)
        .set("next", query.next.as_deref().and_then(safe_next));
    ui.render(&visitor, page)
}
