//! From a loaded workspace and a query to an `ExecutionPlan`: which tasks run
//! and which must finish before which.
//!
//! `package_graph` orders packages by their workspace dependencies, `filter`
//! evaluates pnpm selectors, `task_graph` resolves tasks, `dependsOn` edges and
//! cycles, `script_hooks` finds npm's `pre`/`post` scripts of a script. The
//! run module consumes the plan; nothing here touches processes.

mod filter;
mod package_graph;
mod script_hooks;
mod task_graph;

pub(crate) use filter::select_packages;
pub(crate) use package_graph::PackageGraph;
pub(crate) use script_hooks::HookScript;
#[cfg(test)]
pub(crate) use script_hooks::ScriptHooks;
pub(crate) use task_graph::{
    ExecutionPlan, PlannedTask, TaskKind, TaskQuery, TaskSelection, available_tasks, build_plan,
};
