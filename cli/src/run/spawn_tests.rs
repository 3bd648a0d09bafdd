//! Unit tests of `run::spawn`.

use std::time::Duration;

use super::*;

#[test]
fn the_holders_of_a_pipe_are_found() {
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn sleep");
    let inode = child
        .stdout
        .as_ref()
        .and_then(|p| pipe_inode(p.as_raw_fd()))
        .expect("a pipe");
    let holders = pipe_holders(&[inode]);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        holders,
        [LeftRunning {
            pid: child.id(),
            command: "sleep 30".into()
        }]
    );
}

fn scope(cancelled: bool) -> (Rc<TaskScope>, Rc<RefCell<Vec<RunEvent>>>) {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let sink = Rc::clone(&seen);
    let scope = Rc::new(TaskScope {
        task: 3,
        emit: Rc::new(move |e| sink.borrow_mut().push(e)),
        cancelled: Rc::new(move || cancelled),
    });
    (scope, seen)
}

fn sh(script: &str) -> async_process::Child {
    let mut cmd = std::process::Command::new("/bin/sh");
    // Its own group, like a task.
    cmd.args(["-c", script]).process_group(0);
    let mut cmd = async_process::Command::from(cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn().expect("spawn sh")
}

#[test]
fn a_leftover_holding_the_pipes_is_named_and_its_output_kept() {
    let (scope, seen) = scope(false);
    let output = RefCell::new(Vec::new());
    let started = Instant::now();
    let status = smol::block_on(crate::events::in_scope(Rc::clone(&scope), async {
        let child = sh("(sleep 1.6; echo late) & echo early");
        wait_with_output(child, &|_, bytes| output.borrow_mut().extend(bytes)).await
    }))
    .expect("waited");
    assert!(status.success());
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "did not wait for the pipes"
    );
    assert_eq!(String::from_utf8_lossy(&output.borrow()), "early\nlate\n");
    let events = seen.borrow();
    let [RunEvent::TaskWaiting { task: 3, waiting }] = events.as_slice() else {
        panic!("expected one waiting event, got {events:?}");
    };
    assert_eq!(waiting.what, WaitingFor::OutputPipes);
    // The background subshell and its sleep.
    assert!(
        waiting.processes.iter().any(|p| p.command == "sleep 1.6"),
        "{waiting:?}"
    );
}

#[test]
fn a_cancelled_run_stops_waiting_for_a_leftover_outside_the_group() {
    let (scope, _seen) = scope(true);
    let dir = tempfile::tempdir().expect("temp dir");
    let pid_file = dir.path().join("pid");
    let started = Instant::now();
    let status = smol::block_on(crate::events::in_scope(scope, async {
        // Not a group leader, so setsid execs sleep itself: $! is its pid.
        let child = sh(&format!(
            "setsid sleep 20 & echo $! > '{}'",
            pid_file.display()
        ));
        wait_with_output(child, &|_, _| {}).await
    }))
    .expect("waited");
    let elapsed = started.elapsed();
    if let Some(pid) = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
    {
        // SAFETY: kill(2) of the sleep this test started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    assert!(status.success());
    assert!(
        elapsed < Duration::from_secs(10),
        "waited {elapsed:?} for the setsid sleep"
    );
}

#[test]
fn without_leftovers_there_is_no_notice() {
    let (scope, seen) = scope(false);
    smol::block_on(crate::events::in_scope(scope, async {
        let child = sh("sleep 1.2; echo done");
        wait_with_output(child, &|_, _| {}).await
    }))
    .expect("waited");
    assert!(seen.borrow().is_empty(), "{:?}", seen.borrow());
}
