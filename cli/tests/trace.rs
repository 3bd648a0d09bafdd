//! End-to-end tests of the tracer: each runs a real program under
//! `vp trace --json --log` in a temporary directory and checks how its file
//! accesses were classified (ARCHITECTURE §4, issue 4).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The binary under test. `VP_TEST_BIN` overrides it: worktrees sharing one
/// `CARGO_TARGET_DIR` overwrite each other's `target/debug/vp`.
fn vp() -> String {
    std::env::var("VP_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_vp").to_owned())
}

/// A finished `vp trace --json --log` run.
struct Traced {
    json: Value,
    stderr: String,
    code: Option<i32>,
}

impl Traced {
    fn input(&self, path: &str) -> Option<&str> {
        self.json["inputs"][path]["kind"].as_str()
    }
    fn probe(&self, path: &str) -> Option<&str> {
        self.json["inputs"][path]["found"].as_str()
    }
    fn output(&self, path: &str) -> Option<&str> {
        self.json["outputs"][path].as_str()
    }
    fn list(&self, key: &str) -> Vec<&str> {
        self.json[key]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }
    fn input_paths(&self) -> Vec<&str> {
        self.json["inputs"]
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }
    fn accesses(&self) -> &[Value] {
        self.json["accesses"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

fn run(dir: &Path, command: &[&str], env: &[(&str, &str)]) -> Traced {
    let output: Output = Command::new(vp())
        .args(["trace", "--json", "--log", "--root"])
        .arg(dir)
        .arg("--")
        .args(command)
        .current_dir(dir)
        .envs(env.iter().copied())
        .output()
        .expect("run vp trace");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let json = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("vp trace printed no JSON ({err}); stderr:\n{stderr}"));
    let traced = Traced {
        json,
        stderr,
        code: output.status.code(),
    };
    assert_eq!(
        traced.json["traced"], true,
        "not traced; stderr:\n{}",
        traced.stderr
    );
    traced
}

fn workdir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().canonicalize().expect("canonical tempdir");
    (tmp, dir)
}

fn write(dir: &Path, rel: &str, content: &str) {
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("mkdir");
    }
    fs::write(path, content).expect("write fixture");
}

fn node_available() -> bool {
    let found = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(found, "these tests need Node.js (`node`) on PATH");
    found
}

#[test]
fn cat_reads_its_argument() {
    let (_tmp, dir) = workdir();
    write(&dir, "a.txt", "hello");
    let t = run(&dir, &["cat", "a.txt"], &[]);
    assert_eq!(t.code, Some(0));
    assert_eq!(t.input("a.txt"), Some("content-read"));
    assert!(
        t.json["outputs"].as_object().is_some_and(|o| o.is_empty()),
        "{}",
        t.json
    );
    // The loader, libc and locale files are outside the root.
    assert!(t.json["excluded"].as_u64().is_some_and(|n| n > 0));
    assert_eq!(t.json["cacheable"], true);
}

#[test]
fn exit_code_is_the_commands() {
    let (_tmp, dir) = workdir();
    let t = run(&dir, &["sh", "-c", "exit 3"], &[]);
    assert_eq!(t.code, Some(3));
    assert_eq!(t.json["exit_code"], 3);
}

#[test]
fn shell_redirection_chain() {
    let (_tmp, dir) = workdir();
    write(&dir, "a", "data");
    let t = run(&dir, &["sh", "-c", "cat a > b"], &[]);
    assert_eq!(t.input("a"), Some("content-read"));
    assert_eq!(t.output("b"), Some("file"));
    assert_eq!(t.input("b"), None);
    assert_eq!(
        fs::read_to_string(dir.join("b")).expect("b written"),
        "data"
    );
}

const NODE_FS: &str = r"
const fs = require('fs');
fs.readFileSync('sync.txt');
if (fs.existsSync('missing.txt')) process.exit(2);
fs.readdirSync('dir');
fs.readFile('async.txt', (err) => { if (err) process.exit(1); });
";

fn node_fs_fixture(dir: &Path) {
    write(dir, "sync.txt", "s");
    write(dir, "async.txt", "a");
    write(dir, "dir/entry.txt", "e");
}

fn assert_node_fs(t: &Traced) {
    assert_eq!(t.code, Some(0), "{}", t.stderr);
    assert_eq!(t.input("sync.txt"), Some("content-read"));
    assert_eq!(t.input("async.txt"), Some("content-read"));
    assert_eq!(t.input("missing.txt"), Some("probe"));
    assert_eq!(t.probe("missing.txt"), Some("missing"));
    assert_eq!(t.input("dir"), Some("listing"));
    // Listing a directory does not read its entries.
    assert_eq!(t.input("dir/entry.txt"), None);
}

#[test]
fn node_sync_async_exists_and_readdir() {
    if !node_available() {
        return;
    }
    let (_tmp, dir) = workdir();
    node_fs_fixture(&dir);
    let t = run(&dir, &["node", "-e", NODE_FS], &[]);
    assert_node_fs(&t);

    // The async read ran on a libuv threadpool thread, not the main thread
    // (whose tid is the process id: the first access is its own execve).
    let main_tid = t
        .accesses()
        .first()
        .and_then(|a| a["tid"].as_u64())
        .expect("some access");
    let async_reads: Vec<u64> = t
        .accesses()
        .iter()
        .filter(|a| {
            a["op"] == "read"
                && a["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("/async.txt"))
        })
        .filter_map(|a| a["tid"].as_u64())
        .collect();
    assert!(!async_reads.is_empty(), "async.txt open not in the log");
    assert!(
        async_reads.iter().all(|tid| *tid != main_tid),
        "async read on the main thread: {async_reads:?}"
    );
}

#[test]
fn node_with_io_uring_requested_still_shows_its_opens() {
    if !node_available() {
        return;
    }
    let (_tmp, dir) = workdir();
    node_fs_fixture(&dir);
    let t = run(&dir, &["node", "-e", NODE_FS], &[("UV_USE_IO_URING", "1")]);
    assert_node_fs(&t);
}

#[test]
fn emptying_and_rewriting_dist_keeps_only_the_listing_of_dist() {
    if !node_available() {
        return;
    }
    let (_tmp, dir) = workdir();
    write(&dir, "src/main.js", "console.log(1)");
    write(&dir, "dist/index.html", "old");
    write(&dir, "dist/assets/index-OLD.js", "old");
    write(&dir, "dist/assets/index-OLD.css", "old");
    let script = r"
const fs = require('fs'), path = require('path');
function empty(dir) {
  if (!fs.existsSync(dir)) return;
  for (const name of fs.readdirSync(dir)) {
    const p = path.join(dir, name);
    if (fs.statSync(p).isDirectory()) { empty(p); fs.rmdirSync(p); } else fs.unlinkSync(p);
  }
}
const src = fs.readFileSync('src/main.js', 'utf8');
empty('dist');
fs.mkdirSync('dist/assets', { recursive: true });
fs.writeFileSync('dist/assets/index-NEW.js', src);
fs.writeFileSync('dist/index.html', '<script src=assets/index-NEW.js></script>');
";
    let t = run(&dir, &["node", "-e", script], &[]);
    assert_eq!(t.code, Some(0), "{}", t.stderr);
    let dist_inputs: Vec<&str> = t
        .input_paths()
        .into_iter()
        .filter(|p| p.starts_with("dist"))
        .collect();
    // What it found in dist/ decided what it removed; nothing in it is an
    // input, and the names it left are the listing (docs/tracing.md).
    assert_eq!(dist_inputs, ["dist"], "no file in dist/ is an input");
    assert_eq!(t.input("dist"), Some("listing"));
    assert_eq!(t.input("src/main.js"), Some("content-read"));
    assert_eq!(t.output("dist/assets/index-NEW.js"), Some("file"));
    assert_eq!(t.output("dist/index.html"), Some("file"));
    assert!(
        t.list("deleted").contains(&"dist/assets/index-OLD.js"),
        "{}",
        t.json["deleted"]
    );
    assert!(t.list("modified_inputs").is_empty());
    assert_eq!(t.json["cacheable"], true);
}

#[test]
fn write_read_delete_temp_file_is_neither() {
    if !node_available() {
        return;
    }
    let (_tmp, dir) = workdir();
    let script = r"
const fs = require('fs');
fs.writeFileSync('scratch.tmp', 'x');
fs.readFileSync('scratch.tmp');
fs.unlinkSync('scratch.tmp');
";
    let t = run(&dir, &["node", "-e", script], &[]);
    assert_eq!(t.code, Some(0), "{}", t.stderr);
    assert_eq!(t.list("temporaries"), vec!["scratch.tmp"]);
    assert_eq!(t.input("scratch.tmp"), None);
    assert_eq!(t.output("scratch.tmp"), None);
}

#[test]
fn rust_std_operations() {
    let (_tmp, dir) = workdir();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/trace_fs_ops.rs");
    let program = dir.join("trace_fs_ops");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let built = Command::new(&rustc)
        .args(["--edition", "2021", "-o"])
        .arg(&program)
        .arg(&source)
        .output()
        .expect("run rustc");
    assert!(
        built.status.success(),
        "rustc failed: {}",
        String::from_utf8_lossy(&built.stderr)
    );

    let project = dir.join("project");
    write(&project, "input.txt", "input");
    write(&project, "meta.txt", "meta");
    write(&project, "src/a.rs", "");
    write(&project, "target.txt", "target");
    std::os::unix::fs::symlink("target.txt", project.join("link")).expect("symlink");
    write(&project, "old/stale/file.o", "");
    let t = run(&project, &[program.to_str().expect("utf8 path")], &[]);
    assert_eq!(t.code, Some(0), "{}", t.stderr);

    assert_eq!(t.input("input.txt"), Some("content-read"));
    // fs::metadata is a stat: size and mtime reach the program.
    assert_eq!(t.input("meta.txt"), Some("metadata"));
    assert_eq!(t.input("src"), Some("listing"));
    // canonicalize: the link (its target text) and the file it leads to.
    assert_eq!(t.input("link"), Some("symlink"));
    assert_eq!(t.json["inputs"]["link"]["target"], "target.txt");
    assert_eq!(t.input("target.txt"), Some("probe"));
    // create_dir_all + write + rename.
    assert_eq!(t.output("out/nested/final.txt"), Some("file"));
    assert_eq!(t.list("temporaries"), vec!["out/nested/tmp.txt"]);
    // remove_dir_all of a pre-existing tree.
    let deleted = t.list("deleted");
    for path in ["old", "old/stale", "old/stale/file.o"] {
        assert!(
            deleted.contains(&path),
            "{path} not in deleted: {deleted:?}"
        );
    }
    assert!(
        t.input_paths()
            .iter()
            .all(|p| !p.starts_with("old") && !p.starts_with("out")),
        "{:?}",
        t.input_paths()
    );
}

/// Installs esbuild from npm once per machine (a static Go binary: the
/// case LD_PRELOAD cannot see). `None` (with a loud message) if npm fails.
fn esbuild() -> Option<PathBuf> {
    let home = std::env::temp_dir().join("vp-trace-test-esbuild");
    let binary = home.join("node_modules/@esbuild/linux-x64/bin/esbuild");
    if binary.is_file() {
        return Some(binary);
    }
    fs::create_dir_all(&home).expect("mkdir esbuild home");
    fs::write(home.join("package.json"), r#"{"private":true}"#).expect("write package.json");
    let installed = Command::new("npm")
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "esbuild@0.25",
        ])
        .current_dir(&home)
        .output();
    match installed {
        Ok(out) if out.status.success() && binary.is_file() => Some(binary),
        Ok(out) => {
            eprintln!(
                "!!!!! SKIPPED: `npm install esbuild` failed, the esbuild trace test did not run !!!!!\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            None
        }
        Err(err) => {
            eprintln!(
                "!!!!! SKIPPED: could not run npm ({err}), the esbuild trace test did not run !!!!!"
            );
            None
        }
    }
}

#[test]
fn esbuild_bundle_static_go_binary() {
    let Some(esbuild) = esbuild() else { return };
    let (_tmp, dir) = workdir();
    write(
        &dir,
        "src/main.js",
        "import { twice } from './lib/util.js';\nconsole.log(twice(2));\n",
    );
    write(
        &dir,
        "src/lib/util.js",
        "export const twice = (n) => n * 2;\n",
    );
    let t = run(
        &dir,
        &[
            esbuild.to_str().expect("utf8"),
            "src/main.js",
            "--bundle",
            "--outfile=out/bundle.js",
        ],
        &[],
    );
    assert_eq!(t.code, Some(0), "{}", t.stderr);
    assert_eq!(t.input("src/main.js"), Some("content-read"));
    assert_eq!(t.input("src/lib/util.js"), Some("content-read"));
    assert_eq!(t.output("out/bundle.js"), Some("file"));
    assert_eq!(t.input("out/bundle.js"), None);
    // (Which Go thread makes each call is up to the Go scheduler: threads
    // are checked with Node's threadpool above, not here.)
}

#[test]
fn nested_vp_trace_runs_untraced_with_a_notice() {
    let (_tmp, dir) = workdir();
    write(&dir, "x", "nested");
    let out = Command::new(vp())
        .args(["trace", "--json", "--root"])
        .arg(&dir)
        .args(["--", vp().as_str(), "trace", "--", "cat", "x"])
        .current_dir(&dir)
        .output()
        .expect("run nested vp trace");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("ran without file tracing"), "{stderr}");
    assert!(
        stderr.contains("already has a file-access tracer"),
        "{stderr}"
    );
    // The command's stdout went to stderr (`--json`), and the outer tracer
    // saw `cat` read `x` through the inner vp. (`cat` ran with the inner
    // vp's in-process log and trampoline, whose calls the outer filter
    // does not let through unnotified.)
    assert!(stderr.contains("nested"), "{stderr}");
    let json: Value = serde_json::from_slice(&out.stdout).expect("outer JSON");
    assert_eq!(json["inputs"]["x"]["kind"], "content-read");
}

#[test]
fn missing_program_is_a_clear_error() {
    let (_tmp, dir) = workdir();
    let out = Command::new(vp())
        .args(["trace", "--", "definitely-not-a-program-vp"])
        .current_dir(&dir)
        .output()
        .expect("run vp trace");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("could not start `definitely-not-a-program-vp`"),
        "{stderr}"
    );
}

/// Issue: write paths were resolved after the run, so a file written as `dist/link/y.txt`
/// while `link -> inner` was filed under the link's later target and lost from the entry.
#[test]
fn a_write_through_a_symlink_repointed_later_is_filed_where_it_landed() {
    let (_tmp, dir) = workdir();
    let script = "mkdir -p dist/inner dist/other && ln -s inner dist/link \
                  && echo y > dist/link/y.txt && ln -sfn other dist/link";
    let t = run(&dir, &["sh", "-c", script], &[]);
    assert_eq!(t.code, Some(0), "{}", t.stderr);
    assert_eq!(
        t.output("dist/inner/y.txt"),
        Some("file"),
        "{}",
        t.json["outputs"]
    );
    assert_eq!(
        t.output("dist/link"),
        Some("symlink"),
        "{}",
        t.json["outputs"]
    );
    assert_eq!(t.output("dist/other/y.txt"), None);
    assert_eq!(t.json["cacheable"], true, "{}", t.json["untraceable"]);
}

/// The read side of the same class: reads are resolved after the run, so a task that repoints
/// a symlink after reading through it has inputs vp cannot pin down, and is not cacheable.
#[test]
fn a_read_through_a_symlink_repointed_later_makes_the_run_uncacheable() {
    let (_tmp, dir) = workdir();
    write(&dir, "cfg/a/settings.txt", "a");
    write(&dir, "cfg/b/settings.txt", "b");
    std::os::unix::fs::symlink("a", dir.join("cfg/current")).expect("symlink");
    let t = run(
        &dir,
        &[
            "sh",
            "-c",
            "cat cfg/current/settings.txt > out.txt && ln -sfn b cfg/current",
        ],
        &[],
    );
    assert_eq!(t.code, Some(0), "{}", t.stderr);
    assert_eq!(t.json["cacheable"], false, "{}", t.json);
    let why = t.list("untraceable").join("\n");
    assert!(why.contains("repointed the symlink"), "{why}");
}

/// Issue: a file the task only `stat`ed was fingerprinted by existence, so `tsc -b` (which stats
/// sources and compares mtimes) got stale hits. A stat of a file is a metadata input.
#[test]
fn a_stat_of_a_file_is_a_metadata_input() {
    if !node_available() {
        return;
    }
    let (_tmp, dir) = workdir();
    write(&dir, "src/a.ts", "export {}");
    let t = run(
        &dir,
        &[
            "node",
            "-e",
            "require('fs').statSync('src/a.ts'); require('fs').statSync('src')",
        ],
        &[],
    );
    assert_eq!(t.code, Some(0), "{}", t.stderr);
    assert_eq!(
        t.input("src/a.ts"),
        Some("metadata"),
        "{}",
        t.json["inputs"]
    );
    assert_eq!(t.input("src"), Some("probe"));
    assert_eq!(t.probe("src"), Some("dir"));
}

/// Review: a write through a dangling symlink creates the link's target. It must be recorded
/// there (canonicalize gives up on a dangling link), or a hit restores only the link.
#[test]
fn a_write_through_a_dangling_symlink_is_filed_at_its_target() {
    let (_tmp, dir) = workdir();
    fs::create_dir_all(dir.join("dist")).expect("mkdir");
    std::os::unix::fs::symlink("real.js", dir.join("dist/link.js")).expect("symlink");
    let t = run(&dir, &["sh", "-c", "echo bundle > dist/link.js"], &[]);
    assert_eq!(t.code, Some(0), "{}", t.stderr);
    assert_eq!(
        t.output("dist/real.js"),
        Some("file"),
        "{}",
        t.json["outputs"]
    );
    assert_eq!(t.json["cacheable"], true, "{}", t.json["untraceable"]);
}

/// Every way of reading the preload library records in-process (relative
/// and absolute opens, stat, lstat, access, readlink, a failed open, a
/// listing, realpath), plus writes, renames and removes, which it leaves to
/// the notified way; 200 small files so the difference in notifications
/// is unmistakable.
const NODE_EVERY_READ: &str = r"
const fs = require('fs');
const path = require('path');
let n = 0;
for (let i = 0; i < 200; i++) n += fs.readFileSync(`many/f${i}.txt`).length;
n += fs.readFileSync(path.resolve('abs.txt')).length;
fs.statSync('abs.txt'); fs.lstatSync('link'); fs.readlinkSync('link');
fs.accessSync('abs.txt'); fs.existsSync('missing.txt');
try { fs.readFileSync('nope/none.txt'); } catch {}
fs.readdirSync('many'); fs.realpathSync('link');
fs.mkdirSync('out', { recursive: true });
fs.writeFileSync('out/tmp.txt', String(n));
fs.renameSync('out/tmp.txt', 'out/n.txt');
fs.writeFileSync('gone.txt', 'x'); fs.unlinkSync('gone.txt');
n += fs.readFileSync('out/n.txt').length;
";

fn every_read_fixture(dir: &Path) {
    for i in 0..200 {
        write(dir, &format!("many/f{i}.txt"), "some content");
    }
    write(dir, "abs.txt", "absolute");
    std::os::unix::fs::symlink("abs.txt", dir.join("link")).expect("symlink");
}

const IN_PROCESS_OFF: (&str, &str) = ("VP_TRACE_IN_PROCESS", "0");

/// (notified, recorded in-process) calls of a run.
fn calls(t: &Traced) -> (u64, u64) {
    let count = |key: &str| {
        t.json["calls"][key]
            .as_u64()
            .unwrap_or_else(|| panic!("no calls.{key} in {}", t.json["calls"]))
    };
    (count("notified"), count("in_process"))
}

/// The distinct (operation, path) pairs a run recorded under `dir`.
fn accesses_under(t: &Traced, dir: &Path) -> std::collections::BTreeSet<(String, String)> {
    let dir = dir.to_string_lossy();
    t.accesses()
        .iter()
        .filter_map(|a| {
            let path = a["path"].as_str()?;
            let rel = path.strip_prefix(dir.as_ref())?;
            Some((a["op"].as_str()?.to_owned(), rel.to_owned()))
        })
        .collect()
}

/// What `vp run` would make of a run: everything but the log.
fn classification(t: &Traced) -> Value {
    let mut doc = t.json.clone();
    for key in ["accesses", "calls", "excluded"] {
        doc.as_object_mut().expect("object").remove(key);
    }
    doc
}

/// Issue 14: with the in-process tracer on (the default), a dynamically
/// linked program's reads skip the notification, and the run's accesses
/// and classification are exactly those of a run with every call notified.
#[test]
fn in_process_recording_sees_what_notification_sees() {
    if !node_available() {
        return;
    }
    let (_tmp, dir) = workdir();
    every_read_fixture(&dir);
    let notified = run(&dir, &["node", "-e", NODE_EVERY_READ], &[IN_PROCESS_OFF]);
    fs::remove_dir_all(dir.join("out")).expect("reset out/");
    let in_process = run(&dir, &["node", "-e", NODE_EVERY_READ], &[]);
    for t in [&notified, &in_process] {
        assert_eq!(t.code, Some(0), "{}", t.stderr);
        assert_eq!(t.input("many/f199.txt"), Some("content-read"));
        assert_eq!(t.input("abs.txt"), Some("content-read"));
        assert_eq!(t.input("link"), Some("symlink"));
        assert_eq!(t.probe("missing.txt"), Some("missing"));
        assert_eq!(t.input("many"), Some("listing"));
        assert_eq!(t.output("out/n.txt"), Some("file"));
        assert!(t.list("temporaries").contains(&"gone.txt"), "{}", t.json);
    }
    assert_eq!(classification(&in_process), classification(&notified));
    assert_eq!(
        accesses_under(&in_process, &dir),
        accesses_under(&notified, &dir)
    );

    let (notified_calls, none) = calls(&notified);
    assert_eq!(none, 0, "the switch turns the library off");
    let (left, recorded) = calls(&in_process);
    // Each of the 200 files is an open and a stat of the open fd.
    assert!(recorded >= 200, "recorded in-process: {recorded}");
    assert!(
        left + 300 < notified_calls,
        "calls from the trampoline were still notified: {left} with, {notified_calls} without"
    );
}

/// The same for a shell and coreutils (dynamic, glibc's own wrappers) and
/// for esbuild (static: the library is never loaded, all is notified).
#[test]
fn in_process_recording_matches_for_coreutils_and_static_programs() {
    let (_tmp, dir) = workdir();
    every_read_fixture(&dir);
    let script = "cat many/f1.txt abs.txt >/dev/null; ls many >/dev/null; test -e missing.txt; \
                  stat -c %s abs.txt >/dev/null; readlink link >/dev/null; cp abs.txt copy.txt";
    let notified = run(&dir, &["sh", "-c", script], &[IN_PROCESS_OFF]);
    fs::remove_file(dir.join("copy.txt")).expect("reset copy");
    let in_process = run(&dir, &["sh", "-c", script], &[]);
    assert_eq!(in_process.code, Some(0), "{}", in_process.stderr);
    assert_eq!(in_process.input("many/f1.txt"), Some("content-read"));
    assert_eq!(in_process.output("copy.txt"), Some("file"));
    assert_eq!(classification(&in_process), classification(&notified));
    assert_eq!(
        accesses_under(&in_process, &dir),
        accesses_under(&notified, &dir)
    );
    assert!(
        calls(&in_process).1 > 0,
        "coreutils recorded nothing in-process"
    );

    let Some(esbuild) = esbuild() else { return };
    write(&dir, "src/main.js", "import './dep.js';\n");
    write(&dir, "src/dep.js", "console.log(1);\n");
    let esbuild = esbuild.to_str().expect("utf8");
    let args = [esbuild, "src/main.js", "--bundle", "--outfile=out/b.js"];
    let notified = run(&dir, &args, &[IN_PROCESS_OFF]);
    fs::remove_dir_all(dir.join("out")).expect("reset out/");
    let in_process = run(&dir, &args, &[]);
    assert_eq!(in_process.input("src/dep.js"), Some("content-read"));
    assert_eq!(
        calls(&in_process).1,
        0,
        "a static program cannot load the library"
    );
    assert_eq!(
        accesses_under(&in_process, &dir),
        accesses_under(&notified, &dir)
    );
}

/// A task's own `LD_PRELOAD` stays, before vp's library: its wrappers run
/// first and reach vp's through `RTLD_NEXT`, and the file is still an input.
#[test]
fn a_tasks_own_preload_comes_first_and_still_reaches_vp() {
    let (_tmp, dir) = workdir();
    let shim_src = dir.join("shim.c");
    fs::write(
        &shim_src,
        r#"#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>
typedef int (*open_fn)(const char *, int, ...);
static int wrapped(const char *name, const char *path, int flags, int mode) {
    if (strstr(path, "marked")) write(2, "shim saw open\n", 14);
    return ((open_fn)dlsym(RTLD_NEXT, name))(path, flags, mode);
}
int open(const char *p, int f, ...) { va_list ap; va_start(ap, f); int m = va_arg(ap, int); va_end(ap); return wrapped("open", p, f, m); }
int open64(const char *p, int f, ...) { va_list ap; va_start(ap, f); int m = va_arg(ap, int); va_end(ap); return wrapped("open64", p, f, m); }
"#,
    )
    .expect("write shim");
    let shim = dir.join("shim.so");
    let built = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&shim)
        .arg(&shim_src)
        .status();
    if !built.is_ok_and(|s| s.success()) {
        eprintln!("!!!!! SKIPPED: no C compiler, the task-preload test did not run !!!!!");
        return;
    }
    write(&dir, "marked.txt", "content");
    let out = Command::new(vp())
        .args(["trace", "--json", "--log", "--root"])
        .arg(&dir)
        .args([
            "--",
            "sh",
            "-c",
            "cat marked.txt >/dev/null; echo \"$LD_PRELOAD\" >&2",
        ])
        .env("LD_PRELOAD", &shim)
        .current_dir(&dir)
        .output()
        .expect("run vp trace");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("shim saw open"), "{stderr}");
    let preload = stderr
        .lines()
        .find(|l| l.contains("shim.so"))
        .unwrap_or_default();
    assert!(
        preload.starts_with(&format!("{}:", shim.display()))
            && preload.contains("vp-trace-preload-"),
        "LD_PRELOAD in the task: {preload}"
    );
    let json: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        json["inputs"]["marked.txt"]["kind"], "content-read",
        "{json}"
    );
    assert!(
        json["calls"]["in_process"].as_u64().is_some_and(|n| n > 0),
        "{}",
        json["calls"]
    );
}

/// Compiles `source` (C) into `dir/name`; `None` without a C compiler.
fn c_program(dir: &Path, name: &str, source: &str) -> Option<PathBuf> {
    let src = dir.join(format!("{name}.c"));
    fs::write(&src, source).expect("write C source");
    let bin = dir.join(name);
    let built = Command::new("cc")
        .args(["-O1", "-pthread", "-o"])
        .arg(&bin)
        .arg(&src)
        .status();
    if built.is_ok_and(|s| s.success()) {
        Some(bin)
    } else {
        eprintln!("!!!!! SKIPPED: no C compiler, `{name}` did not run !!!!!");
        None
    }
}

/// More calls than the in-process log holds: the rest are notified, and
/// the run is complete (not "incomplete" because the log ran out).
#[test]
fn a_full_in_process_log_hands_the_rest_to_notification() {
    let (_tmp, dir) = workdir();
    let Some(bin) = c_program(
        &dir,
        "many-stats",
        r#"#include <string.h>
#include <sys/stat.h>
int main(void) {
    /* 3 KB paths (outside the root, missing): 25,000 fill the 64 MiB log. */
    static char path[3200] = "/vp-missing";
    for (size_t at = strlen(path); at + 200 < sizeof path; at += 200) {
        path[at] = '/';
        memset(path + at + 1, 'a', 199);
    }
    struct stat st;
    for (int i = 0; i < 25000; i++) stat(path, &st);
    return stat("input.txt", &st);
}
"#,
    ) else {
        return;
    };
    write(&dir, "input.txt", "last");
    // Without `--log`: listing 25,000 3 KB paths is slow and beside the point.
    let out = Command::new(vp())
        .args(["trace", "--json", "--root"])
        .arg(&dir)
        .arg("--")
        .arg(&bin)
        .current_dir(&dir)
        .output()
        .expect("run vp trace");
    let t = Traced {
        json: serde_json::from_slice(&out.stdout).expect("JSON"),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code(),
    };
    assert_eq!(t.code, Some(0), "{}", t.stderr);
    assert_eq!(
        t.list("untraceable"),
        Vec::<&str>::new(),
        "{}",
        t.json["untraceable"]
    );
    assert!(
        t.json["calls"]["in_process_dropped"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "the log did not fill: {}",
        t.json["calls"]
    );
    assert_eq!(t.input("input.txt"), Some("metadata"), "{}", t.json);
    assert_eq!(t.json["cacheable"], true);
}

/// Each in-process record names the thread that made the call: the library
/// asks the kernel once per thread, and a forked child does not inherit
/// its parent's answer.
#[test]
fn in_process_records_name_the_forked_childs_own_thread() {
    let (_tmp, dir) = workdir();
    let Some(bin) = c_program(
        &dir,
        "fork-reads",
        r#"#include <fcntl.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
static void read_and_name(const char *input, const char *pid_file) {
    close(open(input, O_RDONLY));
    FILE *f = fopen(pid_file, "w");
    fprintf(f, "%d", (int)getpid());
    fclose(f);
}
int main(void) {
    read_and_name("parent.txt", "parent.pid");
    pid_t child = fork();
    if (child == 0) {
        read_and_name("child.txt", "child.pid");
        _exit(0);
    }
    int status;
    waitpid(child, &status, 0);
    close(open("parent-again.txt", O_RDONLY));
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
"#,
    ) else {
        return;
    };
    for name in ["parent.txt", "child.txt", "parent-again.txt"] {
        write(&dir, name, "x");
    }
    let t = run(&dir, &[bin.to_str().expect("utf-8 path")], &[]);
    assert_eq!(t.code, Some(0), "{}", t.stderr);
    let (_, in_process) = calls(&t);
    assert!(
        in_process >= 3,
        "reads not recorded in-process: {}",
        t.json["calls"]
    );
    let pid = |name: &str| -> u64 {
        let text = fs::read_to_string(dir.join(name)).expect("pid file");
        text.trim().parse().expect("a pid")
    };
    let tid_of_read = |name: &str| -> Vec<u64> {
        t.accesses()
            .iter()
            .filter(|a| {
                a["op"] == "read"
                    && a["path"]
                        .as_str()
                        .is_some_and(|p| p.ends_with(&format!("/{name}")))
            })
            .filter_map(|a| a["tid"].as_u64())
            .collect()
    };
    let (parent, child) = (pid("parent.pid"), pid("child.pid"));
    assert_ne!(parent, child);
    assert_eq!(tid_of_read("parent.txt"), vec![parent]);
    assert_eq!(tid_of_read("child.txt"), vec![child]);
    assert_eq!(tid_of_read("parent-again.txt"), vec![parent]);
}

/// Threads killed while recording (exit with others busy): a record that
/// was never committed belongs to a call that was never made, so the run
/// stays complete.
#[test]
fn threads_killed_while_recording_leave_the_run_complete() {
    let (_tmp, dir) = workdir();
    let Some(bin) = c_program(
        &dir,
        "exit-while-busy",
        r#"#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
static void *spin(void *arg) {
    struct stat st;
    for (;;) stat((const char *)arg, &st);
    return 0;
}
int main(void) {
    struct stat st;
    if (stat("input.txt", &st) != 0) return 1;
    pthread_t t;
    for (int i = 0; i < 3; i++) pthread_create(&t, 0, spin, "input.txt");
    struct timespec two_ms = {0, 2000000};
    nanosleep(&two_ms, 0);
    _exit(0);
}
"#,
    ) else {
        return;
    };
    write(&dir, "input.txt", "x");
    for _ in 0..5 {
        let t = run(&dir, &[bin.to_str().expect("utf8")], &[]);
        assert_eq!(
            t.list("untraceable"),
            Vec::<&str>::new(),
            "{}",
            t.json["untraceable"]
        );
        assert_eq!(t.input("input.txt"), Some("metadata"));
    }
}

/// Programs Node starts record in-process too: Node marks its low fds
/// close-on-exec at start, and the log's fd is above them.
#[test]
fn programs_started_by_node_get_the_in_process_log() {
    if !node_available() {
        return;
    }
    let (_tmp, dir) = workdir();
    for i in 0..50 {
        write(&dir, &format!("child/f{i}.txt"), "read by the child");
    }
    let child = "for (let i = 0; i < 50; i++) require('fs').readFileSync(`child/f${i}.txt`)";
    let script = format!(
        "require('child_process').execFileSync('node', ['-e', {}])",
        serde_json::to_string(child).expect("quoted")
    );
    let t = run(&dir, &["node", "-e", &script], &[]);
    assert_eq!(t.code, Some(0), "{}", t.stderr);
    assert_eq!(t.input("child/f49.txt"), Some("content-read"));
    // The parent reads none of them: the child's reads went in-process.
    let (_, recorded) = calls(&t);
    assert!(
        recorded >= 50,
        "the child recorded {recorded} calls in-process"
    );
}

/// Where the library would land on a file system mounted noexec, vp says so
/// once and traces every call the notified way (ld.so would otherwise print
/// an error in every traced process). Runs in a private mount namespace
/// (`unshare -m`, root only) so that nothing outside the test is mounted.
#[test]
fn a_noexec_library_dir_is_said_and_every_call_notified() {
    let (_tmp, dir) = workdir();
    write(&dir, "a.txt", "content");
    let cache = dir.join("noexec-cache");
    fs::create_dir(&cache).expect("mkdir");
    let script = format!(
        "mount -t tmpfs -o noexec tmpfs {cache} && XDG_CACHE_HOME={cache} exec {vp} trace --json --root {dir} -- cat a.txt",
        cache = cache.display(),
        vp = vp(),
        dir = dir.display()
    );
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .current_dir(&dir)
        .output();
    let out = match out {
        Ok(out) if out.status.success() => out,
        other => {
            eprintln!(
                "!!!!! SKIPPED: no private mount namespace here (needs root and unshare): {other:?} !!!!!"
            );
            return;
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("tracing without the in-process tracer")
            && stderr.contains("mounted noexec")
            && stderr.contains("XDG_CACHE_HOME"),
        "{stderr}"
    );
    assert!(!stderr.contains("ld.so"), "{stderr}");
    let json: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["inputs"]["a.txt"]["kind"], "content-read", "{json}");
    assert_eq!(json["calls"]["in_process"], 0, "{}", json["calls"]);
}

/// Review: `cp -n` and `mv -n` onto a name that exists fail and change nothing. Taken for a
/// write or a move, they made the user's file an output, archived and uploaded with the result.
#[test]
fn no_clobber_copies_and_moves_onto_a_users_file_write_nothing() {
    let (_tmp, dir) = workdir();
    write(&dir, ".env.example", "A=template");
    write(&dir, ".env", "A=mine");
    write(&dir, "incoming.env", "A=incoming");
    let t = run(
        &dir,
        &[
            "sh",
            "-c",
            "cp -n .env.example .env; mv -n incoming.env .env; cp -n .env.example fresh.env",
        ],
        &[],
    );
    assert_eq!(t.code, Some(0), "{}", t.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.join(".env")).expect("read"),
        "A=mine"
    );
    assert_eq!(t.output(".env"), None, "{}", t.json["outputs"]);
    assert_eq!(t.output("incoming.env"), None, "{}", t.json["outputs"]);
    assert_eq!(t.output("fresh.env"), Some("file"), "{}", t.json["outputs"]);
}
