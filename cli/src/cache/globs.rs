//! Explicit `input`/`output` globs of a task: relative to the package
//! directory, `!pattern` excludes (from observed paths too), `..` allowed.
//! `TaskGlobs::walk` finds what the positive patterns match on disk, starting
//! from each pattern's literal prefix so `dist/**` never walks `node_modules`.

use std::fs;
use std::io::{self, ErrorKind};
use std::path::{Component, Path, PathBuf};

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

use super::paths::normalize;

#[derive(Debug, thiserror::Error)]
#[error("invalid glob `{glob}`: {source}")]
pub(crate) struct GlobError {
    pub(crate) glob: String,
    #[source]
    pub(crate) source: globset::Error,
}

/// The compiled globs of one `input` or `output` list.
#[derive(Debug)]
pub(crate) struct TaskGlobs {
    include: GlobSet,
    exclude: GlobSet,
    /// Literal prefix of each positive pattern (package-relative, normalised,
    /// may start with `..`) and the depth limit below it: where walking starts.
    bases: Vec<(PathBuf, Option<usize>)>,
}

fn compile(pattern: &str) -> Result<Glob, GlobError> {
    // `*` must not cross `/` (like shells and vite-task); `**` does.
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|source| GlobError {
            glob: pattern.to_string(),
            source,
        })
}

/// Where walking for `pattern` starts (package-relative, normalised) and how
/// deep below it a match can be (`None`: unbounded, the pattern has `**`).
fn walk_root(pattern: &str) -> (PathBuf, Option<usize>) {
    let comps: Vec<&str> = pattern.split('/').filter(|c| !c.is_empty()).collect();
    let literal = comps
        .iter()
        .take_while(|c| !c.contains(['*', '?', '[', '{', '\\']))
        .count();
    let base = normalize(&comps[..literal].iter().collect::<PathBuf>());
    let depth = if pattern.contains("**") {
        None
    } else {
        Some(comps.len() - literal)
    };
    (base, depth)
}

/// The first positive pattern of `globs` that does not stay inside
/// `workspace_root` (from `package_dir`, both absolute): an absolute
/// pattern (globs are package-relative), one whose walk starts outside the
/// workspace, or one with a `..` after a wildcard (`**/../../x`,
/// `{../..,src}/x`), which no walk could follow. vp fingerprints and
/// restores nothing outside the workspace, so each would select nothing
/// there, silently.
pub(crate) fn first_outside<'g>(
    globs: &'g [String],
    package_dir: &Path,
    workspace_root: &Path,
) -> Option<&'g str> {
    let root = normalize(workspace_root);
    globs
        .iter()
        .filter(|raw| !raw.starts_with('!'))
        .find(|raw| {
            let pattern = raw.trim_start_matches("./");
            let (base, _) = walk_root(pattern);
            let wild = pattern
                .find(['*', '?', '[', '{', '\\'])
                .map_or("", |at| &pattern[at..]);
            pattern.starts_with('/')
                || wild.contains("..")
                || !normalize(&package_dir.join(base)).starts_with(&root)
        })
        .map(String::as_str)
}

impl TaskGlobs {
    pub(crate) fn new(globs: &[String]) -> Result<Self, GlobError> {
        let mut include = GlobSetBuilder::new();
        let mut exclude = GlobSetBuilder::new();
        let mut bases: Vec<(PathBuf, Option<usize>)> = Vec::new();
        for raw in globs {
            // `./src/**` means `src/**`: globset would match `./` literally.
            let (negated, pattern) = match raw.strip_prefix('!') {
                Some(rest) => (true, rest.trim_start_matches("./")),
                None => (false, raw.trim_start_matches("./")),
            };
            let glob = compile(pattern)?;
            if negated {
                exclude.add(glob);
            } else {
                include.add(glob);
                bases.push(walk_root(pattern));
            }
        }
        // A base inside an unbounded base would be walked twice.
        bases.sort();
        bases.dedup();
        let mut kept: Vec<(PathBuf, Option<usize>)> = Vec::new();
        for (b, depth) in bases {
            if !kept.iter().any(|(k, d)| d.is_none() && b.starts_with(k)) {
                kept.push((b, depth));
            }
        }
        let build = |b: GlobSetBuilder, what: &str| {
            b.build().map_err(|source| GlobError {
                glob: what.to_string(),
                source,
            })
        };
        Ok(Self {
            include: build(include, "<includes>")?,
            exclude: build(exclude, "<excludes>")?,
            bases: kept,
        })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bases.is_empty()
    }

    /// Whether any pattern is negated (`!dist/**`): without one,
    /// `excludes` is false for every path.
    pub(crate) fn has_exclusions(&self) -> bool {
        !self.exclude.is_empty()
    }

    /// True when a `!negative` matches `pkg_rel` (package-relative).
    pub(crate) fn excludes(&self, pkg_rel: &Path) -> bool {
        self.has_exclusions() && self.exclude.is_match(pkg_rel)
    }

    pub(crate) fn selects(&self, pkg_rel: &Path) -> bool {
        self.include.is_match(pkg_rel) && !self.excludes(pkg_rel)
    }

    /// Absolute paths of everything (files, symlinks, directories) the
    /// positive patterns match under `package_dir`, minus negatives. Symlinked
    /// directories are matched but not descended into (no cycles); `skip`
    /// prunes whole subtrees (the cache dir, `.git`).
    pub(crate) fn walk(
        &self,
        package_dir: &Path,
        skip: &dyn Fn(&Path) -> bool,
    ) -> io::Result<Vec<PathBuf>> {
        let mut found = Vec::new();
        for (base, depth) in &self.bases {
            let abs = normalize(&package_dir.join(base));
            self.visit(&abs, base, *depth, skip, &mut found)?;
        }
        found.sort();
        found.dedup();
        Ok(found)
    }

    fn visit(
        &self,
        abs: &Path,
        rel: &Path,
        depth: Option<usize>,
        skip: &dyn Fn(&Path) -> bool,
        found: &mut Vec<PathBuf>,
    ) -> io::Result<()> {
        if skip(abs) {
            return Ok(());
        }
        let meta = match fs::symlink_metadata(abs) {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if rel.components().any(|c| matches!(c, Component::Normal(_))) && self.selects(rel) {
            found.push(abs.to_path_buf());
        }
        if meta.is_dir() && depth != Some(0) {
            let below = depth.map(|d| d - 1);
            let mut entries: Vec<_> = fs::read_dir(abs)?.collect::<Result<_, _>>()?;
            entries.sort_by_key(fs::DirEntry::file_name);
            for entry in entries {
                let name = entry.file_name();
                self.visit(&abs.join(&name), &rel.join(&name), below, skip, found)?;
            }
        }
        Ok(())
    }
}

/// The `!` patterns of one task's `input` or `output` list, asked about
/// absolute paths: classifying drops what the task did there, as it drops
/// what a tool asked vp to ignore, and storing leaves those paths out.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Exclusions<'a> {
    package_dir: &'a Path,
    globs: &'a TaskGlobs,
}

impl<'a> Exclusions<'a> {
    /// `None` when `globs` has no `!` pattern (nothing to ask then).
    /// `package_dir` is absolute, spelled as the paths asked about are (real
    /// paths, for the tracer's).
    pub(crate) fn of(package_dir: &'a Path, globs: &'a TaskGlobs) -> Option<Self> {
        globs
            .has_exclusions()
            .then_some(Self { package_dir, globs })
    }

    /// Whether a `!` pattern matches `abs`, relative to the package.
    pub(crate) fn excludes(&self, abs: &Path) -> bool {
        self.globs
            .excludes(&package_relative(self.package_dir, &normalize(abs)))
    }
}

/// `abs` relative to `package_dir`, with `..` when outside it (both absolute
/// and normalised): the form globs are matched against.
pub(crate) fn package_relative(package_dir: &Path, abs: &Path) -> PathBuf {
    let a: Vec<Component<'_>> = abs.components().collect();
    let b: Vec<Component<'_>> = package_dir.components().collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &a[common..] {
        out.push(c.as_os_str());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Probe: an absolute pattern, or a `..` after a wildcard, passed the
    /// check of where the walk starts and then selected nothing, silently.
    #[test]
    fn patterns_that_leave_the_workspace_are_found() {
        let (pkg, root) = (Path::new("/w/packages/app"), Path::new("/w"));
        let first = |list: &[&str]| {
            let globs: Vec<String> = list.iter().map(|s| (*s).to_string()).collect();
            first_outside(&globs, pkg, root).map(str::to_owned)
        };
        for inside in [
            &["src/**", "../shared/*.ts", "./index.html", "!../../x/**"][..],
            &["../../package.json"][..],
        ] {
            assert_eq!(first(inside), None, "{inside:?}");
        }
        for outside in [
            "../../../x/*.txt",
            "/tmp/ext/*.txt",
            "/w/packages/app/src/*.ts",
            "**/../../../x",
            "{../..,src}/x",
            "src/*/../../../../y",
        ] {
            assert_eq!(
                first(&["src/**", outside]).as_deref(),
                Some(outside),
                "{outside}"
            );
        }
    }

    fn globs(list: &[&str]) -> TaskGlobs {
        TaskGlobs::new(&list.iter().map(|s| (*s).to_string()).collect::<Vec<_>>())
            .expect("valid globs")
    }

    fn tree(root: &Path, files: &[&str]) {
        for f in files {
            let p = root.join(f);
            fs::create_dir_all(p.parent().expect("has parent")).expect("mkdir");
            fs::write(p, f).expect("write");
        }
    }

    #[test]
    fn walks_from_literal_base_and_applies_negatives() {
        let ws = tempfile::tempdir().expect("tempdir");
        let pkg = ws.path().join("pkg");
        tree(
            &pkg,
            &[
                "src/a.ts",
                "src/deep/b.ts",
                "src/c.js",
                "src/gen/x.ts",
                "other/d.ts",
            ],
        );
        tree(ws.path(), &["shared/s.ts"]);
        let g = globs(&["src/**/*.ts", "!src/gen/**", "../shared/*.ts"]);
        let found = g.walk(&pkg, &|_| false).expect("walk");
        let rel: Vec<PathBuf> = found.iter().map(|p| package_relative(&pkg, p)).collect();
        assert_eq!(
            rel,
            vec![
                PathBuf::from("src/a.ts"),
                "src/deep/b.ts".into(),
                "../shared/s.ts".into()
            ]
        );
    }

    #[test]
    fn star_does_not_cross_directories() {
        let g = globs(&["src/*.ts"]);
        assert!(g.selects(Path::new("src/a.ts")));
        assert!(!g.selects(Path::new("src/deep/a.ts")));
    }

    #[test]
    fn dot_slash_prefix_is_ignored() {
        let g = globs(&["./dist/**", "!./dist/tmp/**"]);
        assert!(g.selects(Path::new("dist/a.js")));
        assert!(g.excludes(Path::new("dist/tmp/x")));
    }

    #[test]
    fn skip_prunes_subtrees() {
        let ws = tempfile::tempdir().expect("tempdir");
        tree(ws.path(), &["a/x.js", "a/node_modules/.cache/vp/blob"]);
        let cache = ws.path().join("a/node_modules/.cache/vp");
        let g = globs(&["a/**"]);
        let found = g.walk(ws.path(), &|p| p == cache).expect("walk");
        assert!(found.iter().all(|p| !p.starts_with(&cache)));
        assert!(found.contains(&ws.path().join("a/x.js")));
    }

    #[test]
    fn bad_glob_is_an_error_naming_it() {
        let err = TaskGlobs::new(&["src/[".to_string()]).expect_err("unclosed class");
        assert!(err.to_string().starts_with("invalid glob `src/[`"), "{err}");
    }

    #[test]
    fn walk_roots() {
        assert_eq!(walk_root("src/**/*.ts"), (PathBuf::from("src"), None));
        assert_eq!(
            walk_root("../shared/*.ts"),
            (PathBuf::from("../shared"), Some(1))
        );
        assert_eq!(
            walk_root("package.json"),
            (PathBuf::from("package.json"), Some(0))
        );
        assert_eq!(walk_root("**"), (PathBuf::new(), None));
        assert_eq!(walk_root("a/*/c.txt"), (PathBuf::from("a"), Some(2)));
    }

    #[test]
    fn literal_file_pattern_matches() {
        let ws = tempfile::tempdir().expect("tempdir");
        tree(ws.path(), &["package.json", "src/a.js"]);
        let found = globs(&["package.json"])
            .walk(ws.path(), &|_| false)
            .expect("walk");
        assert_eq!(found, vec![ws.path().join("package.json")]);
        let none = globs(&["missing/**"])
            .walk(ws.path(), &|_| false)
            .expect("walk");
        assert!(none.is_empty());
    }

    #[test]
    fn package_relative_paths() {
        assert_eq!(
            package_relative(Path::new("/ws/p"), Path::new("/ws/p/a/b")),
            PathBuf::from("a/b")
        );
        assert_eq!(
            package_relative(Path::new("/ws/p"), Path::new("/ws/q/c")),
            PathBuf::from("../q/c")
        );
        assert_eq!(
            package_relative(Path::new("/ws/p"), Path::new("/ws/p")),
            PathBuf::new()
        );
    }
}
