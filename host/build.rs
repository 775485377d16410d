//! Stamps the commit limen is built from into `limen --version`
//! (`LIMEN_COMMIT`; "unknown" outside a git checkout, e.g. `cargo install`).
//! Only files that exist are watched: watching a missing one would rerun
//! this script, and rebuild limen, on every build.

use std::path::Path;
use std::process::Command;

fn main() {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git").args(args).output().ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=LIMEN_COMMIT={commit}");
    println!("cargo:rerun-if-changed=build.rs");
    // HEAD names the branch; the branch's ref (loose or packed) names the commit.
    let dir = git(&["rev-parse", "--git-dir"]).map(|d| Path::new(&d).to_path_buf());
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    if let Some(dir) = dir {
        let mut watched = vec![dir.join("HEAD"), dir.join("packed-refs")];
        watched.extend(branch.map(|b| dir.join(b)));
        for path in watched.iter().filter(|p| p.exists()) {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}
