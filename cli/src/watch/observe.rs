//! What a cycle tells about each task it ran: from its events, when it ran
//! and whether its run was recorded ([`Seen`]); from the store, what that
//! recorded run read and wrote. Together: the task's next
//! [`TaskWatch`].

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::watched::{Read, Reads, RunWindow, TaskWatch};
use crate::cache::{CacheEntry, InputState, NotStorable, Store};
use crate::events::{
    CacheStatus, NotCached, PinReason, RunEvent, TaskNotice, TaskOutcome, Unobserved,
};

/// What the events of one cycle said about each of its tasks (by the
/// cycle's task index).
pub(crate) struct Seen {
    tasks: RefCell<Vec<TaskSeen>>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct TaskSeen {
    started: Option<Instant>,
    finished: Option<Instant>,
    statuses: Vec<Status>,
    not_cached: Option<NotCached>,
    succeeded: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// A hit, or a miss that ran traced and may be stored.
    Recorded,
    Disabled,
    Unavailable,
}

impl TaskSeen {
    /// The task ran to success (every command exited 0 or was replayed).
    pub(crate) fn succeeded(&self) -> bool {
        self.succeeded
    }

    /// The input (workspace-relative) whose change while the task ran kept
    /// its run from being stored: the run may have seen it half-written.
    pub(crate) fn changed_while_running(&self) -> Option<&crate::cache::RelPath> {
        match &self.not_cached {
            Some(NotCached::Store(
                NotStorable::InputModifiedDuringRun(rel) | NotStorable::EntryAddedDuringRun(rel),
            )) => Some(rel),
            _ => None,
        }
    }
}

impl Seen {
    pub(crate) fn new(tasks: usize) -> Seen {
        Seen {
            tasks: RefCell::new(vec![TaskSeen::default(); tasks]),
        }
    }

    /// Notes what `event` says about its task.
    pub(crate) fn observe(&self, event: &RunEvent) {
        let mut tasks = self.tasks.borrow_mut();
        let (task, apply): (usize, &dyn Fn(&mut TaskSeen)) = match event {
            RunEvent::TaskStarted { task } => (*task, &|t| t.started = Some(Instant::now())),
            RunEvent::CommandStarted { task, header } => (*task, &|t| {
                t.statuses.push(match header.status {
                    CacheStatus::Hit { .. } | CacheStatus::Miss(_) => Status::Recorded,
                    CacheStatus::Disabled => Status::Disabled,
                    CacheStatus::Unavailable(_) => Status::Unavailable,
                });
            }),
            RunEvent::TaskNotice {
                task,
                notice: TaskNotice::NotCached(why),
            } => (*task, &|t| t.not_cached = Some(why.clone())),
            RunEvent::TaskFinished { task, outcome, .. } => (*task, &|t| {
                t.finished = Some(Instant::now());
                t.succeeded = matches!(outcome, TaskOutcome::Succeeded { .. });
            }),
            _ => return,
        };
        if let Some(t) = tasks.get_mut(task) {
            apply(t);
        }
    }

    pub(crate) fn take(&self) -> Vec<TaskSeen> {
        std::mem::take(&mut *self.tasks.borrow_mut())
    }
}

/// One task that ran, as the next watch needs it: what was seen, where its
/// store records are, its package.
pub(crate) struct Ran {
    pub(crate) seen: TaskSeen,
    pub(crate) item_ids: Vec<String>,
    pub(crate) has_commands: bool,
    pub(crate) package_dir: PathBuf,
}

/// The next watch of each task that ran. Reads the store (RocksDB) on a
/// blocking thread.
pub(crate) async fn watches(
    ran: Vec<Ran>,
    store: Option<Arc<Store>>,
    root: PathBuf,
) -> Vec<TaskWatch> {
    blocking::unblock(move || {
        ran.into_iter()
            .map(|r| task_watch(&r, store.as_deref(), &root))
            .collect()
    })
    .await
}

fn task_watch(ran: &Ran, store: Option<&Store>, root: &Path) -> TaskWatch {
    let seen = &ran.seen;
    let window = match (seen.started, seen.finished) {
        (Some(started), Some(finished)) => Some(RunWindow { started, finished }),
        _ => None,
    };
    let mut reads = BTreeSet::new();
    let mut outputs = BTreeSet::new();
    let mut all_found = true;
    for id in &ran.item_ids {
        match store.and_then(|s| stored_entry(s, id)) {
            Some(entry) => add_entry(&entry, root, &mut reads, &mut outputs),
            None => all_found = false,
        }
    }
    let reads = if let Some(NotCached::ToolAsked { by }) = &seen.not_cached {
        Reads::Pinned(PinReason::ToolDisabledCache { by: by.clone() })
    } else if !ran.has_commands {
        // Nothing of its own runs: only what it depends on matters.
        Reads::Observed(BTreeSet::new())
    } else if seen.succeeded
        && seen.not_cached.is_none()
        && seen.statuses.iter().all(|s| *s == Status::Recorded)
        && all_found
    {
        Reads::Observed(reads)
    } else {
        let why = if !seen.succeeded {
            Unobserved::DidNotSucceed
        } else if seen.statuses.contains(&Status::Disabled) {
            Unobserved::CacheOff
        } else if seen.statuses.contains(&Status::Unavailable) {
            Unobserved::CacheUnavailable
        } else {
            Unobserved::NotStored
        };
        Reads::Package {
            dir: ran.package_dir.clone(),
            why,
            earlier: reads,
        }
    };
    TaskWatch {
        reads,
        outputs,
        window,
    }
}

/// The entry the store's record of `item_id` points to: after a hit or a
/// stored run, the one this cycle used.
fn stored_entry(store: &Store, item_id: &str) -> Option<CacheEntry> {
    let record = store.task_record(item_id).ok().flatten()?;
    store.entry(record.entry).ok().flatten()
}

fn add_entry(
    entry: &CacheEntry,
    root: &Path,
    reads: &mut BTreeSet<Read>,
    outputs: &mut BTreeSet<PathBuf>,
) {
    for (rel, state) in &entry.inputs {
        let path = rel.to_abs(root);
        reads.insert(match state {
            InputState::Missing => Read::Missing(path),
            InputState::Dir { .. } => Read::Listing(path),
            InputState::Present { .. } | InputState::File { .. } | InputState::Symlink { .. } => {
                Read::Path(path)
            }
        });
    }
    // Declared `input` globs are re-walked on lookup: a new file matching
    // one in a directory that already holds a match is noticed too.
    for rel in &entry.glob_inputs {
        let path = rel.to_abs(root);
        if let Some(dir) = path.parent() {
            reads.insert(Read::Listing(dir.to_path_buf()));
        }
        reads.insert(Read::Path(path));
    }
    outputs.extend(entry.outputs.keys().map(|rel| rel.to_abs(root)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{CommandHeader, Miss};

    fn header(status: CacheStatus) -> CommandHeader {
        CommandHeader {
            cwd: String::new(),
            command: "node build.js".into(),
            status,
        }
    }

    fn ran(seen: TaskSeen) -> Ran {
        Ran {
            seen,
            item_ids: vec!["a#build".into()],
            has_commands: true,
            package_dir: "/ws/a".into(),
        }
    }

    fn succeeded() -> TaskOutcome {
        TaskOutcome::Succeeded {
            cache_hits: 0,
            remote_hits: 0,
            commands: 1,
            saved: std::time::Duration::ZERO,
        }
    }

    fn seen_with(events: &[RunEvent]) -> TaskSeen {
        let seen = Seen::new(1);
        for e in events {
            seen.observe(e);
        }
        seen.take().remove(0)
    }

    #[test]
    fn an_uncached_task_watches_its_package() {
        let seen = seen_with(&[
            RunEvent::TaskStarted { task: 0 },
            RunEvent::CommandStarted {
                task: 0,
                header: header(CacheStatus::Disabled),
            },
            RunEvent::TaskFinished {
                task: 0,
                outcome: succeeded(),
                duration: std::time::Duration::ZERO,
            },
        ]);
        let w = task_watch(&ran(seen), None, Path::new("/ws"));
        assert_eq!(
            w.reads,
            Reads::Package {
                dir: "/ws/a".into(),
                why: Unobserved::CacheOff,
                earlier: BTreeSet::new()
            }
        );
        assert!(w.window.is_some());
    }

    #[test]
    fn a_tool_that_disabled_the_cache_pins_its_task() {
        let seen = seen_with(&[
            RunEvent::CommandStarted {
                task: 0,
                header: header(CacheStatus::Miss(Miss::FirstRun)),
            },
            RunEvent::TaskNotice {
                task: 0,
                notice: TaskNotice::NotCached(NotCached::ToolAsked { by: "vite".into() }),
            },
        ]);
        let w = task_watch(&ran(seen), None, Path::new("/ws"));
        assert_eq!(
            w.reads,
            Reads::Pinned(PinReason::ToolDisabledCache { by: "vite".into() })
        );
    }

    #[test]
    fn a_failed_task_watches_its_package() {
        let seen = seen_with(&[RunEvent::CommandStarted {
            task: 0,
            header: header(CacheStatus::Miss(Miss::FirstRun)),
        }]);
        let w = task_watch(&ran(seen), None, Path::new("/ws"));
        assert!(matches!(
            w.reads,
            Reads::Package {
                why: Unobserved::DidNotSucceed,
                ..
            }
        ));
    }
}
