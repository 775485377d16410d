//! Project automation, the `cargo xtask` way: plain Rust, no extra tools.
//!
//! - `cargo xtask guests`: build every `examples-guests/*` policy (Rust, Python,
//!   JavaScript, C) into `target/guests/<dir>.wasm`, installing the toolchains
//!   it needs (see `guests/`).
//! - `cargo xtask demo`: guests, limen, demo TLS backends, and limen on `examples/demo.toml`.
//! - `cargo xtask test`: formatting, clippy, guests, then the whole test suite.
//! - `cargo xtask fuzz [TARGET...] [--time SECS]`: the libFuzzer targets in
//!   `fuzz/` (hello, config, cases, admin), 20 s each by default.

mod demo;
mod fuzz;
mod guests;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

fn main() -> anyhow::Result<()> {
    if let Some(wrapped) = fuzz::wrap_rustc_if_asked() {
        return wrapped;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let task = args.first().cloned().unwrap_or_default();
    match task.as_str() {
        "guests" => guests().map(drop),
        "demo" => demo(),
        "test" => test(),
        "fuzz" => fuzz::fuzz(&args[1..]),
        _ => {
            eprintln!("usage: cargo xtask <guests|demo|test|fuzz>");
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

/// Build every example guest, in every language; returns the `.wasm` paths.
fn guests() -> anyhow::Result<Vec<PathBuf>> {
    guests::build_all(&root())
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
    // The QUIC tests' endpoints. Not fatal here: without aioquic those tests
    // fail, each saying what is missing, and every other test still runs.
    if let Err(e) = guests::test_kit(&root()) {
        eprintln!("xtask: {e:#}; the QUIC end-to-end tests will fail");
    }
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
