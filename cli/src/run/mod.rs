//! Executing tasks: the scheduler and the life of one task.
//!
//! `command` is the entry for `vp run`/`vp build`: it resolves the plan into
//! `TaskSpec`s (`command_line`, `env`, `resolve`) and runs them with the
//! `scheduler` on one smol `LocalExecutor`. Each command of a task goes
//! through `decide` → `execute` → `admit` (sequenced by `task`, with the
//! store calls in `store`). Every state change goes out as a
//! `crate::events::RunEvent`; only `crate::report` turns them into text.
//! `dry_run` (`--dry-run`) goes through `decide` and a read-only lookup
//! only, and hands the plan to `crate::report::plan`.

pub(crate) mod admit;
mod ancestry;
pub(crate) mod build;
mod cache_hint;
mod cancel;
pub(crate) mod command;
mod command_line;
mod decide;
mod dry_run;
pub(crate) mod env;
mod execute;
mod lock_use;
mod resolve;
mod run_cache;
pub(crate) mod scheduler;
pub(crate) mod session;
mod spawn;
mod store;
mod task;
mod vcs;

pub(crate) use task::{TaskSpec, item_id};
