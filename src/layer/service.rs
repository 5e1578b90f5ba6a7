use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::Service;

use super::ResponseFuture;
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

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let session =
            OtpSession::from_request(self.context.clone(), request.headers(), request.uri());
        request.extensions_mut().insert(session.clone());
        ResponseFuture::new(self.inner.call(request), session)
    }
}
