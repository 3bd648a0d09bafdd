//! The life of one task: its commands run in order. For each command with
//! caching on: fingerprint → lookup → hit (restore outputs, replay the log)
//! or miss (spawn under the tracer with the bridge, then classify what it
//! did and store the result). Every state change is sent as a `RunEvent`.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::command_line::CommandItem;
use super::env::EnvPolicy;
use super::events::{CacheStatus, CommandHeader, OutputStream, RunEvent, TaskOutcome};
use super::resolve;
use super::spawn::{self, ChildRegistry, ProcessSpec};
use crate::bridge::{BridgeContext, BridgeReport, BridgeSession};
use crate::cache::{
    self, GlobConfig, LookupOutcome, SpawnFingerprint, SpawnSpec, Store, TaskPaths,
};
use crate::trace::{self, ChildStdio, TraceOutcome};

/// How many miss reasons a header shows before "and N more".
const MISS_REASON_LIMIT: usize = 8;

/// A planned task, resolved into what is needed to execute it.
#[derive(Debug)]
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
    pub(crate) inputs: GlobConfig,
    pub(crate) outputs: GlobConfig,
    pub(crate) interactive: bool,
}

/// The cache as one run uses it.
pub(crate) struct RunCache {
    pub(crate) store: Arc<Store>,
    pub(crate) dir: PathBuf,
}

/// What every task of a run shares (event-loop thread only).
pub(crate) struct RunContext {
    pub(crate) emit: Box<dyn Fn(RunEvent)>,
    pub(crate) children: ChildRegistry,
    pub(crate) cancelled: std::cell::Cell<bool>,
    pub(crate) verbose: bool,
    pub(crate) workspace_root: PathBuf,
    /// vp's own, unfiltered environment: what the bridge serves from.
    pub(crate) full_env: Arc<Vec<(OsString, OsString)>>,
    pub(crate) full_env_map: Rc<BTreeMap<OsString, OsString>>,
    /// `None`: caching unavailable for this run, with the reason.
    pub(crate) cache: Result<RunCache, String>,
    pub(crate) addon_path: Option<PathBuf>,
    /// Lines for the summary: why a successful run was not stored.
    pub(crate) not_cached: RefCell<Vec<String>>,
}

/// The outcome of one command.
enum ItemResult {
    Done { hit: bool, saved: Duration },
    Failed(TaskOutcome),
}

pub(crate) async fn execute(
    index: usize,
    spec: &TaskSpec,
    ctx: &Rc<RunContext>,
    ex: &Rc<smol::LocalExecutor<'static>>,
) -> TaskOutcome {
    (ctx.emit)(RunEvent::TaskStarted { task: index });
    let (mut hits, mut cached, mut saved) = (0, 0, Duration::ZERO);
    for (n, item) in spec.items.iter().enumerate() {
        if ctx.cancelled.get() {
            return TaskOutcome::Cancelled;
        }
        let item_id = if spec.items.len() == 1 {
            spec.label.clone()
        } else {
            format!("{}[{n}]", spec.label)
        };
        match run_item(index, spec, &item_id, item, ctx, ex).await {
            ItemResult::Done { hit, saved: s } => {
                if spec.cache_enabled {
                    cached += 1;
                }
                if hit {
                    hits += 1;
                    saved += s;
                }
            }
            ItemResult::Failed(outcome) => return outcome,
        }
    }
    TaskOutcome::Succeeded {
        cache_hits: hits,
        commands: cached,
        saved,
    }
}

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
    let process = match process_spec(spec, item) {
        Ok(p) => p,
        Err(message) => {
            (ctx.emit)(header(CacheStatus::Disabled));
            return ItemResult::Failed(TaskOutcome::Failed {
                exit_code: 127,
                message,
            });
        }
    };
    let cache = match (&ctx.cache, spec.cache_enabled) {
        (_, false) => None,
        (Ok(c), true) => Some(c),
        (Err(reason), true) => {
            (ctx.emit)(header(CacheStatus::Unavailable {
                reason: reason.clone(),
            }));
            return run_and_observe(index, spec, &item.to_string(), &process, None, ctx, ex).await;
        }
    };
    let Some(cache) = cache else {
        (ctx.emit)(header(CacheStatus::Disabled));
        return run_and_observe(index, spec, &item.to_string(), &process, None, ctx, ex).await;
    };
    let fingerprint = Arc::new(SpawnFingerprint::new(SpawnSpec {
        workspace_root: &ctx.workspace_root,
        package_dir: &spec.package_dir,
        cwd: &spec.cwd,
        program: &process.program,
        args: &process.args,
        declared_env: &spec
            .env_policy
            .declared_values(&ctx.full_env)
            .into_iter()
            .collect::<Vec<_>>(),
        untracked_env: &spec.env_policy.untracked_names(&ctx.full_env),
        inputs: spec.inputs.clone(),
        outputs: spec.outputs.clone(),
    }));
    let lookup = {
        let (fp, id) = (Arc::clone(&fingerprint), item_id.to_owned());
        on_store(cache, spec, ctx, move |store, paths, env| {
            store.lookup(&cache::LookupRequest {
                task: &id,
                spawn: &fp,
                paths,
                env,
            })
        })
        .await
    };
    let base = cache::RelPath::from_abs(&ctx.workspace_root, &spec.package_dir)
        .unwrap_or_else(cache::RelPath::root);
    match lookup {
        Ok(LookupOutcome::Hit(hit)) => {
            let store = Arc::clone(&cache.store);
            let root = ctx.workspace_root.clone();
            let (hit, restored) = blocking::unblock(move || {
                let r = store.restore(&hit, &root);
                (hit, r)
            })
            .await;
            match restored {
                Ok(report) => {
                    (ctx.emit)(header(CacheStatus::Hit));
                    for chunk in report.log {
                        let stream = match chunk.stream {
                            cache::Stream::Stdout => OutputStream::Stdout,
                            cache::Stream::Stderr => OutputStream::Stderr,
                        };
                        (ctx.emit)(RunEvent::TaskOutput {
                            task: index,
                            stream,
                            bytes: chunk.bytes,
                        });
                    }
                    ItemResult::Done {
                        hit: true,
                        saved: hit.saved(),
                    }
                }
                Err(e) => {
                    let reason = format!("its stored outputs could not be restored ({e})");
                    (ctx.emit)(header(CacheStatus::Miss {
                        reasons: vec![reason],
                    }));
                    run_and_observe(
                        index,
                        spec,
                        &item.to_string(),
                        &process,
                        Some((cache, fingerprint, item_id)),
                        ctx,
                        ex,
                    )
                    .await
                }
            }
        }
        Ok(LookupOutcome::Miss(reasons)) => {
            let reasons = if reasons.is_first_run() {
                Vec::new()
            } else {
                vec![reasons.display(&base, MISS_REASON_LIMIT).to_string()]
            };
            (ctx.emit)(header(CacheStatus::Miss { reasons }));
            run_and_observe(
                index,
                spec,
                &item.to_string(),
                &process,
                Some((cache, fingerprint, item_id)),
                ctx,
                ex,
            )
            .await
        }
        Err(e) => {
            (ctx.emit)(header(CacheStatus::Unavailable {
                reason: format!("the cache could not be read: {e}"),
            }));
            run_and_observe(index, spec, &item.to_string(), &process, None, ctx, ex).await
        }
    }
}

/// Runs the process with the bridge (always) and the tracer (when the result
/// may be stored), then stores it if everything allows.
async fn run_and_observe(
    index: usize,
    spec: &TaskSpec,
    item_text: &str,
    process: &ProcessSpec,
    store_as: Option<(&RunCache, Arc<SpawnFingerprint>, &str)>,
    ctx: &Rc<RunContext>,
    ex: &Rc<smol::LocalExecutor<'static>>,
) -> ItemResult {
    let mut cmd = process.command();
    let policy = spec.env_policy.clone();
    let bridge_ctx = BridgeContext::new(
        Rc::clone(&ctx.full_env_map),
        Rc::new(move |n: &OsStr| policy.is_untracked(n)),
        ctx.addon_path.clone(),
    );
    let mut bridge = match BridgeSession::new(bridge_ctx) {
        Ok(b) => Some(b),
        Err(e) => {
            (ctx.emit)(RunEvent::TaskNotice {
                task: index,
                message: format!("the runner bridge is unavailable for this task: {e}"),
            });
            None
        }
    };
    if let Some(b) = bridge.as_mut() {
        b.configure_child(&mut cmd);
    }
    // The task's own state files (`.tsbuildinfo`, ...), checked before it
    // starts: see `cache::store::state`.
    let own_state = match &store_as {
        Some((cache, _, item_id)) => {
            let (store, id, root) = (
                Arc::clone(&cache.store),
                (*item_id).to_owned(),
                real_root(&ctx.workspace_root),
            );
            let (config, pkg) = (spec.inputs.clone(), real_root(&spec.package_dir));
            blocking::unblock(move || {
                let mut own = store.own_state(&id, &root).unwrap_or_default();
                own.retain(|p| !cache::declared_input(&config, &pkg, p));
                let sources = super::vcs::tracked_by_git(&root, &own);
                own.retain(|p| !sources.contains(p));
                own
            })
            .await
        }
        None => BTreeSet::new(),
    };
    let started = blocking::unblock(cache::Timestamp::task_start).await;
    let t0 = Instant::now();
    let spawned = if store_as.is_some() {
        let stdio = ChildStdio {
            stdin: std::process::Stdio::null(),
            stdout: std::process::Stdio::piped(),
            stderr: std::process::Stdio::piped(),
        };
        trace::spawn_traced(ex, cmd, stdio)
            .await
            .map(|(c, t)| (c, Some(t)))
            .map_err(|e| error_chain(&e))
    } else {
        // `async_process::Command::from` drops the std command's stdio
        // settings, so they are set again here.
        let mut cmd = async_process::Command::from(cmd);
        cmd.stdin(if process.interactive {
            std::process::Stdio::inherit()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
        cmd.spawn().map(|c| (c, None)).map_err(|e| e.to_string())
    };
    let (child, tracer) = match spawned {
        Ok(x) => x,
        Err(e) => {
            return ItemResult::Failed(TaskOutcome::Failed {
                exit_code: 127,
                message: format!(
                    "could not start `{}` in `{}`: {e}",
                    process.program.display(),
                    process.cwd.display()
                ),
            });
        }
    };
    let pgid = i32::try_from(child.id()).unwrap_or(0);
    if !process.interactive {
        ctx.children.add(pgid);
    }
    let log: RefCell<Vec<cache::LogChunk>> = RefCell::new(Vec::new());
    let recording = store_as.is_some();
    let on_output = |stream, bytes: Vec<u8>| {
        if recording {
            let stream = match stream {
                OutputStream::Stdout => cache::Stream::Stdout,
                OutputStream::Stderr => cache::Stream::Stderr,
            };
            log.borrow_mut().push(cache::LogChunk {
                stream,
                bytes: bytes.clone(),
            });
        }
        (ctx.emit)(RunEvent::TaskOutput {
            task: index,
            stream,
            bytes,
        });
    };
    let waiting = spawn::wait_with_output(child, &on_output);
    let (status, report) = match bridge {
        Some(b) => {
            let (s, r) = b.serve_with(waiting).await;
            (s, Some(r))
        }
        None => (waiting.await, None),
    };
    ctx.children.remove(pgid);
    let duration = t0.elapsed();
    let trace_outcome = match tracer {
        Some(t) => Some(t.finish().await),
        None => None,
    };
    if ctx.verbose
        && let Some(r) = &report
    {
        for line in r.render() {
            (ctx.emit)(RunEvent::TaskNotice {
                task: index,
                message: line,
            });
        }
    }
    let code = match status {
        Ok(s) => spawn::exit_code(s),
        Err(e) => {
            return ItemResult::Failed(TaskOutcome::Failed {
                exit_code: 1,
                message: format!("lost track of `{}`: {e}", process.program.display()),
            });
        }
    };
    if ctx.cancelled.get() {
        return ItemResult::Failed(TaskOutcome::Cancelled);
    }
    if code != 0 {
        return ItemResult::Failed(TaskOutcome::Failed {
            exit_code: code,
            message: format!(
                "failed: `{}` exited with code {code}",
                spec.display.clone().unwrap_or_else(|| item_text.to_owned())
            ),
        });
    }
    if let Some((cache, fingerprint, item_id)) = store_as {
        let mut state_files = None;
        let observed = observe(
            spec,
            ctx,
            report.as_ref(),
            trace_outcome,
            cache,
            log.into_inner(),
            started,
            duration,
            &own_state,
            &mut state_files,
        );
        if let Some(files) = state_files {
            // Stored or not: a state file that existed before vp is known as
            // the task's own from the next run on.
            let (store, id, root) = (
                Arc::clone(&cache.store),
                item_id.to_owned(),
                real_root(&ctx.workspace_root),
            );
            let _ = blocking::unblock(move || store.remember_state(&id, &root, &files)).await;
        }
        match observed {
            Ok(run) => store_result(index, spec, ctx, cache, fingerprint, item_id, run).await,
            Err(why) => not_cached(index, spec, ctx, &why),
        }
    }
    ItemResult::Done {
        hit: false,
        saved: Duration::ZERO,
    }
}

/// The workspace root with symlinks resolved, as the tracer reports paths.
fn real_root(root: &Path) -> PathBuf {
    std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf())
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// Maps what the tracer and the bridge saw into what the cache stores, or
/// says why the run must not be stored.
#[allow(clippy::too_many_arguments)]
fn observe(
    spec: &TaskSpec,
    ctx: &RunContext,
    report: Option<&BridgeReport>,
    trace_outcome: Option<TraceOutcome>,
    cache: &RunCache,
    log: Vec<cache::LogChunk>,
    started: cache::Timestamp,
    duration: Duration,
    own_state: &BTreeSet<PathBuf>,
    state_files: &mut Option<Vec<PathBuf>>,
) -> Result<cache::ObservedRun, String> {
    if let Some(reason) = report.and_then(BridgeReport::uncacheable_reason) {
        return Err(reason);
    }
    let (ignored_inputs, ignored_outputs): (Vec<PathBuf>, Vec<PathBuf>) = report
        .map(|r| {
            (
                r.ignored_inputs.iter().cloned().collect(),
                r.ignored_outputs.iter().cloned().collect(),
            )
        })
        .unwrap_or_default();
    let mut run = cache::ObservedRun {
        ignored_inputs: ignored_inputs.clone(),
        ignored_outputs: ignored_outputs.clone(),
        log,
        started,
        duration,
        ..Default::default()
    };
    if let Some(r) = report {
        run.tracked_env = r.tracked_envs.clone();
        run.env_queries = r
            .env_queries
            .iter()
            .map(|q| (q.query.clone(), q.matches.clone()))
            .collect();
    }
    let needs_trace = spec.inputs.auto || spec.outputs.auto;
    match trace_outcome {
        Some(TraceOutcome::Traced(access_log)) => {
            let root = real_root(&ctx.workspace_root);
            let cache_dir = std::fs::canonicalize(&cache.dir).unwrap_or_else(|_| cache.dir.clone());
            let real = |ps: &[PathBuf]| -> Vec<PathBuf> {
                ps.iter()
                    .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
                    .collect()
            };
            let (ii, io) = (real(&ignored_inputs), real(&ignored_outputs));
            let c = trace::classify(
                &access_log,
                &trace::ClassifyOptions {
                    root: &root,
                    excluded_dirs: std::slice::from_ref(&cache_dir),
                    ignored_inputs: &ii,
                    ignored_outputs: &io,
                    own_state,
                },
            );
            *state_files = Some(c.state_files.iter().cloned().collect());
            if let Some(p) = c.modified_inputs.first() {
                return Err(format!(
                    "it modified its input '{}'",
                    rel_display(&ctx.workspace_root, &root, p)
                ));
            }
            if let Some(why) = c.untraceable.first()
                && needs_trace
            {
                return Err(format!(
                    "its file accesses could not all be observed ({why})"
                ));
            }
            if spec.inputs.auto {
                run.inputs = c
                    .inputs
                    .into_iter()
                    .map(|(p, access)| {
                        let kind = match access {
                            // A stat'ed file is fingerprinted by content: size
                            // and mtime reached the tool (see `InputAccess::Metadata`).
                            trace::InputAccess::ContentRead | trace::InputAccess::Metadata => {
                                cache::InputKind::ContentRead
                            }
                            trace::InputAccess::Listing => cache::InputKind::Listing,
                            trace::InputAccess::Probe { .. }
                            | trace::InputAccess::Symlink { .. } => cache::InputKind::Probe,
                        };
                        (p, kind)
                    })
                    .collect();
            }
            run.emptied_dirs = c.emptied_dirs.into_iter().collect();
            if spec.outputs.auto {
                run.outputs = c
                    .outputs
                    .into_iter()
                    .filter(|(_, k)| *k != trace::OutputKind::Other)
                    .map(|(p, _)| p)
                    .collect();
            }
            Ok(run)
        }
        Some(TraceOutcome::Untraced { reason }) if needs_trace => Err(format!(
            "its file accesses could not be observed ({reason}); declare `input` and `output` globs without `{{\"auto\": true}}` to cache it anyway"
        )),
        _ => Ok(run),
    }
}

fn rel_display(root: &Path, real_root: &Path, p: &Path) -> String {
    p.strip_prefix(real_root)
        .or_else(|_| p.strip_prefix(root))
        .map_or_else(|_| p.display().to_string(), |r| r.display().to_string())
}

fn not_cached(index: usize, spec: &TaskSpec, ctx: &RunContext, why: &str) {
    (ctx.emit)(RunEvent::TaskNotice {
        task: index,
        message: format!("not cached: {why}"),
    });
    ctx.not_cached
        .borrow_mut()
        .push(format!("{} not cached because {why}.", spec.label));
}

async fn store_result(
    index: usize,
    spec: &TaskSpec,
    ctx: &Rc<RunContext>,
    cache: &RunCache,
    fingerprint: Arc<SpawnFingerprint>,
    item_id: &str,
    run: cache::ObservedRun,
) {
    let id = item_id.to_owned();
    let outcome = on_store(cache, spec, ctx, move |store, paths, _env| {
        store.record(&cache::RecordRequest {
            task: &id,
            spawn: &fingerprint,
            paths,
            run: &run,
        })
    })
    .await;
    match outcome {
        Ok(cache::RecordOutcome::Stored(summary)) => {
            if ctx.verbose {
                (ctx.emit)(RunEvent::TaskNotice {
                    task: index,
                    message: format!(
                        "cached: {} inputs, {} outputs",
                        summary.inputs, summary.outputs
                    ),
                });
            }
        }
        Ok(cache::RecordOutcome::NotStored(why)) => not_cached(index, spec, ctx, &why.to_string()),
        Err(e) => not_cached(
            index,
            spec,
            ctx,
            &format!("the cache could not be written ({e})"),
        ),
    }
}

/// Runs `op` on a blocking thread with what every store call of a task
/// needs: the task's paths and a view of vp's full environment under the
/// task's untracked policy (RocksDB and hashing must stay off the loop).
async fn on_store<T: Send + 'static>(
    cache: &RunCache,
    spec: &TaskSpec,
    ctx: &RunContext,
    op: impl FnOnce(&Store, TaskPaths<'_>, &cache::EnvView<'_>) -> T + Send + 'static,
) -> T {
    let (store, policy, env) = (
        Arc::clone(&cache.store),
        spec.env_policy.clone(),
        Arc::clone(&ctx.full_env),
    );
    let (root, pkg, dir) = (
        ctx.workspace_root.clone(),
        spec.package_dir.clone(),
        cache.dir.clone(),
    );
    blocking::unblock(move || {
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

/// Resolves an item's program to a concrete process to start.
fn process_spec(spec: &TaskSpec, item: &CommandItem) -> Result<ProcessSpec, String> {
    let search = spec
        .child_env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let (program, args): (PathBuf, Vec<OsString>) = match item {
        CommandItem::Direct { argv, .. } => {
            let program =
                resolve::find_program(&argv[0], &spec.cwd, &search).map_err(|_searched| {
                    format!(
                        "could not start `{}`: no such program in node_modules/.bin of the package \
                     or its parents, or on PATH\n\
                     (hint: install it with your package manager, or fix the command)",
                        argv[0]
                    )
                })?;
            (program, argv[1..].iter().map(OsString::from).collect())
        }
        CommandItem::Shell { script } => {
            (PathBuf::from("/bin/sh"), vec!["-c".into(), script.into()])
        }
    };
    Ok(ProcessSpec {
        program,
        args,
        cwd: spec.cwd.clone(),
        env: spec.child_env.clone(),
        interactive: spec.interactive,
    })
}
