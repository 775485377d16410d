//! What a fleet keeps in etcd, under its prefix `P` (pure: the names and
//! the records, shared by `limen publish`, every instance and `limen fleet
//! status`):
//!
//! ```text
//! P/live                      {"module": SHA-256, "size", "config", "expect", "published_at"}
//! P/candidate                 the same, and "shadow", "canary": a candidate on trial
//!                             (absent: none; `limen publish --promote` makes it P/live)
//! P/modules/<sha256>/meta     {"size", "chunks"}: written last, so its presence means whole
//! P/modules/<sha256>/<00000>  the module's bytes, CHUNK at a time
//! P/instances/<id>            {"version", "module", "generation", "refusal", "started_at", ...}
//!                             under the instance's lease: gone when it dies
//! ```
//!
//! A module is content-addressed: publishing one already stored uploads
//! nothing, and an instance checks the bytes it assembled against the hash
//! the live record names.

use serde::{Deserialize, Serialize};

/// Bytes per chunk. etcd refuses a request over 1.5 MiB by default
/// (`--max-request-bytes`); 1 MiB leaves room for the key and framing.
pub const CHUNK: usize = 1 << 20;

/// The largest module a fleet carries (the Python guest is ~18 MB).
pub const MAX_MODULE: u64 = 64 << 20;

/// Key names under one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix`.
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.trim_end_matches('/').to_owned(),
        }
    }

    /// `P/live`.
    pub fn live(&self) -> String {
        format!("{}/live", self.prefix)
    }

    /// `P/candidate`.
    pub fn candidate(&self) -> String {
        format!("{}/candidate", self.prefix)
    }

    /// `P/modules/<sha256>/meta`.
    pub fn meta(&self, module: &str) -> String {
        format!("{}/modules/{module}/meta", self.prefix)
    }

    /// `P/modules/<sha256>/<index>`.
    pub fn chunk(&self, module: &str, index: usize) -> String {
        format!("{}/modules/{module}/{index:05}", self.prefix)
    }

    /// `P/instances/` (a prefix).
    pub fn instances(&self) -> String {
        format!("{}/instances/", self.prefix)
    }

    /// `P/instances/<id>`.
    pub fn instance(&self, id: &str) -> String {
        format!("{}/instances/{id}", self.prefix)
    }
}

/// `P/live`: the policy every instance should run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveRecord {
    /// The module's SHA-256, hex.
    pub module: String,
    /// Its size in bytes.
    pub size: u64,
    /// What `init` gets (what `[policy.config]` would hold).
    #[serde(default)]
    pub config: serde_json::Value,
    /// `[[policy.expect]]` samples, as written.
    #[serde(default)]
    pub expect: Vec<serde_json::Value>,
    /// Unix seconds.
    #[serde(default)]
    pub published_at: u64,
}

/// `P/candidate`: a candidate every instance tries beside its live policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateRecord {
    /// The module, its config and samples, as `P/live` would hold them
    /// once promoted.
    #[serde(flatten)]
    pub policy: LiveRecord,
    /// Shadowed: it decides every connection again, off the path.
    #[serde(default)]
    pub shadow: bool,
    /// On canary: the percentage of client addresses it decides.
    #[serde(default)]
    pub canary: Option<f64>,
}

/// What an instance reports of the candidate it tries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trying {
    /// Its module's SHA-256.
    pub module: String,
    /// Its version, once prepared.
    #[serde(default)]
    pub version: String,
    /// `shadow`, `canary 10 %`, ...
    #[serde(default)]
    pub mode: String,
    /// Shadow counts: same, different, failed, dropped; canary: decided,
    /// failed.
    #[serde(default)]
    pub counts: [u64; 6],
    /// Why this instance refused it or rolled it back, if it did.
    #[serde(default)]
    pub ended: Option<String>,
}

/// `P/modules/<sha256>/meta`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// The module's size in bytes.
    pub size: u64,
    /// How many chunks hold it.
    pub chunks: usize,
}

/// `P/instances/<id>`: what one instance runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// Its `[source.etcd] id` (default: host name and pid).
    pub id: String,
    /// The live policy's version (`<hash12>@<time>`).
    pub version: String,
    /// The live module's SHA-256, hex.
    pub module: String,
    /// Configuration generation.
    pub generation: u64,
    /// The last candidate from etcd it refused, if the live one is older.
    #[serde(default)]
    pub refusal: Option<Refusal>,
    /// The candidate on trial it was told to try (`P/candidate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trying: Option<Trying>,
    /// Unix seconds.
    pub started_at: u64,
    /// Unix seconds of this record (written when something in it changes;
    /// the uptime is `now - started_at`).
    pub updated_at: u64,
}

/// A published policy an instance would not run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The refused module's SHA-256.
    pub module: String,
    /// `P003`, `P005`...
    pub code: String,
    /// Why.
    pub message: String,
}

/// The module's SHA-256, hex (the name it is stored under).
pub fn hash(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}
