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
    ("config", 1),
    ("telemetry", 2),
    ("authz", 2),
    ("db", 3),
    ("metrics", 4),
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
    // Schema roots and the executor, then the entry points.
    ("schema", 40),
    ("http", 41),
    ("app", 42),
    ("demo", 43),
    ("cli", 44),
];

/// Edges against the order that are allowed, by file and target: the GraphQL type graph only
/// (`Ticket.analysis`, `Ticket.analyses` and `Ticket.similarTickets` return `ai` types).
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

/// The top-level modules a line of code names through `crate::` (comments are ignored).
fn crate_paths(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or_default();
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::c, d::{e, f}}`: the names at the group's first level.
            let mut depth = 0;
            let mut start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && (c.is_alphanumeric() || c == '_') => {
                        let name: String = group[i..]
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        found.push(name);
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.push(name);
        }
    }
    found
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
        for (n, line) in text.lines().enumerate() {
            for target in crate_paths(line) {
                if target == module {
                    continue;
                }
                let Some(theirs) = rank(&target) else {
                    unknown.insert(target);
                    continue;
                };
                if theirs >= own && !ALLOWED.contains(&(rel_str.as_str(), target.as_str())) {
                    upward.insert(format!("{rel_str}:{}: {module} -> {target}", n + 1));
                }
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
fn the_scanner_reads_plain_and_grouped_paths_and_skips_comments() {
    assert_eq!(crate_paths("use crate::db::TenantTx;"), ["db"]);
    assert_eq!(
        crate_paths("use crate::{db, demo::x, identity::{a, b}, schema};"),
        ["db", "demo", "identity", "schema"]
    );
    assert_eq!(crate_paths("let x = crate::ai::f(); // crate::cli"), ["ai"]);
    assert!(crate_paths("/// see [`crate::schema`]").is_empty());
}
