//! Real QUIC endpoints on loopback: aioquic (PyPI) HTTP/3 servers as
//! upstreams and an aioquic HTTP/3 client, the scripts in `tests/quic/` run
//! with the Python venv `cargo xtask test` installs aioquic into
//! (`target/toolchains/python`). A missing venv or aioquic is an error naming
//! it, never a skipped test.
//!
//! A server answers every GET with `NAME h3 /path` and logs each handshake
//! and request (SNI, `:authority`, the client's address) to a file beside its
//! certificate, so a test can prove which upstream answered, that it spoke
//! HTTP/3, and what reached it from which port.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::wait::{POLL, WAIT, drain};
use crate::workspace_root;

/// How long a Python script may take to start (import aioquic and the
/// `cryptography` wheel) on a loaded machine, beyond its own work.
const STARTUP: Duration = Duration::from_secs(20);

/// The exit status `h3_client.py` reserves for "the connection failed" (as
/// its stderr says); any other failure is the kit's (aioquic missing: 3,
/// bad arguments: 2, a Python exception: 4), never an expected refusal.
const REFUSED: i32 = 1;

/// The venv's interpreter, or an error saying what is missing and who
/// installs it.
pub fn python() -> anyhow::Result<PathBuf> {
    let python = workspace_root().join("target/toolchains/python/bin/python");
    anyhow::ensure!(
        python.exists(),
        "no {}: the QUIC tests need aioquic from PyPI in that venv \
         (`cargo xtask test` creates it and installs aioquic)",
        python.display()
    );
    Ok(python)
}

fn script(name: &str) -> PathBuf {
    workspace_root().join("tests/quic").join(name)
}

/// A child process killed (and reaped) when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How to start an [`H3Server`] beyond the defaults.
#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    /// Where to bind (default 127.0.0.1 and a port the kernel picks: no race
    /// with another test for a "free" UDP port). A fixed address restarts an
    /// upstream where it was.
    pub bind: Option<SocketAddr>,
    /// Send a Retry before accepting a connection (off by default).
    pub retry: bool,
}

/// A running `h3_server.py`; killed when dropped.
pub struct H3Server {
    child: Killed,
    addr: SocketAddr,
    log: PathBuf,
}

impl H3Server {
    /// Start one named `name` (it answers `name h3 /path`) presenting
    /// `cert` (chain, PEM) and `key`, on 127.0.0.1 and a free UDP port;
    /// returns once it is bound.
    pub async fn start(name: &str, cert: &Path, key: &Path) -> anyhow::Result<H3Server> {
        H3Server::start_with(name, cert, key, &ServerOptions::default()).await
    }

    /// [`H3Server::start`] with `options`.
    pub async fn start_with(
        name: &str,
        cert: &Path,
        key: &Path,
        options: &ServerOptions,
    ) -> anyhow::Result<H3Server> {
        // Beside the certificate: that is the test's scratch directory.
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = cert.parent().unwrap_or(Path::new("."));
        let n = N.fetch_add(1, Ordering::Relaxed);
        let log = dir.join(format!("h3-server-{name}-{n}.log"));
        let bind = options
            .bind
            .map_or_else(|| "127.0.0.1:0".to_owned(), |a| a.to_string());
        let mut command = Command::new(python()?);
        command
            .arg(script("h3_server.py"))
            .args(["--bind", &bind, "--name", name, "--cert"])
            .arg(cert)
            .arg("--key")
            .arg(key);
        if options.retry {
            command.arg("--retry");
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&log)?))
            .spawn()
            .context("cannot start h3_server.py")?;
        let mut child = Killed(child);
        let stdout = child.0.stdout.take().context("no stdout")?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        // Its first line is the address; later lines (none expected) are
        // read and dropped so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            lines.for_each(drop);
        });
        let first = tokio::time::timeout(STARTUP, rx).await;
        let describe = |what: &str| {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            format!("h3_server.py ({name}) {what}; its log:\n{log}")
        };
        let line = match first {
            Ok(Ok(Some(Ok(line)))) => line,
            Ok(_) => {
                // Stdout closed: it exited; give it a moment to say why.
                let status = tokio::time::timeout(WAIT, exited(&mut child.0)).await;
                bail!(describe(&format!("exited before binding ({status:?})")))
            }
            Err(_) => bail!(describe(&format!("did not bind within {STARTUP:?}"))),
        };
        let addr = line
            .strip_prefix("listening ")
            .and_then(|a| a.parse().ok())
            .with_context(|| describe(&format!("printed {line:?}, not `listening ADDR`")))?;
        Ok(H3Server { child, addr, log })
    }

    /// Where it listens (UDP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What it logged so far: `handshake sni=… alpn=… version=… from=…`,
    /// `path from=… to=…` (a client's address changed), `request sni=…
    /// authority=… method=… path=… from=…`, `closed …`.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stop it now (SIGKILL; dropping it does the same).
    pub fn kill(&mut self) {
        let _ = self.child.0.kill();
        let _ = self.child.0.wait();
    }
}

/// The child's exit status, polled (tokio's `process` feature is not on).
async fn exited(child: &mut Child) -> std::io::Result<ExitStatus> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// One run of `h3_client.py`: GET `https://SNI/path` sent to `connect`.
#[derive(Clone, Debug)]
pub struct H3Get {
    connect: SocketAddr,
    sni: String,
    ca: PathBuf,
    path: String,
    timeout: Duration,
    local_port: Option<u16>,
    rebind_after: Option<Duration>,
    quic_v2: bool,
    alpn: Option<String>,
}

/// What a client run ended with.
#[derive(Clone, Debug)]
pub struct H3Reply {
    /// It got a 200 (else the connection failed, or another status).
    pub success: bool,
    /// The response body (empty when the connection failed).
    pub body: String,
    /// What it said on stderr: on failure, the reason last, e.g. `closed:
    /// error_code=0x178 frame_type=0x6 by=peer reason=…` or `timeout: no
    /// handshake within 10s`; `rebound from=P to=Q` after a rebind.
    pub stderr: String,
}

impl H3Reply {
    /// The local ports before and after a rebind, if one happened.
    pub fn rebound(&self) -> Option<(u16, u16)> {
        let line = self.stderr.lines().find(|l| l.starts_with("rebound "))?;
        let mut ports = line
            .split_whitespace()
            .filter_map(|w| w.split_once('=')?.1.parse().ok());
        Some((ports.next()?, ports.next()?))
    }
}

impl H3Get {
    /// GET `https://sni/` through `connect` with server_name `sni`,
    /// verifying against `ca`, within [`WAIT`].
    pub fn new(connect: SocketAddr, sni: &str, ca: &Path) -> H3Get {
        H3Get {
            connect,
            sni: sni.to_owned(),
            ca: ca.to_owned(),
            path: "/".to_owned(),
            timeout: WAIT,
            local_port: None,
            rebind_after: None,
            quic_v2: false,
            alpn: None,
        }
    }

    /// The request's path.
    pub fn path(mut self, path: &str) -> H3Get {
        self.path = path.to_owned();
        self
    }

    /// How long the client tries, handshake and response together.
    pub fn timeout(mut self, timeout: Duration) -> H3Get {
        self.timeout = timeout;
        self
    }

    /// Send from this local UDP port (default: any).
    pub fn local_port(mut self, port: u16) -> H3Get {
        self.local_port = Some(port);
        self
    }

    /// After the handshake, wait `after`, then move to a new local port
    /// (a fresh socket, the old one closed) before sending the request: a
    /// NAT rebinding. See [`H3Reply::rebound`].
    pub fn rebind_after(mut self, after: Duration) -> H3Get {
        self.rebind_after = Some(after);
        self
    }

    /// Start in QUIC v2 (RFC 9369) instead of v1.
    pub fn quic_v2(mut self) -> H3Get {
        self.quic_v2 = true;
        self
    }

    /// Offer these ALPN protocols (comma-separated) instead of `h3`: to be
    /// refused by a server (0x178, no_application_protocol).
    pub fn alpn(mut self, alpn: &str) -> H3Get {
        self.alpn = Some(alpn.to_owned());
        self
    }

    /// Run the client; an error only when the kit failed (no aioquic, the
    /// script crashed or hung), not when the connection did.
    pub async fn run(&self) -> anyhow::Result<H3Reply> {
        let mut command = Command::new(python()?);
        command
            .arg(script("h3_client.py"))
            .args(["--connect", &self.connect.to_string(), "--sni", &self.sni])
            .arg("--ca")
            .arg(&self.ca)
            .args(["--path", &self.path])
            .args(["--timeout", &self.timeout.as_secs_f64().to_string()]);
        if let Some(port) = self.local_port {
            command.args(["--local-port", &port.to_string()]);
        }
        if let Some(after) = self.rebind_after {
            command.args(["--rebind-after-ms", &after.as_millis().to_string()]);
        }
        if self.quic_v2 {
            command.args(["--quic-version", "2"]);
        }
        if let Some(alpn) = &self.alpn {
            command.args(["--alpn", alpn]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start h3_client.py")?;
        let mut child = Killed(child);
        let stdout = drain(child.0.stdout.take());
        let stderr = drain(child.0.stderr.take());
        // The client stops itself after `timeout`; this bound is for a
        // client that hangs anyway (it is killed).
        let within = self.timeout + STARTUP;
        let status = tokio::time::timeout(within, exited(&mut child.0)).await;
        drop(child);
        let (body, stderr) = (stdout.await?, stderr.await?);
        match status {
            Err(_) => bail!("h3_client.py did not exit within {within:?}; its stderr:\n{stderr}"),
            Ok(Err(e)) => bail!("h3_client.py: {e}"),
            Ok(Ok(status)) if status.success() || status.code() == Some(REFUSED) => Ok(H3Reply {
                success: status.success(),
                body,
                stderr,
            }),
            Ok(Ok(status)) => {
                bail!("h3_client.py failed ({status}), not the connection:\n{stderr}")
            }
        }
    }

    /// The body of a 200; an error with the client's reason otherwise.
    pub async fn body(&self) -> anyhow::Result<String> {
        let reply = self.run().await?;
        anyhow::ensure!(
            reply.success,
            "GET https://{}{} via {} failed: {}",
            self.sni,
            self.path,
            self.connect,
            reply.stderr.trim()
        );
        Ok(reply.body)
    }

    /// The client's reason for failing (its stderr); an error if it got a
    /// 200 instead.
    pub async fn refused(&self) -> anyhow::Result<String> {
        let reply = self.run().await?;
        anyhow::ensure!(
            !reply.success,
            "GET https://{}{} via {} was expected to fail, got {:?}",
            self.sni,
            self.path,
            self.connect,
            reply.body
        );
        Ok(reply.stderr)
    }
}

/// A server per name under one new CA, their files in `dir`: (servers,
/// the CA's PEM path, for clients to trust).
pub async fn h3_servers(dir: &Path, names: &[&str]) -> anyhow::Result<(Vec<H3Server>, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let pki = crate::pki::Pki::new(names)?;
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem)?;
    let mut servers = Vec::new();
    for name in names {
        let (cert, key) = pki.issue_files(dir, name, &[name], None)?;
        servers.push(H3Server::start(name, &cert, &key).await?);
    }
    Ok((servers, ca))
}

/// GET `https://sni{path}` through `connect`: the body of a 200, or an
/// error with the client's reason.
pub async fn h3_get(
    connect: SocketAddr,
    sni: &str,
    ca: &Path,
    path: &str,
) -> anyhow::Result<String> {
    H3Get::new(connect, sni, ca).path(path).body().await
}

/// The same GET expected to fail: the client's reason (e.g. `closed:
/// error_code=0x178 … by=peer reason=…`), or an error if it succeeded.
pub async fn h3_refused(
    connect: SocketAddr,
    sni: &str,
    ca: &Path,
    path: &str,
) -> anyhow::Result<String> {
    H3Get::new(connect, sni, ca).path(path).refused().await
}
