//! The file-system side of the watched set: the workspace's config files
//! (whose change plans the run again), and the directories whose watches
//! cover every task's reads, a package directory walked for a task whose
//! reads are unknown.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::fs_events::MAX_WATCHED_DIRS;
use super::watched::{Read, Reads, TaskWatch, skipped_dir};
use crate::workspace::Workspace;

/// Every file planning read: each package's `package.json` and
/// `vite-task.json` (missing ones too: creating one counts), and the root's
/// `pnpm-workspace.yaml`.
pub(crate) fn config_files(ws: &Workspace) -> BTreeSet<Read> {
    let mut files: Vec<PathBuf> = ws
        .packages
        .iter()
        .flat_map(|p| [p.dir.join("package.json"), p.dir.join("vite-task.json")])
        .collect();
    files.push(ws.root.join("pnpm-workspace.yaml"));
    files
        .into_iter()
        .map(|f| {
            if f.exists() {
                Read::Path(f)
            } else {
                Read::Missing(f)
            }
        })
        .collect()
}

/// The directories to watch for these tasks and config files, and the
/// distinct paths they stand for (the status line's "files"). At most
/// one more than [`MAX_WATCHED_DIRS`] directories are collected, so the
/// watcher can tell that some were left out.
pub(crate) fn watch_dirs<'a>(
    tasks: impl Iterator<Item = &'a TaskWatch>,
    config: &BTreeSet<Read>,
    cache_dir: &Path,
) -> (BTreeSet<PathBuf>, usize) {
    let mut dirs = BTreeSet::new();
    let mut paths: BTreeSet<&Path> = config.iter().map(Read::path).collect();
    dirs.extend(config.iter().filter_map(Read::watch_dir));
    for t in tasks {
        paths.extend(t.paths());
        let (reads, package) = match &t.reads {
            Reads::Observed(r) => (r, None),
            Reads::Package { dir, earlier, .. } => (earlier, Some(dir)),
            Reads::Pinned(_) => continue,
        };
        dirs.extend(reads.iter().filter_map(Read::watch_dir));
        if let Some(dir) = package {
            walk(dir, cache_dir, &mut dirs);
        }
    }
    dirs.retain(|d| !d.starts_with(cache_dir));
    (dirs, paths.len())
}

/// Adds `dir` and every directory below it, except `node_modules`, `.git`,
/// vp's cache and symlinks, until the bound is passed.
fn walk(dir: &Path, cache_dir: &Path, dirs: &mut BTreeSet<PathBuf>) {
    let mut work = vec![dir.to_path_buf()];
    // Its own record of what it walked: a directory already watched for
    // another reason (the package's `package.json`) is still walked.
    let mut walked = BTreeSet::new();
    while let Some(d) = work.pop() {
        if dirs.len() > MAX_WATCHED_DIRS {
            return;
        }
        if d.starts_with(cache_dir) || !walked.insert(d.clone()) {
            continue;
        }
        dirs.insert(d.clone());
        // An unreadable directory is watched, not walked: an edit inside
        // it still shows as a change of its entries.
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            if is_dir && !skipped_dir(&e.file_name()) {
                work.push(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Unobserved;

    #[test]
    fn a_package_is_walked_without_its_installed_packages() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let root = tmp.path();
        for d in ["src/deep", "node_modules/x", ".git/objects", "dist"] {
            std::fs::create_dir_all(root.join(d)).expect("mkdir");
        }
        let cache = root.join("node_modules/.cache/vp");
        let task = TaskWatch {
            reads: Reads::Package {
                dir: root.to_path_buf(),
                why: Unobserved::CacheOff,
                earlier: BTreeSet::new(),
            },
            outputs: BTreeSet::new(),
            window: None,
        };
        // The package's own package.json already has its directory watched.
        let config: BTreeSet<Read> = [Read::Path(root.join("package.json"))]
            .into_iter()
            .collect();
        let (dirs, paths) = watch_dirs(std::iter::once(&task), &config, &cache);
        let rel: BTreeSet<String> = dirs
            .iter()
            .map(|d| {
                d.strip_prefix(root)
                    .expect("under root")
                    .display()
                    .to_string()
            })
            .collect();
        let expected: BTreeSet<String> = ["", "src", "src/deep", "dist"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(rel, expected);
        assert_eq!(paths, 2);
    }

    #[test]
    fn each_read_is_watched_through_its_directory() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let root = tmp.path();
        std::fs::create_dir_all(root.join("a/src")).expect("mkdir");
        let reads: BTreeSet<Read> = [
            Read::Path(root.join("a/src/x.ts")),
            Read::Listing(root.join("a/src")),
            Read::Missing(root.join("a/conf/deep/tsconfig.json")),
        ]
        .into_iter()
        .collect();
        let task = TaskWatch {
            reads: Reads::Observed(reads),
            outputs: BTreeSet::new(),
            window: None,
        };
        let (dirs, paths) = watch_dirs(
            std::iter::once(&task),
            &BTreeSet::new(),
            &root.join("cache"),
        );
        assert_eq!(
            dirs,
            [root.join("a/src"), root.join("a")].into_iter().collect()
        );
        assert_eq!(paths, 3);
    }
}
