//! Helpers shared by the e2e modules.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use limen_e2e::cli::{Limen, limen};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

pub(crate) use limen_e2e::wait::WAIT;

/// A recorded ClientHello from the peerbench kit.
pub(crate) fn hello(name: &str) -> Vec<u8> {
    let path = limen_e2e::shared_dir().join("peerbench/hello").join(name);
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (is ../shared beside the repo?)", path.display()))
}

/// TLS through limen to a backend: returns the response body, or the error.
pub(crate) async fn tls_get(
    addr: SocketAddr,
    server_name: &str,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<String> {
    let name = ServerName::try_from(server_name.to_owned()).map_err(std::io::Error::other)?;
    let run = async {
        let tcp = TcpStream::connect(addr).await?;
        let mut tls = TlsConnector::from(config).connect(name, tcp).await?;
        tls.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await?;
        let mut response = String::new();
        tls.read_to_string(&mut response).await?;
        Ok(response
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or_default()
            .trim_end()
            .to_owned())
    };
    tokio::time::timeout(WAIT, run).await?
}

/// Write `bytes` and read them back, bounded in time: a stream through limen
/// to an echo upstream still carries bytes both ways.
pub(crate) async fn echoes<S>(stream: &mut S, bytes: &[u8]) -> anyhow::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    stream.write_all(bytes).await?;
    let mut back = vec![0; bytes.len()];
    tokio::time::timeout(WAIT, stream.read_exact(&mut back)).await??;
    anyhow::ensure!(back == bytes, "the echo differs");
    Ok(())
}

/// The TLS alert a failed handshake received, if that is why it failed.
pub(crate) fn alert_of(error: &std::io::Error) -> Option<rustls::AlertDescription> {
    match error.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::AlertReceived(alert) => Some(*alert),
        _ => None,
    }
}

/// Send `parts` as separate writes (a pause between them so they leave as
/// separate segments), then read the reply to EOF.
pub(crate) async fn raw_exchange(
    addr: SocketAddr,
    parts: &[&[u8]],
    gap: Duration,
) -> std::io::Result<Vec<u8>> {
    let run = async {
        let mut tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        for (i, part) in parts.iter().enumerate() {
            if i > 0 && !gap.is_zero() {
                tokio::time::sleep(gap).await;
            }
            tcp.write_all(part).await?;
        }
        let mut reply = Vec::new();
        tcp.read_to_end(&mut reply).await?;
        Ok(reply)
    };
    tokio::time::timeout(WAIT, run).await?
}

/// One connection: send a ClientHello, read the backend's reply to EOF.
pub(crate) async fn ask(addr: SocketAddr, hello: &[u8]) -> std::io::Result<Vec<u8>> {
    raw_exchange(addr, &[hello], Duration::ZERO).await
}

/// A scratch file path unique to this test process.
pub(crate) fn scratch(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!("limen-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(format!("{}-{name}", N.fetch_add(1, Ordering::Relaxed)))
}

/// A scratch config file holding `toml`.
pub(crate) fn config_file(toml: &str) -> PathBuf {
    let path = scratch("limen.toml");
    std::fs::write(&path, toml).expect("write config");
    path
}

/// `limen check --config FILE`, FILE holding `toml`.
pub(crate) fn limen_check(toml: &str) -> Limen {
    limen(["check", "--config"]).arg(config_file(toml))
}

/// Run a blocking command (openssl, curl) off the runtime: (success,
/// stdout then stderr).
pub(crate) async fn run(mut command: Command) -> anyhow::Result<(bool, String)> {
    let out = tokio::task::spawn_blocking(move || command.output()).await??;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text))
}

/// `curl https://NAME:PORT/`, NAME resolved to 127.0.0.1, verified against
/// `ca`.
pub(crate) fn curl(port: u16, name: &str, ca: &Path) -> Command {
    let mut command = Command::new("curl");
    command
        .args(["-sS", "--max-time", "10", "--resolve"])
        .arg(format!("{name}:{port}:127.0.0.1"))
        .arg("--cacert")
        .arg(ca)
        .arg(format!("https://{name}:{port}/"));
    command
}

/// The `static-routes` config used across modules: exact, wildcard, regex and
/// reject routes, with an optional default and plain upstream.
pub(crate) fn static_routes(
    a: SocketAddr,
    b: SocketAddr,
    c: SocketAddr,
    default: Option<SocketAddr>,
    plain: Option<SocketAddr>,
) -> String {
    let mut config = format!(
        r#"routes = [
  {{ match = "a.test", upstream = "{a}" }},
  {{ match = "*.wild.test", upstream = "{b}" }},
  {{ match = '~^node[0-9]+\.rx\.test$', upstream = "{c}" }},
  {{ match = "blocked.test", reject = "access_denied" }},
]
"#
    );
    if let Some(d) = default {
        config = format!("default = \"{d}\"\n{config}");
    }
    if let Some(p) = plain {
        config = format!("plain = \"{p}\"\n{config}");
    }
    config
}
