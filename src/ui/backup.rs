//! Backup codes: how many are left, and a new set, shown once.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::form::{NextForm, NextQuery, Posted};
use super::page::{Page, Ui, with_query};
use super::visitor::Visitor;
use crate::guard::safe_next;

pub(crate) async fn show(
    State(ui): State<Arc<Ui>>,
    visitor: Visitor,
    Query(query): Query<NextQuery>,
) -> Response {
    let (user, _, configured) = match visitor.require_verified(&ui, &visitor.here()).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let remaining = match visitor.backup_codes_remaining(&ui, &user).await {
        Ok(remaining) => remaining,
        Err(answer) => return answer,
    };
    let page = Page::new("backup_codes.html")
        .set("remaining", remaining)
        .set("configured", configured)
        .set("next", query.next.as_deref().and_then(safe_next));
    ui.render(&visitor, page)
}

/// Makes a new set (the old codes stop working) and shows it once, with a text file of the
/// codes to download. The answer is never cached, as every page's.
pub(crate) async fn generate(State(ui): State<Arc<Ui>>, posted: Posted<NextForm>) -> Response {
    let Posted { visitor, form } = posted;
    let Some(caller) = visitor.caller() else {
        return ui.login_redirect(&visitor.url("/backup-codes"));
    };
    let next = form.next.as_deref().and_then(safe_next);
    let back = match next {
        Some(next) => with_query(&visitor.url("/backup-codes"), "next", next),
        None => visitor.url("/backup-codes"),
    };
    let generated = visitor
        .session()
        .two_factor()
        .generate_backup_codes(caller)
        .await;
    match generated {
        Ok(set) => {
            let codes: Vec<&str> = set.codes.iter().collect();
            let text = codes.join("\r\n") + "\r\n";
            let download = format!(
                "data:text/plain;charset=utf-8,{}",
                utf8_percent_encode(&text, NON_ALPHANUMERIC)
            );
            let page = Page::new("backup_codes_new.html")
                .set("codes", &codes)
                .set("download", download)
                .set("next", next);
            ui.render(&visitor, page)
        }
        Err(error) => match visitor.problem(&ui, &error.into(), &back) {
            Ok(problem) => {
                let page = Page::new("backup_codes.html")
                    .set("error", problem)
                    .set("next", next);
                ui.render(&visitor, page)
            }
            Err(answer) => answer,
        },
    }
}
