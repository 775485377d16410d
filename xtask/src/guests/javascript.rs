//! JavaScript guests: componentize-js embeds `app.js` (an ES module whose
//! exports implement the world) in StarlingMonkey, pre-initialised.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::toolchain::{self, COMPONENTIZE_JS};
use super::{Guest, Skip};
use crate::run;

pub(super) fn build(root: &Path, guests: &[Guest], out: &Path) -> Result<Vec<PathBuf>, Skip> {
    let prefix = toolchain::npm(root, COMPONENTIZE_JS).map_err(Skip::Toolchain)?;
    let mut built = Vec::new();
    for guest in guests {
        let to = out.join(format!("{}.wasm", guest.name));
        if guest.up_to_date(root, &to) {
            built.push(to);
            continue;
        }
        // A policy has no use for outgoing HTTP or the fetch event (and limen
        // would not grant them); leaving them out keeps those imports away.
        run(
            Command::new(prefix.join("node_modules/.bin/componentize-js"))
                .arg(guest.dir.join("app.js"))
                .arg("--wit")
                .arg(root.join("wit"))
                .args([
                    "--world-name",
                    "policy",
                    "-d",
                    "http",
                    "-d",
                    "fetch-event",
                    "-o",
                ])
                .arg(&to),
        )?;
        built.push(to);
    }
    Ok(built)
}
