//! Rust guests: one cargo build of every guest crate for wasm32-wasip2,
//! which links a component directly.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use super::{Guest, Skip};
use crate::{cargo, run};

const TARGET: &str = "wasm32-wasip2";

pub(super) fn build(root: &Path, guests: &[Guest], out: &Path) -> Result<Vec<PathBuf>, Skip> {
    ensure_target().map_err(Skip::Toolchain)?;
    let mut cmd = cargo();
    cmd.args(["build", "--profile", "guest", "--target", TARGET]);
    for guest in guests {
        cmd.args(["-p", &guest.name]);
    }
    run(&mut cmd)?;
    let mut built = Vec::new();
    for guest in guests {
        let from = root.join(format!(
            "target/{TARGET}/guest/{}.wasm",
            guest.name.replace('-', "_")
        ));
        let to = out.join(format!("{}.wasm", guest.name));
        std::fs::copy(&from, &to).with_context(|| format!("copy {}", from.display()))?;
        built.push(to);
    }
    Ok(built)
}

fn ensure_target() -> anyhow::Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    match installed {
        Ok(out)
            if String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l.trim() == TARGET) =>
        {
            Ok(())
        }
        Ok(_) => run(Command::new("rustup").args(["target", "add", TARGET])),
        Err(e) => {
            bail!("rustup not found ({e}); install the {TARGET} target for your Rust toolchain")
        }
    }
}
