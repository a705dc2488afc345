//! The dependency rule, kept by a test: the map in ARCHITECTURE.md ("Dependency direction") must
//! match what the code imports, and no module may import its way back to itself.
//!
//! A module here is a top-level module of the library (`src/<name>.rs` or `src/<name>/`). Its
//! imports are every `crate::` path in its code: comments, doc comments and test modules are left
//! out, since they make no dependency of the product. For each module the map names its layer (a
//! number: higher layers call lower ones) and the modules it uses; for each implementation of a
//! boundary (`store::shared`, ...) the modules that may name it. The test fails when the code and
//! the map disagree in either direction, when a module uses one of a higher layer, when the
//! imports form a cycle, and when an implementation is named where the map does not allow it.

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

/// Every path `code` names through `crate::`, as its segments: `use crate::{a, b::{c, d}}` is
/// `a`, `b::c` and `b::d`.
fn paths(code: &str) -> Vec<Vec<String>> {
    let chars: Vec<char> = code.chars().collect();
    let mut found = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        // `match_indices` counts bytes; the tree is parsed over chars from the same place.
        let start = code[..at].chars().count() + "crate::".len();
        found.extend(tree(&chars, start).0);
    }
    found
}

/// One use-tree starting at `i` (`a::b::C`, `a::{b, c::d}`, `a::b as e`): its paths, and where
/// it ends.
fn tree(chars: &[char], mut i: usize) -> (Vec<Vec<String>>, usize) {
    let skip = |i: &mut usize| {
        while chars.get(*i).is_some_and(|c| c.is_whitespace()) {
            *i += 1;
        }
    };
    let mut prefix: Vec<String> = Vec::new();
    loop {
        skip(&mut i);
        if chars.get(i) == Some(&'{') {
            i += 1;
            let mut found = Vec::new();
            loop {
                skip(&mut i);
                match chars.get(i) {
                    None => return (found, i),
                    Some('}') => return (found, i + 1),
                    Some(',') => i += 1,
                    Some(_) => {
                        let (inner, end) = tree(chars, i);
                        found.extend(
                            inner
                                .into_iter()
                                .map(|path| [prefix.clone(), path].concat()),
                        );
                        i = end;
                        // `as name` and anything else up to the next item.
                        while chars.get(i).is_some_and(|c| *c != ',' && *c != '}') {
                            i += 1;
                        }
                    }
                }
            }
        }
        let name: String = chars[i.min(chars.len())..]
            .iter()
            .take_while(|c| c.is_alphanumeric() || **c == '_' || **c == '*')
            .collect();
        i += name.chars().count();
        if name.is_empty() {
            return (vec![prefix], i);
        }
        prefix.push(name);
        if chars.get(i) == Some(&':') && chars.get(i + 1) == Some(&':') {
            i += 2;
        } else {
            return (vec![prefix], i);
        }
    }
}

/// The modules `code` names through `crate::`.
fn imports(code: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    paths(code)
        .into_iter()
        .filter_map(|path| path.into_iter().next())
        .filter(|name| known.contains(name))
        .collect()
}

/// What the code imports: per top-level module, the modules it uses, and the implementation
/// modules (`store::shared`, a boundary's submodule) it names, each with who names it.
struct Code {
    uses: Graph,
    implementations: Graph,
}

fn actual(implementations: &BTreeSet<String>) -> Code {
    let known = modules();
    let src = root().join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut code_of = Code {
        uses: Graph::new(),
        implementations: Graph::new(),
    };
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
        let code = code(&text);
        let uses = code_of.uses.entry(module.to_owned()).or_default();
        for name in imports(&code, &known) {
            if name != module {
                uses.insert(name);
            }
        }
        for path in paths(&code) {
            let [boundary, part, ..] = &path[..] else {
                continue;
            };
            let implementation = format!("{boundary}::{part}");
            if boundary != module && implementations.contains(&implementation) {
                code_of
                    .implementations
                    .entry(implementation)
                    .or_default()
                    .insert(module.to_owned());
            }
        }
    }
    code_of
}

/// The map in ARCHITECTURE.md: module → (layer, uses), and implementation → who may name it.
struct Map {
    modules: BTreeMap<String, (u32, BTreeSet<String>)>,
    implementations: Graph,
}

fn declared() -> Map {
    let doc = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with("Dependency direction"))
        .expect("ARCHITECTURE.md has a \"## Dependency direction\" section");
    let names = |cell: &str| -> BTreeSet<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    };
    let mut map = Map {
        modules: BTreeMap::new(),
        implementations: Graph::new(),
    };
    for line in section.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        match cells[..] {
            // | layer | module | uses |
            [layer, module, uses] => {
                let Some(layer) = layer
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse::<u32>().ok())
                else {
                    continue; // the header and its rule
                };
                for module in names(module) {
                    map.modules.insert(module, (layer, names(uses)));
                }
            }
            // | implementation | named by |
            [implementation, named_by] if implementation.contains("::") => {
                for implementation in names(implementation) {
                    map.implementations.insert(implementation, names(named_by));
                }
            }
            _ => {}
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
    let map = declared();
    let code = actual(&map.implementations.keys().cloned().collect());
    let mut problems = String::new();

    for (module, uses) in &code.uses {
        let Some((layer, said)) = map.modules.get(module) else {
            let _ = writeln!(
                problems,
                "`{module}` is missing from the map (uses {})",
                list(uses)
            );
            continue;
        };
        let extra: BTreeSet<_> = uses.difference(said).cloned().collect();
        let stale: BTreeSet<_> = said.difference(uses).cloned().collect();
        if !extra.is_empty() {
            let _ = writeln!(
                problems,
                "`{module}` uses {} but the map does not say so",
                list(&extra)
            );
        }
        if !stale.is_empty() {
            let _ = writeln!(
                problems,
                "the map says `{module}` uses {}, the code does not",
                list(&stale)
            );
        }
        for used in uses {
            if let Some((below, _)) = map.modules.get(used)
                && below > layer
            {
                let _ = writeln!(
                    problems,
                    "`{module}` (layer {layer}) uses `{used}` of a higher layer ({below})"
                );
            }
        }
    }
    for module in map.modules.keys() {
        if !code.uses.contains_key(module) {
            let _ = writeln!(
                problems,
                "the map names `{module}`, which is no module of the crate"
            );
        }
    }
    for cycle in cycles(&code.uses) {
        let _ = writeln!(problems, "cycle between {}", cycle.join(", "));
    }
    for (implementation, allowed) in &map.implementations {
        let path = implementation.replace("::", "/");
        let src = root().join("src");
        if !src.join(format!("{path}.rs")).exists() && !src.join(&path).is_dir() {
            let _ = writeln!(
                problems,
                "the map names `{implementation}`, which has no file"
            );
        }
        let named_by = code
            .implementations
            .get(implementation)
            .cloned()
            .unwrap_or_default();
        let extra: BTreeSet<_> = named_by.difference(allowed).cloned().collect();
        let stale: BTreeSet<_> = allowed.difference(&named_by).cloned().collect();
        if !extra.is_empty() {
            let _ = writeln!(
                problems,
                "`{implementation}` is named by {}: only {} may name it",
                list(&extra),
                list(allowed)
            );
        }
        if !stale.is_empty() {
            let _ = writeln!(
                problems,
                "the map says {} names `{implementation}`, the code does not",
                list(&stale)
            );
        }
    }

    if !problems.is_empty() {
        let mut table = String::new();
        for (module, uses) in &code.uses {
            let layer = map.modules.get(module).map_or(0, |(layer, _)| *layer);
            let _ = writeln!(table, "| {layer} | `{module}` | {} |", list(uses));
        }
        for (implementation, named_by) in &code.implementations {
            let _ = writeln!(table, "| `{implementation}` | {} |", list(named_by));
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
use crate::{b::{One, Two as Three}, c};
fn f() { crate::d::call(); } // not crate::e either
#[cfg(test)]
mod tests {
    use crate::e;
}
";
    let found = imports(&code(text), &known);
    assert_eq!(found, ["a", "b", "c", "d"].map(str::to_owned).into());
    let paths: Vec<String> = paths(&code(text)).iter().map(|p| p.join("::")).collect();
    assert_eq!(paths, ["a::Thing", "b::One", "b::Two", "c", "d::call"]);
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

/// The modules allowed `unsafe`, each for one system call no crate binds safely (ARCHITECTURE.md,
/// `heap` and `sched`).
const UNSAFE_MODULES: [&str; 2] = ["src/heap.rs", "src/sched.rs"];

/// The crate denies `unsafe` (`lib.rs`) with two exceptions, the allocator call in `heap.rs` and
/// the scheduler call in `sched.rs`: any other use, or another `allow` of it, fails here (in the
/// same files the map reads, unit tests inside them included).
#[test]
fn unsafe_code_lives_only_in_the_heap_and_sched_modules() {
    let mut files = Vec::new();
    sources(&root().join("src"), &mut files);
    let markers = [
        "unsafe {",
        "unsafe fn",
        "unsafe impl",
        "unsafe extern",
        "allow(unsafe_code)",
    ];
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("a source file");
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .filter(|l| markers.iter().any(|m| l.contains(m)))
            .collect();
        if !lines.is_empty() && !UNSAFE_MODULES.iter().any(|m| file.ends_with(m)) {
            found.push(format!("{}: {}", file.display(), lines.join(" | ")));
        }
    }
    assert!(
        found.is_empty(),
        "unsafe outside {UNSAFE_MODULES:?}:\n{}",
        found.join("\n")
    );
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).expect("src/lib.rs");
    assert!(
        lib.contains("#![deny(unsafe_code)]"),
        "lib.rs denies unsafe"
    );
    for module in UNSAFE_MODULES {
        let text = std::fs::read_to_string(root().join(module)).expect(module);
        assert_eq!(
            text.matches("allow(unsafe_code)").count(),
            1,
            "one exception in {module}"
        );
    }
}
