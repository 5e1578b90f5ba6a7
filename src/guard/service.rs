use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::Service;

use super::policy::GuardPolicy;
use crate::session::OtpSession;

/// The service [`RequireOtpLayer`](super::RequireOtpLayer) wraps around an inner service.
#[derive(Clone, Debug)]
pub struct RequireOtp<S> {
    inner: S,
    policy: Arc<GuardPolicy>,
}

impl<S> RequireOtp<S> {
    pub(crate) fn new(inner: S, policy: Arc<GuardPolicy>) -> Self {
        RequireOtp { inner, policy }
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

/// The response future of [`RequireOtp`].
pub type ResponseFuture<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireOtp<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    ReqBody: Send + 'static,
    ResBody: From<String>,
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
        let policy = self.policy.clone();
        Box::pin(async move {
            let session = request.extensions().get::<OtpSession>().cloned();
            match policy.evaluate(session.as_ref(), request.uri()).await {
                Ok(passed) => {
                    passed.record(request.extensions_mut());
                    inner.call(request).await
                }
                Err(rejection) => {
                    tracing::debug!(
                        reason = rejection.kind().code(),
                        path = request.uri().path(),
                        "request refused by RequireOtp"
                    );
                    Ok(rejection.into_http())
                }
            }
        })
    }
}
