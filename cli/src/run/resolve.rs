//! Finding the program of a command, the way `npm run` would but without
//! starting npm: `node_modules/.bin` of the package and each ancestor up to
//! the workspace root, then `PATH`.

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

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

/// Resolves `program` against `cwd` (if it contains a `/`) or the search
/// path. Returns the places searched when nothing was found.
pub(crate) fn find_program(
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
        if is_executable(&candidate) {
            return Ok(candidate);
        }
        searched.push(dir);
    }
    Err(searched)
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_bin_dir_wins_and_search_stops_at_root() {
        let t = tempfile::tempdir().expect("the test input is valid");
        let root = t.path();
        let pkg = root.join("packages/a");
        for d in [
            root.join("node_modules/.bin"),
            pkg.join("node_modules/.bin"),
        ] {
            std::fs::create_dir_all(&d).expect("the test input is valid");
            let tool = d.join("tool");
            std::fs::write(&tool, "#!/bin/sh\n").expect("the test input is valid");
            std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755))
                .expect("the test input is valid");
        }
        let dirs = bin_dirs(&pkg, root);
        assert_eq!(dirs.len(), 3); // packages/a, packages, root
        let path = child_path(&dirs, Some(OsStr::new("/usr/bin")));
        assert_eq!(
            find_program("tool", &pkg, &path).expect("the test input is valid"),
            pkg.join("node_modules/.bin/tool")
        );
        assert_eq!(
            find_program("sh", &pkg, &path).expect("the test input is valid"),
            PathBuf::from("/usr/bin/sh")
        );
        let searched =
            find_program("no-such-tool", &pkg, &path).expect_err("the test input is invalid");
        assert_eq!(searched.len(), 4);
    }
}
