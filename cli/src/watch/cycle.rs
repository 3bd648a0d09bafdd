//! The watch loop: run a cycle of tasks through the normal pipeline
//! (`run::session::RunSession::run_batch`: decide → execute → admit →
//! store, with the cache), learn from it what each task read, watch that,
//! and on an edit select the next cycle's tasks. Persistent tasks run in a
//! batch of their own, started once. Ctrl-C ends it all with 128 + the
//! signal.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use futures_lite::StreamExt;

use super::catch_up::{self, RanTask};
use super::fs_events::{Batch, FsEvents};
use super::observe::{self, Ran, Seen};
use super::select::{self, Selection};
use super::watched::{Change, Read, Reads, TaskWatch};
use super::{affected, dirs};
use crate::args::RunArgs;
use crate::events::{PinReason, RunStats, WatchEvent};
use crate::report::watch::WatchReporter;
use crate::run::command::{Planned, plan};
use crate::run::scheduler::{FORWARDED, SchedulerOptions, signal_number};
use crate::run::session::{Observer, RunSession};
use crate::run::{TaskSpec, item_id};
use crate::workspace::Workspace;

/// How long after an edit vp waits for quiet before it runs anything: an
/// editor's save, a `git checkout` or a formatter is a burst of events.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// Everything the loop keeps between cycles.
pub(super) struct WatchLoop<'a> {
    pub(super) args: &'a RunArgs,
    pub(super) task: &'a str,
    pub(super) cwd: PathBuf,
    pub(super) opts: &'a SchedulerOptions,
    pub(super) session: Rc<RunSession>,
    pub(super) ex: Rc<smol::LocalExecutor<'static>>,
    pub(super) ws: Workspace,
    pub(super) planned: Planned,
    pub(super) reporter: RefCell<WatchReporter>,
}

/// Per plan index: its watch once it ran (or was pinned).
type Watches = Vec<Option<TaskWatch>>;

/// How the loop ended.
enum Wake {
    Changes(Batch),
    Signal(i32),
}

impl WatchLoop<'_> {
    fn emit(&self, event: &WatchEvent) {
        self.reporter.borrow_mut().report(event);
    }

    /// Runs until a signal; returns vp's exit code (128 + the signal).
    pub(super) async fn run(mut self, mut fs: FsEvents) -> u8 {
        let mut signals = async_signal::Signals::new(FORWARDED).ok();
        let mut watches = self.initial_watches();
        let mut config = dirs::config_files(&self.ws);
        let mut persistent: Vec<smol::Task<RunStats>> = Vec::new();
        let mut started_persistent: BTreeSet<String> = BTreeSet::new();
        let mut succeeded = vec![false; self.planned.specs.len()];
        let mut next = self.everything(&watches);
        // What the watcher heard while the last cycle ran.
        let mut heard: BTreeSet<PathBuf> = BTreeSet::new();
        // The tasks the last cycle re-ran because their run before was
        // refused for an input changed while it ran.
        let mut rerun_for_refusal: BTreeSet<usize> = BTreeSet::new();
        let signal = loop {
            let mut ran = Vec::new();
            if !next.tasks.is_empty() {
                let stats;
                (stats, ran) = self.cycle(&next, &mut watches, &mut succeeded).await;
                if stats.cancelled {
                    break stats.signal.unwrap_or(libc::SIGINT);
                }
            }
            if let Some(task) = self.start_persistent(&succeeded, &mut started_persistent) {
                persistent.push(task);
            }
            let (dir_set, paths) =
                dirs::watch_dirs(watches.iter().flatten(), &config, self.session.cache_dir());
            let watched = fs.set(&dir_set);
            // Edits in directories that were not watched while the cycle
            // ran raised no event: look for them now that they are.
            let missed = {
                let tasks: Vec<RanTask<'_>> = ran
                    .iter()
                    .filter_map(|(i, changed)| {
                        watches[*i].as_ref().map(|watch| RanTask {
                            watch,
                            changed_while_running: changed
                                .clone()
                                .filter(|_| !rerun_for_refusal.contains(i)),
                        })
                    })
                    .collect();
                catch_up::missed_changes(&tasks, &heard)
            };
            rerun_for_refusal = ran
                .iter()
                .filter(|(i, changed)| changed.is_some() && !rerun_for_refusal.contains(i))
                .map(|(i, _)| *i)
                .collect();
            heard = dir_set.clone();
            // Other vps on the workspace may store their runs while this
            // one waits for an edit.
            self.session.wait_without_the_lock().await;
            self.emit(&WatchEvent::Watching {
                paths,
                tasks: watches
                    .iter()
                    .flatten()
                    .filter(|w| !matches!(w.reads, Reads::Pinned(_)))
                    .count(),
                dirs: watched.dirs,
                left_out: watched.left_out,
            });
            // Edits heard while the cycle ran count too (the windows in
            // `TaskWatch` tell them from the tasks' own writes).
            let mut batch = fs.drain();
            batch.changes.extend(missed);
            loop {
                if !batch.is_empty()
                    && let Some(s) =
                        self.on_batch(&batch, &mut watches, &mut config, &mut succeeded)
                {
                    next = s;
                    break;
                }
                // A directory removed and made again meanwhile (nothing
                // re-ran for it) gets its watch back.
                fs.set(&dir_set);
                let wake = futures_lite::future::or(
                    async { Wake::Changes(fs.next_batch(DEBOUNCE).await) },
                    async {
                        match signals.as_mut() {
                            Some(s) => match s.next().await {
                                Some(Ok(sig)) => Wake::Signal(signal_number(sig)),
                                _ => Wake::Signal(libc::SIGINT),
                            },
                            None => std::future::pending().await,
                        }
                    },
                )
                .await;
                match wake {
                    Wake::Changes(b) => batch = b,
                    Wake::Signal(sig) => return self.stop(persistent, sig).await,
                }
            }
        };
        self.stop(persistent, signal).await
    }

    /// Waits for the persistent tasks, which got the signal from their own
    /// scheduler (it forwards it to their process groups, and a second one
    /// kills them).
    async fn stop(&self, persistent: Vec<smol::Task<RunStats>>, signal: i32) -> u8 {
        for task in persistent {
            let _ = task.await;
        }
        u8::try_from(128 + signal).unwrap_or(1)
    }

    /// Before the first cycle: persistent tasks are pinned.
    fn initial_watches(&self) -> Watches {
        self.planned
            .persistent
            .iter()
            .map(|&p| {
                p.then(|| TaskWatch {
                    reads: Reads::Pinned(PinReason::Persistent),
                    outputs: BTreeSet::new(),
                    window: None,
                })
            })
            .collect()
    }

    /// Every task that an edit may run, in plan order.
    fn everything(&self, watches: &Watches) -> Selection {
        let all: BTreeSet<usize> = (0..self.planned.specs.len()).collect();
        select::select(&self.planned.deps, &all, &|_| Vec::new(), &|i| {
            runnable(watches, i)
        })
    }

    /// Runs one cycle and updates the watches of the tasks it ran; returns
    /// each of them (plan index) with the input, if any, whose change while
    /// it ran kept its run from being stored.
    async fn cycle(
        &self,
        selection: &Selection,
        watches: &mut Watches,
        succeeded: &mut [bool],
    ) -> (RunStats, Vec<(usize, Option<PathBuf>)>) {
        let specs: Vec<TaskSpec> = selection
            .tasks
            .iter()
            .map(|&i| self.planned.specs[i].clone())
            .collect();
        let (stats, seen) = self.batch(specs.clone(), &selection.deps).await;
        let ran: Vec<Ran> = specs
            .iter()
            .zip(seen)
            .map(|(spec, seen)| Ran {
                seen,
                item_ids: (0..spec.items.len()).map(|n| item_id(spec, n)).collect(),
                has_commands: !spec.items.is_empty(),
                package_dir: spec.package_dir.clone(),
            })
            .collect();
        let ok: Vec<bool> = ran.iter().map(|r| r.seen.succeeded()).collect();
        let changed: Vec<(usize, Option<PathBuf>)> = selection
            .tasks
            .iter()
            .zip(&ran)
            .map(|(&i, r)| {
                let rel = r.seen.changed_while_running();
                (i, rel.map(|rel| rel.to_abs(&self.ws.root)))
            })
            .collect();
        let new = observe::watches(ran, self.session.store(), self.ws.root.clone()).await;
        for ((&i, w), ok) in selection.tasks.iter().zip(new).zip(ok) {
            succeeded[i] = ok;
            if let Reads::Pinned(why) = &w.reads
                && !matches!(
                    &watches[i],
                    Some(TaskWatch {
                        reads: Reads::Pinned(_),
                        ..
                    })
                )
            {
                self.emit(&WatchEvent::Pinned {
                    task: self.planned.specs[i].label.clone(),
                    why: why.clone(),
                });
            }
            if let Reads::Package { why, .. } = &w.reads {
                self.emit(&WatchEvent::WatchingPackage {
                    task: self.planned.specs[i].label.clone(),
                    why: *why,
                });
            }
            watches[i] = Some(w);
        }
        (stats, changed)
    }

    /// One batch through the pipeline, with a reporter of its own.
    async fn batch(
        &self,
        specs: Vec<TaskSpec>,
        deps: &[Vec<usize>],
    ) -> (RunStats, Vec<observe::TaskSeen>) {
        let labels = specs.iter().map(|s| s.label.clone()).collect();
        let reporter = self.session.reporter(labels);
        let seen = Rc::new(Seen::new(specs.len()));
        let observer: Observer = {
            let seen = Rc::clone(&seen);
            Rc::new(move |e| seen.observe(e))
        };
        let stats = self
            .session
            .run_batch(&self.ex, specs, deps, self.opts, &reporter, Some(observer))
            .await;
        (stats, seen.take())
    }

    /// Starts, in a batch of their own on the loop, the persistent tasks
    /// not started yet whose dependencies have all succeeded.
    fn start_persistent(
        &self,
        succeeded: &[bool],
        started: &mut BTreeSet<String>,
    ) -> Option<smol::Task<RunStats>> {
        let ready: Vec<usize> = (0..self.planned.specs.len())
            .filter(|&i| self.planned.persistent[i])
            .filter(|&i| !started.contains(&self.planned.specs[i].label))
            .filter(|&i| {
                self.planned.deps[i]
                    .iter()
                    .all(|&d| succeeded[d] || self.planned.persistent[d])
            })
            .collect();
        if ready.is_empty() {
            return None;
        }
        // Without the cache: left running until Ctrl-C, whose cancelled run
        // is never stored, a cached one would only hold the store's lock for
        // the whole session (a cached command holds it from its lookup to
        // its record), keeping every other vp's misses from being stored.
        // And a hit would replay a dev server's log instead of starting it.
        let specs: Vec<TaskSpec> = ready
            .iter()
            .map(|&i| TaskSpec {
                cache_enabled: false,
                ..self.planned.specs[i].clone()
            })
            .collect();
        for s in &specs {
            started.insert(s.label.clone());
            self.emit(&WatchEvent::Pinned {
                task: s.label.clone(),
                why: PinReason::Persistent,
            });
        }
        let (session, ex) = (Rc::clone(&self.session), Rc::clone(&self.ex));
        let deps = vec![Vec::new(); specs.len()];
        let opts = SchedulerOptions {
            concurrency: specs.len(),
            parallel: true,
        };
        let labels = specs.iter().map(|s| s.label.clone()).collect();
        let reporter = session.reporter(labels);
        Some(self.ex.spawn(async move {
            session
                .run_batch(&ex, specs, &deps, &opts, &reporter, None)
                .await
        }))
    }

    /// What a batch of changes runs next, if anything: the affected tasks
    /// and what follows them, or everything after a config change (planned
    /// again) or lost events. Says so on the way.
    fn on_batch(
        &mut self,
        batch: &Batch,
        watches: &mut Watches,
        config: &mut BTreeSet<Read>,
        succeeded: &mut Vec<bool>,
    ) -> Option<Selection> {
        for error in &batch.errors {
            self.emit(&WatchEvent::WatcherFailed {
                error: error.clone(),
            });
        }
        let cache_dir = self.session.cache_dir().to_path_buf();
        let changes: Vec<&Change> = batch
            .changes
            .iter()
            .filter(|c| !c.path.starts_with(&cache_dir))
            .collect();
        let config_watch = TaskWatch {
            reads: Reads::Observed(config.clone()),
            outputs: BTreeSet::new(),
            window: None,
        };
        if let Some(c) = changes
            .iter()
            .find(|c| config_watch.affected_by(c, &cache_dir))
        {
            self.emit(&WatchEvent::Replanning {
                path: self.relative(&c.path),
            });
            return match self.replan() {
                Ok(()) => {
                    *watches = self.initial_watches();
                    *config = dirs::config_files(&self.ws);
                    *succeeded = vec![false; self.planned.specs.len()];
                    Some(self.everything(watches))
                }
                Err(e) => {
                    self.emit(&WatchEvent::PlanFailed {
                        error: format!("{e:#}"),
                    });
                    None
                }
            };
        }
        if batch.lost {
            self.emit(&WatchEvent::WatcherFailed {
                error: "the system dropped file events (too many at once)".to_owned(),
            });
            return Some(self.everything(watches));
        }
        let found = affected::affected(&changes, watches, &cache_dir);
        if let Some(first) = found.ignored.first() {
            self.emit(&WatchEvent::Ignored {
                path: self.relative(first),
                more: found.ignored.len() - 1,
            });
        }
        let readers = |i: usize| affected::readers(watches, i, &cache_dir);
        let selection = select::select(&self.planned.deps, &found.tasks, &readers, &|i| {
            runnable(watches, i)
        });
        let first = found.causes.first()?;
        if selection.tasks.is_empty() {
            return None;
        }
        self.emit(&WatchEvent::Changed {
            path: self.relative(first),
            more: found.causes.len() - 1,
            tasks: selection
                .tasks
                .iter()
                .map(|&i| self.planned.specs[i].label.clone())
                .collect(),
        });
        Some(selection)
    }

    /// Loads the workspace and plans the run again, as at the start.
    fn replan(&mut self) -> anyhow::Result<()> {
        let ws = Workspace::load(&self.cwd)?;
        let planned = plan(&ws, self.args, self.task, &self.cwd)?;
        self.ws = ws;
        self.planned = planned;
        Ok(())
    }

    /// `path` relative to the workspace root, as the status lines show it.
    fn relative(&self, path: &Path) -> String {
        path.strip_prefix(&self.ws.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }
}

/// Whether an edit may run task `i`: not pinned.
fn runnable(watches: &Watches, i: usize) -> bool {
    !matches!(
        watches.get(i),
        Some(Some(TaskWatch {
            reads: Reads::Pinned(_),
            ..
        }))
    )
}
