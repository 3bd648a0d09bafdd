//! Node tests of the bridge, run by `cargo test`: the `vp-bridge` package
//! and the embedded addon, driven by the scripts in `npm/vp-bridge/test/`
//! under a real `BridgeSession` (as `vp run` will), and outside vp. Skipped
//! with a message when `node` is not installed.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::transport_tests::test_context;
use super::{BridgeReport, BridgeSession};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli/ has a parent")
        .to_path_buf()
}

fn test_dir() -> PathBuf {
    repo_root().join("npm/vp-bridge/test")
}

fn node() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("node"))
        .find(|candidate| candidate.is_file())
}

/// `node <script> <args>` with a minimal environment: `VITE_*` and
/// `NODE_ENV` exist only in the (test) runner's full environment.
fn node_command(node: &Path, script: &str, args: &[&str], cwd: &Path) -> Command {
    let mut cmd = Command::new(node);
    cmd.arg(test_dir().join(script))
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NODE_PATH", repo_root().join("npm"));
    cmd
}

fn run_under_bridge(mut cmd: Command, addon: &Path) -> (Output, BridgeReport) {
    let mut ctx = test_context();
    ctx.addon_path = Some(addon.to_path_buf());
    smol::block_on(async {
        let mut session = BridgeSession::new(ctx).expect("bridge session");
        session.configure_child(&mut cmd);
        // async_process ignores the std Command's stdio settings.
        let mut cmd = async_process::Command::from(cmd);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn node");
        // Closes the runner's copy of the broker's child end.
        drop(cmd);
        let (output, report) = session.serve_with(child.output()).await;
        (output.expect("node ran"), report)
    })
}

fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "node failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn node_tools_report_through_the_package_the_addon_workers_and_grandchildren() {
    let Some(node) = node() else {
        eprintln!("skipped: `node` is not on PATH");
        return;
    };
    let cache = tempfile::tempdir().expect("tempdir");
    let addon =
        crate::embedded::materialize(cache.path(), &super::ADDON).expect("addon materialized");
    let work = tempfile::tempdir().expect("tempdir");
    let cmd = node_command(&node, "under-vp.js", &[], work.path());
    let (output, report) = run_under_bridge(cmd, &addon);
    assert_success(&output);
    assert!(
        report.protocol_errors.is_empty(),
        "{:?}",
        report.protocol_errors
    );
    let inputs: Vec<_> = report
        .ignored_inputs
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    for want in [
        "/vp-test/main-cjs",
        "/vp-test/main-addon",
        "/vp-test/main-esm",
        "/vp-test/worker-0",
        "/vp-test/worker-3",
    ] {
        assert!(
            inputs.iter().any(|p| p == want),
            "missing {want} in {inputs:?}"
        );
    }
    let outputs: Vec<_> = report
        .ignored_outputs
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let relative = work.path().canonicalize().expect("cwd").join("out-rel");
    for want in [
        "/vp-test/fork",
        "/vp-test/spawn",
        "/vp-test/exit-now",
        relative.to_str().expect("utf-8"),
    ] {
        assert!(
            outputs.iter().any(|p| p == want),
            "missing {want} in {outputs:?}"
        );
    }
    assert!(report.tracked_envs.contains_key(OsStr::new("NODE_ENV")));
    assert!(report.untracked_env_reads.contains(OsStr::new("HOME")));
    assert!(
        report
            .env_queries
            .iter()
            .any(|q| q.query == vp_ipc::EnvQuery::Prefix(b"VITE_".to_vec())
                && q.matches.contains_key(OsStr::new("VITE_SECRET_THING"))),
        "{:?}",
        report.env_queries
    );
    assert!(
        report
            .cache_disabled_by
            .as_deref()
            .is_some_and(|who| who.contains("under-vp.js")),
        "{report:?}"
    );
    // main + fork + spawn + exit-now grandchildren; workers share the main connection.
    assert_eq!(report.clients.len(), 4, "{:?}", report.clients);
}

#[test]
fn outside_vp_the_package_and_addon_are_no_ops() {
    let Some(node) = node() else {
        eprintln!("skipped: `node` is not on PATH");
        return;
    };
    let cache = tempfile::tempdir().expect("tempdir");
    let addon =
        crate::embedded::materialize(cache.path(), &super::ADDON).expect("addon materialized");
    let work = tempfile::tempdir().expect("tempdir");
    let mut cmd = node_command(&node, "outside-vp.js", &[], work.path());
    // The addon itself, loaded without a runner (no VP_IPC_FD).
    cmd.env("VP_BRIDGE_TEST_ADDON", &addon)
        .env("VITE_LOCAL", "here");
    let output = cmd.stdin(Stdio::null()).output().expect("node ran");
    assert_success(&output);
}

#[test]
fn node_round_trip_and_addon_load_benchmark() {
    let Some(node) = node() else {
        eprintln!("skipped: `node` is not on PATH");
        return;
    };
    let cache = tempfile::tempdir().expect("tempdir");
    let addon =
        crate::embedded::materialize(cache.path(), &super::ADDON).expect("addon materialized");
    let work = tempfile::tempdir().expect("tempdir");
    let cmd = node_command(&node, "bench.js", &["2000"], work.path());
    let (output, report) = run_under_bridge(cmd, &addon);
    assert_success(&output);
    eprint!("{}", String::from_utf8_lossy(&output.stdout));
    assert!(
        report.untracked_env_reads.contains(OsStr::new("NODE_ENV")),
        "the calls reached the runner"
    );
}
