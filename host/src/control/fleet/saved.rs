//! `state_dir`: the last policy this instance ran from etcd, so it can start
//! while etcd is unreachable, and so a SIGHUP reload finds the module that
//! is live.
//!
//! ```text
//! state_dir/modules/<sha256>.wasm   modules as fetched (written before a swap)
//! state_dir/live.json               the live record last made live here
//! ```
//!
//! A module is stored under its hash before it is swapped to, and
//! `live.json` is replaced (atomically, then the directory synced) only once
//! its policy is live: a crash anywhere leaves a `live.json` that names a
//! whole module. Blocking I/O, called on the blocking pool.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::layout::{self, LiveRecord};
use crate::state::config::SourceConfig;

fn live_path(state_dir: &Path) -> PathBuf {
    state_dir.join("live.json")
}

/// Keep `module` under its hash (`module_path`), if not there already.
pub(super) fn store_module(path: &Path, module: &[u8]) -> io::Result<()> {
    if path.is_file() {
        return Ok(());
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    replace(path, module)?;
    fs::File::open(dir)?.sync_all()
}

/// `live` is live: remember it, and drop modules no longer named.
pub(super) fn save_live(state_dir: &Path, live: &LiveRecord) -> io::Result<()> {
    let json = serde_json::to_vec_pretty(live).map_err(io::Error::other)?;
    replace(&live_path(state_dir), &json)?;
    fs::File::open(state_dir)?.sync_all()?;
    let keep = format!("{}.wasm", live.module);
    for entry in fs::read_dir(state_dir.join("modules"))?.flatten() {
        if entry.file_name().to_str() != Some(keep.as_str()) {
            let _ = fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// The last good live record, if `state_dir` holds one whose module is
/// there and matches its hash.
pub(super) fn load(source: &SourceConfig) -> io::Result<Option<LiveRecord>> {
    let json = match fs::read(live_path(&source.state_dir)) {
        Ok(json) => json,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let live: LiveRecord = serde_json::from_slice(&json).map_err(io::Error::other)?;
    let module_path = source.module_path(&live.module);
    let module = fs::read(&module_path)?;
    if layout::hash(&module) != live.module {
        return Err(io::Error::other(format!(
            "{}: the module does not match live.json's hash",
            module_path.display()
        )));
    }
    Ok(Some(live))
}

fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut file = fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)
}
