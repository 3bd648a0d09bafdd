//! The watched set: per task, what its last run was seen to read
//! ([`TaskWatch`]), and which tasks a changed path affects. Pure data and
//! rules; `observe` builds it from the store, `fs_events` watches its
//! directories.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::events::{PinReason, Unobserved};

/// One path a task's run depended on, as the store recorded it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Read {
    /// A file (or link, or a path whose type only was probed): its content
    /// or existence counts.
    Path(PathBuf),
    /// A directory whose entries were listed: an entry added, removed or
    /// renamed counts, an entry's content does not.
    Listing(PathBuf),
    /// A path probed that did not exist: creating it (or a directory on the
    /// way to it) counts.
    Missing(PathBuf),
}

impl Read {
    pub(crate) fn path(&self) -> &Path {
        match self {
            Read::Path(p) | Read::Listing(p) | Read::Missing(p) => p,
        }
    }

    /// Whether `change` can alter what the task saw through this read.
    fn matches(&self, change: &Change) -> Match {
        let c = change.path.as_path();
        let p = self.path();
        if c == p {
            return Match::Exact;
        }
        // A directory on the way was created, removed or renamed.
        if change.kind == ChangeKind::Entries && p.starts_with(c) {
            return Match::Exact;
        }
        match self {
            // A tool's cache is no entry of its directory's listing
            // (`cache::tool_cache`): `.next/cache` made or removed.
            Read::Listing(d)
                if change.kind == ChangeKind::Entries
                    && c.parent() == Some(d)
                    && !c.file_name().is_some_and(|name| {
                        crate::cache::tool_cache::is_entry_of(d, name.as_encoded_bytes())
                    }) =>
            {
                Match::Listing
            }
            _ => Match::No,
        }
    }

    /// The directory whose watch reports changes to this read: the parent
    /// of a file (editors replace files by renaming over them, which only
    /// the directory sees), the listed directory itself, and the nearest
    /// existing ancestor of a missing path.
    pub(crate) fn watch_dir(&self) -> Option<PathBuf> {
        match self {
            Read::Path(p) => p.parent().map(Path::to_path_buf),
            Read::Listing(d) => Some(d.clone()),
            Read::Missing(m) => m
                .ancestors()
                .skip(1)
                .find(|a| a.is_dir())
                .map(Path::to_path_buf),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Match {
    No,
    /// The path itself (or a directory on the way to it).
    Exact,
    /// An entry of a listed directory.
    Listing,
}

/// What a change did to a path, as far as watching needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    /// The content or metadata changed; the path stayed.
    Content,
    /// The path was created, removed or renamed: its directory's entries changed.
    Entries,
}

/// One changed path, when vp heard of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) path: PathBuf,
    pub(crate) kind: ChangeKind,
    pub(crate) at: Instant,
}

/// What edits re-run a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reads {
    /// What its stored run read.
    Observed(BTreeSet<Read>),
    /// Unknown: anything under its package directory, except `node_modules`,
    /// `.git` and vp's cache; plus what an earlier stored run read, if any.
    Package {
        dir: PathBuf,
        why: Unobserved,
        earlier: BTreeSet<Read>,
    },
    /// No edit re-runs it.
    Pinned(PinReason),
}

/// The window of a task's run in the last cycle, to tell its own writes
/// (and changes it already saw) from later edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RunWindow {
    pub(crate) started: Instant,
    pub(crate) finished: Instant,
}

/// One task's watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TaskWatch {
    pub(crate) reads: Reads,
    /// What its stored run wrote: never a reason to run it again.
    pub(crate) outputs: BTreeSet<PathBuf>,
    /// Set for a change heard while the cycle that ran it was going on.
    pub(crate) window: Option<RunWindow>,
}

/// Directory names never watched inside a package directory: installed
/// packages and version control are not what a task's source is.
const SKIPPED_DIRS: [&str; 2] = ["node_modules", ".git"];

impl TaskWatch {
    /// Whether `change` re-runs this task. A task's own outputs never do.
    /// For a change heard during the cycle in which the task ran: one
    /// before it started was seen by it; during its run, an entry appearing
    /// in a directory it listed, or anything in the package directory of a
    /// task whose reads are unknown, is taken for its own doing (a
    /// temporary file); an edit of a file it read still counts.
    pub(crate) fn affected_by(&self, change: &Change, cache_dir: &Path) -> bool {
        if self.outputs.contains(&change.path) {
            return false;
        }
        let window = self.window.filter(|w| change.at <= w.finished);
        // `at` may be a clock tick early (a ctime), which does not matter
        // here: `started` is taken before the task's process is even
        // spawned, well before it reads anything.
        if window.is_some_and(|w| change.at < w.started) {
            return false;
        }
        let best = |reads: &BTreeSet<Read>| {
            reads
                .iter()
                .map(|r| r.matches(change))
                .fold(Match::No, |best, m| match (best, m) {
                    (Match::Exact, _) | (_, Match::Exact) => Match::Exact,
                    (Match::Listing, _) | (_, Match::Listing) => Match::Listing,
                    _ => Match::No,
                })
        };
        let counts = |m: Match| match m {
            Match::Exact => true,
            Match::Listing => window.is_none(),
            Match::No => false,
        };
        match &self.reads {
            Reads::Pinned(_) => false,
            Reads::Observed(reads) => counts(best(reads)),
            Reads::Package { dir, earlier, .. } => {
                let in_package = in_package(dir, &change.path, cache_dir);
                (in_package && window.is_none()) || counts(best(earlier))
            }
        }
    }

    /// Whether this task reads `path` (a writer's output): for the tasks a
    /// re-run writer makes run after it in the same cycle.
    pub(crate) fn reads(&self, path: &Path, cache_dir: &Path) -> bool {
        let has = |reads: &BTreeSet<Read>| {
            let p = path.to_path_buf();
            reads.contains(&Read::Path(p.clone()))
                || reads.contains(&Read::Missing(p.clone()))
                || reads.contains(&Read::Listing(p))
                || path
                    .parent()
                    .is_some_and(|d| reads.contains(&Read::Listing(d.to_path_buf())))
        };
        match &self.reads {
            Reads::Pinned(_) => false,
            Reads::Observed(reads) => has(reads),
            Reads::Package { dir, earlier, .. } => in_package(dir, path, cache_dir) || has(earlier),
        }
    }

    /// Every path this watch counts (the "files" of the status line).
    pub(crate) fn paths(&self) -> impl Iterator<Item = &Path> {
        let (reads, dir) = match &self.reads {
            Reads::Observed(r) => (Some(r), None),
            Reads::Package { dir, earlier, .. } => (Some(earlier), Some(dir.as_path())),
            Reads::Pinned(_) => (None, None),
        };
        reads.into_iter().flatten().map(Read::path).chain(dir)
    }
}

/// Whether `path` is under the package directory `dir` and not in a part
/// of it that is never watched.
pub(crate) fn in_package(dir: &Path, path: &Path, cache_dir: &Path) -> bool {
    let Ok(rest) = path.strip_prefix(dir) else {
        return false;
    };
    !path.starts_with(cache_dir)
        && !rest
            .components()
            .any(|c| SKIPPED_DIRS.iter().any(|s| c.as_os_str() == *s))
}

/// Whether a directory found while walking a package is left out.
pub(crate) fn skipped_dir(name: &std::ffi::OsStr) -> bool {
    SKIPPED_DIRS.iter().any(|s| name == *s)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn change(path: &str, kind: ChangeKind, at: Instant) -> Change {
        Change {
            path: PathBuf::from(path),
            kind,
            at,
        }
    }

    fn observed(reads: &[Read], outputs: &[&str]) -> TaskWatch {
        TaskWatch {
            reads: Reads::Observed(reads.iter().cloned().collect()),
            outputs: outputs.iter().map(PathBuf::from).collect(),
            window: None,
        }
    }

    const CACHE: &str = "/ws/node_modules/.cache/vp";

    #[test]
    fn a_file_read_counts_its_edits_and_its_directory_going_away() {
        let now = Instant::now();
        let t = observed(&[Read::Path("/ws/a/src/x.ts".into())], &[]);
        let cache = Path::new(CACHE);
        assert!(t.affected_by(&change("/ws/a/src/x.ts", ChangeKind::Content, now), cache));
        assert!(t.affected_by(&change("/ws/a/src", ChangeKind::Entries, now), cache));
        assert!(!t.affected_by(&change("/ws/a/src", ChangeKind::Content, now), cache));
        assert!(!t.affected_by(&change("/ws/a/src/y.ts", ChangeKind::Entries, now), cache));
    }

    #[test]
    fn a_listing_counts_entries_not_their_content() {
        let now = Instant::now();
        let t = observed(&[Read::Listing("/ws/a/src".into())], &[]);
        let cache = Path::new(CACHE);
        assert!(t.affected_by(&change("/ws/a/src/new.ts", ChangeKind::Entries, now), cache));
        assert!(!t.affected_by(&change("/ws/a/src/new.ts", ChangeKind::Content, now), cache));
        assert!(!t.affected_by(&change("/ws/a/src/d/e.ts", ChangeKind::Entries, now), cache));
    }

    /// Review: a listing of `.next` is recorded without `cache`, so
    /// `.next/cache` made or removed changes nothing a task saw.
    #[test]
    fn a_tools_cache_is_no_entry_of_a_watched_listing() {
        let now = Instant::now();
        let t = observed(&[Read::Listing("/ws/a/.next".into())], &[]);
        let cache = Path::new(CACHE);
        assert!(!t.affected_by(
            &change("/ws/a/.next/cache", ChangeKind::Entries, now),
            cache
        ));
        assert!(t.affected_by(
            &change("/ws/a/.next/server", ChangeKind::Entries, now),
            cache
        ));
    }

    #[test]
    fn a_missing_path_counts_when_it_or_a_directory_on_the_way_appears() {
        let now = Instant::now();
        let t = observed(&[Read::Missing("/ws/a/conf/tsconfig.json".into())], &[]);
        let cache = Path::new(CACHE);
        assert!(t.affected_by(
            &change("/ws/a/conf/tsconfig.json", ChangeKind::Entries, now),
            cache
        ));
        assert!(t.affected_by(&change("/ws/a/conf", ChangeKind::Entries, now), cache));
        assert!(!t.affected_by(&change("/ws/a/other", ChangeKind::Entries, now), cache));
    }

    #[test]
    fn own_outputs_never_count_even_when_also_read() {
        let now = Instant::now();
        let t = observed(
            &[Read::Path("/ws/a/tsconfig.tsbuildinfo".into())],
            &["/ws/a/tsconfig.tsbuildinfo"],
        );
        assert!(!t.affected_by(
            &change("/ws/a/tsconfig.tsbuildinfo", ChangeKind::Content, now),
            Path::new(CACHE)
        ));
    }

    #[test]
    fn during_its_own_run_only_edits_of_what_it_read_count() {
        let t0 = Instant::now();
        let started = t0 + Duration::from_millis(100);
        let finished = t0 + Duration::from_millis(150);
        let mut t = observed(
            &[
                Read::Path("/ws/a/src/x.ts".into()),
                Read::Listing("/ws/a/dist".into()),
            ],
            &[],
        );
        t.window = Some(RunWindow { started, finished });
        let cache = Path::new(CACHE);
        let during = t0 + Duration::from_millis(120);
        let after = t0 + Duration::from_millis(160);
        // Before it started: it saw the change.
        assert!(!t.affected_by(&change("/ws/a/src/x.ts", ChangeKind::Content, t0), cache));
        assert!(t.affected_by(
            &change("/ws/a/src/x.ts", ChangeKind::Content, during),
            cache
        ));
        // A temporary file in a directory it listed, while it ran: its own.
        assert!(!t.affected_by(
            &change("/ws/a/dist/tmp1", ChangeKind::Entries, during),
            cache
        ));
        assert!(t.affected_by(
            &change("/ws/a/dist/tmp1", ChangeKind::Entries, after),
            cache
        ));
    }

    #[test]
    fn an_unobserved_task_watches_its_package_but_not_installed_packages() {
        let now = Instant::now();
        let t = TaskWatch {
            reads: Reads::Package {
                dir: "/ws/a".into(),
                why: Unobserved::CacheOff,
                earlier: BTreeSet::new(),
            },
            outputs: BTreeSet::new(),
            window: None,
        };
        let cache = Path::new(CACHE);
        assert!(t.affected_by(&change("/ws/a/src/x.ts", ChangeKind::Content, now), cache));
        assert!(!t.affected_by(
            &change("/ws/a/node_modules/x/i.js", ChangeKind::Content, now),
            cache
        ));
        assert!(!t.affected_by(&change("/ws/b/src/x.ts", ChangeKind::Content, now), cache));
        let pinned = TaskWatch {
            reads: Reads::Pinned(PinReason::Persistent),
            ..t
        };
        assert!(!pinned.affected_by(&change("/ws/a/src/x.ts", ChangeKind::Content, now), cache));
    }
}
