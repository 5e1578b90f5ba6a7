//! Rendering pages, and what every answer carries: security headers, redirects, errors.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::{Environment, Value};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;

use super::UiConfig;
use super::templates;
use super::visitor::Visitor;
use crate::guard::safe_next;

/// No script, no frames, styles and images from the pages' own origin, forms only to it.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The same, and scripts from the pages' own origin (never inline): for the one page whose
/// work needs the browser's WebAuthn API, marked with [`ScriptPage`].
const CSP_WITH_SCRIPT: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                               img-src 'self' data:; form-action 'self'; \
                               frame-ancestors 'none'; base-uri 'none'";

/// Marks an answer whose page runs the pages' own script.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ScriptPage;

/// The pages' shared state: settings and templates.
#[derive(Debug)]
pub(crate) struct Ui {
    pub(crate) config: UiConfig,
    templates: Environment<'static>,
}

impl Ui {
    pub(crate) fn new(config: UiConfig) -> Self {
        let templates = templates::load(&config.templates);
        Ui { config, templates }
    }

    /// `page` rendered for `visitor`, with what every template may use: `base` (where the
    /// pages are mounted), `profile_url`, `csrf` (the form token), `user`, `home_url`,
    /// `login_url`.
    pub(crate) fn render(&self, visitor: &Visitor, page: Page) -> Response {
        let mut values = page.values;
        values.insert("base", Value::from(visitor.base()));
        values.insert("profile_url", Value::from(visitor.url("/")));
        values.insert("home_url", Value::from(self.config.home_url.as_str()));
        values.insert("login_url", Value::from(self.config.login_url.as_str()));
        if let Some(token) = visitor.csrf_token() {
            values.insert("csrf", Value::from(token));
        }
        if let Some(user) = visitor.user() {
            values.insert("user", Value::from(user.as_str()));
        }
        #[cfg(feature = "webauthn")]
        values.insert(
            "security_keys",
            Value::from(visitor.session().two_factor().relying_party().is_some()),
        );
        let rendered = self
            .templates
            .get_template(page.name)
            .and_then(|template| template.render(Value::from_serialize(&values)));
        match rendered {
            Ok(html) => html_response(page.status, html),
            Err(error) => {
                tracing::error!(template = page.name, %error, "a page failed to render");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "The page could not be shown.",
                )
                    .into_response()
            }
        }
    }

    /// The error page for `code`, with `status`.
    pub(crate) fn error(&self, visitor: &Visitor, status: StatusCode, code: &str) -> Response {
        self.render(
            visitor,
            Page::new("error.html").status(status).set("error", code),
        )
    }

    /// Where to go next: `next` if it is a safe local path, else the home page.
    pub(crate) fn next_or_home(&self, next: Option<&str>) -> String {
        next.and_then(safe_next)
            .unwrap_or(&self.config.home_url)
            .to_owned()
    }

    /// The application's login page, with `next` to come back to.
    pub(crate) fn login_redirect(&self, next: &str) -> Response {
        redirect(&with_query(&self.config.login_url, "next", next))
    }
}

/// A page to render: a template and its values.
#[derive(Debug)]
pub(crate) struct Page {
    name: &'static str,
    status: StatusCode,
    values: BTreeMap<&'static str, Value>,
}

impl Page {
    pub(crate) fn new(name: &'static str) -> Self {
        Page {
            name,
            status: StatusCode::OK,
            values: BTreeMap::new(),
        }
    }

    pub(crate) fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Sets `key` to `value` for the template.
    pub(crate) fn set(mut self, key: &'static str, value: impl Serialize) -> Self {
        self.values.insert(key, Value::from_serialize(value));
        self
    }

    /// Sets `key` to markup the crate made itself (an SVG QR code): not escaped.
    pub(crate) fn set_markup(mut self, key: &'static str, markup: String) -> Self {
        self.values.insert(key, Value::from_safe_string(markup));
        self
    }
}

fn html_response(status: StatusCode, html: String) -> Response {
    (status, [(CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

/// 303 See Other to `location`: after a form, the browser fetches the next page with GET.
pub(crate) fn redirect(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::SEE_OTHER, [(LOCATION, value)]).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Characters escaped in a query value: everything but unreserved and `/`.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// `url` with `key=value` added to its query.
pub(crate) fn with_query(url: &str, key: &str, value: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!(
        "{url}{separator}{key}={}",
        utf8_percent_encode(value, QUERY_VALUE)
    )
}

/// Adds the pages' security headers to every answer, keeping a `Cache-Control` a handler
/// chose (the stylesheet's).
pub(crate) async fn security_headers(mut response: Response) -> Response {
    let csp = match response.extensions().get::<ScriptPage>() {
        Some(ScriptPage) => CSP_WITH_SCRIPT,
        None => CSP,
    };
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers
        .entry(CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// The stylesheet: the application's, or the shipped one.
pub(crate) async fn stylesheet(State(ui): State<Arc<Ui>>) -> Response {
    let css = ui
        .config
        .stylesheet
        .clone()
        .unwrap_or_else(|| templates::STYLESHEET.to_owned());
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=300"),
        ],
        css,
    )
        .into_response()
}

pub(crate) async fn not_found(State(ui): State<Arc<Ui>>, visitor: Visitor) -> Response {
    ui.error(&visitor, StatusCode::NOT_FOUND, "not_found")
}
