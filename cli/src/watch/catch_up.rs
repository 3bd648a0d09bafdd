//! Edits vp could not hear: a directory is watched only once a cycle has
//! shown that a task read something in it, so an edit made before then (in
//! the first cycle, or in a directory a task read for the first time) raises
//! no event. Once the watches are set, each task that ran in the cycle is
//! checked against the file system for what it read in a directory that was
//! not watched while it ran: anything that changed after its run (a file's
//! or listing's ctime, a missing path that now exists), and the input its
//! run was refused for because it changed while the task ran. Those become
//! changes like the ones the watcher reports.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use super::fs_events::ctime;
use super::watched::{Change, ChangeKind, Read, Reads, TaskWatch};

/// One task that ran in the cycle: its new watch, and the workspace path of
/// the input its run was refused for, if it was (changed while it ran) and
/// its run was not itself the re-run for such a refusal: two tasks that
/// keep changing each other's inputs while they run in parallel would
/// otherwise re-run each other forever.
pub(super) struct RanTask<'a> {
    pub(super) watch: &'a TaskWatch,
    pub(super) changed_while_running: Option<PathBuf>,
}

/// The changes to report for `tasks`, given the directories that were
/// watched while they ran (`heard`).
pub(super) fn missed_changes(tasks: &[RanTask<'_>], heard: &BTreeSet<PathBuf>) -> Vec<Change> {
    let now = Instant::now();
    let mut changes = Vec::new();
    for task in tasks {
        if let Some(path) = &task.changed_while_running {
            changes.push(Change {
                path: path.clone(),
                kind: ChangeKind::Content,
                at: now,
            });
        }
        let Some(window) = task.watch.window else {
            continue;
        };
        let finished = wall_clock(window.finished, now);
        let reads = match &task.watch.reads {
            Reads::Observed(reads) => reads,
            Reads::Package { earlier, .. } => earlier,
            Reads::Pinned(_) => continue,
        };
        for read in reads {
            if read.watch_dir().is_some_and(|d| heard.contains(&d)) {
                continue;
            }
            if let Some((kind, when)) = changed_since(read, finished) {
                // Placed at its ctime, like a change the watcher heard: a
                // task of the cycle that started after it saw it.
                let at = when
                    .and_then(|t| SystemTime::now().duration_since(t).ok())
                    .and_then(|ago| now.checked_sub(ago))
                    .unwrap_or(now);
                changes.push(Change {
                    path: read.path().to_path_buf(),
                    kind,
                    at,
                });
            }
        }
    }
    changes
}

/// `instant` on the wall clock, as file times are.
fn wall_clock(instant: Instant, now: Instant) -> SystemTime {
    SystemTime::now() - now.saturating_duration_since(instant)
}

/// How `read` changed after `since`, if it did, and when (its ctime, when
/// there is one): a path or listing whose ctime is later (every change of
/// content, names or metadata sets it, and nothing can set it back), a path
/// that is gone, a missing path that exists.
fn changed_since(read: &Read, since: SystemTime) -> Option<(ChangeKind, Option<SystemTime>)> {
    let meta = match std::fs::symlink_metadata(read.path()) {
        Ok(meta) => meta,
        Err(_) if matches!(read, Read::Missing(_)) => return None,
        Err(_) => return Some((ChangeKind::Entries, None)),
    };
    let when = ctime(&meta);
    let kind = match read {
        Read::Missing(_) => return Some((ChangeKind::Entries, when)),
        Read::Listing(_) => ChangeKind::Entries,
        Read::Path(_) => ChangeKind::Content,
    };
    when.filter(|t| *t > since).map(|t| (kind, Some(t)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::watched::RunWindow;
    use std::path::Path;
    use std::time::Duration;

    fn watch(reads: Vec<Read>, window: RunWindow) -> TaskWatch {
        TaskWatch {
            reads: Reads::Observed(reads.into_iter().collect()),
            outputs: BTreeSet::new(),
            window: Some(window),
        }
    }

    #[test]
    fn what_changed_after_the_run_in_an_unwatched_directory_is_a_change() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let (kept, edited, listed, missing) = (
            dir.join("kept.js"),
            dir.join("edited.js"),
            dir.join("src"),
            dir.join("q.cfg"),
        );
        std::fs::write(&kept, "1").expect("write");
        std::fs::write(&edited, "1").expect("write");
        std::fs::create_dir(&listed).expect("mkdir");
        // The ctime clock is coarse: let it move past the run's end.
        let started = Instant::now();
        std::thread::sleep(Duration::from_millis(30));
        let window = RunWindow {
            started,
            finished: Instant::now(),
        };
        std::thread::sleep(Duration::from_millis(30));
        std::fs::write(&edited, "2").expect("edit");
        std::fs::write(listed.join("new.js"), "").expect("add");
        std::fs::write(&missing, "").expect("create");
        let w = watch(
            vec![
                Read::Path(kept.clone()),
                Read::Path(edited.clone()),
                Read::Listing(listed.clone()),
                Read::Missing(missing.clone()),
            ],
            window,
        );
        let ran = [RanTask {
            watch: &w,
            changed_while_running: None,
        }];
        let changed = |heard: &BTreeSet<PathBuf>| {
            missed_changes(&ran, heard)
                .into_iter()
                .map(|c| (c.path, c.kind))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            changed(&BTreeSet::new()),
            vec![
                (edited, ChangeKind::Content),
                (listed.clone(), ChangeKind::Entries),
                (missing, ChangeKind::Entries),
            ]
        );
        // A directory watched while the task ran: the watcher heard it.
        assert_eq!(changed(&BTreeSet::from([dir.clone(), listed])), Vec::new());
    }

    #[test]
    fn the_input_a_run_was_refused_for_is_a_change() {
        let w = TaskWatch {
            reads: Reads::Pinned(crate::events::PinReason::Persistent),
            outputs: BTreeSet::new(),
            window: None,
        };
        let got = missed_changes(
            &[RanTask {
                watch: &w,
                changed_while_running: Some(PathBuf::from("/ws/src/a.js")),
            }],
            &BTreeSet::new(),
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].path, Path::new("/ws/src/a.js"));
    }
}
