//! The HTTP side of `/metrics`, without I/O: which answer a request head
//! gets, and the bytes of that answer. Just enough HTTP/1.1 for Prometheus
//! and curl: one GET per connection, answered and closed.

/// What a request asked for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// `GET /metrics` (or `HEAD`): the exposition.
    Metrics { head_only: bool },
    /// `GET /status` (HTML) or `/status.json`.
    Status { json: bool, head_only: bool },
    /// Another path.
    NotFound,
    /// Another method, or not HTTP.
    BadRequest,
}

/// Route a request by its first line.
pub(crate) fn route(head: &[u8]) -> Route {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.trim_end().split(' ');
    let (Some(method), Some(target), Some(version)) = (words.next(), words.next(), words.next())
    else {
        return Route::BadRequest;
    };
    if !version.starts_with("HTTP/1.") || words.next().is_some() {
        return Route::BadRequest;
    }
    let path = target.split('?').next().unwrap_or_default();
    match (method, path) {
        ("GET" | "HEAD", "/metrics") => Route::Metrics {
            head_only: method == "HEAD",
        },
        ("GET" | "HEAD", "/status" | "/status.json") => Route::Status {
            json: path.ends_with(".json"),
            head_only: method == "HEAD",
        },
        ("GET" | "HEAD", _) => Route::NotFound,
        _ => Route::BadRequest,
    }
}

/// The whole response for `route`, with `body` (the exposition) when found.
pub(crate) fn response(route: &Route, body: &str) -> Vec<u8> {
    let (status, content_type, body, head_only) = match route {
        Route::Metrics { head_only } => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            body,
            *head_only,
        ),
        Route::Status { json, head_only } => (
            "200 OK",
            if *json {
                "application/json"
            } else {
                "text/html; charset=utf-8"
            },
            body,
            *head_only,
        ),
        Route::NotFound => (
            "404 Not Found",
            "text/plain",
            "not found: try /metrics or /status\n",
            false,
        ),
        Route::BadRequest => ("400 Bad Request", "text/plain", "bad request\n", false),
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_requests() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n"),
            Route::Metrics { head_only: false }
        );
        assert_eq!(
            route(b"HEAD /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Route::Metrics { head_only: true }
        );
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(
            route(b"GET /status.json HTTP/1.1\r\n\r\n"),
            Route::Status {
                json: true,
                head_only: false
            }
        );
        assert_eq!(route(b"POST /metrics HTTP/1.1\r\n\r\n"), Route::BadRequest);
        assert_eq!(route(b"\x16\x03\x01"), Route::BadRequest);
        let ok = response(&Route::Metrics { head_only: false }, "a 1\n");
        assert!(ok.starts_with(b"HTTP/1.1 200 OK\r\n") && ok.ends_with(b"\r\n\r\na 1\n"));
    }
}
