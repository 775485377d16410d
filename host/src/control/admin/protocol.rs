//! The admin protocol, shared by limen and `limen swap`/`limen status`.
//!
//! A request is one JSON line ([`Envelope`]); a swap's module follows it as
//! exactly `module_len` raw bytes. The answer is one JSON line ([`Answer`]).
//! The module travels in the request (rather than as a path) so limen never
//! reads a file an admin client names.

use serde::{Deserialize, Serialize};

use crate::policy::MAX_MODULE_BYTES;

/// Longest request line accepted.
pub const MAX_LINE: usize = 64 * 1024;

/// A request and the token that authorises it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    /// The admin token, when limen's `[admin] token_file` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// What is asked.
    #[serde(flatten)]
    pub request: Request,
}

/// What an admin client can ask.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Make this module (its bytes follow the line) the live policy.
    Swap {
        /// Length of the module that follows.
        module_len: usize,
        /// `init`'s config for it; the live policy's config when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        config_json: Option<String>,
        /// Shadow it instead: it decides every connection again, off the
        /// path, and only the comparison is kept.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        shadow: bool,
        /// Put it on canary: it decides this percentage of client
        /// addresses (a stable hash of the address).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        canary: Option<f64>,
    },
    /// Make the candidate on trial live.
    Promote,
    /// Drop the candidate on trial.
    Abort,
    /// Describe the live policy and listeners.
    Status,
    /// Renew an ACME certificate now.
    Renew {
        /// Its `[certificates.NAME]`.
        certificate: String,
    },
    /// Start the binary on disk with limen's arguments and hand it the
    /// listening sockets; this limen then drains and exits.
    Upgrade,
}

/// limen's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Answer {
    /// The candidate passed every step and is live.
    Swapped(Swapped),
    /// The candidate has the live policy's content: nothing changed.
    Unchanged {
        /// The live version.
        version: String,
    },
    /// The candidate (or new config) was refused; the old one serves on.
    Refused {
        /// `P003`, `E010`...
        code: String,
        /// The full, logged reason.
        error: String,
        /// The version still live.
        live: String,
    },
    /// A new configuration is live.
    Reloaded(Reloaded),
    /// A renewal was started; its outcome is an event (`acme.renewed`,
    /// `acme.failed`) and `limen_acme_orders_total`.
    Renewing {
        /// The certificate.
        certificate: String,
    },
    /// The live state.
    Status(Box<Status>),
    /// The candidate passed every step and is shadowed.
    Shadowing(Swapped),
    /// The candidate was dropped.
    Aborted {
        /// Its version.
        version: String,
    },
    /// A new process took the sockets over; this one drains and exits.
    Upgraded(crate::control::handover::Ready),
    /// Bad request or token.
    Denied {
        /// Why.
        error: String,
    },
}

impl Envelope {
    /// Read one request line as limen does (and as the `admin` fuzz target
    /// does): the JSON envelope, and a swap's declared length within
    /// [`MAX_MODULE_BYTES`], checked before a byte of the module is read.
    pub fn decode(line: &[u8]) -> Result<Envelope, String> {
        let envelope: Envelope =
            serde_json::from_slice(line).map_err(|e| format!("bad request: {e}"))?;
        if let Request::Swap { module_len, .. } = &envelope.request
            && *module_len > MAX_MODULE_BYTES
        {
            return Err(format!(
                "module of {module_len} bytes, more than {MAX_MODULE_BYTES}"
            ));
        }
        Ok(envelope)
    }
}

impl Answer {
    /// Whether the request achieved what it asked (or there was nothing to do).
    pub fn is_success(&self) -> bool {
        matches!(
            self,
            Answer::Swapped(_)
                | Answer::Unchanged { .. }
                | Answer::Reloaded(_)
                | Answer::Status(_)
                | Answer::Renewing { .. }
                | Answer::Upgraded(_)
                | Answer::Shadowing(_)
                | Answer::Aborted { .. }
        )
    }
}

/// A successful swap.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Swapped {
    /// The new live version.
    pub version: String,
    /// The version it replaced.
    pub previous: String,
    /// `compiled` or `cache`.
    pub compiled_from: String,
    /// Hashing and compiling (or loading compiled code).
    pub compile_ms: f64,
    /// Warming instances (`init`).
    pub init_ms: f64,
    /// Self-test samples run (all passed).
    pub samples: usize,
    /// From the trigger to live.
    pub total_ms: f64,
}

/// A successful configuration reload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reloaded {
    /// The live policy version afterwards.
    pub version: String,
    /// Listeners opened.
    pub added: Vec<String>,
    /// Listeners closed (their connections carry on).
    pub removed: Vec<String>,
    /// Whether the policy was reloaded (module or policy settings changed).
    pub policy_changed: bool,
    /// From the trigger to live.
    pub total_ms: f64,
}

/// The live state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// The live policy version.
    pub version: String,
    /// SHA-256 of its module.
    pub module_sha256: String,
    /// When it went live (RFC 3339).
    pub loaded_at: String,
    /// The module path the file watch follows.
    pub module_path: String,
    /// How many rules its `init` said it holds (`report-routes`), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<u32>,
    /// Listeners: name and bound address.
    pub listeners: Vec<(String, String)>,
    /// Configuration generation: 1 at start, +1 per applied reload.
    pub generation: u64,
    /// The process answering (an upgrade starts another).
    #[serde(default)]
    pub pid: u32,
    /// Its `limen --version`: release and commit.
    #[serde(default)]
    pub binary: String,
    /// The candidate on trial, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<Candidate>,
    /// The last canary rolled back, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<String>,
}

/// A candidate on trial and what it made of live traffic.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Candidate {
    /// Its version.
    pub version: String,
    /// `shadow`, `canary 10 %`, or `canary 10 % + shadow`.
    pub mode: String,
    /// How many rules it holds, if its `init` said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<u32>,
    /// On canary: connections it decided, and its calls that failed (the
    /// live policy decided those).
    pub canary_decided: u64,
    /// See `canary_decided`.
    pub canary_failed: u64,
    /// Decisions the same as the live policy's, other, failed (a failed
    /// call or a decision limen would refuse), and samples dropped (the
    /// worker's queue was full).
    pub same: u64,
    /// See `same`.
    pub different: u64,
    /// See `same`.
    pub failed: u64,
    /// See `same`.
    pub dropped: u64,
    /// The last differences and failures, oldest first.
    pub last: Vec<crate::state::trial::Difference>,
}
