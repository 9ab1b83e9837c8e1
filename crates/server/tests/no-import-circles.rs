//! The server's modules import each other in one direction only: a module that needs another
//! never is needed by it, directly or through others (the call path used to run
//! app → ivr → config → app).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module → the modules it names as `crate::name`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph = BTreeMap::new();
    for e in std::fs::read_dir(&src).unwrap().flatten() {
        let path = e.path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.extension().is_none_or(|x| x != "rs") || name == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut used = BTreeSet::new();
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + "crate::".len()..];
            let names: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => group
                    .split('}')
                    .next()
                    .unwrap_or("")
                    .split(',')
                    .map(|n| n.trim().split("::").next().unwrap_or(""))
                    .collect(),
                None => vec![
                    rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .next()
                        .unwrap_or(""),
                ],
            };
            for n in names {
                if !n.is_empty()
                    && n != name
                    && n.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                {
                    used.insert(n.to_owned());
                }
            }
        }
        graph.insert(name, used);
    }
    graph
}

#[test]
fn the_servers_modules_import_each_other_without_a_circle() {
    let graph = imports();
    assert!(graph.contains_key("media") && graph["media"].contains("app"));
    // Depth-first search for a back edge.
    fn visit<'a>(
        g: &'a BTreeMap<String, BTreeSet<String>>,
        n: &'a str,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if done.contains(n) {
            return;
        }
        if let Some(at) = path.iter().position(|p| *p == n) {
            panic!("import circle: {} -> {n}", path[at..].join(" -> "));
        }
        path.push(n);
        for m in g.get(n).into_iter().flatten() {
            visit(g, m, path, done);
        }
        path.pop();
        done.insert(n);
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        visit(&graph, n, &mut Vec::new(), &mut done);
    }
}
