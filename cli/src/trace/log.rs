//! The ordered access log of one traced process tree: every recorded file
//! access in the order the supervisor saw the system calls enter, plus the
//! state of the touched paths when the tree had exited (`EndState`).
//! `supervisor.rs` fills it, `resolve.rs` adds the end state, `classify.rs`
//! turns it into inputs and outputs, `vp trace --log` prints it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a system call did (or tried to do: with user-notify CONTINUE the
/// supervisor sees the call enter, never its result) to one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Op {
    /// Opened read-only: its content may be read.
    Read,
    /// Opened read-write without truncating: content read and maybe modified.
    ReadWrite,
    /// Opened for writing (O_WRONLY, O_CREAT, O_TRUNC), `creat`, `truncate`.
    Write,
    /// Created exclusively (`O_CREAT | O_EXCL`: `cp -n`, Node's `wx` flag):
    /// fails, writing nothing, if the name exists. Such a create is how a
    /// task makes a file only when it is missing.
    CreateNew,
    /// Existence only: `access`, `chdir`, O_PATH / O_DIRECTORY opens.
    Probe,
    /// The stat family: size, times and mode reach the tool, and a tool
    /// may decide on them (`tsc -b` compares mtimes with its build info),
    /// so a stat'ed file is fingerprinted by content, not by existence.
    Stat,
    /// `readlink`: the target of a symlink.
    ReadLink,
    /// `getdents`: the entries of a directory.
    List,
    /// `execve`: the program file (a missing one is a PATH-search probe).
    Exec,
    /// `mkdir`.
    Mkdir,
    /// `unlink` or `rmdir`.
    Remove,
    /// Source of a `rename`: the name disappears.
    RenameFrom,
    /// Destination of a `rename` (or both sides of RENAME_EXCHANGE).
    RenameTo,
    /// Destination of a `rename` with RENAME_NOREPLACE (`mv -n`): fails,
    /// moving nothing, if the name exists.
    RenameToNew,
    /// Destination of `link` / `symlink`: a new name is created.
    Link,
    /// Times, mode or owner set (`utimensat`, `chmod`, `chown`, ...): the
    /// content stays, but the file is no longer what it was before the run
    /// (`tsc -b` bumps the mtime of up-to-date outputs).
    SetMetadata,
}

impl Op {
    /// Short lower-case name for logs and JSON.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::ReadWrite => "read-write",
            Op::Write => "write",
            Op::CreateNew => "create-new",
            Op::Probe => "probe",
            Op::Stat => "stat",
            Op::ReadLink => "readlink",
            Op::List => "list",
            Op::Exec => "exec",
            Op::Mkdir => "mkdir",
            Op::Remove => "remove",
            Op::RenameFrom => "rename-from",
            Op::RenameTo => "rename-to",
            Op::RenameToNew => "rename-to-new",
            Op::Link => "link",
            Op::SetMetadata => "set-metadata",
        }
    }
}

/// One recorded access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Access {
    /// Time since the trace started, when the supervisor received the call.
    pub(crate) at: Duration,
    /// Thread that made the call (in vp's pid namespace).
    pub(crate) tid: u32,
    /// Absolute path as the tool named it: relative paths are joined to the
    /// thread's cwd or dirfd, `.` and `//` removed, `..` and symlinks kept
    /// (resolving them is `resolve.rs`'s job, after the run).
    pub(crate) path: PathBuf,
    pub(crate) op: Op,
    /// Whether the kernel follows a symlink in the last component
    /// (false for `lstat`, `readlink`, `unlink`, `O_NOFOLLOW`, ...).
    pub(crate) follow: bool,
    /// For calls that create, change or remove a name: where it landed,
    /// learned while the call was held, before it ran. `None` for reads.
    pub(crate) at_call: Option<AtCall>,
}

/// The state of a name-changing call's target just before the call ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AtCall {
    /// The real path. A task may repoint a symlink on the way later
    /// (`dist/link -> inner`, then `-> other`); resolving after the run
    /// would file the write under the new target. `None` when the parent
    /// directory did not exist: the call fails, and the path is resolved
    /// after the run like a read.
    pub(crate) real: Option<PathBuf>,
    /// Whether the target existed. A path that was missing at its first
    /// write was missing at every earlier read too (unless the task made and
    /// removed it in between, which the log shows): those reads were failed
    /// opens, not content reads of an input the task then modified.
    pub(crate) existed: bool,
}

impl Op {
    /// Whether the call creates, changes or removes the name it targets.
    pub(crate) fn changes_name(self) -> bool {
        matches!(
            self,
            Op::ReadWrite
                | Op::Write
                | Op::CreateNew
                | Op::Mkdir
                | Op::Remove
                | Op::RenameFrom
                | Op::RenameTo
                | Op::RenameToNew
                | Op::Link
                | Op::SetMetadata
        )
    }
}

/// A map keyed by recorded paths. Tens of thousands of paths, each looked
/// up several times while resolving and classifying, so two choices for
/// speed: foldhash (seeded per process) instead of SipHash, and keys
/// hashed and compared as whole byte strings. `Path`'s own `Hash` feeds
/// the hasher one component at a time, a few percent of a large miss.
///
/// Byte keys make two spellings of one path (`/a//b`, `/a/b`) two keys.
/// The tracer's maps are keyed either by resolved paths, which are clean,
/// or by a recorded path looked up with the very bytes it was inserted
/// with. Where a map only remembers work done (`cache::prehash`), a lookup
/// by another spelling finds nothing: the work is done again, and no
/// answer is wrong.
#[derive(Debug, Clone)]
pub(crate) struct PathMap<V>(HashMap<PathKey, V, foldhash::fast::RandomState>);

/// A path as a `PathMap` key: hashed and compared by its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PathKey(Vec<u8>);

impl std::borrow::Borrow<[u8]> for PathKey {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

fn key_bytes(path: &Path) -> &[u8] {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes()
}

impl From<PathBuf> for PathKey {
    fn from(path: PathBuf) -> Self {
        use std::os::unix::ffi::OsStringExt;
        Self(path.into_os_string().into_vec())
    }
}

impl PathKey {
    pub(crate) fn into_path(self) -> PathBuf {
        use std::os::unix::ffi::OsStringExt;
        PathBuf::from(std::ffi::OsString::from_vec(self.0))
    }
}

impl<V> Default for PathMap<V> {
    fn default() -> Self {
        Self(HashMap::default())
    }
}

impl<V> PathMap<V> {
    pub(crate) fn get(&self, path: &Path) -> Option<&V> {
        self.0.get(key_bytes(path))
    }

    pub(crate) fn contains_key(&self, path: &Path) -> bool {
        self.0.contains_key(key_bytes(path))
    }

    pub(crate) fn insert(&mut self, path: PathBuf, value: V) -> Option<V> {
        self.0.insert(path.into(), value)
    }

    pub(crate) fn entry(
        &mut self,
        path: PathBuf,
    ) -> std::collections::hash_map::Entry<'_, PathKey, V> {
        self.0.entry(path.into())
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn extend(&mut self, items: Vec<(PathBuf, V)>) {
        self.0.reserve(items.len());
        self.0
            .extend(items.into_iter().map(|(path, value)| (path.into(), value)));
    }
}

impl<V> IntoIterator for PathMap<V> {
    type Item = (PathBuf, V);
    type IntoIter = std::iter::Map<
        std::collections::hash_map::IntoIter<PathKey, V>,
        fn((PathKey, V)) -> (PathBuf, V),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0
            .into_iter()
            .map(|(key, value)| (key.into_path(), value))
    }
}

/// What a path is when the traced tree has exited (from `lstat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum PathKind {
    Missing,
    File,
    Dir,
    Symlink,
    /// Socket, fifo, device.
    Other,
}

/// Where a recorded path leads once symlinks and `..` are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolution {
    /// The real path (parents resolved; the last component resolved too when
    /// the access followed it). Missing tails are appended lexically.
    pub(crate) real: PathBuf,
    /// Every symlink passed through on the way, in order (their targets are
    /// in `EndState::looked`).
    pub(crate) links: Vec<PathBuf>,
}

/// A [`Resolution`] borrowed from the log or its end state: most recorded
/// paths are already real and resolve to themselves, which needs no copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Resolved<'a> {
    pub(crate) real: &'a Path,
    pub(crate) links: &'a [PathBuf],
}

/// State of the recorded paths after the run. Filled by `resolve::snapshot`
/// on a blocking thread once the listener hung up; tests build it by hand.
/// A path without a resolution resolves to itself; a path never looked at
/// counts as missing.
#[derive(Debug, Clone, Default)]
pub(crate) struct EndState {
    /// The resolutions that lead elsewhere (through a symlink or `..`).
    pub(crate) resolved: Resolutions,
    /// Everything below each directory that was a rename destination
    /// (its content arrived under another name), without following symlinks.
    pub(crate) trees: PathMap<Vec<(PathBuf, PathKind)>>,
    /// What every path looked at was: its kind, a symlink's target, a
    /// regular file's stamp.
    pub(crate) looked: EndStamps,
}

/// What `lstat` said of each path looked at once the traced tree had
/// exited (the memo `resolve::snapshot` walks with), and when the first of
/// those calls was made. Classifying reads kinds and link targets from it;
/// storing takes a file's hash from the run (`cache::prehash`) when its
/// stamp here vouches for it, without a `stat` of its own: most of a large
/// miss's storing was that second `stat` of every input.
#[derive(Debug, Clone, Default)]
pub(crate) struct EndStamps {
    /// Taken before any of the stamps: the entry's `stat_time` is at most
    /// this, so that git's racy-clean rule still covers them.
    pub(crate) taken: Option<crate::cache::Timestamp>,
    looked: PathMap<Looked>,
}

/// One path as `lstat` (and `readlink`) found it.
#[derive(Debug, Clone)]
pub(crate) enum Looked {
    Missing,
    Symlink(PathBuf),
    /// A regular file, with its stamp.
    File(crate::cache::Stamp),
    /// Anything else: a directory, a socket, a fifo, a device.
    Kind(PathKind),
}

impl Looked {
    pub(crate) fn kind(&self) -> PathKind {
        match self {
            Looked::Missing => PathKind::Missing,
            Looked::Symlink(_) => PathKind::Symlink,
            Looked::File(_) => PathKind::File,
            Looked::Kind(kind) => *kind,
        }
    }
}

impl EndStamps {
    pub(crate) fn new(taken: crate::cache::Timestamp, looked: PathMap<Looked>) -> Self {
        Self {
            taken: Some(taken),
            looked,
        }
    }

    /// The stamp of the regular file at `real` (a resolved path), if it
    /// was one when looked at.
    pub(crate) fn get(&self, real: &Path) -> Option<&crate::cache::Stamp> {
        match self.looked.get(real)? {
            Looked::File(stamp) => Some(stamp),
            _ => None,
        }
    }

    /// What `path` was; missing when it was never looked at.
    pub(crate) fn kind(&self, path: &Path) -> PathKind {
        self.looked
            .get(path)
            .map_or(PathKind::Missing, Looked::kind)
    }

    /// The target text of the symlink at `path`, if it was one.
    pub(crate) fn link_target(&self, path: &Path) -> Option<&Path> {
        match self.looked.get(path)? {
            Looked::Symlink(target) => Some(target),
            _ => None,
        }
    }

    /// Records what `path` was (tests build end states by hand).
    #[cfg(test)]
    pub(crate) fn insert(&mut self, path: PathBuf, looked: Looked) {
        self.looked.insert(path, looked);
    }
}

/// The resolution of each recorded path, for each way it was looked at
/// (following its last component or not).
#[derive(Debug, Clone, Default)]
pub(crate) struct Resolutions(PathMap<[Option<Resolution>; 2]>);

impl Resolutions {
    pub(crate) fn get(&self, path: &Path, follow: bool) -> Option<&Resolution> {
        self.0.get(path)?[usize::from(follow)].as_ref()
    }

    pub(crate) fn contains(&self, path: &Path, follow: bool) -> bool {
        self.get(path, follow).is_some()
    }

    pub(crate) fn insert(&mut self, path: PathBuf, follow: bool, resolution: Resolution) {
        self.0.entry(path).or_default()[usize::from(follow)] = Some(resolution);
    }
}

impl EndState {
    /// Where `path` led: itself unless the snapshot recorded otherwise.
    pub(crate) fn resolve<'a>(&'a self, path: &'a Path, follow: bool) -> Resolved<'a> {
        match self.resolved.get(path, follow) {
            Some(resolution) => Resolved {
                real: &resolution.real,
                links: &resolution.links,
            },
            None => Resolved {
                real: path,
                links: &[],
            },
        }
    }

    pub(crate) fn kind(&self, real: &Path) -> PathKind {
        self.looked.kind(real)
    }
}

/// `Path`'s order for clean paths (no `.`, no repeated or trailing
/// separator), without splitting them into components: a separator sorts
/// before every other byte. For sorting many recorded paths fast; a map
/// keyed by `Path` still orders by `Path` itself.
pub(crate) fn path_order(a: &Path, b: &Path) -> std::cmp::Ordering {
    use std::os::unix::ffi::OsStrExt;
    let (a, b) = (a.as_os_str().as_bytes(), b.as_os_str().as_bytes());
    // Recorded paths share long prefixes (`/w/node_modules/pkg/...`): skip
    // the common part eight bytes at a time, then order by the first
    // difference with the separator as the smallest byte.
    let common = a.len().min(b.len());
    let mut at = 0;
    while at + 8 <= common && a[at..at + 8] == b[at..at + 8] {
        at += 8;
    }
    while at < common && a[at] == b[at] {
        at += 1;
    }
    let key = |byte: u8| if byte == b'/' { 0 } else { byte };
    match (a.get(at), b.get(at)) {
        (Some(&x), Some(&y)) => key(x).cmp(&key(y)),
        _ => a.len().cmp(&b.len()),
    }
}

/// Everything one traced process tree did to files, in syscall-entry order
/// across all its threads and processes.
#[derive(Debug, Clone, Default)]
pub(crate) struct AccessLog {
    pub(crate) accesses: Vec<Access>,
    /// Why part of the tree's file activity could not be seen (a 32-bit
    /// system call, unreadable tracee memory, ...). Non-empty means the log
    /// may be incomplete: the run must not be cached on its strength.
    pub(crate) untraceable: Vec<String>,
    pub(crate) end_state: EndState,
    pub(crate) counts: CallCounts,
}

/// How the traced tree's file system calls reached vp (for `vp trace` and
/// the miss cost of `vp run -v`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CallCounts {
    /// Calls the supervisor received as seccomp notifications.
    pub(crate) notified: u64,
    /// Calls the preload library recorded in-process (`in_process.rs`).
    pub(crate) in_process: u64,
    /// Calls the library left to the notified way because its log was full.
    pub(crate) in_process_dropped: u64,
}

impl AccessLog {
    /// Records a reason once (the same cause tends to repeat thousands of times).
    pub(crate) fn mark_untraceable(&mut self, reason: String) {
        if !self.untraceable.contains(&reason) {
            self.untraceable.push(reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_order_is_paths_own_order_for_clean_paths() {
        let paths: Vec<PathBuf> = [
            "/",
            "/a",
            "/a/b",
            "/a-b",
            "/a.b",
            "/ab",
            "/a/b/c",
            "/a/bc",
            "/a/b-c",
            "/b",
            "/A",
            "/a/\u{e9}",
            "/a/z",
            "/a0",
            "/a/b/c/d",
            "/node_modules/pkg/dist/index.js",
            "/node_modules/pkg/dist/index.jsx",
            "/node_modules/pkg/dist/index.js/x",
            "/node_modules/pkg/dist-esm/index.js",
            "/node_modules/pkg/dist",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        for a in &paths {
            for b in &paths {
                assert_eq!(path_order(a, b), a.cmp(b), "{a:?} vs {b:?}");
            }
        }
    }
}
