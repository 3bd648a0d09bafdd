//! The life of one task: its commands run in order, each one resolved,
//! spawned and waited for, with every state change sent as a `RunEvent`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::command_line::CommandItem;
use super::env::EnvPolicy;
use super::events::{CacheStatus, CommandHeader, RunEvent, TaskOutcome};
use super::resolve;
use super::spawn::{self, ChildRegistry, ProcessSpec};

/// A planned task, resolved into what is needed to execute it.
#[derive(Debug)]
pub(crate) struct TaskSpec {
    pub(crate) label: String,
    pub(crate) items: Vec<CommandItem>,
    /// What the header shows instead of the item itself (`vp build` runs
    /// `node .../vite.js build` but is shown as the user typed it).
    pub(crate) display: Option<String>,
    pub(crate) cwd: PathBuf,
    /// `~/rel/dir` for headers, empty at the workspace root.
    pub(crate) header_cwd: String,
    pub(crate) env_policy: EnvPolicy,
    /// The environment the task's processes see (already filtered).
    pub(crate) child_env: Vec<(OsString, OsString)>,
    pub(crate) cache_enabled: bool,
    pub(crate) interactive: bool,
}

/// What every task of a run shares.
pub(crate) struct RunContext {
    pub(crate) emit: Box<dyn Fn(RunEvent)>,
    pub(crate) children: ChildRegistry,
    pub(crate) cancelled: std::cell::Cell<bool>,
}

pub(crate) async fn execute(index: usize, spec: &TaskSpec, ctx: &Rc<RunContext>) -> TaskOutcome {
    (ctx.emit)(RunEvent::TaskStarted { task: index });
    let mut commands = 0;
    for item in &spec.items {
        if ctx.cancelled.get() {
            return TaskOutcome::Cancelled;
        }
        let header = CommandHeader {
            cwd: spec.header_cwd.clone(),
            command: spec.display.clone().unwrap_or_else(|| item.to_string()),
            status: CacheStatus::Disabled,
        };
        (ctx.emit)(RunEvent::CommandStarted { task: index, header });
        let process = match process_spec(spec, item) {
            Ok(p) => p,
            Err(message) => return TaskOutcome::Failed { exit_code: 127, message },
        };
        let code = match run_process(index, &process, ctx).await {
            Ok(code) => code,
            Err(message) => return TaskOutcome::Failed { exit_code: 127, message },
        };
        commands += 1;
        if ctx.cancelled.get() {
            return TaskOutcome::Cancelled;
        }
        if code != 0 {
            return TaskOutcome::Failed {
                exit_code: code,
                message: format!("failed: `{item}` exited with code {code}"),
            };
        }
    }
    TaskOutcome::Succeeded { cache_hits: 0, commands, saved: Duration::ZERO }
}

/// Resolves an item's program to a concrete process to start.
fn process_spec(spec: &TaskSpec, item: &CommandItem) -> Result<ProcessSpec, String> {
    let search = spec
        .child_env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let (program, args): (PathBuf, Vec<OsString>) = match item {
        CommandItem::Direct { argv } => {
            let program = resolve::find_program(&argv[0], &spec.cwd, &search).map_err(|searched| {
                format!(
                    "could not start `{}`: no such program in `{}` (searched {} directories: \
                     node_modules/.bin of the package and its parents, then PATH)\n\
                     (hint: install it with your package manager, or fix the command)",
                    argv[0],
                    spec.cwd.display(),
                    searched.len()
                )
            })?;
            (program, argv[1..].iter().map(OsString::from).collect())
        }
        CommandItem::Shell { script } => (PathBuf::from("/bin/sh"), vec!["-c".into(), script.into()]),
    };
    Ok(ProcessSpec {
        program,
        args,
        cwd: spec.cwd.clone(),
        env: spec.child_env.clone(),
        interactive: spec.interactive,
    })
}

async fn run_process(index: usize, process: &ProcessSpec, ctx: &Rc<RunContext>) -> Result<i32, String> {
    let started = Instant::now();
    let cmd = process.command();
    let child = async_process::Command::from(cmd).spawn().map_err(|e| {
        format!("could not start `{}` in `{}`: {e}", process.program.display(), process.cwd.display())
    })?;
    let pgid = i32::try_from(child.id()).unwrap_or(0);
    if !process.interactive {
        ctx.children.add(pgid);
    }
    let emit = |stream, bytes| (ctx.emit)(RunEvent::TaskOutput { task: index, stream, bytes });
    let status = spawn::wait_with_output(child, &emit).await;
    ctx.children.remove(pgid);
    let _ = started;
    status
        .map(spawn::exit_code)
        .map_err(|e| format!("lost track of `{}`: {e}", process.program.display()))
}
