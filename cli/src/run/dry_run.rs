//! `--dry-run`: what `vp run` / `vp build` would do, without doing it.
//!
//! Each command of each task, in execution order, goes through the real
//! stages' first half: `decide` (the same cache mode and program
//! resolution) and the store's lookup as `store::peek` (the same
//! fingerprint, candidates and miss reasons). Nothing runs, nothing is
//! restored, and nothing is written: the store is opened read-only (also
//! while another vp holds it, as a run reads it), no cache directory is created, no
//! `last-run.*` is written, the remote cache is not asked. The result is a
//! `report::plan::PlannedTask` list that only `report` renders.

use std::ffi::OsString;
use std::rc::Rc;
use std::sync::Arc;

use anyhow::Context;

use super::decide::{self, CacheMode};
use super::store::{self, Looked, StoreScope};
use super::task::{RunCache, TaskSpec, item_id};
use crate::args::ExecOptions;
use crate::cache::{CacheSettings, ReadOnly, RelPath};
use crate::events::{Miss, Unavailable};
use crate::report::plan::{PlannedCommand, PlannedTask, Prediction, TaskInfo, Upstream};
use crate::workspace::Workspace;

/// Prints the plan of `specs` (with `infos` describing them, `deps` their
/// dependencies) as text or, with `--json`, as JSON.
pub(super) fn dry_run(
    ws: &Workspace,
    specs: &[TaskSpec],
    deps: &[Vec<usize>],
    infos: Vec<TaskInfo>,
    exec: &ExecOptions,
) -> anyhow::Result<u8> {
    let cwd = std::env::current_dir().context("cannot determine the current directory")?;
    let settings = CacheSettings::resolve(exec.cache_dir.as_deref(), None, &ws.root, &cwd, |k| {
        std::env::var(k).ok()
    })?;
    let cache = if specs.iter().any(|s| s.cache_enabled) {
        open(&settings)
    } else {
        Err(Unavailable::NotOpened)
    };
    let scope = StoreScope {
        workspace_root: ws.root.clone(),
        full_env: Arc::new(std::env::vars_os().collect::<Vec<(OsString, OsString)>>()),
        // Peeks of every task at once, side by side on the pool.
        thread: super::store::StoreThread::Pool,
    };
    let programs = super::resolve::ProgramSearch::new(&ws.root);
    let predictions = smol::block_on(predict(specs, deps, &cache, &scope, &programs));
    let planned: Vec<PlannedTask> = infos
        .into_iter()
        .zip(specs)
        .zip(predictions)
        .map(|((info, spec), predictions)| PlannedTask {
            info,
            commands: spec
                .items
                .iter()
                .zip(predictions)
                .map(|(item, predicted)| PlannedCommand {
                    command: spec.display.clone().unwrap_or_else(|| item.to_string()),
                    cwd: spec.header_cwd.clone(),
                    prediction: predicted.prediction,
                })
                .collect(),
        })
        .collect();
    let mut out = std::io::stdout();
    // A closed stdout (`| head`) is not an error of vp's.
    let _ = if exec.json {
        use std::io::Write as _;
        writeln!(out, "{}", crate::report::json::plan(&planned))
    } else {
        crate::report::plan::text(&mut out, &planned)
    };
    Ok(0)
}

/// The store as a dry run reads it: `Ok(None)` when there is none yet
/// (every lookup a first run), or why it cannot be read.
fn open(settings: &CacheSettings) -> Result<Option<RunCache>, Unavailable> {
    let dir = &settings.dir;
    match crate::cache::open_read_only(dir, &settings.open.cached_by) {
        Ok(ReadOnly::Ready(store)) => Ok(Some(RunCache {
            store: Arc::new(store),
            dir: dir.to_path_buf(),
        })),
        Ok(ReadOnly::Empty) => Ok(None),
        Ok(ReadOnly::Locked { holder }) => Err(Unavailable::Locked { holder }),
        Ok(ReadOnly::HeldByAncestor { holder, why }) => {
            Err(Unavailable::HeldByAncestor { holder, why })
        }
        Err(e) => Err(Unavailable::OpenFailed {
            dir: dir.to_path_buf(),
            error: e.to_string(),
        }),
    }
}

/// What would write files before a command: a task it comes after
/// (directly or not) or an earlier command of its own, with the outputs the
/// store knows for it.
struct Writer {
    who: Upstream,
    outputs: Vec<RelPath>,
}

/// Each task's predictions, one per command, in plan order (every task
/// comes after its `deps`).
async fn predict(
    specs: &[TaskSpec],
    deps: &[Vec<usize>],
    cache: &Result<Option<RunCache>, Unavailable>,
    scope: &StoreScope,
    programs: &super::resolve::ProgramSearch,
) -> Vec<Vec<Predicted>> {
    let mut all: Vec<Vec<Predicted>> = Vec::with_capacity(specs.len());
    // Per task: itself and everything before it, as writers.
    let mut written: Vec<Vec<Rc<Writer>>> = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        let mut before: Vec<Upstream> = Vec::new();
        let mut writers: Vec<Rc<Writer>> = Vec::new();
        let mut failed: Option<String> = None;
        for &d in deps.get(i).map_or(&[][..], Vec::as_slice) {
            let Some(theirs) = all.get(d) else { continue };
            if theirs.iter().any(|p| p.prediction.fails()) {
                failed.get_or_insert_with(|| specs[d].label.clone());
            } else if theirs.iter().any(Predicted::writes) {
                before.push(Upstream::Task(specs[d].label.clone()));
            }
            for w in written.get(d).into_iter().flatten() {
                if !writers.iter().any(|mine| Rc::ptr_eq(mine, w)) {
                    writers.push(Rc::clone(w));
                }
            }
        }
        let mut own = Writer {
            who: Upstream::Task(spec.label.clone()),
            outputs: Vec::new(),
        };
        let mut mine = Vec::with_capacity(spec.items.len());
        for (n, item) in spec.items.iter().enumerate() {
            let mut predicted = match &failed {
                Some(after) => Predicted {
                    prediction: Prediction::NotStarted {
                        after: after.clone(),
                    },
                    outputs: Vec::new(),
                    restore_changes: false,
                },
                None => predict_one(spec, n, item, cache, scope, &before, programs).await,
            };
            if let Prediction::Miss(miss) = predicted.prediction {
                predicted.prediction = uncertain_miss(miss, &writers);
            }
            if failed.is_none() && predicted.prediction.fails() {
                failed = Some(format!("its command `{item}`"));
            } else if predicted.writes() {
                before.push(Upstream::Command(item.to_string()));
            }
            // Later commands of this task see this one as a writer.
            writers.push(Rc::new(Writer {
                who: Upstream::Command(item.to_string()),
                outputs: predicted.outputs.clone(),
            }));
            own.outputs.extend(predicted.outputs.iter().cloned());
            mine.push(predicted);
        }
        // What comes after this task sees the task itself, not its commands.
        writers.retain(|w| matches!(w.who, Upstream::Task(_)));
        writers.push(Rc::new(own));
        written.push(writers);
        all.push(mine);
    }
    all
}

/// One command's prediction, with what it would write: its outputs as the
/// store knows them, and whether a hit's restore would change files.
struct Predicted {
    prediction: Prediction,
    outputs: Vec<RelPath>,
    restore_changes: bool,
}

impl Predicted {
    /// Whether it would (or might) change files the commands after it
    /// read: it would execute, or its hit restores other files than are on
    /// disk (a hit on an older entry brings back that entry's outputs).
    fn writes(&self) -> bool {
        self.prediction.may_run() || self.restore_changes
    }
}

/// A miss stays certain unless every difference is a file a writer before
/// it writes (e.g. a dependency's deleted output that its hit restores).
fn uncertain_miss(miss: Miss, writers: &[Rc<Writer>]) -> Prediction {
    let Miss::Changed { reasons, .. } = &miss else {
        return Prediction::Miss(miss);
    };
    let touches =
        |w: &Writer, p: &RelPath| w.outputs.iter().any(|o| o.is_within(p) || p.is_within(o));
    let mut by: Vec<Upstream> = Vec::new();
    for r in reasons.as_slice() {
        let Some(path) = r.path() else {
            return Prediction::Miss(miss);
        };
        let Some(w) = writers.iter().find(|w| touches(w, path)) else {
            return Prediction::Miss(miss);
        };
        if !by.contains(&w.who) {
            by.push(w.who.clone());
        }
    }
    if by.is_empty() {
        return Prediction::Miss(miss);
    }
    Prediction::MissUnless { miss, writers: by }
}

/// One command: `decide`, then the read-only lookup; and the outputs the
/// store knows for it. `before`: what would run ahead of it and may change
/// its inputs.
async fn predict_one(
    spec: &TaskSpec,
    n: usize,
    item: &super::command_line::CommandItem,
    cache: &Result<Option<RunCache>, Unavailable>,
    scope: &StoreScope,
    before: &[Upstream],
    programs: &super::resolve::ProgramSearch,
) -> Predicted {
    let only = |prediction| Predicted {
        prediction,
        outputs: Vec::new(),
        restore_changes: false,
    };
    let process = match decide::process(spec, item, programs) {
        Ok(p) => p,
        Err(failure) => return only(Prediction::Fails(failure)),
    };
    let store = match decide::decide(spec.cache_enabled, cache) {
        CacheMode::Disabled => return only(Prediction::Disabled),
        // A real run waits for the holder (bounded) and may then look up.
        CacheMode::Unavailable(Unavailable::Locked { holder }) => {
            return only(Prediction::Locked { holder });
        }
        CacheMode::Unavailable(why) => return only(Prediction::Unavailable(why)),
        CacheMode::LookUp(None) => return only(Prediction::Miss(Miss::FirstRun)),
        CacheMode::LookUp(Some(store)) => store,
    };
    let fingerprint = Arc::new(decide::fingerprint(
        spec,
        &process,
        &scope.workspace_root,
        &scope.full_env,
    ));
    // Whether a hit's restore would change files only matters for a hit
    // that is certain so far: an uncertain one already counts as writing.
    let check_restore = before.is_empty();
    let peeked = store::peek(
        store,
        spec,
        scope,
        &item_id(spec, n),
        &fingerprint,
        check_restore,
    )
    .await;
    let prediction = match peeked.looked {
        Looked::Hit { .. } if before.is_empty() => Prediction::Hit,
        Looked::Hit { .. } => Prediction::HitUnless {
            runs: before.to_vec(),
        },
        Looked::Miss(miss, _) => Prediction::Miss(miss),
        Looked::Unavailable(why) => Prediction::Unavailable(why),
    };
    Predicted {
        prediction,
        outputs: peeked.outputs,
        restore_changes: peeked.restore_changes,
    }
}
