//! `vp run --watch`: run the selected tasks, then re-run exactly what each
//! edit affects, judged by what each task was seen to read (docs/watch.md).
//!
//! `cycle` is the loop (its main type is `WatchLoop`), re-entering the
//! normal pipeline through `run::session::RunSession::run_batch` once per
//! cycle; `observe` learns each task's reads from a cycle's events and the
//! store; `watched` holds them and matches a change to a task, `affected`
//! a batch of changes to the tasks it re-runs; `select` chooses a cycle's
//! tasks and their order; `dirs` maps the watched set to directories;
//! `fs_events` bridges `notify` into the smol loop. What it says goes out
//! as `events::WatchEvent`s to `report::watch`.

mod affected;
mod catch_up;
mod cycle;
mod dirs;
mod fs_events;
mod observe;
mod select;
mod watched;

use std::rc::Rc;

use anyhow::Context;

use crate::args::RunArgs;
use crate::report::watch::WatchReporter;
use crate::run::command::{opening_notice, plan};
use crate::run::scheduler::SchedulerOptions;
use crate::run::session::RunSession;
use crate::workspace::Workspace;

/// Runs `task` as `args` select it, then watches until a signal.
pub(crate) fn watch(args: &RunArgs, task: &str, opts: &SchedulerOptions) -> anyhow::Result<u8> {
    let cwd = std::env::current_dir().context("cannot determine the current directory")?;
    let ws = Workspace::load(&cwd)?;
    let planned = plan(&ws, args, task, &cwd)?;
    let fs = fs_events::FsEvents::new().context(
        "cannot watch files\n(hint: on Linux, raise `fs.inotify.max_user_instances` with sysctl)",
    )?;
    let wants_cache = planned.specs.iter().any(|s| s.cache_enabled);
    let session = Rc::new(RunSession::open(
        &ws,
        &args.exec,
        wants_cache,
        &opening_notice,
    )?);
    let ex = Rc::new(smol::LocalExecutor::new());
    let reporter = std::cell::RefCell::new(WatchReporter::terminal(session.verbose()));
    let watch_loop = cycle::WatchLoop {
        args,
        task,
        cwd,
        opts,
        session,
        ex: Rc::clone(&ex),
        ws,
        planned,
        reporter,
    };
    let code = smol::block_on(ex.run(watch_loop.run(fs)));
    Ok(code)
}
