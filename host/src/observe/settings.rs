//! What observation is configured with, validated (`config` reads the
//! file and builds these).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// Distinct upstream labels when `[metrics] upstream_labels` is not set.
pub const DEFAULT_UPSTREAM_LABELS: usize = 64;

/// Where `/metrics` is served and how many upstreams get their own series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Where Prometheus scrapes `/metrics`, if anywhere.
    pub bind: Option<SocketAddr>,
    /// Distinct `upstream` labels of `limen_upstream_routed_total` before
    /// the rest count as `other`.
    pub upstream_labels: usize,
}

/// The access log: one line per finished connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogConfig {
    /// Where lines go.
    pub sink: AccessLogSink,
    /// Line format.
    pub format: AccessLogFormat,
    /// Lines queued for the writer thread; past it lines are dropped and
    /// counted, so a slow disk never slows a connection.
    pub buffer: usize,
}

/// An access log destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogSink {
    /// limen's standard output.
    Stdout,
    /// A file, appended to; reopened on every applied reload (SIGHUP), which
    /// is what log rotation needs.
    File(PathBuf),
}

/// An access log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessLogFormat {
    /// `key=value` pairs (values with spaces or quotes are quoted).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}
