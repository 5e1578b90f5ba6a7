//! The verification step: of a login, and the step-up that guards and change pages ask for.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::form::{Posted, code_problem};
use super::page::{Page, Ui, redirect, with_query};
use super::views::{self, DeviceItem};
use super::visitor::{Problem, Visitor};
use crate::device::{DeviceId, DeviceKind, UserId};
use crate::guard::safe_next;
use crate::session::SessionError;

/// `GET verify`: `next` is where to go after the code, `device` the device to use,
/// `sent` that a code was just sent, `login` that this is the step of a login (a session
/// already verified, by a remembered browser, goes straight on), `approval` a push approval
/// this session asked for (feature `push`): once the phone approved it, it verifies the
/// session and the page goes on.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct VerifyQuery {
    next: Option<String>,
    device: Option<String>,
    sent: Option<String>,
    login: Option<String>,
    #[cfg_attr(not(feature = "push"), allow(dead_code))]
    approval: Option<String>,
}

pub(crate) async fn show(
    State(ui): State<Arc<Ui>>,
    visitor: Visitor,
    Query(query): Query<VerifyQuery>,
) -> Response {
    let (user, _) = match visitor.require_user(&ui) {
        Ok(found) => found,
        Err(to_login) => return to_login,
    };
    let login = query.login.is_some();
    if login && visitor.is_verified() {
        return redirect(&ui.next_or_home(query.next.as_deref()));
    }
    let step = Step {
        device: query.device,
        next: query.next,
        login,
    };
    #[cfg(feature = "push")]
    if let Some(approval) = &query.approval {
        return step.approval(&ui, &visitor, &user, approval).await;
    }
    step.render(&ui, &visitor, &user, query.sent.is_some(), None)
        .await
}

/// The verification form.
#[derive(Debug, Deserialize)]
pub(crate) struct CodeForm {
    device: String,
    code: String,
    remember: Option<String>,
    next: Option<String>,
    login: Option<String>,
}

pub(crate) async fn submit(State(ui): State<Arc<Ui>>, posted: Posted<CodeForm>) -> Response {
    let Posted { visitor, form } = posted;
    let (user, _) = match visitor.require_user(&ui) {
        Ok(found) => found,
        Err(to_login) => return to_login,
    };
    let step = Step {
        device: Some(form.device.clone()),
        next: form.next.clone(),
        login: form.login.is_some(),
    };
    let device = match step.chosen(&ui, &visitor, &user).await {
        Ok(device) => device,
        Err(page) => return page,
    };
    let backup = visitor
        .session()
        .two_factor()
        .device(&user, &device)
        .await
        .ok()
        .flatten()
        .is_some_and(|d| d.kind() == DeviceKind::BackupCodes);
    if let Some(problem) = code_problem(&form.code, backup) {
        return step
            .render(&ui, &visitor, &user, false, Some(problem))
            .await;
    }
    match visitor.session().verify(&device, &form.code).await {
        Ok(_) => {
            if form.remember.is_some() {
                // Without remember cookies on the layer, the box just does nothing.
                let _ = visitor.session().remember_device().await;
            }
            redirect(&ui.next_or_home(form.next.as_deref()))
        }
        Err(error) => step.failed(&ui, &visitor, &user, &error).await,
    }
}

/// Asks for a code to be sent to an out-of-band device.
#[derive(Debug, Deserialize)]
pub(crate) struct SendForm {
    device: String,
    next: Option<String>,
    login: Option<String>,
}

pub(crate) async fn send(State(ui): State<Arc<Ui>>, posted: Posted<SendForm>) -> Response {
    let Posted { visitor, form } = posted;
    let (user, caller) = match visitor.require_user(&ui) {
        Ok(found) => found,
        Err(to_login) => return to_login,
    };
    let step = Step {
        device: Some(form.device),
        next: form.next,
        login: form.login.is_some(),
    };
    let device = match step.chosen(&ui, &visitor, &user).await {
        Ok(device) => device,
        Err(page) => return page,
    };
    #[cfg(feature = "push")]
    if is_push(&visitor, &user, &device).await {
        let requested = visitor
            .session()
            .two_factor()
            .request_approval(&caller, &device)
            .await;
        return match requested {
            Ok(requested) => redirect(&with_query(
                &step.url(&visitor),
                "approval",
                requested.id.as_str(),
            )),
            Err(error) => step.failed(&ui, &visitor, &user, &error.into()).await,
        };
    }
    let sent = visitor
        .session()
        .two_factor()
        .send_challenge(&caller, &device)
        .await;
    match sent {
        Ok(_) => redirect(&with_query(&step.url(&visitor), "sent", "1")),
        Err(error) => step.failed(&ui, &visitor, &user, &error.into()).await,
    }
}

/// Where a verification step stands: the device chosen, where to go next, whether it is a
/// login's.
#[derive(Debug)]
struct Step {
    device: Option<String>,
    next: Option<String>,
    login: bool,
}

impl Step {
    fn device_id(&self) -> Option<DeviceId> {
        self.device.as_deref()?.parse().ok()
    }

    /// The chosen device's id, or the page saying that there is no such device.
    async fn chosen(
        &self,
        ui: &Ui,
        visitor: &Visitor,
        user: &UserId,
    ) -> Result<DeviceId, Response> {
        match self.device_id() {
            Some(device) => Ok(device),
            None => {
                let problem = Some(Problem::new("device_not_found"));
                Err(self.render(ui, visitor, user, false, problem).await)
            }
        }
    }

    /// The page again with what is wrong, or the answer `error` calls for (verify first,
    /// log in again, 503).
    async fn failed(
        &self,
        ui: &Ui,
        visitor: &Visitor,
        user: &UserId,
        error: &SessionError,
    ) -> Response {
        match visitor.problem(ui, error, &self.url(visitor)) {
            Ok(problem) => self.render(ui, visitor, user, false, Some(problem)).await,
            Err(answer) => answer,
        }
    }

    fn next(&self) -> Option<&str> {
        self.next.as_deref().and_then(safe_next)
    }

    /// The page of this step, with the chosen device.
    fn url(&self, visitor: &Visitor) -> String {
        let mut url = visitor.url("/verify");
        if let Some(next) = self.next() {
            url = with_query(&url, "next", next);
        }
        if let Some(device) = self.device_id() {
            url = with_query(&url, "device", device.as_str());
        }
        if self.login {
            url = with_query(&url, "login", "1");
        }
        url
    }

    /// The push approval `id` this session asked for: once approved it verifies the session
    /// and the step goes on; while pending, the page shows the number to choose on the phone;
    /// denied, reported or expired, the page says so.
    #[cfg(feature = "push")]
    async fn approval(&self, ui: &Ui, visitor: &Visitor, user: &UserId, id: &str) -> Response {
        use crate::push::ApprovalStatus;

        let used = match visitor.session().use_approval(id).await {
            Ok(used) => used,
            Err(error) => return self.failed(ui, visitor, user, &error).await,
        };
        if used.verified.is_some() {
            return redirect(&ui.next_or_home(self.next()));
        }
        let problem = match used.status {
            ApprovalStatus::Pending => {
                let caller = match visitor.session().caller().await {
                    Ok(caller) => caller,
                    Err(error) => return self.failed(ui, visitor, user, &error).await,
                };
                let two_factor = visitor.session().two_factor();
                return match two_factor.approval(&caller, id).await {
                    Ok(record) => {
                        let waiting = PushWaiting {
                            id: id.to_owned(),
                            number: record.number,
                        };
                        self.render_with(ui, visitor, user, false, None, Some(waiting))
                            .await
                    }
                    Err(error) => self.failed(ui, visitor, user, &error.into()).await,
                };
            }
            ApprovalStatus::Expired => Problem::new("approval_expired"),
            _ => Problem::new("approval_denied"),
        };
        self.render(ui, visitor, user, false, Some(problem)).await
    }

    /// The page: the devices to choose from, the chosen one's form, the backup-code
    /// alternative. A user with no device yet is sent to set one up.
    async fn render(
        &self,
        ui: &Ui,
        visitor: &Visitor,
        user: &UserId,
        sent: bool,
        problem: Option<Problem>,
    ) -> Response {
        self.render_with(ui, visitor, user, sent, problem, None)
            .await
    }

    /// The page, with a push approval waiting for the phone when there is one.
    async fn render_with(
        &self,
        ui: &Ui,
        visitor: &Visitor,
        user: &UserId,
        sent: bool,
        problem: Option<Problem>,
        approval: Option<PushWaiting>,
    ) -> Response {
        let devices = match visitor.session().two_factor().devices(user).await {
            Ok(devices) => views::confirmed(&devices),
            Err(_) => return visitor.unavailable(ui),
        };
        if devices.is_empty() {
            if self.login {
                return redirect(&ui.next_or_home(self.next()));
            }
            let setup = visitor.url("/setup");
            return redirect(&match self.next() {
                Some(next) => with_query(&setup, "next", next),
                None => setup,
            });
        }
        let chosen = choose(&devices, self.device.as_deref());
        let (backup, others): (Vec<DeviceItem>, Vec<DeviceItem>) =
            devices.into_iter().partition(|device| device.backup);
        let page = Page::new("verify.html")
            .set("devices", others)
            .set("backup", backup.first())
            .set("chosen", chosen)
            .set("next", self.next())
            .set("login", self.login)
            .set("sent", sent)
            .set("step_up", visitor.is_verified())
            .set("approval", approval)
            .set("error", problem);
        ui.render(visitor, page)
    }
}

/// A push approval the page waits for: its id (for the link that checks it) and the number
/// to choose on the phone.
#[derive(Debug, serde::Serialize)]
struct PushWaiting {
    id: String,
    number: u8,
}

/// Whether `device` is one of the user's push devices.
#[cfg(feature = "push")]
async fn is_push(visitor: &Visitor, user: &UserId, device: &DeviceId) -> bool {
    let found = visitor.session().two_factor().device(user, device).await;
    matches!(found, Ok(Some(d)) if d.kind() == DeviceKind::Push)
}

/// The device asked for, else the default, else the first that is not backup codes, else
/// the backup codes.
fn choose(devices: &[DeviceItem], wanted: Option<&str>) -> Option<DeviceItem> {
    let wanted = wanted.and_then(|id| devices.iter().find(|d| d.id == id));
    wanted
        .or_else(|| devices.iter().find(|d| d.default && !d.backup))
        .or_else(|| devices.iter().find(|d| !d.backup))
        .or_else(|| devices.first())
        .cloned()
}
