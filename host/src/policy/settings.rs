//! What the policy plane is configured with, validated: `config` reads the
//! file and builds these (as it builds each plane's settings), so the
//! policy never reads the configuration module.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::decision::{Alert, Decision, Upstream};
use crate::plan::OfflineRules;

/// The policy module and the limits of its sandbox.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyConfig {
    /// Path of the Wasm component (relative paths: from the working directory).
    pub module: PathBuf,
    /// Fuel for one `route` call (`init` gets [`INIT_BUDGET_FACTOR`] times it).
    pub fuel: u64,
    /// Wall-clock limit of one `route` call.
    pub timeout: Duration,
    /// Linear-memory limit per instance, in bytes.
    pub memory: usize,
    /// Warm instances kept for reuse by each worker (default 2: a guest
    /// that yields mid-call lets the worker start another call).
    pub instances: usize,
    /// Pools of warm instances: one per worker, each used only by its own
    /// thread (offline tools: 1).
    pub workers: usize,
    /// What a failing policy call turns into.
    pub on_error: FailMode,
    /// `[policy.config]` as JSON, handed to `init`.
    pub config_json: String,
    /// Directory of compiled components (`None`: compile at every load).
    pub cache: Option<PathBuf>,
    /// Swap the policy when `module` changes on disk (default on).
    pub watch: bool,
    /// Decisions a policy must make before it goes live.
    pub expect: Vec<Expectation>,
    /// What those decisions (and `limen explain`'s) are planned against.
    pub rules: OfflineRules,
}

/// `init` builds tables and compiles regexes once, so it gets a larger budget
/// than one `route` call: this many times the fuel, and at least one second.
pub const INIT_BUDGET_FACTOR: u64 = 1000;

/// What limen does when the policy fails (trap, fuel, deadline, refused decision).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailMode {
    /// Send this alert and close.
    Reject(Alert),
    /// Pass the connection through to this upstream (trusted: not checked
    /// against the allow-list, since the operator wrote it).
    Fallback(Upstream),
}

impl FailMode {
    /// The decision it amounts to: a reject, or a passthrough to the
    /// fallback (what `limen explain` shows for a failure).
    pub fn decision(&self) -> Decision {
        match self {
            FailMode::Reject(alert) => Decision::Reject(*alert),
            FailMode::Fallback(upstream) => Decision::Passthrough(upstream.clone()),
        }
    }
}

/// One sample connection and the decision expected for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// Server name the synthesised ClientHello carries (none when `None`).
    pub sni: Option<String>,
    /// ALPN protocols it offers.
    pub alpn: Vec<String>,
    /// The client address the policy sees.
    pub client: SocketAddr,
    /// The listener the connection arrives on (default: the first).
    pub listener: Arc<str>,
    /// That listener's address.
    pub local: SocketAddr,
    /// The decision in its canonical text form (`Decision`'s `Display`):
    /// `passthrough:HOST:PORT`, `terminate:CERT:HOST:PORT`, `reject:ALERT`
    /// (a pool's name in place of `HOST:PORT`).
    pub decision: String,
}
