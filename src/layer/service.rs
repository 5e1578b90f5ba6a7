use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::Service;

use super::ResponseFuture;
use crate::events;
use crate::session::{OtpSession, SessionContext};

/// The service [`OtpLayer`](super::OtpLayer) wraps around an inner service.
#[derive(Clone, Debug)]
pub struct Otp<S> {
    inner: S,
    context: Arc<SessionContext>,
}

impl<S> Otp<S> {
    pub(crate) fn new(inner: S, context: Arc<SessionContext>) -> Self {
        Otp { inner, context }
    }

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

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Otp<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let (mut parts, body) = request.into_parts();
        let session = OtpSession::from_request(self.context.clone(), &parts);
        parts.extensions.insert(session.clone());
        let inner = self.inner.call(Request::from_parts(parts, body));
        ResponseFuture::new(events::scope(session.as_current_request(), inner), session)
    }
}
