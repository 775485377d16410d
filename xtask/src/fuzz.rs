//! `cargo xtask fuzz [TARGET...] [--time SECS] [-- LIBFUZZER ARGS]`: build
//! the libFuzzer targets in `fuzz/` and run each for `--time` seconds
//! (default 20, the short run `.ci/run` makes), seeded from
//! `../shared/testdata/clienthello`, `../shared/testdata/quic` and the
//! repo's own example files.
//!
//! No cargo-fuzz needed: on stable Rust, LLVM's coverage pass is switched on
//! with the flags cargo-fuzz would pass, by this program acting as
//! `RUSTC_WRAPPER` and only for the crates that read untrusted input (so
//! wasmtime and cranelift build as usual). Corpora grow in
//! `target/fuzz/corpus/<target>`; a crash is written to
//! `target/fuzz/artifacts/<target>/` and fails the task.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::{cargo, root, run};

/// Every target, named as in `fuzz/Cargo.toml`.
const TARGETS: [&str; 5] = ["hello", "quic", "config", "cases", "admin"];

/// Crates compiled with coverage: the targets and what parses for them.
const INSTRUMENTED: [&str; 14] = [
    "hello",
    "quic",
    "config",
    "cases",
    "admin",
    "limen",
    "limen_hello",
    "tls_parser",
    "toml",
    "toml_parser",
    "serde_json",
    "humantime",
    "bytesize",
    "ipnet",
];

/// The flags cargo-fuzz passes (sancov with 8-bit counters, a PC table and
/// comparison tracing), plus `--cfg fuzzing`.
const COVERAGE: [&str; 9] = [
    "-Cpasses=sancov-module",
    "-Cllvm-args=-sanitizer-coverage-level=4",
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
    "-Cllvm-args=-sanitizer-coverage-pc-table",
    "-Cllvm-args=-sanitizer-coverage-trace-compares",
    "-Cforce-frame-pointers",
    "--cfg",
    "fuzzing",
    "-Cllvm-args=-sanitizer-coverage-stack-depth",
];

/// Set while this program runs as the compiler wrapper.
const WRAPPER_ENV: &str = "LIMEN_XTASK_RUSTC_WRAPPER";

/// When cargo runs us as `RUSTC_WRAPPER` (`xtask RUSTC ARGS...`): run rustc,
/// adding the coverage flags for the crates in [`INSTRUMENTED`].
pub(crate) fn wrap_rustc_if_asked() -> Option<anyhow::Result<()>> {
    std::env::var_os(WRAPPER_ENV)?;
    let mut args = std::env::args_os().skip(1);
    let rustc = args.next()?;
    let args: Vec<_> = args.collect();
    let crate_name = args
        .iter()
        .position(|a| a == "--crate-name")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.to_str());
    // Only code for the target: proc macros and build scripts (compiled
    // without `--target`, see `build`) must load without libFuzzer.
    let for_target = args.iter().any(|a| a == "--target");
    let mut cmd = Command::new(rustc);
    cmd.args(&args);
    if for_target && crate_name.is_some_and(|n| INSTRUMENTED.contains(&n)) {
        cmd.args(COVERAGE);
    }
    Some(match cmd.status() {
        Ok(status) if status.success() => Ok(()),
        // rustc has printed why; cargo only needs the code.
        Ok(status) => std::process::exit(status.code().unwrap_or(1)),
        Err(e) => Err(e.into()),
    })
}

pub(crate) fn fuzz(args: &[String]) -> anyhow::Result<()> {
    let (ours, extra) = match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => (args, &[][..]),
    };
    let mut targets = Vec::new();
    let mut seconds = 20u64;
    let mut it = ours.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--time" => {
                let value = it.next().context("--time needs a number of seconds")?;
                seconds = value.parse().context("--time needs a number of seconds")?;
            }
            t if TARGETS.contains(&t) => targets.push(t),
            other => bail!("unknown fuzz target or option `{other}` (targets: {TARGETS:?})"),
        }
    }
    if targets.is_empty() {
        targets = TARGETS.to_vec();
    }
    let dir = root().join("target/fuzz");
    let triple = host_triple()?;
    build(&dir, &triple)?;
    for target in targets {
        let corpus = dir.join("corpus").join(target);
        let artifacts = dir.join("artifacts").join(target);
        fs::create_dir_all(&corpus)?;
        fs::create_dir_all(&artifacts)?;
        seed(target, &corpus)?;
        let binary = dir.join(&triple).join("release").join(target);
        run(Command::new(binary)
            .arg(&corpus)
            .arg(format!("-max_total_time={seconds}"))
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .arg("-print_final_stats=1")
            .arg("-max_len=20000")
            .args(extra))
        .with_context(|| {
            format!(
                "fuzz target `{target}` found a failure: see {}",
                artifacts.display()
            )
        })?;
    }
    Ok(())
}

/// Build with an explicit `--target`, as cargo-fuzz does, so that crates
/// also used by proc macros are compiled twice and only the target's copy
/// gets coverage.
fn build(dir: &Path, triple: &str) -> anyhow::Result<()> {
    let wrapper = std::env::current_exe().context("cannot find xtask's own binary")?;
    run(cargo()
        .args(["build", "--release", "--bins", "--target", triple])
        .args(["--manifest-path", "fuzz/Cargo.toml"])
        .env("CARGO_TARGET_DIR", dir)
        .env("RUSTC_WRAPPER", wrapper)
        .env(WRAPPER_ENV, "1"))
}

/// Starting inputs: read from where they live each time (the shared corpus
/// is not copied into the repo), written under content names so reruns add
/// nothing.
fn seed(target: &str, corpus: &Path) -> anyhow::Result<()> {
    let mut inputs: Vec<Vec<u8>> = Vec::new();
    match target {
        "hello" => {
            let shared = shared_dir().join("testdata/clienthello");
            for file in ["corpus.jsonl", "edge_cases.jsonl"] {
                let path = shared.join(file);
                let text = fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    let row: serde_json::Value = serde_json::from_str(line)?;
                    if let Some(hex) = row["record_hex"].as_str() {
                        inputs.push(hex::decode(hex).context("record_hex")?);
                    }
                }
            }
        }
        "quic" => inputs.extend(quic_seeds()?),
        "config" => {
            inputs.extend(files_named(&root(), &["demo.toml", "limen.toml"])?);
            inputs.extend(toml_blocks(&root().join("README.md"))?);
            inputs.extend(toml_blocks(&root().join("docs/configuration.md"))?);
        }
        "cases" => {
            inputs.extend(files_named(&root(), &["cases.toml"])?);
            inputs.extend(toml_blocks(&root().join("guest-sdk/README.md"))?);
        }
        "admin" => {
            for line in [
                r#"{"op":"status"}"#,
                r#"{"token":"secret","op":"status"}"#,
                r#"{"op":"swap","module_len":1024,"config_json":"{\"routes\":[]}"}"#,
                r#"{"result":"refused","code":"P003","error":"trap","live":"v1"}"#,
                r#"{"result":"denied","error":"bad or missing token"}"#,
            ] {
                inputs.push(line.as_bytes().to_vec());
            }
        }
        _ => {}
    }
    for input in inputs {
        let name = format!("seed-{:016x}", fnv(&input));
        fs::write(corpus.join(name), input)?;
    }
    Ok(())
}

/// Seeds in the `quic` target's format (see `fuzz/fuzz_targets/quic.rs`):
/// a mode byte, then datagrams behind 2-byte lengths. Mode 0, raw: each
/// capture alone, each connection's datagrams together. Mode 1, sealed by
/// the target: a corpus ClientHello in two CRYPTO frames, last part first.
fn quic_seeds() -> anyhow::Result<Vec<Vec<u8>>> {
    fn framed(mode: u8, datagrams: &[&[u8]]) -> Vec<u8> {
        let mut input = vec![mode];
        for d in datagrams {
            let len = u16::try_from(d.len()).unwrap_or(u16::MAX);
            input.extend(len.to_be_bytes());
            input.extend(d.get(..usize::from(len)).unwrap_or(d));
        }
        input
    }
    let dir = shared_dir().join("testdata/quic");
    let mut captures: Vec<(String, Vec<u8>)> = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "bin") {
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            captures.push((name, fs::read(&path)?));
        }
    }
    captures.sort();
    let mut seeds = Vec::new();
    for (_, bytes) in &captures {
        seeds.push(framed(0, &[bytes]));
    }
    // One connection per name prefix: `chromium148-...`, `aioquic172-big-...`.
    for prefix in ["chromium148-pq-", "chromium148-", "aioquic172-big-"] {
        let flight: Vec<&[u8]> = captures
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(_, bytes)| bytes.as_slice())
            .collect();
        seeds.push(framed(0, &flight));
    }
    let corpus = shared_dir().join("testdata/clienthello/corpus.jsonl");
    let text =
        fs::read_to_string(&corpus).with_context(|| format!("cannot read {}", corpus.display()))?;
    for line in text.lines().filter(|l| !l.trim().is_empty()).take(8) {
        let row: serde_json::Value = serde_json::from_str(line)?;
        let Some(record) = row["record_hex"].as_str() else {
            continue;
        };
        let record = hex::decode(record).context("record_hex")?;
        // The handshake message of a one-record hello, if it fits a packet.
        let one_record = |m: &&[u8]| {
            let len = u16::try_from(m.len()).unwrap_or(u16::MAX).to_be_bytes();
            m.len() < 1100 && record.get(3..5) == Some(&len[..])
        };
        let Some(message) = record.get(5..).filter(one_record) else {
            continue;
        };
        let half = message.len() / 2;
        let crypto = |offset: usize, data: &[u8]| {
            let mut frame = vec![0x06];
            for v in [offset, data.len()] {
                // Two-byte varints: every value here is under 16384.
                frame.extend((0x4000 | v as u16).to_be_bytes());
            }
            frame.extend(data);
            frame
        };
        let (head, tail) = message.split_at(half);
        seeds.push(framed(1, &[&crypto(half, tail), &crypto(0, head)]));
    }
    Ok(seeds)
}

/// Files called one of `names` under the repo's examples, bench and tests.
fn files_named(root: &Path, names: &[&str]) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut stack = ["examples", "examples-guests", "bench", "tests"]
        .map(|d| root.join(d))
        .to_vec();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .file_name()
                .is_some_and(|n| names.iter().any(|w| n == *w))
            {
                out.push(fs::read(&path)?);
            }
        }
    }
    Ok(out)
}

/// The ```toml blocks of a document: the documented config is a seed.
fn toml_blocks(doc: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let text = fs::read_to_string(doc).with_context(|| format!("cannot read {}", doc.display()))?;
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim_start()) {
            (None, "```toml") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block).into_bytes());
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    Ok(blocks)
}

fn host_triple() -> anyhow::Result<String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc).arg("-vV").output()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .context("`rustc -vV` names no host")
}

fn shared_dir() -> PathBuf {
    std::env::var_os("LIMEN_SHARED").map_or_else(|| root().join("../shared"), PathBuf::from)
}

/// A content name for a seed (stable across runs; not a security hash).
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
