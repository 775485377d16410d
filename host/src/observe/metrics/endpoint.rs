//! Serving `/metrics` and the status page: per listener one task accepting,
//! one per connection, HTTP/1.1 by hyper (keep-alive, so a Prometheus keeps
//! one connection; HEAD; a deadline for each request head). A listener
//! answers only its own [`Routes`] (`[metrics]`, `[status]`, or both on a
//! shared bind); the rest is a 404. Each scrape is a fresh `gather()`.
//! Scrapes never touch the connection path: counters are atomics the
//! registry only reads.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::Metrics;
use super::scrape::{self, Route, Serves};
use crate::observe::log_limit::LogLimit;

/// Time a client has to send a request head (the first, or the next on a
/// kept-alive connection).
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Renders the status page (`false`) or its JSON (`true`); given by the
/// server, which can read the live state this module sits below.
pub(crate) type StatusPage = Arc<dyn Fn(bool) -> String + Send + Sync>;

/// What one listener answers: `/metrics` with `metrics`, `/status` and
/// `/status.json` with `status`.
#[derive(Clone, Default)]
pub(crate) struct Routes {
    /// The registry `/metrics` renders, if this listener serves it.
    pub(crate) metrics: Option<Metrics>,
    /// The status page, if this listener serves it.
    pub(crate) status: Option<StatusPage>,
}

impl Routes {
    fn serves(&self) -> Serves {
        Serves {
            metrics: self.metrics.is_some(),
            status: self.status.is_some(),
        }
    }
}

/// Answer `routes` on `listener` until `stop`.
pub(crate) async fn serve(listener: TcpListener, routes: Routes, stop: CancellationToken) {
    if let Ok(addr) = listener.local_addr() {
        if routes.metrics.is_some() {
            tracing::info!(%addr, "metrics at http://{addr}/metrics");
        }
        if routes.status.is_some() {
            tracing::info!(%addr, "status page at http://{addr}/status");
        }
    }
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                tokio::spawn(connection(stream, peer, routes.clone(), stop.clone()));
            }
            Err(error) => {
                // Out of descriptors this repeats every 100 ms: once a
                // second, with the count of the others, says as much.
                static FAILED: LogLimit = LogLimit::new(1);
                if let Some(suppressed) = FAILED.allow() {
                    tracing::warn!(suppressed, "metrics accept failed: {error}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Answer requests on one connection until the client closes it, a head
/// is late, or limen stops (the request in flight is answered first).
async fn connection(stream: TcpStream, peer: SocketAddr, routes: Routes, stop: CancellationToken) {
    let serves = routes.serves();
    let service = service_fn(move |request| {
        let route = scrape::route(&request, serves);
        let body = match (&route, &routes.metrics, &routes.status) {
            (Route::Metrics, Some(metrics), _) => metrics.render(),
            (Route::Status { json }, _, Some(status)) => status(*json),
            _ => String::new(),
        };
        let response = scrape::respond(&route, body, scrape::wants_gzip(&request));
        async move { Ok::<_, Infallible>(response) }
    });
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(READ_TIMEOUT)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(served);
    let ended = tokio::select! {
        ended = served.as_mut() => ended,
        () = stop.cancelled() => {
            served.as_mut().graceful_shutdown();
            served.await
        }
    };
    if let Err(error) = ended {
        tracing::debug!(%peer, %error, "metrics connection ended");
    }
}
