//! What ACME state limen keeps on disk, under `[acme] storage`:
//!
//! ```text
//! storage/                       0700
//!   account-<directory hash>.json  0600  the account key and URL, per directory
//!   certs/<name>/chain.pem         0600  leaf first
//!   certs/<name>/key.pem           0600  PKCS#8
//!   certs/<name>/names             0600  the names it was ordered for, one per line
//! ```
//!
//! Every write goes to a temporary file that is synced and renamed over the
//! old one, so a crash leaves the old file or the new one, never half. All
//! of it is blocking I/O: callers run it on a blocking thread.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// A certificate as stored: PEM chain and key, and the names it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    pub(crate) chain_pem: String,
    pub(crate) key_pem: String,
    pub(crate) names: Vec<String>,
}

/// The storage directory of one `[acme]` block.
#[derive(Debug, Clone)]
pub(crate) struct Storage {
    root: PathBuf,
}

impl Storage {
    pub(crate) fn new(root: &Path) -> Storage {
        Storage {
            root: root.to_owned(),
        }
    }

    /// The stored account for `directory`, as JSON, if any.
    pub(crate) fn account(&self, directory: &str) -> io::Result<Option<String>> {
        optional(fs::read_to_string(self.account_path(directory)))
    }

    pub(crate) fn save_account(&self, directory: &str, json: &str) -> io::Result<()> {
        self.dir(&self.root)?;
        write_private(&self.account_path(directory), json.as_bytes())
    }

    /// The certificate stored for `name`, if all three files are there.
    pub(crate) fn certificate(&self, name: &str) -> io::Result<Option<Stored>> {
        let dir = self.cert_dir(name);
        let (Some(chain_pem), Some(key_pem), Some(names)) = (
            optional(fs::read_to_string(dir.join("chain.pem")))?,
            optional(fs::read_to_string(dir.join("key.pem")))?,
            optional(fs::read_to_string(dir.join("names")))?,
        ) else {
            return Ok(None);
        };
        let names = names.lines().map(str::to_owned).collect();
        Ok(Some(Stored {
            chain_pem,
            key_pem,
            names,
        }))
    }

    /// Store `cert` for `name`. The key is written first and the names
    /// last: a reader that finds the names finds the pair they belong to.
    pub(crate) fn save_certificate(&self, name: &str, cert: &Stored) -> io::Result<()> {
        self.dir(&self.root)?;
        self.dir(&self.root.join("certs"))?;
        let dir = self.cert_dir(name);
        self.dir(&dir)?;
        let _ = fs::remove_file(dir.join("names"));
        write_private(&dir.join("key.pem"), cert.key_pem.as_bytes())?;
        write_private(&dir.join("chain.pem"), cert.chain_pem.as_bytes())?;
        write_private(&dir.join("names"), cert.names.join("\n").as_bytes())
    }

    /// Create `dir` (0700) if needed, and refuse one that others can read:
    /// it holds private keys.
    fn dir(&self, dir: &Path) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        match DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let mode = fs::metadata(dir)?.permissions().mode();
                if mode & 0o077 != 0 {
                    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn account_path(&self, directory: &str) -> PathBuf {
        let hash = hex::encode(&Sha256::digest(directory.as_bytes())[..8]);
        self.root.join(format!("account-{hash}.json"))
    }

    fn cert_dir(&self, name: &str) -> PathBuf {
        // Certificate names are the config's table keys; keep them one path
        // component whatever they hold.
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.root.join("certs").join(safe)
    }

    /// Check, before anything is ordered, that limen can create and write
    /// the directory (a start that would fail after the CA issued is worse).
    pub(crate) fn check_writable(&self) -> io::Result<()> {
        self.dir(&self.root)?;
        let probe = self.root.join(".limen-write-test");
        write_private(&probe, b"")?;
        fs::remove_file(probe)
    }
}

fn optional<T>(result: io::Result<T>) -> io::Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Write `bytes` to `path` (mode 0600) through a synced temporary file.
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn certificates_round_trip_with_private_modes() {
        let root = std::env::temp_dir().join(format!("limen-acme-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let storage = Storage::new(&root);
        assert_eq!(storage.certificate("shop").unwrap(), None);
        let cert = Stored {
            chain_pem: "chain".into(),
            key_pem: "key".into(),
            names: vec!["a.example.com".into(), "b.example.com".into()],
        };
        storage.save_certificate("shop", &cert).unwrap();
        assert_eq!(storage.certificate("shop").unwrap(), Some(cert));
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join("certs/shop/key.pem")), 0o600);
        storage.save_account("https://x/dir", "{}").unwrap();
        assert_eq!(
            storage.account("https://x/dir").unwrap().as_deref(),
            Some("{}")
        );
        assert_eq!(storage.account("https://y/dir").unwrap(), None);
        fs::remove_dir_all(&root).unwrap();
    }
}
