//! The client side of the admin protocol, for `limen swap` and `limen status`.

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use super::protocol::{Answer, Envelope, MAX_LINE, Request};

/// Why an admin call did not get an answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No connection to the endpoint.
    #[error("E040 cannot reach the admin endpoint {endpoint}: {source}")]
    Connect {
        /// The socket path or address.
        endpoint: String,
        /// Why.
        source: std::io::Error,
    },
    /// The connection broke, or the answer was not one.
    #[error("E041 admin call failed: {0}")]
    Exchange(String),
}

/// Send `request` (and a swap's module) to `endpoint`, a TCP address
/// (`127.0.0.1:9901`) or a unix socket path, and read the answer.
pub async fn call(
    endpoint: &str,
    token: Option<String>,
    request: Request,
    module: &[u8],
) -> Result<Answer, ClientError> {
    let connect = |source| ClientError::Connect {
        endpoint: endpoint.to_owned(),
        source,
    };
    let envelope = Envelope { token, request };
    match endpoint.parse::<std::net::SocketAddr>() {
        Ok(addr) => {
            let stream = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(connect)?;
            exchange(stream, &envelope, module).await
        }
        Err(_) => {
            let stream = tokio::net::UnixStream::connect(endpoint)
                .await
                .map_err(connect)?;
            exchange(stream, &envelope, module).await
        }
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    envelope: &Envelope,
    module: &[u8],
) -> Result<Answer, ClientError> {
    let fail = |e: std::io::Error| ClientError::Exchange(e.to_string());
    let mut line =
        serde_json::to_vec(envelope).map_err(|e| ClientError::Exchange(e.to_string()))?;
    line.push(b'\n');
    let mut stream = BufReader::new(stream);
    let sent = async {
        stream.get_mut().write_all(&line).await?;
        stream.get_mut().write_all(module).await?;
        stream.get_mut().flush().await
    }
    .await;
    // limen may answer (a refusal) before taking the whole module: read the
    // answer even if sending failed, and report the send error only if
    // there is none.
    let mut answer = Vec::new();
    let read = (&mut stream)
        .take(16 * MAX_LINE as u64)
        .read_until(b'\n', &mut answer)
        .await;
    if answer.is_empty() {
        sent.map_err(fail)?;
        read.map_err(fail)?;
    }
    serde_json::from_slice(&answer).map_err(|e| {
        ClientError::Exchange(format!(
            "not an answer ({e}): {}",
            String::from_utf8_lossy(&answer)
        ))
    })
}
