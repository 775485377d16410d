//! A fleet's source of truth: the policy, its config and its `expect`
//! samples in etcd (`[source.etcd]`), published by `limen publish`,
//! followed by every instance, reported per instance and summed up by
//! `limen fleet status`.
//!
//! Layout: `layout` (keys and records, pure), `etcd` (the client, over
//! etcd's JSON gateway), `store` (what limen keeps in etcd), `saved`
//! (the last good copy on disk), `follow` (an instance's task), `publish`
//! and `status` (the two commands). `pin` is the one place a validated
//! `Config`'s policy is rewritten to the fleet's.

pub mod etcd;
mod follow;
pub mod layout;
pub mod publish;
mod saved;
pub mod status;
pub mod store;

use std::time::Duration;

pub use follow::Seen;
pub(crate) use follow::follow;
use layout::{Keys, LiveRecord};
use store::StoreError;

use crate::policy::{Expectation, Policy};
use crate::state::config::{Config, SourceConfig, expectations_from_json};

/// How long a start waits for etcd before it falls back to `state_dir`.
const START_WAIT: Duration = Duration::from_secs(10);

/// Why limen cannot start from its source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// etcd could not be read and `state_dir` holds no last good copy.
    #[error(
        "E060 no policy to start with: etcd could not be read ({etcd}) and {state_dir} holds no last good copy ({state})"
    )]
    NoPolicy {
        /// Why etcd could not be read.
        etcd: String,
        /// The state directory.
        state_dir: String,
        /// What it holds, or why it could not be read.
        state: String,
    },
    /// Nothing is published yet.
    #[error("E061 nothing published under {0}: run `limen publish` first")]
    NothingPublished(String),
    /// What etcd holds is unusable (a module that does not match its
    /// hash, `expect` samples that do not parse).
    #[error("E062 {0}")]
    Unusable(String),
}

impl SourceError {
    /// The code that starts the message.
    pub fn code(&self) -> &'static str {
        match self {
            SourceError::NoPolicy { .. } => "E060",
            SourceError::NothingPublished(_) => "E061",
            SourceError::Unusable(_) => "E062",
        }
    }
}

/// What a start has to go on: the live record (and whether it came from
/// etcd), and `state_dir`'s last good copy, to fall back on if this
/// instance refuses etcd's.
pub struct Start {
    /// The record the policy was configured from.
    pub live: LiveRecord,
    /// `state_dir`'s last good record, when `live` came from etcd and differs.
    pub fallback: Option<LiveRecord>,
}

/// Fill `config`'s policy (module file, config, `expect`) from etcd, or
/// from `state_dir`'s last good copy when etcd cannot be read. Nothing is
/// recorded as good yet: [`started`] does that once the policy is live.
pub async fn bootstrap(config: &mut Config) -> Result<Start, SourceError> {
    let Some(source) = config.source.clone() else {
        return Err(SourceError::Unusable("no [source.etcd]".into()));
    };
    let keys = Keys::new(&source.prefix);
    let fetched = tokio::time::timeout(START_WAIT, fetch(&source, &keys)).await;
    let fetched = fetched.unwrap_or_else(|_| {
        Err(StoreError::Corrupt(format!(
            "no answer within {}s",
            START_WAIT.as_secs()
        )))
    });
    let last = blocking_load(&source).await;
    let start = match (fetched, last) {
        (Ok(Some((live, module))), last) => {
            let path = source.module_path(&live.module);
            blocking(move || saved::store_module(&path, &module))
                .await
                .map_err(|e| SourceError::Unusable(format!("state_dir: {e}")))?;
            let fallback = last.ok().flatten().filter(|l| *l != live);
            Start { live, fallback }
        }
        (Ok(None), Ok(Some(live))) => {
            tracing::warn!(prefix = %source.prefix, "nothing published yet: starting from state_dir's last good copy");
            Start {
                live,
                fallback: None,
            }
        }
        (Ok(None), _) => return Err(SourceError::NothingPublished(keys.live())),
        (Err(error), Ok(Some(live))) => {
            tracing::warn!(
                %error, state_dir = %source.state_dir.display(),
                "source.unreachable: starting from the last good copy"
            );
            Start {
                live,
                fallback: None,
            }
        }
        (Err(error), other) => {
            return Err(SourceError::NoPolicy {
                etcd: error.to_string(),
                state_dir: source.state_dir.display().to_string(),
                state: match other {
                    Ok(_) => "none".into(),
                    Err(e) => e.to_string(),
                },
            });
        }
    };
    configure(config, &source, &start.live)?;
    Ok(start)
}

/// Point `config`'s policy at `live` (its module in `state_dir`).
pub fn configure(
    config: &mut Config,
    source: &SourceConfig,
    live: &LiveRecord,
) -> Result<(), SourceError> {
    let expect = expectations_from_json(&live.expect, &config.listeners)
        .map_err(|e| SourceError::Unusable(e.to_string()))?;
    pin(
        config,
        source,
        &live.module,
        live.config.to_string(),
        expect,
    );
    Ok(())
}

/// A reloaded file's `config` keeps the fleet's policy live now: a
/// fleet's module, config and samples come from etcd, not the file, so a
/// reload changes limits and the rest, not those (nor `[source.etcd]`
/// itself, until the next start).
pub(crate) fn keep_live(config: &mut Config, running: &SourceConfig, live: &Policy) {
    if config.source.as_ref() != Some(running) {
        tracing::warn!("[source.etcd] changes take effect at the next start");
    }
    config.source = Some(running.clone());
    let settings = live.settings();
    let (json, expect) = (settings.config_json.clone(), settings.expect.clone());
    pin(
        config,
        running,
        &live.version().module.to_hex(),
        json,
        expect,
    );
}

/// The one place a validated `Config`'s policy is rewritten: at start
/// (etcd's record, or `state_dir`'s) and at a reload (the policy live now).
/// The module is the copy kept in `state_dir` under its hash.
fn pin(
    config: &mut Config,
    source: &SourceConfig,
    module: &str,
    config_json: String,
    expect: Vec<Expectation>,
) {
    config.policy.module = source.module_path(module);
    config.policy.config_json = config_json;
    config.policy.expect = expect;
}

/// `live`'s policy is live: it is the last good copy now.
pub async fn started(source: &SourceConfig, live: &LiveRecord) {
    let (dir, record) = (source.state_dir.clone(), live.clone());
    if let Err(error) = blocking(move || saved::save_live(&dir, &record)).await {
        tracing::warn!(state_dir = %source.state_dir.display(), %error, "source.state_not_saved");
    }
}

async fn fetch(
    source: &SourceConfig,
    keys: &Keys,
) -> Result<Option<(LiveRecord, Vec<u8>)>, StoreError> {
    let mut client = store::connect(source).await?;
    let (live, _) = store::live(&mut client, keys).await?;
    let Some(live) = live else { return Ok(None) };
    let module = store::download(&mut client, keys, &live).await?;
    Ok(Some((live, module)))
}

/// `state_dir`'s last good record (its module checked against its hash).
async fn blocking_load(source: &SourceConfig) -> std::io::Result<Option<LiveRecord>> {
    let source = source.clone();
    blocking(move || saved::load(&source)).await
}

/// Run blocking I/O off the runtime (a cancelled task is an error).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
}
