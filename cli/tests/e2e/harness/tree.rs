//! Byte-for-byte snapshots of a directory tree, for asserting that a cache restore (or a second
//! build) produced exactly the same files: contents, permission bits, symlink targets, and which
//! directories exist.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// One entry of a tree. A directory's own mode is not compared: tools create directories with
/// `mkdir` under the umask, and a directory's mode is not something a build produces.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    Dir,
    File { mode: u32, bytes: Vec<u8> },
    Symlink { target: PathBuf },
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::Dir => write!(f, "dir"),
            Entry::File { mode, bytes } => write!(f, "file ({} bytes, mode {mode:o})", bytes.len()),
            Entry::Symlink { target } => write!(f, "symlink -> {}", target.display()),
        }
    }
}

/// Every entry below a root, keyed by path relative to the root (the root itself not included).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub(crate) struct Tree {
    entries: BTreeMap<PathBuf, Entry>,
}

impl Tree {
    /// Reads the whole tree under `root` (symlinks are recorded, not followed). A missing root
    /// is an error: "the directory was not restored" must not look like "it is empty".
    pub(crate) fn capture(root: &Path) -> io::Result<Tree> {
        let mut tree = Tree::default();
        tree.walk(root, Path::new(""))?;
        Ok(tree)
    }

    fn walk(&mut self, root: &Path, rel: &Path) -> io::Result<()> {
        let dir = root.join(rel);
        let mut names = fs::read_dir(&dir)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect::<io::Result<Vec<_>>>()?;
        names.sort();
        for name in names {
            let rel = rel.join(&name);
            let path = root.join(&rel);
            let meta = fs::symlink_metadata(&path)?;
            let entry = if meta.file_type().is_symlink() {
                Entry::Symlink {
                    target: fs::read_link(&path)?,
                }
            } else if meta.is_dir() {
                self.walk(root, &rel)?;
                Entry::Dir
            } else {
                Entry::File {
                    mode: meta.permissions().mode() & 0o7777,
                    bytes: fs::read(&path)?,
                }
            };
            self.entries.insert(rel, entry);
        }
        Ok(())
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn get(&self, rel: impl AsRef<Path>) -> Option<&Entry> {
        self.entries.get(rel.as_ref())
    }

    /// Relative paths of all entries, sorted.
    pub(crate) fn paths(&self) -> impl Iterator<Item = &Path> {
        self.entries.keys().map(PathBuf::as_path)
    }

    /// Relative paths of regular files, sorted.
    pub(crate) fn files(&self) -> impl Iterator<Item = &Path> {
        self.entries
            .iter()
            .filter(|(_, e)| matches!(e, Entry::File { .. }))
            .map(|(p, _)| p.as_path())
    }

    /// Human-readable differences from `expected` to `self`; empty when identical.
    pub(crate) fn diff(&self, expected: &Tree) -> Vec<String> {
        let mut out = Vec::new();
        for (path, want) in &expected.entries {
            match self.entries.get(path) {
                None => out.push(format!("{}: missing (expected {want:?})", path.display())),
                Some(got) if got != want => {
                    out.push(format!("{}: {}", path.display(), describe(want, got)))
                }
                Some(_) => {}
            }
        }
        for (path, got) in &self.entries {
            if !expected.entries.contains_key(path) {
                out.push(format!("{}: unexpected {got:?}", path.display()));
            }
        }
        out
    }
}

fn describe(want: &Entry, got: &Entry) -> String {
    match (want, got) {
        (
            Entry::File {
                mode: wm,
                bytes: wb,
            },
            Entry::File {
                mode: gm,
                bytes: gb,
            },
        ) => {
            let mut parts = Vec::new();
            if wm != gm {
                parts.push(format!("mode {gm:o}, expected {wm:o}"));
            }
            if wb != gb {
                let at = wb
                    .iter()
                    .zip(gb)
                    .position(|(a, b)| a != b)
                    .unwrap_or(wb.len().min(gb.len()));
                parts.push(format!(
                    "contents differ at byte {at} ({} bytes, expected {})",
                    gb.len(),
                    wb.len()
                ));
            }
            parts.join("; ")
        }
        _ => format!("{got:?}, expected {want:?}"),
    }
}

/// Panics with every difference unless `actual` is byte-for-byte the same tree as `expected`.
#[track_caller]
pub(crate) fn assert_same_tree(expected: &Tree, actual: &Tree) {
    let diff = actual.diff(expected);
    assert!(
        diff.is_empty(),
        "directory trees differ ({} entries expected, {} found):\n  {}",
        expected.len(),
        actual.len(),
        diff.join("\n  ")
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn sample() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        fs::create_dir_all(root.join("assets/empty")).expect("mkdir");
        fs::write(root.join("index.html"), "<h1>hi</h1>").expect("write");
        fs::write(root.join("assets/app.js"), "console.log(1)").expect("write");
        fs::write(root.join("run.sh"), "#!/bin/sh\n").expect("write");
        fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o755)).expect("chmod");
        symlink("index.html", root.join("home.html")).expect("symlink");
        dir
    }

    #[test]
    fn a_tree_equals_itself_and_lists_everything() {
        let dir = sample();
        let a = Tree::capture(dir.path()).expect("capture");
        let b = Tree::capture(dir.path()).expect("capture");
        assert_same_tree(&a, &b);
        let paths: Vec<_> = a.paths().map(|p| p.display().to_string()).collect();
        assert_eq!(
            paths,
            [
                "assets",
                "assets/app.js",
                "assets/empty",
                "home.html",
                "index.html",
                "run.sh"
            ]
        );
        assert_eq!(a.files().count(), 3);
        assert_eq!(
            a.get("home.html"),
            Some(&Entry::Symlink {
                target: PathBuf::from("index.html")
            })
        );
    }

    #[test]
    fn every_kind_of_change_is_reported() {
        let dir = sample();
        let before = Tree::capture(dir.path()).expect("capture");
        let root = dir.path();
        fs::write(root.join("assets/app.js"), "console.log(2)").expect("write");
        fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o644)).expect("chmod");
        fs::remove_file(root.join("home.html")).expect("rm");
        symlink("assets/app.js", root.join("home.html")).expect("symlink");
        fs::remove_dir(root.join("assets/empty")).expect("rmdir");
        fs::write(root.join("extra.txt"), "").expect("write");
        let after = Tree::capture(root).expect("capture");
        let diff = after.diff(&before);
        let text = diff.join("\n");
        assert_eq!(diff.len(), 5, "{text}");
        assert!(
            text.contains("assets/app.js: contents differ at byte 12"),
            "{text}"
        );
        assert!(text.contains("run.sh: mode 644, expected 755"), "{text}");
        assert!(
            text.contains("home.html: symlink -> assets/app.js, expected symlink -> index.html"),
            "{text}"
        );
        assert!(
            text.contains("assets/empty: missing (expected dir)"),
            "{text}"
        );
        assert!(
            text.contains("extra.txt: unexpected file (0 bytes"),
            "{text}"
        );
        let result = std::panic::catch_unwind(|| assert_same_tree(&before, &after));
        assert!(
            result.is_err(),
            "assert_same_tree must fail on a difference"
        );
    }

    #[test]
    fn same_length_different_bytes_differ() {
        let dir = sample();
        let before = Tree::capture(dir.path()).expect("capture");
        fs::write(dir.path().join("index.html"), "<h1>ho</h1>").expect("write");
        let after = Tree::capture(dir.path()).expect("capture");
        assert_eq!(
            after.diff(&before),
            ["index.html: contents differ at byte 5 (11 bytes, expected 11)"]
        );
    }

    #[test]
    fn a_missing_root_is_an_error_not_an_empty_tree() {
        let dir = tempfile::tempdir().expect("temp dir");
        let err = Tree::capture(&dir.path().join("dist")).expect_err("missing dir");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("dist"), "{err}");
    }
}
