//! Which tasks a batch of changes re-runs (`watched::TaskWatch::affected_by`
//! for each task), which changes were the causes and which no task read;
//! and which tasks read what a task writes. Pure: `cycle` acts on it.

use std::collections::BTreeSet;
use std::path::Path;

use super::watched::{Change, TaskWatch};

/// What a batch of changes does.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Affected<'a> {
    /// Plan indices of the tasks to re-run.
    pub(crate) tasks: BTreeSet<usize>,
    /// The changed paths that re-run something, first heard first.
    pub(crate) causes: Vec<&'a Path>,
    /// The changed paths that no task reads or writes. A task's output, or
    /// a path some task reads whose change did not count (its own write,
    /// one it already saw), is in neither list: that is no news.
    pub(crate) ignored: Vec<&'a Path>,
}

/// `watches`: per plan index, the task's watch once it ran.
pub(crate) fn affected<'a>(
    changes: &[&'a Change],
    watches: &[Option<TaskWatch>],
    cache_dir: &Path,
) -> Affected<'a> {
    let mut out = Affected::default();
    for c in changes {
        let mut hit = false;
        for (i, w) in watches.iter().enumerate() {
            if w.as_ref().is_some_and(|w| w.affected_by(c, cache_dir)) {
                out.tasks.insert(i);
                hit = true;
            }
        }
        let path = c.path.as_path();
        if hit {
            if !out.causes.contains(&path) {
                out.causes.push(path);
            }
        } else if !watches
            .iter()
            .flatten()
            .any(|w| w.reads(path, cache_dir) || w.outputs.contains(path))
            && !out.ignored.contains(&path)
        {
            out.ignored.push(path);
        }
    }
    out
}

/// The tasks (plan indices) that read an output of task `writer`.
pub(crate) fn readers(
    watches: &[Option<TaskWatch>],
    writer: usize,
    cache_dir: &Path,
) -> Vec<usize> {
    let Some(Some(w)) = watches.get(writer) else {
        return Vec::new();
    };
    watches
        .iter()
        .enumerate()
        .filter(|&(j, r)| {
            j != writer
                && r.as_ref()
                    .is_some_and(|r| w.outputs.iter().any(|o| r.reads(o, cache_dir)))
        })
        .map(|(j, _)| j)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::watch::watched::{ChangeKind, Read, Reads, RunWindow};

    const CACHE: &str = "/ws/node_modules/.cache/vp";

    fn watch(reads: &[&str], outputs: &[&str], window: Option<RunWindow>) -> Option<TaskWatch> {
        Some(TaskWatch {
            reads: Reads::Observed(reads.iter().map(|p| Read::Path(PathBuf::from(p))).collect()),
            outputs: outputs.iter().map(PathBuf::from).collect(),
            window,
        })
    }

    fn change(path: &str, at: Instant) -> Change {
        Change {
            path: PathBuf::from(path),
            kind: ChangeKind::Content,
            at,
        }
    }

    #[test]
    fn a_chain_is_not_re_run_by_its_own_writes_but_by_a_later_edit() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        // a ran 0..10 and wrote out.txt at 5; b, which reads it, ran 20..30.
        let watches = vec![
            watch(
                &["/ws/a/in.txt"],
                &["/ws/a/out.txt"],
                Some(RunWindow {
                    started: ms(0),
                    finished: ms(10),
                }),
            ),
            watch(
                &["/ws/a/out.txt", "/ws/b/in.txt"],
                &["/ws/b/out.txt"],
                Some(RunWindow {
                    started: ms(20),
                    finished: ms(30),
                }),
            ),
        ];
        let cache = Path::new(CACHE);
        let own = change("/ws/a/out.txt", ms(5));
        let b_own = change("/ws/b/out.txt", ms(25));
        let quiet = affected(&[&own, &b_own], &watches, cache);
        assert_eq!(quiet, Affected::default(), "own writes are no news");
        let edit = change("/ws/b/in.txt", ms(40));
        let notes = change("/ws/notes.txt", ms(41));
        let a = affected(&[&own, &edit, &notes], &watches, cache);
        assert_eq!(a.tasks, [1].into_iter().collect());
        assert_eq!(a.causes, [Path::new("/ws/b/in.txt")]);
        assert_eq!(a.ignored, [Path::new("/ws/notes.txt")]);
        assert_eq!(readers(&watches, 0, cache), [1]);
        assert!(readers(&watches, 1, cache).is_empty());
    }

    #[test]
    fn each_cause_is_listed_once_in_the_order_heard() {
        let now = Instant::now();
        let watches = vec![watch(&["/ws/a/x", "/ws/a/y"], &[], None)];
        let (x, y) = (change("/ws/a/x", now), change("/ws/a/y", now));
        let a = affected(&[&y, &x, &y], &watches, Path::new(CACHE));
        assert_eq!(a.causes, [Path::new("/ws/a/y"), Path::new("/ws/a/x")]);
        assert_eq!(a.tasks, [0].into_iter().collect());
    }
}
