//! The contract between the runner and the reporter: everything the user
//! sees about a run is one of these events. The runner never prints.
//!
//! Also here, because code far below a task emits events too: the
//! [`TaskScope`] of the task a future runs for (a task-local set by the
//! scheduler), and the signal that ended the run.

use std::cell::RefCell;
use std::future::Future;
use std::path::PathBuf;
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use crate::bridge::BridgeReport;
use crate::cache::{MissReasons, NotStorable, RelPath, StoreNotice};
use crate::remote::{RemoteError, RemoteMiss, TransferStats, UploadSkipped};

/// Which pipe of a task's processes some output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub(crate) enum OutputStream {
    Stdout,
    Stderr,
}

/// Whether task output is being produced now or replayed from the cache.
/// The reporter strips a replay's escape codes when they do not suit the
/// current output (see `report::Colours`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutputOrigin {
    /// From the task's processes, as they write it.
    Live,
    /// From the stored log of a cache hit.
    Replayed,
}

/// What the cache decided for one command of a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CacheStatus {
    /// Caching is off for this task (a script, `cache: false`, `--no-cache`).
    Disabled,
    /// No stored result matches: the command runs.
    Miss(Miss),
    /// A stored result matches: outputs restored, logs replayed. `remote`:
    /// it was downloaded from the remote cache first.
    Hit { remote: bool },
    /// Caching is on but unavailable for this run (e.g. the store is locked).
    Unavailable(Unavailable),
}

/// Why a command that may be cached runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Miss {
    /// Nothing was ever stored for it.
    FirstRun,
    /// What differs from the stored runs; paths are shown relative to `base`
    /// (the task's package).
    Changed { reasons: MissReasons, base: RelPath },
    /// A stored result matched but its outputs could not be put back.
    RestoreFailed { error: String },
}

/// Why the cache cannot be used in this run, although the task wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unavailable {
    /// Another vp holds the store's lock (its pid, while it is alive).
    Locked { holder: Option<u32> },
    /// The vp that started this one holds it; that outer task caches this
    /// whole nested run (known from `VP_RUN_CACHED_BY`, or assumed when the
    /// variable did not reach this vp).
    HeldByAncestor {
        holder: u32,
        why: crate::cache::OuterCaching,
    },
    /// The store could not be opened.
    OpenFailed { dir: PathBuf, error: String },
    /// The lookup itself failed.
    ReadFailed { error: String },
    /// No task of the run wanted the cache, so it was not opened.
    NotOpened,
}

/// Why a command that ran was not stored. `run::admit` decides it; only the
/// reporter turns it into words (`pkg#task not cached because ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NotCached {
    /// It failed: only successful runs are stored.
    Failed { code: i32 },
    /// The run was interrupted.
    Cancelled,
    /// A tool called `disableCache()`.
    ToolAsked { by: String },
    /// A bridge client sent something vp could not understand.
    BridgeProtocol { first: String, more: usize },
    /// A bridge client speaks no version this vp does.
    BridgeVersion { first: String, more: usize },
    /// Clients were still talking to vp after the task ended.
    LingeringClients { clients: Vec<String> },
    /// The tracer could not be installed, and the task relies on it.
    Untraced { reason: String },
    /// Some accesses could not be decoded, and the task relies on tracing.
    PartlyTraced { why: String },
    /// The task changed a file it had read first (workspace-relative).
    ModifiedInput { path: String },
    /// The task left a file beside the workspace, which a hit could not
    /// restore (absolute; more: how many others).
    WroteOutside { path: PathBuf, more: usize },
    /// The store refused the observed run.
    Store(NotStorable),
    /// Writing the store failed.
    StoreFailed { error: String },
}

/// The header line printed before a command runs or is replayed.
#[derive(Debug, Clone)]
pub(crate) struct CommandHeader {
    /// Working directory relative to the workspace root, `~/`-prefixed, or
    /// empty for the root itself.
    pub(crate) cwd: String,
    pub(crate) command: String,
    pub(crate) status: CacheStatus,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TaskOutcome {
    /// Every command exited 0 (or was replayed from the cache).
    Succeeded {
        cache_hits: usize,
        /// Of those, the ones downloaded from the remote cache.
        remote_hits: usize,
        commands: usize,
        saved: Duration,
    },
    /// A command failed; `exit_code` is what vp exits with.
    Failed { exit_code: i32, failure: Failure },
    /// Not started because an earlier task failed or the run was cancelled.
    Skipped,
    /// Interrupted by Ctrl-C while running.
    Cancelled,
}

/// How a command failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The program is in no `node_modules/.bin` above the package nor on PATH.
    ProgramNotFound { program: String },
    /// `spawn` itself failed.
    CouldNotStart {
        program: PathBuf,
        cwd: PathBuf,
        error: String,
    },
    /// It ran and exited non-zero.
    Exited { command: String, code: i32 },
    /// Waiting for it failed.
    LostTrack { program: PathBuf, error: String },
}

impl Failure {
    /// The exit code vp reports for it: 127 when nothing started, as a
    /// shell does.
    pub(crate) fn exit_code(&self) -> i32 {
        match self {
            Self::ProgramNotFound { .. } | Self::CouldNotStart { .. } => 127,
            Self::Exited { code, .. } => *code,
            Self::LostTrack { .. } => 1,
        }
    }
}

/// Something about one task that is not its output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TaskNotice {
    /// Why a successful run was not stored.
    NotCached(NotCached),
    /// The bridge could not be set up: tools run without it.
    BridgeUnavailable { error: String },
    /// With `-v`: what the task's tools told vp.
    BridgeFacts(Box<BridgeReport>),
    /// With `-v`: what was stored (`new_bytes`: compressed bytes of
    /// output content the store did not hold yet).
    Stored {
        inputs: usize,
        outputs: usize,
        new_bytes: u64,
    },
    /// With `-v`: the result came from the remote cache (bytes downloaded).
    Downloaded { bytes: u64 },
    /// With `-v`: where a traced miss's time went.
    MissCost(MissCost),
    /// The remote cache had nothing usable for a command (an artifact was
    /// rejected, the key is not portable, ...); shown when it matters.
    RemoteMiss(RemoteMiss),
}

/// Where the time of a traced miss went: the command itself (traced), and
/// what vp did after it exited before the result was stored or refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MissCost {
    /// From the spawn to the main process's exit, traced.
    pub(crate) ran: Duration,
    /// Waiting for the rest of the traced tree, then resolving every
    /// recorded path (symlinks, kinds).
    pub(crate) resolved: Duration,
    /// Sorting the accesses into inputs and outputs.
    pub(crate) classified: Duration,
    /// Fingerprinting the inputs, archiving the outputs, writing the entry.
    pub(crate) stored: Duration,
    /// How the command's file system calls reached vp.
    pub(crate) calls: crate::trace::CallCounts,
    /// Files hashed while the command ran (`cache::prehash`).
    pub(crate) hashed_while_running: usize,
}

/// Something about the whole run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RunNotice {
    /// While opening the store (waiting for its lock, repairing it).
    Store(StoreNotice),
    /// The run goes on without the cache.
    CacheUnavailable(Unavailable),
    /// The Node addon could not be written: tools cannot talk to vp.
    AddonUnavailable { error: String },
    /// The in-process tracer library could not be written: traced commands
    /// are notified on every file access (complete, slower).
    InProcessTracerUnavailable { error: String },
    /// A signal arrived: running tasks were told to stop.
    Interrupted { signal: i32 },
    /// The remote cache failed once; the run stops asking it.
    RemoteUnavailable(RemoteError),
    /// With `-v`: a task's result was uploaded (bytes sent), or why not.
    Uploaded {
        task: String,
        result: Result<u64, UploadSkipped>,
    },
    /// Uploads still running when vp gave up waiting for them.
    UploadsAbandoned { count: usize },
    /// With `-v`: what the run exchanged with the remote cache.
    RemoteTransfers(TransferStats),
    /// Every command ran uncached only because scripts are uncached by
    /// default, and nothing vp saw rules caching out: `--cache` would store
    /// them (`run::cache_hint`). Shown on a terminal only.
    CacheSuggested { commands: usize },
}

/// A task's state change, or a notice about the run.
#[derive(Debug, Clone)]
pub(crate) enum RunEvent {
    TaskStarted {
        task: usize,
    },
    CommandStarted {
        task: usize,
        header: CommandHeader,
    },
    TaskOutput {
        task: usize,
        stream: OutputStream,
        bytes: Vec<u8>,
        origin: OutputOrigin,
    },
    TaskNotice {
        task: usize,
        notice: TaskNotice,
    },
    /// A command's main process has exited, but vp is still waiting for
    /// processes it started (a daemon, a background job) before the command
    /// counts as finished. Sent once per reason, about a second in.
    TaskWaiting {
        task: usize,
        waiting: Waiting,
    },
    TaskFinished {
        task: usize,
        outcome: TaskOutcome,
        duration: Duration,
    },
    Notice(RunNotice),
    RunFinished {
        stats: RunStats,
    },
}

/// What `vp run --watch` says between its batches of tasks (`crate::watch`):
/// what it watches, which edit re-runs what. Only `report::watch` turns
/// these into lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WatchEvent {
    /// A cycle is over; vp waits for an edit to one of `paths` (the files,
    /// directories and missing paths its `tasks` were seen to read, and the
    /// workspace's config files), through `dirs` directory watches.
    Watching {
        paths: usize,
        tasks: usize,
        dirs: usize,
        /// Directories left unwatched: past the bound, or refused by the OS.
        left_out: usize,
    },
    /// With `-v`: a task whose reads are not known, watched by its package
    /// directory instead.
    WatchingPackage { task: String, why: Unobserved },
    /// A task that no edit re-runs.
    Pinned { task: String, why: PinReason },
    /// Edits that re-run `tasks` (and what depends on them); `path` is the
    /// first, workspace-relative, `more` how many others.
    Changed {
        path: String,
        more: usize,
        tasks: Vec<String>,
    },
    /// With `-v`: edits that re-run nothing: no task was seen to read or
    /// write them (a task no edit re-runs reads nothing, as far as watching
    /// goes).
    Ignored { path: String, more: usize },
    /// A config file changed: the run is planned again.
    Replanning { path: String },
    /// Planning again failed: vp keeps watching and tries after the next edit.
    PlanFailed { error: String },
    /// The file watcher reported an error (events may have been lost).
    WatcherFailed { error: String },
}

/// Why vp does not know what a task read, so watches its package directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unobserved {
    /// Its cache is off (a script, `cache: false`, `--no-cache`): it is not traced.
    CacheOff,
    /// The cache could not be used in this run.
    CacheUnavailable,
    /// It ran but its run was not stored (the summary says why).
    NotStored,
    /// It failed, was cancelled or did not start.
    DidNotSucceed,
}

/// Why watch mode never re-runs a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PinReason {
    /// `"persistent": true`: started once, left running.
    Persistent,
    /// A tool of it called `disableCache()`.
    ToolDisabledCache { by: String },
}

/// How long after a command's main process exited vp waits silently for
/// what that process left behind (pipes, traced processes), before it says
/// what it is waiting for.
pub(crate) const WAIT_NOTICE_AFTER: Duration = Duration::from_secs(1);

/// In a cancelled run, how long vp still waits for leftovers outside the
/// task's process group (which the forwarded signal did not reach) once the
/// group itself is empty. Nothing of a cancelled run is stored.
pub(crate) const CANCELLED_GRACE: Duration = Duration::from_millis(500);

/// How often such a wait checks the clock and the cancel flag.
pub(crate) const WAIT_TICK: Duration = Duration::from_millis(100);

/// What vp waits for after a command's main process exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Waiting {
    pub(crate) what: WaitingFor,
    /// The processes found holding it up; empty when vp could not tell
    /// which (another user's process, a restricted `/proc`).
    pub(crate) processes: Vec<LeftRunning>,
}

/// Why a command is not finished although its main process exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitingFor {
    /// They hold the write end of the task's stdout/stderr pipes: vp reads
    /// until every copy is closed, so that no output is lost.
    OutputPipes,
    /// They are still running under the file-access tracer: a traced run is
    /// complete (and may be stored) only once every process is gone.
    TracedProcesses,
}

/// A process a task started that is still running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeftRunning {
    pub(crate) pid: u32,
    /// Its command line, shortened for one line.
    pub(crate) command: String,
}

impl LeftRunning {
    /// A snapshot of `pid` from `/proc`, or `None` when it is gone (or a
    /// zombie: it holds nothing any more).
    pub(crate) fn of(pid: u32) -> Option<LeftRunning> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // `pid (comm) S ...`: the state follows the last `)`.
        let after_comm = &stat[stat.rfind(')')? + 1..];
        if after_comm.trim_start().starts_with(['Z', 'X']) {
            return None;
        }
        let comm = stat
            .find('(')
            .map(|open| stat[open + 1..stat.rfind(')').unwrap_or(open + 1)].to_owned())
            .unwrap_or_default();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let words: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|w| !w.is_empty())
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect();
        let text = if words.is_empty() {
            comm
        } else {
            words.join(" ")
        };
        Some(LeftRunning {
            pid,
            command: shorten(&text, 60),
        })
    }
}

/// One line of at most `max` characters, control characters replaced.
fn shorten(text: &str, max: usize) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if clean.chars().count() <= max {
        clean
    } else {
        let mut cut: String = clean.chars().take(max - 1).collect();
        cut.push('…');
        cut
    }
}

/// The task a future runs for, so code far below `task.rs` (waiting for a
/// process's pipes, for the traced tree) can emit [`RunEvent`]s about it and
/// see whether the run was cancelled without every call passing them down.
/// A task-local: the scheduler runs each task's future [`in_scope`].
pub(crate) struct TaskScope {
    pub(crate) task: usize,
    pub(crate) emit: Rc<dyn Fn(RunEvent)>,
    pub(crate) cancelled: Rc<dyn Fn() -> bool>,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<TaskScope>>> = const { RefCell::new(None) };
}

impl TaskScope {
    /// The scope of the task whose future is being polled, if any (none in
    /// `vp trace` and in unit tests).
    pub(crate) fn current() -> Option<Rc<TaskScope>> {
        CURRENT.with(|c| c.borrow().clone())
    }

    pub(crate) fn emit(&self, event: RunEvent) {
        (self.emit)(event);
    }

    pub(crate) fn cancelled(&self) -> bool {
        (self.cancelled)()
    }
}

/// Runs `fut` with `scope` as [`TaskScope::current`] during each of its polls.
pub(crate) async fn in_scope<F: Future>(scope: Rc<TaskScope>, fut: F) -> F::Output {
    /// Restores the outer scope even if the poll panics.
    struct Restore(Option<Rc<TaskScope>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let outer = self.0.take();
            CURRENT.with(|c| *c.borrow_mut() = outer);
        }
    }
    let mut fut = pin!(fut);
    std::future::poll_fn(|cx| -> Poll<F::Output> {
        let outer = CURRENT.with(|c| c.borrow_mut().replace(Rc::clone(&scope)));
        let _restore = Restore(outer);
        fut.as_mut().poll(cx)
    })
    .await
}

/// Totals of a finished run, used for the summary line and the exit code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RunStats {
    pub(crate) tasks: usize,
    pub(crate) succeeded: usize,
    pub(crate) failed: usize,
    pub(crate) skipped: usize,
    pub(crate) cancelled: bool,
    /// The signal that cancelled the run (SIGINT, SIGTERM or SIGHUP).
    pub(crate) signal: Option<i32>,
    pub(crate) cache_hits: usize,
    /// Of the hits, the ones downloaded from the remote cache.
    pub(crate) remote_hits: usize,
    pub(crate) cached_commands: usize,
    pub(crate) saved: Duration,
    pub(crate) duration: Duration,
    /// The exit code of the first failure, if any.
    pub(crate) first_failure: Option<(String, i32)>,
    /// Each task (by label) whose successful run was not stored, and why.
    pub(crate) not_cached: Vec<(String, NotCached)>,
}

impl RunStats {
    /// What vp exits with after this run: 128 + the signal that cancelled
    /// it, else the first failure's code (1..=255), else 0.
    pub(crate) fn exit_code(&self) -> u8 {
        if self.cancelled {
            let signal = self.signal.unwrap_or(libc::SIGINT);
            u8::try_from(128 + signal).unwrap_or(1)
        } else if let Some((_, code)) = &self.first_failure {
            u8::try_from((*code).clamp(1, 255)).unwrap_or(1)
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_code_follows_signal_then_failure() {
        let mut s = RunStats::default();
        assert_eq!(s.exit_code(), 0);
        s.first_failure = Some(("a#b".into(), 300));
        assert_eq!(s.exit_code(), 255);
        s.first_failure = Some(("a#b".into(), -1));
        assert_eq!(s.exit_code(), 1);
        s.cancelled = true;
        s.signal = Some(libc::SIGTERM);
        assert_eq!(s.exit_code(), 143);
    }

    #[test]
    fn a_scope_is_current_only_inside_its_future() {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let scope = |task| {
            let seen = Rc::clone(&seen);
            Rc::new(TaskScope {
                task,
                emit: Rc::new(move |e| seen.borrow_mut().push(format!("{e:?}"))),
                cancelled: Rc::new(|| false),
            })
        };
        let ex = smol::LocalExecutor::new();
        let probe = || TaskScope::current().map(|s| s.task);
        let (a, b) = smol::block_on(ex.run(async {
            let a = ex.spawn(in_scope(scope(1), async move {
                let before = probe();
                smol::future::yield_now().await;
                (before, probe())
            }));
            let b = ex.spawn(in_scope(scope(2), async move { probe() }));
            (a.await, b.await)
        }));
        assert_eq!(a, (Some(1), Some(1)));
        assert_eq!(b, Some(2));
        assert_eq!(probe(), None);
    }

    #[test]
    fn a_process_snapshot_names_its_command() {
        let me = LeftRunning::of(std::process::id()).expect("this process is alive");
        assert!(!me.command.is_empty());
        assert!(me.command.chars().count() <= 60, "{}", me.command);
        assert_eq!(LeftRunning::of(u32::MAX), None);
        assert_eq!(shorten("abcdef", 4), "abc…");
    }
}
