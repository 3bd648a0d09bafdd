//! Finding the workspace root and its packages.
//!
//! The root is the nearest ancestor with `pnpm-workspace.yaml`, or a
//! `package.json` with `workspaces`, whose package globs list the package the
//! search started in (the nearest `package.json`); a workspace that does not
//! list that package is not its workspace, and the search goes on upward, as
//! npm does. Failing all, the nearest `package.json` is a single-package
//! project. Package directories come from the globs in those files;
//! `node_modules` and hidden directories are never searched.

use std::path::{Component, Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use yaml_rust2::Yaml;
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::error::WorkspaceError;
use super::{Package, Workspace, manifest, task_config};
use crate::regular_file;

pub(super) fn load(cwd: &Path) -> Result<Workspace, WorkspaceError> {
    let Root { dir: root, globs } = find_root(cwd)?;
    let mut dirs = vec![root.clone()];
    if let Some(globs) = &globs {
        let mut found = Vec::new();
        walk(&root, &root, 0, globs, &mut found);
        found.sort();
        found.retain(|d| d != &root);
        dirs.extend(found);
    }
    let mut packages = Vec::with_capacity(dirs.len());
    for dir in dirs {
        packages.push(load_package(&root, dir)?);
    }
    // Workspace dependencies: only names that are packages of this workspace.
    let names: std::collections::HashMap<String, PathBuf> = {
        let mut names = std::collections::HashMap::new();
        for p in &packages {
            if let Some(first) = names.insert(p.name.clone(), p.dir.clone()) {
                return Err(WorkspaceError::DuplicatePackage {
                    name: p.name.clone(),
                    first,
                    second: p.dir.clone(),
                });
            }
        }
        names
    };
    for p in &mut packages {
        p.workspace_deps
            .retain(|d| names.contains_key(d) && d != &p.name);
        p.workspace_deps.sort();
        p.workspace_deps.dedup();
    }
    Ok(Workspace { root, packages })
}

/// Where a workspace is: its root directory and, unless it is a
/// single-package project, its package globs.
pub(super) struct Root {
    pub(super) dir: PathBuf,
    pub(super) globs: Option<PackageGlobs>,
}

/// Finds the root of the workspace that `cwd` belongs to, reading only the
/// workspace files and `package.json`s of `cwd`'s ancestors (no directory
/// walk).
///
/// A `pnpm-workspace.yaml` or a `package.json` with `workspaces` is the root
/// when `cwd` is in no package below it, when the nearest package is the root
/// itself, or when the root's globs list the nearest package. A workspace file
/// that does not list the nearest package belongs to some other project (a
/// stray file in a home directory, an outer repository): the search goes on
/// upward and, failing all, the nearest package is a project of its own.
pub(super) fn find_root(cwd: &Path) -> Result<Root, WorkspaceError> {
    let mut nearest_package: Option<&Path> = None;
    for dir in cwd.ancestors() {
        let manifest_path = dir.join("package.json");
        let has_manifest = manifest_path.is_file();
        if has_manifest && nearest_package.is_none() {
            nearest_package = Some(dir);
        }
        let pnpm = dir.join("pnpm-workspace.yaml");
        let declared = if pnpm.is_file() {
            Some((read_pnpm_workspace(&pnpm)?, pnpm))
        } else if has_manifest {
            manifest::read(&manifest_path)?
                .workspaces
                .map(|globs| (globs, manifest_path))
        } else {
            None
        };
        let Some((globs, globs_file)) = declared else {
            continue;
        };
        let globs = PackageGlobs::new(&globs, &globs_file)?;
        let listed = match nearest_package {
            None => true,
            Some(pkg) => pkg == dir || pkg.strip_prefix(dir).is_ok_and(|rel| globs.lists(rel)),
        };
        if listed {
            return Ok(Root {
                dir: dir.to_path_buf(),
                globs: Some(globs),
            });
        }
    }
    match nearest_package {
        Some(dir) => Ok(Root {
            dir: dir.to_path_buf(),
            globs: None,
        }),
        None => Err(WorkspaceError::NoWorkspace {
            cwd: cwd.to_path_buf(),
        }),
    }
}

/// The package globs of a workspace root, compiled. `*` and `?` do not match
/// `/` (as in pnpm and npm: `packages/*` lists `packages/a`, not
/// `packages/a/test/fixture`); `**` does.
pub(super) struct PackageGlobs {
    include: GlobSet,
    exclude: GlobSet,
    /// How many components deep a listed directory can be (`None`: any
    /// depth, a pattern has `**`). The walk goes no deeper: `packages/*`
    /// never needs to look inside `packages/a/src`.
    max_depth: Option<usize>,
}

impl PackageGlobs {
    fn new(globs: &[String], globs_file: &Path) -> Result<Self, WorkspaceError> {
        let mut include = GlobSetBuilder::new();
        let mut exclude = GlobSetBuilder::new();
        let mut max_depth = Some(0);
        for raw in globs {
            let (negated, pattern) = match raw.strip_prefix('!') {
                Some(p) => (true, p),
                None => (false, raw.as_str()),
            };
            let pattern = pattern.trim_start_matches("./").trim_end_matches('/');
            let glob = GlobBuilder::new(pattern)
                .literal_separator(true)
                .build()
                .map_err(|e| WorkspaceError::InvalidPackageGlob {
                    path: globs_file.to_path_buf(),
                    glob: raw.clone(),
                    message: e.kind().to_string(),
                })?;
            if negated {
                exclude.add(glob)
            } else {
                // Every `/` may separate components, in any alternative of
                // a `{...}` too: counting them all over-estimates, never under.
                let depth = pattern.matches('/').count() + 1;
                max_depth = match max_depth {
                    _ if pattern.contains("**") => None,
                    Some(d) => Some(d.max(depth)),
                    None => None,
                };
                include.add(glob)
            };
        }
        let build =
            |b: GlobSetBuilder| -> GlobSet { b.build().unwrap_or_else(|_| GlobSet::empty()) };
        Ok(Self {
            include: build(include),
            exclude: build(exclude),
            max_depth,
        })
    }

    /// Whether the directory `rel` (relative to the root) is a package
    /// directory these globs list: matched by a glob, not excluded, and not
    /// inside `node_modules` or a hidden directory.
    /// Whether a directory this deep below the root can contain listed ones.
    fn may_list_below(&self, depth: usize) -> bool {
        self.max_depth.is_none_or(|max| depth < max)
    }

    fn lists(&self, rel: &Path) -> bool {
        let searched = rel.components().all(|c| match c {
            Component::Normal(name) => {
                let name = name.to_string_lossy();
                name != "node_modules" && !name.starts_with('.')
            }
            _ => false,
        });
        searched && self.include.is_match(rel) && !self.exclude.is_match(rel)
    }
}

/// The `packages` globs of a `pnpm-workspace.yaml`.
fn read_pnpm_workspace(path: &Path) -> Result<Vec<String>, WorkspaceError> {
    let text = regular_file::read_to_string(path).map_err(|source| WorkspaceError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_pnpm_workspace(&text, path)
}

/// Reads `packages` from the parser's event stream without building the
/// document. YAML aliases are never expanded: elsewhere in the file (pnpm's
/// own settings) they are skipped like any other value vp does not read, and
/// in `packages` they are an error. Expanding them is what lets a 400-byte
/// file of nested aliases ("billion laughs") take gigabytes; skipping costs
/// one pass over the events, and the parser itself keeps no recursion, so
/// deep nesting costs memory in proportion to the file only.
fn parse_pnpm_workspace(text: &str, path: &Path) -> Result<Vec<String>, WorkspaceError> {
    let mut events = Events {
        parser: Parser::new_from_str(text),
        text,
        path,
    };
    let mut globs = None;
    loop {
        let (event, _) = events.next()?;
        match event {
            Event::StreamEnd => break,
            // The first document is the workspace; later ones are only checked
            // for syntax.
            Event::MappingStart(..) if globs.is_none() => {
                globs = Some(events.top_level_packages()?)
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                events.skip_rest_of_container()?;
                globs.get_or_insert_with(Vec::new);
            }
            Event::Scalar(..) | Event::Alias(..) => {
                globs.get_or_insert_with(Vec::new);
            }
            Event::Nothing | Event::StreamStart | Event::DocumentStart | Event::DocumentEnd => {}
            Event::SequenceEnd | Event::MappingEnd => {}
        }
    }
    Ok(globs.unwrap_or_default())
}

struct Events<'a> {
    parser: Parser<std::str::Chars<'a>>,
    text: &'a str,
    path: &'a Path,
}

impl Events<'_> {
    fn next(&mut self) -> Result<(Event, Marker), WorkspaceError> {
        self.parser
            .next_token()
            .map_err(|e| WorkspaceError::Syntax {
                path: self.path.to_path_buf(),
                line: e.marker().line(),
                column: e.marker().col() + 1,
                message: e.info().to_owned(),
            })
    }

    /// After the `MappingStart` of the top-level node: the `packages` globs.
    fn top_level_packages(&mut self) -> Result<Vec<String>, WorkspaceError> {
        let mut packages: Option<(Vec<String>, Marker)> = None;
        loop {
            let (key, key_mark) = self.next()?;
            let is_packages = match key {
                Event::MappingEnd => {
                    return Ok(packages.map(|(globs, _)| globs).unwrap_or_default());
                }
                Event::Scalar(ref name, ..) => name == "packages",
                Event::SequenceStart(..) | Event::MappingStart(..) => {
                    self.skip_rest_of_container()?;
                    false
                }
                _ => false,
            };
            let (value, value_mark) = self.next()?;
            if !is_packages {
                self.skip(&value)?;
                continue;
            }
            if let Some((_, first)) = &packages {
                return Err(self.error(
                    key_mark,
                    "packages",
                    format!(
                        "`packages` is given twice (first on line {}) (hint: keep one list)",
                        first.line()
                    ),
                ));
            }
            packages = Some((self.packages(value, value_mark)?, key_mark));
        }
    }

    /// The value of `packages`: a list of strings, or nothing.
    fn packages(&mut self, value: Event, mark: Marker) -> Result<Vec<String>, WorkspaceError> {
        match value {
            Event::Scalar(ref v, style, _, ref tag) if scalar(v, style, tag.as_ref()).is_null() => {
                Ok(Vec::new())
            }
            Event::Alias(_) => Err(self.alias_error(mark, "packages")),
            Event::SequenceStart(..) => {
                let mut globs = Vec::new();
                loop {
                    let key = format!("packages[{}]", globs.len());
                    let (item, mark) = self.next()?;
                    match item {
                        Event::SequenceEnd => return Ok(globs),
                        Event::Alias(_) => return Err(self.alias_error(mark, &key)),
                        Event::Scalar(v, style, _, tag) => match scalar(&v, style, tag.as_ref()) {
                            Yaml::String(glob) => globs.push(glob),
                            _ => return Err(self.not_a_glob(mark, &key)),
                        },
                        _ => return Err(self.not_a_glob(mark, &key)),
                    }
                }
            }
            _ => Err(self.error(
                mark,
                "packages",
                "`packages` must be a list of globs (hint: `packages: [\"packages/*\"]`)"
                    .to_owned(),
            )),
        }
    }

    /// Consumes the rest of a node whose first event was `first`.
    fn skip(&mut self, first: &Event) -> Result<(), WorkspaceError> {
        match first {
            Event::SequenceStart(..) | Event::MappingStart(..) => self.skip_rest_of_container(),
            _ => Ok(()),
        }
    }

    /// After a `SequenceStart` or `MappingStart`: consumes up to its end.
    fn skip_rest_of_container(&mut self) -> Result<(), WorkspaceError> {
        let mut depth = 1usize;
        while depth > 0 {
            match self.next()?.0 {
                Event::SequenceStart(..) | Event::MappingStart(..) => depth += 1,
                Event::SequenceEnd | Event::MappingEnd => depth -= 1,
                // Unreachable in a well-formed stream; never loop on it.
                Event::StreamEnd => break,
                _ => {}
            }
        }
        Ok(())
    }

    fn not_a_glob(&self, mark: Marker, key: &str) -> WorkspaceError {
        self.error(
            mark,
            key,
            "`packages` must contain only strings (globs)".to_owned(),
        )
    }

    fn alias_error(&self, mark: Marker, key: &str) -> WorkspaceError {
        let alias: String = self
            .text
            .chars()
            .skip(mark.index())
            .take_while(|c| !c.is_whitespace() && !",[]{}".contains(*c))
            .take(64)
            .collect();
        self.error(
            mark,
            key,
            format!(
                "YAML alias `{alias}` in `packages`: vp does not expand aliases, so that a small \
                 file cannot make it use unbounded memory (hint: write the globs out in full)"
            ),
        )
    }

    fn error(&self, mark: Marker, key: &str, message: String) -> WorkspaceError {
        WorkspaceError::Config {
            path: self.path.to_path_buf(),
            line: mark.line(),
            column: mark.col() + 1,
            key: key.to_owned(),
            message,
        }
    }
}

/// A scalar's value as yaml-rust2's loader would resolve it (quoted is a
/// string; plain is resolved to null, bool, number or string; core-schema tags
/// are honoured).
fn scalar(v: &str, style: TScalarStyle, tag: Option<&yaml_rust2::parser::Tag>) -> Yaml {
    if style != TScalarStyle::Plain {
        return Yaml::String(v.to_owned());
    }
    match tag {
        Some(tag) if tag.handle == "tag:yaml.org,2002:" => match tag.suffix.as_str() {
            "null" | "bool" | "int" | "float" => match Yaml::from_str(v) {
                Yaml::String(_) => Yaml::BadValue,
                other => other,
            },
            _ => Yaml::String(v.to_owned()),
        },
        Some(_) => Yaml::String(v.to_owned()),
        None => Yaml::from_str(v),
    }
}

fn walk(root: &Path, dir: &Path, depth: usize, globs: &PackageGlobs, out: &mut Vec<PathBuf>) {
    if !globs.may_list_below(depth) {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name == "node_modules" || name.starts_with('.') {
            continue;
        }
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = entry.path();
        let Ok(rel) = path.strip_prefix(root) else {
            continue;
        };
        if globs.lists(rel) && path.join("package.json").is_file() {
            out.push(path.clone());
        }
        walk(root, &path, depth + 1, globs, out);
    }
}

fn load_package(root: &Path, dir: PathBuf) -> Result<Package, WorkspaceError> {
    let is_root = dir == root;
    let pkg_json = dir.join("package.json");
    let m = if pkg_json.is_file() {
        manifest::read(&pkg_json)?
    } else {
        manifest::Manifest::default()
    };
    let rel_dir = dir
        .strip_prefix(root)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = m.name.clone().unwrap_or_else(|| {
        if rel_dir.is_empty() {
            ".".to_owned()
        } else {
            rel_dir.clone()
        }
    });
    let config_path = dir.join("vite-task.json");
    let task_config = if config_path.is_file() {
        Some(task_config::read(&config_path, is_root)?)
    } else {
        None
    };
    Ok(Package {
        name,
        rel_dir,
        uses_next: m.dependencies.iter().any(|(n, _)| n == "next"),
        workspace_deps: m
            .dependencies
            .iter()
            .map(|(name, spec)| super::manifest::depended_on(name, spec).to_owned())
            .collect(),
        scripts: m.scripts,
        task_config,
        dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("a parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }

    #[test]
    fn pnpm_workspace_with_exclusion_and_workspace_protocol_deps() {
        let t = tempfile::tempdir().expect("tempdir");
        let r = t.path();
        write(r, "package.json", r#"{"name":"root"}"#);
        write(
            r,
            "pnpm-workspace.yaml",
            "packages:\n  - 'packages/*'\n  - '!packages/skip'\n",
        );
        write(
            r,
            "packages/a/package.json",
            r#"{"name":"a","dependencies":{"b":"workspace:*","react":"^18"}}"#,
        );
        write(r, "packages/b/package.json", r#"{"name":"b"}"#);
        write(r, "packages/skip/package.json", r#"{"name":"skip"}"#);
        write(
            r,
            "packages/a/node_modules/x/package.json",
            r#"{"name":"x"}"#,
        );
        let ws = load(&r.join("packages/a")).expect("loads");
        let names: Vec<_> = ws.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["root", "a", "b"]);
        assert_eq!(ws.packages[1].workspace_deps, ["b"]);
        assert_eq!(ws.package_containing(&r.join("packages/a/src")), Some(1));
    }

    #[test]
    fn npm_workspaces_and_single_package_fallback() {
        let t = tempfile::tempdir().expect("tempdir");
        let r = t.path();
        write(
            r,
            "package.json",
            r#"{"name":"root","workspaces":["apps/**"]}"#,
        );
        write(r, "apps/web/package.json", r#"{"name":"web"}"#);
        write(r, "apps/nested/deep/package.json", r#"{"name":"deep"}"#);
        let ws = load(r).expect("loads");
        assert_eq!(ws.packages.len(), 3);

        let single = tempfile::tempdir().expect("tempdir");
        write(single.path(), "package.json", r#"{"name":"solo"}"#);
        let ws = load(&single.path().join("src")).expect("loads");
        assert_eq!(ws.packages.len(), 1);
        assert!(
            ws.packages[0].rel_dir.is_empty(),
            "the root package comes first"
        );
    }

    /// The walk stops at the deepest level a pattern can list, and still
    /// finds every package: fixed depths, braces with a `/` inside, `**`.
    #[test]
    fn the_walk_goes_as_deep_as_the_patterns_and_no_deeper() {
        let t = tempfile::tempdir().expect("tempdir");
        let r = t.path();
        write(
            r,
            "package.json",
            r#"{"name":"root","workspaces":["packages/*","{tools/cli,apps/*}/*"]}"#,
        );
        write(r, "packages/a/package.json", r#"{"name":"a"}"#);
        write(r, "packages/a/sub/package.json", r#"{"name":"not-listed"}"#);
        write(r, "tools/cli/x/package.json", r#"{"name":"x"}"#);
        write(r, "apps/web/app/package.json", r#"{"name":"app"}"#);
        write(
            r,
            "apps/web/app/deeper/package.json",
            r#"{"name":"too-deep"}"#,
        );
        let ws = load(r).expect("loads");
        let mut names: Vec<_> = ws.packages.iter().map(|p| p.name.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["a", "app", "root", "x"]);

        let globs = PackageGlobs::new(&["packages/*".to_owned()], Path::new("p")).expect("valid");
        assert!(globs.may_list_below(1) && !globs.may_list_below(2));
        let globs = PackageGlobs::new(&["packages/**".to_owned()], Path::new("p")).expect("valid");
        assert!(globs.may_list_below(40));
        let globs = PackageGlobs::new(&["!packages/x".to_owned()], Path::new("p")).expect("valid");
        assert!(!globs.may_list_below(0), "nothing to list");
    }

    #[test]
    fn duplicate_names_and_missing_workspace_are_errors() {
        let t = tempfile::tempdir().expect("tempdir");
        let r = t.path();
        write(r, "package.json", r#"{"workspaces":["p/*"]}"#);
        write(r, "p/a/package.json", r#"{"name":"same"}"#);
        write(r, "p/b/package.json", r#"{"name":"same"}"#);
        assert!(
            load(r)
                .expect_err("an error")
                .to_string()
                .contains("two packages are named `same`")
        );

        let empty = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            load(empty.path()),
            Err(WorkspaceError::NoWorkspace { .. })
        ));
    }

    #[test]
    fn bad_yaml_names_the_file() {
        let t = tempfile::tempdir().expect("tempdir");
        write(t.path(), "pnpm-workspace.yaml", "packages: [a\n");
        let e = load(t.path()).expect_err("an error").to_string();
        assert!(e.contains("pnpm-workspace.yaml"), "{e}");
    }

    /// A FIFO where a package's `package.json` or `vite-task.json` would
    /// be is no file: discovery treats it as absent at once, never waits
    /// for a writer. (Should a file be swapped for one between that check
    /// and the read, the read refuses it: `regular_file`.)
    #[test]
    fn a_fifo_in_place_of_a_config_file_is_not_waited_on() {
        for (name, packages) in [("package.json", 1), ("vite-task.json", 2)] {
            let t = tempfile::tempdir().expect("tempdir");
            let r = t.path().to_path_buf();
            write(&r, "package.json", r#"{"workspaces":["p/*"]}"#);
            write(&r, "p/a/package.json", r#"{"name":"a"}"#);
            let fifo = r.join("p/a").join(name);
            let _ = std::fs::remove_file(&fifo);
            crate::regular_file::special::fifo(&fifo);
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send(
                    load(&r)
                        .map(|ws| ws.packages.len())
                        .map_err(|e| e.to_string()),
                );
            });
            let got = rx
                .recv_timeout(std::time::Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("loading waited on the FIFO {name}"));
            assert_eq!(got, Ok(packages), "{name}");
        }
    }

    fn root_of(cwd: &Path) -> PathBuf {
        find_root(cwd).expect("a root").dir
    }

    #[test]
    fn an_ancestor_workspace_that_does_not_list_the_package_is_not_its_workspace() {
        let t = tempfile::tempdir().expect("tempdir");
        let home = t.path();
        write(home, "pnpm-workspace.yaml", "packages:\n  - 'work/*'\n");
        write(
            home,
            "projects/site/package.json",
            r#"{"name":"site","scripts":{"b":"echo b"}}"#,
        );
        write(home, "work/listed/package.json", r#"{"name":"listed"}"#);
        let site = home.join("projects/site");
        assert_eq!(root_of(&site.join("src")), site);
        let ws = load(&site).expect("loads");
        assert_eq!(ws.root, site);
        assert_eq!(ws.packages.len(), 1);
        assert!(ws.packages[0].scripts.iter().any(|(n, _)| n == "b"));
        // A listed package, the root itself, and a directory of the root that
        // is in no package still belong to the ancestor.
        assert_eq!(root_of(&home.join("work/listed")), home);
        assert_eq!(root_of(home), home);
        assert_eq!(root_of(&home.join("projects")), home);
    }

    #[test]
    fn npm_workspaces_that_do_not_list_the_package_are_skipped_too() {
        let t = tempfile::tempdir().expect("tempdir");
        let r = t.path();
        write(
            r,
            "package.json",
            r#"{"workspaces":["apps/*","!apps/legacy"]}"#,
        );
        write(r, "apps/web/package.json", "{}");
        write(r, "apps/legacy/package.json", "{}");
        write(r, "tools/gen/package.json", "{}");
        assert_eq!(root_of(&r.join("apps/web")), r);
        assert_eq!(
            root_of(&r.join("apps/legacy")),
            r.join("apps/legacy"),
            "excluded by `!`"
        );
        assert_eq!(root_of(&r.join("tools/gen")), r.join("tools/gen"));
    }

    #[test]
    fn the_search_goes_on_past_a_workspace_that_does_not_list_the_package() {
        // outer lists `packages/**`; packages/sub is a workspace of its own
        // that lists only `libs/*`.
        let t = tempfile::tempdir().expect("tempdir");
        let r = t.path();
        write(r, "pnpm-workspace.yaml", "packages: ['packages/**']\n");
        write(r, "package.json", r#"{"name":"outer"}"#);
        write(r, "packages/sub/package.json", r#"{"name":"sub"}"#);
        write(
            r,
            "packages/sub/pnpm-workspace.yaml",
            "packages: ['libs/*']\n",
        );
        write(r, "packages/sub/libs/l/package.json", r#"{"name":"l"}"#);
        write(r, "packages/sub/tools/t/package.json", r#"{"name":"t"}"#);
        let sub = r.join("packages/sub");
        assert_eq!(
            root_of(&sub),
            sub,
            "the nearest workspace file of the root itself"
        );
        assert_eq!(
            root_of(&sub.join("libs/l")),
            sub,
            "listed by the inner workspace"
        );
        assert_eq!(
            root_of(&sub.join("tools/t")),
            r,
            "not listed by the inner one, listed by the outer"
        );
        std::fs::write(r.join("pnpm-workspace.yaml"), "packages: ['packages/*']\n").expect("write");
        assert_eq!(
            root_of(&sub.join("tools/t")),
            sub.join("tools/t"),
            "listed by neither"
        );
    }

    #[test]
    fn star_does_not_cross_directories_and_node_modules_is_never_a_package() {
        let t = tempfile::tempdir().expect("tempdir");
        let r = t.path();
        write(
            r,
            "pnpm-workspace.yaml",
            "packages: ['packages/*', 'apps/**']\n",
        );
        write(r, "packages/a/package.json", r#"{"name":"a"}"#);
        write(
            r,
            "packages/a/test/fixture/package.json",
            r#"{"name":"fixture"}"#,
        );
        write(r, "apps/x/deep/package.json", r#"{"name":"deep"}"#);
        write(
            r,
            "packages/a/node_modules/dep/package.json",
            r#"{"name":"dep"}"#,
        );
        let ws = load(r).expect("loads");
        let names: Vec<_> = ws.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, [".", "deep", "a"]);
        let fixture = r.join("packages/a/test/fixture");
        assert_eq!(root_of(&fixture), fixture);
        let dep = r.join("packages/a/node_modules/dep");
        assert_eq!(root_of(&dep), dep);
    }

    fn pnpm(text: &str) -> Result<Vec<String>, WorkspaceError> {
        parse_pnpm_workspace(text, Path::new("/w/pnpm-workspace.yaml"))
    }

    /// Nine levels of ten aliases each: 10^9 strings when expanded.
    fn laughs(key: &str) -> String {
        let mut text = String::from("a0: &a0 [\"lol\"]\n");
        for i in 1..=9 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        text.push_str(&format!("{key}: *a9\n"));
        text
    }

    #[test]
    fn aliases_are_never_expanded() {
        // In pnpm's own settings an alias is skipped unread, in no time.
        let start = std::time::Instant::now();
        let mut text = laughs("catalog");
        text.push_str("packages:\n  - 'packages/*'\n");
        assert_eq!(pnpm(&text).expect("parses"), ["packages/*"]);
        assert!(start.elapsed() < std::time::Duration::from_secs(5));

        // In `packages` it is an error naming the file, line and alias.
        let e = pnpm(&laughs("packages")).expect_err("an error").to_string();
        assert!(
            e.starts_with("`/w/pnpm-workspace.yaml:11:11`: YAML alias `*a9` in `packages`"),
            "{e}"
        );
        assert!(e.contains("hint: write the globs out in full"), "{e}");
        let e = pnpm("x: &g 'apps/*'\npackages:\n  - 'packages/*'\n  - *g\n")
            .expect_err("an error")
            .to_string();
        assert!(
            e.starts_with("`/w/pnpm-workspace.yaml:4:5`: YAML alias `*g`"),
            "{e}"
        );
        assert!(e.ends_with("(at key `packages[1]`)"), "{e}");
        // An anchor alone is fine.
        assert_eq!(pnpm("packages: &p\n  - 'a/*'\n").expect("parses"), ["a/*"]);
    }

    #[test]
    fn deep_nesting_costs_no_stack() {
        // A block sequence nested 100 000 deep (the loader recursed per level).
        let deep = format!("other:\n  {}x\npackages: ['p/*']\n", "- ".repeat(100_000));
        assert_eq!(pnpm(&deep).expect("parses"), ["p/*"]);
        let flow = format!("packages: {}\n", "[".repeat(1000));
        let e = pnpm(&flow).expect_err("an error").to_string();
        assert!(e.starts_with("`/w/pnpm-workspace.yaml:1:"), "{e}");
    }

    #[test]
    fn packages_values() {
        assert_eq!(pnpm("").expect("parses"), Vec::<String>::new());
        assert_eq!(
            pnpm("# only a comment\n").expect("parses"),
            Vec::<String>::new()
        );
        assert_eq!(pnpm("packages:\n").expect("parses"), Vec::<String>::new());
        assert_eq!(pnpm("- a\n").expect("parses"), Vec::<String>::new());
        assert_eq!(
            pnpm("catalog: {react: ^18}\npackages: [\"a/*\", 'b', c/**, !!str 1]\n---\npackages: [z]\n").expect("parses"),
            ["a/*", "b", "c/**", "1"]
        );
        let e = pnpm("packages: 'a/*'\n").expect_err("an error").to_string();
        assert!(
            e.starts_with("`/w/pnpm-workspace.yaml:1:11`: `packages` must be a list"),
            "{e}"
        );
        let e = pnpm("packages:\n  - a\n  - 12\n")
            .expect_err("an error")
            .to_string();
        assert!(
            e.contains(":3:5`: `packages` must contain only strings"),
            "{e}"
        );
        assert!(e.ends_with("(at key `packages[1]`)"), "{e}");
        let e = pnpm("packages: [a]\nx: 1\npackages: [b]\n")
            .expect_err("an error")
            .to_string();
        assert!(
            e.contains(":3:1`: `packages` is given twice (first on line 1)"),
            "{e}"
        );
    }
}
