//! An instance following its fleet's source: one task on the main runtime.
//! Connected, it holds `P/instances/<id>` under a lease (renewed by a task
//! of its own, so a long prepare never lets it lapse), catches up on
//! `P/live`, then watches it; each new record is fetched, verified, kept in
//! `state_dir` and handed to the control task, which prepares it exactly
//! like a local swap (compile or cache, init, warm-up, self-test) and makes
//! it live or refuses it (the old policy serves on; the refusal goes in the
//! instance record). Disconnected, it keeps serving and reconnects with
//! back-off; what changed meanwhile is caught up on at once.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::etcd::Client;
use super::layout::{CandidateRecord, Instance, Keys, LiveRecord, Refusal, Trying};
use super::store::{self, StoreError};
use super::{blocking, saved};
use crate::control::ControlHandle;
use crate::control::admin::protocol::Answer;
use crate::control::running::Running;
use crate::state::config::{ListenerConfig, SourceConfig, expectations_from_json};

/// The lease on the instance record: it disappears this long after the
/// instance stops renewing it.
const LEASE_TTL: i64 = 10;
/// How often the lease is renewed.
const TICK: Duration = Duration::from_secs(3);
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The live record last applied or refused, and the refusal if it was.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// The record.
    pub live: Option<LiveRecord>,
    /// Why it was refused, if it was.
    pub refusal: Option<Refusal>,
}

/// What the follower knows between sessions.
struct Following {
    source: SourceConfig,
    keys: Keys,
    id: String,
    started_at: u64,
    handle: ControlHandle,
    running: Arc<Running>,
    seen: Seen,
    /// `P/candidate` as last applied, and what this instance made of it.
    candidate: Option<CandidateRecord>,
    trying: Option<Trying>,
    /// The record last written, so an unchanged one is not written again
    /// (each write is an etcd revision, kept until compaction).
    written: Option<Instance>,
}

/// Follow `source` until `stop`; `seen` is what limen started with.
pub(crate) async fn follow(
    source: SourceConfig,
    (handle, running): (ControlHandle, Arc<Running>),
    seen: Seen,
    stop: CancellationToken,
) {
    let id = source.id.clone().unwrap_or_else(default_id);
    let mut following = Following {
        keys: Keys::new(&source.prefix),
        source,
        id,
        started_at: unix_now(),
        handle,
        running,
        seen,
        candidate: None,
        trying: None,
        written: None,
    };
    let mut backoff = FIRST_BACKOFF;
    loop {
        // The session watches `stop` itself: it revokes the lease on the
        // way out, so a stopped instance leaves `fleet status` at once.
        let ended = following.session(&stop, &mut backoff).await;
        following.connected(false);
        following.written = None;
        match ended {
            Ok(()) => return,
            Err(error) => tracing::warn!(
                target: "tls_sni", prefix = %following.source.prefix,
                retry_in_ms = backoff.as_millis() as u64, %error,
                "source.disconnected: serving on, reconnecting"
            ),
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

impl Following {
    async fn session(
        &mut self,
        stop: &CancellationToken,
        backoff: &mut Duration,
    ) -> Result<(), StoreError> {
        let mut client = store::connect(&self.source).await?;
        let lease = client.lease_grant(LEASE_TTL).await?;
        let (lost, mut lapsed) = oneshot::channel();
        let renewing = tokio::spawn(keep_alive(client.fork(), lease, lost));
        let _renewing = AbortOnDrop(renewing);
        let result = async {
            // Catch up on what was published while away, then watch from there.
            let (live, revision) = store::live(&mut client, &self.keys).await?;
            self.connected(true);
            tracing::info!(target: "tls_sni", prefix = %self.source.prefix, id = %self.id, revision, "source.connected");
            if let Some(live) = live {
                self.apply(&mut client, live).await?;
            }
            let (candidate, candidate_revision) = match store::candidate(&mut client, &self.keys).await {
                Ok(read) => read,
                // A record that does not parse is no candidate: it must not
                // stop this instance from following `live`.
                Err(StoreError::Corrupt(why)) => {
                    tracing::warn!(target: "tls_sni", %why, "source.candidate_unreadable");
                    (None, store::live(&mut client, &self.keys).await?.1)
                }
                Err(error) => return Err(error),
            };
            self.try_candidate(&mut client, candidate).await?;
            self.report(&mut client, lease).await?;
            let mut watch = client.watch(self.keys.live().as_bytes(), revision + 1).await?;
            let mut watcher = client.fork();
            let key = self.keys.candidate();
            let mut candidates = watcher.watch(key.as_bytes(), candidate_revision + 1).await?;
            // Up and reporting: the next failure starts the back-off anew.
            *backoff = FIRST_BACKOFF;
            let mut tick = tokio::time::interval(TICK);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return Ok(true),
                    why = &mut lapsed => {
                        let why = why.unwrap_or_else(|_| "the lease task ended".into());
                        return Err(StoreError::Corrupt(why));
                    }
                    // Generation and version also change by local swaps and
                    // reloads, and a candidate's counts as it is tried.
                    _ = tick.tick() => self.report(&mut client, lease).await?,
                    message = candidates.message() => {
                        let Some(response) = message? else {
                            return Err(StoreError::Corrupt("the candidate watch ended".into()));
                        };
                        if let Some(last) = response.events.into_iter().next_back() {
                            let record = match (last.is_put(), last.kv) {
                                (true, Some(kv)) => serde_json::from_slice(&kv.value).ok(),
                                _ => None,
                            };
                            self.try_candidate(&mut client, record).await?;
                            self.report(&mut client, lease).await?;
                        }
                    }
                    message = watch.message() => {
                        let Some(response) = message? else {
                            return Err(StoreError::Corrupt("the watch ended".into()));
                        };
                        if response.canceled {
                            return Err(StoreError::Corrupt(format!(
                                "watch cancelled (compacted at {}): {}",
                                response.compact_revision,
                                response.cancel_reason
                            )));
                        }
                        let puts = response.events.into_iter().filter(|e| e.is_put());
                        let latest = puts.filter_map(|e| e.kv).next_back().map(|kv| kv.value);
                        if let Some(value) = latest {
                            match serde_json::from_slice::<LiveRecord>(&value) {
                                Ok(live) => self.apply(&mut client, live).await?,
                                Err(e) => self.refuse(None, "E062", format!("live record: {e}")),
                            }
                            self.report(&mut client, lease).await?;
                        }
                    }
                }
            }
        }
        .await;
        if let Ok(true) = result {
            let revoke = client.lease_revoke(lease);
            let _ = tokio::time::timeout(Duration::from_secs(1), revoke).await;
        }
        result.map(drop)
    }

    /// Fetch, verify, keep and swap to `live`, unless it is what was last
    /// seen. An etcd error is the session's (reconnect, try again); a
    /// record or module that does not check out is a refusal.
    async fn apply(&mut self, client: &mut Client, live: LiveRecord) -> Result<(), StoreError> {
        if self.seen.live.as_ref() == Some(&live) {
            return Ok(());
        }
        let module = match store::download(client, &self.keys, &live).await {
            Ok(module) => module,
            Err(error @ StoreError::Corrupt(_)) => {
                self.seen.live = Some(live.clone());
                self.refuse(Some(&live), "E062", error.to_string());
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        self.seen.live = Some(live.clone());
        let listeners: Vec<ListenerConfig> = self
            .running
            .serve
            .live
            .generation()
            .listeners
            .iter()
            .map(|(name, bind)| ListenerConfig {
                name: name.clone(),
                bind: *bind,
                // Samples name a listener; its transport is not theirs to check.
                transport: crate::hello::Transport::Tcp,
            })
            .collect();
        let expect = match expectations_from_json(&live.expect, &listeners) {
            Ok(expect) => expect,
            Err(error) => {
                self.refuse(Some(&live), error.code(), error.to_string());
                return Ok(());
            }
        };
        let module: Arc<[u8]> = module.into();
        // Kept before the swap: a SIGHUP reload reads the live module from here.
        let (path, bytes) = (self.source.module_path(&live.module), module.clone());
        if let Err(error) = blocking(move || saved::store_module(&path, &bytes)).await {
            tracing::warn!(target: "tls_sni", %error, "source.state_not_saved");
        }
        let config_json = live.config.to_string();
        let answer = self
            .handle
            .swap_from_source(module, config_json, expect)
            .await;
        match answer {
            Answer::Swapped(_) | Answer::Unchanged { .. } => {
                self.seen.refusal = None;
                let (dir, record) = (self.source.state_dir.clone(), live.clone());
                if let Err(error) = blocking(move || saved::save_live(&dir, &record)).await {
                    tracing::warn!(target: "tls_sni", %error, "source.state_not_saved");
                }
            }
            Answer::Refused { code, error, .. } => self.refuse(Some(&live), &code, error),
            other => self.refuse(Some(&live), "E062", format!("{other:?}")),
        }
        Ok(())
    }

    /// Try `candidate` (`P/candidate`) beside the live policy, or drop the
    /// one tried when it is gone; unless it is what was last seen.
    async fn try_candidate(
        &mut self,
        client: &mut Client,
        candidate: Option<CandidateRecord>,
    ) -> Result<(), StoreError> {
        if self.candidate == candidate {
            return Ok(());
        }
        let Some(candidate) = candidate else {
            self.candidate = None;
            if self.trying.take().is_some() {
                let _ = self.handle.abort().await;
            }
            return Ok(());
        };
        let module = candidate.policy.module.clone();
        let mut trying = Trying {
            module,
            version: String::new(),
            mode: String::new(),
            counts: [0; 6],
            ended: None,
        };
        let bytes = match store::download(client, &self.keys, &candidate.policy).await {
            Ok(bytes) => bytes,
            Err(error @ StoreError::Corrupt(_)) => {
                trying.ended = Some(format!("E062 {error}"));
                self.trying = Some(trying);
                self.candidate = Some(candidate);
                return Ok(());
            }
            // Not seen yet: tried again once the session is back.
            Err(error) => return Err(error),
        };
        // Seen only once fetched: a download cut by etcd is tried again.
        self.candidate = Some(candidate.clone());
        let config = Some(candidate.policy.config.to_string());
        let mode = (candidate.shadow, candidate.canary);
        match self.handle.try_candidate(bytes.into(), config, mode).await {
            Answer::Shadowing(prepared) => trying.version = prepared.version,
            Answer::Refused { code, error, .. } => trying.ended = Some(format!("{code} {error}")),
            other => trying.ended = Some(format!("{other:?}")),
        }
        tracing::info!(target: "tls_sni", module = %trying.module, ended = ?trying.ended, "source.candidate");
        self.trying = Some(trying);
        Ok(())
    }

    /// The candidate tried, with its counts now (or why it ended here).
    fn trying_now(&self) -> Option<Trying> {
        let mut trying = self.trying.clone()?;
        match self.running.serve.live.load().trial.as_deref() {
            Some(trial) if trial.policy.version().to_string() == trying.version => {
                let [same, different, failed, dropped] = trial.tally.counts();
                let [decided, canary_failed, ..] = trial.tally.canary();
                trying.mode = trial.mode();
                trying.counts = [same, different, failed, dropped, decided, canary_failed];
            }
            // Prepared, then ended here: rolled back (or aborted locally).
            _ if trying.ended.is_none() => {
                let rolled_back = self.running.rolled_back.lock().map_or(None, |r| r.clone());
                trying.ended = Some(rolled_back.unwrap_or_else(|| "ended on this instance".into()));
            }
            _ => {}
        }
        Some(trying)
    }

    fn refuse(&mut self, live: Option<&LiveRecord>, code: &str, message: String) {
        let module = live.map(|l| l.module.clone()).unwrap_or_default();
        tracing::warn!(
            target: "tls_sni", module = %module, code, %message,
            "source.refused: the live policy serves on"
        );
        self.seen.refusal = Some(Refusal {
            module,
            code: code.to_owned(),
            message,
        });
    }

    /// Write this instance's record (under the lease), if it changed.
    async fn report(&mut self, client: &mut Client, lease: i64) -> Result<(), StoreError> {
        let snapshot = self.running.serve.live.load();
        let version = snapshot.policy.version();
        let mut record = Instance {
            id: self.id.clone(),
            version: version.to_string(),
            module: version.module.to_hex(),
            generation: snapshot.generation.number,
            refusal: self.seen.refusal.clone(),
            trying: self.trying_now(),
            started_at: self.started_at,
            updated_at: 0,
        };
        if self.written.as_ref() == Some(&record) {
            return Ok(());
        }
        let unchanged = record.clone();
        record.updated_at = unix_now();
        store::put_instance(client, &self.keys, &record, lease).await?;
        self.written = Some(unchanged);
        Ok(())
    }

    fn connected(&self, up: bool) {
        let metrics = &self.running.serve.live.generation().metrics;
        metrics.source_connected.set(i64::from(up));
    }
}

/// Renew `lease` every [`TICK`] on a connection of its own until the
/// session ends (this task is aborted then); say why if it cannot.
async fn keep_alive(mut client: Client, lease: i64, lost: oneshot::Sender<String>) {
    let why = loop {
        match client.keep_alive(lease).await {
            Ok(ttl) if ttl > 0 => {}
            Ok(_) => break "the instance's lease expired".to_owned(),
            Err(e) => break e.to_string(),
        }
        tokio::time::sleep(TICK).await;
    };
    let _ = lost.send(why);
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `<host name>-<pid>`: unique per process on a host, readable in a table.
fn default_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "limen".into());
    format!("{host}-{}", std::process::id())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
