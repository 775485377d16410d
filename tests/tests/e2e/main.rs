//! limen end to end: real sockets, real TLS clients and backends, real guests.
//!
//! One test binary (ripgrep's layout): each module is one area of behaviour.

mod access_log;
mod acme;
mod acme_check;
mod activation;
mod admin;
mod bulk;
mod canary;
mod cases;
mod cli;
mod common;
mod explain_parity;
mod faults;
mod fingerprint;
mod fleet;
mod fleet_secure;
mod fleet_trial;
mod hostile;
mod languages;
mod limits;
mod observe;
mod peek;
mod pools;
mod pools_health;
mod pools_retry;
mod process;
mod quic;
mod quic_chromium;
mod quic_explain;
mod quic_hostile;
mod quic_kit;
mod reload;
mod resets;
mod routing;
mod rule_count;
mod scrapes;
mod shadow;
mod shutdown;
mod status;
mod swap;
mod swap_safety;
mod terminate;
mod transport;
mod upgrade;
mod workers;
