//! Python guests: componentize-py bundles CPython, the standard library and
//! `app.py` (its `WitWorld` class implements the world) into one component.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::toolchain::{self, COMPONENTIZE_PY};
use super::{Guest, Skip};
use crate::run;

pub(super) fn build(root: &Path, guests: &[Guest], out: &Path) -> Result<Vec<PathBuf>, Skip> {
    let venv = toolchain::pip(root, COMPONENTIZE_PY).map_err(Skip::Toolchain)?;
    let mut built = Vec::new();
    for guest in guests {
        let to = out.join(format!("{}.wasm", guest.name));
        run(Command::new(venv.join("bin/componentize-py"))
            .current_dir(&guest.dir)
            // It imports the app to find its exports: keep `__pycache__/`
            // out of the source tree.
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .arg("--wit-path")
            .arg(root.join("wit"))
            .args(["--world", "policy", "componentize", "app", "--output"])
            .arg(&to))?;
        built.push(to);
    }
    Ok(built)
}
