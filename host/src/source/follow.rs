//! An instance following its fleet's source: one task on the main runtime.
//! Connected, it holds `P/instances/<id>` under a lease, catches up on
//! `P/live`, then watches it; each new record is fetched, verified and
//! handed to the control task, which prepares it exactly like a local swap
//! (compile or cache, init, warm-up, self-test) and makes it live or
//! refuses it (the old policy serves on; the refusal goes in the instance
//! record). Disconnected, it keeps serving and reconnects with back-off;
//! what changed meanwhile is caught up on at once.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use etcd_client::{Client, EventType, WatchOptions};
use tokio_util::sync::CancellationToken;

use super::layout::{Instance, Keys, LiveRecord, Refusal};
use super::state;
use super::store::{self, StoreError};
use crate::config::{ListenerConfig, SourceConfig, expectations_from_json};
use crate::control::ControlHandle;
use crate::control::protocol::Answer;
use crate::listener::Serve;

/// The lease on the instance record: it disappears this long after the
/// instance stops renewing it.
const LEASE_TTL: i64 = 10;
/// How often the lease is renewed and the record refreshed.
const TICK: Duration = Duration::from_secs(3);
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What the follower knows between sessions.
struct Following {
    source: SourceConfig,
    keys: Keys,
    id: String,
    started_at: u64,
    handle: ControlHandle,
    serve: Arc<Serve>,
    /// The live record last applied (or refused), so a reconnect that finds
    /// it unchanged does nothing.
    seen: Option<LiveRecord>,
    refusal: Option<Refusal>,
}

/// Follow `source` until `stop`. `seen` is the record limen started with.
pub(crate) async fn follow(
    source: SourceConfig,
    (handle, serve): (ControlHandle, Arc<Serve>),
    seen: Option<LiveRecord>,
    stop: CancellationToken,
) {
    let id = source.id.clone().unwrap_or_else(default_id);
    let mut following = Following {
        keys: Keys::new(&source.prefix),
        source,
        id,
        started_at: unix_now(),
        handle,
        serve,
        seen,
        refusal: None,
    };
    let mut backoff = FIRST_BACKOFF;
    loop {
        let session = following.session(&stop, &mut backoff);
        let ended = tokio::select! {
            ended = session => ended,
            () = stop.cancelled() => Ok(()),
        };
        following.connected(false);
        match ended {
            Ok(()) => return,
            Err(error) => tracing::warn!(
                target: "tls_sni", prefix = %following.source.prefix, retry_in_ms = backoff.as_millis() as u64,
                %error, "source.disconnected: serving on, reconnecting"
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
        let lease = client.lease_grant(LEASE_TTL, None).await?.id();
        let (mut keeper, mut acks) = client.lease_keep_alive(lease).await?;
        // Catch up on what was published while away, then watch from there.
        let (live, revision) = store::live(&mut client, &self.keys).await?;
        self.connected(true);
        *backoff = FIRST_BACKOFF;
        tracing::info!(target: "tls_sni", prefix = %self.source.prefix, id = %self.id, revision, "source.connected");
        if let Some(live) = live {
            self.apply(&mut client, live).await;
        }
        self.report(&mut client, lease).await?;
        let options = WatchOptions::new().with_start_revision(revision + 1);
        let mut watch = client.watch(self.keys.live(), Some(options)).await?;
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                () = stop.cancelled() => {
                    let _ = client.lease_revoke(lease).await;
                    return Ok(());
                }
                _ = tick.tick() => {
                    keeper.keep_alive().await?;
                    self.report(&mut client, lease).await?;
                }
                ack = acks.message() => {
                    if ack?.is_none_or(|a| a.ttl() <= 0) {
                        return Err(StoreError::Corrupt("the instance's lease expired".into()));
                    }
                }
                message = watch.message() => {
                    let Some(response) = message? else {
                        return Err(StoreError::Corrupt("the watch ended".into()));
                    };
                    if response.canceled() {
                        return Err(StoreError::Corrupt(format!("watch cancelled: {}", response.cancel_reason())));
                    }
                    let puts = response.events().iter().filter(|e| e.event_type() == EventType::Put);
                    let latest = puts.filter_map(|e| e.kv()).next_back().map(|kv| kv.value().to_vec());
                    if let Some(value) = latest {
                        match serde_json::from_slice::<LiveRecord>(&value) {
                            Ok(live) => self.apply(&mut client, live).await,
                            Err(e) => self.refuse(None, "E062", format!("live record: {e}")),
                        }
                        self.report(&mut client, lease).await?;
                    }
                }
            }
        }
    }

    /// Fetch, verify and swap to `live`, unless it is what was last seen.
    async fn apply(&mut self, client: &mut Client, live: LiveRecord) {
        if self.seen.as_ref() == Some(&live) {
            return;
        }
        self.seen = Some(live.clone());
        let module = match store::download(client, &self.keys, &live).await {
            Ok(module) => module,
            Err(error) => return self.refuse(Some(&live), "E062", error.to_string()),
        };
        let listeners: Vec<ListenerConfig> = self
            .serve
            .live
            .generation()
            .listeners
            .iter()
            .map(|(name, bind)| ListenerConfig {
                name: name.clone(),
                bind: *bind,
            })
            .collect();
        let expect = match expectations_from_json(&live.expect, &listeners) {
            Ok(expect) => expect,
            Err(error) => return self.refuse(Some(&live), error.code(), error.to_string()),
        };
        let config_json = live.config.to_string();
        let module: Arc<[u8]> = module.into();
        let answer = self
            .handle
            .swap_from_source(module.clone(), config_json, expect)
            .await;
        match answer {
            Answer::Swapped(_) | Answer::Unchanged { .. } => {
                self.refusal = None;
                let (dir, record) = (self.source.state_dir.clone(), live.clone());
                let saved =
                    tokio::task::spawn_blocking(move || state::save(&dir, &module, &record)).await;
                if let Ok(Err(error)) | Err(error) = saved.map_err(std::io::Error::other) {
                    tracing::warn!(target: "tls_sni", state_dir = %self.source.state_dir.display(), %error, "source.state_not_saved");
                }
            }
            Answer::Refused { code, error, .. } => self.refuse(Some(&live), &code, error),
            other => self.refuse(Some(&live), "E062", format!("{other:?}")),
        }
    }

    fn refuse(&mut self, live: Option<&LiveRecord>, code: &str, message: String) {
        let module = live.map(|l| l.module.clone()).unwrap_or_default();
        tracing::warn!(
            target: "tls_sni", module = %module, code, %message,
            "source.refused: the live policy serves on"
        );
        self.refusal = Some(Refusal {
            module,
            code: code.to_owned(),
            message,
        });
    }

    /// Write this instance's record (under the lease).
    async fn report(&self, client: &mut Client, lease: i64) -> Result<(), StoreError> {
        let snapshot = self.serve.live.load();
        let version = snapshot.policy.version();
        let record = Instance {
            id: self.id.clone(),
            version: version.to_string(),
            module: version.module.to_hex(),
            generation: snapshot.generation.number,
            refusal: self.refusal.clone(),
            started_at: self.started_at,
            updated_at: unix_now(),
            uptime_s: unix_now().saturating_sub(self.started_at),
        };
        store::put_instance(client, &self.keys, &record, lease).await
    }

    fn connected(&self, up: bool) {
        self.serve
            .live
            .generation()
            .metrics
            .source_connected
            .set(i64::from(up));
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
