//! The TOML file as written, deserialised by serde before any validation.
//!
//! Value-level checks (addresses, sizes, durations, allow rules) run inside
//! deserialisation so that `toml` reports them with a line and column.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

use super::acme::FileAcme;
use super::duration;
use super::observe::{FileAccessLog, FileLog, FileMetrics, FileStatus};
use super::source::FileSource;
use crate::plan::AllowRule;

/// limen's config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    #[serde(default)]
    pub(crate) workers: Option<usize>,
    pub(crate) listeners: Vec<FileListener>,
    pub(crate) policy: FilePolicy,
    #[serde(default)]
    pub(crate) limits: FileLimits,
    #[serde(default)]
    pub(crate) upstreams: FileUpstreams,
    #[serde(default)]
    pub(crate) certificates: BTreeMap<String, FileCertificate>,
    #[serde(default)]
    pub(crate) upstream_tls: FileUpstreamTls,
    #[serde(default)]
    pub(crate) acme: Option<FileAcme>,
    #[serde(default)]
    pub(crate) source: Option<FileSource>,
    #[serde(default)]
    pub(crate) admin: Option<FileAdmin>,
    #[serde(default)]
    pub(crate) metrics: Option<FileMetrics>,
    #[serde(default)]
    pub(crate) status: Option<FileStatus>,
    #[serde(default)]
    pub(crate) access_log: Option<FileAccessLog>,
    #[serde(default)]
    pub(crate) log: Option<FileLog>,
}

/// `[admin]`: `socket = "path"`, or `bind = "127.0.0.1:9901"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileAdmin {
    #[serde(default)]
    pub(crate) socket: Option<PathBuf>,
    #[serde(default)]
    pub(crate) bind: Option<SocketAddr>,
    #[serde(default)]
    pub(crate) token_file: Option<PathBuf>,
    #[serde(default)]
    pub(crate) allow_public: bool,
}

/// One `[[policy.expect]]` sample.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileExpect {
    #[serde(default)]
    pub(crate) sni: Option<String>,
    #[serde(default)]
    pub(crate) alpn: Vec<String>,
    #[serde(default)]
    pub(crate) client: Option<SocketAddr>,
    #[serde(default)]
    pub(crate) listener: Option<String>,
    pub(crate) decision: String,
}

/// `cache = "dir"` or `cache = false`.
#[derive(Debug, Deserialize)]
#[serde(untagged, expecting = "a directory path, or false")]
pub(crate) enum FileCache {
    Dir(PathBuf),
    Enabled(bool),
}

/// `[certificates.NAME]` with one pair, or `[[certificates.NAME]]` with
/// several (an RSA and an ECDSA key for the same names).
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "a table { chain = \"file.pem\", key = \"file.key\" }, an array of them, \
                 or { acme = [\"name\", ...] }"
)]
pub(crate) enum FileCertificate {
    One(FileKeyPair),
    Many(Vec<FileKeyPair>),
    /// `acme = ["shop.example.com"]`: obtained through `[acme]`.
    Acme(FileAcmeNames),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileAcmeNames {
    pub(crate) acme: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileKeyPair {
    pub(crate) chain: PathBuf,
    pub(crate) key: PathBuf,
}

/// `[upstream_tls]`: how limen checks upstreams it re-encrypts to.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileUpstreamTls {
    /// PEM bundle of CAs; the system's roots when absent.
    #[serde(default)]
    pub(crate) ca: Option<PathBuf>,
    #[serde(default)]
    pub(crate) dangerously_accept_any_certificate: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileListener {
    pub(crate) name: String,
    pub(crate) bind: SocketAddr,
    /// `"tcp"` (the default) or `"quic"` (UDP).
    #[serde(default)]
    pub(crate) protocol: FileProtocol,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum FileProtocol {
    #[default]
    Tcp,
    Quic,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilePolicy {
    /// Absent with `[source.etcd]`, which supplies the module.
    #[serde(default)]
    pub(crate) module: Option<PathBuf>,
    #[serde(default = "default_fuel")]
    pub(crate) fuel: u64,
    #[serde(default = "default_policy_timeout", deserialize_with = "duration")]
    pub(crate) timeout: Duration,
    #[serde(default = "default_memory")]
    pub(crate) memory: ByteSize,
    #[serde(default)]
    pub(crate) instances: Option<usize>,
    #[serde(default)]
    pub(crate) on_error: FileFailMode,
    #[serde(default)]
    pub(crate) config: Option<toml::Table>,
    #[serde(default)]
    pub(crate) cache: Option<FileCache>,
    #[serde(default)]
    pub(crate) watch: Option<bool>,
    #[serde(default)]
    pub(crate) expect: Vec<FileExpect>,
    #[serde(default)]
    pub(crate) canary: Option<super::trial::FileCanary>,
    #[serde(default)]
    pub(crate) shadow: Option<super::trial::FileShadow>,
}

/// `on_error = "reject"`, `{ reject = "access_denied" }` or `{ fallback = "host:port" }`.
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "\"reject\", { reject = \"<alert>\" } or { fallback = \"host:port\" }"
)]
pub(crate) enum FileFailMode {
    Word(FailWord),
    Reject { reject: String },
    Fallback { fallback: String },
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FailWord {
    Reject,
}

impl Default for FileFailMode {
    fn default() -> Self {
        FileFailMode::Word(FailWord::Reject)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FileLimits {
    pub(crate) hello_max_bytes: ByteSize,
    #[serde(deserialize_with = "duration")]
    pub(crate) hello_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    pub(crate) connect_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    pub(crate) idle_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    pub(crate) shutdown_grace: Duration,
    #[serde(deserialize_with = "duration")]
    pub(crate) handshake_timeout: Duration,
    pub(crate) max_connections: usize,
    pub(crate) max_pending_hellos: usize,
    pub(crate) max_pending_hellos_per_client: usize,
    pub(crate) listen_backlog: u32,
    pub(crate) copy_buffer: ByteSize,
    pub(crate) max_flows: usize,
    pub(crate) max_pending_initials: usize,
    pub(crate) max_pending_initials_per_client: usize,
    #[serde(deserialize_with = "duration")]
    pub(crate) flow_idle_timeout: Duration,
}

impl Default for FileLimits {
    fn default() -> Self {
        FileLimits {
            hello_max_bytes: ByteSize::b(super::DEFAULT_HELLO_MAX_BYTES as u64),
            hello_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(600),
            shutdown_grace: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_pending_hellos: 4096,
            max_pending_hellos_per_client: 64,
            listen_backlog: 4096,
            copy_buffer: ByteSize::kib(16),
            // QUIC (docs/configuration.md says why these values).
            max_flows: 10_000,
            max_pending_initials: 1024,
            max_pending_initials_per_client: 8,
            flow_idle_timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileUpstreams {
    #[serde(default)]
    pub(crate) allow: Vec<AllowRule>,
    #[serde(default)]
    pub(crate) pools: BTreeMap<String, super::pools::FilePool>,
}

/// Fits a decision in every supported language with room to spare (a
/// JavaScript one takes ~1 M, Python ~0.2 M, Rust and C ~50 k), while a
/// guest that spins still stops within a few milliseconds: a compiled loop
/// burns 10 M in ~3-10 ms, near the 5 ms deadline that bounds every call anyway.
pub(super) fn default_fuel() -> u64 {
    10_000_000
}

pub(super) fn default_policy_timeout() -> Duration {
    Duration::from_millis(5)
}

pub(super) fn default_memory() -> ByteSize {
    ByteSize::mib(16)
}
