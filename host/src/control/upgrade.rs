//! `limen upgrade` (and SIGUSR2): start the binary on disk with this
//! process's arguments, hand it every listening socket and endpoint
//! (`handover.rs`), and once it says it is ready, stop accepting and drain
//! as a shutdown does. The sockets are the same kernel objects in both
//! processes, so nothing queued on them is lost, and for a moment both
//! accept. A new process that refuses its configuration or policy (or
//! dies, or says nothing in time) leaves this one serving, with the reason.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::Control;
use super::admin::protocol::Answer;
use super::handover::{self, Ready};

/// How long a new process may take to be ready: loading its policy
/// (compiled, when the cache is cold), certificates and etcd's record.
const READY_WITHIN: Duration = Duration::from_secs(60);

impl Control {
    /// Hand every socket to a new process; once it is ready, this one
    /// retires (`Serve::handed_over`: `Server::run` drains as on SIGTERM).
    pub(super) async fn upgrade(&self) -> Answer {
        let live = self.running.serve.live.policy().version().to_string();
        if self.running.serve.handed_over.is_cancelled() {
            // A second request queued behind the first: the sockets are
            // the new process's now.
            return Answer::Denied {
                error: "already handed over: this limen is draining".into(),
            };
        }
        let metrics = self.running.serve.live.generation().metrics.clone();
        let groups = self.listeners.handover().and_then(|mut groups| {
            groups.extend(self.running.endpoints()?);
            Ok(groups)
        });
        let started = match groups {
            Ok(groups) => start(groups).await,
            Err(error) => Err(UpgradeError::Start {
                binary: "the new process".into(),
                error: format!("cannot duplicate the sockets: {error}"),
            }),
        };
        match started {
            Ok(ready) => {
                metrics.upgrade(true);
                let id = |v: &str| v.split('@').next().map(str::to_owned);
                if id(&ready.version) != id(&live) {
                    // A policy swapped in by `limen swap` is not in the
                    // module file the new process read.
                    tracing::warn!(live = %live, new = %ready.version, "the new process serves another policy version");
                }
                tracing::info!(pid = ready.pid, binary = %ready.binary, version = %ready.version, "process.handed_over");
                self.running.serve.handed_over.cancel();
                Answer::Upgraded(ready)
            }
            Err(error) => {
                metrics.upgrade(false);
                tracing::warn!(%error, "process.upgrade_refused");
                Answer::Refused {
                    code: "E070".into(),
                    error: error.to_string(),
                    live,
                }
            }
        }
    }
}

/// Why the new process is not serving (this one serves on).
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpgradeError {
    /// It could not be started.
    #[error("E070 cannot start {binary}: {error}")]
    Start { binary: String, error: String },
    /// It started and refused, died, or said nothing in time.
    #[error("E070 the new process (pid {pid}) did not take over: {reason}")]
    Refused { pid: u32, reason: String },
}

/// The binary and arguments this process was started with, read at start:
/// a package upgrade that replaces the file makes `/proc/self/exe` name
/// the deleted one.
static STARTED_AS: OnceLock<(PathBuf, Vec<OsString>)> = OnceLock::new();

/// Note how this process was started (once, before anything replaces the
/// binary).
pub(crate) fn remember_start() {
    STARTED_AS.get_or_init(|| {
        let binary = std::env::current_exe().unwrap_or_else(|_| "limen".into());
        (binary, std::env::args_os().skip(1).collect())
    });
}

/// Start the new process, hand it `groups` (each listener's and endpoint's
/// sockets, by name), and wait until it is ready or has refused.
pub(crate) async fn start(groups: Vec<(Arc<str>, Vec<OwnedFd>)>) -> Result<Ready, UpgradeError> {
    remember_start();
    let (binary, args) = STARTED_AS.get().cloned().unwrap_or_default();
    let shown = binary.display().to_string();
    tracing::info!(binary = %shown, sockets = groups.iter().map(|g| g.1.len()).sum::<usize>(), "process.upgrade_started");
    let failed = |error: std::io::Error| UpgradeError::Start {
        binary: shown.clone(),
        error: error.to_string(),
    };
    let (ours, theirs) = handover::channel().map_err(failed)?;
    handover::send(&ours, &groups).map_err(failed)?;
    drop(groups);
    // The new process inherits its end (and only it: every other
    // descriptor limen opens is close-on-exec).
    rustix::io::fcntl_setfd(&theirs, rustix::io::FdFlags::empty()).map_err(|e| failed(e.into()))?;
    let spawned = Command::new(&binary)
        .args(&args)
        .env(handover::ENV, theirs.as_raw_fd().to_string())
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_FDNAMES")
        .spawn();
    drop(theirs);
    let mut child = spawned.map_err(failed)?;
    let pid = child.id();
    let answer = tokio::task::spawn_blocking(move || handover::answer(&ours, READY_WITHIN))
        .await
        .unwrap_or_else(|e| Err(format!("waiting failed: {e}")));
    match answer {
        Ok(ready) => {
            // Not waited for: it outlives this process, and is reaped by
            // whoever adopts it.
            drop(child);
            Ok(ready)
        }
        Err(reason) => {
            // Refused: it exits by itself; silent: it is stopped.
            let _ = child.kill();
            let _ = tokio::task::spawn_blocking(move || child.wait()).await;
            Err(UpgradeError::Refused { pid, reason })
        }
    }
}
