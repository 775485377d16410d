//! `limen publish`: check a module locally exactly as an instance will
//! (load, type-check, `init` with its config, the `expect` self-test),
//! then store it content-addressed in chunks and point `live` at it in one
//! transaction. Nothing is written to etcd before the check passes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::layout::{CHUNK, CandidateRecord, Keys, LiveRecord, MAX_MODULE};
use super::store::{self, StoreError};
use crate::policy::{LoadError, Module, Policy, PolicyEngine};
use crate::state::config::{
    AllowList, Config, ListenerConfig, OfflineRules, PolicyConfig, SourceConfig,
    expectations_from_json, referenced_certificates,
};

/// What to publish.
pub struct Request {
    /// Where (endpoints, prefix, credentials; `state_dir` is not used).
    pub source: SourceConfig,
    /// The component file.
    pub module: PathBuf,
    /// What `init` gets.
    pub config: serde_json::Value,
    /// `[[expect]]` samples, as written.
    pub expect: Vec<serde_json::Value>,
    /// The instances' config, to check decisions against their allow-list,
    /// listeners and certificates (without it: any address, the
    /// certificates the config names, one listener `public`).
    pub limen_config: Option<Config>,
    /// Publish it as the candidate on trial instead (`P/candidate`):
    /// shadowed, and on canary for this percentage of client addresses.
    pub trial: Option<(bool, Option<f64>)>,
}

/// What `limen publish` did.
#[derive(Debug, Serialize)]
pub struct Published {
    /// The module's SHA-256.
    pub module: String,
    /// The module's size in bytes.
    pub bytes: u64,
    /// How many chunks hold it.
    pub chunks: usize,
    /// Whether it was sent (false: etcd had it already).
    pub uploaded: bool,
    /// Self-test samples that passed.
    pub samples: usize,
    /// etcd's revision of the new `live`.
    pub revision: i64,
}

/// Why nothing was published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The module failed the local check (its code: P001-P006).
    #[error(transparent)]
    Refused(#[from] LoadError),
    /// etcd would not take it.
    #[error("E063 {0}")]
    Store(#[from] StoreError),
    /// Samples or module size out of bounds.
    #[error("E062 {0}")]
    Invalid(String),
}

impl PublishError {
    /// The code that starts the message.
    pub fn code(&self) -> &'static str {
        match self {
            PublishError::Refused(error) => error.code(),
            PublishError::Store(_) => "E063",
            PublishError::Invalid(_) => "E062",
        }
    }
}

/// Check `request`'s module locally, then store and publish it.
pub async fn publish(request: Request) -> Result<Published, PublishError> {
    let path = request.module.clone();
    let bytes = tokio::task::spawn_blocking(move || std::fs::read(path))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
        .map_err(|e| LoadError::Read {
            path: request.module.display().to_string(),
            reason: e.to_string(),
        })?;
    if bytes.len() as u64 > MAX_MODULE {
        return Err(PublishError::Invalid(format!(
            "module of {} bytes, more than {MAX_MODULE}",
            bytes.len()
        )));
    }
    let config_json = request.config.to_string();
    let settings = settings(&request, config_json)?;
    let samples = settings.expect.len();
    // The bytes checked are the bytes uploaded (not the file read again).
    let module = Module::from_bytes(bytes.clone().into()).await?;
    let engine = PolicyEngine::new()?.with_cache(settings.cache.as_deref());
    Policy::prepare(&engine, &settings, &module).await?;
    let keys = Keys::new(&request.source.prefix);
    let mut client = store::connect(&request.source).await?;
    let (module, uploaded) = store::upload(&mut client, &keys, &bytes).await?;
    let live = LiveRecord {
        module: module.clone(),
        size: bytes.len() as u64,
        config: request.config,
        expect: request.expect,
        published_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    let revision = match request.trial {
        None => store::publish(&mut client, &keys, &live).await?,
        Some((shadow, canary)) => {
            let candidate = CandidateRecord {
                policy: live,
                shadow: shadow || canary.is_none(),
                canary,
            };
            store::put_candidate(&mut client, &keys, &candidate).await?
        }
    };
    Ok(Published {
        module,
        bytes: bytes.len() as u64,
        chunks: bytes.len().div_ceil(CHUNK),
        uploaded,
        samples,
        revision,
    })
}

/// `limen publish --promote`: the candidate on trial becomes `P/live` (each
/// instance swaps to it as to any published policy), then `P/candidate`
/// goes; the revision of the new `live`.
pub async fn promote(source: &SourceConfig) -> Result<i64, PublishError> {
    let keys = Keys::new(&source.prefix);
    let mut client = store::connect(source).await?;
    let (candidate, _) = store::candidate(&mut client, &keys).await?;
    let Some(candidate) = candidate else {
        return Err(PublishError::Invalid(format!(
            "no candidate on trial under {}",
            source.prefix
        )));
    };
    let revision = store::publish(&mut client, &keys, &candidate.policy).await?;
    store::delete_candidate(&mut client, &keys).await?;
    Ok(revision)
}

/// `limen publish --abort`: no candidate on trial any more; each instance
/// drops the one it tries.
pub async fn abort(source: &SourceConfig) -> Result<(), PublishError> {
    let keys = Keys::new(&source.prefix);
    let mut client = store::connect(source).await?;
    store::delete_candidate(&mut client, &keys).await?;
    Ok(())
}

/// The settings an instance would prepare the module with.
fn settings(request: &Request, config_json: String) -> Result<PolicyConfig, PublishError> {
    let offline = PolicyConfig::offline(request.module.clone(), config_json.clone());
    // The instances' limits (fuel, memory, deadline) when their config is
    // given: a module that needs more passes nowhere.
    let base = match &request.limen_config {
        Some(config) => PolicyConfig {
            module: request.module.clone(),
            config_json: config_json.clone(),
            instances: 1,
            workers: 1,
            watch: false,
            ..config.policy.clone()
        },
        None => offline,
    };
    let (listeners, rules) = match &request.limen_config {
        Some(config) => (config.listeners.clone(), config.policy.rules.clone()),
        None => {
            let any = ["0.0.0.0/0", "::/0"].map(|r| r.parse().expect("static allow rule"));
            let bind: SocketAddr = ([0, 0, 0, 0], 443).into();
            let rules = OfflineRules {
                allow: AllowList::new(any.into()),
                own: vec![bind],
                certificates: referenced_certificates(&config_json)
                    .into_iter()
                    .map(Arc::from)
                    .collect(),
                pools: Vec::new(),
            };
            let public = ListenerConfig {
                name: "public".into(),
                bind,
                transport: crate::hello::Transport::Tcp,
            };
            (vec![public], rules)
        }
    };
    let expect = expectations_from_json(&request.expect, &listeners)
        .map_err(|e| PublishError::Invalid(e.to_string()))?;
    Ok(PolicyConfig {
        expect,
        rules,
        ..base
    })
}
