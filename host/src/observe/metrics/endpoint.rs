//! Serving `/metrics`: one task accepting scrapes, each answered from a
//! fresh `gather()` and closed. Scrapes never touch the connection path:
//! counters are atomics the registry only reads.

use crate::observe::log_limit::LogLimit;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::Metrics;
use super::scrape::{self, Route};

/// Longest request head read.
const MAX_HEAD: usize = 8 * 1024;

/// Time a scraper has to send its request.
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
                tokio::spawn(async move { answer(stream, peer, &metrics, &status).await });
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

async fn answer(mut stream: TcpStream, peer: SocketAddr, metrics: &Metrics, status: &StatusPage) {
    let mut head = Vec::with_capacity(512);
    let read = tokio::time::timeout(READ_TIMEOUT, async {
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        std::io::Result::Ok(())
    })
    .await;
    if !matches!(read, Ok(Ok(()))) {
        tracing::debug!(%peer, "metrics request not received");
        return;
    }
    let route = scrape::route(&head);
    let body = match route {
        Route::Metrics { .. } => metrics.render(),
        Route::Status { json, .. } => status(json),
        _ => String::new(),
    };
    let _ = stream.write_all(&scrape::response(&route, &body)).await;
    let _ = stream.shutdown().await;
}
