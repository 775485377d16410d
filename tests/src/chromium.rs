//! Headless Chromium (Debian's `chromium`, which `.ci/run` installs when
//! absent) loading a page and printing the DOM it rendered. A missing
//! `chromium` is an error naming it, never a skipped test.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::wait::{POLL, WAIT, drain};

/// How long Chromium may load a page (its own `--timeout`, milliseconds).
const PAGE_MS: u64 = 5000;

/// How long the whole run may take (start-up on a loaded machine, the page,
/// shutting down) before Chromium is killed: a hang fails the test, it does
/// not stall it.
const RUN: Duration = Duration::from_secs(60);

/// The flags every run gets: headless, and what a container needs (root
/// needs `--no-sandbox`; there is no GPU; no first-run dialogs).
const BASE: [&str; 4] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
];

/// What a run printed.
#[derive(Clone, Debug)]
pub struct Rendered {
    /// The DOM after load (`--dump-dom`).
    pub dom: String,
    /// Chromium's own log (mostly D-Bus noise in a container; with
    /// `--enable-logging=stderr --v=1`, the network stack's view).
    pub stderr: String,
}

/// Load `url` in a fresh headless Chromium whose profile lives in `profile`
/// (a new directory per run: no cache, no QUIC hints carried over), with
/// `flags` beyond the defaults: what it rendered, or an error with its
/// stderr if it failed or did not exit within a minute.
pub async fn render(url: &str, profile: &Path, flags: &[String]) -> anyhow::Result<Rendered> {
    let mut command = Command::new("chromium");
    command
        .args(BASE)
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(flags)
        .arg(format!("--timeout={PAGE_MS}"))
        .arg("--dump-dom")
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .context("cannot start `chromium` (Debian's package; `.ci/run` installs it)")?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = tokio::time::timeout(RUN, async {
        loop {
            if let Some(status) = child.try_wait()? {
                return std::io::Result::Ok(status);
            }
            tokio::time::sleep(POLL).await;
        }
    })
    .await;
    if status.is_err() {
        // Killing the browser process closes the pipes its helpers share
        // with it only once they exit too: they follow it down.
        let _ = child.kill();
        let _ = child.wait();
    }
    // The pipes close when the last of its helper processes exits, which
    // follows the browser's exit (or kill) closely; bounded all the same.
    let output = async { anyhow::Ok((stdout.await?, stderr.await?)) };
    let (dom, stderr) = tokio::time::timeout(WAIT, output)
        .await
        .context("chromium's helpers kept its output open")??;
    match status {
        Err(_) => bail!("chromium did not exit within {RUN:?}; its stderr:\n{stderr}"),
        Ok(Err(e)) => bail!("chromium: {e}"),
        Ok(Ok(status)) if !status.success() => bail!("chromium failed ({status}):\n{stderr}"),
        Ok(Ok(_)) => Ok(Rendered { dom, stderr }),
    }
}

/// The value `--ignore-certificate-errors-spki-list` takes for a leaf whose
/// SubjectPublicKeyInfo is `spki` (DER): base64 of its SHA-256. Chromium
/// verifies QUIC certificates against its own NSS store only, ignoring a
/// CA handed to it otherwise; pinning the leaf's key is how a test makes a
/// throwaway certificate acceptable there.
pub fn spki_pin(spki: &[u8]) -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(spki))
}
