use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::header::SET_COOKIE;
use http::{HeaderValue, Response};
use pin_project_lite::pin_project;
use tokio::task::futures::TaskLocalFuture;

use crate::events::CurrentRequest;

use crate::session::OtpSession;

pin_project! {
    /// The response future of [`Otp`](super::Otp): the inner response (run with the request
    /// known to events), plus the session cookie change the request made.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: TaskLocalFuture<CurrentRequest, F>,
        session: Option<OtpSession>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: TaskLocalFuture<CurrentRequest, F>, session: OtpSession) -> Self {
        ResponseFuture {
            inner,
            session: Some(session),
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        if let Some(session) = this.session.take() {
            write_cookie_changes(&session, &mut response);
        }
        Poll::Ready(Ok(response))
    }
}

fn write_cookie_changes<B>(session: &OtpSession, response: &mut Response<B>) {
    for cookie in session.take_set_cookies() {
        match HeaderValue::from_str(&cookie) {
            Ok(value) => {
                response.headers_mut().append(SET_COOKIE, value);
            }
            // Cookie names are validated and values are base64url, so this cannot happen; if
            // it did, sending no cookie is the safe failure.
            Err(_) => tracing::warn!("a cookie is not a valid header value"),
        }
    }
}
