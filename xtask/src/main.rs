//! Project automation, the `cargo xtask` way: plain Rust, no extra tools.
//!
//! - `cargo xtask guests`: build every `examples-guests/*` policy into
//!   `target/guests/<crate>.wasm` (installs rustup's wasm32-wasip2 target if missing).
//! - `cargo xtask demo`: guests, limen, demo TLS backends, and limen on `examples/demo.toml`.
//! - `cargo xtask test`: formatting, clippy, guests, then the whole test suite.

mod demo;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

const GUEST_TARGET: &str = "wasm32-wasip2";

fn main() -> anyhow::Result<()> {
    let task = std::env::args().nth(1).unwrap_or_default();
    match task.as_str() {
        "guests" => guests().map(drop),
        "demo" => demo(),
        "test" => test(),
        _ => {
            eprintln!("usage: cargo xtask <guests|demo|test>");
            bail!("unknown task `{task}`")
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// Build every example guest; returns the `.wasm` paths.
fn guests() -> anyhow::Result<Vec<PathBuf>> {
    ensure_wasm_target()?;
    let root = root();
    let mut names = Vec::new();
    for entry in std::fs::read_dir(root.join("examples-guests"))? {
        let dir = entry?.path();
        if dir.join("Cargo.toml").is_file() {
            names.push(
                dir.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    names.sort();
    let mut cmd = cargo();
    cmd.args(["build", "--profile", "guest", "--target", GUEST_TARGET]);
    for name in &names {
        cmd.args(["-p", name]);
    }
    run(&mut cmd)?;
    let out = root.join("target/guests");
    std::fs::create_dir_all(&out)?;
    let mut built = Vec::new();
    for name in &names {
        let from = root.join(format!(
            "target/{GUEST_TARGET}/guest/{}.wasm",
            name.replace('-', "_")
        ));
        let to = out.join(format!("{name}.wasm"));
        std::fs::copy(&from, &to).with_context(|| format!("copy {}", from.display()))?;
        eprintln!(
            "xtask: {} ({} bytes)",
            to.display(),
            std::fs::metadata(&to)?.len()
        );
        built.push(to);
    }
    Ok(built)
}

fn ensure_wasm_target() -> anyhow::Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    match installed {
        Ok(out)
            if String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l.trim() == GUEST_TARGET) =>
        {
            Ok(())
        }
        Ok(_) => run(Command::new("rustup").args(["target", "add", GUEST_TARGET])),
        Err(e) => bail!(
            "rustup not found ({e}); install the {GUEST_TARGET} target for your Rust toolchain"
        ),
    }
}

fn test() -> anyhow::Result<()> {
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    guests()?;
    // The e2e tests run the `limen` binary, which `cargo test` alone does
    // not build (only its test harness).
    build_all()?;
    run(cargo().args(["test", "--workspace"]))?;
    eprintln!("xtask: all tests passed");
    Ok(())
}

fn demo() -> anyhow::Result<()> {
    guests()?;
    build_all()?;
    demo::run(&root())
}

/// One build for the demo and the tests alike: the same command resolves the
/// same features, so `cargo xtask test` after `cargo xtask demo` (or the other
/// way round) compiles wasmtime once, not twice.
fn build_all() -> anyhow::Result<()> {
    run(cargo().args(["build", "--workspace", "--all-targets"]))
}
