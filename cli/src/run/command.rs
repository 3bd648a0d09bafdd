//! `vp run` and `vp build`: from arguments to an exit code (or, with
//! `--dry-run`, to the plan: `dry_run`).

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::Arc;

use anyhow::Context;

use super::run_cache::{finish_uploads, open_cache};
use super::scheduler::{self, SchedulerOptions};
use super::task::{RunContext, TaskSpec};
use super::{command_line, env::EnvPolicy, resolve};
use crate::args::{ExecOptions, RunArgs};
use crate::cache::{CacheSettings, GlobConfig};
use crate::events::{RunEvent, RunNotice, Unavailable};
use crate::graph::{self, ExecutionPlan, PackageGraph, TaskKind, TaskQuery, TaskSelection};
use crate::remote::{RemoteConfig, RemoteInputs, RemoteSession};
use crate::report::Reporter;
use crate::report::listing::{self, ListedPackage, ListedTask};
use crate::report::plan::TaskInfo;
use crate::workspace::GlobEntry;
use crate::workspace::Workspace;

pub(crate) fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
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
            return Ok(ExitCode::SUCCESS);
        }
        let text = home.and_then(|h| std::fs::read_to_string(h.last_run()).ok());
        // A closed stdout (`| head`) is not an error of vp's.
        let _ = listing::last_details(&mut std::io::stdout(), text.as_deref(), &settings.dir);
        return Ok(ExitCode::SUCCESS);
    }
    if args.exec.dry_run && args.task.is_none() {
        anyhow::bail!(
            "`--dry-run` shows what running a task would do, but no task was named\n(hint: `vp run --dry-run <task>`; `vp run` alone lists the tasks)"
        );
    }
    let Some(task) = args.task.as_deref() else {
        let _ = listing::task_list(&mut std::io::stdout(), &task_list(&ws, &cwd));
        return Ok(ExitCode::SUCCESS);
    };

    let pkg_graph = PackageGraph::new(&ws);
    let selection = if args.recursive {
        TaskSelection::Recursive
    } else if !args.filter.is_empty() {
        let (set, warnings) = graph::select_packages(&ws, &pkg_graph, &args.filter, &cwd)?;
        // Shown at once: planning may still fail, and the warning explains why.
        for w in &warnings {
            crate::report::planning_warning(w);
        }
        TaskSelection::Filtered(set)
    } else if args.transitive {
        TaskSelection::Transitive
    } else if args.workspace_root {
        TaskSelection::WorkspaceRoot
    } else {
        TaskSelection::Current
    };
    let plan = graph::build_plan(
        &ws,
        &pkg_graph,
        &TaskQuery {
            task,
            selection,
            cwd: &cwd,
        },
    )?;
    let opts = SchedulerOptions {
        concurrency: usize::try_from(args.concurrency_limit).unwrap_or(4),
        parallel: args.parallel,
    };
    execute_plan(&ws, &plan, &args.extra, &args.exec, &opts)
}

fn execute_plan(
    ws: &Workspace,
    plan: &ExecutionPlan,
    extra: &[String],
    exec: &ExecOptions,
    opts: &SchedulerOptions,
) -> anyhow::Result<ExitCode> {
    let full_env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let root_cache = ws.packages[0]
        .task_config
        .as_ref()
        .and_then(|c| c.cache)
        .map_or((false, true), |c| c.kinds());
    let single = plan.tasks.len() == 1;
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
        let env_policy = EnvPolicy::new(&t.label, &t.def.env, &t.def.untracked_env)?;
        let mut child_env = env_policy.child_env(&full_env);
        let bins = resolve::bin_dirs(&cwd, &ws.root);
        let path = resolve::child_path(&bins, std::env::var_os("PATH").as_deref());
        child_env.retain(|(k, _)| k != "PATH");
        child_env.push(("PATH".into(), path));
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
        specs.push(TaskSpec {
            label: t.label.clone(),
            display: None,
            items,
            header_cwd: header_cwd(&ws.root, &cwd),
            package_dir: pkg.dir.clone(),
            inputs: glob_config(t.def.input.as_deref()),
            outputs: glob_config(t.def.output.as_deref()),
            cwd,
            env_policy,
            child_env,
            cache_enabled,
            interactive: single && !cache_enabled,
        });
    }
    let deps: Vec<Vec<usize>> = plan.tasks.iter().map(|t| t.deps.clone()).collect();
    execute_specs(ws, specs, &deps, exec, opts)
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
) -> anyhow::Result<ExitCode> {
    let infos = task_infos(&specs, deps);
    if exec.dry_run {
        return super::dry_run::dry_run(ws, &specs, deps, infos, exec);
    }
    let labels: Vec<String> = specs.iter().map(|s| s.label.clone()).collect();
    let specs_labels = labels.clone();
    // Once per run: the reporter strips replays that go to a non-terminal,
    // and tasks are asked for colour when vp itself is on a terminal.
    let colours = crate::report::Colours::detect();
    let reporter = Rc::new(std::cell::RefCell::new(Reporter::terminal(
        exec.log.into(),
        exec.verbose,
        labels,
        colours,
    )));
    let sink = Rc::clone(&reporter);
    let emit = move |e: RunEvent| sink.borrow_mut().report(&e);
    let cwd = std::env::current_dir().context("cannot determine the current directory")?;
    let settings = CacheSettings::resolve(exec.cache_dir.as_deref(), None, &ws.root, &cwd, |k| {
        std::env::var(k).ok()
    })?;
    let cache = if specs.iter().any(|s| s.cache_enabled) {
        open_cache(&settings, &emit)
    } else {
        Err(Unavailable::NotOpened)
    };
    let addon_path = match crate::bridge::materialize_addon(&crate::bridge::default_addon_dir()) {
        Ok(p) => Some(p),
        Err(e) => {
            emit(RunEvent::Notice(RunNotice::AddonUnavailable {
                error: e.to_string(),
            }));
            None
        }
    };
    let full_env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    // A malformed remote-cache setting is the user's to fix before anything
    // runs; a server that is down is not (see `remote::RemoteSession`).
    let remote_config = RemoteConfig::resolve(&RemoteInputs {
        env: &full_env,
        file: ws.packages[0]
            .task_config
            .as_ref()
            .and_then(|c| c.remote_cache.as_ref()),
        flag: exec.remote_cache.map(Into::into),
    })?;
    let remote = match (&cache, remote_config) {
        (Ok(_), Some(config)) => Some(Arc::new(RemoteSession::new(config))),
        _ => None,
    };
    let ctx = Rc::new(RunContext {
        emit: Box::new(emit),
        children: super::spawn::ChildRegistry::default(),
        cancelled: std::cell::Cell::new(false),
        verbose: exec.verbose,
        workspace_root: ws.root.clone(),
        full_env_map: Rc::new(full_env.iter().cloned().collect()),
        full_env: std::sync::Arc::new(full_env),
        cache,
        addon_path,
        colours,
        not_cached: std::cell::RefCell::new(Vec::new()),
        remote,
        uploads: std::cell::RefCell::new(Vec::new()),
    });
    let ex = Rc::new(smol::LocalExecutor::new());
    let specs = Rc::new(specs);
    let mut stats = smol::block_on(ex.run(scheduler::run(&ex, specs, deps, opts, Rc::clone(&ctx))));
    stats.not_cached = ctx.not_cached.borrow().clone();
    finish_uploads(&ctx, exec.verbose, &specs_labels, stats.cancelled);
    reporter.borrow_mut().report(&RunEvent::RunFinished {
        stats: stats.clone(),
    });
    let details = reporter.borrow().last_details(&stats);
    let details_json = reporter.borrow().last_run_json(&infos, &stats);
    // Best effort: `--last-details` then has nothing to show, which it says.
    // Only into a directory proven to be vp's (claimed with its marker), so
    // an uncached run never makes the cache dir look foreign.
    if let Ok(home) = crate::cache::CacheDir::claim(&settings.dir) {
        let _ = std::fs::write(home.last_run(), details);
        let _ = std::fs::write(home.last_run_json(), details_json);
    }
    if let Ok(c) = &ctx.cache {
        // Keep the cache within its bound; a failure here loses nothing.
        let _ = c.store.prune_if_needed(settings.max_size);
    }
    // A run cancelled by a signal exits like a process killed by it.
    Ok(ExitCode::from(stats.exit_code()))
}

/// What the JSON reports say about each task: its id, its commands as
/// shown, and the ids of the tasks it comes after.
fn task_infos(specs: &[TaskSpec], deps: &[Vec<usize>]) -> Vec<TaskInfo> {
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let command = s.display.clone().or_else(|| {
                (!s.items.is_empty()).then(|| {
                    s.items
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(" && ")
                })
            });
            let depends_on = deps
                .get(i)
                .map(|d| {
                    d.iter()
                        .filter_map(|&j| specs.get(j))
                        .map(|t| t.label.clone())
                        .collect()
                })
                .unwrap_or_default();
            TaskInfo::new(s.label.clone(), command, depends_on)
        })
        .collect()
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
