//! The host's planes, read from its sources. `src/lib.rs` ranks them in a
//! table; here every `crate::` path (and every `super::` path between
//! sibling files) is checked against that table:
//!
//! - an edge goes down the ranks or stays within its plane, never up;
//! - inside a folder, sibling modules import each other without a cycle;
//! - every top-level entry of `src/` belongs to a plane;
//! - no Rust file in the workspace is longer than a reader takes in at once.
//!
//! `cargo test -p limen --test layers -- --nocapture` prints the plane graph.

mod layers_check;

use std::fs;
use std::path::{Path, PathBuf};

use layers_check::{Source, check, plane_order, too_long};

/// Longest Rust file anywhere in the workspace ("no file over ~400 lines").
const MAX_LINES: usize = 420;

/// The planes' ranks as `lib.rs` states them, top first.
const PLANES: [&str; 8] = [
    "control", "offline", "path", "state", "upstream", "policy", "observe", "core",
];

/// The root files that make up the pure core.
const CORE: [&str; 4] = ["hello", "decision", "outcome", "plan"];

fn host() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir` (`skip` names folders left out).
fn rust_files(dir: &Path, skip: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("dir entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if !skip.contains(&name) && !name.starts_with('.') {
                rust_files(&path, skip, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// The library's sources (the binary is another crate), relative to `src/`.
fn library() -> Vec<Source> {
    let src = host().join("src");
    let mut files = Vec::new();
    rust_files(&src, &["bin"], &mut files);
    files
        .iter()
        .map(|file| Source {
            path: file.strip_prefix(&src).expect("under src").to_path_buf(),
            text: fs::read_to_string(file).expect("read source"),
        })
        .collect()
}

#[test]
fn lib_rs_states_the_planes_in_this_order() {
    let lib = fs::read_to_string(host().join("src/lib.rs")).expect("lib.rs");
    assert_eq!(plane_order(&lib), PLANES, "the rank table in src/lib.rs");
}

#[test]
fn imports_go_down_the_planes_and_no_folder_has_a_cycle() {
    let sources = library();
    assert!(sources.len() > 50, "the source tree was not found");
    let report = check(&sources, &PLANES, &CORE);
    for (from, to) in &report.plane_edges {
        println!("{from} -> {}", to.join(", "));
    }
    let fine = report.unplaced.is_empty() && report.upward.is_empty() && report.cycles.is_empty();
    assert!(
        fine,
        "in no plane: {:#?}\nedges up the planes: {:#?}\ncycles in a folder: {:#?}",
        report.unplaced, report.upward, report.cycles
    );
}

#[test]
fn the_checker_catches_an_upward_edge_and_a_cycle() {
    let source = |path: &str, text: &str| Source {
        path: path.into(),
        text: text.into(),
    };
    let good = [
        source("path/accept.rs", "use crate::state::live::Live;"),
        source("state/live.rs", "use crate::{policy::Policy, plan::Rules};"),
        source("control/server.rs", "use crate::path::accept;"),
    ];
    let report = check(&good, &PLANES, &CORE);
    assert!(
        report.upward.is_empty() && report.cycles.is_empty(),
        "{report:?}"
    );

    // The accept loop reaching up into the control plane.
    let up = [
        source(
            "path/accept.rs",
            "// crate::control in a comment is fine\nuse crate::control::acme::Acme;",
        ),
        source(
            "plan.rs",
            "use crate::{decision::Decision, observe::metrics::Metrics};",
        ),
    ];
    let report = check(&up, &PLANES, &CORE);
    assert_eq!(report.upward.len(), 2, "{report:?}");
    assert!(
        report.upward[0].contains("path/accept.rs: path -> control"),
        "{report:?}"
    );

    // Two sibling files of one folder importing each other.
    let cycle = [
        source("state/config/file.rs", "use super::pools::FilePool;"),
        source(
            "state/config/pools.rs",
            "use crate::state::config::file::duration;",
        ),
        source(
            "state/config/mod.rs",
            "mod file; mod pools; use file::FileConfig;",
        ),
    ];
    let report = check(&cycle, &PLANES, &CORE);
    assert_eq!(report.cycles.len(), 1, "{report:?}");
    assert!(report.cycles[0].starts_with("state::config:"), "{report:?}");

    let stray = [source("listener.rs", "")];
    assert_eq!(check(&stray, &PLANES, &CORE).unplaced, ["listener.rs"]);
}

#[test]
fn no_rust_file_in_the_workspace_is_too_long_to_read_at_once() {
    let root = host().join("..");
    let mut files = Vec::new();
    rust_files(&root, &["target", "node_modules"], &mut files);
    assert!(files.len() > 100, "the workspace was not found");
    let texts: Vec<(PathBuf, String)> = files
        .into_iter()
        .map(|file| {
            let text = fs::read_to_string(&file).expect("read source");
            (file, text)
        })
        .collect();
    let long = too_long(
        texts.iter().map(|(p, t)| (p.as_path(), t.as_str())),
        MAX_LINES,
    );
    assert!(long.is_empty(), "over {MAX_LINES} lines: {long:#?}");
}

#[test]
fn the_size_rule_catches_a_long_file_and_super_paths_resolve() {
    let long = "x\n".repeat(MAX_LINES + 1);
    let short = "x\n".repeat(MAX_LINES);
    let files = [
        (Path::new("tests/long.rs"), long.as_str()),
        (Path::new("a.rs"), short.as_str()),
    ];
    assert_eq!(
        too_long(files, MAX_LINES),
        [format!("tests/long.rs ({} lines)", MAX_LINES + 1)]
    );

    // `super::super::` from path/action/x.rs names path::peek: within its plane.
    let source = Source {
        path: "path/action/x.rs".into(),
        text: "use super::super::peek::Peeked; use super::super::super::control::Running;".into(),
    };
    let report = check(&[source], &PLANES, &CORE);
    assert_eq!(report.upward.len(), 1, "{report:?}");
    assert!(report.upward[0].contains("path -> control"), "{report:?}");
}
