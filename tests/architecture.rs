//! The dependency rule, kept by a test: the module map in ARCHITECTURE.md ("Dependency
//! direction") must match what the code imports, and no module may import its way back to
//! itself.
//!
//! A module here is a top-level module of the library (`src/<name>.rs` or `src/<name>/`). Its
//! imports are every `crate::<name>` path in its code: comments, doc comments and test modules
//! are left out, since they make no dependency of the product. For each module the map names
//! its layer (a number: higher layers call lower ones) and the modules it uses; the test fails
//! when the code and the map disagree in either direction, when a module uses one of a higher
//! layer, and when the imports form a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The library's top-level modules, as `src/lib.rs` declares them.
fn modules() -> BTreeSet<String> {
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).expect("src/lib.rs");
    lib.lines()
        .filter_map(|line| {
            let line = line.trim();
            let rest = line
                .strip_prefix("pub mod ")
                .or_else(|| line.strip_prefix("mod "))?;
            Some(rest.trim_end_matches(';').trim().to_owned())
        })
        .collect()
}

/// Every `.rs` file under `dir`, test-only files left out.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "tests") {
                sources(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs")
            && path.file_name().is_some_and(|n| n != "tests.rs")
        {
            out.push(path);
        }
    }
}

/// The code of a file: comments and `#[cfg(test)]` items removed.
fn code(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") {
            continue;
        }
        if trimmed.starts_with("#[cfg(test)]") {
            // Skip the item that follows: a `mod x;` line, or a block to its closing brace.
            let mut depth = 0i32;
            let mut opened = false;
            for next in lines.by_ref() {
                let next = next.split("//").next().unwrap_or_default();
                depth += next.matches('{').count() as i32 - next.matches('}').count() as i32;
                opened |= next.contains('{');
                if (opened && depth <= 0) || (!opened && next.trim_end().ends_with(';')) {
                    break;
                }
            }
            continue;
        }
        // A trailing comment (`code // note`) is not code either; a `//` inside a string is
        // rare enough in `use` lines to ignore.
        out.push_str(line.split(" //").next().unwrap_or_default());
        out.push('\n');
    }
    out
}

/// The modules `code` names through `crate::`, including inside `use crate::{a, b::c}` groups.
fn imports(code: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names of the group: each item's first path segment at depth 0.
            let mut depth = 0;
            let mut item_start = true;
            let mut name = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && (c.is_alphanumeric() || c == '_') => name.push(c),
                    _ if item_start && !name.is_empty() => {
                        found.insert(std::mem::take(&mut name));
                        item_start = false;
                    }
                    _ => {}
                }
            }
            if !name.is_empty() {
                found.insert(name);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.insert(name);
        }
    }
    found.retain(|name| known.contains(name));
    found
}

/// What the code imports, per top-level module.
fn actual() -> Graph {
    let known = modules();
    let src = root().join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut graph = Graph::new();
    for file in files {
        let relative = file.strip_prefix(&src).expect("under src/");
        let first = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .expect("a file name");
        let module = first.trim_end_matches(".rs");
        if !known.contains(module) {
            continue; // lib.rs, main.rs
        }
        let text = std::fs::read_to_string(&file).expect("readable source");
        let uses = graph.entry(module.to_owned()).or_default();
        for name in imports(&code(&text), &known) {
            if name != module {
                uses.insert(name);
            }
        }
    }
    graph
}

/// The map in ARCHITECTURE.md: module → (layer, uses).
fn declared() -> BTreeMap<String, (u32, BTreeSet<String>)> {
    let doc = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with("Dependency direction"))
        .expect("ARCHITECTURE.md has a \"## Dependency direction\" section");
    let mut map = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let [layer, module, uses] = cells[..] else {
            continue;
        };
        let Some(layer) = layer
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue; // the header and its rule
        };
        let names = |cell: &str| -> Vec<String> {
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect()
        };
        for module in names(module) {
            map.insert(module, (layer, names(uses).into_iter().collect()));
        }
    }
    map
}

/// The modules that import their way back to themselves (Tarjan's strongly connected components).
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct Walk<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        found: Vec<Vec<String>>,
    }
    impl<'g> Walk<'g> {
        fn visit(&mut self, v: &'g str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            for w in self.graph.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.stack.contains(&w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    component.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.found
}

fn list(names: &BTreeSet<String>) -> String {
    if names.is_empty() {
        return "—".to_owned();
    }
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn the_module_map_matches_the_code_and_has_no_cycle() {
    let actual = actual();
    let declared = declared();
    let mut problems = String::new();

    for (module, uses) in &actual {
        let Some((layer, said)) = declared.get(module) else {
            let _ = writeln!(problems, "`{module}` is missing from the map (uses {})", list(uses));
            continue;
        };
        let extra: BTreeSet<_> = uses.difference(said).cloned().collect();
        let stale: BTreeSet<_> = said.difference(uses).cloned().collect();
        if !extra.is_empty() {
            let _ = writeln!(problems, "`{module}` uses {} but the map does not say so", list(&extra));
        }
        if !stale.is_empty() {
            let _ = writeln!(problems, "the map says `{module}` uses {}, the code does not", list(&stale));
        }
        for used in uses {
            if let Some((below, _)) = declared.get(used) {
                if below > layer {
                    let _ = writeln!(
                        problems,
                        "`{module}` (layer {layer}) uses `{used}` of a higher layer ({below})"
                    );
                }
            }
        }
    }
    for module in declared.keys() {
        if !actual.contains_key(module) {
            let _ = writeln!(problems, "the map names `{module}`, which is no module of the crate");
        }
    }
    for cycle in cycles(&actual) {
        let _ = writeln!(problems, "cycle between {}", cycle.join(", "));
    }

    if !problems.is_empty() {
        let mut table = String::new();
        for (module, uses) in &actual {
            let layer = declared.get(module).map_or(0, |(layer, _)| *layer);
            let _ = writeln!(table, "| {layer} | `{module}` | {} |", list(uses));
        }
        panic!(
            "ARCHITECTURE.md's dependency map and the code disagree:\n{problems}\n\
             The imports as the code has them:\n{table}"
        );
    }
}

#[test]
fn imports_are_read_from_code_only() {
    let known: BTreeSet<String> = ["a", "b", "c", "d", "e"].map(str::to_owned).into();
    let text = "\
//! Uses [`crate::e`] in a doc comment only.
use crate::a::Thing;
use crate::{b::{One, Two}, c};
fn f() { crate::d::call(); } // not crate::e either
#[cfg(test)]
mod tests {
    use crate::e;
}
";
    let found = imports(&code(text), &known);
    assert_eq!(found, ["a", "b", "c", "d"].map(str::to_owned).into());
}

#[test]
fn a_cycle_is_found() {
    let mut graph = Graph::new();
    graph.insert("a".into(), ["b".to_owned()].into());
    graph.insert("b".into(), ["c".to_owned()].into());
    graph.insert("c".into(), ["a".to_owned()].into());
    graph.insert("d".into(), ["a".to_owned()].into());
    assert_eq!(cycles(&graph), vec![vec!["a", "b", "c"]]);
}
