//! `vp run` and `vp build`: from arguments to an exit code (or, with
//! `--dry-run`, to the plan: `dry_run`).

use std::ffi::OsString;
use std::path::Path;
use std::rc::Rc;

use anyhow::Context;

use super::ancestry;
use super::scheduler::SchedulerOptions;
use super::session::{RunSession, task_infos};
use super::task::TaskSpec;
use super::{
    command_line,
    env::{EnvPolicy, Framework},
    resolve,
};
use crate::args::{ExecOptions, RunArgs};
use crate::cache::{CacheSettings, GlobConfig};
use crate::events::RunEvent;
use crate::graph::{self, ExecutionPlan, PackageGraph, TaskKind, TaskQuery, TaskSelection};
use crate::report::Reporter;
use crate::report::listing::{self, ListedPackage, ListedTask};
use crate::workspace::GlobEntry;
use crate::workspace::Workspace;

pub(crate) fn run(args: RunArgs) -> anyhow::Result<u8> {
    let cwd = std::env::current_dir().context("cannot determine the current directory")?;
    let ws = Workspace::load(&cwd)?;
    if args.last_details {
        let settings =
            CacheSettings::resolve(args.exec.cache_dir.as_deref(), None, &ws.root, &cwd, |k| {
                std::env::var(k).ok()
            })?;
        let home = crate::cache::CacheDir::find(&settings.dir).ok().flatten();
        if args.exec.json {
            let json = home.and_then(|h| std::fs::read_to_string(h.last_run_json()).ok());
            let Some(json) = json else {
                anyhow::bail!(
                    "no previous run recorded as JSON in `{}`\n(hint: run a task first; runs of a vp without `--json` support recorded only text)",
                    settings.dir.display()
                );
            };
            // A closed stdout (`| head`) is not an error of vp's.
            let _ = listing::last_details(&mut std::io::stdout(), Some(&json), &settings.dir);
            return Ok(0);
        }
        let text = home.and_then(|h| std::fs::read_to_string(h.last_run()).ok());
        // A closed stdout (`| head`) is not an error of vp's.
        let _ = listing::last_details(&mut std::io::stdout(), text.as_deref(), &settings.dir);
        return Ok(0);
    }
    if args.exec.dry_run && args.task.is_none() {
        anyhow::bail!(
            "`--dry-run` shows what running a task would do, but no task was named\n(hint: `vp run --dry-run <task>`; `vp run` alone lists the tasks)"
        );
    }
    if args.watch && args.task.is_none() {
        anyhow::bail!(
            "`--watch` re-runs a task when what it read changes, but no task was named\n(hint: `vp run --watch <task>`; `vp run` alone lists the tasks)"
        );
    }
    let Some(task) = args.task.as_deref() else {
        let _ = listing::task_list(&mut std::io::stdout(), &task_list(&ws, &cwd));
        return Ok(0);
    };

    let opts = SchedulerOptions {
        concurrency: usize::try_from(args.concurrency_limit).unwrap_or(usize::MAX),
        parallel: args.parallel,
    };
    if args.watch {
        return crate::watch::watch(&args, task, &opts);
    }
    let planned = plan(&ws, &args, task, &cwd)?;
    execute_specs(&ws, planned.specs, &planned.deps, &args.exec, &opts)
}

/// A run's tasks, resolved: what the scheduler runs.
pub(crate) struct Planned {
    /// In a topological order: every task comes after its `deps`.
    pub(crate) specs: Vec<TaskSpec>,
    pub(crate) deps: Vec<Vec<usize>>,
    /// Per task: `"persistent": true` (started once in watch mode).
    pub(crate) persistent: Vec<bool>,
}

/// Plans `task` as `args` select it, from `cwd` in `ws`, into `TaskSpec`s.
pub(crate) fn plan(
    ws: &Workspace,
    args: &RunArgs,
    task: &str,
    cwd: &Path,
) -> anyhow::Result<Planned> {
    let pkg_graph = PackageGraph::new(ws);
    // With `--filter`, `-r` changes nothing (as with pnpm): the filter
    // selects among every package, never all of them despite it.
    let selection = if !args.filter.is_empty() {
        let (set, warnings) = graph::select_packages(ws, &pkg_graph, &args.filter, cwd)?;
        // Shown at once: planning may still fail, and the warning explains why.
        for w in &warnings {
            crate::report::planning_warning(w);
        }
        TaskSelection::Filtered(set)
    } else if args.recursive {
        TaskSelection::Recursive
    } else if args.transitive {
        TaskSelection::Transitive
    } else if args.workspace_root {
        TaskSelection::WorkspaceRoot
    } else {
        TaskSelection::Current
    };
    let plan = graph::build_plan(
        ws,
        &pkg_graph,
        &TaskQuery {
            task,
            selection,
            cwd,
        },
    )?;
    let specs = task_specs(ws, &plan, &args.extra, &args.exec)?;
    Ok(Planned {
        specs,
        deps: plan.tasks.iter().map(|t| t.deps.clone()).collect(),
        persistent: plan
            .tasks
            .iter()
            .map(|t| t.def.persistent.unwrap_or(false))
            .collect(),
    })
}

fn task_specs(
    ws: &Workspace,
    plan: &ExecutionPlan,
    extra: &[String],
    exec: &ExecOptions,
) -> anyhow::Result<Vec<TaskSpec>> {
    let full_env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let root_cache_setting = ws.packages[0].task_config.as_ref().and_then(|c| c.cache);
    let root_cache_set = root_cache_setting.is_some();
    let root_cache = root_cache_setting.map_or((false, true), |c| c.kinds());
    let single = plan.tasks.len() == 1;
    let inherited_ancestry = std::env::var_os(ancestry::VAR);
    if let Some(label) = ancestry::already_running(
        inherited_ancestry.as_deref(),
        &ws.root,
        plan.tasks.iter().map(|t| t.label.as_str()),
    ) {
        anyhow::bail!(
            "task `{label}` would run itself: a vp that started this one is running it already, \
             and its command runs vp again, which selects `{label}` again\n(hint: a root \
             script like `vp run -r build` should not be selected by the run it starts: `-r` \
             leaves the workspace root out; check the command of `{label}` and the filters \
             its vp run uses)"
        );
    }
    let mut specs = Vec::with_capacity(plan.tasks.len());
    for (i, t) in plan.tasks.iter().enumerate() {
        let pkg = &ws.packages[t.pkg];
        // Extra args go to the tasks the user named, not to their dependencies.
        let is_target = !plan.tasks.iter().any(|other| other.deps.contains(&i)) || single;
        let items = task_items(t, if is_target { extra } else { &[] })?;
        let cwd = match &t.def.cwd {
            Some(rel) => pkg.dir.join(rel),
            None => pkg.dir.clone(),
        };
        if !cwd.is_dir() {
            anyhow::bail!(
                "task `{}`: its working directory `{}` does not exist\n(hint: fix `cwd` in `{}`)",
                t.label,
                cwd.display(),
                pkg.dir.join("vite-task.json").display()
            );
        }
        let config_file = || pkg.dir.join("vite-task.json");
        let inputs = glob_config(t.def.input.as_deref());
        let outputs = glob_config(t.def.output.as_deref());
        for (what, config) in [("input", &inputs), ("output", &outputs)] {
            if let Some(glob) = crate::cache::first_glob_outside(&config.globs, &pkg.dir, &ws.root)
            {
                anyhow::bail!(
                    "task `{}`: its {what} glob `{glob}` does not stay inside the workspace `{}`, where \
                     vp fingerprints and restores nothing (globs are relative to the package \
                     directory)\n(hint: move those files into the workspace, or fix `{what}` in `{}`)",
                    t.label,
                    ws.root.display(),
                    config_file().display()
                );
            }
        }
        let framework = if pkg.uses_next {
            Framework::Next
        } else {
            Framework::Plain
        };
        let env_policy = EnvPolicy::new(&t.label, &t.def.env, &t.def.untracked_env, framework)?;
        let mut child_env = env_policy.child_env(&full_env);
        let bins = resolve::bin_dirs(&cwd, &ws.root);
        let path = resolve::child_path(&bins, std::env::var_os("PATH").as_deref());
        child_env.retain(|(k, _)| k != "PATH" && k != ancestry::VAR);
        child_env.push(("PATH".into(), path));
        child_env.push((
            ancestry::VAR.into(),
            ancestry::for_child(inherited_ancestry.as_deref(), &ws.root, &t.label),
        ));
        let default_cache = match t.kind {
            TaskKind::Task => root_cache.1,
            TaskKind::Script => root_cache.0,
        };
        let cache_enabled = if exec.no_cache {
            false
        } else if exec.cache {
            true
        } else {
            t.def.cache.unwrap_or(default_cache)
        };
        // Real paths: a `cwd` that is a symlink out of the workspace is
        // outside too.
        let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        if cache_enabled && !crate::cache::paths::is_within(&real(&cwd), &real(&ws.root)) {
            anyhow::bail!(
                "task `{}`: its working directory `{}` is outside the workspace `{}`, where vp \
                 fingerprints nothing, so a cached run could not notice a change there\n(hint: \
                 fix `cwd` in `{}`, or set `\"cache\": false` for this task)",
                t.label,
                cwd.display(),
                ws.root.display(),
                config_file().display()
            );
        }
        let uncached_by_default = !cache_enabled
            && t.kind == TaskKind::Script
            && !exec.no_cache
            && t.def.cache.is_none()
            && !root_cache_set;
        specs.push(TaskSpec {
            label: t.label.clone(),
            display: None,
            items,
            header_cwd: header_cwd(&ws.root, &cwd),
            package_dir: pkg.dir.clone(),
            inputs,
            outputs,
            cwd,
            env_policy,
            child_env,
            cache_enabled,
            uncached_by_default,
            interactive: single && !cache_enabled,
        });
    }
    Ok(specs)
}

/// A task's commands in the order they run: its `pre` script's items, its
/// own command's, its `post` script's. Only its own command gets `extra`,
/// as npm passes arguments only to the script named. Each item is cached on
/// its own (`label[n]`), and the first failure stops the rest.
fn task_items(
    t: &graph::PlannedTask,
    extra: &[String],
) -> anyhow::Result<Vec<command_line::CommandItem>> {
    let Some(command) = &t.command else {
        return Ok(Vec::new());
    };
    let hook = |h: Option<&graph::HookScript>, kind: &str, when: &str| {
        let Some(h) = h else { return Ok(Vec::new()) };
        command_line::parse(&h.command, &[]).with_context(|| {
            format!(
                "task `{}`: its {kind} script `{}` has an invalid command\n\
                 (hint: vp runs it {when} the task, as npm does; fix it, or set \
                 `\"enablePrePostScripts\": false` in the root vite-task.json)",
                t.label, h.name
            )
        })
    };
    let mut items = hook(t.hooks.pre.as_ref(), "pre", "before")?;
    items.extend(
        command_line::parse(command, extra)
            .with_context(|| format!("task `{}` has an invalid command", t.label))?,
    );
    items.extend(hook(t.hooks.post.as_ref(), "post", "after")?);
    Ok(items)
}

/// `input`/`output` config: omitted means auto; a list is auto only if it
/// contains `{ "auto": true }`.
pub(super) fn glob_config(entries: Option<&[GlobEntry]>) -> GlobConfig {
    let Some(entries) = entries else {
        return GlobConfig::auto();
    };
    let mut config = GlobConfig {
        auto: false,
        globs: Vec::new(),
    };
    for e in entries {
        match e {
            GlobEntry::Glob(g) => config.globs.push(g.clone()),
            GlobEntry::Auto(flag) => config.auto |= flag.auto,
        }
    }
    config
}

/// Runs resolved tasks on one `LocalExecutor` with a terminal reporter and
/// turns the result into vp's exit code.
pub(super) fn execute_specs(
    ws: &Workspace,
    specs: Vec<TaskSpec>,
    deps: &[Vec<usize>],
    exec: &ExecOptions,
    opts: &SchedulerOptions,
) -> anyhow::Result<u8> {
    if exec.dry_run {
        let infos = task_infos(&specs, deps);
        return super::dry_run::dry_run(ws, &specs, deps, infos, exec);
    }
    let labels: Vec<String> = specs.iter().map(|s| s.label.clone()).collect();
    let wants_cache = specs.iter().any(|s| s.cache_enabled);
    let session = RunSession::open(ws, exec, wants_cache, &opening_notice)?;
    let reporter = session.reporter(labels);
    let ex = Rc::new(smol::LocalExecutor::new());
    let stats = smol::block_on(ex.run(session.run_batch(&ex, specs, deps, opts, &reporter, None)));
    // A run cancelled by a signal exits like a process killed by it.
    Ok(stats.exit_code())
}

/// Where the notices of opening a run (waiting for the store's lock,
/// repairing it, no addon) go: they name no task, so a reporter without
/// tasks prints them as every reporter does.
pub(crate) fn opening_notice(event: RunEvent) {
    Reporter::terminal(
        crate::report::LogMode::Interleaved,
        false,
        Vec::new(),
        crate::report::Colours::detect(),
    )
    .report(&event);
}

pub(super) fn header_cwd(root: &Path, cwd: &Path) -> String {
    match cwd.strip_prefix(root) {
        Ok(rel) if rel.as_os_str().is_empty() => String::new(),
        Ok(rel) => format!("~/{}", rel.display()),
        Err(_) => cwd.display().to_string(),
    }
}

/// `vp run` without a task: the tasks of the current package, or of every
/// package when run at the workspace root.
fn task_list(ws: &Workspace, cwd: &Path) -> Vec<ListedPackage> {
    let current = ws.package_containing(cwd).unwrap_or(0);
    let pkgs: Vec<usize> = if current == 0 {
        (0..ws.packages.len()).collect()
    } else {
        vec![current]
    };
    pkgs.into_iter()
        .map(|p| ListedPackage {
            name: ws.packages[p].name.clone(),
            rel_dir: ws.packages[p].rel_dir.clone(),
            tasks: graph::available_tasks(ws, p)
                .into_iter()
                .map(|(name, command, kind)| ListedTask {
                    name,
                    command,
                    script: kind == TaskKind::Script,
                })
                .collect(),
        })
        .collect()
}

#[cfg(test)]
#[path = "command_tests.rs"]
mod tests;
