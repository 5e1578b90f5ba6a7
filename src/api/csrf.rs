//! Cross-site request forgery defence for every state-changing request to the API.
//!
//! A page on another site (a sibling subdomain included) can make a browser send the
//! session cookie with a form post or a `fetch` that needs no preflight. Such requests are
//! refused before any handler runs:
//!
//! * `Sec-Fetch-Site` other than `same-origin`, `same-site` or `none` (browsers send
//!   `cross-site` for requests from a page of another site);
//! * an `Origin` other than the request's own origin (`null` included), which also catches
//!   sibling sites that `Sec-Fetch-Site` calls `same-site`;
//! * a body type other than `application/json`: only a CORS preflight lets a page of another
//!   origin send one, so a browser that ignores both headers still cannot forge the request.
//!
//! Requests without `Origin` and `Sec-Fetch-Site` (command-line and server clients) only
//! need the JSON type. GET, HEAD and OPTIONS change nothing and pass.
//!
//! So does a phone's answer to a push approval (`POST approvals/{id}/answer`): it carries no
//! cookie and is proven by the device's signature, which no page of another site can make,
//! while a phone app may send any `Origin`. Its handler still takes JSON only.

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{CONTENT_TYPE, HOST, ORIGIN};
use axum::http::uri::Authority;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use super::extract::unsupported_media_type;

const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// What the defence believes about the request's own origin.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OriginPolicy {
    /// Take the scheme and host from `X-Forwarded-Proto` and `X-Forwarded-Host`.
    pub(crate) trust_forwarded: bool,
}

/// The middleware: refuses cross-site and non-JSON state-changing requests.
pub(crate) async fn refuse_cross_site(
    State(policy): State<OriginPolicy>,
    request: Request,
    next: Next,
) -> Response {
    if changes_nothing(request.method()) || is_signed_by_a_device(&request) {
        return next.run(request).await;
    }
    match check(policy, request.headers(), request.uri()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => refusal.into_response(),
    }
}

fn changes_nothing(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The routes whose requests a device signs, by the route that matched (the template, never
/// the path the client sent).
const SIGNED_ROUTES: [&str; 1] = ["/approvals/{id}/answer"];

fn is_signed_by_a_device(request: &Request) -> bool {
    request
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|matched| {
            SIGNED_ROUTES
                .iter()
                .any(|route| matched.as_str().ends_with(route))
        })
}

fn check(policy: OriginPolicy, headers: &HeaderMap, uri: &Uri) -> Result<(), ApiError> {
    if !fetch_site_allowed(headers) || !origin_allowed(policy, headers, uri) {
        return Err(cross_site_request());
    }
    if !is_json(headers) {
        return Err(unsupported_media_type());
    }
    Ok(())
}

fn cross_site_request() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "cross_site_request",
        "Requests from other sites are refused.",
    )
}

/// Every `Sec-Fetch-Site` value names a same-site or user-initiated request. Values the
/// standard does not define are refused too: only browsers send the header.
fn fetch_site_allowed(headers: &HeaderMap) -> bool {
    headers
        .get_all(SEC_FETCH_SITE)
        .iter()
        .all(|value| matches!(value.as_bytes(), b"same-origin" | b"same-site" | b"none"))
}

/// No `Origin`, or exactly one that is the request's own.
fn origin_allowed(policy: OriginPolicy, headers: &HeaderMap, uri: &Uri) -> bool {
    let mut origins = headers.get_all(ORIGIN).iter();
    let Some(origin) = origins.next() else {
        return true;
    };
    if origins.next().is_some() {
        return false;
    }
    match (Origin::parse(origin), OwnOrigin::of(policy, headers, uri)) {
        (Some(origin), Some(own)) => own.matches(&origin),
        // `null`, anything unparsable, or a request that does not say where it went.
        _ => false,
    }
}

/// `Content-Type: application/json`, parameters (a charset) allowed.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// A serialised origin, `scheme://host[:port]`, of a page the browser shows over HTTP(S).
#[derive(Debug, PartialEq, Eq)]
struct Origin {
    scheme: Scheme,
    host: String,
    port: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn parse(text: &str) -> Option<Scheme> {
        if text.eq_ignore_ascii_case("http") {
            Some(Scheme::Http)
        } else if text.eq_ignore_ascii_case("https") {
            Some(Scheme::Https)
        } else {
            None
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

impl Origin {
    fn parse(value: &HeaderValue) -> Option<Origin> {
        let (scheme, rest) = value.to_str().ok()?.split_once("://")?;
        let scheme = Scheme::parse(scheme)?;
        let (host, port) = host_and_port(rest)?;
        Some(Origin {
            scheme,
            host,
            port: port.unwrap_or(scheme.default_port()),
        })
    }
}

/// The request's own origin: its scheme when it is known, its host and port.
#[derive(Debug)]
struct OwnOrigin {
    scheme: Option<Scheme>,
    host: String,
    port: Option<u16>,
}

impl OwnOrigin {
    /// From the request target or `Host` (or the forwarded headers, when trusted). An HTTP/1.1
    /// request does not say its scheme unless a trusted proxy does.
    fn of(policy: OriginPolicy, headers: &HeaderMap, uri: &Uri) -> Option<OwnOrigin> {
        let forwarded = |name| policy.trust_forwarded.then(|| first_value(headers, name));
        let scheme = match forwarded(X_FORWARDED_PROTO).flatten() {
            Some(proto) => Some(Scheme::parse(proto)?),
            None => uri.scheme_str().and_then(Scheme::parse),
        };
        let authority = match forwarded(X_FORWARDED_HOST).flatten() {
            Some(host) => host,
            None => match uri.authority() {
                Some(authority) => authority.as_str(),
                None => headers.get(HOST)?.to_str().ok()?,
            },
        };
        let (host, port) = host_and_port(authority)?;
        Some(OwnOrigin { scheme, host, port })
    }

    /// Same scheme (when known), host and port; a port left out is the scheme's default.
    fn matches(&self, origin: &Origin) -> bool {
        let scheme = self.scheme.unwrap_or(origin.scheme);
        let port = self.port.unwrap_or(scheme.default_port());
        scheme == origin.scheme && port == origin.port && self.host == origin.host
    }
}

/// The first of a header's comma-separated values, as the proxy nearest the client wrote it.
fn first_value(headers: &HeaderMap, name: HeaderName) -> Option<&str> {
    let value = headers.get(name)?.to_str().ok()?;
    value.split(',').next().map(str::trim)
}

/// `host[:port]` with nothing else (no user information, no path), the host in lower case.
fn host_and_port(text: &str) -> Option<(String, Option<u16>)> {
    if text.contains(['@', '/', '?', '#']) {
        return None;
    }
    let authority: Authority = text.parse().ok()?;
    if authority.host().is_empty() {
        return None;
    }
    if authority.port().is_some() && authority.port_u16().is_none() {
        return None;
    }
    Some((authority.host().to_ascii_lowercase(), authority.port_u16()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    fn verdict(trust_forwarded: bool, pairs: &[(&str, &str)]) -> Option<&'static str> {
        let policy = OriginPolicy { trust_forwarded };
        let uri = Uri::from_static("/2fa/disable");
        check(policy, &request(pairs), &uri).err().map(|e| e.code())
    }

    const REFUSED: Option<&str> = Some("cross_site_request");

    #[test]
    fn own_origin_passes_and_others_are_refused() {
        let host = ("host", "app.example.com");
        for origin in [
            "http://app.example.com",
            "https://app.example.com",
            "https://APP.example.com:443",
        ] {
            assert_eq!(
                verdict(false, &[host, ("origin", origin)]),
                None,
                "{origin}"
            );
        }
        for origin in [
            "null",
            "https://evil.example",
            "https://sub.app.example.com",
            "https://app.example.com:8443",
            "https://app.example.com.evil.example",
            "https://user@app.example.com",
            "https://app.example.com/path",
            "ftp://app.example.com",
            "app.example.com",
            "",
        ] {
            assert_eq!(
                verdict(false, &[host, ("origin", origin)]),
                REFUSED,
                "{origin}"
            );
        }
    }

    #[test]
    fn ports_must_agree() {
        let origin = ("origin", "http://127.0.0.1:3000");
        assert_eq!(verdict(false, &[("host", "127.0.0.1:3000"), origin]), None);
        assert_eq!(
            verdict(false, &[("host", "127.0.0.1:3001"), origin]),
            REFUSED
        );
        assert_eq!(verdict(false, &[("host", "127.0.0.1"), origin]), REFUSED);
        let v6 = ("origin", "http://[::1]:3000");
        assert_eq!(verdict(false, &[("host", "[::1]:3000"), v6]), None);
    }

    #[test]
    fn an_origin_without_a_host_to_compare_with_is_refused() {
        assert_eq!(
            verdict(false, &[("origin", "https://app.example.com")]),
            REFUSED
        );
        assert_eq!(
            verdict(
                false,
                &[
                    ("origin", "https://a.example"),
                    ("origin", "https://a.example"),
                    ("host", "a.example")
                ]
            ),
            REFUSED
        );
    }

    #[test]
    fn forwarded_headers_count_only_when_trusted() {
        let behind_proxy = [
            ("host", "10.0.0.5:8080"),
            ("x-forwarded-host", "app.example.com"),
            ("x-forwarded-proto", "https"),
            ("origin", "https://app.example.com"),
        ];
        assert_eq!(verdict(true, &behind_proxy), None);
        assert_eq!(verdict(false, &behind_proxy), REFUSED);
        // Once the proxy says https, a page served over http is another origin.
        let downgraded = [
            ("x-forwarded-host", "app.example.com"),
            ("x-forwarded-proto", "https"),
            ("origin", "http://app.example.com"),
        ];
        assert_eq!(verdict(true, &downgraded), REFUSED);
        let unknown_proto = [
            ("host", "app.example.com"),
            ("x-forwarded-proto", "gopher"),
            ("origin", "https://app.example.com"),
        ];
        assert_eq!(verdict(true, &unknown_proto), REFUSED);
    }

    #[test]
    fn fetch_metadata_decides_without_an_origin() {
        for site in ["same-origin", "same-site", "none"] {
            assert_eq!(verdict(false, &[("sec-fetch-site", site)]), None, "{site}");
        }
        for site in ["cross-site", "CROSS-SITE", "whatever"] {
            assert_eq!(
                verdict(false, &[("sec-fetch-site", site)]),
                REFUSED,
                "{site}"
            );
        }
        // A sibling site is `same-site` to the browser, but its origin is still another.
        let sibling = [
            ("host", "app.example.com"),
            ("sec-fetch-site", "same-site"),
            ("origin", "https://blog.example.com"),
        ];
        assert_eq!(verdict(false, &sibling), REFUSED);
    }

    #[test]
    fn only_json_bodies_pass() {
        let policy = OriginPolicy {
            trust_forwarded: false,
        };
        let uri = Uri::from_static("/2fa/logout");
        let with_type = |content_type: Option<&'static str>| {
            let mut headers = HeaderMap::new();
            if let Some(content_type) = content_type {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            }
            check(policy, &headers, &uri).err().map(|e| e.code())
        };
        assert_eq!(with_type(Some("application/json")), None);
        assert_eq!(with_type(Some("Application/JSON; charset=utf-8")), None);
        for refused in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            Some("application/jsonp"),
        ] {
            assert_eq!(
                with_type(refused),
                Some("unsupported_media_type"),
                "{refused:?}"
            );
        }
    }

    #[test]
    fn safe_methods_are_not_checked() {
        for method in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert!(changes_nothing(&method));
        }
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(!changes_nothing(&method));
        }
    }
}
