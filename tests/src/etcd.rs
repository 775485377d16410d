//! etcd on loopback (Debian's `etcd-server`), one member, a temporary data
//! directory; killed when dropped, restartable on the same ports and data.
//! Plain, or secured as production runs it: TLS with client certificates
//! and users with passwords (signed in with short-lived tokens).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;

use crate::free_port;
use crate::wait::listening;

/// A running (or stopped) etcd.
pub struct Etcd {
    child: Option<Child>,
    dir: PathBuf,
    client: u16,
    peer: u16,
    secure: Option<Secure>,
}

/// What a secured etcd is started with.
#[derive(Clone)]
pub struct Secure {
    /// The CA its clients' certificates must chain to (and its own does).
    pub ca: PathBuf,
    /// Its certificate (for 127.0.0.1) and key.
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
    /// A client certificate and key the CA signed (for curl here).
    pub client: (PathBuf, PathBuf),
    /// Seconds an auth token lives unused (etcd's default is 300).
    pub token_ttl: u32,
}

impl Etcd {
    /// Start one in `dir`; returns once it accepts connections.
    pub async fn start(dir: &Path) -> anyhow::Result<Etcd> {
        Etcd::start_with(dir, None).await
    }

    /// Start one that serves TLS only, asks clients for a certificate and
    /// (after [`Etcd::enable_auth`]) a user.
    pub async fn start_secure(dir: &Path, secure: Secure) -> anyhow::Result<Etcd> {
        Etcd::start_with(dir, Some(secure)).await
    }

    async fn start_with(dir: &Path, secure: Option<Secure>) -> anyhow::Result<Etcd> {
        std::fs::create_dir_all(dir)?;
        let mut etcd = Etcd {
            child: None,
            dir: dir.to_owned(),
            client: free_port()?,
            peer: free_port()?,
            secure,
        };
        etcd.restart().await?;
        Ok(etcd)
    }

    /// The client URL.
    pub fn endpoint(&self) -> String {
        let scheme = if self.secure.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{}", self.client)
    }

    /// Turn authentication on with user `root` and `password`, as an
    /// operator would with etcdctl (here through etcd's JSON API and curl).
    pub fn enable_auth(&self, password: &str) -> anyhow::Result<()> {
        let calls = [
            ("role/add", r#"{"name":"root"}"#.to_owned()),
            (
                "user/add",
                format!(r#"{{"name":"root","password":"{password}"}}"#),
            ),
            ("user/grant", r#"{"user":"root","role":"root"}"#.to_owned()),
            ("enable", "{}".to_owned()),
        ];
        for (path, body) in calls {
            let mut curl = Command::new("curl");
            curl.args(["-sS", "--fail-with-body", "--max-time", "10"]);
            if let Some(secure) = &self.secure {
                curl.arg("--cacert").arg(&secure.ca);
                curl.arg("--cert").arg(&secure.client.0);
                curl.arg("--key").arg(&secure.client.1);
            }
            let url = format!("{}/v3/auth/{path}", self.endpoint());
            let out = curl.args(["-d", &body, &url]).output()?;
            anyhow::ensure!(
                out.status.success(),
                "{url}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// Stop it (SIGKILL: a crash, not a shutdown).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it again, on the same ports and data.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        let peer = format!("http://127.0.0.1:{}", self.peer);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("etcd.log"))?;
        let mut command = Command::new("etcd");
        if let Some(secure) = &self.secure {
            command.arg("--cert-file").arg(&secure.cert);
            command.arg("--key-file").arg(&secure.key);
            command.arg("--trusted-ca-file").arg(&secure.ca);
            command.args(["--client-cert-auth", "--auth-token-ttl"]);
            command.arg(secure.token_ttl.to_string());
        }
        let client = self.endpoint();
        let child = command
            .args(["--name", "limen-test", "--data-dir"])
            .arg(self.dir.join("data"))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("limen-test={peer}")])
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()?;
        self.child = Some(child);
        let addr: SocketAddr = format!("127.0.0.1:{}", self.client).parse()?;
        listening(addr, Duration::from_secs(20))
            .await
            .with_context(|| {
                let log = std::fs::read_to_string(self.dir.join("etcd.log"));
                format!("etcd's log:\n{}", log.unwrap_or_default())
            })
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}
