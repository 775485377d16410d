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
        if guest.up_to_date(root, &to) {
            built.push(to);
            continue;
        }
        // componentize-py writes `__pycache__/` beside the app whatever
        // PYTHONDONTWRITEBYTECODE says: build from a copy under target/.
        let work = root.join("target/guest-build/python").join(&guest.name);
        std::fs::create_dir_all(&work)?;
        for entry in std::fs::read_dir(&guest.dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|x| x == "py") {
                std::fs::copy(&path, work.join(path.file_name().unwrap_or_default()))?;
            }
        }
        run(Command::new(venv.join("bin/componentize-py"))
            .current_dir(&work)
            .arg("--wit-path")
            .arg(root.join("wit"))
            .args(["--world", "policy", "componentize", "app", "--output"])
            .arg(&to))?;
        built.push(to);
    }
    Ok(built)
}
