//! `state_dir`: the last policy this instance ran from etcd (module and
//! live record), so it can start while etcd is unreachable. Written after
//! each policy from etcd goes live; blocking I/O, called on the blocking
//! pool.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::layout::{self, LiveRecord};

/// The module's file: `[policy] module` points here when a source is set.
pub(super) fn module_path(state_dir: &Path) -> PathBuf {
    state_dir.join("policy.wasm")
}

fn live_path(state_dir: &Path) -> PathBuf {
    state_dir.join("live.json")
}

/// Keep `module` and `live` as the last good policy. The module is written
/// first: a `live.json` always names a module that is there whole.
pub(super) fn save(state_dir: &Path, module: &[u8], live: &LiveRecord) -> io::Result<()> {
    fs::create_dir_all(state_dir)?;
    replace(&module_path(state_dir), module)?;
    let json = serde_json::to_vec_pretty(live).map_err(io::Error::other)?;
    replace(&live_path(state_dir), &json)
}

/// The last good live record, if `state_dir` holds one whose module is
/// there and matches its hash.
pub(super) fn load(state_dir: &Path) -> io::Result<Option<LiveRecord>> {
    let json = match fs::read(live_path(state_dir)) {
        Ok(json) => json,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let live: LiveRecord = serde_json::from_slice(&json).map_err(io::Error::other)?;
    let module = fs::read(module_path(state_dir))?;
    if layout::hash(&module) != live.module {
        return Err(io::Error::other(format!(
            "{}: the module does not match live.json's hash",
            state_dir.display()
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
