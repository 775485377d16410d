//! The HTTP answers of the metrics and status listeners, without I/O: which
//! answer a request gets (`/metrics`, `/status`, `/status.json`, each only on
//! a listener that serves it; GET or HEAD) and its bytes, gzipped when the
//! client asks for it (Prometheus does). hyper speaks HTTP/1.1 around it
//! (keep-alive, HEAD without a body).

use std::io::Write;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use http_body_util::Full;
use hyper::header::{ACCEPT_ENCODING, ALLOW, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue, VARY};
use hyper::{Method, Request, Response, StatusCode};

/// What a request asked for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// `/metrics`: the exposition.
    Metrics,
    /// `/status` (HTML) or `/status.json`.
    Status { json: bool },
    /// Another path, or one this listener does not serve: what to try.
    NotFound { hint: &'static str },
    /// A method other than GET and HEAD.
    NotAllowed,
}

/// What one listener serves: `[metrics]`'s `/metrics`, `[status]`'s page,
/// or both when the two share a bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Serves {
    /// `/metrics`.
    pub(crate) metrics: bool,
    /// `/status` and `/status.json`.
    pub(crate) status: bool,
}

impl Serves {
    /// The 404's advice: the paths this listener has.
    fn hint(self) -> &'static str {
        match (self.metrics, self.status) {
            (true, true) => "not found: try /metrics or /status\n",
            (true, false) => "not found: try /metrics\n",
            (false, true) => "not found: try /status\n",
            (false, false) => "not found\n",
        }
    }
}

/// Route a request by its method and path, among what the listener `serves`.
pub(crate) fn route<B>(request: &Request<B>, serves: Serves) -> Route {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return Route::NotAllowed;
    }
    match request.uri().path() {
        "/metrics" if serves.metrics => Route::Metrics,
        "/status" if serves.status => Route::Status { json: false },
        "/status.json" if serves.status => Route::Status { json: true },
        _ => Route::NotFound {
            hint: serves.hint(),
        },
    }
}

/// Whether the client takes a gzipped body (`Accept-Encoding: gzip`, not
/// refused with `q=0`).
pub(crate) fn wants_gzip<B>(request: &Request<B>) -> bool {
    let Some(accepted) = request.headers().get(ACCEPT_ENCODING) else {
        return false;
    };
    accepted
        .to_str()
        .unwrap_or_default()
        .split(',')
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| p.replace(' ', "") == "q=0" || p == "q=0.0");
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// The response for `route`, with `body` (the exposition or the page) when
/// found; gzipped when `gzip`. HEAD gets the same head; hyper leaves the
/// body out.
pub(crate) fn respond(route: &Route, body: String, gzip: bool) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match route {
        Route::Metrics => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            body,
        ),
        Route::Status { json: true } => (StatusCode::OK, "application/json", body),
        Route::Status { json: false } => (StatusCode::OK, "text/html; charset=utf-8", body),
        Route::NotFound { hint } => (StatusCode::NOT_FOUND, "text/plain", (*hint).to_owned()),
        Route::NotAllowed => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET and HEAD\n".to_owned(),
        ),
    };
    let found = status == StatusCode::OK;
    let gzipped = if found && gzip { gzipped(&body) } else { None };
    let encoded = gzipped.is_some();
    let mut response = Response::new(Full::new(match gzipped {
        Some(bytes) => Bytes::from(bytes),
        None => Bytes::from(body),
    }));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if found {
        headers.insert(VARY, HeaderValue::from_static("accept-encoding"));
    }
    if encoded {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    if *route == Route::NotAllowed {
        headers.insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    response
}

/// `body` gzipped (fast level: a scrape every few seconds, mostly text).
fn gzipped(body: &str) -> Option<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
    encoder.write_all(body.as_bytes()).ok()?;
    encoder.finish().ok()
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use http_body_util::BodyExt;

    use super::*;

    fn request(method: &str, path: &str, encoding: Option<&str>) -> Request<()> {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(encoding) = encoding {
            builder = builder.header(ACCEPT_ENCODING, encoding);
        }
        builder.body(()).expect("request")
    }

    const BOTH: Serves = Serves {
        metrics: true,
        status: true,
    };

    #[test]
    fn routes_requests() {
        let route = |method, path| route(&request(method, path, None), BOTH);
        assert_eq!(route("GET", "/metrics"), Route::Metrics);
        assert_eq!(route("HEAD", "/metrics?x=1"), Route::Metrics);
        let hint = "not found: try /metrics or /status\n";
        assert_eq!(route("GET", "/"), Route::NotFound { hint });
        assert_eq!(route("GET", "/status.json"), Route::Status { json: true });
        assert_eq!(route("POST", "/metrics"), Route::NotAllowed);
    }

    #[test]
    fn each_listener_answers_only_its_own_paths() {
        let metrics = Serves {
            metrics: true,
            status: false,
        };
        let status = Serves {
            metrics: false,
            status: true,
        };
        let get = |path, serves| route(&request("GET", path, None), serves);
        let hint = "not found: try /metrics\n";
        assert_eq!(get("/status", metrics), Route::NotFound { hint });
        assert_eq!(get("/status.json", metrics), Route::NotFound { hint });
        assert_eq!(get("/metrics", metrics), Route::Metrics);
        let hint = "not found: try /status\n";
        assert_eq!(get("/metrics", status), Route::NotFound { hint });
        assert_eq!(get("/status", status), Route::Status { json: false });
    }

    #[test]
    fn gzip_only_when_asked() {
        assert!(wants_gzip(&request("GET", "/metrics", Some("gzip"))));
        assert!(wants_gzip(&request(
            "GET",
            "/",
            Some("deflate, GZIP;q=0.5")
        )));
        assert!(!wants_gzip(&request("GET", "/", Some("gzip;q=0, br"))));
        assert!(!wants_gzip(&request("GET", "/", Some("identity"))));
        assert!(!wants_gzip(&request("GET", "/", None)));
    }

    #[tokio::test]
    async fn a_gzipped_exposition_inflates_to_the_text() {
        let text = "limen_connections_total 3\n".repeat(100);
        let response = respond(&Route::Metrics, text.clone(), true);
        assert_eq!(response.headers()[CONTENT_ENCODING], "gzip");
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert!(bytes.len() < text.len() / 4, "{} bytes", bytes.len());
        let mut inflated = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut inflated)
            .expect("gunzip");
        assert_eq!(inflated, text);
        let refused = respond(&Route::NotAllowed, String::new(), true);
        assert_eq!(refused.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(refused.headers()[ALLOW], "GET, HEAD");
        assert!(refused.headers().get(CONTENT_ENCODING).is_none());
    }
}
