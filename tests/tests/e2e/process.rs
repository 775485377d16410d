//! `limen run` as a real child process, for what needs one: signals, and
//! memory measured from /proc.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use limen::control::admin::client;
use limen::control::admin::protocol::{Answer, Request, Status};

use crate::common::{limen, scratch};

/// `limen run` as a child process, stopped when dropped.
pub(crate) struct Process {
    child: Child,
    admin: PathBuf,
    log: PathBuf,
}

impl Process {
    pub(crate) fn start(config: &Path, admin: PathBuf) -> anyhow::Result<Process> {
        let log = scratch("limen.log");
        let child = Command::new(limen())
            .args(["run", "--config"])
            .arg(config)
            .stderr(Stdio::from(std::fs::File::create(&log)?))
            .spawn()?;
        Ok(Process { child, admin, log })
    }

    pub(crate) async fn status(&self) -> anyhow::Result<Status> {
        let admin = self.admin.to_str().expect("utf-8 path");
        match client::call(admin, None, Request::Status, &[]).await? {
            Answer::Status(status) => Ok(status),
            other => anyhow::bail!("{other:?}"),
        }
    }

    /// Wait until limen answers with configuration generation `generation`.
    pub(crate) async fn generation(&self, generation: u64) -> anyhow::Result<Status> {
        let start = Instant::now();
        loop {
            match self.status().await {
                Ok(status) if status.generation == generation => return Ok(status),
                other if start.elapsed() > Duration::from_secs(30) => {
                    anyhow::bail!(
                        "no generation {generation} ({:?}); log:\n{}",
                        other.map(|s| s.generation),
                        self.log()
                    )
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn hangup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status();
        assert!(status.is_ok_and(|s| s.success()), "kill -HUP");
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}
