//! The layering is checked, not only written down: every `crate::` edge between top-level
//! modules in `src/` must be allowed by the table in `docs/ARCHITECTURE.md` (between the
//! `layering:begin` and `layering:end` markers); the table must cover every module and be
//! free of cycles (so lower layers never import upper ones); and the readers (`rtsp`,
//! `record`, `http`, `live`, `snapshot`) never import each other, whatever the table says.
//!
//! Test code (`#[cfg(test)]` modules, `src/test_util/`) is not counted: a test may use
//! another module's fixtures. `main.rs` and `lib.rs` are the crate's roots, not modules.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // test code

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules that read a path's hub and serve or store what they read.
const READERS: [&str; 5] = ["rtsp", "record", "http", "live", "snapshot"];

type Graph = BTreeMap<String, BTreeSet<String>>;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The allow-list: `module: dependency dependency ...` lines between the markers.
fn allowed(doc: &str) -> Graph {
    let begin = doc
        .find("<!-- layering:begin -->")
        .expect("docs/ARCHITECTURE.md has no <!-- layering:begin --> marker");
    let end = doc
        .find("<!-- layering:end -->")
        .expect("docs/ARCHITECTURE.md has no <!-- layering:end --> marker");
    let mut out = Graph::new();
    for line in doc[begin..end].lines() {
        let line = line.trim();
        let Some((module, deps)) = line.split_once(':') else {
            continue;
        };
        if module.is_empty()
            || !module
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            continue;
        }
        let deps: BTreeSet<String> = deps
            .split_whitespace()
            .filter(|d| *d != "-")
            .map(str::to_string)
            .collect();
        assert!(
            out.insert(module.to_string(), deps).is_none(),
            "`{module}` is listed twice in the allow-list"
        );
    }
    out
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The text of a file without its `#[cfg(test)]` modules (which run to the end of the
/// file by this crate's convention; a test module elsewhere is a failure here).
fn production_part(path: &Path, text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]" {
            let next = lines.peek().map(|l| l.trim()).unwrap_or("");
            if next.starts_with("mod ")
                || next.starts_with("pub(crate) mod ")
                || next.starts_with("pub mod ")
            {
                let rest: Vec<&str> = lines.collect();
                let closing = rest.iter().rposition(|l| *l == "}").unwrap_or(0);
                assert!(
                    rest[closing + 1..].iter().all(|l| l.trim().is_empty()),
                    "{}: a #[cfg(test)] module must be the last item of its file",
                    path.display()
                );
                break;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The top-level modules a text names through `crate::` (also in `crate::{a, b::c}`).
fn crate_edges(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        let before_ok =
            i == 0 || !rest[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
        if before_ok {
            if let Some(group) = after.strip_prefix('{') {
                let close = group.find('}').unwrap_or(group.len());
                for item in group[..close].split(',') {
                    let name = ident(item.trim());
                    if !name.is_empty() {
                        out.insert(name);
                    }
                }
            } else {
                let name = ident(after);
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        }
        rest = after;
    }
    out
}

/// The module graph of `src/` as the code has it.
fn actual() -> (Graph, BTreeMap<(String, String), String>) {
    let src = root().join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut graph = Graph::new();
    let mut witness = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if matches!(top.as_str(), "main" | "lib" | "test_util") {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let deps = graph.entry(top.clone()).or_default();
        for dep in crate_edges(&production_part(&f, &text)) {
            if dep != top {
                witness
                    .entry((top.clone(), dep.clone()))
                    .or_insert_with(|| rel.display().to_string());
                deps.insert(dep);
            }
        }
    }
    (graph, witness)
}

/// A cycle in `g`, if any, as the modules along it.
fn cycle(g: &Graph) -> Option<Vec<String>> {
    fn visit(
        g: &Graph,
        n: &str,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == n) {
            let mut c = stack[i..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_string());
        for d in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(g, d, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in g.keys() {
        if let Some(c) = visit(g, n, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn every_module_edge_is_allowed_by_the_architecture_doc() {
    let doc = std::fs::read_to_string(root().join("docs/ARCHITECTURE.md")).unwrap();
    let allowed = allowed(&doc);
    let (actual, witness) = actual();
    let mut problems = Vec::new();
    for module in actual.keys() {
        if !allowed.contains_key(module) {
            problems.push(format!(
                "module `{module}` is not in the allow-list: add its line"
            ));
        }
    }
    for (module, deps) in &actual {
        let ok = allowed.get(module).cloned().unwrap_or_default();
        for dep in deps.difference(&ok) {
            let file = &witness[&(module.clone(), dep.clone())];
            problems.push(format!(
                "`{module}` imports `{dep}` ({file}), which the allow-list does not permit"
            ));
        }
    }
    for (module, deps) in &allowed {
        for dep in deps {
            if !allowed.contains_key(dep) {
                problems.push(format!(
                    "`{module}` may import `{dep}`, which is not a module"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "layering:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_allowed_layers_have_no_cycle_and_readers_stay_apart() {
    let doc = std::fs::read_to_string(root().join("docs/ARCHITECTURE.md")).unwrap();
    let allowed = allowed(&doc);
    assert!(allowed.len() > 10, "the allow-list was not found whole");
    if let Some(c) = cycle(&allowed) {
        panic!("the allow-list has a cycle: {}", c.join(" -> "));
    }
    let (actual, _) = actual();
    for graph in [&allowed, &actual] {
        for r in READERS {
            for other in READERS.iter().filter(|o| **o != r) {
                assert!(
                    !graph.get(r).is_some_and(|d| d.contains(*other)),
                    "reader `{r}` imports reader `{other}`: they meet at hub, media, status, config"
                );
            }
        }
    }
}

#[test]
fn the_checker_sees_what_it_must() {
    let edges = crate_edges(
        "use crate::hub::MediaPath;\nuse crate::{config::Config, status};\nlet x = crate::media::CLOCK_RATE;\nnotcrate::fake::x;",
    );
    assert_eq!(
        edges.into_iter().collect::<Vec<_>>(),
        ["config", "hub", "media", "status"]
    );
    let text = "use crate::a::X;\n#[cfg(test)]\nmod tests {\n    use crate::b::Y;\n}\n";
    assert_eq!(
        crate_edges(&production_part(Path::new("x.rs"), text))
            .into_iter()
            .collect::<Vec<_>>(),
        ["a"]
    );
    let mut g = Graph::new();
    g.insert("a".into(), ["b".to_string()].into());
    g.insert("b".into(), ["a".to_string()].into());
    assert!(cycle(&g).is_some());
    g.insert("b".into(), BTreeSet::new());
    assert!(cycle(&g).is_none());
}
