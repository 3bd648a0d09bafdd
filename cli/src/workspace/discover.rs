//! Finding the workspace root and its packages.
//!
//! The root is the nearest ancestor with `pnpm-workspace.yaml`, or a
//! `package.json` with `workspaces`; failing both, the nearest `package.json`
//! (a single-package project). Package directories come from the globs in
//! those files; `node_modules` and hidden directories are never searched.

use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::{Package, Workspace, manifest, task_config};

#[derive(Debug, thiserror::Error)]
pub(crate) enum WorkspaceError {
    #[error("`{path}:{line}:{column}`: {message} (at key `{key}`)")]
    Config {
        path: PathBuf,
        line: usize,
        column: usize,
        key: String,
        message: String,
    },
    #[error("two packages are named `{name}`: `{first}` and `{second}`\n(hint: package names must be unique within a workspace)")]
    DuplicatePackage {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("`{path}`: {message}")]
    InvalidManifest { path: PathBuf, message: String },
    #[error("`{path}`: invalid package glob `{glob}`: {message}")]
    InvalidPackageGlob {
        path: PathBuf,
        glob: String,
        message: String,
    },
    #[error("no package.json found in `{cwd}` or any of its parents\n(hint: run vp inside a JavaScript project)")]
    NoWorkspace { cwd: PathBuf },
    #[error("cannot read `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}:{line}:{column}`: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

pub(super) fn load(cwd: &Path) -> Result<Workspace, WorkspaceError> {
    let (root, globs, globs_file) = find_root(cwd)?;
    let mut dirs = vec![root.clone()];
    if !globs.is_empty() {
        let mut found = expand_package_globs(&root, &globs, &globs_file)?;
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
        p.workspace_deps.retain(|d| names.contains_key(d) && d != &p.name);
        p.workspace_deps.sort();
        p.workspace_deps.dedup();
    }
    Ok(Workspace { root, packages })
}

/// Returns (root dir, package globs, the file the globs came from).
fn find_root(cwd: &Path) -> Result<(PathBuf, Vec<String>, PathBuf), WorkspaceError> {
    let mut nearest_package: Option<PathBuf> = None;
    for dir in cwd.ancestors() {
        let pnpm = dir.join("pnpm-workspace.yaml");
        if pnpm.is_file() {
            let globs = read_pnpm_workspace(&pnpm)?;
            return Ok((dir.to_path_buf(), globs, pnpm));
        }
        let pkg = dir.join("package.json");
        if pkg.is_file() {
            let m = manifest::read(&pkg)?;
            if let Some(globs) = m.workspaces {
                return Ok((dir.to_path_buf(), globs, pkg));
            }
            if nearest_package.is_none() {
                nearest_package = Some(dir.to_path_buf());
            }
        }
    }
    match nearest_package {
        Some(dir) => {
            let file = dir.join("package.json");
            Ok((dir, Vec::new(), file))
        }
        None => Err(WorkspaceError::NoWorkspace {
            cwd: cwd.to_path_buf(),
        }),
    }
}

fn read_pnpm_workspace(path: &Path) -> Result<Vec<String>, WorkspaceError> {
    let text = std::fs::read_to_string(path).map_err(|source| WorkspaceError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let docs = yaml_rust2::YamlLoader::load_from_str(&text).map_err(|e| WorkspaceError::Syntax {
        path: path.to_path_buf(),
        line: e.marker().line(),
        column: e.marker().col() + 1,
        message: e.info().to_owned(),
    })?;
    let Some(doc) = docs.first() else {
        return Ok(Vec::new());
    };
    let packages = &doc["packages"];
    if packages.is_badvalue() || packages.is_null() {
        return Ok(Vec::new());
    }
    let Some(items) = packages.as_vec() else {
        return Err(WorkspaceError::InvalidManifest {
            path: path.to_path_buf(),
            message: "`packages` must be a list of globs".to_owned(),
        });
    };
    items
        .iter()
        .map(|item| {
            item.as_str().map(str::to_owned).ok_or_else(|| WorkspaceError::InvalidManifest {
                path: path.to_path_buf(),
                message: "`packages` must contain only strings".to_owned(),
            })
        })
        .collect()
}

fn expand_package_globs(
    root: &Path,
    globs: &[String],
    globs_file: &Path,
) -> Result<Vec<PathBuf>, WorkspaceError> {
    let mut include = GlobSetBuilder::new();
    let mut exclude = GlobSetBuilder::new();
    for raw in globs {
        let (negated, pattern) = match raw.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, raw.as_str()),
        };
        let pattern = pattern.trim_start_matches("./").trim_end_matches('/');
        let glob = Glob::new(pattern).map_err(|e| WorkspaceError::InvalidPackageGlob {
            path: globs_file.to_path_buf(),
            glob: raw.clone(),
            message: e.kind().to_string(),
        })?;
        if negated { exclude.add(glob) } else { include.add(glob) };
    }
    let build = |b: GlobSetBuilder| -> GlobSet { b.build().unwrap_or_else(|_| GlobSet::empty()) };
    let (include, exclude) = (build(include), build(exclude));
    let mut out = Vec::new();
    walk(root, root, &include, &exclude, &mut out);
    out.sort();
    Ok(out)
}

fn walk(root: &Path, dir: &Path, include: &GlobSet, exclude: &GlobSet, out: &mut Vec<PathBuf>) {
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
        let Ok(rel) = path.strip_prefix(root) else { continue };
        if include.is_match(rel) && !exclude.is_match(rel) && path.join("package.json").is_file() {
            out.push(path.clone());
        }
        walk(root, &path, include, exclude, out);
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
        if rel_dir.is_empty() { ".".to_owned() } else { rel_dir.clone() }
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
        workspace_deps: m.dependencies.into_iter().map(|(n, _)| n).collect(),
        scripts: m.scripts,
        task_config,
        is_root,
        dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn pnpm_workspace_with_exclusion_and_workspace_protocol_deps() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        write(r, "package.json", r#"{"name":"root"}"#);
        write(r, "pnpm-workspace.yaml", "packages:\n  - 'packages/*'\n  - '!packages/skip'\n");
        write(r, "packages/a/package.json", r#"{"name":"a","dependencies":{"b":"workspace:*","react":"^18"}}"#);
        write(r, "packages/b/package.json", r#"{"name":"b"}"#);
        write(r, "packages/skip/package.json", r#"{"name":"skip"}"#);
        write(r, "packages/a/node_modules/x/package.json", r#"{"name":"x"}"#);
        let ws = load(&r.join("packages/a")).unwrap();
        let names: Vec<_> = ws.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["root", "a", "b"]);
        assert_eq!(ws.packages[1].workspace_deps, ["b"]);
        assert_eq!(ws.package_containing(&r.join("packages/a/src")), Some(1));
    }

    #[test]
    fn npm_workspaces_and_single_package_fallback() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        write(r, "package.json", r#"{"name":"root","workspaces":["apps/**"]}"#);
        write(r, "apps/web/package.json", r#"{"name":"web"}"#);
        write(r, "apps/nested/deep/package.json", r#"{"name":"deep"}"#);
        let ws = load(r).unwrap();
        assert_eq!(ws.packages.len(), 3);

        let single = tempfile::tempdir().unwrap();
        write(single.path(), "package.json", r#"{"name":"solo"}"#);
        let ws = load(&single.path().join("src")).unwrap();
        assert_eq!(ws.packages.len(), 1);
        assert!(ws.packages[0].is_root);
    }

    #[test]
    fn duplicate_names_and_missing_workspace_are_errors() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        write(r, "package.json", r#"{"workspaces":["p/*"]}"#);
        write(r, "p/a/package.json", r#"{"name":"same"}"#);
        write(r, "p/b/package.json", r#"{"name":"same"}"#);
        assert!(load(r).unwrap_err().to_string().contains("two packages are named `same`"));

        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(load(empty.path()), Err(WorkspaceError::NoWorkspace { .. })));
    }

    #[test]
    fn bad_yaml_names_the_file() {
        let t = tempfile::tempdir().unwrap();
        write(t.path(), "pnpm-workspace.yaml", "packages: [a\n");
        let e = load(t.path()).unwrap_err().to_string();
        assert!(e.contains("pnpm-workspace.yaml"), "{e}");
    }
}
