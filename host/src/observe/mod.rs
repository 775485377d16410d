//! Observation: counters and gauges (`metrics`), the access log, and rate
//! limits on repeated warnings. Written to from every plane, off the
//! connection path's critical section (atomics, a bounded queue).

/// Counters, and the `/metrics` endpoint.
pub mod metrics;

/// The access log: a line per finished connection, written off the data path.
pub(crate) mod access;

/// Rate limits for repeated warnings.
pub(crate) mod log_limit;

/// What observation is configured with.
mod settings;

pub use settings::{
    AccessLogConfig, AccessLogFormat, AccessLogSink, DEFAULT_UPSTREAM_LABELS, MetricsConfig,
};
