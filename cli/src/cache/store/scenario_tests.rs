//! End-to-end tests of the store on real temp workspaces: record a run, hit
//! it, restore it, explain misses, keep variants, prune, and survive
//! `kill -9` mid-write. (Unit tests of the parts live beside them.)

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rocksdb::IteratorMode;

use super::access::{LockWait, Release};
use super::db::{CF_ENTRIES, CF_META, Store, entry_meta_key};
use super::lookup::{LookupOutcome, LookupRequest};
use super::open::{OpenOptions, Opened, StoreNotice, WhenUnusable, open, open_exclusive};
use super::record::{ObservedRun, RecordOutcome, RecordRequest};
use crate::cache::clock::Timestamp;
use crate::cache::codec;
use crate::cache::collect::{NotStorable, TaskPaths};
use crate::cache::entry::{CacheEntry, InputKind, LogChunk, Stream};
use crate::cache::env::EnvView;
use crate::cache::error::CacheError;
use crate::cache::fingerprint::{GlobConfig, SpawnFingerprint, SpawnSpec};
use crate::cache::paths::RelPath;
use vp_ipc::EnvQuery;

struct Ws {
    /// The temp dir the workspace lives in; `None` for another vp's view
    /// of a workspace that another `Ws` owns.
    _tmp: Option<tempfile::TempDir>,
    root: PathBuf,
    pkg: PathBuf,
    cache: PathBuf,
    store: Store,
}

/// How long a test's vp waits for another's lock unless it says otherwise.
const LOCK_TIMEOUT: Duration = Duration::from_secs(5);

fn open_store(dir: &Path) -> Store {
    open_store_with(dir, LOCK_TIMEOUT)
}

fn open_store_with(dir: &Path, lock_timeout: Duration) -> Store {
    super::open::open_for_test(dir, lock_timeout)
}

impl Ws {
    /// The same workspace as another vp process sees it: the store opened
    /// read-write on its own (this one holds no lock while read-only).
    fn other_vp(&self) -> Ws {
        let store = match open_exclusive(
            &self.cache,
            &OpenOptions::waiting(LOCK_TIMEOUT),
            WhenUnusable::SetAside,
            &mut |_| {},
        ) {
            Ok(Opened::Ready(s)) => s,
            _ => panic!("the other vp opens the store"),
        };
        self.with_store(store)
    }

    /// The same workspace seen through `store` (this `Ws` keeps the temp dir).
    fn with_store(&self, store: Store) -> Ws {
        Ws {
            _tmp: None,
            root: self.root.clone(),
            pkg: self.pkg.clone(),
            cache: self.cache.clone(),
            store,
        }
    }

    /// Closes the store and opens it again as a new `vp run` would.
    fn reopen(self) -> Ws {
        self.reopen_with(LOCK_TIMEOUT)
    }

    /// `reopen`, waiting at most `lock_timeout` when the store must later
    /// open for writing.
    fn reopen_with(self, lock_timeout: Duration) -> Ws {
        let Ws {
            _tmp,
            root,
            pkg,
            cache,
            store,
        } = self;
        drop(store);
        let store = open_store_with(&cache, lock_timeout);
        Ws {
            _tmp,
            root,
            pkg,
            cache,
            store,
        }
    }

    /// The database directory's files (the hit journal left out), with
    /// their sizes and modification times.
    fn db_files(&self) -> BTreeMap<String, (u64, std::time::SystemTime)> {
        let db = self.cache.join("db");
        fs::read_dir(&db)
            .expect("read db dir")
            .map(|e| e.expect("entry"))
            .filter(|e| {
                !e.file_name()
                    .to_string_lossy()
                    .starts_with("vp-hits.journal")
            })
            .map(|e| {
                let m = e.metadata().expect("metadata");
                (
                    e.file_name().to_string_lossy().into_owned(),
                    (m.len(), m.modified().expect("mtime")),
                )
            })
            .collect()
    }
}

fn ws() -> Ws {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().canonicalize().expect("canonical");
    let pkg = root.join("packages/app");
    fs::create_dir_all(&pkg).expect("mkdir");
    let cache = root.join("node_modules/.cache/vp");
    let store = open_store(&cache);
    Ws {
        _tmp: Some(tmp),
        root,
        pkg,
        cache,
        store,
    }
}

fn no_untracked(_: &OsStr) -> bool {
    false
}

/// One command as the runner would describe it.
#[derive(Clone)]
struct Cmd {
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    inputs: GlobConfig,
    outputs: GlobConfig,
}

fn cmd() -> Cmd {
    Cmd {
        args: vec!["build.js".into()],
        env: vec![],
        inputs: GlobConfig::auto(),
        outputs: GlobConfig::auto(),
    }
}

impl Ws {
    fn write(&self, rel: &str, content: &str) -> PathBuf {
        let p = self.root.join(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(&p, content).expect("write");
        p
    }

    fn paths(&self) -> TaskPaths<'_> {
        TaskPaths {
            workspace_root: &self.root,
            package_dir: &self.pkg,
            cache_dir: &self.cache,
        }
    }

    fn spawn(&self, c: &Cmd) -> SpawnFingerprint {
        SpawnFingerprint::new(SpawnSpec {
            workspace_root: &self.root,
            package_dir: &self.pkg,
            cwd: &self.pkg,
            program: Path::new("/usr/bin/env"),
            args: &c.args,
            declared_env: &c.env,
            untracked_env: &[],
            inputs: c.inputs.clone(),
            outputs: c.outputs.clone(),
        })
    }

    fn lookup_with(&self, task: &str, c: &Cmd, vars: &[(&str, &str)]) -> LookupOutcome {
        let env = EnvView::new(
            vars.iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v))),
            &no_untracked,
        );
        let spawn = self.spawn(c);
        self.store
            .lookup(&LookupRequest {
                task,
                spawn: &spawn,
                paths: self.paths(),
                env: &env,
                path_var: None,
            })
            .expect("lookup")
    }

    fn lookup(&self, task: &str, c: &Cmd) -> LookupOutcome {
        self.lookup_with(task, c, &[])
    }

    /// The dry run's lookup: writes nothing.
    fn peek(&self, task: &str, c: &Cmd) -> LookupOutcome {
        let env = EnvView::new(std::iter::empty(), &no_untracked);
        let spawn = self.spawn(c);
        self.store
            .peek(&LookupRequest {
                task,
                spawn: &spawn,
                paths: self.paths(),
                env: &env,
                path_var: None,
            })
            .expect("peek")
    }

    /// "Runs" a task: `inputs` are read (must exist before), then `outputs`
    /// are written after the start, then the run is recorded.
    fn run(&self, task: &str, c: &Cmd, inputs: &[&str], outputs: &[(&str, &str)]) -> RecordOutcome {
        self.run_with(task, c, inputs, outputs, |_| {})
    }

    fn run_with(
        &self,
        task: &str,
        c: &Cmd,
        inputs: &[&str],
        outputs: &[(&str, &str)],
        tweak: impl FnOnce(&mut ObservedRun),
    ) -> RecordOutcome {
        let started = Timestamp::task_start();
        let written: Vec<PathBuf> = outputs
            .iter()
            .map(|(p, content)| self.write(p, content))
            .collect();
        let mut run = ObservedRun {
            inputs: inputs
                .iter()
                .map(|p| (self.root.join(p), InputKind::ContentRead))
                .collect(),
            outputs: written,
            log: vec![
                LogChunk {
                    stream: Stream::Stdout,
                    bytes: b"building\n".to_vec(),
                },
                LogChunk {
                    stream: Stream::Stderr,
                    bytes: b"warning\n".to_vec(),
                },
                LogChunk {
                    stream: Stream::Stdout,
                    bytes: b"done\n".to_vec(),
                },
            ],
            started,
            duration: Duration::from_millis(1234),
            ..ObservedRun::default()
        };
        tweak(&mut run);
        let spawn = self.spawn(c);
        self.store
            .record(&RecordRequest {
                task,
                spawn: &spawn,
                paths: self.paths(),
                run: &run,
            })
            .expect("record")
    }
}

fn stored(o: RecordOutcome) {
    assert!(matches!(o, RecordOutcome::Stored(_)), "not stored: {o:?}");
}

fn miss_text(o: LookupOutcome) -> String {
    match o {
        LookupOutcome::Miss(r) => r
            .display(&RelPath::from_stored(b"packages/app").expect("valid"), 20)
            .to_string(),
        LookupOutcome::Hit(h) => panic!("unexpected hit, {} outputs", h.entry.outputs.len()),
    }
}

fn is_hit(o: &LookupOutcome) -> bool {
    matches!(o, LookupOutcome::Hit(_))
}

#[test]
fn first_run_misses_then_hits_and_restores_byte_identical() {
    let w = ws();
    w.write("packages/app/src/a.js", "export const a = 1;");
    let first = w.lookup("app#build", &cmd());
    assert!(matches!(&first, LookupOutcome::Miss(r) if r.is_first_run()));
    assert_eq!(miss_text(first), "no previous run");
    stored(w.run(
        "app#build",
        &cmd(),
        &["packages/app/src/a.js"],
        &[
            ("packages/app/dist/a.js", "bundle a"),
            ("packages/app/dist/sub/b.js", "bundle b"),
        ],
    ));

    let LookupOutcome::Hit(hit) = w.lookup("app#build", &cmd()) else {
        panic!("expected a hit")
    };
    assert_eq!(hit.saved(), Duration::from_millis(1234));
    fs::remove_dir_all(w.root.join("packages/app/dist")).expect("rm dist");
    let report = w.store.restore(&hit, &w.root).expect("restore");
    assert_eq!(report.written, 2);
    assert_eq!(
        fs::read_to_string(w.root.join("packages/app/dist/a.js")).expect("read"),
        "bundle a"
    );
    assert_eq!(
        fs::read_to_string(w.root.join("packages/app/dist/sub/b.js")).expect("read"),
        "bundle b"
    );
    let streams: Vec<Stream> = report.log.iter().map(|c| c.stream).collect();
    assert_eq!(
        streams,
        vec![Stream::Stdout, Stream::Stderr, Stream::Stdout]
    );
    // Restoring again rewrites nothing.
    let again = w.store.restore(&hit, &w.root).expect("restore");
    assert_eq!((again.written, again.unchanged), (0, 2));
}

#[test]
fn restore_keeps_modes_and_symlinks() {
    let w = ws();
    let started = Timestamp::task_start();
    let bin = w.write("packages/app/bin/cli", "#!/bin/sh\necho hi\n");
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o751)).expect("chmod");
    std::os::unix::fs::symlink("cli", w.root.join("packages/app/bin/alias")).expect("symlink");
    let run = ObservedRun {
        outputs: vec![
            bin.clone(),
            w.root.join("packages/app/bin/alias"),
            w.root.join("packages/app/bin"),
        ],
        started,
        ..ObservedRun::default()
    };
    let spawn = w.spawn(&cmd());
    stored(
        w.store
            .record(&RecordRequest {
                task: "t",
                spawn: &spawn,
                paths: w.paths(),
                run: &run,
            })
            .expect("record"),
    );
    let LookupOutcome::Hit(hit) = w.lookup("t", &cmd()) else {
        panic!("expected a hit")
    };
    fs::remove_dir_all(w.root.join("packages/app/bin")).expect("rm");
    w.store.restore(&hit, &w.root).expect("restore");
    let mode = fs::metadata(&bin).expect("stat").permissions().mode() & 0o7777;
    assert_eq!(mode, 0o751);
    assert_eq!(
        fs::read_link(w.root.join("packages/app/bin/alias")).expect("readlink"),
        PathBuf::from("cli")
    );
}

/// Lists every path under `dir` with its content ("<dir>" for directories).
fn tree(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).expect("read dir") {
            let p = e.expect("entry").path();
            let rel = p.strip_prefix(dir).expect("under").display().to_string();
            if p.is_dir() {
                out.push((rel, "<dir>".into()));
                stack.push(p);
            } else {
                out.push((rel, fs::read_to_string(&p).expect("read")));
            }
        }
    }
    out.sort();
    out
}

impl Ws {
    /// A Vite-like run: empties `dist` (removing what is there, as the
    /// tracer reports it), then writes `outputs`.
    fn emptying_run(&self, c: &Cmd, input: &str, outputs: &[(&str, &str)]) -> RecordOutcome {
        let dist = self.pkg.join("dist");
        // The tracer reports the parent of every removed name.
        let emptied: Vec<PathBuf> = if dist.exists() {
            tree(&dist)
                .into_iter()
                .filter(|(_, content)| content == "<dir>")
                .map(|(rel, _)| dist.join(rel))
                .chain([dist.clone()])
                .collect()
        } else {
            Vec::new()
        };
        if dist.exists() {
            fs::remove_dir_all(&dist).expect("empty dist");
        }
        let started = Timestamp::task_start();
        let written: Vec<PathBuf> = outputs.iter().map(|(p, c)| self.write(p, c)).collect();
        let run = ObservedRun {
            inputs: vec![(self.root.join(input), InputKind::ContentRead)],
            outputs: written,
            emptied_dirs: emptied,
            started,
            ..ObservedRun::default()
        };
        let spawn = self.spawn(c);
        self.store
            .record(&RecordRequest {
                task: "app#build",
                spawn: &spawn,
                paths: self.paths(),
                run: &run,
            })
            .expect("record")
    }
}

/// Issue: build, edit, build, revert, build hit the first entry but left the
/// edited build's bundle beside the restored one (Vite empties `outDir`).
#[test]
fn a_hit_on_an_older_entry_leaves_an_owned_directory_as_that_run_did() {
    let w = ws();
    let src = "packages/app/src/main.js";
    w.write(src, "v1");
    stored(w.emptying_run(
        &cmd(),
        src,
        &[
            (
                "packages/app/dist/index.html",
                "<script src=assets/index-1.js>",
            ),
            ("packages/app/dist/assets/index-1.js", "bundle v1"),
        ],
    ));
    let first = tree(&w.pkg.join("dist"));
    w.write(src, "v2");
    assert!(!is_hit(&w.lookup("app#build", &cmd())));
    stored(w.emptying_run(
        &cmd(),
        src,
        &[
            (
                "packages/app/dist/index.html",
                "<script src=assets/index-2.js>",
            ),
            ("packages/app/dist/assets/index-2.js", "bundle v2"),
            ("packages/app/dist/extra/chunk.js", "only in v2"),
        ],
    ));
    // A file the user put into dist/ is not vp's: it stays.
    w.write("packages/app/dist/assets/mine.txt", "the user's");
    w.write(src, "v1");
    let LookupOutcome::Hit(hit) = w.lookup("app#build", &cmd()) else {
        panic!("expected a hit on the first entry")
    };
    let report = w.store.restore(&hit, &w.root).expect("restore");
    assert_eq!(report.removed, 3, "index-2.js, extra/chunk.js, extra/");
    let mut want = first.clone();
    want.push(("assets/mine.txt".into(), "the user's".into()));
    want.sort();
    assert_eq!(tree(&w.pkg.join("dist")), want);
    fs::remove_file(w.pkg.join("dist/assets/mine.txt")).expect("rm");
    assert_eq!(
        tree(&w.pkg.join("dist")),
        first,
        "byte-identical to the first build"
    );
}

/// Review: a dry run took a hit on an older entry for one that changes
/// nothing when its only change is removing what the newer run added (a
/// source file deleted since): the tasks after it, which list `dist/`,
/// were a certain hit and then missed.
#[test]
fn a_peeked_hit_that_only_removes_superseded_files_changes_them() {
    let w = ws();
    let src = "packages/app/src/main.js";
    let page = (
        "packages/app/dist/index.html",
        "<script src=assets/index.js>",
    );
    let bundle = ("packages/app/dist/assets/index.js", "bundle");
    w.write(src, "v1");
    stored(w.emptying_run(&cmd(), src, &[page, bundle]));
    w.write(src, "v2");
    assert!(!is_hit(&w.lookup("app#build", &cmd())));
    stored(w.emptying_run(
        &cmd(),
        src,
        &[page, bundle, ("packages/app/dist/extra.js", "only in v2")],
    ));
    w.write(src, "v1");
    let LookupOutcome::Hit(hit) = w.peek("app#build", &cmd()) else {
        panic!("expected a hit on the first entry")
    };
    assert_eq!(hit.superseded.len(), 1, "{:?}", hit.superseded);
    assert!(hit.restore_changes(&w.root), "it would remove extra.js");
    fs::remove_file(w.pkg.join("dist/extra.js")).expect("rm");
    let LookupOutcome::Hit(hit) = w.peek("app#build", &cmd()) else {
        panic!("expected a hit on the first entry")
    };
    assert!(!hit.restore_changes(&w.root), "nothing left to change");
}

#[test]
fn a_superseded_output_the_user_changed_is_kept() {
    let w = ws();
    let src = "packages/app/src/main.js";
    w.write(src, "v1");
    stored(w.emptying_run(&cmd(), src, &[("packages/app/dist/a.js", "v1")]));
    w.write(src, "v2");
    stored(w.emptying_run(&cmd(), src, &[("packages/app/dist/b.js", "v2")]));
    w.write("packages/app/dist/b.js", "edited by hand");
    w.write(src, "v1");
    let LookupOutcome::Hit(hit) = w.lookup("app#build", &cmd()) else {
        panic!("expected a hit")
    };
    let report = w.store.restore(&hit, &w.root).expect("restore");
    assert_eq!(report.removed, 0);
    assert_eq!(
        fs::read_to_string(w.pkg.join("dist/b.js")).expect("kept"),
        "edited by hand"
    );
}

/// Review: a hit may only remove what the previous run *created*. A tracked
/// source a generator rewrote in place (same file, old birth time) stays,
/// even in a directory the run emptied.
#[test]
fn a_hit_never_removes_a_file_the_previous_run_only_rewrote() {
    let w = ws();
    let src = "packages/app/src/main.js";
    w.write("packages/app/gen/users.ts", "tracked by git");
    let generated = w.pkg.join("gen");
    let run = |version: &str, outputs: &[(&str, &str)]| {
        w.write(src, version);
        stored(w.run_with("app#build", &cmd(), &[src], outputs, |run| {
            run.emptied_dirs = vec![generated.clone()];
        }));
    };
    run("v2", &[("packages/app/gen/new2.ts", "2")]);
    run(
        "v1",
        &[
            ("packages/app/gen/users.ts", "rewritten in place"),
            ("packages/app/gen/new1.ts", "1"),
        ],
    );
    w.write(src, "v2");
    let LookupOutcome::Hit(hit) = w.lookup("app#build", &cmd()) else {
        panic!("expected a hit on the v2 entry")
    };
    let report = w.store.restore(&hit, &w.root).expect("restore");
    assert_eq!(report.removed, 1, "only new1.ts, which the v1 run created");
    assert!(!generated.join("new1.ts").exists());
    assert!(
        generated.join("users.ts").exists(),
        "never created by the task: kept"
    );
    assert!(generated.join("new2.ts").exists());
}

/// Issue: `tsc -b` lists the package root, and `vite build` (the next item
/// of the same script) creates `dist/` there; `rm -rf dist` then made the
/// first item miss, though the second item's hit brings `dist/` back. A
/// directory another task's stored run owns does not count when it is
/// missing from a listing. Probe: it did not count when *added* either, so
/// `tsc` hit after a generator made `src/models/` with a type error in it,
/// and `prettier --check .` after a build made `dist/`. What a task would
/// read in a directory it never saw is unknown: that is a miss.
#[test]
fn a_listing_excuses_another_tasks_output_dir_only_when_it_is_gone() {
    let w = ws();
    w.write("packages/app/src/main.ts", "x");
    let mut vite = cmd();
    vite.args = vec!["vite.js".into()];
    stored(w.run(
        "app#build[1]",
        &vite,
        &[],
        &[("packages/app/dist/index.js", "bundle")],
    ));
    fs::remove_dir_all(w.pkg.join("dist")).expect("rm -rf dist");
    stored(w.run_with("app#build", &cmd(), &[], &[], |run| {
        run.inputs = vec![(w.pkg.clone(), InputKind::Listing)];
    }));
    w.write("packages/app/dist/index.js", "bundle");
    assert_eq!(
        miss_text(w.lookup("app#build", &cmd())),
        "'dist' added in '.'",
        "a directory this task never saw, whoever made it"
    );
    stored(w.run_with("app#build", &cmd(), &[], &[], |run| {
        run.inputs = vec![(w.pkg.clone(), InputKind::Listing)];
    }));
    assert!(is_hit(&w.lookup("app#build", &cmd())));
    fs::remove_dir_all(w.pkg.join("dist")).expect("rm -rf dist");
    assert!(
        is_hit(&w.lookup("app#build", &cmd())),
        "dist/ is the other item's output directory, which its hit restores"
    );
    w.write("packages/app/notes.ts", "a new source");
    assert_eq!(
        miss_text(w.lookup("app#build", &cmd())),
        "'notes.ts' added in '.'"
    );
    fs::remove_file(w.pkg.join("notes.ts")).expect("rm");
    // A directory nobody's run owns still counts, gone or added.
    fs::create_dir(w.pkg.join("extra")).expect("mkdir");
    assert!(!is_hit(&w.lookup("app#build", &cmd())));
}

/// A task that lists its package and writes `dist/` there (`tsc`), or a
/// barrel generator that lists `src/` and writes `src/index.ts`: a name the
/// hit restores need not be in the listing, and a listed directory that is
/// gone with everything in it comes back whole. Anything else missing, or a
/// name added, is still a change.
#[test]
fn a_listing_does_not_need_what_the_hit_restores() {
    let w = ws();
    w.write("packages/app/src/a.ts", "x");
    w.write(
        "packages/app/src/beta/b.ts",
        "a source beside a generated file",
    );
    let src = w.pkg.join("src");
    let dist = w.pkg.join("dist");
    stored(w.run_with(
        "app#build",
        &cmd(),
        &[],
        &[
            ("packages/app/src/index.ts", "export * from './a';"),
            ("packages/app/src/beta/meta.json", "{}"),
            ("packages/app/dist/index.js", "bundle"),
        ],
        |run| {
            run.inputs = vec![
                (w.pkg.clone(), InputKind::Listing),
                (src.clone(), InputKind::Listing),
                (dist.clone(), InputKind::Listing),
            ];
            run.own_listings = vec![
                crate::cache::collect::OwnListing::of(
                    &w.pkg,
                    run.outputs.iter().map(PathBuf::as_path),
                ),
                crate::cache::collect::OwnListing::of(
                    &src,
                    run.outputs.iter().map(PathBuf::as_path),
                ),
                crate::cache::collect::OwnListing::of(
                    &dist,
                    run.outputs.iter().map(PathBuf::as_path),
                ),
            ];
        },
    ));
    assert!(is_hit(&w.lookup("app#build", &cmd())));
    fs::remove_dir_all(&dist).expect("rm -rf dist");
    fs::remove_file(src.join("index.ts")).expect("rm the barrel");
    let LookupOutcome::Hit(hit) = w.lookup("app#build", &cmd()) else {
        panic!("the hit restores dist/ and the barrel");
    };
    w.store.restore(&hit, &w.root).expect("restore");
    let read = |p: &str| fs::read_to_string(w.root.join(p)).expect("restored");
    assert_eq!(read("packages/app/src/index.ts"), "export * from './a';");
    assert_eq!(read("packages/app/dist/index.js"), "bundle");

    w.write("packages/app/src/b.ts", "a new source");
    assert_eq!(
        miss_text(w.lookup("app#build", &cmd())),
        "'b.ts' added in 'src'"
    );
    fs::remove_file(src.join("b.ts")).expect("rm");
    fs::remove_file(src.join("a.ts")).expect("rm a source");
    assert_eq!(
        miss_text(w.lookup("app#build", &cmd())),
        "'a.ts' removed from 'src'"
    );
    w.write("packages/app/src/a.ts", "x");
    assert!(is_hit(&w.lookup("app#build", &cmd())));
    // Outputs were written into `beta/`, but the run did not make it: the
    // hit would bring back its `meta.json`, not its sources.
    fs::remove_dir_all(src.join("beta")).expect("rm -rf src/beta");
    assert_eq!(
        miss_text(w.lookup("app#build", &cmd())),
        "'beta' removed from 'src'"
    );
}

/// Issue: the "content unchanged, fix the mode" branch chmod'ed an inode
/// shared with a file outside the workspace.
#[test]
fn restore_never_chmods_an_inode_shared_with_another_name() {
    let w = ws();
    let started = Timestamp::task_start();
    let tool = w.write("packages/app/bin/tool", "#!/bin/sh\n");
    fs::set_permissions(&tool, fs::Permissions::from_mode(0o755)).expect("chmod");
    let run = ObservedRun {
        outputs: vec![tool.clone()],
        started,
        ..ObservedRun::default()
    };
    let spawn = w.spawn(&cmd());
    stored(
        w.store
            .record(&RecordRequest {
                task: "t",
                spawn: &spawn,
                paths: w.paths(),
                run: &run,
            })
            .expect("record"),
    );
    let outside_dir = tempfile::tempdir().expect("outside");
    let outside = outside_dir.path().join("shared");
    fs::write(&outside, "#!/bin/sh\n").expect("write");
    fs::set_permissions(&outside, fs::Permissions::from_mode(0o600)).expect("chmod");
    fs::remove_file(&tool).expect("rm");
    fs::hard_link(&outside, &tool).expect("hard link");
    let LookupOutcome::Hit(hit) = w.lookup("t", &cmd()) else {
        panic!("expected a hit")
    };
    w.store.restore(&hit, &w.root).expect("restore");
    let mode = |p: &Path| fs::metadata(p).expect("stat").permissions().mode() & 0o7777;
    assert_eq!(mode(&outside), 0o600, "the outside file is untouched");
    assert_eq!(mode(&tool), 0o755);
    assert_eq!(fs::read_to_string(&tool).expect("read"), "#!/bin/sh\n");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(&outside).expect("stat").nlink(), 1);
}

#[test]
fn restore_refuses_symlink_leading_out_of_the_workspace() {
    let w = ws();
    stored(w.run("t", &cmd(), &[], &[("packages/app/dist/a.js", "x")]));
    let LookupOutcome::Hit(hit) = w.lookup("t", &cmd()) else {
        panic!("expected a hit")
    };
    let outside = tempfile::tempdir().expect("tempdir");
    fs::remove_dir_all(w.root.join("packages/app/dist")).expect("rm");
    std::os::unix::fs::symlink(outside.path(), w.root.join("packages/app/dist")).expect("symlink");
    let err = w.store.restore(&hit, &w.root).expect_err("must refuse");
    assert!(
        err.to_string().contains("leads outside the workspace"),
        "{err}"
    );
    assert!(
        !outside.path().join("a.js").exists(),
        "wrote through the symlink"
    );
}

#[test]
fn restore_refuses_a_corrupt_entry_path() {
    let w = ws();
    stored(w.run("t", &cmd(), &[], &[("packages/app/dist/a.js", "x")]));
    let LookupOutcome::Hit(mut hit) = w.lookup("t", &cmd()) else {
        panic!("expected a hit")
    };
    let state = hit
        .entry
        .outputs
        .values()
        .next()
        .expect("one output")
        .clone();
    // Forge a path the way a corrupt store could hold it (bypassing checks).
    let forged: RelPath =
        codec::decode("path", &codec::encode(&b"../../escape.js".to_vec())).expect("decode");
    hit.entry.outputs.insert(forged, state);
    let err = w.store.restore(&hit, &w.root).expect_err("must refuse");
    assert!(
        err.to_string()
            .starts_with("refusing to restore a cached output"),
        "{err}"
    );
}

/// Issue: after a checksum error the task re-ran, but dedup saw the blob's
/// key and skipped rewriting it, so the task missed forever.
#[test]
fn a_corrupt_blob_is_healed_by_the_next_store() {
    let w = ws();
    stored(w.run("t", &cmd(), &[], &[("packages/app/dist/a.js", "bundle")]));
    let LookupOutcome::Hit(hit) = w.lookup("t", &cmd()) else {
        panic!("expected a hit")
    };
    let blob = crate::cache::digest::Digest::of_content(b"bundle");
    let db = w.store.writer().expect("writable");
    let cf = db.cf_handle(super::db::CF_BLOBS).expect("blobs cf");
    db.put_cf(cf, blob.as_bytes(), b"not zstd at all")
        .expect("corrupt it");
    fs::remove_file(w.root.join("packages/app/dist/a.js")).expect("rm");
    let err = w.store.restore(&hit, &w.root).expect_err("corrupt");
    assert!(err.to_string().contains("corrupt"), "{err}");
    // The runner then runs the task and stores it again: the blob is
    // rewritten, and the next restore works.
    stored(w.run("t", &cmd(), &[], &[("packages/app/dist/a.js", "bundle")]));
    let LookupOutcome::Hit(hit) = w.lookup("t", &cmd()) else {
        panic!("expected a hit")
    };
    fs::remove_file(w.root.join("packages/app/dist/a.js")).expect("rm");
    w.store.restore(&hit, &w.root).expect("healed");
    assert_eq!(
        fs::read_to_string(w.root.join("packages/app/dist/a.js")).expect("read"),
        "bundle"
    );
    // A blob that vanished altogether heals the same way.
    db.delete_cf(cf, blob.as_bytes()).expect("delete");
    fs::remove_file(w.root.join("packages/app/dist/a.js")).expect("rm");
    assert!(w.store.restore(&hit, &w.root).is_err());
    stored(w.run("t", &cmd(), &[], &[("packages/app/dist/a.js", "bundle")]));
    assert_every_entry_complete(&w.store);
}

/// Review: an upload after the run let the lock go took it back to forget
/// a broken blob, with nothing left to let it go again while the dev server
/// ran. An upload forgets it only through a writable instance already
/// open; a restore, after which the task runs and stores, takes the lock.
#[test]
fn an_upload_that_finds_a_broken_blob_does_not_take_the_lock_back() {
    let w = ws();
    stored(w.run("t", &cmd(), &[], &[("packages/app/dist/a.js", "bundle")]));
    let blob = crate::cache::digest::Digest::of_content(b"bundle");
    {
        let db = w.store.writer().expect("writable");
        let cf = db.cf_handle(super::db::CF_BLOBS).expect("blobs cf");
        db.put_cf(cf, blob.as_bytes(), b"not zstd at all")
            .expect("corrupt it");
    }
    assert_eq!(
        w.store.release_lock(&|| true).expect("no error"),
        Release::Released
    );
    let err = w.store.blob_to_send(&blob).expect_err("broken");
    assert!(
        matches!(err, crate::cache::CacheError::CorruptBlob { .. }),
        "{err}"
    );
    assert!(!w.store.is_writable(), "taken back by an upload");
    // A restore's read forgets it, taking the lock.
    let err = w.store.blob(&blob).expect_err("broken");
    assert!(
        matches!(err, crate::cache::CacheError::CorruptBlob { .. }),
        "{err}"
    );
    assert!(w.store.is_writable());
    let err = w.store.blob_to_send(&blob).expect_err("forgotten");
    assert!(
        matches!(err, crate::cache::CacheError::MissingBlob { .. }),
        "{err}"
    );
}

#[test]
fn miss_lists_every_file_difference() {
    let w = ws();
    w.write("packages/app/src/a.js", "a");
    w.write("packages/app/src/c.js", "c");
    let src = w.root.join("packages/app/src");
    let started = Timestamp::task_start();
    let run = ObservedRun {
        inputs: vec![
            (w.root.join("packages/app/src/a.js"), InputKind::ContentRead),
            (w.root.join("packages/app/src/c.js"), InputKind::ContentRead),
            (src.clone(), InputKind::Listing),
        ],
        started,
        ..ObservedRun::default()
    };
    let spawn = w.spawn(&cmd());
    stored(
        w.store
            .record(&RecordRequest {
                task: "t",
                spawn: &spawn,
                paths: w.paths(),
                run: &run,
            })
            .expect("record"),
    );
    assert!(is_hit(&w.lookup("t", &cmd())));

    w.write("packages/app/src/a.js", "a2");
    w.write("packages/app/src/b.js", "b");
    fs::remove_file(w.root.join("packages/app/src/c.js")).expect("rm");
    let text = miss_text(w.lookup("t", &cmd()));
    assert_eq!(
        text,
        "'src/a.js' modified, 'b.js' added in 'src', 'c.js' removed from 'src'"
    );
}

#[test]
fn miss_lists_config_and_env_differences() {
    let w = ws();
    let mut c = cmd();
    c.env = vec![("NODE_ENV".into(), "production".into())];
    stored(w.run("t", &c, &[], &[]));
    let mut c2 = c.clone();
    c2.args.push("--minify".into());
    c2.env = vec![
        ("NODE_ENV".into(), "development".into()),
        ("VITE_X".into(), "1".into()),
    ];
    c2.inputs = GlobConfig {
        auto: true,
        globs: vec!["src/**".into()],
    };
    let text = miss_text(w.lookup("t", &c2));
    assert_eq!(
        text,
        "args changed, input configuration changed, env 'NODE_ENV' changed, env 'VITE_X' added"
    );
}

/// What the bridge would serve for a tracked `getEnvs` against `vars`.
fn served(query: &EnvQuery, vars: &[(&str, &str)]) -> (EnvQuery, BTreeMap<OsString, OsString>) {
    let matcher = query.matcher().expect("valid query");
    let set = vars
        .iter()
        .filter(|(k, _)| matcher.matches(k.as_bytes()))
        .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        .collect();
    (query.clone(), set)
}

#[test]
fn tracked_env_and_queries_invalidate() {
    let w = ws();
    let vars = [
        ("MODE", "a"),
        ("VITE_A", "1"),
        ("VITE_B", "2"),
        ("UNRELATED", "x"),
    ];
    let tweak = |run: &mut ObservedRun| {
        run.tracked_env = [("MODE".into(), Some("a".into()))].into_iter().collect();
        run.env_queries = vec![served(&EnvQuery::Prefix(b"VITE_".to_vec()), &vars)];
    };
    stored(w.run_with("t", &cmd(), &[], &[], tweak));
    assert!(is_hit(&w.lookup_with("t", &cmd(), &vars)));
    // A variable nobody asked about does not matter.
    assert!(is_hit(&w.lookup_with(
        "t",
        &cmd(),
        &[
            ("MODE", "a"),
            ("VITE_A", "1"),
            ("VITE_B", "2"),
            ("UNRELATED", "y")
        ]
    )));
    let text = miss_text(w.lookup_with(
        "t",
        &cmd(),
        &[("MODE", "b"), ("VITE_A", "9"), ("VITE_C", "3")],
    ));
    assert_eq!(
        text,
        "env 'MODE' changed, env 'VITE_A' changed, env 'VITE_C' added, env 'VITE_B' removed"
    );
}

/// Issue: `getEnvs('VITE_{A,B}')` was served by one matcher and re-checked by
/// another that knew only `*` and `?`, so the entry held an empty set and a
/// change of `VITE_A` hit. Every glob feature must invalidate.
#[test]
fn env_globs_with_alternatives_and_classes_invalidate() {
    for pattern in ["VITE_{A,B}", "VITE_[AB]", "VITE_?", "{VITE,NEXT}_*"] {
        let w = ws();
        let query = EnvQuery::Glob(pattern.as_bytes().to_vec());
        let vars = [("VITE_A", "1"), ("VITE_B", "2"), ("OTHER", "x")];
        let observed = served(&query, &vars);
        assert_eq!(observed.1.len(), 2, "{pattern} serves both");
        stored(w.run_with("t", &cmd(), &[], &[], |run| {
            run.env_queries = vec![observed.clone()]
        }));
        assert!(is_hit(&w.lookup_with("t", &cmd(), &vars)), "{pattern}");
        let text = miss_text(w.lookup_with(
            "t",
            &cmd(),
            &[("VITE_A", "changed"), ("VITE_B", "2"), ("OTHER", "x")],
        ));
        assert_eq!(text, "env 'VITE_A' changed", "{pattern}");
    }
}

#[test]
fn glob_inputs_notice_new_matching_files() {
    let w = ws();
    w.write("packages/app/src/a.ts", "a");
    let mut c = cmd();
    c.inputs = GlobConfig {
        auto: false,
        globs: vec!["src/**/*.ts".into()],
    };
    stored(w.run("t", &c, &[], &[]));
    assert!(is_hit(&w.lookup("t", &c)));
    w.write("packages/app/src/readme.md", "not matched");
    assert!(
        is_hit(&w.lookup("t", &c)),
        "a file the glob does not match is irrelevant"
    );
    w.write("packages/app/src/deep/b.ts", "b");
    assert_eq!(miss_text(w.lookup("t", &c)), "'b.ts' added in 'src/deep'");
}

#[test]
fn input_edited_during_run_is_not_stored() {
    let w = ws();
    w.write("packages/app/src/a.js", "a");
    let tweak = |run: &mut ObservedRun| {
        // The edit happens after the start, like a user saving mid-build.
        fs::write(run.inputs[0].0.clone(), "edited").expect("write");
    };
    let out = w.run_with("t", &cmd(), &["packages/app/src/a.js"], &[], tweak);
    let RecordOutcome::NotStored(why) = out else {
        panic!("stored a run whose input changed")
    };
    assert_eq!(
        why,
        NotStorable::InputModifiedDuringRun(
            RelPath::from_stored(b"packages/app/src/a.js").expect("valid")
        )
    );
    assert!(matches!(w.lookup("t", &cmd()), LookupOutcome::Miss(r) if r.is_first_run()));
}

#[test]
fn variants_hit_after_switching_back() {
    let w = ws();
    let input = "packages/app/src/a.js";
    w.write(input, "branch one");
    stored(w.run(
        "t",
        &cmd(),
        &[input],
        &[("packages/app/dist/a.js", "out one")],
    ));
    w.write(input, "branch two");
    assert_eq!(miss_text(w.lookup("t", &cmd())), "'src/a.js' modified");
    stored(w.run(
        "t",
        &cmd(),
        &[input],
        &[("packages/app/dist/a.js", "out two")],
    ));
    w.write(input, "branch one");
    let LookupOutcome::Hit(hit) = w.lookup("t", &cmd()) else {
        panic!("switching back should hit")
    };
    w.store.restore(&hit, &w.root).expect("restore");
    assert_eq!(
        fs::read_to_string(w.root.join("packages/app/dist/a.js")).expect("read"),
        "out one"
    );
}

/// A lookup's candidates are the `e` records of its spawn key
/// (`Store::variants`), never a scan of the entries themselves: another
/// command's entries are not offered, and an entry that lost its record is
/// a miss, which `prune` still evicts.
#[test]
fn candidates_are_the_entry_records_of_the_spawn_key() {
    let w = ws();
    let input = "packages/app/src/a.js";
    w.write(input, "source");
    stored(w.run("t", &cmd(), &[input], &[("packages/app/dist/a.js", "one")]));
    let mut other = cmd();
    other.args = vec!["other.js".into()];
    stored(w.run("u", &other, &[input], &[("packages/app/dist/b.js", "two")]));
    let mine = w.store.variants(&w.spawn(&cmd()).key()).expect("variants");
    let theirs = w.store.variants(&w.spawn(&other).key()).expect("variants");
    assert_eq!((mine.len(), theirs.len()), (1, 1));
    assert!(mine[0].1.is_some() && mine[0].0 != theirs[0].0);
    assert!(is_hit(&w.lookup("t", &cmd())));

    let db = w.store.writer().expect("writable");
    let meta = db.cf_handle(CF_META).expect("meta cf");
    db.delete_cf(meta, entry_meta_key(mine[0].0))
        .expect("delete");
    assert!(!is_hit(&w.lookup("t", &cmd())));
    assert!(is_hit(&w.lookup("u", &other)));
    assert_eq!(w.store.stats().expect("stats").entries, 2);
    w.store.prune(0).expect("prune");
    assert_eq!(w.store.stats().expect("stats").entries, 0);
}

/// A lookup with enough inputs to stat them ahead on every core gives each
/// check the answer for its own input: a change in the middle is named, and
/// a file rewritten with the same bytes still hits.
#[test]
fn a_lookup_that_stats_ahead_names_the_input_that_changed() {
    let w = ws();
    let names: Vec<String> = (0..1100)
        .map(|i| format!("packages/app/src/f{i:04}.js"))
        .collect();
    for name in &names {
        w.write(name, name);
    }
    let inputs: Vec<&str> = names.iter().map(String::as_str).collect();
    stored(w.run("t", &cmd(), &inputs, &[("packages/app/dist/a.js", "out")]));
    assert!(is_hit(&w.lookup("t", &cmd())));
    // Same bytes, new stamp: hashed, still a hit.
    std::thread::sleep(Duration::from_millis(20));
    w.write(&names[300], &names[300]);
    assert!(is_hit(&w.lookup("t", &cmd())));
    w.write(&names[600], "changed");
    assert_eq!(miss_text(w.lookup("t", &cmd())), "'src/f0600.js' modified");
}

#[test]
fn identical_outputs_are_stored_once() {
    let w = ws();
    let RecordOutcome::Stored(a) = w.run(
        "a",
        &cmd(),
        &[],
        &[("packages/app/dist/x.js", "same bytes")],
    ) else {
        panic!("not stored")
    };
    let mut c = cmd();
    c.args = vec!["other.js".into()];
    let RecordOutcome::Stored(b) = w.run("b", &c, &[], &[("packages/app/dist/x.js", "same bytes")])
    else {
        panic!("not stored")
    };
    assert!(a.new_blob_bytes > 0);
    assert_eq!(
        b.new_blob_bytes, 0,
        "the blob and the log were already stored"
    );
    let s = w.store.stats().expect("stats");
    assert_eq!((s.entries, s.tasks, s.blobs), (2, 2, 2));
}

#[test]
fn hits_are_counted_and_prune_evicts_least_recently_used() {
    let w = ws();
    let big = |seed: &str| {
        let mut out = vec![0u8; 256 * 1024];
        blake3::Hasher::new()
            .update(seed.as_bytes())
            .finalize_xof()
            .fill(&mut out);
        out.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    for i in 0..4 {
        let mut c = cmd();
        c.args = vec![format!("job{i}").into()];
        stored(w.run(
            &format!("t{i}"),
            &c,
            &[],
            &[(&format!("packages/app/dist/{i}.js"), &big(&i.to_string()))],
        ));
        // Distinct last-use times (the clock has millisecond bookkeeping).
        std::thread::sleep(Duration::from_millis(10));
    }
    // Use t0 last so t1 is the least recently used.
    std::thread::sleep(Duration::from_millis(20));
    let mut c0 = cmd();
    c0.args = vec!["job0".into()];
    assert!(is_hit(&w.lookup("t0", &c0)));
    assert_eq!(w.store.stats().expect("stats").hits, 1);

    let before = w.store.stats().expect("stats");
    let one_entry = before.blob_bytes / 4;
    let report = w.store.prune(one_entry * 3).expect("prune");
    assert!(report.removed_entries >= 1, "{report:?}");
    assert!(report.remaining_bytes <= one_entry * 3);
    let mut c1 = cmd();
    c1.args = vec!["job1".into()];
    assert_eq!(
        miss_text(w.lookup("t1", &c1)),
        "previous run no longer in the cache"
    );
    assert!(
        is_hit(&w.lookup("t0", &c0)),
        "the recently used entry survives"
    );
    assert_every_entry_complete(&w.store);
    assert!(w.store.prune_if_needed(u64::MAX).expect("prune").is_none());
}

#[test]
fn replaced_variants_leave_no_blobs_behind_after_prune() {
    let w = ws();
    let input = "packages/app/src/a.js";
    for i in 0..12 {
        w.write(input, &format!("version {i}"));
        stored(w.run(
            "t",
            &cmd(),
            &[input],
            &[("packages/app/dist/a.js", &format!("out {i}"))],
        ));
    }
    let s = w.store.stats().expect("stats");
    assert_eq!(s.entries, super::db::MAX_VARIANTS);
    w.store.prune(u64::MAX).expect("prune");
    let s = w.store.stats().expect("stats");
    // Each kept variant has its own output blob; the log is shared.
    assert_eq!(s.blobs, super::db::MAX_VARIANTS + 1);
    assert_every_entry_complete(&w.store);
}

/// The invariant `kill -9` must never break: every entry's blobs exist and
/// match their hashes.
fn assert_every_entry_complete(store: &Store) -> usize {
    let db = store.reader();
    let cf = db.cf_handle(CF_ENTRIES).expect("entries cf");
    let mut n = 0;
    for item in db.iterator_cf(cf, IteratorMode::Start) {
        let (_, v) = item.expect("scan");
        let entry: CacheEntry = codec::decode("entry", &v).expect("entry decodes");
        for (blob, _) in entry.blobs() {
            store
                .blob(&blob)
                .unwrap_or_else(|e| panic!("entry points at a missing blob: {e}"));
        }
        n += 1;
    }
    n
}

const CRASH_DIR_ENV: &str = "VP_CACHE_TEST_CRASH_DIR";

/// Not a test on its own: the child process of `kill_9_never_leaves_an_
/// entry_without_its_blobs`. Records runs (and prunes) as fast as it can
/// until it is killed.
#[test]
#[ignore = "child process of kill_9_never_leaves_an_entry_without_its_blobs"]
fn crash_writer_child() {
    let Some(root) = std::env::var_os(CRASH_DIR_ENV).map(PathBuf::from) else {
        return;
    };
    let root = root.canonicalize().expect("canonical");
    let pkg = root.join("pkg");
    let cache = root.join("cache");
    let store = open_store(&cache);
    fs::write(root.join("ready"), "").expect("signal ready");
    let paths = TaskPaths {
        workspace_root: &root,
        package_dir: &pkg,
        cache_dir: &cache,
    };
    let mut seed = [0u8; 8];
    getrandom::fill(&mut seed).expect("random");
    for i in 0u64.. {
        let started = Timestamp::task_start();
        let mut outputs = Vec::new();
        for f in 0..4 {
            let mut bytes = vec![0u8; 64 * 1024];
            let mut h = blake3::Hasher::new();
            h.update(&seed).update(&i.to_le_bytes()).update(&[f]);
            h.finalize_xof().fill(&mut bytes);
            let p = pkg.join(format!("dist/{f}.bin"));
            fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            fs::write(&p, &bytes).expect("write");
            outputs.push(p);
        }
        let run = ObservedRun {
            outputs,
            started,
            log: vec![LogChunk {
                stream: Stream::Stdout,
                bytes: i.to_le_bytes().to_vec(),
            }],
            ..ObservedRun::default()
        };
        let args = vec![OsString::from(format!("job{}", i % 7))];
        let spawn = SpawnFingerprint::new(SpawnSpec {
            workspace_root: &root,
            package_dir: &pkg,
            cwd: &pkg,
            program: Path::new("/bin/true"),
            args: &args,
            declared_env: &[],
            untracked_env: &[],
            inputs: GlobConfig::auto(),
            outputs: GlobConfig::auto(),
        });
        let task = format!("t{}", i % 7);
        store
            .record(&RecordRequest {
                task: &task,
                spawn: &spawn,
                paths,
                run: &run,
            })
            .expect("record");
        if i % 5 == 4 {
            store.prune(1024 * 1024).expect("prune");
        }
    }
}

#[test]
fn kill_9_never_leaves_an_entry_without_its_blobs() {
    let exe = std::env::current_exe().expect("test binary");
    let tmp = tempfile::tempdir().expect("tempdir");
    fs::create_dir_all(tmp.path().join("pkg")).expect("mkdir");
    let mut max_entries = 0;
    for round in 0..50 {
        let _ = fs::remove_file(tmp.path().join("ready"));
        let mut child = std::process::Command::new(&exe)
            .args([
                "--exact",
                "cache::store::scenario_tests::crash_writer_child",
                "--ignored",
                "--test-threads=1",
            ])
            .env(CRASH_DIR_ENV, tmp.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn child");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !tmp.path().join("ready").exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "child never opened the store (round {round})"
            );
            if let Ok(Some(status)) = child.try_wait() {
                panic!("child exited early with {status} (round {round})");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if round < 10 {
            // A second process on the same store, while the child records
            // and prunes: it reads the store as it was when it opened, every
            // entry with its blobs, and a write waits for the child's lock,
            // then gives up naming the child rather than failing.
            // The child opens an existing store read-only and takes the
            // lock with its first record; it names itself in the pid file
            // once that open is done.
            let pid_file = tmp.path().join("cache/db/vp.pid");
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while fs::read_to_string(&pid_file).ok() != Some(child.id().to_string()) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the child never wrote"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            let opts = OpenOptions::waiting(Duration::from_millis(100));
            let got = open(&tmp.path().join("cache"), &opts, &mut |n| {
                panic!("opening beside a writer waits for nothing: {n}")
            })
            .expect("no error");
            let Opened::Ready(view) = got else {
                panic!("not opened read-only beside the child (round {round})");
            };
            assert!(!view.is_writable());
            max_entries = max_entries.max(assert_every_entry_complete(&view));
            let write = view.prepare_to_write(LockWait::UpToTimeout);
            assert!(
                matches!(write, Err(CacheError::Busy { holder: Some(pid), .. }) if pid == child.id()),
                "a write beside the child is busy: {write:?}"
            );
            assert!(
                matches!(
                    view.take_notices().as_slice(),
                    [StoreNotice::WaitingForLock { .. }]
                ),
                "one waiting message"
            );
        }
        let mut r = [0u8; 2];
        getrandom::fill(&mut r).expect("random");
        std::thread::sleep(Duration::from_millis(u64::from(
            u16::from_le_bytes(r) % 120,
        )));
        // SIGKILL: no destructors, no flush, exactly like `kill -9`.
        child.kill().expect("kill");
        child.wait().expect("reap");
        let store = open_store(&tmp.path().join("cache"));
        max_entries = max_entries.max(assert_every_entry_complete(&store));
    }
    assert!(
        max_entries > 0,
        "the child never stored anything before being killed"
    );
}

#[test]
fn a_second_process_waits_then_gets_busy() {
    let w = ws();
    // The store is held by `w`; in-process the lock error is the same one a
    // second vp would get.
    let t = std::time::Instant::now();
    let got = open_exclusive(
        &w.cache,
        &OpenOptions::waiting(Duration::from_millis(100)),
        WhenUnusable::SetAside,
        &mut |_| {},
    )
    .expect("no error");
    assert!(matches!(got, Opened::Busy { .. }));
    assert!(t.elapsed() >= Duration::from_millis(100));
}

/// A dry run's lookup on the store opened read-only: the same answer as a
/// real lookup, and nothing written (the hit count, the task's pointer).
#[test]
fn a_peek_answers_like_a_lookup_and_marks_nothing() {
    use super::read_only::{ReadOnly, open_read_only};
    let w = ws();
    let input = "packages/app/src/a.js";
    w.write(input, "one");
    stored(w.run("t", &cmd(), &[input], &[("packages/app/dist/a.js", "out")]));
    let spawn = w.spawn(&cmd());
    let hits = |store: &Store| -> Vec<u64> {
        store
            .variants(&spawn.key())
            .expect("variants")
            .into_iter()
            .map(|(_, m)| m.map_or(0, |m| m.hits))
            .collect()
    };
    let ro = match open_read_only(&w.cache, &Default::default()) {
        Ok(ReadOnly::Ready(store)) => store,
        Ok(_) => panic!("expected a readable store"),
        Err(e) => panic!("read-only open failed: {e}"),
    };
    let env = EnvView::new(std::iter::empty(), &no_untracked);
    let peek = |task: &str| {
        ro.peek(&LookupRequest {
            task,
            spawn: &spawn,
            paths: w.paths(),
            env: &env,
            path_var: None,
        })
        .expect("peek")
    };
    assert!(is_hit(&peek("t")));
    assert_eq!(hits(&w.store), vec![0], "a peek counts no hit");
    // Another task with the same command would hit too; a peek does not
    // point that task at the entry.
    assert!(is_hit(&peek("other")));
    assert!(w.store.task_record("other").expect("read").is_none());
    w.write(input, "two");
    assert_eq!(miss_text(peek("t")), miss_text(w.lookup("t", &cmd())));
    assert_eq!(miss_text(peek("t")), "'src/a.js' modified");
    w.write(input, "one");
    assert!(is_hit(&w.lookup("t", &cmd())));
    assert_eq!(hits(&w.store), vec![1], "a real lookup does");
}

/// A run whose lookups all hit opens RocksDB read-only and writes nothing to
/// it (no lock, manifest, options or log files): the hits go to the journal,
/// are answered from it (the task's pointer), and the next read-write open
/// folds them in.
#[test]
fn hits_on_a_read_only_store_go_to_the_journal_and_the_next_writer_folds_them() {
    let w = ws_with_app_build_stored();
    // Settle the stat stamps (a hit right after the run may refresh them).
    std::thread::sleep(Duration::from_millis(20));
    assert!(is_hit(&w.lookup("app#build", &cmd())));
    assert!(is_hit(&w.lookup("app#build", &cmd())));
    let w = w.reopen();
    assert!(
        !w.store.is_writable(),
        "an existing, unlocked store opens read-only"
    );
    let before = w.db_files();
    std::thread::sleep(Duration::from_millis(20));
    assert!(is_hit(&w.lookup("app#build", &cmd())));
    assert!(is_hit(&w.lookup("app#build", &cmd())));
    assert!(
        !w.store.is_writable(),
        "a plain hit does not open it for writing"
    );
    assert!(w.store.task_record("app#build").expect("read").is_some());
    assert_eq!(w.db_files(), before, "RocksDB's files are untouched");
    assert!(w.cache.join("db/vp-hits.journal").is_file());

    let w = w.reopen();
    assert!(
        w.store
            .prepare_to_write(LockWait::UpToTimeout)
            .expect("opens for writing")
    );
    assert!(
        !w.store
            .prepare_to_write(LockWait::UpToTimeout)
            .expect("already open")
    );
    assert!(w.store.is_writable());
    assert!(!w.cache.join("db/vp-hits.journal").exists(), "folded in");
    assert_eq!(w.store.stats().expect("stats").hits, 4);
}

/// A fold taken aside that holds nothing that decodes (an empty journal
/// renamed, garbage) is removed by the writer that takes it, so later opens
/// go back to the read-only path instead of folding it forever.
#[test]
fn an_undecodable_fold_taken_aside_is_removed_not_folded_forever() {
    let w = ws_with_app_build_stored();
    let folding = w.cache.join("db/vp-hits.journal.folding");
    std::fs::write(&folding, b"\x03\x00\x00\x00abc").expect("write");
    let w = w.reopen();
    assert!(w.store.is_writable(), "a fold to do opens read-write");
    assert!(!folding.exists(), "taken and removed");
    let w = w.reopen();
    assert!(
        !w.store.is_writable(),
        "nothing left to fold: read-only again"
    );
    std::thread::sleep(Duration::from_millis(20));
    assert!(is_hit(&w.lookup("app#build", &cmd())));
}

/// A miss on a read-only store: the runner opens it for writing before the
/// command runs, and what it then records is found by the next run.
#[test]
fn a_read_only_store_opened_for_writing_records_and_keeps_its_hits() {
    let w = ws();
    w.write("packages/app/src/a.js", "one");
    stored(w.run(
        "app#build",
        &cmd(),
        &["packages/app/src/a.js"],
        &[("packages/app/dist/a.js", "bundle one")],
    ));
    let w = w.reopen();
    assert!(is_hit(&w.lookup("app#build", &cmd())));
    w.write("packages/app/src/a.js", "two");
    assert!(!is_hit(&w.lookup("app#build", &cmd())));
    assert!(
        w.store
            .prepare_to_write(LockWait::UpToTimeout)
            .expect("opens for writing")
    );
    stored(w.run(
        "app#build",
        &cmd(),
        &["packages/app/src/a.js"],
        &[("packages/app/dist/a.js", "bundle two")],
    ));
    let w = w.reopen();
    assert!(!w.store.is_writable());
    assert!(is_hit(&w.lookup("app#build", &cmd())));
    assert_eq!(
        w.store.stats().expect("stats").hits,
        1,
        "the journaled hit was folded in"
    );
}

/// A workspace whose `app#build` (one input, one output) is stored.
fn ws_with_app_build_stored() -> Ws {
    let w = ws();
    w.write("packages/app/src/a.js", "export const a = 1;");
    stored(w.run(
        "app#build",
        &cmd(),
        &["packages/app/src/a.js"],
        &[("packages/app/dist/a.js", "bundle a")],
    ));
    w
}

/// Another vp prunes while this one reads a read-only view; a hit whose
/// stamps need refreshing then opens for writing and must not write back
/// the entry whose blobs are gone (it restores nothing and misses).
#[test]
fn a_stamp_refresh_after_another_vp_pruned_never_resurrects_the_entry() {
    let w = ws_with_app_build_stored();
    let w = w.reopen();
    assert!(!w.store.is_writable());
    // Another vp: opens read-write (no lock is held) and prunes everything.
    let other = w.other_vp();
    assert_eq!(other.store.prune(0).expect("prune").remaining_entries, 0);
    drop(other);
    // Same content, new mtime: the lookup hashes it and refreshes stamps.
    std::thread::sleep(Duration::from_millis(20));
    w.write("packages/app/src/a.js", "export const a = 1;");
    if let LookupOutcome::Hit(hit) = w.lookup("app#build", &cmd()) {
        assert!(
            w.store.restore(&hit, &w.root).is_err(),
            "the pruned blobs cannot be restored"
        );
    }
    let w = w.reopen();
    assert!(w.store.prepare_to_write(LockWait::UpToTimeout).is_ok());
    assert_eq!(
        w.store.stats().expect("stats").entries,
        0,
        "nothing written back"
    );
}

/// Nor does it wait for another thread of this vp that is waiting for the
/// lock (a parallel task's lookup): that thread holds the one attempt to
/// open the store.
#[test]
fn a_write_that_does_not_wait_does_not_queue_behind_a_thread_waiting_for_the_lock() {
    let w = one_run_stored_then_reopened().reopen_with(Duration::from_secs(3));
    let other = w.other_vp();
    std::thread::scope(|scope| {
        let waiting = scope.spawn(|| w.store.prepare_to_write(LockWait::UpToTimeout));
        // Until it holds the attempt and waits: it says so once it knows
        // the holder (the pid file names this process).
        let deadline = Instant::now() + Duration::from_secs(2);
        while !w
            .store
            .take_notices()
            .iter()
            .any(|n| matches!(n, super::open::StoreNotice::WaitingForLock { .. }))
        {
            assert!(Instant::now() < deadline, "the other thread never waited");
            std::thread::sleep(Duration::from_millis(5));
        }
        busy_without_waiting(&w, Duration::from_millis(1500));
        assert!(
            waiting.join().expect("joined").is_err(),
            "the lock stayed held"
        );
    });
    drop(other);
}

/// A hit whose stamps need refreshing does not wait for another vp's lock
/// to write them: it is served at once, and noted in the journal.
#[test]
fn a_stamp_refresh_never_waits_for_another_vps_lock() {
    let w = ws_with_app_build_stored().reopen_with(Duration::from_secs(30));
    assert!(!w.store.is_writable());
    let other = w.other_vp();
    // Same content, new mtime: the lookup hashes it and has stamps to refresh.
    std::thread::sleep(Duration::from_millis(20));
    w.write("packages/app/src/a.js", "export const a = 1;");
    let asked = Instant::now();
    assert!(is_hit(&w.lookup("app#build", &cmd())));
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "the hit waited {:?} for the lock",
        asked.elapsed()
    );
    assert!(!w.store.is_writable(), "not opened for writing");
    assert!(
        w.cache.join("db/vp-hits.journal").is_file(),
        "noted in the journal"
    );
    drop(other);
}

/// A journaled hit older than what the database says the task used since
/// (another vp stored a new run after it) neither answers for the task nor
/// overwrites the newer pointer when folded.
#[test]
fn an_older_journaled_hit_never_replaces_a_newer_stored_pointer() {
    let w = ws();
    w.write("packages/app/src/a.js", "one");
    stored(w.run(
        "app#build",
        &cmd(),
        &["packages/app/src/a.js"],
        &[("packages/app/dist/a.js", "bundle one")],
    ));
    let first = w
        .store
        .task_record("app#build")
        .expect("read")
        .expect("a pointer");
    let w = w.reopen();
    assert!(
        is_hit(&w.lookup("app#build", &cmd())),
        "journaled hit of the first run"
    );
    // Another vp stores a newer run of the task meanwhile.
    std::thread::sleep(Duration::from_millis(20));
    w.write("packages/app/src/a.js", "two");
    let note_at = first.entry;
    let w2 = w.other_vp();
    stored(w2.run(
        "app#build",
        &cmd(),
        &["packages/app/src/a.js"],
        &[("packages/app/dist/a.js", "bundle two")],
    ));
    let second = w2
        .store
        .task_record("app#build")
        .expect("read")
        .expect("a pointer");
    assert_ne!(second.entry, note_at);
    drop(w2);
    // This vp's read-only view predates that run (it answers as of its
    // open). A note it appends late (after the other vp's fold) is older
    // than that run: once this vp opens for writing, the newer stored
    // pointer still answers.
    w.store.journal_hit("app#build", first, 1);
    assert!(
        w.store
            .prepare_to_write(LockWait::UpToTimeout)
            .expect("opens for writing")
    );
    let after = w
        .store
        .task_record("app#build")
        .expect("read")
        .expect("a pointer");
    assert_eq!(after.entry, second.entry);
}

/// A workspace whose task `t` (`cmd()`) was stored once, reopened as the
/// next vp opens it: read-only.
fn one_run_stored_then_reopened() -> Ws {
    let w = ws();
    let input = "packages/app/src/a.js";
    w.write(input, "one");
    stored(w.run("t", &cmd(), &[input], &[("packages/app/dist/a.js", "out")]));
    let w = w.reopen();
    assert!(!w.store.is_writable(), "a plain reopen is read-only");
    w
}

/// `vp cache clean` needs no lock from a vp that only read the store. When
/// that vp then has something to store, it says the store is gone and
/// creates nothing in its place (a database without vp's marker).
#[test]
fn a_reader_whose_store_was_cleaned_stores_nothing_and_says_why() {
    let w = one_run_stored_then_reopened();
    assert!(is_hit(&w.lookup("t", &cmd())), "it reads the stored run");

    let cleaned = super::evict::clean(&w.cache, &OpenOptions::waiting(LOCK_TIMEOUT), &mut |_| {})
        .expect("clean under a reader");
    assert!(matches!(
        cleaned,
        super::evict::CleanOutcome::Removed { .. }
    ));

    for attempt in ["first", "second"] {
        let err = w
            .store
            .prepare_to_write(LockWait::UpToTimeout)
            .expect_err("the store is gone");
        assert!(
            matches!(err, crate::cache::error::CacheError::Removed { .. }),
            "{attempt} attempt: {err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("was removed while this vp was using it")
                && text.contains("the next run starts a new cache"),
            "{text}"
        );
    }
    assert!(
        !w.cache.join("db").exists(),
        "nothing is created in the removed store's place"
    );
    // The next vp starts a new store (created, so read-write) and misses.
    let next = w.with_store(open_store(&w.cache));
    assert!(next.store.is_writable(), "a new store opens read-write");
    assert!(
        !is_hit(&next.lookup("t", &cmd())),
        "the cleaned run is gone"
    );
}

/// A vp that opened the store read-only and must now write, while another
/// vp holds the lock: it waits (and says so), then gives up with a message
/// naming the holder, and does not try again for every later write.
#[test]
fn a_reader_that_cannot_get_the_lock_says_who_holds_it() {
    let w = ws();
    let input = "packages/app/src/a.js";
    w.write(input, "one");
    stored(w.run("t", &cmd(), &[input], &[("packages/app/dist/a.js", "out")]));
    let w = w.reopen_with(Duration::from_millis(300));
    assert!(!w.store.is_writable(), "a plain reopen is read-only");
    let holder = w.other_vp();

    let started = std::time::Instant::now();
    let err = w
        .store
        .prepare_to_write(LockWait::UpToTimeout)
        .expect_err("the lock is held");
    assert!(started.elapsed() >= Duration::from_millis(300), "it waited");
    let text = err.to_string();
    assert!(
        matches!(err, crate::cache::error::CacheError::Busy { holder: Some(pid), .. } if pid == std::process::id()),
        "{err:?}"
    );
    assert!(text.contains("is in use by another vp (pid "), "{text}");
    let notices: Vec<String> = w
        .store
        .take_notices()
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(notices.len(), 1, "one waiting message: {notices:?}");
    assert!(notices[0].contains("waiting"), "{notices:?}");

    // Later writes in the same run fail at once with the same answer.
    let again = std::time::Instant::now();
    assert!(matches!(
        w.store.prepare_to_write(LockWait::UpToTimeout),
        Err(crate::cache::error::CacheError::Busy { .. })
    ));
    assert!(
        again.elapsed() < Duration::from_millis(100),
        "no second wait"
    );

    // The run it read is intact for the vp that holds the lock.
    assert!(is_hit(&holder.lookup("t", &cmd())));
}

/// Probe: when the store could not be opened at all, `vp cache clean`
/// failed with the same error as every run, and the user had to delete the
/// directory by hand. A store nobody holds the lock of is removed whatever
/// state it is in; the marker still proves the directory is vp's.
#[test]
fn clean_removes_a_store_that_cannot_be_opened() {
    let w = ws();
    let input = "packages/app/src/a.js";
    w.write(input, "one");
    stored(w.run("t", &cmd(), &[input], &[("packages/app/dist/a.js", "out")]));
    drop(w.store);
    let db = w.cache.join("db");
    std::fs::remove_dir_all(&db).expect("remove the store");
    std::fs::write(&db, "not a directory").expect("a file where the store was");
    let options = OpenOptions::waiting(LOCK_TIMEOUT);
    assert!(
        super::open::open(&w.cache, &options, &mut |_| {}).is_err(),
        "the damaged store does not open"
    );
    let cleaned = super::evict::clean(&w.cache, &options, &mut |_| {}).expect("cleans");
    assert!(matches!(
        cleaned,
        super::evict::CleanOutcome::Removed { .. }
    ));
    assert!(!db.exists(), "the unopenable store is gone");
    assert!(
        super::open::open(&w.cache, &options, &mut |_| {}).is_ok(),
        "the next open starts a new store"
    );
}

/// Probe: two tasks of one `-r` run that both wrote the same file were
/// restored at once, and failed with "File exists" and "No such file or
/// directory": both restores named their temp files `<pid>-1`, `<pid>-2`, ...
/// Two restores in one process never share a temp name now.
#[test]
fn concurrent_restores_of_one_output_do_not_collide() {
    let w = ws();
    w.write("packages/app/src/a.js", "export const a = 1;");
    stored(w.run(
        "app#build",
        &cmd(),
        &["packages/app/src/a.js"],
        &[("packages/app/dist/shared.js", "shared bundle")],
    ));
    let LookupOutcome::Hit(hit) = w.lookup("app#build", &cmd()) else {
        panic!("expected a hit")
    };
    let out = w.root.join("packages/app/dist/shared.js");
    for round in 0..30 {
        fs::remove_file(&out).expect("remove the output");
        std::thread::scope(|s| {
            let restores: Vec<_> = (0..2)
                .map(|_| s.spawn(|| w.store.restore(&hit, &w.root)))
                .collect();
            for r in restores {
                let report = r.join().expect("no panic");
                assert!(report.is_ok(), "round {round}: {report:?}");
            }
        });
        assert_eq!(fs::read_to_string(&out).expect("read"), "shared bundle");
    }
}

/// Asserts that a write that does not wait ([`LockWait::No`]) finds the
/// lock held, and answers within `bound` (a wait would last the store's
/// lock timeout).
#[track_caller]
fn busy_without_waiting(w: &Ws, bound: Duration) {
    let asked = Instant::now();
    assert!(matches!(
        w.store.prepare_to_write(LockWait::No),
        Err(crate::cache::error::CacheError::Busy { .. })
    ));
    assert!(
        asked.elapsed() < bound,
        "it waited {:?} for the lock",
        asked.elapsed()
    );
}

/// A write that must not wait for another vp's lock (on the event loop's
/// thread, `run::store::look_up_without_waiting`) finds it held at once,
/// and that is not remembered: once the lock is free, the next write opens
/// the store.
#[test]
fn a_write_that_does_not_wait_finds_the_lock_held_at_once_and_is_not_remembered() {
    let w = one_run_stored_then_reopened().reopen_with(Duration::from_secs(30));
    let other = w.other_vp();
    busy_without_waiting(&w, Duration::from_secs(10));
    drop(other);
    assert!(w.store.prepare_to_write(LockWait::No).expect("free now"));
    assert!(w.store.is_writable());
}

/// A run lets the lock go while it has nothing to write (`run::lock_use`):
/// another vp can then store, this one still reads everything it wrote,
/// and its next write takes the lock again. Never while a write holds the
/// writable instance, nor when the caller finds itself busy again once no
/// upgrade can start.
#[test]
fn a_released_lock_is_free_for_another_vp_and_taken_again_by_the_next_write() {
    let w = ws();
    let input = "packages/app/src/a.js";
    w.write(input, "one");
    stored(w.run("t", &cmd(), &[input], &[("packages/app/dist/a.js", "out")]));
    assert!(w.store.is_writable());

    let writing = w.store.writer().expect("writable");
    let release = |idle: bool| w.store.release_lock(&|| idle).expect("no error");
    assert_eq!(release(true), Release::InUse, "a write is under way");
    drop(writing);
    assert_eq!(release(false), Release::Needed);
    assert!(w.store.is_writable());

    assert_eq!(release(true), Release::Released);
    assert!(!w.store.is_writable());
    assert_eq!(release(true), Release::NotHeld);
    assert!(is_hit(&w.lookup("t", &cmd())), "it reads what it wrote");

    let other = w.other_vp();
    other.write(input, "two");
    stored(other.run(
        "t",
        &cmd(),
        &[input],
        &[("packages/app/dist/a.js", "out 2")],
    ));
    busy_without_waiting(&w, Duration::from_secs(10));
    drop(other);

    assert!(w.store.prepare_to_write(LockWait::No).expect("free again"));
    assert!(
        is_hit(&w.lookup("t", &cmd())),
        "the writable instance sees the other vp's run"
    );
}

/// A run that stored something and let the lock go since (a dev server
/// after its build) still keeps the cache within its bound at its end,
/// taking the lock back when it is free; a run that only read leaves
/// pruning to the next one that writes.
#[test]
fn a_run_that_let_the_lock_go_still_prunes_what_it_wrote() {
    let w = ws();
    let input = "packages/app/src/a.js";
    w.write(input, "one");
    stored(w.run("t", &cmd(), &[input], &[("packages/app/dist/a.js", "out")]));
    assert_eq!(
        w.store.release_lock(&|| true).expect("no error"),
        Release::Released
    );
    // Review: the lock was taken back at the end of every batch (every
    // watch cycle) only to find the cache within its bound.
    assert!(
        w.store
            .prune_if_needed(u64::MAX)
            .expect("no error")
            .is_none()
    );
    assert!(
        !w.store.is_writable(),
        "not taken back to find nothing to prune"
    );
    assert!(w.store.prune_if_needed(1).expect("no error").is_some());

    let w = w.reopen();
    assert!(!w.store.is_writable());
    assert!(w.store.prune_if_needed(1).expect("no error").is_none());
    assert!(!w.store.is_writable(), "a reader is not opened to prune");
}
