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
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::clock::Timestamp;
use super::paths;

/// The programs of one run and the `PATH` it found them on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Toolchain {
    /// Each program by the path it was executed as (bytes).
    programs: BTreeMap<Vec<u8>, Program>,
    /// The task's `PATH`, `None` when it had none. (An entry uploaded to
    /// the remote cache keeps no toolchain at all: its programs are one
    /// machine's paths, which say nothing on another.)
    path_var: Option<Vec<u8>>,
}

/// One program: the real file its path led to, and that file's size and
/// mtime. Not its ctime or inode: a `chmod`, a hard link added by a store
/// optimiser, or the same image unpacked on another host changes those, not
/// the program.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Program {
    real: Vec<u8>,
    size: u64,
    mtime: Timestamp,
    /// Found through `PATH`: executed from one of its directories, and not
    /// an interpreter a `#!` line names by its path (`/bin/sh`, which sits
    /// in a `PATH` directory too, but no search chose it).
    on_path: bool,
}

impl Program {
    fn of(real: &Path, on_path: bool) -> Option<Self> {
        let meta = std::fs::metadata(real)
            .ok()
            .filter(std::fs::Metadata::is_file)?;
        Some(Self {
            real: real.as_os_str().as_bytes().to_vec(),
            size: meta.len(),
            mtime: Timestamp::mtime(&meta),
            on_path,
        })
    }

    /// Whether the file the path leads to today is the same version: size
    /// and mtime.
    fn same_file(&self, real: &Path) -> bool {
        std::fs::metadata(real)
            .is_ok_and(|m| m.len() == self.size && Timestamp::mtime(&m) == self.mtime)
    }
}

/// How many bytes of a script are read for its `#!` line (Linux reads 256).
const SHEBANG_MAX: u64 = 256;

impl Toolchain {
    /// The toolchain of a run that executed `executed` (each path as
    /// executed, and the real file it led to) with `PATH` = `path_var`.
    /// Blocking: a `stat` per program, and the first bytes of each executed
    /// file for its `#!` line.
    pub(crate) fn record(
        executed: &[(PathBuf, PathBuf)],
        workspace_root: &Path,
        path_var: Option<&OsStr>,
    ) -> Self {
        let outside = |p: &Path| !paths::is_within(p, workspace_root);
        let mut programs = BTreeMap::new();
        let mut keep = |run: &Path, real: &Path, on_path: bool| {
            if let Some(program) = Program::of(real, on_path) {
                programs.insert(run.as_os_str().as_bytes().to_vec(), program);
            }
        };
        for (run, real) in executed {
            if outside(real) {
                keep(run, real, found_on(run, path_var));
            }
            if let Some(interpreter) = interpreter(real)
                && let Ok(real) = std::fs::canonicalize(&interpreter)
                && outside(&real)
            {
                keep(&interpreter, &real, false);
            }
        }
        Self {
            programs,
            path_var: path_var.map(|p| p.as_bytes().to_vec()),
        }
    }

    /// The programs that are not what the run used, by the path they were
    /// run as: gone, changed (size or mtime), their path now leading to
    /// another file (a version manager repointed a link), or, with another
    /// `PATH`, a program found on `PATH` that is no longer the first of its
    /// name there (`nvm use`).
    pub(crate) fn changed(&self, path_var: Option<&OsStr>) -> Vec<String> {
        let then = self.path_var.as_deref().map(OsStr::from_bytes);
        let path_changed = then.is_some_and(|then| Some(then) != path_var);
        let mut out = Vec::new();
        for (run, program) in &self.programs {
            let run = Path::new(OsStr::from_bytes(run));
            let real = Path::new(OsStr::from_bytes(&program.real));
            let same =
                std::fs::canonicalize(run).is_ok_and(|now| now == real) && program.same_file(real);
            let moved = path_changed
                && program.on_path
                && first_on(run, path_var).is_none_or(|now| now != real);
            if !same || moved {
                out.push(run.display().to_string());
            }
        }
        out
    }
}

/// Whether `run` is where a search of `path_var` for its name would find
/// it: its directory is one of `path_var`'s. A program run by its path
/// (a `#!` line, an absolute command) was not chosen by `PATH`.
fn found_on(run: &Path, path_var: Option<&OsStr>) -> bool {
    let (Some(dir), Some(path_var)) = (run.parent(), path_var) else {
        return false;
    };
    std::env::split_paths(path_var).any(|entry| entry == dir)
}

/// The real file of the first executable named like `run` on `path_var`.
fn first_on(run: &Path, path_var: Option<&OsStr>) -> Option<PathBuf> {
    let (name, path_var) = (run.file_name()?, path_var?);
    std::env::split_paths(path_var)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|candidate| crate::regular_file::is_executable(candidate))
        .and_then(|candidate| std::fs::canonicalize(candidate).ok())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

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
        let t = Toolchain::record(
            &[(script.clone(), script), (node.clone(), node.clone())],
            &s.root,
            None,
        );
        let kept: Vec<&[u8]> = t.programs.keys().map(Vec::as_slice).collect();
        let mut want = vec![node.as_os_str().as_bytes(), b"/usr/bin/env".as_slice()];
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
        let t = Toolchain::record(&[(node.clone(), node.clone())], &s.root, Some(&path));
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

    /// Review: an interpreter a `#!` line names (`/usr/bin/env`, `/bin/sh`)
    /// sits in a `PATH` directory, yet no search chose it: a nix shell with
    /// its own `env` first on `PATH` must not make every task miss.
    #[test]
    fn an_interpreter_of_a_shebang_line_ignores_path() {
        let s = setup();
        let script = s.root.join("node_modules/.bin/tool");
        let path = std::env::join_paths([Path::new("/usr/bin")]).expect("path");
        let t = Toolchain::record(&[(script.clone(), script)], &s.root, Some(&path));
        assert!(!t.programs.is_empty(), "env is kept");
        executable(&s.new_bin.join("env"), "another env");
        let nix = std::env::join_paths([s.new_bin.as_path(), Path::new("/usr/bin")]).expect("path");
        assert!(
            t.changed(Some(&nix)).is_empty(),
            "{:?}",
            t.changed(Some(&nix))
        );
    }

    /// Review: a program run by its path (`/bin/sh` from a `#!` line) that
    /// a `PATH` search would not find first missed on any `PATH` change (a
    /// new terminal, direnv). Only programs found on `PATH` are looked up
    /// again; a `chmod` is no change.
    #[test]
    fn a_program_run_by_its_path_ignores_path_and_its_mode() {
        let s = setup();
        let node = s.old_bin.join("node");
        let path = std::env::join_paths([&s.new_bin]).expect("path");
        let t = Toolchain::record(&[(node.clone(), node.clone())], &s.root, Some(&path));
        executable(&s.new_bin.join("node"), "another node");
        let other = std::env::join_paths([&s.new_bin, &s.root]).expect("path");
        assert!(t.changed(Some(&other)).is_empty(), "PATH did not choose it");
        fs::set_permissions(&node, fs::Permissions::from_mode(0o700)).expect("chmod");
        assert!(t.changed(Some(&path)).is_empty(), "a mode is no version");
    }

    /// Probe: fnm, update-alternatives and Homebrew switch versions by
    /// repointing a link; `PATH` stays the same.
    #[test]
    fn a_repointed_link_is_named() {
        let s = setup();
        let v2 = s.new_bin.join("node");
        executable(&v2, "node two");
        let link_dir = s.root.parent().expect("base").join("links");
        fs::create_dir_all(&link_dir).expect("mkdir");
        let link = link_dir.join("node");
        std::os::unix::fs::symlink(s.old_bin.join("node"), &link).expect("link");
        let path = std::env::join_paths([&link_dir]).expect("path");
        let real = fs::canonicalize(&link).expect("real");
        let t = Toolchain::record(&[(link.clone(), real)], &s.root, Some(&path));
        assert!(t.changed(Some(&path)).is_empty());
        fs::remove_file(&link).expect("unlink");
        std::os::unix::fs::symlink(&v2, &link).expect("repoint");
        assert_eq!(t.changed(Some(&path)), vec![link.display().to_string()]);
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
