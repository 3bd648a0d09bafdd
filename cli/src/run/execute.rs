//! The second stage of a command: run it and watch.
//!
//! Spawns the process with the bridge (always: tools may ask for env or
//! disable caching even when nothing is stored) and, when the result may be
//! stored, under the tracer; streams its output to the reporter as it comes;
//! and produces one [`Observation`]. It decides nothing about the cache:
//! that is `admit`'s job.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::spawn::{self, ProcessSpec};
use super::task::{RunContext, TaskSpec};
use crate::bridge::{BridgeContext, BridgeReport, BridgeSession};
use crate::cache;
use crate::events::{Failure, OutputOrigin, OutputStream, RunEvent, TaskNotice};
use crate::trace::{self, ChildStdio, TraceOutcome};

/// Everything one finished command did, as far as vp could see.
#[derive(Debug)]
pub(crate) struct Observation {
    pub(crate) exit_code: i32,
    /// The run was interrupted by a signal while this command ran.
    pub(crate) cancelled: bool,
    /// stdout and stderr in the order produced (empty unless recorded).
    pub(crate) log: Vec<cache::LogChunk>,
    /// What its tools said; `None` when the bridge could not be set up.
    pub(crate) bridge: Option<BridgeReport>,
    pub(crate) trace: Traced,
    /// Taken right before the spawn (`cache::Timestamp::task_start`).
    pub(crate) started: cache::Timestamp,
    pub(crate) duration: Duration,
    /// How long vp took after the main process exited (traced runs only).
    pub(crate) after_exit: Option<AfterExit>,
    /// The files hashed while it ran, for storing (`cache::prehash`).
    pub(crate) prehashed: Arc<cache::prehash::Prehashed>,
    /// Stamps of the files the tracer looked at once the task was over
    /// (empty when untraced).
    pub(crate) end_stamps: Arc<trace::EndStamps>,
}

/// What a traced command cost vp after its main process exited.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AfterExit {
    /// The rest of the tree, then path resolution (`Trace::finish`).
    pub(crate) resolved: Duration,
    pub(crate) classified: Duration,
    /// How its file system calls reached vp.
    pub(crate) calls: trace::CallCounts,
}

/// What the tracer saw of the command.
#[derive(Debug)]
pub(crate) enum Traced {
    /// It ran untraced because nothing of it is stored.
    Off,
    /// The tracer could not be installed.
    Untraced { reason: String },
    /// The accesses, classified into inputs and outputs.
    Classified(Box<trace::AccessClassification>),
}

/// How to observe a command whose result may be stored.
pub(crate) struct Recording<'a> {
    /// vp's cache directory: never an input or output.
    pub(crate) cache_dir: &'a Path,
    /// Files known as the task's own state (see `cache::store::state`).
    pub(crate) own_state: &'a BTreeSet<PathBuf>,
}

/// Why a command did not run to its end.
pub(crate) enum NotRun {
    Failed(Failure),
    /// The run was cancelled before the command started (a Ctrl-C while
    /// vp waited for another vp's lock): it was not started.
    Cancelled,
}

impl From<Failure> for NotRun {
    fn from(failure: Failure) -> Self {
        NotRun::Failed(failure)
    }
}

/// Runs `process` for task `index`; `recording` traces it and keeps its log.
pub(crate) async fn execute(
    index: usize,
    spec: &TaskSpec,
    process: &ProcessSpec,
    recording: Option<Recording<'_>>,
    ctx: &Rc<RunContext>,
    ex: &Rc<smol::LocalExecutor<'static>>,
) -> Result<Observation, NotRun> {
    // A command that is not cached holds no lock; one that might be held
    // for a cached command before it is let go first (`lock_use.rs`).
    let _uncached = if recording.is_some() {
        super::store::prepare_for_command(ctx).await;
        None
    } else {
        let store = ctx.cache.as_ref().ok().map(|c| &c.store);
        Some(ctx.lock_use.uncached_command(store).await)
    };
    let mut cmd = process.command();
    // Here, and not where each task's env is filtered, because every command
    // of `vp run` and `vp build` passes here, after its cache key was taken.
    // Tools write to pipes, so without this none colours on a terminal.
    // FORCE_COLOR is on the untracked pass-through list: its value is never
    // part of the key, so a run on a terminal and a piped one share entries.
    if let Some((name, value)) = ctx.colours.child_env() {
        cmd.env(name, value);
    }
    // A nested `vp run` in a cached command never waits for this vp's lock
    // (held until the command is over); in any other command it does, like
    // for any vp (`cache::CachedBy`). Never part of the key: `VP_*` is
    // passed through untracked.
    cmd.env(
        crate::cache::CachedBy::VAR,
        ctx.cached_by.for_command(recording.is_some()),
    );
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
                notice: TaskNotice::BridgeUnavailable {
                    error: e.to_string(),
                },
            });
            None
        }
    };
    if let Some(b) = bridge.as_mut() {
        b.configure_child(&mut cmd);
    }
    let started = blocking::unblock(cache::Timestamp::task_start).await;
    // Cancelled while this task waited for the store's lock or the clock:
    // the scheduler has signalled the commands that were running then, and
    // no new one starts.
    if ctx.cancelled.get() {
        return Err(NotRun::Cancelled);
    }
    let t0 = Instant::now();
    // Files the task reads are hashed while it runs (`cache::prehash`),
    // so that storing the miss finds most of them done.
    let mut prehasher = None;
    let spawned = if recording.is_some() {
        let stdio = ChildStdio {
            stdin: std::process::Stdio::null(),
            stdout: std::process::Stdio::piped(),
            stderr: std::process::Stdio::piped(),
        };
        let cache_dir = recording
            .as_ref()
            .map_or(ctx.workspace_root.as_path(), |r| r.cache_dir);
        let (reads, hasher) = cache::prehash::start(ctx.workspace_root.clone(), cache_dir);
        prehasher = Some(hasher);
        let in_process = ctx
            .tracer_library
            .as_deref()
            .map(|library| trace::InProcess {
                library,
                // `ProcessSpec::command` clears the environment and sets the
                // task's own.
                inherits_env: false,
            });
        trace::spawn_traced(ex, cmd, stdio, in_process, Some(reads))
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
        // Off the event loop, like the traced spawn: `spawn` waits until the
        // child has exec'd, seen as end of file on a close-on-exec socket.
        // A traced child forked meanwhile holds a copy of that socket until
        // its own `execve` is answered by its supervisor; the loop must not
        // wait for that (when supervisors ran on the loop this deadlocked 4
        // runs in 10 of a traced and an untraced task started together).
        blocking::unblock(move || cmd.spawn())
            .await
            .map(|c| (c, None))
            .map_err(|e| e.to_string())
    };
    let (child, tracer) = spawned.map_err(|error| Failure::CouldNotStart {
        program: process.program.clone(),
        cwd: process.cwd.clone(),
        error,
    })?;
    let pgid = i32::try_from(child.id()).unwrap_or(0);
    if process.interactive {
        ctx.children.add_interactive(pgid);
    } else {
        ctx.children.add(pgid);
    }
    // Cancelled while `spawn` ran: the signal went to the commands
    // registered then, not to this one.
    if ctx.cancelled.get() {
        ctx.children.signal_late(pgid, process.interactive);
    }
    let log: RefCell<Vec<cache::LogChunk>> = RefCell::new(Vec::new());
    let keep_log = recording.is_some();
    let on_output = |stream, bytes: Vec<u8>| {
        if keep_log {
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
            origin: OutputOrigin::Live,
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
    if process.interactive {
        ctx.children.remove_interactive(pgid);
    } else {
        ctx.children.remove(pgid);
    }
    let duration = t0.elapsed();
    let trace_outcome = match tracer {
        Some(t) => Some(t.finish().await),
        None => None,
    };
    let resolved = t0.elapsed().saturating_sub(duration);
    let exit_code = match status {
        Ok(s) => spawn::exit_code(s),
        Err(e) => {
            return Err(NotRun::Failed(Failure::LostTrack {
                program: process.program.clone(),
                error: e.to_string(),
            }));
        }
    };
    let mut end_stamps = Arc::default();
    let (trace, after_exit) = match (trace_outcome, recording) {
        (Some(TraceOutcome::Traced(mut access_log)), Some(rec)) => {
            // Off the loop: tens of thousands of accesses take a while, and
            // the other tasks' output must keep flowing meanwhile.
            let scope = ClassifyScope {
                workspace_root: ctx.workspace_root.clone(),
                package_dir: spec.package_dir.clone(),
                input_globs: spec.inputs.globs.clone(),
                output_globs: spec.outputs.globs.clone(),
                cache_dir: rec.cache_dir.to_path_buf(),
                own_state: rec.own_state.clone(),
                ignored_inputs: report.as_ref().map(|r| r.ignored_inputs.clone()),
                ignored_outputs: report.as_ref().map(|r| r.ignored_outputs.clone()),
            };
            let classifying = Instant::now();
            let calls = access_log.counts;
            let (classified, looked) = blocking::unblock(move || {
                let classified = classify(&access_log, &scope);
                (classified, std::mem::take(&mut access_log.end_state.looked))
            })
            .await;
            end_stamps = Arc::new(looked);
            let after_exit = AfterExit {
                resolved,
                classified: classifying.elapsed(),
                calls,
            };
            (Traced::Classified(Box::new(classified)), Some(after_exit))
        }
        (Some(TraceOutcome::Untraced { reason }), _) => (Traced::Untraced { reason }, None),
        _ => (Traced::Off, None),
    };
    // Stopped only now: files the task read last are still being hashed
    // when it exits, and the hashing thread, of the lowest priority, gets
    // a core while classifying (one thread) leaves one idle. The `lstat`s
    // of the end state, on every core, come first.
    let prehashed = match prehasher {
        Some(hasher) => Arc::new(blocking::unblock(move || hasher.finish()).await),
        None => Arc::default(),
    };
    Ok(Observation {
        exit_code,
        cancelled: ctx.cancelled.get(),
        log: log.into_inner(),
        bridge: report,
        trace,
        started,
        duration,
        after_exit,
        prehashed,
        end_stamps,
    })
}

/// What classifying a command's accesses needs, owned so that it can run
/// on a blocking thread.
struct ClassifyScope {
    workspace_root: PathBuf,
    package_dir: PathBuf,
    /// The task's `input` and `output` globs: their `!` patterns drop
    /// what the task did there.
    input_globs: Vec<String>,
    output_globs: Vec<String>,
    /// vp's cache directory: never an input or output.
    cache_dir: PathBuf,
    own_state: BTreeSet<PathBuf>,
    /// What the tools asked to ignore (`None` without a bridge).
    ignored_inputs: Option<BTreeSet<PathBuf>>,
    ignored_outputs: Option<BTreeSet<PathBuf>>,
}

/// Sorts the traced accesses into inputs and outputs, leaving out vp's
/// cache, what the tools asked to ignore, what the task's `!` patterns
/// exclude and the caches of tools vp knows. Blocking (resolves paths).
fn classify(access_log: &trace::AccessLog, scope: &ClassifyScope) -> trace::AccessClassification {
    let root = real_path(&scope.workspace_root);
    let cache_dir = real_path(&scope.cache_dir);
    let package_dir = real_path(&scope.package_dir);
    let real = |ps: &Option<BTreeSet<PathBuf>>| -> Vec<PathBuf> {
        ps.iter().flatten().map(|p| real_path(p)).collect()
    };
    let ignored_inputs = real(&scope.ignored_inputs);
    let ignored_outputs = real(&scope.ignored_outputs);
    // A glob that does not compile was refused when the configuration was
    // read; storing reports it again, so here it only excludes nothing.
    let input_globs = cache::TaskGlobs::new(&scope.input_globs).ok();
    let output_globs = cache::TaskGlobs::new(&scope.output_globs).ok();
    fn exclusions<'a>(
        package_dir: &'a Path,
        globs: &'a Option<cache::TaskGlobs>,
    ) -> Option<cache::Exclusions<'a>> {
        cache::Exclusions::of(package_dir, globs.as_ref()?)
    }
    trace::classify(
        access_log,
        &trace::ClassifyOptions {
            root: &root,
            excluded_dirs: std::slice::from_ref(&cache_dir),
            ignored_inputs: &ignored_inputs,
            ignored_outputs: &ignored_outputs,
            excluded_inputs: exclusions(&package_dir, &input_globs),
            excluded_outputs: exclusions(&package_dir, &output_globs),
            tool_caches: trace::ToolCaches::Ignored,
            own_state: &scope.own_state,
        },
    )
}

/// `p` with symlinks resolved, as the tracer reports paths (or `p` itself
/// when it does not exist).
pub(crate) fn real_path(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
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
