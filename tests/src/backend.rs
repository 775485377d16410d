//! Backends limen routes to: a real TLS server that names itself, and a raw
//! TCP server that records exactly what it received.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

/// A TLS backend: completes the handshake, reads one request (up to a blank
/// line, or whatever arrives first), answers an HTTP response whose body is
/// `backend=<name> sni=<sni>\n`, and closes.
pub async fn tls(name: &str, config: Arc<rustls::ServerConfig>) -> anyhow::Result<SocketAddr> {
    tls_on("127.0.0.1:0".parse()?, name, config).await
}

/// [`tls`] on a given address.
pub async fn tls_on(
    addr: SocketAddr,
    name: &str,
    config: Arc<rustls::ServerConfig>,
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let acceptor = TlsAcceptor::from(config);
    let name = name.to_owned();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, name) = (acceptor.clone(), name.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let sni = tls.get_ref().1.server_name().unwrap_or("-").to_owned();
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while let Ok(n) = tls.read(&mut buf).await {
                    request.extend_from_slice(&buf[..n]);
                    if n == 0
                        || request.windows(4).any(|w| w == b"\r\n\r\n")
                        || request.ends_with(b"\n")
                    {
                        break;
                    }
                }
                let body = format!("backend={name} sni={sni}\n");
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    Ok(addr)
}

/// What a raw backend saw on one connection.
#[derive(Debug)]
pub struct Received {
    /// Every byte, in order, until the peer's FIN.
    pub bytes: Vec<u8>,
}

/// A raw backend, like peerbench's: answers `reply` (and FIN) as soon as it
/// holds a whole ClientHello (or any non-TLS bytes, or at EOF), keeps reading
/// to EOF, and reports everything it received.
pub async fn raw(
    reply: &'static [u8],
) -> anyhow::Result<(SocketAddr, mpsc::UnboundedReceiver<Received>)> {
    let (addr, rx, _) = raw_counted(reply).await?;
    Ok((addr, rx))
}

/// A raw backend's address, its reports, and its count of accepted connections.
pub type RawBackend = (
    SocketAddr,
    mpsc::UnboundedReceiver<Received>,
    Arc<AtomicUsize>,
);

/// [`raw`], also counting every connection it accepts (reports only come
/// at EOF; the count also shows connections that never finish).
pub async fn raw_counted(reply: &'static [u8]) -> anyhow::Result<RawBackend> {
    raw_on("127.0.0.1:0".parse()?, reply).await
}

/// [`raw_counted`] on a given address.
pub async fn raw_on(addr: SocketAddr, reply: &'static [u8]) -> anyhow::Result<RawBackend> {
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Ok(bytes) = raw_conn(stream, reply).await {
                    let _ = tx.send(Received { bytes });
                }
            });
        }
    });
    Ok((addr, rx, accepted))
}

async fn raw_conn(mut stream: TcpStream, reply: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut answered = false;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        bytes.extend_from_slice(&buf[..n]);
        if !answered && (n == 0 || hello_complete(&bytes)) {
            stream.write_all(reply).await?;
            stream.shutdown().await?;
            answered = true;
        }
        if n == 0 {
            return Ok(bytes);
        }
    }
}

fn hello_complete(bytes: &[u8]) -> bool {
    !matches!(
        limen::hello::frame(bytes, 1 << 20),
        Ok(limen::hello::Progress::NeedMore)
    )
}

/// An echo server: every byte back, in order, without Nagle delays (a
/// chunk's tail must not wait for a delayed ACK); FIN after the peer's.
pub async fn echo() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                let (mut r, mut w) = stream.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    Ok(addr)
}

/// A pool member's answer: once 5 bytes arrived (a hello's record header, or
/// a request's first bytes), its `id` (one byte) and a FIN; then held open
/// until the client closes.
pub async fn answer_id(mut stream: TcpStream, id: u8) {
    let mut head = [0u8; 5];
    if stream.read_exact(&mut head).await.is_ok() {
        let _ = stream.write_all(&[id]).await;
        let _ = stream.shutdown().await;
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
    }
}
