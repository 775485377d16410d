//! Compiled components on disk, so a restart or a swap back to a module seen
//! before skips compilation (seconds for an 18 MB Python component).
//!
//! Written here rather than with wasmtime's built-in `Cache` so a load can
//! say whether it hit, the key is documented, the directory's ownership is
//! checked before its files are trusted, and no cleanup thread runs.
//!
//! A file is `<key>.cwasm`, where the key is SHA-256 over the module's hash
//! and the engine's compatibility hash (wasmtime version, compiler settings,
//! CPU features). Files are written under a temporary name and renamed, so a
//! reader never sees half of one; the oldest beyond [`MAX_ENTRIES`] are
//! removed.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use super::version::ModuleHash;

/// Compiled components kept; each is a few times its module's size.
const MAX_ENTRIES: usize = 16;

/// Where a component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompiledFrom {
    /// Compiled now (and stored, if the cache is on).
    Compiled,
    /// Loaded from the cache.
    Cache,
}

impl CompiledFrom {
    /// `compiled` or `cache`.
    pub fn name(self) -> &'static str {
        match self {
            CompiledFrom::Compiled => "compiled",
            CompiledFrom::Cache => "cache",
        }
    }
}

/// The cache directory, if one is usable.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: Option<PathBuf>,
}

impl ComponentCache {
    /// No cache: every load compiles.
    pub fn off() -> ComponentCache {
        ComponentCache { dir: None }
    }

    /// Use `dir`, creating it (mode 0700). A directory other users can write
    /// to, or owned by another user, is not used: its files would be
    /// executed as code.
    pub fn at(dir: &Path) -> ComponentCache {
        match trusted_dir(dir) {
            Ok(()) => ComponentCache {
                dir: Some(dir.to_owned()),
            },
            Err(why) => {
                tracing::warn!(dir = %dir.display(), "policy cache off: {why}");
                ComponentCache::off()
            }
        }
    }

    /// The component for `bytes`, from the cache or compiled (and then
    /// stored). Blocking: run it off the connection path.
    pub fn load(
        &self,
        engine: &wasmtime::Engine,
        hash: ModuleHash,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, CompiledFrom)> {
        let Some(dir) = &self.dir else {
            return Ok((Component::new(engine, bytes)?, CompiledFrom::Compiled));
        };
        let path = dir.join(format!("{}.cwasm", key(engine, hash)));
        if trusted_file(&path) {
            // SAFETY: `deserialize_file` requires a file produced by
            // `Component::serialize` of a compatible engine. Only this process
            // writes `<key>.cwasm` (whole, by rename) into a directory that
            // `trusted_dir` checked is ours alone; wasmtime itself refuses a
            // file from another version or configuration, which lands in the
            // recompile branch below.
            #[allow(unsafe_code)]
            let loaded = unsafe { Component::deserialize_file(engine, &path) };
            match loaded {
                Ok(component) => {
                    touch(&path);
                    return Ok((component, CompiledFrom::Cache));
                }
                Err(error) => {
                    tracing::warn!(path = %path.display(), "cached component unusable, recompiling: {error:#}");
                }
            }
        }
        let component = Component::new(engine, bytes)?;
        if let Err(error) = store(dir, &path, &component) {
            tracing::warn!(dir = %dir.display(), "cannot store compiled policy: {error:#}");
        }
        Ok((component, CompiledFrom::Compiled))
    }
}

/// The cache key: the module's hash and everything that makes compiled code
/// (in)compatible with this engine.
fn key(engine: &wasmtime::Engine, hash: ModuleHash) -> String {
    struct Sha(Sha256);
    impl Hasher for Sha {
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
        fn finish(&self) -> u64 {
            0
        }
    }
    let mut sha = Sha(Sha256::new());
    sha.0.update(hash.0);
    engine.precompile_compatibility_hash().hash(&mut sha);
    hex::encode(&sha.0.finalize()[..20])
}

fn trusted_dir(dir: &Path) -> Result<(), String> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create it: {e}"))?;
    let meta = std::fs::metadata(dir).map_err(|e| e.to_string())?;
    if ours_alone(&meta) {
        Ok(())
    } else {
        Err("owned by another user, or writable by group or others (chmod go-w)".into())
    }
}

/// Owned by limen's user and writable by no one else.
fn ours_alone(meta: &std::fs::Metadata) -> bool {
    meta.uid() == rustix::process::geteuid().as_raw() && meta.permissions().mode() & 0o022 == 0
}

/// An entry to load: a regular file (not a link), ours, not writable by
/// others. Checked again per file, since the directory is checked at start.
fn trusted_file(path: &Path) -> bool {
    std::fs::symlink_metadata(path)
        .is_ok_and(|meta| meta.file_type().is_file() && ours_alone(&meta))
}

fn store(dir: &Path, path: &Path, component: &Component) -> wasmtime::Result<()> {
    let bytes = component.serialize()?;
    let tmp = dir.join(format!(
        ".tmp-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        // A full disk must not leave a partial file behind for every swap.
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    evict(dir);
    Ok(())
}

/// Mark an entry as recently used: eviction removes the least recently used.
fn touch(path: &Path) {
    if let Ok(file) = std::fs::File::options().write(true).open(path) {
        let _ = file.set_modified(SystemTime::now());
    }
}

fn evict(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if files.len() <= MAX_ENTRIES {
        return;
    }
    files.sort();
    for (_, path) in &files[..files.len() - MAX_ENTRIES] {
        let _ = std::fs::remove_file(path);
    }
}
