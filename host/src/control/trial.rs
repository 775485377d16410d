//! A candidate policy on trial: `limen swap --shadow` prepares it as a swap
//! would (the same checks, self-test and codes), then shadows it:
//! `state::trial` carries each decided connection's inputs, `path::shadow`
//! has the candidate decide them on a thread of its own, with a limit table
//! of its own (nothing a shadow call takes or acquires changes what real
//! connections read). On canary it decides real connections, so it uses the
//! live limits: a tenant's rate and connection cap hold across the two
//! policies, as across a swap. `--promote` makes it live through the
//! ordinary swap; `--abort` drops it.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use super::admin::protocol::Answer;
use super::{Control, prepare, swapped};
use crate::outcome::Trigger;
use crate::path::shadow;
use crate::policy::limit_table::LimitTable;
use crate::policy::{Module, Policy};
use crate::state::config::ShadowConfig;
use crate::state::trial::{Canary, Sample, Tally, Trial};

/// What a promotion swaps in: the candidate's module and config.
pub(super) struct Candidate {
    module: Module,
    config_json: String,
    /// Started by `[policy.shadow]`: a reload that removes it ends it.
    configured: bool,
}

impl Control {
    /// Prepare `module` (with `config_json`, or the live config) and try it:
    /// shadowed, on canary for `percent` of client addresses, or both; a
    /// candidate already on trial is replaced.
    pub(super) async fn try_candidate(
        &mut self,
        module: Module,
        config_json: Option<String>,
        (shadow, percent): (bool, Option<f64>),
        start: Instant,
    ) -> Answer {
        let canary = match percent {
            None => None,
            Some(p) if (0.0..=100.0).contains(&p) => Some(Canary {
                share: (p * 100.0).round() as u32,
                min_calls: self.config.canary.min_calls,
                margin: self.config.canary.margin,
            }),
            Some(p) => {
                return Answer::Denied {
                    error: format!("canary share {p} is not a percentage (0-100)"),
                };
            }
        };
        let live = self.running.serve.live.policy();
        let mut settings = live.settings().clone();
        if let Some(json) = config_json {
            settings.config_json = json;
        }
        let (policy, report) = match prepare(&self.engine, &settings, &module).await {
            Ok(prepared) => prepared,
            Err(error) => return self.refused(Trigger::Admin, &error),
        };
        let version = policy.version().to_string();
        let policy = Arc::new(policy);
        let serve = &self.running.serve;
        let metrics = serve.live.generation().metrics.clone();
        let mode = (shadow || canary.is_none(), canary);
        let (trial, queues) = Trial::new(policy.clone(), mode, &metrics, serve.workers.count());
        let tally = trial.tally.clone();
        let apart = Arc::new(LimitTable::detached());
        if let Err(error) = consume((policy, apart), tally, queues) {
            return Answer::Refused {
                code: "E014".into(),
                error: format!("E014 cannot start the shadow's thread: {error}"),
                live: live.version().to_string(),
            };
        }
        serve.live.try_candidate(Some(Arc::new(trial)));
        self.candidate = Some(Candidate {
            module,
            config_json: settings.config_json,
            configured: false,
        });
        tracing::info!(
            candidate = %version, live = %live.version(), shadow = mode.0,
            canary_percent = percent, "policy.trial_started"
        );
        Answer::Shadowing(swapped(version, live.version(), &report, start))
    }

    /// `[policy.shadow]`: shadow its module at start, or when a reload
    /// changed it (`before`: what it was); a reload that removes it ends
    /// the trial it started.
    pub(super) async fn configured_shadow(&mut self, before: Option<&ShadowConfig>) {
        let now = self.config.shadow.clone();
        if now.as_ref() == before {
            return;
        }
        let Some(shadow) = now else {
            if self.candidate.as_ref().is_some_and(|c| c.configured) {
                self.abort();
            }
            return;
        };
        let answer = match Module::read(&shadow.module).await {
            Ok(module) => {
                let (config, at) = (shadow.config_json, Instant::now());
                self.try_candidate(module, config, (true, None), at).await
            }
            Err(error) => self.refused(Trigger::Reload, &error),
        };
        match (&answer, &mut self.candidate) {
            (Answer::Shadowing(_), Some(candidate)) => candidate.configured = true,
            _ => {
                tracing::warn!(module = %shadow.module.display(), ?answer, "policy.shadow not started")
            }
        }
    }

    /// Make the candidate live (prepared again with the live limits, as
    /// any swap), ending its trial.
    pub(super) async fn promote(&mut self, start: Instant) -> Answer {
        let Some(candidate) = self.candidate.take() else {
            return none_on_trial();
        };
        self.running.serve.live.try_candidate(None);
        let config = Some(candidate.config_json);
        let answer = self
            .swap(Trigger::Admin, candidate.module, (config, None), start)
            .await;
        tracing::info!(answer = ?answer, "policy.candidate_promoted");
        answer
    }

    /// Drop the candidate; the live policy was never touched.
    pub(super) fn abort(&mut self) -> Answer {
        if self.candidate.take().is_none() {
            return none_on_trial();
        }
        let ended = self.running.serve.live.load().trial.clone();
        self.running.serve.live.try_candidate(None);
        let version = ended.map_or_else(String::new, |t| t.policy.version().to_string());
        tracing::info!(candidate = %version, "policy.candidate_aborted");
        Answer::Aborted { version }
    }
}

impl Control {
    /// The canary crossed its failure margin: end the trial, and say why
    /// (event, metric, `limen status`, the status page's changes).
    pub(super) fn roll_back(&mut self) {
        let Some(trial) = self.running.serve.live.load().trial.clone() else {
            return;
        };
        let why = trial
            .tally
            .rolled_back()
            .unwrap_or("rolled back")
            .to_owned();
        self.running.serve.live.try_candidate(None);
        self.candidate = None;
        let candidate = trial.policy.version().to_string();
        let live = self.running.serve.live.policy().version().to_string();
        self.running
            .history
            .note("canary", "rolled_back", &live, Some(("P007", &why)));
        tracing::warn!(%candidate, %live, reason = %why, "policy.candidate_rolled_back");
        let noted = format!("P007 candidate {candidate} rolled back: {why}");
        *self
            .running
            .rolled_back
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(noted);
    }
}

fn none_on_trial() -> Answer {
    Answer::Denied {
        error: "no candidate is on trial".into(),
    }
}

/// One thread for the shadow, at the lowest priority, one consumer per
/// worker's queue on it; it ends once the trial (which holds the queues'
/// senders) is dropped.
fn consume(
    (policy, limits): (Arc<Policy>, Arc<LimitTable>),
    tally: Arc<Tally>,
    queues: Vec<mpsc::Receiver<Sample>>,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("limen-shadow".into())
        .spawn(move || {
            // The lowest priority (Linux: per thread): on a busy core the
            // shadow falls behind and its samples are dropped, counted,
            // rather than taking CPU time from live connections.
            let _ = rustix::process::setpriority_process(None, 19);
            runtime.block_on(async move {
                let mut consumers = tokio::task::JoinSet::new();
                for queue in queues {
                    let candidate = (policy.clone(), limits.clone());
                    let run = shadow::run(candidate, tally.clone(), queue);
                    consumers.spawn(run);
                }
                while consumers.join_next().await.is_some() {}
            });
        })?;
    Ok(())
}
