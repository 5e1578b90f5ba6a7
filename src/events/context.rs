//! The request an event belongs to, carried in a task-local by `OtpLayer` so that events
//! emitted anywhere during the request (in `TwoFactor` called from a handler, say) know it.

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderValue, Method, Uri};

use super::RequestMeta;

/// Longest user agent kept, in characters.
const MAX_USER_AGENT: usize = 256;

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
    fn meta(&self) -> RequestMeta {
        RequestMeta {
            method: self.method.as_str().to_owned(),
            path: self.uri.path().to_owned(),
            client_addr: self.client_addr,
            user_agent: self
                .user_agent
                .as_ref()
                .and_then(|ua| ua.to_str().ok())
                .map(|ua| ua.chars().take(MAX_USER_AGENT).collect()),
        }
    }
}

tokio::task_local! {
    static REQUEST: Arc<RequestInfo>;
}

/// Runs `future` with `info` as the current request.
pub(crate) fn scope<F: std::future::Future>(
    info: Arc<RequestInfo>,
    future: F,
) -> tokio::task::futures::TaskLocalFuture<Arc<RequestInfo>, F> {
    REQUEST.scope(info, future)
}

/// The current request, if running inside one.
pub(crate) fn current_request() -> Option<RequestMeta> {
    REQUEST.try_with(|info| info.meta()).ok()
}
