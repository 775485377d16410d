//! limen's configuration: the one owner of every setting and limit.
//!
//! Two stages: serde reads the file into `file::FileConfig` (value errors
//! carry a line and column), then [`Config::try_from`] checks what spans
//! several values and builds the types the data path uses, so nothing on the
//! connection path can fail for a configuration reason.

mod acme;
mod admin;
mod expect;
mod file;
mod limits;
mod observe;
mod pools;
mod source;
mod tls;
mod trial;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use crate::observe::{
    AccessLogConfig, AccessLogFormat, AccessLogSink, DEFAULT_UPSTREAM_LABELS, MetricsConfig,
};
pub use crate::plan::{AllowList, AllowRule};
pub use crate::upstream::pool::{
    Balance, Check, HealthConfig, MAX_RESOLVED, MAX_RETRIES, MemberConfig, PoolConfig,
};
pub use crate::upstream::tls::UpstreamTrust;
pub use acme::{AcmeConfig, AcmeNames, RenewBefore};
pub use admin::{AdminConfig, AdminEndpoint};
pub(crate) use expect::canonical as canonical_decision;
pub use limits::Limits;
pub(crate) use limits::MAX_PENDING_HELLOS_PER_CLIENT;
pub use observe::StatusConfig;
pub use source::{EtcdTls, SourceConfig};
pub use tls::{CertificateConfig, CertificateSource, KeyPairPaths, referenced_certificates};
pub use trial::{CanaryConfig, ShadowConfig};

use crate::decision::{Alert, ProxyTlvs, Upstream, UpstreamAddr};
pub use crate::hello::Transport;
pub use crate::plan::OfflineRules;
pub use crate::policy::{Expectation, FailMode, INIT_BUDGET_FACTOR, PolicyConfig};
use file::{FileCache, FileConfig, FileFailMode};

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Worker threads, each with its own runtime, sockets and instances
    /// (default: the CPUs limen may run on). Fixed at start.
    pub workers: usize,
    /// Where limen listens; at least one, names unique.
    pub listeners: Vec<ListenerConfig>,
    /// The routing policy and its sandbox limits.
    pub policy: PolicyConfig,
    /// `[policy.canary]`: when a candidate on canary is rolled back.
    pub canary: CanaryConfig,
    /// `[policy.shadow]`: a candidate shadowed from the start.
    pub shadow: Option<ShadowConfig>,
    /// Per-connection limits.
    pub limits: Limits,
    /// Upstreams policies may name.
    pub allow: AllowList,
    /// `[upstreams.pools]`, sorted by name.
    pub pools: Vec<PoolConfig>,
    /// Certificates a `terminate` decision may name, sorted by name.
    pub certificates: Vec<CertificateConfig>,
    /// How re-encrypted upstreams are verified.
    pub upstream_trust: UpstreamTrust,
    /// The ACME account for `acme = [...]` certificates, if any.
    pub acme: Option<AcmeConfig>,
    /// Where the policy comes from when not `[policy] module` (a fleet).
    pub source: Option<SourceConfig>,
    /// Where `limen swap` and `limen status` connect, if anywhere.
    pub admin: Option<AdminConfig>,
    /// Where `/metrics` is served, and its label cap.
    pub metrics: MetricsConfig,
    /// Where the status page is served, if `[status]` is configured.
    pub status: Option<StatusConfig>,
    /// The access log, if on (`[access_log]`).
    pub access_log: Option<AccessLogConfig>,
    /// `[log] level` (an `EnvFilter` directive); `RUST_LOG` wins when set.
    pub log_level: Option<String>,
}

/// One listening socket.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// Name shown to the policy and in logs.
    pub name: Arc<str>,
    /// Address to bind.
    pub bind: SocketAddr,
    /// TCP (TLS) or UDP (QUIC): a TCP and a QUIC listener may share an
    /// address and port.
    pub transport: Transport,
}

impl PolicyConfig {
    /// `module` with `config_json` and limen's default limits, one instance,
    /// the default compile cache, no watch and no self-test: for offline
    /// tools such as `limen test`.
    pub fn offline(module: PathBuf, config_json: String) -> PolicyConfig {
        PolicyConfig {
            module,
            fuel: file::default_fuel(),
            timeout: file::default_policy_timeout(),
            memory: usize::try_from(file::default_memory().as_u64()).unwrap_or(usize::MAX),
            instances: 1,
            workers: 1,
            on_error: FailMode::Reject(Alert::InternalError),
            config_json,
            cache: default_cache_dir(),
            watch: false,
            expect: Vec::new(),
            rules: OfflineRules::default(),
        }
    }
}

/// `[limits] hello_max_bytes` when the config does not say.
pub const DEFAULT_HELLO_MAX_BYTES: usize = 16 * 1024;

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("E001 cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid TOML, or a value of the wrong shape (message has line and column).
    #[error("E002 invalid config: {0}")]
    Toml(#[from] toml::de::Error),
    /// Values that are well-formed alone but wrong together, or out of range.
    #[error("E003 invalid config: {0}")]
    Invalid(String),
}

impl ConfigError {
    /// The code that starts the message.
    pub fn code(&self) -> &'static str {
        match self {
            ConfigError::Read { .. } => "E001",
            ConfigError::Toml(_) => "E002",
            ConfigError::Invalid(_) => "E003",
        }
    }
}

impl Config {
    /// Read and validate a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml(&text)
    }

    /// Validate config text.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let file: FileConfig = toml::from_str(text)?;
        Config::try_from(file)
    }

    /// Whether `[certificates]` has an entry a `terminate` decision may name.
    pub fn has_certificate(&self, name: &str) -> bool {
        self.certificates.iter().any(|c| *c.name == *name)
    }

    /// Certificate names the policy config refers to (see
    /// [`referenced_certificates`]) with no `[certificates]` entry.
    pub fn unknown_certificates(&self) -> Vec<String> {
        referenced_certificates(&self.policy.config_json)
            .into_iter()
            .filter(|name| !self.has_certificate(name))
            .collect()
    }
}

impl TryFrom<FileConfig> for Config {
    type Error = ConfigError;

    fn try_from(file: FileConfig) -> Result<Config, ConfigError> {
        let invalid = |msg: String| Err(ConfigError::Invalid(msg));
        if file.listeners.is_empty() {
            return invalid("at least one [[listeners]] entry is needed".into());
        }
        let mut names = HashSet::new();
        let mut binds = HashSet::new();
        for l in &file.listeners {
            if l.name.is_empty() || !names.insert(l.name.as_str()) {
                return invalid(format!(
                    "listeners: name `{}` is empty or used twice",
                    l.name
                ));
            }
            // Port 0 asks the kernel for a fresh port each time: not a
            // clash. TCP and UDP ports are apart: a TCP and a QUIC listener
            // may share one.
            let key = (l.bind, matches!(l.protocol, file::FileProtocol::Quic));
            if l.bind.port() != 0 && !binds.insert(key) {
                return invalid(format!("listeners: bind `{}` is used twice", l.bind));
            }
        }
        let p = &file.policy;
        let source = source::source(file.source.as_ref())?;
        let module = match (&p.module, &source) {
            (Some(module), None) => module.clone(),
            // The module, its config and its samples come from etcd; the
            // last good copy lives in state_dir, where limen loads it from.
            // Set for real by the bootstrap, once the live module is known.
            (None, Some(source)) if p.config.is_none() && p.expect.is_empty() => {
                source.module_path("unknown")
            }
            (None, Some(_)) => {
                return invalid(
                    "policy: with [source.etcd], the config and expect samples come from etcd \
                     (limen publish --config)"
                        .into(),
                );
            }
            (Some(_), Some(_)) => {
                return invalid(
                    "policy.module: with [source.etcd], the module comes from etcd".into(),
                );
            }
            (None, None) => return invalid("policy.module is needed (or [source.etcd])".into()),
        };
        if p.fuel == 0 {
            return invalid("policy.fuel must be > 0".into());
        }
        // A call runs on a runtime worker; a long one stalls that worker.
        if p.timeout.is_zero() || p.timeout > Duration::from_secs(1) {
            return invalid("policy.timeout must be between 1ms and 1s".into());
        }
        if p.instances.is_some_and(|n| n == 0 || n > 256) {
            return invalid("policy.instances must be between 1 and 256".into());
        }
        let memory = usize::try_from(p.memory.as_u64()).unwrap_or(usize::MAX);
        if memory < 128 * 1024 {
            return invalid("policy.memory must be at least 128KiB".into());
        }
        let limits = limits::limits(&file.limits)?;
        let on_error = match &p.on_error {
            FileFailMode::Word(_) => FailMode::Reject(Alert::InternalError),
            FileFailMode::Reject { reject } => {
                FailMode::Reject(Alert::from_name(reject).ok_or_else(|| {
                    ConfigError::Invalid(format!("policy.on_error: unknown alert `{reject}`"))
                })?)
            }
            FileFailMode::Fallback { fallback } => FailMode::Fallback(Upstream {
                addr: UpstreamAddr::parse(fallback)
                    .map_err(|e| ConfigError::Invalid(format!("policy.on_error.fallback: {e}")))?,
                proxy_protocol: None,
                connect_timeout: None,
                proxy_tlvs: ProxyTlvs::default(),
            }),
        };
        let config_json = serde_json::to_string(&p.config.clone().unwrap_or_default())
            .map_err(|e| ConfigError::Invalid(format!("policy.config: {e}")))?;
        if file.workers.is_some_and(|n| n == 0 || n > 1024) {
            return invalid("workers must be between 1 and 1024".into());
        }
        let workers = file.workers.unwrap_or_else(default_workers);
        let listeners: Vec<ListenerConfig> = file
            .listeners
            .iter()
            .map(|l| ListenerConfig {
                name: l.name.as_str().into(),
                bind: l.bind,
                transport: match l.protocol {
                    file::FileProtocol::Tcp => Transport::Tcp,
                    file::FileProtocol::Quic => Transport::Quic,
                },
            })
            .collect();
        let cache = match &p.cache {
            None | Some(FileCache::Enabled(true)) => default_cache_dir(),
            Some(FileCache::Enabled(false)) => None,
            Some(FileCache::Dir(dir)) => Some(dir.clone()),
        };
        let acme = acme::acme(file.acme.as_ref())?;
        let certificates = tls::certificates(&file.certificates, acme.as_ref())?;
        let own: Vec<SocketAddr> = listeners.iter().map(|l| l.bind).collect();
        let pools = pools::pools(&file.upstreams.pools, &own)?;
        let pool_names: Vec<Arc<str>> = pools.iter().map(|p| p.name.clone()).collect();
        if let FailMode::Fallback(Upstream {
            addr: UpstreamAddr::Pool(name),
            ..
        }) = &on_error
            && !pool_names.contains(name)
        {
            return invalid(format!(
                "policy.on_error.fallback: no pool named `{name}` in [upstreams.pools]"
            ));
        }
        let allow = AllowList::new(file.upstreams.allow);
        Ok(Config {
            workers,
            policy: PolicyConfig {
                module,
                fuel: p.fuel,
                timeout: p.timeout,
                memory,
                instances: p.instances.unwrap_or(2),
                workers,
                on_error,
                config_json,
                cache,
                // A fleet's module changes through etcd, not the file.
                watch: p.watch.unwrap_or(true) && source.is_none(),
                expect: expect::expectations(&p.expect, &listeners)?,
                rules: OfflineRules {
                    allow: allow.clone(),
                    own,
                    certificates: certificates.iter().map(|c| c.name.clone()).collect(),
                    pools: pool_names,
                },
            },
            canary: trial::canary(p.canary.as_ref())?,
            shadow: trial::shadow(p.shadow.as_ref())?,
            listeners,
            limits,
            certificates,
            acme,
            source,
            upstream_trust: tls::upstream_trust(&file.upstream_tls)?,
            allow,
            pools,
            admin: admin::admin(&file.admin)?,
            metrics: observe::metrics(file.metrics.as_ref())?,
            status: observe::status(file.status.as_ref())?,
            access_log: observe::access_log(file.access_log.as_ref())?,
            log_level: observe::log_level(file.log.as_ref())?,
        })
    }
}

/// `[[policy.expect]]` samples as JSON values (as a fleet's source keeps
/// them), checked against `listeners` like the config's own.
pub fn expectations_from_json(
    values: &[serde_json::Value],
    listeners: &[ListenerConfig],
) -> Result<Vec<Expectation>, ConfigError> {
    let file: Vec<file::FileExpect> = values
        .iter()
        .map(|v| serde_json::from_value(v.clone()))
        .collect::<Result<_, _>>()
        .map_err(|e| ConfigError::Invalid(format!("expect: {e}")))?;
    expect::expectations(&file, listeners)
}

/// `$XDG_CACHE_HOME/limen`, else `$HOME/.cache/limen`, else no cache.
fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })?;
    Some(base.join("limen"))
}

#[cfg(test)]
mod tests;

/// `"5ms"`, `"5s"`, `"10m"`: humantime syntax.
fn duration<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
    let text = <String as serde::Deserialize>::deserialize(de)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "bad duration `{text}` ({e}); write e.g. \"5ms\", \"5s\", \"10m\""
        ))
    })
}

/// The CPUs limen may run on (affinity and cgroup limits included): the
/// default number of workers.
fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
