//! The machine-readable reports, schema version 1 (docs/json.md): the plan
//! of `vp run --dry-run --json` and the last run of `vp run --last-details
//! --json`. Both list the tasks in execution order in the same shape; the
//! last run adds each task's outcome, exit code and duration, and totals.
//! The types here are the schema: field names and status and reason kinds
//! are stable, and every reason also carries the sentence a header shows
//! (`reasons.rs`), so a consumer can print it without knowing every kind.

use std::time::Duration;

use serde::Serialize;

use super::plan::{PlannedTask, Prediction, TaskInfo, Upstream};
use super::reasons;
use crate::cache::{MissReason, RelPath};
use crate::events::{CacheStatus, CommandHeader, Miss, RunStats, TaskOutcome, Unavailable};

/// Written in every document; raised only when a field changes meaning or
/// goes away (new fields and new kinds do not raise it).
pub(crate) const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Document<'a> {
    version: u32,
    tasks: Vec<Task<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    totals: Option<Totals>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Task<'a> {
    id: &'a str,
    package: &'a str,
    task: &'a str,
    command: Option<&'a str>,
    depends_on: &'a [String],
    /// The task's cache status: that of its first command that is not a
    /// hit, else a hit (`disabled` for a task without commands).
    cache: Cache,
    commands: Vec<Command<'a>>,
    #[serde(flatten)]
    result: Option<TaskResult>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Command<'a> {
    command: &'a str,
    /// Working directory: `~/`-relative to the workspace root, `""` for the
    /// root itself.
    cwd: &'a str,
    cache: Cache,
}

#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
struct Cache {
    status: &'static str,
    /// Only for a hit of the last run: it was downloaded from the remote cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    remote: Option<bool>,
    reasons: Vec<Reason>,
}

#[derive(Serialize, Clone, Default)]
#[serde(rename_all = "camelCase")]
struct Reason {
    kind: &'static str,
    text: String,
    /// Workspace-relative, for the reasons about a file.
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    /// An environment variable, or an env query's pattern.
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// The task (`pkg#task`) a reason names.
    #[serde(skip_serializing_if = "Option::is_none")]
    task: Option<String>,
    /// An earlier command of the same task a reason names.
    #[serde(skip_serializing_if = "Option::is_none")]
    command: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<u32>,
}

/// What the last run did with one task.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TaskResult {
    /// `succeeded`, `failed`, `skipped`, `cancelled`, or `notFinished`.
    outcome: &'static str,
    /// `null` when it did not run to the end.
    exit_code: Option<i32>,
    duration_ms: Option<u64>,
    /// How it failed, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// Why its successful run was not stored, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    not_cached: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Totals {
    tasks: usize,
    succeeded: usize,
    failed: usize,
    skipped: usize,
    cancelled: bool,
    cache_hits: usize,
    remote_hits: usize,
    cached_commands: usize,
    saved_ms: u64,
    duration_ms: u64,
    exit_code: u8,
}

/// `vp run --dry-run --json`, one line.
pub(crate) fn plan(tasks: &[PlannedTask]) -> String {
    let tasks = tasks
        .iter()
        .map(|t| {
            let commands: Vec<Command<'_>> = t
                .commands
                .iter()
                .map(|c| Command {
                    command: &c.command,
                    cwd: &c.cwd,
                    cache: predicted(&c.prediction),
                })
                .collect();
            task(&t.info, commands, None)
        })
        .collect();
    render(&Document {
        version: SCHEMA_VERSION,
        tasks,
        totals: None,
    })
}

/// What the reporter saw of one task in a finished run.
pub(crate) struct RanTask<'a> {
    pub(crate) info: &'a TaskInfo,
    pub(crate) headers: &'a [CommandHeader],
    pub(crate) finished: Option<&'a (TaskOutcome, Duration)>,
    pub(crate) not_cached: Option<String>,
}

/// The last run, for `vp run --last-details --json` (stored as
/// `last-run.json`), one line.
pub(crate) fn last_run(tasks: &[RanTask<'_>], stats: &RunStats) -> String {
    let tasks = tasks
        .iter()
        .map(|t| {
            let commands = t
                .headers
                .iter()
                .map(|h| Command {
                    command: &h.command,
                    cwd: &h.cwd,
                    cache: status(&h.status),
                })
                .collect();
            let result = match t.finished {
                None => TaskResult {
                    outcome: "notFinished",
                    exit_code: None,
                    duration_ms: None,
                    error: None,
                    not_cached: None,
                },
                Some((outcome, duration)) => {
                    let (name, exit_code, error) = match outcome {
                        TaskOutcome::Succeeded { .. } => ("succeeded", Some(0), None),
                        TaskOutcome::Failed { exit_code, failure } => {
                            ("failed", Some(*exit_code), Some(reasons::failure(failure)))
                        }
                        TaskOutcome::Skipped => ("skipped", None, None),
                        TaskOutcome::Cancelled => ("cancelled", None, None),
                    };
                    TaskResult {
                        outcome: name,
                        exit_code,
                        duration_ms: Some(millis(*duration)),
                        error,
                        not_cached: t.not_cached.clone(),
                    }
                }
            };
            task(t.info, commands, Some(result))
        })
        .collect();
    render(&Document {
        version: SCHEMA_VERSION,
        tasks,
        totals: Some(Totals {
            tasks: stats.tasks,
            succeeded: stats.succeeded,
            failed: stats.failed,
            skipped: stats.skipped,
            cancelled: stats.cancelled,
            cache_hits: stats.cache_hits,
            remote_hits: stats.remote_hits,
            cached_commands: stats.cached_commands,
            saved_ms: millis(stats.saved),
            duration_ms: millis(stats.duration),
            exit_code: stats.exit_code(),
        }),
    })
}

fn task<'a>(
    info: &'a TaskInfo,
    commands: Vec<Command<'a>>,
    result: Option<TaskResult>,
) -> Task<'a> {
    let cache = commands
        .iter()
        .map(|c| &c.cache)
        .find(|c| c.status != "hit")
        .or(commands.first().map(|c| &c.cache))
        .cloned()
        .unwrap_or(Cache {
            status: "disabled",
            remote: None,
            reasons: Vec::new(),
        });
    Task {
        id: &info.id,
        package: &info.package,
        task: &info.task,
        command: info.command.as_deref(),
        depends_on: &info.depends_on,
        cache,
        commands,
        result,
    }
}

fn render(doc: &Document<'_>) -> String {
    // Plain data with string keys: serialising it cannot fail.
    serde_json::to_string(doc).unwrap_or_default()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn cache(status: &'static str, reasons: Vec<Reason>) -> Cache {
    Cache {
        status,
        remote: None,
        reasons,
    }
}

/// A dry run's prediction for one command.
fn predicted(p: &Prediction) -> Cache {
    let text = super::plan::prediction_text(p);
    match p {
        Prediction::Hit => cache("hit", Vec::new()),
        Prediction::HitUnless { runs } => cache(
            "unknown",
            runs.iter()
                .map(|u| {
                    let (task, command) = upstream(u);
                    Reason {
                        kind: "runsFirst",
                        text: text.clone(),
                        task,
                        command,
                        ..Reason::default()
                    }
                })
                .collect(),
        ),
        Prediction::Miss(m) => cache("miss", miss_reasons(m)),
        Prediction::MissUnless { miss, writers } => {
            let mut all: Vec<Reason> = writers
                .iter()
                .map(|u| {
                    let (task, command) = upstream(u);
                    Reason {
                        kind: "writtenFirst",
                        text: text.clone(),
                        task,
                        command,
                        ..Reason::default()
                    }
                })
                .collect();
            all.extend(miss_reasons(miss));
            cache("unknown", all)
        }
        Prediction::Disabled => cache("disabled", Vec::new()),
        Prediction::Unavailable(u) => cache("unavailable", vec![unavailable(u)]),
        Prediction::Locked { holder } => cache(
            "unknown",
            vec![Reason {
                kind: "locked",
                text,
                pid: *holder,
                ..Reason::default()
            }],
        ),
        Prediction::Fails(f) => cache(
            "error",
            vec![Reason {
                kind: match f {
                    crate::events::Failure::ProgramNotFound { .. } => "programNotFound",
                    _ => "cannotStart",
                },
                text,
                ..Reason::default()
            }],
        ),
        Prediction::NotStarted { after } => cache(
            "skipped",
            vec![Reason {
                kind: "dependencyFails",
                text,
                task: Some(after.clone()),
                ..Reason::default()
            }],
        ),
    }
}

/// The task or the command an `Upstream` names.
fn upstream(u: &Upstream) -> (Option<String>, Option<String>) {
    match u {
        Upstream::Task(label) => (Some(label.clone()), None),
        Upstream::Command(c) => (None, Some(c.clone())),
    }
}

/// What the last run's header said for one command.
fn status(s: &CacheStatus) -> Cache {
    match s {
        CacheStatus::Disabled => cache("disabled", Vec::new()),
        CacheStatus::Hit { remote } => Cache {
            status: "hit",
            remote: Some(*remote),
            reasons: Vec::new(),
        },
        CacheStatus::Miss(m) => cache("miss", miss_reasons(m)),
        CacheStatus::Unavailable(u) => cache("unavailable", vec![unavailable(u)]),
    }
}

fn unavailable(u: &Unavailable) -> Reason {
    let (kind, pid) = match u {
        Unavailable::Locked { holder } => ("locked", *holder),
        Unavailable::HeldByAncestor { holder, .. } => ("heldByAncestor", Some(*holder)),
        Unavailable::OpenFailed { .. } => ("openFailed", None),
        Unavailable::ReadFailed { .. } => ("readFailed", None),
        Unavailable::NotOpened => ("notOpened", None),
    };
    Reason {
        kind,
        text: reasons::unavailable(u),
        pid,
        ..Reason::default()
    }
}

fn miss_reasons(m: &Miss) -> Vec<Reason> {
    match m {
        Miss::FirstRun => vec![miss_reason(&MissReason::NoPreviousRun, &RelPath::root())],
        Miss::Changed { reasons, base } => reasons
            .as_slice()
            .iter()
            .map(|r| miss_reason(r, base))
            .collect(),
        Miss::RestoreFailed { error } => vec![Reason {
            kind: "restoreFailed",
            text: format!("its stored outputs could not be restored ({error})"),
            ..Reason::default()
        }],
    }
}

/// One miss reason: its kind, its words (paths relative to the task's
/// package, as in the header) and what it is about.
fn miss_reason(r: &MissReason, base: &RelPath) -> Reason {
    let (kind, path, name) = match r {
        MissReason::NoPreviousRun => ("noPreviousRun", None, None),
        MissReason::PreviousRunEvicted => ("previousRunEvicted", None, None),
        MissReason::ArgsChanged => ("argsChanged", None, None),
        MissReason::ProgramChanged => ("programChanged", None, None),
        MissReason::ToolChanged(p) => ("toolChanged", None, Some(p)),
        MissReason::WorkingDirectoryChanged => ("workingDirectoryChanged", None, None),
        MissReason::InputConfigChanged => ("inputConfigChanged", None, None),
        MissReason::OutputConfigChanged => ("outputConfigChanged", None, None),
        MissReason::PlatformChanged => ("platformChanged", None, None),
        MissReason::UntrackedEnvSet(n) => ("untrackedEnvSet", None, Some(n)),
        MissReason::UntrackedEnvUnset(n) => ("untrackedEnvUnset", None, Some(n)),
        MissReason::EnvQueryUnreadable(q) => ("envQueryUnreadable", None, Some(q)),
        MissReason::EnvChanged(n) => ("envChanged", None, Some(n)),
        MissReason::EnvAdded(n) => ("envAdded", None, Some(n)),
        MissReason::EnvRemoved(n) => ("envRemoved", None, Some(n)),
        MissReason::Modified(p) => ("modified", Some(p), None),
        MissReason::Added(p) => ("added", Some(p), None),
        MissReason::Removed(p) => ("removed", Some(p), None),
        MissReason::OutputChanged(p) => ("outputChanged", Some(p), None),
        MissReason::LeftByUnstoredRun(p) => ("leftByUnstoredRun", Some(p), None),
    };
    Reason {
        kind,
        text: r.display_in(base).to_string(),
        path: path.map(ToString::to_string),
        name: name.cloned(),
        ..Reason::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::MissReasons;
    use crate::events::Failure;
    use crate::report::plan::PlannedCommand;

    fn info(id: &str, deps: &[&str]) -> TaskInfo {
        TaskInfo::new(
            id.to_owned(),
            Some("node build.js".to_owned()),
            deps.iter().map(|d| (*d).to_owned()).collect(),
        )
    }

    fn planned(id: &str, deps: &[&str], p: Prediction) -> PlannedTask {
        PlannedTask {
            info: info(id, deps),
            commands: vec![PlannedCommand {
                command: "node build.js".to_owned(),
                cwd: "~/packages/app".to_owned(),
                prediction: p,
            }],
        }
    }

    fn pkg() -> RelPath {
        RelPath::root().join(b"packages").join(b"app")
    }

    /// The reasons this session added: a program outside the workspace that
    /// changed, an output holding what vp did not leave there, and a file a
    /// run that was not stored left.
    #[test]
    fn tool_and_output_reasons_name_what_changed() {
        let as_json =
            |r: &MissReason| serde_json::to_value(miss_reason(r, &pkg())).expect("serializes");
        assert_eq!(
            as_json(&MissReason::ToolChanged("/usr/bin/node".into())),
            serde_json::json!({"kind": "toolChanged", "text": "program '/usr/bin/node' changed",
                "name": "/usr/bin/node"})
        );
        assert_eq!(
            as_json(&MissReason::OutputChanged(pkg().join(b".env.local"))),
            serde_json::json!({"kind": "outputChanged",
                "text": "output '.env.local' holds what vp did not leave there",
                "path": "packages/app/.env.local"})
        );
        assert_eq!(
            as_json(&MissReason::LeftByUnstoredRun(pkg().join(b"out/chunk.js"))),
            serde_json::json!({"kind": "leftByUnstoredRun",
                "text": "'out/chunk.js' was left by a run that was not stored",
                "path": "packages/app/out/chunk.js"})
        );
    }

    #[test]
    fn a_plan_lists_tasks_in_order_with_their_predictions() {
        let src = pkg().join(b"src").join(b"a.ts");
        let tasks = [
            planned(
                "@s/lib#build",
                &[],
                Prediction::Miss(Miss::Changed {
                    reasons: MissReasons::new(vec![
                        MissReason::Modified(src),
                        MissReason::EnvChanged("MODE".into()),
                    ]),
                    base: pkg(),
                }),
            ),
            planned(
                "@s/app#build",
                &["@s/lib#build"],
                Prediction::HitUnless {
                    runs: vec![Upstream::Task("@s/lib#build".into())],
                },
            ),
        ];
        let doc: serde_json::Value = serde_json::from_str(&plan(&tasks)).expect("valid JSON");
        assert_eq!(
            doc,
            serde_json::json!({
                "version": 1,
                "tasks": [
                    {
                        "id": "@s/lib#build", "package": "@s/lib", "task": "build",
                        "command": "node build.js", "dependsOn": [],
                        "cache": {"status": "miss", "reasons": [
                            {"kind": "envChanged", "text": "env 'MODE' changed", "name": "MODE"},
                            {"kind": "modified", "text": "'src/a.ts' modified", "path": "packages/app/src/a.ts"}
                        ]},
                        "commands": [{"command": "node build.js", "cwd": "~/packages/app",
                            "cache": {"status": "miss", "reasons": [
                                {"kind": "envChanged", "text": "env 'MODE' changed", "name": "MODE"},
                                {"kind": "modified", "text": "'src/a.ts' modified", "path": "packages/app/src/a.ts"}
                            ]}}]
                    },
                    {
                        "id": "@s/app#build", "package": "@s/app", "task": "build",
                        "command": "node build.js", "dependsOn": ["@s/lib#build"],
                        "cache": {"status": "unknown", "reasons": [
                            {"kind": "runsFirst", "task": "@s/lib#build",
                             "text": "would hit unless @s/lib#build changes its outputs"}
                        ]},
                        "commands": [{"command": "node build.js", "cwd": "~/packages/app",
                            "cache": {"status": "unknown", "reasons": [
                                {"kind": "runsFirst", "task": "@s/lib#build",
                                 "text": "would hit unless @s/lib#build changes its outputs"}
                            ]}}]
                    }
                ]
            })
        );
    }

    #[test]
    fn every_status_has_its_name() {
        let status_of = |p: Prediction| predicted(&p).status;
        assert_eq!(status_of(Prediction::Hit), "hit");
        assert_eq!(status_of(Prediction::Disabled), "disabled");
        assert_eq!(status_of(Prediction::Miss(Miss::FirstRun)), "miss");
        assert_eq!(
            status_of(Prediction::Unavailable(Unavailable::HeldByAncestor {
                holder: 3,
                why: crate::cache::OuterCaching::Listed,
            })),
            "unavailable"
        );
        let locked = predicted(&Prediction::Locked { holder: Some(9) });
        assert_eq!(
            (locked.status, locked.reasons[0].kind),
            ("unknown", "locked")
        );
        assert_eq!(locked.reasons[0].pid, Some(9));
        let fails = predicted(&Prediction::Fails(Failure::ProgramNotFound {
            program: "vitest".into(),
        }));
        assert_eq!(
            (fails.status, fails.reasons[0].kind),
            ("error", "programNotFound")
        );
        assert_eq!(
            status_of(Prediction::NotStarted {
                after: "a#b".into()
            }),
            "skipped"
        );
        let first = miss_reasons(&Miss::FirstRun);
        assert_eq!(
            (first[0].kind, first[0].text.as_str()),
            ("noPreviousRun", "no previous run")
        );
    }

    #[test]
    fn the_last_run_adds_outcomes_and_totals() {
        let lib = info("lib#build", &[]);
        let app = info("app#build", &["lib#build"]);
        let headers = [CommandHeader {
            cwd: String::new(),
            command: "node build.js".into(),
            status: CacheStatus::Hit { remote: false },
        }];
        let done = (
            TaskOutcome::Failed {
                exit_code: 2,
                failure: Failure::Exited {
                    command: "node build.js".into(),
                    code: 2,
                },
            },
            Duration::from_millis(1500),
        );
        let stats = RunStats {
            tasks: 2,
            failed: 1,
            skipped: 0,
            first_failure: Some(("lib#build".into(), 2)),
            duration: Duration::from_millis(1600),
            ..RunStats::default()
        };
        let text = last_run(
            &[
                RanTask {
                    info: &lib,
                    headers: &headers,
                    finished: Some(&done),
                    not_cached: None,
                },
                RanTask {
                    info: &app,
                    headers: &[],
                    finished: None,
                    not_cached: None,
                },
            ],
            &stats,
        );
        let doc: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        let lib = &doc["tasks"][0];
        assert_eq!(
            lib["cache"],
            serde_json::json!({"status": "hit", "remote": false, "reasons": []})
        );
        assert_eq!(lib["outcome"], "failed");
        assert_eq!(lib["exitCode"], 2);
        assert_eq!(lib["durationMs"], 1500);
        assert_eq!(lib["error"], "failed: `node build.js` exited with code 2");
        let app = &doc["tasks"][1];
        assert_eq!(app["outcome"], "notFinished");
        assert_eq!(app["exitCode"], serde_json::Value::Null);
        assert_eq!(app["cache"]["status"], "disabled");
        assert_eq!(doc["totals"]["exitCode"], 2);
        assert_eq!(doc["totals"]["durationMs"], 1600);
        assert_eq!(doc["version"], 1);
    }
}
