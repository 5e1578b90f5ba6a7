//! [`VerifiedDeviceLayer`]: loads the session before the inner service and leaves a
//! [`VerifiedDevice`] for it, or nothing.

use std::task::{Context, Poll};

use http::{Request, Response};
use tower::{Layer, Service};

use super::VerifiedDevice;
use crate::guard::ResponseFuture;
use crate::session::{OtpSession, SessionError};

/// Puts a [`VerifiedDevice`] into the extensions of every request whose session passed the
/// second factor, before the wrapped service runs; never refuses a request. Add it inside
/// [`OtpLayer`](super::OtpLayer). See the [module docs](super).
///
/// It is a layer of its own rather than a mode of `OtpLayer` so that `OtpLayer` stays lazy
/// at no cost: loading before the inner service means awaiting before calling it, which needs
/// a cloneable inner service and a boxed future; services that never ask pay none of it. It
/// also lets an application load eagerly on a subtree only.
///
/// Each request costs the one store round trip that `OtpSession` (or a guard) would make on
/// first use, and only that: the loaded state is the session's, so a handler or guard that
/// asks the session afterwards makes no second trip. When the store fails, nothing is
/// inserted (not verified: it fails closed) and the failure is logged at `warn` like a
/// guard's, at most once every 10 seconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct VerifiedDeviceLayer {
    _private: (),
}

impl VerifiedDeviceLayer {
    /// The layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> Layer<S> for VerifiedDeviceLayer {
    type Service = LoadVerifiedDevice<S>;

    fn layer(&self, inner: S) -> LoadVerifiedDevice<S> {
        LoadVerifiedDevice { inner }
    }
}

/// The service [`VerifiedDeviceLayer`] wraps around an inner service.
#[derive(Clone, Debug)]
pub struct LoadVerifiedDevice<S> {
    inner: S,
}

impl<S> LoadVerifiedDevice<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service, taken out of this one.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for LoadVerifiedDevice<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    ReqBody: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // The clone that was polled ready is the one to call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let session = request.extensions().get::<OtpSession>().cloned();
            // Whatever the request carried, only this layer's answer counts.
            request.extensions_mut().remove::<VerifiedDevice>();
            if let Some(device) = load(session.as_ref()).await {
                request.extensions_mut().insert(device);
            }
            inner.call(request).await
        })
    }
}

/// The session's verification, if it has one. `None` without `OtpLayer` (a wiring mistake the
/// guards and extractors report) and on any failure.
async fn load(session: Option<&OtpSession>) -> Option<VerifiedDevice> {
    let session = session?;
    match session.status().await {
        Ok(status) => Some(VerifiedDevice::new(status.user?, status.verified?)),
        Err(error) => {
            note_failure(&error);
            None
        }
    }
}

fn note_failure(error: &SessionError) {
    if error.is_store_failure() {
        crate::guard::outage::store_outage(error);
    } else {
        tracing::debug!(
            kind = error.kind(),
            "session not loaded: taken as not verified"
        );
    }
}
