//! A task's calls into the cache store: look up a command, restore a hit,
//! learn and remember the task's own state files, record an admitted run;
//! and, for a dry run, the same lookup without writing (`peek`). RocksDB
//! and hashing block, so they run on the blocking pool while anything else
//! needs the event loop, and on the loop's own thread when nothing does
//! ([`StoreThread`]).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::admit::AdmittedRun;
use super::execute::real_path;
use super::task::{RunCache, RunContext, TaskSpec};
use crate::cache::{self, LockWait, LookupOutcome, SpawnFingerprint, Store, TaskPaths};
use crate::events::{Miss, NotCached, RunEvent, RunNotice, Unavailable};
use crate::remote::{self, RemoteMiss, RemoteSession};

/// What the store says about one command before it runs.
pub(crate) enum Looked {
    /// Restored: the outputs are back; the log is to be replayed. `remote`:
    /// the result was downloaded from the remote cache first (bytes).
    Hit {
        log: Vec<cache::LogChunk>,
        saved: Duration,
        remote: Option<u64>,
    },
    /// `remote`: why the remote cache had nothing either (when asked).
    Miss(Miss, Option<RemoteMiss>),
    /// The lookup failed: run without the cache.
    Unavailable(Unavailable),
}

/// What the remote cache did for a command after a local miss.
enum RemoteAnswer {
    /// Imported and served by the local lookup (bytes downloaded).
    Served(u64),
    /// Nothing usable, and why.
    NotServed(RemoteMiss),
}
use RemoteAnswer::{NotServed, Served};

/// Looks up `fingerprint` for item `item_id`: locally, then (after a local
/// miss) in the remote cache, whose result is imported into the local
/// store and served by the same lookup. On a hit, restores its outputs (a
/// hit whose outputs cannot be restored is a miss). `None` when the run was
/// cancelled before the lookup answered: a download from a slow remote
/// cache can take minutes, and a cancelled run does not wait for it (the
/// blocking work runs on to its end and its answer is dropped; imports and
/// hit marks are single write batches). A restore, once started, is always
/// finished: stopping it would leave temporary files and half an output
/// tree.
pub(crate) async fn look_up(
    cache: &RunCache,
    spec: &TaskSpec,
    ctx: &RunContext,
    item_id: &str,
    fingerprint: &Arc<SpawnFingerprint>,
) -> Option<Looked> {
    let args = Arc::new(LookupArgs {
        id: item_id.to_owned(),
        fingerprint: Arc::clone(fingerprint),
        path_var: spec.path_var().map(OsStr::to_os_string),
    });
    let session = ctx.remote.clone();
    let thread = StoreThread::of(ctx);
    let on_loop = match thread {
        StoreThread::Loop => {
            let args = Arc::clone(&args);
            on_store(
                cache,
                spec,
                &StoreScope::of(ctx, thread),
                move |store, paths, env| look_up_without_waiting(store, &args.request(paths, env)),
            )
            .await
        }
        StoreThread::Pool => None,
    };
    let lookup = match on_loop {
        Some(found) => Some(found.map(|outcome| (outcome, None))),
        None => {
            ctx.cancelled
                .unless(reporting_notices(
                    cache,
                    ctx,
                    on_store(
                        cache,
                        spec,
                        &StoreScope::of(ctx, StoreThread::Pool),
                        move |store, paths, env| {
                            look_up_on_the_pool(store, &args.request(paths, env), session)
                        },
                    ),
                ))
                .await
        }
    };
    report_store_notices(cache, ctx);
    let (lookup, remote) = match lookup? {
        Ok((outcome, remote)) => (Ok::<_, cache::CacheError>(outcome), remote),
        Err(e) => (Err(e), None),
    };
    Some(match lookup {
        Ok(LookupOutcome::Hit(hit)) => {
            let store = Arc::clone(&cache.store);
            let root = ctx.workspace_root.clone();
            // A restore never waits for another vp's lock (`Store::restore`).
            let (hit, restored) = thread
                .run(move || {
                    let r = store.restore(&hit, &root);
                    (hit, r)
                })
                .await;
            match restored {
                Ok(report) => Looked::Hit {
                    log: report.log,
                    saved: hit.saved(),
                    remote: match remote {
                        Some(Served(bytes)) => Some(bytes),
                        _ => None,
                    },
                },
                Err(e) => Looked::Miss(
                    Miss::RestoreFailed {
                        error: e.to_string(),
                    },
                    None,
                ),
            }
        }
        Ok(LookupOutcome::Miss(reasons)) => {
            let why = match remote {
                Some(NotServed(why)) => Some(why),
                _ => None,
            };
            Looked::Miss(miss(reasons, &ctx.workspace_root, spec), why)
        }
        // Opening the store for writing before the command runs waited for
        // another vp's lock in vain: run it without the cache.
        Err(cache::CacheError::Busy { holder, .. }) => {
            Looked::Unavailable(Unavailable::Locked { holder })
        }
        Err(e) => Looked::Unavailable(Unavailable::ReadFailed {
            error: e.to_string(),
        }),
    })
}

/// What a lookup of one command asks the store, owned so that the work can
/// move to a blocking thread.
struct LookupArgs {
    id: String,
    fingerprint: Arc<SpawnFingerprint>,
    path_var: Option<OsString>,
}

impl LookupArgs {
    fn request<'a>(
        &'a self,
        paths: TaskPaths<'a>,
        env: &'a cache::EnvView<'a>,
    ) -> cache::LookupRequest<'a> {
        cache::LookupRequest {
            task: &self.id,
            spawn: &self.fingerprint,
            paths,
            env,
            path_var: self.path_var.as_deref(),
        }
    }
}

/// The local lookup on the event loop's thread ([`StoreThread::Loop`]),
/// which must never wait for another vp's lock: `None` when it would (a
/// miss on a store not yet open for writing while another vp holds the
/// lock), for [`look_up_on_the_pool`] to do it again where a Ctrl-C stops
/// the wait. A hit never waits (`Store::lookup`).
fn look_up_without_waiting(
    store: &Store,
    request: &cache::LookupRequest<'_>,
) -> Option<Result<LookupOutcome, cache::CacheError>> {
    match look_up_locally(store, request, LockWait::No) {
        Err(cache::CacheError::Busy { .. }) => None,
        found => Some(found),
    }
}

/// The lookup in the local store. After a miss, the store is opened for
/// writing before the command runs (waiting for another vp's lock as `wait`
/// says); if that opened it just now, the command is looked up again: the
/// store was read-only until then, and a vp that held the lock may have
/// stored this very command meanwhile.
fn look_up_locally(
    store: &Store,
    request: &cache::LookupRequest<'_>,
    wait: LockWait,
) -> Result<LookupOutcome, cache::CacheError> {
    let local = store.lookup(request)?;
    if let LookupOutcome::Miss(_) = local
        && store.prepare_to_write(wait)?
    {
        return store.lookup(request);
    }
    Ok(local)
}

/// The lookup on a blocking thread: local, waiting for another vp's lock
/// to open the store for writing after a miss, then the remote cache.
fn look_up_on_the_pool(
    store: &Store,
    request: &cache::LookupRequest<'_>,
    session: Option<Arc<RemoteSession>>,
) -> Result<(LookupOutcome, Option<RemoteAnswer>), cache::CacheError> {
    let local = look_up_locally(store, request, LockWait::UpToTimeout)?;
    let (LookupOutcome::Miss(reasons), Some(session)) = (&local, session) else {
        return Ok((local, None));
    };
    // Why the local entry was refused is about this machine: a program the
    // task ran is not the one it recorded (`nvm use`; a downloaded result
    // records no programs, so it would replace that entry and hit), or an
    // output holds what vp did not leave (the downloaded result would be
    // refused the same way), or a run that was not stored left a file where
    // the task writes (refused too, unless the download makes that very
    // file). It runs here instead.
    if reasons.as_slice().iter().any(|r| {
        matches!(
            r,
            cache::MissReason::ToolChanged(_)
                | cache::MissReason::OutputChanged(_)
                | cache::MissReason::LeftByUnstoredRun(_)
        )
    }) {
        return Ok((local, None));
    }
    // A failure of the local store while importing is the remote path's
    // failure: the local miss stands, so the task still runs and is stored.
    let not_imported = |e: cache::CacheError| {
        NotServed(RemoteMiss::NotImported {
            error: e.to_string(),
        })
    };
    let fetched = remote::fetch_run(
        &session,
        store,
        &remote::FetchRequest {
            task: request.task,
            spawn: request.spawn,
            paths: request.paths,
            env: request.env,
        },
    );
    match fetched {
        Ok(remote::FetchOutcome::Imported(fetched)) => match store.lookup(request) {
            Ok(hit @ LookupOutcome::Hit(_)) => Ok((hit, Some(Served(fetched.downloaded)))),
            // Imported but not served (its inputs changed meanwhile): the
            // local reasons stand.
            Ok(LookupOutcome::Miss(_)) => Ok((local, None)),
            Err(e) => Ok((local, Some(not_imported(e)))),
        },
        Ok(remote::FetchOutcome::Miss(why)) => Ok((local, Some(NotServed(why)))),
        Err(e) => Ok((local, Some(not_imported(e)))),
    }
}

/// What a lookup of `fingerprint` would find now, for a dry run: the local
/// store only (the remote cache is not asked: a dry run sends nothing
/// anywhere), with `Store::peek`, which writes nothing; a hit is not
/// restored (its `log` is empty).
pub(crate) struct Peeked {
    pub(crate) looked: Looked,
    /// The outputs the command would write, as far as the store knows
    /// them: the hit's, or on a miss those of its last stored run
    /// (workspace-relative).
    pub(crate) outputs: Vec<cache::RelPath>,
    /// A hit whose restore would change files on disk (see
    /// `CacheHit::restore_changes`; only when asked, else `false`).
    pub(crate) restore_changes: bool,
}

/// See [`Peeked`]. `check_restore`: whether to find out if a hit's restore
/// would change files (it may hash every output).
pub(crate) async fn peek(
    cache: &RunCache,
    spec: &TaskSpec,
    scope: &StoreScope,
    item_id: &str,
    fingerprint: &Arc<SpawnFingerprint>,
    check_restore: bool,
) -> Peeked {
    let (fp, id) = (Arc::clone(fingerprint), item_id.to_owned());
    let path_var = spec.path_var().map(OsStr::to_os_string);
    let outcome = on_store(cache, spec, scope, move |store, paths, env| {
        let outcome = store.peek(&cache::LookupRequest {
            task: &id,
            spawn: &fp,
            paths,
            env,
            path_var: path_var.as_deref(),
        })?;
        let (outputs, restore_changes) = match &outcome {
            LookupOutcome::Hit(hit) => (
                hit.entry.outputs.keys().cloned().collect(),
                check_restore && hit.restore_changes(paths.workspace_root),
            ),
            // Only to explain the miss better: unreadable means unknown.
            LookupOutcome::Miss(_) => (
                store
                    .task_record(&id)
                    .ok()
                    .flatten()
                    .and_then(|r| store.entry(r.entry).ok().flatten())
                    .map(|e| e.outputs.keys().cloned().collect())
                    .unwrap_or_default(),
                false,
            ),
        };
        Ok::<_, cache::CacheError>((outcome, outputs, restore_changes))
    })
    .await;
    match outcome {
        Ok((LookupOutcome::Hit(hit), outputs, restore_changes)) => Peeked {
            looked: Looked::Hit {
                log: Vec::new(),
                saved: hit.saved(),
                remote: None,
            },
            outputs,
            restore_changes,
        },
        Ok((LookupOutcome::Miss(reasons), outputs, _)) => Peeked {
            looked: Looked::Miss(miss(reasons, &scope.workspace_root, spec), None),
            outputs,
            restore_changes: false,
        },
        Err(e) => Peeked {
            looked: Looked::Unavailable(Unavailable::ReadFailed {
                error: e.to_string(),
            }),
            outputs: Vec::new(),
            restore_changes: false,
        },
    }
}

/// A lookup's reasons as the header shows them: a first run has none; the
/// others are shown relative to the task's package.
fn miss(reasons: cache::MissReasons, workspace_root: &Path, spec: &TaskSpec) -> Miss {
    if reasons.is_first_run() {
        Miss::FirstRun
    } else {
        Miss::Changed {
            reasons,
            base: cache::RelPath::from_abs(workspace_root, &spec.package_dir)
                .unwrap_or_else(cache::RelPath::root),
        }
    }
}

/// The task's own state files (`.tsbuildinfo`, ...), known from its earlier
/// runs, checked before it starts: see `cache::store::state`. A file the
/// task declares as an input, or one git tracks, is never its own state.
pub(crate) async fn own_state(
    cache: &RunCache,
    spec: &TaskSpec,
    ctx: &RunContext,
    item_id: &str,
) -> cache::OwnState {
    let (store, id, root) = (
        Arc::clone(&cache.store),
        item_id.to_owned(),
        real_path(&ctx.workspace_root),
    );
    let (config, pkg) = (spec.inputs.clone(), real_path(&spec.package_dir));
    blocking::unblock(move || {
        let mut own = store.own_state(&id, &root).unwrap_or_default();
        own.files
            .retain(|p| !cache::declared_input(&config, &pkg, p));
        let sources = super::vcs::tracked_by_git(&root, &own.files);
        own.files.retain(|p| !sources.contains(p));
        let cache::OwnState { files, replaceable } = &mut own;
        replaceable.retain(|p| files.contains(p));
        own
    })
    .await
}

/// Remembers the state files a run rewrote. Stored or not: a state file
/// that existed before vp is known as the task's own from the next run on.
/// `own` is what was the task's own state when the run started: what the
/// run left alone stays remembered (a run that was up to date and only
/// read its state). Best effort: forgetting costs one uncached run.
pub(crate) async fn remember_state(
    cache: &RunCache,
    ctx: &RunContext,
    item_id: &str,
    files: Vec<PathBuf>,
    own: cache::OwnState,
) {
    let (store, id, root) = (
        Arc::clone(&cache.store),
        item_id.to_owned(),
        real_path(&ctx.workspace_root),
    );
    let _ = blocking::unblock(move || store.remember_state(&id, &root, &files, &own)).await;
    report_store_notices(cache, ctx);
}

/// Remembers the outputs a run that was not stored left (failed, refused
/// or cancelled): see `cache::store::leftovers`. Best effort: forgetting
/// them is what vp did before it kept them.
pub(crate) async fn remember_leftovers(cache: &RunCache, ctx: &RunContext, outputs: Vec<PathBuf>) {
    if outputs.is_empty() {
        return;
    }
    let (store, root) = (Arc::clone(&cache.store), real_path(&ctx.workspace_root));
    let _ = blocking::unblock(move || store.remember_leftovers(&root, &outputs)).await;
    report_store_notices(cache, ctx);
}

/// Before a command whose run may be stored starts: a store opened
/// read-only is opened for writing now, so a nested `vp run` in that
/// command finds the lock held by its parent (`cache/store/access.rs`). A
/// failure is reported by whatever then tries to write. The wait for
/// another vp's lock is abandoned on Ctrl-C, like a lookup's; the caller
/// checks for that before it starts the command.
///
/// A command that is not stored (`"cache": false`, a dev server) takes no
/// lock: it writes nothing, and a lock taken for it would be held for as
/// long as it runs, so every other vp on the workspace would wait for it
/// and then run without the cache. A nested `vp run` in it uses the cache
/// as any other vp does, since nothing caches its run as a whole.
pub(crate) async fn prepare_for_command(ctx: &RunContext) {
    let Ok(cache) = &ctx.cache else { return };
    if cache.store.is_writable() {
        return;
    }
    let store = Arc::clone(&cache.store);
    let _ = ctx
        .cancelled
        .unless(reporting_notices(
            cache,
            ctx,
            blocking::unblock(move || store.prepare_to_write(LockWait::UpToTimeout)),
        ))
        .await;
    report_store_notices(cache, ctx);
}

/// What opening the store for writing had to say (a wait for another vp's
/// lock, a store set aside), from whichever call opened it.
fn report_store_notices(cache: &RunCache, ctx: &RunContext) {
    for notice in cache.store.take_notices() {
        (ctx.emit)(RunEvent::Notice(RunNotice::Store(notice)));
    }
}

/// `work`, store work on the pool that may wait for another vp's lock,
/// with the store's notices reported as they are queued: "waiting for the
/// cache lock … for up to 10s" is shown when the wait begins, not once it
/// is over. The notices left when `work` ends are the caller's to report.
async fn reporting_notices<T>(
    cache: &RunCache,
    ctx: &RunContext,
    work: impl std::future::Future<Output = T>,
) -> T {
    let live = async {
        loop {
            let Some(listener) = cache.store.listen_for_notices() else {
                return std::future::pending().await;
            };
            report_store_notices(cache, ctx);
            listener.await;
        }
    };
    futures_lite::future::or(work, live).await
}

/// Stores an admitted run; says how many inputs and outputs it holds, or
/// why the store refused it.
pub(crate) async fn record(
    cache: &RunCache,
    spec: &TaskSpec,
    ctx: &RunContext,
    fingerprint: Arc<SpawnFingerprint>,
    item_id: &str,
    run: AdmittedRun,
) -> Result<cache::StoredSummary, NotCached> {
    let id = item_id.to_owned();
    let outcome = on_store(
        cache,
        spec,
        // The store is open for writing by now (the lookup's miss opened
        // it), so storing never waits for another vp's lock.
        &StoreScope::of(ctx, StoreThread::of(ctx)),
        move |store, paths, _env| {
            let outcome = store.record(&cache::RecordRequest {
                task: &id,
                spawn: &fingerprint,
                paths,
                run: run.observed(),
            });
            crate::parallel::drop_later(run);
            outcome
        },
    )
    .await;
    report_store_notices(cache, ctx);
    match outcome {
        Ok(cache::RecordOutcome::Stored(summary)) => Ok(summary),
        Ok(cache::RecordOutcome::NotStored(why)) => Err(NotCached::Store(why)),
        Err(e) => Err(NotCached::StoreFailed {
            error: e.to_string(),
        }),
    }
}

/// Starts uploading a stored result to the remote cache on a blocking
/// thread, while other tasks keep running; `command.rs` awaits it (bounded)
/// before vp exits.
pub(crate) fn upload(
    cache: &RunCache,
    ctx: &RunContext,
    index: usize,
    fingerprint: Arc<SpawnFingerprint>,
    summary: &cache::StoredSummary,
) {
    let Some(session) = ctx.remote.clone() else {
        return;
    };
    let (store, entry) = (Arc::clone(&cache.store), summary.key);
    let task = blocking::unblock(move || {
        remote::upload_run(
            &session,
            &store,
            &remote::UploadRequest {
                spawn: &fingerprint,
                entry,
            },
        )
    });
    ctx.uploads.borrow_mut().push(PendingUpload {
        task: index,
        upload: task,
    });
}

/// An upload still in flight, for the task with this index.
pub(crate) struct PendingUpload {
    pub(crate) task: usize,
    pub(crate) upload: blocking::Task<Result<remote::UploadOutcome, cache::CacheError>>,
}

/// What every store call of a run needs besides the task: the workspace
/// root, vp's full environment (a real run has them in its `RunContext`; a
/// dry run has no context), and where the call may block.
pub(crate) struct StoreScope {
    pub(crate) workspace_root: PathBuf,
    pub(crate) full_env: Arc<Vec<(OsString, OsString)>>,
    pub(crate) thread: StoreThread,
}

impl StoreScope {
    fn of(ctx: &RunContext, thread: StoreThread) -> StoreScope {
        StoreScope {
            workspace_root: ctx.workspace_root.clone(),
            full_env: Arc::clone(&ctx.full_env),
            thread,
        }
    }
}

/// Where a task's blocking store work runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StoreThread {
    /// On the event loop's own thread, when nothing else needs the loop:
    /// the task is the only one running in the session (no other task's
    /// output, bridge or lookup to serve) and no remote cache is configured
    /// (a download can take minutes). A hit is a handful of small reads;
    /// handing them to a pool thread that must first be created cost about
    /// a tenth of an `echo hi` hit (docs/benchmarks.md). Work here never
    /// waits for another vp's lock: a lookup that would goes to the pool
    /// (`look_up_without_waiting`). What still blocks the loop is the work
    /// itself: a Ctrl-C during a lookup of many inputs, a large restore or
    /// storing a large run is acted on when it ends (a restore and a store
    /// were never abandoned anyway).
    Loop,
    /// On the blocking pool, so the loop goes on serving the rest, and a
    /// cancelled run stops waiting for a lookup (`look_up`).
    Pool,
}

impl StoreThread {
    fn of(ctx: &RunContext) -> StoreThread {
        StoreThread::for_task(&ctx.running, ctx.remote.is_some())
    }

    fn for_task(running: &super::task::RunningTasks, remote_cache: bool) -> StoreThread {
        if running.alone() && !remote_cache {
            StoreThread::Loop
        } else {
            StoreThread::Pool
        }
    }

    async fn run<T: Send + 'static>(self, work: impl FnOnce() -> T + Send + 'static) -> T {
        match self {
            StoreThread::Loop => work(),
            StoreThread::Pool => blocking::unblock(work).await,
        }
    }
}

/// Runs `op` where `scope.thread` says with what every store call of a
/// task needs: the task's paths and a view of vp's full environment under
/// the task's untracked policy.
async fn on_store<T: Send + 'static>(
    cache: &RunCache,
    spec: &TaskSpec,
    scope: &StoreScope,
    op: impl FnOnce(&Store, TaskPaths<'_>, &cache::EnvView<'_>) -> T + Send + 'static,
) -> T {
    let (store, policy, env) = (
        Arc::clone(&cache.store),
        spec.env_policy.clone(),
        Arc::clone(&scope.full_env),
    );
    let (root, pkg, dir) = (
        scope.workspace_root.clone(),
        spec.package_dir.clone(),
        cache.dir.clone(),
    );
    scope
        .thread
        .run(move || {
            let untracked = |n: &OsStr| policy.is_untracked(n);
            let view = cache::EnvView::new(env.iter().cloned(), &untracked);
            op(
                &store,
                TaskPaths {
                    workspace_root: &root,
                    package_dir: &pkg,
                    cache_dir: &dir,
                },
                &view,
            )
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::StoreThread;
    use crate::run::task::RunningTasks;

    #[test]
    fn store_work_stays_on_the_loop_only_for_a_lone_task_without_a_remote_cache() {
        let running = RunningTasks::default();
        running.started();
        assert_eq!(StoreThread::for_task(&running, false), StoreThread::Loop);
        assert_eq!(StoreThread::for_task(&running, true), StoreThread::Pool);
        // Another task, of this batch or another batch of the session.
        running.started();
        assert_eq!(StoreThread::for_task(&running, false), StoreThread::Pool);
        running.finished();
        assert_eq!(StoreThread::for_task(&running, false), StoreThread::Loop);
    }

    #[test]
    fn loop_work_runs_on_the_callers_thread_and_pool_work_elsewhere() {
        let here = std::thread::current().id();
        let on = |thread: StoreThread| {
            smol::block_on(thread.run(move || std::thread::current().id() == here))
        };
        assert!(on(StoreThread::Loop));
        assert!(!on(StoreThread::Pool));
    }
}
