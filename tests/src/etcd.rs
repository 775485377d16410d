//! etcd on loopback (Debian's `etcd-server`), one member, a temporary data
//! directory; killed when dropped, restartable on the same ports and data.

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
}

impl Etcd {
    /// Start one in `dir`; returns once it accepts connections.
    pub async fn start(dir: &Path) -> anyhow::Result<Etcd> {
        std::fs::create_dir_all(dir)?;
        let mut etcd = Etcd {
            child: None,
            dir: dir.to_owned(),
            client: free_port()?,
            peer: free_port()?,
        };
        etcd.restart().await?;
        Ok(etcd)
    }

    /// The client URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client)
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
        let (client, peer) = (
            format!("http://127.0.0.1:{}", self.client),
            format!("http://127.0.0.1:{}", self.peer),
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("etcd.log"))?;
        let child = Command::new("etcd")
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
