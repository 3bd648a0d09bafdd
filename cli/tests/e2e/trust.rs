//! Trust: the scenarios that make people turn a cache off for good, on real tools. A stale hit
//! after `tsc -b` ran outside vp, leftovers after restoring an older Vite build, a cache dir
//! poisoned by one uncached run, a nested `vp run` waiting for its parent's lock.

use std::time::{Duration, Instant};

use crate::harness::{NodeModules, Signal, Workspace, assert_same_tree, vp_bin, wait_until};

fn hit(stderr: &str) -> bool {
    stderr.contains("◉ cache hit, replaying")
}

/// Done-when of the trust issue: `tsc -b` last ran outside vp (an IDE, a hook), so every
/// project is up to date and the first traced run only *stats* the sources. An edit must then
/// re-run `tsc -b`, ship the new output, and fail on a new type error, as plain `tsc -b` does.
#[test]
fn tsc_b_that_last_ran_outside_vp_rebuilds_after_an_edit() {
    let ws = Workspace::with_node_modules("tsc-refs", NodeModules::Link);
    ws.run(ws.path("node_modules/.bin/tsc"))
        .arg("-b")
        .output()
        .assert_success();
    assert!(ws.read("lib/dist/greet.js").contains("hello, "));

    let first = ws.vp(["run", "build", "--cache"]).output();
    first.assert_success();
    let again = ws.vp(["run", "build", "--cache"]).output();
    again.assert_success();
    assert!(
        hit(&again.stderr),
        "an unchanged project hits:\n{}",
        again.combined()
    );

    ws.edit("lib/src/greet.ts", |s| s.replace("hello, ", "good day, "));
    let edited = ws.vp(["run", "build", "--cache"]).output();
    edited.assert_success();
    assert!(
        !hit(&edited.stderr),
        "an edit must not hit:\n{}",
        edited.combined()
    );
    assert!(
        edited.stderr.contains("greet.ts' modified"),
        "{}",
        edited.stderr
    );
    assert!(
        ws.read("lib/dist/greet.js").contains("good day, "),
        "the new output ships"
    );

    ws.edit("app/src/main.ts", |s| {
        s.replace("const message: string", "const message: number")
    });
    let broken = ws.vp(["run", "build", "--cache"]).output();
    assert!(
        broken.stdout.contains("error TS2322"),
        "{}",
        broken.combined()
    );
    let plain = ws.run(ws.path("node_modules/.bin/tsc")).arg("-b").output();
    assert_ne!(plain.code, Some(0), "{}", plain.combined());
    assert_eq!(
        broken.code,
        plain.code,
        "vp exits as plain `tsc -b` does:\n{}",
        broken.combined()
    );
}

/// Done-when of the trust issue: build, edit, build, revert, build on a real Vite app leaves
/// `dist/` byte-identical to the first build (Vite empties `outDir` on a real run; the hit must
/// not leave the edited build's bundle beside the restored one).
#[test]
fn vite_build_edit_build_revert_build_leaves_dist_as_the_first_build() {
    let ws = Workspace::with_node_modules("vite-app", NodeModules::Link);
    ws.vp(["build"]).output().assert_success();
    let first = ws.tree("dist");
    let original = ws.read("src/format.js");
    ws.edit("src/format.js", |s| {
        format!("{s}\nexport const edited = 'a visible change';\n")
    });
    ws.edit("src/main.js", |s| {
        format!("{s}\nimport {{ edited }} from './format.js';\nconsole.log(edited);\n")
    });
    let main = ws.read("src/main.js");
    ws.vp(["build"]).output().assert_success();
    assert_ne!(
        first.paths().collect::<Vec<_>>(),
        ws.tree("dist").paths().collect::<Vec<_>>(),
        "the edit changes the bundle's name"
    );
    ws.write("src/format.js", &original);
    ws.write(
        "src/main.js",
        main.split("\nimport { edited }").next().unwrap_or(&main),
    );
    let reverted = ws.vp(["build"]).output();
    reverted.assert_success();
    assert!(
        hit(&reverted.stderr),
        "the first build is hit again:\n{}",
        reverted.combined()
    );
    assert_same_tree(&first, &ws.tree("dist"));
}

/// Issue: one `vp run --no-cache` (or a run of package.json scripts only) wrote `last-run.txt`
/// into the cache dir; from then on every run said it "does not look like a vp cache".
#[test]
fn an_uncached_first_run_does_not_poison_the_cache_dir() {
    let ws = Workspace::new("example");
    ws.vp(["run", "-r", "build", "--no-cache"])
        .output()
        .assert_success();
    let cached = ws.vp(["run", "-r", "build"]).output();
    cached.assert_success();
    assert!(
        !cached.stderr.contains("could not be opened"),
        "{}",
        cached.combined()
    );
    assert!(!cached.stderr.contains("VP-CACHE"), "{}", cached.combined());
    let again = ws.vp(["run", "-r", "build"]).output();
    assert!(
        again.stderr.contains("vp run: 3/3 cache hit"),
        "{}",
        again.combined()
    );
    let details = ws.vp(["run", "--last-details"]).output();
    details.assert_success();
    assert!(
        !details.stdout.contains("no previous run"),
        "{}",
        details.combined()
    );
    ws.vp(["cache", "clean"])
        .output()
        .assert_success()
        .assert_stdout_contains("removed the cache at");
    assert!(
        !ws.exists("node_modules/.cache/vp"),
        "vp's own directory is gone after clean"
    );
}

/// Runs vp with `args`, which must succeed without waiting for any vp's lock: the wait, 20 s
/// here, would show in the time, and its notice on stderr.
#[track_caller]
fn run_not_kept_waiting(ws: &Workspace, args: &[&str], what: &str) -> crate::harness::Output {
    let began = Instant::now();
    let out = ws.vp(args).env("VP_CACHE_LOCK_TIMEOUT", "20").output();
    out.assert_success();
    assert!(
        began.elapsed() < Duration::from_secs(15),
        "{what} waited {:?}:\n{}",
        began.elapsed(),
        out.combined()
    );
    assert!(
        !out.stderr.contains("waiting for the cache lock"),
        "{what} waited for a lock:\n{}",
        out.combined()
    );
    out
}

/// Runs a cached task `outer` whose command is `prefix` and a nested `vp run` of a cached
/// build: the nested run must give up the cache at once, its outer task caching it, and say
/// `why`.
fn nested_run_gives_up_the_cache_at_once(prefix: &str, why: &str) {
    let ws = Workspace::new("example");
    ws.write(
        "vite-task.json",
        format!(
            r#"{{ "tasks": {{ "outer": {{ "command": "{prefix}{} run @example/utils#build" }} }} }}"#,
            vp_bin().display()
        ),
    );
    let out = run_not_kept_waiting(&ws, &["run", "outer"], "the nested run");
    assert!(out.stderr.contains(why), "{}", out.combined());
}

/// Issue: a task that runs `vp run` on its own workspace waited 10 s for the lock its parent
/// held, every time, and the wait message was replayed on later hits.
#[test]
fn a_nested_vp_run_does_not_wait_for_its_parents_lock() {
    nested_run_gives_up_the_cache_at_once("", "the outer task caches this run");
}

/// Review: with the variable that lists the vps caching a command removed on the way (`env
/// -u`, `sudo`, a tool that passes on only what it knows, an older vp above), the nested run
/// took its parent's lock for another task's, waited the whole timeout, and ran uncached
/// with a wrong message. Without the list, every vp above counts as caching, as before it.
#[test]
fn a_nested_vp_run_whose_list_was_removed_does_not_wait_for_its_parents_lock() {
    nested_run_gives_up_the_cache_at_once(
        "env -u VP_RUN_CACHED_BY ",
        "VP_RUN_CACHED_BY did not reach this vp to say whether its task caches this run",
    );
}

/// Found running a dev server beside a build: `vp run dev` (a `"cache": false` server that
/// depends on a cached build) took the store's lock before starting the server, or with its
/// build's miss, and kept it for as long as the server ran. `vp run build` in another terminal
/// then waited 10 s and ran without the cache, hit or not. A command whose run is not stored
/// takes no lock, and the dev run lets the lock its build took go once only the server runs,
/// so the other vp hits at once, and stores what it must run.
#[test]
fn a_running_uncached_task_leaves_the_cache_to_other_vps() {
    let ws = Workspace::new("example");
    let outside = ws.root().parent().expect("temp dir").to_path_buf();
    let started = outside.join("dev-started");
    ws.write_lock_holder(&started);
    ws.write(
        "packages/utils/vite-task.json",
        r#"{ "tasks": {
            "build": { "command": "node build.js" },
            "dev": { "command": "node ../../hold.js", "cache": false, "dependsOn": ["build"] }
        } }"#,
    );
    ws.vp(["run", "@example/utils#build"])
        .output()
        .assert_success();
    // The dev run's build misses, and its record takes the lock, which the dev run lets go
    // when only the server is left running.
    ws.edit("packages/utils/src/strings.js", |s| {
        format!("{s}// before dev\n")
    });
    let dev = ws
        .vp(["run", "@example/utils#dev"])
        .timeout(Duration::from_secs(600))
        .spawn();
    let deadline = Instant::now() + Duration::from_secs(120);
    assert!(
        wait_until(deadline, || started.exists()),
        "the dev task did not start"
    );

    let beside = |what: &str| {
        let out = run_not_kept_waiting(&ws, &["run", "@example/utils#build"], what);
        assert!(
            !out.stderr.contains("cache lock"),
            "{what}: another vp's lock was in the way:\n{}",
            out.combined()
        );
        out
    };
    let unchanged = beside("a hit");
    assert!(hit(&unchanged.stderr), "{}", unchanged.combined());
    ws.edit("packages/utils/src/math.js", |s| format!("{s}// edited\n"));
    let edited = beside("a miss");
    assert!(!hit(&edited.stderr), "{}", edited.combined());
    let stored = beside("the stored miss");
    assert!(
        hit(&stored.stderr),
        "the miss beside the dev server was stored:\n{}",
        stored.combined()
    );

    dev.signal(Signal::SIGINT);
    dev.wait();
}

/// The other side of the same lock: a vp that stored a miss keeps the lock until it exits (`vp
/// run dev` after its build missed). Another vp then waited 10 s before its first task and ran
/// every task without the cache, hits included; had its wait begun mid-run, it would have
/// said so only once the wait was over. It now reads the store as the holder left it: a hit is
/// served at once, and a miss waits for the lock, saying so as the wait begins, and is stored
/// once the holder lets go.
#[test]
fn another_vps_lock_delays_only_the_misses_and_the_wait_is_announced_as_it_begins() {
    let ws = Workspace::new("example");
    let outside = ws.root().parent().expect("temp dir").to_path_buf();
    let started = outside.join("holding");
    ws.write_lock_holder(&started);
    ws.write(
        "vite-task.json",
        r#"{ "tasks": { "hold": { "command": "node hold.js", "cache": true } } }"#,
    );
    ws.vp(["run", "@example/utils#build"])
        .output()
        .assert_success();
    let holder = ws.hold_the_lock(&started);

    let served = run_not_kept_waiting(&ws, &["run", "@example/utils#build"], "a hit");
    assert!(hit(&served.stderr), "{}", served.combined());

    ws.edit("packages/utils/src/math.js", |s| format!("{s}// edited\n"));
    let mut missing = ws
        .vp(["run", "@example/utils#build"])
        .env("VP_CACHE_LOCK_TIMEOUT", "100")
        .timeout(Duration::from_secs(600))
        .spawn();
    missing.wait_for_stderr(Duration::from_secs(30), "the wait's notice", |err| {
        err.contains("waiting for the cache lock")
    });
    assert!(
        !missing.has_exited(),
        "the notice came once the wait was over"
    );
    holder.signal(Signal::SIGINT);
    holder.wait();
    let out = missing.wait();
    out.assert_success();
    assert!(
        !out.stderr.contains("without the cache") && !hit(&out.stderr),
        "{}",
        out.combined()
    );
    let again = ws.vp(["run", "@example/utils#build"]).output();
    again.assert_success();
    assert!(
        hit(&again.stderr),
        "the miss was stored once the lock was free:\n{}",
        again.combined()
    );
}

/// The same lock, seen from inside: a nested `vp run` in a command that is not cached ran its
/// tasks without the cache, saying "the outer task caches this run", though nothing did,
/// whenever its vp had the store open for a cached task of the same run (`first`: a hit in the
/// second run; in the first, a miss, whose record took the lock, which the outer vp now lets
/// go before the uncached command starts). Nothing caches the uncached command's run as a
/// whole, so the nested vp uses the cache.
#[test]
fn a_nested_vp_run_in_an_uncached_command_uses_the_cache() {
    let ws = Workspace::new("example");
    let vp = vp_bin();
    ws.write(
        "vite-task.json",
        format!(
            r#"{{ "tasks": {{
                "first": {{ "command": "node -e 0" }},
                "outer": {{ "command": "{} run @example/utils#build", "cache": false, "dependsOn": ["first"] }}
            }} }}"#,
            vp.display()
        ),
    );
    for run in ["stores", "hits"] {
        let out = run_not_kept_waiting(&ws, &["run", "outer"], run);
        assert!(
            !out.stderr.contains("the outer task caches this run")
                && !out.stderr.contains("cache lock"),
            "{run}: the nested vp found the lock held:\n{}",
            out.combined()
        );
        if run == "hits" {
            assert_eq!(
                out.stderr.matches("◉ cache hit, replaying").count(),
                2,
                "`first` and the nested build hit:\n{}",
                out.combined()
            );
        }
    }
}

/// Review: a `vp run` nested in a command its vp does not cache (a `dev` script that builds a
/// package) found the lock held by that vp for a cached task running beside the command, was
/// told "the outer task caches this run", and ran without the cache, so nothing stored it. It
/// waits for that task instead, saying for whom, and stores its own run.
#[test]
fn a_nested_vp_run_beside_a_cached_task_waits_for_it_and_stores_its_own_run() {
    let ws = Workspace::new("example");
    let vp = vp_bin();
    ws.write("slow.js", "setTimeout(() => {}, 3000);\n");
    ws.write(
        "vite-task.json",
        format!(
            r#"{{ "tasks": {{
                "slow": {{ "command": "node slow.js" }},
                "outer": {{ "command": "{} run @example/utils#build", "cache": false }},
                "both": {{ "command": "node -e 0", "cache": false, "dependsOn": ["slow", "outer"] }}
            }} }}"#,
            vp.display()
        ),
    );
    let run = || {
        let out = ws
            .vp(["run", "both"])
            .env("VP_CACHE_LOCK_TIMEOUT", "60")
            .output();
        out.assert_success();
        assert!(
            !out.stderr.contains("the outer task caches this run"),
            "the nested run went without the cache:\n{}",
            out.combined()
        );
        out
    };
    let first = run();
    assert!(
        first
            .stderr
            .contains("held by the vp that started this one (pid ")
            && first.stderr.contains("for a task running beside this one"),
        "the nested miss waited for the outer vp's lock, and said so:\n{}",
        first.combined()
    );
    let second = run();
    assert_eq!(
        second.stderr.matches("◉ cache hit, replaying").count(),
        2,
        "`slow` and the nested build were stored by the first run:\n{}",
        second.combined()
    );
}

/// Review of the own-state rule: a task whose purpose is to rewrite a file git tracks
/// (`npm version patch`, a counter) reads and rewrites it on every run like a tool's state
/// file. A tracked file is a source, so every run must really run: never a hit that skips
/// the bump, never a restore over the file.
#[test]
fn a_task_that_rewrites_a_tracked_file_always_runs() {
    let ws = Workspace::new("example");
    ws.write("version.txt", "0\n");
    ws.write(
        "bump.js",
        "const fs = require('fs');\nconst n = Number(fs.readFileSync('version.txt', 'utf8')) + 1;\nfs.writeFileSync('version.txt', n + '\\n');\n",
    );
    ws.write(
        "vite-task.json",
        r#"{ "tasks": { "bump": { "command": "node bump.js" } } }"#,
    );
    let git = |args: &[&str]| ws.run("git").args(args).output().assert_success().code;
    git(&["init", "-q"]);
    git(&["add", "version.txt", "bump.js"]);
    for _ in 0..3 {
        let out = ws.vp(["run", "bump"]).output();
        out.assert_success();
        assert!(!hit(&out.stderr), "{}", out.combined());
    }
    assert_eq!(ws.read("version.txt"), "3\n", "every run bumped");
}

/// Probe of a real-world `clean` script: a task whose whole effect is a removal stored no
/// input and no output, so once `build` made `dist/` again, `clean` hit and left it there. A
/// removal outside the directories the run owns is now an input that must still hold.
#[test]
fn a_task_that_removes_a_directory_runs_again_once_it_is_back() {
    let ws = Workspace::new("example");
    ws.write(
        "vite-task.json",
        r#"{ "tasks": {
            "build": { "command": "mkdir -p dist && echo x > dist/x.js" },
            "clean": { "command": "rm -rf dist" } } }"#,
    );
    ws.vp(["run", "build"]).output().assert_success();
    let first = ws.vp(["run", "clean"]).output();
    first.assert_success();
    assert!(!ws.path("dist").exists(), "{}", first.combined());

    ws.vp(["run", "build"]).output().assert_success();
    assert!(ws.path("dist/x.js").exists());
    let again = ws.vp(["run", "clean"]).output();
    again.assert_success();
    assert!(!hit(&again.stderr), "{}", again.combined());
    assert!(
        again.stderr.contains("'dist' added"),
        "the miss names the path that is back:\n{}",
        again.combined()
    );
    assert!(!ws.path("dist").exists(), "dist is removed again");

    let nothing_to_do = ws.vp(["run", "clean"]).output();
    nothing_to_do.assert_success();
    assert!(
        hit(&nothing_to_do.stderr),
        "with dist gone, the removal holds: a hit\n{}",
        nothing_to_do.combined()
    );
}

/// Probe of a setup script: `test -f .env.local || cp .env.example .env.local` looks for the
/// file and makes it only when it is missing. After the user filled it in, a hit restored the
/// template over their secret. The task looked at the file before writing it, so a hit may
/// write it only over nothing or over what vp's runs left; anything else is a miss, and the
/// real command leaves the file alone.
#[test]
fn a_hit_never_writes_over_a_file_the_task_makes_only_when_missing() {
    let ws = Workspace::new("example");
    ws.write(".env.example", "API_KEY=changeme\n");
    ws.write(
        "vite-task.json",
        r#"{ "tasks": { "setup": { "command": "test -f .env.local || cp .env.example .env.local" } } }"#,
    );
    ws.vp(["run", "setup"]).output().assert_success();
    assert_eq!(ws.read(".env.local"), "API_KEY=changeme\n");
    let unchanged = ws.vp(["run", "setup"]).output();
    unchanged.assert_success();
    assert!(hit(&unchanged.stderr), "{}", unchanged.combined());

    ws.write(".env.local", "API_KEY=my-real-secret\n");
    let edited = ws.vp(["run", "setup"]).output();
    edited.assert_success();
    assert!(!hit(&edited.stderr), "{}", edited.combined());
    assert!(
        edited
            .stderr
            .contains("output '.env.local' holds what vp did not leave there"),
        "{}",
        edited.combined()
    );
    assert_eq!(ws.read(".env.local"), "API_KEY=my-real-secret\n");

    // Gone, it is made again, as the real command would: a hit may restore it.
    std::fs::remove_file(ws.path(".env.local")).expect("remove");
    let removed = ws.vp(["run", "setup"]).output();
    removed.assert_success();
    assert_eq!(ws.read(".env.local"), "API_KEY=changeme\n");
    let again = ws.vp(["run", "setup"]).output();
    again.assert_success();
    assert_eq!(ws.read(".env.local"), "API_KEY=changeme\n");
}

/// Probe of a fixer on a file git does not track (`sed -i` on a new source, no git at all):
/// read and rewritten, it became the task's own state, an output only, and a later hit
/// restored the old rewrite over the user's edit. Then a second probe: after the edit, one
/// run (not stored: it rewrote what it read) and the next hit restored the old rewrite all
/// the same, because an unstored run's result counted as vp's. A hit now writes only over
/// what the task's last stored run or hit left there.
#[test]
fn a_hit_never_writes_over_an_edit_to_a_file_the_task_rewrites() {
    let ws = Workspace::new("example");
    ws.write(
        "src/config.js",
        "export const url = \"http://a.example\";\n",
    );
    ws.write(
        "vite-task.json",
        r#"{ "tasks": { "fix": { "command": "sed -i s/http:/https:/g src/config.js" } } }"#,
    );
    for _ in 0..3 {
        ws.vp(["run", "fix"]).output().assert_success();
    }
    assert_eq!(
        ws.read("src/config.js"),
        "export const url = \"https://a.example\";\n"
    );
    let unchanged = ws.vp(["run", "fix"]).output();
    unchanged.assert_success();
    assert!(hit(&unchanged.stderr), "{}", unchanged.combined());

    ws.write(
        "src/config.js",
        "export const url = \"http://b.example\"; // mine\n",
    );
    let edited = ws.vp(["run", "fix"]).output();
    edited.assert_success();
    assert!(!hit(&edited.stderr), "{}", edited.combined());
    assert_eq!(
        ws.read("src/config.js"),
        "export const url = \"https://b.example\"; // mine\n",
        "the fixer ran on the edit:\n{}",
        edited.combined()
    );
    for _ in 0..3 {
        ws.vp(["run", "fix"]).output().assert_success();
        assert_eq!(
            ws.read("src/config.js"),
            "export const url = \"https://b.example\"; // mine\n",
            "never the old rewrite again"
        );
    }
}

/// Probe siblings of the create-if-missing script: `cp -n` and Node's `wx` flag create with
/// `O_EXCL`, and `test -d config || cp -r defaults config` checks a directory. Each made a
/// file only when it was missing, and a hit restored the default over the user's version.
#[test]
fn a_hit_never_writes_over_what_a_create_if_missing_task_finds() {
    let ws = Workspace::new("example");
    ws.write(".env.example", "API_KEY=changeme\n");
    ws.write("defaults/settings.json", "{}\n");
    ws.write(
        "vite-task.json",
        r#"{ "tasks": {
            "cp-n": { "command": "cp -n .env.example .env.local" },
            "wx": { "command": "node -e \"try { require('fs').writeFileSync('.env.x', 'A=1', { flag: 'wx' }) } catch {}\"" },
            "config": { "command": "sh -c 'test -d config || cp -r defaults config'" } } }"#,
    );
    for (task, file) in [
        ("cp-n", ".env.local"),
        ("wx", ".env.x"),
        ("config", "config/settings.json"),
    ] {
        ws.vp(["run", task]).output().assert_success();
        let again = ws.vp(["run", task]).output();
        assert!(hit(&again.stderr), "{task}: {}", again.combined());
        ws.write(file, "mine\n");
        let edited = ws.vp(["run", task]).output();
        edited.assert_success();
        assert!(!hit(&edited.stderr), "{task}: {}", edited.combined());
        assert_eq!(ws.read(file), "mine\n", "{task}");
        let later = ws.vp(["run", task]).output();
        later.assert_success();
        assert_eq!(ws.read(file), "mine\n", "{task}: {}", later.combined());
    }
}

/// Probe of `nvm use`: a tool in `node_modules/.bin` is a script whose `#!/usr/bin/env node`
/// finds `node` on `PATH`. Another `node` first on `PATH` gave a hit with the old node's
/// output. The entry now keeps the programs outside the workspace the run executed (and the
/// `PATH` it had): another program first on `PATH`, or one that changed, is a miss.
#[test]
fn another_node_first_on_path_is_a_miss() {
    use std::os::unix::fs::PermissionsExt;
    let ws = Workspace::new("example");
    let executable = |rel: &str, text: &str| {
        ws.write(rel, text);
        std::fs::set_permissions(ws.path(rel), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
    };
    executable(
        "node_modules/.bin/version",
        "#!/usr/bin/env node\nconsole.log('node ' + process.version);\n",
    );
    ws.write(
        "vite-task.json",
        r#"{ "tasks": { "version": { "command": "version" } } }"#,
    );
    let path = std::env::var_os("PATH").expect("PATH");
    ws.vp(["run", "version"]).output().assert_success();
    let again = ws.vp(["run", "version"]).output();
    assert!(hit(&again.stderr), "{}", again.combined());

    // Outside the workspace (vp fingerprints nothing there), a `node` of its own.
    let other = tempfile::tempdir().expect("tempdir");
    let other_node = other.path().join("node");
    std::fs::write(&other_node, "#!/bin/sh\necho other node\n").expect("write");
    std::fs::set_permissions(&other_node, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut dirs = vec![other.path().to_path_buf()];
    dirs.extend(std::env::split_paths(&path));
    let other_first = std::env::join_paths(dirs).expect("PATH");

    let switched = ws.vp(["run", "version"]).env("PATH", &other_first).output();
    switched.assert_success();
    assert!(!hit(&switched.stderr), "{}", switched.combined());
    assert!(
        switched.stderr.contains("program '") && switched.stderr.contains("changed"),
        "the miss names the program:\n{}",
        switched.combined()
    );
    assert!(
        switched.stdout.contains("other node"),
        "{}",
        switched.combined()
    );
    let same = ws.vp(["run", "version"]).env("PATH", &other_first).output();
    assert!(hit(&same.stderr), "{}", same.combined());

    let back = ws.vp(["run", "version"]).output();
    back.assert_success();
    assert!(back.stdout.contains("node v"), "{}", back.combined());
}

/// Probe siblings of the removal rule: `rm -rf dist/*` and `find -delete` list a directory and
/// remove what they find. The listing was dropped (the task changed the directory), so a new
/// file there hit and survived the "clean". The listing as the run left it is an input now.
#[test]
fn a_task_that_empties_a_directory_runs_again_when_something_is_in_it() {
    let ws = Workspace::new("example");
    ws.write("dist/main.aaa.js", "1\n");
    ws.write("tmp/a.tmp", "1\n");
    ws.write(
        "vite-task.json",
        r#"{ "tasks": {
            "clean": { "command": "sh -c 'rm -rf dist/*'" },
            "sweep": { "command": "find tmp -name '*.tmp' -delete" } } }"#,
    );
    for (task, dir, new) in [
        ("clean", "dist", "dist/main.bbb.js"),
        ("sweep", "tmp", "tmp/b.tmp"),
    ] {
        ws.vp(["run", task]).output().assert_success();
        let idle = ws.vp(["run", task]).output();
        assert!(
            hit(&idle.stderr),
            "{task}: nothing to remove, a hit\n{}",
            idle.combined()
        );
        ws.write(new, "2\n");
        let again = ws.vp(["run", task]).output();
        again.assert_success();
        assert!(!hit(&again.stderr), "{task}: {}", again.combined());
        assert!(!ws.path(new).exists(), "{task} removed {new}");
        assert!(ws.path(dir).is_dir(), "{task} left {dir} itself");
    }
}

/// A bundler that empties its output directory and names its files by content hash (webpack's
/// `output.clean`, tsup's `clean`) lists that directory. Going back to an earlier build missed:
/// the current build's hashed files were "added" to the listing the earlier run left, though the
/// hit removes them as superseded. They count as no change now, as long as they are exactly what
/// the last run left; a file someone else put there, or one of those files edited, still misses.
#[test]
fn going_back_to_an_earlier_build_of_a_cleaning_hashing_bundler_hits() {
    let ws = Workspace::new("example");
    ws.write("src/app.js", "v1\n");
    // An earlier build's output: every build below finds `dist/` there and lists it (a first
    // build into a missing `dist/` makes it, and lists nothing it did not make).
    ws.write("dist/main.00000000.js", "v0\n");
    ws.write(
        "bundle.mjs",
        "import fs from 'node:fs';\n\
         import crypto from 'node:crypto';\n\
         fs.mkdirSync('dist', { recursive: true });\n\
         for (const name of fs.readdirSync('dist')) fs.rmSync(`dist/${name}`, { recursive: true });\n\
         const code = fs.readFileSync('src/app.js', 'utf8');\n\
         const hash = crypto.createHash('sha256').update(code).digest('hex').slice(0, 8);\n\
         fs.writeFileSync(`dist/main.${hash}.js`, code);\n\
         fs.writeFileSync('dist/index.html', `<script src=\"main.${hash}.js\"></script>\\n`);\n",
    );
    ws.write(
        "vite-task.json",
        r#"{ "tasks": { "bundle": { "command": "node bundle.mjs" } } }"#,
    );
    let bundle = || {
        let out = ws.vp(["run", "bundle"]).output();
        out.assert_success();
        out
    };
    let names = || {
        let mut n: Vec<String> = std::fs::read_dir(ws.path("dist"))
            .expect("dist")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    };
    bundle();
    let v1 = names();
    assert_eq!(v1.len(), 2, "{v1:?}");
    ws.write("src/app.js", "v2\n");
    assert!(!hit(&bundle().stderr));
    let v2 = names();
    assert_ne!(v1, v2);

    ws.write("src/app.js", "v1\n");
    let back = bundle();
    assert!(
        hit(&back.stderr),
        "the first build's entry, with the second build's files superseded\n{}",
        back.combined()
    );
    assert_eq!(names(), v1, "the second build's hashed file is removed");

    // Back to v2, then to v1 with a file of v2's build edited: the hit would not remove it.
    ws.write("src/app.js", "v2\n");
    assert!(hit(&bundle().stderr));
    let v2_main = v2.iter().find(|n| n.starts_with("main.")).expect("main");
    ws.write(format!("dist/{v2_main}"), "edited by hand\n");
    ws.write("src/app.js", "v1\n");
    let edited = bundle();
    assert!(!hit(&edited.stderr), "{}", edited.combined());
    assert_eq!(names(), v1, "the run removed it, as a real build does");

    // A file nobody's run made: the task would remove it, so a hit cannot stand for it.
    ws.write("dist/notes.txt", "mine\n");
    let foreign = bundle();
    assert!(!hit(&foreign.stderr), "{}", foreign.combined());
}

/// Probe: a checker that walks `src/` hit after its dependency, a generator, made a new folder
/// there with a bad file in it: a directory another task's run owns did not count as added to a
/// listing. What the checker would read in a directory it never saw is unknown: it runs.
#[test]
fn a_checker_sees_a_folder_its_generator_adds() {
    let ws = Workspace::new("example");
    ws.write("src/index.js", "ok\n");
    ws.write(
        "gen.mjs",
        "import fs from 'node:fs';\n\
         fs.mkdirSync('src/generated', { recursive: true });\n\
         fs.writeFileSync('src/generated/api.js', 'ok\\n');\n",
    );
    ws.write(
        "check.mjs",
        "import fs from 'node:fs';\n\
         const bad = fs.readdirSync('src', { recursive: true }).sort()\n\
           .filter((n) => fs.statSync(`src/${n}`).isFile() && fs.readFileSync(`src/${n}`, 'utf8').includes('oops'));\n\
         if (bad.length) { console.error(`bad: ${bad.join(',')}`); process.exit(1); }\n\
         console.log('all good');\n",
    );
    ws.write(
        "vite-task.json",
        r#"{ "tasks": {
            "gen": { "command": "node gen.mjs" },
            "check": { "command": "node check.mjs", "dependsOn": ["gen"] } } }"#,
    );
    ws.vp(["run", "check"]).output().assert_success();
    let idle = ws.vp(["run", "check"]).output();
    idle.assert_success();
    assert!(
        idle.stderr.contains("node check.mjs ◉ cache hit"),
        "{}",
        idle.combined()
    );

    ws.write(
        "gen.mjs",
        "import fs from 'node:fs';\n\
         fs.mkdirSync('src/generated', { recursive: true });\n\
         fs.writeFileSync('src/generated/api.js', 'ok\\n');\n\
         fs.mkdirSync('src/models', { recursive: true });\n\
         fs.writeFileSync('src/models/m.js', 'oops\\n');\n",
    );
    let out = ws.vp(["run", "check"]).output();
    assert!(
        out.code != Some(0) && out.combined().contains("bad: models/m.js"),
        "the checker must run and fail\n{}",
        out.combined()
    );
}

/// Probe: a build into `../public` (Vite's `outDir: '../public'`) was stored, and after the
/// directory was removed a hit replayed "built" and restored nothing. A file left beside the
/// workspace makes the run not stored, and says so; one in a hidden directory there (a tool's
/// cache) does not.
#[test]
fn a_build_that_writes_beside_the_workspace_is_not_stored() {
    let ws = Workspace::new("example");
    ws.write(
        "out.mjs",
        "import fs from 'node:fs';\n\
         fs.mkdirSync('../public', { recursive: true });\n\
         fs.writeFileSync('../public/index.html', 'hi\\n');\n",
    );
    ws.write(
        "cache.mjs",
        "import fs from 'node:fs';\n\
         fs.mkdirSync('../.tool-cache', { recursive: true });\n\
         fs.writeFileSync('../.tool-cache/state', 'x\\n');\n\
         fs.writeFileSync('dist.txt', 'built\\n');\n",
    );
    ws.write(
        "vite-task.json",
        r#"{ "tasks": {
            "out": { "command": "node out.mjs" },
            "cache": { "command": "node cache.mjs" } } }"#,
    );
    let first = ws.vp(["run", "out"]).output();
    first.assert_success();
    assert!(
        first.stderr.contains("not cached because it wrote '")
            && first
                .stderr
                .contains("outside the workspace, which a cache hit could not restore"),
        "{}",
        first.combined()
    );
    let public = ws.path("../public");
    std::fs::remove_dir_all(&public).expect("rm -rf ../public");
    let again = ws.vp(["run", "out"]).output();
    again.assert_success();
    assert!(!hit(&again.stderr), "{}", again.combined());
    assert!(
        public.join("index.html").exists(),
        "the task ran and wrote it"
    );

    ws.vp(["run", "cache"]).output().assert_success();
    let cached = ws.vp(["run", "cache"]).output();
    assert!(hit(&cached.stderr), "{}", cached.combined());
}

/// Probe: `chmod +x` on a file a task copies (`cp -r`, `tar`, a packager's `bin`) hit, and the
/// copy kept its old mode. The executable bit is part of an input file's fingerprint.
#[test]
fn making_an_input_executable_misses() {
    use std::os::unix::fs::PermissionsExt;
    let ws = Workspace::new("example");
    ws.write("bin/cli.js", "#!/usr/bin/env node\n");
    ws.write(
        "vite-task.json",
        r#"{ "tasks": { "pack": { "command": "sh -c 'rm -rf out && cp -r bin out'" } } }"#,
    );
    ws.vp(["run", "pack"]).output().assert_success();
    assert!(hit(&ws.vp(["run", "pack"]).output().stderr));
    let mode = |p: &str| {
        std::fs::metadata(ws.path(p))
            .expect("stat")
            .permissions()
            .mode()
            & 0o111
    };
    assert_eq!(mode("out/cli.js"), 0);
    std::fs::set_permissions(
        ws.path("bin/cli.js"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod +x");
    let out = ws.vp(["run", "pack"]).output();
    out.assert_success();
    assert!(
        out.stderr.contains("'bin/cli.js' modified"),
        "{}",
        out.combined()
    );
    assert_ne!(mode("out/cli.js"), 0, "the copy is executable");
    assert!(hit(&ws.vp(["run", "pack"]).output().stderr));
}

/// Probe: with `"output": ["**/*.js"]`, the package's own sources matched too; they were
/// archived, and a hit wrote an edited file back to what it was. A glob match the run did not
/// touch is written by a hit only where it is missing or as vp left it: an edit there is a miss
/// (the run sees the edit), never overwritten. An incremental tool's untouched output
/// (`dist/keep.js`, which the task did not rewrite) still comes back after `rm -rf dist`.
#[test]
fn an_output_glob_never_writes_back_over_a_file_the_task_did_not_write() {
    let ws = Workspace::new("example");
    ws.write("src/a.js", "a\n");
    ws.write("other.js", "// v1\n");
    ws.write("dist/keep.js", "kept from an earlier build\n");
    ws.write(
        "build.mjs",
        "import fs from 'node:fs';\n\
         fs.mkdirSync('dist', { recursive: true });\n\
         fs.writeFileSync('dist/a.js', fs.readFileSync('src/a.js'));\n",
    );
    ws.write(
        "vite-task.json",
        r#"{ "tasks": { "build": { "command": "node build.mjs", "output": ["**/*.js", "!node_modules/**"] } } }"#,
    );
    ws.vp(["run", "build"]).output().assert_success();
    ws.write("other.js", "// v2, my edit\n");
    let edited = ws.vp(["run", "build"]).output();
    edited.assert_success();
    assert!(
        edited
            .stderr
            .contains("output 'other.js' holds what vp did not leave there"),
        "{}",
        edited.combined()
    );
    assert_eq!(ws.read("other.js"), "// v2, my edit\n");
    assert!(hit(&ws.vp(["run", "build"]).output().stderr));
    assert_eq!(ws.read("other.js"), "// v2, my edit\n");

    std::fs::remove_dir_all(ws.path("dist")).expect("rm -rf dist");
    let restored = ws.vp(["run", "build"]).output();
    assert!(hit(&restored.stderr), "{}", restored.combined());
    assert_eq!(ws.read("dist/a.js"), "a\n");
    assert_eq!(ws.read("dist/keep.js"), "kept from an earlier build\n");
    assert_eq!(ws.read("other.js"), "// v2, my edit\n");
}

/// Review of the in-place rule: it applies to outputs a task looked at before making them, not
/// to what a task writes blindly. Two tasks (or two `&&` items) that write one file, and a step
/// followed by one that rewrites its output in place and is never stored (`tsc && tsc-alias`),
/// would otherwise have missed on every run.
#[test]
fn outputs_written_blindly_are_restored_as_the_task_would_write_them() {
    let ws = Workspace::new("example");
    ws.write(
        "vite-task.json",
        r#"{ "tasks": {
            "a": { "command": "sh -c 'echo a > shared.txt'" },
            "b": { "command": "sh -c 'echo b > shared.txt'" },
            "ab": { "command": "sh -c 'echo a > both.txt' && sh -c 'echo b > both.txt'" },
            "alias": { "command": "sh -c 'echo @lib > out.js' && sed -i s,@lib,../lib, out.js" } } }"#,
    );
    for task in ["a", "b", "ab", "alias"] {
        ws.vp(["run", task]).output().assert_success();
    }
    for round in 0..2 {
        for (task, file, want) in [
            ("a", "shared.txt", "a\n"),
            ("b", "shared.txt", "b\n"),
            ("ab", "both.txt", "b\n"),
        ] {
            let out = ws.vp(["run", task]).output();
            out.assert_success();
            assert!(
                hit(&out.stderr),
                "round {round}, {task}: {}",
                out.combined()
            );
            assert!(
                !out.stderr.contains("cache miss"),
                "round {round}, {task}: {}",
                out.combined()
            );
            assert_eq!(ws.read(file), want, "round {round}, {task}");
        }
        let alias = ws.vp(["run", "alias"]).output();
        alias.assert_success();
        assert!(
            alias
                .stderr
                .contains("$ sh -c 'echo @lib > out.js' ◉ cache hit"),
            "round {round}: the first step hits though the second rewrote its output\n{}",
            alias.combined()
        );
        assert_eq!(ws.read("out.js"), "../lib\n");
    }
}

/// A generator that lists a directory and writes its result into it (a barrel `index.js`, a
/// route table), and a linter that lists the package and writes its cache file beside: a new
/// file there is a miss, on the run that created the generated file and on the runs that
/// rewrite it. A name the hit restores does not count: deleting the barrel is a hit that brings
/// it back, and going back to the files of a stored run is a hit on that run.
#[test]
fn a_task_that_lists_a_directory_it_writes_into_sees_a_new_file_there() {
    let ws = Workspace::new("example");
    ws.write("src/components/A.js", "export const A = 1;\n");
    ws.write(
        "barrel.mjs",
        "import fs from 'node:fs';\n\
         const dir = 'src/components';\n\
         const names = fs.readdirSync(dir).filter((n) => n !== 'index.js').sort();\n\
         fs.writeFileSync(`${dir}/index.js`, names.map((n) => `export * from './${n}';\\n`).join(''));\n",
    );
    ws.write(
        "lint.mjs",
        "import fs from 'node:fs';\n\
         const names = fs.readdirSync('.').filter((n) => n.endsWith('.js')).sort();\n\
         fs.writeFileSync('.lintcache', JSON.stringify(names));\n\
         console.log(`linted ${names.join(',')}`);\n",
    );
    ws.write(
        "vite-task.json",
        r#"{ "tasks": {
            "barrel": { "command": "node barrel.mjs" },
            "lint": { "command": "node lint.mjs" } } }"#,
    );
    let barrel = || ws.read("src/components/index.js");

    ws.vp(["run", "barrel"]).output().assert_success();
    ws.write("src/components/B.js", "export const B = 1;\n");
    let added = ws.vp(["run", "barrel"]).output();
    added.assert_success();
    assert!(
        added.stderr.contains("'B.js' added in 'src/components'"),
        "a new file where the barrel was made, on the run that created it\n{}",
        added.combined()
    );
    assert_eq!(
        barrel(),
        "export * from './A.js';\nexport * from './B.js';\n"
    );

    // The barrel now exists: this run rewrites it in place.
    ws.write("src/components/C.js", "export const C = 1;\n");
    let rewrote = ws.vp(["run", "barrel"]).output();
    rewrote.assert_success();
    assert!(!hit(&rewrote.stderr), "{}", rewrote.combined());
    assert!(barrel().contains("./C.js"));
    let idle = ws.vp(["run", "barrel"]).output();
    assert!(hit(&idle.stderr), "{}", idle.combined());

    std::fs::remove_file(ws.path("src/components/index.js")).expect("remove the barrel");
    let restored = ws.vp(["run", "barrel"]).output();
    assert!(
        hit(&restored.stderr),
        "the barrel is the task's output: a hit restores it\n{}",
        restored.combined()
    );
    assert!(barrel().contains("./C.js"));

    std::fs::remove_file(ws.path("src/components/C.js")).expect("remove C");
    let back = ws.vp(["run", "barrel"]).output();
    assert!(
        hit(&back.stderr),
        "the files of the second run: a hit\n{}",
        back.combined()
    );
    assert_eq!(
        barrel(),
        "export * from './A.js';\nexport * from './B.js';\n"
    );

    let first = ws.vp(["run", "lint"]).output();
    first.assert_success();
    assert!(hit(&ws.vp(["run", "lint"]).output().stderr));
    ws.write("new.js", "1\n");
    let lint = ws.vp(["run", "lint"]).output();
    lint.assert_success();
    assert!(
        !hit(&lint.stderr) && lint.stdout.contains("new.js"),
        "{}",
        lint.combined()
    );
}

/// Probe of the rule above: a generator that deletes its old result first, or deletes its stale
/// files among its sources, removed entries from the directory it lists. That made the
/// directory "emptied", like Vite's `dist/`, and its listing no input: the second new file
/// hit. Only a directory where nothing from before the run is left is the run's own.
#[test]
fn a_generator_that_deletes_before_it_writes_still_sees_a_new_file() {
    let ws = Workspace::new("example");
    ws.write("src/icons/a.svg", "<svg/>\n");
    ws.write(
        "icons.mjs",
        "import fs from 'node:fs';\n\
         const dir = 'src/icons';\n\
         fs.rmSync(`${dir}/index.js`, { force: true });\n\
         const names = fs.readdirSync(dir);\n\
         for (const n of names.filter((n) => n.endsWith('.js') && !names.includes(n.replace(/js$/, 'svg')))) fs.rmSync(`${dir}/${n}`);\n\
         const svgs = names.filter((n) => n.endsWith('.svg')).sort();\n\
         for (const n of svgs) fs.writeFileSync(`${dir}/${n.replace(/svg$/, 'js')}`, `export default '${n}';\\n`);\n\
         fs.writeFileSync(`${dir}/index.js`, svgs.map((n) => `export * from './${n.replace(/svg$/, 'js')}';\\n`).join(''));\n",
    );
    ws.write(
        "vite-task.json",
        r#"{ "tasks": { "icons": { "command": "node icons.mjs" } } }"#,
    );
    ws.vp(["run", "icons"]).output().assert_success();
    for (step, (add, remove)) in [("b.svg", None), ("c.svg", Some("a.svg")), ("d.svg", None)]
        .into_iter()
        .enumerate()
    {
        ws.write(format!("src/icons/{add}"), "<svg/>\n");
        if let Some(name) = remove {
            std::fs::remove_file(ws.path(format!("src/icons/{name}"))).expect("remove an icon");
        }
        let out = ws.vp(["run", "icons"]).output();
        out.assert_success();
        assert!(!hit(&out.stderr), "step {step}: {}", out.combined());
        let js = add.replace(".svg", ".js");
        assert!(ws.read("src/icons/index.js").contains(&js), "step {step}");
        assert!(ws.path(format!("src/icons/{js}")).exists(), "step {step}");
    }
    let idle = ws.vp(["run", "icons"]).output();
    assert!(hit(&idle.stderr), "{}", idle.combined());

    // Second probe: a directory that held only the generator's own result, which it deleted
    // first, looked like Vite's `dist/` (nothing from before left) and its listing was dropped.
    ws.write(
        "src/c/index.js",
        "// committed
",
    );
    ws.write(
        "barrel.mjs",
        "import fs from 'node:fs';
         fs.rmSync('src/c/index.js', { force: true });
         const names = fs.readdirSync('src/c').filter((n) => n.endsWith('.js')).sort();
         fs.writeFileSync('src/c/index.js', names.map((n) => `export * from './${n}';\n`).join(''));
",
    );
    ws.write(
        "vite-task.json",
        r#"{ "tasks": { "barrel": { "command": "node barrel.mjs" } } }"#,
    );
    ws.vp(["run", "barrel"]).output().assert_success();
    ws.write(
        "src/c/A.js",
        "export const A = 1;
",
    );
    let added = ws.vp(["run", "barrel"]).output();
    added.assert_success();
    assert!(!hit(&added.stderr), "{}", added.combined());
    assert_eq!(
        ws.read("src/c/index.js"),
        "export * from './A.js';
"
    );
}
