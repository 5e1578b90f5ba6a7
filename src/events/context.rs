//! The request an event belongs to, carried in a task-local by `OtpLayer` so that events
//! emitted anywhere during the request (in `TwoFactor` called from a handler, say) know it.

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderValue, Method, Uri};

use super::RequestMeta;
use crate::confirm::ConfirmationId;

/// Longest user agent kept, in characters.
const MAX_USER_AGENT: usize = 256;

/// What events put in place of a path segment that is a secret.
pub(crate) const REDACTED_SEGMENT: &str = "{id}";

/// What the layer captured of a request: cheap clones, turned into text only when an event
/// is emitted.
#[derive(Clone, Debug)]
pub(crate) struct RequestInfo {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) client_addr: Option<IpAddr>,
    pub(crate) user_agent: Option<HeaderValue>,
}

impl RequestInfo {
    fn meta(&self, secret_after: &[Box<str>]) -> RequestMeta {
        RequestMeta {
            method: self.method.as_str().to_owned(),
            path: redact_path(self.uri.path(), secret_after),
            client_addr: self.client_addr,
            user_agent: self
                .user_agent
                .as_ref()
                .and_then(|ua| ua.to_str().ok())
                .map(|ua| ua.chars().take(MAX_USER_AGENT).collect()),
        }
    }
}

/// Whatever holds the [`RequestInfo`] of the request being served: the layer shares the
/// session's state rather than allocating a second record per request.
pub(crate) trait HoldsRequest: Send + Sync {
    fn request_info(&self) -> &RequestInfo;
}

/// The task-local value that makes a request current.
pub(crate) type CurrentRequest = Arc<dyn HoldsRequest>;

tokio::task_local! {
    static REQUEST: CurrentRequest;
}

/// Runs `future` with `request` as the current request.
pub(crate) fn scope<F: std::future::Future>(
    request: CurrentRequest,
    future: F,
) -> tokio::task::futures::TaskLocalFuture<CurrentRequest, F> {
    REQUEST.scope(request, future)
}

/// The current request, if running inside one, its path redacted (see [`redact_path`]).
pub(crate) fn current_request(secret_after: &[Box<str>]) -> Option<RequestMeta> {
    REQUEST
        .try_with(|request| request.request_info().meta(secret_after))
        .ok()
}

/// `path` with every segment that may be a secret replaced by [`REDACTED_SEGMENT`]: the
/// segment after one equal to a marker in `secret_after` (whatever it looks like, so that a
/// mistyped or truncated id is hidden too), and any segment shaped like a confirmation id
/// (wherever the application routes it: its own pages may take one in their paths).
pub(crate) fn redact_path(path: &str, secret_after: &[Box<str>]) -> String {
    let mut redacted = String::with_capacity(path.len());
    let mut previous: Option<&str> = None;
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            redacted.push('/');
        }
        let follows_marker = previous.is_some_and(|p| secret_after.iter().any(|m| **m == *p));
        if !segment.is_empty() && (follows_marker || is_confirmation_id(segment)) {
            redacted.push_str(REDACTED_SEGMENT);
        } else {
            redacted.push_str(segment);
        }
        previous = Some(segment);
    }
    redacted
}

fn is_confirmation_id(segment: &str) -> bool {
    segment.parse::<ConfirmationId>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn markers(list: &[&str]) -> Vec<Box<str>> {
        list.iter().map(|m| Box::from(*m)).collect()
    }

    #[test]
    fn segments_after_a_marker_are_redacted_whatever_they_look_like() {
        let confirmations = markers(&["confirmations"]);
        for (path, want) in [
            (
                "/2fa/confirmations/abc/confirm",
                "/2fa/confirmations/{id}/confirm",
            ),
            ("/confirmations/abc", "/confirmations/{id}"),
            ("/2fa/confirmations", "/2fa/confirmations"),
            ("/2fa/confirmations/", "/2fa/confirmations/"),
            ("/2fa/devices/0123/confirm", "/2fa/devices/0123/confirm"),
            ("/", "/"),
            ("", ""),
            ("/a//b/", "/a//b/"),
        ] {
            assert_eq!(redact_path(path, &confirmations), want, "{path}");
        }
        let custom = markers(&["confirmations", "reset"]);
        assert_eq!(
            redact_path("/account/reset/s3cr3t/confirmations/x", &custom),
            "/account/reset/{id}/confirmations/{id}"
        );
        assert_eq!(redact_path("/reset/s3cr3t", &[]), "/reset/s3cr3t");
    }

    #[test]
    fn confirmation_ids_are_redacted_anywhere() {
        let id = ConfirmationId::generate();
        let path = format!("/my/own/confirm-page/{}/done", id.as_str());
        assert_eq!(redact_path(&path, &[]), "/my/own/confirm-page/{id}/done");
        let not_an_id = "A".repeat(42);
        assert_eq!(
            redact_path(&format!("/x/{not_an_id}"), &[]),
            format!("/x/{not_an_id}")
        );
    }
}
