//! The layering rule of ARCHITECTURE.md, checked over the source: every `crate::`, `super::`,
//! `self::` and child-module path in `src/**/*.rs` is resolved to the file that defines it, and
//! (a) the top-level modules only import downward (or within their layer) in `LAYERS` and form no
//! circle, (b) no files import each other in a circle.
//!
//! Test code (`#[cfg(test)]` items and the files they declare) may reach anywhere and is skipped.
//! A parent that only re-exports (`pub use child::X`) is a facade: `super::X` resolves through it
//! to the child that defines `X`, so facades make no false circles. Std only, no `syn`: the
//! source is stripped of comments and literals and read as a stream of tokens, which is enough
//! for paths.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The top-level modules of `src/`, lowest layer first. A module may import from its own layer
/// and the layers before it, never from a later one.
const LAYERS: &[&[&str]] = &[
    &["env", "numbers", "rng", "threads", "runlog", "results", "store", "sufficient_table", "stale", "cron"],
    &["stats"],
    &["config"],
    &["source"],
    &["aggregate"],
    &["sql"],
    &["analyze"],
    &["decide"],
    &["render"],
    &["export"],
    &["pipeline"],
    &["outcome"],
    &["ledger"],
    &["deliver"],
    &["notice"],
    &["recorded"],
    &["schedule"],
    &["simulate", "generate"],
    &["cli"],
    &["app"],
];

/// A module path from the crate root: `["schedule", "service"]`.
type ModPath = Vec<String>;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    PathSep,
    Punct(char),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

/// One file, read.
#[derive(Debug, Default)]
struct Parsed {
    /// Child modules declared with `mod x;` outside test code.
    children: BTreeSet<String>,
    /// Child modules declared under `#[cfg(test)]`: their files are test code.
    test_children: BTreeSet<String>,
    /// Paths the non-test code names, with their line: `["crate", "a", "B"]`, `["super", "X"]`.
    paths: Vec<(Vec<String>, usize)>,
    /// `pub use` re-exports: exported name → the path it stands for; `*` for globs.
    reexports: Vec<(String, Vec<String>)>,
    /// Names of items this file defines (struct, enum, fn, trait, type, const, static, mod).
    defines: BTreeSet<String>,
}

/// Replaces comments, string, byte-string, raw-string and char literals by spaces, keeping the
/// line breaks so line numbers stay right.
fn strip(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let blank = |out: &mut String, ch: char| out.push(if ch == '\n' { '\n' } else { ' ' });
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        let next = c.get(i + 1).copied();
        if ch == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && next == Some('*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
        } else if (ch == 'r' || (ch == 'b' && next == Some('r')))
            && !prev_is_ident(&c, i)
            && raw_string_start(&c, i + usize::from(ch == 'b')).is_some()
        {
            let start = i + usize::from(ch == 'b');
            let hashes = raw_string_start(&c, start).unwrap_or(0);
            // Skip `r`, the hashes and the opening quote, then up to `"` and as many hashes.
            i = start + 1 + hashes + 1;
            out.push(' ');
            while i < c.len() {
                if c[i] == '"' && (0..hashes).all(|h| c.get(i + 1 + h) == Some(&'#')) {
                    i += 1 + hashes;
                    break;
                }
                blank(&mut out, c[i]);
                i += 1;
            }
        } else if ch == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    blank(&mut out, c[i]);
                    i += 1;
                }
                if i < c.len() {
                    blank(&mut out, c[i]);
                }
                i += 1;
            }
            i += 1;
            out.push(' ');
        } else if ch == '\'' {
            // A char literal (`'a'`, `'\n'`, `'\u{1F600}'`) or a lifetime (`'a`).
            if next == Some('\\') {
                i += 2;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if c.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
            out.push(' ');
        } else {
            out.push(ch);
            i += 1;
        }
    }
    out
}

fn prev_is_ident(c: &[char], i: usize) -> bool {
    i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_')
}

/// At an `r`: the number of hashes of a raw string starting here (`r"`, `r#"`), if it is one.
fn raw_string_start(c: &[char], i: usize) -> Option<usize> {
    if c.get(i) != Some(&'r') {
        return None;
    }
    let mut hashes = 0;
    while c.get(i + 1 + hashes) == Some(&'#') {
        hashes += 1;
    }
    (c.get(i + 1 + hashes) == Some(&'"')).then_some(hashes)
}

fn tokenize(stripped: &str) -> Vec<Token> {
    let c: Vec<char> = stripped.chars().collect();
    let mut toks = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch.is_alphanumeric() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            toks.push(Token { tok: Tok::Ident(word), line });
        } else if ch == ':' && c.get(i + 1) == Some(&':') {
            toks.push(Token { tok: Tok::PathSep, line });
            i += 2;
        } else {
            toks.push(Token { tok: Tok::Punct(ch), line });
            i += 1;
        }
    }
    toks
}

fn ident(t: Option<&Token>) -> Option<&str> {
    match t.map(|t| &t.tok) {
        Some(Tok::Ident(s)) => Some(s),
        _ => None,
    }
}

fn punct(t: Option<&Token>, p: char) -> bool {
    matches!(t.map(|t| &t.tok), Some(Tok::Punct(c)) if *c == p)
}

fn path_sep(t: Option<&Token>) -> bool {
    matches!(t.map(|t| &t.tok), Some(Tok::PathSep))
}

/// Index just past the item starting at `i`: its `;` at depth 0, or its closing `}`.
fn skip_item(toks: &[Token], mut i: usize) -> usize {
    let mut depth = 0i32;
    while i < toks.len() {
        match toks[i].tok {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']') => depth -= 1,
            Tok::Punct('}') => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            Tok::Punct(';') if depth == 0 => return i + 1,
            _ => {}
        }
        i += 1;
    }
    i
}

/// Index just past an attribute `#[...]` or `#![...]` starting at `i`.
fn skip_attr(toks: &[Token], i: usize) -> usize {
    let mut j = i + 1;
    if punct(toks.get(j), '!') {
        j += 1;
    }
    let mut depth = 0;
    while j < toks.len() {
        match toks[j].tok {
            Tok::Punct('[') => depth += 1,
            Tok::Punct(']') => {
                depth -= 1;
                if depth == 0 {
                    return j + 1;
                }
            }
            _ => {}
        }
        j += 1;
    }
    j
}

/// Whether the attribute at `i` is exactly `#[cfg(test)]`.
fn is_cfg_test(toks: &[Token], i: usize) -> bool {
    punct(toks.get(i), '#')
        && punct(toks.get(i + 1), '[')
        && ident(toks.get(i + 2)) == Some("cfg")
        && punct(toks.get(i + 3), '(')
        && ident(toks.get(i + 4)) == Some("test")
        && punct(toks.get(i + 5), ')')
        && punct(toks.get(i + 6), ']')
}

/// Reads a use tree at `i` (after `use` or after a `::` before `{`): pushes each full path with
/// the name it is bound to (`as` or the last segment; `*` for globs). Returns the index past it.
fn use_tree(toks: &[Token], mut i: usize, prefix: &[String], out: &mut Vec<(Vec<String>, String, usize)>) -> usize {
    let mut path = prefix.to_vec();
    let line = toks.get(i).map_or(0, |t| t.line);
    loop {
        match toks.get(i).map(|t| &t.tok) {
            Some(Tok::Ident(s)) => {
                path.push(s.clone());
                i += 1;
                if path_sep(toks.get(i)) {
                    i += 1;
                    continue;
                }
                if path.len() > 1 && path.last().map(String::as_str) == Some("self") {
                    path.pop(); // `use a::{self, …}` binds `a`
                }
                let mut bound = path.last().cloned().unwrap_or_default();
                if ident(toks.get(i)) == Some("as") {
                    bound = ident(toks.get(i + 1)).unwrap_or("_").to_string();
                    i += 2;
                }
                out.push((path, bound, line));
                return i;
            }
            Some(Tok::Punct('*')) => {
                out.push((path, "*".to_string(), line));
                return i + 1;
            }
            Some(Tok::Punct('{')) => {
                i += 1;
                loop {
                    if punct(toks.get(i), '}') {
                        return i + 1;
                    }
                    if i >= toks.len() {
                        return i;
                    }
                    i = use_tree(toks, i, &path, out);
                    if punct(toks.get(i), ',') {
                        i += 1;
                    }
                }
            }
            Some(Tok::PathSep) => i += 1, // `use ::std::...`
            _ => return i,
        }
    }
}

const DEFINING: &[&str] = &["struct", "enum", "fn", "trait", "type", "const", "static", "union", "mod"];

fn parse(src: &str) -> Parsed {
    let toks = tokenize(&strip(src));
    let mut p = Parsed::default();
    // Pass 1: module declarations, definitions and test items to skip.
    let mut live = vec![true; toks.len()];
    let mut i = 0;
    while i < toks.len() {
        if is_cfg_test(&toks, i) {
            let mut j = skip_attr(&toks, i);
            while punct(toks.get(j), '#') {
                j = skip_attr(&toks, j);
            }
            let mut k = j;
            while matches!(ident(toks.get(k)), Some("pub" | "crate"))
                || punct(toks.get(k), '(')
                || punct(toks.get(k), ')')
            {
                k += 1;
            }
            if ident(toks.get(k)) == Some("mod")
                && punct(toks.get(k + 2), ';')
                && let Some(name) = ident(toks.get(k + 1))
            {
                p.test_children.insert(name.to_string());
            }
            let end = skip_item(&toks, j);
            live[i..end].iter_mut().for_each(|l| *l = false);
            i = end;
            continue;
        }
        if let Some(kw) = ident(toks.get(i))
            && DEFINING.contains(&kw)
            && !path_sep(toks.get(i.wrapping_sub(1)).filter(|_| i > 0))
            && let Some(name) = ident(toks.get(i + 1))
        {
            p.defines.insert(name.to_string());
            if kw == "mod" && punct(toks.get(i + 2), ';') {
                p.children.insert(name.to_string());
            }
        }
        i += 1;
    }
    let toks: Vec<Token> = toks.into_iter().zip(live).filter(|(_, l)| *l).map(|(t, _)| t).collect();
    // Pass 2: paths.
    let is_root = |s: &str, p: &Parsed| matches!(s, "crate" | "super" | "self") || p.children.contains(s);
    // Names a `use` binds to a crate path (`use crate::schedule::{self}` then `schedule::x`).
    let mut aliases: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for i in 0..toks.len() {
        if ident(toks.get(i)) == Some("use") {
            let mut uses = Vec::new();
            use_tree(&toks, i + 1, &[], &mut uses);
            for (path, bound, _) in uses {
                if bound != "*" && path.first().is_some_and(|s| is_root(s, &p)) {
                    aliases.insert(bound, path);
                }
            }
        }
    }
    let mut i = 0;
    while i < toks.len() {
        if ident(toks.get(i)) == Some("use") {
            let public = i > 0 && (ident(toks.get(i - 1)) == Some("pub") || punct(toks.get(i - 1), ')'));
            let mut uses = Vec::new();
            let end = use_tree(&toks, i + 1, &[], &mut uses);
            for (path, bound, line) in uses {
                if path.first().is_some_and(|s| is_root(s, &p)) {
                    if public {
                        p.reexports.push((bound, path.clone()));
                    }
                    p.paths.push((path, line));
                }
            }
            i = end;
            continue;
        }
        if let Some(s) = ident(toks.get(i)) {
            let after_sep = i > 0 && path_sep(toks.get(i - 1));
            let alias = aliases.get(s).filter(|_| !is_root(s, &p));
            if !after_sep && (is_root(s, &p) || alias.is_some()) && path_sep(toks.get(i + 1)) {
                let line = toks[i].line;
                let mut path = alias.cloned().unwrap_or_else(|| vec![s.to_string()]);
                let mut j = i + 1;
                while path_sep(toks.get(j)) {
                    if punct(toks.get(j + 1), '{') {
                        // `crate::a::{B, C}` outside a `use` (macro input): read it as a tree.
                        let mut uses = Vec::new();
                        j = use_tree(&toks, j + 1, &path, &mut uses);
                        p.paths.extend(uses.into_iter().map(|(q, _, _)| (q, line)));
                        path.clear();
                        break;
                    }
                    match ident(toks.get(j + 1)) {
                        Some(seg) => {
                            path.push(seg.to_string());
                            j += 2;
                        }
                        None => {
                            j += 1;
                            break;
                        }
                    }
                }
                if !path.is_empty() {
                    p.paths.push((path, line));
                }
                i = j;
                continue;
            }
        }
        i += 1;
    }
    p
}

/// The crate's module tree: module path → its file and what the file says.
struct Crate {
    files: BTreeMap<ModPath, (PathBuf, Parsed)>,
}

impl Crate {
    fn from_sources(sources: BTreeMap<ModPath, (PathBuf, String)>) -> Crate {
        let mut files: BTreeMap<ModPath, (PathBuf, Parsed)> =
            sources.into_iter().map(|(m, (f, s))| (m, (f, parse(&s)))).collect();
        // Files declared only under `#[cfg(test)]` (and everything below them) are test code.
        let test_roots: Vec<ModPath> = files
            .iter()
            .flat_map(|(m, (_, p))| {
                p.test_children.iter().map(move |c| {
                    let mut child = m.clone();
                    child.push(c.clone());
                    child
                })
            })
            .collect();
        files.retain(|m, _| !test_roots.iter().any(|t| m.starts_with(t)));
        Crate { files }
    }

    fn read(src_dir: &Path) -> Crate {
        let mut sources = BTreeMap::new();
        let mut stack = vec![src_dir.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("read src dir") {
                let path = entry.expect("dir entry").path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "rs") {
                    continue;
                }
                let rel = path.strip_prefix(src_dir).expect("under src");
                let mut module: ModPath =
                    rel.with_extension("").iter().map(|s| s.to_string_lossy().into_owned()).collect();
                match module.last().map(String::as_str) {
                    Some("main") if module.len() == 1 => continue, // the binary, a crate of its own
                    Some("lib") if module.len() == 1 => module.clear(),
                    Some("mod") => {
                        module.pop();
                    }
                    _ => {}
                }
                let text = std::fs::read_to_string(&path).expect("read source");
                sources.insert(module, (PathBuf::from("src").join(rel), text));
            }
        }
        Crate::from_sources(sources)
    }

    /// Makes a path absolute from module `from`: `super::X` in `a::b` → `a::X`.
    fn absolute(&self, from: &ModPath, path: &[String]) -> Option<Vec<String>> {
        let mut base = from.clone();
        let mut rest = path;
        match rest.first().map(String::as_str) {
            Some("crate") => {
                base.clear();
                rest = &rest[1..];
            }
            Some("self") => rest = &rest[1..],
            Some("super") => {
                while rest.first().map(String::as_str) == Some("super") {
                    base.pop()?;
                    rest = &rest[1..];
                }
            }
            _ => {}
        }
        while rest.first().map(String::as_str) == Some("self") {
            rest = &rest[1..];
        }
        base.extend(rest.iter().cloned());
        Some(base)
    }

    /// The module whose file defines what an absolute path names: the deepest existing module,
    /// then through that module's `pub use` re-exports of the next segment.
    fn resolve(&self, abs: &[String], hops: usize) -> Option<ModPath> {
        let mut module: ModPath = Vec::new();
        let mut k = 0;
        while k < abs.len() {
            let mut next = module.clone();
            next.push(abs[k].clone());
            if !self.files.contains_key(&next) {
                break;
            }
            module = next;
            k += 1;
        }
        if !self.files.contains_key(&module) {
            return None;
        }
        let Some(name) = abs.get(k) else { return Some(module) };
        if hops > 8 {
            return Some(module);
        }
        let (_, parsed) = &self.files[&module];
        if parsed.defines.contains(name) {
            return Some(module);
        }
        for (bound, target) in &parsed.reexports {
            if bound == name
                && let Some(t) = self.absolute(&module, target)
                && let Some(m) = self.resolve(&t, hops + 1)
            {
                return Some(m);
            }
        }
        for (bound, target) in &parsed.reexports {
            if bound == "*" {
                let mut t = self.absolute(&module, target)?;
                t.push(name.clone());
                if let Some(m) = self.resolve(&t, hops + 1)
                    && self.files[&m].1.defines.contains(name)
                {
                    return Some(m);
                }
            }
        }
        Some(module)
    }

    /// Every file-to-file import: (from, to) → the first line naming it.
    fn edges(&self) -> BTreeMap<(ModPath, ModPath), usize> {
        let mut edges = BTreeMap::new();
        for (module, (_, parsed)) in &self.files {
            for (path, line) in &parsed.paths {
                let Some(abs) = self.absolute(module, path) else { continue };
                let Some(target) = self.resolve(&abs, 0) else { continue };
                if &target != module {
                    edges.entry((module.clone(), target)).or_insert(*line);
                }
            }
        }
        edges
    }

    fn file(&self, m: &ModPath) -> String {
        self.files.get(m).map_or_else(|| m.join("::"), |(f, _)| f.display().to_string())
    }
}

/// A circle in a directed graph, if there is one: the nodes in order, the first repeated last.
fn find_cycle<N: Ord + Clone>(nodes: &BTreeSet<N>, edges: &BTreeSet<(N, N)>) -> Option<Vec<N>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit<N: Ord + Clone>(
        n: &N,
        edges: &BTreeSet<(N, N)>,
        marks: &mut BTreeMap<N, Mark>,
        stack: &mut Vec<N>,
    ) -> Option<Vec<N>> {
        marks.insert(n.clone(), Mark::Open);
        stack.push(n.clone());
        for (_, to) in edges.iter().filter(|(from, _)| from == n) {
            match marks.get(to).copied().unwrap_or(Mark::New) {
                Mark::Open => {
                    let start = stack.iter().position(|s| s == to).unwrap_or(0);
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(to.clone());
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(c) = visit(to, edges, marks, stack) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks.insert(n.clone(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for n in nodes {
        if marks.get(n).copied().unwrap_or(Mark::New) == Mark::New
            && let Some(c) = visit(n, edges, &mut marks, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

fn layer_of(top: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&top))
}

/// Everything wrong with the crate's layering, one line each; empty when it is right.
fn violations(krate: &Crate) -> Vec<String> {
    let mut problems = Vec::new();
    let edges = krate.edges();
    let at = |from: &ModPath, to: &ModPath| {
        let line = edges.get(&(from.clone(), to.clone())).copied().unwrap_or(0);
        format!("{}:{line} imports {}", krate.file(from), krate.file(to))
    };
    // (a) top-level modules: known, downward, acyclic.
    let mut top_edges = BTreeSet::new();
    let mut tops = BTreeSet::new();
    for module in krate.files.keys().filter(|m| m.len() == 1) {
        if layer_of(&module[0]).is_none() {
            problems.push(format!("src/{}: top-level module missing from LAYERS", module[0]));
        }
        tops.insert(module[0].clone());
    }
    for (from, to) in edges.keys() {
        let (Some(a), Some(b)) = (from.first(), to.first()) else { continue };
        if a == b {
            continue;
        }
        top_edges.insert((a.clone(), b.clone()));
        if let (Some(la), Some(lb)) = (layer_of(a), layer_of(b))
            && lb > la
        {
            problems.push(format!("upward import, {a} (layer {la}) → {b} (layer {lb}): {}", at(from, to)));
        }
    }
    if let Some(cycle) = find_cycle(&tops, &top_edges) {
        let mut msg = format!("top-level modules import each other in a circle: {}", cycle.join(" → "));
        for pair in cycle.windows(2) {
            if let Some(((f, t), _)) =
                edges.iter().find(|((f, t), _)| f.first() == Some(&pair[0]) && t.first() == Some(&pair[1]))
            {
                let _ = write!(msg, "\n    {}", at(f, t));
            }
        }
        problems.push(msg);
    }
    // (b) files: acyclic.
    let nodes: BTreeSet<ModPath> = krate.files.keys().cloned().collect();
    let mut file_edges: BTreeSet<(ModPath, ModPath)> = edges.keys().cloned().collect();
    // Every circle, not only the first: each one found is broken at its closing edge.
    while let Some(cycle) = find_cycle(&nodes, &file_edges) {
        let n = cycle.len();
        file_edges.remove(&(cycle[n - 2].clone(), cycle[n - 1].clone()));
        let mut msg = String::from("files import each other in a circle:");
        for pair in cycle.windows(2) {
            let _ = write!(msg, "\n    {}", at(&pair[0], &pair[1]));
        }
        problems.push(msg);
    }
    problems
}

#[test]
fn the_source_follows_the_layers_with_no_import_circle() {
    let krate = Crate::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(krate.files.len() > 20, "read only {} files of src/", krate.files.len());
    let problems = violations(&krate);
    assert!(problems.is_empty(), "the layering rule (ARCHITECTURE.md, Invariants) is broken:\n{}", problems.join("\n"));
}

fn inline_crate(files: &[(&str, &str)]) -> Crate {
    let sources = files
        .iter()
        .map(|(module, text)| {
            let m: ModPath =
                if module.is_empty() { Vec::new() } else { module.split("::").map(String::from).collect() };
            (m, (PathBuf::from(format!("src/{module}.rs")), (*text).to_string()))
        })
        .collect();
    Crate::from_sources(sources)
}

#[test]
fn the_reader_skips_comments_literals_and_test_code_and_reads_use_trees() {
    let p = parse(concat!(
        "//! crate::doc::Comment\n",
        "mod x;\n#[cfg(test)]\nmod fixtures;\n",
        "use crate::{a::{B, c::D}, e};\n",
        "/* crate::block /* nested */ crate::still_comment */\n",
        "pub use x::Thing as Other;\n",
        "fn f<'a>(s: &'a str) -> char { let _ = \"crate::in_string\"; let _ = r#\"crate::raw\"#; let q = '\"'; x::go(); q }\n",
        "fn g() { super::super::h(); std::x::not_mine(); e::f(); }\n",
        "#[cfg(test)]\nmod tests { use crate::anything::Goes; }\n",
    ));
    let paths: Vec<String> = p.paths.iter().map(|(p, line)| format!("{}@{line}", p.join("::"))).collect();
    assert_eq!(
        paths,
        [
            "crate::a::B@5",
            "crate::a::c::D@5",
            "crate::e@5",
            "x::Thing@7",
            "x::go@8",
            "super::super::h@9",
            "crate::e::f@9"
        ]
    );
    assert_eq!(p.children, BTreeSet::from(["x".to_string()]));
    assert_eq!(p.test_children, BTreeSet::from(["fixtures".to_string()]));
    assert_eq!(p.reexports, [("Other".to_string(), vec!["x".to_string(), "Thing".to_string()])]);
}

#[test]
fn the_resolver_follows_facades_and_the_check_finds_circles_and_upward_imports() {
    // `stats` re-exports `Correction` from its child: a child naming `super::Correction` points to
    // the sibling that defines it, not back at the parent.
    let facade = inline_crate(&[
        ("", "pub mod stats; pub mod config;"),
        ("stats", "mod correction; mod welch; pub use correction::Correction;"),
        ("stats::correction", "pub enum Correction {}"),
        ("stats::welch", "use super::Correction;"),
        ("config", "use crate::stats::Correction;"),
    ]);
    let edges: Vec<String> =
        facade.edges().keys().map(|(f, t)| format!("{} → {}", f.join("::"), t.join("::"))).collect();
    assert_eq!(edges, ["config → stats::correction", "stats → stats::correction", "stats::welch → stats::correction"]);
    assert!(violations(&facade).is_empty(), "{:?}", violations(&facade));

    // A parent defining what its child uses while importing from that child: a file circle;
    // stats importing config: an upward import and a circle between top-level modules.
    let broken = inline_crate(&[
        ("", "pub mod stats; pub mod config;"),
        ("stats", "mod welch; pub struct Summary; pub use welch::welch;"),
        ("stats::welch", "use super::Summary;\nuse crate::config::Alpha;\npub fn welch() {}"),
        ("config", "pub struct Alpha; use crate::stats::Summary;"),
    ]);
    let problems = violations(&broken).join("\n");
    assert!(
        problems.contains("upward import, stats (layer 1) → config (layer 2): src/stats::welch.rs:2"),
        "{problems}"
    );
    assert!(problems.contains("top-level modules import each other in a circle"), "{problems}");
    assert!(problems.contains("files import each other in a circle"), "{problems}");
}
