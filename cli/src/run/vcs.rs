//! Which files are under version control: a file git tracks is a source,
//! never a tool's own state. The own-state rule (`cache::store::state`)
//! would otherwise let a task whose purpose is to rewrite a tracked file
//! (`npm version patch` bumping `package.json`) be stored and hit: the bump
//! would silently not happen again, and a hit would restore the old
//! `package.json` over the user's later edit.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The subset of `files` (absolute) that git tracks, asking git in `root`.
/// Outside a git work tree, or without git, nothing is tracked. Blocking:
/// starts `git ls-files` once.
pub(crate) fn tracked_by_git(root: &Path, files: &BTreeSet<PathBuf>) -> BTreeSet<PathBuf> {
    if files.is_empty() {
        return BTreeSet::new();
    }
    let output = Command::new("git")
        .args(["ls-files", "-z", "--"])
        .args(files)
        .current_dir(root)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    let Ok(output) = output else {
        return BTreeSet::new();
    };
    if !output.status.success() {
        return BTreeSet::new();
    }
    output
        .stdout
        .split(|&b| b == 0)
        .filter(|name| !name.is_empty())
        .map(|name| root.join(OsStr::from_bytes(name)))
        .filter(|path| files.contains(path))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        let ok = Command::new("git")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .status()
            .expect("run git");
        assert!(ok.success(), "git {args:?}");
    }

    #[test]
    fn tracked_files_are_found_and_untracked_or_ignored_are_not() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().canonicalize().expect("canonical");
        git(&root, &["init", "-q"]);
        std::fs::write(root.join("package.json"), "{}").expect("write");
        std::fs::write(root.join("tsconfig.tsbuildinfo"), "{}").expect("write");
        git(&root, &["add", "package.json"]);
        let files: BTreeSet<PathBuf> =
            [root.join("package.json"), root.join("tsconfig.tsbuildinfo")].into();
        assert_eq!(
            tracked_by_git(&root, &files),
            [root.join("package.json")].into()
        );
    }

    #[test]
    fn outside_a_repository_nothing_is_tracked() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().canonicalize().expect("canonical");
        let files: BTreeSet<PathBuf> = [root.join("a")].into();
        // A temp dir may sit inside some repository; make sure it does not.
        let ceiling = root.parent().map(Path::to_path_buf).unwrap_or_default();
        let out = Command::new("git")
            .args(["rev-parse", "--is-inside-work-tree"])
            .current_dir(&root)
            .env("GIT_CEILING_DIRECTORIES", &ceiling)
            .output();
        if out.is_ok_and(|o| o.status.success()) {
            return;
        }
        assert!(tracked_by_git(&root, &files).is_empty());
    }
}
