//! The bridge from `notify` into the smol loop: one watcher (inotify on
//! Linux) on a bounded set of directories, each watched on its own (not
//! recursively: a recursive watch of a package would also watch its
//! `node_modules`), whose events arrive on a channel as [`Change`]s; and
//! the debounce that turns a burst of them into one batch.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecursiveMode, Watcher};

use super::watched::{Change, ChangeKind};

/// Most directories vp watches at once. Linux's default
/// `fs.inotify.max_user_watches` is 8192 on older kernels (and shared by
/// every program of the user); past this bound the rest is left out and
/// the status line says how many.
pub(crate) const MAX_WATCHED_DIRS: usize = 4096;

/// What the watcher's thread hands to the loop.
enum Heard {
    Change(Change),
    /// The kernel dropped events (queue overflow): anything may have changed.
    Lost,
    Failed(String),
}

/// A batch of what was heard.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub(crate) changes: Vec<Change>,
    /// Events were lost: treat every path as changed.
    pub(crate) lost: bool,
    pub(crate) errors: Vec<String>,
}

impl Batch {
    pub(crate) fn is_empty(&self) -> bool {
        self.changes.is_empty() && !self.lost && self.errors.is_empty()
    }

    fn add(&mut self, heard: Heard) {
        match heard {
            Heard::Change(c) => self.changes.push(c),
            Heard::Lost => self.lost = true,
            Heard::Failed(e) => self.errors.push(e),
        }
    }
}

pub(crate) struct FsEvents {
    watcher: notify::RecommendedWatcher,
    watched: BTreeSet<PathBuf>,
    rx: smol::channel::Receiver<Heard>,
}

/// How many directories are watched, and how many were left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Watched {
    pub(crate) dirs: usize,
    pub(crate) left_out: usize,
}

impl FsEvents {
    pub(crate) fn new() -> Result<FsEvents, notify::Error> {
        let (tx, rx) = smol::channel::unbounded();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            // When each change happened tells a task's own writes from
            // later edits (`watched::TaskWatch::affected_by`).
            let heard_at = Instant::now();
            let heard = match event {
                Ok(e) if e.need_rescan() => vec![Heard::Lost],
                Ok(e) => match kind(e.kind) {
                    Some(kind) => e
                        .paths
                        .into_iter()
                        .map(|path| {
                            let at = happened(&path, heard_at);
                            Heard::Change(Change { path, kind, at })
                        })
                        .collect(),
                    None => Vec::new(),
                },
                Err(e) => vec![Heard::Failed(e.to_string())],
            };
            for h in heard {
                // The loop is gone only when vp is ending.
                let _ = tx.try_send(h);
            }
        })?;
        Ok(FsEvents {
            watcher,
            watched: BTreeSet::new(),
            rx,
        })
    }

    /// Watches exactly `dirs` (at most [`MAX_WATCHED_DIRS`], the first in
    /// path order); a directory the system refuses (gone meanwhile, out of
    /// watches) is left out.
    pub(crate) fn set(&mut self, dirs: &BTreeSet<PathBuf>) -> Watched {
        let wanted: BTreeSet<PathBuf> = dirs.iter().take(MAX_WATCHED_DIRS).cloned().collect();
        let mut left_out = dirs.len() - wanted.len();
        for gone in self.watched.difference(&wanted) {
            // Already gone with its directory: nothing to undo.
            let _ = self.watcher.unwatch(gone);
        }
        let mut now = BTreeSet::new();
        for dir in &wanted {
            if self.watched.contains(dir)
                || self.watcher.watch(dir, RecursiveMode::NonRecursive).is_ok()
            {
                now.insert(dir.clone());
            } else {
                left_out += 1;
            }
        }
        self.watched = now;
        Watched {
            dirs: self.watched.len(),
            left_out,
        }
    }

    /// Forgets the watches that `batch` shows gone: a watched directory
    /// (or one above it) removed or renamed has lost its watch, or keeps
    /// one on the moved directory under the old name. The next [`set`]
    /// watches what is at those paths now (Vite empties and recreates
    /// `outDir`).
    ///
    /// [`set`]: FsEvents::set
    fn forget_moved(&mut self, batch: &Batch) {
        let moved: BTreeSet<&Path> = batch
            .changes
            .iter()
            .filter(|c| c.kind == ChangeKind::Entries)
            .map(|c| c.path.as_path())
            .collect();
        if moved.is_empty() {
            return;
        }
        let stale: Vec<PathBuf> = self
            .watched
            .iter()
            .filter(|d| d.ancestors().any(|a| moved.contains(a)))
            .cloned()
            .collect();
        for d in stale {
            let _ = self.watcher.unwatch(&d);
            self.watched.remove(&d);
        }
    }

    /// Waits for the first event, then until `quiet` passes without another.
    pub(crate) async fn next_batch(&mut self, quiet: Duration) -> Batch {
        let mut batch = Batch::default();
        match self.rx.recv().await {
            Ok(h) => batch.add(h),
            // The watcher is gone: nothing will ever come.
            Err(_) => std::future::pending::<()>().await,
        }
        loop {
            let next = futures_lite::future::or(async { self.rx.recv().await.ok() }, async {
                async_io::Timer::after(quiet).await;
                None
            })
            .await;
            match next {
                Some(h) => batch.add(h),
                None => {
                    self.forget_moved(&batch);
                    return batch;
                }
            }
        }
    }

    /// What was heard already (while a cycle ran), without waiting.
    pub(crate) fn drain(&mut self) -> Batch {
        let mut batch = Batch::default();
        while let Ok(h) = self.rx.try_recv() {
            batch.add(h);
        }
        self.forget_moved(&batch);
        batch
    }
}

/// How far back a change's ctime is believed (beyond: a clock jumped).
const CTIME_TRUSTED: Duration = Duration::from_secs(60);

/// When the change to `path` happened, as well as vp can tell: its ctime
/// (the kernel sets it on every change and no tool can set it back; for a
/// removed path, its directory's), never later than when it was heard. So a
/// task's own write, heard late on a loaded machine, is still placed inside
/// the task's run.
fn happened(path: &Path, heard: Instant) -> Instant {
    let meta = std::fs::symlink_metadata(path)
        .or_else(|e| path.parent().map_or(Err(e), std::fs::symlink_metadata));
    let Some(ctime) = meta.ok().as_ref().and_then(ctime) else {
        return heard;
    };
    match SystemTime::now().duration_since(ctime) {
        Ok(age) if age <= CTIME_TRUSTED => heard.checked_sub(age).unwrap_or(heard),
        _ => heard,
    }
}

/// A file's ctime on the wall clock (`None` before 1970): when it last
/// changed in any way, as the kernel alone sets it.
pub(super) fn ctime(meta: &std::fs::Metadata) -> Option<SystemTime> {
    use std::os::unix::fs::MetadataExt;
    let secs = u64::try_from(meta.ctime()).ok()?;
    let nanos = u32::try_from(meta.ctime_nsec()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::new(secs, nanos))
}

/// What an event kind means for watching; `None` for reads (a task opening
/// its inputs is heard too, and is no change).
fn kind(kind: EventKind) -> Option<ChangeKind> {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Some(ChangeKind::Content),
        EventKind::Access(_) => None,
        EventKind::Create(_) | EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_)) => {
            Some(ChangeKind::Entries)
        }
        // Unknown kinds count as the bigger change: a missed edit is worse
        // than a cache hit.
        EventKind::Any | EventKind::Other => Some(ChangeKind::Entries),
        EventKind::Modify(_) => Some(ChangeKind::Content),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_no_change_and_renames_change_entries() {
        use notify::event::{CreateKind, DataChange, RenameMode};
        assert_eq!(kind(EventKind::Access(AccessKind::Read)), None);
        assert_eq!(
            kind(EventKind::Access(AccessKind::Close(AccessMode::Write))),
            Some(ChangeKind::Content)
        );
        assert_eq!(
            kind(EventKind::Modify(ModifyKind::Data(DataChange::Any))),
            Some(ChangeKind::Content)
        );
        assert_eq!(
            kind(EventKind::Modify(ModifyKind::Name(RenameMode::To))),
            Some(ChangeKind::Entries)
        );
        assert_eq!(
            kind(EventKind::Create(CreateKind::File)),
            Some(ChangeKind::Entries)
        );
    }

    #[test]
    fn an_edit_in_a_watched_directory_arrives_as_one_batch() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().canonicalize().expect("canonical temp dir");
        let mut events = FsEvents::new().expect("a watcher");
        let watched = events.set(&[root.clone()].into_iter().collect());
        assert_eq!(
            watched,
            Watched {
                dirs: 1,
                left_out: 0
            }
        );
        let file = root.join("a.txt");
        let before = Instant::now();
        std::fs::write(&file, "one").expect("write");
        std::fs::write(&file, "two").expect("write");
        let batch = smol::block_on(futures_lite::future::or(
            async { Some(events.next_batch(Duration::from_millis(100)).await) },
            async {
                async_io::Timer::after(Duration::from_secs(30)).await;
                None
            },
        ))
        .expect("the watcher reports the edit");
        assert!(batch.changes.iter().any(|c| c.path == file), "{batch:?}");
        // Placed by the file's ctime: about when it was written, whenever it was heard (the
        // ctime clock is coarse: a few milliseconds).
        let latest = before + Duration::from_millis(1000);
        assert!(
            batch.changes.iter().all(|c| c.at <= latest),
            "{batch:?} (written at {before:?})"
        );
        assert!(events.drain().is_empty());

        // Removed and made again: watched again, and heard.
        let sub = root.join("dist");
        std::fs::create_dir(&sub).expect("mkdir");
        let _ = events.drain();
        events.set(&[root.clone(), sub.clone()].into_iter().collect());
        std::fs::remove_dir(&sub).expect("rmdir");
        std::fs::create_dir(&sub).expect("mkdir");
        // What the loop does after a cycle: hear what happened, then set the watches again.
        let _ = smol::block_on(events.next_batch(Duration::from_millis(100)));
        events.set(&[root.clone(), sub.clone()].into_iter().collect());
        let out = sub.join("out.txt");
        std::fs::write(&out, "x").expect("write");
        let heard = smol::block_on(futures_lite::future::or(
            async {
                loop {
                    let b = events.next_batch(Duration::from_millis(50)).await;
                    if b.changes.iter().any(|c| c.path == out) {
                        return true;
                    }
                }
            },
            async {
                async_io::Timer::after(Duration::from_secs(30)).await;
                false
            },
        ));
        assert!(heard, "a recreated directory is watched again");
    }
}
