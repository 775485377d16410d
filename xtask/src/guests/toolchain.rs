//! Installing other languages' toolchains into `target/toolchains/`, pinned,
//! from PyPI and the npm registry. A stamp file per tool records what was
//! installed, so later builds start at once and a version bump reinstalls.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::run;

/// componentize-py: bundles CPython and the app into a component.
pub(super) const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";
/// zig's clang with wasi-libc, as a Python wheel (no system packages needed).
pub(super) const ZIG: &str = "ziglang==0.17.1";
/// componentize-js: StarlingMonkey (SpiderMonkey) and the app into a component.
pub(super) const COMPONENTIZE_JS: &str = "@bytecodealliance/componentize-js@0.23.0";
/// aioquic: the QUIC and HTTP/3 endpoints the end-to-end tests start
/// (`tests/quic/`, run with this venv's interpreter).
const AIOQUIC: &str = "aioquic==1.7.2";

/// What the end-to-end tests run that is not Rust: aioquic, into the
/// guests' Python venv (one venv, one stamp scheme).
pub(crate) fn test_kit(root: &Path) -> anyhow::Result<()> {
    pip(root, AIOQUIC).map(drop)
}

fn dir(root: &Path, name: &str) -> PathBuf {
    root.join("target/toolchains").join(name)
}

/// True when `stamp` says `what` is installed.
fn installed(stamp: &Path, what: &str) -> bool {
    std::fs::read_to_string(stamp).is_ok_and(|s| s == what)
}

/// The Python virtual environment holding `package`, created if needed;
/// returns the venv's directory.
pub(super) fn pip(root: &Path, package: &str) -> anyhow::Result<PathBuf> {
    let venv = dir(root, "python");
    // A venv's scripts name its interpreter by absolute path: one created
    // elsewhere (a moved or copied target/) is rebuilt, package stamps and all.
    let created_at = venv.join("created-at");
    let here = venv.display().to_string();
    if !installed(&created_at, &here) {
        let _ = std::fs::remove_dir_all(&venv);
    }
    let stamp = venv.join(format!("{}.installed", stamp_name(package)));
    if installed(&stamp, package) {
        return Ok(venv);
    }
    if !installed(&created_at, &here) {
        let python = ["python3", "python"]
            .into_iter()
            .find(|p| Command::new(p).arg("--version").output().is_ok())
            .context("no python3 on PATH (needed to install Python-based toolchains)")?;
        run(Command::new(python).args(["-m", "venv"]).arg(&venv))
            .context("cannot create a Python virtual environment")?;
        std::fs::write(&created_at, &here)?;
    }
    run(Command::new(venv.join("bin/pip")).args([
        "install",
        "--disable-pip-version-check",
        "--quiet",
        package,
    ]))
    .with_context(|| format!("cannot install {package} from PyPI"))?;
    std::fs::write(&stamp, package)?;
    Ok(venv)
}

/// The npm prefix holding `package`, installed if needed.
pub(super) fn npm(root: &Path, package: &str) -> anyhow::Result<PathBuf> {
    let prefix = dir(root, "node");
    let stamp = prefix.join(format!("{}.installed", stamp_name(package)));
    if installed(&stamp, package) {
        return Ok(prefix);
    }
    if Command::new("npm").arg("--version").output().is_err() {
        bail!("no npm on PATH (install Node.js 18 or newer)");
    }
    std::fs::create_dir_all(&prefix)?;
    run(Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(&prefix)
        .arg(package))
    .with_context(|| format!("cannot install {package} from the npm registry"))?;
    std::fs::write(&stamp, package)?;
    Ok(prefix)
}

fn stamp_name(package: &str) -> String {
    package
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}
