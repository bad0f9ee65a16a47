//! The dependency order of `src/` (see `src/lib.rs`): every `crate::…` path in a module must point to
//! a module of a lower layer. A new upward edge fails this test with the file and the path.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Rank of each top-level module: a module may use only modules of a lower rank (or itself).
const RANKS: &[(&str, u32)] = &[
    // Platform, in its own order.
    ("error", 0),
    ("text_enum", 0),
    ("secret", 0),
    ("crypto", 0),
    ("config", 1),
    ("telemetry", 2),
    ("authz", 2),
    ("db", 3),
    ("metrics", 5),
    ("ratelimit", 4),
    // Infrastructure beside the product modules.
    ("jobs", 10),
    // The resolver kit.
    ("graphql", 20),
    // Product modules, lowest first (`audit` reads every module's rows only through the database).
    ("identity", 30),
    ("billing", 31),
    ("support", 32),
    ("ai", 33),
    ("audit", 33),
    // Reads every module's rows through the database only.
    ("analytics", 34),
    // Schema roots and the executor, then the entry points.
    ("schema", 40),
    ("live", 41),
    ("http", 42),
    ("app", 43),
    ("demo", 44),
    ("cli", 45),
];

/// Edges against the order that are allowed, by file and target: the GraphQL type graph only
/// (`Ticket.analysis`, `Ticket.analyses` and `Ticket.similarTickets` return `ai` types), and only
/// into `ai::graphql` ([`the_type_graph_exception_reaches_only_ai_graphql`]).
const ALLOWED: &[(&str, &str)] = &[("support/graphql/ticket.rs", "ai")];

fn rank(module: &str) -> Option<u32> {
    RANKS.iter().find(|(m, _)| *m == module).map(|(_, r)| *r)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Source without comments: `//` to the end of the line, unless it follows a `:` (a URL in a
/// string such as `"http://…"`).
fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|line| {
            let mut cut = line.len();
            let mut from = 0;
            while let Some(at) = line[from..].find("//") {
                let at = from + at;
                if at == 0 || !line[..at].ends_with(':') {
                    cut = at;
                    break;
                }
                from = at + 2;
            }
            &line[..cut]
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first-level names of a `{a, b::c, d::{e, f}}` group that starts right after `{`.
fn group_names(group: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut depth = 0;
    let mut start = true;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => start = true,
            c if start && (c.is_alphanumeric() || c == '_') => {
                found.push(ident_at(&group[i..]));
                start = false;
            }
            _ => {}
        }
    }
    found
}

fn ident_at(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The names that follow each occurrence of `prefix` (a path, or a group of paths).
fn names_after(code: &str, prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        // `super::super::x` is one path: skip occurrences inside a longer run of `super::`.
        let before = &rest[..at];
        rest = &rest[at + prefix.len()..];
        if prefix.starts_with("super")
            && (before.ends_with("super::") || rest.starts_with("super::"))
        {
            continue;
        }
        let rest = rest.trim_start();
        if let Some(group) = rest.strip_prefix('{') {
            found.extend(group_names(group));
        } else {
            found.push(ident_at(rest));
        }
    }
    found
}

/// The top-level modules a piece of code names through `crate::` (comments are ignored; a
/// `use crate::{…}` group may span lines).
fn crate_paths(code: &str) -> Vec<String> {
    names_after(&strip_comments(code), "crate::")
}

/// The top-level modules reached through `super::` chains that climb to the crate root from a
/// module whose path below `src/` is `depth` modules long (`billing/mod.rs` is 1, `ai/graphql.rs` 2).
fn super_paths(code: &str, depth: usize) -> Vec<String> {
    let code = strip_comments(code);
    let prefix = "super::".repeat(depth);
    names_after(&code, &prefix)
}

#[test]
fn no_module_uses_a_module_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut upward = BTreeSet::new();
    let mut unknown = BTreeSet::new();
    for file in &files {
        let rel = file.strip_prefix(&src).expect("under src");
        let rel_str = rel.to_string_lossy().replace('\\', "/");
        let module = match rel.components().next() {
            Some(first) => first
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_owned(),
            None => continue,
        };
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(own) = rank(&module) else {
            unknown.insert(module.clone());
            continue;
        };
        let text = std::fs::read_to_string(file).expect("read source");
        // `src/a.rs` and `src/a/mod.rs` are module `a` (depth 1), `src/a/b.rs` is `a::b` (depth 2).
        let depth = rel.components().count() - usize::from(rel.ends_with("mod.rs"));
        // Names after `super::` that are no top-level module belong to an inline module (`tests`).
        let targets = crate_paths(&text).into_iter().chain(
            super_paths(&text, depth)
                .into_iter()
                .filter(|t| rank(t).is_some()),
        );
        for target in targets {
            if target == module {
                continue;
            }
            let Some(theirs) = rank(&target) else {
                unknown.insert(target);
                continue;
            };
            if theirs >= own && !ALLOWED.contains(&(rel_str.as_str(), target.as_str())) {
                upward.insert(format!("{rel_str}: {module} -> {target}"));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "modules missing from RANKS in tests/it/layers.rs: {unknown:?}"
    );
    assert!(
        upward.is_empty(),
        "imports against the dependency order (see src/lib.rs):\n{}",
        upward.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn the_scanner_reads_plain_grouped_and_super_paths_and_skips_comments() {
    assert_eq!(crate_paths("use crate::db::TenantTx;"), ["db"]);
    assert_eq!(
        crate_paths("use crate::{db, demo::x, identity::{a, b}, schema};"),
        ["db", "demo", "identity", "schema"]
    );
    assert_eq!(
        crate_paths("use crate::{\n    ai::Ai,\n    cli::{x, y},\n};"),
        ["ai", "cli"]
    );
    assert_eq!(
        crate_paths("let u = \"http://x\"; crate::ai::f(); // crate::cli"),
        ["ai"]
    );
    assert!(crate_paths("/// see [`crate::schema`]").is_empty());
    // From `src/billing/mod.rs` (depth 1) `super::ai` is the crate's `ai`; from
    // `src/ai/graphql.rs` (depth 2) it takes `super::super::`.
    assert_eq!(super_paths("use super::ai::Ai;", 1), ["ai"]);
    assert_eq!(super_paths("use super::super::cli::run;", 2), ["cli"]);
    assert!(super_paths("use super::repo;", 2).is_empty());
}

#[test]
fn the_type_graph_exception_reaches_only_ai_graphql() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for (file, target) in ALLOWED {
        let text = strip_comments(&std::fs::read_to_string(src.join(file)).expect("read source"));
        let prefix = format!("crate::{target}::");
        for (at, _) in text.match_indices(&prefix) {
            let next = ident_at(&text[at + prefix.len()..]);
            assert_eq!(
                next, "graphql",
                "{file} may name only {target}::graphql (its GraphQL types), not {target}::{next}"
            );
        }
    }
}
