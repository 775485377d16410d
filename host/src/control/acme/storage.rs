//! What ACME state limen keeps on disk, under `[acme] storage`:
//!
//! ```text
//! storage/                       0700
//!   account-<directory hash>.json  0600  the account key and URL, per directory
//!   certs/<name>-<hash>/chain.pem  0600  leaf first
//!   certs/<name>-<hash>/key.pem    0600  PKCS#8
//!   certs/<name>-<hash>/names      0600  the names it was ordered for, one per line
//!   certs/<name>-<hash>/directory  0600  the directory URL it came from
//! ```
//!
//! Every write goes to a fresh temporary file that is synced and renamed
//! over the old one, then the directory is synced, so a crash leaves each
//! file old or new, never half. A crash between files leaves a key that
//! does not match its chain: that is read as no certificate (a new order),
//! never served. All of it is blocking I/O: callers run it on a blocking
//! thread.

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
    /// The directory that issued it (a switch from staging to production
    /// orders again).
    pub(crate) directory: String,
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
        write_private(&self.account_path(directory), json.as_bytes())?;
        fs::File::open(&self.root)?.sync_all()
    }

    /// Set the account for `directory` aside (`.gone-<unix time>`): the CA
    /// no longer knows it, but its key is not destroyed.
    pub(crate) fn retire_account(&self, directory: &str) -> io::Result<()> {
        let path = self.account_path(directory);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        fs::rename(&path, path.with_extension(format!("gone-{now}")))
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
        let directory = optional(fs::read_to_string(dir.join("directory")))?.unwrap_or_default();
        let names = names.lines().map(str::to_owned).collect();
        Ok(Some(Stored {
            chain_pem,
            key_pem,
            names,
            directory,
        }))
    }

    /// Store `cert` for `name`.
    pub(crate) fn save_certificate(&self, name: &str, cert: &Stored) -> io::Result<()> {
        self.dir(&self.root)?;
        self.dir(&self.root.join("certs"))?;
        let dir = self.cert_dir(name);
        self.dir(&dir)?;
        write_private(&dir.join("key.pem"), cert.key_pem.as_bytes())?;
        write_private(&dir.join("chain.pem"), cert.chain_pem.as_bytes())?;
        write_private(&dir.join("names"), cert.names.join("\n").as_bytes())?;
        write_private(&dir.join("directory"), cert.directory.as_bytes())?;
        fs::File::open(&dir)?.sync_all()
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
        // Certificate names are the config's table keys: one path component
        // whatever they hold, and a hash so `a.b` and `a_b` stay apart.
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
        let hash = hex::encode(&Sha256::digest(name.as_bytes())[..4]);
        self.root.join("certs").join(format!("{safe}-{hash}"))
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
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    // A fresh name (`create_new`), so two writers never share one and the
    // mode applies: no leftover file is reused.
    let n = N.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp.{}.{n}", std::process::id()));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
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
            directory: "https://x/dir".into(),
        };
        storage.save_certificate("shop", &cert).unwrap();
        assert_eq!(storage.certificate("shop").unwrap(), Some(cert.clone()));
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root), 0o700);
        let dir = fs::read_dir(root.join("certs"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        assert_eq!(mode(&dir.join("key.pem")), 0o600);
        // Names that would map to one file name stay apart.
        storage.save_certificate("a.b", &cert).unwrap();
        assert_eq!(storage.certificate("a_b").unwrap(), None);
        storage.save_account("https://x/dir", "{}").unwrap();
        assert_eq!(
            storage.account("https://x/dir").unwrap().as_deref(),
            Some("{}")
        );
        assert_eq!(storage.account("https://y/dir").unwrap(), None);
        fs::remove_dir_all(&root).unwrap();
    }
}
