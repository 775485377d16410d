//! `cargo xtask guests`: every `examples-guests/*` policy into
//! `target/guests/<dir>.wasm`, whatever its language. A directory's language
//! is told by its entry file: `Cargo.toml` (Rust), `app.py` (Python,
//! componentize-py), `app.js` (JavaScript, componentize-js), `app.c` (C,
//! wit-bindgen's C generator and zig's clang with wasi-libc).
//!
//! Toolchains other than Rust's are installed from the package registries
//! into `target/toolchains/` on first use. A language whose toolchain cannot
//! be installed is skipped with a message saying so and why (and listed again
//! at the end); it never fails the other languages, and never passes silently.

mod c;
mod javascript;
mod python;
mod rust;
mod toolchain;

pub(crate) use toolchain::test_kit;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The languages, in the order they are built.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Language {
    Rust,
    Python,
    JavaScript,
    C,
}

impl Language {
    fn of(dir: &Path) -> Option<Language> {
        [
            ("Cargo.toml", Language::Rust),
            ("app.py", Language::Python),
            ("app.js", Language::JavaScript),
            ("app.c", Language::C),
        ]
        .into_iter()
        .find(|(entry, _)| dir.join(entry).is_file())
        .map(|(_, language)| language)
    }
}

/// One guest to build: its directory name is its output name.
struct Guest {
    name: String,
    dir: PathBuf,
}

impl Guest {
    /// `to` is newer than every input: the guest's files, `wit/`, the
    /// builders and their pins (`xtask/src/guests/`), `Cargo.lock` (the
    /// bindings generators). Directories count by their own time too, so a
    /// deleted file is noticed. Cargo decides this itself for Rust; the
    /// other languages' builds (componentize-py takes ~40 s per guest) are
    /// skipped on the second run when nothing changed. A build removes its
    /// output first, so a failed one never leaves a file that looks fresh.
    fn up_to_date(&self, root: &Path, to: &Path) -> bool {
        let Some(built) = modified(to) else {
            return false;
        };
        let inputs = [
            self.dir.clone(),
            root.join("wit"),
            root.join("xtask/src/guests"),
            root.join("Cargo.lock"),
        ];
        let fresh = inputs
            .iter()
            .all(|input| newest(input).is_some_and(|t| t <= built));
        if fresh {
            println!("xtask: {} is up to date", to.display());
        } else {
            let _ = std::fs::remove_file(to);
        }
        fresh
    }
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The latest modification time under `path` (itself included), or `None`
/// if any of it cannot be read (then nothing counts as fresh).
fn newest(path: &Path) -> Option<std::time::SystemTime> {
    let mut latest = modified(path)?;
    if path.is_dir() {
        for entry in std::fs::read_dir(path).ok()? {
            latest = latest.max(newest(&entry.ok()?.path())?);
        }
    }
    Some(latest)
}

/// Build every guest; returns the `.wasm` files written.
pub(crate) fn build_all(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let out = root.join("target/guests");
    std::fs::create_dir_all(&out)?;
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("examples-guests"))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    dirs.sort();
    let mut by_language: BTreeMap<Language, Vec<Guest>> = BTreeMap::new();
    for dir in dirs {
        if let Some(language) = Language::of(&dir) {
            let name = dir
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            by_language
                .entry(language)
                .or_default()
                .push(Guest { name, dir });
        }
    }
    let mut built = Vec::new();
    let mut skipped = Vec::new();
    for (language, guests) in &by_language {
        let result = match language {
            Language::Rust => rust::build(root, guests, &out),
            Language::Python => python::build(root, guests, &out),
            Language::JavaScript => javascript::build(root, guests, &out),
            Language::C => c::build(root, guests, &out),
        };
        match result {
            Ok(files) => built.extend(files),
            Err(Skip::Toolchain(why)) => {
                let names: Vec<&str> = guests.iter().map(|g| g.name.as_str()).collect();
                // A component left by an earlier build would be tested as if
                // it were this source's: remove it, so its tests fail clearly.
                for name in &names {
                    let _ = std::fs::remove_file(out.join(format!("{name}.wasm")));
                }
                eprintln!(
                    "xtask: SKIPPED {language:?} guests {names:?}: {why:#}\n\
                     xtask: (the tests that run them will fail until this toolchain installs)"
                );
                skipped.push(format!("{language:?} {names:?}: {why:#}"));
            }
            Err(Skip::Failed(error)) => {
                return Err(error).with_context(|| format!("building the {language:?} guests"));
            }
        }
    }
    for file in &built {
        let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
        eprintln!("xtask: {} ({size} bytes)", file.display());
    }
    if !skipped.is_empty() {
        eprintln!("xtask: guests NOT built (toolchain unavailable):");
        for line in &skipped {
            eprintln!("xtask:   {line}");
        }
    }
    Ok(built)
}

/// Why a language's guests were not built.
enum Skip {
    /// Its toolchain could not be installed: skip the language, say why.
    Toolchain(anyhow::Error),
    /// The toolchain is there and the build failed: that is an error.
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for Skip {
    fn from(error: anyhow::Error) -> Skip {
        Skip::Failed(error)
    }
}

impl From<std::io::Error> for Skip {
    fn from(error: std::io::Error) -> Skip {
        Skip::Failed(error.into())
    }
}
