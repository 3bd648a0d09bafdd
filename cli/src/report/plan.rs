//! `vp run --dry-run`: the plan as the runner predicted it (`PlannedTask`s
//! in execution order, each command with its `Prediction`), written as text
//! or, with `--json`, by `json::plan`. It is data, so it goes to stdout.
//!
//! A prediction is made against the files as they are now. A command that
//! runs before another (a dependency, an earlier `&&` command of the same
//! task) may change what the later one reads, so a later hit is only
//! certain when nothing before it would run: otherwise it is
//! `HitUnless { runs }`. A miss is only uncertain when every difference is a
//! file that something before it writes (as far as the store knows its
//! outputs: a hit's, or the last stored run's): a deleted `dist/` of a
//! dependency that a hit would restore first, say. That is
//! `MissUnless { miss, writers }`; any other miss stays a miss.

use std::io::Write;

use super::reasons;
use crate::events::{Failure, Miss, Unavailable};

/// A task as the plan and the last run's JSON describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TaskInfo {
    /// `pkg#task`.
    pub(crate) id: String,
    pub(crate) package: String,
    pub(crate) task: String,
    /// Its commands joined by ` && ` as shown; `None` when it only runs its
    /// `dependsOn`.
    pub(crate) command: Option<String>,
    /// The ids of the tasks that run first.
    pub(crate) depends_on: Vec<String>,
}

impl TaskInfo {
    /// Splits `id` at its first `#` (package names cannot contain one).
    pub(crate) fn new(id: String, command: Option<String>, depends_on: Vec<String>) -> TaskInfo {
        let (package, task) = id.split_once('#').unwrap_or(("", &id));
        TaskInfo {
            package: package.to_owned(),
            task: task.to_owned(),
            id: id.clone(),
            command,
            depends_on,
        }
    }
}

/// A task of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlannedTask {
    pub(crate) info: TaskInfo,
    pub(crate) commands: Vec<PlannedCommand>,
}

/// One command of a planned task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlannedCommand {
    pub(crate) command: String,
    /// As in the header: `~/`-relative, empty for the workspace root.
    pub(crate) cwd: String,
    pub(crate) prediction: Prediction,
}

/// Something that would run before a command and may change its inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Upstream {
    /// A task it comes after (`pkg#task`).
    Task(String),
    /// An earlier command of the same task.
    Command(String),
}

/// What a run would do with one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Prediction {
    /// A stored result matches, and nothing before it would run.
    Hit,
    /// A stored result matches the files as they are now, but `runs` would
    /// run first and may change them.
    HitUnless { runs: Vec<Upstream> },
    /// No stored result matches the files as they are now.
    Miss(Miss),
    /// No stored result matches the files as they are now, but every
    /// difference is a file that `writers` (run or restored first) write.
    MissUnless { miss: Miss, writers: Vec<Upstream> },
    /// Caching is off for the task: it would run, and nothing is stored.
    Disabled,
    /// The task wants the cache, but a run would have none: it would run
    /// uncached (e.g. a nested `vp run`, whose outer task holds the cache).
    Unavailable(Unavailable),
    /// Another vp holds the cache: a real run would wait for it, and what
    /// it finds then is not known now.
    Locked { holder: Option<u32> },
    /// It could not start (its program is nowhere to be found).
    Fails(Failure),
    /// It would not start, because `after` (a task before it, or an earlier
    /// command of its own) would fail.
    NotStarted { after: String },
}

impl Prediction {
    /// Whether the command would execute (or might) rather than replay a
    /// certain hit: what makes the commands after it uncertain.
    pub(crate) fn may_run(&self) -> bool {
        !matches!(self, Prediction::Hit)
    }

    /// Whether it would fail or not start, stopping what comes after it.
    pub(crate) fn fails(&self) -> bool {
        matches!(self, Prediction::Fails(_) | Prediction::NotStarted { .. })
    }
}

/// The words for a prediction (`would hit`, `would miss: …`).
pub(crate) fn prediction_text(p: &Prediction) -> String {
    match p {
        Prediction::Hit => "would hit".to_owned(),
        Prediction::HitUnless { runs } => format!(
            "would hit unless {} changes its outputs",
            names(runs).join(" or ")
        ),
        Prediction::Miss(m) => match reasons::miss(m) {
            Some(why) => format!("would miss: {why}"),
            None => "would miss: no previous run".to_owned(),
        },
        Prediction::MissUnless { miss, writers } => format!(
            "unknown: would miss on the files as they are now ({}), but {} writes them first",
            reasons::miss(miss).unwrap_or_else(|| "no previous run".to_owned()),
            names(writers).join(" or ")
        ),
        Prediction::Disabled => "cache disabled".to_owned(),
        Prediction::Unavailable(u) => format!(
            "cache unavailable: {}; would run without the cache",
            reasons::unavailable(u)
        ),
        Prediction::Locked { holder } => format!(
            "unknown: {}; a run would wait for it",
            reasons::unavailable(&Unavailable::Locked { holder: *holder })
        ),
        Prediction::Fails(f) => {
            let text = reasons::failure(f);
            // The hint on the next line is for a real failure.
            let first = text.lines().next().unwrap_or_default();
            format!("would fail: {first}")
        }
        Prediction::NotStarted { after } => format!("would not start: {after} would fail"),
    }
}

fn names(upstream: &[Upstream]) -> Vec<String> {
    upstream
        .iter()
        .map(|u| match u {
            Upstream::Task(label) => label.clone(),
            Upstream::Command(c) => format!("its command `{c}`"),
        })
        .collect()
}

fn glyph(p: &Prediction) -> &'static str {
    match p {
        Prediction::Hit => "◉",
        Prediction::Miss(_) => "○",
        Prediction::Disabled | Prediction::Unavailable(_) => "⊘",
        Prediction::HitUnless { .. }
        | Prediction::MissUnless { .. }
        | Prediction::Locked { .. } => "?",
        Prediction::Fails(_) | Prediction::NotStarted { .. } => "✗",
    }
}

/// The plan as text: each task (with what it comes after), then each of its
/// commands in the header's grammar with the prediction, then a count.
pub(crate) fn text(out: &mut dyn Write, tasks: &[PlannedTask]) -> std::io::Result<()> {
    let mut counts = [0usize; 5];
    for t in tasks {
        if t.info.depends_on.is_empty() {
            writeln!(out, "{}", t.info.id)?;
        } else {
            writeln!(
                out,
                "{} (after {})",
                t.info.id,
                t.info.depends_on.join(", ")
            )?;
        }
        if t.commands.is_empty() {
            writeln!(out, "  (runs its dependsOn only)")?;
        }
        for c in &t.commands {
            writeln!(
                out,
                "  {}$ {} {} {}",
                c.cwd,
                c.command,
                glyph(&c.prediction),
                prediction_text(&c.prediction)
            )?;
            let slot = match &c.prediction {
                Prediction::Hit => 0,
                Prediction::Miss(_) => 1,
                Prediction::Disabled | Prediction::Unavailable(_) => 2,
                Prediction::Fails(_) | Prediction::NotStarted { .. } => 4,
                _ => 3,
            };
            counts[slot] += 1;
        }
    }
    let commands: usize = counts.iter().sum();
    let parts: Vec<String> = [
        "would hit",
        "would miss",
        "uncached",
        "unknown",
        "would fail or not start",
    ]
    .iter()
    .zip(counts)
    .filter(|(_, n)| *n > 0)
    .map(|(what, n)| format!("{n} {what}"))
    .collect();
    let tasks_word = if tasks.len() == 1 { "task" } else { "tasks" };
    let commands_word = if commands == 1 { "command" } else { "commands" };
    let tail = if parts.is_empty() {
        String::new()
    } else {
        format!(": {}", parts.join(", "))
    };
    writeln!(
        out,
        "dry run: {} {tasks_word}, {commands} {commands_word}{tail}; nothing was run",
        tasks.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{MissReason, MissReasons, RelPath};

    fn written(tasks: &[PlannedTask]) -> String {
        let mut buf = Vec::new();
        text(&mut buf, tasks).expect("writing to memory");
        String::from_utf8(buf).expect("utf-8")
    }

    fn command(command: &str, prediction: Prediction) -> PlannedCommand {
        PlannedCommand {
            command: command.to_owned(),
            cwd: "~/packages/app".to_owned(),
            prediction,
        }
    }

    #[test]
    fn tasks_in_order_with_one_line_per_command() {
        let base = RelPath::root().join(b"packages").join(b"app");
        let tasks = [
            PlannedTask {
                info: TaskInfo::new("lib#build".into(), Some("tsc && vite build".into()), vec![]),
                commands: vec![
                    command(
                        "tsc",
                        Prediction::Miss(Miss::Changed {
                            reasons: MissReasons::new(vec![MissReason::Modified(
                                base.join(b"src").join(b"a.ts"),
                            )]),
                            base: base.clone(),
                        }),
                    ),
                    command(
                        "vite build",
                        Prediction::HitUnless {
                            runs: vec![Upstream::Command("tsc".into())],
                        },
                    ),
                ],
            },
            PlannedTask {
                info: TaskInfo::new(
                    "app#lint".into(),
                    Some("eslint".into()),
                    vec!["lib#build".into()],
                ),
                commands: vec![command("eslint", Prediction::Disabled)],
            },
            PlannedTask {
                info: TaskInfo::new("app#all".into(), None, vec!["app#lint".into()]),
                commands: vec![],
            },
        ];
        assert_eq!(
            written(&tasks),
            "lib#build\n\
             \x20 ~/packages/app$ tsc ○ would miss: 'src/a.ts' modified\n\
             \x20 ~/packages/app$ vite build ? would hit unless its command `tsc` changes its outputs\n\
             app#lint (after lib#build)\n\
             \x20 ~/packages/app$ eslint ⊘ cache disabled\n\
             app#all (after app#lint)\n\
             \x20 (runs its dependsOn only)\n\
             dry run: 3 tasks, 3 commands: 1 would miss, 1 uncached, 1 unknown; nothing was run\n"
        );
    }

    #[test]
    fn every_prediction_in_words() {
        assert_eq!(prediction_text(&Prediction::Hit), "would hit");
        assert_eq!(
            prediction_text(&Prediction::Miss(Miss::FirstRun)),
            "would miss: no previous run"
        );
        assert_eq!(
            prediction_text(&Prediction::HitUnless {
                runs: vec![Upstream::Task("a#x".into()), Upstream::Task("b#y".into())]
            }),
            "would hit unless a#x or b#y changes its outputs"
        );
        assert_eq!(
            prediction_text(&Prediction::Locked { holder: Some(7) }),
            "unknown: another vp (pid 7) holds the cache lock; a run would wait for it"
        );
        assert_eq!(
            prediction_text(&Prediction::Unavailable(Unavailable::HeldByAncestor {
                holder: 3,
                why: crate::cache::OuterCaching::Listed,
            })),
            "cache unavailable: the vp that started this one (pid 3) holds the cache; \
             the outer task caches this run; would run without the cache"
        );
        assert_eq!(
            prediction_text(&Prediction::Fails(Failure::ProgramNotFound {
                program: "vitest".into()
            })),
            "would fail: could not start `vitest`: no such program in node_modules/.bin of \
             the package or its parents, or on PATH"
        );
        assert_eq!(
            prediction_text(&Prediction::NotStarted {
                after: "lib#build".into()
            }),
            "would not start: lib#build would fail"
        );
        assert_eq!(
            prediction_text(&Prediction::MissUnless {
                miss: Miss::Changed {
                    reasons: MissReasons::new(vec![MissReason::Removed(
                        RelPath::root().join(b"lib").join(b"dist")
                    )]),
                    base: RelPath::root().join(b"app"),
                },
                writers: vec![Upstream::Task("lib#build".into())],
            }),
            "unknown: would miss on the files as they are now ('dist' removed from '../lib'), \
             but lib#build writes them first"
        );
        assert!(!Prediction::Hit.may_run() && Prediction::Disabled.may_run());
    }

    #[test]
    fn a_package_name_never_holds_the_separator() {
        let info = TaskInfo::new("@s/app#vp build".into(), None, vec![]);
        assert_eq!(
            (info.package.as_str(), info.task.as_str()),
            ("@s/app", "vp build")
        );
    }
}
