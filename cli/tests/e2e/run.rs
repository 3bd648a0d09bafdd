//! `vp run` behaviours that need real processes and time: Ctrl-C, fast-fail,
//! concurrency, `--last-details`.

use std::time::{Duration, Instant};

use crate::harness::Workspace;

fn write_tasks(ws: &Workspace, tasks: &str) {
    ws.write("vite-task.json", format!(r#"{{ "tasks": {tasks} }}"#));
}

#[test]
fn ctrl_c_forwards_sigint_waits_and_exits_130_without_caching() {
    let ws = Workspace::new("bridge-verbs");
    ws.write(
        "wait.js",
        // The handler first: `started` must mean "ready for the signal".
        "process.on('SIGINT', () => { require('fs').writeFileSync('got-sigint', ''); process.exit(1); });\n\
         require('fs').writeFileSync('started', '');\n\
         setTimeout(() => {}, 60000);\n",
    );
    write_tasks(&ws, r#"{ "wait": { "command": "node wait.js" } }"#);
    let mut child = std::process::Command::new(crate::harness::vp_bin())
        .args(["run", "wait"])
        .current_dir(ws.root())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn vp");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ws.exists("started") {
        assert!(Instant::now() < deadline, "the task never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: plain kill(2) of our own child.
    unsafe { libc::kill(i32::try_from(child.id()).expect("pid"), libc::SIGINT) };
    let status = child.wait().expect("wait vp");
    assert_eq!(status.code(), Some(130));
    assert!(
        ws.exists("got-sigint"),
        "SIGINT was not forwarded to the task"
    );
    let stats = ws.vp(["cache", "stats"]).output();
    assert!(
        stats.stdout.contains("entries:  0"),
        "a cancelled run was stored: {}",
        stats.combined()
    );
}

#[test]
fn first_failure_stops_new_tasks_and_sets_the_exit_code() {
    let ws = Workspace::new("bridge-verbs");
    write_tasks(
        &ws,
        r#"{ "fail": { "command": "node -e \"process.exit(4)\"", "cache": false },
            "after": { "command": "node -e \"require('fs').writeFileSync('ran-after', '')\"", "dependsOn": ["fail"], "cache": false } }"#,
    );
    let out = ws.vp(["run", "after"]).output();
    out.assert_code(4);
    assert!(!ws.exists("ran-after"));
    assert!(
        out.stderr
            .contains("failed with exit code 4; 1 not started"),
        "{}",
        out.stderr
    );
}

#[test]
fn concurrency_limit_and_parallel() {
    let ws = Workspace::new("bridge-verbs");
    // Each task records the number of tasks running beside it.
    ws.write(
        "probe.js",
        "const fs = require('fs'); fs.mkdirSync('running', { recursive: true });\n\
         const me = 'running/' + process.argv[2]; fs.writeFileSync(me, '');\n\
         setTimeout(() => { const n = fs.readdirSync('running').length;\n\
           fs.appendFileSync('peak', n + '\\n'); fs.unlinkSync(me); }, 300);\n",
    );
    let tasks: Vec<String> = (0..4)
        .map(|i| format!(r#""p{i}": {{ "command": "node probe.js {i}", "cache": false }}"#))
        .collect();
    write_tasks(
        &ws,
        &format!(
            r#"{{ {}, "all": {{ "dependsOn": ["p0", "p1", "p2", "p3"], "cache": false }} }}"#,
            tasks.join(", ")
        ),
    );
    let peak = |ws: &Workspace| {
        ws.read("peak")
            .lines()
            .filter_map(|l| l.parse::<u32>().ok())
            .max()
            .unwrap_or(0)
    };
    ws.vp(["run", "all", "--concurrency-limit", "1"])
        .output()
        .assert_success();
    assert_eq!(peak(&ws), 1);
    ws.remove("peak");
    ws.vp(["run", "all", "--concurrency-limit", "4"])
        .output()
        .assert_success();
    assert!(peak(&ws) > 1, "tasks did not overlap with a limit of 4");
}

/// Supervisors do not come from the `blocking` pool: with one pool thread,
/// a traced spawn holds it until its child's `execve` is answered, and a
/// supervisor queued behind it would never run (this hung before).
#[test]
fn traced_tasks_run_with_a_single_blocking_thread() {
    let ws = Workspace::new("bridge-verbs");
    ws.write(
        "job.js",
        "require('fs').writeFileSync('out-' + process.argv[2] + '.txt', 'done');\n",
    );
    let tasks: Vec<String> = (0..3)
        .map(|i| format!(r#""j{i}": {{ "command": "node job.js {i}", "cache": true }}"#))
        .collect();
    write_tasks(
        &ws,
        &format!(
            r#"{{ {}, "all": {{ "dependsOn": ["j0", "j1", "j2"], "cache": false }} }}"#,
            tasks.join(", ")
        ),
    );
    let run = |ws: &Workspace| {
        ws.vp(["run", "all", "--concurrency-limit", "3"])
            .env("BLOCKING_MAX_THREADS", "1")
            .timeout(Duration::from_secs(60))
            .output()
    };
    let first = run(&ws);
    first.assert_success();
    for i in 0..3 {
        assert_eq!(ws.read(format!("out-{i}.txt")), "done", "{first}");
    }
    let second = run(&ws);
    second.assert_success();
    assert!(
        second.stderr.contains("3/3 cache hit"),
        "the traced runs were stored: {second}"
    );
}

#[test]
fn last_details_prints_the_previous_run() {
    let ws = Workspace::new("example");
    ws.vp(["run", "-r", "build"]).output().assert_success();
    let out = ws.vp(["run", "--last-details"]).output();
    out.assert_success();
    assert!(
        out.stdout.contains("@example/app#build: succeeded"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("vp run: 0/3 cache hit (0%)"),
        "{}",
        out.stdout
    );
}

/// Probe: a root `build` script that is `vp run -r build` (the usual way to keep `npm run
/// build` working in a monorepo) started a vp whose `-r` selected the root's `build` again, and
/// so on, forever. `-r` leaves the workspace root out (as pnpm's does), and a plan that would
/// run a task a vp above it is running fails at once, naming it.
#[test]
fn a_root_script_that_runs_vp_never_runs_itself() {
    let ws = Workspace::new("example");
    let bin = ws.path("node_modules/.bin");
    std::fs::create_dir_all(&bin).expect("mkdir .bin");
    std::os::unix::fs::symlink(crate::harness::vp_bin(), bin.join("vp")).expect("link vp");
    ws.write(
        "package.json",
        r#"{ "name": "example", "private": true, "scripts": { "build": "vp run -r build", "again": "vp run -w again" } }"#,
    );
    let out = ws
        .vp(["run", "build"])
        .timeout(Duration::from_secs(120))
        .output();
    out.assert_success();
    assert_eq!(
        out.stderr.matches("node build.js").count(),
        3,
        "the three packages, once each\n{}",
        out.combined()
    );

    let again = ws
        .vp(["run", "again"])
        .timeout(Duration::from_secs(120))
        .output();
    assert!(
        again.code != Some(0)
            && again
                .stderr
                .contains("task `example#again` would run itself"),
        "{}",
        again.combined()
    );
}

/// Probe: `cd sub && node x.js`, `export` and `exit` in a command failed with "could not start
/// `cd`": builtins run through a shell, and `cd` reaches the command after it.
#[test]
fn shell_builtins_in_a_command_work_as_in_npm_run() {
    let ws = Workspace::new("example");
    ws.write(
        "sub/x.js",
        "require('fs').writeFileSync('where.txt', `${require('path').basename(process.cwd())} ${process.env.GREETING_X}`);\n",
    );
    write_tasks(
        &ws,
        r#"{ "cd": { "command": "cd sub && export GREETING_X=hi && node x.js" },
             "quit": { "command": "exit 3" } }"#,
    );
    ws.vp(["run", "cd"]).output().assert_success();
    assert_eq!(ws.read("sub/where.txt"), "sub hi");
    ws.vp(["run", "quit"]).output().assert_code(3);
}
