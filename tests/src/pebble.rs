//! Let's Encrypt's test CA on loopback: Debian's `pebble` (the ACME
//! server, which really validates challenges) and `pebble-challtestsrv`
//! (its DNS, answering every A query with 127.0.0.1), both as child
//! processes, killed when dropped.
//!
//! Pebble's own HTTPS uses a certificate from a throwaway [`Pki`], whose CA
//! limen is given as `[acme] ca`. Certificates pebble issues chain to a
//! root it makes at start ([`Pebble::root_pem`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;

use crate::free_port;
use crate::pki::Pki;
use crate::wait::listening;

/// A running pebble and its DNS.
pub struct Pebble {
    ca: Option<Child>,
    dns: Child,
    dir: PathBuf,
    /// Where pebble's HTTPS is: the directory is `https://localhost:<port>/dir`.
    pub port: u16,
    management: u16,
    dns_port: u16,
    /// The port pebble's validator connects to for TLS-ALPN-01 (limen's).
    pub tls_port: u16,
}

impl Pebble {
    /// Start both in `dir`, validating TLS-ALPN-01 on `tls_port`; returns
    /// once pebble answers.
    pub async fn start(dir: &Path, tls_port: u16) -> anyhow::Result<Pebble> {
        std::fs::create_dir_all(dir)?;
        let pki = Pki::new(&["localhost"])?;
        std::fs::write(dir.join("tls-ca.pem"), &pki.ca_pem)?;
        std::fs::write(dir.join("tls-cert.pem"), &pki.leaf_pem)?;
        std::fs::write(dir.join("tls-key.pem"), &pki.key_pem)?;
        let (port, management, dns_port) = (free_port()?, free_port()?, free_port()?);
        let dns = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
            .args(["-management", &format!("127.0.0.1:{}", free_port()?)])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .stdout(Stdio::null())
            .stderr(log(dir, "challtestsrv.log")?)
            .spawn()?;
        let mut pebble = Pebble {
            ca: None,
            dns,
            dir: dir.to_owned(),
            port,
            management,
            dns_port,
            tls_port,
        };
        pebble.start_ca().await?;
        Ok(pebble)
    }

    /// (Re)start the ACME server itself (a fresh CA: new root, no accounts).
    pub async fn start_ca(&mut self) -> anyhow::Result<()> {
        let dir = &self.dir;
        let config = serde_json::json!({ "pebble": {
            "listenAddress": format!("127.0.0.1:{}", self.port),
            "managementListenAddress": format!("127.0.0.1:{}", self.management),
            "certificate": dir.join("tls-cert.pem"),
            "privateKey": dir.join("tls-key.pem"),
            "httpPort": free_port()?,
            "tlsPort": self.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        std::fs::write(dir.join("pebble.json"), config.to_string())?;
        let child = Command::new("pebble")
            .arg("-config")
            .arg(dir.join("pebble.json"))
            .args(["-dnsserver", &format!("127.0.0.1:{}", self.dns_port)])
            // No random waits before validating, no random nonce rejections:
            // the test is about limen, not about pebble's chaos.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(log(dir, "pebble.log")?)
            .stderr(log(dir, "pebble.err")?)
            .spawn()?;
        self.ca = Some(child);
        let addr: SocketAddr = format!("127.0.0.1:{}", self.port).parse()?;
        listening(addr, Duration::from_secs(20))
            .await
            .with_context(|| format!("pebble's log:\n{}", self.log()))
    }

    /// Stop the ACME server (its DNS stays).
    pub fn stop_ca(&mut self) {
        if let Some(mut child) = self.ca.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The directory URL.
    pub fn directory(&self) -> String {
        format!("https://localhost:{}/dir", self.port)
    }

    /// The CA bundle for pebble's own HTTPS (`[acme] ca`).
    pub fn tls_ca(&self) -> PathBuf {
        self.dir.join("tls-ca.pem")
    }

    /// The root the issued certificates chain to, PEM (from pebble's
    /// management interface), written to `root.pem` in its directory.
    pub fn root_pem(&self) -> anyhow::Result<PathBuf> {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(self.tls_ca())
            .arg(format!("https://localhost:{}/roots/0", self.management))
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = self.dir.join("root.pem");
        std::fs::write(&path, out.stdout)?;
        Ok(path)
    }

    /// What pebble logged (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pebble.log")).unwrap_or_default()
    }
}

fn log(dir: &Path, name: &str) -> anyhow::Result<Stdio> {
    Ok(Stdio::from(std::fs::File::create(dir.join(name))?))
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop_ca();
        let _ = self.dns.kill();
        let _ = self.dns.wait();
    }
}
