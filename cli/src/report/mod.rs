//! Turning run events into what the user reads.
//!
//! `Reporter` consumes `RunEvent`s (from `crate::events`, which the run
//! module sends) and writes them in the chosen `--log` mode to injectable
//! writers, so tests can capture the exact text. `format` holds the shared
//! text pieces (header grammar, durations), `reasons` the words for every
//! typed reason, `bridge_facts` what `-v` says about a task's tools, and
//! `listing` the output of the commands that print data (`vp run` without
//! a task, `--last-details`), `plan` the `--dry-run` plan, `json` the
//! machine-readable reports (`--json`, `last-run.json`), `colour` the run's
//! colour decisions, `ansi` the escape-sequence stripper and `watch` the
//! status lines of `vp run --watch`. Nothing here depends on the run module
//! or on clap.

mod ansi;
mod bridge_facts;
mod colour;
mod format;
pub(crate) mod json;
pub(crate) mod listing;
pub(crate) mod plan;
mod reasons;
mod reporter;
pub(crate) mod watch;

pub(crate) use colour::Colours;
pub(crate) use reporter::Reporter;

/// How task output is laid out (`--log`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogMode {
    /// Children write straight to the terminal as they run.
    Interleaved,
    /// Every line is prefixed with `[pkg#task]`.
    Labeled,
    /// Each task's output is printed as one block when it ends.
    Grouped,
}

/// A warning from planning a run (a `--filter` that matched nothing), shown
/// before anything runs and before planning can fail.
pub(crate) fn planning_warning(warning: &str) {
    eprintln!("warning: {warning}");
}
