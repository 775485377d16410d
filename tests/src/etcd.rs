//! etcd on loopback (Debian's `etcd-server`), one member, a temporary data
//! directory; killed when dropped, restartable on the same ports and data.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::pebble::free_port;

/// A running (or stopped) etcd.
pub struct Etcd {
    child: Option<Child>,
    dir: PathBuf,
    client: u16,
    peer: u16,
}

impl Etcd {
    /// Start one in `dir`; returns once it accepts connections.
    pub fn start(dir: &Path) -> anyhow::Result<Etcd> {
        std::fs::create_dir_all(dir)?;
        let mut etcd = Etcd {
            child: None,
            dir: dir.to_owned(),
            client: free_port()?,
            peer: free_port()?,
        };
        etcd.restart()?;
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
    pub fn restart(&mut self) -> anyhow::Result<()> {
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
        let start = Instant::now();
        while TcpStream::connect(addr).is_err() {
            anyhow::ensure!(
                start.elapsed() < Duration::from_secs(20),
                "etcd did not listen on {addr}: {}",
                std::fs::read_to_string(self.dir.join("etcd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}
