//! The house is one-way (ARCHITECTURE.md): every module imports only modules of its own layer or below, and
//! no module imports a module that imports it back; no file in `src/` grows past ~700 lines; `main.rs` stays
//! thin. This test reads the sources (no build tool needed) and fails naming the offending edge or file.
//!
//! The graph is between the top-level modules of the library (`crate::store`, `crate::push`…): an edge is
//! any `crate::x…` path (in a `use`, grouped or not, or inline) or a `super::…` path leaving a top-level
//! module, outside comments. The binary's `src/main.rs` and `src/cli/` are the top floor and are not part of
//! the library graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, bottom to top (ARCHITECTURE.md's code map). A module may import modules of its own layer
/// (without a cycle) or of a lower one, never of a higher one.
const LAYERS: &[&[&str]] = &[
    // Foundations: import nothing of ours but each other.
    &[
        "text",
        "clock",
        "ratelimit",
        "backoff",
        "http",
        "net",
        "codec",
        "credentials",
        "logging",
    ],
    // Domain types.
    &["catalog", "indicator", "entry"],
    // The SecuTix client.
    &["secutix"],
    // The store, then one import.
    &["store", "import"],
    &["availability"],
    // Entries: building them, keeping the latest of each.
    &["merge", "entries"],
    &["push"],
    &["targets"],
    // The configuration assembles every module's settings.
    &["config"],
    // Public projections; the pipeline steps shared by the daemon and the CLI; live checks.
    &["public", "pipeline", "check"],
    &["daemon"],
    &["control"],
    // Operator side of the library: the control API's client, `state`, the demo; the fakes.
    &["cli_client", "state", "fakes", "demo"],
    // One operator interface over the daemon (through its client) or the store.
    &["operator"],
];

/// Largest file in `src/`, in lines (the "~700", with a little room).
const MAX_LINES: usize = 720;
/// Files allowed over [`MAX_LINES`] for now, with the reason. Keep this list short and say when it ends.
const LARGE_FILES: &[(&str, &str)] = &[(
    "availability/poller.rs",
    "rewritten by issue 15 (availability batching) in parallel: split there, not moved under its feet",
)];
/// Largest `src/main.rs`.
const MAX_MAIN_LINES: usize = 100;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without comments (line comments, doc comments, block comments) nor string literals' contents.
fn code_only(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let b = src.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            i += 2;
            while i < b.len() && !b[i..].starts_with(b"*/") {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'"' {
            // A string literal: skipped (it may quote a path in a message).
            out.push('"');
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            out.push('"');
            i += 1;
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
            // A char literal such as '"' or '\n'.
            let end = b[i + 1..]
                .iter()
                .position(|c| *c == b'\'')
                .map_or(b.len(), |p| i + 2 + p);
            i = end;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// The paths of a use tree starting at `s` (after `crate::`), e.g. `{a::{B, C}, d}` → `a::B`, `a::C`, `d`.
fn use_tree(s: &str, prefix: &str, out: &mut Vec<String>) -> usize {
    let s_trim = s.trim_start();
    let skipped = s.len() - s_trim.len();
    if let Some(rest) = s_trim.strip_prefix('{') {
        let mut i = 0;
        loop {
            let r = &rest[i..];
            let t = r.trim_start();
            i += r.len() - t.len();
            if t.starts_with('}') {
                return skipped + 1 + i + 1;
            }
            i += use_tree(&rest[i..], prefix, out);
            let r = &rest[i..];
            let t = r.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
            i += r.len() - t.len();
            if i >= rest.len() {
                return skipped + 1 + i;
            }
        }
    }
    let name: String = s_trim
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '*')
        .collect();
    let mut used = skipped + name.len();
    let after = &s_trim[name.len()..];
    let path = if prefix.is_empty() {
        name.clone()
    } else {
        format!("{prefix}::{name}")
    };
    if let Some(rest) = after.strip_prefix("::") {
        used += 2 + use_tree(rest, &path, out);
    } else {
        out.push(path);
        // `name as alias`: the alias is not a path.
        let t = after.trim_start();
        if let Some(alias) = t.strip_prefix("as ") {
            let alias = alias.trim_start();
            let len = alias.chars().take_while(|c| c.is_alphanumeric() || *c == '_').count();
            used += (after.len() - alias.len()) + len;
        }
    }
    used
}

/// The top-level module of each file of the library (`src/store/records.rs` → `store`).
fn top_module(src_dir: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src_dir).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.trim_end_matches(".rs");
    (!matches!(name, "lib" | "main" | "cli")).then(|| name.to_owned())
}

fn module_graph() -> (BTreeMap<String, BTreeSet<String>>, BTreeSet<String>) {
    let src_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src_dir, &mut files);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| top_module(&src_dir, f)).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let Some(me) = top_module(&src_dir, file) else {
            continue;
        };
        let code = code_only(&std::fs::read_to_string(file).expect("a source file"));
        let mut paths = Vec::new();
        let mut rest = code.as_str();
        while let Some(at) = rest.find("crate::") {
            let before = rest[..at].chars().last();
            let after = &rest[at + "crate::".len()..];
            if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':' || c == '$') {
                use_tree(after, "", &mut paths);
            }
            rest = after;
        }
        for path in paths {
            let first = path.split("::").next().unwrap_or_default().to_owned();
            if modules.contains(&first) && first != me {
                edges.entry(me.clone()).or_default().insert(first);
            }
        }
    }
    (edges, modules)
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

#[test]
fn every_module_has_a_layer() {
    let (_, modules) = module_graph();
    let missing: Vec<&String> = modules.iter().filter(|m| layer_of(m).is_none()).collect();
    assert!(
        missing.is_empty(),
        "modules without a layer in tests/architecture.rs (and ARCHITECTURE.md): {missing:?}"
    );
}

#[test]
fn no_module_imports_a_higher_layer() {
    let (edges, _) = module_graph();
    let mut upward = Vec::new();
    for (from, tos) in &edges {
        for to in tos {
            if let (Some(a), Some(b)) = (layer_of(from), layer_of(to))
                && b > a
            {
                upward.push(format!("{from} (layer {a}) imports {to} (layer {b})"));
            }
        }
    }
    assert!(upward.is_empty(), "imports that go up the house: {upward:#?}");
}

#[test]
fn no_import_cycle_between_modules() {
    let (edges, _) = module_graph();
    // Depth-first search for a back edge; the cycle is named when found.
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, edges, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(cycle) = visit(node, &edges, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn files_stay_small_and_main_stays_thin() {
    let src_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src_dir, &mut files);
    let mut large = Vec::new();
    for f in &files {
        let lines = std::fs::read_to_string(f).expect("a source file").lines().count();
        let rel = f.strip_prefix(&src_dir).unwrap_or(f).to_string_lossy().into_owned();
        if lines > MAX_LINES && !LARGE_FILES.iter().any(|(p, _)| *p == rel) {
            large.push(format!("{} ({lines} lines)", f.display()));
        }
    }
    large.sort();
    assert!(
        large.is_empty(),
        "files over {MAX_LINES} lines: split them by concern: {large:#?}"
    );
    let main = std::fs::read_to_string(src_dir.join("main.rs")).expect("src/main.rs");
    assert!(
        main.lines().count() <= MAX_MAIN_LINES,
        "src/main.rs has {} lines: it parses, sets up logging and dispatches to src/cli/",
        main.lines().count()
    );
}

#[test]
fn the_checker_sees_grouped_and_nested_uses() {
    let mut out = Vec::new();
    use_tree("{a::{B, c::D}, e, f as g};", "", &mut out);
    assert_eq!(out, ["a::B", "a::c::D", "e", "f"]);
    assert_eq!(code_only("x // crate::a\n\"crate::b\" /* crate::c */ y"), "x \n\"\"  y");
}
