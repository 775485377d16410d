//! Serving `/metrics` and the status page: one task accepting, one per
//! connection, HTTP/1.1 by hyper (keep-alive, so a Prometheus keeps one
//! connection; HEAD; a deadline for each request head). Each scrape is a
//! fresh `gather()`. Scrapes never touch the connection path: counters are
//! atomics the registry only reads.

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
use super::scrape::{self, Route};
use crate::observe::log_limit::LogLimit;

/// Time a client has to send a request head (the first, or the next on a
/// kept-alive connection).
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Renders the status page (`false`) or its JSON (`true`); given by the
/// server, which can read the live state this module sits below.
pub(crate) type StatusPage = Arc<dyn Fn(bool) -> String + Send + Sync>;

/// Answer scrapes (and status requests) on `listener` until `stop`.
pub(crate) async fn serve(
    listener: TcpListener,
    (metrics, status): (Metrics, StatusPage),
    stop: CancellationToken,
) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "metrics at http://{addr}/metrics");
    }
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let (metrics, status) = (metrics.clone(), status.clone());
                tokio::spawn(connection(stream, peer, (metrics, status), stop.clone()));
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
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    (metrics, status): (Metrics, StatusPage),
    stop: CancellationToken,
) {
    let service = service_fn(move |request| {
        let route = scrape::route(&request);
        let body = match route {
            Route::Metrics => metrics.render(),
            Route::Status { json } => status(json),
            Route::NotFound | Route::NotAllowed => String::new(),
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
