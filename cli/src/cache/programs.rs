//! The toolchain of a run: the programs outside the workspace that the task
//! executed, kept in its entry and checked by every lookup.
//!
//! Inside the workspace the tracer fingerprints an executed file's content
//! as an input. Outside it vp fingerprints nothing, yet which `node` ran can
//! decide the result, and it is rarely the task's own program: a tool in
//! `node_modules/.bin` is a script whose `#!/usr/bin/env node` finds `node`
//! on `PATH`. So the entry keeps the stamp of each program outside the
//! workspace that the task executed, and of the interpreter each executed
//! script's `#!` line names, with the `PATH` the task saw. A lookup stats
//! them (a handful of calls); when `PATH` differs, it also looks each
//! program's name up on the new `PATH`, since `nvm use` puts another `node`
//! first without changing the old one.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::entry::Stamp;
use super::paths;

/// The programs of one run and the `PATH` it found them on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Toolchain {
    /// Real path (bytes) → stamp when the run was stored.
    programs: BTreeMap<Vec<u8>, Stamp>,
    /// The task's `PATH`, `None` when it had none. (An entry uploaded to
    /// the remote cache keeps no toolchain at all: its programs are one
    /// machine's paths, which say nothing on another.)
    path_var: Option<Vec<u8>>,
}

/// How many bytes of a script are read for its `#!` line (Linux reads 256).
const SHEBANG_MAX: u64 = 256;

impl Toolchain {
    /// The toolchain of a run that executed `executed` (real paths) with
    /// `PATH` = `path_var`. Blocking: a `stat` per program, and the first
    /// bytes of each executed file for its `#!` line.
    pub(crate) fn record(
        executed: &[PathBuf],
        workspace_root: &Path,
        path_var: Option<&OsStr>,
    ) -> Self {
        let outside = |p: &Path| !paths::is_within(p, workspace_root);
        let mut programs = BTreeMap::new();
        let mut keep = |p: &Path| {
            if let Ok(meta) = std::fs::metadata(p)
                && meta.is_file()
            {
                programs.insert(p.as_os_str().as_bytes().to_vec(), Stamp::of(&meta));
            }
        };
        for exe in executed {
            if outside(exe) {
                keep(exe);
            }
            if let Some(interpreter) = interpreter(exe)
                && let Ok(real) = std::fs::canonicalize(&interpreter)
                && outside(&real)
            {
                keep(&real);
            }
        }
        Self {
            programs,
            path_var: path_var.map(|p| p.as_bytes().to_vec()),
        }
    }

    /// The programs that are not what the run used, as the user would
    /// name them: changed or gone at their path, or, with another `PATH`,
    /// no longer the first of their name on it.
    pub(crate) fn changed(&self, path_var: Option<&OsStr>) -> Vec<String> {
        let path_changed = self
            .path_var
            .as_deref()
            .is_some_and(|then| Some(then) != path_var.map(OsStr::as_bytes));
        let mut out = Vec::new();
        for (bytes, stamp) in &self.programs {
            let program = Path::new(OsStr::from_bytes(bytes));
            let same = std::fs::metadata(program).is_ok_and(|m| Stamp::of(&m) == *stamp);
            let moved = path_changed && found_elsewhere(program, path_var);
            if !same || moved {
                out.push(program.display().to_string());
            }
        }
        out
    }
}

/// The absolute interpreter a script's `#!` line names, if `exe` starts
/// with one.
fn interpreter(exe: &Path) -> Option<PathBuf> {
    let mut head = Vec::new();
    crate::regular_file::open(exe)
        .ok()?
        .take(SHEBANG_MAX)
        .read_to_end(&mut head)
        .ok()?;
    let line = head.strip_prefix(b"#!")?;
    let line = line.split(|&b| b == b'\n').next()?;
    let first = line
        .split(|b| b.is_ascii_whitespace())
        .find(|word| !word.is_empty())?;
    let path = PathBuf::from(OsStr::from_bytes(first));
    path.is_absolute().then_some(path)
}

/// Whether the first executable named like `program` on `path_var` is
/// another file. A program not found there at all was run by its path (a
/// `#!` line, an absolute command): `PATH` did not choose it.
fn found_elsewhere(program: &Path, path_var: Option<&OsStr>) -> bool {
    let (Some(name), Some(path_var)) = (program.file_name(), path_var) else {
        return false;
    };
    let first = std::env::split_paths(path_var)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        });
    match first {
        Some(candidate) => std::fs::canonicalize(candidate).map_or(true, |real| real != program),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn executable(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, text).expect("write");
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    struct Setup {
        _tmp: tempfile::TempDir,
        root: PathBuf,
        old_bin: PathBuf,
        new_bin: PathBuf,
    }

    fn setup() -> Setup {
        let tmp = tempfile::tempdir().expect("tempdir");
        let base = tmp.path().canonicalize().expect("canonical");
        let root = base.join("ws");
        let old_bin = base.join("old/bin");
        let new_bin = base.join("new/bin");
        executable(&old_bin.join("node"), "old node");
        executable(
            &root.join("node_modules/.bin/tool"),
            "#!/usr/bin/env node\n",
        );
        Setup {
            _tmp: tmp,
            root,
            old_bin,
            new_bin,
        }
    }

    #[test]
    fn programs_outside_the_workspace_and_interpreters_are_kept() {
        let s = setup();
        let script = s.root.join("node_modules/.bin/tool");
        let node = s.old_bin.join("node");
        let t = Toolchain::record(&[script, node.clone()], &s.root, None);
        let kept: Vec<&[u8]> = t.programs.keys().map(Vec::as_slice).collect();
        let env = fs::canonicalize("/usr/bin/env").expect("env exists");
        let mut want = vec![node.as_os_str().as_bytes(), env.as_os_str().as_bytes()];
        want.sort();
        assert_eq!(
            kept, want,
            "node, and env from the script's #! line; not the script"
        );
    }

    #[test]
    fn a_changed_program_or_another_first_on_path_is_named() {
        let s = setup();
        let node = s.old_bin.join("node");
        let path = std::env::join_paths([&s.old_bin]).expect("path");
        let t = Toolchain::record(std::slice::from_ref(&node), &s.root, Some(&path));
        assert!(t.changed(Some(&path)).is_empty(), "nothing changed");

        // Another PATH that still finds the same node first: nothing to say.
        let same_first = std::env::join_paths([&s.new_bin, &s.old_bin]).expect("path");
        assert!(t.changed(Some(&same_first)).is_empty());

        // `nvm use`: a new directory first, with a node of its own.
        executable(&s.new_bin.join("node"), "new node");
        assert_eq!(
            t.changed(Some(&same_first)),
            vec![node.display().to_string()]
        );

        // The program itself replaced (an upgrade in place).
        executable(&node, "upgraded node, longer");
        assert_eq!(t.changed(Some(&path)), vec![node.display().to_string()]);

        // Gone.
        fs::remove_file(&node).expect("remove");
        assert_eq!(t.changed(Some(&path)), vec![node.display().to_string()]);
    }

    #[test]
    fn shebang_lines() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cases = [
            ("#!/usr/bin/env node\n", Some("/usr/bin/env")),
            ("#!  /bin/sh -e\necho", Some("/bin/sh")),
            ("#!node\n", None),
            ("console.log(1)\n", None),
            ("", None),
        ];
        for (i, (text, want)) in cases.iter().enumerate() {
            let p = tmp.path().join(format!("s{i}"));
            fs::write(&p, text).expect("write");
            assert_eq!(interpreter(&p), want.map(PathBuf::from), "{text:?}");
        }
    }
}
