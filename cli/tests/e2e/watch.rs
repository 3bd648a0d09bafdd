//! `vp run --watch` on the `watch` fixture (b's build reads a's output): an edit re-runs the
//! tasks that read it and what reads their outputs, an edit nobody read re-runs nothing,
//! creating a file a task probed for re-runs it, config edits plan the run again, uncached tasks
//! are watched by package, persistent tasks and tools that disable the cache are started once,
//! and Ctrl-C ends it all with 130.
//!
//! Nothing here sleeps for a fixed time but one clock tick (`after_a_clock_tick`): each step waits (generously, for a loaded 2-core
//! machine) for the status line that says the cycle it caused is over.

use std::time::{Duration, Instant};

use crate::harness::{Running, Signal, Workspace, alive, wait_until};

/// Per step: a traced Node start, twice, on a machine running the whole suite.
const STEP: Duration = Duration::from_secs(120);

fn watch(ws: &Workspace, args: &[&str]) -> Running {
    let mut all = vec!["run", "--watch"];
    all.extend_from_slice(args);
    ws.vp(all).timeout(Duration::from_secs(600)).spawn()
}

/// How many cycles are over: each ends with a `vp: watching` line.
fn cycles(stderr: &str) -> usize {
    stderr.matches("vp: watching ").count()
}

/// Waits until `line` was printed and a cycle ended after it.
#[track_caller]
fn wait_for_cycle_after(running: &mut Running, line: &str) {
    running.wait_for_stderr(STEP, &format!("a cycle after `{line}`"), |err| {
        err.find(line)
            .is_some_and(|at| err[at..].contains("vp: watching "))
    });
}

/// Waits out the coarse ctime clock's tick after a cycle: an edit within
/// one tick of a task's end is taken for the task's own when the task is
/// watched by its package directory (docs/watch.md, "Edits while tasks
/// run"). A test that edits the instant the status line appears is faster
/// than any person; on a loaded machine it hit that tick about once in
/// six runs. The only fixed wait here, and it is not a timing guess: 30 ms
/// is several ticks at any kernel's timer rate (100 Hz and up).
fn after_a_clock_tick() {
    std::thread::sleep(Duration::from_millis(30));
}

/// The `bridge-verbs` workspace with one cached task `t`, which copies `in.txt` ("one") to
/// `t-out.txt`, and `other` (more tasks' JSON) beside it in `vite-task.json`.
fn with_task_t(other: &str) -> Workspace {
    let ws = Workspace::new("bridge-verbs");
    ws.write(
        "t.js",
        "const fs = require('fs');\n\
         fs.writeFileSync('t-out.txt', fs.readFileSync('in.txt', 'utf8'));\n",
    );
    ws.write("in.txt", "one\n");
    ws.write(
        "vite-task.json",
        format!(
            r#"{{ "tasks": {{
                "t": {{ "command": "node t.js", "cache": true, "input": ["in.txt", "t.js"] }},
                {other}
            }} }}"#
        ),
    );
    ws
}

/// Stops the watch with SIGINT to vp alone and checks it exits 130.
#[track_caller]
fn interrupt(running: Running) -> String {
    running.signal(Signal::SIGINT);
    let out = running.wait();
    out.assert_code(130);
    out.stderr
}

#[test]
fn an_edit_reruns_its_readers_and_the_readers_of_their_outputs() {
    let ws = Workspace::new("watch");
    let mut running = watch(&ws, &["-r", "build"]);
    running.wait_for_stderr(STEP, "the first cycle", |err| cycles(err) >= 1);
    assert_eq!(ws.take_executions(), ["a#build", "b#build"]);
    let first = running.output_so_far().1;
    assert!(
        first.contains("vp: watching ") && first.contains(" files in 2 tasks (Ctrl-C to stop)"),
        "{first}"
    );

    // a's input: a runs, then b, which reads a's output.
    ws.write("packages/a/src/in.txt", "a2\n");
    wait_for_cycle_after(
        &mut running,
        "vp: changed: packages/a/src/in.txt → a#build, b#build",
    );
    assert_eq!(ws.take_executions(), ["a#build", "b#build"]);
    assert_eq!(
        ws.read("packages/b/dist/out.txt"),
        "b built from: b1\nand a built from: a2\n"
    );

    // b's input: only b.
    ws.write("packages/b/src/in.txt", "b2\n");
    wait_for_cycle_after(&mut running, "vp: changed: packages/b/src/in.txt → b#build");
    assert_eq!(ws.take_executions(), ["b#build"]);

    // Back to a's first input: both run, and both are hits (a's output is as it was first).
    ws.write("packages/a/src/in.txt", "a1\n");
    let edit = "vp: changed: packages/a/src/in.txt → a#build, b#build";
    running.wait_for_stderr(STEP, "the second edit of a's input", |err| {
        err.matches(edit).count() == 2
            && err[err.rfind(edit).unwrap_or(0)..].contains("vp: watching ")
    });
    assert_eq!(
        ws.take_executions(),
        ["b#build"],
        "a's first input was a hit"
    );
    let stderr = interrupt(running);
    assert!(!stderr.contains("nothing to re-run"), "{stderr}");
}

#[test]
fn an_edit_no_task_read_reruns_nothing() {
    let ws = Workspace::new("watch");
    let mut running = watch(&ws, &["-r", "build", "-v"]);
    running.wait_for_stderr(STEP, "the first cycle", |err| cycles(err) >= 1);
    assert_eq!(ws.take_executions(), ["a#build", "b#build"]);
    ws.write("notes.txt", "still read by nobody\n");
    running.wait_for_stderr(STEP, "the edit of notes.txt", |err| {
        err.contains("vp: changed: notes.txt → nothing to re-run")
    });
    // Then an edit that does count, so the watch is seen alive after the ignored one.
    ws.write("packages/b/src/in.txt", "b2\n");
    wait_for_cycle_after(&mut running, "vp: changed: packages/b/src/in.txt → b#build");
    assert_eq!(ws.take_executions(), ["b#build"]);
    let stderr = interrupt(running);
    assert_eq!(cycles(&stderr), 2, "{stderr}");
}

#[test]
fn creating_a_file_a_task_probed_for_reruns_it() {
    let ws = Workspace::new("watch");
    let mut running = watch(&ws, &["-r", "build"]);
    running.wait_for_stderr(STEP, "the first cycle", |err| cycles(err) >= 1);
    assert_eq!(ws.take_executions(), ["a#build", "b#build"]);
    ws.write("packages/a/src/extra.txt", "extra\n");
    wait_for_cycle_after(
        &mut running,
        "vp: changed: packages/a/src/extra.txt → a#build, b#build",
    );
    assert_eq!(ws.take_executions(), ["a#build", "b#build"]);
    assert_eq!(
        ws.read("packages/a/dist/out.txt"),
        "a built from: a1\nextra\n"
    );
    interrupt(running);
}

#[test]
fn ctrl_c_stops_watching_and_its_persistent_task_and_exits_130() {
    let ws = Workspace::new("watch");
    ws.write(
        "packages/b/serve.js",
        "require('fs').writeFileSync('serve.pid', String(process.pid));\n\
         setInterval(() => {}, 1000);\n",
    );
    ws.write(
        "packages/b/vite-task.json",
        r#"{
  "tasks": {
    "build": { "command": "node build.js", "dependsOn": ["a#build"] },
    "serve": { "command": "node serve.js", "persistent": true, "cache": false, "dependsOn": ["build"] }
  }
}
"#,
    );
    let mut running = watch(&ws, &["b#serve"]);
    running.wait_for_stderr(STEP, "the first cycle", |err| cycles(err) >= 1);
    let pid = ws.read_pid("packages/b/serve.pid");
    let stderr = running.output_so_far().1;
    assert!(
        stderr.contains("vp: b#serve is persistent: started once, never re-run by an edit"),
        "{stderr}"
    );
    // An edit re-runs the builds, not the persistent task.
    ws.write("packages/a/src/in.txt", "a2\n");
    wait_for_cycle_after(
        &mut running,
        "vp: changed: packages/a/src/in.txt → a#build, b#build",
    );
    assert!(alive(pid), "the persistent task was stopped by an edit");
    assert_eq!(
        ws.read("packages/b/serve.pid"),
        pid.to_string(),
        "the persistent task was started again"
    );
    interrupt(running);
    assert!(
        wait_until(Instant::now() + Duration::from_secs(10), || !alive(pid)),
        "the persistent task (pid {pid}) outlived vp"
    );
}

#[test]
fn ctrl_c_during_a_cycle_stops_its_task_and_stores_nothing_of_it() {
    let ws = Workspace::new("watch");
    let mut running = watch(&ws, &["-r", "build"]);
    running.wait_for_stderr(STEP, "the first cycle", |err| cycles(err) >= 1);
    ws.take_executions();
    // a's next run waits for a file that never comes.
    ws.write(
        "packages/a/build.js",
        "require('fs').writeFileSync(require('path').join(__dirname, 'slow.pid'), String(process.pid));\n\
         setInterval(() => {}, 1000);\n",
    );
    // Editing build.js re-runs a#build, which then writes its pid and waits.
    let pid = ws.read_pid("packages/a/slow.pid");
    let stderr = interrupt(running);
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(
        wait_until(Instant::now() + Duration::from_secs(10), || !alive(pid)),
        "a#build (pid {pid}) outlived vp"
    );
    assert!(ws.take_executions().is_empty());
    // The two entries of the first cycle, nothing of the cancelled one.
    let stats = ws.vp(["cache", "stats"]).output();
    assert!(stats.stdout.contains("entries:  2"), "{}", stats.combined());
}

#[test]
fn a_config_edit_plans_the_run_again_and_a_broken_one_is_waited_out() {
    let ws = Workspace::new("watch");
    let mut running = watch(&ws, &["-r", "build"]);
    running.wait_for_stderr(STEP, "the first cycle", |err| cycles(err) >= 1);
    assert_eq!(ws.take_executions(), ["a#build", "b#build"]);

    // Half-way through an edit: the run cannot be planned, vp says so and keeps watching.
    ws.write("packages/a/vite-task.json", "{ \"tasks\": { \"build\": ");
    running.wait_for_stderr(STEP, "the planning error", |err| {
        err.contains("vp: cannot plan the run: ") && err.contains("vp keeps watching")
    });
    // Done: a's command changed, so a runs; it writes what it wrote before, so b is a hit.
    ws.write(
        "packages/a/vite-task.json",
        r#"{ "tasks": { "build": { "command": "node build.js again" } } }"#,
    );
    let replanned = "vp: changed: packages/a/vite-task.json → planning the run again";
    running.wait_for_stderr(STEP, "a cycle after the fixed config", |err| {
        err.matches(replanned).count() == 2
            && err[err.rfind(replanned).unwrap_or(0)..].contains("vp: watching ")
    });
    assert_eq!(ws.take_executions(), ["a#build"]);
    interrupt(running);
}

#[test]
fn tasks_without_the_cache_are_watched_by_their_package_directory() {
    let ws = Workspace::new("watch");
    let mut running = watch(&ws, &["-r", "build", "--no-cache", "-v"]);
    running.wait_for_stderr(STEP, "the first cycle", |err| cycles(err) >= 1);
    assert_eq!(ws.take_executions(), ["a#build", "b#build"]);
    let stderr = running.output_so_far().1;
    assert!(
        stderr.contains(
            "vp: a#build: what it reads is unknown (its cache is off, so it is not traced); watching its package directory"
        ),
        "{stderr}"
    );
    // b's package: only b (a's writes into its own package did not re-run a either).
    after_a_clock_tick();
    ws.write("packages/b/src/in.txt", "b2\n");
    wait_for_cycle_after(&mut running, "vp: changed: packages/b/src/in.txt → b#build");
    assert_eq!(ws.take_executions(), ["b#build"]);
    // a's package: a, then b, which depends on it.
    after_a_clock_tick();
    ws.write("packages/a/src/in.txt", "a2\n");
    wait_for_cycle_after(
        &mut running,
        "vp: changed: packages/a/src/in.txt → a#build, b#build",
    );
    assert_eq!(ws.take_executions(), ["a#build", "b#build"]);
    let stderr = interrupt(running);
    assert_eq!(
        cycles(&stderr),
        3,
        "a task's own writes started a cycle:\n{stderr}"
    );
}

#[test]
fn a_task_whose_tool_disabled_the_cache_is_not_re_run_by_an_edit() {
    let ws = Workspace::new("bridge-verbs");
    let mut running = watch(&ws, &["disable-cache", "-v"]);
    running.wait_for_stderr(STEP, "the first cycle", |err| cycles(err) >= 1);
    assert_eq!(ws.take_executions(), ["disable-cache"]);
    let stderr = running.output_so_far().1;
    assert!(
        stderr.contains("called disableCache(), so no edit re-runs it"),
        "{stderr}"
    );
    // Its input is not even watched (a run vp did not store tells it nothing); a later edit in
    // the watched root directory shows the loop went past it.
    ws.write("src/data.txt", "edited\n");
    ws.write("notes.txt", "read by nobody\n");
    running.wait_for_stderr(STEP, "the edit after its input's", |err| {
        err.contains("vp: changed: notes.txt → nothing to re-run")
    });
    assert!(ws.take_executions().is_empty());
    let stderr = interrupt(running);
    assert_eq!(cycles(&stderr), 1, "{stderr}");
}

/// Probe: an edit made while the first cycle ran was lost: the store refused the run ("its input
/// was modified while it ran") and vp went on watching with the old output, because nothing was
/// watched yet to hear the edit. The refused input is a change once the watches are set.
#[test]
fn an_edit_while_the_first_cycle_runs_is_not_lost() {
    let ws = Workspace::new("watch");
    ws.write(
        "packages/a/build.js",
        "const fs = require('node:fs');\n\
         const text = fs.readFileSync('src/in.txt', 'utf8');\n\
         fs.writeFileSync('started', '');\n\
         while (!fs.existsSync('go')) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);\n\
         fs.mkdirSync('dist', { recursive: true });\n\
         fs.writeFileSync('dist/out.txt', `a built from: ${text}`);\n",
    );
    let mut running = watch(&ws, &["a#build"]);
    ws.wait_for("packages/a/started", STEP);
    after_a_clock_tick();
    ws.write("packages/a/src/in.txt", "edited while it ran\n");
    ws.write("packages/a/go", "");
    running.wait_for_stderr(STEP, "a second cycle", |err| cycles(err) >= 2);
    assert_eq!(
        ws.read("packages/a/dist/out.txt"),
        "a built from: edited while it ran\n"
    );
    interrupt(running);
}

/// Probe: a task that found a file missing, which a task after it in the same first cycle
/// created, was never re-run: the file was made before its directory was watched. Once the
/// watches are set, what a task found missing and what it read are checked again.
#[test]
fn a_file_a_later_task_makes_in_the_first_cycle_reruns_the_task_that_probed_it() {
    let ws = Workspace::new("watch");
    ws.write(
        "packages/a/build.js",
        "const fs = require('node:fs');\n\
         const cfg = fs.existsSync('a.cfg') ? fs.readFileSync('a.cfg', 'utf8') : 'default\\n';\n\
         fs.mkdirSync('dist', { recursive: true });\n\
         fs.writeFileSync('dist/out.txt', `a built with: ${cfg}`);\n",
    );
    ws.write(
        "packages/b/build.js",
        "require('node:fs').writeFileSync('../a/a.cfg', 'from b\\n');\n",
    );
    let mut running = watch(&ws, &["-r", "build"]);
    running.wait_for_stderr(STEP, "a cycle that re-ran a#build", |err| {
        cycles(err) >= 2 && err.contains("vp: changed: packages/a/a.cfg")
    });
    assert_eq!(ws.read("packages/a/dist/out.txt"), "a built with: from b\n");
    interrupt(running);
}

/// Ctrl-C while a watched task's lookup waits for another vp's lock ends the watch at once and
/// starts nothing. The watch's store is still read-only (its first cycle only hit); another vp
/// then takes the lock and keeps it while its task runs; an edit makes the watched task miss,
/// and storing its run needs the lock. Found by review: when a lone task's lookup ran on the
/// event loop's thread, the signal waited for the lock's timeout and the command then ran.
#[test]
fn ctrl_c_while_a_lookup_waits_for_another_vps_lock_starts_nothing() {
    let ws = with_task_t(r#""hold": { "command": "node hold.js", "cache": true }"#);
    // Outside the workspace, so that no watched directory changes when it is written.
    let holding = ws.root().parent().expect("temp dir").join("holding");
    ws.write_lock_holder(&holding);
    ws.vp(["run", "t"]).output().assert_success();
    assert_eq!(ws.read("t-out.txt"), "one\n");

    let mut watching = ws
        .vp(["run", "--watch", "t"])
        .env("VP_CACHE_LOCK_TIMEOUT", "100")
        .timeout(Duration::from_secs(600))
        .spawn();
    watching.wait_for_stderr(STEP, "the first cycle, a hit", |err| cycles(err) >= 1);
    let holder = ws.hold_the_lock(&holding);
    // The pid file names the holder only as a courtesy (written after the lock is taken, best
    // effort): the watch must not rely on it, so here it names a process that is gone.
    let mut gone = std::process::Command::new("true")
        .spawn()
        .expect("spawn true");
    gone.wait().expect("wait");
    ws.write("node_modules/.cache/vp/db/vp.pid", gone.id().to_string());
    after_a_clock_tick();
    ws.write("in.txt", "two\n");
    watching.wait_for_stderr(STEP, "the edit", |err| err.contains("vp: changed: in.txt"));
    // Well into the wait for the lock (its timeout is 100 s here), which is announced a moment
    // after it begins when the pid file names no live process, however loaded the machine.
    std::thread::sleep(Duration::from_secs(2));
    let asked = Instant::now();
    let stderr = interrupt(watching);
    assert!(
        asked.elapsed() < Duration::from_secs(30),
        "Ctrl-C took {:?} to end the watch\n{stderr}",
        asked.elapsed()
    );
    assert!(
        stderr.contains("vp: waiting for the cache lock"),
        "Ctrl-C came before the wait it is about\n{stderr}"
    );
    assert_eq!(
        ws.read("t-out.txt"),
        "one\n",
        "the watched task started after Ctrl-C\n{stderr}"
    );
    holder.signal(Signal::SIGINT);
    holder.wait();
}

/// A watch that stored its first cycle's miss kept the store's lock for as long as it watched:
/// every other vp on the workspace waited for it and ran its misses without the cache. It now
/// lets the lock go while it waits for an edit, and takes it again for the next miss.
#[test]
fn a_watch_waiting_for_an_edit_leaves_the_cache_to_other_vps() {
    let ws = with_task_t(r#""u": { "command": "node u.js", "cache": true, "input": ["u.js"] }"#);
    ws.write("u.js", "require('fs').writeFileSync('u-out.txt', 'u');\n");
    let mut watching = watch(&ws, &["t"]);
    watching.wait_for_stderr(STEP, "the first cycle, a miss", |err| cycles(err) >= 1);

    let other = |what: &str| run_u_beside_the_watch(&ws, what);
    let first = other("the other vp's miss");
    assert!(first.stderr.contains("cache miss"), "{}", first.combined());
    let again = other("its hit");
    assert!(
        again.stderr.contains("cache hit"),
        "the other vp's miss was stored beside the watch:\n{}",
        again.combined()
    );

    // The watch still stores its own runs (the other vp's output, in the same directory, may
    // come in the same cycle, or start a cycle of its own: the one that ran `t` again must be
    // over, not just any cycle).
    after_a_clock_tick();
    ws.write("in.txt", "two\n");
    wait_for_cycle_after(&mut watching, "'in.txt' modified");
    let stderr = interrupt(watching);
    assert!(!stderr.contains("without the cache"), "{stderr}");
    let out = ws.vp(["run", "t"]).output();
    out.assert_success();
    assert!(
        out.stderr.contains("cache hit"),
        "the watch stored its second cycle:\n{}",
        out.combined()
    );
}

/// `vp run u` beside a running watch: it must not wait for the watch's lock.
#[track_caller]
fn run_u_beside_the_watch(ws: &Workspace, what: &str) -> crate::harness::Output {
    let began = Instant::now();
    let out = ws
        .vp(["run", "u"])
        .env("VP_CACHE_LOCK_TIMEOUT", "30")
        .output();
    out.assert_success();
    assert!(
        began.elapsed() < Duration::from_secs(20) && !out.stderr.contains("cache lock"),
        "{what} waited for the watch's lock ({:?}):\n{}",
        began.elapsed(),
        out.combined()
    );
    out
}

/// Review: a persistent task left cached (`tsc --watch` without `"cache": false`) held the
/// store's lock for the whole watch session, a cached command holding it from its lookup to its
/// record: another vp's misses waited out the timeout and ran without the cache. In watch mode
/// a persistent task runs without the cache.
#[test]
fn a_cached_persistent_task_does_not_hold_the_cache_for_the_session() {
    let ws = with_task_t(
        r#""server": { "command": "node -e \"setInterval(() => {}, 1000)\"", "persistent": true },
           "u": { "command": "node u.js", "cache": true, "input": ["u.js"] }"#,
    );
    ws.write("u.js", "require('fs').writeFileSync('u-out.txt', 'u');\n");
    let mut watching = watch(&ws, &["server"]);
    watching.wait_for_stderr(STEP, "the server started", |err| {
        err.contains("is persistent: started once")
    });
    run_u_beside_the_watch(&ws, "the other vp's miss");
    let again = ws.vp(["run", "u"]).output();
    assert!(again.stderr.contains("cache hit"), "{}", again.combined());
    interrupt(watching);
}

/// A watch whose first miss waited out another vp's lock ran every later cycle without the
/// cache, for the rest of the session, naming a vp long gone. Each cycle now waits for the lock
/// again when it has something to store.
#[test]
fn a_watch_tries_the_lock_again_in_each_cycle() {
    let ws = with_task_t(r#""hold": { "command": "node hold.js", "cache": true }"#);
    let holding = ws.root().parent().expect("temp dir").join("holding");
    ws.write_lock_holder(&holding);
    let holder = ws.hold_the_lock(&holding);
    let mut watching = ws
        .vp(["run", "--watch", "t"])
        .env("VP_CACHE_LOCK_TIMEOUT", "1")
        .timeout(Duration::from_secs(600))
        .spawn();
    watching.wait_for_stderr(STEP, "the first cycle, without the cache", |err| {
        cycles(err) >= 1 && err.contains("holds the cache lock")
    });
    holder.signal(Signal::SIGINT);
    holder.wait();

    let before = watching.output_so_far().1.len();
    after_a_clock_tick();
    ws.write("in.txt", "two\n");
    watching.wait_for_stderr(STEP, "a cycle after the edit", |err| {
        cycles(&err[before..]) >= 1
    });
    let stderr = interrupt(watching);
    assert!(
        !stderr[before..].contains("cache lock") && !stderr[before..].contains("unavailable"),
        "the second cycle went without the cache:\n{stderr}"
    );
    let out = ws.vp(["run", "t"]).output();
    out.assert_success();
    assert!(
        out.stderr.contains("cache hit"),
        "the second cycle was stored:\n{}",
        out.combined()
    );
}
