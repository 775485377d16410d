//! Changing a running limen: policy swaps (file watch, `limen swap`) and
//! configuration reloads (SIGHUP). One task owns every change and takes
//! them in turn, so two never interleave; connections only ever see a
//! finished policy or configuration, swapped in atomically (see `Live`).
//!
//! `server` assembles and drains; `ready` readies a generation (at start
//! and for `reload`); `running` is what the control plane holds beside the
//! accept loops' `Serve`; `listeners` binds (or takes from systemd:
//! `activation`) and runs the accept loops; `watch` follows the module file; `admin` serves `limen swap`/`limen
//! status` (its `protocol`, and `client`, the CLI side); `acme` and
//! `fleet` keep certificates and a fleet's policy; `status` renders the
//! page, `history` the changes it lists; `memory` gives heap back.

pub mod acme;
mod activation;
pub mod admin;
mod endpoints;
pub mod fleet;
mod handle;
pub mod handover;
pub(crate) mod history;
pub(crate) mod listeners;
pub(crate) mod memory;
pub mod ready;
mod reload;
pub(crate) mod running;
pub mod server;
pub(crate) mod status;
mod trial;
mod upgrade;
mod watch;

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use crate::outcome::{ChangeOutcome, Trigger};
use crate::policy::{
    LoadError, LoadReport, Module, ModuleHash, Policy, PolicyEngine, PolicyVersion,
};
use crate::state::config::PolicyConfig;
use crate::state::config::{Config, ConfigError, Expectation};
use admin::protocol::{Answer, Swapped};
pub use handle::ControlHandle;
use listeners::{Bound, ListenerSet};
use running::Running;
pub use running::binary_version;

/// Queued changes; a full queue makes the sender wait.
const QUEUE: usize = 16;

enum Command {
    Swap {
        module: Arc<[u8]>,
        config_json: Option<String>,
        /// The self-test samples, when they change with the module (a
        /// fleet's source); else the live policy's.
        expect: Option<Vec<Expectation>>,
        trigger: Trigger,
        /// When the request was complete: what a swap's time is measured from.
        at: Instant,
        reply: oneshot::Sender<Answer>,
    },
    FileChanged {
        at: Instant,
    },
    /// A configuration to apply, or why the file did not validate (refused
    /// and counted by the control task like any other refusal).
    Reload {
        config: Result<Box<Config>, ConfigError>,
        reply: oneshot::Sender<Answer>,
    },
    /// Hand the sockets to a new process (`upgrade`).
    Upgrade {
        reply: oneshot::Sender<Answer>,
    },
    /// Prepare a candidate and shadow it, or put it on canary, or both
    /// (`trial`).
    Trial {
        module: Arc<[u8]>,
        config_json: Option<String>,
        /// Shadowed, and the canary's share (percent).
        mode: (bool, Option<f64>),
        at: Instant,
        reply: oneshot::Sender<Answer>,
    },
    /// Make the candidate live.
    Promote {
        at: Instant,
        reply: oneshot::Sender<Answer>,
    },
    /// Drop the candidate.
    Abort {
        reply: oneshot::Sender<Answer>,
    },
}

/// The owner of every change to the running configuration and policy.
pub(crate) struct Control {
    engine: PolicyEngine,
    /// The configuration live now.
    config: Config,
    running: Arc<Running>,
    listeners: ListenerSet,
    /// Bound at start, started when `run` begins.
    pending: Vec<Bound>,
    watch: Option<watch::Watch>,
    /// Hash of the module file as last read: an event that leaves it the
    /// same (a touch, a chmod, a rewrite of the same bytes) swaps nothing,
    /// and so does not undo a `limen swap`.
    file_hash: ModuleHash,
    /// The candidate on trial, for a promotion.
    candidate: Option<trial::Candidate>,
    tx: mpsc::Sender<Command>,
    rx: mpsc::Receiver<Command>,
}

impl Control {
    pub(crate) fn new(
        engine: PolicyEngine,
        config: Config,
        running: Arc<Running>,
        bound: Vec<Bound>,
    ) -> Control {
        let (tx, rx) = mpsc::channel(QUEUE);
        let file_hash = running.serve.live.policy().version().module;
        Control {
            file_hash,
            engine,
            config,
            running,
            listeners: ListenerSet::default(),
            candidate: None,
            pending: bound,
            watch: None,
            tx,
            rx,
        }
    }

    pub(crate) fn handle(&self) -> ControlHandle {
        ControlHandle {
            tx: self.tx.clone(),
        }
    }

    /// Start the accept loops and the file watch, then take changes until
    /// shutdown; return once every accept loop has ended.
    pub(crate) async fn run(mut self) {
        // The watch first: once a listener answers, a change to the module
        // file must not go unseen (a deploy racing the start).
        self.rewatch();
        for bound in std::mem::take(&mut self.pending) {
            self.listeners.start(bound, &self.running.serve);
        }
        // After the listeners: a candidate's compile (seconds, for a Python
        // one with a cold cache) delays neither the start nor, after an
        // upgrade, the new process's first accept. Connections accepted
        // meanwhile are not sampled.
        self.configured_shadow(None).await;
        loop {
            // A canary that crossed its failure margin (the path stopped
            // asking it already) is ended here, between changes.
            let trial = self.running.serve.live.load().trial.clone();
            let rolled_back = async {
                match &trial {
                    Some(trial) => trial.tally.rollback.notified().await,
                    None => std::future::pending().await,
                }
            };
            let command = tokio::select! {
                command = self.rx.recv() => command,
                () = self.running.serve.stop.cancelled() => None,
                () = rolled_back => {
                    self.roll_back();
                    continue;
                }
            };
            let Some(command) = command else { break };
            match command {
                Command::Swap {
                    module,
                    config_json,
                    expect,
                    trigger,
                    at,
                    reply,
                } => {
                    let answer = match Module::from_bytes(module).await {
                        Ok(module) => {
                            let given = (config_json, expect);
                            self.swap(trigger, module, given, at).await
                        }
                        Err(error) => self.refused(trigger, &error),
                    };
                    let _ = reply.send(answer);
                }
                Command::FileChanged { at } => {
                    let path = self.config.policy.module.clone();
                    match Module::read(&path).await {
                        Ok(module) if module.hash == self.file_hash => {
                            tracing::debug!(module = %path.display(), "module file event, same content");
                        }
                        Ok(module) => {
                            self.file_hash = module.hash;
                            self.swap(Trigger::File, module, (None, None), at).await;
                        }
                        Err(error) => {
                            self.refused(Trigger::File, &error);
                        }
                    }
                }
                Command::Reload { config, reply } => {
                    let before = self.config.shadow.clone();
                    let answer = self.reload(config.map(|c| *c)).await;
                    let _ = reply.send(answer);
                    self.configured_shadow(before.as_ref()).await;
                }
                Command::Upgrade { reply } => {
                    let _ = reply.send(self.upgrade().await);
                }
                Command::Trial {
                    module,
                    config_json,
                    mode,
                    at,
                    reply,
                } => {
                    let answer = match Module::from_bytes(module).await {
                        Ok(module) => self.try_candidate(module, config_json, mode, at).await,
                        Err(error) => self.refused(Trigger::Admin, &error),
                    };
                    let _ = reply.send(answer);
                }
                Command::Promote { at, reply } => {
                    let _ = reply.send(self.promote(at).await);
                }
                Command::Abort { reply } => {
                    let _ = reply.send(self.abort());
                }
            }
        }
        self.watch = None;
        self.listeners.wait().await;
    }

    /// Prepare `module` beside the live policy and, if it passes, make it
    /// live. `config_json` replaces the live policy's config; the other
    /// settings (limits, self-test) are the live policy's.
    async fn swap(
        &mut self,
        trigger: Trigger,
        module: Module,
        (config_json, expect): (Option<String>, Option<Vec<Expectation>>),
        start: Instant,
    ) -> Answer {
        let live = self.running.serve.live.policy();
        let mut settings = live.settings().clone();
        if let Some(json) = config_json {
            settings.config_json = json;
        }
        if let Some(expect) = expect {
            settings.expect = expect;
        }
        let same =
            PolicyVersion::new(module.hash, &settings.config_json).same_content(live.version());
        // New samples alone are a change too: they must pass before they count.
        if same && settings.expect == live.settings().expect {
            self.count(trigger, ChangeOutcome::Unchanged);
            tracing::info!(trigger = trigger.as_str(), version = %live.version(), "policy unchanged");
            return Answer::Unchanged {
                version: live.version().to_string(),
            };
        }
        let (policy, report) = match prepare(&self.engine, &settings, &module).await {
            Ok(prepared) => prepared,
            Err(error) => return self.refused(trigger, &error),
        };
        let version = policy.version().to_string();
        self.make_live(policy);
        let answer = swapped(version, live.version(), &report, start);
        self.count(trigger, ChangeOutcome::Applied);
        tracing::info!(
            trigger = trigger.as_str(), version = %answer.version, previous = %answer.previous,
            compiled_from = %answer.compiled_from, compile_ms = answer.compile_ms,
            init_ms = answer.init_ms, samples = answer.samples, total_ms = answer.total_ms,
            "policy swapped"
        );
        Answer::Swapped(answer)
    }

    /// The one place a policy goes live.
    fn make_live(&self, policy: Policy) {
        let generation = self.running.serve.live.generation();
        generation
            .metrics
            .policy_live(&policy.version().id, policy.routes());
        self.running.serve.live.store(generation, Arc::new(policy));
    }

    fn refused(&self, trigger: Trigger, error: &LoadError) -> Answer {
        self.count(trigger, ChangeOutcome::Refused);
        // A candidate that fails `init` or its self-test is a policy failure
        // too (a module that does not load at all is not).
        if let Some(kind) = error.kind() {
            self.running
                .serve
                .live
                .generation()
                .metrics
                .policy_failed(kind);
        }
        let live = self.running.serve.live.policy();
        let (message, version) = (error.to_string(), live.version().to_string());
        let refused = ChangeOutcome::Refused.as_str();
        let refusal = Some((error.code(), message.as_str()));
        self.running
            .history
            .note(trigger.as_str(), refused, &version, refusal);
        tracing::warn!(
            target: "tls_sni", trigger = trigger.as_str(), code = error.code(),
            live = %live.version(), kind = error.kind().map(|k| k.as_str()), %error, "policy.failed"
        );
        Answer::Refused {
            code: error.code().into(),
            error: error.to_string(),
            live: live.version().to_string(),
        }
    }

    fn count(&self, trigger: Trigger, outcome: ChangeOutcome) {
        let generation = self.running.serve.live.generation();
        generation.metrics.policy_swap(trigger, outcome);
        // Refusals are noted where their code is known.
        if outcome != ChangeOutcome::Refused && trigger != Trigger::Reload {
            let live = self.running.serve.live.policy().version().to_string();
            self.running
                .history
                .note(trigger.as_str(), outcome.as_str(), &live, None);
        }
    }

    /// Follow the configured module file (again, after a reload changed it).
    fn rewatch(&mut self) {
        self.watch = None;
        if !self.config.policy.watch {
            return;
        }
        let tx = self.tx.clone();
        match watch::Watch::start(&self.config.policy.module, move |at| {
            // Full queue: a change is already pending, and it will re-read the file.
            let _ = tx.try_send(Command::FileChanged { at });
        }) {
            Ok(watch) => self.watch = Some(watch),
            Err(error) => tracing::warn!(
                module = %self.config.policy.module.display(),
                "cannot watch the policy module, swaps only by SIGHUP or limen swap: {error}"
            ),
        }
    }
}

/// Make a candidate ready on a blocking-pool thread: besides the compile,
/// its `init`, warm-up and self-test calls run guest code, which yields
/// only at a WASI call and must not hold a runtime worker (on a one-CPU,
/// current-thread runtime, the only one) while connections wait.
async fn prepare(
    engine: &PolicyEngine,
    settings: &PolicyConfig,
    module: &Module,
) -> Result<(Policy, LoadReport), LoadError> {
    let (engine, settings, module) = (engine.clone(), settings.clone(), module.clone());
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        runtime.block_on(Policy::prepare(&engine, &settings, &module))
    })
    .await
    .map_err(|e| LoadError::Compile(format!("loader thread failed: {e}")))?
}

/// What a prepared candidate's answer says: its version, the one live
/// before it, and what preparing it took.
fn swapped(version: String, live: &PolicyVersion, report: &LoadReport, start: Instant) -> Swapped {
    Swapped {
        version,
        previous: live.to_string(),
        compiled_from: report.compiled_from.name().into(),
        compile_ms: millis(report.compile),
        init_ms: millis(report.init),
        samples: report.samples,
        total_ms: millis(start.elapsed()),
    }
}

fn millis(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}
