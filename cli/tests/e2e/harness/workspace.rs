//! A fixture from `fixtures/` copied into a fresh temp dir, so every scenario starts from the
//! committed sources with no cache, no `dist/` and no state from other tests. Also the paths the
//! scenarios need (repo root, fixture dirs, the `vp` binary) and file helpers on the copy.
//!
//! npm dependencies are never installed here: `scripts/bootstrap.sh` installs them into the
//! fixture in the repository, and the copy links (or copies) that `node_modules`.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use super::run::Run;
use super::tree::Tree;

/// Build products and tool state that may sit in a fixture directory after someone ran it by
/// hand; a copy never takes them along. (`node_modules` is handled separately.)
const NOT_COPIED: [&str; 3] = ["dist", ".tool-cache", "target"];

/// Files of tool state likewise left behind: ESLint's `--cache` file.
const NOT_COPIED_FILES: [&str; 1] = [".eslintcache"];

/// Entries of a `node_modules` that hold state of a previous run (vp's cache, Vite's optimizer
/// cache and bundled configs, `tsc -b`'s build info in the create-vite templates), never
/// dependencies: a copy starts without them.
const NODE_MODULES_STATE: [&str; 4] = [".cache", ".tmp", ".vite", ".vite-temp"];

/// The repository root (`cli/..`).
pub(crate) fn repo_root() -> PathBuf {
    let cli = Path::new(env!("CARGO_MANIFEST_DIR"));
    cli.parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| cli.to_path_buf())
}

/// `fixtures/<name>` in the repository.
pub(crate) fn fixture_dir(name: &str) -> PathBuf {
    repo_root().join("fixtures").join(name)
}

/// The `vp` binary under test: the one cargo built for this test run, or `VP_TEST_BIN` (an
/// absolute path) when set, as in `tests/trace.rs`: the release binary as shipped runs the same
/// scenarios (docs/development.md).
pub(crate) fn vp_bin() -> PathBuf {
    std::env::var_os("VP_TEST_BIN")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_vp")), PathBuf::from)
}

/// How a fixture's installed `node_modules` reaches the copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NodeModules {
    /// A real `node_modules` directory whose entries are symlinks into the fixture's. Fast; Node
    /// and Vite resolve packages to their real paths, which are then outside the workspace.
    Link,
    /// A full copy: every path the tools touch is inside the workspace. Slower (Vite 8 is ~30 MB).
    Copy,
}

/// A fresh copy of one fixture. The temp dir holds `ws/` (the workspace root) and
/// `.e2e/exec.log` (outside the workspace, named to every run by `VP_E2E_EXEC_LOG`; the fixture
/// scripts append their task name to it, which tells a real execution from a cache replay). It
/// is in a hidden directory: a file a task leaves beside the workspace, anywhere else, keeps the
/// run from being stored (docs/tracing.md, "What is not looked at").
pub(crate) struct Workspace {
    temp: Option<tempfile::TempDir>,
    root: PathBuf,
    exec_log: PathBuf,
    fixture: String,
}

impl Workspace {
    /// A copy of `fixtures/<name>`, its npm dependencies (if it has any) linked.
    #[track_caller]
    pub(crate) fn new(fixture: &str) -> Workspace {
        Workspace::with_node_modules(fixture, NodeModules::Link)
    }

    /// A copy of `fixtures/<name>` whose npm dependencies reach the copy as `mode` says.
    #[track_caller]
    pub(crate) fn with_node_modules(fixture: &str, mode: NodeModules) -> Workspace {
        let src = fixture_dir(fixture);
        assert!(src.is_dir(), "fixture {} does not exist", src.display());
        let needs_install = declares_registry_dependencies(&src.join("package.json"));
        if needs_install {
            let installed = src.join("node_modules");
            assert!(
                installed.join(".package-lock.json").is_file(),
                "{} is missing or incomplete: run scripts/bootstrap.sh (it installs the fixtures' npm dependencies)",
                installed.display()
            );
        }
        let temp = tempfile::Builder::new()
            .prefix("vp-e2e-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
        // Canonical, so paths printed by tools (which resolve symlinks) match ours.
        let base = fs::canonicalize(temp.path())
            .unwrap_or_else(|e| panic!("cannot resolve {}: {e}", temp.path().display()));
        let root = base.join("ws");
        let copy = Copier {
            node_modules: needs_install.then_some(mode),
        };
        copy.dir(&src, &root).unwrap_or_else(|e| {
            panic!(
                "copying fixture {} to {}: {e}",
                src.display(),
                root.display()
            )
        });
        let exec_log = base.join(".e2e/exec.log");
        fs::create_dir_all(base.join(".e2e")).expect("mkdir .e2e");
        Workspace {
            temp: Some(temp),
            root,
            exec_log,
            fixture: fixture.to_owned(),
        }
    }

    /// The workspace root (the copy of the fixture directory).
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// An absolute path inside the workspace.
    pub(crate) fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root.join(rel)
    }

    /// `vp <args>` in the workspace root (change it with `.cwd("packages/app")`).
    ///
    /// The environment is the test's own minus everything that could leak into the scenario
    /// (`VP_*`, `VITE_*`, the bridge variable), with `NO_COLOR=1` for plain text and
    /// `VP_E2E_EXEC_LOG` set.
    pub(crate) fn vp<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run(vp_bin()).args(args)
    }

    /// `vp <args>` (one shell-quoted string) under a pseudo-terminal: util-linux `script` gives
    /// it one for stdin, stdout and stderr and copies what it prints to its own stdout (both
    /// streams, with `\r\n` line ends).
    #[track_caller]
    pub(crate) fn vp_on_terminal(&self, args: &str) -> Run {
        let script = Path::new("/usr/bin/script");
        assert!(
            script.is_file(),
            "this test needs util-linux `script` at {} for a pseudo-terminal (hint: install util-linux)",
            script.display()
        );
        let command = format!("'{}' {args}", vp_bin().display());
        self.run(script).args(["-qec", &command, "/dev/null"])
    }

    /// Any program (e.g. `node`), in the workspace root, with the same environment as `vp`.
    pub(crate) fn run(&self, program: impl AsRef<OsStr>) -> Run {
        let mut run = Run::new(program, &self.root);
        for (key, _) in std::env::vars_os() {
            let name = key.to_string_lossy();
            if name.starts_with("VP_") || name.starts_with("VITE_") || name.starts_with("VERB_") {
                run = run.env_remove(&key);
            }
        }
        run.env("NO_COLOR", "1")
            .env("VP_E2E_EXEC_LOG", &self.exec_log)
    }

    /// `node <args>` in the workspace root.
    pub(crate) fn node<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run("node").args(args)
    }

    /// Reads a file of the workspace as text.
    #[track_caller]
    pub(crate) fn read(&self, rel: impl AsRef<Path>) -> String {
        let path = self.path(rel);
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    }

    /// Writes a file (creating its parent directories).
    #[track_caller]
    pub(crate) fn write(&self, rel: impl AsRef<Path>, contents: impl AsRef<[u8]>) {
        let path = self.path(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("creating {}: {e}", parent.display()));
        }
        fs::write(&path, contents).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }

    /// Writes `hold.js`, a script that creates `started` (best outside the workspace, so that no
    /// watched directory changes) and then sleeps two minutes: run as a cached task, it keeps
    /// its vp, and so the store's lock, busy while the test needs it.
    pub(crate) fn write_lock_holder(&self, started: &Path) {
        self.write(
            "hold.js",
            format!(
                "require('fs').writeFileSync({:?}, 'yes');\nsetTimeout(() => {{}}, 120000);\n",
                started.display().to_string()
            ),
        );
    }

    /// Starts `vp run hold` (a cached task running the script of [`Workspace::write_lock_holder`],
    /// which the test's config names `hold`) and returns once its script runs: its vp then holds
    /// the store's lock until the test signals it.
    #[track_caller]
    pub(crate) fn hold_the_lock(&self, started: &Path) -> super::run::Running {
        let holder = self
            .vp(["run", "hold"])
            .timeout(std::time::Duration::from_secs(600))
            .spawn();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        assert!(
            super::run::wait_until(deadline, || started.exists()),
            "the other vp's task did not start"
        );
        holder
    }

    /// Rewrites a text file through `edit`; panics if the edit changes nothing, because a test
    /// that expects a miss after a no-op edit would be testing nothing.
    #[track_caller]
    pub(crate) fn edit(&self, rel: impl AsRef<Path>, edit: impl FnOnce(&str) -> String) {
        let rel = rel.as_ref();
        let before = self.read(rel);
        let after = edit(&before);
        assert_ne!(before, after, "editing {} changed nothing", rel.display());
        self.write(rel, after);
    }

    /// Removes a file, a symlink or a whole directory; missing is fine (like `rm -rf`).
    #[track_caller]
    pub(crate) fn remove(&self, rel: impl AsRef<Path>) {
        let path = self.path(rel);
        let result = match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
            Ok(meta) if meta.is_dir() => fs::remove_dir_all(&path),
            Ok(_) => fs::remove_file(&path),
        };
        result.unwrap_or_else(|e| panic!("removing {}: {e}", path.display()));
    }

    pub(crate) fn exists(&self, rel: impl AsRef<Path>) -> bool {
        fs::symlink_metadata(self.path(rel)).is_ok()
    }

    /// A byte-for-byte snapshot of a directory of the workspace.
    #[track_caller]
    pub(crate) fn tree(&self, rel: impl AsRef<Path>) -> Tree {
        let path = self.path(rel);
        Tree::capture(&path).unwrap_or_else(|e| panic!("snapshotting {}: {e}", path.display()))
    }

    /// Waits (polling) until `rel` exists, e.g. a marker a task writes when it has started.
    #[track_caller]
    pub(crate) fn wait_for(&self, rel: impl AsRef<Path>, timeout: std::time::Duration) {
        let path = self.path(rel);
        let found = super::run::wait_until(std::time::Instant::now() + timeout, || path.exists());
        assert!(
            found,
            "{} did not appear within {timeout:?}",
            path.display()
        );
    }

    /// Waits until a task has written its pid to `rel` (it may be seen empty while being
    /// written), generously: a traced Node start on a loaded 2-core machine running the suite.
    #[track_caller]
    pub(crate) fn read_pid(&self, rel: impl AsRef<Path>) -> i32 {
        let path = self.path(rel);
        let mut pid = None;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
        let found = super::run::wait_until(deadline, || {
            pid = fs::read_to_string(&path)
                .ok()
                .and_then(|t| t.trim().parse().ok());
            pid.is_some()
        });
        assert!(found, "{} never held a pid", path.display());
        pid.unwrap_or(0)
    }

    /// The file the fixture scripts append their task name to on every real execution.
    pub(crate) fn exec_log(&self) -> &Path {
        &self.exec_log
    }

    /// The executions recorded since the last call (and clears the record).
    #[track_caller]
    pub(crate) fn take_executions(&self) -> Vec<String> {
        let text = match fs::read_to_string(&self.exec_log) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => panic!("reading {}: {e}", self.exec_log.display()),
        };
        fs::remove_file(&self.exec_log)
            .unwrap_or_else(|e| panic!("removing {}: {e}", self.exec_log.display()));
        text.lines().map(str::to_owned).collect()
    }
}

impl Drop for Workspace {
    /// Deletes the copy, unless `VP_E2E_KEEP` is set. Failed tests do not keep theirs by default:
    /// copies with `node_modules` are large and CI runs would pile them up in the temp dir.
    fn drop(&mut self) {
        let Some(temp) = self.temp.take() else { return };
        if std::env::var_os("VP_E2E_KEEP").is_some() {
            let path = temp.keep();
            eprintln!(
                "e2e: kept the copy of fixture {} at {}",
                self.fixture,
                path.display()
            );
        } else if std::thread::panicking() {
            eprintln!(
                "e2e: deleting the copy of fixture {} at {} (set VP_E2E_KEEP=1 to keep it)",
                self.fixture,
                temp.path().display()
            );
        }
    }
}

/// True when package.json names dependencies that come from a registry (what bootstrap installs);
/// `workspace:` links of the example need no install. A missing or unreadable file has none.
fn declares_registry_dependencies(package_json: &Path) -> bool {
    let Ok(text) = fs::read_to_string(package_json) else {
        return false;
    };
    let json: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", package_json.display()));
    ["dependencies", "devDependencies", "optionalDependencies"]
        .iter()
        .any(|field| {
            json.get(field)
                .and_then(|deps| deps.as_object())
                .is_some_and(|deps| {
                    deps.values()
                        .any(|v| !v.as_str().is_some_and(|v| v.starts_with("workspace:")))
                })
        })
}

/// Copies a fixture, preserving symlinks and permission bits.
struct Copier {
    /// How to bring `node_modules` along; `None`: leave every `node_modules` out.
    node_modules: Option<NodeModules>,
}

impl Copier {
    fn dir(&self, src: &Path, dst: &Path) -> io::Result<()> {
        fs::create_dir_all(dst)?;
        for entry in fs::read_dir(src)? {
            let entry = entry?;
            let name = entry.file_name();
            let (from, to) = (entry.path(), dst.join(&name));
            let kind = entry.file_type()?;
            if kind.is_dir() && name == "node_modules" {
                match self.node_modules {
                    Some(NodeModules::Link) => link_node_modules(&from, &to)?,
                    Some(NodeModules::Copy) => copy_node_modules(&from, &to)?,
                    None => {}
                }
            } else if kind.is_dir() {
                if !NOT_COPIED.iter().any(|skip| name == *skip) {
                    self.dir(&from, &to)?;
                }
            } else if !NOT_COPIED_FILES.iter().any(|skip| name == *skip) {
                copy_entry(&from, &to, kind)?;
            }
        }
        Ok(())
    }
}

fn node_modules_entries(src: &Path) -> io::Result<Vec<fs::DirEntry>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        if !NODE_MODULES_STATE
            .iter()
            .any(|state| entry.file_name() == *state)
        {
            out.push(entry);
        }
    }
    Ok(out)
}

/// A real directory of absolute symlinks, so state written into `node_modules/.cache` or
/// `.vite-temp` stays in the copy instead of landing in the repository's fixture.
fn link_node_modules(src: &Path, dst: &Path) -> io::Result<()> {
    fs::create_dir_all(dst)?;
    for entry in node_modules_entries(src)? {
        symlink(entry.path(), dst.join(entry.file_name()))?;
    }
    Ok(())
}

fn copy_node_modules(src: &Path, dst: &Path) -> io::Result<()> {
    fs::create_dir_all(dst)?;
    for entry in node_modules_entries(src)? {
        copy_entry(
            &entry.path(),
            &dst.join(entry.file_name()),
            entry.file_type()?,
        )?;
    }
    Ok(())
}

/// Copies one entry of any kind; directories recursively with everything in them.
fn copy_entry(from: &Path, to: &Path, kind: fs::FileType) -> io::Result<()> {
    if kind.is_symlink() {
        symlink(fs::read_link(from)?, to)
    } else if kind.is_dir() {
        fs::create_dir_all(to)?;
        for entry in fs::read_dir(from)? {
            let entry = entry?;
            copy_entry(
                &entry.path(),
                &to.join(entry.file_name()),
                entry.file_type()?,
            )?;
        }
        Ok(())
    } else {
        // fs::copy keeps the permission bits (the executable bit matters for .bin scripts).
        fs::copy(from, to).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_leaves_build_products_and_state_behind() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (src, dst) = (dir.path().join("fixture"), dir.path().join("copy"));
        for file in [
            "package.json",
            "src/a.js",
            "dist/a.js",
            ".tool-cache/s.json",
            "src/.eslintcache",
            "node_modules/.cache/vp/x",
            "node_modules/dep/index.js",
        ] {
            let path = src.join(file);
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            fs::write(&path, file).expect("write");
        }
        symlink("a.js", src.join("src/link.js")).expect("symlink");

        Copier { node_modules: None }.dir(&src, &dst).expect("copy");
        let tree = Tree::capture(&dst).expect("capture");
        let paths: Vec<_> = tree.paths().map(|p| p.display().to_string()).collect();
        assert_eq!(paths, ["package.json", "src", "src/a.js", "src/link.js"]);

        let linked = dir.path().join("linked");
        Copier {
            node_modules: Some(NodeModules::Link),
        }
        .dir(&src, &linked)
        .expect("copy");
        assert!(linked.join("node_modules/dep/index.js").is_file());
        assert!(!linked.join("node_modules/.cache").exists());
    }

    #[test]
    fn linked_node_modules_are_real_dirs_of_symlinks_without_state() {
        let ws = Workspace::with_node_modules("vite-app", NodeModules::Link);
        let nm = ws.path("node_modules");
        assert!(
            !fs::symlink_metadata(&nm)
                .expect("node_modules")
                .file_type()
                .is_symlink()
        );
        let vite = fs::symlink_metadata(nm.join("vite")).expect("node_modules/vite");
        assert!(vite.file_type().is_symlink());
        let real = |p: PathBuf| {
            fs::canonicalize(&p).unwrap_or_else(|e| panic!("resolving {}: {e}", p.display()))
        };
        assert_eq!(
            real(nm.join("vite")),
            real(fixture_dir("vite-app").join("node_modules/vite"))
        );
        for state in NODE_MODULES_STATE {
            assert!(
                !ws.exists(Path::new("node_modules").join(state)),
                "{state} was copied"
            );
        }
    }

    #[test]
    fn copied_node_modules_are_inside_the_workspace() {
        let ws = Workspace::with_node_modules("vite7-app", NodeModules::Copy);
        let vite = ws.path("node_modules/vite/package.json");
        assert!(
            !fs::symlink_metadata(ws.path("node_modules/vite"))
                .expect("vite")
                .file_type()
                .is_symlink()
        );
        assert!(
            fs::canonicalize(&vite)
                .expect("resolve")
                .starts_with(ws.root())
        );
        // .bin entries stay relative symlinks, so they point into the copy.
        let bin = fs::canonicalize(ws.path("node_modules/.bin/vite")).expect("resolve .bin/vite");
        assert!(bin.starts_with(ws.root()), "{}", bin.display());
    }

    #[test]
    fn the_example_needs_no_install_and_gets_no_node_modules() {
        let ws = Workspace::new("example");
        assert!(!ws.exists("node_modules"));
        assert!(ws.path("packages/app/build.js").is_file());
    }

    #[test]
    fn registry_dependencies_are_told_apart_from_workspace_links() {
        let dir = tempfile::tempdir().expect("temp dir");
        let f = dir.path().join("package.json");
        let cases = [
            (r#"{"name":"a"}"#, false),
            (r#"{"dependencies":{"@x/y":"workspace:*"}}"#, false),
            (r#"{"devDependencies":{"vite":"8.3.8"}}"#, true),
            (
                r#"{"dependencies":{"@x/y":"workspace:^"},"optionalDependencies":{"z":"1"}}"#,
                true,
            ),
        ];
        for (json, expected) in cases {
            fs::write(&f, json).expect("write");
            assert_eq!(declares_registry_dependencies(&f), expected, "{json}");
        }
        assert!(!declares_registry_dependencies(
            &dir.path().join("missing.json")
        ));
    }

    #[test]
    fn edit_refuses_a_no_op() {
        let ws = Workspace::new("empties-dist");
        ws.edit("src/style.css", |s| s.replace("sans-serif", "serif"));
        assert!(ws.read("src/style.css").contains("serif"));
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ws.edit("src/style.css", str::to_owned)
        }));
        assert!(result.is_err(), "a no-op edit must fail the test");
    }

    #[test]
    fn executions_are_taken_once() {
        let ws = Workspace::new("empties-dist");
        assert!(ws.take_executions().is_empty());
        fs::write(ws.exec_log(), "build\nbuild\n").expect("write");
        assert_eq!(ws.take_executions(), ["build", "build"]);
        assert!(ws.take_executions().is_empty());
    }
}
