//! Executing tasks: the scheduler and the life of one task.
//!
//! `command` is the entry for `vp run`/`vp build`: it resolves the plan into
//! `TaskSpec`s (`command_line`, `env`, `resolve`), runs them with the
//! `scheduler` on one smol `LocalExecutor`, and returns the exit code. Every
//! state change goes out as an `events::RunEvent`; the report module prints.

pub(crate) mod build;
pub(crate) mod command;
mod command_line;
pub(crate) mod env;
pub(crate) mod events;
mod resolve;
mod scheduler;
mod spawn;
mod task;
mod vcs;
