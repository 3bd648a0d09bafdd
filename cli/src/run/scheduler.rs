//! Running a plan's tasks on the event loop: dependencies first, at most
//! `concurrency` at once, fast-fail, and Ctrl-C handling.
//!
//! Fast-fail: after the first failure no new task starts; running tasks
//! finish. Ctrl-C, SIGTERM, SIGHUP: the signal is forwarded to the
//! children's process groups (a second one sends SIGKILL), running tasks are
//! waited for, and the run ends as cancelled so nothing from it is ever
//! stored; vp then exits with 128 + the first signal's number.
//!
//! Each task's future runs in its [`TaskScope`], so the code waiting for its
//! processes can report on it.

use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;

use super::task::{self, RunContext, TaskSpec};
use crate::events::{self, RunEvent, RunNotice, RunStats, TaskOutcome, TaskScope};

pub(crate) struct SchedulerOptions {
    pub(crate) concurrency: usize,
    /// Start everything at once, ignoring order and the limit.
    pub(crate) parallel: bool,
}

enum Wake {
    Finished(usize, TaskOutcome, Duration),
    Signal(i32),
}

/// The signals vp forwards to its tasks instead of dying of them.
pub(crate) const FORWARDED: [async_signal::Signal; 3] = [
    async_signal::Signal::Int,
    async_signal::Signal::Term,
    async_signal::Signal::Hup,
];

pub(crate) fn signal_number(signal: async_signal::Signal) -> i32 {
    match signal {
        async_signal::Signal::Term => libc::SIGTERM,
        async_signal::Signal::Hup => libc::SIGHUP,
        _ => libc::SIGINT,
    }
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
    let limit = if opts.parallel {
        usize::MAX
    } else {
        opts.concurrency.max(1)
    };
    let (tx, rx) = smol::channel::unbounded::<(usize, TaskOutcome, Duration)>();
    // Registering replaces the default disposition: Ctrl-C (or SIGTERM,
    // SIGHUP) no longer kills vp, so it can forward the signal and wait for
    // its children.
    let mut signals = async_signal::Signals::new(FORWARDED).ok();
    let mut stats = RunStats {
        tasks: n,
        ..RunStats::default()
    };
    let mut started_flags = vec![false; n];
    let mut running = 0usize;
    let mut stop = false;
    let mut interrupts = 0;
    loop {
        while !stop && running < limit {
            let Some(i) = ready.pop_front() else { break };
            started_flags[i] = true;
            running += 1;
            ctx.running.started();
            let (specs, ctx, tx, task_ex) = (
                Rc::clone(&specs),
                Rc::clone(&ctx),
                tx.clone(),
                Rc::clone(ex),
            );
            let scope = task_scope(i, &ctx);
            ex.spawn(events::in_scope(scope, async move {
                let t0 = Instant::now();
                let outcome = task::execute(i, &specs[i], &ctx, &task_ex).await;
                let _ = tx.send((i, outcome, t0.elapsed())).await;
            }))
            .detach();
        }
        if running == 0 {
            break;
        }
        let finished = async {
            rx.recv()
                .await
                .map_or(Wake::Signal(libc::SIGINT), |(i, o, d)| {
                    Wake::Finished(i, o, d)
                })
        };
        let signalled = async {
            match signals.as_mut() {
                Some(s) => match s.next().await {
                    Some(Ok(signal)) => Wake::Signal(signal_number(signal)),
                    _ => Wake::Signal(libc::SIGINT),
                },
                None => std::future::pending().await,
            }
        };
        match futures_lite::future::or(finished, signalled).await {
            Wake::Signal(signal) => {
                interrupts += 1;
                stop = true;
                stats.cancelled = true;
                ctx.cancelled.cancel();
                if interrupts == 1 {
                    stats.signal = Some(signal);
                    ctx.children.signal_all(signal);
                    (ctx.emit)(RunEvent::Notice(RunNotice::Interrupted { signal }));
                } else {
                    ctx.children.signal_all(libc::SIGKILL);
                }
            }
            Wake::Finished(i, outcome, duration) => {
                running -= 1;
                ctx.running.finished();
                match &outcome {
                    TaskOutcome::Succeeded {
                        cache_hits,
                        remote_hits,
                        commands,
                        saved,
                    } => {
                        stats.succeeded += 1;
                        stats.cache_hits += cache_hits;
                        stats.remote_hits += remote_hits;
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
                (ctx.emit)(RunEvent::TaskFinished {
                    task: i,
                    outcome,
                    duration,
                });
            }
        }
    }
    for (i, was_started) in started_flags.iter().enumerate() {
        if !was_started {
            stats.skipped += 1;
            (ctx.emit)(RunEvent::TaskFinished {
                task: i,
                outcome: TaskOutcome::Skipped,
                duration: Duration::ZERO,
            });
        }
    }
    stats.duration = started.elapsed();
    stats
}

/// Task `i`'s scope: its events go to the run's reporter.
fn task_scope(i: usize, ctx: &Rc<RunContext>) -> Rc<TaskScope> {
    let (for_emit, for_cancel) = (Rc::clone(ctx), Rc::clone(ctx));
    Rc::new(TaskScope {
        task: i,
        emit: Rc::new(move |e| (for_emit.emit)(e)),
        cancelled: Rc::new(move || for_cancel.cancelled.get()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_forwarded_signal_is_named() {
        assert_eq!(
            FORWARDED.map(signal_number),
            [libc::SIGINT, libc::SIGTERM, libc::SIGHUP]
        );
    }
}
