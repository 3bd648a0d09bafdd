//! A run's long-lived parts, opened once and shared by every batch of tasks
//! it runs: the cache settings and store, the Node addon, the remote-cache
//! session, vp's environment and colour decisions ([`RunSession`]). A plain
//! `vp run` runs one batch; `vp run --watch` (`crate::watch`) runs one per
//! cycle on the same session, each through the scheduler and the pipeline
//! of `task.rs`, each with its own reporter and summary.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use anyhow::Context;

use crate::trace;

use super::cache_hint::RunEnd;
use super::run_cache::{finish_uploads, open_cache};
use super::scheduler::{self, SchedulerOptions};
use super::task::{RunCache, RunContext, TaskSpec};
use crate::args::ExecOptions;
use crate::cache::{CacheSettings, Store};
use crate::events::{RunEvent, RunNotice, RunStats, Unavailable};
use crate::remote::{RemoteConfig, RemoteInputs, RemoteSession};
use crate::report::plan::TaskInfo;
use crate::report::{Colours, LogMode, Reporter};
use crate::workspace::Workspace;

/// What every batch of one vp run shares.
pub(crate) struct RunSession {
    workspace_root: PathBuf,
    settings: CacheSettings,
    cache: Result<RunCache, Unavailable>,
    addon_path: Option<PathBuf>,
    /// The in-process tracer library (`trace/in_process.rs`), unless turned
    /// off or unavailable: traced commands are then notified throughout.
    tracer_library: Option<PathBuf>,
    remote: Option<Arc<RemoteSession>>,
    colours: Colours,
    full_env: Arc<Vec<(OsString, OsString)>>,
    full_env_map: Rc<BTreeMap<OsString, OsString>>,
    log: LogMode,
    verbose: bool,
    /// The `--cache` tip was given: at most once per session, so a watch
    /// session gives it after its first batch that earns it, not after each.
    cache_tip_given: Cell<bool>,
    /// Every batch's running tasks (`task::RunningTasks`).
    running: Rc<super::task::RunningTasks>,
    /// When the store's lock may be let go (`lock_use.rs`).
    lock_use: Rc<super::lock_use::LockUse>,
}

/// Someone who wants to see a batch's events besides its reporter (watch
/// mode learns from them what each task's run was).
pub(crate) type Observer = Rc<dyn Fn(&RunEvent)>;

impl RunSession {
    /// Opens the store (when `wants_cache`), writes the addon and resolves
    /// the remote cache; what goes wrong on the way is a notice to `emit`,
    /// except a malformed remote-cache setting, which is the user's to fix
    /// before anything runs (a server that is down is not: see
    /// `remote::RemoteSession`).
    pub(crate) fn open(
        ws: &Workspace,
        exec: &ExecOptions,
        wants_cache: bool,
        emit: &dyn Fn(RunEvent),
    ) -> anyhow::Result<RunSession> {
        let cwd = std::env::current_dir().context("cannot determine the current directory")?;
        let settings =
            CacheSettings::resolve(exec.cache_dir.as_deref(), None, &ws.root, &cwd, |k| {
                std::env::var(k).ok()
            })?;
        let cache = if wants_cache {
            open_cache(&settings, emit)
        } else {
            Err(Unavailable::NotOpened)
        };
        let embedded_dir = crate::embedded::default_dir();
        let addon_path = match crate::embedded::materialize(&embedded_dir, &crate::bridge::ADDON) {
            Ok(p) => Some(p),
            Err(e) => {
                emit(RunEvent::Notice(RunNotice::AddonUnavailable {
                    error: e.to_string(),
                }));
                None
            }
        };
        let tracer_library = match trace::in_process_library(
            &embedded_dir,
            std::env::var_os(trace::IN_PROCESS_SWITCH).as_deref(),
        ) {
            Ok(library) => library,
            Err(error) => {
                emit(RunEvent::Notice(RunNotice::InProcessTracerUnavailable {
                    error,
                }));
                None
            }
        };
        let full_env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
        let remote_config = RemoteConfig::resolve(&RemoteInputs {
            env: &full_env,
            file: ws.packages[0]
                .task_config
                .as_ref()
                .and_then(|c| c.remote_cache.as_ref()),
            flag: exec.remote_cache.map(Into::into),
        })?;
        let remote = match (&cache, remote_config) {
            (Ok(_), Some(config)) => Some(Arc::new(RemoteSession::new(config))),
            _ => None,
        };
        Ok(RunSession {
            workspace_root: ws.root.clone(),
            settings,
            cache,
            addon_path,
            tracer_library,
            remote,
            // Once per run: the reporter strips replays that go to a
            // non-terminal, and tasks are asked for colour when vp itself is
            // on a terminal.
            colours: Colours::detect(),
            full_env_map: Rc::new(full_env.iter().cloned().collect()),
            full_env: Arc::new(full_env),
            log: exec.log.into(),
            verbose: exec.verbose,
            cache_tip_given: Cell::new(false),
            running: Rc::default(),
            lock_use: Rc::default(),
        })
    }

    /// A reporter on vp's stdout and stderr for a batch of these tasks.
    pub(crate) fn reporter(&self, labels: Vec<String>) -> Rc<RefCell<Reporter>> {
        Rc::new(RefCell::new(Reporter::terminal(
            self.log,
            self.verbose,
            labels,
            self.colours,
        )))
    }

    /// The open store, if this run has one.
    pub(crate) fn store(&self) -> Option<Arc<Store>> {
        self.cache.as_ref().ok().map(|c| Arc::clone(&c.store))
    }

    /// Between batches, while the run waits for something other than its
    /// own work (the next edit, in watch mode): lets the store's lock go
    /// for other vps, unless a task still running needs it
    /// (`lock_use.rs`).
    pub(crate) async fn wait_without_the_lock(&self) {
        if let Ok(cache) = &self.cache {
            self.lock_use.idle(&cache.store).await;
        }
    }

    /// vp's cache directory: never an input of a task.
    pub(crate) fn cache_dir(&self) -> &std::path::Path {
        &self.settings.dir
    }

    pub(crate) fn verbose(&self) -> bool {
        self.verbose
    }

    /// Runs one batch of tasks through the scheduler to its summary line,
    /// then does what every run does after its last task: waits for its
    /// uploads, records it for `--last-details`, keeps the cache within its
    /// bound. `observer` sees every event before the reporter does.
    pub(crate) async fn run_batch(
        &self,
        ex: &Rc<smol::LocalExecutor<'static>>,
        specs: Vec<TaskSpec>,
        deps: &[Vec<usize>],
        opts: &SchedulerOptions,
        reporter: &Rc<RefCell<Reporter>>,
        observer: Option<Observer>,
    ) -> RunStats {
        let infos = task_infos(&specs, deps);
        let labels: Vec<String> = specs.iter().map(|s| s.label.clone()).collect();
        let sink = Rc::clone(reporter);
        let emit = move |e: RunEvent| {
            if let Some(o) = &observer {
                o(&e);
            }
            sink.borrow_mut().report(&e);
        };
        let ctx = Rc::new(RunContext {
            emit: Box::new(emit),
            children: super::spawn::ChildRegistry::default(),
            cancelled: super::cancel::Cancellation::default(),
            verbose: self.verbose,
            workspace_root: self.workspace_root.clone(),
            full_env_map: Rc::clone(&self.full_env_map),
            full_env: Arc::clone(&self.full_env),
            cache: self.cache.clone(),
            addon_path: self.addon_path.clone(),
            tracer_library: self.tracer_library.clone(),
            colours: self.colours,
            not_cached: RefCell::new(Vec::new()),
            cache_hint: super::cache_hint::CacheHint::default(),
            remote: self.remote.clone(),
            uploads: RefCell::new(Vec::new()),
            programs: super::resolve::ProgramSearch::new(&self.workspace_root),
            running: Rc::clone(&self.running),
            lock_use: Rc::clone(&self.lock_use),
            cached_by: self.settings.open.cached_by.clone(),
        });
        let specs = Rc::new(specs);
        let mut stats = scheduler::run(ex, specs, deps, opts, Rc::clone(&ctx)).await;
        stats.not_cached = ctx.not_cached.borrow().clone();
        finish_uploads(&ctx, self.verbose, &labels, stats.cancelled);
        (ctx.emit)(RunEvent::RunFinished {
            stats: stats.clone(),
        });
        if !self.cache_tip_given.get() {
            let end = RunEnd {
                all_succeeded: stats.succeeded == stats.tasks && !stats.cancelled,
                some_not_stored: !stats.not_cached.is_empty(),
                stderr_is_terminal: self.colours.stderr_is_terminal(),
            };
            if let Some(tip) = ctx.cache_hint.notice(end) {
                self.cache_tip_given.set(true);
                (ctx.emit)(RunEvent::Notice(tip));
            }
        }
        let details = reporter.borrow().last_details(&stats);
        let details_json = reporter.borrow().last_run_json(&infos, &stats);
        // Best effort: `--last-details` then has nothing to show, which it
        // says. Only into a directory proven to be vp's (claimed with its
        // marker), so an uncached run never makes the cache dir look foreign.
        if let Ok(home) = crate::cache::CacheDir::claim(&self.settings.dir) {
            let _ = std::fs::write(home.last_run(), details);
            let _ = std::fs::write(home.last_run_json(), details_json);
        }
        // No release of the lock is still closing RocksDB when vp exits.
        self.lock_use.settle().await;
        if let Ok(c) = &ctx.cache {
            // Keep the cache within its bound; a failure here loses nothing.
            let _ = c.store.prune_if_needed(self.settings.max_size);
        }
        stats
    }
}

/// What the JSON reports say about each task: its id, its commands as
/// shown, and the ids of the tasks it comes after.
pub(super) fn task_infos(specs: &[TaskSpec], deps: &[Vec<usize>]) -> Vec<TaskInfo> {
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let command = s.display.clone().or_else(|| {
                (!s.items.is_empty()).then(|| {
                    s.items
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(" && ")
                })
            });
            let depends_on = deps
                .get(i)
                .map(|d| {
                    d.iter()
                        .filter_map(|&j| specs.get(j))
                        .map(|t| t.label.clone())
                        .collect()
                })
                .unwrap_or_default();
            TaskInfo::new(s.label.clone(), command, depends_on)
        })
        .collect()
}
