//! `vp trace [--json] [--log] [--root DIR] -- <command...>`: runs one command
//! under the tracer with inherited stdio and prints what it read and wrote,
//! classified as `vp run` would (stderr, or JSON on stdout with `--json`,
//! in which case the command's own stdout goes to stderr). Exits with the
//! command's exit code. Called from `main.rs`.

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::Context;
use smol::LocalExecutor;

use super::classify::{ClassifyOptions, ToolCaches, classify};
use super::report::{self, RunSummary};
use super::spawn::{ChildStdio, InProcess, TraceOutcome, spawn_traced};
use crate::args::TraceArgs;

pub(crate) fn run(args: TraceArgs) -> anyhow::Result<u8> {
    let cwd = std::env::current_dir().context("could not read the current directory")?;
    let root = match args.root.clone() {
        Some(root) => root,
        None => default_root(&cwd)?,
    };
    let root = root.canonicalize().with_context(|| {
        format!(
            "the root `{}` cannot be used (hint: pass an existing directory to --root)",
            root.display()
        )
    })?;
    let Some((program, rest)) = args.command.split_first() else {
        anyhow::bail!("no command given (hint: `vp trace -- <command> [args...]`)");
    };
    let command: Vec<String> = args
        .command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let shown_command = shell_words::join(&command);

    let mut cmd = std::process::Command::new(program);
    cmd.args(rest);
    let mut stdio = ChildStdio::inherit();
    if args.json {
        // Keep stdout for the JSON document alone.
        let stderr = std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .context("could not duplicate stderr")?;
        stdio.stdout = Stdio::from(stderr);
    }

    // Like `vp run`: without the library every access is notified, which
    // is complete.
    let library = super::in_process::library_for_run(
        &crate::embedded::default_dir(),
        std::env::var_os(super::in_process::SWITCH_VAR).as_deref(),
    )
    .unwrap_or_else(|err| {
        eprintln!("vp trace: tracing without the in-process tracer (slower, as complete): {err}");
        None
    });

    let ex = LocalExecutor::new();
    let (status, outcome) = smol::block_on(ex.run(async {
        // Ctrl-C reaches the command too; vp stays to report how it ended.
        let _ignore_interrupts = async_signal::Signals::new([async_signal::Signal::Int]).ok();
        let in_process = library.as_deref().map(|library| InProcess {
            library,
            inherits_env: true,
        });
        let (mut child, trace) = spawn_traced(&ex, cmd, stdio, in_process, None).await?;
        let status = child
            .status()
            .await
            .with_context(|| format!("could not wait for `{}`", command[0]))?;
        let outcome = trace.finish().await;
        anyhow::Ok((status, outcome))
    }))?;

    let exit_code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    let summary = RunSummary {
        command: &command,
        shown_command: &shown_command,
        exit_code,
        root: &root,
        calls: match &outcome {
            TraceOutcome::Traced(log) => Some(log.counts),
            TraceOutcome::Untraced { .. } => None,
        },
    };
    // vp's cache directory is excluded like `vp run` does, wherever
    // `VP_CACHE_DIR` puts it.
    let env_dir = std::env::var_os("VP_CACHE_DIR").map(PathBuf::from);
    let cache_dir = match crate::cache::requested_dir(env_dir.as_deref()) {
        Some(dir) => cwd.join(dir),
        None => crate::cache::default_cache_dir(&root),
    };
    let excluded_dirs = [cache_dir.canonicalize().unwrap_or(cache_dir)];
    let opts = ClassifyOptions {
        root: &root,
        excluded_dirs: &excluded_dirs,
        ignored_inputs: &[],
        ignored_outputs: &[],
        excluded_inputs: None,
        excluded_outputs: None,
        // What the command did, tools' caches included.
        tool_caches: ToolCaches::Shown,
        own_state: &Default::default(),
    };

    // Buffered: a report has hundreds of lines, and stderr is unbuffered.
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let mut stderr = std::io::BufWriter::new(std::io::stderr().lock());
    let written = match &outcome {
        TraceOutcome::Traced(log) => {
            let classification = classify(log, &opts);
            if args.json {
                let doc = report::json(&summary, Ok(&classification), args.log.then_some(log));
                writeln!(stdout, "{doc:#}")
            } else {
                (if args.log {
                    report::write_log(&mut stderr, log)
                } else {
                    Ok(())
                })
                .and_then(|()| report::write_human(&mut stderr, &summary, &classification))
            }
        }
        TraceOutcome::Untraced { reason } => {
            if args.json {
                writeln!(stdout, "{:#}", report::json(&summary, Err(reason), None))
            } else {
                report::write_untraced(&mut stderr, &summary, reason)
            }
        }
    };
    let written = written
        .and_then(|()| stdout.flush())
        .and_then(|()| stderr.flush());
    // A closed stdout (`vp trace --json ... | head`) is not vp's failure.
    if let Err(err) = written
        && err.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(err).context("could not write the trace report");
    }
    Ok(u8::try_from(exit_code).unwrap_or(1))
}

use std::os::fd::AsFd;

/// The workspace root of `cwd` (as `vp run` finds it), else `cwd` itself
/// outside any project.
fn default_root(cwd: &Path) -> anyhow::Result<PathBuf> {
    match crate::workspace::find_root(cwd) {
        Ok(root) => Ok(root),
        Err(crate::workspace::WorkspaceError::NoWorkspace { .. }) => Ok(cwd.to_path_buf()),
        Err(e) => Err(anyhow::Error::new(e)
            .context("cannot tell which workspace this is (hint: pass the root with --root DIR)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_the_workspace_root_else_the_current_directory() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        let pkg = root.join("packages/a/src");
        std::fs::create_dir_all(&pkg).expect("mkdir");
        assert_eq!(default_root(&pkg).expect("root"), pkg);
        std::fs::write(root.join("packages/a/package.json"), "{}").expect("write");
        assert_eq!(default_root(&pkg).expect("root"), root.join("packages/a"));
        std::fs::write(root.join("pnpm-workspace.yaml"), "packages: ['packages/*']")
            .expect("write");
        assert_eq!(default_root(&pkg).expect("root"), root);
        // Found by the same rules as `vp run`: an npm `workspaces` root too,
        // and not a workspace file that does not list the package.
        std::fs::write(root.join("pnpm-workspace.yaml"), "packages: ['apps/*']").expect("write");
        assert_eq!(default_root(&pkg).expect("root"), root.join("packages/a"));
        std::fs::remove_file(root.join("pnpm-workspace.yaml")).expect("rm");
        std::fs::write(
            root.join("package.json"),
            r#"{"workspaces": ["packages/*"]}"#,
        )
        .expect("write");
        assert_eq!(default_root(&pkg).expect("root"), root);
    }

    #[test]
    fn a_broken_workspace_file_is_an_error_naming_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::write(tmp.path().join("pnpm-workspace.yaml"), "packages: [a\n").expect("write");
        let e = format!("{:#}", default_root(tmp.path()).expect_err("broken yaml"));
        assert!(e.contains("pnpm-workspace.yaml"), "{e}");
        assert!(e.contains("--root"), "{e}");
    }
}
