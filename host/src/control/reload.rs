//! Applying a new configuration (SIGHUP): certificates, policy and new
//! listeners are all made ready first; any failure refuses the new
//! configuration whole and the old one runs on untouched. Only then is it
//! switched in: a new generation for new connections, added listeners
//! started, removed ones stopped (their connections carry on).

use std::sync::Arc;
use std::time::Instant;

use super::admin::protocol::{Answer, Reloaded};
use super::ready::{Previous, ReadyError, ready};
use super::{Control, millis};
use crate::outcome::{ChangeOutcome, Trigger};
use crate::policy::Module;
use crate::state::config::{Config, ConfigError, PolicyConfig};

impl Control {
    pub(super) async fn reload(&mut self, config: Result<Config, ConfigError>) -> Answer {
        let start = Instant::now();
        let applied = match config {
            Ok(config) => self.apply(config, start).await,
            Err(error) => Err(error.into()),
        };
        match applied {
            Ok(reloaded) => {
                self.reloads(ChangeOutcome::Applied);
                let applied = ChangeOutcome::Applied.as_str();
                self.running
                    .history
                    .note("reload", applied, &reloaded.version, None);
                tracing::info!(
                    version = %reloaded.version, added = ?reloaded.added, removed = ?reloaded.removed,
                    policy_changed = reloaded.policy_changed, total_ms = reloaded.total_ms,
                    "configuration reloaded"
                );
                Answer::Reloaded(reloaded)
            }
            Err(error) => {
                self.reloads(ChangeOutcome::Refused);
                let live = self.running.serve.live.policy().version().to_string();
                let (refused, message) = (ChangeOutcome::Refused.as_str(), error.to_string());
                let refusal = Some((error.code(), message.as_str()));
                self.running.history.note("reload", refused, &live, refusal);
                tracing::warn!(%live, "configuration refused, the old one stays: {error}");
                Answer::Refused {
                    code: error.code().into(),
                    error: error.to_string(),
                    live,
                }
            }
        }
    }

    async fn apply(&mut self, mut config: Config, start: Instant) -> Result<Reloaded, ReadyError> {
        if let (Some(_), Some(running)) = (&config.source, &self.config.source) {
            crate::control::fleet::keep_live(
                &mut config,
                running,
                &self.running.serve.live.policy(),
            );
        }
        if config.admin != self.config.admin
            || config.metrics != self.config.metrics
            || config.status != self.config.status
        {
            tracing::warn!("[admin], [metrics] and [status] changes take effect at the next start");
        }
        let live = self.running.serve.live.policy();
        let module = Module::read(&config.policy.module).await?;
        if config.policy.cache != self.config.policy.cache {
            tracing::warn!("[policy] cache changes take effect at the next start");
        }
        let workers = self.running.serve.workers.count();
        if config.workers != workers {
            tracing::warn!(
                running = workers,
                "workers changes take effect at the next start"
            );
        }
        // The cache directory belongs to the engine, the pools to the
        // running workers, not the policy.
        let settings = PolicyConfig {
            cache: live.settings().cache.clone(),
            workers,
            ..config.policy.clone()
        };
        let policy = if module.hash == live.version().module && settings == *live.settings() {
            None
        } else {
            match super::prepare(&self.engine, &settings, &module).await {
                Ok((policy, _)) => Some(policy),
                Err(error) => {
                    self.count(Trigger::Reload, ChangeOutcome::Refused);
                    return Err(error.into());
                }
            }
        };
        let (added, removed) = self.listeners.diff(&config.listeners);
        let mut kept = self.listeners.addrs();
        kept.retain(|(name, _)| !removed.contains(name));
        let old = self.running.serve.live.generation();
        let previous = Previous {
            generation: &old,
            kept,
        };
        let acme = (&self.running.acme, &old.metrics);
        let ready = ready(&config, acme, (&added, workers), Some(previous)).await?;
        if policy.is_none() {
            // Counted once the reload stands: a refused one swapped nothing.
            self.count(Trigger::Reload, ChangeOutcome::Unchanged);
        }

        // Everything is ready: switch. The new generation is stored before
        // new listeners accept, so their connections never see an old one
        // (whose `own` addresses would not include them).
        let policy_changed = policy.is_some();
        let policy = match policy {
            Some(policy) => {
                old.metrics
                    .policy_live(&policy.version().id, policy.routes());
                Arc::new(policy)
            }
            None => live,
        };
        let generation = Arc::new(ready.generation);
        generation.publish_expiries();
        self.running.serve.live.store(generation, policy);
        self.running.acme.commit(&config, &ready.managed);
        if policy_changed {
            self.count(Trigger::Reload, ChangeOutcome::Applied);
        }
        self.file_hash = module.hash;
        for name in &removed {
            self.listeners.stop(name);
        }
        for bound in ready.bound {
            self.listeners.start(bound, &self.running.serve);
        }
        self.resize(old.limits.max_connections, config.limits.max_connections);
        let rewatch = config.policy.module != self.config.policy.module
            || config.policy.watch != self.config.policy.watch;
        self.config = config;
        if rewatch {
            self.rewatch();
        }
        Ok(Reloaded {
            version: self.running.serve.live.policy().version().to_string(),
            added: added.iter().map(|l| l.name.to_string()).collect(),
            removed: removed.iter().map(|n| n.to_string()).collect(),
            policy_changed,
            total_ms: millis(start.elapsed()),
        })
    }

    /// Change the connection limit: grow at once; shrink as connections
    /// finish (a background task takes the difference as they free up).
    fn resize(&self, old: usize, new: usize) {
        if new > old {
            self.running.serve.permits.add_permits(new - old);
        } else if new < old {
            let permits = self.running.serve.permits.clone();
            let fewer = u32::try_from(old - new).unwrap_or(u32::MAX);
            tokio::spawn(async move {
                if let Ok(taken) = permits.acquire_many_owned(fewer).await {
                    taken.forget();
                }
            });
        }
    }

    fn reloads(&self, outcome: ChangeOutcome) {
        self.running
            .serve
            .live
            .generation()
            .metrics
            .config_reload(outcome);
    }
}
