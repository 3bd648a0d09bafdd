//! Task resolution and the execution plan.
//!
//! A package's tasks are the `tasks` of its `vite-task.json` plus its
//! `package.json` scripts (a vite-task.json task without `command` takes the
//! script of the same name, so config can be added to an existing script).
//! A task that runs a script also runs its `pre`/`post` scripts
//! (`script_hooks`) unless the root's `enablePrePostScripts` is `false`.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use super::PackageGraph;
use super::script_hooks::ScriptHooks;
use crate::workspace::{TaskDefinition, Workspace};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TaskKind {
    /// Defined in `vite-task.json` (cached by default).
    Task,
    /// A `package.json` script (not cached by default).
    Script,
}

#[derive(Debug)]
pub(crate) struct PlannedTask {
    pub(crate) pkg: usize,
    /// `pkg#task`, as users write it.
    pub(crate) label: String,
    pub(crate) kind: TaskKind,
    /// `None` for a task that only groups its `dependsOn`.
    pub(crate) command: Option<String>,
    /// The `pre`/`post` scripts that run before and after `command`.
    pub(crate) hooks: ScriptHooks,
    pub(crate) def: TaskDefinition,
    /// Indices (into `ExecutionPlan::tasks`) of the tasks that must succeed first.
    pub(crate) deps: Vec<usize>,
}

/// Tasks in a topological order: every task comes after all of its `deps`.
#[derive(Debug)]
pub(crate) struct ExecutionPlan {
    pub(crate) tasks: Vec<PlannedTask>,
}

#[derive(Debug, Clone)]
pub(crate) enum TaskSelection {
    /// The package containing the current directory (or the one named by `pkg#task`).
    Current,
    Recursive,
    Transitive,
    WorkspaceRoot,
    Filtered(BTreeSet<usize>),
}

#[derive(Debug)]
pub(crate) struct TaskQuery<'a> {
    pub(crate) task: &'a str,
    pub(crate) selection: TaskSelection,
    pub(crate) cwd: &'a Path,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum GraphError {
    #[error("tasks depend on each other in a cycle: {}", .cycle.join(" → "))]
    Cycle { cycle: Vec<String> },
    #[error("invalid filter `{filter}`: {message}")]
    InvalidFilter { filter: String, message: String },
    #[error(
        "`{task}` names a single package; it cannot be combined with {flag}\n(hint: use `--filter {package}` to select by package, or drop {flag})"
    )]
    PackageTaskWithSelection {
        task: String,
        package: String,
        flag: &'static str,
    },
    #[error("no selected package has a task `{task}`{}{}", suggestion(.suggestions), root_hint(.task, *.root_has_it))]
    TaskInNoPackage {
        task: String,
        suggestions: Vec<String>,
        /// The workspace root has it (`-r` leaves the root out).
        root_has_it: bool,
    },
    #[error("task `{from}` depends on `{dep}`, which does not exist{}\n  (in `{config}`)", suggestion(.suggestions))]
    UnknownDependency {
        from: String,
        dep: String,
        config: PathBuf,
        suggestions: Vec<String>,
    },
    #[error(
        "task `{from}` depends on `{dep}`: `^task` is Turborepo's \"this task in the packages I depend on\", which vp does not read; vp runs those first when they are selected, with `-r` (every package) or `-t` (this package and its dependencies)\n(hint: remove `{dep}` from `dependsOn` in `{config}`)"
    )]
    TurborepoDependency {
        from: String,
        dep: String,
        config: PathBuf,
    },
    #[error("no package named `{package}` in this workspace{}", suggestion(.suggestions))]
    UnknownPackage {
        package: String,
        suggestions: Vec<String>,
    },
    #[error("package `{package}` has no task `{task}`{}{}", suggestion(.suggestions), elsewhere_hint(.task, *.elsewhere))]
    UnknownTask {
        package: String,
        task: String,
        suggestions: Vec<String>,
        /// How many other packages have the task.
        elsewhere: usize,
    },
}

/// The hint for a task the current package lacks and others have: `vp run
/// build` at the root of a monorepo whose packages build.
fn elsewhere_hint(task: &str, elsewhere: usize) -> String {
    match elsewhere {
        0 => String::new(),
        1 => format!("\n(hint: one other package has it: `vp run -r {task}` runs it there)"),
        n => format!("\n(hint: {n} other packages have it: `vp run -r {task}` runs it in each)"),
    }
}

/// The hint for a task `-r` found nowhere because only the root has it.
fn root_hint(task: &str, root_has_it: bool) -> String {
    if root_has_it {
        format!(
            "\n(hint: the workspace root has it, and `-r` leaves the root out: `vp run -w {task}`)"
        )
    } else {
        String::new()
    }
}

fn suggestion(s: &[String]) -> String {
    match s {
        [] => String::new(),
        [one] => format!("\n(hint: did you mean `{one}`?)"),
        many => format!(
            "\n(hint: did you mean one of {}?)",
            many.iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Up to three candidates close to `wanted`, closest first.
fn did_you_mean<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut scored: Vec<(f64, &str)> = candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(wanted, c), c))
        .filter(|(score, c)| *score >= 0.8 && *c != wanted)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored
        .into_iter()
        .take(3)
        .map(|(_, c)| c.to_owned())
        .collect()
}

/// A task as resolved in one package.
struct ResolvedTask {
    kind: TaskKind,
    command: Option<String>,
    hooks: ScriptHooks,
    def: TaskDefinition,
}

fn resolve_task(ws: &Workspace, pkg: usize, name: &str) -> Option<ResolvedTask> {
    let p = &ws.packages[pkg];
    let script = p
        .scripts
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, c)| c.clone());
    // npm's hooks belong to scripts: a vite-task.json task with its own
    // `command` is vp's, not npm's, and gets none.
    let hooks = || {
        if pre_post_enabled(ws) {
            ScriptHooks::of(&p.scripts, name)
        } else {
            ScriptHooks::default()
        }
    };
    if let Some(def) = p.task_config.as_ref().and_then(|c| c.tasks.get(name)) {
        let (command, hooks) = match (&def.command, script) {
            (Some(own), _) => (Some(own.clone()), ScriptHooks::default()),
            (None, Some(script)) => (Some(script), hooks()),
            (None, None) => (None, ScriptHooks::default()),
        };
        return Some(ResolvedTask {
            kind: TaskKind::Task,
            command,
            hooks,
            def: def.clone(),
        });
    }
    script.map(|command| ResolvedTask {
        kind: TaskKind::Script,
        command: Some(command),
        hooks: hooks(),
        def: TaskDefinition::default(),
    })
}

/// The root's `enablePrePostScripts` (default on, as in npm).
fn pre_post_enabled(ws: &Workspace) -> bool {
    ws.packages
        .first()
        .and_then(|root| root.task_config.as_ref())
        .and_then(|c| c.enable_pre_post_scripts)
        .unwrap_or(true)
}

/// Every task a package offers: (name, command, kind), sorted by name.
pub(crate) fn available_tasks(
    ws: &Workspace,
    pkg: usize,
) -> Vec<(String, Option<String>, TaskKind)> {
    let p = &ws.packages[pkg];
    let mut names: BTreeSet<&str> = p.scripts.iter().map(|(n, _)| n.as_str()).collect();
    if let Some(c) = &p.task_config {
        names.extend(c.tasks.keys().map(String::as_str));
    }
    names
        .into_iter()
        .filter_map(|n| resolve_task(ws, pkg, n).map(|t| (n.to_owned(), t.command, t.kind)))
        .collect()
}

fn label(ws: &Workspace, pkg: usize, task: &str) -> String {
    format!("{}#{task}", ws.packages[pkg].name)
}

struct Builder<'a> {
    ws: &'a Workspace,
    nodes: Vec<PlannedTask>,
    index: HashMap<(usize, String), usize>,
}

impl Builder<'_> {
    fn add(&mut self, pkg: usize, name: &str, resolved: ResolvedTask) -> (usize, bool) {
        if let Some(&i) = self.index.get(&(pkg, name.to_owned())) {
            return (i, false);
        }
        let i = self.nodes.len();
        self.nodes.push(PlannedTask {
            pkg,
            label: label(self.ws, pkg, name),
            kind: resolved.kind,
            command: resolved.command,
            hooks: resolved.hooks,
            def: resolved.def,
            deps: Vec::new(),
        });
        self.index.insert((pkg, name.to_owned()), i);
        (i, true)
    }
}

pub(crate) fn build_plan(
    ws: &Workspace,
    graph: &PackageGraph,
    query: &TaskQuery<'_>,
) -> Result<ExecutionPlan, GraphError> {
    let current = ws.package_containing(query.cwd).unwrap_or(0);
    let (named_pkg, task) = match query.task.rsplit_once('#') {
        Some((pkg, task)) if !pkg.is_empty() => {
            let Some(i) = ws.package_by_name(pkg) else {
                return Err(GraphError::UnknownPackage {
                    package: pkg.to_owned(),
                    suggestions: did_you_mean(pkg, ws.packages.iter().map(|p| p.name.as_str())),
                });
            };
            let flag = match query.selection {
                TaskSelection::Recursive => Some("`--recursive`"),
                TaskSelection::WorkspaceRoot => Some("`--workspace-root`"),
                TaskSelection::Filtered(_) => Some("`--filter`"),
                TaskSelection::Current | TaskSelection::Transitive => None,
            };
            if let Some(flag) = flag {
                return Err(GraphError::PackageTaskWithSelection {
                    task: query.task.to_owned(),
                    package: pkg.to_owned(),
                    flag,
                });
            }
            (Some(i), task)
        }
        _ => (None, query.task),
    };
    let anchor = named_pkg.unwrap_or(current);

    // 1. The selected packages, and whether a missing task is an error.
    let (candidates, single): (BTreeSet<usize>, bool) = match &query.selection {
        TaskSelection::Current => (BTreeSet::from([anchor]), true),
        TaskSelection::WorkspaceRoot => (BTreeSet::from([0]), true),
        // Without the workspace root when there are other packages, as
        // pnpm's `-r` (its script is `vp run -r build` more often than not:
        // it would run itself, over and over). `-w` runs it.
        TaskSelection::Recursive => {
            let first = usize::from(ws.packages.len() > 1);
            ((first..ws.packages.len()).collect(), false)
        }
        TaskSelection::Transitive => {
            let mut s = graph.transitive_deps(anchor);
            s.insert(anchor);
            (s, false)
        }
        TaskSelection::Filtered(set) => (set.clone(), false),
    };
    let mut b = Builder {
        ws,
        nodes: Vec::new(),
        index: HashMap::new(),
    };
    let mut roots = Vec::new();
    for &pkg in &candidates {
        match resolve_task(ws, pkg, task) {
            Some(r) => roots.push(b.add(pkg, task, r).0),
            None if single => {
                let names = available_tasks(ws, pkg);
                return Err(GraphError::UnknownTask {
                    package: ws.packages[pkg].name.clone(),
                    task: task.to_owned(),
                    suggestions: did_you_mean(task, names.iter().map(|(n, _, _)| n.as_str())),
                    elsewhere: (0..ws.packages.len())
                        .filter(|&other| other != pkg && resolve_task(ws, other, task).is_some())
                        .count(),
                });
            }
            None => {}
        }
    }
    if roots.is_empty() {
        let all: BTreeSet<String> = (0..ws.packages.len())
            .flat_map(|p| available_tasks(ws, p).into_iter().map(|(n, _, _)| n))
            .collect();
        return Err(GraphError::TaskInNoPackage {
            task: task.to_owned(),
            suggestions: did_you_mean(task, all.iter().map(String::as_str)),
            root_has_it: !candidates.contains(&0) && resolve_task(ws, 0, task).is_some(),
        });
    }

    // 2. Package-order edges between the selected tasks, bridging over
    //    packages that lack the task.
    if !single {
        let with_task: HashMap<usize, usize> = roots.iter().map(|&i| (b.nodes[i].pkg, i)).collect();
        for &node in &roots {
            let pkg = b.nodes[node].pkg;
            let mut seen = BTreeSet::from([pkg]);
            let mut stack: Vec<usize> = graph.deps[pkg].clone();
            let mut deps = Vec::new();
            while let Some(p) = stack.pop() {
                if !seen.insert(p) {
                    continue;
                }
                match with_task.get(&p) {
                    Some(&dep_node) => deps.push(dep_node),
                    None => stack.extend(graph.deps[p].iter().copied()),
                }
            }
            deps.sort_unstable();
            b.nodes[node].deps = deps;
        }
    }

    // 3. `dependsOn`, followed transitively.
    let mut work: Vec<usize> = roots.clone();
    while let Some(node) = work.pop() {
        let pkg = b.nodes[node].pkg;
        for dep in b.nodes[node].def.depends_on.clone() {
            if dep.starts_with('^') {
                let from = &b.nodes[node];
                return Err(GraphError::TurborepoDependency {
                    from: from.label.clone(),
                    dep,
                    config: ws.packages[from.pkg].dir.join("vite-task.json"),
                });
            }
            let (dep_pkg, dep_task) = match dep.rsplit_once('#') {
                Some((p, t)) => match ws.package_by_name(p) {
                    Some(i) => (i, t.to_owned()),
                    None => {
                        return Err(unknown_dependency(
                            ws,
                            &b.nodes[node],
                            &dep,
                            ws.packages.iter().map(|p| p.name.clone()).collect(),
                        ));
                    }
                },
                None => (pkg, dep.clone()),
            };
            let Some(resolved) = resolve_task(ws, dep_pkg, &dep_task) else {
                let names = available_tasks(ws, dep_pkg).into_iter().map(|(n, _, _)| {
                    if dep_pkg == pkg {
                        n
                    } else {
                        label(ws, dep_pkg, &n)
                    }
                });
                return Err(unknown_dependency(
                    ws,
                    &b.nodes[node],
                    &dep,
                    names.collect(),
                ));
            };
            let (dep_node, is_new) = b.add(dep_pkg, &dep_task, resolved);
            if is_new {
                work.push(dep_node);
            }
            if !b.nodes[node].deps.contains(&dep_node) {
                b.nodes[node].deps.push(dep_node);
            }
        }
    }
    topological(b.nodes)
}

fn unknown_dependency(
    ws: &Workspace,
    from: &PlannedTask,
    dep: &str,
    candidates: Vec<String>,
) -> GraphError {
    GraphError::UnknownDependency {
        from: from.label.clone(),
        dep: dep.to_owned(),
        config: ws.packages[from.pkg].dir.join("vite-task.json"),
        suggestions: did_you_mean(dep, candidates.iter().map(String::as_str)),
    }
}

/// Orders nodes so dependencies come first (stable: ties keep insertion
/// order), or reports one cycle.
fn topological(nodes: Vec<PlannedTask>) -> Result<ExecutionPlan, GraphError> {
    let n = nodes.len();
    let mut state = vec![0u8; n]; // 0 new, 1 on stack, 2 done
    let mut order = Vec::with_capacity(n);
    fn visit(
        i: usize,
        nodes: &[PlannedTask],
        state: &mut [u8],
        order: &mut Vec<usize>,
        path: &mut Vec<usize>,
    ) -> Result<(), GraphError> {
        match state[i] {
            2 => return Ok(()),
            1 => {
                let start = path.iter().position(|&p| p == i).unwrap_or(0);
                let mut cycle: Vec<String> = path[start..]
                    .iter()
                    .map(|&p| nodes[p].label.clone())
                    .collect();
                cycle.push(nodes[i].label.clone());
                return Err(GraphError::Cycle { cycle });
            }
            _ => {}
        }
        state[i] = 1;
        path.push(i);
        for &d in &nodes[i].deps {
            visit(d, nodes, state, order, path)?;
        }
        path.pop();
        state[i] = 2;
        order.push(i);
        Ok(())
    }
    for i in 0..n {
        visit(i, &nodes, &mut state, &mut order, &mut Vec::new())?;
    }
    let mut new_index = vec![0; n];
    for (pos, &old) in order.iter().enumerate() {
        new_index[old] = pos;
    }
    let mut slots: Vec<Option<PlannedTask>> = nodes.into_iter().map(Some).collect();
    let tasks = order
        .iter()
        .map(|&old| {
            let mut t = slots[old]
                .take()
                .expect("each node is ordered exactly once");
            t.deps = t.deps.iter().map(|&d| new_index[d]).collect();
            t
        })
        .collect();
    Ok(ExecutionPlan { tasks })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::{Package, TaskConfigFile};

    fn pkg(name: &str, deps: &[&str], scripts: &[(&str, &str)], tasks: &str) -> Package {
        let task_config: Option<TaskConfigFile> = (!tasks.is_empty())
            .then(|| serde_json::from_str(tasks).expect("the test input is valid"));
        Package {
            name: name.to_owned(),
            dir: Path::new("/w").join(if name == "root" { "" } else { name }),
            rel_dir: if name == "root" {
                String::new()
            } else {
                name.to_owned()
            },
            workspace_deps: deps.iter().map(|d| (*d).to_owned()).collect(),
            uses_next: false,
            scripts: scripts
                .iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect(),
            task_config,
        }
    }

    fn ws(packages: Vec<Package>) -> Workspace {
        Workspace {
            root: "/w".into(),
            packages,
        }
    }

    fn plan(
        ws: &Workspace,
        task: &str,
        selection: TaskSelection,
        cwd: &str,
    ) -> Result<Vec<(String, Vec<String>)>, GraphError> {
        let g = PackageGraph::new(ws);
        let p = build_plan(
            ws,
            &g,
            &TaskQuery {
                task,
                selection,
                cwd: Path::new(cwd),
            },
        )?;
        Ok(p.tasks
            .iter()
            .map(|t| {
                (
                    t.label.clone(),
                    t.deps.iter().map(|&d| p.tasks[d].label.clone()).collect(),
                )
            })
            .collect())
    }

    fn chain() -> Workspace {
        // app -> mid (no build) -> lib
        ws(vec![
            pkg("root", &[], &[], ""),
            pkg("app", &["mid"], &[("build", "node b.js")], ""),
            pkg("mid", &["lib"], &[("test", "t")], ""),
            pkg(
                "lib",
                &[],
                &[],
                r#"{"tasks":{"build":{"command":"tsc","dependsOn":["gen"]},"gen":{"command":"gen"}}}"#,
            ),
        ])
    }

    #[test]
    fn recursive_bridges_packages_without_the_task() {
        let p = plan(&chain(), "build", TaskSelection::Recursive, "/w")
            .expect("the test input is valid");
        assert_eq!(
            p,
            vec![
                ("lib#gen".to_owned(), vec![]),
                ("lib#build".to_owned(), vec!["lib#gen".to_owned()]),
                ("app#build".to_owned(), vec!["lib#build".to_owned()]),
            ]
        );
    }

    #[test]
    fn current_package_only_without_flags() {
        let p = plan(&chain(), "build", TaskSelection::Current, "/w/app/src")
            .expect("the test input is valid");
        assert_eq!(p, vec![("app#build".to_owned(), vec![])]);
    }

    #[test]
    fn package_task_form_and_transitive() {
        let p = plan(&chain(), "lib#gen", TaskSelection::Current, "/w")
            .expect("the test input is valid");
        assert_eq!(p, vec![("lib#gen".to_owned(), vec![])]);
        let p = plan(&chain(), "app#build", TaskSelection::Transitive, "/w")
            .expect("the test input is valid");
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn unknown_task_suggests() {
        let e = plan(&chain(), "biuld", TaskSelection::Current, "/w/app")
            .expect_err("the test input is invalid")
            .to_string();
        assert_eq!(
            e,
            "package `app` has no task `biuld`\n(hint: did you mean `build`?)"
        );
        let e = plan(&chain(), "nope#build", TaskSelection::Current, "/w")
            .expect_err("the test input is invalid")
            .to_string();
        assert!(e.starts_with("no package named `nope`"), "{e}");
        let e = plan(&chain(), "lib#build", TaskSelection::Recursive, "/w")
            .expect_err("the test input is invalid")
            .to_string();
        assert!(e.contains("cannot be combined with `--recursive`"), "{e}");
    }

    #[test]
    fn cycle_is_printed() {
        let w = ws(vec![pkg(
            "root",
            &[],
            &[],
            r#"{"tasks":{"a":{"command":"x","dependsOn":["b"]},"b":{"command":"y","dependsOn":["root#a"]}}}"#,
        )]);
        let e = plan(&w, "a", TaskSelection::Current, "/w")
            .expect_err("the test input is invalid")
            .to_string();
        assert_eq!(
            e,
            "tasks depend on each other in a cycle: root#a → root#b → root#a"
        );
    }

    /// Review: `-r` leaves the root out, so a task only the root has is in
    /// no selected package; the error says where it is.
    #[test]
    fn recursive_leaves_the_root_out_and_says_so() {
        let w = ws(vec![
            pkg("root", &[], &[("lint", "eslint .")], ""),
            pkg("app", &[], &[("build", "b")], ""),
        ]);
        let e = plan(&w, "lint", TaskSelection::Recursive, "/w")
            .expect_err("only the root has lint")
            .to_string();
        assert!(e.contains("`vp run -w lint`"), "{e}");
        let single = ws(vec![pkg("root", &[], &[("lint", "eslint .")], "")]);
        let p = plan(&single, "lint", TaskSelection::Recursive, "/w")
            .expect("a project of one package runs its own");
        assert_eq!(p, vec![("root#lint".to_owned(), vec![])]);
    }

    /// Probe: `vp run build` at the root of a monorepo said only that the
    /// root has no `build`.
    #[test]
    fn a_task_only_other_packages_have_points_to_r() {
        let e = plan(&chain(), "build", TaskSelection::Current, "/w")
            .expect_err("the root has no build")
            .to_string();
        assert!(
            e.contains("2 other packages have it: `vp run -r build` runs it in each"),
            "{e}"
        );
    }

    /// Probe: `"dependsOn": ["^build"]` got "did you mean `build`?", and
    /// following that hint made the task depend on itself.
    #[test]
    fn a_turborepo_caret_dependency_is_explained() {
        let w = ws(vec![pkg(
            "root",
            &[],
            &[],
            r#"{"tasks":{"build":{"command":"x","dependsOn":["^build"]}}}"#,
        )]);
        let e = plan(&w, "build", TaskSelection::Current, "/w")
            .expect_err("the test input is invalid")
            .to_string();
        assert!(e.contains("`^task` is Turborepo's"), "{e}");
        assert!(e.contains("remove `^build` from `dependsOn`"), "{e}");
        assert!(!e.contains("did you mean"), "{e}");
    }

    #[test]
    fn unknown_dependency_names_the_config() {
        let w = ws(vec![pkg(
            "root",
            &[],
            &[],
            r#"{"tasks":{"a":{"command":"x","dependsOn":["lnt"]},"lint":{"command":"l"}}}"#,
        )]);
        let e = plan(&w, "a", TaskSelection::Current, "/w")
            .expect_err("the test input is invalid")
            .to_string();
        assert!(
            e.contains("task `root#a` depends on `lnt`, which does not exist"),
            "{e}"
        );
        assert!(e.contains("did you mean `lint`"), "{e}");
        assert!(e.contains("/w/vite-task.json"), "{e}");
    }

    /// (label, pre script, command, post script) of each planned task.
    fn hooks_of(
        ws: &Workspace,
        task: &str,
    ) -> Vec<(String, Option<String>, String, Option<String>)> {
        let g = PackageGraph::new(ws);
        let p = build_plan(
            ws,
            &g,
            &TaskQuery {
                task,
                selection: TaskSelection::Current,
                cwd: Path::new("/w"),
            },
        )
        .expect("the test input is valid");
        p.tasks
            .iter()
            .map(|t| {
                (
                    t.label.clone(),
                    t.hooks.pre.as_ref().map(|h| h.name.clone()),
                    t.command.clone().unwrap_or_default(),
                    t.hooks.post.as_ref().map(|h| h.name.clone()),
                )
            })
            .collect()
    }

    const HOOKED: [(&str, &str); 5] = [
        ("prebuild", "echo pre"),
        ("build", "echo build"),
        ("postbuild", "echo post"),
        ("prelint", "echo pre-lint"),
        ("lint", "echo lint"),
    ];

    #[test]
    fn a_script_and_its_dependencies_get_their_pre_and_post_scripts() {
        let w = ws(vec![pkg(
            "root",
            &[],
            &HOOKED,
            r#"{"tasks":{"all":{"dependsOn":["build","lint"]}}}"#,
        )]);
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(
            hooks_of(&w, "all"),
            vec![
                (
                    "root#build".into(),
                    some("prebuild"),
                    "echo build".into(),
                    some("postbuild")
                ),
                (
                    "root#lint".into(),
                    some("prelint"),
                    "echo lint".into(),
                    None
                ),
                // A task that only groups its dependencies runs no script.
                ("root#all".into(), None, String::new(), None),
            ]
        );
    }

    #[test]
    fn a_task_without_command_runs_the_script_with_its_hooks() {
        let w = ws(vec![pkg(
            "root",
            &[],
            &HOOKED,
            r#"{"tasks":{"build":{"env":["X"]}}}"#,
        )]);
        let hooks = &hooks_of(&w, "build")[0];
        assert_eq!(hooks.1.as_deref(), Some("prebuild"));
        assert_eq!(hooks.3.as_deref(), Some("postbuild"));
    }

    #[test]
    fn a_task_with_its_own_command_gets_no_hooks() {
        let w = ws(vec![pkg(
            "root",
            &[],
            &HOOKED,
            r#"{"tasks":{"build":{"command":"vite build"}}}"#,
        )]);
        assert_eq!(
            hooks_of(&w, "build"),
            vec![("root#build".into(), None, "vite build".into(), None)]
        );
    }

    #[test]
    fn the_root_can_turn_hooks_off_for_every_package() {
        let w = ws(vec![
            pkg("root", &[], &[], r#"{"enablePrePostScripts": false}"#),
            pkg("app", &[], &HOOKED, ""),
        ]);
        assert_eq!(
            hooks_of(&w, "app#build"),
            vec![("app#build".into(), None, "echo build".into(), None)]
        );
        let on = ws(vec![
            pkg("root", &[], &[], r#"{"enablePrePostScripts": true}"#),
            pkg("app", &[], &HOOKED, ""),
        ]);
        assert_eq!(hooks_of(&on, "app#build")[0].1.as_deref(), Some("prebuild"));
    }

    #[test]
    fn task_without_command_takes_the_script() {
        let w = ws(vec![pkg(
            "root",
            &[],
            &[("build", "vite build")],
            r#"{"tasks":{"build":{"env":["X"]}}}"#,
        )]);
        let tasks = available_tasks(&w, 0);
        assert_eq!(tasks[0].1.as_deref(), Some("vite build"));
        assert_eq!(tasks[0].2, TaskKind::Task);
    }
}
