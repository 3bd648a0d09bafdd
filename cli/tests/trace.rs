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
fn emptying_and_rewriting_dist_has_no_dist_inputs() {
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
    assert!(
        dist_inputs.is_empty(),
        "dist/ must not be an input: {dist_inputs:?}"
    );
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
    // saw `cat` read `x` through the inner vp.
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
