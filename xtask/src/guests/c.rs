//! C guests: wit-bindgen's C generator writes `policy.{h,c}` and the world's
//! type object; zig's clang compiles them with the guest's `*.c` against
//! wasi-libc into a core module (a reactor: no `main`); `wit-component`
//! wraps it, with the WASI preview-1 adapter, into a component.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use wit_bindgen_core::Files;

use super::toolchain::{self, ZIG};
use super::{Guest, Skip};
use crate::run;

pub(super) fn build(root: &Path, guests: &[Guest], out: &Path) -> Result<Vec<PathBuf>, Skip> {
    let venv = toolchain::pip(root, ZIG).map_err(Skip::Toolchain)?;
    // One set of bindings: every C guest implements the same world.
    let generated = root.join("target/guest-build/c/bindings");
    std::fs::create_dir_all(&generated)?;
    bindings(&root.join("wit"), &generated)?;
    let mut built = Vec::new();
    for guest in guests {
        let to = out.join(format!("{}.wasm", guest.name));
        if guest.up_to_date(root, &to) {
            built.push(to);
            continue;
        }
        let work = root.join("target/guest-build/c").join(&guest.name);
        std::fs::create_dir_all(&work)?;
        let mut sources: Vec<PathBuf> = std::fs::read_dir(&guest.dir)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        sources.retain(|p| p.extension().is_some_and(|x| x == "c"));
        sources.sort();
        let core = work.join("core.wasm");
        // zig links 16 MiB of initial memory by default, limen's default
        // memory limit: ask for 1 MiB (and a 64 KiB stack) instead.
        run(Command::new(venv.join("bin/python"))
            .args([
                "-m",
                "ziglang",
                "cc",
                "--target=wasm32-wasi",
                "-mexec-model=reactor",
            ])
            .args(["-Os", "-Wall", "-Wextra", "-Werror", "-I"])
            .arg(&generated)
            .args(&sources)
            .arg(generated.join("policy.c"))
            .arg(generated.join("policy_component_type.o"))
            .args([
                "-Wl,-z,stack-size=65536",
                "-Wl,--initial-memory=1048576",
                "-o",
            ])
            .arg(&core))?;
        componentize(&core, &to)?;
        built.push(to);
    }
    Ok(built)
}

/// `wit-bindgen c` for the `policy` world, into `dir`.
fn bindings(wit: &Path, dir: &Path) -> anyhow::Result<()> {
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve.push_path(wit)?;
    let world = resolve.select_world(&[package], Some("policy"))?;
    let mut files = Files::default();
    wit_bindgen_c::Opts::default()
        .build()
        .generate(&mut resolve, world, &mut files)?;
    for (name, bytes) in files.iter() {
        std::fs::write(dir.join(name), bytes)?;
    }
    Ok(())
}

/// Core module + WASI adapter → component.
fn componentize(core: &Path, to: &Path) -> anyhow::Result<()> {
    use wasi_preview1_component_adapter_provider::{
        WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
    };
    let module = std::fs::read(core)?;
    let component = wit_component::ComponentEncoder::default()
        .module(&module)?
        .adapter(
            WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )?
        .validate(true)
        .encode()
        .with_context(|| format!("making a component of {}", core.display()))?;
    std::fs::write(to, component)?;
    Ok(())
}
