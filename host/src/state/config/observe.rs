//! `[metrics]`, `[status]`, `[access_log]` and `[log]`: how limen is
//! watched. The status page (`[status]`) has a bind of its own: it shows
//! pool members, certificate names and policy versions, and `[metrics]` is
//! often opened to a Prometheus. Like `[admin]`'s TCP bind, it is
//! loopback-only unless the config says `allow_public = true`.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;
use crate::observe::{
    AccessLogConfig, AccessLogFormat, AccessLogSink, DEFAULT_UPSTREAM_LABELS, MetricsConfig,
};

/// `[metrics] bind = "127.0.0.1:9900"`, `upstream_labels = 64`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileMetrics {
    #[serde(default)]
    pub(crate) bind: Option<SocketAddr>,
    #[serde(default)]
    pub(crate) upstream_labels: Option<usize>,
}

/// `[status] bind = "127.0.0.1:9902"`, `allow_public = false`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileStatus {
    pub(crate) bind: SocketAddr,
    #[serde(default)]
    pub(crate) allow_public: bool,
}

/// Where the status page (`/status`, `/status.json`) is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusConfig {
    /// Its listener; the metrics one when equal to `[metrics] bind` (and not
    /// port 0, which asks for a port of its own).
    pub bind: SocketAddr,
}

/// `[access_log] path = "-"`, `format = "text"`, `buffer = 4096`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileAccessLog {
    #[serde(default)]
    pub(crate) path: Option<PathBuf>,
    #[serde(default)]
    pub(crate) format: AccessLogFormat,
    #[serde(default)]
    pub(crate) buffer: Option<usize>,
}

/// `[log] level = "info"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileLog {
    pub(crate) level: String,
}

/// Lines the access log queues when `buffer` is not set.
const DEFAULT_ACCESS_BUFFER: usize = 4096;
/// Most distinct upstream labels a config may ask for.
const MAX_UPSTREAM_LABELS: usize = 10_000;

pub(super) fn metrics(file: Option<&FileMetrics>) -> Result<MetricsConfig, ConfigError> {
    let upstream_labels = file
        .and_then(|m| m.upstream_labels)
        .unwrap_or(DEFAULT_UPSTREAM_LABELS);
    if upstream_labels > MAX_UPSTREAM_LABELS {
        return Err(ConfigError::Invalid(format!(
            "metrics.upstream_labels must be at most {MAX_UPSTREAM_LABELS}"
        )));
    }
    Ok(MetricsConfig {
        bind: file.and_then(|m| m.bind),
        upstream_labels,
    })
}

pub(super) fn status(file: Option<&FileStatus>) -> Result<Option<StatusConfig>, ConfigError> {
    let Some(file) = file else {
        return Ok(None);
    };
    if !file.bind.ip().is_loopback() && !file.allow_public {
        return Err(ConfigError::Invalid(format!(
            "status.bind `{}` is not a loopback address; set allow_public = true to expose \
             the status page",
            file.bind
        )));
    }
    Ok(Some(StatusConfig { bind: file.bind }))
}

pub(super) fn access_log(
    file: Option<&FileAccessLog>,
) -> Result<Option<AccessLogConfig>, ConfigError> {
    let Some(file) = file else {
        return Ok(None);
    };
    let buffer = file.buffer.unwrap_or(DEFAULT_ACCESS_BUFFER);
    if !(1..=1 << 20).contains(&buffer) {
        return Err(ConfigError::Invalid(
            "access_log.buffer must be between 1 and 1048576 lines".into(),
        ));
    }
    let sink = match &file.path {
        None => AccessLogSink::Stdout,
        Some(path) if path.as_os_str() == "-" => AccessLogSink::Stdout,
        Some(path) => AccessLogSink::File(path.clone()),
    };
    Ok(Some(AccessLogConfig {
        sink,
        format: file.format,
        buffer,
    }))
}

pub(super) fn log_level(file: Option<&FileLog>) -> Result<Option<String>, ConfigError> {
    let Some(file) = file else {
        return Ok(None);
    };
    tracing_subscriber::EnvFilter::try_new(&file.level)
        .map_err(|e| ConfigError::Invalid(format!("log.level `{}`: {e}", file.level)))?;
    Ok(Some(file.level.clone()))
}
