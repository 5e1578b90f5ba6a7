//! The profile: whether the second factor is on, the devices (rename, make default,
//! remove), remembered browsers (revoke one or all), signing out.

use std::future::Future;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::form::{NextForm, Posted};
use super::page::{Page, Ui, redirect, with_query};
use super::views::{self, BrowserItem, DeviceItem};
use super::visitor::{Problem, Visitor};
use crate::device::DeviceId;
use crate::remember::BrowserId;
use crate::session::SessionError;
use crate::{Caller, TwoFactor};

/// `done` names the change just made, for a line of confirmation.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ProfileQuery {
    done: Option<String>,
}

/// Changes the profile confirms; anything else in `done` is ignored.
const DONE: &[&str] = &[
    "renamed",
    "default",
    "removed",
    "revoked",
    "revoked_all",
    "disabled",
];

pub(crate) async fn show(
    State(ui): State<Arc<Ui>>,
    visitor: Visitor,
    Query(query): Query<ProfileQuery>,
) -> Response {
    if let Err(answer) = visitor.require_verified(&ui, &visitor.here()).await {
        return answer;
    }
    let done = query
        .done
        .as_deref()
        .and_then(|done| DONE.iter().find(|known| **known == done));
    render(&ui, &visitor, done.copied(), None).await
}

async fn render(
    ui: &Ui,
    visitor: &Visitor,
    done: Option<&str>,
    problem: Option<Problem>,
) -> Response {
    let Some(user) = visitor.user() else {
        return ui.login_redirect(&visitor.url("/"));
    };
    let two_factor = visitor.session().two_factor();
    let loaded = async {
        let devices = two_factor.devices(user).await?;
        let browsers = two_factor.remembered_browsers(user).await?;
        let remaining = two_factor.backup_codes_remaining(user).await?;
        Ok::<_, crate::Error>((devices, browsers, remaining))
    };
    let Ok((devices, browsers, remaining)) = loaded.await else {
        return visitor.unavailable(ui);
    };
    let devices = views::confirmed(&devices);
    let primary = devices
        .iter()
        .find(|d| d.default && !d.backup)
        .or_else(|| devices.iter().find(|d| !d.backup))
        .cloned();
    let backups: Vec<&DeviceItem> = devices
        .iter()
        .filter(|d| !d.backup && Some(&d.id) != primary.as_ref().map(|p| &p.id))
        .collect();
    let browsers: Vec<BrowserItem> = browsers.iter().map(BrowserItem::from).collect();
    let page = Page::new("profile.html")
        .set("enabled", !devices.is_empty())
        .set("primary", &primary)
        .set("backups", backups)
        .set("devices", &devices)
        .set("browsers", browsers)
        .set("backup_codes_remaining", remaining)
        .set("done", done)
        .set("error", problem);
    ui.render(visitor, page)
}

/// After a change: the profile with its confirmation, or the problem on the profile, or
/// verification first and back to the profile.
async fn after(
    ui: &Ui,
    visitor: &Visitor,
    result: Result<(), SessionError>,
    done: &str,
) -> Response {
    match result {
        Ok(()) => redirect(&with_query(&visitor.url("/"), "done", done)),
        Err(error) => match visitor.problem(ui, &error, &visitor.url("/")) {
            Ok(problem) => render(ui, visitor, None, Some(problem)).await,
            Err(answer) => answer,
        },
    }
}

/// A change to the user's device `id` through the engine, which applies the factor rule to
/// `caller`; then the profile.
async fn change_device<F, Fut>(
    ui: &Ui,
    visitor: &Visitor,
    id: &str,
    done: &str,
    change: F,
) -> Response
where
    F: FnOnce(TwoFactor, Caller, DeviceId) -> Fut,
    Fut: Future<Output = Result<(), crate::Error>>,
{
    let result = async {
        let caller = visitor.caller().ok_or(SessionError::NotAuthenticated)?;
        let id: DeviceId = id
            .parse()
            .map_err(|_| SessionError::Otp(crate::Error::DeviceNotFound))?;
        let two_factor = visitor.session().two_factor().clone();
        change(two_factor, caller.clone(), id).await?;
        Ok(())
    };
    after(ui, visitor, result.await, done).await
}

/// The rename form.
#[derive(Debug, Deserialize)]
pub(crate) struct RenameForm {
    #[serde(default)]
    name: String,
}

pub(crate) async fn rename(
    State(ui): State<Arc<Ui>>,
    Path(id): Path<String>,
    posted: Posted<RenameForm>,
) -> Response {
    let Posted { visitor, form } = posted;
    let name = form.name.trim().to_owned();
    let rename = |two_factor: TwoFactor, caller: Caller, id: DeviceId| async move {
        two_factor
            .rename_device(&caller, &id, &name)
            .await
            .map(drop)
    };
    change_device(&ui, &visitor, &id, "renamed", rename).await
}

pub(crate) async fn make_default(
    State(ui): State<Arc<Ui>>,
    Path(id): Path<String>,
    posted: Posted<NextForm>,
) -> Response {
    let make_default = |two_factor: TwoFactor, caller: Caller, id: DeviceId| async move {
        two_factor.set_default_device(&caller, &id).await.map(drop)
    };
    change_device(&ui, &posted.visitor, &id, "default", make_default).await
}

pub(crate) async fn remove(
    State(ui): State<Arc<Ui>>,
    Path(id): Path<String>,
    posted: Posted<NextForm>,
) -> Response {
    let remove = |two_factor: TwoFactor, caller: Caller, id: DeviceId| async move {
        match two_factor.delete_device(&caller, &id).await? {
            true => Ok(()),
            false => Err(crate::Error::DeviceNotFound),
        }
    };
    change_device(&ui, &posted.visitor, &id, "removed", remove).await
}

/// Remembered browsers are the user's to see and revoke once verified, as the devices are.
async fn require_verified(ui: &Ui, visitor: &Visitor) -> Result<crate::device::UserId, Response> {
    visitor
        .require_verified(ui, &visitor.url("/"))
        .await
        .map(|(user, _, _)| user)
}

pub(crate) async fn revoke_browser(
    State(ui): State<Arc<Ui>>,
    Path(id): Path<String>,
    posted: Posted<NextForm>,
) -> Response {
    let visitor = posted.visitor;
    let user = match require_verified(&ui, &visitor).await {
        Ok(user) => user,
        Err(answer) => return answer,
    };
    let result = async {
        let id: BrowserId = id
            .parse()
            .map_err(|_| SessionError::Otp(crate::Error::DeviceNotFound))?;
        visitor
            .session()
            .two_factor()
            .forget_browser(&user, &id)
            .await?;
        Ok(())
    };
    after(&ui, &visitor, result.await, "revoked").await
}

pub(crate) async fn revoke_all_browsers(
    State(ui): State<Arc<Ui>>,
    posted: Posted<NextForm>,
) -> Response {
    let visitor = posted.visitor;
    let user = match require_verified(&ui, &visitor).await {
        Ok(user) => user,
        Err(answer) => return answer,
    };
    let result = visitor
        .session()
        .two_factor()
        .forget_all_browsers(&user)
        .await
        .map(|_| ())
        .map_err(SessionError::from);
    after(&ui, &visitor, result, "revoked_all").await
}

/// Signs this session out.
pub(crate) async fn logout(State(ui): State<Arc<Ui>>, posted: Posted<NextForm>) -> Response {
    match posted.visitor.session().logout().await {
        Ok(_) => redirect(&ui.config.home_url),
        Err(_) => posted.visitor.unavailable(&ui),
    }
}

/// Signs out every session of the user, this one included.
pub(crate) async fn logout_all(State(ui): State<Arc<Ui>>, posted: Posted<NextForm>) -> Response {
    let visitor = posted.visitor;
    match visitor.session().logout_all().await {
        Ok(_) => redirect(&ui.config.home_url),
        Err(error) => match visitor.problem(&ui, &error, &visitor.url("/")) {
            Ok(problem) => render(&ui, &visitor, None, Some(problem)).await,
            Err(answer) => answer,
        },
    }
}
