//! Turning run events into what the user reads.
//!
//! `Reporter` consumes `RunEvent`s (from the run module) and writes them in
//! the chosen `--log` mode to injectable writers, so tests can capture the
//! exact text. `format` holds the shared text pieces (header grammar,
//! durations, the summary line).

mod format;
mod reporter;

pub(crate) use format::{format_duration, header_line};
pub(crate) use reporter::Reporter;
