//! Which tasks a cycle runs: the ones an edit affects, everything that
//! depends on them in the plan, and every task that read what one of them
//! writes, in the plan's order, with the dependencies between them (the
//! scheduler then never runs a task before what it depends on, and never
//! twice at once: each runs once per cycle, and cycles do not overlap).

use std::collections::BTreeSet;

/// A cycle's tasks, as plan indices in the plan's (topological) order, and
/// for each the positions in `tasks` of the ones it comes after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selection {
    pub(crate) tasks: Vec<usize>,
    pub(crate) deps: Vec<Vec<usize>>,
}

/// `deps`: the plan's dependencies (each task comes after its deps, and
/// after every task with a lower index that it depends on); `affected`: the
/// tasks an edit re-runs; `readers(i)`: the tasks that read an output of
/// `i`; `runnable(i)`: false for the tasks no edit re-runs (they are
/// passed through, not run).
pub(crate) fn select(
    deps: &[Vec<usize>],
    affected: &BTreeSet<usize>,
    readers: &dyn Fn(usize) -> Vec<usize>,
    runnable: &dyn Fn(usize) -> bool,
) -> Selection {
    let n = deps.len();
    let mut dependents = vec![Vec::new(); n];
    for (j, ds) in deps.iter().enumerate() {
        for &d in ds {
            if d < n {
                dependents[d].push(j);
            }
        }
    }
    let mut reached = vec![false; n];
    let mut work: Vec<usize> = affected.iter().copied().filter(|&i| i < n).collect();
    let mut observed_edges: BTreeSet<(usize, usize)> = BTreeSet::new();
    while let Some(i) = work.pop() {
        if std::mem::replace(&mut reached[i], true) {
            continue;
        }
        work.extend(dependents[i].iter().copied());
        for j in readers(i) {
            // Only forward in the plan's order: a reader placed before its
            // writer (no declared dependency) is left to the next cycle,
            // which its own watch starts; an edge backwards could close a
            // cycle.
            if j > i && j < n {
                observed_edges.insert((i, j));
                work.push(j);
            }
        }
    }
    let tasks: Vec<usize> = (0..n).filter(|&i| reached[i] && runnable(i)).collect();
    let position = |i: usize| tasks.iter().position(|&t| t == i);
    let deps = tasks
        .iter()
        .map(|&j| {
            let mut before: BTreeSet<usize> = ancestors(deps, j)
                .into_iter()
                .filter_map(&position)
                .collect();
            before.extend(
                observed_edges
                    .iter()
                    .filter(|&&(_, r)| r == j)
                    .filter_map(|&(w, _)| position(w)),
            );
            before.into_iter().collect()
        })
        .collect();
    Selection { tasks, deps }
}

/// Every task `j` depends on, directly or not.
fn ancestors(deps: &[Vec<usize>], j: usize) -> BTreeSet<usize> {
    let mut seen = BTreeSet::new();
    let mut work = deps.get(j).cloned().unwrap_or_default();
    while let Some(d) = work.pop() {
        if seen.insert(d) {
            work.extend(deps.get(d).into_iter().flatten().copied());
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[usize]) -> BTreeSet<usize> {
        items.iter().copied().collect()
    }

    #[test]
    fn an_edit_runs_the_task_and_its_dependents_in_order() {
        // 0: a#build, 1: b#build (after a), 2: c#build (after b), 3: d (alone)
        let deps = vec![vec![], vec![0], vec![1], vec![]];
        let s = select(&deps, &set(&[0]), &|_| Vec::new(), &|_| true);
        assert_eq!(s.tasks, vec![0, 1, 2]);
        assert_eq!(s.deps, vec![vec![], vec![0], vec![0, 1]]);
        let s = select(&deps, &set(&[1]), &|_| Vec::new(), &|_| true);
        assert_eq!(s.tasks, vec![1, 2]);
        assert_eq!(s.deps, vec![vec![], vec![0]]);
    }

    #[test]
    fn a_reader_of_an_output_runs_after_its_writer() {
        // b (1) reads what a (0) writes, with no declared dependency.
        let deps = vec![vec![], vec![]];
        let readers = |i: usize| if i == 0 { vec![1] } else { Vec::new() };
        let s = select(&deps, &set(&[0]), &readers, &|_| true);
        assert_eq!(s.tasks, vec![0, 1]);
        assert_eq!(s.deps, vec![vec![], vec![0]]);
        // Backwards in the plan's order: not followed.
        let readers = |i: usize| if i == 1 { vec![0] } else { Vec::new() };
        let s = select(&deps, &set(&[1]), &readers, &|_| true);
        assert_eq!(s.tasks, vec![1]);
    }

    #[test]
    fn a_pinned_task_is_passed_through_not_run() {
        // 0 → 1 (persistent) → 2
        let deps = vec![vec![], vec![0], vec![1]];
        let s = select(&deps, &set(&[0]), &|_| Vec::new(), &|i| i != 1);
        assert_eq!(s.tasks, vec![0, 2]);
        assert_eq!(s.deps, vec![vec![], vec![0]]);
    }

    #[test]
    fn nothing_affected_runs_nothing() {
        let deps = vec![vec![], vec![0]];
        let s = select(&deps, &BTreeSet::new(), &|_| Vec::new(), &|_| true);
        assert!(s.tasks.is_empty());
    }
}
