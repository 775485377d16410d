//! `limen run` as a real child process, for what needs one: signals, and
//! memory measured from /proc.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::Context;
use limen::control::admin::client;
use limen::control::admin::protocol::{Answer, Request, Status};
use limen_e2e::cli::limen;
use limen_e2e::wait::eventually;

use crate::common::scratch;

/// `limen run` as a child process, stopped when dropped.
pub(crate) struct Process {
    child: Child,
    admin: PathBuf,
    log: PathBuf,
}

impl Process {
    pub(crate) fn start(config: &Path, admin: PathBuf) -> anyhow::Result<Process> {
        let log = scratch("limen.log");
        let child = limen(["run", "--config"]).arg(config).spawn(&log)?;
        Ok(Process { child, admin, log })
    }

    pub(crate) async fn status(&self) -> anyhow::Result<Status> {
        let admin = self.admin.to_str().expect("utf-8 path");
        match client::call(admin, None, Request::Status, &[]).await? {
            Answer::Status(status) => Ok(*status),
            other => anyhow::bail!("{other:?}"),
        }
    }

    /// Wait (at most 30 s) until limen answers with configuration generation
    /// `generation`; until it answers at all, its admin endpoint refuses.
    pub(crate) async fn generation(&self, generation: u64) -> anyhow::Result<Status> {
        let status = async || Ok(self.status().await.map_err(|e| format!("{e:#}")));
        let status = eventually(
            Duration::from_secs(30),
            &format!("generation {generation}"),
            status,
            |status| status.as_ref().is_ok_and(|s| s.generation == generation),
        )
        .await
        .with_context(|| format!("limen's log:\n{}", self.log()))?;
        status.map_err(anyhow::Error::msg)
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
