//! The checker behind `layers.rs`, over sources given as text so that its
//! own test can feed it an upward edge and a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One source file of the library, its path relative to `src/`.
pub(crate) struct Source {
    pub(crate) path: PathBuf,
    pub(crate) text: String,
}

/// What the check found.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// Which planes each plane imports from (for printing).
    pub(crate) plane_edges: BTreeMap<String, Vec<String>>,
    /// `file: from -> to (path)` for every edge up the ranks.
    pub(crate) upward: Vec<String>,
    /// `folder: a -> b -> a` for every folder whose siblings form a cycle.
    pub(crate) cycles: Vec<String>,
    /// Top-level entries that are in no plane.
    pub(crate) unplaced: Vec<String>,
}

/// The plane names of `lib.rs`'s rank table (`| 7 | `control` | ...`), top first.
pub(crate) fn plane_order(lib: &str) -> Vec<String> {
    lib.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.trim_start_matches("//!").split('|').collect();
            let rank = cells.get(1)?.trim();
            (!rank.is_empty() && rank.chars().all(|c| c.is_ascii_digit())).then_some(())?;
            Some(cells.get(2)?.trim().trim_matches('`').to_owned())
        })
        .collect()
}

/// The module path of a file: `control/fleet/mod.rs` is `control::fleet`.
fn module_of(path: &Path) -> Vec<String> {
    let mut parts: Vec<String> = path
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// The code without comments (doc comments mention paths freely).
fn code(text: &str) -> String {
    let lines = text
        .lines()
        .map(|line| line.split("//").next().unwrap_or(""));
    lines.collect::<Vec<_>>().join("\n")
}

fn ident(s: &str) -> String {
    let s = s.trim_start();
    s.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The leading path segments after `at` (`a::b::X` gives `[a, b, X]`), one
/// list per item of a `{...}` group.
fn paths_after(rest: &str) -> Vec<Vec<String>> {
    if let Some(group) = rest.strip_prefix('{') {
        // Split the group's top-level items, keeping nested groups whole.
        let (mut depth, mut item, mut items) = (0usize, String::new(), Vec::new());
        for c in group.chars() {
            match c {
                '}' if depth == 0 => break,
                ',' if depth == 0 => {
                    items.push(std::mem::take(&mut item));
                    continue;
                }
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            item.push(c);
        }
        items.push(item);
        return items.iter().flat_map(|i| paths_after(i.trim())).collect();
    }
    let mut segments = Vec::new();
    let mut rest = rest;
    loop {
        let name = ident(rest);
        if name.is_empty() {
            break;
        }
        rest = &rest.trim_start()[name.len()..];
        segments.push(name);
        match rest.strip_prefix("::") {
            Some(more) if more.starts_with('{') => {
                let base = segments.clone();
                return paths_after(more)
                    .into_iter()
                    .map(|tail| base.iter().cloned().chain(tail).collect())
                    .collect();
            }
            Some(more) => rest = more,
            None => break,
        }
    }
    vec![segments]
}

/// Absolute module paths a file names through `crate::` and `super::`.
fn references(module: &[String], code: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for prefix in ["crate::", "super::"] {
        for (i, _) in code.match_indices(prefix) {
            let before = code[..i].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let mut rest = &code[i + prefix.len()..];
            let mut base = if prefix == "crate::" {
                Vec::new()
            } else {
                parent(module)
            };
            // `super::super::x`: one module further up per `super`.
            while let Some(more) = rest.strip_prefix("super::") {
                base.pop();
                rest = more;
            }
            for tail in paths_after(rest) {
                let tail: Vec<String> = tail.into_iter().filter(|s| s != "self").collect();
                found.push(base.iter().cloned().chain(tail).collect());
            }
        }
    }
    found
}

/// What `super` names from a file: the module above its own (for
/// `a/b/mod.rs`, module `a::b`, that is `a`; for `a/b/c.rs`, `a::b`).
fn parent(module: &[String]) -> Vec<String> {
    module[..module.len().saturating_sub(1)].to_vec()
}

/// Check `sources` against `planes` (top first; `core` names the root files).
pub(crate) fn check(sources: &[Source], planes: &[&str], core: &[&str]) -> Report {
    let rank = |top: &str| {
        let plane = if core.contains(&top) { "core" } else { top };
        planes
            .iter()
            .position(|p| *p == plane)
            .map(|at| (planes.len() - at, planes[at]))
    };
    let mut report = Report::default();
    let mut plane_edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    // Per folder (a module path), the edges between its children.
    let mut folders: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for source in sources {
        let module = module_of(&source.path);
        let Some(top) = module.first() else { continue };
        let Some((from_rank, from_plane)) = rank(top) else {
            report.unplaced.push(source.path.display().to_string());
            continue;
        };
        for target in references(&module, &code(&source.text)) {
            let Some((to_rank, to_plane)) = target.first().and_then(|t| rank(t)) else {
                continue;
            };
            if to_plane != from_plane {
                plane_edges
                    .entry(from_plane.into())
                    .or_default()
                    .insert(to_plane.into());
            }
            if to_rank > from_rank {
                report.upward.push(format!(
                    "{}: {from_plane} -> {to_plane} ({})",
                    source.path.display(),
                    target.join("::")
                ));
            }
            // The folder both sit in, and the children of it they sit in.
            let shared = module
                .iter()
                .zip(&target)
                .take_while(|(a, b)| a == b)
                .count();
            if let (Some(a), Some(b)) = (module.get(shared), target.get(shared)) {
                // A folder's mod.rs is the folder itself: its uses of its
                // children never get here (the children are one level down).
                let folder = module[..shared].to_vec();
                let edges = folders.entry(folder).or_default();
                edges.entry(a.clone()).or_default().insert(b.clone());
            }
        }
    }
    report.plane_edges = plane_edges
        .into_iter()
        .map(|(k, v)| (k, v.into_iter().collect()))
        .collect();
    for (folder, graph) in &folders {
        if let Some(found) = cycle(graph) {
            report
                .cycles
                .push(format!("{}: {}", folder.join("::"), found.join(" -> ")));
        }
    }
    report
}

/// A cycle through `graph`, if there is one (depth-first search).
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if !done.insert(node.to_owned()) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

/// Files longer than `max` lines, as `path (N lines)`.
pub(crate) fn too_long<'a>(
    files: impl IntoIterator<Item = (&'a Path, &'a str)>,
    max: usize,
) -> Vec<String> {
    files
        .into_iter()
        .filter_map(|(path, text)| {
            let lines = text.lines().count();
            (lines > max).then(|| format!("{} ({lines} lines)", path.display()))
        })
        .collect()
}
