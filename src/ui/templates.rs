//! The templates: the shipped defaults, embedded, and the application's replacements.

use std::collections::BTreeMap;

use minijinja::{AutoEscape, Environment};

use super::config::TemplateError;

/// The names of the pages' templates, each replaceable with
/// [`UiConfig::with_template`](super::UiConfig::with_template).
///
/// `base.html` is the layout every page extends; `macros.html` holds the words for error
/// codes, methods and device kinds, and the code field; the others are one page each.
pub const TEMPLATE_NAMES: &[&str] = &[
    "base.html",
    "macros.html",
    "verify.html",
    "setup.html",
    "setup_method.html",
    "setup_confirm.html",
    "setup_complete.html",
    "backup_codes.html",
    "backup_codes_new.html",
    "profile.html",
    "disable.html",
    "error.html",
    "security_key.html",
];

/// The shipped source of template `name`.
fn default_source(name: &str) -> &'static str {
    match name {
        "base.html" => include_str!("templates/base.html"),
        "macros.html" => include_str!("templates/macros.html"),
        "verify.html" => include_str!("templates/verify.html"),
        "setup.html" => include_str!("templates/setup.html"),
        "setup_method.html" => include_str!("templates/setup_method.html"),
        "setup_confirm.html" => include_str!("templates/setup_confirm.html"),
        "setup_complete.html" => include_str!("templates/setup_complete.html"),
        "backup_codes.html" => include_str!("templates/backup_codes.html"),
        "backup_codes_new.html" => include_str!("templates/backup_codes_new.html"),
        "profile.html" => include_str!("templates/profile.html"),
        "disable.html" => include_str!("templates/disable.html"),
        "error.html" => include_str!("templates/error.html"),
        "security_key.html" => include_str!("templates/security_key.html"),
        _ => "",
    }
}

/// The shipped stylesheet.
pub(crate) const STYLESHEET: &str = include_str!("templates/style.css");

/// An environment with autoescaping on for every template, whatever its name.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env
}

/// Every template: the application's where it gave one, else the shipped one.
pub(crate) fn load(replaced: &BTreeMap<&'static str, String>) -> Environment<'static> {
    let mut env = environment();
    for name in TEMPLATE_NAMES {
        let source = replaced
            .get(name)
            .cloned()
            .unwrap_or_else(|| default_source(name).to_owned());
        if let Err(error) = env.add_template_owned(*name, source) {
            // Replacements were checked when given, and the shipped ones by the tests.
            tracing::error!(template = name, %error, "a page template does not compile");
        }
    }
    env
}

/// Checks that `source` compiles as template `name`.
pub(crate) fn check(name: &'static str, source: &str) -> Result<(), TemplateError> {
    environment()
        .add_template_owned(name, source.to_owned())
        .map_err(|error| TemplateError::Syntax {
            name,
            message: error.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_template_compiles() {
        for name in TEMPLATE_NAMES {
            assert!(!default_source(name).is_empty(), "{name}");
            check(name, default_source(name)).unwrap();
        }
    }

    #[test]
    fn values_are_escaped_in_every_template() {
        let env = load(&BTreeMap::new());
        let html = env
            .render_str("{{ x }}", minijinja::context! { x => "<b>" })
            .unwrap();
        assert_eq!(html, "&lt;b&gt;");
    }
}
