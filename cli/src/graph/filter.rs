//! pnpm-style package selectors for `--filter`.
//!
//! `name` and `@scope/*` match names (globs allowed; a scoped package's
//! name without its scope too, when no other package has it), `./dir`
//! matches packages at or below a directory (`./packages/*`: a glob of
//! package directories), `sel...` adds dependencies, `...sel` adds
//! dependents, `^` drops the named package itself, `!sel` excludes. Several
//! filters are a union; exclusions apply last.

use std::collections::BTreeSet;
use std::path::Path;

use globset::Glob;

use super::PackageGraph;
use super::task_graph::GraphError;
use crate::workspace::Workspace;

/// Evaluates `filters` to a set of package indices. Filters that match no
/// package are returned as warnings rather than errors: a filter list is often
/// shared between workspaces in CI scripts.
pub(crate) fn select_packages(
    ws: &Workspace,
    graph: &PackageGraph,
    filters: &[String],
    cwd: &Path,
) -> Result<(BTreeSet<usize>, Vec<String>), GraphError> {
    let mut selected = BTreeSet::new();
    let mut excluded = BTreeSet::new();
    let mut warnings = Vec::new();
    let only_exclusions = filters.iter().all(|f| f.starts_with('!'));
    if only_exclusions {
        selected.extend(0..ws.packages.len());
    }
    for raw in filters {
        let (negated, sel) = match raw.strip_prefix('!') {
            Some(s) => (true, s),
            None => (false, raw.as_str()),
        };
        let matched =
            evaluate(ws, graph, sel, cwd).map_err(|message| GraphError::InvalidFilter {
                filter: raw.clone(),
                message,
            })?;
        if matched.is_empty() {
            warnings.push(format!("filter `{raw}` matched no packages"));
        }
        if negated {
            excluded.extend(matched)
        } else {
            selected.extend(matched)
        };
    }
    for e in &excluded {
        selected.remove(e);
    }
    Ok((selected, warnings))
}

fn evaluate(
    ws: &Workspace,
    graph: &PackageGraph,
    sel: &str,
    cwd: &Path,
) -> Result<BTreeSet<usize>, String> {
    let (with_dependents, rest) = match sel.strip_prefix("...") {
        Some(r) => (true, r),
        None => (false, sel),
    };
    let (with_deps, core) = match rest.strip_suffix("...") {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let (dependents_exclude_self, core) = match core.strip_prefix('^') {
        Some(c) if with_dependents => (true, c),
        _ => (false, core),
    };
    let (deps_exclude_self, core) = match core.strip_suffix('^') {
        Some(c) if with_deps => (true, c),
        _ => (false, core),
    };
    if core.is_empty() {
        return Err("the selector names no package".to_owned());
    }
    let base = base_match(ws, core, cwd)?;
    let mut out = BTreeSet::new();
    for &p in &base {
        if with_deps {
            out.extend(graph.transitive_deps(p));
            if !deps_exclude_self {
                out.insert(p);
            }
        }
        if with_dependents {
            out.extend(graph.transitive_dependents(p));
            if !dependents_exclude_self {
                out.insert(p);
            }
        }
        if !with_deps && !with_dependents {
            out.insert(p);
        }
    }
    Ok(out)
}

fn base_match(ws: &Workspace, core: &str, cwd: &Path) -> Result<BTreeSet<usize>, String> {
    let dir_selector = core
        .strip_prefix('{')
        .and_then(|c| c.strip_suffix('}'))
        .or_else(|| {
            (core.starts_with("./") || core.starts_with("../") || core == ".").then_some(core)
        });
    if let Some(dir) = dir_selector {
        // `./packages/*`: the directories below the literal part that the
        // rest matches (`*` within one directory, `**` across). Only the
        // selector is a pattern, never the directory it is relative to.
        let is_pattern = |c: &str| c.contains(['*', '?', '[']);
        let components: Vec<&str> = dir.split('/').collect();
        if let Some(first) = components.iter().position(|c| is_pattern(c)) {
            let base = normalize(&cwd.join(components[..first].join("/")));
            let matcher = globset::GlobBuilder::new(&components[first..].join("/"))
                .literal_separator(true)
                .build()
                .map_err(|e| e.kind().to_string())?
                .compile_matcher();
            return Ok(ws
                .packages
                .iter()
                .enumerate()
                .filter(|(_, p)| {
                    p.dir
                        .strip_prefix(&base)
                        .is_ok_and(|rest| matcher.is_match(rest))
                })
                .map(|(i, _)| i)
                .collect());
        }
        let dir = normalize(&cwd.join(dir));
        return Ok(ws
            .packages
            .iter()
            .enumerate()
            .filter(|(_, p)| p.dir.starts_with(&dir))
            .map(|(i, _)| i)
            .collect());
    }
    let matcher = Glob::new(core)
        .map_err(|e| e.kind().to_string())?
        .compile_matcher();
    let named: BTreeSet<usize> = ws
        .packages
        .iter()
        .enumerate()
        .filter(|(_, p)| matcher.is_match(&p.name))
        .map(|(i, _)| i)
        .collect();
    if !named.is_empty() || core.contains('/') {
        return Ok(named);
    }
    // `app` for `@ws/app`, as pnpm allows, when no other package has it.
    let unscoped: BTreeSet<usize> = ws
        .packages
        .iter()
        .enumerate()
        .filter(|(_, p)| {
            p.name
                .strip_prefix('@')
                .and_then(|n| n.split_once('/'))
                .is_some_and(|(_, bare)| matcher.is_match(bare))
        })
        .map(|(i, _)| i)
        .collect();
    Ok(if unscoped.len() == 1 { unscoped } else { named })
}

/// Lexical normalisation (`a/./b/../c` → `a/c`); the directory need not exist.
fn normalize(path: &Path) -> std::path::PathBuf {
    let mut out = std::path::PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::Package;

    fn ws() -> Workspace {
        // root; app -> lib -> util; @s/x -> lib
        let mk = |name: &str, rel: &str, deps: &[&str]| Package {
            name: name.to_owned(),
            dir: Path::new("/w").join(rel),
            rel_dir: rel.to_owned(),
            workspace_deps: deps.iter().map(|d| (*d).to_owned()).collect(),
            uses_next: false,
            scripts: Vec::new(),
            task_config: None,
        };
        Workspace {
            root: "/w".into(),
            packages: vec![
                mk("root", "", &[]),
                mk("app", "apps/app", &["lib"]),
                mk("lib", "packages/lib", &["util"]),
                mk("util", "packages/util", &[]),
                mk("@s/x", "packages/x", &["lib"]),
            ],
        }
    }

    fn names(filters: &[&str]) -> Vec<String> {
        let ws = ws();
        let g = PackageGraph::new(&ws);
        let f: Vec<String> = filters.iter().map(|s| (*s).to_owned()).collect();
        let (sel, _) =
            select_packages(&ws, &g, &f, Path::new("/w")).expect("the test input is valid");
        sel.into_iter()
            .map(|i| ws.packages[i].name.clone())
            .collect()
    }

    #[test]
    fn selectors() {
        assert_eq!(names(&["app"]), ["app"]);
        assert_eq!(names(&["@s/*"]), ["@s/x"]);
        assert_eq!(names(&["./packages"]), ["lib", "util", "@s/x"]);
        assert_eq!(names(&["app..."]), ["app", "lib", "util"]);
        assert_eq!(names(&["app^..."]), ["lib", "util"]);
        assert_eq!(names(&["...lib"]), ["app", "lib", "@s/x"]);
        assert_eq!(names(&["...^lib"]), ["app", "@s/x"]);
        assert_eq!(names(&["app...", "!util"]), ["app", "lib"]);
        assert_eq!(names(&["!root", "!app"]), ["lib", "util", "@s/x"]);
        assert_eq!(names(&["app", "util"]), ["app", "util"]);
    }

    /// Probe: `./packages/*` (the form pnpm's docs use) and `x` for `@s/x`
    /// matched nothing.
    #[test]
    fn directory_globs_and_names_without_their_scope() {
        assert_eq!(names(&["./packages/*"]), ["lib", "util", "@s/x"]);
        assert_eq!(names(&["{packages/*}"]), ["lib", "util", "@s/x"]);
        assert_eq!(names(&["./apps/**"]), ["app"]);
        assert_eq!(names(&["x"]), ["@s/x"]);
        assert_eq!(names(&["x..."]), ["lib", "util", "@s/x"]);
    }

    /// Review: the directory a selector is relative to is never a pattern,
    /// whatever characters its path has.
    #[test]
    fn a_directory_with_pattern_characters_is_literal() {
        let pkg = |name: &str, dir: &str| Package {
            name: name.to_owned(),
            dir: Path::new(dir).to_path_buf(),
            rel_dir: String::new(),
            workspace_deps: Vec::new(),
            uses_next: false,
            scripts: Vec::new(),
            task_config: None,
        };
        let ws = Workspace {
            root: "/h/[x]".into(),
            packages: vec![pkg("root", "/h/[x]"), pkg("a", "/h/[x]/packages/a")],
        };
        let g = PackageGraph::new(&ws);
        for filter in ["./packages", "./packages/*"] {
            let (sel, _) =
                select_packages(&ws, &g, &[filter.to_owned()], Path::new("/h/[x]")).expect("valid");
            assert_eq!(sel.into_iter().collect::<Vec<_>>(), [1], "{filter}");
        }
    }

    #[test]
    fn no_match_warns() {
        let ws = ws();
        let g = PackageGraph::new(&ws);
        let (sel, warnings) = select_packages(&ws, &g, &["nope".to_owned()], Path::new("/w"))
            .expect("the test input is valid");
        assert!(sel.is_empty());
        assert_eq!(warnings, ["filter `nope` matched no packages"]);
    }
}
