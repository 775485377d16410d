//! What identifies a live policy: the hash of what it runs and when it went
//! live.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

/// The SHA-256 of a module's bytes: the key of the precompiled cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ModuleHash(pub(crate) [u8; 32]);

impl ModuleHash {
    /// Hash a module's bytes.
    pub fn of(bytes: &[u8]) -> ModuleHash {
        ModuleHash(Sha256::digest(bytes).into())
    }

    /// Lower-case hex of all 32 bytes.
    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }
}

/// A policy's version: a content hash over the module *and* its config (the
/// same module with another config routes differently), and its load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyVersion {
    /// SHA-256 of the module's bytes.
    pub module: ModuleHash,
    /// First 12 hex digits of SHA-256(module hash, config JSON); shared, so
    /// every connection can name it without allocating.
    pub id: Arc<str>,
    /// When this policy was loaded.
    pub loaded_at: SystemTime,
}

impl PolicyVersion {
    /// The version of `module` run with `config_json`, loaded now.
    pub fn new(module: ModuleHash, config_json: &str) -> PolicyVersion {
        let mut content = Sha256::new();
        content.update(module.0);
        content.update(config_json.as_bytes());
        let id = hex::encode(&content.finalize()[..6]).into();
        PolicyVersion {
            module,
            id,
            loaded_at: SystemTime::now(),
        }
    }

    /// Whether both run the same module with the same config.
    pub fn same_content(&self, other: &PolicyVersion) -> bool {
        self.id == other.id && self.module == other.module
    }
}

/// `3fa2c41b9e07@2026-11-22T10:01:02.123Z`: two loads of the same content
/// differ by their time.
impl fmt::Display for PolicyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{}",
            self.id,
            humantime::format_rfc3339_millis(self.loaded_at)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_and_config_both_change_the_id() {
        let a = ModuleHash::of(b"module a");
        let b = ModuleHash::of(b"module b");
        let v = PolicyVersion::new(a, "{}");
        assert!(v.same_content(&PolicyVersion::new(a, "{}")));
        assert!(!v.same_content(&PolicyVersion::new(b, "{}")));
        assert!(!v.same_content(&PolicyVersion::new(a, "{\"x\":1}")));
        assert_eq!(v.id.len(), 12);
        assert!(v.to_string().starts_with(&format!("{}@20", v.id)));
    }
}
