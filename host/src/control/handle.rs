//! What other tasks send the control task: each change as a [`Command`]
//! with a channel for its answer, taken in turn by `Control::run`.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::Command;
use super::admin::protocol::Answer;
use crate::outcome::Trigger;
use crate::state::config::{Config, ConfigError, Expectation};

/// Sends changes to a running limen.
#[derive(Clone)]
pub struct ControlHandle {
    pub(super) tx: mpsc::Sender<Command>,
}

impl ControlHandle {
    /// Read and validate the config file at `path` (on a blocking thread)
    /// and apply it; a file that does not validate is refused like any
    /// other bad configuration.
    pub async fn reload_from(&self, path: &Path) -> Answer {
        let path = path.to_owned();
        let loaded = tokio::task::spawn_blocking(move || Config::load(&path))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        self.send_reload(loaded.map(Box::new)).await
    }

    /// Make `module` the live policy (with `config_json`, or the live
    /// policy's config), if it passes every check.
    pub async fn swap(&self, module: Arc<[u8]>, config_json: Option<String>) -> Answer {
        let (reply, answer) = oneshot::channel();
        self.send(
            Command::Swap {
                module,
                config_json,
                expect: None,
                trigger: Trigger::Admin,
                at: Instant::now(),
                reply,
            },
            answer,
        )
        .await
    }

    /// Make a fleet's published policy live: `module` with `config_json`
    /// and its own `expect` samples, through the same preparation as a swap.
    pub async fn swap_from_source(
        &self,
        module: Arc<[u8]>,
        config_json: String,
        expect: Vec<Expectation>,
    ) -> Answer {
        let (reply, answer) = oneshot::channel();
        let command = Command::Swap {
            module,
            config_json: Some(config_json),
            expect: Some(expect),
            trigger: Trigger::Source,
            at: Instant::now(),
            reply,
        };
        self.send(command, answer).await
    }

    /// Apply a new configuration (already parsed and validated), or refuse
    /// it whole.
    pub async fn reload(&self, config: Config) -> Answer {
        self.send_reload(Ok(Box::new(config))).await
    }

    /// Start the binary on disk and hand it every socket; once it is ready
    /// this limen stops accepting and drains (see `upgrade`).
    pub async fn upgrade(&self) -> Answer {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Upgrade { reply }, answer).await
    }

    /// Prepare `module` as a swap would and shadow it: it decides every
    /// connection again off the path, and only the comparison is kept.
    pub async fn shadow(&self, module: Arc<[u8]>, config_json: Option<String>) -> Answer {
        self.try_candidate(module, config_json, (true, None)).await
    }

    /// Prepare `module` as a swap would and try it: `shadow`ed, and on
    /// `canary` for that percentage of client addresses.
    pub async fn try_candidate(
        &self,
        module: Arc<[u8]>,
        config_json: Option<String>,
        (shadow, canary): (bool, Option<f64>),
    ) -> Answer {
        let (reply, answer) = oneshot::channel();
        let at = Instant::now();
        let command = Command::Trial {
            module,
            config_json,
            mode: (shadow, canary),
            at,
            reply,
        };
        self.send(command, answer).await
    }

    /// Make the candidate on trial live.
    pub async fn promote(&self) -> Answer {
        let (reply, answer) = oneshot::channel();
        let at = Instant::now();
        self.send(Command::Promote { at, reply }, answer).await
    }

    /// Drop the candidate on trial.
    pub async fn abort(&self) -> Answer {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Abort { reply }, answer).await
    }

    async fn send_reload(&self, config: Result<Box<Config>, ConfigError>) -> Answer {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Reload { config, reply }, answer).await
    }

    async fn send(&self, command: Command, answer: oneshot::Receiver<Answer>) -> Answer {
        let stopped = || Answer::Denied {
            error: "limen is shutting down".into(),
        };
        if self.tx.send(command).await.is_err() {
            return stopped();
        }
        answer.await.unwrap_or_else(|_| stopped())
    }
}
