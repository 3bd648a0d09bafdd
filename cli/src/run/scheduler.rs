//! Running a plan's tasks on the event loop: dependencies first, at most
//! `concurrency` at once, fast-fail, and Ctrl-C handling.
//!
//! Fast-fail: after the first failure no new task starts; running tasks
//! finish. Ctrl-C: SIGINT is forwarded to the children's process groups
//! (a second Ctrl-C sends SIGKILL), running tasks are waited for, and the run
//! ends as cancelled so nothing from it is ever stored.

use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;

use super::events::{RunEvent, RunStats, TaskOutcome};
use super::task::{self, RunContext, TaskSpec};

pub(crate) struct SchedulerOptions {
    pub(crate) concurrency: usize,
    /// Start everything at once, ignoring order and the limit.
    pub(crate) parallel: bool,
}

enum Wake {
    Finished(usize, TaskOutcome, Duration),
    Signal,
}

pub(crate) async fn run(
    ex: &Rc<smol::LocalExecutor<'static>>,
    specs: Rc<Vec<TaskSpec>>,
    deps: &[Vec<usize>],
    opts: &SchedulerOptions,
    ctx: Rc<RunContext>,
) -> RunStats {
    let started = Instant::now();
    let n = specs.len();
    let mut waiting: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut dependents = vec![Vec::new(); n];
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            dependents[d].push(i);
        }
    }
    let mut ready: VecDeque<usize> = if opts.parallel {
        (0..n).collect()
    } else {
        (0..n).filter(|&i| waiting[i] == 0).collect()
    };
    let limit = if opts.parallel { usize::MAX } else { opts.concurrency.max(1) };
    let (tx, rx) = smol::channel::unbounded::<(usize, TaskOutcome, Duration)>();
    // Registering replaces the default disposition: Ctrl-C no longer kills
    // vp, so it can forward the signal and wait for its children.
    let mut signals = async_signal::Signals::new([async_signal::Signal::Int, async_signal::Signal::Term]).ok();
    let mut stats = RunStats { tasks: n, ..RunStats::default() };
    let mut started_flags = vec![false; n];
    let mut running = 0usize;
    let mut stop = false;
    let mut interrupts = 0;
    loop {
        while !stop && running < limit {
            let Some(i) = ready.pop_front() else { break };
            started_flags[i] = true;
            running += 1;
            let (specs, ctx, tx, task_ex) = (Rc::clone(&specs), Rc::clone(&ctx), tx.clone(), Rc::clone(ex));
            ex.spawn(async move {
                let t0 = Instant::now();
                let outcome = task::execute(i, &specs[i], &ctx, &task_ex).await;
                let _ = tx.send((i, outcome, t0.elapsed())).await;
            })
            .detach();
        }
        if running == 0 {
            break;
        }
        let finished = async { rx.recv().await.map_or(Wake::Signal, |(i, o, d)| Wake::Finished(i, o, d)) };
        let signalled = async {
            match signals.as_mut() {
                Some(s) => {
                    s.next().await;
                    Wake::Signal
                }
                None => std::future::pending().await,
            }
        };
        match futures_lite::future::or(finished, signalled).await {
            Wake::Signal => {
                interrupts += 1;
                stop = true;
                stats.cancelled = true;
                ctx.cancelled.set(true);
                let signal = if interrupts == 1 { libc::SIGINT } else { libc::SIGKILL };
                ctx.children.signal_all(signal);
                if interrupts == 1 {
                    (ctx.emit)(RunEvent::Notice {
                        message: "interrupted: waiting for running tasks to stop (press Ctrl-C again to kill them)".to_owned(),
                    });
                }
            }
            Wake::Finished(i, outcome, duration) => {
                running -= 1;
                match &outcome {
                    TaskOutcome::Succeeded { cache_hits, commands, saved } => {
                        stats.succeeded += 1;
                        stats.cache_hits += cache_hits;
                        stats.saved += *saved;
                        stats.cached_commands += commands;
                        for &d in &dependents[i] {
                            waiting[d] -= 1;
                            if waiting[d] == 0 && !opts.parallel {
                                ready.push_back(d);
                            }
                        }
                    }
                    TaskOutcome::Failed { exit_code, .. } => {
                        stats.failed += 1;
                        stop = true;
                        if stats.first_failure.is_none() {
                            stats.first_failure = Some((specs[i].label.clone(), *exit_code));
                        }
                    }
                    TaskOutcome::Cancelled => stats.cancelled = true,
                    TaskOutcome::Skipped => stats.skipped += 1,
                }
                (ctx.emit)(RunEvent::TaskFinished { task: i, outcome, duration });
            }
        }
    }
    for (i, was_started) in started_flags.iter().enumerate() {
        if !was_started {
            stats.skipped += 1;
            (ctx.emit)(RunEvent::TaskFinished { task: i, outcome: TaskOutcome::Skipped, duration: Duration::ZERO });
        }
    }
    stats.duration = started.elapsed();
    stats
}
