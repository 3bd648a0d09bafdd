//! Finding the program of a command, the way `npm run` would but without
//! starting npm: `node_modules/.bin` of the package and each ancestor up to
//! the workspace root, then `PATH`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use crate::regular_file::is_executable;

/// The `node_modules/.bin` directories of `pkg_dir` and its ancestors up to
/// and including `root`, nearest first.
pub(crate) fn bin_dirs(pkg_dir: &Path, root: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for dir in pkg_dir.ancestors() {
        dirs.push(dir.join("node_modules/.bin"));
        if dir == root || !dir.starts_with(root) {
            break;
        }
    }
    dirs
}

/// `PATH` for a child: the bin dirs first, then the inherited PATH.
pub(crate) fn child_path(bin_dirs: &[PathBuf], inherited: Option<&OsStr>) -> OsString {
    let mut parts: Vec<PathBuf> = bin_dirs.to_vec();
    if let Some(p) = inherited {
        parts.extend(std::env::split_paths(p));
    }
    std::env::join_paths(parts)
        .unwrap_or_else(|_| inherited.map(OsStr::to_owned).unwrap_or_default())
}

/// The program lookups of one batch of tasks. Every task of a workspace
/// looks up the same programs (`node`) along the same system `PATH`, about
/// ten `stat`s each; a directory outside the workspace is looked at once per
/// batch. Directories inside it (`node_modules/.bin`, or any spelling that
/// resolves into it) are looked at every time: an earlier task of the batch
/// may just have built a tool there. (A tool installed outside the
/// workspace by a task, `npm i -g`, is seen by the next batch.)
#[derive(Debug)]
pub(crate) struct ProgramSearch {
    workspace_root: PathBuf,
    /// The root with symlinks resolved.
    real_root: PathBuf,
    /// Search directory → whether it is outside the workspace for sure.
    outside_dirs: RefCell<HashMap<PathBuf, bool>>,
    /// `dir/program` outside the workspace → whether it is an executable.
    outside: RefCell<HashMap<PathBuf, bool>>,
}

impl ProgramSearch {
    pub(crate) fn new(workspace_root: &Path) -> Self {
        Self {
            workspace_root: workspace_root.to_path_buf(),
            real_root: std::fs::canonicalize(workspace_root)
                .unwrap_or_else(|_| workspace_root.to_path_buf()),
            outside_dirs: RefCell::default(),
            outside: RefCell::default(),
        }
    }

    /// Resolves `program` against `cwd` (if it contains a `/`) or the search
    /// path. Returns the places searched when nothing was found.
    pub(crate) fn find(
        &self,
        program: &str,
        cwd: &Path,
        search: &OsStr,
    ) -> Result<PathBuf, Vec<PathBuf>> {
        if program.contains('/') {
            let p = cwd.join(program);
            return if is_executable(&p) {
                Ok(p)
            } else {
                Err(vec![p])
            };
        }
        let mut searched = Vec::new();
        for dir in std::env::split_paths(search) {
            let candidate = dir.join(program);
            let found = if self.is_outside(&dir) {
                self.remembered(&candidate)
            } else {
                is_executable(&candidate)
            };
            if found {
                return Ok(candidate);
            }
            searched.push(dir);
        }
        Err(searched)
    }

    /// Whether `dir` is surely outside the workspace: absolute, and outside
    /// it with symlinks resolved. A directory that does not exist (yet) is
    /// not: a task may create it.
    fn is_outside(&self, dir: &Path) -> bool {
        if !dir.is_absolute() || dir.starts_with(&self.workspace_root) {
            return false;
        }
        if let Some(&known) = self.outside_dirs.borrow().get(dir) {
            return known;
        }
        let outside =
            std::fs::canonicalize(dir).is_ok_and(|real| !real.starts_with(&self.real_root));
        self.outside_dirs
            .borrow_mut()
            .insert(dir.to_path_buf(), outside);
        outside
    }

    fn remembered(&self, candidate: &Path) -> bool {
        if let Some(&known) = self.outside.borrow().get(candidate) {
            return known;
        }
        let found = is_executable(candidate);
        self.outside
            .borrow_mut()
            .insert(candidate.to_path_buf(), found);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A `#!/bin/sh` script at `path`, executable.
    fn write_executable(path: &Path) {
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(path, "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    #[test]
    fn nearest_bin_dir_wins_and_search_stops_at_root() {
        let t = tempfile::tempdir().expect("the test input is valid");
        let root = t.path();
        let pkg = root.join("packages/a");
        for d in [
            root.join("node_modules/.bin"),
            pkg.join("node_modules/.bin"),
        ] {
            write_executable(&d.join("tool"));
        }
        let dirs = bin_dirs(&pkg, root);
        let search = ProgramSearch::new(root);
        assert_eq!(dirs.len(), 3); // packages/a, packages, root
        let path = child_path(&dirs, Some(OsStr::new("/usr/bin")));
        assert_eq!(
            search
                .find("tool", &pkg, &path)
                .expect("the test input is valid"),
            pkg.join("node_modules/.bin/tool")
        );
        assert_eq!(
            search
                .find("sh", &pkg, &path)
                .expect("the test input is valid"),
            PathBuf::from("/usr/bin/sh")
        );
        let searched = search
            .find("no-such-tool", &pkg, &path)
            .expect_err("the test input is invalid");
        assert_eq!(searched.len(), 4);
    }

    /// A tool built into the workspace during a batch is found by the next
    /// task; a directory outside the workspace is looked at once per batch.
    #[test]
    fn lookups_inside_the_workspace_are_fresh_and_outside_once_per_batch() {
        let ws = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        let root = ws.path();
        let bin = root.join("node_modules/.bin");
        let search = ProgramSearch::new(root);
        let path = child_path(std::slice::from_ref(&bin), Some(outside.path().as_os_str()));

        assert!(search.find("tool", root, &path).is_err());
        write_executable(&bin.join("tool"));
        assert_eq!(search.find("tool", root, &path), Ok(bin.join("tool")));

        assert!(search.find("other", root, &path).is_err());
        let other = outside.path().join("other");
        write_executable(&other);
        assert!(
            search.find("other", root, &path).is_err(),
            "the batch keeps its first look outside the workspace"
        );
        assert_eq!(
            ProgramSearch::new(root).find("other", root, &path),
            Ok(other),
            "the next batch looks again"
        );

        // A search directory that reaches into the workspace through a
        // symlink is inside it: looked at every time.
        let link = outside.path().join("ws-link");
        std::os::unix::fs::symlink(root, &link).expect("symlink");
        let via_link = link.join("tools");
        let path = child_path(std::slice::from_ref(&via_link), None);
        assert!(search.find("gen", root, &path).is_err());
        write_executable(&root.join("tools/gen"));
        assert_eq!(search.find("gen", root, &path), Ok(via_link.join("gen")));
    }
}
