//! One HTTP/1.1 connection to an etcd endpoint (plain or TLS), by hyper,
//! and the reading of a streamed answer: JSON messages one after another.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::EtcdError;

/// The largest answer (or streamed message) read: a module chunk is 1 MiB,
/// 1.4 MiB in base64; an instance list of thousands is well below this.
pub(super) const MAX_ANSWER: usize = 16 << 20;

/// An endpoint as `[source.etcd] endpoints` names it.
#[derive(Debug, Clone)]
pub(super) struct Endpoint {
    /// `host:port`, for the connect and the Host header.
    pub(super) authority: String,
    /// The host alone, the name a TLS certificate must hold.
    host: String,
    tls: bool,
}

impl Endpoint {
    /// `http://host:port`, `https://host:port`, or `host:port` (plain).
    pub(super) fn parse(url: &str) -> Result<Endpoint, EtcdError> {
        let (tls, rest) = match url.split_once("://") {
            Some(("https", rest)) => (true, rest),
            Some(("http", rest)) => (false, rest),
            Some((scheme, _)) => {
                return Err(EtcdError::Endpoint(format!(
                    "{url}: scheme {scheme}, not http or https"
                )));
            }
            None => (false, url),
        };
        let authority = rest.trim_end_matches('/').to_owned();
        let host = match authority.rsplit_once(':') {
            Some((host, port)) if port.parse::<u16>().is_ok() => host,
            _ => return Err(EtcdError::Endpoint(format!("{url}: no port"))),
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        Ok(Endpoint {
            authority,
            host,
            tls,
        })
    }
}

/// Something hyper can speak HTTP over.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// A connection's sending half; its driving task ends with it (hyper
/// closes the connection when the sender and any answer body are gone).
pub(super) struct Connection {
    pub(super) sender: SendRequest<Full<Bytes>>,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Open a connection to `endpoint`, with TLS when it says https.
pub(super) async fn open(
    endpoint: &Endpoint,
    tls: Option<&TlsConnector>,
) -> Result<Connection, EtcdError> {
    let failed = |what: String| EtcdError::Connect {
        endpoint: endpoint.authority.clone(),
        what,
    };
    let tcp = TcpStream::connect(&endpoint.authority)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    let io: Box<dyn Io> = match (endpoint.tls, tls) {
        (false, _) => Box::new(tcp),
        (true, None) => return Err(failed("https endpoint without TLS settings".into())),
        (true, Some(connector)) => {
            let name = ServerName::try_from(endpoint.host.clone())
                .map_err(|e| failed(format!("server name {}: {e}", endpoint.host)))?;
            let stream = connector
                .connect(name, tcp)
                .await
                .map_err(|e| failed(format!("TLS: {e}")))?;
            Box::new(stream)
        }
    };
    let (sender, connection) = http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| failed(e.to_string()))?;
    let driver = tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "etcd connection ended");
        }
    });
    Ok(Connection { sender, driver })
}

/// The messages of a streamed answer, read as they come.
pub(super) struct Messages {
    body: Incoming,
    buffer: Vec<u8>,
}

impl Messages {
    pub(super) fn new(body: Incoming) -> Messages {
        Messages {
            body,
            buffer: Vec::new(),
        }
    }

    /// The next message; `None` when the server ended the answer.
    pub(super) async fn next<T: DeserializeOwned>(&mut self) -> Result<Option<T>, EtcdError> {
        loop {
            if let Some(message) = self.split()? {
                return Ok(Some(message));
            }
            let Some(frame) = self.body.frame().await else {
                return Ok(None);
            };
            let frame = frame.map_err(EtcdError::Http)?;
            if let Ok(data) = frame.into_data() {
                if self.buffer.len() + data.len() > MAX_ANSWER {
                    return Err(EtcdError::Answer(format!(
                        "a streamed message over {MAX_ANSWER} bytes"
                    )));
                }
                self.buffer.extend_from_slice(&data);
            }
        }
    }

    /// A whole message at the front of the buffer, taken out of it.
    fn split<T: DeserializeOwned>(&mut self) -> Result<Option<T>, EtcdError> {
        let mut values = serde_json::Deserializer::from_slice(&self.buffer).into_iter::<T>();
        match values.next() {
            Some(Ok(message)) => {
                let used = values.byte_offset();
                self.buffer.drain(..used);
                Ok(Some(message))
            }
            // The message continues in the next frame.
            Some(Err(e)) if e.is_eof() => Ok(None),
            Some(Err(e)) => Err(EtcdError::Answer(format!("streamed message: {e}"))),
            None => {
                // Only white space (the newline between messages) so far.
                self.buffer.clear();
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_as_the_config_writes_them() {
        let plain = Endpoint::parse("http://127.0.0.1:2379").unwrap();
        assert_eq!(
            (plain.authority.as_str(), plain.tls),
            ("127.0.0.1:2379", false)
        );
        let tls = Endpoint::parse("https://etcd.internal:2379/").unwrap();
        assert_eq!((tls.host.as_str(), tls.tls), ("etcd.internal", true));
        let v6 = Endpoint::parse("https://[::1]:2379").unwrap();
        assert_eq!(v6.host, "::1");
        assert!(Endpoint::parse("unix:///run/etcd.sock").is_err());
        assert!(Endpoint::parse("http://127.0.0.1").is_err());
    }
}
