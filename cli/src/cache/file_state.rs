//! Reading the file system for the cache: `observe` records the state of an
//! input path after a run, `FsView::check` compares a recorded state with the
//! file system now. Checks stat first and hash only what stat cannot vouch
//! for (git's racy-clean rule), and remember what they saw so that checking
//! several entries of one task touches each file once.

use std::collections::HashMap;
use std::fs::{self, Metadata};
use std::io::{self, ErrorKind};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::clock::Timestamp;
use super::digest::{self, Digest, Domain};
use super::entry::{InputKind, InputState, Stamp};
use super::miss::MissReason;
use super::paths::RelPath;

/// The state of `abs` now, as an input touched in the way `kind` says.
pub(crate) fn observe(abs: &Path, kind: InputKind) -> io::Result<InputState> {
    observe_since(abs, kind, None)
}

/// What an earlier run recorded for an input, for a miss to reuse: the
/// state in the task's previous entry and when that entry's stamps were
/// taken. A file (or listed directory) whose stamp is the recorded one,
/// and was not racy then, has the recorded content: the rule every hit
/// already trusts (`FsView::check`), applied so that a miss after an edit
/// does not read again every file it did not change (git's index does the
/// same). A Vite build reads 31 MB of native addons on every run.
#[derive(Clone, Copy)]
pub(crate) struct Recorded<'a> {
    pub(crate) state: &'a InputState,
    pub(crate) stat_time: Timestamp,
}

/// `observe`, reusing what `recorded` says when the stamp vouches for it.
pub(crate) fn observe_since(
    abs: &Path,
    kind: InputKind,
    recorded: Option<Recorded<'_>>,
) -> io::Result<InputState> {
    let lmeta = match fs::symlink_metadata(abs) {
        Ok(m) => m,
        // A path below a regular file (`index.html/tsconfig.json`, probed by
        // rolldown's tsconfig lookup) cannot exist either: ENOTDIR is missing.
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
            return Ok(InputState::Missing);
        }
        Err(e) => return Err(e),
    };
    if kind == InputKind::Probe || lmeta.file_type().is_symlink() {
        // A probe, or a path whose target cannot be followed, is recorded as
        // what it is itself; a content read or listing follows symlinks,
        // because the bytes or entries behind it are what the task used.
        if lmeta.file_type().is_symlink() {
            match fs::metadata(abs) {
                Ok(meta) if kind != InputKind::Probe => {
                    return observe_followed(abs, kind, &meta, recorded);
                }
                _ => {
                    return Ok(InputState::Symlink {
                        target: read_link_bytes(abs)?,
                    });
                }
            }
        }
        return Ok(InputState::Present {
            is_dir: lmeta.is_dir(),
        });
    }
    observe_followed(abs, kind, &lmeta, recorded)
}

/// The state of a file read as `kind`, from a stamp already taken once the
/// run was over (`trace::EndStamps`) instead of a `stat` now: `Some` only
/// for a content read that `recorded` holds the hash of under that very
/// stamp, by the rule `observe_since` applies to a fresh one.
pub(crate) fn known_file(
    kind: InputKind,
    stamp: &Stamp,
    recorded: Option<Recorded<'_>>,
) -> Option<InputState> {
    match recorded {
        Some(Recorded {
            state: InputState::File { hash, stamp: was },
            stat_time,
        }) if kind == InputKind::ContentRead && vouches(was, stamp, stat_time) => {
            Some(InputState::File {
                hash: *hash,
                stamp: *stamp,
            })
        }
        _ => None,
    }
}

fn observe_followed(
    abs: &Path,
    kind: InputKind,
    meta: &Metadata,
    recorded: Option<Recorded<'_>>,
) -> io::Result<InputState> {
    let stamp = Stamp::of(meta);
    match kind {
        InputKind::ContentRead if meta.is_file() => {
            if let Some(Recorded {
                state: InputState::File { hash, stamp: was },
                stat_time,
            }) = recorded
                && vouches(was, &stamp, stat_time)
            {
                return Ok(InputState::File { hash: *hash, stamp });
            }
            // The stamp of what was hashed, not of the `stat` above.
            let (hash, hashed) = digest::hash_file_stamped(abs)?;
            Ok(InputState::File {
                hash: digest::input_digest(hash, &hashed),
                stamp: Stamp::of(&hashed),
            })
        }
        InputKind::Listing if meta.is_dir() => {
            if let Some(Recorded {
                state:
                    InputState::Dir {
                        listing,
                        names,
                        stamp: was,
                    },
                stat_time,
            }) = recorded
                && vouches(was, &stamp, stat_time)
            {
                return Ok(InputState::Dir {
                    listing: *listing,
                    names: names.clone(),
                    stamp,
                });
            }
            let (listing, names) = list_dir(abs)?;
            // The stamp after listing, as for a file's hash: an entry added
            // or removed meanwhile shows with its own time, never as the
            // old stamp beside the new names.
            let listed = fs::metadata(abs)?;
            Ok(InputState::Dir {
                listing,
                names,
                stamp: Stamp::of(&listed),
            })
        }
        // Read of a directory or listing of a file: only the type mattered.
        _ => Ok(InputState::Present {
            is_dir: meta.is_dir(),
        }),
    }
}

fn read_link_bytes(abs: &Path) -> io::Result<Vec<u8>> {
    Ok(fs::read_link(abs)?.as_os_str().as_bytes().to_vec())
}

/// Sorted entry names and a hash over names and entry types. A tool's
/// cache is no entry (`tool_cache`): whether `.next/cache` is there
/// changes no build.
fn list_dir(abs: &Path) -> io::Result<(Digest, Vec<Vec<u8>>)> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(abs)? {
        let entry = entry?;
        if super::tool_cache::is_entry_of(abs, entry.file_name().as_bytes()) {
            continue;
        }
        let kind = match entry.file_type() {
            Ok(t) if t.is_dir() => b'd',
            Ok(t) if t.is_symlink() => b'l',
            Ok(t) if t.is_file() => b'f',
            _ => b'o',
        };
        entries.push((entry.file_name().as_bytes().to_vec(), kind));
    }
    entries.sort();
    // Names cannot contain NUL, so `name NUL kind` is an unambiguous record.
    let mut encoded = Vec::new();
    for (name, kind) in &entries {
        encoded.extend_from_slice(name);
        encoded.push(0);
        encoded.push(*kind);
    }
    let names = entries.into_iter().map(|(n, _)| n).collect();
    Ok((Digest::of(Domain::Listing, &encoded), names))
}

/// How a recorded input differs from the file system now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    Modified,
    Added,
    Removed,
    /// A listed directory gained and/or lost entries.
    Entries {
        added: Vec<Vec<u8>>,
        removed: Vec<Vec<u8>>,
    },
}

impl Change {
    pub(crate) fn into_reasons(self, path: &RelPath, out: &mut Vec<MissReason>) {
        match self {
            Self::Modified => out.push(MissReason::Modified(path.clone())),
            Self::Added => out.push(MissReason::Added(path.clone())),
            Self::Removed => out.push(MissReason::Removed(path.clone())),
            Self::Entries { added, removed } => {
                out.extend(added.iter().map(|n| MissReason::Added(path.join(n))));
                out.extend(removed.iter().map(|n| MissReason::Removed(path.join(n))));
            }
        }
    }
}

/// The outcome of checking one input.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Check {
    Same,
    /// Same content, but stat no longer vouches for it: store this stamp so
    /// the next lookup needs no hashing.
    SameRestamped(Stamp),
    Changed(Change),
}

/// What one `stat` answered, as much of it as a check compares: a memo of
/// full `Metadata` (about 180 bytes each) was most of the memory of a hit
/// with 50,000 inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seen {
    kind: SeenKind,
    stamp: Stamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SeenKind {
    File,
    Dir,
    Symlink,
    /// A socket, fifo or device.
    Other,
}

impl Seen {
    fn of(meta: &Metadata) -> Self {
        let t = meta.file_type();
        let kind = if t.is_file() {
            SeenKind::File
        } else if t.is_dir() {
            SeenKind::Dir
        } else if t.is_symlink() {
            SeenKind::Symlink
        } else {
            SeenKind::Other
        };
        Self {
            kind,
            stamp: Stamp::of(meta),
        }
    }
}

type StatAnswer = Result<Seen, ErrorKind>;

/// What the memo knows of one path: its `stat`s, and, for the few paths a
/// `stat` could not vouch for, what was read behind it (boxed: most paths
/// never need it, and the memo holds one `Facts` per input).
#[derive(Default)]
struct Facts {
    follow: Option<StatAnswer>,
    nofollow: Option<StatAnswer>,
    read: Option<Box<Read>>,
}

#[derive(Default)]
struct Read {
    hash: Option<Option<Digest>>,
    listing: Option<Option<(Digest, Vec<Vec<u8>>)>>,
    link: Option<Option<Vec<u8>>>,
}

/// A memo of the file system for one lookup. Not shared between lookups:
/// files change between runs. Keyed by the path's bytes: every path
/// checked is spelled the same way (workspace root joined with a stored
/// relative path), and hashing bytes with foldhash is cheaper than
/// SipHashing `Path`s component by component. Seeded per process: an entry
/// from a remote cache names paths a server chose, and a fixed hash would
/// let it pick 50,000 that collide.
#[derive(Default)]
pub(crate) struct FsView {
    facts: HashMap<Vec<u8>, Facts, foldhash::fast::RandomState>,
    /// How many files had to be hashed (for tests and diagnostics).
    pub(crate) hashed: usize,
}

/// How one input is first looked at: through symlinks (files and
/// directories, whose content counts) or not (existence, links).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StatMode {
    Follow,
    NoFollow,
}

impl StatMode {
    /// What `FsView::check` stats first for an input recorded as `recorded`.
    pub(crate) fn of(recorded: &InputState) -> Self {
        match recorded {
            InputState::File { .. } | InputState::Dir { .. } => Self::Follow,
            InputState::Missing | InputState::Present { .. } | InputState::Symlink { .. } => {
                Self::NoFollow
            }
        }
    }
}

/// Below this many paths, stat in the calling thread: starting threads
/// costs more than it saves.
const AHEAD_MIN: usize = 1024;

/// The first `stat` `FsView::check` makes of one input, taken ahead of the
/// checks (`FsView::stat_ahead`). It says which way it looked, so a check
/// uses it only for the input state it was taken for.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FirstStat {
    mode: StatMode,
    answer: StatAnswer,
}

impl FsView {
    /// The first `stat` of each of `inputs` (workspace-relative, with how
    /// its check looks at it), in their order, on up to as many threads as
    /// there are cores; none below [`AHEAD_MIN`] inputs, where the checks
    /// stat as they go. A hit of a task with tens of thousands of inputs is
    /// mostly `stat` calls (about 2 µs each on the 2-core VM of
    /// docs/benchmarks.md), which the kernel serves in parallel. The answers
    /// go to the checks directly, not into the memo: a memo entry per input
    /// (the path's bytes as its key) was most of the memory of such a hit,
    /// and each answer is used once.
    pub(crate) fn stat_ahead(root: &Path, inputs: &[(&RelPath, StatMode)]) -> Vec<FirstStat> {
        if !crate::parallel::spreads(inputs.len(), AHEAD_MIN) {
            return Vec::new();
        }
        crate::parallel::map(inputs, AHEAD_MIN, |&(rel, mode)| FirstStat {
            mode,
            answer: stat(&rel.to_abs(root), mode),
        })
    }

    fn facts(&mut self, abs: &Path) -> &mut Facts {
        let key = abs.as_os_str().as_bytes();
        // `entry` would need an owned key even when the path is known.
        if !self.facts.contains_key(key) {
            self.facts.insert(key.to_vec(), Facts::default());
        }
        self.facts.get_mut(key).expect("inserted above")
    }

    fn follow(&mut self, abs: &Path) -> StatAnswer {
        *self
            .facts(abs)
            .follow
            .get_or_insert_with(|| stat(abs, StatMode::Follow))
    }

    fn nofollow(&mut self, abs: &Path) -> StatAnswer {
        *self
            .facts(abs)
            .nofollow
            .get_or_insert_with(|| stat(abs, StatMode::NoFollow))
    }

    fn read(&mut self, abs: &Path) -> &mut Read {
        self.facts(abs).read.get_or_insert_default()
    }

    fn hash(&mut self, abs: &Path) -> Option<Digest> {
        if let Some(h) = self.read(abs).hash {
            return h;
        }
        self.hashed += 1;
        let h = digest::hash_file_stamped(abs)
            .ok()
            .map(|(d, meta)| digest::input_digest(d, &meta));
        self.read(abs).hash = Some(h);
        h
    }

    fn listing(&mut self, abs: &Path) -> Option<(Digest, Vec<Vec<u8>>)> {
        self.read(abs)
            .listing
            .get_or_insert_with(|| list_dir(abs).ok())
            .clone()
    }

    fn link(&mut self, abs: &Path) -> Option<Vec<u8>> {
        self.read(abs)
            .link
            .get_or_insert_with(|| read_link_bytes(abs).ok())
            .clone()
    }

    /// `check_after` with no `stat` taken ahead.
    #[cfg(test)]
    pub(crate) fn check(
        &mut self,
        abs: &Path,
        recorded: &InputState,
        stat_time: Timestamp,
    ) -> Check {
        self.check_after(abs, recorded, stat_time, None)
    }

    /// Whether `abs` still matches `recorded`. `stat_time` is when the entry's
    /// stamps were taken: a stamp whose mtime/ctime is not older may hide a
    /// same-tick modification, so such files are hashed. `first` is the
    /// check's first `stat` when it was taken ahead (`stat_ahead`, for this
    /// path); one taken the other way than `recorded` needs is not used, and
    /// the check stats itself.
    pub(crate) fn check_after(
        &mut self,
        abs: &Path,
        recorded: &InputState,
        stat_time: Timestamp,
        first: Option<FirstStat>,
    ) -> Check {
        let mode = StatMode::of(recorded);
        let first = first.filter(|f| f.mode == mode).map(|f| f.answer);
        // Before reading what a stat could not vouch for, the memo gets that
        // stat: a later check of the path (another candidate) then pairs the
        // read with the stat it followed, as it would without `first`.
        let keep = |view: &mut Self| {
            if let Some(answer) = first {
                let f = view.facts(abs);
                let slot = match mode {
                    StatMode::Follow => &mut f.follow,
                    StatMode::NoFollow => &mut f.nofollow,
                };
                slot.get_or_insert(answer);
            }
        };
        let nofollow = |view: &mut Self| first.unwrap_or_else(|| view.nofollow(abs));
        match recorded {
            InputState::Missing => match nofollow(self) {
                Err(ErrorKind::NotFound | ErrorKind::NotADirectory) => Check::Same,
                _ => Check::Changed(Change::Added),
            },
            InputState::Present { is_dir } => match nofollow(self) {
                Ok(m) if m.kind != SeenKind::Symlink && (m.kind == SeenKind::Dir) == *is_dir => {
                    Check::Same
                }
                Ok(_) => Check::Changed(Change::Modified),
                Err(_) => Check::Changed(Change::Removed),
            },
            InputState::Symlink { target } => match nofollow(self) {
                Ok(m) if m.kind == SeenKind::Symlink => {
                    keep(self);
                    if self.link(abs).as_ref() == Some(target) {
                        Check::Same
                    } else {
                        Check::Changed(Change::Modified)
                    }
                }
                Ok(_) => Check::Changed(Change::Modified),
                Err(_) => Check::Changed(Change::Removed),
            },
            InputState::File { hash, stamp } => {
                let now = match self.follow_or_gone(abs, first) {
                    Ok(m) if m.kind == SeenKind::File => m.stamp,
                    Ok(_) => return Check::Changed(Change::Modified),
                    Err(change) => return Check::Changed(change),
                };
                if vouches(stamp, &now, stat_time) {
                    return Check::Same;
                }
                keep(self);
                match self.hash(abs) {
                    Some(h) if h == *hash => Check::SameRestamped(now),
                    _ => Check::Changed(Change::Modified),
                }
            }
            InputState::Dir {
                listing,
                names,
                stamp,
            } => {
                let now = match self.follow_or_gone(abs, first) {
                    Ok(m) if m.kind == SeenKind::Dir => m.stamp,
                    Ok(_) => return Check::Changed(Change::Modified),
                    Err(change) => return Check::Changed(change),
                };
                if vouches(stamp, &now, stat_time) {
                    return Check::Same;
                }
                keep(self);
                match self.listing(abs) {
                    Some((h, _)) if h == *listing => Check::SameRestamped(now),
                    Some((_, current)) => {
                        let added: Vec<_> = current
                            .iter()
                            .filter(|n| names.binary_search(n).is_err())
                            .cloned()
                            .collect();
                        let removed: Vec<_> = names
                            .iter()
                            .filter(|n| current.binary_search(n).is_err())
                            .cloned()
                            .collect();
                        if added.is_empty() && removed.is_empty() {
                            // Same names, different entry types.
                            Check::Changed(Change::Modified)
                        } else {
                            Check::Changed(Change::Entries { added, removed })
                        }
                    }
                    None => Check::Changed(Change::Modified),
                }
            }
        }
    }

    /// Follows symlinks; a vanished path is `Removed`, a path that exists but
    /// cannot be followed (dangling link, permission) is `Modified`.
    fn follow_or_gone(&mut self, abs: &Path, first: Option<StatAnswer>) -> Result<Seen, Change> {
        match first.unwrap_or_else(|| self.follow(abs)) {
            Ok(m) => Ok(m),
            Err(_) if self.nofollow(abs).is_ok() => Err(Change::Modified),
            Err(_) => Err(Change::Removed),
        }
    }
}

/// One `stat` of `abs`, through symlinks or not.
fn stat(abs: &Path, mode: StatMode) -> StatAnswer {
    match mode {
        StatMode::Follow => fs::metadata(abs),
        StatMode::NoFollow => fs::symlink_metadata(abs),
    }
    .map(|m| Seen::of(&m))
    .map_err(|e| e.kind())
}

/// Whether `stamp` may hide a change made in the same clock tick as
/// `stat_time` (git's racy-clean rule): its mtime or ctime is not older.
pub(crate) fn racy(stamp: &Stamp, stat_time: Timestamp) -> bool {
    stamp.mtime >= stat_time || stamp.ctime >= stat_time
}

/// Whether the path of `stamp` changed at or after `started`. Its ctime
/// says so: the kernel sets it to the current time on every change of
/// content or metadata, and no tool can set it back. The mtime can be
/// anything (`touch -d`, a tarball's times, a checkout from the future
/// with a skewed clock): one in the future must not make every run
/// "modified while it ran". (For a lookup it still keeps the stamp racy,
/// so such a file is hashed each time, see `racy`.)
pub(crate) fn changed_since(stamp: &Stamp, started: Timestamp) -> bool {
    stamp.ctime >= started
}

/// Whether a stamp recorded at `stat_time` proves the content unchanged
/// when the path shows `now`: the one rule a hit (`FsView::check`) and a
/// miss reusing a recorded hash (`observe_since`) both apply.
fn vouches(recorded: &Stamp, now: &Stamp, stat_time: Timestamp) -> bool {
    recorded == now && !racy(recorded, stat_time)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn later() -> Timestamp {
        Timestamp(i64::MAX)
    }

    /// An end-of-run stamp stands in only for a content read whose hash it
    /// vouches for: not for a probe or listing, not for another stamp, not
    /// for a racy one, not for a directory's state.
    #[test]
    fn a_known_file_is_only_a_vouched_content_read() {
        let stamp = Stamp {
            size: 3,
            mtime: Timestamp(10),
            ctime: Timestamp(10),
            ino: 7,
        };
        let hash = Digest::of_content(b"abc");
        let file = InputState::File { hash, stamp };
        let recorded = |state, stat_time| {
            Some(Recorded {
                state,
                stat_time: Timestamp(stat_time),
            })
        };
        assert_eq!(
            known_file(InputKind::ContentRead, &stamp, recorded(&file, 20)),
            Some(file.clone())
        );
        for kind in [InputKind::Probe, InputKind::Listing] {
            assert_eq!(known_file(kind, &stamp, recorded(&file, 20)), None);
        }
        let other = Stamp { size: 4, ..stamp };
        assert_eq!(
            known_file(InputKind::ContentRead, &other, recorded(&file, 20)),
            None
        );
        // Stamped no earlier than the file's own times: racy.
        assert_eq!(
            known_file(InputKind::ContentRead, &stamp, recorded(&file, 10)),
            None
        );
        let dir = InputState::Dir {
            listing: hash,
            names: Vec::new(),
            stamp,
        };
        assert_eq!(
            known_file(InputKind::ContentRead, &stamp, recorded(&dir, 20)),
            None
        );
        assert_eq!(known_file(InputKind::ContentRead, &stamp, None), None);
    }

    /// Checks given their first `stat` ahead answer as checks that stat
    /// themselves, for every kind of input and every change; an answer
    /// taken the other way than the input needs is not used.
    #[test]
    fn checks_after_stat_ahead_answer_like_checks_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let mut recorded: Vec<(RelPath, InputState)> = Vec::new();
        let mut record = |name: &str, kind: InputKind| {
            let rel = RelPath::from_stored(name.as_bytes()).expect("valid");
            let state = observe(&rel.to_abs(root), kind).expect("observe");
            recorded.push((rel, state));
        };
        for i in 0..(AHEAD_MIN + 10) {
            fs::write(root.join(format!("f{i}.txt")), format!("{i}")).expect("write");
            record(&format!("f{i}.txt"), InputKind::ContentRead);
        }
        fs::create_dir(root.join("d")).expect("mkdir");
        record("d", InputKind::Listing);
        record("never", InputKind::Probe);
        symlink("f0.txt", root.join("link")).expect("symlink");
        record("link", InputKind::Probe);
        // Changes after recording: a file edited (same size), one removed,
        // one replaced by a dangling link, the missing path created, the
        // directory listed differently.
        fs::write(root.join("f1.txt"), "x").expect("write");
        fs::remove_file(root.join("f2.txt")).expect("remove");
        fs::remove_file(root.join("f3.txt")).expect("remove");
        symlink("nowhere", root.join("f3.txt")).expect("symlink");
        fs::write(root.join("never"), "now").expect("write");
        fs::write(root.join("d/new"), "").expect("write");

        let alone: Vec<Check> = {
            let mut view = FsView::default();
            recorded
                .iter()
                .map(|(rel, r)| view.check(&rel.to_abs(root), r, later()))
                .collect()
        };
        let inputs: Vec<(&RelPath, StatMode)> = recorded
            .iter()
            .map(|(rel, r)| (rel, StatMode::of(r)))
            .collect();
        let ahead = FsView::stat_ahead(root, &inputs);
        // None on a single core: the checks stat themselves.
        if crate::parallel::spreads(inputs.len(), AHEAD_MIN) {
            assert_eq!(ahead.len(), recorded.len());
        }
        let mut view = FsView::default();
        let after: Vec<Check> = recorded
            .iter()
            .enumerate()
            .map(|(i, (rel, r))| {
                view.check_after(&rel.to_abs(root), r, later(), ahead.get(i).copied())
            })
            .collect();
        assert_eq!(after, alone);
        assert!(
            alone.iter().filter(|c| **c != Check::Same).count() >= 5,
            "{alone:?}"
        );

        // f4.txt is unchanged; an answer saying it is gone, taken without
        // following links, is not the one its check needs.
        let (rel, state) = &recorded[4];
        let wrong_way = FirstStat {
            mode: StatMode::NoFollow,
            answer: Err(ErrorKind::NotFound),
        };
        let mut view = FsView::default();
        assert_eq!(
            view.check_after(&rel.to_abs(root), state, later(), Some(wrong_way)),
            Check::Same
        );
        // Fewer inputs than threads are worth: the checks stat themselves.
        assert!(FsView::stat_ahead(root, &inputs[..10]).is_empty());
        // A check that had to read behind its first stat left that stat in
        // the memo: the next check of the path pairs the two again.
        let (rel, state) = &recorded[1];
        let mut view = FsView::default();
        let first = FirstStat {
            mode: StatMode::Follow,
            answer: stat(&rel.to_abs(root), StatMode::Follow),
        };
        let once = view.check_after(&rel.to_abs(root), state, later(), Some(first));
        assert_eq!(view.facts(&rel.to_abs(root)).follow, Some(first.answer));
        assert_eq!(view.check(&rel.to_abs(root), state, later()), once);
    }

    /// A recorded state is reused only when the stamp vouches for it: the
    /// recorded hash here is deliberately another content's, so a reuse
    /// shows as that hash and a fresh read as the real one.
    #[test]
    fn a_recorded_state_is_reused_only_where_the_stamp_vouches_for_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("addon.node");
        fs::write(&p, "one").expect("write");
        let real = observe(&p, InputKind::ContentRead).expect("observe");
        let InputState::File { stamp, .. } = real else {
            panic!("a file: {real:?}");
        };
        let planted = InputState::File {
            hash: Digest::of_content(b"not the content"),
            stamp,
        };
        let since = |state: &InputState, stat_time| {
            observe_since(
                &p,
                InputKind::ContentRead,
                Some(Recorded { state, stat_time }),
            )
            .expect("observe")
        };
        assert_eq!(since(&planted, later()), planted, "unchanged: reused");
        assert_eq!(since(&planted, Timestamp(0)), real, "racy: read again");
        // Another stamp (the file was rewritten): read again.
        let moved = InputState::File {
            hash: Digest::of_content(b"not the content"),
            stamp: Stamp {
                size: stamp.size + 1,
                ..stamp
            },
        };
        assert_eq!(since(&moved, later()), real);
        // Recorded as something else, or probed now: not reused.
        let present = InputState::Present { is_dir: false };
        assert_eq!(since(&present, later()), real);
        assert_eq!(
            observe_since(
                &p,
                InputKind::Probe,
                Some(Recorded {
                    state: &planted,
                    stat_time: later()
                })
            )
            .expect("observe"),
            present
        );

        // A listing: the recorded names come back while the stamp holds.
        fs::write(dir.path().join("b"), "").expect("write");
        let listed = observe(dir.path(), InputKind::Listing).expect("observe");
        let InputState::Dir { stamp, .. } = listed else {
            panic!("a directory: {listed:?}");
        };
        let planted = InputState::Dir {
            listing: Digest::of_content(b"other"),
            names: vec![b"other".to_vec()],
            stamp,
        };
        let dir_since = |stat_time| {
            observe_since(
                dir.path(),
                InputKind::Listing,
                Some(Recorded {
                    state: &planted,
                    stat_time,
                }),
            )
            .expect("observe")
        };
        assert_eq!(dir_since(later()), planted);
        assert_eq!(dir_since(Timestamp(0)), listed);
    }

    #[test]
    fn unchanged_file_is_same_without_hashing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.js");
        fs::write(&p, "one").expect("write");
        let rec = observe(&p, InputKind::ContentRead).expect("observe");
        assert!(matches!(rec, InputState::File { .. }));
        let mut view = FsView::default();
        assert_eq!(view.check(&p, &rec, later()), Check::Same);
        assert_eq!(view.hashed, 0);
    }

    #[test]
    fn racy_stamp_forces_a_hash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.js");
        fs::write(&p, "one").expect("write");
        let rec = observe(&p, InputKind::ContentRead).expect("observe");
        let mut view = FsView::default();
        // Stamps taken "at the epoch": every mtime is racy.
        assert!(matches!(
            view.check(&p, &rec, Timestamp(0)),
            Check::SameRestamped(_)
        ));
        assert_eq!(view.hashed, 1);
    }

    #[test]
    fn content_change_with_same_size_is_modified() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.js");
        fs::write(&p, "one").expect("write");
        let rec = observe(&p, InputKind::ContentRead).expect("observe");
        fs::write(&p, "two").expect("write");
        let mut view = FsView::default();
        assert_eq!(
            view.check(&p, &rec, later()),
            Check::Changed(Change::Modified)
        );
    }

    #[test]
    fn touch_without_change_restamps() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.js");
        fs::write(&p, "one").expect("write");
        let rec = observe(&p, InputKind::ContentRead).expect("observe");
        // Rewriting the same bytes changes mtime/ctime, not content.
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(&p, "one").expect("write");
        let mut view = FsView::default();
        assert!(matches!(
            view.check(&p, &rec, later()),
            Check::SameRestamped(_)
        ));
    }

    #[test]
    fn removed_and_added() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.js");
        fs::write(&p, "one").expect("write");
        let rec = observe(&p, InputKind::ContentRead).expect("observe");
        let missing = observe(&dir.path().join("b.js"), InputKind::Probe).expect("observe");
        assert_eq!(missing, InputState::Missing);
        fs::remove_file(&p).expect("rm");
        fs::write(dir.path().join("b.js"), "").expect("write");
        let mut view = FsView::default();
        assert_eq!(
            view.check(&p, &rec, later()),
            Check::Changed(Change::Removed)
        );
        assert_eq!(
            view.check(&dir.path().join("b.js"), &missing, later()),
            Check::Changed(Change::Added)
        );
    }

    #[test]
    fn listing_reports_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("a"), "").expect("write");
        fs::write(dir.path().join("c"), "").expect("write");
        let rec = observe(dir.path(), InputKind::Listing).expect("observe");
        fs::remove_file(dir.path().join("c")).expect("rm");
        fs::write(dir.path().join("b"), "").expect("write");
        let mut view = FsView::default();
        assert_eq!(
            view.check(dir.path(), &rec, later()),
            Check::Changed(Change::Entries {
                added: vec![b"b".to_vec()],
                removed: vec![b"c".to_vec()]
            })
        );
    }

    /// `rm -rf .next/cache` is no edit: Next.js's cache is not an entry of
    /// the `.next` listing it reads (`tool_cache`).
    #[test]
    fn a_tools_cache_is_no_entry_of_a_listing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let next = dir.path().join(".next");
        fs::create_dir_all(next.join("cache/turbopack")).expect("mkdir");
        fs::write(next.join("BUILD_ID"), "1").expect("write");
        let rec = observe(&next, InputKind::Listing).expect("observe");
        assert!(
            matches!(&rec, InputState::Dir { names, .. } if names == &vec![b"BUILD_ID".to_vec()]),
            "{rec:?}"
        );
        fs::remove_dir_all(next.join("cache")).expect("rm");
        let mut view = FsView::default();
        let check = view.check(&next, &rec, later());
        assert!(
            matches!(check, Check::Same | Check::SameRestamped(_)),
            "{check:?}"
        );
        // A directory named `cache` elsewhere is an entry like any other.
        fs::create_dir(dir.path().join("cache")).expect("mkdir");
        let rec = observe(dir.path(), InputKind::Listing).expect("observe");
        assert!(
            matches!(&rec, InputState::Dir { names, .. } if names.contains(&b"cache".to_vec())),
            "{rec:?}"
        );
    }

    #[test]
    fn listing_type_change_is_modified() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("a"), "").expect("write");
        let rec = observe(dir.path(), InputKind::Listing).expect("observe");
        fs::remove_file(dir.path().join("a")).expect("rm");
        fs::create_dir(dir.path().join("a")).expect("mkdir");
        let mut view = FsView::default();
        assert_eq!(
            view.check(dir.path(), &rec, later()),
            Check::Changed(Change::Modified)
        );
    }

    #[test]
    fn symlinks() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("t1"), "x").expect("write");
        let link = dir.path().join("l");
        symlink("t1", &link).expect("symlink");
        // A probe records the link itself; a content read follows it.
        let probe = observe(&link, InputKind::Probe).expect("observe");
        assert_eq!(
            probe,
            InputState::Symlink {
                target: b"t1".to_vec()
            }
        );
        assert!(matches!(
            observe(&link, InputKind::ContentRead).expect("observe"),
            InputState::File { .. }
        ));
        fs::remove_file(&link).expect("rm");
        symlink("t2", &link).expect("symlink");
        // Dangling now: a content read records the link.
        assert_eq!(
            observe(&link, InputKind::ContentRead).expect("observe"),
            InputState::Symlink {
                target: b"t2".to_vec()
            }
        );
        let mut view = FsView::default();
        assert_eq!(
            view.check(&link, &probe, later()),
            Check::Changed(Change::Modified)
        );
    }

    #[test]
    fn probe_type_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x");
        fs::write(&p, "").expect("write");
        let rec = observe(&p, InputKind::Probe).expect("observe");
        assert_eq!(rec, InputState::Present { is_dir: false });
        fs::write(&p, "more content does not matter to a probe").expect("write");
        let mut view = FsView::default();
        assert_eq!(view.check(&p, &rec, later()), Check::Same);
        fs::remove_file(&p).expect("rm");
        fs::create_dir(&p).expect("mkdir");
        let mut view = FsView::default();
        assert_eq!(
            view.check(&p, &rec, later()),
            Check::Changed(Change::Modified)
        );
    }

    #[test]
    fn change_reasons() {
        let dir = RelPath::from_stored(b"src").expect("valid");
        let mut out = Vec::new();
        Change::Entries {
            added: vec![b"b.js".to_vec()],
            removed: vec![b"c.js".to_vec()],
        }
        .into_reasons(&dir, &mut out);
        let shown: Vec<String> = out.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            vec!["'b.js' added in 'src'", "'c.js' removed from 'src'"]
        );
    }

    #[test]
    fn a_path_below_a_file_is_missing_not_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("index.html");
        std::fs::write(&file, "x").expect("write");
        let below = file.join("tsconfig.json");
        let state = observe(&below, InputKind::Probe).expect("ENOTDIR is not an error");
        assert_eq!(state, InputState::Missing);
    }
}
