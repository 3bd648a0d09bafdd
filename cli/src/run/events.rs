//! The contract between the runner and the reporter: everything the user
//! sees about a run is one of these events. The runner never prints.

use std::time::Duration;

/// Which pipe of a task's processes some output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub(crate) enum OutputStream {
    Stdout,
    Stderr,
}

/// What the cache decided for one command of a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CacheStatus {
    /// Caching is off for this task (a script, `cache: false`, `--no-cache`).
    Disabled,
    /// The command has no previous result: it runs.
    Miss { reasons: Vec<String> },
    /// A stored result matches: outputs restored, logs replayed.
    Hit,
    /// Caching is on but unavailable for this run (e.g. the store is locked).
    Unavailable { reason: String },
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
    Succeeded { cache_hits: usize, commands: usize, saved: Duration },
    /// A command failed; `exit_code` is what vp exits with.
    Failed { exit_code: i32, message: String },
    /// Not started because an earlier task failed or the run was cancelled.
    Skipped,
    /// Interrupted by Ctrl-C while running.
    Cancelled,
}

/// A task's state change, or a notice about the run.
#[derive(Debug, Clone)]
pub(crate) enum RunEvent {
    TaskStarted { task: usize },
    CommandStarted { task: usize, header: CommandHeader },
    TaskOutput { task: usize, stream: OutputStream, bytes: Vec<u8> },
    /// Something the user should know about a task that is not its output
    /// (why it was not cached, what its tools reported with `-v`).
    TaskNotice { task: usize, message: String },
    TaskFinished { task: usize, outcome: TaskOutcome, duration: Duration },
    /// A run-level notice (cancellation, a skipped cache).
    Notice { message: String },
    RunFinished { stats: RunStats },
}

/// Totals of a finished run, used for the summary line and the exit code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RunStats {
    pub(crate) tasks: usize,
    pub(crate) succeeded: usize,
    pub(crate) failed: usize,
    pub(crate) skipped: usize,
    pub(crate) cancelled: bool,
    pub(crate) cache_hits: usize,
    pub(crate) cached_commands: usize,
    pub(crate) saved: Duration,
    pub(crate) duration: Duration,
    /// The exit code of the first failure, if any.
    pub(crate) first_failure: Option<(String, i32)>,
    /// Per-task lines explaining why a result was not stored.
    pub(crate) not_cached: Vec<String>,
}
