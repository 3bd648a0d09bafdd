//! The life of one task: its commands run in order, each through three
//! stages with a type at every seam:
//!
//! ```text
//! decide  (CacheMode) ─► look up ─► hit: restore, replay the log
//!                                └► miss ─► execute (Observation) ─► admit (AdmittedRun | NotCached) ─► record
//! ```
//!
//! This module only sequences them and turns their results into
//! `RunEvent`s; each stage is its own module.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::admit::{self, Roots};
use super::cache_hint::CacheHint;
use super::command_line::CommandItem;
use super::decide::{self, CacheMode};
use super::env::EnvPolicy;
use super::execute::{self, Recording, Traced, real_path};
use super::spawn::ChildRegistry;
use super::store::{self, Looked};
use crate::cache::{self, GlobConfig, Store};
use crate::events::{
    CacheStatus, CommandHeader, Failure, MissCost, NotCached, OutputOrigin, OutputStream, RunEvent,
    RunNotice, TaskNotice, TaskOutcome, Unavailable,
};
use crate::remote::{RemoteMiss, RemoteSession, SessionError};
use crate::report::Colours;

/// A planned task, resolved into what is needed to execute it.
#[derive(Debug, Clone)]
pub(crate) struct TaskSpec {
    pub(crate) label: String,
    pub(crate) items: Vec<CommandItem>,
    /// What the header shows instead of the item itself (`vp build` runs
    /// `node .../vite.js build` but is shown as the user typed it).
    pub(crate) display: Option<String>,
    pub(crate) package_dir: PathBuf,
    pub(crate) cwd: PathBuf,
    /// `~/rel/dir` for headers, empty at the workspace root.
    pub(crate) header_cwd: String,
    pub(crate) env_policy: EnvPolicy,
    /// The environment the task's processes see (already filtered).
    pub(crate) child_env: Vec<(OsString, OsString)>,
    pub(crate) cache_enabled: bool,
    /// The cache is off only because this is a `package.json` script and
    /// scripts are uncached by default: no `--cache`/`--no-cache`, no
    /// `cache` in a vite-task.json (the task's or the root's). Such a run may
    /// earn the `--cache` tip (`cache_hint`).
    pub(crate) uncached_by_default: bool,
    pub(crate) inputs: GlobConfig,
    pub(crate) outputs: GlobConfig,
    pub(crate) interactive: bool,
}

impl TaskSpec {
    /// The `PATH` the task's processes see (vp's, with the workspace's bin
    /// directories first): it chooses the programs a run records.
    pub(crate) fn path_var(&self) -> Option<&OsStr> {
        self.child_env
            .iter()
            .find(|(name, _)| name == "PATH")
            .map(|(_, value)| value.as_os_str())
    }
}

/// The cache as one run uses it.
#[derive(Clone)]
pub(crate) struct RunCache {
    pub(crate) store: Arc<Store>,
    pub(crate) dir: PathBuf,
}

/// What every task of a run shares (event-loop thread only).
pub(crate) struct RunContext {
    pub(crate) emit: Box<dyn Fn(RunEvent)>,
    pub(crate) children: ChildRegistry,
    pub(crate) cancelled: super::cancel::Cancellation,
    pub(crate) verbose: bool,
    pub(crate) workspace_root: PathBuf,
    /// vp's own, unfiltered environment: what the bridge serves from.
    pub(crate) full_env: Arc<Vec<(OsString, OsString)>>,
    pub(crate) full_env_map: Rc<BTreeMap<OsString, OsString>>,
    /// The store, or why this run has none.
    pub(crate) cache: Result<RunCache, Unavailable>,
    pub(crate) addon_path: Option<PathBuf>,
    /// The in-process tracer library traced commands get, if any.
    pub(crate) tracer_library: Option<PathBuf>,
    /// Whether vp is on a terminal and what the user asked for: decides
    /// the colour variable every task's processes get (`execute.rs`).
    pub(crate) colours: Colours,
    /// For the summary: each task whose successful run was not stored.
    pub(crate) not_cached: RefCell<Vec<(String, NotCached)>>,
    /// What the uncached commands showed, for the `--cache` tip.
    pub(crate) cache_hint: CacheHint,
    /// The remote cache of this run, if one is configured (and the local
    /// store, which it imports into, is open).
    pub(crate) remote: Option<Arc<RemoteSession>>,
    /// Uploads started after stored runs, awaited before vp exits.
    pub(crate) uploads: RefCell<Vec<store::PendingUpload>>,
    /// Program lookups of this batch.
    pub(crate) programs: super::resolve::ProgramSearch,
    /// The session's running tasks, shared by all its batches.
    pub(crate) running: Rc<RunningTasks>,
    /// When the session may let the store's lock go (`lock_use.rs`).
    pub(crate) lock_use: Rc<super::lock_use::LockUse>,
    /// The vps whose cached commands this vp runs in, handed on to every
    /// command with this vp added when it is cached (`cache::CachedBy`).
    pub(crate) cached_by: crate::cache::CachedBy,
}

/// How many tasks of the whole session are running: started by a
/// scheduler and not yet finished, in every batch (`vp run --watch` runs
/// its persistent tasks in a batch of their own, beside each cycle's, on
/// the same loop). Its `alone` lets a task know it is the only one
/// (`store::StoreThread`). It only changes when a task starts or finishes;
/// within a batch no task starts until another finishes, but a batch
/// started beside it can, so a task asks again for each store call.
#[derive(Default)]
pub(crate) struct RunningTasks(Cell<usize>);

impl RunningTasks {
    pub(crate) fn started(&self) {
        self.0.set(self.0.get() + 1);
    }

    pub(crate) fn finished(&self) {
        self.0.set(self.0.get().saturating_sub(1));
    }

    pub(crate) fn alone(&self) -> bool {
        self.0.get() == 1
    }
}

/// The outcome of one command.
enum ItemResult {
    Done { hit: Option<Hit>, saved: Duration },
    Failed(TaskOutcome),
}

/// Where a hit came from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Hit {
    Local,
    Remote,
}

impl From<execute::NotRun> for ItemResult {
    fn from(not_run: execute::NotRun) -> Self {
        match not_run {
            execute::NotRun::Failed(failure) => failure.into(),
            execute::NotRun::Cancelled => ItemResult::Failed(TaskOutcome::Cancelled),
        }
    }
}

impl From<Failure> for ItemResult {
    fn from(failure: Failure) -> Self {
        ItemResult::Failed(TaskOutcome::Failed {
            exit_code: failure.exit_code(),
            failure,
        })
    }
}

pub(crate) async fn execute(
    index: usize,
    spec: &TaskSpec,
    ctx: &Rc<RunContext>,
    ex: &Rc<smol::LocalExecutor<'static>>,
) -> TaskOutcome {
    (ctx.emit)(RunEvent::TaskStarted { task: index });
    let (mut hits, mut remote_hits, mut cached, mut saved) = (0, 0, 0, Duration::ZERO);
    for (n, item) in spec.items.iter().enumerate() {
        if ctx.cancelled.get() {
            return TaskOutcome::Cancelled;
        }
        let item_id = item_id(spec, n);
        match run_item(index, spec, &item_id, item, ctx, ex).await {
            ItemResult::Done { hit, saved: s } => {
                if spec.cache_enabled {
                    cached += 1;
                }
                if let Some(hit) = hit {
                    hits += 1;
                    remote_hits += usize::from(hit == Hit::Remote);
                    saved += s;
                }
            }
            ItemResult::Failed(outcome) => return outcome,
        }
    }
    TaskOutcome::Succeeded {
        cache_hits: hits,
        remote_hits,
        commands: cached,
        saved,
    }
}

/// The store's id of command `n` of a task: its label, or `label[n]` when
/// the task has several commands (`a && b`).
pub(crate) fn item_id(spec: &TaskSpec, n: usize) -> String {
    if spec.items.len() == 1 {
        spec.label.clone()
    } else {
        format!("{}[{n}]", spec.label)
    }
}

/// One command: decide, then replay a hit or execute, admit and record.
async fn run_item(
    index: usize,
    spec: &TaskSpec,
    item_id: &str,
    item: &CommandItem,
    ctx: &Rc<RunContext>,
    ex: &Rc<smol::LocalExecutor<'static>>,
) -> ItemResult {
    let header = |status| RunEvent::CommandStarted {
        task: index,
        header: CommandHeader {
            cwd: spec.header_cwd.clone(),
            command: spec.display.clone().unwrap_or_else(|| item.to_string()),
            status,
        },
    };
    let process = match decide::process(spec, item, &ctx.programs) {
        Ok(p) => p,
        Err(failure) => {
            (ctx.emit)(header(CacheStatus::Disabled));
            return failure.into();
        }
    };
    let cache = match decide::decide(spec.cache_enabled, &ctx.cache) {
        CacheMode::Disabled => {
            (ctx.emit)(header(CacheStatus::Disabled));
            return run_uncached(index, spec, item, &process, ctx, ex, Uncached::Disabled).await;
        }
        CacheMode::Unavailable(why) => {
            (ctx.emit)(header(CacheStatus::Unavailable(why)));
            return run_uncached(index, spec, item, &process, ctx, ex, Uncached::Unavailable).await;
        }
        CacheMode::LookUp(cache) => cache,
    };
    // Until this command is recorded, restored or given up, the run keeps
    // the store's lock once it has it.
    let caching = ctx.lock_use.caching(&cache.store);
    let fingerprint = Arc::new(decide::fingerprint(
        spec,
        &process,
        &ctx.workspace_root,
        &ctx.full_env,
    ));
    // A lookup that goes to the remote cache can take minutes against a
    // slow server: a cancelled run does not wait for it (`store::look_up`).
    let Some(looked) = store::look_up(cache, spec, ctx, item_id, &fingerprint).await else {
        return ItemResult::Failed(TaskOutcome::Cancelled);
    };
    let (miss, remote_miss) = match looked {
        Looked::Hit { log, saved, remote } => {
            (ctx.emit)(header(CacheStatus::Hit {
                remote: remote.is_some(),
            }));
            if let (Some(bytes), true) = (remote, ctx.verbose) {
                (ctx.emit)(RunEvent::TaskNotice {
                    task: index,
                    notice: TaskNotice::Downloaded { bytes },
                });
            }
            for chunk in log {
                let stream = match chunk.stream {
                    cache::Stream::Stdout => OutputStream::Stdout,
                    cache::Stream::Stderr => OutputStream::Stderr,
                };
                (ctx.emit)(RunEvent::TaskOutput {
                    task: index,
                    stream,
                    bytes: chunk.bytes,
                    origin: OutputOrigin::Replayed,
                });
            }
            let hit = if remote.is_some() {
                Hit::Remote
            } else {
                Hit::Local
            };
            return ItemResult::Done {
                hit: Some(hit),
                saved,
            };
        }
        Looked::Unavailable(why) => {
            // The command runs uncached: it needs no lock (`lock_use.rs`).
            drop(caching);
            (ctx.emit)(header(CacheStatus::Unavailable(why)));
            return run_uncached(index, spec, item, &process, ctx, ex, Uncached::Unavailable).await;
        }
        Looked::Miss(miss, remote) => (miss, remote),
    };
    (ctx.emit)(header(CacheStatus::Miss(miss)));
    if let Some(why) = remote_miss {
        remote_miss_notice(index, why, ctx);
    }
    let own_state = store::own_state(cache, spec, ctx, item_id).await;
    // A lookup that went to the remote cache can take seconds: a Ctrl-C
    // meanwhile must not be followed by starting the command.
    if ctx.cancelled.get() {
        return ItemResult::Failed(TaskOutcome::Cancelled);
    }
    let recording = Recording {
        cache_dir: &cache.dir,
        own_state: &own_state.files,
    };
    let obs = match execute::execute(index, spec, &process, Some(recording), ctx, ex).await {
        Ok(obs) => obs,
        Err(not_run) => return not_run.into(),
    };
    // What this run leaves besides the state it started from: remembered
    // if the run is not stored (`cache::store::leftovers`), so that no hit
    // restores an earlier result beside it.
    let leftovers: Vec<PathBuf> = match &obs.trace {
        Traced::Classified(c) => c
            .outputs
            .keys()
            .filter(|p| !own_state.files.contains(*p))
            .cloned()
            .collect(),
        _ => Vec::new(),
    };
    // What the run left in its state files, remembered after a failed run
    // too (an error, then the fix: the fixed run finds its own state), not
    // after one that was cancelled half-way.
    if let (Traced::Classified(c), false) = (&obs.trace, obs.cancelled) {
        let files = c.state_files.iter().cloned().collect();
        store::remember_state(cache, ctx, item_id, files, own_state).await;
    }
    if let Some(failed) = finished(index, spec, item, &obs, ctx) {
        store::remember_leftovers(cache, ctx, leftovers).await;
        return failed;
    }
    let real_root = real_path(&ctx.workspace_root);
    let roots = Roots {
        root: &ctx.workspace_root,
        real_root: &real_root,
    };
    let storing = Instant::now();
    let stored = match admit::admit(&obs, spec, &roots) {
        Ok(run) => store::record(cache, spec, ctx, Arc::clone(&fingerprint), item_id, run).await,
        Err(why) => Err(why),
    };
    let miss_cost = obs.after_exit.map(|after| MissCost {
        ran: obs.duration,
        resolved: after.resolved,
        classified: after.classified,
        stored: storing.elapsed(),
        calls: after.calls,
        hashed_while_running: obs.prehashed.len(),
    });
    match stored {
        Ok(summary) => {
            if ctx.verbose {
                (ctx.emit)(RunEvent::TaskNotice {
                    task: index,
                    notice: TaskNotice::Stored {
                        inputs: summary.inputs,
                        outputs: summary.outputs,
                        new_bytes: summary.new_blob_bytes,
                    },
                });
            }
            store::upload(cache, ctx, index, fingerprint, &summary);
        }
        Err(why) => {
            store::remember_leftovers(cache, ctx, leftovers).await;
            ctx.not_cached
                .borrow_mut()
                .push((spec.label.clone(), why.clone()));
            (ctx.emit)(RunEvent::TaskNotice {
                task: index,
                notice: TaskNotice::NotCached(why),
            });
        }
    }
    if ctx.verbose
        && let Some(cost) = miss_cost
    {
        (ctx.emit)(RunEvent::TaskNotice {
            task: index,
            notice: TaskNotice::MissCost(cost),
        });
    }
    crate::parallel::drop_later(obs);
    ItemResult::Done {
        hit: None,
        saved: Duration::ZERO,
    }
}

/// Says why the remote cache had nothing usable, when that is news: a
/// rejected artifact or an unreadable input always; an unportable key or
/// no upload yet only with `-v`; the server failing once per run.
fn remote_miss_notice(index: usize, why: RemoteMiss, ctx: &RunContext) {
    match why {
        RemoteMiss::Unavailable(SessionError::Failed(e)) => {
            (ctx.emit)(RunEvent::Notice(RunNotice::RemoteUnavailable(e)));
        }
        RemoteMiss::Unavailable(SessionError::Disabled) => {}
        why @ (RemoteMiss::Rejected(_)
        | RemoteMiss::InputUnreadable { .. }
        | RemoteMiss::NotImported { .. }) => {
            (ctx.emit)(RunEvent::TaskNotice {
                task: index,
                notice: TaskNotice::RemoteMiss(why),
            });
        }
        why if ctx.verbose => (ctx.emit)(RunEvent::TaskNotice {
            task: index,
            notice: TaskNotice::RemoteMiss(why),
        }),
        _ => {}
    }
}

/// Why a command runs without the cache.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Uncached {
    /// Its task's cache is off (`CacheStatus::Disabled`).
    Disabled,
    /// Its task wants the cache but this run has none.
    Unavailable,
}

/// Runs a command whose result is not stored.
async fn run_uncached(
    index: usize,
    spec: &TaskSpec,
    item: &CommandItem,
    process: &super::spawn::ProcessSpec,
    ctx: &Rc<RunContext>,
    ex: &Rc<smol::LocalExecutor<'static>>,
    why: Uncached,
) -> ItemResult {
    match execute::execute(index, spec, process, None, ctx, ex).await {
        Ok(obs) => {
            if why == Uncached::Disabled {
                let objected = obs.bridge.as_ref().and_then(admit::bridge_veto).is_some();
                ctx.cache_hint
                    .ran_uncached(spec.uncached_by_default, objected);
            }
            finished(index, spec, item, &obs, ctx).unwrap_or(ItemResult::Done {
                hit: None,
                saved: Duration::ZERO,
            })
        }
        Err(not_run) => not_run.into(),
    }
}

/// After a command ran: shows what its tools said (`-v`), and ends the task
/// if the command failed or the run was cancelled.
fn finished(
    index: usize,
    spec: &TaskSpec,
    item: &CommandItem,
    obs: &execute::Observation,
    ctx: &RunContext,
) -> Option<ItemResult> {
    if ctx.verbose
        && let Some(r) = &obs.bridge
    {
        (ctx.emit)(RunEvent::TaskNotice {
            task: index,
            notice: TaskNotice::BridgeFacts(Box::new(r.clone())),
        });
    }
    if obs.cancelled {
        return Some(ItemResult::Failed(TaskOutcome::Cancelled));
    }
    if obs.exit_code != 0 {
        return Some(
            Failure::Exited {
                command: spec.display.clone().unwrap_or_else(|| item.to_string()),
                code: obs.exit_code,
            }
            .into(),
        );
    }
    None
}
